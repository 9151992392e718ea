//! The demo's cluster: two in-process nodes, `a` and `b`, each with an instance directory,
//! a witness directory and the cluster's certificates, all in the demo's directory. The
//! nodes replicate over TCP with mutual TLS, each peer reaching the other's server through
//! a [`Relay`] the demo can cut (the network failing), and commit synchronously
//! (`flushed`): a commit returns once the passive has synced it, and when the passive does
//! not answer within [`SYNC_TIMEOUT`] the active degrades to asynchronous commit, which is
//! how the demo makes a failover lossy.

use super::relay::Relay;
use crate::exit::ToolError;
use bluejet_engine::file::{FileSystem, OsFileSystem};
use bluejet_replication::cluster::network::{peer_root, Network, NetworkFile};
use bluejet_replication::cluster::sync_commit::{SyncLevel, SyncSettings};
use bluejet_replication::cluster::witness::{Witness, WitnessRecord};
use bluejet_replication::cluster::{MountDial, Node, NodeConfig, Role};
use bluejet_replication::net::certs::make_cluster_certs;
use bluejet_replication::private_files::create_directory_durably;
use bluejet_replication::{CopyState, CopyStatus};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The nodes' names, which are also their instance directories in the demo's directory.
pub const NODES: [&str; 2] = ["a", "b"];
/// The witness directory in the demo's directory.
pub const WITNESS: &str = "witness";
/// The certificates' directory in the demo's directory (`bluejet cluster certs`).
pub const CERTS: &str = "certs";
/// The mount dial: an automatic failover may lose this many generations (the transport's
/// dumpster delivers their messages again).
pub const DIAL: MountDial = MountDial::BestAvailability(12);
/// How long a commit waits for the passive before the active degrades to asynchronous.
pub const SYNC_TIMEOUT: Duration = Duration::from_millis(400);

/// A node's configuration in the demo: timings fast enough for a demo of seconds, the peer
/// reached through `relay`.
fn config(root: &Path, index: usize, relay: &Relay) -> Result<NodeConfig, ToolError> {
    let (name, peer) = (NODES[index], NODES[1 - index]);
    let mut config = NodeConfig::new(
        name,
        &root.join(name),
        peer,
        &peer_root(peer),
        &root.join(WITNESS),
    );
    let file = NetworkFile {
        listen: "127.0.0.1:0".into(),
        peer_address: relay.addr().to_string(),
        certs: root.join(CERTS),
    };
    let network = Network::from_file(&file, name, peer, &peer_root(peer))
        .map_err(|error| ToolError::Failure(format!("node {name}'s network: {error}")))?;
    config.peer_fs = Arc::clone(&network.peer) as Arc<dyn FileSystem>;
    config.network = Some(network);
    config.synchronous = SyncSettings {
        level: SyncLevel::Flushed,
        timeout: SYNC_TIMEOUT,
        strict: false,
    };
    config.dial = DIAL;
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
    Ok(config)
}

/// The two nodes, as they come and go.
pub struct Cluster {
    root: PathBuf,
    configs: [NodeConfig; 2],
    /// `relays[i]` stands in front of node `i`'s server.
    relays: [Relay; 2],
    slots: [RwLock<Option<Arc<Node>>>; 2],
}

impl Cluster {
    /// The cluster in `root` (nothing started yet).
    pub fn new(root: &Path) -> Result<Self, ToolError> {
        create_directory_durably(&OsFileSystem, &root.join(WITNESS))?;
        // The one-time bootstrap (`bluejet cluster init`): a is the first owner.
        let witness = Witness::new(Arc::new(OsFileSystem), &root.join(WITNESS), Duration::ZERO);
        witness
            .init(NODES[0], "demo: a new cluster")
            .map_err(|error| ToolError::Failure(error.to_string()))?;
        let names = NODES.map(str::to_owned);
        make_cluster_certs(&root.join(CERTS), &names, 1)
            .map_err(|error| ToolError::Failure(format!("the cluster's certificates: {error}")))?;
        let relays = [Relay::start()?, Relay::start()?];
        Ok(Self {
            root: root.to_owned(),
            // Each node reaches its peer through the relay in front of the peer.
            configs: [config(root, 0, &relays[1])?, config(root, 1, &relays[0])?],
            relays,
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

    /// The witness's record now (the owner, its lease, its synchronous commit claim).
    pub fn witness_record(&self) -> Result<WitnessRecord, ToolError> {
        let witness = Witness::new(
            Arc::new(OsFileSystem),
            &self.root.join(WITNESS),
            Duration::ZERO,
        );
        Ok(witness.read_initialized()?)
    }

    /// Cuts the network between the nodes (every connection, both ways) or restores it.
    pub fn cut_network(&self, cut: bool) {
        for relay in &self.relays {
            relay.set_cut(cut);
        }
    }

    /// Starts (or restarts) node `index`; its peer reaches it through its relay.
    pub fn start(&self, index: usize) -> Result<(), ToolError> {
        let node = Node::start(self.configs[index].clone())?;
        if let Some(listening) = node.listen_addr() {
            self.relays[index].set_target(listening);
        }
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

/// Set by SIGINT or SIGTERM: the demo stops at its next wait, stops its nodes and removes
/// its temporary directory (found by an adversarial round: an interrupted demo left its
/// cluster's files behind).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes SIGINT and SIGTERM stop the demo at its next wait.
pub fn stop_on_signals() -> Result<(), ToolError> {
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Release))
        .map_err(|error| ToolError::Failure(format!("installing the signal handler: {error}")))
}

/// Waits until `condition` holds; a failure naming `what` after `timeout`, or at once once
/// the demo is interrupted.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<Duration, ToolError> {
    let started = Instant::now();
    while !condition() {
        if INTERRUPTED.load(Ordering::Acquire) {
            return Err(ToolError::Failure(format!(
                "interrupted while waiting for {what}"
            )));
        }
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
