//! BlueJet's storage engine: named B+tree tables in one page file, changed by ACID
//! transactions through a log of numbered generations, after Microsoft ESE.
//!
//! What an application embedding the engine uses is here at the crate root:
//!
//! - [`Database`] (a cheap, `Send + Sync` handle), opened with [`Options`] ([`LogConfig`],
//!   [`Durability`]); [`ReadTransaction`] snapshots and their [`ReadTable`]s ([`Entry`],
//!   [`Range`], [`ValueReader`]); [`WriteTransaction`]s and their [`WriteTable`]s.
//! - Errors as values: [`DbError`], and [`LogError`] for the log.
//! - A passive copy replaying a shipped log: [`PassiveDatabase`], its [`PassiveOrigin`].
//! - Observability: [`Metrics`] and their [`HistogramSnapshot`]s, [`DbStats`].
//! - The content checksum: [`ContentSummary`], [`ContentTotals`], [`TableContent`].
//! - Rebuilding a damaged database: [`repair()`] with [`RepairOptions`], giving a
//!   [`RepairReport`].
//!
//! Two public modules serve tools rather than applications: [`file`] (the file-system layer
//! every durable structure writes through; its simulated disk, for crash tests, is behind
//! the `simulation` cargo feature) and [`format`] (the on-disk formats' decoders and
//! offline readers, used by the `bluejet` tool and the fuzz targets).
//!
//! ```
//! use bluejet_engine::{Database, DbError, Options};
//!
//! let directory = tempfile::tempdir()?;
//! let db = Database::open(directory.path(), Options::default())?;
//! let mut write = db.begin_write()?;
//! write.create_table("messages")?;
//! write.insert("messages", b"alice/1", b"Subject: hello")?;
//! write.commit()?; // durable in the log when it returns
//!
//! let read = db.begin_read()?; // a snapshot
//! let messages = read.open_table("messages")?;
//! assert_eq!(messages.get(b"alice/1")?.as_deref(), Some(&b"Subject: hello"[..]));
//! assert!(matches!(read.open_table("message"), Err(DbError::TableNotFound(_))));
//! assert_eq!(read.content()?.entries(), 1);
//! drop(messages);
//! drop(read);
//!
//! assert_eq!(db.metrics().commits, 1);
//! db.close()?; // clean shutdown: no log needed to open again
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod btree;
mod content;
mod error;
mod inspect;
mod metrics;
mod page;
mod repair;
mod value;

pub mod file;
pub mod format;

// The replication crate is built on the engine's internals: it ships generations through
// the log writer and its tap, and replays them through the passive database's gates. These
// two modules stay public for it (and for the crash tests that drive the log directly), but
// are not part of the API an application uses, which is re-exported below.
#[doc(hidden)]
pub mod db;
#[doc(hidden)]
pub mod log;

pub use content::{
    recount, ContentDifference, ContentProof, ContentSummary, ContentTotals, TableContent,
};
pub use db::{
    CheckpointReport, CircularLogging, Committed, Database, DbError, DbStats, Entries, Entry, Gate,
    GenerationReplay, Options, PassiveDatabase, PassiveOrigin, Range, ReadTable, ReadTransaction,
    ReplayReport, ValueReader, WriteTable, WriteTransaction, DATABASE_FILE_NAME, STREAM_FROM_BYTES,
};
pub use error::LogError;
pub use log::{BaseName, Durability, LogConfig, LogFileName, LogPosition};
pub use metrics::{HistogramSnapshot, LatencyHistogram, Metrics};
pub use page::{DbHeader, DbState};
pub use repair::{
    repair, DiscardedPage, LostEntry, LostRange, RepairOptions, RepairReport, TableRepair,
};

/// Whether an I/O error means the disk is full (for the replication crate's own errors,
/// which classify I/O failures as the engine does).
#[doc(hidden)]
pub use error::is_out_of_space;

// The README's example is compiled and run with the doc tests, so that it shows the API as
// it is.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;
