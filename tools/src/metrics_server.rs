//! The HTTP endpoint of `node run --metrics ADDR`: `GET /metrics` answers with the text a
//! render function makes, in its own thread, so that a scrape never holds up the node's loop.
//!
//! Each request is bounded: one connection at a time, at most `MAX_REQUEST_BYTES` of
//! request head read within `REQUEST_TIMEOUT` overall (a client that sends slowly is cut
//! off, not waited for), the answer written within `REQUEST_TIMEOUT`, and the connection
//! closed after it. `httparse` parses the request head (HTTP/1.x, as hyper does); what
//! is left is one status line and three headers.

use crate::exit::ToolError;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one request may take to arrive, and its answer to be written.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest request head read (a scrape's is a few hundred bytes).
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How often the accept loop looks whether it should stop.
const POLL: Duration = Duration::from_millis(50);
/// The content type of the OpenMetrics text `prometheus-client` writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What makes a scrape's body (an error becomes a 500 answer).
pub type Render = Box<dyn Fn() -> Result<String, String> + Send>;

/// A running endpoint; stops (and joins its thread) when dropped.
pub struct MetricsServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The endpoint's address, taken before there is anything to serve (so that a taken
/// address stops the command before it starts its work).
pub struct BoundMetrics {
    listener: TcpListener,
    address: SocketAddr,
}

impl BoundMetrics {
    /// Listens on `address`. An address already taken is an error naming it.
    pub fn bind(address: SocketAddr) -> Result<Self, ToolError> {
        let listener = TcpListener::bind(address).map_err(|error| bind_error(address, &error))?;
        let address = listener
            .local_addr()
            .map_err(|error| bind_error(address, &error))?;
        listener
            .set_nonblocking(true)
            .map_err(|error| bind_error(address, &error))?;
        Ok(Self { listener, address })
    }

    /// Serves `render`'s text at `/metrics` from a thread of its own.
    pub fn serve(self, render: Render) -> Result<MetricsServer, ToolError> {
        let Self { listener, address } = self;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bluejet-metrics".into())
            .spawn(move || accept_loop(&listener, &stopping, &render))
            .map_err(|error| ToolError::Failure(format!("starting the metrics server: {error}")))?;
        Ok(MetricsServer {
            address,
            stop,
            thread: Some(thread),
        })
    }
}

impl MetricsServer {
    /// The address listened on (the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(address = %self.address, "the metrics server's thread panicked");
            }
        }
    }
}

fn bind_error(address: SocketAddr, error: &io::Error) -> ToolError {
    let why = match error.kind() {
        io::ErrorKind::AddrInUse => "the address is in use (another process listens there)".into(),
        io::ErrorKind::AddrNotAvailable => "no interface of this machine has that address".into(),
        _ => error.to_string(),
    };
    ToolError::Failure(format!("cannot serve metrics on {address}: {why}"))
}

fn accept_loop(listener: &TcpListener, stop: &AtomicBool, render: &Render) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(error) = serve(stream, render) {
                    tracing::debug!(%peer, %error, "a metrics request failed");
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(error) => {
                tracing::warn!(%error, "the metrics server cannot accept connections");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// One connection: reads one request head within the time and size bounds, answers it,
/// closes.
fn serve(mut stream: TcpStream, render: &Render) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let answer = match read_request(&mut stream)? {
        Request::Scrape => match render() {
            Ok(body) => Answer::new(200, "OK", CONTENT_TYPE, body),
            Err(error) => Answer::text(500, "Internal Server Error", format!("{error}\n")),
        },
        Request::OtherPath => Answer::text(404, "Not Found", "only /metrics is served\n".into()),
        Request::OtherMethod => Answer::text(405, "Method Not Allowed", "only GET\n".into()),
        Request::Malformed(why) => Answer::text(400, "Bad Request", format!("{why}\n")),
        Request::TooLarge => Answer::text(431, "Request Header Fields Too Large", String::new()),
        Request::Closed => return Ok(()),
    };
    stream.write_all(&answer.bytes())?;
    stream.flush()
}

enum Request {
    Scrape,
    OtherPath,
    OtherMethod,
    Malformed(String),
    TooLarge,
    /// The client closed before sending a whole request head.
    Closed,
}

/// Reads until the request head is whole, the bound is passed or the time is up (an error).
fn read_request(stream: &mut TcpStream) -> io::Result<Request> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request not received in time",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Ok(Request::Closed);
        }
        head.extend_from_slice(&chunk[..read]);
        if let Some(request) = parse(&head) {
            return Ok(request);
        }
        if head.len() >= MAX_REQUEST_BYTES {
            return Ok(Request::TooLarge);
        }
    }
}

/// The request a complete head asks for; `None` while the head is partial.
fn parse(head: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(Request::TooLarge),
        Err(error) => Some(Request::Malformed(error.to_string())),
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or_default();
            let path = path.split('?').next().unwrap_or_default();
            Some(match request.method {
                Some("GET") if path == "/metrics" => Request::Scrape,
                Some("GET") => Request::OtherPath,
                _ => Request::OtherMethod,
            })
        }
    }
}

struct Answer {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
}

impl Answer {
    fn new(status: u16, reason: &'static str, content_type: &'static str, body: String) -> Self {
        Self {
            status,
            reason,
            content_type,
            body,
        }
    }

    fn text(status: u16, reason: &'static str, body: String) -> Self {
        Self::new(status, reason, "text/plain; charset=utf-8", body)
    }

    fn bytes(&self) -> Vec<u8> {
        let allow = if self.status == 405 {
            "Allow: GET\r\n"
        } else {
            ""
        };
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(render: Render) -> MetricsServer {
        let bound = BoundMetrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        bound.serve(render).unwrap()
    }

    fn exchange(address: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(request).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn a_scrape_gets_the_rendered_text_and_other_requests_get_errors() {
        let server = server(Box::new(|| Ok("# EOF\n".to_owned())));
        let address = server.local_addr();
        let answer = exchange(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("Content-Length: 6\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n# EOF\n"), "{answer}");
        let answer = exchange(address, b"GET / HTTP/1.1\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
        let answer = exchange(address, b"POST /metrics HTTP/1.1\r\n\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 405 ") && answer.contains("Allow: GET"),
            "{answer}"
        );
        let answer = exchange(address, b"\x01\x02 nonsense\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        // Exactly the bound, so that the server has read all of it when it answers (unread
        // bytes would make its close a reset).
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_REQUEST_BYTES, b'a');
        let answer = exchange(address, &huge);
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    }

    #[test]
    fn a_failed_render_is_a_server_error() {
        let server = server(Box::new(|| Err("the node is gone".to_owned())));
        let answer = exchange(server.local_addr(), b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 500 "), "{answer}");
        assert!(answer.ends_with("the node is gone\n"), "{answer}");
    }

    #[test]
    fn a_taken_address_is_refused_by_name() {
        let first = server(Box::new(|| Ok(String::new())));
        let taken = first.local_addr();
        let Err(error) = BoundMetrics::bind(taken) else {
            panic!("a second server bound {taken}");
        };
        let message = error.to_string();
        assert!(message.contains(&taken.to_string()), "{message}");
        assert!(message.contains("in use"), "{message}");
    }
}
