//! Building a transaction's records and committing them.

use super::record::RecordRef;
use super::writer::Log;
use super::LogPosition;
use crate::error::LogError;

/// How long a commit waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Return once the commit is durable (fdatasync), sharing flushes with concurrent commits.
    Durable,
    /// Return at once; durable within the configured lazy flush interval plus one flush.
    Lazy,
}

/// Where a committed transaction landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// The transaction id.
    pub transaction: u64,
    /// Position of its first record.
    pub begin: LogPosition,
    /// Position just after its commit record; the log is durable up to here when a durable
    /// commit returns.
    pub end: LogPosition,
}

/// The records of one transaction, gathered in memory and appended at commit.
pub struct Transaction<'a> {
    log: &'a Log,
    records: PendingRecords,
}

impl std::ops::Deref for Transaction<'_> {
    type Target = PendingRecords;

    fn deref(&self) -> &PendingRecords {
        &self.records
    }
}

impl std::ops::DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut PendingRecords {
        &mut self.records
    }
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(log: &'a Log, id: u64) -> Self {
        Self {
            log,
            records: PendingRecords::new(id),
        }
    }

    /// Appends the records and a commit record; waits for durability if asked.
    pub fn commit(self, durability: Durability) -> Result<CommitInfo, LogError> {
        self.records.commit(self.log, durability)
    }

    /// Logs a rollback. Nothing of the transaction will be redone; nothing waits.
    pub fn abort(self) -> Result<(), LogError> {
        self.records.abort(self.log)
    }
}

/// A transaction's records without the log they go to: what a database's write transaction
/// owns, so that it borrows nothing and can move between threads. Appended with
/// [`PendingRecords::commit`].
///
/// A transaction too large to keep in memory (a value streamed from a reader) appends the
/// records gathered so far early, with [`PendingRecords::spill`]: they are in the log before
/// the commit record, and replay redoes them only if that commit record follows. A spilled
/// transaction that does not commit ends with a Rollback record
/// ([`PendingRecords::abandon`]).
pub struct PendingRecords {
    id: u64,
    encoded: Vec<u8>,
    /// The end offset of each record in `encoded`.
    boundaries: Vec<usize>,
    /// Where the first record landed, once some were spilled to the log.
    spilled_from: Option<LogPosition>,
    /// The most bytes of records held at once.
    peak: usize,
}

impl PendingRecords {
    pub(crate) fn new(id: u64) -> Self {
        let mut records = Self {
            id,
            encoded: Vec::new(),
            boundaries: Vec::new(),
            spilled_from: None,
            peak: 0,
        };
        records.push(RecordRef::Begin { transaction: id });
        records
    }

    /// The transaction id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bytes of records gathered so far.
    pub fn encoded_len(&self) -> usize {
        self.encoded.len()
    }

    /// The most bytes of records this transaction held in memory at once.
    pub fn peak_len(&self) -> usize {
        self.peak.max(self.encoded.len())
    }

    /// Whether some records are already in the log.
    pub fn is_spilled(&self) -> bool {
        self.spilled_from.is_some()
    }

    fn push(&mut self, record: RecordRef<'_>) {
        record.encode_into(&mut self.encoded);
        self.boundaries.push(self.encoded.len());
    }

    /// Inserts or replaces `key` in `table`.
    pub fn put(&mut self, table: &str, key: &[u8], value: &[u8]) {
        // Room for the framing and the length prefixes too, so the buffer grows at most once.
        self.encoded
            .reserve(64 + table.len() + key.len() + value.len());
        self.push(RecordRef::Put {
            transaction: self.id,
            table,
            key,
            value,
        });
    }

    /// Inserts or replaces `key` in `table`, splitting a value longer than `chunk_bytes` into
    /// [`Record::PutChunk`] pieces so that no record exceeds the log's limit.
    pub fn put_chunked(&mut self, table: &str, key: &[u8], value: &[u8], chunk_bytes: usize) {
        assert!(chunk_bytes > 0);
        if value.len() <= chunk_bytes {
            return self.put(table, key, value);
        }
        for (index, piece) in value.chunks(chunk_bytes).enumerate() {
            self.push(RecordRef::PutChunk {
                transaction: self.id,
                table,
                key,
                offset: (index * chunk_bytes) as u64,
                total: value.len() as u64,
                bytes: piece,
            });
        }
    }

    /// Logs one piece of a value of `total` bytes for `key` in `table`, at `offset`: the
    /// [`Record::PutChunk`](super::record::Record::PutChunk) records that
    /// [`PendingRecords::put_chunked`] writes, for a value that arrives piece by piece.
    /// Pieces must come in order, each `offset` the end of the previous piece.
    pub fn put_piece(&mut self, table: &str, key: &[u8], offset: u64, total: u64, bytes: &[u8]) {
        self.push(RecordRef::PutChunk {
            transaction: self.id,
            table,
            key,
            offset,
            total,
            bytes,
        });
    }

