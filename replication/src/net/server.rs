//! The serving side: a node listens on its TCP address and serves its peer, over mutual
//! TLS, the files of its instance directory (what the peer would otherwise read and write
//! through a shared file system: the log it copies, heartbeats, a seed it writes).
//!
//! Only the peer named in the configuration is served: its certificate must chain to the
//! cluster's CA and name it, and its hello must speak this protocol version and cluster.
//! Anything else (another CA, another name, an expired certificate, plain TCP, a garbage or
//! oversized frame) closes the connection before a single request is read, and is named in
//! the event log. Every path a request names is checked to stay inside the instance.

use super::frame::{read_frame, write_frame, FrameError};
use super::message::{
    Hello, Request, Response, Welcome, KIND_HELLO, KIND_REFUSED, KIND_REQUEST, KIND_RESPONSE,
    KIND_WELCOME, MAX_CHUNK, PROTOCOL_VERSION,
};
use super::tail::{Tail, TailAnswer};
use super::{tls, TlsError, TlsIdentity, TlsStream};
use bluejet_engine::file::{
    FileHandle, FileSystem, LockAttempt, LockProbe, OpenMode, OwnershipLock,
};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server asks of the node it runs in.
pub trait ServedNode: Send + Sync {
    /// What the node says of itself in a welcome.
    fn welcome(&self) -> Welcome;
    /// Records an event (a refused peer, a connection closed on a malformed frame).
    fn event(&self, kind: &str, message: &str);
    /// Answers a block-mode request (waiting at most its wait).
    fn tail(&self, request: &Tail) -> TailAnswer;
}

/// How a node serves its peer.
#[derive(Clone)]
pub struct ServerOptions {
    /// The address to listen on (port 0: the OS chooses; see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// The instance directory served.
    pub root: PathBuf,
    /// The file layer of the instance.
    pub fs: Arc<dyn FileSystem>,
    /// The only node served.
    pub peer: String,
    /// The TLS handshake and the hello must finish within this (default 5 s).
    pub handshake_timeout: Duration,
    /// A connection idle this long is closed (default 60 s).
    pub idle_timeout: Duration,
    /// Most connections served at once (default 8); more are closed at once.
    pub max_connections: usize,
}

