//! Which pages are free, which wait to become free, and where the file ends.
//!
//! A page a transaction stops using is *retired* with that transaction's version. It becomes
//! free only when nothing can still read it: no reader snapshot older than the version, and
//! neither header copy (the newest and the fallback) describing a state older than it. So a
//! damaged newest header always falls back to a state whose pages are intact. A page
//! allocated since the last checkpoint began is in no header's state: retired, it waits for
//! readers only, so a stream of small commits reuses its own pages between checkpoints.

use rustc_hash::FxHashSet;
use std::collections::{BTreeSet, VecDeque};

/// The allocator state, guarded by the writer lock.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    /// Pages free now, lowest first (reusing low pages keeps the file compact).
    pub free: BTreeSet<u64>,
    /// Retired pages with the version that retired them, oldest first.
    pub retired: VecDeque<(u64, u64)>,
    /// Pages allocated since the last checkpoint began (in no header's state).
    pub fresh: FxHashSet<u64>,
    /// Fresh pages retired, with their version, oldest first: they wait for readers only.
    pub fresh_retired: VecDeque<(u64, u64)>,
    /// The first page never allocated.
    pub next_page: u64,
    /// State version of the older of the two header copies.
    pub older_header_version: u64,
}

impl Allocator {
    /// A page to write: the lowest free one, else a new one at the end.
    pub fn allocate(&mut self) -> u64 {
        let page = match self.free.pop_first() {
            Some(page) => page,
            None => {
                self.next_page += 1;
                self.next_page - 1
            }
        };
        self.fresh.insert(page);
        page
    }

    /// Returns a page nothing committed ever referenced (allocated and dropped by one
    /// transaction).
    pub fn release(&mut self, page: u64) {
        assert!(page < self.next_page, "release of page {page} past the end");
        self.fresh.remove(&page);
        let fresh = self.free.insert(page);
        debug_assert!(fresh, "page {page} released twice");
    }

    /// Retires a page that committed state referenced, as of `version`.
    pub fn retire(&mut self, version: u64, page: u64) {
        let queue = if self.fresh.remove(&page) {
            &mut self.fresh_retired
        } else {
            &mut self.retired
        };
        debug_assert!(queue.back().is_none_or(|&(last, _)| last <= version));
        queue.push_back((version, page));
    }

    /// Frees the retired pages no header copy and no reader can still reach.
    /// `oldest_reader` is the version of the oldest live snapshot.
    pub fn reclaim(&mut self, oldest_reader: Option<u64>) {
        let readers = oldest_reader.unwrap_or(u64::MAX);
        let horizon = readers.min(self.older_header_version);
        Self::free_up_to(&mut self.retired, &mut self.free, horizon);
        Self::free_up_to(&mut self.fresh_retired, &mut self.free, readers);
    }

    fn free_up_to(queue: &mut VecDeque<(u64, u64)>, free: &mut BTreeSet<u64>, horizon: u64) {
        while let Some(&(version, page)) = queue.front() {
            if version > horizon {
                break;
            }
            queue.pop_front();
            // A page retired twice can only come from a damaged tree (a page reached by two
            // paths); freeing it once is all that can be done.
            free.insert(page);
        }
    }

    /// A checkpoint begins: pages allocated so far may be in the state it writes.
    pub fn checkpoint_begins(&mut self) {
        self.fresh.clear();
    }

    /// Every retired page, fresh or not.
    pub fn all_retired(&self) -> Vec<u64> {
        self.retired
            .iter()
            .chain(&self.fresh_retired)
            .map(|&(_, page)| page)
            .collect()
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
        allocator.checkpoint_begins();
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

    #[test]
    fn a_page_allocated_since_the_checkpoint_waits_for_readers_only() {
        let mut allocator = Allocator {
            next_page: 10,
            ..Allocator::default()
        };
        let page = allocator.allocate();
        allocator.retire(7, page);
        allocator.reclaim(Some(6));
        assert!(
            allocator.free.is_empty(),
            "a reader at version 6 may read it"
        );
        allocator.reclaim(Some(7));
        assert_eq!(allocator.allocate(), page);
    }
}
