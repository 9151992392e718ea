//! Operator requests to a running node, as sealed JSON files in `instance/requests/`: a
//! move (`move.json`, answered in `move-result.json`) to the active node, a forced
//! mount (`mount.json`) and a backup (`backup.json`, see [`super::backup_request`]) to the
//! passive node, and a re-application of divergent transactions (`reapply.json`, see
//! [`super::reapply_request`]) to the active node.
//!
//! Every request carries a random id and the requester's timeout, and is valid for that
//! timeout measured on the node's own monotonic clock from when the node first saw it (no
//! wall clock of either machine is compared). The node looks at its requests every round,
//! whatever its role, so the clock starts within a heartbeat interval of the request being
//! written; a request past its expiry is removed, never carried out, with a
//! `request-expired` event. A node that restarts sees its pending requests anew: their
//! clock starts again. A requester that gives up (its timeout, or SIGINT or SIGTERM)
//! withdraws its request by removing the file durably; a move whose request is withdrawn
//! or expires while the node waits for the peer is abandoned (commits resume), up to the
//! hand-over of the witness, which is the move's point of no return.

use super::node::Shared;
use crate::error::ReplError;
use crate::private_files::create_directory_durably;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The move request's file name.
pub const MOVE: &str = "move.json";
/// The move answer's file name.
pub const MOVE_RESULT: &str = "move-result.json";
/// The forced mount request's file name.
pub const MOUNT: &str = "mount.json";

/// A move of the database to another node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRequest {
    /// A random id: tells the answer to this request from an older one.
    pub id: u64,
    /// The node to move to.
    pub to: String,
    /// The operator's comment.
    pub comment: String,
    /// Only check that the move would be allowed.
    pub validate_only: bool,
    /// How long the request is valid, from when the node first sees it (ms).
    pub timeout_ms: u64,
    /// When the requester wrote it (µs, its wall clock; 0: unknown). A node also drops a
    /// request older than its timeout (plus the margin) by its own wall clock: a node that
    /// was paused sees a request for the first time long after its requester gave up.
    #[serde(default)]
    pub created_micros: u64,
}

/// The answer to a move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveResult {
    /// The request answered.
    pub id: u64,
    /// Whether it was done (or, validating, would be allowed).
    pub ok: bool,
    /// What happened, or why not.
    pub message: String,
    /// Milliseconds commits were held.
    pub paused_ms: u64,
    /// The epoch after the move.
    pub epoch: u64,
}

/// An operator's forced mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRequest {
    /// A random id.
    pub id: u64,
    /// Mount even if the dial would refuse.
    pub force: bool,
    /// The operator's comment.
    pub comment: String,
    /// How long the request is valid, from when the node first sees it (ms).
    pub timeout_ms: u64,
    /// When the requester wrote it (µs, its wall clock; 0: unknown). A node also drops a
    /// request older than its timeout (plus the margin) by its own wall clock: a node that
    /// was paused sees a request for the first time long after its requester gave up.
    #[serde(default)]
    pub created_micros: u64,
}

/// What a node needs of any request.
pub(crate) trait Request: serde::de::DeserializeOwned {
    fn id(&self) -> u64;
    fn timeout(&self) -> Duration;
    fn created_micros(&self) -> u64;
}

