//! Describing records: kind names, one-line summaries and per-kind tallies.

use crate::output;
use bluejet_engine::format::record::kind;
use bluejet_engine::format::record::Record;
use bluejet_engine::LogPosition;
use bluejet_engine::{ContentProof, TableContent};
use serde::Serialize;
use std::collections::BTreeMap;

/// The name of a record kind, e.g. `put`; `kind-200` for one this build does not know.
pub fn kind_name(code: u8) -> String {
    let name = match code {
        kind::BEGIN => "begin",
        kind::COMMIT => "commit",
        kind::ROLLBACK => "rollback",
        kind::PUT => "put",
        kind::DELETE => "delete",
        kind::CREATE_TABLE => "create-table",
        kind::DROP_TABLE => "drop-table",
        kind::START => "start",
        kind::STOP => "stop",
        kind::PUT_CHUNK => "put-chunk",
        kind::PROOF => "proof",
        other => return format!("kind-{other}"),
    };
    name.into()
}

/// One record, described for a listing.
#[derive(Clone, Debug)]
pub struct RecordRow {
    /// Where it starts.
    pub position: LogPosition,
    /// Its kind code.
    pub kind: u8,
    /// Framed size: header and payload.
    pub encoded_bytes: usize,
    /// The transaction it belongs to, if any.
    pub transaction: Option<u64>,
    /// The table it touches, if any.
    pub table: Option<String>,
    /// The key it touches, if any.
    pub key: Option<Vec<u8>>,
    /// Bytes of the value of a put.
    pub value_bytes: Option<usize>,
    /// The time a commit, start or stop record carries.
    pub time_micros: Option<u64>,
    /// The content summary a proof record carries.
    pub proof: Option<ContentProof>,
    /// Why the payload did not decode, if it did not.
    pub problem: Option<String>,
}

impl RecordRow {
    /// Describes the record at `position` from its decoding (`Ok(None)`: unknown kind).
    pub fn new(
        position: LogPosition,
        kind: u8,
        encoded_bytes: usize,
        decoded: Result<Option<Record>, String>,
    ) -> Self {
        let mut row = Self {
            position,
            kind,
            encoded_bytes,
            transaction: None,
            table: None,
            key: None,
            value_bytes: None,
            time_micros: None,
            proof: None,
            problem: None,
        };
        let record = match decoded {
            Ok(Some(record)) => record,
            Ok(None) => return row,
            Err(problem) => {
                row.problem = Some(problem);
                return row;
            }
        };
        row.transaction = record.transaction();
        match record {
            Record::Put {
                table, key, value, ..
            } => {
                row.table = Some(table);
                row.key = Some(key);
                row.value_bytes = Some(value.len());
            }
            Record::PutChunk {
                table, key, bytes, ..
            } => {
                row.table = Some(table);
                row.key = Some(key);
                row.value_bytes = Some(bytes.len());
            }
            Record::Delete { table, key, .. } => {
                row.table = Some(table);
                row.key = Some(key);
            }
            Record::CreateTable { table, .. } | Record::DropTable { table, .. } => {
                row.table = Some(table);
            }
            Record::Commit { time_micros, .. }
            | Record::Start { time_micros }
            | Record::Stop { time_micros } => row.time_micros = Some(time_micros),
            Record::Proof(summary) => row.proof = Some(summary),
            Record::Begin { .. } | Record::Rollback { .. } => {}
        }
        row
    }

    /// One line of text.
    pub fn text(&self) -> String {
        let mut line = format!(
            "{:<14} {:<12} {:>8} B",
            self.position.to_string(),
            kind_name(self.kind),
            self.encoded_bytes
        );
        if let Some(transaction) = self.transaction {
            line.push_str(&format!("  tx {transaction}"));
        }
        if let Some(table) = &self.table {
            line.push_str(&format!("  {table}"));
        }
        if let Some(key) = &self.key {
            line.push_str(&format!(" [{}]", output::byte_string(key, 60)));
        }
        if let Some(value) = self.value_bytes {
            line.push_str(&format!("  value {value} B"));
        }
        if let Some(time) = self.time_micros {
            line.push_str(&format!("  at {}", output::time(time)));
        }
        if let Some(proof) = &self.proof {
            line.push_str(&format!(
                "  {} entries in {}, content checksum {:016x}{}",
                proof.totals.entries,
                output::plural(u64::from(proof.tables), "table"),
                proof.totals.checksum,
                if proof.listed.is_some() {
                    ""
                } else {
                    " (tables not listed)"
                }
            ));
        }
        if let Some(problem) = &self.problem {
            line.push_str(&format!("  UNDECODABLE: {problem}"));
        }
        line
    }

