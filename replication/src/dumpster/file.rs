//! The dumpster's record file: created whole, appended and synced, read back up to the first
//! bad record, and compacted by rewriting under a temporary name.

use super::format::{self, Record, FRAME_BYTES, HEADER_BYTES};
use crate::error::ReplError;
use crate::private_files::create_directory_durably;
use crate::sealed;
use bluejet_engine::file::{FileHandle, FileSystem, OpenMode};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The open file and where the next record goes.
pub struct RecordFile {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    file: Arc<dyn FileHandle>,
    end: u64,
}

/// What reading the file found.
pub struct Loaded {
    /// The file, positioned after the last good record.
    pub file: RecordFile,
    /// The good records, in order.
    pub records: Vec<Record>,
    /// Bytes after the last good record (a torn or damaged tail), now truncated away.
    pub ignored_tail_bytes: u64,
}

impl RecordFile {
    /// Opens the file in `directory`, creating the directory and the file if needed.
    pub fn open(fs: Arc<dyn FileSystem>, directory: &Path) -> Result<Loaded, ReplError> {
        create_directory_durably(fs.as_ref(), directory)?;
        let path = directory.join(format::DUMPSTER_FILE_NAME);
        let temporary = sealed::temporary_path(&path);
        if fs.exists(&temporary) {
            fs.remove(&temporary)
                .map_err(|error| ReplError::io(&temporary, "removing", error))?;
        }
        if !fs.exists(&path) {
            sealed::write_file_atomically(fs.as_ref(), &path, &format::header())?;
        }
        let file = fs
            .open(&path, OpenMode::ReadWrite)
            .map_err(|error| ReplError::io(&path, "opening", error))?;
        let mut file = RecordFile {
            fs,
            path,
            file,
            end: 0,
        };
        let (records, ignored_tail_bytes) = file.load()?;
        Ok(Loaded {
            file,
            records,
            ignored_tail_bytes,
        })
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// Reads the header and every good record; truncates a bad tail.
    fn load(&mut self) -> Result<(Vec<Record>, u64), ReplError> {
        let length = self.io(self.file.size(), "reading the size of")?;
        let mut header = [0; HEADER_BYTES];
        let read = self.file.read_exact_at(&mut header, 0);
        if let Err(reason) = read
            .map_err(|e| e.to_string())
            .and_then(|()| format::check_header(&header))
        {
            return Err(self.bad(reason));
        }
        let mut records = Vec::new();
        let mut position = HEADER_BYTES as u64;
        while let Some((record, next)) = self.read_record(position, length) {
            records.push(record);
            position = next;
        }
        self.end = position;
        let ignored = length - position;
        if ignored > 0 {
            self.truncate(position)?;
        }
        Ok((records, ignored))
    }

    /// The record at `position` and the position after it; `None` at the end or at the
    /// first torn or damaged record.
    fn read_record(&self, position: u64, length: u64) -> Option<(Record, u64)> {
        if length.saturating_sub(position) < FRAME_BYTES as u64 {
            return None;
        }
        let mut frame = [0; FRAME_BYTES];
        self.file.read_exact_at(&mut frame, position).ok()?;
        let size = format::frame_length(&frame).ok()?;
        let start = position + FRAME_BYTES as u64;
        if length - start < size as u64 {
            return None;
        }
        let mut body = vec![0; size];
        self.file.read_exact_at(&mut body, start).ok()?;
        let record = format::decode(&frame, &body).ok()?;
        Some((record, start + size as u64))
    }

    fn truncate(&mut self, length: u64) -> Result<(), ReplError> {
        self.io(self.file.set_len(length), "truncating")?;
        self.io(self.file.sync_data(), "syncing")?;
        self.end = length;
        Ok(())
    }

    /// Appends `records` and syncs the file. On failure the file is cut back to its previous
    /// end (best effort; a partial record left behind is a torn tail on reload).
    pub fn append(&mut self, records: &[Record]) -> Result<(), ReplError> {
        let mut bytes = Vec::new();
        for record in records {
            format::encode(record, &mut bytes);
        }
        let written = self
            .file
            .write_at(&bytes, self.end)
            .and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            if let Err(cut) = self.file.set_len(self.end) {
                tracing::warn!(path = %self.path.display(), error = %cut, "cutting a failed append");
            }
            return Err(ReplError::io(&self.path, "appending to", error));
        }
        self.end += bytes.len() as u64;
        Ok(())
    }

    /// Replaces the file by one holding `records`: written under a temporary name, synced,
    /// renamed over the file, and the directory synced.
    pub fn rewrite(&mut self, records: &[Record]) -> Result<(), ReplError> {
        let mut bytes = format::header().to_vec();
        for record in records {
            format::encode(record, &mut bytes);
        }
        sealed::write_file_atomically(self.fs.as_ref(), &self.path, &bytes)?;
        let file = self.fs.open(&self.path, OpenMode::ReadWrite);
        self.file = self.io(file, "reopening")?;
        self.end = bytes.len() as u64;
        Ok(())
    }

    fn io<T>(&self, result: std::io::Result<T>, operation: &'static str) -> Result<T, ReplError> {
        result.map_err(|error| ReplError::io(&self.path, operation, error))
    }

    fn bad(&self, reason: String) -> ReplError {
        ReplError::BadReplicaFile {
            path: self.path.clone(),
            reason,
        }
    }
}
