//! Putting the rebuilt file in place without ever losing the only copy.
//!
//! 1. The damaged original is copied into the aside directory, the copy synced, and the
//!    aside directory synced. A copy, not a hard link: a second name would leave
//!    `bluejet.db` with two names from here to step 3, which every open refuses (a file
//!    BlueJet writes must have one name), so a crash in that window would leave a database
//!    that opens nowhere (found by the adversarial round). The cost is one more write of the
//!    file and its size in free space.
//! 2. The old log stream's files move into the aside directory; both directories are synced.
//!    A crash here leaves the damaged original in place without a log: a clean one opens on
//!    a new stream, a dirty one refuses to open for want of its log, and the repair can be
//!    run again (the aside directory holds the log).
//! 3. The rebuilt file is renamed over `bluejet.db` (atomic), and the directory synced.
//!
//! At every moment `bluejet.db` is either the whole original or the whole rebuilt file.

use crate::db::{DbError, DATABASE_FILE_NAME};
use crate::file::{FileSystem, OpenMode};
use crate::log::directory::LogDirectory;
use crate::log::BaseName;
use std::path::Path;

/// Bytes copied at a time when the original cannot be linked.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// Keeps the original of `directory` and its log in `aside` (a new directory), then renames
/// `rebuilt` into place; returns the log files moved.
pub(super) fn install(
    fs: &dyn FileSystem,
    directory: &Path,
    aside: &Path,
    rebuilt: &Path,
    base: BaseName,
) -> Result<Vec<String>, DbError> {
    let io_error = |path: &Path, operation: &'static str| {
        let path = path.to_owned();
        move |error| DbError::io(path, operation, error)
    };
    fs.create_directory_durably(aside)
        .map_err(io_error(aside, "creating the directory"))?;
    let original = directory.join(DATABASE_FILE_NAME);
    keep(fs, &original, &aside.join(DATABASE_FILE_NAME))?;
    fs.sync_directory(aside)
        .map_err(io_error(aside, "syncing"))?;
    let moved = move_log(fs, directory, aside, base)?;
    fs.sync_directory(aside)
        .map_err(io_error(aside, "syncing"))?;
    fs.sync_directory(directory)
        .map_err(io_error(directory, "syncing"))?;
    fs.rename(rebuilt, &original)
        .map_err(io_error(&original, "renaming the rebuilt file into place"))?;
    fs.sync_directory(directory)
        .map_err(io_error(directory, "syncing"))?;
    Ok(moved)
}

/// Copies `original` to `kept` and syncs the copy (see step 1 for why not a hard link).
fn keep(fs: &dyn FileSystem, original: &Path, kept: &Path) -> Result<(), DbError> {
    let io_error = |operation| move |error| DbError::io(kept, operation, error);
    let from = fs
        .open(original, OpenMode::Read)
        .map_err(|error| DbError::io(original, "opening", error))?;
    let to = fs
        .open(kept, OpenMode::CreateNew)
        .map_err(io_error("creating"))?;
    let length = from
        .size()
        .map_err(|error| DbError::io(original, "reading the size", error))?;
    let mut buffer = vec![0u8; COPY_CHUNK_BYTES];
    let mut offset = 0;
    while offset < length {
        let count = usize::try_from((length - offset).min(COPY_CHUNK_BYTES as u64))
            .expect("at most COPY_CHUNK_BYTES, a usize");
        from.read_exact_at(&mut buffer[..count], offset)
            .map_err(|error| DbError::io(original, "reading", error))?;
        to.write_at(&buffer[..count], offset)
            .map_err(io_error("writing"))?;
        offset += count as u64;
    }
    to.sync_data().map_err(io_error("syncing"))
}

/// Moves every file of the log stream `base` from `directory` into `aside`.
fn move_log(
    fs: &dyn FileSystem,
    directory: &Path,
    aside: &Path,
    base: BaseName,
) -> Result<Vec<String>, DbError> {
    let listing = LogDirectory::list(fs, directory, base)?;
    let fixed = [
        (listing.current, base.current()),
        (listing.prepared, base.prepared()),
        (listing.checkpoint, base.checkpoint()),
    ];
    let names: Vec<String> = fixed
        .into_iter()
        .filter(|(present, _)| *present)
        .map(|(_, name)| name)
        .chain(listing.closed.into_values())
        .collect();
    for name in &names {
        fs.rename(&directory.join(name), &aside.join(name))
            .map_err(|error| DbError::io(directory.join(name), "moving aside", error))?;
    }
    Ok(names)
}