impl Request for MoveRequest {
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

impl Request for MountRequest {
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

/// When the node first saw each pending request (by file name), on its monotonic clock.
#[derive(Debug, Default)]
pub(crate) struct Seen(Mutex<HashMap<&'static str, (u64, Instant)>>);

impl Seen {
    /// When the request `id` in `name` was first seen (now, if this is the first time).
    fn first_seen(&self, name: &'static str, id: u64) -> Instant {
        let mut seen = self.0.lock();
        let entry = seen.entry(name).or_insert((id, Instant::now()));
        if entry.0 != id {
            *entry = (id, Instant::now());
        }
        entry.1
    }

    pub(crate) fn forget(&self, name: &'static str) {
        self.0.lock().remove(name);
    }
}

/// A random request id (never 0).
pub fn new_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(bluejet_engine::log::now_micros());
    hasher.write_u32(std::process::id());
    hasher.finish().max(1)
}

/// The requests directory of the node whose instance is `instance`.
pub fn directory(instance: &Path) -> PathBuf {
    instance.join("requests")
}

pub(crate) fn write<T: Serialize>(
    fs: &dyn FileSystem,
    instance: &Path,
    name: &str,
    content: &T,
) -> Result<(), ReplError> {
    let directory = directory(instance);
    create_directory_durably(fs, &directory)?;
    sealed::write(fs, &directory.join(name), content)
}

/// Removes the request file `name` and syncs the directory, so that the removal survives a
/// crash.
pub(crate) fn remove_durably(
    fs: &dyn FileSystem,
    instance: &Path,
    name: &str,
) -> Result<(), ReplError> {
    let directory = directory(instance);
    let path = directory.join(name);
    if fs.exists(&path) {
        fs.remove(&path)
            .map_err(|error| ReplError::io(&path, "removing", error))?;
    }
    fs.sync_directory(&directory)
        .map_err(|error| ReplError::io(&directory, "syncing", error))
}

/// Withdraws the request `id` in `name` (`move.json`, `mount.json`, `backup.json`) of the
/// node whose instance is `instance`: removes it durably unless it is another request.
/// Returns whether the request was still there.
pub fn withdraw(
    fs: &dyn FileSystem,
    instance: &Path,
    name: &str,
    id: u64,
) -> Result<bool, ReplError> {
    let path = directory(instance).join(name);
    let ours = match sealed::read::<serde_json::Value>(fs, &path) {
        Ok(Some(value)) => value.get("id").and_then(|id| id.as_u64()) == Some(id),
        Ok(None) => false,
        // Damaged: it cannot be carried out, and it may be ours.
        Err(_) => true,
    };
    if ours {
        remove_durably(fs, instance, name)?;
    }
    Ok(ours)
}

/// Asks the active node (instance `active`) to move the database, and waits for the answer;
/// an unanswered request is withdrawn after `timeout`.
pub fn request_move(
    fs: &dyn FileSystem,
    active: &Path,
    to: &str,
    comment: &str,
    validate_only: bool,
    timeout: Duration,
) -> Result<MoveResult, ReplError> {
    match request_move_until(fs, active, to, comment, validate_only, timeout, &|| false)? {
        MoveOutcome::Answered(result) => Ok(result),
        MoveOutcome::Withdrawn(message) => Err(ReplError::Timeout(message)),
    }
}

/// What came of a move request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoveOutcome {
    /// The node answered.
    Answered(MoveResult),
    /// The request was withdrawn unanswered (timeout or interruption): why.
    Withdrawn(String),
}

/// Like [`request_move`], but also gives up (withdrawing the request durably) as soon as
/// `interrupted` says so. A withdrawal stops the move up to the hand-over of the witness:
/// an answer found after the withdrawal is returned.
pub fn request_move_until(
    fs: &dyn FileSystem,
    active: &Path,
    to: &str,
    comment: &str,
    validate_only: bool,
    timeout: Duration,
    interrupted: &dyn Fn() -> bool,
) -> Result<MoveOutcome, ReplError> {
    let request = MoveRequest {
        id: new_id(),
        to: to.to_owned(),
        comment: comment.to_owned(),
        validate_only,
        timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
        created_micros: bluejet_engine::log::now_micros(),
    };
    write(fs, active, MOVE, &request)?;
    let result_path = directory(active).join(MOVE_RESULT);
    let answer = || match sealed::read::<MoveResult>(fs, &result_path) {
        Ok(Some(result)) if result.id == request.id => Some(result),
        _ => None,
    };
    let deadline = Instant::now() + timeout;
    let why = loop {
        if let Some(result) = answer() {
            return Ok(MoveOutcome::Answered(result));
        }
        if interrupted() {
            break "interrupted".to_owned();
        }
        if Instant::now() >= deadline {
            break format!("no answer in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    withdraw(fs, active, MOVE, request.id)?;
    // The node may have answered just before the withdrawal.
    if let Some(result) = answer() {
        return Ok(MoveOutcome::Answered(result));
    }
    Ok(MoveOutcome::Withdrawn(format!(
        "{why}: the move request to {} was withdrawn unanswered",
        active.display()
    )))
}

/// Asks the passive node (instance `passive`) to mount even if the dial refuses, at its
/// next failover attempt within `timeout` of seeing the request. Returns the request (its
/// id withdraws it).
pub fn request_forced_mount(
    fs: &dyn FileSystem,
    passive: &Path,
    comment: &str,
    timeout: Duration,
) -> Result<MountRequest, ReplError> {
    let request = MountRequest {
        id: new_id(),
        force: true,
        comment: comment.to_owned(),
        timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
        created_micros: bluejet_engine::log::now_micros(),
    };
    write(fs, passive, MOUNT, &request)?;
    Ok(request)
}

pub(crate) fn node_fs(shared: &Shared) -> &dyn FileSystem {
    shared.config.options.log.file_system.as_ref()
}

/// The pending request in `name`, if it is readable and not expired. An unreadable or
/// expired request is removed, with an event saying why.
pub(crate) fn look<T: Request>(shared: &Shared, name: &'static str) -> Option<T> {
    let fs = node_fs(shared);
    let instance = &shared.config.instance;
    let request = match sealed::read::<T>(fs, &directory(instance).join(name)) {
        Ok(Some(request)) => request,
        Ok(None) => {
            shared.requests.forget(name);
            return None;
        }
        Err(error) => {
            let removed = remove_durably(fs, instance, name);
            shared.requests.forget(name);
            shared.event(
                "request-ignored",
                None,
                &format!(
                    "{name} cannot be read ({error}): removed{}",
                    failed(removed)
                ),
            );
            return None;
        }
    };
    let first_seen = shared.requests.first_seen(name, request.id());
    // Expired by either clock: this node's monotonic time since it first saw the request,
    // or (a node paused before it could see it) the wall-clock age the requester stamped,
    // with the cluster's margin. Dropping a valid request is the safe mistake.
    let limit = request.timeout().saturating_add(shared.config.skew);
    let created = request.created_micros();
    let age = Duration::from_micros(bluejet_engine::log::now_micros().saturating_sub(created));
    let stale = created != 0 && age > limit;
    if first_seen.elapsed() <= request.timeout() && !stale {
        return Some(request);
    }
    let removed = remove_durably(fs, instance, name);
    shared.requests.forget(name);
    shared.event(
        "request-expired",
        None,
        &format!(
            "{name} (request {:016x}) expired: not carried out within its timeout of {:?} \
             from when it was written or this node first saw it; removed{}",
            request.id(),
            request.timeout(),
            failed(removed)
        ),
    );
    None
}

pub(crate) fn failed(removed: Result<(), ReplError>) -> String {
    match removed {
        Ok(()) => String::new(),
        Err(error) => format!(" (the removal failed: {error})"),
    }
}

/// Removes every request already in place when the node starts, with an event. A request is
/// valid only while its requester waits, and a node that was down cannot tell for how long
/// it waited (found: a forced mount whose requester had been killed was carried out when the
/// node started 35 s later, past a lossless dial). A requester still waiting sees its request
/// gone and reports it was not taken.
pub(crate) fn drop_stale(shared: &Shared) {
    let fs = node_fs(shared);
    let instance = &shared.config.instance;
    super::backup_request::drop_unfinished(shared);
    for name in [
        MOVE,
        MOUNT,
        super::backup_request::BACKUP,
        super::reapply_request::REAPPLY,
    ] {
        let path = directory(instance).join(name);
        if !fs.exists(&path) {
            continue;
        }
        let removed = remove_durably(fs, instance, name);
        shared.event(
            "request-dropped",
            None,
            &format!(
                "{name} was already there when the node started: removed, not carried out{}",
                failed(removed)
            ),
        );
    }
}

/// Looks at every pending request: starts the clock of new ones and removes expired or
/// unreadable ones. Called every round of the node's loop, whatever its role.
pub(crate) fn sweep(shared: &Shared) {
    let _ = look::<MoveRequest>(shared, MOVE);
    let _ = look::<MountRequest>(shared, MOUNT);
    let _ = look::<super::backup_request::BackupRequest>(shared, super::backup_request::BACKUP);
    let _ = look::<super::reapply_request::ReapplyRequest>(shared, super::reapply_request::REAPPLY);
}

/// The node's pending move request, if valid and not answered yet. It stays in place while
/// the move is carried out: its requester withdraws it by removing it.
pub(crate) fn pending_move(shared: &Shared) -> Option<MoveRequest> {
    let request = look::<MoveRequest>(shared, MOVE)?;
    let result_path = directory(&shared.config.instance).join(MOVE_RESULT);
    let answered = matches!(
        sealed::read::<MoveResult>(node_fs(shared), &result_path),
        Ok(Some(result)) if result.id == request.id
    );
    if answered {
        // Answered before a crash or a failed removal: done with.
        if let Err(error) = remove_durably(node_fs(shared), &shared.config.instance, MOVE) {
            tracing::warn!(%error, "removing the answered move request");
        }
        shared.requests.forget(MOVE);
        return None;
    }
    Some(request)
}

/// Whether the move `request` is still wanted: not withdrawn, not expired.
pub(crate) fn still_wanted(shared: &Shared, request: &MoveRequest) -> Result<(), String> {
    match look::<MoveRequest>(shared, MOVE) {
        Some(pending) if pending.id == request.id => Ok(()),
        _ => Err(format!(
            "the move request {:016x} was withdrawn by its requester or expired",
            request.id
        )),
    }
}

/// Answers a move request, then removes it.
pub(crate) fn answer_move(shared: &Shared, result: &MoveResult) -> Result<(), ReplError> {
    let fs = node_fs(shared);
    write(fs, &shared.config.instance, MOVE_RESULT, result)?;
    withdraw(fs, &shared.config.instance, MOVE, result.id)?;
    shared.requests.forget(MOVE);
    Ok(())
}

/// Whether an operator forced the mount (a valid request is taken).
pub(crate) fn take_mount(shared: &Shared) -> bool {
    let Some(request) = look::<MountRequest>(shared, MOUNT) else {
        return false;
    };
    let removed = remove_durably(node_fs(shared), &shared.config.instance, MOUNT);
    shared.requests.forget(MOUNT);
    shared.event_with_comment(
        "mount-forced",
        None,
        &format!("an operator forced the mount{}", failed(removed)),
        Some(&request.comment),
    );
    request.force
}
