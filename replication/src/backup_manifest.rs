//! The backup manifest `backup.json`, and copying files into a backup with their checksum.
//!
//! A backup directory holds `bluejet.db` (full backups only), the generation files it
//! includes (`E0000000007.log`), and `backup.json`, a sealed JSON file (see [`crate::sealed`])
//! written last: a directory without a valid manifest is not a backup.

use crate::backup_error::BackupError;
use crate::file_name::{
    check_base_name, check_database_name, check_generation_name, path_in, BadFileName,
};
use crate::sealed;
use bluejet_engine::file::{FileSystem, OpenMode};
use bluejet_engine::log::StreamSignature;
use bluejet_engine::ContentSummary;
use bluejet_engine::LogPosition;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest's file name.
pub const MANIFEST_NAME: &str = "backup.json";
/// The manifest format version (inside the sealed envelope's own version).
pub const BACKUP_FORMAT: u32 = 1;
/// Bytes copied per read.
const COPY_CHUNK: usize = 1 << 20;

/// Full (database and the generations it needs) or incremental (generations only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// The database file and the generations from its checkpoint on.
    Full,
    /// The generations after the previous backup.
    Incremental,
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// File name in the backup directory.
    pub name: String,
    /// The generation it holds (`None` for the database file).
    pub generation: Option<u32>,
    /// Size in bytes.
    pub bytes: u64,
    /// crc32c of the whole file.
    pub crc32c: u32,
}

/// The backup an incremental follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseBackup {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: BackupKind,
    /// The last generation it covers.
    pub covers_through: u32,
    /// Its content position.
    pub position: LogPosition,
}

/// The content of `backup.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`BACKUP_FORMAT`].
    pub format: u32,
    /// Unique id: `full-` or `incremental-` and the creation time in µs.
    pub id: String,
    /// Full or incremental.
    pub kind: BackupKind,
    /// The log stream backed up.
    pub signature: StreamSignature,
    /// The stream's base name (`E00`).
    pub base_name: String,
    /// The timeline of the newest generation included.
    pub timeline: u64,
    /// Full: the database file's checkpoint (replay of the backup starts there).
    pub database_checkpoint: Option<LogPosition>,
    /// The log position the content corresponds to once every generation is replayed.
    pub position: LogPosition,
    /// First generation included (`None`: none).
    pub first_generation: Option<u32>,
    /// Last generation included (`None`: none).
    pub last_generation: Option<u32>,
    /// Every file but the manifest.
    pub files: Vec<BackupFile>,
    /// When the backup was taken (µs since the Unix epoch).
    pub created_micros: u64,
    /// The replica it was taken from.
    pub source: PathBuf,
    /// Incremental: the backup it follows.
    pub base: Option<BaseBackup>,
    /// The content at `position`: every table's entries and content checksum (a full
    /// backup's was recounted from every entry when it was taken). A restore that replays
    /// to `position` checks what it rebuilt against it.
    #[serde(default)]
    pub content: Option<ContentSummary>,
}

impl Manifest {
    /// The newest generation whose content this backup (with its bases) restores: its last
    /// generation, or for a full backup without generations the one before its checkpoint.
    pub fn covers_through(&self) -> u32 {
        let before_checkpoint = self
            .database_checkpoint
            .map_or(0, |c| c.generation.saturating_sub(1));
        let base = self.base.as_ref().map_or(0, |b| b.covers_through);
        self.last_generation
            .unwrap_or(0)
            .max(before_checkpoint)
            .max(base)
    }

    /// This backup as the base of the next incremental.
    pub fn as_base(&self) -> BaseBackup {
        BaseBackup {
            id: self.id.clone(),
            kind: self.kind,
            covers_through: self.covers_through(),
            position: self.position,
        }
    }

    /// Reads the manifest of the backup in `directory`; `Damaged` if missing or damaged.
    pub fn read(fs: &dyn FileSystem, directory: &Path) -> Result<Self, BackupError> {
        let path = directory.join(MANIFEST_NAME);
        let damaged = |reason: String| BackupError::Damaged {
            path: path.clone(),
            generation: None,
            reason,
        };
        let manifest: Self = sealed::read(fs, &path)
            .map_err(|error| damaged(error.to_string()))?
            .ok_or_else(|| {
                damaged("no manifest: not a backup, or a backup that did not complete".into())
            })?;
        if manifest.format != BACKUP_FORMAT {
            return Err(damaged(format!(
                "backup format {}, expected {BACKUP_FORMAT}",
                manifest.format
            )));
        }
        manifest.check_names(&path)?;
        Ok(manifest)
    }

