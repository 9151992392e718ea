//! What can go wrong reading a diverged directory or re-applying it, naming the file.

use crate::error::ReplError;
use bluejet_engine::DbError;
use std::path::PathBuf;

/// Why a diverged directory could not be read or re-applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DivergedError {
    /// The path is not a `diverged-<epoch>` directory.
    #[error("{}: not a diverged directory: {reason}", .path.display())]
    NotDiverged {
        /// The path given.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The report (`report.json`) is missing, damaged, or names files its format does not
    /// allow.
    #[error("{}: {reason}", .path.display())]
    BadReport {
        /// The report file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// What was decoded exceeds a bound (the files say more than any log could hold).
    #[error("{}: {reason}", .path.display())]
    TooLarge {
        /// The file being read when the bound was passed.
        path: PathBuf,
        /// Which bound.
        reason: String,
    },
    /// Some divergent files cannot be read: nothing is re-applied from an incomplete tail.
    #[error("{}: not re-applied: {reason}", .path.display())]
    Incomplete {
        /// The directory.
        path: PathBuf,
        /// The files that cannot be read, and why.
        reason: String,
    },
    /// The active database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Repl(#[from] ReplError),
}
