//! Backups of a running cluster, taken by its passive node: `instance/requests/backup.json`,
//! answered in `backup-result.json`.
//!
//! A backup reads the passive copy only (no load on the active), and needs the copy to
//! itself: the replay stage must be paused while the passive is checkpointed and `logs/`
//! copied. The running passive therefore serves the request itself, between two rounds of
//! its loop: it pauses its replication service, takes the replica lock (so that no other
//! process takes the copy between the pause and the restart), runs the backup, restarts the
//! service and answers. The request follows the other operator requests (`requests`): an id,
//! a timeout from the node's first sighting, withdrawn by its requester, dropped when
//! already in place at the node's start. Once the node has started a backup (it answers
//! "started" first) the backup runs to its end: a withdrawal then changes nothing, and the
//! requester waits for the final answer while the node's heartbeats go on.

use super::heartbeat::Role;
use super::node::Shared;
use super::requests::{self, directory, failed, look, node_fs, remove_durably, write, Request};
use crate::backup::{self, BackupReport};
use crate::backup_error::BackupError;
use crate::backup_manifest::BackupKind;
use crate::error::ReplError;
use crate::lock::ReplicaLock;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// The backup request's file name.
pub const BACKUP: &str = "backup.json";
/// The backup answer's file name.
pub const BACKUP_RESULT: &str = "backup-result.json";
/// The longest destination accepted, in bytes (Linux's `PATH_MAX`).
const MAX_DESTINATION_BYTES: usize = 4096;

/// A backup of the passive copy into a new or empty directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRequest {
    /// A random id: tells the answer to this request from an older one.
    pub id: u64,
    /// The backup directory: absolute, outside both instances and the witness, new or
    /// empty (checked by the node: the file may say anything).
    pub to: String,
    /// Only the generations after the copy's last backup.
    pub incremental: bool,
    /// How long the request is valid, from when the node first sees it (ms).
    pub timeout_ms: u64,
    /// When the requester wrote it (µs, its wall clock; 0: unknown). A node also drops a
    /// request older than its timeout (plus the margin) by its own wall clock: a node that
    /// was paused sees a request for the first time long after its requester gave up.
    #[serde(default)]
    pub created_micros: u64,
}

/// The node's answer: first `finished: false` when it starts the backup, then the outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupAnswer {
    /// The request answered.
    pub id: u64,
    /// Whether this is the outcome (else the backup has started and runs).
    pub finished: bool,
    /// Whether the backup was taken (or, not finished, is running).
    pub ok: bool,
    /// What happened, or why not.
    pub message: String,
    /// What the backup did, when it was taken (boxed: an answer is mostly a message).
    pub report: Option<Box<BackupReport>>,
}

impl Request for BackupRequest {
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

/// What came of a backup request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupOutcome {
    /// The node answered with the outcome.
    Answered(BackupAnswer),
    /// No outcome: the request was withdrawn before the node took it, or the requester
    /// stopped waiting for a backup that had started (interrupted, or the node stopped):
    /// why.
    Withdrawn(String),
}

/// What the requester watches while it waits.
pub struct Watch<'a> {
    /// How long the node has to take the request.
    pub timeout: Duration,
    /// SIGINT or SIGTERM: give up.
    pub interrupted: &'a dyn Fn() -> bool,
    /// Whether the node still runs (fresh heartbeats): while it does, a backup that has
    /// started is waited for whatever its length.
    pub running: &'a dyn Fn() -> bool,
}

