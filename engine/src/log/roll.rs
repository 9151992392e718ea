//! Creating generations: preparing `E00tmp.log` ahead, and the roll that closes `E00.log`.
//!
//! A roll, in order (the header and the finished generation are durable before the renames,
//! and the renames before anything of the next generation counts, so a crash anywhere leaves
//! a directory that reopens to the same log):
//! 1. the partial block of `E00.log` goes to its home segment;
//! 2. the digest of the finished file is computed: the home segments the writer wrote in order
//!    count by the crc it took as it wrote them, the rest is read back (from the page cache);
//! 3. the header of the next generation is written into the prepared `E00tmp.log`;
//! 4. sync `E00.log`, then sync `E00tmp.log` (its header); rename `E00.log` to `E00` + 8 hex
//!    digits `.log`, rename `E00tmp.log` to `E00.log`; sync the directory;
//! 5. a new `E00tmp.log` is prepared (allocated and, unless the log is streaming, filled with
//!    zeros and synced; its directory entry becomes durable with the next install).
//!
//! The writer does step 1 and then writes the next generation's segments into `E00tmp.log` at
//! once (its header slot stays empty until step 3); steps 2 to 5 run in the closer thread when
//! the background threads run (see `closer.rs`). Nothing of the next generation counts as
//! durable before step 4. The
//! sync of `E00tmp.log` in step 4 may also make some of the next generation's segments
//! durable, which the writer does not count as a sync of its own: that is no more than the
//! kernel's own writeback may do at any time, which the torn-tail rules allow for.

use super::directory::path_of;
use super::header::HEADER_BYTES;
use super::segment::SEGMENT_BYTES;
use super::{BaseName, GenerationHeader};
use crate::error::LogError;
use crate::file::{FileHandle, FileSystem, OpenMode};
use std::path::Path;
use std::sync::Arc;

/// Zeros to fill prepared generations with, without allocating at every roll.
static ZEROS: [u8; 256 << 10] = [0; 256 << 10];

/// Creates `E00tmp.log` of the generation size, allocated and (see [`Fill`]) filled with
/// zeros, and syncs its data. An old one is removed. The directory is not synced here: until a roll installs
/// the file (and syncs the directory then), losing it costs nothing.
pub(crate) fn prepare_next(
    fs: &dyn FileSystem,
    directory: &Path,
    base: BaseName,
    generation_bytes: u64,
    fill: Fill,
) -> Result<Arc<dyn FileHandle>, LogError> {
    let path = path_of(directory, &base.prepared());
    if fs.exists(&path) {
        fs.remove(&path)
            .map_err(|e| LogError::io(&path, "remove old prepared log", e))?;
    }
    let file = fs
        .open(&path, OpenMode::CreateNew)
        .map_err(|e| LogError::io(&path, "create prepared log", e))?;
    // Allocated first, so a full disk shows here, in the background, rather than in the
    // middle of a generation.
    file.allocate(generation_bytes)
        .map_err(|e| LogError::io(&path, "allocate prepared log", e))?;
    if fill == Fill::Zeros {
        write_zeros(file.as_ref(), &path, generation_bytes)?;
        // Syncing here, in the background, keeps the megabyte of zeros off the roll's own
        // sync. An allocation alone is made durable by the sync of the header the roll writes.
        file.sync_data()
            .map_err(|e| LogError::io(&path, "sync prepared log", e))?;
    }
    Ok(file)
}

/// How a prepared generation's space is made ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Write zeros over the allocated space. On ext4, a commit's fdatasync into space that
    /// was only allocated must also write the extent conversion: a raw group flush measured
    /// about half the commit rate there (12K against 24K commits/s). Zeros avoid that at the
    /// cost of writing the generation twice.
    Zeros,
    /// Leave the space allocated only. For a log streaming large flushes, writing every
    /// generation twice costs more than the conversions (lazy appends measured about 30%
    /// faster without the zeros).
    Allocated,
}

fn write_zeros(file: &dyn FileHandle, path: &Path, generation_bytes: u64) -> Result<(), LogError> {
    let mut offset = 0u64;
    while offset < generation_bytes {
        let length = usize::try_from((generation_bytes - offset).min(ZEROS.len() as u64))
            .expect("at most ZEROS.len(), a usize");
        file.write_at(&ZEROS[..length], offset)
            .map_err(|e| LogError::io(path, "fill prepared log", e))?;
        offset += length as u64;
    }
    Ok(())
}

/// Writes `header` into the prepared file, without syncing: [`sync_header`] must follow
/// before the file is installed.
pub(crate) fn write_header(
    file: &dyn FileHandle,
    path: &Path,
    header: &GenerationHeader,
) -> Result<(), LogError> {
    let mut slot = vec![0u8; SEGMENT_BYTES];
    slot[..HEADER_BYTES].copy_from_slice(&header.encode());
    file.write_at(&slot, 0)
        .map_err(|e| LogError::io(path, "write generation header", e))
}

/// Makes the header written by [`write_header`] durable (and whatever else was written into
/// the prepared file since: it counts for nothing before the install).
pub(crate) fn sync_header(file: &dyn FileHandle, path: &Path) -> Result<(), LogError> {
    file.sync_data()
        .map_err(|e| LogError::io(path, "sync generation header", e))
}

/// Step 4: the prepared file (with its header) becomes `E00.log`; the old `E00.log`, if
/// `closing` names its generation, takes its numbered name.
pub(crate) fn install(
    fs: &dyn FileSystem,
    directory: &Path,
    base: BaseName,
    closing: Option<u32>,
) -> Result<(), LogError> {
    let current = path_of(directory, &base.current());
    if let Some(generation) = closing {
        let closed = path_of(directory, &base.closed(generation));
        fs.rename(&current, &closed)
            .map_err(|e| LogError::io(&current, "rename closed generation", e))?;
    }
    let prepared = path_of(directory, &base.prepared());
    fs.rename(&prepared, &current)
        .map_err(|e| LogError::io(&prepared, "rename prepared generation", e))?;
    fs.sync_directory(directory)
        .map_err(|e| LogError::io(directory, "sync directory", e))
}
