//! One writer per replica: an exclusive lock on `replica/lock`, through the engine's
//! ownership lock (`flock`, with the holder's identity written into the file).

use crate::error::ReplError;
use bluejet_engine::db::probe_directory;
use bluejet_engine::file::lock::{os_lock, LockAttempt, LockProbe, OwnershipLock};
use bluejet_engine::file::OsFileSystem;
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
    /// A replica on a simulated file system, whose directory is not on the real disk, is not
    /// locked.
    pub fn acquire(path: &Path) -> Result<Option<Self>, ReplError> {
        let Some(root) = path.parent().filter(|root| root.is_dir()) else {
            return Ok(None);
        };
        let attempt = os_lock(path).map_err(|error| ReplError::io(path, "locking", error))?;
        let lock = match attempt {
            LockAttempt::Taken(lock) => lock,
            LockAttempt::Held(holder) => {
                return Err(ReplError::Locked {
                    path: path.to_owned(),
                    holder,
                })
            }
        };
        let database = crate::layout::ReplicaLayout::new(root).database();
        if let LockProbe::Held(holder) = probe_directory(&OsFileSystem, &database)? {
            return Err(ReplError::Locked {
                path: database,
                holder,
            });
        }
        Ok(Some(Self { _lock: lock }))
    }
}
