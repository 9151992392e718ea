//! The bytes of an inline value in a decoded leaf: owned, or a range of the page the leaf was
//! decoded from.
//!
//! Copying a committed leaf for change used to copy each of its values (one allocation
//! each, tens per leaf, for every small commit); a range of the shared page costs none. The
//! page stays alive as long as a value points into it.

use crate::page::cache::PageBytes;
use std::ops::{Deref, Range};

/// An inline value's bytes.
#[derive(Clone, Debug)]
pub enum InlineBytes {
    /// Bytes of their own (a value written by this transaction).
    Owned(Vec<u8>),
    /// `range` of a committed page.
    Shared(PageBytes, Range<usize>),
}

impl InlineBytes {
    /// The bytes as a vector of their own.
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            InlineBytes::Owned(bytes) => bytes,
            InlineBytes::Shared(page, range) => page[range].to_vec(),
        }
    }
}

impl Deref for InlineBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            InlineBytes::Owned(bytes) => bytes,
            InlineBytes::Shared(page, range) => &page[range.clone()],
        }
    }
}

impl PartialEq for InlineBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for InlineBytes {}

impl From<Vec<u8>> for InlineBytes {
    fn from(bytes: Vec<u8>) -> Self {
        InlineBytes::Owned(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn owned_and_shared_bytes_compare_by_content() {
        let page: PageBytes = Arc::from(&b"..value.."[..]);
        let shared = InlineBytes::Shared(page, 2..7);
        assert_eq!(&*shared, b"value");
        assert_eq!(shared, InlineBytes::from(b"value".to_vec()));
        assert_eq!(shared.into_vec(), b"value".to_vec());
    }
}
