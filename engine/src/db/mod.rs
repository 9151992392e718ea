//! The database: named B+tree tables in one page file, changed by ACID transactions through
//! the log in the same directory.
//!
//! See [`Database`] for an example and `docs/design.md` for the file formats and the
//! durability invariants.

mod catalog;
mod checkpoint;
mod circular;
mod content_check;
mod database;
mod error;
mod gate;
mod log_link;
mod open;
mod options;
mod owner;
mod passive;
mod read;
mod recovery;
pub mod retention_marker;
mod version;
mod write;

pub use crate::log::Durability;

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);
pub use catalog::TableMeta;
pub use checkpoint::CheckpointReport;
pub use circular::CircularLogging;
pub use database::{Database, DbStats, DATABASE_FILE_NAME};
pub use error::DbError;
pub use gate::{CommitGate, Gate};
pub use open::read_header_copies;
pub use options::Options;
pub use owner::{lock_directory, probe_directory};
pub use passive::{GenerationReplay, PassiveDatabase, PassiveOrigin};
pub use read::{Entries, Entry, Range, ReadTable, ReadTransaction, ValueReader};
pub use recovery::ReplayReport;
pub use retention_marker::{
    read_retention_marker, write_retention_marker, RetentionMarker, RETENTION_MARKER_NAME,
};
pub use write::{Committed, WriteTable, WriteTransaction, STREAM_FROM_BYTES};
