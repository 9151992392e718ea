//! The proof record (log record kind 11): the content summary of the database at a point of
//! the log. Its payload, encoded by hand (little-endian):
//! ```text
//!   0  u8   format (1)
//!   1  u8   flags: bit 0 set when the tables are listed
//!   2  [2]  zero
//!   4  u32  number of tables
//!   8  u64  entries of every table
//!  16  u64  database checksum (the sum of the tables')
//!  24  when listed, per table in strictly increasing name order:
//!        u16  name length (1..=4096), name (UTF-8), u64 entries, u64 checksum
//! ```
//! Nothing follows the last table. The tables are listed only while the list takes at most
//! [`MAX_LISTED_BYTES`]: a proof is written in every generation, and a database of many
//! tables (one per mailbox) must neither fill its generations with proofs nor exceed the
//! largest record a generation holds (found by an adversarial round: two thousand tables
//! stopped every commit). Without the list a proof still carries the totals; a difference
//! is then named by a recount. Listed, the totals repeat what the tables sum to, so that a
//! payload damaged in a way its record checksum missed is still refused.

use super::{ContentDifference, ContentSummary, ContentTotals, TableContent};

/// The payload format written.
pub const PROOF_FORMAT: u8 = 1;
/// The longest table list a proof carries, in bytes.
pub const MAX_LISTED_BYTES: usize = 16 << 10;
/// The longest table name a proof may hold (a key is shorter on every page size).
const MAX_NAME_BYTES: usize = 4096;
/// Flags bit: the tables are listed.
const LISTED: u8 = 1;

/// What a proof record says: the totals, and each table while they are few enough.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentProof {
    /// Tables in the database.
    pub tables: u32,
    /// Entries and checksum of every table together.
    pub totals: ContentTotals,
    /// Every table's part, when listed.
    pub listed: Option<ContentSummary>,
}

impl ContentProof {
    /// The proof of `summary`: its tables listed when the list is short enough.
    pub fn of(summary: &ContentSummary) -> Self {
        let bytes: usize = summary.tables.iter().map(|t| 18 + t.table.len()).sum();
        // A name the list cannot hold (a table named by the empty string, which a key may
        // be) leaves the tables unlisted: encoding it panicked, and every later generation's
        // first commit with it (found by an adversarial round).
        let listable = summary
            .tables
            .iter()
            .all(|t| (1..=MAX_NAME_BYTES).contains(&t.table.len()));
        Self {
            tables: u32::try_from(summary.tables.len()).unwrap_or(u32::MAX),
            totals: summary.totals(),
            listed: (listable && bytes <= MAX_LISTED_BYTES).then(|| summary.clone()),
        }
    }

    /// How `found` differs from this proof: the first listed table that differs, else the
    /// totals (named as the whole database when no table is listed).
    pub fn first_difference(&self, found: &ContentSummary) -> Option<ContentDifference> {
        if let Some(difference) = self.listed.as_ref().and_then(|l| l.first_difference(found)) {
            return Some(difference);
        }
        let totals = found.totals();
        (totals != self.totals).then(|| ContentDifference {
            table: format!(
                "(the database's totals: this proof lists none of its {} tables)",
                self.tables
            ),
            expected: Some((self.totals.entries, self.totals.checksum)),
            found: Some((totals.entries, totals.checksum)),
        })
    }

    /// The record's payload.
    pub fn encode(&self) -> Vec<u8> {
        let flags = if self.listed.is_some() { LISTED } else { 0 };
        let mut bytes = vec![PROOF_FORMAT, flags, 0, 0];
        bytes.extend_from_slice(&self.tables.to_le_bytes());
        bytes.extend_from_slice(&self.totals.entries.to_le_bytes());
        bytes.extend_from_slice(&self.totals.checksum.to_le_bytes());
        let Some(listed) = &self.listed else {
            return bytes;
        };
        assert!(
            listed
                .tables
                .windows(2)
                .all(|pair| pair[0].table < pair[1].table),
            "a proof's tables are sorted and distinct"
        );
        assert_eq!(
            listed.totals(),
            self.totals,
            "a proof's totals are its tables' sum"
        );
        for table in &listed.tables {
            let name = table.table.as_bytes();
            assert!(
                (1..=MAX_NAME_BYTES).contains(&name.len()),
                "table name length"
            );
            bytes.extend_from_slice(
                &u16::try_from(name.len())
                    .expect("asserted above: at most MAX_NAME_BYTES")
                    .to_le_bytes(),
            );
            bytes.extend_from_slice(name);
            bytes.extend_from_slice(&table.entries.to_le_bytes());
            bytes.extend_from_slice(&table.checksum.to_le_bytes());
        }
        bytes
    }