    /// The row as it goes into JSON.
    pub fn view(&self) -> RecordJson<'_> {
        RecordJson {
            position: self.position,
            kind: kind_name(self.kind),
            kind_code: self.kind,
            encoded_bytes: self.encoded_bytes,
            transaction: self.transaction,
            table: self.table.as_deref(),
            key: self
                .key
                .as_ref()
                .map(|key| output::byte_string(key, usize::MAX)),
            value_bytes: self.value_bytes,
            time_micros: self.time_micros,
            proof: self.proof.as_ref().map(|proof| ProofJson {
                entries: proof.totals.entries,
                checksum: format!("{:016x}", proof.totals.checksum),
                table_count: proof.tables,
                tables: proof.listed.as_ref().map(|listed| &listed.tables),
            }),
            problem: self.problem.as_deref(),
        }
    }
}

/// One record in JSON.
#[derive(Serialize)]
pub struct RecordJson<'a> {
    position: LogPosition,
    /// The kind's name (`put`, `commit`...).
    kind: String,
    kind_code: u8,
    encoded_bytes: usize,
    transaction: Option<u64>,
    table: Option<&'a str>,
    /// The key, escaped as text.
    key: Option<String>,
    value_bytes: Option<usize>,
    time_micros: Option<u64>,
    proof: Option<ProofJson<'a>>,
    problem: Option<&'a str>,
}

/// The content summary a proof record carries, in JSON.
#[derive(Serialize)]
struct ProofJson<'a> {
    entries: u64,
    checksum: String,
    table_count: u32,
    tables: Option<&'a Vec<TableContent>>,
}

/// Counts and bytes of records by kind.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    by_kind: BTreeMap<u8, (u64, u64)>,
    /// Records counted.
    pub records: u64,
    /// Framed bytes counted.
    pub bytes: u64,
    /// Bytes of put values.
    pub value_bytes: u64,
}

impl Tally {
    /// Counts one record.
    pub fn add(&mut self, row: &RecordRow) {
        let entry = self.by_kind.entry(row.kind).or_default();
        entry.0 += 1;
        entry.1 += row.encoded_bytes as u64;
        self.records += 1;
        self.bytes += row.encoded_bytes as u64;
        self.value_bytes += row.value_bytes.unwrap_or(0) as u64;
    }

    /// Records of `kind` counted.
    pub fn count(&self, kind: u8) -> u64 {
        self.by_kind.get(&kind).map_or(0, |entry| entry.0)
    }

    /// Text lines: a total, then one line per kind.
    pub fn text(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "records: {} in {} ({} commits, {} of put values)",
            self.records,
            output::bytes(self.bytes),
            self.count(kind::COMMIT),
            output::bytes(self.value_bytes)
        )];
        for (&code, &(count, bytes)) in &self.by_kind {
            lines.push(format!(
                "  {:<12} {count:>8}  {:>12}",
                kind_name(code),
                output::bytes(bytes)
            ));
        }
        lines
    }

    /// The tally as JSON.
    pub fn json(&self) -> TallyJson {
        TallyJson {
            records: self.records,
            bytes: self.bytes,
            commits: self.count(kind::COMMIT),
            value_bytes: self.value_bytes,
            by_kind: self
                .by_kind
                .iter()
                .map(|(&code, &(count, bytes))| (kind_name(code), KindJson { count, bytes }))
                .collect(),
        }
    }
}

/// A [`Tally`] in JSON: totals, then counts and bytes by kind name.
#[derive(Serialize)]
pub struct TallyJson {
    records: u64,
    bytes: u64,
    commits: u64,
    value_bytes: u64,
    by_kind: BTreeMap<String, KindJson>,
}

/// Records of one kind in a [`TallyJson`].
#[derive(Serialize)]
struct KindJson {
    count: u64,
    bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_describe_puts() {
        let record = Record::Put {
            transaction: 7,
            table: "messages".into(),
            key: b"alice/1".to_vec(),
            value: vec![b'x'; 100],
        };
        let row = RecordRow::new(LogPosition::new(2, 40), kind::PUT, 150, Ok(Some(record)));
        let text = row.text();
        assert!(text.contains("put"), "{text}");
        assert!(text.contains("tx 7"), "{text}");
        assert!(text.contains("messages [alice/1]"), "{text}");
        assert!(text.contains("value 100 B"), "{text}");
        let mut tally = Tally::default();
        tally.add(&row);
        assert_eq!(
            (tally.records, tally.bytes, tally.value_bytes),
            (1, 150, 100)
        );
        assert_eq!(kind_name(200), "kind-200");
    }
}
