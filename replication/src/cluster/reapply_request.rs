//! Re-applying an old active's divergent transactions through the running active node:
//! `instance/requests/reapply.json`, answered in `reapply-result.json`.
//!
//! The node owns its database (one owner per database), so a tool never opens it: it asks
//! the node, as for a move or a backup (see [`super::requests`]: an id, a timeout counted
//! from the node's first sighting, withdrawn by its requester, dropped when already in
//! place at the node's start). The active node serves it between two rounds of its loop: it
//! checks the directory the request names (an absolute path without `.` or `..`, whose last
//! component is `diverged-<epoch>`, a directory), decodes it itself and re-applies it under
//! the rules of [`crate::diverged::reapply`], through its normal commit path; then answers
//! with the outcome (also kept in the directory's `reapplied.json`). A passive or joining
//! node refuses the request with the reason: only the active holds the database.

use super::node::Shared;
use super::requests::{self, directory, look, node_fs, write, Request};
use crate::diverged::reapply::{self, ReapplyOutcome};
use crate::error::ReplError;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::Database;
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// The re-application request's file name.
pub const REAPPLY: &str = "reapply.json";
/// The re-application answer's file name.
pub const REAPPLY_RESULT: &str = "reapply-result.json";
/// The longest directory accepted, in bytes (Linux's `PATH_MAX`).
const MAX_DIRECTORY_BYTES: usize = 4096;

/// Re-apply the divergent transactions of a diverged directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapplyRequest {
    /// A random id: tells the answer to this request from an older one.
    pub id: u64,
    /// The `diverged-<epoch>` directory, absolute, as the node sees it (checked by the
    /// node: the file may say anything).
    pub diverged: String,
    /// How long the request is valid, from when the node first sees it (ms).
    pub timeout_ms: u64,
    /// When the requester wrote it (µs, its wall clock; 0: unknown).
    #[serde(default)]
    pub created_micros: u64,
}

/// The node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapplyAnswer {
    /// The request answered.
    pub id: u64,
    /// Whether the re-application ran (conflicts may have been found: see `outcome`).
    pub ok: bool,
    /// What happened, or why not.
    pub message: String,
    /// What was applied, skipped and left out.
    pub outcome: Option<ReapplyOutcome>,
}

impl Request for ReapplyRequest {
    fn id(&self) -> u64 {
        self.id
    }
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    fn created_micros(&self) -> u64 {
        self.created_micros
    }
}

/// What came of a re-application request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReapplyRequestOutcome {
    /// The node answered.
    Answered(Box<ReapplyAnswer>),
    /// The request was withdrawn unanswered (timeout or interruption): why.
    Withdrawn(String),
}

