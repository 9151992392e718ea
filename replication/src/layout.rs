//! The replica directory: where each kind of file lives.
//!
//! ```text
//! replica/
//!   replica.json    identity: the stream followed, where the seed started (sealed JSON)
//!   status.json     copy status, rewritten by the service (sealed JSON)
//!   control.json    suspended or not, with the operator's comment (sealed JSON)
//!   events.jsonl    event log, one checksummed JSON object per line
//!   events.1.jsonl  the previous event log, once `events.jsonl` reached its bound
//!   lock            held (flock) by the running service
//!   incoming/       generations as shipped, not yet inspected (E0000000007.log[.zst])
//!   logs/           inspected generations, the passive's log (E0000000007.log)
//!   quarantine/     generations that failed inspection (E0000000007.log.1, .2, ...)
//!   database/       the passive copy (bluejet.db; bluejet.lock held by its owner)
//! ```

use crate::error::ReplError;
use crate::private_files::create_directory_durably;
use bluejet_engine::db::RETENTION_MARKER_NAME;
use bluejet_engine::file::{FileSystem, LOCK_FILE_NAME};
use bluejet_engine::DATABASE_FILE_NAME;
use std::path::{Path, PathBuf};

/// In `blocks/`: the position a failover's salvage held its last generation through, when it
/// took it in part (`cluster::block_salvage`).
pub const PARTIAL_BLOCKS_FILE: &str = "partial.json";

/// Paths of one replica directory.
#[derive(Clone, Debug)]
pub struct ReplicaLayout {
    /// The replica directory.
    pub root: PathBuf,
}

impl ReplicaLayout {
    /// The layout of the replica in `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// Shipped, not yet inspected.
    pub fn incoming(&self) -> PathBuf {
        self.root.join("incoming")
    }

    /// Inspected generations: the passive's log.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Generations that failed inspection.
    pub fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// The passive database's directory.
    pub fn database(&self) -> PathBuf {
        self.root.join("database")
    }

    /// Block mode's files: log bytes received as the active wrote them
    /// ([`crate::block_store`]).
    pub fn blocks(&self) -> PathBuf {
        self.root.join(crate::block_store::BLOCKS_DIRECTORY)
    }

    /// The identity file.
    pub fn identity(&self) -> PathBuf {
        self.root.join("replica.json")
    }

    /// The status file.
    pub fn status(&self) -> PathBuf {
        self.root.join("status.json")
    }

    /// The record of a content mismatch found by replay (sticky: see
    /// [`crate::replay::ContentDamage`]); removed only by a reseed.
    pub fn damaged(&self) -> PathBuf {
        self.root.join("damaged.json")
    }

    /// The control file (suspend and resume).
    pub fn control(&self) -> PathBuf {
        self.root.join("control.json")
    }

    /// The event log.
    pub fn events(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }

    /// The lock file.
    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// The four directories.
    pub fn directories(&self) -> [PathBuf; 4] {
        [
            self.incoming(),
            self.logs(),
            self.quarantine(),
            self.database(),
        ]
    }

    /// Creates the directories (and the root), each durable in its parent.
    pub fn create(&self, fs: &dyn FileSystem) -> Result<(), ReplError> {
        for directory in self.directories() {
            create_directory_durably(fs, &directory)?;
        }
        Ok(())
    }

    /// Whether `name`, in the root, belongs to the cluster node rather than to the copy: a
    /// seed or a reseed keeps it (found by an adversarial test: a seed deleted the node's
    /// `epoch.json`, and with it its cluster identity and the highest epoch it had seen).
    pub fn is_node_file(name: &str) -> bool {
        matches!(
            name,
            "epoch.json" | "heartbeat.json" | "node.lock" | "failover.json"
        ) || name.starts_with("failover.json.aside-")
    }

    /// Whether `name` in `directory` (one of this layout's) is a file replication writes.
    pub fn is_known(&self, directory: &Path, name: &str) -> bool {
        let generation_file = |name: &str| {
            let stem = name
                .strip_suffix(".tmp")
                .unwrap_or(name)
                .trim_end_matches(".zst");
            stem.len() == 15 && stem.ends_with(".log")
        };
        if directory == self.root {
            return matches!(
                name,
                "replica.json"
                    | "status.json"
                    | "damaged.json"
                    | "control.json"
                    | "backups.json"
                    | "events.jsonl"
                    | "events.1.jsonl"
                    | "lock"
                    | "incoming"
                    | "logs"
                    | "quarantine"
                    | "database"
                    | "heartbeat.json"
                    | "epoch.json"
                    | "node-id.json"
                    | "node.lock"
                    | "requests"
                    | "failover.json"
                    | "blocks"
            ) || name.ends_with(".json.tmp")
                || name.starts_with("diverged-")
                || name.starts_with("failover.json.aside-");
        }
        if directory == self.database() {
            return name == DATABASE_FILE_NAME
                || name == format!("{DATABASE_FILE_NAME}.tmp")
                || name == LOCK_FILE_NAME
                || name == RETENTION_MARKER_NAME
                || name == format!("{RETENTION_MARKER_NAME}.tmp");
        }
        if directory == self.blocks() {
            let name = name.strip_suffix(".tmp").unwrap_or(name);
            return name.ends_with(".blocks")
                || name.ends_with(".blocks.end")
                || name == PARTIAL_BLOCKS_FILE;
        }
        if directory == self.quarantine() {
            return name
                .split(".log.")
                .next()
                .is_some_and(|stem| stem.len() == 11);
        }
        generation_file(name)
    }
}
