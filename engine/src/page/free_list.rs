//! The persisted free list: a chain of pages, each `count` u64 entries after the common
//! header, the link field pointing at the next page (0 ends the chain). An entry is a page
//! number; its top bit set marks a page retired but not yet free (it becomes free after the
//! next checkpoint).

use super::format::{self, read_u64, PageType, PAGE_HEADER_BYTES};
use crate::db::DbError;
use crate::log::LogPosition;

const RETIRED_BIT: u64 = 1 << 63;

/// Entries one page holds.
pub fn entries_per_page(page_size: usize) -> usize {
    (page_size - PAGE_HEADER_BYTES) / 8
}

/// Pages needed for `entries` entries.
pub fn pages_needed(entries: usize, page_size: usize) -> usize {
    entries.div_ceil(entries_per_page(page_size))
}

/// Encodes free and retired pages into the chain `pages` (at least [`pages_needed`] long;
/// pages beyond what the entries need are written empty).
pub fn encode(
    free: &[u64],
    retired: &[u64],
    pages: &[u64],
    page_size: usize,
    lsn: LogPosition,
) -> Vec<(u64, Vec<u8>)> {
    let entries: Vec<u64> = free
        .iter()
        .copied()
        .chain(retired.iter().map(|page| page | RETIRED_BIT))
        .collect();
    assert!(pages.len() >= pages_needed(entries.len(), page_size));
    let mut chunks = entries.chunks(entries_per_page(page_size));
    let mut encoded = Vec::with_capacity(pages.len());
    for index in 0..pages.len() {
        let chunk = chunks.next().unwrap_or(&[]);
        let mut page = vec![0u8; page_size];
        for (slot, entry) in chunk.iter().enumerate() {
            let at = PAGE_HEADER_BYTES + 8 * slot;
            page[at..at + 8].copy_from_slice(&entry.to_le_bytes());
        }
        format::set_link(&mut page, pages.get(index + 1).copied().unwrap_or(0));
        format::seal(
            &mut page,
            PageType::FreeList,
            u16::try_from(chunk.len())
                .expect("a free-list page's entries fit u16: pages are at most 32 KiB"),
            pages[index],
            lsn,
        );
        encoded.push((pages[index], page));
    }
    encoded
}

/// What a free-list chain holds.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Free pages.
    pub free: Vec<u64>,
    /// Retired pages.
    pub retired: Vec<u64>,
    /// The chain's own pages.
    pub chain: Vec<u64>,
}

/// Reads the chain from `first`; every page number must lie in `first_data..next_page`.
pub fn load(
    read: &dyn Fn(u64) -> Result<Box<[u8]>, DbError>,
    first: u64,
    bounds: (u64, u64),
    path: &std::path::Path,
) -> Result<Loaded, DbError> {
    let mut loaded = Loaded::default();
    let mut seen = std::collections::HashSet::new();
    let mut next = first;
    let malformed = |page: u64, reason: String| DbError::Corruption {
        path: path.to_owned(),
        page,
        problem: format::PageProblem::Malformed(reason),
    };
    while next != 0 {
        if loaded.chain.len() as u64 > bounds.1 {
            return Err(malformed(next, "the free-list chain loops".into()));
        }
        let page = read(next)?;
        if format::page_type(&page) != Some(PageType::FreeList) {
            return Err(malformed(next, "expected a free-list page".into()));
        }
        let count = format::count(&page) as usize;
        if count > entries_per_page(page.len()) {
            return Err(malformed(
                next,
                format!("{count} entries do not fit a page"),
            ));
        }
        for slot in 0..count {
            let entry = read_u64(&page, PAGE_HEADER_BYTES + 8 * slot);
            let number = entry & !RETIRED_BIT;
            if number < bounds.0 || number >= bounds.1 {
                return Err(malformed(next, format!("free page {number} out of range")));
            }
            if !seen.insert(number) {
                return Err(malformed(next, format!("page {number} listed twice")));
            }
            if entry & RETIRED_BIT != 0 {
                loaded.retired.push(number);
            } else {
                loaded.free.push(number);
            }
        }
        loaded.chain.push(next);
        next = format::link(&page);
    }
    if let Some(&page) = loaded.chain.iter().find(|page| seen.contains(page)) {
        return Err(malformed(
            page,
            "a free-list page lists itself as free".into(),
        ));
    }
    Ok(loaded)
}
