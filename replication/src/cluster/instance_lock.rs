//! One `node run` per instance directory: an exclusive `flock` on `INSTANCE/node.lock`, held
//! for the node's whole life (found by an adversarial operator: two processes of one node,
//! and a database directory renamed under the first, gave two actives at one epoch).
//!
//! The database directory's own ownership lock still guards the database; this lock keeps a
//! second node process from running beside the first at all, whatever it finds on disk.

use crate::error::ReplError;
use bluejet_engine::file::lock::{os_lock_file, LockAttempt, OwnershipLock};
use std::path::Path;

/// The lock file in an instance directory.
pub const INSTANCE_LOCK_FILE: &str = "node.lock";

/// Held while a node runs on an instance; released when dropped or when the process dies.
#[derive(Debug)]
pub struct InstanceLock {
    _lock: OwnershipLock,
}

impl InstanceLock {
    /// Takes the lock of `instance`, or fails with [`ReplError::Locked`] naming the node
    /// process holding it. An instance not on the real disk (a simulated one) is not locked.
    pub fn acquire(instance: &Path) -> Result<Option<Self>, ReplError> {
        if !instance.is_dir() {
            return Ok(None);
        }
        let path = instance.join(INSTANCE_LOCK_FILE);
        let attempt = os_lock_file(&path)
            .map_err(|error| ReplError::io(&path, "locking the instance", error))?;
        match attempt {
            LockAttempt::Taken(lock) => Ok(Some(Self { _lock: lock })),
            LockAttempt::Held(holder) => Err(ReplError::Locked { path, holder }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_node_on_one_instance_is_refused_until_the_first_ends() {
        let instance = tempfile::tempdir().unwrap();
        let first = InstanceLock::acquire(instance.path()).unwrap();
        assert!(first.is_some());
        match InstanceLock::acquire(instance.path()) {
            Err(ReplError::Locked { holder, .. }) => {
                assert_eq!(holder.map(|h| h.pid), Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        assert!(InstanceLock::acquire(instance.path()).unwrap().is_some());
    }
}
