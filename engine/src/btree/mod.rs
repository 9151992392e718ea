//! B+trees of byte-string keys in memcmp order, on copy-on-write pages.

pub mod cursor;
pub mod dirty;
pub mod inline;
pub mod keys;
pub mod node;
pub mod repack;
pub mod view;
pub mod write;

use std::ops::Bound;

/// No tree is deeper than this; a deeper descent means a damaged tree (a loop).
pub const MAX_DEPTH: usize = 32;

/// The longest key for a page size: 1/8 of a page less 16 bytes, so a leaf always holds at
/// least three entries and a split always leaves both halves within a page.
pub fn max_key_bytes(page_size: usize) -> usize {
    page_size / 8 - 16
}

/// The longest value kept inside a leaf; longer values go out of line.
pub fn max_inline_value_bytes(page_size: usize) -> usize {
    page_size / 8
}

/// Whether `key` lies within `bounds`.
pub fn in_bounds(key: &[u8], bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> bool {
    let after_start = match &bounds.0 {
        Bound::Included(start) => key >= start.as_slice(),
        Bound::Excluded(start) => key > start.as_slice(),
        Bound::Unbounded => true,
    };
    after_start && before_end(key, &bounds.1)
}

/// Whether `key` lies before the end bound.
pub fn before_end(key: &[u8], end: &Bound<Vec<u8>>) -> bool {
    match end {
        Bound::Included(end) => key <= end.as_slice(),
        Bound::Excluded(end) => key < end.as_slice(),
        Bound::Unbounded => true,
    }
}

/// Whether `key` lies after the start bound.
pub fn after_start(key: &[u8], start: &Bound<Vec<u8>>) -> bool {
    match start {
        Bound::Included(start) => key >= start.as_slice(),
        Bound::Excluded(start) => key > start.as_slice(),
        Bound::Unbounded => true,
    }
}

/// The first and last child of a branch with `keys` that may hold keys within `bounds`.
pub fn child_span(keys: &keys::Keys, bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> (usize, usize) {
    let position = |key: &[u8]| keys.search(key);
    let first = match &bounds.0 {
        Bound::Included(key) | Bound::Excluded(key) => match position(key) {
            Ok(index) => index + 1,
            Err(index) => index,
        },
        Bound::Unbounded => 0,
    };
    let last = match &bounds.1 {
        Bound::Included(key) => match position(key) {
            Ok(index) => index + 1,
            Err(index) => index,
        },
        Bound::Excluded(key) => match position(key) {
            Ok(index) | Err(index) => index,
        },
        Bound::Unbounded => keys.len(),
    };
    (first, last.max(first))
}
