//! `bluejet cluster status --config FILE`: the witness's record (epoch, owner, lease left),
//! both nodes' last heartbeats (role, serving, epoch, age) and the copy status of each node
//! that is not active, like `Get-DatabaseAvailabilityGroup` with `Get-MailboxDatabaseCopyStatus`.
//! Exit 0 when the owner serves and the other node keeps a running copy, 1 otherwise (each
//! problem is named).

use super::cluster_file::{age_seconds, ClusterFile};
use super::repl_status;
use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::log::now_micros;
use bluejet_replication::cluster::heartbeat::Heartbeat;
use bluejet_replication::cluster::witness::WitnessRecord;
use bluejet_replication::cluster::Role;
use bluejet_replication::layout::ReplicaLayout;
use bluejet_replication::{CopyState, CopyStatus};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What is known of one node.
struct NodeView {
    name: String,
    instance: PathBuf,
    heartbeat: Option<Heartbeat>,
    /// Why its heartbeat could not be read (a peer over TCP that does not answer).
    unreadable: Option<String>,
    /// When its heartbeat was read (µs): its age is as of then, not of a later read's end
    /// (found by an adversarial round: a frozen peer's timeout made the healthy active's
    /// heartbeat and lease look seconds old).
    read_micros: u64,
    fresh: bool,
    /// Its copy status, unless it is active (an old `status.json` from its passive days
    /// says nothing then).
    copy: Option<CopyStatus>,
}

/// Prints the cluster's status.
pub fn run(config: &Path, json: bool) -> Result<Verdict, ToolError> {
    let cluster = ClusterFile::read(config)?;
    let mut problems = Vec::new();
    let nodes: Vec<NodeView> = cluster
        .nodes()
        .into_iter()
        .map(|(name, instance)| view(&cluster, name, instance, &mut problems))
        .collect();
    // Last: the lease left is as of now, whatever the nodes' reads waited for.
    let witness = cluster.witness()?;
    check(witness.as_ref(), &nodes, &mut problems);
    let verdict = Verdict::from_problems(problems.len());
    if json {
        output::print_json(&ClusterReport {
            kind: "cluster-status",
            config: config.display().to_string(),
            witness: witness.as_ref().map(witness_json),
            nodes: nodes.iter().map(node_json).collect(),
            problems: &problems,
            passed: verdict == Verdict::Clean,
        });
    } else {
        crate::out!("witness: {}", cluster.file.witness.display());
        match &witness {
            Some(record) => crate::out!("  {}", witness_text(record)),
            None => crate::out!("  no owner yet"),
        }
        for node in &nodes {
            crate::out!("node {} ({})", node.name, node.instance.display());
            crate::out!("  {}", heartbeat_text(node));
            if let Some(beat) = node.heartbeat.as_ref().filter(|b| b.role == Role::Active) {
                for reason in &beat.retention {
                    crate::out!("  log kept: {reason}");
                }
                if let Some(warning) = &beat.log_warning {
                    crate::out!("  warning: {warning}");
                }
            }
            if let Some(copy) = &node.copy {
                for line in repl_status::lines(copy) {
                    crate::out!("{line}");
                }
            }
        }
        if problems.is_empty() {
            crate::out!("cluster healthy");
        }
        for problem in &problems {
            crate::out!("problem: {problem}");
        }
    }
    Ok(verdict)
}

fn view(
    cluster: &ClusterFile,
    name: &str,
    instance: &Path,
    problems: &mut Vec<String>,
) -> NodeView {
    let (heartbeat, unreadable) = match cluster.read_heartbeat(instance) {
        Ok(heartbeat) => (heartbeat, None),
        Err(error) => (None, Some(error)),
    };
    let read_micros = now_micros();
    let fresh = heartbeat
        .as_ref()
        .is_some_and(|beat| cluster.is_fresh_at(beat, read_micros));
    let active = heartbeat
        .as_ref()
        .is_some_and(|beat| beat.role == Role::Active);
    let copy = if active {
        None
    } else {
        let layout = ReplicaLayout::new(instance);
        CopyStatus::read(
            cluster.fs_for(instance).as_ref(),
            &layout,
            repl_status::STALE,
        )
        .unwrap_or_else(|error| {
            problems.push(format!("{name}'s copy status cannot be read: {error}"));
            None
        })
    };
    NodeView {
        name: name.to_owned(),
        instance: instance.to_owned(),
        heartbeat,
        unreadable,
        read_micros,
        fresh,
        copy,
    }
}

/// The age of `beat` (seconds) when it was read at `read_micros`.
fn age_at(beat: &Heartbeat, read_micros: u64) -> f64 {
    (read_micros as f64 - beat.time_micros as f64) / 1e6
}

