//! One replication service per replica: an exclusive advisory lock on `replica/lock`.

use crate::error::ReplError;
use crate::private_files::FILE_MODE;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Held while a service (or a seed) works on a replica; released when dropped.
#[derive(Debug)]
pub struct ReplicaLock {
    _file: File,
}

impl ReplicaLock {
    /// Takes the lock at `path`, failing with [`ReplError::Locked`] if another process (or
    /// another handle in this one) holds it. A replica on a simulated file system, whose
    /// directory is not on the real disk, is not locked.
    pub fn acquire(path: &Path) -> Result<Option<Self>, ReplError> {
        if !path.parent().is_some_and(Path::is_dir) {
            return Ok(None);
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|error| ReplError::io(path, "opening", error))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| ReplError::Locked {
                path: path.to_owned(),
            },
        )?;
        Ok(Some(Self { _file: file }))
    }
}
