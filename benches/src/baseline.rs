//! The raw baselines a single thread gets from the disk, through the same file layer BlueJet
//! writes through (`pwrite` via `write_all_at`, `fdatasync` via `sync_data`):
//! - [`RecordFile::append_synced`]: append one record and sync, one at a time;
//! - [`sequential_write`]: large writes to a new file and one sync at the end;
//! - [`closed_files`]: the same bytes as files of one chunk each, every file closed durably
//!   (what a log of generations of that size must at least do).

use bluejet_engine::file::{FileHandle, FileSystem, OpenMode, OsFileSystem};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a record file's space is reserved before the measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preallocation {
    /// Zeros written and synced: every later write overwrites allocated, written blocks, so a
    /// data sync changes no metadata (what a tuned write-ahead log does).
    ZeroFilled,
    /// `fallocate` (unwritten extents, as BlueJet prepares its generations): the first write
    /// to each block converts its extent, which the data sync must commit to the journal.
    Fallocated,
}

/// A preallocated file that records are appended to at increasing offsets, wrapping to the
/// start at the end of the region.
pub struct RecordFile {
    file: Arc<dyn FileHandle>,
    region: u64,
    offset: u64,
}

impl RecordFile {
    /// Creates `path` with `region` bytes reserved as `preallocation` says, durably.
    pub fn create(path: &Path, region: u64, preallocation: Preallocation) -> io::Result<Self> {
        let fs = OsFileSystem;
        let file = fs.open(path, OpenMode::CreateNew)?;
        match preallocation {
            Preallocation::ZeroFilled => {
                let zeros = vec![0u8; 1 << 20];
                let mut offset = 0;
                while offset < region {
                    let length = usize::try_from((region - offset).min(zeros.len() as u64))
                        .expect("at most zeros.len()");
                    file.write_at(&zeros[..length], offset)?;
                    offset += length as u64;
                }
            }
            Preallocation::Fallocated => file.allocate(region)?,
        }
        file.sync_data()?;
        fs.sync_directory(path.parent().unwrap_or(Path::new(".")))?;
        Ok(Self {
            file,
            region,
            offset: 0,
        })
    }

    /// The file handle, for writers that place records themselves.
    pub fn handle(&self) -> &Arc<dyn FileHandle> {
        &self.file
    }

    /// The offset for the next `length` bytes: the current one, or the start of the region if
    /// they would pass its end.
    pub fn reserve(&mut self, length: usize) -> u64 {
        if self.offset + length as u64 > self.region {
            self.offset = 0;
        }
        let offset = self.offset;
        self.offset += length as u64;
        offset
    }

    /// Writes `record` at the next offset and syncs: one durable commit.
    pub fn append_synced(&mut self, record: &[u8]) -> io::Result<()> {
        let offset = self.reserve(record.len());
        self.file.write_at(record, offset)?;
        self.file.sync_data()
    }

    /// `count` synced appends of `record`; the time they took.
    pub fn run(&mut self, record: &[u8], count: u64) -> io::Result<Duration> {
        let start = Instant::now();
        for _ in 0..count {
            self.append_synced(record)?;
        }
        Ok(start.elapsed())
    }
}

/// Writes `chunk` `count` times at increasing offsets into a new file at `path`, then syncs
/// once; returns the time (file creation included) and removes the file afterwards.
pub fn sequential_write(path: &Path, chunk: &[u8], count: u64) -> io::Result<Duration> {
    let fs = OsFileSystem;
    let start = Instant::now();
    let file = fs.open(path, OpenMode::CreateNew)?;
    for index in 0..count {
        file.write_at(chunk, index * chunk.len() as u64)?;
    }
    file.sync_data()?;
    let elapsed = start.elapsed();
    drop(file);
    fs.remove(path)?;
    Ok(elapsed)
}

/// Writes `count` files of one `chunk` each into `directory`, each one closed durably the way
/// a log closes a generation: created and allocated, written, synced, renamed to its final
/// name, the directory synced. One thread, one file after another. Returns the time and
/// removes the files afterwards.
pub fn closed_files(directory: &Path, chunk: &[u8], count: u64) -> io::Result<Duration> {
    let fs = OsFileSystem;
    let temporary = directory.join("next.tmp");
    let start = Instant::now();
    for index in 0..count {
        let file = fs.open(&temporary, OpenMode::CreateNew)?;
        file.allocate(chunk.len() as u64)?;
        file.write_at(chunk, 0)?;
        file.sync_data()?;
        fs.rename(&temporary, &directory.join(format!("{index}.closed")))?;
        fs.sync_directory(directory)?;
    }
    let elapsed = start.elapsed();
    for index in 0..count {
        fs.remove(&directory.join(format!("{index}.closed")))?;
    }
    Ok(elapsed)
}
