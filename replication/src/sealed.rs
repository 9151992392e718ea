//! Small JSON files written whole and checked when read: identity, status and control.
//!
//! A file is one JSON object `{"format": 1, "crc32c": N, "content": {...}}`, where `N` is the
//! crc32c of the content serialised compactly with sorted keys. It is written under a
//! temporary name, synced, renamed over the old one, and the directory synced, so a reader
//! sees the old or the new file whole; a damaged one is reported, never half-trusted.

use crate::error::ReplError;
use bluejet_engine::file::{FileSystem, OpenMode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Format version of sealed files.
pub const SEALED_FORMAT: u64 = 1;
/// Largest sealed file read.
const MAX_SEALED_BYTES: u64 = 1 << 20;

/// Writes `content` to `path` atomically and durably.
pub fn write<T: Serialize>(fs: &dyn FileSystem, path: &Path, content: &T) -> Result<(), ReplError> {
    let bytes = seal(path, content)?;
    write_file_atomically(fs, path, &bytes)
}

/// The bytes of `content` sealed (`path` names the file in errors).
pub fn seal<T: Serialize>(path: &Path, content: &T) -> Result<Vec<u8>, ReplError> {
    let value = serde_json::to_value(content).map_err(|error| bad(path, error))?;
    let crc = crc32c::crc32c(&serde_json::to_vec(&value).map_err(|error| bad(path, error))?);
    let sealed = serde_json::json!({ "format": SEALED_FORMAT, "crc32c": crc, "content": value });
    let mut bytes = serde_json::to_vec_pretty(&sealed).map_err(|error| bad(path, error))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Reads the sealed file at `path`; `Ok(None)` only if opening it says it does not exist
/// (`NotFound`): any other failure is an error, never taken for absence.
pub fn read<T: DeserializeOwned>(fs: &dyn FileSystem, path: &Path) -> Result<Option<T>, ReplError> {
    let bytes = match read_file(fs, path, MAX_SEALED_BYTES) {
        Ok(bytes) => bytes,
        Err(ReplError::Io {
            operation: "opening",
            cause,
            ..
        }) if cause.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    unseal(path, &bytes).map(Some)
}

/// Checks and decodes the bytes of a sealed file (`path` names it in errors).
pub fn unseal<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, ReplError> {
    let sealed: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| bad(path, error))?;
    let format = sealed.get("format").and_then(|f| f.as_u64());
    if format != Some(SEALED_FORMAT) {
        return Err(bad(
            path,
            format!("format {format:?}, expected {SEALED_FORMAT}"),
        ));
    }
    let content = sealed.get("content").cloned().unwrap_or_default();
    let crc = crc32c::crc32c(&serde_json::to_vec(&content).map_err(|error| bad(path, error))?);
    let stored = sealed.get("crc32c").and_then(|c| c.as_u64());
    if stored != Some(crc as u64) {
        return Err(bad(
            path,
            format!("checksum {stored:?} does not match the content ({crc})"),
        ));
    }
    serde_json::from_value(content).map_err(|error| bad(path, error))
}

fn bad(path: &Path, reason: impl ToString) -> ReplError {
    ReplError::BadReplicaFile {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads a whole file of at most `limit` bytes.
pub fn read_file(fs: &dyn FileSystem, path: &Path, limit: u64) -> Result<Vec<u8>, ReplError> {
    let file = fs
        .open(path, OpenMode::Read)
        .map_err(|error| ReplError::io(path, "opening", error))?;
    let length = file
        .size()
        .map_err(|error| ReplError::io(path, "reading the size of", error))?;
    if length > limit {
        return Err(bad(
            path,
            format!("{length} bytes, more than the {limit} expected"),
        ));
    }
    let mut bytes = vec![0; usize::try_from(length).expect("checked above: at most the limit")];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|error| ReplError::io(path, "reading", error))?;
    Ok(bytes)
}

/// Writes `bytes` as `path`: a temporary file, synced, renamed, then the directory synced.
pub fn write_file_atomically(
    fs: &dyn FileSystem,
    path: &Path,
    bytes: &[u8],
) -> Result<(), ReplError> {
    let temporary = write_temporary(fs, path, bytes)?;
    publish(fs, &[(temporary, path.to_owned())])
}

/// The temporary name `path` is written under before it is renamed: `path` + `.tmp`.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    PathBuf::from(temporary)
}

/// Writes `bytes` under the temporary name of `path` and syncs it; returns that name.
pub fn write_temporary(
    fs: &dyn FileSystem,
    path: &Path,
    bytes: &[u8],
) -> Result<PathBuf, ReplError> {
    let temporary = temporary_path(path);
    match fs.remove(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(ReplError::io(&temporary, "removing", error))
        }
        _ => {}
    }
    let file = fs
        .open(&temporary, OpenMode::CreateNew)
        .map_err(|error| ReplError::io(&temporary, "creating", error))?;
    let io = |error| ReplError::io(&temporary, "writing", error);
    file.write_at(bytes, 0).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(temporary)
}

/// Renames each synced temporary file to its final name, then syncs each directory
/// concerned once: a batch of files costs one directory sync.
pub fn publish(fs: &dyn FileSystem, renames: &[(PathBuf, PathBuf)]) -> Result<(), ReplError> {
    let mut directories: Vec<&Path> = Vec::new();
    for (temporary, path) in renames {
        fs.rename(temporary, path)
            .map_err(|error| ReplError::io(path, "renaming into", error))?;
        let directory = path.parent().unwrap_or(Path::new("."));
        if !directories.contains(&directory) {
            directories.push(directory);
        }
    }
    for directory in directories {
        fs.sync_directory(directory)
            .map_err(|error| ReplError::io(directory, "syncing", error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluejet_engine::file::OsFileSystem;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Content {
        generation: u32,
        comment: String,
    }

    #[test]
    fn damaged_or_truncated_files_are_named_errors() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("status.json");
        let content = Content {
            generation: 7,
            comment: "disk swap".into(),
        };
        write(&OsFileSystem, &path, &content).unwrap();
        assert_eq!(
            read::<Content>(&OsFileSystem, &path).unwrap(),
            Some(content)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        // A changed value no longer matches the checksum; a cut file is not JSON.
        std::fs::write(&path, text.replace("disk swap", "disk swan")).unwrap();
        let changed = read::<Content>(&OsFileSystem, &path).unwrap_err();
        assert!(
            matches!(&changed, ReplError::BadReplicaFile { path: p, reason }
            if p == &path && reason.contains("checksum")),
            "{changed}"
        );
        std::fs::write(&path, &text.as_bytes()[..text.len() / 2]).unwrap();
        let cut = read::<Content>(&OsFileSystem, &path).unwrap_err();
        assert!(
            matches!(&cut, ReplError::BadReplicaFile { path: p, .. } if p == &path),
            "{cut}"
        );
        assert_eq!(
            read::<Content>(&OsFileSystem, &directory.path().join("none.json")).unwrap(),
            None
        );
    }
}
