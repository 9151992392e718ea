//! The highest epoch a node has seen, kept in `instance/epoch.json` (sealed JSON, written
//! atomically and synced): epochs only move forward. A witness record with a lower epoch
//! (the share replaced, an empty directory initialised again, a record restored from a
//! backup) is refused, and so is serving at all once the peer was seen active at a higher
//! epoch.

use crate::error::ReplError;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::log::now_micros;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The content of `epoch.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SeenFile {
    /// The highest epoch seen (at the witness or in the peer's heartbeat as active).
    epoch: u64,
    /// Where it was seen.
    source: String,
    /// When it was recorded (µs).
    updated_micros: u64,
}

/// A node's highest epoch seen.
pub struct SeenEpoch {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    highest: Mutex<u64>,
}

impl SeenEpoch {
    /// The file of the node whose instance directory is `instance`.
    pub fn path(instance: &Path) -> PathBuf {
        instance.join("epoch.json")
    }

    /// Reads it (0 when the node never saw an epoch); any error but `NotFound` is an error.
    pub fn load(fs: Arc<dyn FileSystem>, instance: &Path) -> Result<Self, ReplError> {
        let path = Self::path(instance);
        let seen: Option<SeenFile> = sealed::read(fs.as_ref(), &path)?;
        Ok(Self {
            fs,
            path,
            highest: Mutex::new(seen.map_or(0, |seen| seen.epoch)),
        })
    }

    /// The highest epoch seen.
    pub fn highest(&self) -> u64 {
        *self.highest.lock()
    }

    /// Records `epoch`, seen at `source`, if it is higher than any before (durably, before
    /// the node acts on it).
    pub fn observe(&self, epoch: u64, source: &str) -> Result<(), ReplError> {
        let mut highest = self.highest.lock();
        if epoch <= *highest {
            return Ok(());
        }
        sealed::write(
            self.fs.as_ref(),
            &self.path,
            &SeenFile {
                epoch,
                source: source.to_owned(),
                updated_micros: now_micros(),
            },
        )?;
        *highest = epoch;
        Ok(())
    }

    /// Refuses a witness record at `epoch` (in `directory`) older than the highest seen;
    /// records it otherwise.
    pub fn check_witness(&self, epoch: u64, directory: &Path) -> Result<(), ReplError> {
        let highest = self.highest();
        if epoch < highest {
            return Err(ReplError::Witness {
                directory: directory.to_owned(),
                reason: format!(
                    "its record is at epoch {epoch}, older than epoch {highest} this node has \
                     seen (in {}): epochs never go back; is this the cluster's witness \
                     directory, and is its share mounted?",
                    self.path.display()
                ),
            });
        }
        self.observe(epoch, &format!("witness {}", directory.display()))
    }
}
