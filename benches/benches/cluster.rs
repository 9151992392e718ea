//! Cluster figures, measured with two in-process nodes and a witness on one disk:
//!
//! 1. failover time: from the active's death to the first commit accepted on the new
//!    active (default timings: lease 3 s, failover after 2 s of silence; and fast timings);
//! 2. switchover pause: how long commits are held by a planned move;
//! 3. resynchronisation of the old active against a full reseed of the same database.
//!
//! `cargo bench -p bluejet-benches --bench cluster`; `BLUEJET_BENCH_MESSAGES` sets the
//! database size for 3 (default 50,000 messages of 1 KiB).

use bluejet_benches::replication::BenchResult;
use bluejet_benches::scratch::scratch_root;
use bluejet_engine::file::OsFileSystem;
use bluejet_replication::cluster::requests::request_move;
use bluejet_replication::cluster::{Node, NodeConfig, Role};
use bluejet_replication::CopyState;
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    if !std::env::args().any(|argument| argument == "--bench") {
        println!("cluster: skipped outside `cargo bench -p bluejet-benches --bench cluster`");
        return;
    }
    if let Err(error) = run() {
        eprintln!("cluster benchmark failed: {error}");
        std::process::exit(1);
    }
}

fn config(name: &str, peer: &str, root: &Path, bootstrap: bool, fast: bool) -> NodeConfig {
    let mut config = NodeConfig::new(
        name,
        &root.join(name),
        peer,
        &root.join(peer),
        &root.join("witness"),
    );
    if bootstrap {
        // `bluejet cluster init`, once: a restart finds the record there.
        std::fs::create_dir_all(root.join("witness")).expect("creating the witness directory");
        let initialised = bluejet_replication::cluster::witness::Witness::new(
            std::sync::Arc::new(OsFileSystem),
            &root.join("witness"),
            Duration::ZERO,
        )
        .init(name, "bench");
        if let Err(error) = initialised {
            eprintln!("initialising the witness: {error}");
        }
    }
    config.replica.thresholds.settle = Duration::ZERO;
    if fast {
        config.lease = Duration::from_millis(800);
        config.safety = Duration::from_millis(200);
        config.skew = Duration::from_millis(100);
        config.heartbeat_interval = Duration::from_millis(50);
        config.failover_after = Duration::from_millis(600);
        config.replica.poll_interval = Duration::from_millis(10);
        config.replica.status_interval = Duration::from_millis(50);
    }
    config
}

fn wait(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) -> BenchResult<()> {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn healthy(node: &Node) -> bool {
    node.status().copy.is_some_and(|copy| {
        copy.state == CopyState::Healthy && copy.copy_queue == 0 && copy.replay_queue == 0
    })
}

fn commit(node: &Node, key: &str, value: &[u8]) -> bool {
    node.with_database(|db| {
        let mut write = db.begin_write()?;
        write.create_table("messages")?;
        write.insert("messages", key.as_bytes(), value)?;
        write.commit()
    })
    .is_some_and(|result| result.is_ok())
}

/// A started pair: a active, b a healthy passive, `messages` delivered.
fn pair(root: &Path, fast: bool, messages: u32) -> BenchResult<(Node, Node)> {
    std::fs::create_dir_all(root.join("witness"))?;
    let a = Node::start(config("a", "b", root, true, fast))?;
    wait("a active", Duration::from_secs(30), || {
        a.role() == Role::Active
    })?;
    let value = vec![b'm'; 1024];
    a.with_database(|db| -> BenchResult<()> {
        for chunk in 0..messages.div_ceil(1000) {
            let mut write = db.begin_write()?;
            write.create_table("messages")?;
            for i in chunk * 1000..((chunk + 1) * 1000).min(messages) {
                write.insert("messages", format!("m{i:08}").as_bytes(), &value)?;
            }
            write.commit()?;
        }
        Ok(())
    })
    .ok_or("a is not active")??;
    let b = Node::start(config("b", "a", root, false, fast))?;
    wait("b healthy", Duration::from_secs(120), || healthy(&b))?;
    Ok((a, b))
}

/// Kills the active and times until the new active accepts a commit.
fn failover_time(fast: bool) -> BenchResult<Duration> {
    let root = tempfile::tempdir_in(scratch_root())?;
    let (a, b) = pair(root.path(), fast, 1000)?;
    let died = Instant::now();
    a.kill();
    wait("a commit on b", Duration::from_secs(60), || {
        commit(&b, "after", b"x")
    })?;
    let elapsed = died.elapsed();
    b.stop();
    Ok(elapsed)
}

fn switchover_pause() -> BenchResult<(u64, Duration)> {
    let root = tempfile::tempdir_in(scratch_root())?;
    let (a, b) = pair(root.path(), true, 1000)?;
    let started = Instant::now();
    let result = request_move(
        &OsFileSystem,
        &root.path().join("a"),
        "b",
        "bench",
        false,
        Duration::from_secs(60),
    )?;
    if !result.ok {
        return Err(result.message.into());
    }
    wait("b accepts commits", Duration::from_secs(60), || {
        commit(&b, "after", b"x")
    })?;
    let total = started.elapsed();
    a.stop();
    b.stop();
    Ok((result.paused_ms, total))
}

/// After a failover, times the old active's resynchronisation, then the same node's full
/// reseed (its instance emptied).
fn resync_against_reseed(messages: u32) -> BenchResult<(Duration, Duration)> {
    let root = tempfile::tempdir_in(scratch_root())?;
    let (a, b) = pair(root.path(), true, messages)?;
    a.with_database(|db| db.log().roll())
        .ok_or("a is not active")??;
    wait("b caught up", Duration::from_secs(60), || healthy(&b))?;
    a.kill();
    wait("b active", Duration::from_secs(60), || {
        b.role() == Role::Active
    })?;
    for i in 0..200 {
        commit(&b, &format!("new{i}"), &[b'n'; 1024]);
    }
    let started = Instant::now();
    let a = Node::start(config("a", "b", root.path(), true, true))?;
    wait("a resynchronised", Duration::from_secs(120), || healthy(&a))?;
    let resync = started.elapsed();
    a.stop();
    std::fs::remove_dir_all(root.path().join("a"))?;
    let started = Instant::now();
    let a = Node::start(config("a", "b", root.path(), true, true))?;
    wait("a reseeded", Duration::from_secs(300), || healthy(&a))?;
    let reseed = started.elapsed();
    a.stop();
    b.stop();
    Ok((resync, reseed))
}

fn run() -> BenchResult<()> {
    let messages: u32 = std::env::var("BLUEJET_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    let default = failover_time(false)?;
    let fast = failover_time(true)?;
    println!(
        "failover, death to first commit on the new active: {:.2} s with the default timings \
         (lease 3 s, failover after 2 s), {:.2} s with lease 0.8 s / failover after 0.6 s",
        default.as_secs_f64(),
        fast.as_secs_f64()
    );
    let (paused, total) = switchover_pause()?;
    println!(
        "switchover: commits held {paused} ms; request to first commit on the target {:.0} ms",
        total.as_secs_f64() * 1e3
    );
    let (resync, reseed) = resync_against_reseed(messages)?;
    println!(
        "old active back with {messages} messages of 1 KiB: resynchronised in {:.2} s, full \
         reseed {:.2} s ({:.1}x)",
        resync.as_secs_f64(),
        reseed.as_secs_f64(),
        reseed.as_secs_f64() / resync.as_secs_f64()
    );
    Ok(())
}
