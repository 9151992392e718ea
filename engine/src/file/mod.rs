//! The file layer every durable structure writes through.
//!
//! Production code uses [`OsFileSystem`]; tests use `simulated::SimulatedFileSystem` (behind
//! the `simulation` cargo feature, off by default), which keeps a "written" and a
//! "durable" image of every file and can crash, dropping, reordering or garbling writes that
//! were never synced, can fail the Nth operation or a sync (with Linux's semantics), can lose a
//! synced write, and loses directories whose parent was never synced.

pub mod lock;
mod os;
// The simulated disk is test equipment: a production build does not carry it. The engine's
// own unit tests always have it; the tests and fuzz crates enable the feature.
#[cfg(any(test, feature = "simulation"))]
pub mod simulated;
#[cfg(any(test, feature = "simulation"))]
mod simulated_locks;

pub use lock::{Holder, LockAttempt, LockProbe, OwnershipLock, LOCK_FILE_NAME};
pub use os::OsFileSystem;

use std::io;
use std::path::Path;
use std::sync::Arc;

/// An open file: positional reads and writes, data sync and length changes.
pub trait FileHandle: Send + Sync {
    /// Reads up to `buffer.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `data` at `offset`.
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the written data durable (fdatasync). An error is fatal for this handle.
    fn sync_data(&self) -> io::Result<()>;
    /// Sets the file length (not durable until the next `sync_data`).
    fn set_len(&self, length: u64) -> io::Result<()>;
    /// The current size of the file in bytes.
    fn size(&self) -> io::Result<u64>;

    /// Reserves disk space for `length` bytes and sets the size to `length`; the new bytes
    /// read as zero. Unlike writing zeros, this writes no data, so preparing a generation
    /// does not halve the disk bandwidth left for the log. Not durable until `sync_data`.
    fn allocate(&self, length: u64) -> io::Result<()> {
        self.set_len(length)
    }

    /// Starts writing `length` bytes at `offset` to the disk without waiting for them (a
    /// hint: durability still needs `sync_data`). A log streaming lazy commits keeps the disk
    /// busy with it, so the sync that follows has little left to wait for.
    fn start_writeback(&self, _offset: u64, _length: u64) -> io::Result<()> {
        Ok(())
    }

    /// Makes later reads of this file return what the disk holds: writes back what is dirty
    /// (a sync, which fails if the disk does), then evicts the file's cached pages. After a
    /// failed sync Linux marks the unwritten pages clean: reads keep returning bytes the disk
    /// never got, and a later sync succeeds without writing them. Opening a database or a log
    /// calls this on every file it trusts, so nothing unconfirmed is taken for durable, in
    /// this process or the next (design.md, "Bytes never confirmed durable").
    fn reread_from_device(&self) -> io::Result<()> {
        self.sync_data()
    }

    /// Reads exactly `buffer.len()` bytes at `offset`, failing with `UnexpectedEof` otherwise.
    fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buffer.len() {
            let count = self.read_at(&mut buffer[done..], offset + done as u64)?;
            if count == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file too short",
                ));
            }
            done += count;
        }
        Ok(())
    }
}

/// How a file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; the file is created empty and must not exist yet.
    CreateNew,
}

/// A directory tree of files: open, rename, remove, list and directory sync.
pub trait FileSystem: Send + Sync {
    /// Opens `path` in `mode`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>>;
    /// Renames `from` to `to` atomically, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Lists the file names (not paths) in `directory`.
    fn list(&self, directory: &Path) -> io::Result<Vec<String>>;
    /// Makes creations, renames and removals in `directory` durable.
    fn sync_directory(&self, directory: &Path) -> io::Result<()>;
    /// Creates `directory` and its parents.
    fn create_directory(&self, directory: &Path) -> io::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;

    /// Creates `directory` and its missing parents durably: each new directory is an entry in
    /// its parent, lost at a power failure unless the parent is synced after it, so the parent
    /// of every level created is synced, the deepest first. An existing directory is left as it
    /// is.
    fn create_directory_durably(&self, directory: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut level = Some(directory);
        while let Some(current) =
            level.filter(|path| !path.as_os_str().is_empty() && !self.exists(path))
        {
            missing.push(current);
            level = current.parent();
        }
        if missing.is_empty() {
            return Ok(());
        }
        self.create_directory(directory)?;
        for created in missing {
            // A relative single name's entry is in the working directory.
            let parent = match created.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            self.sync_directory(parent)?;
        }
        Ok(())
    }

    /// Removes an empty directory. A file system without directories of its own says
    /// `Unsupported`, and the caller leaves the (empty) directory.
    fn remove_directory(&self, directory: &Path) -> io::Result<()> {
        let _ = directory;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no directory removal",
        ))
    }

    /// Takes the exclusive ownership lock named by `path` without waiting, and records
    /// `holder` in the file `path` (on the real disk the lock is a `flock` on `path`'s
    /// directory; see [`lock`]). Another handle on it, in this process or another, is refused
    /// until the lock is dropped or its process dies.
    fn lock_exclusive(&self, path: &Path, holder: &Holder) -> io::Result<LockAttempt>;
    /// Whether the lock `path` is held, and by whom: writes and creates nothing, and takes
    /// nothing an owner could be refused for.
    fn probe_lock(&self, path: &Path) -> io::Result<LockProbe>;
}
