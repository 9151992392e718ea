//! Verification that a copy is restorable: the logical content of the active and the
//! passive compared table by table at the same log position.

use bluejet_engine::{DbError, ReadTransaction};
use serde::Serialize;
use std::collections::BTreeMap;

/// A digest of one table's content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableDigest {
    /// Entries.
    pub entries: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
    /// crc32c over every entry in key order, each as key length (u32 LE), key, value
    /// length (u32 LE), value.
    pub crc32c: u32,
}

impl TableDigest {
    /// Adds the next entry (entries must come in key order).
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let mut crc = self.crc32c;
        for part in [key, value] {
            crc = crc32c::crc32c_append(
                crc,
                &u32::try_from(part.len())
                    .expect("a key or value fits u32: values are at most 256 MiB")
                    .to_le_bytes(),
            );
            crc = crc32c::crc32c_append(crc, part);
        }
        self.crc32c = crc;
        self.entries += 1;
        self.bytes += (key.len() + value.len()) as u64;
    }
}

/// Digests of every table, by name.
pub type ContentDigest = BTreeMap<String, TableDigest>;

/// The digest of every table a snapshot sees.
pub fn digest(read: &ReadTransaction) -> Result<ContentDigest, DbError> {
    let mut digests = ContentDigest::new();
    for name in read.table_names()? {
        let table = read.open_table(&name)?;
        let mut digest = TableDigest::default();
        for entry in table.range(..)? {
            let (key, value) = entry?;
            digest.add(&key, &value);
        }
        digests.insert(name, digest);
    }
    Ok(digests)
}

/// The differences between two digests, one line per table; empty when they agree.
pub fn differences(active: &ContentDigest, passive: &ContentDigest) -> Vec<String> {
    let mut found = Vec::new();
    for (name, digest) in active {
        match passive.get(name) {
            None => found.push(format!("table {name}: missing on the passive")),
            Some(other) if other != digest => found.push(format!(
                "table {name}: active {} entries crc {:#010x}, passive {} entries crc {:#010x}",
                digest.entries, digest.crc32c, other.entries, other.crc32c
            )),
            Some(_) => {}
        }
    }
    for name in passive.keys().filter(|name| !active.contains_key(*name)) {
        found.push(format!("table {name}: only on the passive"));
    }
    found
}
