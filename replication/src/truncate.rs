//! Log truncation: which closed generations the active may delete, why the rest is kept,
//! and the deletion itself.
//!
//! A closed generation `g` may be deleted only when all of these hold:
//! - `g` is below the active's checkpoint generation (recovery never needs it);
//! - every passive copy has replayed `g` (its `status.json` says `last_replayed >= g`);
//! - a backup covers `g` (a replica's `backups.json`), unless circular logging is on.
//!
//! Each condition is "below some limit", so the generations deleted are exactly those below
//! the smallest limit, and the oldest generation kept is explained by every condition that
//! holds it. Circular logging waives only the backup condition: a passive still gets every
//! generation it has not replayed.

use crate::backup::BackupHistory;
use crate::backup_error::BackupError;
use crate::layout::ReplicaLayout;
use crate::status::CopyStatus;
use bluejet_engine::db::read_header_copies;
use bluejet_engine::file::{FileSystem, OpenMode};
use bluejet_engine::format::log_directory::LogDirectory;
use bluejet_engine::{BaseName, LogPosition};
use bluejet_engine::{Database, DATABASE_FILE_NAME};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How far one passive copy has replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicaProgress {
    /// The replica directory.
    pub replica: PathBuf,
    /// The newest generation it replayed; `None` when it has replayed none (or has no
    /// status).
    pub replayed_through: Option<u32>,
    /// The generation it needed was deleted on the active: it needs a reseed, which copies
    /// the database, so it holds no generation (keeping them for it would grow the active's
    /// log without bound).
    pub needs_reseed: Option<u32>,
}

/// Everything the decision depends on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TruncationInput {
    /// The closed generations present in the log directory.
    pub closed: Vec<u32>,
    /// The active's checkpoint.
    pub checkpoint: LogPosition,
    /// Every passive copy.
    pub replicas: Vec<ReplicaProgress>,
    /// The newest generation covered by a backup, if any.
    pub backup_covers_through: Option<u32>,
    /// Circular logging: no backup is required.
    pub circular: bool,
}

/// The decision: what may be deleted and why the rest is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TruncationDecision {
    /// Closed generations below this one may be deleted.
    pub delete_below: u32,
    /// The closed generations to delete.
    pub delete: Vec<u32>,
    /// The oldest closed generation kept, if any.
    pub oldest_kept: Option<u32>,
    /// Why it is kept, one sentence per condition that holds it.
    pub reasons: Vec<String>,
}

/// Decides what may be deleted (a pure function of `input`).
pub fn decide(input: &TruncationInput) -> TruncationDecision {
    let mut limit = input.checkpoint.generation;
    for replica in input.replicas.iter().filter(|r| r.needs_reseed.is_none()) {
        limit = limit.min(replica.replayed_through.map_or(0, |g| g.saturating_add(1)));
    }
    if !input.circular {
        limit = limit.min(
            input
                .backup_covers_through
                .map_or(0, |g| g.saturating_add(1)),
        );
    }
    let delete: Vec<u32> = input
        .closed
        .iter()
        .copied()
        .filter(|&g| g < limit)
        .collect();
    let oldest_kept = input.closed.iter().copied().find(|&g| g >= limit);
    let reasons = oldest_kept.map_or_else(Vec::new, |g| reasons(input, g));
    TruncationDecision {
        delete_below: limit,
        delete,
        oldest_kept,
        reasons,
    }
}

/// Every condition that keeps generation `g`.
fn reasons(input: &TruncationInput, g: u32) -> Vec<String> {
    let mut reasons = Vec::new();
    if g >= input.checkpoint.generation {
        reasons.push(format!(
            "generation {g} is kept: at or above the checkpoint (generation {})",
            input.checkpoint.generation
        ));
    }
    for replica in input.replicas.iter().filter(|r| r.needs_reseed.is_none()) {
        let path = replica.replica.display();
        match replica.replayed_through {
            None => reasons.push(format!(
                "generation {g} is kept: replica {path} has replayed nothing yet"
            )),
            Some(through) if through < g => reasons.push(format!(
                "generation {g} is kept: replica {path} has replayed only through {through}"
            )),
            Some(_) => {}
        }
    }
    if !input.circular {
        match input.backup_covers_through {
            None => reasons.push(format!(
                "generation {g} is kept: not yet covered by a backup (no backup recorded)"
            )),
            Some(covered) if covered < g => reasons.push(format!(
                "generation {g} is kept: not yet covered by a backup (backups cover through {covered})"
            )),
            Some(_) => {}
        }
    }
    reasons
}

/// How far the replica in `replica` has replayed, from its `status.json`.
pub fn replica_progress(
    fs: &dyn FileSystem,
    replica: &Path,
) -> Result<ReplicaProgress, BackupError> {
    let layout = ReplicaLayout::new(replica);
    // Staleness does not matter here: what was replayed stays replayed.
    let status = CopyStatus::read(fs, &layout, Duration::MAX)?;
    Ok(ReplicaProgress {
        replica: replica.to_owned(),
        replayed_through: (status.as_ref())
            .and_then(|s| s.last_replayed)
            .map(|m| m.generation),
        needs_reseed: status.and_then(|s| s.deleted_on_active),
    })
}

