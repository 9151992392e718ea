//! The one error type of the database API.

use crate::log::StreamSignature;
use crate::page::format::PageProblem;
use crate::LogError;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong with a database. Errors about a file name the file, and where
/// it applies the page or the log generations.
///
/// The conventions of every BlueJet error (Display says it all, one form of I/O error, causes
/// kept as values) are in [`crate::error`].
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
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
    /// The transaction log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A page is damaged: bad checksum, wrong place, never written or inconsistent.
    #[error("{path}: page {page}: {problem}")]
    Corruption {
        /// The database file.
        path: PathBuf,
        /// The page number.
        page: u64,
        /// What is wrong.
        problem: PageProblem,
    },
    /// Neither header copy can be used.
    #[error("{path}: no usable header: copy 0: {copy_0}; copy 1: {copy_1}")]
    BadHeader {
        /// The database file.
        path: PathBuf,
        /// Why copy 0 is unusable.
        copy_0: String,
        /// Why copy 1 is unusable.
        copy_1: String,
    },
    /// The file is shorter than the pages its header says it holds.
    #[error("{path}: truncated: {length} bytes, but the header needs {needed}")]
    Truncated {
        /// The database file.
        path: PathBuf,
        /// The file length.
        length: u64,
        /// The length the header's pages need.
        needed: u64,
    },
    /// Log generations recovery needs are missing.
    #[error("{directory}: log generations {first}..={last} are required but {reason}")]
    MissingLogGenerations {
        /// The log directory.
        directory: PathBuf,
        /// The first required generation.
        first: u32,
        /// The last required generation.
        last: u32,
        /// What is missing.
        reason: String,
    },
    /// The log in the directory belongs to another database.
    #[error("{path}: the database belongs to log stream {expected}, the directory holds {found}")]
    ForeignLog {
        /// The database file.
        path: PathBuf,
        /// The stream signature in the database header.
        expected: StreamSignature,
        /// The stream signature of the log found.
        found: StreamSignature,
    },
    /// The content replay arrived at differs from what the log's proof record (or the
    /// stored summary a recount checked) says it is: a page changed behind the engine's
    /// back, or a copy that diverged. Names the log file and position of the proof point
    /// (none for a recount against the catalog) and the first table that differs.
    #[error(
        "{path}: content differs{}: {difference}",
        .position.map(|at| format!(" at the proof point of generation {} offset {}", at.generation, at.offset)).unwrap_or_default()
    )]
    ContentMismatch {
        /// The log generation holding the proof record, or the database file.
        path: PathBuf,
        /// Where the proof record is in the log.
        position: Option<crate::log::LogPosition>,
        /// The first table that differs (boxed: errors stay small).
        difference: Box<crate::content::ContentDifference>,
    },
    /// A table does not exist.
    #[error("no table named {0:?}")]
    TableNotFound(String),
    /// A key is longer than the page size allows.
    #[error("a key of {length} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge {
        /// The key length.
        length: usize,
        /// The longest key allowed.
        limit: usize,
    },
    /// A value is longer than the limit.
    #[error("a value of {length} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// The value length.
        length: u64,
        /// The longest value allowed.
        limit: u64,
    },
    /// The reader a value was inserted from failed.
    #[error("reading the value to insert failed: {0}")]
    ValueSource(Arc<io::Error>),
    /// The reader a value was inserted from ended before the length declared.
    #[error("the value's reader ended after {supplied} bytes, {declared} were declared")]
    ValueShorter {
        /// The length declared.
        declared: u64,
        /// The bytes it gave.
        supplied: u64,
    },
    /// The reader a value was inserted from gave more than the length declared.
    #[error("the value's reader gave more than the {declared} bytes declared")]
    ValueLonger {
        /// The length declared.
        declared: u64,
    },
    /// An operation of this write transaction failed after it had begun to change it; the
    /// transaction can only be rolled back, and nothing of it is committed. Holds that
    /// operation's error.
    #[error("the transaction was rolled back: an earlier operation failed: {0}")]
    TransactionFailed(Box<DbError>),
    /// An option is out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// An earlier failure left the in-memory state unreliable; reopen to recover from the log.
    /// Holds that failure.
    #[error("the database is unusable after an earlier failure: {0}")]
    Poisoned(Box<DbError>),
    /// A database opened to be read only (an inspection) was asked to write.
    #[error("{what}: this database was opened read-only")]
    ReadOnly {
        /// What would have been written.
        what: &'static str,
    },
    /// Another owner holds the directory: an open database or passive copy, in another
    /// process or in this one.
    #[error(
        "{} is in use by {}: stop it before opening this database for writing",
        .directory.display(),
        crate::file::lock::describe(.holder)
    )]
    InUse {
        /// The database directory.
        directory: PathBuf,
        /// Who holds it, if its record could be read.
        holder: Option<crate::file::Holder>,
    },
    /// The database (or passive copy) cannot be closed or activated while other handles or
    /// transactions still use it; it stays open for them.
    #[error(
        "the database is still in use by {handles} other handle(s) and {transactions} \
         transaction(s): end them first"
    )]
    StillInUse {
        /// Other clones of the handle still alive.
        handles: usize,
        /// Read or write transactions still alive.
        transactions: usize,
    },
    /// A repair was refused before it changed anything: a dirty database whose log recovery
    /// should replay first, or a rebuilt file that failed its integrity check.
    #[error("{}: repair refused: {reason}", .path.display())]
    RepairRefused {
        /// The database file.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// The commit gate refused the commit (a node without its lease, a database moved to
    /// another node); nothing of the transaction was committed.
    #[error("commit refused: {0}")]
    CommitRefused(String),
    /// The commit reached this node's log (and the disk, if durable) but the commit gate
    /// could not confirm it afterwards (the node's lease may have ended while the commit was
    /// on its way): the commit is NOT acknowledged. It may survive or be lost with a
    /// failover: the caller retries it, on whichever node is active (deliveries are
    /// de-duplicated by message id, so a retry of a commit that survived changes nothing).
    #[error("commit not acknowledged (retry it): {0}")]
    NotAcknowledged(String),
}

impl DbError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, operation: &'static str, cause: io::Error) -> Self {
        let path = path.into();
        if crate::error::is_out_of_space(&cause) {
            return Self::OutOfSpace { path, operation };
        }
        Self::Io {
            path,
            operation,
            cause: Arc::new(cause),
        }
    }

    /// Whether the disk (or quota) was full, here, in the log, or in the failure that
    /// poisoned the database or failed the transaction.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            Self::OutOfSpace { .. } => true,
            Self::Log(error) => error.is_out_of_space(),
            Self::Poisoned(cause) | Self::TransactionFailed(cause) => cause.is_out_of_space(),
            _ => false,
        }
    }

    /// Whether this error reports damage (as opposed to I/O failure or misuse).
    pub fn is_damage(&self) -> bool {
        match self {
            Self::Corruption { .. }
            | Self::BadHeader { .. }
            | Self::Truncated { .. }
            | Self::MissingLogGenerations { .. }
            | Self::ForeignLog { .. }
            | Self::ContentMismatch { .. } => true,
            Self::Log(error) => error.is_damage(),
            _ => false,
        }
    }
}