impl ServerOptions {
    /// The defaults for serving `root` to `peer` on `listen`.
    pub fn new(listen: SocketAddr, root: PathBuf, fs: Arc<dyn FileSystem>, peer: &str) -> Self {
        Self {
            listen,
            root,
            fs,
            peer: peer.to_owned(),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 8,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The socket or the thread.
    #[error("{what}: {cause}")]
    Io {
        /// What failed.
        what: String,
        /// How.
        cause: io::Error,
    },
}

/// A running server; stops when dropped.
pub struct Server {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What every connection of a server shares.
struct Context {
    options: ServerOptions,
    config: Arc<rustls::ServerConfig>,
    node: Arc<dyn ServedNode>,
    stop: Arc<AtomicBool>,
    live: AtomicUsize,
}

impl Server {
    /// Binds and starts serving in a background thread.
    pub fn start(
        options: ServerOptions,
        identity: &TlsIdentity,
        node: Arc<dyn ServedNode>,
    ) -> Result<Self, ServeError> {
        let config = identity.server_config(&options.peer)?;
        let listener = TcpListener::bind(options.listen)
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|source| ServeError::Io {
                what: format!("listening on {}", options.listen),
                cause: source,
            })?;
        let local = listener.local_addr().map_err(|source| ServeError::Io {
            what: "the listening address".into(),
            cause: source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let context = Arc::new(Context {
            options,
            config,
            node,
            stop: Arc::clone(&stop),
            live: AtomicUsize::new(0),
        });
        let thread = std::thread::Builder::new()
            .name("bluejet-serve".into())
            .spawn(move || accept_loop(&listener, &context))
            .map_err(|source| ServeError::Io {
                what: "starting the server".into(),
                cause: source,
            })?;
        Ok(Self {
            local,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the server's accept thread panicked");
            }
        }
    }
}

/// Accepts until stopped; each connection gets a thread, up to the bound.
fn accept_loop(listener: &TcpListener, context: &Arc<Context>) {
    // Reported once while the same kind of failure repeats (out of descriptors, say).
    let mut failing = None;
    while !context.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((tcp, address)) => {
                failing = None;
                admit(context, tcp, address);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => {
                if failing != Some(error.kind()) {
                    tracing::warn!(
                        root = %context.options.root.display(),
                        %error,
                        "the replication server cannot accept connections; it tries again"
                    );
                    failing = Some(error.kind());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn admit(context: &Arc<Context>, tcp: TcpStream, address: SocketAddr) {
    if context.live.load(Ordering::SeqCst) >= context.options.max_connections {
        context.node.event(
            "net-refused",
            &format!(
                "connection from {} refused: already serving the most connections",
                address.ip()
            ),
        );
        return;
    }
    context.live.fetch_add(1, Ordering::SeqCst);
    let context_count = Arc::clone(context);
    let context = Arc::clone(context);
    let spawned = std::thread::Builder::new()
        .name("bluejet-serve-peer".into())
        .spawn(move || {
            serve_connection(&context, tcp, address);
            context.live.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        // The thread never ran: undo its count (the connection is dropped, closing it).
        context_count.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One connection: handshake, then requests until it closes, idles out or misbehaves.
fn serve_connection(context: &Context, tcp: TcpStream, address: SocketAddr) {
    let refuse = |reason: String| {
        context.node.event(
            "net-refused",
            // The address without its port: a stranger retrying from new ports makes one
            // event repeated (the event log coalesces it), not one event per attempt.
            &format!("peer at {} refused: {reason}", address.ip()),
        );
    };
    // No Nagle: a response is one small frame that a waiting peer (a synchronous commit)
    // must get at once, not after the peer's delayed acknowledgement.
    let timeouts = tcp
        .set_nonblocking(false)
        .and_then(|()| tcp.set_nodelay(true))
        .and_then(|()| tcp.set_read_timeout(Some(context.options.handshake_timeout)))
        .and_then(|()| tcp.set_write_timeout(Some(context.options.handshake_timeout)));
    if let Err(error) = timeouts {
        return refuse(format!("socket setup: {error}"));
    }
    let mut stream = match tls::accept(&context.config, tcp, &context.options.peer) {
        Ok(stream) => stream,
        Err(error) => return refuse(error.to_string()),
    };
    if let Err(reason) = greet(context, &mut stream) {
        return refuse(reason);
    }
    let idle = Some(context.options.idle_timeout);
    if stream.tcp().set_read_timeout(idle).is_err() {
        return;
    }
    let mut session = Session::default();
    while !context.stop.load(Ordering::SeqCst) {
        let frame = match read_frame(&mut stream, MAX_CHUNK + 4096) {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return,
            Err(error) => {
                // Without the port, as the refusals: a peer's connections cut together make one event
                // repeated (found by an adversarial round: 90 events after a SIGCONT).
                let message = format!("connection from {} closed: {error}", address.ip());
                return context.node.event("net-closed", &message);
            }
        };
        let request = match (frame.kind, Request::decode(&frame.payload)) {
            (KIND_REQUEST, Ok(request)) => request,
            (kind, Err(error)) if kind == KIND_REQUEST => {
                let message = format!(
                    "connection from {} closed: malformed request: {error}",
                    address.ip()
                );
                return context.node.event("net-closed", &message);
            }
            (kind, _) => {
                let message = format!("connection from {} closed: frame kind {kind}", address.ip());
                return context.node.event("net-closed", &message);
            }
        };
        let response = execute(context, &mut session, request);
        let sent = response
            .encode()
            .map_err(|error| error.to_string())
            .and_then(|payload| {
                write_frame(&mut stream, KIND_RESPONSE, &payload).map_err(|e| e.to_string())
            });
        if sent.is_err() {
            return;
        }
    }
}

/// Reads the hello and answers with the welcome, or refuses.
fn greet(context: &Context, stream: &mut TlsStream) -> Result<(), String> {
    let frame = read_frame(stream, 64 * 1024).map_err(|error| format!("hello: {error}"))?;
    if frame.kind != KIND_HELLO {
        return Err(format!("expected a hello, got frame kind {}", frame.kind));
    }
    let hello = Hello::decode(&frame.payload).map_err(|error| format!("hello: {error}"))?;
    let welcome = context.node.welcome();
    let refusal = if hello.version != PROTOCOL_VERSION {
        Some(format!(
            "protocol version {} (this node speaks {PROTOCOL_VERSION})",
            hello.version
        ))
    } else if hello.node != context.options.peer {
        Some(format!("the hello names node {:?}", hello.node))
    } else if !hello.cluster.is_empty()
        && !welcome.cluster.is_empty()
        && hello.cluster != welcome.cluster
    {
        Some(format!(
            "cluster {:?}, this node is in cluster {:?}",
            hello.cluster, welcome.cluster
        ))
    } else {
        None
    };
    if let Some(reason) = refusal {
        if let Err(error) = write_frame(stream, KIND_REFUSED, reason.as_bytes()) {
            tracing::debug!(%error, "telling a refused peer why");
        }
        return Err(reason);
    }
    let payload = welcome.encode().map_err(|error| error.to_string())?;
    write_frame(stream, KIND_WELCOME, &payload).map_err(|error| format!("welcome: {error}"))
}

/// Most files one connection keeps open at once.
const MAX_OPEN_FILES: usize = 128;

/// What a connection holds on this node: released when it ends.
#[derive(Default)]
struct Session {
    next: u64,
    /// Locks taken by the connection.
    locks: HashMap<u64, OwnershipLock>,
    /// Files the connection opened: a handle keeps reading the file it opened, whatever is
    /// renamed over its path since (a status file replaced while a peer reads it).
    files: HashMap<u64, Arc<dyn FileHandle>>,
}

impl Session {
    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn file(&self, handle: u64) -> io::Result<&Arc<dyn FileHandle>> {
        self.files.get(&handle).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no open file {handle}"))
        })
    }
}

/// Carries out one request on the instance's files.
fn execute(context: &Context, session: &mut Session, request: Request) -> Response {
    let root = &context.options.root;
    let fs = context.options.fs.as_ref();
    let result = match request {
        Request::Open(path, mode) => open(fs, session, &path.under(root), mode),
        Request::Read(handle, offset, length) => session
            .file(handle)
            .and_then(|file| read(file.as_ref(), offset, length)),
        Request::Size(handle) => session
            .file(handle)
            .and_then(|file| file.size())
            .map(Response::Size),
        Request::Write(handle, offset, data) => session
            .file(handle)
            .and_then(|file| file.write_at(&data, offset))
            .map(|()| Response::Done),
        Request::SetLen(handle, length) => session
            .file(handle)
            .and_then(|file| file.set_len(length))
            .map(|()| Response::Done),
        Request::Sync(handle) => session
            .file(handle)
            .and_then(|file| file.sync_data())
            .map(|()| Response::Done),
        Request::Close(handle) => session
            .files
            .remove(&handle)
            .map(|_| Response::Done)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no open file {handle}"))
            }),
        Request::Rename(from, to) => fs
            .rename(&from.under(root), &to.under(root))
            .map(|()| Response::Done),
        Request::Remove(path) => fs.remove(&path.under(root)).map(|()| Response::Done),
        Request::List(path) => fs.list(&path.under(root)).map(Response::Names),
        Request::SyncDirectory(path) => fs
            .sync_directory(&path.under(root))
            .map(|()| Response::Done),
        Request::CreateDirectory(path) => fs
            .create_directory(&path.under(root))
            .map(|()| Response::Done),
        Request::Exists(path) => Ok(Response::Flag(fs.exists(&path.under(root)))),
        Request::Lock(path, holder) => lock(fs, session, &path.under(root), &holder),
        Request::Unlock(id) => Ok(session.locks.remove(&id).map_or_else(
            || Response::Failed(io::ErrorKind::NotFound, format!("no lock {id}")),
            |_| Response::Done,
        )),
        Request::Tail(tail) => Ok(Response::Tail(context.node.tail(&tail))),
        Request::ProbeLock(path) => fs.probe_lock(&path.under(root)).map(|probe| match probe {
            LockProbe::Free => Response::Free,
            LockProbe::Held(holder) => Response::Held(holder),
        }),
    };
    result.unwrap_or_else(|error| Response::Failed(error.kind(), error.to_string()))
}

fn open(
    fs: &dyn FileSystem,
    session: &mut Session,
    path: &std::path::Path,
    mode: OpenMode,
) -> io::Result<Response> {
    if session.files.len() >= MAX_OPEN_FILES {
        return Err(io::Error::other(format!(
            "{MAX_OPEN_FILES} files are open on this connection already"
        )));
    }
    let file = fs.open(path, mode)?;
    let size = file.size()?;
    let handle = session.id();
    session.files.insert(handle, file);
    Ok(Response::Opened(handle, size))
}

fn read(file: &dyn FileHandle, offset: u64, length: u32) -> io::Result<Response> {
    let size = file.size()?;
    let length = usize::try_from(u64::from(length).min(size.saturating_sub(offset)))
        .expect("at most length, a u32");
    let mut data = vec![0; length];
    file.read_exact_at(&mut data, offset)?;
    Ok(Response::Data(data))
}

fn lock(
    fs: &dyn FileSystem,
    session: &mut Session,
    path: &std::path::Path,
    holder: &bluejet_engine::file::Holder,
) -> io::Result<Response> {
    match fs.lock_exclusive(path, holder)? {
        LockAttempt::Taken(lock) => {
            let id = session.id();
            session.locks.insert(id, lock);
            Ok(Response::Locked(id))
        }
        LockAttempt::Held(holder) => Ok(Response::Held(holder)),
    }
}
