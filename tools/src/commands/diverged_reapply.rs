//! `bluejet diverged reapply DIR --to NODE [--timeout SECONDS] [--json]`: re-apply the
//! divergent transactions of `DIR` (a `diverged-<epoch>` directory) through the running
//! active node whose instance directory is NODE, as new transactions. The tool never opens
//! the database (the node owns it): it writes `requests/reapply.json` into NODE, and the
//! node decodes DIR itself, re-applies what is missing, skips what it has, leaves out every
//! transaction with a key changed on both sides, and answers. A passive node refuses.
//!
//! Not answered within `--timeout`, or on SIGINT or SIGTERM, the request is withdrawn
//! (exit 3). Exit 0 done without conflicts, 1 refused or done with conflicting transactions
//! (listed), 2 bad usage, 3 when NODE is not running or does not answer.

use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::log::now_micros;
use bluejet_replication::cluster::heartbeat;
use bluejet_replication::cluster::reapply_request::{self, ReapplyAnswer, ReapplyRequestOutcome};
use bluejet_replication::diverged::reapply::ReapplyOutcome;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A heartbeat older than this says the node is not running.
const STALE: Duration = Duration::from_secs(10);

/// The options of `diverged reapply`.
#[derive(Clone, Debug)]
pub struct ReapplyOptions {
    /// The `diverged-<epoch>` directory.
    pub directory: PathBuf,
    /// The active node's instance directory.
    pub to: PathBuf,
    /// How long the node has to answer.
    pub timeout: Duration,
    /// Print one JSON document.
    pub json: bool,
}

/// Asks the node and prints its answer.
pub fn run(options: &ReapplyOptions) -> Result<Verdict, ToolError> {
    let directory = absolute(&options.directory)?;
    reapply_request::checked_directory(&directory)
        .map_err(|reason| ToolError::Usage(format!("{}: {reason}", options.directory.display())))?;
    check_running(&options.to)?;
    let interrupted = super::repl_run::interrupt_flag()?;
    let outcome = reapply_request::request_reapply(
        &OsFileSystem,
        &options.to,
        &directory,
        options.timeout,
        &|| interrupted.load(Ordering::Acquire),
    )?;
    let answer = match outcome {
        ReapplyRequestOutcome::Answered(answer) => answer,
        ReapplyRequestOutcome::Withdrawn(message) => return Err(ToolError::Failure(message)),
    };
    print(options, &answer);
    let conflicts = answer
        .outcome
        .as_ref()
        .map_or(0, |outcome| outcome.conflicting_transactions);
    Ok(match answer.ok && conflicts == 0 {
        true => Verdict::Clean,
        false => Verdict::Damaged,
    })
}

/// DIR as an absolute path (the node does not share this command's working directory), in
/// UTF-8 (the request is JSON).
fn absolute(directory: &Path) -> Result<String, ToolError> {
    let absolute = std::path::absolute(directory)
        .map_err(|error| ToolError::Usage(format!("{}: {error}", directory.display())))?;
    absolute.to_str().map(str::to_owned).ok_or_else(|| {
        ToolError::Usage(format!(
            "{}: the directory must be valid UTF-8",
            directory.display()
        ))
    })
}

/// The node must be running (a fresh heartbeat): a request to a stopped node would wait
/// for nothing. Its role is the node's to judge (a passive refuses, saying why).
fn check_running(instance: &Path) -> Result<(), ToolError> {
    let beat = heartbeat::read(&OsFileSystem, instance)?.ok_or_else(|| {
        ToolError::Failure(format!(
            "{} has never written a heartbeat: not a running node's instance",
            instance.display()
        ))
    })?;
    let age = Duration::from_micros(now_micros().saturating_sub(beat.time_micros));
    if age > STALE {
        return Err(ToolError::Failure(format!(
            "{} is not running: its last heartbeat is {:.1} s old",
            beat.node,
            age.as_secs_f64()
        )));
    }
    Ok(())
}

/// The JSON document of `diverged reapply`: the replication crate's outcome, whose layout
/// version it carries.
#[derive(Serialize)]
struct ReapplyDocument<'a> {
    kind: &'static str,
    schema_version: u32,
    node: String,
    ok: bool,
    message: &'a str,
    outcome: Option<&'a ReapplyOutcome>,
}

fn print(options: &ReapplyOptions, answer: &ReapplyAnswer) {
    if options.json {
        output::print_json(&ReapplyDocument {
            kind: "diverged-reapply",
            schema_version: bluejet_replication::diverged::reapply::SCHEMA_VERSION,
            node: options.to.display().to_string(),
            ok: answer.ok,
            message: &answer.message,
            outcome: answer.outcome.as_ref(),
        });
        return;
    }
    let Some(outcome) = &answer.outcome else {
        crate::out!("not re-applied: {}", answer.message);
        return;
    };
    crate::out!("{}", answer.message);
    for conflict in &outcome.conflicts {
        crate::out!(
            "  conflicting: transaction {} ({}): {} {}/{}: {}",
            conflict.transaction,
            output::time(conflict.commit_micros),
            conflict.kind,
            conflict.table,
            conflict.key.as_deref().unwrap_or(""),
            conflict.reason
        );
    }
}
