//! Re-applying a diverged directory's transactions to the active database, as new
//! transactions through its normal commit path (so the lease gate and synchronous commit
//! apply to them as to any other).
//!
//! Rules, per divergent transaction, in commit order, as a unit:
//! - each operation is compared with the active's current state: a put whose key holds
//!   the same value, or a delete whose key is absent, is *already there*; a put whose key
//!   is absent is *to apply*; a put whose key holds another value, or a delete whose key is
//!   present, is *conflicting* (a key changed on both sides, or that cannot be proved
//!   unchanged, is never overwritten). A key an earlier divergent transaction set, and that
//!   still holds what that transaction left, counts as unchanged: the later transaction
//!   applies over it. Creating a table that exists is already there; dropping one that
//!   exists is conflicting (a drop is never re-applied);
//! - a transaction with any conflicting operation is not applied at all (it was atomic: a
//!   message without its folder entry would be worse), and is listed with its keys; one
//!   whose operations are all already there is skipped; otherwise its remaining operations
//!   are committed as one new transaction.
//!
//! The comparison and the commit happen in one write transaction, so no other writer comes
//! in between. Every transaction applied or found already there is listed in the outcome
//! (`handled`, kept in `reapplied.json`), and a later run skips those without comparing
//! them again: running it twice applies nothing the second time, even when the active
//! changed a key in between (found by the seeded tests: a lost put of a message that a later
//! lost transaction deleted was put back by a second run once another key of the delete's
//! transaction had changed). Conflicting transactions are compared again each run. The outcome is also kept
//! in the directory as `reapplied.json` (sealed, written atomically and durably).

use super::decode::{Decoded, Operation, Transaction};
use super::error::DivergedError;
use super::files::REAPPLIED;
use super::summary::printable;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::{Database, DbError, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The version of the outcome's JSON.
pub const SCHEMA_VERSION: u32 = 1;

/// What a re-application did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapplyOutcome {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The diverged directory.
    pub directory: String,
    /// Transactions committed anew.
    pub applied_transactions: u64,
    /// Transactions whose every operation was already there.
    pub skipped_transactions: u64,
    /// Transactions left out because of a conflicting operation.
    pub conflicting_transactions: u64,
    /// Operations committed.
    pub applied_operations: u64,
    /// Operations already there (in applied and skipped transactions).
    pub skipped_operations: u64,
    /// Operations of conflicting transactions that conflict.
    pub conflicting_operations: u64,
    /// Each conflicting operation.
    pub conflicts: Vec<Conflict>,
    /// When it finished (µs since the Unix epoch).
    pub finished_micros: u64,
    /// Every transaction applied or found already there, by this run or an earlier one
    /// (a later run skips them).
    #[serde(default)]
    pub handled: Vec<Handled>,
    /// Of the skipped transactions, those an earlier run had handled.
    #[serde(default)]
    pub handled_before: u64,
    /// The transactions a step may commit before its outcome is recorded: written before
    /// it commits any, emptied when its outcome is. A run stopped in between (a node
    /// killed) leaves them here, and the next run cannot tell whether they were committed:
    /// it applies none of them (those found all there are handled, the others conflicting)
    /// (found by an adversarial round: a kill inside a step lost its part of the ledger,
    /// and the rerun put back a message a lost transaction had deleted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<Handled>,
    /// Transactions an interrupted run may have committed (its `in_flight` not handled),
    /// kept from run to run: never applied, conflicting unless found all there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncertain: Vec<Handled>,
}

/// A divergent transaction a run applied or found already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Handled {
    /// Its id in the old active's log.
    pub transaction: u64,
    /// Its commit time (µs): with the id, what tells it from any other.
    pub commit_micros: u64,
}

/// An operation never applied: its key changed on both sides, or cannot be proved unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The divergent transaction's id.
    pub transaction: u64,
    /// Its commit time (µs).
    pub commit_micros: u64,
    /// The operation's kind.
    pub kind: String,
    /// The table.
    pub table: String,
    /// The key (printable), if the operation has one.
    pub key: Option<String>,
    /// Why.
    pub reason: String,
}

