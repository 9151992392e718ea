//! The error type of backups, restores and truncation.

use crate::error::ReplError;
use crate::file_name::BadFileName;
use bluejet_engine::{DbError, LogError};
use std::path::{Path, PathBuf};

/// What can stop a backup, a verification, a restore or a truncation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A replication or engine error (I/O, a locked replica, a damaged replica file).
    #[error(transparent)]
    Repl(#[from] ReplError),
    /// The request cannot be done as asked (no full backup to follow, a target that is not
    /// empty, a generation outside the backup).
    #[error("{path}: {reason}")]
    Refused {
        /// The directory or file concerned.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A backup file is damaged, missing or inconsistent with its manifest.
    #[error("{path}{}: {reason}", generation.map(|g| format!(" (generation {g})")).unwrap_or_default())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The generation it holds, if it is a generation file.
        generation: Option<u32>,
        /// What is wrong.
        reason: String,
    },
}

impl BackupError {
    /// A refusal concerning `path`.
    pub fn refused(path: &Path, reason: impl Into<String>) -> Self {
        Self::Refused {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, operation: &'static str, error: std::io::Error) -> Self {
        Self::Repl(ReplError::io(path, operation, error))
    }
}

impl From<DbError> for BackupError {
    fn from(error: DbError) -> Self {
        Self::Repl(ReplError::Db(error))
    }
}

impl From<BadFileName> for BackupError {
    fn from(error: BadFileName) -> Self {
        Self::Repl(ReplError::BadFileName(error))
    }
}

impl From<LogError> for BackupError {
    fn from(error: LogError) -> Self {
        Self::Repl(ReplError::Log(error))
    }
}
