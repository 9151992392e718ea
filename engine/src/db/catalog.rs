//! The catalog: a tree mapping table names to their roots and entry counts.
//!
//! Catalog values are 17 bytes, inline: `u8 format (1), u64 root page (0: empty), u64 count`.

use super::DbError;
use crate::page::format::{read_u64, PageProblem};

/// What the catalog records of a table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableMeta {
    /// Root page of the table's tree (0 while empty).
    pub root: u64,
    /// Number of entries.
    pub count: u64,
}

impl TableMeta {
    /// The catalog value.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(17);
        bytes.push(1);
        bytes.extend_from_slice(&self.root.to_le_bytes());
        bytes.extend_from_slice(&self.count.to_le_bytes());
        bytes
    }

    /// Decodes a catalog value read from the catalog tree rooted at `catalog_root`.
    pub fn decode(
        bytes: &[u8],
        path: &std::path::Path,
        catalog_root: u64,
    ) -> Result<Self, DbError> {
        if bytes.len() != 17 || bytes[0] != 1 {
            return Err(DbError::Corruption {
                path: path.to_owned(),
                page: catalog_root,
                problem: PageProblem::Malformed(format!(
                    "catalog entry of {} bytes, format {:?}",
                    bytes.len(),
                    bytes.first()
                )),
            });
        }
        Ok(Self {
            root: read_u64(bytes, 1),
            count: read_u64(bytes, 9),
        })
    }
}
