//! One owner per database directory: an active database and a passive copy hold the
//! directory's ownership lock (`bluejet.lock`) from open until close, drop or the death of
//! their process, so no second process, and no second handle in the same process, opens it
//! for writing. See "Ownership lock" in `docs/design.md`.

use super::DbError;
use crate::file::lock::{self, LockAttempt, LockProbe, OwnershipLock, LOCK_FILE_NAME};
use crate::file::FileSystem;
use std::path::Path;

/// Takes the ownership lock of `directory` (creating the directory if needed), or fails at
/// once with [`DbError::InUse`] naming the holder.
pub fn lock_directory(fs: &dyn FileSystem, directory: &Path) -> Result<OwnershipLock, DbError> {
    fs.create_directory_durably(directory)
        .map_err(|error| DbError::io(directory, "creating the directory", error))?;
    let path = directory.join(LOCK_FILE_NAME);
    match lock::lock(fs, &path).map_err(|error| DbError::io(&path, "locking", error))? {
        LockAttempt::Taken(lock) => Ok(lock),
        LockAttempt::Held(holder) => Err(DbError::InUse {
            directory: directory.to_owned(),
            holder,
        }),
    }
}

/// Whether the database in `directory` is held by an owner, and by whom. Reads only: an
/// inspection may run beside a live database, and never makes its owner's open fail.
pub fn probe_directory(fs: &dyn FileSystem, directory: &Path) -> Result<LockProbe, DbError> {
    let path = directory.join(LOCK_FILE_NAME);
    fs.probe_lock(&path)
        .map_err(|error| DbError::io(&path, "probing the lock", error))
}
