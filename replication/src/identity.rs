//! `replica.json`: which stream the replica follows and where its seed started.

use crate::error::ReplError;
use crate::file_name::check_base_name;
use crate::layout::ReplicaLayout;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::log::StreamSignature;
use bluejet_engine::{BaseName, LogPosition};
use serde::{Deserialize, Serialize};

/// The identity of a replica, written once a seed completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaIdentity {
    /// The active's log stream.
    pub signature: StreamSignature,
    /// The stream's base name (`E00`).
    pub base_name: String,
    /// The timeline at the seed.
    pub timeline: u64,
    /// The log position the seed's content corresponds to; replay started there.
    pub seeded_at: LogPosition,
    /// When the seed completed (µs since the Unix epoch).
    pub seeded_micros: u64,
    /// The active's directory at the seed.
    pub active: std::path::PathBuf,
}

impl ReplicaIdentity {
    /// The base name.
    pub fn base(&self) -> Result<BaseName, ReplError> {
        Ok(BaseName::new(&self.base_name)?)
    }

    /// Reads the identity of the replica; `NotAReplica` if there is none, `BadFileName` if
    /// its base name is not one (every generation name is built from it).
    pub fn read(fs: &dyn FileSystem, layout: &ReplicaLayout) -> Result<Self, ReplError> {
        let path = layout.identity();
        let identity: Self = sealed::read(fs, &path)?.ok_or_else(|| ReplError::NotAReplica {
            path: layout.root.clone(),
            reason: "no replica.json: it was never seeded, or its seed did not complete".into(),
        })?;
        check_base_name(&path, &identity.base_name)?;
        Ok(identity)
    }

    /// Writes the identity.
    pub fn write(&self, fs: &dyn FileSystem, layout: &ReplicaLayout) -> Result<(), ReplError> {
        sealed::write(fs, &layout.identity(), self)
    }
}
