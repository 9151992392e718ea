//! `bluejet cluster move --config FILE --to NODE --comment TEXT [--validate-only]`: ask the
//! active node (the witness's owner) to move the database to its peer without losing
//! anything, like `Move-ActiveMailboxDatabase`; `--validate-only` only asks whether it would.
//! Exit 0 done (or allowed), 1 refused, 3 when the active cannot be reached or does not answer.
//!
//! The request carries a random id and the timeout; unanswered within the timeout, or on
//! SIGINT or SIGTERM, it is withdrawn (removed durably) before the command exits (3), and the
//! node abandons a move whose request is gone, up to the hand-over of the witness.

use super::cluster_file::{age_seconds, ClusterFile};
use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_replication::cluster::requests::{self, MoveOutcome, MoveResult};
use bluejet_replication::cluster::Role;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The options of `cluster move`.
#[derive(Clone, Debug)]
pub struct MoveOptions {
    /// The cluster file.
    pub config: PathBuf,
    /// The node to move to.
    pub to: String,
    /// Why (recorded in the witness and the event log).
    pub comment: String,
    /// Only ask whether the move would be allowed.
    pub validate_only: bool,
    /// How long to wait for the answer.
    pub timeout: Duration,
    /// Print one JSON document.
    pub json: bool,
}

/// Asks for the move and prints the answer.
pub fn run(options: &MoveOptions) -> Result<Verdict, ToolError> {
    let cluster = ClusterFile::read(&options.config)?;
    cluster.instance_of(&options.to)?;
    let Some(record) = cluster.witness()? else {
        return refused(
            options,
            "",
            "the witness has no owner: no node holds the database".into(),
        );
    };
    let from = record.owner.clone();
    let Ok(active) = cluster.instance_of(&from) else {
        return Err(ToolError::Damage(format!(
            "the witness names {from:?} owner, not a node of {}",
            options.config.display()
        )));
    };
    if from == options.to {
        return refused(
            options,
            &from,
            format!("{from} already holds the database (epoch {})", record.epoch),
        );
    }
    check_running(&cluster, &from, &active)?;
    // SIGINT or SIGTERM withdraws the request before the command exits: a request left
    // behind would be carried out by the node, long after the operator gave up.
    let interrupted = super::repl_run::interrupt_flag()?;
    let answer = requests::request_move_until(
        cluster.fs_for(&active).as_ref(),
        &active,
        &options.to,
        &options.comment,
        options.validate_only,
        options.timeout,
        &|| interrupted.load(Ordering::Acquire),
    )?;
    let result = match answer {
        MoveOutcome::Answered(result) => result,
        MoveOutcome::Withdrawn(message) => return Err(ToolError::Failure(message)),
    };
    print(options, &from, &result);
    Ok(if result.ok {
        Verdict::Clean
    } else {
        Verdict::Damaged
    })
}

/// The active node must be running (a fresh heartbeat saying Active): a request to a stopped
/// node would wait for nothing, and be carried out whenever it starts again.
fn check_running(cluster: &ClusterFile, name: &str, instance: &Path) -> Result<(), ToolError> {
    match cluster.heartbeat(instance) {
        Some(beat) if cluster.is_fresh(&beat) && beat.role == Role::Active => Ok(()),
        Some(beat) if cluster.is_fresh(&beat) => Err(ToolError::Failure(format!(
            "{name} owns the database but is {:?} (epoch {}): try again in a moment",
            beat.role, beat.epoch
        ))),
        Some(beat) => Err(ToolError::Failure(format!(
            "the active node {name} is not running: its last heartbeat is {:.1} s old",
            age_seconds(beat.time_micros)
        ))),
        None => Err(ToolError::Failure(format!(
            "the active node {name} has never written a heartbeat in {}",
            instance.display()
        ))),
    }
}

fn refused(options: &MoveOptions, from: &str, message: String) -> Result<Verdict, ToolError> {
    let result = MoveResult {
        id: 0,
        ok: false,
        message,
        paused_ms: 0,
        epoch: 0,
    };
    print(options, from, &result);
    Ok(Verdict::Damaged)
}

/// The JSON document of `cluster move`.
#[derive(Serialize)]
struct MoveDocument<'a> {
    kind: &'static str,
    from: &'a str,
    to: &'a str,
    comment: &'a str,
    validate_only: bool,
    ok: bool,
    message: &'a str,
    paused_ms: u64,
    epoch: u64,
    passed: bool,
}

fn print(options: &MoveOptions, from: &str, result: &MoveResult) {
    if options.json {
        output::print_json(&MoveDocument {
            kind: "cluster-move",
            from,
            to: &options.to,
            comment: &options.comment,
            validate_only: options.validate_only,
            ok: result.ok,
            message: &result.message,
            paused_ms: result.paused_ms,
            epoch: result.epoch,
            passed: result.ok,
        });
    } else if !result.ok {
        crate::out!("move to {} refused: {}", options.to, result.message);
    } else if options.validate_only {
        crate::out!(
            "move from {from} to {} allowed: {}",
            options.to,
            result.message
        );
    } else {
        crate::out!("{}", result.message);
        crate::out!("  from                 {from}");
        crate::out!("  to                   {}", options.to);
        crate::out!("  new epoch            {}", result.epoch);
        crate::out!("  commits held         {} ms", result.paused_ms);
    }
}
