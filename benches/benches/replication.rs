//! Replication figures, in one run on one disk (see `bluejet_benches::replication`):
//!
//! 1. the active's peak durable commit rate with 8 concurrent committers;
//! 2. replay on the passive of the generations that load wrote (target: at least 2 times 1);
//! 3. shipping those generations against a plain durable copy of the same files (target: at
//!    least 0.8), and compressed shipping with its ratio (information);
//! 4. replication lag under steady load (commit acknowledged on the active to replayed on
//!    the passive), p50 and p99, with the replication service running.
//!
//! `cargo bench -p bluejet-benches --bench replication`; `BLUEJET_BENCH_SECONDS` sets the
//! length of each load (default 5).

use bluejet_benches::replication::{active_with_replica, lag, load, shipping, BenchResult};
use bluejet_benches::scratch::scratch_root;
use bluejet_engine::file::OsFileSystem;
use bluejet_replication::identity::ReplicaIdentity;
use bluejet_replication::layout::ReplicaLayout;
use std::time::Duration;

fn main() {
    if !std::env::args().any(|argument| argument == "--bench") {
        println!(
            "replication: skipped outside `cargo bench -p bluejet-benches --bench replication`"
        );
        return;
    }
    if let Err(error) = run() {
        eprintln!("replication benchmark failed: {error}");
        std::process::exit(1);
    }
}

/// Rounds of the shipping comparison.
const ROUNDS: usize = 5;

/// Plain durable copies and shipping, alternating, each into a fresh directory; the median
/// round of each (alternating spreads other load on the machine over both).
fn paired_shipping(
    active_logs: &std::path::Path,
    root: &std::path::Path,
) -> BenchResult<(shipping::Copied, shipping::Copied)> {
    let (mut plain, mut shipped) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let target = root.join(format!("plain-{round}"));
        plain.push(shipping::plain_copy(active_logs, &target, true)?);
        let layout = ReplicaLayout::new(&root.join(format!("ship-{round}")));
        shipped.push(shipping::ship_all(active_logs, &layout, false)?);
        std::fs::remove_dir_all(&target)?;
        std::fs::remove_dir_all(&layout.root)?;
    }
    let median = |mut copies: Vec<shipping::Copied>| {
        copies.sort_by(|a, b| a.mib_per_second().total_cmp(&b.mib_per_second()));
        copies[copies.len() / 2]
    };
    Ok((median(plain), median(shipped)))
}

fn run() -> BenchResult<()> {
    let seconds: u64 = std::env::var("BLUEJET_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let root = tempfile::tempdir_in(scratch_root())?;
    let (active, config) = active_with_replica(root.path())?;
    let peak = load::run(&active, 8, duration, Duration::ZERO, false)?;
    active.log().roll()?;
    println!(
        "active: {} durable commits in {:.1} s from 8 threads: {:.0} commits/s",
        peak.commits,
        peak.seconds,
        peak.rate()
    );
    let active_logs = config.active.clone();
    let (plain, shipped) = paired_shipping(&active_logs, root.path())?;
    let unsynced = shipping::plain_copy(&active_logs, &root.path().join("unsynced-copy"), false)?;
    let compressed_layout = ReplicaLayout::new(&root.path().join("compressed"));
    let compressed = shipping::ship_all(&active_logs, &compressed_layout, true)?;
    let written = std::fs::read_dir(compressed_layout.incoming())?
        .map(|entry| entry.map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)))
        .sum::<Result<u64, _>>()?;
    println!(
        "shipping {} generations, {:.1} MiB (median of {ROUNDS} alternating rounds): plain \
         durable copy {:.0} MiB/s, ship {:.0} MiB/s ({:.2}x, target >= 0.8); unsynced copy \
         {:.0} MiB/s; compressed ship {:.0} MiB/s, ratio {:.1}x",
        shipped.files,
        shipped.bytes as f64 / (1 << 20) as f64,
        plain.mib_per_second(),
        shipped.mib_per_second(),
        shipped.mib_per_second() / plain.mib_per_second(),
        unsynced.mib_per_second(),
        compressed.mib_per_second(),
        compressed.bytes as f64 / written.max(1) as f64,
    );
    // The replica's own incoming area: ship once more for the replay figure.
    let layout = ReplicaLayout::new(&config.replica);
    shipping::ship_all(&active_logs, &layout, false)?;
    let identity = ReplicaIdentity::read(&OsFileSystem, &layout)?;
    shipping::inspect_all(&layout, identity)?;
    let (transactions, replay_seconds) = shipping::replay_all(&layout)?;
    let replay_rate = transactions as f64 / replay_seconds;
    println!(
        "replay: {transactions} transactions in {replay_seconds:.2} s: {replay_rate:.0}/s \
         ({:.2}x the active's peak, target >= 2)",
        replay_rate / peak.rate()
    );
    drop(active);
    let lag_root = tempfile::tempdir_in(scratch_root())?;
    let (active, config) = active_with_replica(lag_root.path())?;
    let steady = lag::measure(&active, config, 8, Duration::from_millis(2), duration)?;
    println!(
        "lag under steady load ({:.0} commits/s, {} commits): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        steady.rate, steady.commits, steady.p50_ms, steady.p99_ms, steady.max_ms
    );
    Ok(())
}
