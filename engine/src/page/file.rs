//! The database file: reading and writing whole pages, growing in extents.

use super::format::{self, PageType};
use crate::db::DbError;
use crate::file::FileHandle;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The file grows by at least this much, so that appending pages rarely changes its size.
const MIN_EXTENT_BYTES: u64 = 1 << 20;
/// ... and by at most this much (or a sixteenth of its size, if less).
const MAX_EXTENT_BYTES: u64 = 64 << 20;

/// An open database file.
pub struct DatabaseFile {
    handle: Arc<dyn FileHandle>,
    path: PathBuf,
    page_size: usize,
    length: AtomicU64,
    /// Serialises growth, so a smaller target never follows a larger one.
    grow: Mutex<()>,
}

impl DatabaseFile {
    /// Wraps an open handle.
    pub fn new(
        handle: Arc<dyn FileHandle>,
        path: &Path,
        page_size: usize,
    ) -> Result<Self, DbError> {
        let length = handle
            .size()
            .map_err(|error| DbError::io(path, "reading the size", error))?;
        Ok(Self {
            handle,
            path: path.to_owned(),
            page_size,
            length: AtomicU64::new(length),
            grow: Mutex::new(()),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The file length in bytes.
    pub fn length(&self) -> u64 {
        self.length.load(Ordering::Acquire)
    }

    /// Pages the file holds, whole or not.
    pub fn page_count(&self) -> u64 {
        self.length().div_ceil(self.page_size as u64)
    }

    /// Reads page `number` without checking it.
    pub fn read_raw(&self, number: u64) -> Result<Box<[u8]>, DbError> {
        if number >= format::MAX_PAGE_NUMBER {
            return Err(DbError::Corruption {
                path: self.path.clone(),
                page: number,
                problem: format::PageProblem::Malformed("a page number beyond any file".into()),
            });
        }
        let mut page = vec![0u8; self.page_size].into_boxed_slice();
        let offset = number * self.page_size as u64;
        if offset + self.page_size as u64 > self.length() {
            return Err(DbError::Truncated {
                path: self.path.clone(),
                length: self.length(),
                needed: offset + self.page_size as u64,
            });
        }
        self.handle
            .read_exact_at(&mut page, offset)
            .map_err(|error| DbError::io(&self.path, "reading a page", error))?;
        Ok(page)
    }

    /// Reads page `number` and checks its checksum, number and type.
    pub fn read_page(&self, number: u64) -> Result<(Box<[u8]>, PageType), DbError> {
        let page = self.read_raw(number)?;
        match format::verify(&page, number) {
            Ok(page_type) => Ok((page, page_type)),
            Err(problem) => Err(DbError::Corruption {
                path: self.path.clone(),
                page: number,
                problem,
            }),
        }
    }

    /// Writes a sealed page at its number, growing the file first if needed.
    pub fn write_page(&self, number: u64, page: &[u8]) -> Result<(), DbError> {
        assert_eq!(page.len(), self.page_size);
        assert!(number < format::MAX_PAGE_NUMBER, "write of page {number}");
        debug_assert!(
            format::verify(page, number).is_ok(),
            "page {number} not sealed"
        );
        let end = (number + 1) * self.page_size as u64;
        self.ensure_length(end)?;
        self.handle
            .write_at(page, number * self.page_size as u64)
            .map_err(|error| DbError::io(&self.path, "writing a page", error))
    }

    /// Writes raw bytes at `offset` (the header copies).
    pub fn write_at(&self, data: &[u8], offset: u64) -> Result<(), DbError> {
        self.ensure_length(offset + data.len() as u64)?;
        self.handle
            .write_at(data, offset)
            .map_err(|error| DbError::io(&self.path, "writing the header", error))
    }

    /// Reads raw bytes at `offset`; short files read as zeros past their end.
    pub fn read_at(&self, buffer: &mut [u8], offset: u64) -> Result<(), DbError> {
        buffer.fill(0);
        let mut done = 0;
        while done < buffer.len() {
            let count = self
                .handle
                .read_at(&mut buffer[done..], offset + done as u64)
                .map_err(|error| DbError::io(&self.path, "reading", error))?;
            if count == 0 {
                break;
            }
            done += count;
        }
        Ok(())
    }

    /// Makes the file at least `pages` pages long.
    pub fn ensure_pages(&self, pages: u64) -> Result<(), DbError> {
        self.ensure_length(pages * self.page_size as u64)
    }

    /// Grows the file in extents (a sixteenth of its size, from 1 MiB to 64 MiB) to cover `end`.
    fn ensure_length(&self, end: u64) -> Result<(), DbError> {
        if end <= self.length() {
            return Ok(());
        }
        let _growing = self.grow.lock();
        let length = self.length();
        if end <= length {
            return Ok(());
        }
        let extent = MIN_EXTENT_BYTES.max((length / 16).min(MAX_EXTENT_BYTES));
        let target = end
            .max(length + extent)
            .next_multiple_of(self.page_size as u64);
        self.handle
            .set_len(target)
            .map_err(|error| DbError::io(&self.path, "growing the file", error))?;
        self.length.store(target, Ordering::Release);
        Ok(())
    }

    /// Makes everything written durable. An error is fatal for the database.
    pub fn sync(&self) -> Result<(), DbError> {
        self.handle
            .sync_data()
            .map_err(|error| DbError::io(&self.path, "syncing", error))
    }
}
