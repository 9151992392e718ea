//! Heartbeats: each node rewrites `instance/heartbeat.json` (sealed JSON) every interval;
//! its peer reads it through the share. A heartbeat older than `failover_after`, or one
//! saying the active no longer serves, starts a failover.

use crate::error::ReplError;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::LogPosition;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Holds the database and accepts commits (while its lease is valid).
    Active,
    /// Keeps a passive copy.
    Passive,
    /// Starting, resynchronising or waiting for a seed.
    Joining,
}

/// One heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The node.
    pub node: String,
    /// Its role.
    pub role: Role,
    /// The epoch it last saw.
    pub epoch: u64,
    /// Active and admitting commits (its lease is valid).
    pub serving: bool,
    /// The active's log end (what a failover would lose beyond the copy's position).
    pub end: LogPosition,
    /// When the active's current generation was started (µs).
    pub current_started_micros: u64,
    /// The node has no copy and asks the active for a seed.
    pub needs_seed: bool,
    /// When written (µs since the Unix epoch).
    pub time_micros: u64,
    /// Why the active keeps its oldest log generation (log retention).
    #[serde(default)]
    pub retention: Vec<String>,
    /// A warning that the active's log approaches its space budget.
    #[serde(default)]
    pub log_warning: Option<String>,
    /// How the node reaches its peer: `share` or `tcp` (absent in older heartbeats).
    #[serde(default)]
    pub transport: Option<String>,
    /// Over TCP, as a passive copy: block or file mode, why, bytes in flight.
    #[serde(default)]
    pub block_mode: Option<super::block_follow::BlockModeStatus>,
    /// As an active committing synchronously: level, state, why, since when.
    #[serde(default)]
    pub synchronous: Option<super::sync_commit::SyncStatus>,
}

/// The heartbeat file of the node whose instance directory is `instance`.
pub fn path(instance: &Path) -> PathBuf {
    instance.join("heartbeat.json")
}

/// Writes a heartbeat.
pub fn write(fs: &dyn FileSystem, instance: &Path, heartbeat: &Heartbeat) -> Result<(), ReplError> {
    sealed::write(fs, &path(instance), heartbeat)
}

/// Reads a heartbeat (none if the node never wrote one).
pub fn read(fs: &dyn FileSystem, instance: &Path) -> Result<Option<Heartbeat>, ReplError> {
    sealed::read(fs, &path(instance))
}
