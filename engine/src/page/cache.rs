//! The page cache: committed pages by number, bounded, with clock eviction.
//!
//! Pages in the cache are immutable: a change copies the page to a new number (copy on
//! write), so a reader holding a page never sees it change. A page committed but not yet in
//! the file is *unwritten*; evicting it writes it first (the caller's write-back honours the
//! write-ahead rule). Memory: at most `capacity` bytes of pages plus one page per shard in
//! flight, plus up to [`SPARE_PAGES`] page buffers kept for reuse.
//!
//! Pages that leave the cache with nobody else holding them are kept (up to
//! [`SPARE_PAGES`]) and handed out again by [`PageCache::blank`]: a commit then encodes its
//! pages into recycled buffers instead of allocating and freeing 8 KiB per page, which with
//! many committing threads is a malloc arena handing memory between threads.

use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry::{Occupied, Vacant};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const SHARDS: usize = 16;

/// Page buffers kept for reuse (2 MiB at the default page size).
pub const SPARE_PAGES: usize = 256;

/// One cached page: its bytes, already checked or sealed.
pub type PageBytes = Arc<[u8]>;

struct Entry {
    page: PageBytes,
    /// Set by readers (under the shared lock), cleared by the clock.
    referenced: AtomicBool,
    unwritten: bool,
}

#[derive(Default)]
struct Shard {
    map: FxHashMap<u64, Entry>,
    clock: VecDeque<u64>,
}

/// A bounded cache of pages.
pub struct PageCache {
    shards: Vec<RwLock<Shard>>,
    pages_per_shard: usize,
    page_size: usize,
    spare: Mutex<Vec<PageBytes>>,
}

/// Writes an unwritten page back before it leaves the cache.
pub type WriteBack<'a> = &'a dyn Fn(u64, &[u8]) -> Result<(), crate::db::DbError>;

