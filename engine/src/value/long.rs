//! Long values: values too large for a leaf, stored in a chain of long-value pages and
//! compressed with zstd when that pays.
//!
//! Page layout after the common header: `u32 data length`, then the data; the header's link
//! field is the next page of the chain (0 on the last).

use crate::btree::node::LongRef;
use crate::db::DbError;
use crate::page::format::{self, read_u32, PageProblem, PageType, PAGE_HEADER_BYTES};
use std::path::Path;

/// No value is longer than this (a bound on every length read from a leaf).
pub const MAX_VALUE_BYTES: u64 = 256 << 20;
/// Values at least this long are tried with compression.
const COMPRESS_FROM_BYTES: usize = 1024;
/// zstd level: fast, and a good ratio on mail text.
const ZSTD_LEVEL: i32 = 3;

/// Reads a page by number, from the cache or a transaction's own pages.
pub type Fetch<'f> = dyn Fn(u64) -> Result<std::borrow::Cow<'f, [u8]>, DbError> + 'f;

/// Data bytes one long-value page holds.
pub fn data_per_page(page_size: usize) -> usize {
    page_size - PAGE_HEADER_BYTES - 4
}

/// The bytes to store for `value` and whether they are compressed: compressed only when that
/// saves at least a tenth.
pub fn prepare(value: &[u8], compress: bool) -> (std::borrow::Cow<'_, [u8]>, bool) {
    if compress && value.len() >= COMPRESS_FROM_BYTES {
        if let Ok(compressed) = zstd::bulk::compress(value, ZSTD_LEVEL) {
            if compressed.len() < value.len() / 10 * 9 {
                return (compressed.into(), true);
            }
        }
    }
    (value.into(), false)
}

/// Formats `stored` into unsealed pages numbered by `allocate`; returns the first page and the
/// pages.
pub fn format_pages(
    stored: &[u8],
    page_size: usize,
    allocate: &mut dyn FnMut() -> u64,
) -> (u64, Vec<(u64, Vec<u8>)>) {
    let chunks: Vec<&[u8]> = stored.chunks(data_per_page(page_size)).collect();
    let numbers: Vec<u64> = (0..chunks.len().max(1)).map(|_| allocate()).collect();
    let mut pages = Vec::with_capacity(numbers.len());
    for (index, &number) in numbers.iter().enumerate() {
        let chunk = chunks.get(index).copied().unwrap_or(&[]);
        let mut page = blank_page(page_size);
        page[DATA_OFFSET..DATA_OFFSET + chunk.len()].copy_from_slice(chunk);
        close_page(
            &mut page,
            chunk.len(),
            numbers.get(index + 1).copied().unwrap_or(0),
        );
        pages.push((number, page));
    }
    (numbers[0], pages)
}

/// Where a long-value page's data begins.
pub(crate) const DATA_OFFSET: usize = PAGE_HEADER_BYTES + 4;

/// An unsealed long-value page with no data yet.
pub(crate) fn blank_page(page_size: usize) -> Vec<u8> {
    let mut page = vec![0u8; page_size];
    // The type is set now (sealing sets it again) so that the transaction can read its own
    // unsealed pages through the same checks.
    page[4] = PageType::LongValue as u8;
    page
}

/// Sets a formatted page's data length and its link to the next page of the chain.
pub(crate) fn close_page(page: &mut [u8], length: usize, next: u64) {
    format::set_link(page, next);
    page[PAGE_HEADER_BYTES..DATA_OFFSET].copy_from_slice(
        &u32::try_from(length)
            .expect("a page's data length fits u32: within the page")
            .to_le_bytes(),
    );
}

/// Seals a formatted long-value page.
pub fn seal(page: &mut [u8], number: u64, lsn: crate::log::LogPosition) {
    format::seal(page, PageType::LongValue, 0, number, lsn);
}

/// Reads a long value through `fetch` (a page by number), checking the chain.
pub fn read<'f>(long: LongRef, fetch: &Fetch<'f>, path: &Path) -> Result<Vec<u8>, DbError> {
    check_lengths(long, path)?;
    let mut stored =
        Vec::with_capacity(usize::try_from(long.stored).expect("checked: at most MAX_VALUE_BYTES"));
    walk(long, fetch, path, &mut |data| {
        stored.extend_from_slice(data)
    })?;
    if !long.compressed {
        return Ok(stored);
    }
    let value = zstd::bulk::decompress(
        &stored,
        usize::try_from(long.length).expect("checked: at most MAX_VALUE_BYTES"),
    )
    .map_err(|error| {
        malformed(
            path,
            long.first_page,
            format!("long value does not decompress: {error}"),
        )
    })?;
    if value.len() as u64 != long.length {
        return Err(malformed(
            path,
            long.first_page,
            format!(
                "long value decompresses to {} bytes, not {}",
                value.len(),
                long.length
            ),
        ));
    }
    Ok(value)
}

/// The page numbers of a long value's chain.
pub fn chain<'f>(long: LongRef, fetch: &Fetch<'f>, path: &Path) -> Result<Vec<u64>, DbError> {
    check_lengths(long, path)?;
    walk_pages(long, fetch, path, &mut |_, _| {})
}

fn walk<'f>(
    long: LongRef,
    fetch: &Fetch<'f>,
    path: &Path,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(), DbError> {
    walk_pages(long, fetch, path, &mut |_, data| sink(data)).map(|_| ())
}

/// Follows the chain, handing each page's data to `sink`; checks the type of every page, the
/// chain's length against `stored`, and that it ends where the data does.
fn walk_pages<'f>(
    long: LongRef,
    fetch: &Fetch<'f>,
    path: &Path,
    sink: &mut dyn FnMut(u64, &[u8]),
) -> Result<Vec<u64>, DbError> {
    let mut pages = Vec::new();
    let mut next = long.first_page;
    let mut remaining = long.stored;
    while next != 0 {
        let page = fetch(next)?;
        if format::page_type(&page) != Some(PageType::LongValue) {
            return Err(malformed(path, next, "expected a long-value page".into()));
        }
        let length = read_u32(&page, PAGE_HEADER_BYTES) as u64;
        if length > remaining || (length == 0 && remaining > 0) {
            return Err(malformed(
                path,
                next,
                "long-value chain longer than its value".into(),
            ));
        }
        let start = PAGE_HEADER_BYTES + 4;
        sink(
            next,
            &page[start..start + usize::try_from(length).expect("checked above: within the page")],
        );
        remaining -= length;
        pages.push(next);
        next = format::link(&page);
        if remaining == 0 && next != 0 {
            return Err(malformed(
                path,
                next,
                "long-value chain runs past its value".into(),
            ));
        }
    }
    if remaining != 0 {
        return Err(malformed(
            path,
            long.first_page,
            format!("long-value chain ends {remaining} bytes short"),
        ));
    }
    Ok(pages)
}

pub(crate) fn check_lengths(long: LongRef, path: &Path) -> Result<(), DbError> {
    let bad = long.length > MAX_VALUE_BYTES
        || long.stored > long.length.max(1) * 2 + 1024
        || (!long.compressed && long.stored != long.length);
    if bad {
        return Err(malformed(
            path,
            long.first_page,
            format!(
                "long value of {} bytes stored in {}",
                long.length, long.stored
            ),
        ));
    }
    Ok(())
}

pub(crate) fn malformed(path: &Path, page: u64, reason: String) -> DbError {
    DbError::Corruption {
        path: path.to_owned(),
        page,
        problem: PageProblem::Malformed(reason),
    }
}
