//! Circular logging (ESE's option): after each checkpoint, a standalone database deletes the
//! closed log generations recovery can no longer need, so its directory stays bounded.
//!
//! Recovery starts at the checkpoint of whichever header copy it reads, and the log's
//! checkpoint file `E00.chk` trails the newest header by one checkpoint: it is never past the
//! checkpoint of either header copy. So every closed generation below the checkpoint file's
//! generation (and below the newest header's checkpoint and required range, checked as well)
//! is one no recovery reads. Deletion happens only after the checkpoint that moved the
//! checkpoint file is durable (header synced, checkpoint file synced), lowest generation
//! first, with the directory synced after each removal: a crash mid-way leaves a gap at the
//! low end of the stream only, which the log, recovery and the tools accept.
//!
//! It is on by default and off when [`Options::circular_logging`](super::Options) is false
//! (the replication crate opens an active that way), when the directory holds the
//! retention marker (see [`super::retention_marker`]), read again before every pass, or for
//! a passive copy.

use super::database::Inner;
use super::retention_marker::read_retention_marker;
use super::DbError;
use crate::log::LogPosition;
use std::sync::atomic::Ordering;

/// Whether circular logging is on for an open database, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircularLogging {
    /// Whether closed generations below the checkpoint are deleted.
    pub enabled: bool,
    /// Why it is on or off.
    pub reason: String,
    /// Generations deleted since open.
    pub deleted: u64,
}

impl CircularLogging {
    /// The state at open.
    pub(crate) fn at_open(options: &super::Options, marker_reason: Option<String>) -> Self {
        let (enabled, reason) = match marker_reason {
            _ if !options.circular_logging => (
                false,
                "off: Options::circular_logging is false (replication or backup reads the log)"
                    .to_owned(),
            ),
            Some(marker) => (false, format!("off: {marker}")),
            None => (
                true,
                "on: a standalone database (circular logging is the default, and no retention marker is present)"
                    .to_owned(),
            ),
        };
        Self {
            enabled,
            reason,
            deleted: 0,
        }
    }

    /// The state of a passive copy.
    pub(crate) fn passive() -> Self {
        Self {
            enabled: false,
            reason: "off: a passive copy replays a shipped log, which its replication truncates"
                .to_owned(),
            deleted: 0,
        }
    }

    fn stop(&mut self, reason: String) {
        self.enabled = false;
        self.reason = format!("off: {reason}");
    }
}

/// After a checkpoint: deletes the closed generations below every position recovery could
/// start from, unless circular logging is off. A failed removal or directory sync is an
/// error, which poisons the database as every failed write or sync does (the directory's
/// state is then unknown).
pub(crate) fn after_checkpoint(inner: &Inner) -> Result<(), DbError> {
    let Some(log) = inner.log.active() else {
        return Ok(());
    };
    // Held through the deletion: `retain_logs` waits for a pass under way to finish.
    let mut state = inner.circular.lock();
    if !state.enabled {
        return Ok(());
    }
    let fs = log.config().file_system.as_ref();
    let marker = read_retention_marker(fs, &inner.directory);
    if marker.retains() {
        state.stop(marker.describe());
        return Ok(());
    }
    let limit = keep_from(inner, log.checkpoint().position);
    let deleted = log.truncate_below(LogPosition::new(limit, 0))?;
    state.deleted += deleted.len() as u64;
    Ok(())
}

/// The lowest generation recovery could read: the checkpoint file's (which trails both
/// header copies), never above the newest header's checkpoint or required range.
fn keep_from(inner: &Inner, checkpoint_file: LogPosition) -> u32 {
    let header = inner.header.lock().header.clone();
    let mut limit = checkpoint_file.generation.min(header.checkpoint.generation);
    if header.log_required.0 != 0 {
        limit = limit.min(header.log_required.0);
    }
    limit
}

/// Stops circular logging for good: writes the retention marker durably, under the lock a
/// deletion pass holds, so that no pass deletes anything once this returns.
pub(crate) fn retain(inner: &Inner, reason: &str) -> Result<(), DbError> {
    let mut state = inner.circular.lock();
    let fs = inner.options.log.file_system.as_ref();
    super::retention_marker::write_retention_marker(fs, &inner.directory, reason)?;
    state.stop(read_retention_marker(fs, &inner.directory).describe());
    Ok(())
}

/// Log bytes between the checkpoint file and the newest header's checkpoint: what circular
/// logging cannot delete until the next checkpoint moves the checkpoint file. Zero when
/// circular logging is off or a deletion pass is under way (it is asked after every commit,
/// which must not wait for one).
pub(crate) fn trail(inner: &Inner) -> u64 {
    let enabled = inner.circular.try_lock().is_some_and(|state| state.enabled);
    if !enabled {
        return 0;
    }
    let file = LogPosition::from_u64(inner.checkpoint_file_position.load(Ordering::Relaxed));
    let header = LogPosition::from_u64(inner.checkpoint_position.load(Ordering::Relaxed));
    let generations = header.generation.saturating_sub(file.generation) as u64;
    (generations * inner.log.generation_bytes() + header.offset as u64)
        .saturating_sub(file.offset as u64)
}