impl PageCache {
    /// A cache of about `capacity_bytes` of pages of `page_size`.
    pub fn new(capacity_bytes: usize, page_size: usize) -> Self {
        let pages = (capacity_bytes / page_size).max(SHARDS * 4);
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            pages_per_shard: pages / SHARDS,
            page_size,
            spare: Mutex::new(Vec::new()),
        }
    }

    /// A zeroed page buffer nobody else holds: a recycled one if any, else a new one.
    pub fn blank(&self) -> PageBytes {
        let recycled = self.spare.lock().pop();
        match recycled {
            Some(mut page) => {
                Arc::get_mut(&mut page)
                    .expect("a spare page has one owner")
                    .fill(0);
                page
            }
            None => std::iter::repeat_n(0u8, self.page_size).collect(),
        }
    }

    /// Keeps a page that left the cache for reuse, if nobody else holds it.
    fn recycle(&self, mut page: PageBytes) {
        if page.len() != self.page_size || Arc::get_mut(&mut page).is_none() {
            return;
        }
        let mut spare = self.spare.lock();
        if spare.len() < SPARE_PAGES {
            spare.push(page);
        }
    }

    fn shard(&self, number: u64) -> &RwLock<Shard> {
        // Consecutive pages spread over the shards.
        &self.shards[usize::try_from(number % SHARDS as u64).expect("below SHARDS")]
    }

    /// The cached page, if any.
    pub fn get(&self, number: u64) -> Option<PageBytes> {
        // Readers share the lock: a page number's hash (FxHash: page numbers need no
        // protection from crafted collisions) and an atomic flag, no exclusive section.
        let shard = self.shard(number).read();
        let entry = shard.map.get(&number)?;
        entry.referenced.store(true, Ordering::Relaxed);
        Some(Arc::clone(&entry.page))
    }

    /// Caches a page read from the file (clean).
    pub fn insert_clean(
        &self,
        number: u64,
        page: PageBytes,
        write_back: WriteBack<'_>,
    ) -> Result<(), crate::db::DbError> {
        self.insert(number, page, false, write_back)
    }

    /// Caches a committed page not yet in the file.
    pub fn insert_unwritten(
        &self,
        number: u64,
        page: PageBytes,
        write_back: WriteBack<'_>,
    ) -> Result<(), crate::db::DbError> {
        self.insert(number, page, true, write_back)
    }

    fn insert(
        &self,
        number: u64,
        page: PageBytes,
        unwritten: bool,
        write_back: WriteBack<'_>,
    ) -> Result<(), crate::db::DbError> {
        let mut shard = self.shard(number).write();
        let entry = Entry {
            page,
            referenced: AtomicBool::new(true),
            unwritten,
        };
        match shard.map.entry(number) {
            // A committed copy replaces what is cached; a copy read from the file never
            // replaces one already cached (which is at least as new).
            Occupied(mut occupied) if unwritten => {
                let replaced = occupied.insert(entry);
                self.recycle(replaced.page);
            }
            Occupied(occupied) => occupied.get().referenced.store(true, Ordering::Relaxed),
            Vacant(vacant) => {
                vacant.insert(entry);
                shard.clock.push_back(number);
            }
        }
        self.evict(&mut shard, write_back)
    }

    /// Evicts with the clock until the shard is within its bound.
    fn evict(
        &self,
        shard: &mut Shard,
        write_back: WriteBack<'_>,
    ) -> Result<(), crate::db::DbError> {
        let mut turns = shard.clock.len() * 2 + 1;
        while shard.map.len() > self.pages_per_shard && turns > 0 {
            turns -= 1;
            let Some(number) = shard.clock.pop_front() else {
                break;
            };
            let Some(entry) = shard.map.get_mut(&number) else {
                continue;
            };
            if entry.referenced.swap(false, Ordering::Relaxed) {
                shard.clock.push_back(number);
                continue;
            }
            if entry.unwritten {
                if let Err(error) = write_back(number, &entry.page) {
                    // Still unwritten: it stays in the clock, to be written later.
                    shard.clock.push_back(number);
                    return Err(error);
                }
            }
            if let Some(removed) = shard.map.remove(&number) {
                self.recycle(removed.page);
            }
        }
        if shard.clock.len() > 2 * shard.map.len() + 64 {
            let Shard { map, clock } = shard;
            clock.retain(|number| map.contains_key(number));
        }
        Ok(())
    }

    /// Drops a page from the cache, written or not: a page a transaction handed to the cache
    /// before it committed, which it then did not keep (it aborted, or freed the page).
    pub fn discard(&self, number: u64) {
        let mut shard = self.shard(number).write();
        if let Some(removed) = shard.map.remove(&number) {
            self.recycle(removed.page);
        }
    }

    /// Every unwritten page, for a checkpoint.
    pub fn unwritten(&self) -> Vec<(u64, PageBytes)> {
        let mut pages = Vec::new();
        for shard in &self.shards {
            let shard = shard.read();
            pages.extend(
                shard
                    .map
                    .iter()
                    .filter(|(_, entry)| entry.unwritten)
                    .map(|(&number, entry)| (number, Arc::clone(&entry.page))),
            );
        }
        pages.sort_unstable_by_key(|(number, _)| *number);
        pages
    }

    /// Writes a page collected by [`PageCache::unwritten`] if the cache still holds that very
    /// copy unwritten, and marks it written. The check and the write happen under the shard
    /// lock: a page freed and reused since it was collected is never overwritten with its
    /// old content.
    pub fn write_if_current(
        &self,
        number: u64,
        page: &PageBytes,
        write_back: WriteBack<'_>,
    ) -> Result<bool, crate::db::DbError> {
        let mut shard = self.shard(number).write();
        match shard.map.get_mut(&number) {
            Some(entry) if entry.unwritten && Arc::ptr_eq(&entry.page, page) => {
                write_back(number, page)?;
                entry.unwritten = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Pages cached now.
    pub fn cached_pages(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().map.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_write_back(_: u64, _: &[u8]) -> Result<(), crate::db::DbError> {
        Ok(())
    }

    #[test]
    fn a_replaced_page_nobody_holds_comes_back_zeroed() {
        let cache = PageCache::new(1 << 20, 4096);
        let first: PageBytes = Arc::from(vec![7u8; 4096]);
        cache.insert_unwritten(3, first, &no_write_back).unwrap();
        let second: PageBytes = Arc::from(vec![9u8; 4096]);
        cache.insert_unwritten(3, second, &no_write_back).unwrap();
        let blank = cache.blank();
        assert_eq!(blank.len(), 4096);
        assert!(blank.iter().all(|&byte| byte == 0), "recycled and zeroed");
        assert_eq!(cache.get(3).unwrap()[0], 9, "the cached copy is untouched");
    }

    #[test]
    fn a_replaced_page_a_reader_holds_is_not_recycled() {
        let cache = PageCache::new(1 << 20, 4096);
        let first: PageBytes = Arc::from(vec![7u8; 4096]);
        let held = Arc::clone(&first);
        cache.insert_unwritten(3, first, &no_write_back).unwrap();
        cache
            .insert_unwritten(3, Arc::from(vec![9u8; 4096]), &no_write_back)
            .unwrap();
        assert!(cache.spare.lock().is_empty());
        drop(cache.blank());
        assert!(
            held.iter().all(|&byte| byte == 7),
            "a reader's page never changes"
        );
    }
}
