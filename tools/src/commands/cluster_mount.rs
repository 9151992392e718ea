//! `bluejet cluster mount --config FILE --node NODE --force --comment TEXT`: the operator
//! overrides the mount dial, letting the passive node NODE fail over even if it loses more
//! generations than the dial allows (`Move-ActiveMailboxDatabase -MountDialOverride`).
//!
//! The request is a file the node takes at its next failover attempt, which it makes only
//! once the active stopped and its lease ended. The command waits for NODE to take the
//! database; a request not taken within `--timeout` is withdrawn, so that it cannot force
//! some later, unrelated failover, and so is one not taken when the command is interrupted
//! (SIGINT, SIGTERM). The request also carries the timeout: the node ignores it once that
//! long has passed since it first saw it. Exit 0 mounted, 1 refused or not taken, 2 without
//! `--force`, 3 on I/O errors.

use super::cluster_file::{age_seconds, ClusterFile};
use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_replication::cluster::requests;
use bluejet_replication::cluster::Role;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The options of `cluster mount`.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// The cluster file.
    pub config: PathBuf,
    /// The passive node to mount on.
    pub node: String,
    /// The operator accepts losing what the dial would not.
    pub force: bool,
    /// Why (recorded in the node's event log).
    pub comment: String,
    /// How long to wait for the node to take the database.
    pub timeout: Duration,
    /// Print one JSON document.
    pub json: bool,
}

/// What came of the request.
struct Outcome {
    taken: bool,
    ok: bool,
    epoch: Option<u64>,
    message: String,
}

/// Places the forced mount and waits for the node to take the database.
pub fn run(options: &MountOptions) -> Result<Verdict, ToolError> {
    let cluster = ClusterFile::read(&options.config)?;
    let instance = cluster.instance_of(&options.node)?;
    if !options.force {
        return Err(ToolError::Usage(
            "a mount overrides the mount dial and may lose committed generations: say --force"
                .into(),
        ));
    }
    let node = &options.node;
    let before = cluster.witness()?;
    if let Some(record) = &before {
        if &record.owner == node {
            return finish(
                options,
                &Outcome {
                    taken: false,
                    ok: false,
                    epoch: Some(record.epoch),
                    message: format!("{node} already holds the database (epoch {})", record.epoch),
                },
            );
        }
        if let Ok(owner) = cluster.instance_of(&record.owner) {
            let serving = cluster
                .heartbeat(&owner)
                .filter(|beat| cluster.is_fresh(beat) && beat.role == Role::Active && beat.serving);
            if let Some(beat) = serving {
                return finish(
                    options,
                    &Outcome {
                        taken: false,
                        ok: false,
                        epoch: Some(record.epoch),
                        message: format!(
                            "{} is active and serving (heartbeat {:.1} s ago): nothing to \
                             fail over (use `bluejet cluster move`)",
                            record.owner,
                            age_seconds(beat.time_micros)
                        ),
                    },
                );
            }
        }
    }
    // SIGINT or SIGTERM withdraws the request before the command exits: left behind, it
    // would force some later, unrelated failover past the dial.
    let interrupted = super::repl_run::interrupt_flag()?;
    let fs = cluster.fs_for(&instance);
    let placed =
        requests::request_forced_mount(fs.as_ref(), &instance, &options.comment, options.timeout)?;
    let request = requests::directory(&instance).join(requests::MOUNT);
    let old_epoch = before.as_ref().map_or(0, |record| record.epoch);
    let deadline = Instant::now() + options.timeout;
    let outcome = loop {
        let taken = !fs.exists(&request);
        if let Some(record) = cluster.witness()? {
            // Done once the node says so too: the witness names it before it has activated.
            let active = cluster.heartbeat(&instance).is_some_and(|beat| {
                beat.role == Role::Active && beat.epoch == record.epoch && beat.serving
            });
            if &record.owner == node && record.epoch > old_epoch && active {
                break Outcome {
                    taken,
                    ok: true,
                    epoch: Some(record.epoch),
                    message: format!(
                        "{node} took the database at epoch {} (mount forced: {})",
                        record.epoch, options.comment
                    ),
                };
            }
        }
        let stop = interrupted.load(Ordering::Acquire);
        if stop || Instant::now() >= deadline {
            if taken {
                break Outcome {
                    taken,
                    ok: false,
                    epoch: None,
                    message: format!(
                        "{node} took the request but not the database within {:?}: see its \
                         event log",
                        options.timeout
                    ),
                };
            }
            let withdrawn = requests::withdraw(fs.as_ref(), &instance, requests::MOUNT, placed.id)?;
            let why = if stop {
                format!("interrupted before {node} attempted a failover")
            } else {
                format!(
                    "{node} did not attempt a failover within {:?} (is it running as a passive \
                     copy, and has the active stopped?)",
                    options.timeout
                )
            };
            break Outcome {
                taken: !withdrawn,
                ok: false,
                epoch: None,
                message: format!("{why}: the request was withdrawn"),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    finish(options, &outcome)
}

/// The JSON document of `cluster mount`.
#[derive(Serialize)]
struct MountDocument<'a> {
    kind: &'static str,
    node: &'a str,
    comment: &'a str,
    forced: bool,
    taken: bool,
    ok: bool,
    epoch: Option<u64>,
    message: &'a str,
    passed: bool,
}

fn finish(options: &MountOptions, outcome: &Outcome) -> Result<Verdict, ToolError> {
    if options.json {
        output::print_json(&MountDocument {
            kind: "cluster-mount",
            node: &options.node,
            comment: &options.comment,
            forced: options.force,
            taken: outcome.taken,
            ok: outcome.ok,
            epoch: outcome.epoch,
            message: &outcome.message,
            passed: outcome.ok,
        });
    } else if outcome.ok {
        crate::out!("{}", outcome.message);
    } else {
        crate::out!("mount on {} refused: {}", options.node, outcome.message);
    }
    Ok(if outcome.ok {
        Verdict::Clean
    } else {
        Verdict::Damaged
    })
}
