//! How replication, the cluster and the tools create directories: private to their owner
//! and durable in their parent.
//!
//! Everything under a database, a replica, a backup, a dumpster or a cluster instance holds
//! mail or says something about it, so files are created `0600` and directories `0700`
//! whatever the umask. The engine's [`OsFileSystem`](bluejet_engine::file::OsFileSystem)
//! creates every file (`OpenMode::CreateNew`) and directory with those modes; a umask only
//! removes bits, so a umask of 0 still yields `0600` and `0700`. The few files opened on the
//! real file system directly use [`FILE_MODE`] (the ownership lock files, engine side, are
//! created 0600 too).
//!
//! A new directory's entry lives in its parent, and a crash can lose it (with every file
//! already synced into it) until the parent is synced. [`create_directory_durably`] creates
//! a directory and each missing parent, then syncs the parent of every level it created.

use crate::error::ReplError;
use bluejet_engine::file::FileSystem;
use std::path::Path;

/// The mode of every file holding mail or replication state: owner read and write.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every directory holding such files: owner only.
pub const DIRECTORY_MODE: u32 = 0o700;

/// Creates `directory` and its missing parents through `fs`, and makes each new level
/// durable by syncing its parent (the deepest first; see
/// [`FileSystem::create_directory_durably`]). A directory that exists already is left as it
/// is (nothing to sync).
pub fn create_directory_durably(fs: &dyn FileSystem, directory: &Path) -> Result<(), ReplError> {
    fs.create_directory_durably(directory)
        .map_err(|error| ReplError::io(directory, "creating durably", error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluejet_engine::file::OsFileSystem;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    #[test]
    fn every_new_level_is_created_private() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        create_directory_durably(&OsFileSystem, &deep).unwrap();
        for level in ["a", "a/b", "a/b/c"] {
            let mode = std::fs::metadata(root.path().join(level))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, DIRECTORY_MODE, "{level}: {mode:o}");
        }
        // Again: nothing to do, no error.
        create_directory_durably(&OsFileSystem, &deep).unwrap();
    }

    /// The real file system, noting every directory synced.
    #[derive(Default)]
    struct SyncRecorder {
        synced: parking_lot::Mutex<Vec<PathBuf>>,
    }

    impl FileSystem for SyncRecorder {
        fn open(
            &self,
            path: &Path,
            mode: bluejet_engine::file::OpenMode,
        ) -> std::io::Result<std::sync::Arc<dyn bluejet_engine::file::FileHandle>> {
            OsFileSystem.open(path, mode)
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            OsFileSystem.rename(from, to)
        }
        fn remove(&self, path: &Path) -> std::io::Result<()> {
            OsFileSystem.remove(path)
        }
        fn list(&self, directory: &Path) -> std::io::Result<Vec<String>> {
            OsFileSystem.list(directory)
        }
        fn sync_directory(&self, directory: &Path) -> std::io::Result<()> {
            self.synced.lock().push(directory.to_owned());
            OsFileSystem.sync_directory(directory)
        }
        fn create_directory(&self, directory: &Path) -> std::io::Result<()> {
            OsFileSystem.create_directory(directory)
        }
        fn exists(&self, path: &Path) -> bool {
            OsFileSystem.exists(path)
        }
        fn lock_exclusive(
            &self,
            path: &Path,
            holder: &bluejet_engine::file::lock::Holder,
        ) -> std::io::Result<bluejet_engine::file::lock::LockAttempt> {
            OsFileSystem.lock_exclusive(path, holder)
        }
        fn probe_lock(
            &self,
            path: &Path,
        ) -> std::io::Result<bluejet_engine::file::lock::LockProbe> {
            OsFileSystem.probe_lock(path)
        }
    }

    #[test]
    fn the_parent_of_every_new_level_is_synced() {
        let root = tempfile::tempdir().unwrap();
        let fs = SyncRecorder::default();
        create_directory_durably(&fs, &root.path().join("a/b")).unwrap();
        assert_eq!(
            *fs.synced.lock(),
            vec![root.path().join("a"), root.path().to_owned()]
        );
        fs.synced.lock().clear();
        create_directory_durably(&fs, &root.path().join("a/b")).unwrap();
        assert!(fs.synced.lock().is_empty(), "nothing new, nothing synced");
    }
}
