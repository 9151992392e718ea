//! Replication figures: the active's peak durable commit rate with 8 committers, the
//! passive's replay rate on the generations that load wrote, shipping against a plain
//! durable file copy of the same files, and the replication lag under steady load.
//!
//! `cargo bench -p bluejet-benches --bench replication`

pub mod lag;
pub mod load;
pub mod shipping;

use bluejet_engine::{Database, Options};
use bluejet_replication::seed::seed;
use bluejet_replication::ReplicaConfig;
use std::path::Path;

/// Any error of a replication benchmark.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Options of the active: default 1 MiB generations, no idle roll (the bench rolls).
pub fn active_options() -> Options {
    let mut options = Options::default();
    options.log.idle_roll_interval = None;
    options
}

/// A fresh active in `root/active` with a seeded replica in `root/replica`.
pub fn active_with_replica(root: &Path) -> BenchResult<(Database, ReplicaConfig)> {
    let active_dir = root.join("active");
    let replica_dir = root.join("replica");
    let active = Database::open(&active_dir, active_options())?;
    let config = ReplicaConfig::new(&active_dir, &replica_dir);
    seed(&active, &config)?;
    Ok((active, config))
}
