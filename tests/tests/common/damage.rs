//! Damage behind the engine's back: a page of a database file rewritten with its checksum
//! recomputed, so that no page check sees it and only the content checksums can.

use std::path::Path;

/// Rewrites the one page of `file` (pages of `page_size` bytes) that holds `needle` with
/// `change` applied to it (given the page and the needle's offset in it), and reseals the
/// page's checksum.
pub fn reseal_page_holding(
    file: &Path,
    needle: &[u8],
    page_size: usize,
    change: impl FnOnce(&mut [u8], usize),
) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes
        .windows(needle.len())
        .position(|window| window == needle)
        .expect("the value is stored inline in a page");
    let number = at / page_size;
    let page = &mut bytes[number * page_size..(number + 1) * page_size];
    change(page, at % page_size);
    let checksum = bluejet_engine::format::page::page_checksum(number as u64, page);
    page[..4].copy_from_slice(&checksum.to_le_bytes());
    std::fs::write(file, bytes).unwrap();
}

/// Flips a bit of the byte two after the start of `needle` in its page.
pub fn flip_value(file: &Path, needle: &[u8], page_size: usize) {
    reseal_page_holding(file, needle, page_size, |page, offset| {
        page[offset + 2] ^= 0x01
    });
}
