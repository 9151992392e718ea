//! The peer's instance directory reached over the network: a [`FileSystem`] whose every
//! operation is a request to the peer's [server](super::server).
//!
//! The replication stages, the failover, the seed and the heartbeat reader use the peer's
//! files through a `FileSystem` already (a shared directory by default), so over TCP they
//! run unchanged. Paths are named under a root (the node configuration's `peer_instance`)
//! and sent relative to it; anything outside it is refused here.
//!
//! One connection, opened when first needed and again after it breaks. A request that
//! changes nothing (a read, a listing) is retried once on a new connection; a read of a
//! whole file goes in pieces of at most [`MAX_CHUNK`], so a broken connection costs at most
//! one piece (a copy resumes where it stopped). A request that changes something is never
//! repeated: its error reaches the caller, as a shared file system's would. Every request
//! has a deadline (the socket's timeouts), so a stalled or black-holed peer is an error,
//! never a hang. The handshake refuses a peer that holds the database at an epoch older
//! than one this node has seen.

use super::frame::{read_frame, write_frame};
use super::message::{
    Hello, Request, Response, Welcome, KIND_HELLO, KIND_REFUSED, KIND_REQUEST, KIND_RESPONSE,
    KIND_WELCOME, MAX_CHUNK, PROTOCOL_VERSION,
};
use super::path::WirePath;
use super::tail::{Tail, TailAnswer};
use super::{tls, TlsError, TlsIdentity, TlsStream};
use bluejet_engine::file::{
    FileHandle, FileSystem, Holder, LockAttempt, LockProbe, OpenMode, OwnershipLock,
};
use parking_lot::Mutex;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where and how to reach the peer.
#[derive(Clone, Debug)]
pub struct PeerAddress {
    /// This node's name (its certificate's).
    pub me: String,
    /// The peer's name (its certificate must say so).
    pub peer: String,
    /// The peer's `host:port`.
    pub address: String,
    /// Connecting must finish within this (default 2 s).
    pub connect_timeout: Duration,
    /// Each request must be answered within this (default 5 s).
    pub request_timeout: Duration,
}

