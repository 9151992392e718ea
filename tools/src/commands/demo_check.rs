//! Reading the demo's log back and checking every committed transaction, record by record.

use crate::mail::{folder_key, message_key, Delivery};
use bluejet_engine::log::{CommitInfo, LogConfig, LogPosition, LogReader, LogRecord, Record};
use bluejet_engine::LogError;
use std::collections::HashMap;
use std::path::Path;

/// Table of message bodies.
pub const MESSAGES: &str = "messages";
/// Table of folder index entries.
pub const FOLDERS: &str = "folders";

/// What one committed transaction wrote.
#[derive(Clone, Debug)]
pub enum Work {
    /// Created the two tables.
    Setup,
    /// Delivered a message and expunged older ones (mailbox, uid).
    Delivery {
        /// The message delivered.
        delivery: Delivery,
        /// Messages removed.
        expunged: Vec<(u32, u32)>,
    },
}

impl Work {
    /// The records the transaction `transaction` appended, before its commit record.
    pub fn records(&self, transaction: u64) -> Vec<Record> {
        match self {
            Work::Setup => vec![
                Record::CreateTable {
                    transaction,
                    table: MESSAGES.into(),
                },
                Record::CreateTable {
                    transaction,
                    table: FOLDERS.into(),
                },
            ],
            Work::Delivery { delivery, expunged } => {
                let message = delivery.message();
                let index = delivery.index_entry(message.len());
                let mut records = vec![
                    Record::Put {
                        transaction,
                        table: MESSAGES.into(),
                        key: message_key(delivery.mailbox, delivery.uid).into_bytes(),
                        value: message,
                    },
                    Record::Put {
                        transaction,
                        table: FOLDERS.into(),
                        key: folder_key(delivery.mailbox, delivery.uid).into_bytes(),
                        value: index,
                    },
                ];
                for &(mailbox, uid) in expunged {
                    records.push(Record::Delete {
                        transaction,
                        table: MESSAGES.into(),
                        key: message_key(mailbox, uid).into_bytes(),
                    });
                    records.push(Record::Delete {
                        transaction,
                        table: FOLDERS.into(),
                        key: folder_key(mailbox, uid).into_bytes(),
                    });
                }
                records
            }
        }
    }
}

/// A committed transaction and what it wrote.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Where it landed.
    pub info: CommitInfo,
    /// What it wrote.
    pub work: Work,
}

/// What reading back found.
#[derive(Debug, Default)]
pub struct ReadBack {
    /// Records read.
    pub records: u64,
    /// Transactions whose records matched exactly.
    pub matched: u64,
    /// Every mismatch (the first ones in full, the rest counted).
    pub mismatches: Vec<String>,
}

/// Keeps at most this many mismatch messages.
const MISMATCH_LIMIT: usize = 20;

impl ReadBack {
    fn mismatch(&mut self, message: String) {
        if self.mismatches.len() < MISMATCH_LIMIT {
            self.mismatches.push(message);
        }
    }
}

/// A transaction seen so far: where its begin record was and its records after it.
struct Open {
    begin: LogPosition,
    records: Vec<Record>,
}

/// Reads the whole stream in `directory` and checks that it holds exactly the `committed`
/// transactions, each with the records it appended (values compared byte for byte, rebuilt
/// from their seeds) at the positions its commit returned.
pub fn read_back(directory: &Path, committed: &[Committed]) -> Result<ReadBack, LogError> {
    let mut expected: HashMap<u64, &Committed> = committed
        .iter()
        .map(|entry| (entry.info.transaction, entry))
        .collect();
    let reader = LogReader::open(directory, LogConfig::default())?;
    let mut result = ReadBack::default();
    let Some(first) = reader.first_generation() else {
        result.mismatch("the log holds no generation".into());
        return Ok(result);
    };
    let mut open: HashMap<u64, Open> = HashMap::new();
    for item in reader.read_from(LogPosition::new(first, 0)) {
        let raw = item?;
        result.records += 1;
        let record = match raw.decode()? {
            Some(record) => record,
            None => {
                result.mismatch(format!(
                    "unknown record kind {} at {}",
                    raw.kind, raw.position
                ));
                continue;
            }
        };
        take_record(record, &raw, &mut open, &mut expected, &mut result);
    }
    for transaction in open.keys() {
        result.mismatch(format!("transaction {transaction} never commits"));
    }
    let mut lost: Vec<u64> = expected.keys().copied().collect();
    lost.sort_unstable();
    for transaction in lost {
        result.mismatch(format!(
            "committed transaction {transaction} is not in the log"
        ));
    }
    Ok(result)
}

/// Files one record read back: opens, extends or checks (at its commit) a transaction.
fn take_record(
    record: Record,
    raw: &LogRecord,
    open: &mut HashMap<u64, Open>,
    expected: &mut HashMap<u64, &Committed>,
    result: &mut ReadBack,
) {
    match record {
        Record::Start { .. } | Record::Stop { .. } => {}
        Record::Begin { transaction } => {
            let fresh = Open {
                begin: raw.position,
                records: Vec::new(),
            };
            if open.insert(transaction, fresh).is_some() {
                result.mismatch(format!("transaction {transaction} begins twice"));
            }
        }
        Record::Commit { transaction, .. } => {
            let Some(seen) = open.remove(&transaction) else {
                result.mismatch(format!("commit of unknown transaction {transaction}"));
                return;
            };
            let Some(entry) = expected.remove(&transaction) else {
                result.mismatch(format!("transaction {transaction} was never committed"));
                return;
            };
            if check(entry, &seen, raw.end, result) {
                result.matched += 1;
            }
        }
        other => {
            let transaction = other.transaction().unwrap_or_default();
            match open.get_mut(&transaction) {
                Some(seen) => seen.records.push(other),
                None => result.mismatch(format!(
                    "record at {} of transaction {transaction}, which did not begin",
                    raw.position
                )),
            }
        }
    }
}

/// Compares one transaction read back with what it committed.
fn check(entry: &Committed, seen: &Open, end: LogPosition, result: &mut ReadBack) -> bool {
    let info = entry.info;
    let id = info.transaction;
    if seen.begin != info.begin || end != info.end {
        result.mismatch(format!(
            "transaction {id} read at {}..{end}, committed at {}..{}",
            seen.begin, info.begin, info.end
        ));
        return false;
    }
    let wanted = entry.work.records(id);
    if wanted.len() != seen.records.len() {
        result.mismatch(format!(
            "transaction {id}: {} records read, {} written",
            seen.records.len(),
            wanted.len()
        ));
        return false;
    }
    for (index, (read, written)) in seen.records.iter().zip(&wanted).enumerate() {
        if read != written {
            result.mismatch(format!(
                "transaction {id}: record {} differs from the one written",
                index + 1
            ));
            return false;
        }
    }
    true
}
