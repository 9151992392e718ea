//! Which pages are free, which wait to become free, and where the file ends.
//!
//! A page a transaction stops using is *retired* with that transaction's version. It becomes
//! free only when nothing can still read it: no reader snapshot older than the version, and
//! neither header copy (the newest and the fallback) describing a state older than it. So a
//! damaged newest header always falls back to a state whose pages are intact.

use std::collections::{BTreeSet, VecDeque};

/// The allocator state, guarded by the writer lock.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    /// Pages free now, lowest first (reusing low pages keeps the file compact).
    pub free: BTreeSet<u64>,
    /// Retired pages with the version that retired them, oldest first.
    pub retired: VecDeque<(u64, u64)>,
    /// The first page never allocated.
    pub next_page: u64,
    /// The pages holding the free list written by the last checkpoint.
    pub free_list_pages: Vec<u64>,
    /// State version of the older of the two header copies.
    pub older_header_version: u64,
}

impl Allocator {
    /// A page to write: the lowest free one, else a new one at the end.
    pub fn allocate(&mut self) -> u64 {
        if let Some(page) = self.free.pop_first() {
            return page;
        }
        let page = self.next_page;
        self.next_page += 1;
        page
    }

    /// Returns a page nothing committed ever referenced (allocated and dropped by one
    /// transaction).
    pub fn release(&mut self, page: u64) {
        assert!(page < self.next_page, "release of page {page} past the end");
        let fresh = self.free.insert(page);
        assert!(fresh, "page {page} released twice");
    }

    /// Retires a page that committed state referenced, as of `version`.
    pub fn retire(&mut self, version: u64, page: u64) {
        debug_assert!(self.retired.back().is_none_or(|&(last, _)| last <= version));
        self.retired.push_back((version, page));
    }

    /// Frees the retired pages no header copy and no reader can still reach.
    /// `oldest_reader` is the version of the oldest live snapshot.
    pub fn reclaim(&mut self, oldest_reader: Option<u64>) {
        let horizon = oldest_reader.map_or(self.older_header_version, |reader| {
            reader.min(self.older_header_version)
        });
        while let Some(&(version, page)) = self.retired.front() {
            if version > horizon {
                break;
            }
            self.retired.pop_front();
            let fresh = self.free.insert(page);
            assert!(fresh, "retired page {page} was already free");
        }
    }

    /// Pages in use: allocated and neither free nor retired.
    pub fn used_pages(&self, first_data_page: u64) -> u64 {
        self.next_page - first_data_page - self.free.len() as u64 - self.retired.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_page_waits_for_both_headers_and_every_reader() {
        let mut allocator = Allocator {
            next_page: 10,
            ..Allocator::default()
        };
        assert_eq!(allocator.allocate(), 10);
        allocator.retire(5, 3);
        allocator.reclaim(None);
        assert!(allocator.free.is_empty(), "no header is at version 5 yet");
        allocator.older_header_version = 5;
        allocator.reclaim(Some(4));
        assert!(
            allocator.free.is_empty(),
            "a reader at version 4 may read page 3"
        );
        allocator.reclaim(Some(5));
        assert_eq!(allocator.allocate(), 3);
    }
}
