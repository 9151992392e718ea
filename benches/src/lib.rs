//! Benchmarks of BlueJet's transaction log against raw baselines on the same disk.
//!
//! The measured loops live here, one idea per module; `benches/log.rs` wires them into
//! criterion (`cargo bench -p bluejet-benches`). [`store`] compares BlueJet's store with SQLite
//! and redb (`cargo bench -p bluejet-benches --bench store`).

pub mod baseline;
pub mod data;
pub mod group_flush;
pub mod paired;
pub mod replication;
pub mod scratch;
pub mod store;
pub mod tally;
pub mod workload;
