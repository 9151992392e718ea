//! Replication over TCP (mutual TLS on 127.0.0.1), two in-process nodes and a witness on one
//! disk, every figure from one run:
//!
//! 1. block mode's lag: from a commit returning on the active to the passive having synced
//!    it (its acknowledgement seen on the active), p50 and p99, under a steady load;
//! 2. eight concurrent committers with synchronous commit `flushed` against `off`;
//! 3. RPO: acknowledged commits missing after a kill of the active under load, in
//!    asynchronous block mode and with `flushed` (a few rounds each);
//! 4. file mode over TCP against the shared directory: how long a passive takes to copy and
//!    replay the same generations.
//!
//! `cargo bench -p bluejet-benches --bench network` (`-- committers`: only the second).

use bluejet_benches::replication::BenchResult;
use bluejet_benches::scratch::scratch_root;
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::LogPosition;
use bluejet_replication::cluster::network::{peer_root, Network, NetworkFile};
use bluejet_replication::cluster::sync_commit::{SyncLevel, SyncSettings};
use bluejet_replication::cluster::{Node, NodeConfig, Role};
use bluejet_replication::net::certs::make_cluster_certs;
use bluejet_replication::CopyState;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn main() {
    if !std::env::args().any(|argument| argument == "--bench") {
        println!("network: skipped outside `cargo bench -p bluejet-benches --bench network`");
        return;
    }
    if let Err(error) = run() {
        eprintln!("network benchmark failed: {error}");
        std::process::exit(1);
    }
}

/// A free port on 127.0.0.1 (bound and released: a benchmark may take the small risk).
fn free_port() -> BenchResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Setup {
    tcp: Option<[u16; 2]>,
    level: SyncLevel,
}

fn config(name: &str, peer: &str, root: &Path, setup: &Setup) -> BenchResult<NodeConfig> {
    let peer_instance = match setup.tcp {
        Some(_) => peer_root(peer),
        None => root.join(peer),
    };
    let witness = root.join("witness");
    let mut config = NodeConfig::new(name, &root.join(name), peer, &peer_instance, &witness);
    if let Some(ports) = setup.tcp {
        let (mine, theirs) = if name == "a" {
            (ports[0], ports[1])
        } else {
            (ports[1], ports[0])
        };
        let file = NetworkFile {
            listen: format!("127.0.0.1:{mine}"),
            peer_address: format!("127.0.0.1:{theirs}"),
            certs: root.join("certs"),
        };
        let network = Network::from_file(&file, name, peer, &peer_instance)?;
        config.peer_fs = network.peer.clone();
        config.network = Some(network);
    }
    config.synchronous = SyncSettings {
        level: setup.level,
        ..SyncSettings::default()
    };
    config.lease = Duration::from_millis(800);
    config.safety = Duration::from_millis(200);
    config.skew = Duration::from_millis(100);
    config.heartbeat_interval = Duration::from_millis(50);
    config.failover_after = Duration::from_millis(600);
    config.replica.poll_interval = Duration::from_millis(10);
    config.replica.status_interval = Duration::from_millis(50);
    config.replica.thresholds.settle = Duration::ZERO;
    Ok(config)
}

