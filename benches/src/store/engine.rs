//! What each engine implements to be measured: a store that hands out per-thread sessions,
//! sessions that write in durable transactions and read through snapshots.

use super::workload::Record;
use std::fmt;
use std::path::Path;

/// An error from any engine or from a phase's checks, kept as text so that errors of every
/// engine (whatever their `Send`/`Sync`) convert with `?` and cross thread joins.
#[derive(Debug)]
pub struct StoreError(String);

impl StoreError {
    /// An error that is not an engine's: a failed check.
    pub fn msg(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl<E: std::error::Error> From<E> for StoreError {
    fn from(error: E) -> Self {
        Self(error.to_string())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The result of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// One engine's open store.
pub trait StoreUnderTest: Sync {
    /// A handle for the calling thread: a new connection where the engine's handles are not
    /// shared between threads (SQLite), else a reference to the one database.
    fn session(&self) -> StoreResult<Box<dyn Session + '_>>;

    /// Closes the store; every session must have been dropped.
    fn close(self: Box<Self>) -> StoreResult<()>;

    /// Bytes of the database itself in `directory`: by default every file there (SQLite
    /// counts its WAL). BlueJet counts its page file after a checkpoint, not its log, which
    /// is truncated once backed up (and which redb and SQLite do not keep at all).
    fn database_bytes(&self, directory: &Path) -> StoreResult<u64> {
        super::phases::directory_bytes(directory)
    }
}

/// One thread's access to a store.
pub trait Session {
    /// Inserts every record in one write transaction and commits it durably.
    fn insert(&mut self, records: &[Record]) -> StoreResult<()>;

    /// Removes every record's key in one durable write transaction; returns how many existed.
    fn remove(&mut self, records: &[Record]) -> StoreResult<u64>;

    /// Runs `body` against one read snapshot. A callback rather than a returned snapshot, so
    /// each engine can keep its transaction, tables and statements on the stack.
    fn read(
        &mut self,
        body: &mut dyn FnMut(&mut dyn Snapshot) -> StoreResult<()>,
    ) -> StoreResult<()>;
}

/// Reads from one consistent snapshot.
pub trait Snapshot {
    /// Copies the value of `key` into `value` (a reused buffer, so no engine pays for an
    /// allocation its API does not need); false if the key is absent.
    fn get_into(&mut self, key: &[u8], value: &mut Vec<u8>) -> StoreResult<bool>;

    /// Visits up to `count` entries in key order from the first key at or after `start`.
    fn scan(&mut self, start: &[u8], count: usize) -> StoreResult<Scan>;
}

/// What a range read visited; the value bytes are summed so every value is really read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Entries visited.
    pub entries: usize,
    /// Bytes of their values.
    pub value_bytes: usize,
}

impl Scan {
    /// Counts one entry with a value of `length` bytes.
    pub fn add(&mut self, length: usize) {
        self.entries += 1;
        self.value_bytes += length;
    }
}
