//! Live files: inspection commands read a database, log or replica that an owner (a running
//! node, `repl run`) may be changing. They go on read-only, never take the ownership lock
//! (a starting node must not fail because of them), and say plainly that the result may be
//! inconsistent: on stderr in text mode, as a `"live"` field in JSON. Commands that write
//! are refused by the engine instead; [`explain`] adds what to do.

use crate::exit::ToolError;
use bluejet_engine::db::probe_directory;
use bluejet_engine::file::lock::describe;
use bluejet_engine::file::{FileSystem, Holder, LockProbe, OsFileSystem, LOCK_FILE_NAME};
use bluejet_engine::DbError;
use bluejet_replication::ReplError;
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What a live inspection found, for every JSON document the command prints.
/// Set once, before the inspection; `None` when nothing holds the files.
static LIVE: OnceLock<Option<LiveJson>> = OnceLock::new();

/// The `"live"` field: what is held, by whom, and the warning in words.
#[derive(Serialize)]
struct LiveJson {
    path: String,
    holder: Option<Holder>,
    warning: String,
}

/// A held lock found near an inspected path.
#[derive(Debug)]
pub struct Live {
    /// The directory (or replica lock file) that is held.
    pub path: PathBuf,
    /// Who holds it, if its record could be read.
    pub holder: Option<Holder>,
}

/// The owner holding what `path` (a file or directory) belongs to: its database directory,
/// or the replica it is part of. Probes only: reads, never writes, never keeps a lock.
pub fn probe(path: &Path) -> Option<Live> {
    let directory = if path.is_dir() {
        path.to_owned()
    } else {
        path.parent()?.to_owned()
    };
    let parent = directory.parent().map(Path::to_path_buf);
    let databases = [directory.clone(), directory.join("database")];
    let replica_locks = [Some(directory.join("lock")), parent.map(|p| p.join("lock"))];
    for database in databases {
        if let Ok(LockProbe::Held(holder)) = probe_directory(&OsFileSystem, &database) {
            return Some(Live {
                path: database,
                holder,
            });
        }
    }
    replica_locks
        .into_iter()
        .flatten()
        .find_map(|lock| match OsFileSystem.probe_lock(&lock) {
            Ok(LockProbe::Held(holder)) => Some(Live { path: lock, holder }),
            _ => None,
        })
}

/// Refuses an instance directory (a cluster node's) whose database or replica another
/// process holds: a second node on it would only fail at every attempt. A probe, so the
/// node started next takes the locks itself.
pub fn refuse_held_instance(instance: &Path) -> Result<(), ToolError> {
    let held = |lock: PathBuf| match OsFileSystem.probe_lock(&lock) {
        Ok(LockProbe::Held(holder)) => Some(Live { path: lock, holder }),
        _ => None,
    };
    let found = held(instance.join("database").join(LOCK_FILE_NAME))
        .or_else(|| held(instance.join("lock")));
    match found {
        Some(live) => Err(ToolError::Failure(format!(
            "{} is in use by {}: this node already runs there; stop it first",
            live.path.display(),
            describe(&live.holder)
        ))),
        None => Ok(()),
    }
}

/// Before an inspection of `path`: says on stderr (text) or in the JSON (`"live"`) whether
/// the files are live.
pub fn announce(path: &Path, json: bool) {
    let live = probe(path);
    let value = live.as_ref().map(|live| LiveJson {
        path: live.path.display().to_string(),
        holder: live.holder.clone(),
        warning: warning(live),
    });
    if LIVE.set(value).is_err() {
        tracing::debug!("the live-holder check ran twice; the first answer stands");
    }
    if let (Some(live), false) = (&live, json) {
        eprintln!("bluejet: {}", warning(live));
    }
}

fn warning(live: &Live) -> String {
    format!(
        "{} is live: in use by {}; read without a lock, the result may be inconsistent",
        live.path.display(),
        describe(&live.holder)
    )
}

/// Adds `"live"` to a JSON object a live inspection prints (nothing for other commands).
pub fn mark(document: &mut Value) {
    if let (Some(live), Value::Object(map)) = (LIVE.get(), document) {
        // Serialising a struct of strings and numbers cannot fail.
        let live = serde_json::to_value(live).unwrap_or_default();
        map.insert("live".into(), live);
    }
}

/// A refusal because another owner holds a directory, with what to do; other errors as
/// they are.
pub fn explain(error: impl Into<ReplError>, hint: &str) -> ToolError {
    let error = error.into();
    let held = matches!(
        error,
        ReplError::Locked { .. } | ReplError::Db(DbError::InUse { .. })
    );
    match held {
        true => ToolError::Failure(format!("{error}. {hint}")),
        false => error.into(),
    }
}