    /// Decodes a proof record's payload; why not, naming the field.
    pub fn decode(payload: &[u8]) -> Result<Self, String> {
        let mut reader = Reader { bytes: payload };
        let head = reader.take(4)?;
        if head[0] != PROOF_FORMAT || head[1] & !LISTED != 0 || head[2..] != [0, 0] {
            return Err(format!(
                "proof format {head:?} (expected {PROOF_FORMAT}, flags 0 or 1, 0, 0)"
            ));
        }
        let tables = reader.u32()?;
        let totals = ContentTotals {
            entries: reader.u64()?,
            checksum: reader.u64()?,
        };
        let listed = match head[1] & LISTED {
            0 => None,
            _ => Some(reader.tables(tables as usize, payload.len())?),
        };
        if !reader.bytes.is_empty() {
            return Err(format!("{} bytes after the proof", reader.bytes.len()));
        }
        if listed
            .as_ref()
            .is_some_and(|listed| listed.totals() != totals)
        {
            return Err("the totals are not the sum of the tables".to_owned());
        }
        Ok(Self {
            tables,
            totals,
            listed,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < length {
            return Err(format!("ends {} bytes short", length - self.bytes.len()));
        }
        let (taken, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(taken)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let bytes = self.take(2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let bytes: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
        Ok(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let bytes: [u8; 8] = self.take(8)?.try_into().expect("8 bytes");
        Ok(u64::from_le_bytes(bytes))
    }

    /// `count` tables, in strictly increasing name order.
    fn tables(&mut self, count: usize, payload_bytes: usize) -> Result<ContentSummary, String> {
        // Every table takes at least 19 bytes: a count the payload cannot hold is refused
        // before anything is allocated for it.
        if count > payload_bytes / 19 {
            return Err(format!(
                "{count} tables in a payload of {payload_bytes} bytes"
            ));
        }
        let mut tables: Vec<TableContent> = Vec::with_capacity(count);
        for _ in 0..count {
            let table = self.table()?;
            if tables.last().is_some_and(|last| last.table >= table.table) {
                return Err(format!("table {:?} out of order", table.table));
            }
            tables.push(table);
        }
        Ok(ContentSummary { tables })
    }

    fn table(&mut self) -> Result<TableContent, String> {
        let length = self.u16()? as usize;
        if !(1..=MAX_NAME_BYTES).contains(&length) {
            return Err(format!("table name of {length} bytes"));
        }
        let name = std::str::from_utf8(self.take(length)?)
            .map_err(|_| "table name not UTF-8".to_owned())?
            .to_owned();
        Ok(TableContent {
            table: name,
            entries: self.u64()?,
            checksum: self.u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(tables: usize, name_bytes: usize) -> ContentSummary {
        ContentSummary {
            tables: (0..tables)
                .map(|n| TableContent {
                    table: format!("{n:0width$}", width = name_bytes),
                    entries: n as u64,
                    checksum: u64::MAX - n as u64,
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips_listed_and_unlisted() {
        for (tables, listed) in [(0, true), (2, true), (100, true), (2_000, false)] {
            let proof = ContentProof::of(&summary(tables, 40));
            assert_eq!(proof.listed.is_some(), listed, "{tables} tables");
            assert!(proof.encode().len() <= 24 + MAX_LISTED_BYTES);
            assert_eq!(ContentProof::decode(&proof.encode()).unwrap(), proof);
        }
    }

    #[test]
    fn refuses_every_truncation_and_bad_totals() {
        let encoded = ContentProof::of(&summary(3, 8)).encode();
        for length in 0..encoded.len() {
            assert!(
                ContentProof::decode(&encoded[..length]).is_err(),
                "length {length}"
            );
        }
        let mut bad = encoded.clone();
        bad[8] ^= 1;
        assert!(ContentProof::decode(&bad).unwrap_err().contains("totals"));
        let mut huge = encoded.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(ContentProof::decode(&huge)
            .unwrap_err()
            .contains("tables in a payload"));
        let mut flags = encoded;
        flags[1] = 2;
        assert!(ContentProof::decode(&flags).is_err());
    }

    #[test]
    fn a_table_named_by_the_empty_string_leaves_the_tables_unlisted() {
        let mut with_empty = summary(3, 8);
        with_empty.tables.insert(
            0,
            TableContent {
                table: String::new(),
                entries: 1,
                checksum: 5,
            },
        );
        let proof = ContentProof::of(&with_empty);
        assert!(proof.listed.is_none());
        assert_eq!(ContentProof::decode(&proof.encode()).unwrap(), proof);
        assert!(proof.first_difference(&with_empty).is_none());
    }

    #[test]
    fn an_unlisted_proof_still_sees_a_difference_in_the_totals() {
        let many = summary(2_000, 40);
        let proof = ContentProof::of(&many);
        assert!(proof.first_difference(&many).is_none());
        let mut changed = many.clone();
        changed.tables[7].checksum ^= 1;
        let difference = proof.first_difference(&changed).unwrap();
        assert!(difference.table.contains("2000 tables"), "{difference}");
    }
}
