//! SQLite (bundled) set up for durable commits: WAL journal, `synchronous=FULL` (every commit
//! syncs the WAL), one `WITHOUT ROWID` table keyed by the blob, prepared statements. A
//! connection cannot be shared between threads, so concurrent sessions each open their own
//! and queue for the write lock through `busy_timeout`.

use super::engine::{Scan, Session, Snapshot, StoreError, StoreResult, StoreUnderTest};
use super::workload::Record;
use super::CACHE_BYTES;
use parking_lot::{Mutex, MutexGuard};
use rusqlite::{CachedStatement, Connection, Statement, TransactionBehavior};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a writer waits for another's write lock: longer than any phase's queue.
const BUSY_TIMEOUT: Duration = Duration::from_secs(120);

const INSERT: &str = "INSERT INTO kv (key, value) VALUES (?1, ?2)";
const DELETE: &str = "DELETE FROM kv WHERE key = ?1";
const GET: &str = "SELECT value FROM kv WHERE key = ?1";
const SCAN: &str = "SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?2";

/// A database file and one connection held for the store's lifetime.
pub struct SqliteStore {
    path: PathBuf,
    // Lent to one session at a time, so single-thread phases keep its warm page cache (a
    // SQLite cache belongs to its connection). Held open all along, so a session closing is
    // never the last connection: SQLite checkpoints and deletes the WAL when the last one
    // closes, which would land inside measured phases.
    keeper: Mutex<Connection>,
}

/// Creates `store.sqlite` in `directory` with the table.
pub fn open(directory: &Path) -> StoreResult<Box<dyn StoreUnderTest>> {
    let path = directory.join("store.sqlite");
    let keeper = connect(&path)?;
    // WAL mode is a property of the file: set once, every later connection uses it.
    let mode: String = keeper.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if mode != "wal" {
        return Err(StoreError::msg(format!(
            "SQLite kept journal mode {mode:?}"
        )));
    }
    keeper.execute_batch("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID")?;
    Ok(Box::new(SqliteStore {
        path,
        keeper: Mutex::new(keeper),
    }))
}

/// A connection with the per-connection settings every session shares.
fn connect(path: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    // Negative: a size in KiB rather than in pages.
    connection.pragma_update(None, "cache_size", -((CACHE_BYTES / 1024) as i64))?;
    Ok(connection)
}

impl StoreUnderTest for SqliteStore {
    fn session(&self) -> StoreResult<Box<dyn Session + '_>> {
        let connection = match self.keeper.try_lock() {
            Some(keeper) => Handle::Kept(keeper),
            None => Handle::Own(connect(&self.path)?),
        };
        Ok(Box::new(SqliteSession { connection }))
    }

    fn close(self: Box<Self>) -> StoreResult<()> {
        let keeper = self.keeper.into_inner();
        keeper.close().map_err(|(_, error)| error.into())
    }
}

/// A session's connection: the store's own while it is free, else a new one.
enum Handle<'s> {
    Kept(MutexGuard<'s, Connection>),
    Own(Connection),
}

impl Deref for Handle<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            Handle::Kept(keeper) => keeper,
            Handle::Own(connection) => connection,
        }
    }
}

impl DerefMut for Handle<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match self {
            Handle::Kept(keeper) => keeper,
            Handle::Own(connection) => connection,
        }
    }
}

/// One thread's connection.
struct SqliteSession<'s> {
    connection: Handle<'s>,
}

impl SqliteSession<'_> {
    /// Runs `body` in a write transaction and commits it. `IMMEDIATE` takes the write lock
    /// at the start, so concurrent writers queue on the busy handler instead of failing
    /// when a read lock cannot be upgraded.
    fn write<T>(
        &mut self,
        sql: &str,
        body: impl FnOnce(&mut CachedStatement<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Cached: a session's commits reuse one prepared statement.
        let result = body(&mut transaction.prepare_cached(sql)?)?;
        transaction.commit()?;
        Ok(result)
    }
}

impl Session for SqliteSession<'_> {
    fn insert(&mut self, records: &[Record]) -> StoreResult<()> {
        self.write(INSERT, |insert| {
            for record in records {
                insert.execute((&record.key[..], &record.value[..]))?;
            }
            Ok(())
        })
    }

    fn remove(&mut self, records: &[Record]) -> StoreResult<u64> {
        self.write(DELETE, |delete| {
            let mut removed = 0;
            for record in records {
                removed += delete.execute([&record.key[..]])? as u64;
            }
            Ok(removed)
        })
    }

    fn read(
        &mut self,
        body: &mut dyn FnMut(&mut dyn Snapshot) -> StoreResult<()>,
    ) -> StoreResult<()> {
        // A deferred transaction: one read snapshot for the whole body, as the other engines
        // read, instead of a lock taken and released per statement.
        let transaction = self.connection.transaction()?;
        let mut snapshot = SqliteSnapshot {
            get: transaction.prepare(GET)?,
            scan: transaction.prepare(SCAN)?,
        };
        body(&mut snapshot)?;
        drop(snapshot);
        transaction.commit()?;
        Ok(())
    }
}

/// The prepared reads of one read transaction.
struct SqliteSnapshot<'c> {
    get: Statement<'c>,
    scan: Statement<'c>,
}

impl Snapshot for SqliteSnapshot<'_> {
    fn get_into(&mut self, key: &[u8], value: &mut Vec<u8>) -> StoreResult<bool> {
        let mut rows = self.get.query([key])?;
        let Some(row) = rows.next()? else {
            return Ok(false);
        };
        value.clear();
        value.extend_from_slice(row.get_ref(0)?.as_blob()?);
        Ok(true)
    }

    fn scan(&mut self, start: &[u8], count: usize) -> StoreResult<Scan> {
        let mut rows = self.scan.query((start, count as i64))?;
        let mut scan = Scan::default();
        while let Some(row) = rows.next()? {
            scan.add(row.get_ref(1)?.as_blob()?.len());
        }
        Ok(scan)
    }
}
