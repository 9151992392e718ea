//! One `node run` per instance directory: an exclusive `flock` on `INSTANCE/node.lock`, held
//! for the node's whole life (found by an adversarial operator: two processes of one node,
//! and a database directory renamed under the first, gave two actives at one epoch).
//!
//! The database directory's own ownership lock still guards the database; this lock keeps a
//! second node process from running beside the first at all, whatever it finds on disk.

use crate::error::ReplError;
use bluejet_engine::file::Holder;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The lock file in an instance directory.
pub const INSTANCE_LOCK_FILE: &str = "node.lock";
/// A holder record longer than this is not ours.
const MAX_RECORD_BYTES: u64 = 4096;

/// Held while a node runs on an instance; released when dropped or when the process dies.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    /// Takes the lock of `instance`, or fails with [`ReplError::Locked`] naming the node
    /// process holding it. An instance not on the real disk (a simulated one) is not locked.
    pub fn acquire(instance: &Path) -> Result<Option<Self>, ReplError> {
        if !instance.is_dir() {
            return Ok(None);
        }
        let path = instance.join(INSTANCE_LOCK_FILE);
        let io = |error| ReplError::io(&path, "locking the instance", error);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(io)?;
        let metadata = file.metadata().map_err(io)?;
        if !metadata.is_file() || metadata.nlink() > 1 {
            return Err(io(std::io::Error::other(
                "not a regular file with one name",
            )));
        }
        use rustix::fs::{flock, FlockOperation};
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(ReplError::Locked {
                    holder: read_holder(&file),
                    path,
                })
            }
            Err(errno) => return Err(io(errno.into())),
        }
        // Informational, as the database lock's record.
        file.set_len(0).map_err(io)?;
        file.write_all_at(&Holder::current().encode(), 0)
            .map_err(io)?;
        Ok(Some(Self { _file: file }))
    }
}

fn read_holder(file: &File) -> Option<Holder> {
    let mut bytes = Vec::new();
    let mut reader = file;
    reader
        .by_ref()
        .take(MAX_RECORD_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    Holder::decode(&bytes).filter(Holder::may_be_alive)
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
