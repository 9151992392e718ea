//! B+tree nodes decoded for change, and their encoding into pages.
//!
//! Leaf and branch pages are slotted: after the 32-byte common header (see
//! [`crate::page::format`]) comes an array of `count` 6-byte slots in key order (u16 cell
//! offset, u32 big-endian first four key bytes, zero-padded); cells fill the page from the
//! end. Leaf cell:
//! ```text
//!   u16 key length, u8 value tag, key bytes, then by tag:
//!     0 inline:          u32 length, value bytes
//!     1 long:            u64 first page, u64 value length, u64 stored length
//!     2 long compressed: the same fields; the stored bytes are a zstd frame
//! ```
//! Branch cell: `u16 key length, u64 child, key bytes`. A branch with `count` keys has
//! `count + 1` children: the leftmost is the header's link field, and the child of key `i`
//! holds the keys `>= key i` (and `< key i+1`).

use super::inline::InlineBytes;
use super::keys::Keys;
use crate::log::LogPosition;
use crate::page::cache::PageBytes;
use crate::page::format::{self, PageType, PAGE_HEADER_BYTES};
use std::sync::Arc;

/// Where a long value lives: a chain of long-value pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongRef {
    /// The first page of the chain.
    pub first_page: u64,
    /// The value's length.
    pub length: u64,
    /// Bytes stored in the chain (smaller than `length` when compressed).
    pub stored: u64,
    /// Whether the stored bytes are a zstd frame.
    pub compressed: bool,
}

/// A value as a leaf holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Stored in the leaf.
    Inline(InlineBytes),
    /// Stored out of line.
    Long(LongRef),
}

impl Value {
    fn cell_bytes(&self) -> usize {
        match self {
            Value::Inline(bytes) => 4 + bytes.len(),
            Value::Long(_) => 24,
        }
    }
}

/// Bytes of a slot: the cell's offset (u16) and the key's first four bytes (u32 big-endian,
/// zero-padded), so that a binary search reads only the slots until its last step.
pub const SLOT_BYTES: usize = 6;

/// The key prefix kept in a slot: ordered like the keys (equal prefixes compare whole keys).
pub fn slot_prefix(key: &[u8]) -> u32 {
    // Most keys have four bytes or more: a fixed-size copy is one load, not a memcpy call.
    if let Some(first) = key.first_chunk::<4>() {
        return u32::from_be_bytes(*first);
    }
    let mut bytes = [0u8; 4];
    let length = key.len().min(4);
    bytes[..length].copy_from_slice(&key[..length]);
    u32::from_be_bytes(bytes)
}

/// Bytes a leaf cell takes, slot included.
pub fn leaf_cell_bytes(key: &[u8], value: &Value) -> usize {
    SLOT_BYTES + 3 + key.len() + value.cell_bytes()
}

/// Bytes a branch cell takes, slot included.
pub fn branch_cell_bytes(key: &[u8]) -> usize {
    SLOT_BYTES + 10 + key.len()
}

/// What a node holds besides its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A leaf's values, one per key.
    Leaf(Vec<Value>),
    /// A branch's children, one more than keys.
    Branch(Vec<u64>),
}

/// A node decoded for change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Keys in ascending order.
    pub keys: Keys,
    /// Values or children.
    pub body: Body,
    /// Encoded size in bytes, header included, kept up to date by every change.
    pub size: usize,
}

impl Node {
    /// An empty leaf.
    pub fn empty_leaf() -> Self {
        Self {
            keys: Keys::default(),
            body: Body::Leaf(Vec::new()),
            size: PAGE_HEADER_BYTES,
        }
    }

    /// A branch with one key and two children (a new root after a split).
    pub fn new_root(left: u64, key: Vec<u8>, right: u64) -> Self {
        let size = PAGE_HEADER_BYTES + branch_cell_bytes(&key);
        Self {
            keys: Keys::from_vec(vec![key]),
            body: Body::Branch(vec![left, right]),
            size,
        }
    }

    /// Whether this is a leaf.
    pub fn is_leaf(&self) -> bool {
        matches!(self.body, Body::Leaf(_))
    }

    /// Recomputes the encoded size from the content.
    pub fn computed_size(&self) -> usize {
        let cells: usize = match &self.body {
            Body::Leaf(values) => self
                .keys
                .iter()
                .zip(values)
                .map(|(key, value)| leaf_cell_bytes(key, value))
                .sum(),
            Body::Branch(_) => self.keys.iter().map(branch_cell_bytes).sum(),
        };
        PAGE_HEADER_BYTES + cells
    }

    /// Encodes the node as page `number`, sealed with `lsn`.
    pub fn encode(&self, page_size: usize, number: u64, lsn: LogPosition) -> PageBytes {
        self.encode_into(std::iter::repeat_n(0u8, page_size).collect(), number, lsn)
    }