/// Decodes `directory`, re-applies it to `db` and records the outcome in it.
pub fn reapply_directory(
    fs: &dyn FileSystem,
    db: &Database,
    directory: &Path,
) -> Result<ReapplyOutcome, DivergedError> {
    let decoded = super::decode::decode_directory(fs, directory)?;
    let previous = previous(fs, directory)?;
    let mut reapplying = Reapplying::new(decoded, previous.as_ref())?;
    let recorder = &mut |outcome: &ReapplyOutcome| record(fs, directory, outcome);
    if let Err(error) = reapplying.step_recorded(db, None, recorder) {
        // What was committed before the error is listed, so that a later run does not
        // compare it again (found by an adversarial round: a deleted message came back).
        record(fs, directory, reapplying.progress())?;
        return Err(error);
    }
    let outcome = reapplying.finish();
    record(fs, directory, &outcome)?;
    Ok(outcome)
}

/// The outcome an earlier run left in `directory` (`None`: never re-applied). A record that
/// cannot be read is an error: without it a second run could apply again.
pub fn previous(
    fs: &dyn FileSystem,
    directory: &Path,
) -> Result<Option<ReapplyOutcome>, DivergedError> {
    let path = directory.join(REAPPLIED);
    sealed::read::<ReapplyOutcome>(fs, &path).map_err(|error| DivergedError::BadReport {
        path,
        reason: format!("the record of an earlier re-application cannot be read: {error}"),
    })
}

/// Writes `outcome` as the directory's `reapplied.json`, sealed, atomically and durably.
pub fn record(
    fs: &dyn FileSystem,
    directory: &Path,
    outcome: &ReapplyOutcome,
) -> Result<(), DivergedError> {
    Ok(sealed::write(fs, &directory.join(REAPPLIED), outcome)?)
}

/// Re-applies the decoded transactions to `db` (see the module documentation), skipping
/// those `previous` (an earlier run's outcome) handled. Refused when a divergent file cannot
/// be read or a commit's first records are missing: a transaction could be missing or cut.
pub fn reapply(
    db: &Database,
    decoded: &Decoded,
    previous: Option<&ReapplyOutcome>,
) -> Result<ReapplyOutcome, DivergedError> {
    let mut reapplying = Reapplying::new(decoded.clone(), previous)?;
    reapplying.step(db, None)?;
    Ok(reapplying.finish())
}

/// A re-application in steps: a node serving it between the rounds of its loop applies
/// what a step's time allows, so that its lease is renewed meanwhile (a tail of thousands
/// of durable commits outlasts a lease).
pub struct Reapplying {
    decoded: Decoded,
    next: usize,
    left: Left,
    /// What earlier runs handled.
    before: std::collections::HashSet<Handled>,
    /// What an earlier run may have committed without recording it (see
    /// [`ReapplyOutcome::in_flight`]).
    uncertain: std::collections::HashSet<Handled>,
    /// The transactions before this index are covered by the recorded `in_flight`.
    in_flight_until: usize,
    outcome: ReapplyOutcome,
}

/// The fewest transactions one record of `in_flight` covers (an eighth of those handled
/// when more: the ledger is rewritten whole each time).
const IN_FLIGHT: usize = 64;

/// Why a transaction an interrupted run may have committed is not applied.
const UNCERTAIN: &str = "a run stopped before recording whether it committed this \
                         transaction: it may have, and is never applied twice";

