//! The lost-mail report: what an old active committed that the new active never had, read
//! back from the files its resynchronisation moved aside (`<instance>/diverged-<epoch>/`,
//! see [`crate::cluster::resync`]), and re-applied through the active node on request.
//!
//! - [`files`]: the directory, its `report.json` and the divergent files it names (every
//!   name checked: the report is read from disk and may say anything);
//! - [`decode`]: those files' record streams into the transactions committed after the
//!   common point, in commit order (large values assembled from their pieces);
//! - [`mail`]: Message-IDs, mailboxes and subjects of the messages among them;
//! - [`summary`]: the report for people and for `--json`;
//! - [`reapply`]: the transactions re-applied to the active as new transactions, never
//!   overwriting a key changed on both sides, with the outcome kept in `reapplied.json`.
//!
//! ```no_run
//! use bluejet_engine::file::OsFileSystem;
//! use bluejet_replication::diverged::{decode, summary};
//! let decoded = decode::decode_directory(&OsFileSystem, "a/diverged-7".as_ref())?;
//! let report = summary::summarize(&decoded);
//! println!("{} transactions the new active never had", report.totals.transactions);
//! # Ok::<(), bluejet_replication::diverged::DivergedError>(())
//! ```

pub mod decode;
pub mod error;
pub mod files;
pub mod mail;
pub mod reapply;
pub mod summary;

pub use error::DivergedError;
