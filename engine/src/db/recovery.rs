//! Recovery: redo every committed transaction logged after the checkpoint.
//!
//! The database file holds exactly the state at its header's checkpoint (pages after it are
//! never reachable from the header), so redo applies each later committed transaction once,
//! in log order, through the ordinary write path. Transactions without a commit record (cut
//! by a crash, rolled back, or ended by a new writer session's Start record) are dropped.

use super::database::Inner;
use super::write::WriteTransaction;
use super::DbError;
use crate::content::ContentProof;
use crate::log::{LogPosition, LogReader, LogRecord, Record};
use crate::LogError;
use std::sync::Arc;

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Where it started.
    pub from: LogPosition,
    /// Where the log ended.
    pub to: LogPosition,
    /// First and last generation read (none if nothing was read).
    pub generations: Option<(u32, u32)>,
    /// Records read.
    pub records: u64,
    /// Committed transactions applied.
    pub transactions_applied: u64,
    /// Transactions dropped (no commit record, or rolled back).
    pub transactions_dropped: u64,
    /// Proof records met, each checked against the replayed content.
    pub proofs: u64,
    /// The last proof point the replayed content was found equal at.
    pub last_proof: Option<LogPosition>,
    /// The last proof point a recount of every entry was found equal at.
    pub last_recount: Option<LogPosition>,
}

/// One operation of a transaction being read back.
enum Operation {
    Put {
        table: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        table: String,
        key: Vec<u8>,
    },
    CreateTable {
        table: String,
    },
    DropTable {
        table: String,
    },
}

/// The transaction being gathered.
#[derive(Default)]
struct Pending {
    id: u64,
    operations: Vec<Operation>,
    /// A long value being assembled from pieces: table, key, bytes so far.
    assembling: Option<(String, Vec<u8>, Vec<u8>)>,
}

/// Turns a stream of records into committed transactions. A passive copy keeps one across
/// generations, since a transaction may begin in one generation and commit in the next.
#[derive(Default)]
pub(crate) struct Gatherer {
    pending: Option<Pending>,
}

/// Redoes committed transactions in batches: one unlogged write transaction holds many, so
/// a replay pays for repacking and sealing pages once per batch instead of once per
/// transaction. The batch's version ends at its last transaction's commit record.
pub(crate) struct Batch<'db> {
    inner: &'db Arc<Inner>,
    write: Option<WriteTransaction>,
    operations: usize,
    end: LogPosition,
    /// Whether the next proof point also recounts every entry (a passive copy's scrub).
    pub recount: bool,
}

/// Operations after which a batch is committed, bounding the memory its changed pages take.
const BATCH_OPERATIONS: usize = 8192;

/// Replays the log in the database's directory from `from`.
pub(crate) fn replay(inner: &Arc<Inner>, from: LogPosition) -> Result<ReplayReport, DbError> {
    let reader = LogReader::open(&inner.directory, inner.options.log.clone())?;
    let mut report = ReplayReport {
        from,
        to: from,
        ..ReplayReport::default()
    };
    let mut gatherer = Gatherer::default();
    let mut batch = Batch::new(inner);
    for record in reader.read_from(from) {
        let record = record.map_err(missing_or)?;
        gatherer.feed_record(&record, &mut batch, &mut report)?;
    }
    batch.finish()?;
    if gatherer.pending.is_some() {
        report.transactions_dropped += 1;
    }
    Ok(report)
}

impl Gatherer {
    /// Reads one record: notes it in `report` and redoes a transaction it commits.
    pub(crate) fn feed_record(
        &mut self,
        record: &LogRecord,
        batch: &mut Batch<'_>,
        report: &mut ReplayReport,
    ) -> Result<(), DbError> {
        report.records += 1;
        report.to = record.end;
        let generation = record.position.generation;
        report.generations = Some(match report.generations {
            Some((first, _)) => (first, generation),
            None => (generation, generation),
        });
        let Some(decoded) = record.decode()? else {
            return Ok(());
        };
        if let Record::Proof(expected) = decoded {
            let recounted = batch.prove(&expected, record)?;
            report.proofs += 1;
            report.last_proof = Some(record.position);
            if recounted {
                report.last_recount = Some(record.position);
            }
            return Ok(());
        }
        if let Some(operations) = self.feed(decoded, report) {
            batch.apply(operations, record.end)?;
            report.transactions_applied += 1;
        }
        Ok(())
    }

