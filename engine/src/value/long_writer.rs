//! Writing a long value's chain of pages as its bytes arrive, for a value streamed from a
//! reader: the pages come out in the layout [`format_pages`](super::long::format_pages) gives
//! the whole value at once (every page full but the last), so that a value streamed and the
//! same value inserted uncompressed as a slice are stored alike.

use super::long::{blank_page, close_page, data_per_page, DATA_OFFSET};

/// A chain being written. The value's length is known from the start, so each full page is
/// linked to the next as soon as it fills; full pages wait in the writer until taken with
/// [`ChainWriter::take_full`].
pub struct ChainWriter {
    page_size: usize,
    first_page: u64,
    /// The page being filled: its number, its bytes and the data bytes in it.
    current: (u64, Vec<u8>, usize),
    /// Value bytes still to come.
    remaining: u64,
    /// Full pages, formatted and linked, not sealed.
    full: Vec<(u64, Vec<u8>)>,
}

impl ChainWriter {
    /// Starts the chain of a value of `length` bytes (at least 1) on a page from `allocate`.
    pub fn new(length: u64, page_size: usize, allocate: &mut dyn FnMut() -> u64) -> Self {
        assert!(length > 0, "an empty value is stored inline");
        let first_page = allocate();
        Self {
            page_size,
            first_page,
            current: (first_page, blank_page(page_size), 0),
            remaining: length,
            full: Vec::new(),
        }
    }

    /// Adds the next bytes of the value; a page that fills is linked to a new one from
    /// `allocate` if bytes remain.
    pub fn write(&mut self, mut data: &[u8], allocate: &mut dyn FnMut() -> u64) {
        assert!(
            data.len() as u64 <= self.remaining,
            "more bytes than the value's length"
        );
        let capacity = data_per_page(self.page_size);
        while !data.is_empty() {
            let (_, page, filled) = &mut self.current;
            let taken = (capacity - *filled).min(data.len());
            page[DATA_OFFSET + *filled..DATA_OFFSET + *filled + taken]
                .copy_from_slice(&data[..taken]);
            *filled += taken;
            data = &data[taken..];
            self.remaining -= taken as u64;
            if *filled == capacity && self.remaining > 0 {
                let next = allocate();
                let (number, mut page, filled) =
                    std::mem::replace(&mut self.current, (next, blank_page(self.page_size), 0));
                close_page(&mut page, filled, next);
                self.full.push((number, page));
            }
        }
    }

    /// The pages filled since the last call, formatted and linked, not sealed.
    pub fn take_full(&mut self) -> Vec<(u64, Vec<u8>)> {
        std::mem::take(&mut self.full)
    }

    /// Bytes of pages the writer holds.
    pub fn buffered_bytes(&self) -> usize {
        (self.full.len() + 1) * self.page_size
    }

    /// Ends the chain once every byte is in; returns its first page and the pages not yet
    /// taken (the last page among them).
    pub fn finish(mut self) -> (u64, Vec<(u64, Vec<u8>)>) {
        assert_eq!(self.remaining, 0, "a chain finished before its value's end");
        let (number, mut page, filled) = self.current;
        close_page(&mut page, filled, 0);
        self.full.push((number, page));
        (self.first_page, self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::long::format_pages;

    #[test]
    fn pieces_of_any_size_give_the_pages_of_the_whole_value() {
        let page_size = 512;
        let value: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut next = 100;
        let (first, whole) = format_pages(&value, page_size, &mut || {
            next += 1;
            next
        });
        for piece in [1, 7, 100, 496, 497, 1000, 5000] {
            let mut next = 100;
            let mut allocate = || {
                next += 1;
                next
            };
            let mut writer = ChainWriter::new(value.len() as u64, page_size, &mut allocate);
            let mut pages = Vec::new();
            for chunk in value.chunks(piece) {
                writer.write(chunk, &mut allocate);
                pages.extend(writer.take_full());
            }
            let (streamed_first, rest) = writer.finish();
            pages.extend(rest);
            assert_eq!(streamed_first, first, "pieces of {piece}");
            assert_eq!(pages, whole, "pieces of {piece}");
        }
    }
}
