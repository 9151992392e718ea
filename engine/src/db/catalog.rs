//! The catalog: a tree mapping table names to their roots, entry counts and content
//! checksums.
//!
//! Catalog values are 25 bytes, inline:
//! `u8 format (2), u64 root page (0: empty), u64 count, u64 content checksum`.
//! Format 1 (17 bytes, without the checksum) was written before content checksums and is
//! refused: nothing could prove such a table's content.

use super::DbError;
use crate::content::TableContent;
use crate::page::format::{read_u64, PageProblem};

/// The catalog value format written.
const CATALOG_FORMAT: u8 = 2;
/// Bytes of a catalog value.
const CATALOG_VALUE_BYTES: usize = 25;

/// What the catalog records of a table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableMeta {
    /// Root page of the table's tree (0 while empty).
    pub root: u64,
    /// Number of entries.
    pub count: u64,
    /// The sum (mod 2^64) of its entries' hashes ([`crate::content::entry_hash`]).
    pub checksum: u64,
}

impl TableMeta {
    /// The catalog value.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(CATALOG_VALUE_BYTES);
        bytes.push(CATALOG_FORMAT);
        bytes.extend_from_slice(&self.root.to_le_bytes());
        bytes.extend_from_slice(&self.count.to_le_bytes());
        bytes.extend_from_slice(&self.checksum.to_le_bytes());
        debug_assert_eq!(bytes.len(), CATALOG_VALUE_BYTES);
        bytes
    }

    /// Decodes a catalog value read from the catalog tree rooted at `catalog_root`.
    pub fn decode(
        bytes: &[u8],
        path: &std::path::Path,
        catalog_root: u64,
    ) -> Result<Self, DbError> {
        if bytes.len() != CATALOG_VALUE_BYTES || bytes[0] != CATALOG_FORMAT {
            return Err(DbError::Corruption {
                path: path.to_owned(),
                page: catalog_root,
                problem: PageProblem::Malformed(format!(
                    "catalog entry of {} bytes, format {:?} (expected {CATALOG_VALUE_BYTES} \
                     bytes, format {CATALOG_FORMAT})",
                    bytes.len(),
                    bytes.first()
                )),
            });
        }
        Ok(Self {
            root: read_u64(bytes, 1),
            count: read_u64(bytes, 9),
            checksum: read_u64(bytes, 17),
        })
    }

    /// The table's part of the content summary.
    pub fn content(&self, table: String) -> TableContent {
        TableContent {
            table,
            entries: self.count,
            checksum: self.checksum,
        }
    }
}