/// The newest generation covered by a backup recorded in any of `replicas`.
pub fn backup_coverage(
    fs: &dyn FileSystem,
    replicas: &[PathBuf],
) -> Result<Option<u32>, BackupError> {
    let mut covered = None;
    for replica in replicas {
        let history = BackupHistory::read(fs, &ReplicaLayout::new(replica))?;
        covered = covered.max(history.covers_through());
    }
    Ok(covered)
}

/// Gathers the decision's input for the open active `database` and its `replicas`.
pub fn gather(
    database: &Database,
    replicas: &[PathBuf],
    circular: bool,
) -> Result<TruncationInput, BackupError> {
    let log = database.log();
    let config = log.config();
    let fs = config.file_system.as_ref();
    let listing = LogDirectory::list(fs, log.directory(), config.base_name)?;
    let progress = replicas
        .iter()
        .map(|replica| replica_progress(fs, replica))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TruncationInput {
        closed: listing.closed.keys().copied().collect(),
        checkpoint: log.checkpoint().position,
        replicas: progress,
        backup_covers_through: backup_coverage(fs, replicas)?,
        circular,
    })
}

/// Deletes what `decision` allows from the active's log; returns the generations deleted.
pub fn truncate_active(
    database: &Database,
    decision: &TruncationDecision,
) -> Result<Vec<u32>, BackupError> {
    Ok(database
        .log()
        .truncate_below(LogPosition::new(decision.delete_below, 0))?)
}

/// Total bytes of the stream's closed generations in `directory`.
pub fn log_bytes(
    fs: &dyn FileSystem,
    directory: &Path,
    base: BaseName,
) -> Result<u64, BackupError> {
    let listing = LogDirectory::list(fs, directory, base)?;
    let mut total = 0;
    for name in listing.closed.values() {
        let path = directory.join(name);
        let file = fs
            .open(&path, OpenMode::Read)
            .map_err(|error| BackupError::io(&path, "opening", error))?;
        total += file
            .size()
            .map_err(|error| BackupError::io(&path, "reading the size of", error))?;
    }
    Ok(total)
}

/// A warning when the log uses at least `fraction` of `budget` bytes, saying why
/// truncation does not free it.
pub fn space_warning(
    used: u64,
    budget: u64,
    fraction: f64,
    decision: &TruncationDecision,
) -> Option<String> {
    if budget == 0 || (used as f64) < fraction * budget as f64 {
        return None;
    }
    let share = used as f64 * 100.0 / budget as f64;
    let why = if decision.reasons.is_empty() {
        "nothing holds it".to_owned()
    } else {
        decision.reasons.join("; ")
    };
    Some(format!(
        "log space {share:.0}% of {}: truncation blocked because {why}",
        human_bytes(budget)
    ))
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What truncating a replica's own log did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicaTruncation {
    /// The passive's checkpoint generation.
    pub checkpoint_generation: u32,
    /// The newest generation covered by a backup, if any.
    pub backup_covers_through: Option<u32>,
    /// Generations deleted from `logs/`.
    pub deleted: Vec<u32>,
}

/// Deletes from the replica's `logs/` the generations below the passive's checkpoint
/// generation that a backup covers (all below the checkpoint when `circular`). The replica
/// must not be held by a service.
pub fn truncate_replica(
    fs: &dyn FileSystem,
    replica: &Path,
    circular: bool,
) -> Result<ReplicaTruncation, BackupError> {
    let layout = ReplicaLayout::new(replica);
    let _lock = crate::lock::ReplicaLock::acquire(fs, &layout.lock())?;
    let identity = crate::identity::ReplicaIdentity::read(fs, &layout)?;
    let path = layout.database().join(DATABASE_FILE_NAME);
    let handle = fs
        .open(&path, OpenMode::Read)
        .map_err(|error| BackupError::io(&path, "opening", error))?;
    let checkpoint = read_header_copies(&handle, &path)?.header.checkpoint;
    let covered = BackupHistory::read(fs, &layout)?.covers_through();
    let mut limit = checkpoint.generation;
    if !circular {
        limit = limit.min(covered.map_or(0, |g| g.saturating_add(1)));
    }
    let deleted = delete_replica_logs(fs, &layout, identity.base()?, limit)?;
    Ok(ReplicaTruncation {
        checkpoint_generation: checkpoint.generation,
        backup_covers_through: covered,
        deleted,
    })
}

/// Deletes the closed generations below `limit` from the replica's `logs/` (the caller
/// holds the replica: its lock, or the running service that holds it); the generations
/// deleted.
pub fn delete_replica_logs(
    fs: &dyn FileSystem,
    layout: &ReplicaLayout,
    base: BaseName,
    limit: u32,
) -> Result<Vec<u32>, BackupError> {
    let listing = LogDirectory::list(fs, &layout.logs(), base)?;
    let mut deleted = Vec::new();
    for (&generation, name) in listing.closed.range(..limit) {
        let path = layout.logs().join(name);
        fs.remove(&path)
            .map_err(|error| BackupError::io(&path, "removing", error))?;
        deleted.push(generation);
    }
    if !deleted.is_empty() {
        fs.sync_directory(&layout.logs())
            .map_err(|error| BackupError::io(&layout.logs(), "syncing", error))?;
    }
    Ok(deleted)
}
