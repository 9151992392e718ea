//! One writer per replica: an exclusive lock on `replica/lock`, through the engine's
//! ownership lock (`flock`, with the holder's identity written into the file).

use crate::error::ReplError;
use bluejet_engine::db::probe_directory;
use bluejet_engine::file::lock::{lock, LockAttempt, LockProbe, OwnershipLock};
use bluejet_engine::file::FileSystem;
use std::path::Path;

/// Held while a service (or a seed, backup, truncation) works on a replica; released when
/// dropped.
#[derive(Debug)]
pub struct ReplicaLock {
    _lock: OwnershipLock,
}

impl ReplicaLock {
    /// Takes the lock at `path` (`replica/lock`), failing with [`ReplError::Locked`] naming
    /// the holder if another process (or another handle in this one) holds it, or holds the
    /// replica's database directory (an active database, or a passive copy open elsewhere).
    /// The lock is taken through `fs`, the replica's file system: on a peer reached over the
    /// network it is held by the peer's server for this connection. A replica directory that
    /// does not exist yet is not locked.
    ///
    /// The directory must already be a replica (hold `replica.json`): nothing is created in a
    /// directory that is not (found: a typo'd `--replica` left a `lock` file in a live
    /// database directory, and a later seed there refused). Seeding uses
    /// [`ReplicaLock::acquire_new`].
    pub fn acquire(fs: &dyn FileSystem, path: &Path) -> Result<Option<Self>, ReplError> {
        let Some(root) = path.parent().filter(|root| fs.exists(root)) else {
            return Ok(None);
        };
        // A live database there is named first: that is what the operator needs to know.
        refuse_live_database(fs, root)?;
        if !fs.exists(&crate::layout::ReplicaLayout::new(root).identity()) {
            return Err(ReplError::NotAReplica {
                path: root.to_owned(),
                reason: "it holds no replica.json".into(),
            });
        }
        Self::acquire_new(fs, path)
    }

    /// [`ReplicaLock::acquire`] for a directory about to become a replica (a seed, a node's
    /// own instance directory).
    pub fn acquire_new(fs: &dyn FileSystem, path: &Path) -> Result<Option<Self>, ReplError> {
        let Some(root) = path.parent().filter(|root| fs.exists(root)) else {
            return Ok(None);
        };
        let attempt = lock(fs, path).map_err(|error| ReplError::io(path, "locking", error))?;
        let lock = match attempt {
            LockAttempt::Taken(lock) => lock,
            LockAttempt::Held(holder) => {
                return Err(ReplError::Locked {
                    path: path.to_owned(),
                    holder,
                })
            }
        };
        // Again under the lock: a database opened there since the first look.
        refuse_live_database(fs, root)?;
        Ok(Some(Self { _lock: lock }))
    }
}

/// Refuses, naming its holder, while the replica's database directory is held (an active
/// database, or a passive copy open elsewhere).
fn refuse_live_database(fs: &dyn FileSystem, root: &Path) -> Result<(), ReplError> {
    let database = crate::layout::ReplicaLayout::new(root).database();
    match probe_directory(fs, &database)? {
        LockProbe::Held(holder) => Err(ReplError::Locked {
            path: database,
            holder,
        }),
        LockProbe::Free => Ok(()),
    }
}
