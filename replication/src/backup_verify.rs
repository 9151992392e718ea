//! Verifying a backup directory against its manifest.
//!
//! Every file listed must have its size and crc32c; each generation file must scan as a
//! valid closed generation of the manifest's stream, named for the generation it holds;
//! the generations must be contiguous from the first to the last and each chain to the one
//! before; the database file's header must read, belong to the stream and have the
//! manifest's checkpoint.

use crate::backup_error::BackupError;
use crate::backup_manifest::{checksum_file, BackupFile, BackupKind, Manifest};
use bluejet_engine::db::read_header_copies;
use bluejet_engine::file::{FileSystem, OpenMode};
use bluejet_engine::format::generation_header::GenerationHeader;
use bluejet_engine::format::log_directory::read_image;
use bluejet_engine::format::log_verify::check_chain;
use bluejet_engine::format::scan::{scan, ScanMode};
use bluejet_engine::log::MAX_GENERATION_BYTES;
use bluejet_engine::DATABASE_FILE_NAME;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One thing wrong with a backup file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// The generation, for a generation file.
    pub generation: Option<u32>,
    /// What is wrong.
    pub reason: String,
}

impl Problem {
    /// The problem as an error.
    pub fn into_error(self) -> BackupError {
        BackupError::Damaged {
            path: self.path,
            generation: self.generation,
            reason: self.reason,
        }
    }
}

/// What verification found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// The backup directory.
    pub directory: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Files checked.
    pub files_checked: usize,
    /// Everything wrong (empty: the backup is sound).
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the backup in `directory`. An unreadable manifest is an error; damage to the
/// files it lists is reported in the [`VerifyReport`].
pub fn verify(fs: &dyn FileSystem, directory: &Path) -> Result<VerifyReport, BackupError> {
    let manifest = Manifest::read(fs, directory)?;
    let mut problems = Vec::new();
    check_listing(directory, &manifest, &mut problems);
    let mut previous: Option<(GenerationHeader, u32)> = None;
    for file in &manifest.files {
        let path = directory.join(&file.name);
        let problem = |reason: String| Problem {
            path: path.clone(),
            generation: file.generation,
            reason,
        };
        if let Err(reason) = check_checksum(fs, &path, file) {
            problems.push(problem(reason));
            previous = None;
            continue;
        }
        let checked = match file.generation {
            Some(generation) => {
                check_generation(fs, &path, generation, &manifest, previous.as_ref()).map(Some)
            }
            None => check_database(fs, &path, &manifest).map(|()| None),
        };
        match checked {
            Ok(Some(scanned)) => previous = Some(scanned),
            Ok(None) => {}
            Err(reason) => {
                problems.push(problem(reason));
                previous = None;
            }
        }
    }
    Ok(VerifyReport {
        directory: directory.to_owned(),
        files_checked: manifest.files.len(),
        manifest,
        problems,
    })
}

/// The manifest lists the database (full only) and generations first..=last in order.
fn check_listing(directory: &Path, manifest: &Manifest, problems: &mut Vec<Problem>) {
    let mut problem = |reason: String| {
        problems.push(Problem {
            path: directory.join(crate::backup_manifest::MANIFEST_NAME),
            generation: None,
            reason,
        })
    };
    let databases = manifest
        .files
        .iter()
        .filter(|f| f.generation.is_none())
        .count();
    let expected_databases = usize::from(manifest.kind == BackupKind::Full);
    if databases != expected_databases {
        problem(format!(
            "{databases} database file(s) listed in a {:?} backup",
            manifest.kind
        ));
    }
    let generations: Vec<u32> = manifest.files.iter().filter_map(|f| f.generation).collect();
    let expected: Vec<u32> = match manifest.first_generation.zip(manifest.last_generation) {
        Some((first, last)) => (first..=last).collect(),
        None => Vec::new(),
    };
    if generations != expected {
        problem(format!(
            "generations listed {generations:?} are not the contiguous run {:?}..{:?}",
            manifest.first_generation, manifest.last_generation
        ));
    }
}

/// The file's size and crc32c are the manifest's.
fn check_checksum(fs: &dyn FileSystem, path: &Path, file: &BackupFile) -> Result<(), String> {
    if !fs.exists(path) {
        return Err("missing".into());
    }
    let (bytes, crc) = checksum_file(fs, path).map_err(|error| error.to_string())?;
    if bytes != file.bytes {
        return Err(format!("{bytes} bytes, the manifest says {}", file.bytes));
    }
    if crc != file.crc32c {
        return Err(format!(
            "crc32c {crc:#010x}, the manifest says {:#010x}",
            file.crc32c
        ));
    }
    Ok(())
}

/// A valid closed generation of the manifest's stream, chaining to `previous`.
fn check_generation(
    fs: &dyn FileSystem,
    path: &Path,
    generation: u32,
    manifest: &Manifest,
    previous: Option<&(GenerationHeader, u32)>,
) -> Result<(GenerationHeader, u32), String> {
    let (_, image) = read_image(fs, path, MAX_GENERATION_BYTES).map_err(|e| e.to_string())?;
    let scanned = scan(path, &image, ScanMode::Closed).map_err(|e| e.to_string())?;
    let header = scanned.header;
    if header.generation != generation {
        return Err(format!("holds generation {}", header.generation));
    }
    if header.signature != manifest.signature {
        return Err("belongs to another log stream than the backup's".into());
    }
    if let Some((previous, digest)) = previous {
        check_chain(path, &header, previous, *digest).map_err(|e| e.to_string())?;
    }
    Ok((header, scanned.digest))
}

/// The database file's header reads and matches the manifest.
fn check_database(fs: &dyn FileSystem, path: &Path, manifest: &Manifest) -> Result<(), String> {
    if path
        .file_name()
        .is_none_or(|name| name != DATABASE_FILE_NAME)
    {
        return Err(format!(
            "the database file must be named {DATABASE_FILE_NAME}"
        ));
    }
    let handle = fs
        .open(path, OpenMode::Read)
        .map_err(|error| format!("opening: {error}"))?;
    let read = read_header_copies(&handle, path).map_err(|e| e.to_string())?;
    let header = read.header;
    if header.log_signature != manifest.signature {
        return Err("the database belongs to another log stream than the backup's".into());
    }
    if Some(header.checkpoint) != manifest.database_checkpoint {
        return Err(format!(
            "checkpoint {} in the header, the manifest says {:?}",
            header.checkpoint, manifest.database_checkpoint
        ));
    }
    Ok(())
}
