//! Reporting a replication stage's problems through `tracing` as they appear and clear.
//!
//! The stages (shipper, inspector, replayer) run in their own threads and keep their last
//! problem in the copy's observations, which the status shows at its next evaluation. Each
//! round repeats the same problem, so only a change is reported: a new or different problem
//! as a warning, its clearing as information. The library installs no subscriber; an
//! embedding program (or the `bluejet` tool) chooses where events go.

use std::path::Path;

/// Sets `slot` to `problem`, reporting the change (if any) for `stage` of the copy in
/// `copy`.
pub(crate) fn note_problem(
    slot: &mut Option<String>,
    stage: &str,
    copy: &Path,
    problem: Option<String>,
) {
    if *slot == problem {
        return;
    }
    match &problem {
        Some(problem) => tracing::warn!(
            copy = %copy.display(),
            stage,
            %problem,
            "replication stage failed"
        ),
        None => tracing::info!(copy = %copy.display(), stage, "replication stage recovered"),
    }
    *slot = problem;
}
