//! What a log directory holds, by file name.

use super::{BaseName, LogFileName};
use crate::error::LogError;
use crate::file::{FileHandle, FileSystem, OpenMode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The files of one log stream found in a directory.
#[derive(Clone, Debug, Default)]
pub struct LogDirectory {
    /// Closed generations by number, with their file names.
    pub closed: BTreeMap<u32, String>,
    /// Whether `E00.log` exists.
    pub current: bool,
    /// Whether `E00tmp.log` exists.
    pub prepared: bool,
    /// Whether `E00.chk` exists.
    pub checkpoint: bool,
}

impl LogDirectory {
    /// Lists `directory` for the stream with `base`.
    pub fn list(fs: &dyn FileSystem, directory: &Path, base: BaseName) -> Result<Self, LogError> {
        let names = fs
            .list(directory)
            .map_err(|e| LogError::io(directory, "list directory", e))?;
        let mut found = Self::default();
        for name in names {
            match base.classify(&name) {
                Some(LogFileName::Closed(generation)) => {
                    found.closed.insert(generation, name);
                }
                Some(LogFileName::Current) => found.current = true,
                Some(LogFileName::Prepared) => found.prepared = true,
                Some(LogFileName::Checkpoint) => found.checkpoint = true,
                None => {}
            }
        }
        Ok(found)
    }

    /// Makes every file of the stream read back from the disk, not from cached pages a failed
    /// sync may have left holding bytes the disk never got (see
    /// [`FileHandle::reread_from_device`]). Run before anything of the stream is read at open.
    pub fn reread_from_device(
        &self,
        fs: &dyn FileSystem,
        directory: &Path,
        base: BaseName,
    ) -> Result<(), LogError> {
        let fixed = [
            (self.current, base.current()),
            (self.prepared, base.prepared()),
            (self.checkpoint, base.checkpoint()),
        ];
        let present = fixed.into_iter().filter(|(here, _)| *here);
        let names = present
            .map(|(_, name)| name)
            .chain(self.closed.values().cloned());
        for name in names {
            let path = path_of(directory, &name);
            fs.open(&path, OpenMode::Read)
                .and_then(|file| file.reread_from_device())
                .map_err(|e| LogError::io(&path, "reread from the disk", e))?;
        }
        Ok(())
    }

    /// The highest closed generation.
    pub fn last_closed(&self) -> Option<u32> {
        self.closed.keys().next_back().copied()
    }

    /// Ranges of generations missing between the lowest and highest closed generation, and
    /// up to `current` when given (closed names at or past `current` are misnamed files,
    /// reported as such, and do not count here).
    pub fn missing_ranges(&self, current: Option<u32>) -> Vec<(u32, u32)> {
        let below_current =
            |generation: &&u32| current.is_none_or(|current| **generation < current);
        let mut numbers: Vec<u32> = self.closed.keys().filter(below_current).copied().collect();
        if let Some(current) = current {
            numbers.push(current);
        }
        numbers.sort_unstable();
        numbers.dedup();
        numbers
            .windows(2)
            .filter(|pair| pair[1] > pair[0] + 1)
            .map(|pair| (pair[0] + 1, pair[1] - 1))
            .collect()
    }
}

/// Reads a whole file, refusing anything larger than `limit` bytes (a bound on what is read
/// from disk).
pub fn read_image(
    fs: &dyn FileSystem,
    path: &Path,
    limit: u64,
) -> Result<(std::sync::Arc<dyn FileHandle>, Vec<u8>), LogError> {
    let file = fs
        .open(path, OpenMode::Read)
        .map_err(|e| LogError::io(path, "open", e))?;
    let length = file.size().map_err(|e| LogError::io(path, "stat", e))?;
    if length > limit {
        return Err(LogError::WrongSize {
            path: path.to_owned(),
            expected: limit,
            found: length,
        });
    }
    let mut image = vec![
        0u8;
        usize::try_from(length)
            .expect("checked above: at most the limit, a file read whole")
    ];
    file.read_exact_at(&mut image, 0)
        .map_err(|e| LogError::io(path, "read", e))?;
    Ok((file, image))
}

/// `directory/name`.
pub fn path_of(directory: &Path, name: &str) -> PathBuf {
    directory.join(name)
}
