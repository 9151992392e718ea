//! A fault-injecting TCP proxy on 127.0.0.1 for tests of replication over TCP: it stands
//! between two nodes and can refuse, delay, throttle, stall, black-hole or cut their
//! connections.
//!
//! Blocking threads only: one accept thread and two pumps per connection. Every blocking
//! call has a short timeout so that a pump notices changed faults, a cut or the proxy's
//! drop within a few tens of milliseconds, and a drop cannot hang.
#![allow(dead_code)]

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a pump blocks in a read or write before it looks at the faults and the cut
/// flag again.
const POLL: Duration = Duration::from_millis(20);
/// The accept thread's pause between polls of its nonblocking listener.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// The longest single sleep of a delay or a throttle, so that a cut interrupts it soon.
const NAP_SLICE: Duration = Duration::from_millis(5);
/// Connecting to the target happens on the accept thread; the targets are on 127.0.0.1,
/// where a refusal is immediate, so this bound matters only for a target that never
/// answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The most a pump reads at once.
const CHUNK: usize = 16 << 10;

/// The faults the proxy injects. The default injects none.
#[derive(Clone, Default, Debug)]
pub struct Faults {
    /// Accept and close at once (a node down).
    pub refuse: bool,
    /// Added latency per chunk forwarded, each direction.
    pub delay: Duration,
    /// Bytes per second per direction per connection.
    pub bandwidth: Option<u64>,
    /// Stop forwarding (hold bytes) but keep connections open.
    pub stall: bool,
    /// Drop client->server bytes silently, keep the connection open.
    pub black_hole_to_server: bool,
    /// Drop server->client bytes silently, keep the connection open.
    pub black_hole_to_client: bool,
    /// Cut each connection after a random number of bytes in [lo, hi) have passed (both
    /// directions together; bytes a black hole drops do not pass). For a new connection
    /// they count from its start; for a live connection, from the moment this setting (or
    /// its seed) changes.
    pub cut_after: Option<(u64, u64)>,
    /// Seed of the RNG drawing the cut points (fixed seeds reproduce, given the same
    /// order of connections).
    pub seed: u64,
}

impl Faults {
    fn black_holes(&self, direction: Direction) -> bool {
        match direction {
            Direction::ToServer => self.black_hole_to_server,
            Direction::ToClient => self.black_hole_to_client,
        }
    }
}

