//! The demo's lost-mail report: after the lossy failover and the old active's return, the
//! transactions its divergent tail held that the new active never had (the Message-IDs,
//! mailboxes and subjects of a few), and their re-application through the new active. The
//! dumpster has resubmitted the lost messages by then, so they are found there (skipped);
//! anything else missing is applied, and a key changed on both sides is never overwritten.

use super::replicate::{Cluster, NODES};
use super::scenario::Timeline;
use crate::commands::diverged_show;
use crate::exit::ToolError;
use crate::output;
use bluejet_engine::file::OsFileSystem;
use bluejet_replication::diverged::decode::Unreadable;
use bluejet_replication::diverged::reapply::{self, ReapplyOutcome};
use bluejet_replication::diverged::summary::{self, DivergedSummary, Totals};
use bluejet_replication::diverged::{decode, files};
use serde::Serialize;

/// Messages named in the demo's output.
const NAMED: usize = 3;

/// The report and what its re-application did.
pub struct LostMail {
    /// The decoded report.
    pub report: DivergedSummary,
    /// What the new active applied, skipped and left out.
    pub reapplied: ReapplyOutcome,
}

/// Shows node `old`'s divergent tail of `epoch` (if it kept one aside) and re-applies it
/// through the active node `active`, in process (a running node would be asked with
/// `bluejet diverged reapply`).
pub fn show_and_reapply(
    cluster: &Cluster,
    timeline: &Timeline,
    old: usize,
    active: usize,
    epoch: u64,
) -> Result<Option<LostMail>, ToolError> {
    let directory = cluster
        .instance(old)
        .join(format!("{}{epoch}", files::PREFIX));
    if !directory.is_dir() {
        return Ok(None);
    }
    let decoded =
        decode::decode_directory(&OsFileSystem, &directory).map_err(diverged_show::tool_error)?;
    let report = summary::summarize(&decoded);
    timeline.note(format!(
        "{}: lost-mail report: {}",
        NODES[old],
        short(&report)
    ));
    for line in diverged_show::mail_lines(&report, NAMED) {
        timeline.note(format!("{}:   {line}", NODES[old]));
    }
    let node = cluster
        .node(active)
        .ok_or_else(|| ToolError::Failure(format!("{} is not running", NODES[active])))?;
    let reapplied = node
        .with_database(|db| reapply::reapply_directory(&OsFileSystem, db, &directory))
        .ok_or_else(|| ToolError::Failure(format!("{} is no longer active", NODES[active])))?
        .map_err(diverged_show::tool_error)?;
    timeline.note(format!(
        "{}: re-applied {}'s divergent transactions: {} applied, {} skipped (already there: \
         the dumpster resubmitted them), {} conflicting",
        NODES[active],
        NODES[old],
        reapplied.applied_transactions,
        reapplied.skipped_transactions,
        reapplied.conflicting_transactions
    ));
    Ok(Some(LostMail { report, reapplied }))
}

/// The report in a few words.
fn short(report: &DivergedSummary) -> String {
    format!(
        "{} the new active never had ({}, {} of values) in {}",
        output::plural(report.totals.transactions, "transaction"),
        output::plural(report.totals.messages, "message"),
        output::bytes(report.totals.value_bytes),
        output::plural(report.files.len() as u64, "divergent file"),
    )
}

/// The summary line of the demo's text output.
pub fn summary_line(lost: Option<&LostMail>) -> String {
    let Some(lost) = lost else {
        return "nothing kept aside to re-apply".to_owned();
    };
    let outcome = &lost.reapplied;
    format!(
        "{} the new active never had, {}; re-applied: {} applied, {} skipped, {} conflicting",
        output::plural(lost.report.totals.transactions, "transaction"),
        output::plural(lost.report.totals.messages, "message"),
        outcome.applied_transactions,
        outcome.skipped_transactions,
        outcome.conflicting_transactions
    )
}

/// The JSON of the demo's document: the counts and the re-application's outcome (the
/// whole report is `bluejet diverged show --json`'s).
pub fn json(lost: &LostMail) -> LostMailJson<'_> {
    LostMailJson {
        directory: &lost.report.directory,
        totals: &lost.report.totals,
        unreadable: &lost.report.unreadable,
        reapplied: &lost.reapplied,
    }
}

/// The lost mail in the demo's document: where it was kept, its totals, the files that did
/// not read, and what re-applying it did.
#[derive(Serialize)]
pub struct LostMailJson<'a> {
    directory: &'a str,
    totals: &'a Totals,
    unreadable: &'a [Unreadable],
    reapplied: &'a ReapplyOutcome,
}