    /// Every name the manifest (read from `path`) gives is one its format allows: the base
    /// name, `bluejet.db` for the database file, and each generation's own name.
    fn check_names(&self, path: &Path) -> Result<(), BadFileName> {
        let base = check_base_name(path, &self.base_name)?;
        for file in &self.files {
            match file.generation {
                Some(generation) => check_generation_name(path, &file.name, base, generation)?,
                None => check_database_name(path, &file.name)?,
            }
        }
        Ok(())
    }

    /// Writes the manifest into `directory` (atomically, synced).
    pub fn write(&self, fs: &dyn FileSystem, directory: &Path) -> Result<(), BackupError> {
        Ok(sealed::write(fs, &directory.join(MANIFEST_NAME), self)?)
    }
}

/// Copies `source` to the temporary name of `target` and syncs it; returns the size and
/// crc32c of what was copied. [`sealed::publish`] then renames it.
pub fn copy_to_temporary(
    fs: &dyn FileSystem,
    source: &Path,
    target: &Path,
) -> Result<(u64, u32), BackupError> {
    let temporary = sealed::temporary_path(target);
    if fs.exists(&temporary) {
        fs.remove(&temporary)
            .map_err(|error| BackupError::io(&temporary, "removing", error))?;
    }
    let output = fs
        .open(&temporary, OpenMode::CreateNew)
        .map_err(|error| BackupError::io(&temporary, "creating", error))?;
    let copied = read_chunks(fs, source, &mut |chunk, offset| {
        output
            .write_at(chunk, offset)
            .map_err(|error| BackupError::io(&temporary, "writing", error))
    })?;
    output
        .sync_data()
        .map_err(|error| BackupError::io(&temporary, "syncing", error))?;
    Ok(copied)
}

/// The size and crc32c of the file at `path`, read in chunks.
pub fn checksum_file(fs: &dyn FileSystem, path: &Path) -> Result<(u64, u32), BackupError> {
    read_chunks(fs, path, &mut |_, _| Ok(()))
}

/// What receives each chunk read, with its offset.
type ChunkSink<'a> = dyn FnMut(&[u8], u64) -> Result<(), BackupError> + 'a;

/// Reads the file at `path` in chunks, handing each to `each` with its offset; returns the
/// size and crc32c of the whole file.
fn read_chunks(
    fs: &dyn FileSystem,
    path: &Path,
    each: &mut ChunkSink<'_>,
) -> Result<(u64, u32), BackupError> {
    let input = fs
        .open(path, OpenMode::Read)
        .map_err(|error| BackupError::io(path, "opening", error))?;
    let length = input
        .size()
        .map_err(|error| BackupError::io(path, "reading the size of", error))?;
    let mut crc = 0u32;
    let mut buffer = vec![0u8; COPY_CHUNK];
    let mut offset = 0u64;
    while offset < length {
        let chunk = &mut buffer[..usize::try_from((length - offset).min(COPY_CHUNK as u64))
            .expect("at most COPY_CHUNK")];
        input
            .read_exact_at(chunk, offset)
            .map_err(|error| BackupError::io(path, "reading", error))?;
        each(chunk, offset)?;
        crc = crc32c::crc32c_append(crc, chunk);
        offset += chunk.len() as u64;
    }
    Ok((length, crc))
}

/// Copies each `(source, name)` into `directory` under a temporary name, then renames them
/// all and syncs the directory once; returns their manifest entries.
pub fn copy_files(
    fs: &dyn FileSystem,
    directory: &Path,
    sources: &[(PathBuf, String, Option<u32>)],
) -> Result<Vec<BackupFile>, BackupError> {
    let mut files = Vec::new();
    let mut renames = Vec::new();
    for (source, name, generation) in sources {
        // Names come from a verified manifest or a replica's listing; checked again here,
        // where they become files to write, so none can land outside `directory`.
        let target = path_in(directory, name)?;
        let (bytes, crc32c) = copy_to_temporary(fs, source, &target)?;
        renames.push((sealed::temporary_path(&target), target));
        files.push(BackupFile {
            name: name.clone(),
            generation: *generation,
            bytes,
            crc32c,
        });
    }
    sealed::publish(fs, &renames)?;
    Ok(files)
}
