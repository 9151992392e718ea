//! A recount: every entry of every table read and hashed, to check a stored summary.

use super::{entry_hash, ContentSummary, TableContent};
use crate::db::{DbError, ReadTransaction};

/// The content of `read`'s snapshot, from its entries (not from the counts and checksums
/// its catalog stores: compare with [`ReadTransaction::content`]).
///
/// ```
/// use bluejet_engine::recount;
/// use bluejet_engine::db::{Database, Options};
/// let directory = tempfile::tempdir().unwrap();
/// let db = Database::open(directory.path(), Options::default()).unwrap();
/// let mut write = db.begin_write().unwrap();
/// write.create_table("mail").unwrap();
/// write.insert("mail", b"<a@x>", b"hello").unwrap();
/// write.commit().unwrap();
/// let read = db.begin_read().unwrap();
/// assert_eq!(recount(&read).unwrap(), read.content().unwrap());
/// # drop(read);
/// # db.close().unwrap();
/// ```
pub fn recount(read: &ReadTransaction) -> Result<ContentSummary, DbError> {
    let mut tables = Vec::new();
    for name in read.table_names()? {
        let table = read.open_table(&name)?;
        let mut content = TableContent {
            table: name,
            ..TableContent::default()
        };
        for entry in table.entries(..)? {
            let entry = entry?;
            let hash = entry_hash(&content.table, entry.key(), &entry.value()?);
            content.entries += 1;
            content.checksum = content.checksum.wrapping_add(hash);
        }
        tables.push(content);
    }
    Ok(ContentSummary { tables })
}
