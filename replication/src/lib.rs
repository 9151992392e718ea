//! BlueJet continuous replication: keep a passive copy of a database a few seconds behind
//! the active, from the active's closed log generations.
//!
//! Three stages, each a thread of a [`ReplicationService`] joined by channels, or driven one
//! round at a time through a [`Replica`]:
//! - [`ship`]: copy closed generations from the active's log directory into the replica's
//!   incoming area;
//! - [`inspect`]: accept a generation only when its header, stream, timeline, chain and every
//!   segment check out, else quarantine it and copy it again;
//! - [`replay`]: apply inspected generations in order to the passive copy through the
//!   engine's recovery path.
//!
//! [`seed`] creates the copy from a snapshot of a running active; [`verify`] compares the
//! content of the two; [`status`] says how far behind the copy is and whether it is Healthy.
//! See [`layout`] for the replica directory and `docs/design.md` for the formats.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backup;
pub mod backup_error;
pub mod backup_manifest;
pub mod backup_verify;
pub mod block_store;
pub mod cluster;
pub mod control;
pub mod diverged;
pub mod dumpster;
pub mod error;
pub mod events;
pub mod file_name;
pub mod generation_file;
pub mod identity;
pub mod inspect;
pub mod layout;
pub mod lock;
pub mod net;
pub mod private_files;
pub mod replay;
pub mod replica;
pub mod restore;
pub mod sealed;
pub mod seed;
pub mod service;
pub mod ship;
mod stage_report;
pub mod status;
pub mod truncate;
pub mod verify;

pub use error::ReplError;
pub use replica::{Replica, ReplicaConfig};
pub use service::ReplicationService;
pub use status::{CopyState, CopyStatus};
