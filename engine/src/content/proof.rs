//! The payload of a proof record (log record kind 11), encoded by hand (little-endian):
//! ```text
//!   0  u8   format (1)
//!   1  [3]  zero
//!   4  u32  number of tables
//!   8  u64  entries of every table
//!  16  u64  database checksum (the sum of the tables')
//!  24  per table, in strictly increasing name order:
//!        u16  name length (1..=4096), name (UTF-8), u64 entries, u64 checksum
//! ```
//! Nothing follows the last table. The totals repeat what the tables sum to, so that a
//! payload damaged in a way its record checksum missed is still refused.

use super::{ContentSummary, TableContent};

/// The payload format written.
pub const PROOF_FORMAT: u8 = 1;
/// The longest table name a proof may hold (a key is shorter on every page size).
const MAX_NAME_BYTES: usize = 4096;

/// The payload of a proof record of `summary` (its tables sorted and distinct).
pub fn encode_proof(summary: &ContentSummary) -> Vec<u8> {
    assert!(
        summary
            .tables
            .windows(2)
            .all(|pair| pair[0].table < pair[1].table),
        "a proof's tables are sorted and distinct"
    );
    let totals = summary.totals();
    let mut bytes = Vec::with_capacity(24 + summary.tables.len() * 32);
    bytes.extend_from_slice(&[PROOF_FORMAT, 0, 0, 0]);
    let count = u32::try_from(summary.tables.len()).expect("fewer than 2^32 tables");
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.extend_from_slice(&totals.entries.to_le_bytes());
    bytes.extend_from_slice(&totals.checksum.to_le_bytes());
    for table in &summary.tables {
        let name = table.table.as_bytes();
        assert!(
            (1..=MAX_NAME_BYTES).contains(&name.len()),
            "table name length"
        );
        bytes.extend_from_slice(&(name.len() as u16).to_le_bytes());
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(&table.entries.to_le_bytes());
        bytes.extend_from_slice(&table.checksum.to_le_bytes());
    }
    bytes
}

/// Decodes a proof record's payload; why not, naming the field.
pub fn decode_proof(payload: &[u8]) -> Result<ContentSummary, String> {
    let mut reader = Reader { bytes: payload };
    let head = reader.take(4)?;
    if head != [PROOF_FORMAT, 0, 0, 0] {
        return Err(format!(
            "proof format {:?} (expected {PROOF_FORMAT}, 0, 0, 0)",
            head
        ));
    }
    let count = reader.u32()? as usize;
    // Every table takes at least 19 bytes: a count the payload cannot hold is refused
    // before anything is allocated for it.
    if count > payload.len() / 19 {
        return Err(format!(
            "{count} tables in a payload of {} bytes",
            payload.len()
        ));
    }
    let entries = reader.u64()?;
    let checksum = reader.u64()?;
    let mut tables: Vec<TableContent> = Vec::with_capacity(count);
    for _ in 0..count {
        let table = reader.table()?;
        if tables.last().is_some_and(|last| last.table >= table.table) {
            return Err(format!("table {:?} out of order", table.table));
        }
        tables.push(table);
    }
    if !reader.bytes.is_empty() {
        return Err(format!("{} bytes after the last table", reader.bytes.len()));
    }
    let summary = ContentSummary { tables };
    let totals = summary.totals();
    if (totals.entries, totals.checksum) != (entries, checksum) {
        return Err("the totals are not the sum of the tables".to_owned());
    }
    Ok(summary)
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

    fn sample() -> ContentSummary {
        ContentSummary {
            tables: vec![
                TableContent {
                    table: "folders".into(),
                    entries: 2,
                    checksum: u64::MAX,
                },
                TableContent {
                    table: "messages".into(),
                    entries: 3,
                    checksum: 7,
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let encoded = encode_proof(&sample());
        assert_eq!(decode_proof(&encoded).unwrap(), sample());
        assert_eq!(
            decode_proof(&encode_proof(&ContentSummary::default()))
                .unwrap()
                .tables,
            []
        );
    }

    #[test]
    fn refuses_every_truncation_and_bad_totals() {
        let encoded = encode_proof(&sample());
        for length in 0..encoded.len() {
            assert!(decode_proof(&encoded[..length]).is_err(), "length {length}");
        }
        let mut bad = encoded.clone();
        bad[8] ^= 1;
        assert!(decode_proof(&bad).unwrap_err().contains("totals"));
        let mut huge = encoded;
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_proof(&huge)
            .unwrap_err()
            .contains("tables in a payload"));
    }
}
