//! Creating generations: preparing `E00tmp.log` ahead, and the roll that closes `E00.log`.
//!
//! A roll, in order (each step durable before the next, so a crash anywhere leaves a directory
//! that reopens to the same log):
//! 1. the partial block of `E00.log` goes to its home segment; sync;
//! 2. the digest of the finished file is computed by reading it back;
//! 3. the header of the next generation is written into the prepared `E00tmp.log`; sync;
//! 4. rename `E00.log` to `E00` + 8 hex digits `.log`, rename `E00tmp.log` to `E00.log`;
//!    sync the directory;
//! 5. a new `E00tmp.log` is prepared (allocated to the full size, synced, directory synced),
//!    in the background when the background thread runs.

use super::directory::path_of;
use super::header::HEADER_BYTES;
use super::segment::SEGMENT_BYTES;
use super::{BaseName, GenerationHeader};
use crate::error::LogError;
use crate::file::{FileHandle, FileSystem, OpenMode};
use std::path::Path;
use std::sync::Arc;

/// Creates an allocated `E00tmp.log` of the generation size (reading as zeros), durably. An
/// old one is removed.
pub(crate) fn prepare_next(
    fs: &dyn FileSystem,
    directory: &Path,
    base: BaseName,
    generation_bytes: u64,
) -> Result<Arc<dyn FileHandle>, LogError> {
    let path = path_of(directory, &base.prepared());
    if fs.exists(&path) {
        fs.remove(&path)
            .map_err(|e| LogError::io(&path, "remove old prepared log", e))?;
    }
    let file = fs
        .open(&path, OpenMode::CreateNew)
        .map_err(|e| LogError::io(&path, "create prepared log", e))?;
    // Allocated, not sparse: the space is reserved now, so a full disk shows here, in the
    // background, rather than in the middle of a generation.
    file.allocate(generation_bytes)
        .map_err(|e| LogError::io(&path, "allocate prepared log", e))?;
    file.sync_data()
        .map_err(|e| LogError::io(&path, "sync prepared log", e))?;
    fs.sync_directory(directory)
        .map_err(|e| LogError::io(directory, "sync directory", e))?;
    Ok(file)
}

/// Writes `header` into the prepared file and syncs it.
pub(crate) fn write_header(
    file: &dyn FileHandle,
    path: &Path,
    header: &GenerationHeader,
) -> Result<(), LogError> {
    let mut slot = vec![0u8; SEGMENT_BYTES];
    slot[..HEADER_BYTES].copy_from_slice(&header.encode());
    file.write_at(&slot, 0)
        .and_then(|()| file.sync_data())
        .map_err(|e| LogError::io(path, "write generation header", e))
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
