//! Benchmarks of BlueJet's transaction log against raw baselines on the same disk.
//!
//! The measured loops live here, one idea per module; `benches/log.rs` wires them into
//! criterion (`cargo bench -p bluejet-benches`).

pub mod baseline;
pub mod data;
pub mod group_flush;
pub mod paired;
pub mod scratch;
pub mod tally;
pub mod workload;
