//! Duplicate answers of `deliver_once` are as durable as a commit: a log whose sync is held,
//! then fails.

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions). Test data
// is made by truncating counters into bytes on purpose, and sizes here are small constants.
// Ignored results are the cleanup of helper threads and sockets a test tears down (work
// left for a later pass: issue 16 asks them to be logged).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::let_underscore_must_use
)]

use bluejet_engine::file::{
    FileHandle, FileSystem, Holder, LockAttempt, LockProbe, OpenMode, OsFileSystem,
};
use bluejet_engine::{Database, Options};
use bluejet_replication::dumpster::{deliver_once, Delivery};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default)]
struct Switches {
    hold: AtomicBool,
    fail: AtomicBool,
}

#[derive(Debug)]
struct Fs(Arc<Switches>);
struct Handle(Arc<dyn FileHandle>, Arc<Switches>, bool);

impl FileHandle for Handle {
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buffer, offset)
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_at(data, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.2 {
            while self.1.hold.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.1.fail.load(Ordering::SeqCst) {
                return Err(io::Error::other("EIO (injected)"));
            }
        }
        self.0.sync_data()
    }
    fn set_len(&self, length: u64) -> io::Result<()> {
        self.0.set_len(length)
    }
    fn size(&self) -> io::Result<u64> {
        self.0.size()
    }
}

impl FileSystem for Fs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let is_log = path.to_string_lossy().ends_with(".log");
        Ok(Arc::new(Handle(
            OsFileSystem.open(path, mode)?,
            self.0.clone(),
            is_log,
        )))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsFileSystem.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        OsFileSystem.remove(path)
    }
    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        OsFileSystem.list(directory)
    }
    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        OsFileSystem.sync_directory(directory)
    }
    fn create_directory(&self, directory: &Path) -> io::Result<()> {
        OsFileSystem.create_directory(directory)
    }
    fn exists(&self, path: &Path) -> bool {
        OsFileSystem.exists(path)
    }
    fn lock_exclusive(&self, path: &Path, holder: &Holder) -> io::Result<LockAttempt> {
        OsFileSystem.lock_exclusive(path, holder)
    }
    fn probe_lock(&self, path: &Path) -> io::Result<LockProbe> {
        OsFileSystem.probe_lock(path)
    }
}

/// Found by an adversarial test: `deliver_once` answered "duplicate" for a message whose
/// own commit was still waiting for its log sync (visible, not yet durable); that sync then
/// failed, and the transport would have dropped a message nobody stored. The duplicate
/// answer now waits until everything logged is durable, and fails with it.
#[test]
fn a_duplicate_waits_for_the_stored_copy_to_be_durable() {
    let directory = tempfile::tempdir().unwrap();
    let switches = Arc::new(Switches::default());
    let mut options = Options::default();
    options.log.file_system = Arc::new(Fs(switches.clone()));
    let db = Database::open(directory.path(), options).unwrap();
    switches.hold.store(true, Ordering::SeqCst);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| deliver_once(&db, "mail", "<m1@x>", b"body"));
        std::thread::sleep(Duration::from_millis(300));
        let second = scope.spawn(|| deliver_once(&db, "mail", "<m1@x>", b"body"));
        std::thread::sleep(Duration::from_millis(300));
        let answered_early = second.is_finished();
        // Released before any assertion: a failing one must not leave the first blocked.
        switches.fail.store(true, Ordering::SeqCst);
        switches.hold.store(false, Ordering::SeqCst);
        let (first, second) = (first.join().unwrap(), second.join().unwrap());
        assert!(
            !answered_early,
            "a duplicate answered before the sync: {second:?}"
        );
        assert!(first.is_err(), "{first:?}");
        assert!(
            !matches!(second, Ok(Delivery::Duplicate)),
            "a duplicate answered for a copy whose own commit failed: {second:?}"
        );
    });
}
