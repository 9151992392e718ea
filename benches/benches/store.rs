//! BlueJet's store against SQLite and redb on the redb benchmark's workload, each engine in
//! its own fresh directory on the same disk, with the disk's sync floors measured beside them
//! (see `bluejet_benches::store`). `BLUEJET_BENCH_KEYS` sets the bulk load (default
//! 1,000,000), `BLUEJET_BENCH_DIR` where the files go (default the temporary directory),
//! `BLUEJET_BENCH_ENGINES` which engines run (default all).
//!
//! `cargo bench -p bluejet-benches --bench store`

use bluejet_benches::store::engine::StoreResult;
use bluejet_benches::store::workload::Shape;
use bluejet_benches::store::{engines, floor, report, run_engines, Config};
use std::time::Instant;

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`. A full run takes minutes,
    // so that only says how to run it; the library's tests run every phase on a tiny shape.
    if !std::env::args().any(|argument| argument == "--bench") {
        println!("store: skipped outside `cargo bench -p bluejet-benches --bench store`");
        return;
    }
    if let Err(error) = run() {
        eprintln!("store benchmark failed: {error}");
        std::process::exit(1);
    }
}

fn run() -> StoreResult<()> {
    let started = Instant::now();
    let config = Config::from_env()?;
    let shape = Shape::standard(config.keys);
    println!(
        "store: {} keys of {} bytes, files under {}",
        report::grouped(shape.keys),
        bluejet_benches::store::workload::RECORD_BYTES,
        config.root.display()
    );
    let floors = floor::measure(&config.root)?;
    for floor in &floors {
        println!(
            "   floor: {}: {:.0} ops/s",
            floor.name, floor.ops_per_second
        );
    }
    // `BLUEJET_BENCH_ENGINES=bluejet` (a comma-separated list) runs only those engines: a
    // paired comparison of two BlueJet builds needs no peers.
    let only = std::env::var("BLUEJET_BENCH_ENGINES").ok();
    let chosen: Vec<_> = engines()
        .into_iter()
        .filter(|(name, _)| {
            only.as_deref()
                .is_none_or(|list| list.split(',').any(|n| n == *name))
        })
        .collect();
    let results = run_engines(&shape, &config.root, &chosen)?;
    print!("{}", report::render(&shape, &results, &floors));
    println!(
        "\nstore: whole run {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