/// A fault-injecting TCP proxy. Dropping it stops the accept thread and closes every
/// connection.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards each accepted connection to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy's listener");
        // Nonblocking, so that the accept thread can poll its stop flag.
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared::new(target));
        let accepting = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(&accepting, &listener))
            .expect("spawn the proxy's accept thread");
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The target of new connections (a move to another node); live ones stay.
    pub fn set_target(&self, target: SocketAddr) {
        *self.shared.target.lock() = target;
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Applies `faults` to live and new connections.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// Closes every live connection now: both peers see EOF or a reset.
    pub fn cut_all(&self) {
        for conn in self.shared.conns.lock().iter() {
            conn.cut();
        }
    }

    /// The live connections (until both of a connection's pumps have stopped).
    pub fn connections(&self) -> usize {
        self.shared.conns.lock().len()
    }

    /// Bytes forwarded client->server and server->client.
    pub fn bytes(&self) -> (u64, u64) {
        let counted = &self.shared.forwarded;
        (
            counted[0].load(Ordering::Relaxed),
            counted[1].load(Ordering::Relaxed),
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // No new connection after the accept thread's end, so this cuts them all.
        self.cut_all();
        let pumps = std::mem::take(&mut *self.shared.pumps.lock());
        for pump in pumps {
            let _ = pump.join();
        }
    }
}

/// Which way a pump forwards.
#[derive(Clone, Copy, Debug)]
enum Direction {
    ToServer,
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

/// The faults and the RNG of cut points, under one lock so that a change of faults and
/// the draws it causes are seen together.
struct Settings {
    faults: Faults,
    random: Pcg64,
}

/// What the proxy's threads share. Lock order: settings, then conns, then a connection's
/// budget.
struct Shared {
    target: Mutex<SocketAddr>,
    settings: Mutex<Settings>,
    conns: Mutex<Vec<Arc<Conn>>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
    forwarded: [AtomicU64; 2],
    stop: AtomicBool,
}

impl Shared {
    fn new(target: SocketAddr) -> Shared {
        Shared {
            target: Mutex::new(target),
            settings: Mutex::new(Settings {
                faults: Faults::default(),
                random: Pcg64::seed_from_u64(0),
            }),
            conns: Mutex::new(Vec::new()),
            pumps: Mutex::new(Vec::new()),
            forwarded: [AtomicU64::new(0), AtomicU64::new(0)],
            stop: AtomicBool::new(false),
        }
    }

    fn faults(&self) -> Faults {
        self.settings.lock().faults.clone()
    }

    fn set_faults(&self, faults: Faults) {
        let mut settings = self.settings.lock();
        let old = &settings.faults;
        let redraw = old.cut_after != faults.cut_after || old.seed != faults.seed;
        settings.faults = faults;
        if !redraw {
            // Toggling another fault must not restart the live connections' countdowns.
            return;
        }
        settings.random = Pcg64::seed_from_u64(settings.faults.seed);
        // Drawn in the order of acceptance, so that a fixed seed reproduces.
        for conn in self.conns.lock().iter() {
            let draw = draw_cut(&mut settings);
            conn.budget.lock().restart(draw);
        }
    }

    /// Registers a new connection, its cut point drawn in the order of acceptance.
    fn register(&self, client: TcpStream, server: TcpStream) -> Arc<Conn> {
        let mut settings = self.settings.lock();
        let mut budget = Budget::default();
        budget.restart(draw_cut(&mut settings));
        let conn = Arc::new(Conn {
            client,
            server,
            closed: AtomicBool::new(false),
            budget: Mutex::new(budget),
            pumps_left: AtomicUsize::new(2),
        });
        self.conns.lock().push(Arc::clone(&conn));
        conn
    }

    /// Called once by each of a connection's pumps as it stops; the last one closes the
    /// connection and forgets it.
    fn finish(&self, conn: &Arc<Conn>) {
        if conn.pumps_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            conn.cut();
            self.conns.lock().retain(|live| !Arc::ptr_eq(live, conn));
        }
    }

    fn count(&self, direction: Direction, bytes: usize) {
        self.forwarded[direction.index()].fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// The number of bytes after which a connection is cut, if the faults say so.
fn draw_cut(settings: &mut Settings) -> Option<u64> {
    let (lo, hi) = settings.faults.cut_after?;
    if hi <= lo {
        return Some(lo);
    }
    Some(settings.random.random_range(lo..hi))
}

/// The bytes a connection may still pass before it is cut.
#[derive(Default)]
struct Budget {
    passed: u64,
    cut_at: Option<u64>,
}

impl Budget {
    /// Counts the cut point (if any) from now.
    fn restart(&mut self, draw: Option<u64>) {
        self.cut_at = draw.map(|bytes| self.passed.saturating_add(bytes));
    }

    /// Takes up to `want` bytes; returns how many may pass and whether the cut is due
    /// after them.
    fn take(&mut self, want: usize) -> (usize, bool) {
        let Some(cut_at) = self.cut_at else {
            self.passed += want as u64;
            return (want, false);
        };
        let left = cut_at.saturating_sub(self.passed);
        let allowed = left.min(want as u64);
        self.passed += allowed;
        (allowed as usize, self.passed >= cut_at)
    }
}

/// One proxied connection.
struct Conn {
    client: TcpStream,
    server: TcpStream,
    closed: AtomicBool,
    budget: Mutex<Budget>,
    pumps_left: AtomicUsize,
}

impl Conn {
    /// The sockets a pump reads from and writes to.
    fn ends(&self, direction: Direction) -> (&TcpStream, &TcpStream) {
        match direction {
            Direction::ToServer => (&self.client, &self.server),
            Direction::ToClient => (&self.server, &self.client),
        }
    }

    /// Shuts both sockets down: both peers see EOF (or a reset), and both pumps stop.
    fn cut(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Sleeps for `duration`, in slices, so that a cut ends it early.
    fn nap(&self, duration: Duration) {
        let end = Instant::now() + duration;
        while !self.is_closed() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            thread::sleep(left.min(NAP_SLICE));
        }
    }

    /// Writes all of `bytes`, giving up once the connection is cut.
    fn write_all(&self, mut to: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.is_closed() {
                return Err(ErrorKind::ConnectionAborted.into());
            }
            match to.write(bytes) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(written) => bytes = &bytes[written..],
                Err(error) if is_transient(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

/// A timeout or an interruption: try again.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => admit(shared, client),
            // Nothing to accept (or a transient failure such as too many open files).
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

/// Connects an accepted client to the target and starts its pumps, or closes it.
fn admit(shared: &Arc<Shared>, client: TcpStream) {
    if shared.faults().refuse {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let target = *shared.target.lock();
    let server = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(server) => server,
        Err(_) => {
            // The target is down: so is the proxy, for this client.
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    if configure(&client)
        .and_then(|()| configure(&server))
        .is_err()
    {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return;
    }
    let conn = shared.register(client, server);
    let mut pumps = shared.pumps.lock();
    // Forget the pumps of closed connections, so that a long-lived proxy does not grow.
    pumps.retain(|pump| !pump.is_finished());
    for direction in [Direction::ToServer, Direction::ToClient] {
        if let Some(pump) = spawn_pump(shared, &conn, direction) {
            pumps.push(pump);
        }
    }
}

/// Blocking with short timeouts (the pumps poll their faults and the cut flag between
/// them), and no Nagle delay on top of the injected ones.
fn configure(stream: &TcpStream) -> io::Result<()> {
    // An accepted socket may inherit the listener's nonblocking mode on some platforms.
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(POLL))
}

fn spawn_pump(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    direction: Direction,
) -> Option<JoinHandle<()>> {
    let mut pump = Pump {
        shared: Arc::clone(shared),
        conn: Arc::clone(conn),
        direction,
        buffer: vec![0; CHUNK],
        held: 0..0,
    };
    let spawned = thread::Builder::new()
        .name(format!("proxy-{direction:?}"))
        .spawn(move || pump.run());
    match spawned {
        Ok(handle) => Some(handle),
        Err(_) => {
            // No thread, no pump: the connection cannot work, and this pump is done.
            conn.cut();
            shared.finish(conn);
            None
        }
    }
}

/// What a pump's read got.
enum Got {
    Data(usize),
    Idle,
    Eof,
    Failed,
}

/// Forwards one direction of one connection.
struct Pump {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    direction: Direction,
    buffer: Vec<u8>,
    /// The bytes read but not yet forwarded (held by a stall, a delay or a throttle).
    held: Range<usize>,
}

impl Pump {
    fn run(&mut self) {
        self.forward();
        self.shared.finish(&self.conn);
    }

    /// Forwards until EOF, an error or a cut; never panics on socket errors.
    fn forward(&mut self) {
        while !self.conn.is_closed() {
            let faults = self.shared.faults();
            if faults.stall {
                self.conn.nap(POLL);
            } else if self.held.is_empty() {
                if !self.fill(&faults) {
                    return;
                }
            } else if faults.black_holes(self.direction) {
                self.held = 0..0;
            } else if !self.send_piece(&faults) {
                return;
            }
        }
    }

    /// Reads the next chunk and delays it; false once this direction is done.
    fn fill(&mut self, faults: &Faults) -> bool {
        let (from, to) = self.conn.ends(self.direction);
        match read_chunk(from, &mut self.buffer) {
            Got::Data(read) => {
                self.held = 0..read;
                self.conn.nap(faults.delay);
                true
            }
            Got::Idle => true,
            Got::Eof => {
                // A half-close: pass it on, and let the other direction go on.
                let _ = to.shutdown(Shutdown::Write);
                false
            }
            Got::Failed => {
                self.conn.cut();
                false
            }
        }
    }

    /// Forwards a piece of the held bytes, as the bandwidth and the cut point allow;
    /// false once the connection is cut.
    fn send_piece(&mut self, faults: &Faults) -> bool {
        let mut piece = self.held.len();
        if let Some(rate) = faults.bandwidth {
            piece = throttled_piece(piece, rate);
            // Before the write, so that the bytes arrive no sooner than the rate allows.
            self.conn.nap(transmit_time(piece, rate));
        }
        let (allowed, cut_due) = self.conn.budget.lock().take(piece);
        let start = self.held.start;
        let (_, to) = self.conn.ends(self.direction);
        let sent = self
            .conn
            .write_all(to, &self.buffer[start..start + allowed]);
        if sent.is_err() {
            self.conn.cut();
            return false;
        }
        self.shared.count(self.direction, allowed);
        self.held.start += allowed;
        if cut_due {
            self.conn.cut();
            return false;
        }
        true
    }
}

fn read_chunk(mut from: &TcpStream, buffer: &mut [u8]) -> Got {
    match from.read(buffer) {
        Ok(0) => Got::Eof,
        Ok(read) => Got::Data(read),
        Err(error) if is_transient(&error) => Got::Idle,
        Err(_) => Got::Failed,
    }
}

/// At most 1/20 s worth of bytes at `rate` (at least one), so that a slow rate still
/// forwards smoothly and a pump looks at its faults often.
fn throttled_piece(held: usize, rate: u64) -> usize {
    let slice = usize::try_from((rate / 20).max(1)).unwrap_or(usize::MAX);
    held.min(slice)
}

/// How long `bytes` take at `rate` bytes per second (a rate of 0 counts as 1).
fn transmit_time(bytes: usize, rate: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64)
}
