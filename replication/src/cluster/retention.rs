//! Log retention on the active node: every `truncate_interval` the active deletes the
//! closed generations that are below its checkpoint, replayed by the passive and covered by
//! a backup taken from it (or, with circular logging, only the first two), and keeps the
//! reasons the oldest kept generation is kept, with a warning before the log outgrows its
//! space budget.

use super::node::{ActiveState, Shared};
use crate::truncate::{
    backup_coverage, decide, log_bytes, replica_progress, space_warning, TruncationInput,
};
use bluejet_engine::format::log_directory::LogDirectory;
use bluejet_engine::LogPosition;
use std::time::Instant;

/// What the last retention pass found.
#[derive(Clone, Debug, Default)]
pub struct Retention {
    /// When it ran.
    pub last: Option<Instant>,
    /// Why the oldest kept generation is kept.
    pub reasons: Vec<String>,
    /// A warning that the log approaches its space budget.
    pub warning: Option<String>,
    /// Generations deleted since the node became active.
    pub deleted: u64,
}

/// Runs a retention pass if one is due.
pub(crate) fn maybe_truncate(shared: &Shared, active: &ActiveState) {
    let mut retention = active.retention.lock();
    let due = retention
        .last
        .is_none_or(|last| last.elapsed() >= shared.config.truncate_interval);
    if !due {
        return;
    }
    retention.last = Some(Instant::now());
    if let Err(error) = truncate(shared, active, &mut retention) {
        retention.reasons = vec![format!("retention pass failed: {error}")];
    }
}

fn truncate(
    shared: &Shared,
    active: &ActiveState,
    retention: &mut Retention,
) -> Result<(), Box<dyn std::error::Error>> {
    let log = active.db.log();
    let config = log.config();
    let fs = config.file_system.as_ref();
    let listing = LogDirectory::list(fs, log.directory(), config.base_name)?;
    let peer = [shared.config.peer_instance.clone()];
    let input = TruncationInput {
        closed: listing.closed.keys().copied().collect(),
        checkpoint: log.checkpoint().position,
        replicas: vec![replica_progress(shared.config.peer_fs.as_ref(), &peer[0])?],
        backup_covers_through: backup_coverage(shared.config.peer_fs.as_ref(), &peer)?,
        circular: shared.config.circular_logging,
    };
    let decision = decide(&input);
    if !decision.delete.is_empty() {
        let deleted = log.truncate_below(LogPosition::new(decision.delete_below, 0))?;
        retention.deleted += deleted.len() as u64;
    }
    let used = log_bytes(fs, log.directory(), config.base_name)?;
    let warning = space_warning(used, shared.config.log_budget_bytes, 0.8, &decision);
    if warning.is_some() && retention.warning.is_none() {
        shared.event(
            "log-space",
            Some(active.epoch),
            warning.as_deref().unwrap_or_default(),
        );
    }
    retention.warning = warning;
    retention.reasons = decision.reasons;
    Ok(())
}
