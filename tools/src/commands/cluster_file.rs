//! The cluster file (`--config FILE`) every `node` and `cluster` command reads: this node,
//! its peer, their instance directories and the witness directory
//! (`bluejet_replication::cluster::NodeFile`, JSON).

use crate::exit::ToolError;
use bluejet_engine::file::{FileSystem, OsFileSystem};
use bluejet_engine::log::now_micros;
use bluejet_replication::cluster::heartbeat::{self, Heartbeat};
use bluejet_replication::cluster::witness::{Witness, WitnessRecord};
use bluejet_replication::cluster::{NodeConfig, NodeFile};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A cluster file read and checked, with the node configuration it makes.
pub struct ClusterFile {
    /// The file as written.
    pub file: NodeFile,
    /// The node configuration (default timings).
    pub config: NodeConfig,
}

impl ClusterFile {
    /// Reads `path`: exit 3 when it cannot be read, 2 when it is not a valid cluster file.
    pub fn read(path: &Path) -> Result<Self, ToolError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ToolError::Failure(format!("{}: {error}", path.display())))?;
        let file: NodeFile = serde_json::from_str(&text).map_err(|error| {
            ToolError::Usage(format!("{}: not a cluster file: {error}", path.display()))
        })?;
        if file.name.is_empty() || file.peer.is_empty() || file.name == file.peer {
            return Err(ToolError::Usage(format!(
                "{}: the node and its peer need two different names (got {:?} and {:?})",
                path.display(),
                file.name,
                file.peer
            )));
        }
        let config = NodeConfig::from_file(&file)
            .map_err(|error| ToolError::Usage(format!("{}: {error}", path.display())))?;
        Ok(Self { file, config })
    }

    /// Both nodes: this one first, then its peer, each with its instance directory (the
    /// peer's as this node reaches it: `/bluejet-peer/<peer>` over the network).
    pub fn nodes(&self) -> [(&str, &Path); 2] {
        [
            (&self.file.name, &self.file.instance),
            (&self.file.peer, &self.config.peer_instance),
        ]
    }

    /// The file system `instance` (one of [`nodes`](Self::nodes)) is reached through: the
    /// peer's server, as this node, when the cluster replicates over the network.
    pub fn fs_for(&self, instance: &Path) -> Arc<dyn FileSystem> {
        if self.config.network.is_some() && instance == self.config.peer_instance {
            Arc::clone(&self.config.peer_fs)
        } else {
            Arc::new(OsFileSystem)
        }
    }

    /// The instance directory of the node called `name`; bad usage for any other name.
    pub fn instance_of(&self, name: &str) -> Result<PathBuf, ToolError> {
        self.nodes()
            .into_iter()
            .find(|(node, _)| *node == name)
            .map(|(_, instance)| instance.to_owned())
            .ok_or_else(|| {
                ToolError::Usage(format!(
                    "unknown node {name:?}: the cluster file names {} and {}",
                    self.file.name, self.file.peer
                ))
            })
    }

    /// The witness's record (none before a node first took the database).
    pub fn witness(&self) -> Result<Option<WitnessRecord>, ToolError> {
        let witness = Witness::new(
            Arc::new(OsFileSystem),
            &self.config.witness,
            self.config.skew,
        );
        Ok(witness.read()?)
    }

    /// The last heartbeat of the node whose instance is `instance` (none if it never wrote
    /// one, or the file cannot be read right now).
    pub fn heartbeat(&self, instance: &Path) -> Option<Heartbeat> {
        self.read_heartbeat(instance).ok().flatten()
    }

    /// [`heartbeat`](Self::heartbeat), saying why when the file cannot be read (a peer over
    /// TCP that does not answer): `Ok(None)` only when the node never wrote one.
    pub fn read_heartbeat(&self, instance: &Path) -> Result<Option<Heartbeat>, String> {
        heartbeat::read(self.fs_for(instance).as_ref(), instance).map_err(|e| e.to_string())
    }

    /// Whether `beat` is recent: younger than the failover timeout (older, the peer would
    /// take it for stopped).
    pub fn is_fresh(&self, beat: &Heartbeat) -> bool {
        self.is_fresh_at(beat, now_micros())
    }

    /// [`is_fresh`](Self::is_fresh) as of `read_micros`, when it was read.
    pub fn is_fresh_at(&self, beat: &Heartbeat, read_micros: u64) -> bool {
        let age = (read_micros as f64 - beat.time_micros as f64) / 1e6;
        age <= self.config.failover_after.as_secs_f64()
    }
}

/// Seconds since `micros` (negative if it is in the future, a clock difference).
pub fn age_seconds(micros: u64) -> f64 {
    (now_micros() as f64 - micros as f64) / 1e6
}

/// Why `path`, named as the witness directory, is not a usable directory: it does not
/// exist, is something else, or cannot be examined (an error is never taken for absence).
pub fn witness_problem(path: &Path) -> String {
    match std::fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            format!("the witness directory {} does not exist", path.display())
        }
        Err(error) => format!(
            "the witness directory {} cannot be examined: {error}",
            path.display()
        ),
        Ok(_) => format!("the witness path {} is not a directory", path.display()),
    }
}
