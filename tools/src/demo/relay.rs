//! The demo's network: one TCP relay on 127.0.0.1 in front of each node's server, which the
//! peer connects to. The demo cuts the network by cutting both relays (every live
//! connection closed, new ones refused), the way a switch failing would, and restores it.
//!
//! Blocking threads only: an accept thread polling a nonblocking listener (so that a drop
//! ends it), and two pumps per connection that end when either side closes or the relay
//! cuts it (a shutdown wakes a pump blocked in a read).

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The accept thread's pause between polls of its listener.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// The target is on 127.0.0.1, where a refusal is immediate; this bounds a target that
/// never answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

struct Shared {
    /// Where new connections go (the node's server, once it listens).
    target: Mutex<Option<SocketAddr>>,
    cut: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every connection relayed, to cut them.
    live: Mutex<Vec<TcpStream>>,
}

/// A TCP relay in front of one node.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on 127.0.0.1 (a port the system chooses); relays nothing until
    /// [`set_target`](Self::set_target).
    pub fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target: Mutex::new(None),
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("demo-relay".into())
            .spawn(move || accept_loop(&accepting, &listener))?;
        Ok(Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Where the peer connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Relays new connections to `target` (a node restarted listens on a new port).
    pub fn set_target(&self, target: SocketAddr) {
        *lock(&self.shared.target) = Some(target);
    }

    /// Cuts the network (closing every live connection and refusing new ones) or restores
    /// it.
    pub fn set_cut(&self, cut: bool) {
        self.shared.cut.store(cut, Ordering::SeqCst);
        if cut {
            close_all(&self.shared);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // The accept thread has no panicking path; a panic would already be reported.
            if acceptor.join().is_err() {
                tracing::error!("the relay's accept thread panicked");
            }
        }
        close_all(&self.shared);
    }
}

fn close_all(shared: &Shared) {
    for stream in lock(&shared.live).drain(..) {
        // Already closed by its peer, at worst.
        close(&stream);
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => relay(shared, client),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(ACCEPT_POLL);
            }
            // A connection reset before it was accepted: the next one may be fine.
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

/// Connects `client` to the target and pumps both ways; drops it while the network is cut
/// or the node does not listen yet (the peer sees a closed connection and retries).
fn relay(shared: &Arc<Shared>, client: TcpStream) {
    let target = *lock(&shared.target);
    let (Some(target), false) = (target, shared.cut.load(Ordering::SeqCst)) else {
        return;
    };
    let Ok(server) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        return;
    };
    let ends = (|| -> io::Result<_> {
        client.set_nonblocking(false)?;
        // As the nodes do: a request or an answer goes at once, not after a delayed ACK.
        client.set_nodelay(true)?;
        server.set_nodelay(true)?;
        let kept = [client.try_clone()?, server.try_clone()?];
        Ok((kept, client.try_clone()?, server.try_clone()?))
    })();
    let Ok((kept, from_client, from_server)) = ends else {
        return;
    };
    lock(&shared.live).extend(kept);
    // A cut between the check above and now must not miss this connection.
    if shared.cut.load(Ordering::SeqCst) {
        close_all(shared);
    }
    spawn_pump(from_client, server);
    spawn_pump(from_server, client);
}

/// Copies `from` to `to` until either ends, then closes both.
fn spawn_pump(mut from: TcpStream, mut to: TcpStream) {
    let pump = move || {
        // The copy ends with an error when the relay cuts the connection: nothing to report.
        if let Err(error) = io::copy(&mut from, &mut to) {
            tracing::debug!(%error, "a relayed connection was cut");
        }
        close(&from);
        close(&to);
    };
    // Without a thread the connection is dropped, which the peer retries.
    if let Err(error) = thread::Builder::new().name("demo-pump".into()).spawn(pump) {
        tracing::warn!(%error, "starting a relay pump; the connection is dropped");
    }
}

/// The relay's state stays consistent whatever a panicking thread did (a target, a list of
/// streams to close), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Closes both directions of a relayed connection; one its peer closed already is fine.
fn close(stream: &TcpStream) {
    if let Err(error) = stream.shutdown(Shutdown::Both) {
        tracing::debug!(%error, "closing a relayed connection");
    }
}