impl Reapplying {
    /// Starts re-applying `decoded`, after the run whose outcome is `previous` if any;
    /// refused when a divergent file cannot be read or a commit's first records are missing.
    pub fn new(decoded: Decoded, previous: Option<&ReapplyOutcome>) -> Result<Self, DivergedError> {
        check_readable(&decoded)?;
        let handled = previous.map(|p| p.handled.clone()).unwrap_or_default();
        let mut uncertain: Vec<Handled> = previous
            .map(|p| p.uncertain.iter().chain(&p.in_flight).copied().collect())
            .unwrap_or_default();
        uncertain.retain(|unsure| !handled.contains(unsure));
        uncertain.sort_unstable_by_key(|h| (h.commit_micros, h.transaction));
        uncertain.dedup();
        let outcome = ReapplyOutcome {
            schema_version: SCHEMA_VERSION,
            directory: decoded.directory.display().to_string(),
            handled: handled.clone(),
            uncertain: uncertain.clone(),
            ..ReapplyOutcome::default()
        };
        Ok(Self {
            decoded,
            next: 0,
            left: Left::default(),
            before: handled.into_iter().collect(),
            uncertain: uncertain.into_iter().collect(),
            in_flight_until: 0,
            outcome,
        })
    }

    /// The outcome so far (kept in the directory between steps, so that a node stopped
    /// half-way does not apply again what it applied).
    pub fn progress(&self) -> &ReapplyOutcome {
        &self.outcome
    }

    /// Re-applies transactions in order until all are done (`Ok(true)`) or `until` has
    /// passed (`Ok(false)`: call again; at least one transaction is done per call). Each
    /// transaction is checked and committed whole.
    pub fn step(
        &mut self,
        db: &Database,
        until: Option<std::time::Instant>,
    ) -> Result<bool, DivergedError> {
        self.step_recorded(db, until, &mut |_| Ok(()))
    }

    /// [`step`](Self::step), handing `record` the outcome with the transactions it may
    /// commit in `in_flight` before it commits any of them. When it returns, `in_flight` is
    /// empty, or after an error names the transaction it failed on: the caller records the
    /// outcome then.
    pub fn step_recorded(
        &mut self,
        db: &Database,
        until: Option<std::time::Instant>,
        record: &mut dyn FnMut(&ReapplyOutcome) -> Result<(), DivergedError>,
    ) -> Result<bool, DivergedError> {
        let stepped = self.steps(db, until, record);
        if stepped.is_ok() || self.outcome.in_flight.is_empty() {
            self.outcome.in_flight.clear();
        } else if let Some(transaction) = self.decoded.transactions.get(self.next) {
            // Its commit may have reached the log before the error.
            self.outcome.in_flight = vec![Handled {
                transaction: transaction.id,
                commit_micros: transaction.commit_micros,
            }];
        }
        self.in_flight_until = self.next;
        stepped
    }