    /// Encodes into `shared`, a zeroed page buffer nobody else holds (the cache keeps it as
    /// it is: no second copy).
    pub fn encode_into(&self, mut shared: PageBytes, number: u64, lsn: LogPosition) -> PageBytes {
        let page_size = shared.len();
        debug_assert_eq!(self.size, self.computed_size());
        assert!(self.size <= page_size, "node of {} bytes", self.size);
        let page = Arc::get_mut(&mut shared).expect("a blank page has one owner");
        debug_assert!(page.iter().all(|&byte| byte == 0), "a blank page is zeroed");
        let mut end = page_size;
        for (index, key) in self.keys.iter().enumerate() {
            end = self.encode_cell(page, end, index, key);
            let slot = PAGE_HEADER_BYTES + SLOT_BYTES * index;
            page[slot..slot + 2].copy_from_slice(
                &u16::try_from(end)
                    .expect("a cell offset fits u16: pages are at most 32 KiB")
                    .to_le_bytes(),
            );
            page[slot + 2..slot + 6].copy_from_slice(&slot_prefix(key).to_be_bytes());
        }
        assert!(
            PAGE_HEADER_BYTES + SLOT_BYTES * self.keys.len() <= end,
            "cells overlap the slots"
        );
        let page_type = match &self.body {
            Body::Leaf(_) => PageType::Leaf,
            Body::Branch(children) => {
                format::set_link(page, children[0]);
                PageType::Branch
            }
        };
        format::seal(
            page,
            page_type,
            u16::try_from(self.keys.len())
                .expect("a page's cell count fits u16: pages are at most 32 KiB"),
            number,
            lsn,
        );
        shared
    }

    /// Writes cell `index` to end just before `end`; returns where it starts.
    fn encode_cell(&self, page: &mut [u8], end: usize, index: usize, key: &[u8]) -> usize {
        let length = match &self.body {
            Body::Leaf(values) => leaf_cell_bytes(key, &values[index]) - SLOT_BYTES,
            Body::Branch(_) => branch_cell_bytes(key) - SLOT_BYTES,
        };
        let start = end - length;
        let mut cell = CellWriter { page, at: start };
        cell.put(
            &u16::try_from(key.len())
                .expect("a key on a page fits u16: pages are at most 32 KiB")
                .to_le_bytes(),
        );
        match &self.body {
            Body::Leaf(values) => {
                let value = &values[index];
                cell.put(&[match value {
                    Value::Inline(_) => 0,
                    Value::Long(long) if long.compressed => 2,
                    Value::Long(_) => 1,
                }]);
                cell.put(key);
                match value {
                    Value::Inline(bytes) => {
                        cell.put(
                            &u32::try_from(bytes.len())
                                .expect("an inline value fits u32: it fits in a page")
                                .to_le_bytes(),
                        );
                        cell.put(bytes);
                    }
                    Value::Long(long) => {
                        for field in [long.first_page, long.length, long.stored] {
                            cell.put(&field.to_le_bytes());
                        }
                    }
                }
            }
            Body::Branch(children) => {
                cell.put(&children[index + 1].to_le_bytes());
                cell.put(key);
            }
        }
        debug_assert_eq!(cell.at, end, "cell length");
        start
    }
}

/// Appends bytes to a page from a position.
struct CellWriter<'p> {
    page: &'p mut [u8],
    at: usize,
}

