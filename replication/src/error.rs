//! The replication error type.

use bluejet_engine::{DbError, LogError};
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in replication, naming the file or generation concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplError {
    /// An I/O operation failed (the one form of I/O error: see `bluejet_engine::error`).
    #[error("{path}: {operation} failed: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The operating system's error.
        cause: io::Error,
    },
    /// The disk (or the user's quota) is full: nothing of the operation was made durable.
    #[error("{path}: {operation} failed: no space left on the device")]
    OutOfSpace {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
    },
    /// The engine failed (the passive copy or the active database).
    #[error(transparent)]
    Db(#[from] DbError),
    /// A log file is damaged, foreign or missing.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A replica file (identity, status, control) is damaged or of another format.
    #[error("{path}: {reason}")]
    BadReplicaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file names a file its format does not allow (a path, `..`, or an unknown name).
    #[error(transparent)]
    BadFileName(#[from] crate::file_name::BadFileName),
    /// The directory is not a (complete) replica.
    #[error("{path} is not a replica: {reason}")]
    NotAReplica {
        /// The replica directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A seed was refused.
    #[error("seeding {path} refused: {reason}")]
    SeedRefused {
        /// The replica directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A shipped generation differs from the one already in the replica.
    #[error("{path}: generation {generation} differs from the active's copy; not overwritten")]
    DifferentContent {
        /// The file in the replica.
        path: PathBuf,
        /// The generation.
        generation: u32,
    },
    /// The passive's content differs from the active's.
    #[error("verification failed: {0}")]
    Mismatch(String),
    /// Another process (or handle) holds the replica or its database.
    #[error(
        "{} is in use by {}: stop it first (or work through it)",
        .path.display(),
        bluejet_engine::file::lock::describe(.holder)
    )]
    Locked {
        /// The lock file, or the database directory that is held.
        path: PathBuf,
        /// Who holds it, if its record could be read.
        holder: Option<bluejet_engine::file::Holder>,
    },
    /// Waiting for a condition took too long.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The witness cannot be used: it holds no record (never initialised, or the share is
    /// not mounted), or a record older than one this node has seen.
    #[error("witness {}: {reason}", .directory.display())]
    Witness {
        /// The witness directory.
        directory: PathBuf,
        /// Why.
        reason: String,
    },
    /// A node named owner holds no database, while the witness says one exists: it must
    /// not start an empty one in its place (a wiped instance, a second node with the same
    /// name, a node of another cluster pointed at this witness).
    #[error("{}: no database here, and the witness says one exists: {reason}", .instance.display())]
    NoDatabase {
        /// The node's instance directory.
        instance: std::path::PathBuf,
        /// What the witness says.
        reason: String,
    },
    /// A node named owner holds a database older than the one its name last held (its log
    /// ends before the witness's record of the owner's log): it must not serve it.
    #[error("{}: an older database than the owner's: {reason}", .instance.display())]
    OlderDatabase {
        /// The node's instance directory.
        instance: std::path::PathBuf,
        /// Where the two logs end.
        reason: String,
    },
    /// The network transport could not start (certificates, the listening address).
    #[error(transparent)]
    Network(#[from] crate::net::server::ServeError),
    /// A message given to the transport dumpster is out of bounds (id or body length).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
}

impl ReplError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, operation: &'static str, cause: io::Error) -> Self {
        let path = path.into();
        if bluejet_engine::is_out_of_space(&cause) {
            return Self::OutOfSpace { path, operation };
        }
        Self::Io {
            path,
            operation,
            cause,
        }
    }
}