impl PeerAddress {
    /// The defaults for reaching `peer` at `address` as `me`.
    pub fn new(me: &str, peer: &str, address: &str) -> Self {
        Self {
            me: me.to_owned(),
            peer: peer.to_owned(),
            address: address.to_owned(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// The peer's instance directory over the network.
pub struct NetFileSystem {
    shared: Arc<Client>,
}

struct Client {
    root: PathBuf,
    peer: PeerAddress,
    config: Arc<rustls::ClientConfig>,
    connection: Mutex<Option<Connection>>,
    /// The highest epoch this node has seen: a peer holding the database at an older one
    /// is refused at the handshake.
    seen_epoch: AtomicU64,
    /// This node's cluster identity, once bound (sent in the hello).
    cluster: Mutex<String>,
    /// Locks this node holds on the peer: they live as long as the connection that took
    /// them, so while any is held a broken connection is never silently replaced.
    locks: AtomicUsize,
    /// What the peer said of itself at the last handshake.
    welcome: Mutex<Option<Welcome>>,
    /// Connections made so far.
    connections: AtomicU64,
    /// The peer did not answer: no new connection is tried before the instant, and the
    /// wait doubles while it keeps not answering.
    unanswered: Mutex<Option<(Instant, Duration)>>,
}

/// The first wait after a peer did not answer, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(8));

struct Connection {
    stream: TlsStream,
    broken: bool,
    /// Which connection this is (the count of connections made): a file handle belongs to
    /// one.
    id: u64,
}

impl NetFileSystem {
    /// A file system for the peer's instance, named under `root`.
    pub fn new(root: &Path, peer: PeerAddress, identity: &TlsIdentity) -> Result<Self, TlsError> {
        Ok(Self {
            shared: Arc::new(Client {
                root: root.to_owned(),
                peer,
                config: identity.client_config()?,
                connection: Mutex::new(None),
                seen_epoch: AtomicU64::new(0),
                cluster: Mutex::new(String::new()),
                locks: AtomicUsize::new(0),
                welcome: Mutex::new(None),
                connections: AtomicU64::new(0),
                unanswered: Mutex::new(None),
            }),
        })
    }

    /// Records an epoch this node has seen: a peer holding the database at an older one is
    /// refused from now on.
    pub fn saw_epoch(&self, epoch: u64) {
        self.shared.seen_epoch.fetch_max(epoch, Ordering::SeqCst);
    }

    /// Sets the cluster identity sent in the hello.
    pub fn set_cluster(&self, cluster: &str) {
        *self.shared.cluster.lock() = cluster.to_owned();
    }

    /// What the peer said of itself at the last handshake.
    pub fn welcome(&self) -> Option<Welcome> {
        self.shared.welcome.lock().clone()
    }

    /// Closes the connection (the next request opens a new one).
    pub fn disconnect(&self) {
        *self.shared.connection.lock() = None;
    }

    /// Block mode: asks the peer for its log bytes after `tail.from` (see [`super::tail`]).
    pub fn tail(&self, tail: Tail) -> io::Result<TailAnswer> {
        match self.shared.call(&Request::Tail(tail))? {
            Response::Tail(answer) => Ok(answer),
            other => Err(unexpected(other)),
        }
    }

    fn wire(&self, path: &Path) -> io::Result<WirePath> {
        WirePath::below(&self.shared.root, path)
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))
    }
}

impl Client {
    /// Sends one request and returns its response; a failure answer becomes an error.
    fn call(&self, request: &Request) -> io::Result<Response> {
        self.call_with(request.idempotent(), |connection| {
            exchange(&mut connection.stream, request)
        })
    }

    /// Runs `work` (requests on one connection) up to twice if `retry`, on a new connection
    /// after a broken one; a failure answer becomes an error. A peer that did not answer
    /// (a connection that could not be made, a request that timed out) is not asked again
    /// at once: the caller learns it now, and for a while after (see [`BACKOFF`]), instead
    /// of waiting out one timeout after another (found by an adversarial round: a frozen
    /// peer kept a passive's failover in network timeouts for 51 s).
    fn call_with(
        &self,
        retry: bool,
        mut work: impl FnMut(&mut Connection) -> io::Result<Response>,
    ) -> io::Result<Response> {
        let mut last = None;
        for _ in 0..if retry { 2 } else { 1 } {
            match self.on_connection(&mut work) {
                Ok(Response::Failed(kind, message)) => {
                    return Err(io::Error::new(
                        kind,
                        format!("on {}: {message}", self.peer.peer),
                    ))
                }
                Ok(response) => return Ok(response),
                Err(error) if unanswered(&error) => {
                    self.note_unanswered();
                    return Err(error);
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no attempt")))
    }

    /// The peer did not answer: no new connection before the backoff has passed.
    fn note_unanswered(&self) {
        let mut unanswered = self.unanswered.lock();
        let wait = unanswered.map_or(BACKOFF.0, |(_, wait)| (wait * 2).min(BACKOFF.1));
        *unanswered = Some((Instant::now() + wait, wait));
    }

    /// Refuses to connect while the backoff after an unanswered request runs.
    fn check_backoff(&self) -> io::Result<()> {
        let unanswered = *self.unanswered.lock();
        match unanswered {
            // Not a timeout of its own: it must not extend the backoff.
            Some((until, _)) if Instant::now() < until => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!(
                    "{} did not answer: not asked again for {} ms",
                    self.peer.peer,
                    until.saturating_duration_since(Instant::now()).as_millis()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Runs `work` on the connection, connecting first if there is none; a transport error
    /// marks the connection broken (the next call connects anew).
    fn on_connection(
        &self,
        work: &mut impl FnMut(&mut Connection) -> io::Result<Response>,
    ) -> io::Result<Response> {
        let mut slot = self.connection.lock();
        if slot.as_ref().is_some_and(|connection| connection.broken) {
            *slot = None;
        }
        if slot.is_none() {
            if self.locks.load(Ordering::SeqCst) > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    format!(
                        "the connection to {} holding a lock was lost",
                        self.peer.peer
                    ),
                ));
            }
            self.check_backoff()?;
            *slot = Some(self.connect()?);
        }
        let connection = slot.as_mut().expect("connected above");
        let exchanged = work(connection);
        match &exchanged {
            Err(_) => connection.broken = true,
            // An answer: the peer answers again.
            Ok(_) => *self.unanswered.lock() = None,
        }
        exchanged
    }

    /// Connects, completes the TLS handshake and the hello.
    fn connect(&self) -> io::Result<Connection> {
        let address = resolve(&self.peer.address)?;
        let tcp = TcpStream::connect_timeout(&address, self.peer.connect_timeout)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(self.peer.request_timeout))?;
        tcp.set_write_timeout(Some(self.peer.request_timeout))?;
        let mut stream = tls::connect(&self.config, tcp, &self.peer.peer).map_err(|error| {
            // A peer that accepts the connection but says nothing (a frozen process) did not
            // answer; anything else about the handshake is a refusal.
            let kind = match &error {
                TlsError::Handshake {
                    reason: super::tls_error::Refusal::Timeout,
                    ..
                } => io::ErrorKind::TimedOut,
                _ => io::ErrorKind::PermissionDenied,
            };
            io::Error::new(kind, error.to_string())
        })?;
        let hello = Hello {
            version: PROTOCOL_VERSION,
            node: self.peer.me.clone(),
            cluster: self.cluster.lock().clone(),
            seen_epoch: self.seen_epoch.load(Ordering::SeqCst),
        };
        let payload = hello.encode().map_err(io::Error::other)?;
        write_frame(&mut stream, KIND_HELLO, &payload).map_err(frame_error)?;
        let frame = read_frame(&mut stream, 64 * 1024).map_err(frame_error)?;
        let welcome = match frame.kind {
            KIND_WELCOME => Welcome::decode(&frame.payload).map_err(io::Error::other)?,
            KIND_REFUSED => {
                let reason = String::from_utf8_lossy(&frame.payload).into_owned();
                return Err(refused(&self.peer.peer, &reason));
            }
            kind => return Err(refused(&self.peer.peer, &format!("frame kind {kind}"))),
        };
        self.check_welcome(&welcome)?;
        *self.welcome.lock() = Some(welcome);
        Ok(Connection {
            stream,
            broken: false,
            id: self.connections.fetch_add(1, Ordering::SeqCst) + 1,
        })
    }

    /// Refuses a peer that is not the one expected, or that holds the database at an epoch
    /// older than one this node has seen (a stale active).
    fn check_welcome(&self, welcome: &Welcome) -> io::Result<()> {
        if welcome.node != self.peer.peer {
            return Err(refused(
                &self.peer.peer,
                &format!("it says it is {:?}", welcome.node),
            ));
        }
        let seen = self.seen_epoch.load(Ordering::SeqCst);
        if welcome.role == "active" && welcome.epoch < seen {
            return Err(refused(
                &self.peer.peer,
                &format!(
                    "it is active at epoch {}, older than epoch {seen} seen here",
                    welcome.epoch
                ),
            ));
        }
        let cluster = self.cluster.lock().clone();
        if !cluster.is_empty() && !welcome.cluster.is_empty() && welcome.cluster != cluster {
            return Err(refused(
                &self.peer.peer,
                &format!("it is in cluster {:?}, not {cluster:?}", welcome.cluster),
            ));
        }
        Ok(())
    }
}

/// A frame's failure as an I/O error of the same kind when it is one (a timeout stays a
/// timeout: see [`unanswered`]).
fn frame_error(error: super::frame::FrameError) -> io::Error {
    match error {
        super::frame::FrameError::Io(error) => {
            io::Error::new(error.kind(), format!("frame I/O: {error}"))
        }
        other => io::Error::other(other),
    }
}

/// Whether an error says the peer did not answer in time (or could not be reached), as
/// opposed to a connection that broke and may be made anew at once.
fn unanswered(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::TimedOut
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

fn refused(peer: &str, reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("peer {peer} refused: {reason}"),
    )
}

fn resolve(address: &str) -> io::Result<SocketAddr> {
    address.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{address} resolves to nothing"),
        )
    })
}

/// Writes a request and reads its response on one connection.
fn exchange(stream: &mut TlsStream, request: &Request) -> io::Result<Response> {
    let payload = request.encode().map_err(io::Error::other)?;
    write_frame(stream, KIND_REQUEST, &payload).map_err(frame_error)?;
    let frame = read_frame(stream, MAX_CHUNK + 4096).map_err(frame_error)?;
    if frame.kind != KIND_RESPONSE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame kind {} where a response was due", frame.kind),
        ));
    }
    Response::decode(&frame.payload)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