    /// Whether a transaction has begun without ending yet.
    pub(crate) fn is_open(&self) -> bool {
        self.pending.is_some()
    }

    /// Takes one decoded record; returns the operations of the transaction it commits.
    fn feed(&mut self, record: Record, report: &mut ReplayReport) -> Option<Vec<Operation>> {
        let pending = &mut self.pending;
        match record {
            Record::Begin { transaction } => {
                let begun = Pending {
                    id: transaction,
                    ..Pending::default()
                };
                if pending.replace(begun).is_some() {
                    report.transactions_dropped += 1;
                }
            }
            Record::Commit { transaction, .. } => {
                return pending
                    .take_if(|p| p.id == transaction)
                    .map(|done| done.operations);
            }
            Record::Rollback { transaction } => {
                if pending.take_if(|p| p.id == transaction).is_some() {
                    report.transactions_dropped += 1;
                }
            }
            Record::Start { .. } => {
                if pending.take().is_some() {
                    report.transactions_dropped += 1;
                }
            }
            Record::Stop { .. } => {}
            other => gather(other, pending),
        }
        None
    }
}

impl<'db> Batch<'db> {
    pub(crate) fn new(inner: &'db Arc<Inner>) -> Self {
        Self {
            inner,
            write: None,
            operations: 0,
            end: LogPosition::default(),
            recount: false,
        }
    }

    /// Compares the content replayed so far with a proof record's, and with `recount` set
    /// also every entry read back (the batch is committed first so that a snapshot sees it);
    /// returns whether it recounted. A difference is [`DbError::ContentMismatch`].
    fn prove(&mut self, expected: &ContentProof, record: &LogRecord) -> Result<bool, DbError> {
        let inner = self.inner;
        let write = self
            .write
            .get_or_insert_with(|| WriteTransaction::begin_unlogged(inner));
        let replayed = write.content()?;
        let mismatch = |difference| DbError::ContentMismatch {
            path: record.path.as_ref().clone(),
            position: Some(record.position),
            difference: Box::new(difference),
        };
        if let Some(difference) = expected.first_difference(&replayed) {
            return Err(mismatch(difference));
        }
        if !std::mem::take(&mut self.recount) {
            return Ok(false);
        }
        self.finish()?;
        let read = super::read::ReadTransaction::begin(inner);
        let recounted = crate::content::recount(&read)?;
        match expected.first_difference(&recounted) {
            // A proof that lists no table names none: the copy's own summary, which agreed
            // with the proof, names the table its entries differ in.
            Some(difference) => {
                let named = expected
                    .listed
                    .is_none()
                    .then(|| replayed.first_difference(&recounted));
                Err(mismatch(named.flatten().unwrap_or(difference)))
            }
            None => Ok(true),
        }
    }

    /// Redoes one committed transaction whose commit record ends at `end`.
    fn apply(&mut self, operations: Vec<Operation>, end: LogPosition) -> Result<(), DbError> {
        let inner = self.inner;
        let write = self
            .write
            .get_or_insert_with(|| WriteTransaction::begin_unlogged(inner));
        self.operations += operations.len().max(1);
        for operation in operations {
            redo(write, operation)?;
        }
        debug_assert!(end >= self.end, "commits replayed out of log order");
        self.end = end;
        if self.operations >= BATCH_OPERATIONS {
            self.finish()?;
        }
        Ok(())
    }

    /// Commits the batch so far (readers see it from then on).
    pub(crate) fn finish(&mut self) -> Result<(), DbError> {
        self.operations = 0;
        match self.write.take() {
            Some(write) => write.commit_replayed(self.end),
            None => Ok(()),
        }
    }
}

/// Adds an operation record to the pending transaction it belongs to.
fn gather(record: Record, pending: &mut Option<Pending>) {
    let Some(transaction) = pending
        .as_mut()
        .filter(|p| Some(p.id) == record.transaction())
    else {
        return;
    };
    let operation = match record {
        Record::Put {
            table, key, value, ..
        } => Operation::Put { table, key, value },
        Record::Delete { table, key, .. } => Operation::Delete { table, key },
        Record::CreateTable { table, .. } => Operation::CreateTable { table },
        Record::DropTable { table, .. } => Operation::DropTable { table },
        Record::PutChunk {
            table,
            key,
            offset,
            total,
            bytes,
            ..
        } => match assemble(transaction, table, key, offset, total, bytes) {
            Some(operation) => operation,
            None => return,
        },
        _ => return,
    };
    transaction.operations.push(operation);
}

