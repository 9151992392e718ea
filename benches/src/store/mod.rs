//! BlueJet's store against SQLite and redb on the redb benchmark's workload (random 24-byte
//! keys, 150-byte values, fixed seed): bulk load, durable commits alone, in batches and from
//! 8 threads, random reads on 1 and 2 threads, range reads, removals and the size on disk.
//!
//! Every engine runs every phase in turn, in one process, each in a fresh directory under
//! one root (`BLUEJET_BENCH_DIR`, else the system temporary directory) so all meet the same
//! disk. `benches/store.rs` runs it: `cargo bench -p bluejet-benches --bench store`.

pub mod bluejet;
pub mod engine;
pub mod floor;
pub mod phases;
pub mod redb;
pub mod report;
pub mod sqlite;
pub mod workload;

use engine::{StoreError, StoreResult, StoreUnderTest};
use report::EngineResults;
use std::path::{Path, PathBuf};
use workload::{Dataset, Shape};

/// Page cache each engine may use: large enough for the whole default data set, so no engine
/// is measured against a smaller cache than another (SQLite's default is only 2 MiB).
pub const CACHE_BYTES: usize = 1 << 30;

/// Keys of the bulk load when `BLUEJET_BENCH_KEYS` is not set.
pub const DEFAULT_KEYS: usize = 1_000_000;

/// Opens a new store of one engine in an empty directory.
pub type Opener = fn(&Path) -> StoreResult<Box<dyn StoreUnderTest>>;

/// The engines compared, in the order they run and appear in the report.
pub fn engines() -> Vec<(&'static str, Opener)> {
    vec![
        ("sqlite", sqlite::open as Opener),
        ("redb", redb::open as Opener),
        ("bluejet", bluejet::open as Opener),
    ]
}

/// What the environment asks of a run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Keys of the bulk load (`BLUEJET_BENCH_KEYS`, underscores allowed).
    pub keys: usize,
    /// Where the engines' directories go (`BLUEJET_BENCH_DIR`, else the temporary directory).
    pub root: PathBuf,
}

impl Config {
    /// Reads `BLUEJET_BENCH_KEYS` and `BLUEJET_BENCH_DIR`.
    pub fn from_env() -> StoreResult<Self> {
        let keys = match std::env::var("BLUEJET_BENCH_KEYS") {
            Ok(text) => parse_keys(&text)?,
            Err(_) => DEFAULT_KEYS,
        };
        let root = std::env::var_os("BLUEJET_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        Ok(Self { keys, root })
    }
}

/// A key count such as `100000` or `1_000_000`; at least 2 so that half can be removed.
fn parse_keys(text: &str) -> StoreResult<usize> {
    let keys: usize = text
        .replace('_', "")
        .trim()
        .parse()
        .map_err(|_| StoreError::msg(format!("BLUEJET_BENCH_KEYS={text:?} is not a number")))?;
    if keys < 2 {
        return Err(StoreError::msg("BLUEJET_BENCH_KEYS must be at least 2"));
    }
    Ok(keys)
}

/// Runs every phase on every engine with the given shape, each engine in its own fresh
/// directory under `root`, which is removed once the engine is closed.
pub fn run_engines(
    shape: &Shape,
    root: &Path,
    engines: &[(&'static str, Opener)],
) -> StoreResult<Vec<EngineResults>> {
    let data = Dataset::generate(shape);
    let mut results = Vec::new();
    for &(name, open) in engines {
        let directory = tempfile::Builder::new()
            .prefix(&format!("bluejet-store-{name}-"))
            .tempdir_in(root)?;
        let store = open(directory.path())?;
        let figures = phases::run_all(name, store.as_ref(), &data, directory.path())?;
        store.close()?;
        results.push(EngineResults {
            engine: name,
            figures,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_counts_parse_with_underscores_and_refuse_too_few() {
        assert_eq!(parse_keys("1_000_000").unwrap(), 1_000_000);
        assert_eq!(parse_keys(" 100000 ").unwrap(), 100_000);
        assert!(parse_keys("1").is_err());
        assert!(parse_keys("many").is_err());
    }

    /// Every registered engine through every phase on a tiny shape: the phases verify what
    /// they read and remove, so this checks each adapter end to end.
    #[test]
    fn every_engine_passes_every_phase_on_a_tiny_workload() {
        let root = tempfile::tempdir().unwrap();
        let results = run_engines(&Shape::tiny(), root.path(), &engines()).unwrap();
        assert_eq!(results.len(), engines().len());
        let text = report::render(&Shape::tiny(), &results, &[]);
        assert!(text.contains("bulk load"), "{text}");
    }
}
