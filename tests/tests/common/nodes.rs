//! Two cluster nodes on one machine sharing a directory tree (file mode), with fast
//! timings: their configuration, and waiting for a condition or a Healthy copy.

use bluejet_engine::file::OsFileSystem;
use bluejet_replication::cluster::witness::{InitError, Witness};
use bluejet_replication::cluster::{MountDial, Node, NodeConfig};
use bluejet_replication::CopyState;
use std::path::Path;
use std::time::{Duration, Instant};

/// Node `name` under `root`, its peer `peer` beside it and the witness in `root/witness`
/// (initialized with `name` as its owner when `bootstrap`); fast leases, heartbeats and
/// polls, 1 MiB generations and idle rolls after 300 ms.
pub fn config(name: &str, peer: &str, root: &Path, bootstrap: bool) -> NodeConfig {
    let mut config = NodeConfig::new(
        name,
        &root.join(name),
        peer,
        &root.join(peer),
        &root.join("witness"),
    );
    std::fs::create_dir_all(root.join("witness")).unwrap();
    if bootstrap {
        let witness = Witness::new(
            std::sync::Arc::new(OsFileSystem),
            &root.join("witness"),
            Duration::ZERO,
        );
        match witness.init(name, "test") {
            Ok(_) | Err(InitError::Exists(_)) => {}
            Err(error) => panic!("{error}"),
        }
    }
    fast_timings(&mut config);
    config.dial = MountDial::BestAvailability(12);
    config.options.log.generation_bytes = 1 << 20;
    config
}

/// The timings every cluster test runs with: 800 ms leases, 50 ms heartbeats, failover
/// after 600 ms, idle rolls after 300 ms, 10 ms polls, no settling, retries after 50 ms.
pub fn fast_timings(config: &mut NodeConfig) {
    config.lease = Duration::from_millis(800);
    config.safety = Duration::from_millis(200);
    config.skew = Duration::from_millis(100);
    config.heartbeat_interval = Duration::from_millis(50);
    config.failover_after = Duration::from_millis(600);
    config.options.log.idle_roll_interval = Some(Duration::from_millis(300));
    config.replica.poll_interval = Duration::from_millis(10);
    config.replica.status_interval = Duration::from_millis(50);
    config.replica.thresholds.settle = Duration::ZERO;
    config.replica.replay.retry_after = Duration::from_millis(50);
}

/// Polls `condition` every 20 ms; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `node` is a Healthy passive copy with nothing queued.
pub fn healthy(node: &Node) -> bool {
    node.status().copy.is_some_and(|copy| {
        copy.state == CopyState::Healthy && copy.copy_queue == 0 && copy.replay_queue == 0
    })
}

/// Whether the passive `passive` is Healthy and has replayed generation `closed`.
pub fn replayed(passive: &Node, closed: u32) -> bool {
    let copy = passive.status().copy;
    copy.and_then(|copy| copy.last_replayed)
        .is_some_and(|mark| mark.generation >= closed)
        && healthy(passive)
}
