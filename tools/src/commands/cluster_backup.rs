//! `bluejet cluster backup --config FILE [--node NODE] --to DIR [--incremental]`: a backup of
//! a running cluster, taken by its passive node from its copy, with no load on the active
//! (`bluejet backup --replica` needs the copy to itself, which a running node holds).
//!
//! The request (`requests/backup.json` in NODE's instance, NODE by default the node the
//! witness does not name owner) carries a random id, the absolute backup directory and the
//! timeout. The node answers "started", pauses its replication, backs up, restarts it and
//! answers the outcome. Not taken within `--timeout`, or on SIGINT or SIGTERM before the
//! node took it, the request is withdrawn (exit 3) and never carried out; once started, the
//! backup runs to its end and the command waits for it while the node's heartbeats go on.
//! Exit 0 taken, 1 refused or failed (the active, a bad directory, no full backup to follow),
//! 2 bad usage, 3 when the node is not running as a passive copy, stops, or does not answer.

use super::cluster_file::{age_seconds, ClusterFile};
use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_replication::cluster::backup_request::{self, BackupAnswer, BackupOutcome, Watch};
use bluejet_replication::cluster::Role;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The options of `cluster backup`.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// The cluster file.
    pub config: PathBuf,
    /// The node to back up (default: the one the witness does not name owner).
    pub node: Option<String>,
    /// The backup directory (new or empty).
    pub to: PathBuf,
    /// Only the generations after the copy's last backup.
    pub incremental: bool,
    /// How long the node has to take the request.
    pub timeout: Duration,
    /// Print one JSON document.
    pub json: bool,
}

/// Asks the passive node for the backup and prints the outcome.
pub fn run(options: &BackupOptions) -> Result<Verdict, ToolError> {
    let cluster = ClusterFile::read(&options.config)?;
    let to = destination(&options.to)?;
    let Some(record) = cluster.witness()? else {
        return refused(options, "", "the witness has no owner: no cluster runs yet");
    };
    let node = match &options.node {
        Some(node) => node.clone(),
        None => other_node(&cluster, &record.owner),
    };
    let instance = cluster.instance_of(&node)?;
    if node == record.owner {
        let message = format!(
            "{node} is the active node (the witness's owner at epoch {}): a backup is taken \
             from the passive copy, with no load on the active; ask the other node",
            record.epoch
        );
        return refused(options, &node, &message);
    }
    check_passive(&cluster, &node, &instance)?;
    // SIGINT or SIGTERM withdraws the request before the command exits: left behind, it
    // would be carried out long after the operator gave up.
    let interrupted = super::repl_run::interrupt_flag()?;
    let watch = Watch {
        timeout: options.timeout,
        interrupted: &|| interrupted.load(Ordering::Acquire),
        running: &|| {
            cluster
                .heartbeat(&instance)
                .is_some_and(|beat| cluster.is_fresh(&beat))
        },
    };
    let outcome = backup_request::request_backup(
        cluster.fs_for(&instance).as_ref(),
        &instance,
        &to,
        options.incremental,
        &watch,
    )?;
    let answer = match outcome {
        BackupOutcome::Answered(answer) => answer,
        BackupOutcome::Withdrawn(message) => return Err(ToolError::Failure(message)),
    };
    print(options, &node, &answer);
    Ok(if answer.ok {
        Verdict::Clean
    } else {
        Verdict::Damaged
    })
}

/// The backup directory as an absolute path (the node does not share this command's working
/// directory), in UTF-8 (the request is JSON).
fn destination(to: &Path) -> Result<String, ToolError> {
    let absolute = std::path::absolute(to)
        .map_err(|error| ToolError::Usage(format!("{}: {error}", to.display())))?;
    absolute.to_str().map(str::to_owned).ok_or_else(|| {
        ToolError::Usage(format!(
            "{}: the backup directory must be valid UTF-8",
            to.display()
        ))
    })
}

fn other_node(cluster: &ClusterFile, owner: &str) -> String {
    let [(first, _), (second, _)] = cluster.nodes();
    if first == owner { second } else { first }.to_owned()
}

/// The node must run as a passive copy (a fresh heartbeat saying Passive): a request to a
/// stopped node would wait for nothing.
fn check_passive(cluster: &ClusterFile, name: &str, instance: &Path) -> Result<(), ToolError> {
    match cluster.heartbeat(instance) {
        Some(beat) if cluster.is_fresh(&beat) && beat.role == Role::Passive => Ok(()),
        Some(beat) if cluster.is_fresh(&beat) => Err(ToolError::Failure(format!(
            "{name} is {:?} (epoch {}), not a passive copy: try again in a moment",
            beat.role, beat.epoch
        ))),
        Some(beat) => Err(ToolError::Failure(format!(
            "{name} is not running: its last heartbeat is {:.1} s old",
            age_seconds(beat.time_micros)
        ))),
        None => Err(ToolError::Failure(format!(
            "{name} has never written a heartbeat in {}",
            instance.display()
        ))),
    }
}

fn refused(options: &BackupOptions, node: &str, message: &str) -> Result<Verdict, ToolError> {
    let answer = BackupAnswer {
        id: 0,
        finished: true,
        ok: false,
        message: message.to_owned(),
        report: None,
    };
    print(options, node, &answer);
    Ok(Verdict::Damaged)
}

/// The JSON document of `cluster backup`.
#[derive(Serialize)]
struct ClusterBackupDocument<'a> {
    kind: &'static str,
    node: &'a str,
    incremental: bool,
    ok: bool,
    message: &'a str,
    backup: Option<super::backup::BackupDocument<'a>>,
    passed: bool,
}

fn print(options: &BackupOptions, node: &str, answer: &BackupAnswer) {
    if options.json {
        output::print_json(&ClusterBackupDocument {
            kind: "cluster-backup",
            node,
            incremental: options.incremental,
            ok: answer.ok,
            message: &answer.message,
            backup: answer.report.as_deref().map(super::backup::report_json),
            passed: answer.ok,
        });
        return;
    }
    match (&answer.report, answer.ok) {
        (Some(report), true) => {
            crate::out!("backup taken by {node}");
            super::backup::print_text(report);
        }
        _ => crate::out!("backup on {node} not taken: {}", answer.message),
    }
}
