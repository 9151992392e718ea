//! `bluejet cluster init --config FILE [--comment TEXT]`: the one-time bootstrap of a new
//! cluster. Writes the witness's first record, epoch 1 owned by the node the cluster file
//! names, into an existing witness directory. A node refuses to run against a witness
//! without a record (an unmounted share's mount point looks exactly like an empty
//! directory), so nothing else ever starts epoch 1. Exit 0 written, 1 refused (the witness
//! holds records already), 3 when the witness directory does not exist or cannot be
//! written, or a node of the cluster file is running (a fresh heartbeat).

use super::cluster_file::ClusterFile;
use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::file::OsFileSystem;
use bluejet_replication::cluster::witness::{InitError, Witness};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// The JSON document of `cluster init`.
#[derive(Serialize)]
struct InitDocument<'a> {
    kind: &'static str,
    witness: String,
    owner: &'a str,
    comment: &'a str,
    ok: bool,
    epoch: Option<u64>,
    message: &'a str,
    passed: bool,
}

/// Writes the first witness record; see the module documentation.
pub fn run(config: &Path, comment: Option<&str>, as_json: bool) -> Result<Verdict, ToolError> {
    let cluster = ClusterFile::read(config)?;
    let directory = &cluster.config.witness;
    if !directory.is_dir() {
        // Never made here: a witness created where the share should be mounted would be a
        // second cluster's.
        return Err(ToolError::Failure(format!(
            "{} (is the share mounted? it is never created by bluejet)",
            super::cluster_file::witness_problem(directory)
        )));
    }
    // A cluster whose witness files were removed while it runs must not be initialised
    // again under it (found by an adversarial test: the passive was named owner, the active
    // demoted, and the cluster stayed down).
    for (node, instance) in cluster.nodes() {
        if let Some(beat) = cluster
            .heartbeat(instance)
            .filter(|beat| cluster.is_fresh(beat))
        {
            return Err(ToolError::Failure(format!(
                "node {node} is running ({:?} at epoch {}, heartbeat {:.1} s ago): a running \
                 cluster is never initialised again; stop both nodes first",
                beat.role,
                beat.epoch,
                super::cluster_file::age_seconds(beat.time_micros)
            )));
        }
    }
    let owner = &cluster.file.name;
    let comment = comment.unwrap_or("initialised by bluejet cluster init");
    let witness = Witness::new(Arc::new(OsFileSystem), directory, cluster.config.skew);
    let (ok, epoch, message) = match witness.init(owner, comment) {
        Ok(record) => (
            true,
            Some(record.epoch),
            format!(
                "witness {} initialised: {owner} owns epoch {}; start {owner} first",
                directory.display(),
                record.epoch
            ),
        ),
        Err(InitError::Exists(message)) => (false, None, message),
        Err(InitError::Unreachable(error)) => return Err(error.into()),
    };
    if as_json {
        output::print_json(&InitDocument {
            kind: "cluster-init",
            witness: directory.display().to_string(),
            owner,
            comment,
            ok,
            epoch,
            message: &message,
            passed: ok,
        });
    } else if ok {
        crate::out!("{message}");
    } else {
        crate::out!("cluster init refused: {message}");
    }
    Ok(if ok { Verdict::Clean } else { Verdict::Damaged })
}
