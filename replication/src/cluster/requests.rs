//! Operator requests to a running node, as sealed JSON files in `instance/requests/`: a
//! move (`move.json`, answered in `move-result.json`) to the active node, and a forced
//! mount (`mount.json`) to the passive node.

use super::node::Shared;
use crate::error::ReplError;
use crate::private_files::create_directory_durably;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::log::now_micros;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A move of the database to another node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRequest {
    /// Tells the answer to this request from an older one.
    pub id: u64,
    /// The node to move to.
    pub to: String,
    /// The operator's comment.
    pub comment: String,
    /// Only check that the move would be allowed.
    pub validate_only: bool,
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
    /// Mount even if the dial would refuse.
    pub force: bool,
    /// The operator's comment.
    pub comment: String,
}

/// The requests directory of the node whose instance is `instance`.
pub fn directory(instance: &Path) -> PathBuf {
    instance.join("requests")
}

fn write<T: Serialize>(
    fs: &dyn FileSystem,
    instance: &Path,
    name: &str,
    content: &T,
) -> Result<(), ReplError> {
    let directory = directory(instance);
    create_directory_durably(fs, &directory)?;
    sealed::write(fs, &directory.join(name), content)
}

/// Takes (reads and removes) a request file.
fn take<T: serde::de::DeserializeOwned>(
    fs: &dyn FileSystem,
    instance: &Path,
    name: &str,
) -> Option<T> {
    let path = directory(instance).join(name);
    let request = sealed::read(fs, &path).ok().flatten();
    if fs.exists(&path) {
        let _ = fs.remove(&path);
    }
    request
}

/// Asks the active node (instance `active`) to move the database, and waits for the answer.
pub fn request_move(
    fs: &dyn FileSystem,
    active: &Path,
    to: &str,
    comment: &str,
    validate_only: bool,
    timeout: Duration,
) -> Result<MoveResult, ReplError> {
    let request = MoveRequest {
        id: now_micros(),
        to: to.to_owned(),
        comment: comment.to_owned(),
        validate_only,
    };
    write(fs, active, "move.json", &request)?;
    let result_path = directory(active).join("move-result.json");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(result)) = sealed::read::<MoveResult>(fs, &result_path) {
            if result.id == request.id {
                return Ok(result);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ReplError::Timeout(format!(
        "no answer to the move request from {} in {timeout:?}",
        active.display()
    )))
}

/// Asks the passive node (instance `passive`) to mount even if the dial refuses.
pub fn request_forced_mount(
    fs: &dyn FileSystem,
    passive: &Path,
    comment: &str,
) -> Result<(), ReplError> {
    let request = MountRequest {
        force: true,
        comment: comment.to_owned(),
    };
    write(fs, passive, "mount.json", &request)
}

/// The node's pending move request, taken.
pub(crate) fn take_move(shared: &Shared) -> Option<MoveRequest> {
    take(
        shared.config.options.log.file_system.as_ref(),
        &shared.config.instance,
        "move.json",
    )
}

/// Answers a move request.
pub(crate) fn answer_move(shared: &Shared, result: &MoveResult) -> Result<(), ReplError> {
    write(
        shared.config.options.log.file_system.as_ref(),
        &shared.config.instance,
        "move-result.json",
        result,
    )
}

/// Whether an operator forced the mount (the request is taken).
pub(crate) fn take_mount(shared: &Shared) -> bool {
    let request: Option<MountRequest> = take(
        shared.config.options.log.file_system.as_ref(),
        &shared.config.instance,
        "mount.json",
    );
    request.is_some_and(|request| {
        shared.event_with_comment(
            "mount-forced",
            None,
            "an operator forced the mount",
            Some(&request.comment),
        );
        request.force
    })
}