fn wait(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) -> BenchResult<()> {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn caught_up(active: &Node, passive: &Node) -> bool {
    let closed = active
        .with_database(|db| db.log().current_generation() - 1)
        .unwrap_or(u32::MAX);
    passive.status().copy.is_some_and(|copy| {
        copy.state == CopyState::Healthy
            && copy
                .last_replayed
                .is_some_and(|mark| mark.generation >= closed)
    })
}

/// `a` active and `b` a healthy passive.
fn pair(root: &Path, setup: &Setup) -> BenchResult<(Node, Node)> {
    std::fs::create_dir_all(root.join("witness"))?;
    if setup.tcp.is_some() {
        make_cluster_certs(&root.join("certs"), &["a".into(), "b".into()], 30)?;
    }
    let initialised = bluejet_replication::cluster::witness::Witness::new(
        std::sync::Arc::new(OsFileSystem),
        &root.join("witness"),
        Duration::ZERO,
    )
    .init("a", "bench");
    if let Err(error) = initialised {
        eprintln!("initialising the witness: {error}");
    }
    let a = Node::start(config("a", "b", root, setup)?)?;
    wait("a active", Duration::from_secs(30), || {
        a.role() == Role::Active
    })?;
    let b = Node::start(config("b", "a", root, setup)?)?;
    wait("b healthy", Duration::from_secs(60), || caught_up(&a, &b))?;
    Ok((a, b))
}

fn commit(node: &Node, key: &str) -> Option<LogPosition> {
    node.with_database(|db| {
        let mut write = db.begin_write().ok()?;
        write.create_table("messages").ok()?;
        write
            .insert("messages", key.as_bytes(), &[b'm'; 300])
            .ok()?;
        write.commit().ok().map(|committed| committed.end)
    })
    .flatten()
}

/// Eight committers for `duration` (each pausing `pause` between commits); the commits
/// acknowledged, with their keys.
fn committers(node: &Node, duration: Duration, pause: Duration, stop: &AtomicBool) -> Vec<String> {
    let deadline = Instant::now() + duration;
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..8)
            .map(|writer| {
                scope.spawn(move || {
                    let mut acknowledged = Vec::new();
                    for i in 0.. {
                        if Instant::now() > deadline || stop.load(Ordering::Acquire) {
                            break;
                        }
                        let key = format!("w{writer}-{i:07}");
                        if commit(node, &key).is_some() {
                            acknowledged.push(key);
                        }
                        std::thread::sleep(pause);
                    }
                    acknowledged
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|writer| writer.join().unwrap_or_default())
            .collect()
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // A rounded fraction of the last index: in 0..len, and `as` from a float saturates.
    #[allow(clippy::cast_possible_truncation)]
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// 1: commits from one writer every 2 ms while seven others load the log; the time from
/// each commit returning to the passive's acknowledgement covering it.
fn lag(root: &Path) -> BenchResult<(Duration, Duration, usize)> {
    let setup = Setup {
        tcp: Some([free_port()?, free_port()?]),
        level: SyncLevel::Off,
    };
    let (a, b) = pair(root, &setup)?;
    wait("block mode", Duration::from_secs(30), || {
        b.status()
            .block_mode
            .is_some_and(|mode| mode.mode == "block")
    })?;
    let stop = AtomicBool::new(false);
    let mut lags = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| committers(&a, Duration::from_secs(3), Duration::from_millis(2), &stop));
        for i in 0..1000 {
            let Some(end) = commit(&a, &format!("lag-{i:05}")) else {
                continue;
            };
            let committed = Instant::now();
            while a.peer_flushed().is_none_or(|flushed| flushed < end) {
                if committed.elapsed() > Duration::from_secs(5) {
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            lags.push(committed.elapsed());
            std::thread::sleep(Duration::from_millis(2));
        }
        stop.store(true, Ordering::Release);
    });
    lags.sort();
    b.stop();
    a.stop();
    Ok((percentile(&lags, 0.5), percentile(&lags, 0.99), lags.len()))
}

/// 2: commits per second of eight committers, no pause, for `level`.
fn throughput(root: &Path, level: SyncLevel) -> BenchResult<f64> {
    let setup = Setup {
        tcp: Some([free_port()?, free_port()?]),
        level,
    };
    let (a, b) = pair(root, &setup)?;
    if level != SyncLevel::Off {
        wait("synchronous", Duration::from_secs(30), || {
            a.status()
                .synchronous
                .is_some_and(|sync| sync.state == "synchronous")
        })?;
    }
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let done = committers(&a, Duration::from_secs(3), Duration::ZERO, &stop);
    let rate = done.len() as f64 / started.elapsed().as_secs_f64();
    b.stop();
    a.stop();
    Ok(rate)
}

/// 3: acknowledged commits missing after a kill under a steady load; with the time from the
/// first missing one to the kill.
fn rpo(root: &Path, level: SyncLevel) -> BenchResult<(usize, usize, Duration)> {
    let setup = Setup {
        tcp: Some([free_port()?, free_port()?]),
        level,
    };
    let (a, b) = pair(root, &setup)?;
    wait("block mode", Duration::from_secs(30), || {
        b.status()
            .block_mode
            .is_some_and(|mode| mode.mode == "block")
    })?;
    let stop = AtomicBool::new(false);
    let acknowledged = std::thread::scope(|scope| {
        let writing = scope
            .spawn(|| committers(&a, Duration::from_secs(60), Duration::from_millis(2), &stop));
        std::thread::sleep(Duration::from_millis(1500));
        a.crash();
        stop.store(true, Ordering::Release);
        writing.join().unwrap_or_default()
    });
    drop(a);
    wait("b active", Duration::from_secs(30), || {
        b.role() == Role::Active
    })?;
    let present: std::collections::HashSet<Vec<u8>> = b
        .with_database(|db| -> BenchResult<_> {
            let read = db.begin_read()?;
            let table = read.open_table("messages")?;
            let mut keys = std::collections::HashSet::new();
            for entry in table.range(..)? {
                keys.insert(entry?.0);
            }
            Ok(keys)
        })
        .ok_or("b is not active")??;
    let missing = acknowledged
        .iter()
        .filter(|key| !present.contains(key.as_bytes()))
        .count();
    // The writers commit at a steady rate: the missing commits span this long before the
    // kill.
    let rate = acknowledged.len() as f64 / 1.5;
    let span = Duration::from_secs_f64(missing as f64 / rate.max(1.0));
    b.stop();
    Ok((acknowledged.len(), missing, span))
}

/// 4: how long the passive takes to catch up on the same generations, over TCP or a share.
fn catch_up(root: &Path, tcp: bool) -> BenchResult<Duration> {
    let setup = Setup {
        tcp: if tcp {
            Some([free_port()?, free_port()?])
        } else {
            None
        },
        level: SyncLevel::Off,
    };
    let (a, b) = pair(root, &setup)?;
    b.stop();
    // 24 generations of 1 MiB written while the passive is down.
    a.with_database(|db| -> BenchResult<()> {
        let value = vec![b'v'; 4000];
        for chunk in 0..24 {
            let mut write = db.begin_write()?;
            write.create_table("bulk")?;
            for i in 0..250 {
                write.insert("bulk", format!("k{chunk:03}-{i:04}").as_bytes(), &value)?;
            }
            write.commit()?;
            db.log().roll()?;
        }
        Ok(())
    })
    .ok_or("a is not active")??;
    let started = Instant::now();
    let b = Node::start(config("b", "a", root, &setup)?)?;
    wait("b caught up", Duration::from_secs(120), || {
        caught_up(&a, &b)
    })?;
    let took = started.elapsed();
    b.stop();
    a.stop();
    Ok(took)
}

/// 2, in paired rounds (the disk is noisy: each round measures both, back to back), with
/// the median of the rounds' ratios.
fn paired_throughput(fresh: &impl Fn() -> std::io::Result<tempfile::TempDir>) -> BenchResult<()> {
    let mut ratios = Vec::new();
    for round in 0..PAIRED_ROUNDS {
        let off = throughput(fresh()?.path(), SyncLevel::Off)?;
        let flushed = throughput(fresh()?.path(), SyncLevel::Flushed)?;
        println!(
            "8 committers, round {round}: synchronous flushed {flushed:.0}/s, off {off:.0}/s: \
             {:.2}x",
            flushed / off
        );
        ratios.push(flushed / off);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "8 committers: synchronous flushed against off, median of {PAIRED_ROUNDS} paired rounds: \
         {:.2}x (goal >= 0.5x)",
        ratios[ratios.len() / 2]
    );
    Ok(())
}

/// Paired rounds of the committers' figure.
const PAIRED_ROUNDS: usize = 3;

fn run() -> BenchResult<()> {
    let scratch = scratch_root();
    let fresh = || tempfile::tempdir_in(&scratch);
    // `cargo bench --bench network -- committers`: only the committers' figure.
    if std::env::args().any(|argument| argument == "committers") {
        return paired_throughput(&fresh);
    }
    let (p50, p99, samples) = lag(fresh()?.path())?;
    println!(
        "block-mode lag, commit on the active to synced on the passive ({samples} samples under \
         8 committers at a steady rate): p50 {:.2} ms, p99 {:.2} ms (goal p99 <= 10 ms)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    paired_throughput(&fresh)?;
    for (name, level) in [
        ("asynchronous block mode", SyncLevel::Off),
        ("flushed", SyncLevel::Flushed),
    ] {
        for round in 0..3 {
            let (acknowledged, missing, span) = rpo(fresh()?.path(), level)?;
            println!(
                "RPO, {name}, round {round}: {missing} of {acknowledged} acknowledged commits \
                 missing after the kill (about {:.0} ms of commits)",
                span.as_secs_f64() * 1e3
            );
        }
    }
    let share = catch_up(fresh()?.path(), false)?;
    let tcp = catch_up(fresh()?.path(), true)?;
    println!(
        "file mode, a passive catching up on 24 generations of 1 MiB: over TCP {:.2} s, over \
         the shared directory {:.2} s: {:.2}x the share's speed (goal >= 0.9x)",
        tcp.as_secs_f64(),
        share.as_secs_f64(),
        share.as_secs_f64() / tcp.as_secs_f64()
    );
    Ok(())
}
