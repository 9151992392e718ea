//! The transaction log: a stream of numbered, fixed-size generations.
//!
//! See `docs/design.md` for the byte layout of every file and the durability invariants.
//!
//! ```
//! use bluejet_engine::log::{Durability, Log, LogConfig};
//! let directory = tempfile::tempdir().unwrap();
//! let log = Log::open(directory.path(), LogConfig::default()).unwrap();
//! let mut transaction = log.transaction();
//! transaction.put("messages", b"id-1", b"Subject: hello");
//! let commit = transaction.commit(Durability::Durable).unwrap();
//! assert!(log.durable_position() >= commit.end);
//! log.close().unwrap();
//! ```

mod background;
pub mod checkpoint;
mod closer;
mod config;
pub mod directory;
mod generation_writer;
pub mod header;
pub mod image;
mod names;
mod open;
mod position;
mod reader;
pub mod record;
mod roll;
pub mod scan;
pub mod segment;
mod signature;
pub mod tap;
mod transaction;
pub mod verify;
mod writer;

pub use checkpoint::{Checkpoint, CheckpointRead, CopyState};
pub use config::LogConfig;
pub use header::GenerationHeader;
pub use names::{BaseName, LogFileName};
pub(crate) use position::stream_offset;
pub use position::LogPosition;
pub use reader::{LogReader, LogRecord, RecordIterator};
pub use record::{read_record, Record};
pub use signature::{now_micros, StreamSignature};
pub use tap::{LogTap, TapRead};
pub use transaction::{CommitInfo, Durability, PendingRecords, Transaction};
pub use verify::{verify_directory, GenerationReport, VerifyReport};
pub use writer::{Log, LogStats};

/// Smallest generation size.
pub const MIN_GENERATION_BYTES: u64 = 128 << 10;
/// Largest generation size.
pub const MAX_GENERATION_BYTES: u64 = 64 << 20;