/// Asks the passive node (instance `passive`) for a backup into `to` (an absolute path, as
/// the node sees it), and waits for the outcome. Unanswered within `watch.timeout`, or
/// interrupted before the node took it, the request is withdrawn durably.
pub fn request_backup(
    fs: &dyn FileSystem,
    passive: &Path,
    to: &str,
    incremental: bool,
    watch: &Watch,
) -> Result<BackupOutcome, ReplError> {
    let request = BackupRequest {
        id: requests::new_id(),
        to: to.to_owned(),
        incremental,
        timeout_ms: watch.timeout.as_millis().try_into().unwrap_or(u64::MAX),
        created_micros: bluejet_engine::log::now_micros(),
    };
    write(fs, passive, BACKUP, &request)?;
    let answer = || read_answer(fs, passive, request.id);
    let deadline = Instant::now() + watch.timeout;
    let why = loop {
        match answer() {
            Some(answer) if answer.finished => return Ok(BackupOutcome::Answered(answer)),
            Some(_) => {
                if let Some(why) = stop_waiting(watch) {
                    break why;
                }
            }
            None if (watch.interrupted)() => break "interrupted".to_owned(),
            None if Instant::now() >= deadline => {
                break format!("no answer in {:?}", watch.timeout)
            }
            None => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    requests::withdraw(fs, passive, BACKUP, request.id)?;
    // The node may have taken or answered it just before the withdrawal.
    Ok(match answer() {
        Some(answer) if answer.finished => BackupOutcome::Answered(answer),
        Some(answer) => BackupOutcome::Withdrawn(format!(
            "{why}: the node had started the backup ({}), which goes on to its end; see the \
             node's event log (backup-done or backup-failed)",
            answer.message
        )),
        None => BackupOutcome::Withdrawn(format!(
            "{why}: the backup request to {} was withdrawn unanswered",
            passive.display()
        )),
    })
}

/// Why the requester stops waiting for a backup that has started, if it does.
fn stop_waiting(watch: &Watch) -> Option<String> {
    if (watch.interrupted)() {
        return Some("interrupted".into());
    }
    (!(watch.running)()).then(|| "the node stopped writing heartbeats during the backup".into())
}

fn read_answer(fs: &dyn FileSystem, instance: &Path, id: u64) -> Option<BackupAnswer> {
    let path = directory(instance).join(BACKUP_RESULT);
    match sealed::read::<BackupAnswer>(fs, &path) {
        Ok(Some(answer)) if answer.id == id => Some(answer),
        _ => None,
    }
}

/// The pending backup request, if valid and not answered yet.
fn pending(shared: &Shared) -> Option<BackupRequest> {
    let request = look::<BackupRequest>(shared, BACKUP)?;
    let answered = read_answer(node_fs(shared), &shared.config.instance, request.id)
        .is_some_and(|answer| answer.finished);
    if answered {
        // Answered before a crash or a failed removal: done with.
        if let Err(error) = remove_durably(node_fs(shared), &shared.config.instance, BACKUP) {
            tracing::warn!(%error, "removing the answered backup request");
        }
        shared.requests.forget(BACKUP);
        return None;
    }
    Some(request)
}

/// Refuses a pending backup request at the active node: a backup is taken from the passive
/// copy, so that the active serves mail without its load.
pub(crate) fn refuse_at_active(shared: &Shared, epoch: u64) {
    let Some(request) = pending(shared) else {
        return;
    };
    let message = format!(
        "{} is the active node (epoch {epoch}): a backup is taken from the passive copy, with \
         no load on the active; ask {}",
        shared.config.name, shared.config.peer
    );
    refuse(shared, &request, epoch, &message);
}

fn refuse(shared: &Shared, request: &BackupRequest, epoch: u64, message: &str) {
    shared.event("backup-refused", Some(epoch), message);
    finish(shared, request, epoch, Err(message.to_owned()));
}

/// Serves a pending backup request at the passive node: checks the destination, pauses
/// replication, backs up under the replica lock, restarts replication and answers. The
/// loop's heartbeats go on meanwhile; a failover waits for the backup's end.
pub(crate) fn serve(shared: &Shared, epoch: u64) -> Result<(), ReplError> {
    let Some(request) = pending(shared) else {
        return Ok(());
    };
    let to = match destination(shared, &request.to) {
        Ok(to) => to,
        Err(reason) => {
            let message = format!("{:?}: {reason}", request.to);
            refuse(shared, &request, epoch, &message);
            return Ok(());
        }
    };
    let kind = match request.incremental {
        true => BackupKind::Incremental,
        false => BackupKind::Full,
    };
    let what = format!(
        "{kind:?} backup to {} (request {:016x})",
        to.display(),
        request.id
    );
    shared.event("backup-started", Some(epoch), &what);
    let started = BackupAnswer {
        id: request.id,
        finished: false,
        ok: true,
        message: format!("started: {what}"),
        report: None,
    };
    write(
        node_fs(shared),
        &shared.config.instance,
        BACKUP_RESULT,
        &started,
    )?;
    *shared.backup.lock() = Some(format!("taking a {what}"));
    let taken = back_up_paused(shared, &to, kind, epoch, &what);
    *shared.backup.lock() = None;
    let restarted = super::failover::restart_service(shared);
    let outcome = taken.map_err(|error| error.to_string());
    match &outcome {
        Ok(report) => shared.event("backup-done", Some(epoch), &done_text(&what, report)),
        Err(reason) => shared.event("backup-failed", Some(epoch), &format!("{what}: {reason}")),
    }
    finish(shared, &request, epoch, outcome);
    restarted
}

/// Pauses the replication service and takes the backup under the replica lock, writing this
/// node's heartbeat meanwhile (a backup takes as long as the copy is large).
fn back_up_paused(
    shared: &Shared,
    to: &Path,
    kind: BackupKind,
    epoch: u64,
    what: &str,
) -> Result<BackupReport, BackupError> {
    super::failover::stop_service_because(shared, &format!("paused for a {what}"));
    let config = shared.config.replica_config();
    std::thread::scope(|scope| {
        let backing_up = scope.spawn(|| {
            let lock = ReplicaLock::acquire(config.fs().as_ref(), &config.layout().lock())?;
            backup::take_held(&config, to, kind, lock.as_ref())
        });
        let mut beaten = Instant::now();
        while !backing_up.is_finished() {
            if beaten.elapsed() >= shared.config.heartbeat_interval {
                shared.write_heartbeat(shared.heartbeat(Role::Passive, epoch));
                beaten = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        backing_up
            .join()
            .unwrap_or_else(|_| Err(BackupError::refused(to, "the backup thread panicked")))
    })
}

fn done_text(what: &str, report: &BackupReport) -> String {
    let manifest = &report.manifest;
    let generations = match manifest.first_generation.zip(manifest.last_generation) {
        Some((first, last)) => format!("generations {first}..{last}"),
        None => "no generations".to_owned(),
    };
    format!(
        "{what}: {} taken, {generations}, content at {}, {} bytes",
        manifest.id, manifest.position, report.bytes
    )
}

/// Writes the outcome and removes the request; a failure to do so is recorded (the
/// requester then reports no answer).
fn finish(
    shared: &Shared,
    request: &BackupRequest,
    epoch: u64,
    outcome: Result<BackupReport, String>,
) {
    let answer = BackupAnswer {
        id: request.id,
        finished: true,
        ok: outcome.is_ok(),
        message: match &outcome {
            Ok(report) => done_text("backup", report),
            Err(reason) => reason.clone(),
        },
        report: outcome.ok().map(Box::new),
    };
    let fs = node_fs(shared);
    let instance = &shared.config.instance;
    let answered = write(fs, instance, BACKUP_RESULT, &answer)
        .and_then(|()| requests::withdraw(fs, instance, BACKUP, request.id).map(|_| ()));
    shared.requests.forget(BACKUP);
    if let Err(error) = answered {
        shared.event(
            "error",
            Some(epoch),
            &format!("answering backup request {:016x}: {error}", request.id),
        );
    }
}

/// At the node's start: an answer still saying "started" belongs to a backup a crash (or a
/// kill) cut short; it never finished and left no manifest. The answer says so, so that a
/// requester still waiting stops.
pub(crate) fn drop_unfinished(shared: &Shared) {
    let fs = node_fs(shared);
    let path = directory(&shared.config.instance).join(BACKUP_RESULT);
    let Ok(Some(answer)) = sealed::read::<BackupAnswer>(fs, &path) else {
        return;
    };
    if answer.finished {
        return;
    }
    let message = format!(
        "the node stopped during the backup ({}): it was not finished, and its directory \
         holds no manifest",
        answer.message
    );
    let written = write(
        fs,
        &shared.config.instance,
        BACKUP_RESULT,
        &BackupAnswer {
            finished: true,
            ok: false,
            message: message.clone(),
            report: None,
            ..answer
        },
    );
    shared.event(
        "backup-failed",
        None,
        &format!("{message}{}", failed(written)),
    );
}

/// The request's destination if the node may write a backup there: an absolute path
/// without `.` or `..`, outside this node's and its peer's instance directories and the
/// witness directory (symbolic links resolved), new or an empty directory.
fn destination(shared: &Shared, to: &str) -> Result<PathBuf, String> {
    if to.is_empty() || to.len() > MAX_DESTINATION_BYTES || to.contains('\0') {
        return Err(format!(
            "not a usable path (empty, longer than {MAX_DESTINATION_BYTES} bytes, or holding \
             a NUL byte)"
        ));
    }
    let path = Path::new(to);
    if !path.is_absolute() {
        return Err("the backup directory must be an absolute path".into());
    }
    if path
        .components()
        .any(|part| matches!(part, Component::ParentDir | Component::CurDir))
    {
        return Err("the backup directory must not hold `.` or `..`".into());
    }
    let resolved = resolve(path);
    let config = &shared.config;
    for (name, directory) in [
        ("this node's instance directory", &config.instance),
        ("the peer's instance directory", &config.peer_instance),
        ("the witness directory", &config.witness),
    ] {
        if resolved.starts_with(resolve(directory)) {
            return Err(format!("it is inside {name} ({})", directory.display()));
        }
    }
    new_or_empty(path)?;
    Ok(path.to_owned())
}

/// `path` with its deepest existing ancestor's symbolic links resolved (the rest appended):
/// where a directory created at `path` would be.
fn resolve(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |path, part| path.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return path.to_owned(),
        }
    }
}

/// Refuses a destination that exists and is not an empty directory (as `backup --to`).
fn new_or_empty(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(format!("it cannot be examined: {error}")),
        Ok(metadata) if !metadata.is_dir() => Err("it exists and is not a directory".into()),
        Ok(_) => match std::fs::read_dir(path).map(|mut entries| entries.next()) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err("it is not empty: choose a new directory".into()),
            Err(error) => Err(format!("it cannot be listed: {error}")),
        },
    }
}
