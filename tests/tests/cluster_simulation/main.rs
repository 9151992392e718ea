//! A seeded, deterministic, single-threaded simulation of the cluster, with the real code
//! where the protocol lives, in two layers:
//! - [`leases`]: the witness protocol and the leases (who may accept commits, when);
//! - [`mail`]: the data path on top: a transport delivering mail with its dumpster, the
//!   active's log generations shipped to the passive (over a share, or over the network
//!   with block mode and synchronous commit), failovers with their loss reports,
//!   resubmission, and the old active's resynchronisation.
//!
//! A failing seed panics with the seed, a readable trace, and the command that replays it.

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions). Test data
// is made by truncating counters into bytes on purpose, and sizes here are small constants.
// Ignored results are the cleanup of helper threads and sockets a test tears down (work
// left for a later pass: issue 16 asks them to be logged).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::let_underscore_must_use
)]

mod leases;
mod mail;
mod share;
