//! The page store: the database file behind the page cache.

use super::cache::{PageBytes, PageCache};
use super::file::DatabaseFile;
use super::format::{self, PageProblem, PageType, PAGE_HEADER_BYTES};
use crate::db::DbError;
use crate::log::Log;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a page written back must wait for: the write-ahead rule.
pub enum WriteAhead {
    /// The page's change must be durable in this log first.
    Log(Arc<Log>),
    /// Every change comes from a log that is already durable (a passive copy replaying
    /// shipped generations): pages may be written at any time.
    Replayed,
    /// Nothing may be written back (inspection, or a closed log).
    ReadOnly,
}

/// Pages by number: cached, checked when read, written back under the write-ahead rule.
pub struct PageStore {
    file: DatabaseFile,
    cache: PageCache,
    write_ahead: WriteAhead,
    checksum_errors: AtomicU64,
}

impl PageStore {
    /// A store over `file` with a cache of `cache_bytes`, writing back under `write_ahead`.
    pub fn new(file: DatabaseFile, cache_bytes: usize, write_ahead: WriteAhead) -> Self {
        let cache = PageCache::new(cache_bytes, file.page_size());
        Self {
            file,
            cache,
            write_ahead,
            checksum_errors: AtomicU64::new(0),
        }
    }

    /// The file.
    pub fn file(&self) -> &DatabaseFile {
        &self.file
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.file.page_size()
    }

    /// Checksum errors seen since open.
    pub fn checksum_errors(&self) -> u64 {
        self.checksum_errors.load(Ordering::Relaxed)
    }

    /// A page: from the cache, or read from the file and checked.
    pub fn page(&self, number: u64) -> Result<PageBytes, DbError> {
        if let Some(page) = self.cache.get(number) {
            return Ok(page);
        }
        let page: PageBytes = Arc::from(self.read_checked(number)?);
        self.cache
            .insert_clean(number, Arc::clone(&page), &|number, page| {
                self.write_back(number, page)
            })?;
        Ok(page)
    }

    /// Reads a page from the file (not the cache) and checks checksum, number and structure.
    pub fn read_checked(&self, number: u64) -> Result<Box<[u8]>, DbError> {
        let result = self.file.read_page(number).and_then(|(page, page_type)| {
            validate(&page, page_type).map_err(|problem| DbError::Corruption {
                path: self.file.path().to_owned(),
                page: number,
                problem,
            })?;
            Ok(page)
        });
        if let Err(DbError::Corruption { .. }) = &result {
            self.checksum_errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Puts a page a transaction committed into the cache; it reaches the file at eviction
    /// or at the next checkpoint.
    /// A zeroed page buffer to encode a page into (recycled when the cache has one).
    pub fn blank_page(&self) -> PageBytes {
        self.cache.blank()
    }

    /// Caches a committed page (unwritten until a checkpoint or an eviction writes it).
    pub fn commit_page(&self, number: u64, page: impl Into<PageBytes>) -> Result<(), DbError> {
        let page: PageBytes = page.into();
        debug_assert!(format::verify(&page, number).is_ok());
        self.cache
            .insert_unwritten(number, page, &|number, page| self.write_back(number, page))
    }

    /// Caches a page of a transaction that has not committed yet (a long value streamed
    /// from a reader, whose pages cannot all wait in memory): sealed with the position of
    /// records already appended, it is written back like a committed page, but nothing
    /// reaches it until the transaction commits. If the transaction does not keep it,
    /// [`PageStore::discard`] drops it.
    pub fn stage_page(&self, number: u64, page: impl Into<PageBytes>) -> Result<(), DbError> {
        self.commit_page(number, page)
    }

    /// Drops a staged page the transaction did not keep: an unwritten copy must not be
    /// written over the page once it is free and reused (written or not, the page is
    /// unreachable).
    pub fn discard(&self, number: u64) {
        self.cache.discard(number);
    }

    /// Writes an unwritten page: its change must be in the durable log first.
    fn write_back(&self, number: u64, page: &[u8]) -> Result<(), DbError> {
        match &self.write_ahead {
            WriteAhead::Log(log) => log.wait_durable(format::lsn(page))?,
            WriteAhead::Replayed => {}
            WriteAhead::ReadOnly => {
                return Err(DbError::ReadOnly {
                    what: "an unwritten page without a log to write it under",
                })
            }
        }
        self.file.write_page(number, page)
    }

    /// Writes every unwritten page to the file (not synced); returns how many.
    pub fn write_unwritten(&self) -> Result<usize, DbError> {
        let pages = self.cache.unwritten();
        let newest = pages.iter().map(|(_, p)| format::lsn(p)).max();
        match (&self.write_ahead, newest) {
            (WriteAhead::Log(log), Some(newest)) => log.wait_durable(newest)?,
            (WriteAhead::ReadOnly, Some(_)) => {
                return Err(DbError::ReadOnly {
                    what: "unwritten pages without a log to write them under",
                })
            }
            _ => {}
        }
        let mut written = 0;
        for (number, page) in &pages {
            let write = |number: u64, page: &[u8]| self.file.write_page(number, page);
            written += self.cache.write_if_current(*number, page, &write)? as usize;
        }
        Ok(written)
    }

    /// Pages in the cache.
    pub fn cached_pages(&self) -> usize {
        self.cache.cached_pages()
    }
}

/// Checks the structure of a page whose checksum verified.
pub fn validate(page: &[u8], page_type: PageType) -> Result<(), PageProblem> {
    let result = match page_type {
        PageType::Leaf | PageType::Branch => crate::btree::view::validate(page),
        PageType::LongValue => {
            let length = format::read_u32(page, PAGE_HEADER_BYTES) as usize;
            if PAGE_HEADER_BYTES + 4 + length > page.len() {
                Err(format!("long-value data of {length} bytes does not fit"))
            } else {
                Ok(())
            }
        }
        PageType::FreeList => {
            let count = format::count(page) as usize;
            if PAGE_HEADER_BYTES + 8 * count > page.len() {
                Err(format!("{count} free-list entries do not fit"))
            } else {
                Ok(())
            }
        }
    };
    result.map_err(PageProblem::Malformed)
}

impl PageStore {
    /// A leaf or branch page; any other type is damage.
    pub fn tree_page(&self, number: u64) -> Result<PageBytes, DbError> {
        let page = self.page(number)?;
        match format::page_type(&page) {
            Some(PageType::Leaf | PageType::Branch) => Ok(page),
            other => Err(DbError::Corruption {
                path: self.file.path().to_owned(),
                page: number,
                problem: PageProblem::Malformed(format!("expected a tree page, found {other:?}")),
            }),
        }
    }

    /// A corruption error about `page`.
    pub fn corrupt(&self, page: u64, reason: &str) -> DbError {
        DbError::Corruption {
            path: self.file.path().to_owned(),
            page,
            problem: PageProblem::Malformed(reason.to_owned()),
        }
    }

    /// The error for a tree deeper than any real one (a loop through damaged pages).
    pub fn too_deep(&self, page: u64) -> DbError {
        DbError::Corruption {
            path: self.file.path().to_owned(),
            page,
            problem: PageProblem::Malformed(format!(
                "tree deeper than {} levels",
                crate::btree::MAX_DEPTH
            )),
        }
    }

    /// Detaches the log (at close, once nothing is unwritten).
    pub fn take_log(&mut self) -> Option<Arc<Log>> {
        match std::mem::replace(&mut self.write_ahead, WriteAhead::ReadOnly) {
            WriteAhead::Log(log) => Some(log),
            _ => None,
        }
    }
}