/// Adds a piece of a long value; returns the put once the last piece is in. Pieces out of
/// order (which the writer never produces) drop the value being assembled.
fn assemble(
    transaction: &mut Pending,
    table: String,
    key: Vec<u8>,
    offset: u64,
    total: u64,
    bytes: Vec<u8>,
) -> Option<Operation> {
    if offset == 0 {
        transaction.assembling =
            Some((table, key, Vec::with_capacity(total.min(1 << 28) as usize)));
    }
    let (_, _, value) = transaction.assembling.as_mut()?;
    if value.len() as u64 != offset {
        transaction.assembling = None;
        return None;
    }
    value.extend_from_slice(&bytes);
    if (value.len() as u64) < total {
        return None;
    }
    let (table, key, value) = transaction.assembling.take()?;
    Some(Operation::Put { table, key, value })
}

/// Redoes one operation of a committed transaction.
fn redo(write: &mut WriteTransaction, operation: Operation) -> Result<(), DbError> {
    match operation {
        Operation::Put { table, key, value } => {
            write.insert(&table, &key, &value)?;
        }
        Operation::Delete { table, key } => {
            write.remove(&table, &key)?;
        }
        Operation::CreateTable { table } => {
            write.create_table(&table)?;
        }
        Operation::DropTable { table } => {
            write.drop_table(&table)?;
        }
    }
    Ok(())
}

/// A log error, with missing generations made the database's own error naming them.
pub(crate) fn missing_or(error: LogError) -> DbError {
    match error {
        LogError::MissingGenerations {
            directory,
            first,
            last,
            next,
        } => DbError::MissingLogGenerations {
            directory,
            first,
            last,
            reason: format!("they are missing while generation {next} exists"),
        },
        other => DbError::Log(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(transaction: u64, offset: u64, bytes: &[u8]) -> Record {
        Record::PutChunk {
            transaction,
            table: "t".into(),
            key: b"k".to_vec(),
            offset,
            total: 6,
            bytes: bytes.to_vec(),
        }
    }

    fn puts(operations: Option<Vec<Operation>>) -> Vec<Vec<u8>> {
        operations
            .expect("committed")
            .into_iter()
            .map(|operation| match operation {
                Operation::Put { value, .. } => value,
                _ => panic!("only puts"),
            })
            .collect()
    }

    #[test]
    fn a_streamed_transaction_is_redone_whole_and_one_left_open_is_dropped() {
        let mut gatherer = Gatherer::default();
        let mut report = ReplayReport::default();
        // Pieces spilled early, then cut: the next Begin ends the transaction left open.
        for record in [Record::Begin { transaction: 1 }, piece(1, 0, b"abc")] {
            assert!(gatherer.feed(record, &mut report).is_none());
        }
        assert!(gatherer.is_open());
        assert!(gatherer
            .feed(Record::Begin { transaction: 2 }, &mut report)
            .is_none());
        assert_eq!(report.transactions_dropped, 1);
        // Its commit, had it come, would find nothing to redo.
        assert!(gatherer.feed(piece(1, 3, b"def"), &mut report).is_none());
        for record in [piece(2, 0, b"uvw"), piece(2, 3, b"xyz")] {
            assert!(gatherer.feed(record, &mut report).is_none());
        }
        let committed = gatherer.feed(
            Record::Commit {
                transaction: 2,
                time_micros: 0,
            },
            &mut report,
        );
        assert_eq!(puts(committed), [b"uvwxyz".to_vec()]);
        // A rolled-back spill is dropped too.
        for record in [
            Record::Begin { transaction: 3 },
            piece(3, 0, b"abc"),
            Record::Rollback { transaction: 3 },
        ] {
            assert!(gatherer.feed(record, &mut report).is_none());
        }
        assert!(!gatherer.is_open());
        assert_eq!(report.transactions_dropped, 2);
    }
}
