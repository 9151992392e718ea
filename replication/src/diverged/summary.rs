//! The lost-mail report: a diverged directory's transactions as people and `--json` read
//! them (commit time, generation, tables, keys, operation kinds, value sizes, and the
//! messages among them).

use super::decode::{Decoded, Operation, Transaction, Unreadable};
use super::mail::{self, MailItem};
use serde::{Deserialize, Serialize};

/// The version of the JSON document; raised when a field changes meaning.
pub const SCHEMA_VERSION: u32 = 1;
/// Bytes of a key shown, at most.
const MAX_KEY_BYTES: usize = 512;

/// What a diverged directory holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DivergedSummary {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The directory.
    pub directory: String,
    /// The epoch the old active rejoined at.
    pub epoch: u64,
    /// The last generation both logs hold, if one was found.
    pub common_generation: Option<u32>,
    /// Why the files were moved aside.
    pub reason: String,
    /// The divergent files decoded.
    pub files: Vec<FileSummary>,
    /// Files the report names that cannot be read.
    pub unreadable: Vec<Unreadable>,
    /// Commits whose beginning lies before these files: not listed.
    pub incomplete: u64,
    /// Counts.
    pub totals: Totals,
    /// The transactions the new active never had, in commit order.
    pub transactions: Vec<TransactionSummary>,
}

/// One divergent file, as the report names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSummary {
    /// Its name.
    pub name: String,
    /// Its generation.
    pub generation: Option<u32>,
    /// Commits the report counts in it.
    pub commits: u64,
    /// Bytes at its stream's start the new active holds too (skipped).
    pub shared_prefix_bytes: u64,
}

/// Counts over the transactions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Transactions.
    pub transactions: u64,
    /// Operations.
    pub operations: u64,
    /// Bytes of the values put.
    pub value_bytes: u64,
    /// Messages recognised.
    pub messages: u64,
}

/// One divergent transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionSummary {
    /// Its id in the old active's log.
    pub transaction: u64,
    /// Its commit time (µs since the Unix epoch).
    pub commit_micros: u64,
    /// The generation holding its Commit.
    pub generation: u32,
    /// The file holding its Commit.
    pub file: String,
    /// The tables it wrote, in order of first use.
    pub tables: Vec<String>,
    /// Its operations.
    pub operations: Vec<OperationSummary>,
    /// The messages it stored.
    pub messages: Vec<MailItem>,
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationSummary {
    /// `put`, `delete`, `create-table` or `drop-table`.
    pub kind: String,
    /// The table.
    pub table: String,
    /// The key (printable: other bytes escaped), if the operation has one.
    pub key: Option<String>,
    /// The value's size, for a put.
    pub value_bytes: Option<u64>,
}

/// The report of a decoded directory.
pub fn summarize(decoded: &Decoded) -> DivergedSummary {
    let transactions: Vec<TransactionSummary> =
        decoded.transactions.iter().map(transaction).collect();
    let totals = Totals {
        transactions: transactions.len() as u64,
        operations: transactions.iter().map(|t| t.operations.len() as u64).sum(),
        value_bytes: transactions
            .iter()
            .flat_map(|t| &t.operations)
            .filter_map(|operation| operation.value_bytes)
            .sum(),
        messages: transactions.iter().map(|t| t.messages.len() as u64).sum(),
    };
    let report = &decoded.report;
    DivergedSummary {
        schema_version: SCHEMA_VERSION,
        directory: decoded.directory.display().to_string(),
        epoch: decoded.epoch,
        common_generation: report.common_generation,
        reason: report.reason.clone(),
        files: report
            .files
            .iter()
            .map(|file| FileSummary {
                name: file.name.clone(),
                generation: file.generation,
                commits: file.commits,
                shared_prefix_bytes: file.shared_prefix_bytes,
            })
            .collect(),
        unreadable: decoded.unreadable.clone(),
        incomplete: decoded.incomplete,
        totals,
        transactions,
    }
}

fn transaction(transaction: &Transaction) -> TransactionSummary {
    let mut tables: Vec<String> = Vec::new();
    for operation in &transaction.operations {
        if !tables.iter().any(|table| table == operation.table()) {
            tables.push(operation.table().to_owned());
        }
    }
    TransactionSummary {
        transaction: transaction.id,
        commit_micros: transaction.commit_micros,
        generation: transaction.generation,
        file: transaction.file.clone(),
        tables,
        operations: transaction.operations.iter().map(operation).collect(),
        messages: mail::messages(transaction),
    }
}

fn operation(operation: &Operation) -> OperationSummary {
    let (key, value_bytes) = match operation {
        Operation::Put { key, value, .. } => (Some(printable(key)), Some(value.len() as u64)),
        Operation::Delete { key, .. } => (Some(printable(key)), None),
        Operation::CreateTable { .. } | Operation::DropTable { .. } => (None, None),
    };
    OperationSummary {
        kind: operation.kind().to_owned(),
        table: operation.table().to_owned(),
        key,
        value_bytes,
    }
}

/// A key as text: printable ASCII as is, other bytes as `\xNN`, cut with `...`.
///
/// ```
/// use bluejet_replication::diverged::summary::printable;
/// assert_eq!(printable(b"alice/0001\x00"), "alice/0001\\x00");
/// ```
pub fn printable(raw: &[u8]) -> String {
    let mut text = String::new();
    for &byte in raw.iter().take(MAX_KEY_BYTES) {
        match byte {
            b'\\' => text.push_str("\\\\"),
            0x20..=0x7e => text.push(byte as char),
            _ => text.push_str(&format!("\\x{byte:02x}")),
        }
    }
    if raw.len() > MAX_KEY_BYTES {
        text.push_str("...");
    }
    text
}