fn unexpected(response: Response) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected response {response:?}"),
    )
}

fn done(response: Response) -> io::Result<()> {
    match response {
        Response::Done => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// A file on the peer, open there for as long as this handle lives (so it keeps reading
/// what it opened, as a local handle would). After a broken connection the file is opened
/// again by its path on the new one, without truncating or creating it: what was renamed
/// over the path since is what is read then, and a sealed file's checksum tells.
struct NetFile {
    client: Arc<Client>,
    path: WirePath,
    /// How to open it again on a new connection.
    reopen: OpenMode,
    /// The handle on the peer: (connection id, handle).
    open: Mutex<(u64, u64)>,
}

impl NetFile {
    /// Runs the request `make(handle)` on this file, opening it again first on a connection
    /// other than the one that opened it.
    fn call(&self, retry: bool, make: impl Fn(u64) -> Request) -> io::Result<Response> {
        self.client.call_with(retry, |connection| {
            let mut open = self.open.lock();
            if open.0 != connection.id {
                let request = Request::Open(self.path.clone(), self.reopen);
                match exchange(&mut connection.stream, &request)? {
                    Response::Opened(handle, _) => *open = (connection.id, handle),
                    other => return Ok(other),
                }
            }
            exchange(&mut connection.stream, &make(open.1))
        })
    }
}

impl FileHandle for NetFile {
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        let length = u32::try_from(buffer.len()).map_or(MAX_CHUNK, |length| length.min(MAX_CHUNK));
        match self.call(true, |handle| Request::Read(handle, offset, length))? {
            Response::Data(data) if data.len() <= length as usize => {
                buffer[..data.len()].copy_from_slice(&data);
                Ok(data.len())
            }
            other => Err(unexpected(other)),
        }
    }

    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        for (index, piece) in data.chunks(MAX_CHUNK as usize).enumerate() {
            let at = offset + (index * MAX_CHUNK as usize) as u64;
            done(self.call(false, |handle| Request::Write(handle, at, piece.to_vec()))?)?;
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        done(self.call(false, Request::Sync)?)
    }

    fn set_len(&self, length: u64) -> io::Result<()> {
        done(self.call(false, |handle| Request::SetLen(handle, length))?)
    }

    fn size(&self) -> io::Result<u64> {
        match self.call(true, Request::Size)? {
            Response::Size(size) => Ok(size),
            other => Err(unexpected(other)),
        }
    }
}

impl Drop for NetFile {
    fn drop(&mut self) {
        // Closed on the connection that opened it, if that one is still up (a connection
        // that ended closed everything it had open).
        let (id, handle) = *self.open.lock();
        let mut slot = self.client.connection.lock();
        if let Some(connection) = slot.as_mut().filter(|c| c.id == id && !c.broken) {
            if exchange(&mut connection.stream, &Request::Close(handle)).is_err() {
                connection.broken = true;
            }
        }
    }
}

impl FileSystem for NetFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let path = self.wire(path)?;
        let reopen = match mode {
            OpenMode::Read => OpenMode::Read,
            _ => OpenMode::ReadWrite,
        };
        // The open and the connection it is on are read together: the handle belongs to it.
        let mut opened = (0, 0);
        let request = Request::Open(path.clone(), mode);
        self.shared
            .call_with(mode == OpenMode::Read, |connection| {
                let response = exchange(&mut connection.stream, &request)?;
                if let Response::Opened(handle, _) = response {
                    opened = (connection.id, handle);
                }
                Ok(response)
            })?;
        if opened.0 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} answered an open with no handle", self.shared.peer.peer),
            ));
        }
        Ok(Arc::new(NetFile {
            client: Arc::clone(&self.shared),
            path,
            reopen,
            open: Mutex::new(opened),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        done(
            self.shared
                .call(&Request::Rename(self.wire(from)?, self.wire(to)?))?,
        )
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        done(self.shared.call(&Request::Remove(self.wire(path)?))?)
    }

    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        match self.shared.call(&Request::List(self.wire(directory)?))? {
            Response::Names(names) => Ok(names),
            other => Err(unexpected(other)),
        }
    }

    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        done(
            self.shared
                .call(&Request::SyncDirectory(self.wire(directory)?))?,
        )
    }

    fn create_directory(&self, directory: &Path) -> io::Result<()> {
        done(
            self.shared
                .call(&Request::CreateDirectory(self.wire(directory)?))?,
        )
    }

    /// Unknown (the peer cannot be reached) reads as "does not exist", as on a shared file
    /// system that cannot be reached; callers that must tell the two apart open or list.
    fn exists(&self, path: &Path) -> bool {
        let Ok(path) = self.wire(path) else {
            return false;
        };
        matches!(
            self.shared.call(&Request::Exists(path)),
            Ok(Response::Flag(true))
        )
    }

    fn lock_exclusive(&self, path: &Path, holder: &Holder) -> io::Result<LockAttempt> {
        let request = Request::Lock(self.wire(path)?, holder.clone());
        match self.shared.call(&request)? {
            Response::Locked(id) => {
                self.shared.locks.fetch_add(1, Ordering::SeqCst);
                let guard = RemoteLock {
                    client: Arc::clone(&self.shared),
                    id,
                };
                Ok(LockAttempt::Taken(OwnershipLock::new(
                    path,
                    Box::new(guard),
                )))
            }
            Response::Held(holder) => Ok(LockAttempt::Held(holder)),
            other => Err(unexpected(other)),
        }
    }

    fn probe_lock(&self, path: &Path) -> io::Result<LockProbe> {
        match self.shared.call(&Request::ProbeLock(self.wire(path)?))? {
            Response::Free => Ok(LockProbe::Free),
            Response::Held(holder) => Ok(LockProbe::Held(holder)),
            other => Err(unexpected(other)),
        }
    }
}

/// A lock held on the peer: released when dropped (or when its connection ends).
struct RemoteLock {
    client: Arc<Client>,
    id: u64,
}

impl Drop for RemoteLock {
    fn drop(&mut self) {
        // Best effort: a lost connection released the lock on the peer already.
        if let Err(error) = self.client.call(&Request::Unlock(self.id)) {
            tracing::debug!(%error, "releasing a remote lock");
        }
        self.client.locks.fetch_sub(1, Ordering::SeqCst);
    }
}
