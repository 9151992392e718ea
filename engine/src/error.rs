//! The engine's typed errors. Every error about a file names the file, and where it applies the
//! generation, segment or log position.
//!
//! Conventions, for every error type of BlueJet:
//! - Display is the whole story, cause included; `source()` returns nothing a message
//!   already says, so that a reporter walking the chain never prints a cause twice.
//! - I/O errors have one form, `{path}: {operation} failed: {cause}`, and keep the
//!   operating system's error as a value (`cause`). A full disk (ENOSPC, EDQUOT) is its own
//!   variant, `OutOfSpace`, so that a caller can tell it from damage or a failed device.
//! - A failure that leaves a database or log unusable (`Poisoned`) or a transaction only fit
//!   to roll back (`TransactionFailed`) keeps the error that caused it, as a value.

use crate::log::{LogPosition, StreamSignature};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Errors of the transaction log.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An operating-system call failed.
    #[error("{path}: {operation} failed: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The operating system's error (shared: errors are cloned into the poison they
        /// cause).
        cause: Arc<io::Error>,
    },
    /// The disk (or the user's quota) is full: nothing of the operation was made durable.
    #[error("{path}: {operation} failed: no space left on the device")]
    OutOfSpace {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
    },
    /// An earlier write or sync failed; the log accepts nothing more until it is reopened,
    /// which recovers from what is durable. Holds that failure.
    #[error("the log is unusable after an earlier failure: {0}")]
    Poisoned(Box<LogError>),
    /// The log was closed.
    #[error("the log is closed")]
    Closed,
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A record is larger than a generation can hold.
    #[error("a record of {length} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// The record's encoded length.
        length: usize,
        /// The largest record this log accepts.
        limit: usize,
    },
    /// A generation header (or checkpoint) cannot be read: bad checksum, magic, type or version.
    #[error("{path}: unreadable header: {reason}")]
    UnreadableHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A generation belongs to another log stream.
    #[error("{path}: generation {generation} belongs to stream {found}, not to stream {expected}")]
    ForeignGeneration {
        /// The file.
        path: PathBuf,
        /// The generation inside the file.
        generation: u32,
        /// The signature of this stream.
        expected: StreamSignature,
        /// The signature in the file.
        found: StreamSignature,
    },
    /// A generation's timeline differs from the one expected.
    #[error(
        "{path}: generation {generation} is on timeline {found}, expected timeline {expected}"
    )]
    TimelineMismatch {
        /// The file.
        path: PathBuf,
        /// The generation.
        generation: u32,
        /// The timeline expected.
        expected: u64,
        /// The timeline found.
        found: u64,
    },
    /// The stream's newest generation is on a newer timeline than the one it was opened
    /// with (`LogConfig::fence_timeline`): timelines never go back.
    #[error(
        "{path}: generation {generation} is on timeline {newest}, newer than timeline \
         {requested} this log was opened with: timelines never go back"
    )]
    OlderTimeline {
        /// The newest generation's file.
        path: PathBuf,
        /// The newest generation.
        generation: u32,
        /// Its timeline.
        newest: u64,
        /// The timeline asked for.
        requested: u64,
    },
    /// A file's name says one generation and its header another.
    #[error("{path}: the name says generation {named} but the header holds generation {inside}")]
    NameMismatch {
        /// The file.
        path: PathBuf,
        /// The generation in the file name.
        named: u32,
        /// The generation in the header.
        inside: u32,
    },
    /// A generation file does not have the size its header states.
    #[error("{path}: size is {found} bytes, expected {expected}")]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// The expected size.
        expected: u64,
        /// The actual size.
        found: u64,
    },
    /// A generation is missing while a later one exists.
    #[error("{directory}: missing generation {first}..={last} while generation {next} exists")]
    MissingGenerations {
        /// The log directory.
        directory: PathBuf,
        /// The first missing generation.
        first: u32,
        /// The last missing generation.
        last: u32,
        /// The generation found after the gap.
        next: u32,
    },
    /// A generation does not chain to its predecessor.
    #[error("{path}: generation {generation} does not chain to generation {previous}: {reason}")]
    BrokenChain {
        /// The file of the later generation.
        path: PathBuf,
        /// The later generation.
        generation: u32,
        /// The earlier generation.
        previous: u32,
        /// Which link is broken.
        reason: String,
    },
    /// A segment is damaged (bad checksum, wrong place, inconsistent fields).
    #[error("{path}: generation {generation}, segment {segment}: {reason}")]
    BadSegment {
        /// The file.
        path: PathBuf,
        /// The generation.
        generation: u32,
        /// The segment index in the file (0 is the header).
        segment: u32,
        /// What is wrong.
        reason: String,
    },
    /// A record is damaged or truncated in a closed generation.
    #[error("{path}: bad record at {position}: {reason}")]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        position: LogPosition,
        /// What is wrong.
        reason: String,
    },
    /// A requested position is not in the log.
    #[error("log position {position} is not in the log ({reason})")]
    PositionNotFound {
        /// The position asked for.
        position: LogPosition,
        /// Why.
        reason: String,
    },
    /// The checkpoint file cannot be used.
    #[error("{path}: checkpoint unusable: {reason}")]
    BadCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint may only move forward.
    #[error("the checkpoint cannot move back from {current} to {requested}")]
    CheckpointBackwards {
        /// The current checkpoint.
        current: LogPosition,
        /// The position asked for.
        requested: LogPosition,
    },
}

impl LogError {
    /// Whether the error reports damage or inconsistency in files (as opposed to an I/O or
    /// usage error). The tool exits with 1 for these.
    pub fn is_damage(&self) -> bool {
        !matches!(
            self,
            LogError::Io { .. }
                | LogError::OutOfSpace { .. }
                | LogError::Poisoned(_)
                | LogError::Closed
                | LogError::InvalidConfig(_)
                | LogError::RecordTooLarge { .. }
                | LogError::CheckpointBackwards { .. }
                | LogError::PositionNotFound { .. }
                | LogError::OlderTimeline { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, operation: &'static str, cause: io::Error) -> Self {
        let path = path.into();
        if is_out_of_space(&cause) {
            return LogError::OutOfSpace { path, operation };
        }
        LogError::Io {
            path,
            operation,
            cause: Arc::new(cause),
        }
    }

    /// Whether the disk (or quota) was full, here or in the failure that poisoned the log.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            LogError::OutOfSpace { .. } => true,
            LogError::Poisoned(cause) => cause.is_out_of_space(),
            _ => false,
        }
    }
}

/// Whether an operating-system error says the disk or the user's quota is full.
pub fn is_out_of_space(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::StorageFull
        || matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || error.kind() == io::ErrorKind::QuotaExceeded
}
