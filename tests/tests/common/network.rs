//! Two cluster nodes replicating over TCP with mutual TLS through fault-injecting proxies
//! on 127.0.0.1 (no shared directory between them but the witness): their configuration,
//! starting them, and waiting for a condition (dumping both nodes' events on a timeout).

use super::nodes::healthy;
use super::proxy::Proxy;
use bluejet_engine::file::OsFileSystem;
use bluejet_replication::cluster::network::{peer_root, Network, NetworkFile};
use bluejet_replication::cluster::witness::{InitError, Witness};
use bluejet_replication::cluster::{Node, NodeConfig, Role};
use bluejet_replication::net::certs::make_cluster_certs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two proxies: clients reach `a` through `to[0]` and `b` through `to[1]`.
pub struct Net {
    pub to: [Proxy; 2],
}

impl Net {
    pub fn start(root: &Path) -> Self {
        make_cluster_certs(&root.join("certs"), &["a".into(), "b".into()], 30).unwrap();
        let nowhere = "127.0.0.1:9".parse().unwrap();
        Self {
            to: [Proxy::start(nowhere), Proxy::start(nowhere)],
        }
    }

    pub fn proxy(&self, node: &str) -> &Proxy {
        &self.to[usize::from(node == "b")]
    }
}

/// Fast timings, the peer over the network through `net`.
pub fn config(name: &str, peer: &str, root: &Path, net: &Net, certs: &Path) -> NodeConfig {
    let peer_instance = peer_root(peer);
    let mut config = NodeConfig::new(
        name,
        &root.join(name),
        peer,
        &peer_instance,
        &root.join("witness"),
    );
    let file = NetworkFile {
        listen: "127.0.0.1:0".into(),
        peer_address: net.proxy(peer).addr().to_string(),
        certs: certs.to_owned(),
    };
    let network = Network::from_file(&file, name, peer, &peer_instance).unwrap();
    config.peer_fs = network.peer.clone();
    config.network = Some(network);
    super::nodes::fast_timings(&mut config);
    config.options.log.generation_bytes = 128 << 10;
    config
}

pub fn init_witness(root: &Path, owner: &str) {
    std::fs::create_dir_all(root.join("witness")).unwrap();
    let witness = Witness::new(
        Arc::new(OsFileSystem),
        &root.join("witness"),
        Duration::ZERO,
    );
    match witness.init(owner, "test") {
        Ok(_) | Err(InitError::Exists(_)) => {}
        Err(error) => panic!("{error}"),
    }
}

/// Starts a node, its configuration adjusted by `adjust`, and points its proxy at its
/// server.
pub fn start_with(
    name: &str,
    peer: &str,
    root: &Path,
    net: &Net,
    adjust: impl FnOnce(&mut NodeConfig),
) -> Node {
    let mut config = config(name, peer, root, net, &root.join("certs"));
    adjust(&mut config);
    let node = Node::start(config).unwrap();
    net.proxy(name)
        .set_target(node.listen_addr().expect("serving"));
    node
}

/// Prints both nodes' event logs (on a failure).
pub fn dump_events(root: &Path) {
    for node in ["a", "b"] {
        let path = root.join(node).join("events.jsonl");
        let (events, _) =
            bluejet_replication::events::read_events(&OsFileSystem, &path).unwrap_or_default();
        for event in events {
            eprintln!("{node}: {} {:?} {}", event.kind, event.epoch, event.message);
        }
    }
}

pub fn wait_until(root: &Path, what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() > deadline {
            dump_events(root);
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `passive` has replayed every generation `active` closed (not only says Healthy:
/// a status can be Healthy from before the active's last generations were listed).
pub fn caught_up(active: &Node, passive: &Node) -> bool {
    let closed = active
        .with_database(|db| db.log().current_generation() - 1)
        .unwrap_or(u32::MAX);
    healthy(passive)
        && passive
            .status()
            .copy
            .and_then(|copy| copy.last_replayed)
            .is_some_and(|mark| mark.generation >= closed)
}

/// `a` active, `b` seeded over the network and Healthy.
pub fn pair(root: &Path, net: &Net) -> (Node, Node) {
    pair_with(root, net, |_| {})
}

/// [`pair`] with both configurations adjusted by `adjust`.
pub fn pair_with(root: &Path, net: &Net, adjust: impl Fn(&mut NodeConfig)) -> (Node, Node) {
    init_witness(root, "a");
    let a = start_with("a", "b", root, net, &adjust);
    wait_until(root, "a active", Duration::from_secs(10), || {
        a.role() == Role::Active
    });
    let b = start_with("b", "a", root, net, &adjust);
    wait_until(root, "b passive", Duration::from_secs(30), || {
        b.role() == Role::Passive
    });
    wait_until(root, "b healthy", Duration::from_secs(30), || healthy(&b));
    (a, b)
}

/// Whether `node` (a passive copy) receives the log in block mode.
pub fn in_block_mode(node: &Node) -> bool {
    node.status()
        .block_mode
        .is_some_and(|status| status.mode == "block")
}
