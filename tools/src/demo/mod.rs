//! `bluejet demo`: a two-node cluster with a witness, in one directory, under a mail
//! transport that delivers continuously. It shows the passive copy's status, a planned move
//! with a comment, an automatic lossy failover after the active is killed (the transport's
//! dumpster delivering again what the new active lacks), the old active's return as a
//! resynchronised passive copy; then proves that every message the transport was ever told
//! was stored is on the final active exactly once and byte for byte, that the passive copy
//! holds the same content, that the folder index agrees with the messages, and that the
//! database file and its log pass their integrity checks.

//!
//! One file per part: [`run`] drives it, [`write`] is the mail transport (messages from
//! [`mail`]), [`replicate`] the two nodes and their witness (over the TCP [`relay`]),
//! [`scenario`] the move, failovers and return, [`lost_mail`] the old active's divergent
//! mail, [`verify`] the final checks, [`report`] what is printed ([`document`] with `--json`),
//! [`place`] its directory.

mod document;
mod lost_mail;
mod mail;
mod place;
mod relay;
mod replicate;
mod report;
mod run;
mod scenario;
mod verify;
mod write;

pub use run::{run, DemoOptions};