/// Asks the active node (instance `active`) to re-apply the diverged directory `diverged`
/// (absolute, as the node sees it), and waits for the answer; unanswered within `timeout`,
/// or once `interrupted` says so, the request is withdrawn durably.
pub fn request_reapply(
    fs: &dyn FileSystem,
    active: &Path,
    diverged: &str,
    timeout: Duration,
    interrupted: &dyn Fn() -> bool,
) -> Result<ReapplyRequestOutcome, ReplError> {
    // One request file per node: a second requester would replace the first one's request
    // and leave it waiting for an answer that never comes (found by an adversarial round).
    let pending_path = directory(active).join(REAPPLY);
    if let Ok(Some(pending)) = sealed::read::<ReapplyRequest>(fs, &pending_path) {
        let now = bluejet_engine::log::now_micros();
        let expires = pending
            .created_micros
            .saturating_add(pending.timeout_ms.saturating_mul(1000));
        if now < expires {
            return Ok(ReapplyRequestOutcome::Withdrawn(format!(
                "another reapply request (id {}) is pending at the node: try again once it \
                 is answered",
                pending.id
            )));
        }
    }
    let request = ReapplyRequest {
        id: requests::new_id(),
        diverged: diverged.to_owned(),
        timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
        created_micros: bluejet_engine::log::now_micros(),
    };
    write(fs, active, REAPPLY, &request)?;
    let answer = || read_answer(fs, active, request.id);
    let deadline = Instant::now() + timeout;
    let why = loop {
        if let Some(answer) = answer() {
            return Ok(ReapplyRequestOutcome::Answered(Box::new(answer)));
        }
        if interrupted() {
            break "interrupted".to_owned();
        }
        if Instant::now() >= deadline {
            break format!("no answer in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    requests::withdraw(fs, active, REAPPLY, request.id)?;
    // The node may have answered just before the withdrawal.
    Ok(match answer() {
        Some(answer) => ReapplyRequestOutcome::Answered(Box::new(answer)),
        None => ReapplyRequestOutcome::Withdrawn(format!(
            "{why}: the reapply request to {} was withdrawn unanswered",
            active.display()
        )),
    })
}

fn read_answer(fs: &dyn FileSystem, instance: &Path, id: u64) -> Option<ReapplyAnswer> {
    let path = directory(instance).join(REAPPLY_RESULT);
    match sealed::read::<ReapplyAnswer>(fs, &path) {
        Ok(Some(answer)) if answer.id == id => Some(answer),
        _ => None,
    }
}

/// The pending request, if valid and not answered yet.
fn pending(shared: &Shared) -> Option<ReapplyRequest> {
    let request = look::<ReapplyRequest>(shared, REAPPLY)?;
    if read_answer(node_fs(shared), &shared.config.instance, request.id).is_some() {
        // Answered before a crash or a failed removal: done with.
        if let Err(error) =
            requests::remove_durably(node_fs(shared), &shared.config.instance, REAPPLY)
        {
            tracing::warn!(%error, "removing the answered reapply request");
        }
        shared.requests.forget(REAPPLY);
        return None;
    }
    Some(request)
}

/// Refuses a pending request at a node that does not hold the database (`role` says what
/// it is).
pub(crate) fn refuse_unless_active(shared: &Shared, epoch: u64, role: &str) {
    let Some(request) = pending(shared) else {
        return;
    };
    let message = format!(
        "{} is {role} (epoch {epoch}): divergent transactions are re-applied by the active \
         node, which holds the database; ask {}",
        shared.config.name, shared.config.peer
    );
    shared.event("reapply-refused", Some(epoch), &message);
    answer(shared, &request, epoch, Err(message));
}

/// Serves a pending request at the active node, on its database `db`.
///
/// A round applies what a quarter of the lease allows and leaves the rest to the next
/// round, so that the loop renews the lease meanwhile; the re-application in progress is
/// kept in `shared.reapplying` under the request's id (a withdrawn or new request drops it).
pub(crate) fn serve(shared: &Shared, db: &Database, epoch: u64) {
    let Some(request) = pending(shared) else {
        shared.reapplying.lock().take();
        return;
    };
    let mut slot = shared.reapplying.lock();
    if slot.as_ref().map(|(id, _)| *id) != Some(request.id) {
        match start(shared, &request) {
            Ok(reapplying) => *slot = Some((request.id, Box::new(reapplying))),
            Err(message) => {
                slot.take();
                drop(slot);
                shared.event("reapply-refused", Some(epoch), &message);
                answer(shared, &request, epoch, Err(message));
                return;
            }
        }
    }
    let until = Instant::now() + shared.config.lease / 4;
    let stepped = match slot.as_mut() {
        Some((_, reapplying)) => {
            // What a step may commit is in the record before it commits any (a node killed
            // in the middle of a step must not leave its commits out of the ledger).
            let directory = reapplying.directory().to_owned();
            let fs = node_fs(shared);
            let recorder = &mut |outcome: &ReapplyOutcome| reapply::record(fs, &directory, outcome);
            reapplying.step_recorded(db, Some(until), recorder)
        }
        None => return,
    };
    let outcome = match stepped {
        Ok(false) => {
            // Kept between rounds: a node stopped half-way must not apply again what it
            // applied (the next run skips what the record lists).
            if let Some((_, reapplying)) = slot.as_ref() {
                let progress = reapplying.progress();
                let directory = Path::new(&progress.directory);
                if let Err(error) = reapply::record(node_fs(shared), directory, progress) {
                    shared.event("reapply-failed", Some(epoch), &error.to_string());
                }
            }
            return;
        }
        Ok(true) => {
            let (_, reapplying) = slot.take().expect("a re-application in progress");
            let outcome = reapplying.finish();
            reapply::record(node_fs(shared), Path::new(&outcome.directory), &outcome)
                .map(|()| outcome)
                .map_err(|error| error.to_string())
        }
        Err(error) => {
            // What this step committed before the error is listed, so that a later run
            // does not compare it again (found by an adversarial round: a lost lease or a
            // failed commit half-way left it out, and a rerun could bring a deleted
            // message back).
            let (_, reapplying) = slot.take().expect("a re-application in progress");
            let progress = reapplying.progress();
            match reapply::record(node_fs(shared), Path::new(&progress.directory), progress) {
                Ok(()) => Err(error.to_string()),
                Err(unrecorded) => Err(format!("{error}; and then {unrecorded}")),
            }
        }
    };
    drop(slot);
    match &outcome {
        Ok(outcome) => shared.event("reapply-done", Some(epoch), &done_text(outcome)),
        Err(reason) => shared.event("reapply-failed", Some(epoch), reason),
    }
    answer(shared, &request, epoch, outcome);
}

/// Checks the request's directory and decodes it.
fn start(shared: &Shared, request: &ReapplyRequest) -> Result<reapply::Reapplying, String> {
    let diverged = checked_directory(&request.diverged)
        .map_err(|reason| format!("{:?}: {reason}", request.diverged))?;
    let decoded = crate::diverged::decode::decode_directory(node_fs(shared), &diverged)
        .map_err(|error| error.to_string())?;
    let previous = reapply::previous(node_fs(shared), &diverged).map_err(|e| e.to_string())?;
    reapply::Reapplying::new(decoded, previous.as_ref()).map_err(|error| error.to_string())
}

/// The outcome in one line.
pub fn done_text(outcome: &ReapplyOutcome) -> String {
    format!(
        "{}: {} transactions applied ({} operations), {} skipped (already there), {} \
         conflicting (not applied)",
        outcome.directory,
        outcome.applied_transactions,
        outcome.applied_operations,
        outcome.skipped_transactions,
        outcome.conflicting_transactions
    )
}

/// Writes the answer and removes the request; a failure to do so is recorded.
fn answer(
    shared: &Shared,
    request: &ReapplyRequest,
    epoch: u64,
    outcome: Result<ReapplyOutcome, String>,
) {
    let answer = ReapplyAnswer {
        id: request.id,
        ok: outcome.is_ok(),
        message: match &outcome {
            Ok(outcome) => done_text(outcome),
            Err(reason) => reason.clone(),
        },
        outcome: outcome.ok(),
    };
    let fs = node_fs(shared);
    let instance = &shared.config.instance;
    let answered = write(fs, instance, REAPPLY_RESULT, &answer)
        .and_then(|()| requests::withdraw(fs, instance, REAPPLY, request.id).map(|_| ()));
    shared.requests.forget(REAPPLY);
    if let Err(error) = answered {
        shared.event(
            "error",
            Some(epoch),
            &format!("answering reapply request {:016x}: {error}", request.id),
        );
    }
}

/// The request's directory if the node may read it: an absolute path without `.` or `..`
/// whose last component is `diverged-<epoch>`, a directory.
///
/// ```
/// use bluejet_replication::cluster::reapply_request::checked_directory;
/// assert!(checked_directory("relative/diverged-3").is_err());
/// assert!(checked_directory("/srv/a/../b/diverged-3").is_err());
/// assert!(checked_directory("/srv/a/logs").is_err());
/// ```
pub fn checked_directory(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() || text.len() > MAX_DIRECTORY_BYTES || text.contains('\0') {
        return Err(format!(
            "not a usable path (empty, longer than {MAX_DIRECTORY_BYTES} bytes, or holding a \
             NUL byte)"
        ));
    }
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err("the diverged directory must be an absolute path".into());
    }
    if path
        .components()
        .any(|part| matches!(part, Component::ParentDir | Component::CurDir))
    {
        return Err("the diverged directory must not hold `.` or `..`".into());
    }
    let named = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(crate::diverged::files::epoch_of);
    if named.is_none() {
        return Err("the directory is not named diverged-<epoch>".into());
    }
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => Ok(path.to_owned()),
        Ok(_) => Err("it is not a directory".into()),
        Err(error) => Err(format!("it cannot be examined: {error}")),
    }
}
