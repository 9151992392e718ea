//! The highest epoch a node has seen, kept in `instance/epoch.json` (sealed JSON, written
//! atomically and synced): epochs only move forward. A witness record with a lower epoch
//! (the share replaced, an empty directory initialised again, a record restored from a
//! backup) is refused, and so is serving at all once the peer was seen active at a higher
//! epoch. The file also binds the node to its cluster: the first witness identity it sees
//! is kept, and a witness of another cluster (a misconfigured path, a share swapped under
//! a running node) is refused, so a foreign node can neither renew nor take the database.

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
    /// The cluster's identity at the witness (absent before a witness with one was seen).
    #[serde(default)]
    cluster: Option<String>,
}

/// A node's highest epoch seen.
pub struct SeenEpoch {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    /// The highest epoch and the cluster bound to.
    seen: Mutex<(u64, Option<String>)>,
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
        let seen = seen.map_or((0, None), |seen| (seen.epoch, seen.cluster));
        Ok(Self {
            fs,
            path,
            seen: Mutex::new(seen),
        })
    }

    /// The highest epoch seen.
    pub fn highest(&self) -> u64 {
        self.seen.lock().0
    }

    /// The cluster this node is bound to, if it has seen one.
    pub fn cluster(&self) -> Option<String> {
        self.seen.lock().1.clone()
    }

    /// Records `epoch`, seen at `source`, if it is higher than any before (durably, before
    /// the node acts on it).
    pub fn observe(&self, epoch: u64, source: &str) -> Result<(), ReplError> {
        let mut seen = self.seen.lock();
        if epoch <= seen.0 {
            return Ok(());
        }
        self.write(epoch, seen.1.clone(), source)?;
        raise(&mut seen, epoch, None);
        Ok(())
    }

    fn write(&self, epoch: u64, cluster: Option<String>, source: &str) -> Result<(), ReplError> {
        let file = SeenFile {
            epoch,
            source: source.to_owned(),
            updated_micros: now_micros(),
            cluster,
        };
        sealed::write(self.fs.as_ref(), &self.path, &file)
    }

    /// Refuses a witness record of another cluster than the one this node is bound to, or
    /// at `epoch` older than the highest seen; records the epoch (and binds the cluster,
    /// the first time) otherwise. An empty `cluster` (a witness from before identities)
    /// binds nothing.
    pub fn check_witness(
        &self,
        epoch: u64,
        cluster: &str,
        directory: &Path,
    ) -> Result<(), ReplError> {
        let refuse = |reason: String| ReplError::Witness {
            directory: directory.to_owned(),
            reason,
        };
        let mut seen = self.seen.lock();
        if let Some(bound) = seen.1.as_deref().filter(|bound| *bound != cluster) {
            return Err(refuse(format!(
                "it belongs to cluster {} but this node belongs to cluster {bound} (in {}): \
                 is this the cluster's witness directory, and is its share mounted?",
                if cluster.is_empty() {
                    "(none)"
                } else {
                    cluster
                },
                self.path.display()
            )));
        }
        if epoch < seen.0 {
            return Err(refuse(format!(
                "its record is at epoch {epoch}, older than epoch {} this node has seen (in \
                 {}): epochs never go back; is this the cluster's witness directory, and is \
                 its share mounted?",
                seen.0,
                self.path.display()
            )));
        }
        let bind = seen.1.is_none() && !cluster.is_empty();
        if epoch > seen.0 || bind {
            let bound = if bind {
                Some(cluster.to_owned())
            } else {
                seen.1.clone()
            };
            self.write(
                epoch,
                bound.clone(),
                &format!("witness {}", directory.display()),
            )?;
            raise(&mut seen, epoch, bound);
        }
        Ok(())
    }
}

/// Moves the highest epoch seen to `epoch` (and the binding to `bound`, when given), after
/// the file says so. The invariant the whole file exists for: epochs only grow.
fn raise(seen: &mut (u64, Option<String>), epoch: u64, bound: Option<String>) {
    assert!(
        epoch >= seen.0,
        "the highest epoch seen only grows: {} to {epoch}",
        seen.0
    );
    seen.0 = epoch;
    if bound.is_some() {
        seen.1 = bound;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluejet_engine::file::OsFileSystem;

    #[test]
    fn the_highest_epoch_seen_never_goes_back() {
        let directory = tempfile::tempdir().unwrap();
        let seen = SeenEpoch::load(Arc::new(OsFileSystem), directory.path()).unwrap();
        seen.observe(7, "test").unwrap();
        seen.observe(3, "an older heartbeat").unwrap();
        assert_eq!(seen.highest(), 7);
        let witness = directory.path().join("witness");
        assert!(seen.check_witness(5, "", &witness).is_err());
        seen.check_witness(9, "", &witness).unwrap();
        assert_eq!(seen.highest(), 9);
        let reloaded = SeenEpoch::load(Arc::new(OsFileSystem), directory.path()).unwrap();
        assert_eq!(reloaded.highest(), 9, "durably");
    }

    #[test]
    #[should_panic(expected = "only grows: 9 to 4")]
    fn lowering_the_epoch_seen_is_a_bug() {
        let mut seen = (9, None);
        raise(&mut seen, 4, None);
    }
}
