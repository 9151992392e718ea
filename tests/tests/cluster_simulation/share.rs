//! What the layers of the simulation share: the share as a node reaches it, the time units.

use bluejet_engine::file::simulated::SimulatedFileSystem;
use bluejet_engine::file::{FileHandle, FileSystem, Holder, LockAttempt, LockProbe, OpenMode};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub const WITNESS: &str = "/witness";
pub const NAMES: [&str; 2] = ["a", "b"];
/// The wall clocks start here (µs since the Unix epoch: 2026-01-01).
pub const WALL_START: i64 = 1_767_225_600_000_000;
pub const MS: u64 = 1_000;
pub const SECOND: u64 = 1_000_000;
/// Events kept for the trace of a failing seed.
pub const TRACE: usize = 200;

/// A node's instance directory on its own disk.
pub fn instance(name: &str) -> std::path::PathBuf {
    Path::new("/nodes").join(name)
}

/// The share as one node reaches it: every operation fails while the node is cut off.
pub struct Share {
    pub fs: SimulatedFileSystem,
    pub cut: Arc<AtomicBool>,
}

impl Share {
    fn check(&self) -> io::Result<()> {
        match self.cut.load(Ordering::Relaxed) {
            true => Err(io::Error::new(io::ErrorKind::TimedOut, "share unreachable")),
            false => Ok(()),
        }
    }
}

impl FileSystem for Share {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        self.check()?;
        self.fs.open(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check()?;
        self.fs.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check()?;
        self.fs.remove(path)
    }
    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        self.check()?;
        self.fs.list(directory)
    }
    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        self.check()?;
        self.fs.sync_directory(directory)
    }
    fn create_directory(&self, directory: &Path) -> io::Result<()> {
        self.check()?;
        self.fs.create_directory(directory)
    }
    fn exists(&self, path: &Path) -> bool {
        self.check().is_ok() && self.fs.exists(path)
    }
    fn lock_exclusive(&self, path: &Path, holder: &Holder) -> io::Result<LockAttempt> {
        self.check()?;
        self.fs.lock_exclusive(path, holder)
    }
    fn probe_lock(&self, path: &Path) -> io::Result<LockProbe> {
        self.check()?;
        self.fs.probe_lock(path)
    }
}
