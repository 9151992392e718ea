//! Mutual TLS between nodes over 127.0.0.1 (`bluejet_replication::net`): a good handshake
//! carries frames both ways, and every wrong peer is refused by the side that checks it,
//! with a typed reason naming the peer, before that side reads a single application frame:
//! a certificate from another cluster's CA, a certificate for another node, an expired or
//! not yet valid certificate, a client that does not speak TLS. After a good handshake, a
//! frame over the limit or with a bad checksum is a typed `FrameError`.
//!
//! Certificates are made per test in a temporary directory. Every blocking call is bounded:
//! sockets carry read and write timeouts, the listener is polled against a deadline, and
//! the server's outcome is awaited with `recv_timeout`, so a test fails instead of hanging.

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions). Test data
// is made by truncating counters into bytes on purpose, and sizes here are small constants.
// Ignored results are the cleanup of helper threads and sockets a test tears down (work
// left for a later pass: issue 16 asks them to be logged).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::let_underscore_must_use
)]

use bluejet_replication::net::certs::{ClusterCa, Validity};
use bluejet_replication::net::frame::{
    encode_frame, read_frame, write_frame, Frame, FrameError, HEADER_BYTES,
};
use bluejet_replication::net::{accept, connect, Refusal, TlsError, TlsIdentity, TlsStream};
use rustls::AlertDescription;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// The deadline of anything that should happen soon.
const DEADLINE: Duration = Duration::from_secs(10);
/// The servers' read timeout: a silent client is refused after this long.
const SERVER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The payload limit of every reader here.
const LIMIT: u32 = 64 << 10;
const DAY: Duration = Duration::from_secs(86_400);

/// Certificate directories made in one temporary directory: `good` holds the cluster CA
/// and nodes `a`, `b`, `c`; `foreign` another cluster's CA and its own `a` and `b`;
/// `intruder` the good CA (so it trusts the good `b`) with an `a` of the other CA;
/// `expired` and `early` the good CA with an `a` whose validity has ended or not begun.
struct Certs {
    _root: tempfile::TempDir,
    good: PathBuf,
    foreign: PathBuf,
    intruder: PathBuf,
    expired: PathBuf,
    early: PathBuf,
}

impl Certs {
    fn make() -> Certs {
        let root = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let year = Validity::days_from_now(365).unwrap();
        let ca = ClusterCa::generate(&year).unwrap();
        let good = write_cluster(&ca, &root.path().join("good"), &["a", "b", "c"], &year);
        let other = ClusterCa::generate(&year).unwrap();
        let foreign = write_cluster(&other, &root.path().join("foreign"), &["a", "b"], &year);
        let intruder = write_cluster(&ca, &root.path().join("intruder"), &[], &year);
        other.issue("a", &year).unwrap().write(&intruder).unwrap();
        let past = Validity::between(now - 10 * DAY, now - DAY).unwrap();
        let expired = write_cluster(&ca, &root.path().join("expired"), &["a"], &past);
        let future = Validity::between(now + DAY, now + 10 * DAY).unwrap();
        let early = write_cluster(&ca, &root.path().join("early"), &["a"], &future);
        Certs {
            _root: root,
            good,
            foreign,
            intruder,
            expired,
            early,
        }
    }
}

/// Writes `ca.pem` of `ca` and a certificate per node valid over `validity` into `dir`.
fn write_cluster(ca: &ClusterCa, dir: &Path, nodes: &[&str], validity: &Validity) -> PathBuf {
    std::fs::create_dir(dir).unwrap();
    ca.write(dir).unwrap();
    for node in nodes {
        ca.issue(node, validity).unwrap().write(dir).unwrap();
    }
    dir.to_owned()
}

/// What the server side of one connection did.
#[derive(Debug)]
enum Served {
    /// `accept` refused the client: no frame was read.
    Refused(TlsError),
    /// `accept` admitted the client (named here); the frames then read and echoed, and how
    /// reading ended (`None`: the client closed cleanly).
    Admitted {
        peer: String,
        frames: Vec<Frame>,
        end: Option<FrameError>,
    },
}

/// A server for one connection on 127.0.0.1 with the identity `node` of `dir`, admitting
/// only `expected`: it echoes every frame it reads until the stream ends or fails.
struct Server {
    addr: SocketAddr,
    outcome: mpsc::Receiver<Served>,
}

impl Server {
    fn start(dir: &Path, node: &str, expected: &str) -> Server {
        let identity = TlsIdentity::load(dir, node).unwrap();
        let config = identity.server_config(expected).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let expected = expected.to_owned();
        let (sender, outcome) = mpsc::channel();
        thread::spawn(move || {
            let tcp = accept_within(&listener, DEADLINE);
            tcp.set_read_timeout(Some(SERVER_READ_TIMEOUT)).unwrap();
            tcp.set_write_timeout(Some(DEADLINE)).unwrap();
            let served = match accept(&config, tcp, &expected) {
                Err(error) => Served::Refused(error),
                Ok(stream) => echo(stream),
            };
            let _ = sender.send(served);
        });
        Server { addr, outcome }
    }