impl CellWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.page[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

/// Changes that keep `size` current.
impl Node {
    /// The values of a leaf.
    pub fn values(&self) -> &[Value] {
        match &self.body {
            Body::Leaf(values) => values,
            Body::Branch(_) => panic!("values of a branch"),
        }
    }

    /// The children of a branch.
    pub fn children(&self) -> &[u64] {
        match &self.body {
            Body::Branch(children) => children,
            Body::Leaf(_) => panic!("children of a leaf"),
        }
    }

    /// The children of a branch, for change.
    pub fn children_mut(&mut self) -> &mut Vec<u64> {
        match &mut self.body {
            Body::Branch(children) => children,
            Body::Leaf(_) => panic!("children of a leaf"),
        }
    }

    fn values_mut(&mut self) -> &mut Vec<Value> {
        match &mut self.body {
            Body::Leaf(values) => values,
            Body::Branch(_) => panic!("values of a branch"),
        }
    }

    /// Binary search over the keys.
    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        self.keys.search(key)
    }

    /// The child of a branch whose range holds `key`.
    pub fn child_index(&self, key: &[u8]) -> usize {
        match self.search(key) {
            Ok(index) => index + 1,
            Err(index) => index,
        }
    }

    /// Inserts a new key at `index` of a leaf.
    pub fn leaf_insert(&mut self, index: usize, key: Vec<u8>, value: Value) {
        self.size += leaf_cell_bytes(&key, &value);
        self.keys.insert(index, key);
        self.values_mut().insert(index, value);
    }

    /// Replaces the value at `index` of a leaf; returns the old one.
    pub fn leaf_replace(&mut self, index: usize, value: Value) -> Value {
        self.size = self.size + value.cell_bytes() - self.values()[index].cell_bytes();
        std::mem::replace(&mut self.values_mut()[index], value)
    }

    /// Removes entry `index` of a leaf.
    pub fn leaf_remove(&mut self, index: usize) -> Value {
        let key = self.keys.remove(index);
        let value = self.values_mut().remove(index);
        self.size -= leaf_cell_bytes(&key, &value);
        value
    }

    /// Inserts `key` at `index` of a branch, with `right` as the child holding keys >= it.
    pub fn branch_insert(&mut self, index: usize, key: Vec<u8>, right: u64) {
        self.size += branch_cell_bytes(&key);
        self.keys.insert(index, key);
        self.children_mut().insert(index + 1, right);
    }

    /// Removes key `index` of a branch and the child to its right.
    pub fn branch_remove(&mut self, index: usize) -> u64 {
        let key = self.keys.remove(index);
        self.size -= branch_cell_bytes(&key);
        self.children_mut().remove(index + 1)
    }

    /// Splits an overfull node; returns the separator and the right half. `append` (the last
    /// insert went to the end) keeps the left half full, so ascending inserts fill pages.
    pub fn split(&mut self, page_size: usize, append: bool) -> (Vec<u8>, Node) {
        assert!(
            self.keys.len() >= 2,
            "split of a node with {} keys",
            self.keys.len()
        );
        let at = if append && self.is_leaf() {
            self.keys.len() - 1
        } else {
            self.split_point(page_size)
        };
        let right_keys = self.keys.split_off(at);
        let (separator, right) = match &mut self.body {
            Body::Leaf(values) => {
                let right_values = values.split_off(at);
                let separator = right_keys[0].to_vec();
                (
                    separator,
                    Node::from_parts(right_keys, Body::Leaf(right_values)),
                )
            }
            Body::Branch(children) => {
                let right_children = children.split_off(at + 1);
                let mut right_keys = right_keys;
                let separator = right_keys.remove(0);
                (
                    separator,
                    Node::from_parts(right_keys, Body::Branch(right_children)),
                )
            }
        };
        self.size = self.computed_size();
        assert!(
            self.size <= page_size && right.size <= page_size,
            "split halves overfull"
        );
        (separator, right)
    }

    /// The index where the cells before it first reach half the cell bytes; never 0 or len.
    fn split_point(&self, page_size: usize) -> usize {
        let half = (self.size - PAGE_HEADER_BYTES).min(page_size) / 2;
        let mut bytes = 0;
        for index in 0..self.keys.len() {
            bytes += match &self.body {
                Body::Leaf(values) => leaf_cell_bytes(&self.keys[index], &values[index]),
                Body::Branch(_) => branch_cell_bytes(&self.keys[index]),
            };
            if bytes >= half {
                let last = if self.is_leaf() {
                    self.keys.len() - 1
                } else {
                    self.keys.len() - 2
                };
                return (index + 1).clamp(1, last.max(1));
            }
        }
        self.keys.len() / 2
    }

    fn from_parts(keys: Keys, body: Body) -> Node {
        let mut node = Node {
            keys,
            body,
            size: 0,
        };
        node.size = node.computed_size();
        node
    }

    /// Appends `right` (the next sibling) to this node; `separator` is the parent's key
    /// between them, which a branch takes down.
    pub fn merge(&mut self, separator: Vec<u8>, right: Node) {
        match (&mut self.body, right.body) {
            (Body::Leaf(values), Body::Leaf(right_values)) => {
                self.keys.append(right.keys);
                values.extend(right_values);
            }
            (Body::Branch(children), Body::Branch(right_children)) => {
                self.keys.push(separator);
                self.keys.append(right.keys);
                children.extend(right_children);
            }
            _ => panic!("merge of a leaf with a branch"),
        }
        self.size = self.computed_size();
    }

    /// The size this node would have after merging `right` into it.
    pub fn merged_size(&self, separator: &[u8], right: &Node) -> usize {
        let taken_down = if self.is_leaf() {
            0
        } else {
            branch_cell_bytes(separator)
        };
        self.size + right.size - PAGE_HEADER_BYTES + taken_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree::view::NodeView;

    #[test]
    fn a_leaf_encodes_and_decodes_back() {
        let mut node = Node::empty_leaf();
        node.keys = Keys::from_vec(vec![b"a".to_vec(), b"bb".to_vec()]);
        node.body = Body::Leaf(vec![
            Value::Inline(b"one".to_vec().into()),
            Value::Long(LongRef {
                first_page: 9,
                length: 100_000,
                stored: 20_000,
                compressed: true,
            }),
        ]);
        node.size = node.computed_size();
        let page = node.encode(4096, 5, LogPosition::new(1, 2));
        let view = NodeView::checked(&page, 5, 4096).unwrap();
        assert_eq!(view.to_node(), node);
    }

    #[test]
    fn a_branch_encodes_and_decodes_back() {
        let mut node = Node::new_root(3, b"m".to_vec(), 4);
        node.keys.push(b"t".to_vec());
        if let Body::Branch(children) = &mut node.body {
            children.push(8);
        }
        node.size = node.computed_size();
        let page = node.encode(8192, 6, LogPosition::new(1, 2));
        let view = NodeView::checked(&page, 6, 8192).unwrap();
        assert_eq!(view.child(0), 3);
        assert_eq!(view.child(2), 8);
        assert_eq!(view.to_node(), node);
    }
}
