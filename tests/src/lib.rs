//! Shared helpers of BlueJet's end-to-end tests: a deterministic mail-like workload and the
//! check that reads a log back and compares it with what was acknowledged.

use bluejet_engine::format::log_reader::LogReader;
use bluejet_engine::format::record::Record;
use bluejet_engine::LogError;
use bluejet_engine::{LogConfig, LogPosition};
use std::collections::BTreeMap;
use std::path::Path;

/// The content of one transaction: (table, key, value) puts.
pub type Puts = Vec<(String, Vec<u8>, Vec<u8>)>;

/// The value a workload writes for transaction `index`, put `part`: deterministic, so a test
/// can tell exact content from a torn or stale copy.
pub fn value_for(index: u64, part: u64, length: usize) -> Vec<u8> {
    let mut state =
        index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ part.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'a' + (state % 26) as u8
        })
        .collect()
}

/// Transactions read back from a log: committed ones with their puts, and how many began
/// without committing.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Committed transactions by id, with their puts in order.
    pub committed: BTreeMap<u64, Puts>,
    /// Ids of transactions with records but no commit record.
    pub uncommitted: Vec<u64>,
    /// End of the last record.
    pub end: LogPosition,
    /// Records read.
    pub records: u64,
}

/// Reads every record of the log in `directory` and groups them by transaction.
pub fn recover(directory: &Path, config: LogConfig) -> Result<Recovered, LogError> {
    let reader = LogReader::open(directory, config)?;
    let first = reader.first_generation().unwrap_or(1);
    let mut open: BTreeMap<u64, Puts> = BTreeMap::new();
    let mut recovered = Recovered::default();
    for record in reader.read_from(LogPosition::new(first, 0)) {
        let record = record?;
        recovered.end = record.end;
        recovered.records += 1;
        match record.decode()? {
            Some(Record::Begin { transaction }) => {
                open.insert(transaction, Vec::new());
            }
            Some(Record::Put {
                transaction,
                table,
                key,
                value,
            }) => {
                open.entry(transaction)
                    .or_default()
                    .push((table, key, value));
            }
            Some(Record::Commit { transaction, .. }) => {
                let puts = open.remove(&transaction).unwrap_or_default();
                recovered.committed.insert(transaction, puts);
            }
            Some(Record::Rollback { transaction }) => {
                open.remove(&transaction);
            }
            // A new writer session: whatever was open before it can never commit.
            Some(Record::Start { .. }) => {
                recovered
                    .uncommitted
                    .extend(std::mem::take(&mut open).into_keys());
            }
            _ => {}
        }
    }
    recovered.uncommitted.extend(open.into_keys());
    Ok(recovered)
}
