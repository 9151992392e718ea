//! A seeded, deterministic, single-threaded simulation of the cluster, with the real code
//! where the protocol lives, in two layers:
//! - [`leases`]: the witness protocol and the leases (who may accept commits, when);
//! - [`mail`]: the data path on top: a transport delivering mail with its dumpster, the
//!   active's log generations shipped to the passive (over a share, or over the network
//!   with block mode and synchronous commit), failovers with their loss reports,
//!   resubmission, and the old active's resynchronisation.
//!
//! A failing seed panics with the seed, a readable trace, and the command that replays it.

mod leases;
mod mail;
mod share;
