//! BlueJet's store (`bluejet_engine::db`): one table, every write transaction committed with
//! the default durable `commit()`. The database is `Send + Sync` and shared by every thread.

use super::engine::{Scan, Session, Snapshot, StoreResult, StoreUnderTest};
use super::workload::Record;
use super::CACHE_BYTES;
use bluejet_engine::{Database, Entries, Options};
use std::path::Path;

const TABLE: &str = "kv";

/// An open BlueJet database.
pub struct BlueJetStore {
    database: Database,
}

/// Creates a database in `directory`, with the same cache budget as the other engines.
pub fn open(directory: &Path) -> StoreResult<Box<dyn StoreUnderTest>> {
    let options = Options {
        cache_bytes: CACHE_BYTES,
        ..Options::default()
    };
    let database = Database::open(directory, options)?;
    let mut create = database.begin_write()?;
    create.create_table(TABLE)?;
    create.commit()?;
    Ok(Box::new(BlueJetStore { database }))
}

impl StoreUnderTest for BlueJetStore {
    fn session(&self) -> StoreResult<Box<dyn Session + '_>> {
        Ok(Box::new(BlueJetSession {
            database: &self.database,
        }))
    }

    fn close(self: Box<Self>) -> StoreResult<()> {
        self.database.close()?;
        Ok(())
    }

    fn database_bytes(&self, directory: &Path) -> StoreResult<u64> {
        self.database.checkpoint()?;
        let file = directory.join(bluejet_engine::DATABASE_FILE_NAME);
        let log = super::phases::directory_bytes(directory)? - std::fs::metadata(&file)?.len();
        println!(
            "bluejet: log files after the load: {} MiB (not counted)",
            log >> 20
        );
        Ok(std::fs::metadata(file)?.len())
    }
}

/// A thread's reference to the shared database.
struct BlueJetSession<'d> {
    database: &'d Database,
}

impl Session for BlueJetSession<'_> {
    fn insert(&mut self, records: &[Record]) -> StoreResult<()> {
        let mut transaction = self.database.begin_write()?;
        for record in records {
            transaction.insert(TABLE, &record.key[..], &record.value[..])?;
        }
        transaction.commit()?;
        Ok(())
    }

    fn remove(&mut self, records: &[Record]) -> StoreResult<u64> {
        let mut transaction = self.database.begin_write()?;
        let mut removed = 0;
        for record in records {
            removed += u64::from(transaction.remove(TABLE, &record.key[..])?);
        }
        transaction.commit()?;
        Ok(removed)
    }

    fn read(
        &mut self,
        body: &mut dyn FnMut(&mut dyn Snapshot) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let transaction = self.database.begin_read()?;
        let table = transaction.open_table(TABLE)?;
        body(&mut BlueJetSnapshot {
            get: |key: &[u8]| -> StoreResult<Option<Vec<u8>>> { Ok(table.get(key)?) },
            scan: |start: &[u8], count: usize| -> StoreResult<Scan> {
                scan_entries(table.entries(start..)?, count)
            },
        })
    }
}

/// The table as one read transaction sees it, reached through closures over the engine's
/// table so that this adapter names neither the table's nor the range iterator's type (what
/// they borrow, and so their lifetimes, is the engine's choice).
struct BlueJetSnapshot<G, S> {
    get: G,
    scan: S,
}

impl<G, S> Snapshot for BlueJetSnapshot<G, S>
where
    G: FnMut(&[u8]) -> StoreResult<Option<Vec<u8>>>,
    S: FnMut(&[u8], usize) -> StoreResult<Scan>,
{
    fn get_into(&mut self, key: &[u8], value: &mut Vec<u8>) -> StoreResult<bool> {
        match (self.get)(key)? {
            Some(found) => {
                // The engine hands out an owned value: take it rather than copy it.
                *value = found;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scan(&mut self, start: &[u8], count: usize) -> StoreResult<Scan> {
        (self.scan)(start, count)
    }
}

/// Visits up to `count` of `entries`, asking for none beyond them. Values are looked at in
/// place, as redb's guards are: neither engine copies them here.
fn scan_entries<'r>(entries: Entries<'r>, count: usize) -> StoreResult<Scan> {
    let mut scan = Scan::default();
    if count == 0 {
        return Ok(scan);
    }
    for entry in entries {
        let entry = entry?;
        scan.add(entry.value()?.len());
        if scan.entries == count {
            break;
        }
    }
    Ok(scan)
}