    /// Appends the records gathered so far to `log` (the log they were begun in), without a
    /// commit record, and forgets them; returns the end of the last. Replay redoes them only
    /// if the transaction's commit record follows; until then they are in the log like the
    /// records of a transaction cut by a crash.
    pub fn spill(&mut self, log: &Log) -> Result<LogPosition, LogError> {
        self.peak = self.peak_len();
        let (begin, end) = log.append_records(&self.encoded, &self.boundaries, false)?;
        self.spilled_from.get_or_insert(begin);
        self.encoded.clear();
        self.boundaries.clear();
        Ok(end)
    }

    /// Ends a transaction that will not commit: nothing is logged if none of its records
    /// reached the log; after a [`spill`](PendingRecords::spill), a Rollback record says that
    /// the records there are not to be redone.
    pub fn abandon(self, log: &Log) -> Result<(), LogError> {
        if !self.is_spilled() {
            return Ok(());
        }
        let mut rollback = Vec::new();
        RecordRef::Rollback {
            transaction: self.id,
        }
        .encode_into(&mut rollback);
        log.append_records(&rollback, &[rollback.len()], false)?;
        Ok(())
    }

    /// Removes `key` from `table`.
    pub fn delete(&mut self, table: &str, key: &[u8]) {
        self.push(RecordRef::Delete {
            transaction: self.id,
            table,
            key,
        });
    }

    /// Creates `table`.
    pub fn create_table(&mut self, table: &str) {
        self.push(RecordRef::CreateTable {
            transaction: self.id,
            table,
        });
    }

    /// Drops `table`.
    pub fn drop_table(&mut self, table: &str) {
        self.push(RecordRef::DropTable {
            transaction: self.id,
            table,
        });
    }

    /// Appends the records and a commit record to `log` (the log they were begun in);
    /// waits for durability if asked.
    pub fn commit(mut self, log: &Log, durability: Durability) -> Result<CommitInfo, LogError> {
        let time_micros = super::now_micros();
        self.push(RecordRef::Commit {
            transaction: self.id,
            time_micros,
        });
        let (appended, end) = log.append_records(&self.encoded, &self.boundaries, true)?;
        let begin = self.spilled_from.unwrap_or(appended);
        if durability == Durability::Durable {
            log.wait_durable(end)?;
        }
        Ok(CommitInfo {
            transaction: self.id,
            begin,
            end,
        })
    }

    /// Logs a rollback to `log`. Nothing of the transaction will be redone; nothing waits.
    pub fn abort(mut self, log: &Log) -> Result<(), LogError> {
        self.push(RecordRef::Rollback {
            transaction: self.id,
        });
        log.append_records(&self.encoded, &self.boundaries, false)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogConfig, LogReader, Record};

    /// The kinds of the records after the log's Start record, by transaction.
    fn kinds(directory: &std::path::Path) -> Vec<String> {
        let reader = LogReader::open(directory, LogConfig::default()).unwrap();
        reader
            .read_from(LogPosition::new(1, 0))
            .filter_map(|record| record.unwrap().decode().unwrap())
            .filter_map(|record| match record {
                Record::Begin { .. } => Some("begin".to_owned()),
                Record::PutChunk { offset, .. } => Some(format!("piece {offset}")),
                Record::Commit { .. } => Some("commit".to_owned()),
                Record::Rollback { .. } => Some("rollback".to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn spilled_records_come_before_the_commit_and_an_abandoned_spill_ends_in_a_rollback() {
        let directory = tempfile::tempdir().unwrap();
        let log = Log::open(directory.path(), LogConfig::default()).unwrap();
        let mut records = log.pending_transaction();
        records.put_piece("t", b"k", 0, 6, b"abc");
        let first = log.end_position();
        let spilled = records.spill(&log).unwrap();
        assert!(records.is_spilled());
        assert_eq!(log.end_position(), spilled, "appended at once");
        records.put_piece("t", b"k", 3, 6, b"def");
        let info = records.commit(&log, Durability::Durable).unwrap();
        assert_eq!(
            info.begin, first,
            "the commit begins at the first record spilled"
        );

        let mut abandoned = log.pending_transaction();
        abandoned.put_piece("t", b"x", 0, 6, b"abc");
        abandoned.spill(&log).unwrap();
        abandoned.put_piece("t", b"x", 3, 6, b"def");
        abandoned.abandon(&log).unwrap();
        // A transaction that never spilled leaves nothing when abandoned.
        let mut unspilled = log.pending_transaction();
        unspilled.put_piece("t", b"y", 0, 3, b"abc");
        unspilled.abandon(&log).unwrap();
        log.close().unwrap();
        assert_eq!(
            kinds(directory.path()),
            ["begin", "piece 0", "piece 3", "commit", "begin", "piece 0", "rollback"]
        );
    }
}
