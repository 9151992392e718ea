//! redb: one table of byte-slice keys and values in one file, every write transaction
//! committed with `Durability::Immediate`. The database is shared by every thread.

use super::engine::{Scan, Session, Snapshot, StoreResult, StoreUnderTest};
use super::workload::Record;
use super::CACHE_BYTES;
use ::redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, TableDefinition, WriteTransaction,
};
use std::path::Path;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// An open redb database.
pub struct RedbStore {
    database: Database,
}

/// Creates `store.redb` in `directory` with the table.
pub fn open(directory: &Path) -> StoreResult<Box<dyn StoreUnderTest>> {
    let database = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(directory.join("store.redb"))?;
    // The table exists before the first read, whatever phase comes first.
    let transaction = begin_durable(&database)?;
    transaction.open_table(TABLE)?;
    transaction.commit()?;
    Ok(Box::new(RedbStore { database }))
}

/// A write transaction that syncs at commit. `Immediate` is redb's default, but the
/// comparison rests on it, so it is said rather than assumed.
fn begin_durable(database: &Database) -> StoreResult<WriteTransaction> {
    let mut transaction = database.begin_write()?;
    transaction.set_durability(Durability::Immediate)?;
    Ok(transaction)
}

impl StoreUnderTest for RedbStore {
    fn session(&self) -> StoreResult<Box<dyn Session + '_>> {
        Ok(Box::new(RedbSession {
            database: &self.database,
        }))
    }

    fn close(self: Box<Self>) -> StoreResult<()> {
        drop(self.database);
        Ok(())
    }
}

/// A thread's reference to the shared database.
struct RedbSession<'d> {
    database: &'d Database,
}

impl Session for RedbSession<'_> {
    fn insert(&mut self, records: &[Record]) -> StoreResult<()> {
        let transaction = begin_durable(self.database)?;
        {
            let mut table = transaction.open_table(TABLE)?;
            for record in records {
                table.insert(&record.key[..], &record.value[..])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    fn remove(&mut self, records: &[Record]) -> StoreResult<u64> {
        let transaction = begin_durable(self.database)?;
        let mut removed = 0;
        {
            let mut table = transaction.open_table(TABLE)?;
            for record in records {
                removed += u64::from(table.remove(&record.key[..])?.is_some());
            }
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
        body(&mut RedbSnapshot { table })
    }
}

/// The table as one read transaction sees it.
struct RedbSnapshot {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Snapshot for RedbSnapshot {
    fn get_into(&mut self, key: &[u8], value: &mut Vec<u8>) -> StoreResult<bool> {
        let Some(guard) = self.table.get(key)? else {
            return Ok(false);
        };
        value.clear();
        value.extend_from_slice(guard.value());
        Ok(true)
    }

    fn scan(&mut self, start: &[u8], count: usize) -> StoreResult<Scan> {
        let mut scan = Scan::default();
        for entry in self.table.range(start..)?.take(count) {
            let (_key, value) = entry?;
            scan.add(value.value().len());
        }
        Ok(scan)
    }
}
