//! The demo's cluster: two in-process nodes, `a` and `b`, each with an instance directory,
//! and a witness directory, all in the demo's directory. Each node reaches its peer through
//! a [`Link`] whose replication network can be cut (heartbeats still pass), which is how
//! the demo makes a failover lossy: the passive stops copying while the active goes on.

use crate::exit::ToolError;
use bluejet_engine::file::{
    FileHandle, FileSystem, Holder, LockAttempt, LockProbe, OpenMode, OsFileSystem,
};
use bluejet_replication::cluster::{MountDial, Node, NodeConfig, Role};
use bluejet_replication::private_files::create_directory_durably;
use bluejet_replication::{CopyState, CopyStatus};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The nodes' names, which are also their instance directories in the demo's directory.
pub const NODES: [&str; 2] = ["a", "b"];
/// The witness directory in the demo's directory.
pub const WITNESS: &str = "witness";
/// The mount dial: an automatic failover may lose this many generations (the transport's
/// dumpster delivers their messages again).
pub const DIAL: MountDial = MountDial::BestAvailability(12);

/// A node's view of its peer's instance directory over two networks: heartbeats always
/// pass; the replication network (everything else: the log, the copy status) can be cut.
pub struct Link {
    cut: AtomicBool,
}

impl Link {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            cut: AtomicBool::new(false),
        })
    }

    /// Cuts or restores the replication network.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    fn check(&self, path: &Path) -> io::Result<()> {
        let heartbeat = path
            .file_name()
            .is_some_and(|name| name == "heartbeat.json");
        if self.cut.load(Ordering::SeqCst) && !heartbeat {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the replication network is cut",
            ));
        }
        Ok(())
    }
}

impl FileSystem for Link {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        self.check(path)?;
        OsFileSystem.open(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(from)?;
        OsFileSystem.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check(path)?;
        OsFileSystem.remove(path)
    }
    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        self.check(directory)?;
        OsFileSystem.list(directory)
    }
    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        self.check(directory)?;
        OsFileSystem.sync_directory(directory)
    }
    fn create_directory(&self, directory: &Path) -> io::Result<()> {
        self.check(directory)?;
        OsFileSystem.create_directory(directory)
    }
    fn exists(&self, path: &Path) -> bool {
        self.check(path).is_ok() && OsFileSystem.exists(path)
    }
    fn lock_exclusive(&self, path: &Path, holder: &Holder) -> io::Result<LockAttempt> {
        self.check(path)?;
        OsFileSystem.lock_exclusive(path, holder)
    }
    fn probe_lock(&self, path: &Path) -> io::Result<LockProbe> {
        self.check(path)?;
        OsFileSystem.probe_lock(path)
    }
}

/// A node's configuration in the demo: timings fast enough for a demo of seconds.
fn config(root: &Path, index: usize, link: &Arc<Link>) -> NodeConfig {
    let (name, peer) = (NODES[index], NODES[1 - index]);
    let mut config = NodeConfig::new(
        name,
        &root.join(name),
        peer,
        &root.join(peer),
        &root.join(WITNESS),
    );
    config.dial = DIAL;
    config.peer_fs = Arc::clone(link) as Arc<dyn FileSystem>;
    config.lease = Duration::from_millis(1500);
    config.safety = Duration::from_millis(300);
    config.skew = Duration::from_millis(200);
    config.heartbeat_interval = Duration::from_millis(50);
    config.failover_after = Duration::from_millis(800);
    config.options.log.idle_roll_interval = Some(Duration::from_millis(300));
    config.replica.ship.compress = true;
    config.replica.poll_interval = Duration::from_millis(10);
    config.replica.status_interval = Duration::from_millis(50);
    config.replica.thresholds.settle = Duration::ZERO;
    config.replica.replay.retry_after = Duration::from_millis(50);
    config
}

/// The two nodes, as they come and go.
pub struct Cluster {
    root: PathBuf,
    configs: [NodeConfig; 2],
    links: [Arc<Link>; 2],
    slots: [RwLock<Option<Arc<Node>>>; 2],
}

impl Cluster {
    /// The cluster in `root` (nothing started yet).
    pub fn new(root: &Path) -> Result<Self, ToolError> {
        create_directory_durably(&OsFileSystem, &root.join(WITNESS))?;
        // The one-time bootstrap (`bluejet cluster init`): a is the first owner.
        let witness = bluejet_replication::cluster::witness::Witness::new(
            Arc::new(OsFileSystem),
            &root.join(WITNESS),
            Duration::ZERO,
        );
        witness
            .init(NODES[0], "demo: a new cluster")
            .map_err(|error| ToolError::Failure(error.to_string()))?;
        let links = [Link::new(), Link::new()];
        Ok(Self {
            root: root.to_owned(),
            configs: [config(root, 0, &links[0]), config(root, 1, &links[1])],
            links,
            slots: [RwLock::new(None), RwLock::new(None)],
        })
    }

    /// A node's instance directory.
    pub fn instance(&self, index: usize) -> PathBuf {
        self.root.join(NODES[index])
    }

    /// A node's configuration.
    pub fn config(&self, index: usize) -> &NodeConfig {
        &self.configs[index]
    }

    /// The link from node `index` to its peer.
    pub fn link(&self, index: usize) -> &Link {
        &self.links[index]
    }

    /// Starts (or restarts) node `index`.
    pub fn start(&self, index: usize) -> Result<(), ToolError> {
        let node = Node::start(self.configs[index].clone())?;
        *self.slots[index].write().expect("slot") = Some(Arc::new(node));
        Ok(())
    }

    /// Node `index`, if running.
    pub fn node(&self, index: usize) -> Option<Arc<Node>> {
        self.slots[index].read().expect("slot").clone()
    }

    /// The index of the node that is active and admitting commits, if one is.
    pub fn serving(&self) -> Option<usize> {
        (0..2).find(|&index| {
            self.node(index)
                .is_some_and(|node| node.role() == Role::Active && node.status().serving)
        })
    }

    /// Node `index`'s copy status, when it is a passive copy.
    pub fn copy(&self, index: usize) -> Option<CopyStatus> {
        self.node(index).and_then(|node| node.status().copy)
    }

    /// Whether node `index` is a Healthy passive copy with empty queues.
    pub fn healthy(&self, index: usize) -> bool {
        self.copy(index).is_some_and(|copy| {
            copy.state == CopyState::Healthy && copy.copy_queue == 0 && copy.replay_queue == 0
        })
    }

    /// Takes node `index` out of its slot, waiting until no one else holds it.
    fn take(&self, index: usize) -> Option<Node> {
        let mut node = self.slots[index].write().expect("slot").take()?;
        loop {
            match Arc::try_unwrap(node) {
                Ok(node) => return Some(node),
                Err(shared) => node = shared,
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Kills node `index` as a crash would.
    pub fn kill(&self, index: usize) {
        if let Some(node) = self.take(index) {
            node.kill();
        }
    }

    /// Stops node `index` cleanly.
    pub fn stop(&self, index: usize) {
        if let Some(node) = self.take(index) {
            node.stop();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..2 {
            self.stop(index);
        }
    }
}

/// Waits until `condition` holds; a failure naming `what` after `timeout`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<Duration, ToolError> {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() > timeout {
            return Err(ToolError::Failure(format!(
                "timed out after {:.0} s waiting for {what}",
                timeout.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(started.elapsed())
}