    fn steps(
        &mut self,
        db: &Database,
        until: Option<std::time::Instant>,
        record: &mut dyn FnMut(&ReapplyOutcome) -> Result<(), DivergedError>,
    ) -> Result<bool, DivergedError> {
        // At least one transaction a step, whatever the time: every step makes progress.
        while let Some(transaction) = self.decoded.transactions.get(self.next) {
            let handled = Handled {
                transaction: transaction.id,
                commit_micros: transaction.commit_micros,
            };
            if self.next >= self.in_flight_until {
                let count = IN_FLIGHT.max(self.outcome.handled.len() / 8);
                let end = (self.next + count).min(self.decoded.transactions.len());
                self.outcome.in_flight = self.decoded.transactions[self.next..end]
                    .iter()
                    .map(|t| Handled {
                        transaction: t.id,
                        commit_micros: t.commit_micros,
                    })
                    .collect();
                record(&self.outcome)?;
                self.in_flight_until = end;
            }
            if self.before.contains(&handled) {
                self.outcome.skipped_transactions += 1;
                self.outcome.handled_before += 1;
                remember(&mut self.left, transaction);
            } else {
                let uncertain = self.uncertain.contains(&handled);
                if reapply_one(
                    db,
                    transaction,
                    uncertain,
                    &mut self.left,
                    &mut self.outcome,
                )? {
                    self.outcome.handled.push(handled);
                    if uncertain {
                        self.outcome.uncertain.retain(|unsure| *unsure != handled);
                    }
                }
            }
            self.next += 1;
            let more = self.next < self.decoded.transactions.len();
            if more && until.is_some_and(|until| std::time::Instant::now() >= until) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The directory being re-applied.
    pub fn directory(&self) -> &Path {
        &self.decoded.directory
    }

    /// The outcome, once [`step`](Self::step) said it is done.
    pub fn finish(mut self) -> ReapplyOutcome {
        debug_assert_eq!(self.next, self.decoded.transactions.len(), "finished early");
        self.outcome.finished_micros = bluejet_engine::log::now_micros();
        self.outcome
    }
}

fn check_readable(decoded: &Decoded) -> Result<(), DivergedError> {
    if decoded.incomplete > 0 {
        return Err(DivergedError::Incomplete {
            path: decoded.directory.clone(),
            reason: format!(
                "{} commits whose first records are not in the directory: their transactions \
                 cannot be re-applied whole",
                decoded.incomplete
            ),
        });
    }
    if !decoded.unreadable.is_empty() {
        let reasons: Vec<String> = decoded
            .unreadable
            .iter()
            .map(|file| format!("{}: {}", file.name, file.reason))
            .collect();
        return Err(DivergedError::Incomplete {
            path: decoded.directory.clone(),
            reason: reasons.join("; "),
        });
    }
    Ok(())
}

/// What the divergent transactions applied or found left each key at: (table, key) to the
/// value (`None`: absent).
type Left = HashMap<(String, Vec<u8>), Option<Vec<u8>>>;

/// How one operation compares with the active.
enum Verdict {
    Already,
    Apply,
    Conflict(String),
}

/// Re-applies one transaction; whether it is handled (applied, or already there) rather
/// than conflicting. One an interrupted run may have committed (`uncertain`) is never
/// applied: anything of it not already there conflicts.
fn reapply_one(
    db: &Database,
    transaction: &Transaction,
    uncertain: bool,
    left: &mut Left,
    outcome: &mut ReapplyOutcome,
) -> Result<bool, DivergedError> {
    let mut write = db.begin_write()?;
    let mut apply = Vec::new();
    let mut conflicts = Vec::new();
    let mut already = 0;
    for operation in effective(transaction) {
        match verdict(db, &mut write, operation, left)? {
            Verdict::Already => already += 1,
            Verdict::Apply => apply.push(operation),
            Verdict::Conflict(reason) => conflicts.push(conflict(transaction, operation, reason)),
        }
    }
    if uncertain {
        let unsure = apply.drain(..);
        conflicts
            .extend(unsure.map(|operation| conflict(transaction, operation, UNCERTAIN.into())));
    }
    if !conflicts.is_empty() {
        write.abort();
        outcome.conflicting_transactions += 1;
        outcome.conflicting_operations += conflicts.len() as u64;
        outcome.conflicts.extend(conflicts);
        return Ok(false);
    }
    outcome.skipped_operations += already;
    if apply.is_empty() {
        write.abort();
        outcome.skipped_transactions += 1;
    } else {
        for operation in &apply {
            perform(&mut write, operation)?;
        }
        write.commit()?;
        outcome.applied_transactions += 1;
        outcome.applied_operations += apply.len() as u64;
    }
    remember(left, transaction);
    Ok(true)
}

/// The transaction's operations that take effect: of several on one key, the last (found
/// in one pass: a transaction may hold many operations).
fn effective(transaction: &Transaction) -> impl Iterator<Item = &Operation> {
    let operations = &transaction.operations;
    let mut last: HashMap<(&str, &[u8]), usize> = HashMap::new();
    for (index, operation) in operations.iter().enumerate() {
        if let Some(key) = key_of(operation) {
            last.insert(key, index);
        }
    }
    operations
        .iter()
        .enumerate()
        .filter_map(move |(index, operation)| {
            let overwritten = key_of(operation).is_some_and(|key| last[&key] != index);
            (!overwritten).then_some(operation)
        })
}

/// The table and key of a put or delete.
fn key_of(operation: &Operation) -> Option<(&str, &[u8])> {
    match operation {
        Operation::Put { table, key, .. } | Operation::Delete { table, key } => Some((table, key)),
        Operation::CreateTable { .. } | Operation::DropTable { .. } => None,
    }
}

/// Compares one operation with the active's state, as the write transaction sees it
/// before anything of this divergent transaction is applied.
fn verdict(
    db: &Database,
    write: &mut WriteTransaction,
    operation: &Operation,
    left: &Left,
) -> Result<Verdict, DbError> {
    let ours = |table: &str, key: &[u8], current: &Option<Vec<u8>>| {
        left.get(&(table.to_owned(), key.to_vec())) == Some(current)
    };
    Ok(match operation {
        Operation::Put { table, key, value } => match current(write, table, key)? {
            Some(current) if current == *value => Verdict::Already,
            None => Verdict::Apply,
            current if ours(table, key, &current) => Verdict::Apply,
            Some(_) => Verdict::Conflict("the key holds another value on the active".into()),
        },
        Operation::Delete { table, key } => match current(write, table, key)? {
            None => Verdict::Already,
            current if ours(table, key, &current) => Verdict::Apply,
            Some(_) => Verdict::Conflict("the key is present on the active".into()),
        },
        Operation::CreateTable { table } => match table_exists(db, table)? {
            true => Verdict::Already,
            false => Verdict::Apply,
        },
        Operation::DropTable { table } => match table_exists(db, table)? {
            false => Verdict::Already,
            true => Verdict::Conflict("the table exists on the active: never dropped".into()),
        },
    })
}

/// The value the active holds for `key`, `None` also when it has no such table.
fn current(
    write: &mut WriteTransaction,
    table: &str,
    key: &[u8],
) -> Result<Option<Vec<u8>>, DbError> {
    match write.get(table, key) {
        Err(DbError::TableNotFound(_)) => Ok(None),
        found => found,
    }
}

fn table_exists(db: &Database, table: &str) -> Result<bool, DbError> {
    match db.begin_read()?.open_table(table) {
        Ok(_) => Ok(true),
        Err(DbError::TableNotFound(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

fn perform(write: &mut WriteTransaction, operation: &Operation) -> Result<(), DbError> {
    match operation {
        // A put into a table the active never had creates it, as the old active's
        // transaction did (its creation may be in an earlier, common transaction).
        Operation::Put { table, key, value } => {
            write.create_table(table)?;
            write.insert(table, key, value).map(drop)
        }
        Operation::Delete { table, key } => write.remove(table, key).map(drop),
        Operation::CreateTable { table } => write.create_table(table).map(drop),
        // A drop is never to apply (see `verdict`).
        Operation::DropTable { .. } => Ok(()),
    }
}

/// Notes what `transaction` leaves each of its keys at (it was applied or found there).
fn remember(left: &mut Left, transaction: &Transaction) {
    for operation in &transaction.operations {
        match operation {
            Operation::Put { table, key, value } => {
                left.insert((table.clone(), key.clone()), Some(value.clone()));
            }
            Operation::Delete { table, key } => {
                left.insert((table.clone(), key.clone()), None);
            }
            Operation::CreateTable { .. } | Operation::DropTable { .. } => {}
        }
    }
}

fn conflict(transaction: &Transaction, operation: &Operation, reason: String) -> Conflict {
    let key = match operation {
        Operation::Put { key, .. } | Operation::Delete { key, .. } => Some(printable(key)),
        Operation::CreateTable { .. } | Operation::DropTable { .. } => None,
    };
    Conflict {
        transaction: transaction.id,
        commit_micros: transaction.commit_micros,
        kind: operation.kind().to_owned(),
        table: operation.table().to_owned(),
        key,
        reason,
    }
}
