//! The log-retention marker `bluejet.keep-logs`: a durable note in a database directory that
//! something outside the database (a replica's shipper, an incremental backup) reads its log
//! generations, so circular logging must never delete one.
//!
//! Once written it stays: a later standalone open of the directory, or a maintenance
//! command, sees it and keeps every generation. A marker that cannot be read (damaged, wrong
//! version, an I/O error) counts as present: a missing or unreadable record is never taken
//! for "nobody needs the log".
//!
//! Layout (little-endian), at most [`MARKER_MAX_BYTES`]:
//! ```text
//!   0  u32  crc32c of bytes 4..end
//!   4  [8]  magic "BJKEEPLG"
//!  12  u16  format version (1)
//!  14  u16  reason length n (at most 1024)
//!  16  u64  time written (µs since the Unix epoch)
//!  24  [n]  reason, UTF-8 (who reads the log, e.g. "replica /srv/replica seeded")
//! ```

use super::DbError;
use crate::file::{FileSystem, OpenMode};
use std::path::{Path, PathBuf};

/// The marker's file name in the database directory.
pub const RETENTION_MARKER_NAME: &str = "bluejet.keep-logs";
/// Largest marker file accepted.
pub const MARKER_MAX_BYTES: usize = 24 + MARKER_MAX_REASON;
const MARKER_MAX_REASON: usize = 1024;
const MARKER_MAGIC: [u8; 8] = *b"BJKEEPLG";
const MARKER_VERSION: u16 = 1;

/// What the directory's marker says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetentionMarker {
    /// No marker: nothing outside the database was ever set up to read its log.
    Absent,
    /// A valid marker: why the log is kept, and when that was written (µs).
    Present {
        /// Who reads the log.
        reason: String,
        /// When the marker was written.
        written_micros: u64,
    },
    /// A marker exists but cannot be read; it keeps the log all the same.
    Unreadable(String),
}

impl RetentionMarker {
    /// Whether generations must be kept for a reader outside the database.
    pub fn retains(&self) -> bool {
        !matches!(self, Self::Absent)
    }

    /// One sentence for a state's reason.
    pub fn describe(&self) -> String {
        match self {
            Self::Absent => format!("no {RETENTION_MARKER_NAME} marker"),
            Self::Present { reason, .. } => {
                format!("{RETENTION_MARKER_NAME} says the log is read by: {reason}")
            }
            Self::Unreadable(why) => {
                format!("{RETENTION_MARKER_NAME} exists but cannot be read ({why}); it still keeps the log")
            }
        }
    }
}

/// The marker's path in `directory`.
pub fn marker_path(directory: &Path) -> PathBuf {
    directory.join(RETENTION_MARKER_NAME)
}

/// Reads the marker of the database in `directory`.
///
/// ```
/// use bluejet_engine::db::{read_retention_marker, write_retention_marker, RetentionMarker};
/// use bluejet_engine::file::{FileSystem, OsFileSystem};
/// let directory = tempfile::tempdir().unwrap();
/// let fs = OsFileSystem;
/// assert_eq!(read_retention_marker(&fs, directory.path()), RetentionMarker::Absent);
/// write_retention_marker(&fs, directory.path(), "replica /srv/r1").unwrap();
/// assert!(read_retention_marker(&fs, directory.path()).retains());
/// ```
pub fn read_retention_marker(fs: &dyn FileSystem, directory: &Path) -> RetentionMarker {
    let path = marker_path(directory);
    if !fs.exists(&path) {
        return RetentionMarker::Absent;
    }
    match read_bytes(fs, &path) {
        Ok(bytes) => decode(&bytes).unwrap_or_else(RetentionMarker::Unreadable),
        Err(error) => RetentionMarker::Unreadable(error.to_string()),
    }
}