/// Names what keeps the cluster from being healthy.
fn check(witness: Option<&WitnessRecord>, nodes: &[NodeView], problems: &mut Vec<String>) {
    let Some(record) = witness else {
        problems.push("the witness has no owner: no node has taken the database yet".into());
        return;
    };
    if !nodes.iter().any(|node| node.name == record.owner) {
        problems.push(format!(
            "the witness names {:?} owner, not a node of this cluster file",
            record.owner
        ));
    }
    let left = lease_left(record);
    if record.lease_until_micros == 0 {
        problems.push(format!(
            "{} owns the new cluster but has not started yet (no lease)",
            record.owner
        ));
    } else if left < 0.0 {
        problems.push(format!("{}'s lease ended {:.1} s ago", record.owner, -left));
    }
    for node in nodes {
        let Some(beat) = &node.heartbeat else {
            problems.push(match &node.unreadable {
                Some(error) => format!("{}'s heartbeat cannot be read: {error}", node.name),
                None => format!("{} has never written a heartbeat", node.name),
            });
            continue;
        };
        if !node.fresh {
            problems.push(format!(
                "{}'s last heartbeat is {:.1} s old: is it running?",
                node.name,
                age_at(beat, node.read_micros)
            ));
            continue;
        }
        if node.name == record.owner {
            if beat.role != Role::Active || !beat.serving {
                problems.push(format!(
                    "{} owns the database but is {:?}{}",
                    node.name,
                    beat.role,
                    if beat.role == Role::Active {
                        ", not serving"
                    } else {
                        ""
                    }
                ));
            }
            continue;
        }
        match (&node.copy, beat.role) {
            (_, Role::Active) => problems.push(format!(
                "{} says it is active, but the witness names {} owner",
                node.name, record.owner
            )),
            (_, Role::Joining) => problems.push(format!(
                "{} is joining{}",
                node.name,
                if beat.needs_seed {
                    " (waiting for a seed)"
                } else {
                    ""
                }
            )),
            (None, Role::Passive) => problems.push(format!("{} has no copy status", node.name)),
            (Some(copy), Role::Passive) if copy.state == CopyState::Failed => problems.push(
                format!("{}'s copy is {}", node.name, repl_status::state_text(copy)),
            ),
            (Some(_), Role::Passive) => {}
        }
    }
}

/// Seconds of the owner's lease left (negative once it ended).
fn lease_left(record: &WitnessRecord) -> f64 {
    -age_seconds(record.lease_until_micros)
}

fn witness_text(record: &WitnessRecord) -> String {
    let left = lease_left(record);
    let lease = if record.lease_until_micros == 0 {
        "no lease yet (initialised by cluster init)".to_owned()
    } else if left >= 0.0 {
        format!("lease {left:.1} s left")
    } else {
        format!("lease ended {:.1} s ago", -left)
    };
    format!(
        "owner {}, epoch {}, {lease}; last change {} ({})",
        record.owner,
        record.epoch,
        output::time(record.updated_micros),
        record.comment
    )
}

/// `cluster status --json`: the witness's record, each node's view, and the problems.
#[derive(Serialize)]
struct ClusterReport<'a> {
    kind: &'static str,
    config: String,
    witness: Option<WitnessJson<'a>>,
    nodes: Vec<NodeJson<'a>>,
    problems: &'a [String],
    passed: bool,
}

/// The witness's record as stored, with its times as text and the lease left.
#[derive(Serialize)]
struct WitnessJson<'a> {
    #[serde(flatten)]
    record: &'a WitnessRecord,
    lease_until: String,
    lease_remaining_seconds: f64,
    updated: String,
    now: String,
}

fn witness_json(record: &WitnessRecord) -> WitnessJson<'_> {
    WitnessJson {
        record,
        lease_until: output::time(record.lease_until_micros),
        lease_remaining_seconds: lease_left(record),
        updated: output::time(record.updated_micros),
        now: output::time(now_micros()),
    }
}

fn heartbeat_text(node: &NodeView) -> String {
    let Some(beat) = &node.heartbeat else {
        return match &node.unreadable {
            Some(error) => format!("heartbeat cannot be read: {error}"),
            None => "no heartbeat".into(),
        };
    };
    let mut text = format!("{:?}, epoch {}", beat.role, beat.epoch);
    if beat.role == Role::Active {
        text.push_str(if beat.serving {
            ", serving"
        } else {
            ", not serving"
        });
        text.push_str(&format!(", log end {}", beat.end));
    }
    if beat.needs_seed {
        text.push_str(", needs a seed");
    }
    text.push_str(&format!(
        ", heartbeat {:.1} s ago{}",
        age_at(beat, node.read_micros),
        if node.fresh { "" } else { " (stale)" }
    ));
    text
}

/// One node: its heartbeat (or why it cannot be read) and, unless active, its copy status.
#[derive(Serialize)]
struct NodeJson<'a> {
    name: &'a str,
    instance: String,
    heartbeat: Option<HeartbeatJson<'a>>,
    unreadable: Option<&'a str>,
    copy: Option<repl_status::StatusJson<'a>>,
}

/// A heartbeat as written, with its time as text, its age when read and whether that is
/// fresh.
#[derive(Serialize)]
struct HeartbeatJson<'a> {
    #[serde(flatten)]
    beat: &'a Heartbeat,
    time: String,
    age_seconds: f64,
    fresh: bool,
}

fn node_json(node: &NodeView) -> NodeJson<'_> {
    NodeJson {
        name: &node.name,
        instance: node.instance.display().to_string(),
        heartbeat: node.heartbeat.as_ref().map(|beat| HeartbeatJson {
            beat,
            time: output::time(beat.time_micros),
            age_seconds: age_at(beat, node.read_micros),
            fresh: node.fresh,
        }),
        unreadable: node.unreadable.as_deref(),
        copy: node.copy.as_ref().map(repl_status::status_json),
    }
}