    /// What the server did, within the deadline.
    fn outcome(&self) -> Served {
        self.outcome
            .recv_timeout(DEADLINE + SERVER_READ_TIMEOUT)
            .expect("the server ends within the deadline")
    }

    /// The server's refusal; panics if it admitted the client.
    fn refusal(&self) -> TlsError {
        match self.outcome() {
            Served::Refused(error) => error,
            admitted => panic!("the server admitted the client: {admitted:?}"),
        }
    }
}

/// The first connection on `listener` within `deadline` (polled: a nonblocking accept).
fn accept_within(listener: &TcpListener, deadline: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((tcp, _)) => {
                tcp.set_nonblocking(false).unwrap();
                return tcp;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                assert!(start.elapsed() < deadline, "no client came");
                thread::sleep(Duration::from_millis(5));
            }
            Err(error) => panic!("accept: {error}"),
        }
    }
}

fn echo(mut stream: TlsStream) -> Served {
    let peer = stream.peer_name().to_owned();
    let mut frames = Vec::new();
    let end = loop {
        match read_frame(&mut stream, LIMIT) {
            Ok(frame) => {
                if let Err(error) = write_frame(&mut stream, frame.kind, &frame.payload) {
                    break Some(error);
                }
                frames.push(frame);
            }
            Err(FrameError::Closed) => break None,
            Err(error) => break Some(error),
        }
    };
    Served::Admitted { peer, frames, end }
}

/// A TCP connection to `addr` with read and write timeouts.
fn tcp_to(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect_timeout(&addr, DEADLINE).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    tcp.set_write_timeout(Some(DEADLINE)).unwrap();
    tcp
}

/// The client side: `node` of `dir` connects to `addr`, expecting the server `server`.
fn client(dir: &Path, node: &str, addr: SocketAddr, server: &str) -> Result<TlsStream, TlsError> {
    let config = TlsIdentity::load(dir, node)
        .unwrap()
        .client_config()
        .unwrap();
    connect(&config, tcp_to(addr), server)
}

/// The refusal inside a handshake error, after checking who and which side it names.
fn reason(error: TlsError, peer: &str, role: &str) -> Refusal {
    let text = error.to_string();
    assert!(
        text.contains(&format!("node {peer} ({role})")),
        "the error names the peer and the side: {text}"
    );
    match error {
        TlsError::Handshake {
            peer: named,
            role: side,
            reason,
        } => {
            assert_eq!((named.as_str(), side), (peer, role));
            reason
        }
        other => panic!("not a handshake error: {other:?}"),
    }
}

/// A client whose certificate the server refuses: TLS 1.3 lets its handshake finish
/// first, so it learns of the refusal on its first read, as the server's alert; it never
/// gets a frame.
fn assert_client_learns_refusal(connected: Result<TlsStream, TlsError>, alert: AlertDescription) {
    let refusal = match connected {
        Err(error) => reason(error, "b", "as client"),
        Ok(mut stream) => match read_frame(&mut stream, LIMIT) {
            Err(FrameError::Io(error)) => Refusal::from_io(error, "b"),
            other => panic!("a refused client read {other:?}"),
        },
    };
    match refusal {
        Refusal::PeerAlert(received) => assert_eq!(received, alert),
        other => panic!("the client should see the server's alert, not {other:?}"),
    }
}

#[test]
fn a_good_handshake_carries_frames_both_ways() {
    let certs = Certs::make();
    let server = Server::start(&certs.good, "b", "a");
    let mut stream = client(&certs.good, "a", server.addr, "b").unwrap();
    assert_eq!(stream.peer_name(), "b");
    let big: Vec<u8> = (0..LIMIT).map(|i| (i % 251) as u8).collect();
    let sent = [(1u8, b"hello b".to_vec()), (0, Vec::new()), (255, big)];
    for (kind, payload) in &sent {
        write_frame(&mut stream, *kind, payload).unwrap();
        let echoed = read_frame(&mut stream, LIMIT).unwrap();
        assert_eq!((echoed.kind, &echoed.payload), (*kind, payload));
    }
    stream.close().unwrap();
    match server.outcome() {
        Served::Admitted { peer, frames, end } => {
            assert_eq!(peer, "a");
            let received: Vec<(u8, Vec<u8>)> =
                frames.into_iter().map(|f| (f.kind, f.payload)).collect();
            assert_eq!(received, sent);
            assert!(end.is_none(), "a clean close: {end:?}");
        }
        refused => panic!("{refused:?}"),
    }
}