fn read_bytes(fs: &dyn FileSystem, path: &Path) -> std::io::Result<Vec<u8>> {
    let file = fs.open(path, OpenMode::Read)?;
    let length = file.size()?;
    if length > MARKER_MAX_BYTES as u64 {
        return Err(std::io::Error::other(format!(
            "{length} bytes, more than {MARKER_MAX_BYTES}"
        )));
    }
    let mut bytes =
        vec![0u8; usize::try_from(length).expect("checked above: at most MARKER_MAX_BYTES")];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

fn decode(bytes: &[u8]) -> Result<RetentionMarker, String> {
    if bytes.len() < 24 {
        return Err(format!(
            "{} bytes, shorter than its 24-byte header",
            bytes.len()
        ));
    }
    if bytes[4..12] != MARKER_MAGIC {
        return Err("bad magic".into());
    }
    let stored = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if stored != crc32c::crc32c(&bytes[4..]) {
        return Err("bad checksum".into());
    }
    let version = u16::from_le_bytes([bytes[12], bytes[13]]);
    if version != MARKER_VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let length = u16::from_le_bytes([bytes[14], bytes[15]]) as usize;
    if length > MARKER_MAX_REASON || bytes.len() != 24 + length {
        return Err(format!("reason length {length} does not fit the file"));
    }
    let mut time = [0u8; 8];
    time.copy_from_slice(&bytes[16..24]);
    let reason = std::str::from_utf8(&bytes[24..])
        .map_err(|_| "reason is not UTF-8".to_owned())?
        .to_owned();
    Ok(RetentionMarker::Present {
        reason,
        written_micros: u64::from_le_bytes(time),
    })
}

fn encode(reason: &str, written_micros: u64) -> Vec<u8> {
    let mut end = reason.len().min(MARKER_MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut bytes = vec![0u8; 24];
    bytes[4..12].copy_from_slice(&MARKER_MAGIC);
    bytes[12..14].copy_from_slice(&MARKER_VERSION.to_le_bytes());
    bytes[14..16].copy_from_slice(
        &u16::try_from(reason.len())
            .expect("cut above to MARKER_MAX_REASON")
            .to_le_bytes(),
    );
    bytes[16..24].copy_from_slice(&written_micros.to_le_bytes());
    bytes.extend_from_slice(reason);
    let checksum = crc32c::crc32c(&bytes[4..]);
    bytes[0..4].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Writes the marker durably (a temporary file synced, renamed into place, the directory
/// synced), unless a readable one is there already. `directory` must exist.
pub fn write_retention_marker(
    fs: &dyn FileSystem,
    directory: &Path,
    reason: &str,
) -> Result<(), DbError> {
    if matches!(
        read_retention_marker(fs, directory),
        RetentionMarker::Present { .. }
    ) {
        return Ok(());
    }
    let path = marker_path(directory);
    let temporary = directory.join(format!("{RETENTION_MARKER_NAME}.tmp"));
    if fs.exists(&temporary) {
        fs.remove(&temporary)
            .map_err(|error| DbError::io(&temporary, "removing", error))?;
    }
    let bytes = encode(reason, crate::log::now_micros());
    let file = fs
        .open(&temporary, OpenMode::CreateNew)
        .map_err(|error| DbError::io(&temporary, "creating", error))?;
    file.write_at(&bytes, 0)
        .and_then(|()| file.sync_data())
        .map_err(|error| DbError::io(&temporary, "writing", error))?;
    fs.rename(&temporary, &path)
        .map_err(|error| DbError::io(&path, "renaming into place", error))?;
    fs.sync_directory(directory)
        .map_err(|error| DbError::io(directory, "syncing", error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let bytes = encode("replica r1", 7);
        assert_eq!(
            decode(&bytes),
            Ok(RetentionMarker::Present {
                reason: "replica r1".into(),
                written_micros: 7
            })
        );
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x40;
            assert!(decode(&damaged).is_err(), "byte {index}");
        }
        assert!(decode(&bytes[..10]).is_err());
    }

    #[test]
    fn long_reason_is_cut_at_a_character() {
        let reason = "é".repeat(MARKER_MAX_REASON);
        let bytes = encode(&reason, 1);
        assert!(bytes.len() <= MARKER_MAX_BYTES);
        assert!(decode(&bytes).is_ok());
    }
}