#[test]
fn a_client_certificate_of_another_cluster_is_refused_by_the_server() {
    let certs = Certs::make();
    let server = Server::start(&certs.good, "b", "a");
    // The client trusts the server (it holds the cluster's public CA certificate), but its
    // own certificate comes from another CA.
    let connected = client(&certs.intruder, "a", server.addr, "b");
    let refusal = reason(server.refusal(), "a", "as server");
    assert!(matches!(refusal, Refusal::UnknownIssuer), "{refusal:?}");
    assert!(refusal.to_string().contains("not issued by the cluster CA"));
    assert_client_learns_refusal(connected, AlertDescription::DecryptError);
}

#[test]
fn a_node_of_another_cluster_is_refused_by_both_sides() {
    let certs = Certs::make();
    let server = Server::start(&certs.good, "b", "a");
    // The client checks the server's certificate first, and refuses it.
    let error = client(&certs.foreign, "a", server.addr, "b").unwrap_err();
    let refusal = reason(error, "b", "as client");
    assert!(matches!(refusal, Refusal::UnknownIssuer), "{refusal:?}");
    match reason(server.refusal(), "a", "as server") {
        Refusal::PeerAlert(alert) => assert_eq!(alert, AlertDescription::DecryptError),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_server_of_another_cluster_is_refused_by_the_client() {
    let certs = Certs::make();
    let server = Server::start(&certs.foreign, "b", "a");
    let error = client(&certs.good, "a", server.addr, "b").unwrap_err();
    let refusal = reason(error, "b", "as client");
    assert!(matches!(refusal, Refusal::UnknownIssuer), "{refusal:?}");
    // The server learns of it from the client's alert, and reads nothing.
    match reason(server.refusal(), "a", "as server") {
        Refusal::PeerAlert(alert) => assert_eq!(alert, AlertDescription::DecryptError),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_client_certificate_for_another_node_is_refused() {
    let certs = Certs::make();
    let server = Server::start(&certs.good, "b", "a");
    let connected = client(&certs.good, "c", server.addr, "b");
    match reason(server.refusal(), "a", "as server") {
        Refusal::WrongName { expected } => assert_eq!(expected, "a"),
        other => panic!("{other:?}"),
    }
    assert_client_learns_refusal(connected, AlertDescription::BadCertificate);
}

#[test]
fn a_server_certificate_for_another_node_is_refused() {
    let certs = Certs::make();
    // `a` means to reach `b`, but `c` answers there.
    let server = Server::start(&certs.good, "c", "a");
    let error = client(&certs.good, "a", server.addr, "b").unwrap_err();
    match reason(error, "b", "as client") {
        Refusal::WrongName { expected } => assert_eq!(expected, "b"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(server.outcome(), Served::Refused(_)));
}

#[test]
fn an_expired_client_certificate_is_refused() {
    let certs = Certs::make();
    let server = Server::start(&certs.good, "b", "a");
    let connected = client(&certs.expired, "a", server.addr, "b");
    assert!(matches!(
        reason(server.refusal(), "a", "as server"),
        Refusal::Expired
    ));
    assert_client_learns_refusal(connected, AlertDescription::CertificateExpired);
}

#[test]
fn a_client_certificate_not_valid_yet_is_refused() {
    let certs = Certs::make();
    let server = Server::start(&certs.good, "b", "a");
    let connected = client(&certs.early, "a", server.addr, "b");
    assert!(matches!(
        reason(server.refusal(), "a", "as server"),
        Refusal::NotYetValid
    ));
    assert_client_learns_refusal(connected, AlertDescription::CertificateExpired);
}

#[test]
fn an_expired_server_certificate_is_refused_by_the_client() {
    let certs = Certs::make();
    let server = Server::start(&certs.expired, "a", "b");
    let error = client(&certs.good, "b", server.addr, "a").unwrap_err();
    assert!(matches!(reason(error, "a", "as client"), Refusal::Expired));
    assert!(matches!(server.outcome(), Served::Refused(_)));
}

/// A plain TCP client sends `bytes`; the server refuses it and the client receives nothing
/// but, at most, a TLS alert record before the connection ends.
fn plain_client_is_refused(bytes: &[u8]) -> Refusal {
    let certs = Certs::make();
    let server = Server::start(&certs.good, "b", "a");
    let mut tcp = tcp_to(server.addr);
    tcp.write_all(bytes).unwrap();
    let refusal = reason(server.refusal(), "a", "as server");
    let mut received = Vec::new();
    match tcp.read_to_end(&mut received) {
        Ok(_) | Err(_) if received.is_empty() || received[0] == 0x15 => {}
        result => panic!("the plain client received {received:?} ({result:?})"),
    }
    refusal
}

#[test]
fn a_plaintext_frame_is_refused_as_not_tls() {
    let frame = encode_frame(1, b"hello without tls").unwrap();
    let refusal = plain_client_is_refused(&frame);
    assert!(matches!(refusal, Refusal::NotTls(_)), "{refusal:?}");
    assert!(refusal
        .to_string()
        .starts_with("the peer does not speak TLS"));
}

#[test]
fn http_text_is_refused_as_not_tls() {
    let refusal = plain_client_is_refused(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n");
    assert!(matches!(refusal, Refusal::NotTls(_)), "{refusal:?}");
}

#[test]
fn garbage_bytes_are_refused() {
    let garbage: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let refusal = plain_client_is_refused(&garbage);
    assert!(matches!(refusal, Refusal::NotTls(_)), "{refusal:?}");
    // A record that looks like a handshake and holds nonsense.
    let lying = [0x16, 0x03, 0x01, 0x00, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    let refusal = plain_client_is_refused(&lying);
    assert!(
        matches!(refusal, Refusal::NotTls(_) | Refusal::Protocol(_)),
        "{refusal:?}"
    );
}

#[test]
fn a_silent_or_vanishing_client_is_refused_without_hanging() {
    let certs = Certs::make();
    let server = Server::start(&certs.good, "b", "a");
    let _silent = tcp_to(server.addr);
    let started = Instant::now();
    assert!(matches!(
        reason(server.refusal(), "a", "as server"),
        Refusal::Timeout
    ));
    assert!(started.elapsed() < DEADLINE);
    let server = Server::start(&certs.good, "b", "a");
    drop(tcp_to(server.addr));
    assert!(matches!(
        reason(server.refusal(), "a", "as server"),
        Refusal::Closed(_)
    ));
}

/// After a good handshake, the client sends one good frame then `bad` (raw bytes inside
/// TLS); returns how the server's reading ended.
fn bad_frame_after_a_good_one(bad: &[u8]) -> FrameError {
    let certs = Certs::make();
    let server = Server::start(&certs.good, "b", "a");
    let mut stream = client(&certs.good, "a", server.addr, "b").unwrap();
    write_frame(&mut stream, 4, b"good").unwrap();
    assert_eq!(read_frame(&mut stream, LIMIT).unwrap().payload, b"good");
    stream.write_all(bad).unwrap();
    stream.flush().unwrap();
    match server.outcome() {
        Served::Admitted { peer, frames, end } => {
            assert_eq!(peer, "a");
            assert_eq!(frames.len(), 1, "only the good frame was read");
            end.expect("reading ended on the bad frame")
        }
        refused => panic!("{refused:?}"),
    }
}

#[test]
fn a_frame_over_the_limit_is_refused_before_its_payload() {
    // Only the header: the payload is never sent, and the reader must not wait for it.
    let mut header = encode_frame(9, b"").unwrap();
    header[8..12].copy_from_slice(&(LIMIT + 1).to_le_bytes());
    let error = bad_frame_after_a_good_one(&header[..HEADER_BYTES]);
    assert!(
        matches!(error, FrameError::TooLarge { length, limit }
            if length == u64::from(LIMIT) + 1 && limit == LIMIT),
        "{error:?}"
    );
}

#[test]
fn a_frame_with_a_bad_checksum_is_refused() {
    let mut frame = encode_frame(9, b"checksummed payload").unwrap();
    frame[HEADER_BYTES + 3] ^= 0x40;
    let error = bad_frame_after_a_good_one(&frame);
    assert!(matches!(error, FrameError::Checksum { .. }), "{error:?}");
}

#[test]
fn a_frame_with_a_bad_magic_is_refused() {
    let mut frame = encode_frame(9, b"x").unwrap();
    frame[..4].copy_from_slice(b"HTTP");
    let error = bad_frame_after_a_good_one(&frame);
    assert!(matches!(error, FrameError::BadMagic), "{error:?}");
}

#[test]
fn a_refused_client_that_writes_at_once_has_nothing_read() {
    let certs = Certs::make();
    let server = Server::start(&certs.good, "b", "a");
    // Its handshake ends on its side before the server has checked its certificate.
    let mut stream = client(&certs.good, "c", server.addr, "b").unwrap();
    // The server may already have closed: then the write fails, which is no frame either.
    let _ = write_frame(&mut stream, 1, b"application data the server must not read");
    let read = read_frame(&mut stream, LIMIT);
    assert!(matches!(read, Err(FrameError::Io(_))), "{read:?}");
    match reason(server.refusal(), "a", "as server") {
        Refusal::WrongName { expected } => assert_eq!(expected, "a"),
        other => panic!("{other:?}"),
    }
}
