//! Reading a B+tree page in place, without decoding it.
//!
//! Every page read from the file is validated once ([`validate`]) before it enters the
//! cache; after that the accessors index it without further checks.

use super::inline::InlineBytes;
use super::node::{slot_prefix, Body, LongRef, Node, Value, SLOT_BYTES};
use crate::page::cache::PageBytes;
use crate::page::format::{self, read_u16, read_u32, read_u64, PageType, PAGE_HEADER_BYTES};

/// A value as stored in a leaf, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'a> {
    /// In the leaf.
    Inline(&'a [u8]),
    /// Out of line.
    Long(LongRef),
}

impl ValueRef<'_> {
    /// The owned form.
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Inline(bytes) => Value::Inline(bytes.to_vec().into()),
            ValueRef::Long(long) => Value::Long(long),
        }
    }
}

/// A validated leaf or branch page.
#[derive(Clone, Copy)]
pub struct NodeView<'a> {
    page: &'a [u8],
    count: usize,
    leaf: bool,
}

impl<'a> NodeView<'a> {
    /// Views a page already validated (from the cache or just encoded).
    pub fn new(page: &'a [u8]) -> Self {
        Self {
            page,
            count: format::count(page) as usize,
            leaf: format::page_type(page) == Some(PageType::Leaf),
        }
    }

    /// Checks the checksum and structure of page `number`, then views it.
    pub fn checked(page: &'a [u8], number: u64, page_size: usize) -> Result<Self, String> {
        if page.len() != page_size {
            return Err(format!("page of {} bytes", page.len()));
        }
        format::verify(page, number).map_err(|problem| problem.to_string())?;
        validate(page)?;
        Ok(Self::new(page))
    }

    /// Whether this is a leaf.
    pub fn is_leaf(&self) -> bool {
        self.leaf
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn cell(&self, index: usize) -> usize {
        read_u16(self.page, PAGE_HEADER_BYTES + SLOT_BYTES * index) as usize
    }

    fn prefix(&self, index: usize) -> u32 {
        let at = PAGE_HEADER_BYTES + SLOT_BYTES * index + 2;
        u32::from_be_bytes([
            self.page[at],
            self.page[at + 1],
            self.page[at + 2],
            self.page[at + 3],
        ])
    }

    /// Key `index`.
    pub fn key(&self, index: usize) -> &'a [u8] {
        let cell = self.cell(index);
        let length = read_u16(self.page, cell) as usize;
        let start = if self.leaf { cell + 3 } else { cell + 10 };
        &self.page[start..start + length]
    }

    /// Value `index` of a leaf.
    pub fn value(&self, index: usize) -> ValueRef<'a> {
        debug_assert!(self.leaf);
        let cell = self.cell(index);
        let key_length = read_u16(self.page, cell) as usize;
        let tag = self.page[cell + 2];
        let at = cell + 3 + key_length;
        if tag == 0 {
            let length = read_u32(self.page, at) as usize;
            return ValueRef::Inline(&self.page[at + 4..at + 4 + length]);
        }
        ValueRef::Long(LongRef {
            first_page: read_u64(self.page, at),
            length: read_u64(self.page, at + 8),
            stored: read_u64(self.page, at + 16),
            compressed: tag == 2,
        })
    }

    /// Child `index` (0..=len) of a branch.
    pub fn child(&self, index: usize) -> u64 {
        debug_assert!(!self.leaf);
        if index == 0 {
            return format::link(self.page);
        }
        read_u64(self.page, self.cell(index - 1) + 2)
    }

    /// Binary search: `Ok(index)` of `key`, or `Err(index)` where it would go.
    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        let wanted = slot_prefix(key);
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = (low + high) / 2;
            let order = match self.prefix(middle).cmp(&wanted) {
                std::cmp::Ordering::Equal => self.key(middle).cmp(key),
                order => order,
            };
            match order {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Ok(middle),
            }
        }
        Err(low)
    }

    /// The child of a branch whose range holds `key`.
    pub fn child_index(&self, key: &[u8]) -> usize {
        match self.search(key) {
            Ok(index) => index + 1,
            Err(index) => index,
        }
    }

    /// Decodes the whole node for change.
    /// The decoded node of `page`, its inline values ranges of `page` rather than copies.
    pub fn to_node_shared(page: &PageBytes) -> Node {
        NodeView::new(page).decode_with(|value| match value {
            ValueRef::Inline(bytes) => {
                // The value lies inside the page: its offset there is a plain difference.
                let start = bytes.as_ptr() as usize - page.as_ptr() as usize;
                Value::Inline(InlineBytes::Shared(
                    PageBytes::clone(page),
                    start..start + bytes.len(),
                ))
            }
            ValueRef::Long(long) => Value::Long(long),
        })
    }

    /// The decoded node, values copied.
    pub fn to_node(&self) -> Node {
        self.decode_with(ValueRef::to_value)
    }

    fn decode_with(&self, value: impl Fn(ValueRef<'a>) -> Value) -> Node {
        // Key bytes are at most the page's size: reserving that much is one allocation.
        let keys = super::keys::Keys::from_keys_sized(
            (0..self.count).map(|index| self.key(index)),
            self.count,
            self.page.len(),
        );
        let body = if self.leaf {
            Body::Leaf((0..self.count).map(|i| value(self.value(i))).collect())
        } else {
            Body::Branch((0..=self.count).map(|index| self.child(index)).collect())
        };
        let mut node = Node {
            keys,
            body,
            size: 0,
        };
        node.size = node.computed_size();
        node
    }
}

/// Checks that every slot and cell of a leaf or branch lies inside the page and that keys
/// ascend strictly. The checksum must already have been verified.
pub fn validate(page: &[u8]) -> Result<(), String> {
    let leaf = match format::page_type(page) {
        Some(PageType::Leaf) => true,
        Some(PageType::Branch) => false,
        other => return Err(format!("expected a tree page, found {other:?}")),
    };
    let count = format::count(page) as usize;
    let slots_end = PAGE_HEADER_BYTES + SLOT_BYTES * count;
    if slots_end > page.len() {
        return Err(format!("{count} slots do not fit"));
    }
    // Cells must fit side by side: a page whose cells overlap would decode into a node
    // larger than a page.
    let mut used = slots_end;
    for index in 0..count {
        used += check_cell(page, index, slots_end, leaf)?;
    }
    if used > page.len() {
        return Err(format!("cells of {used} bytes in all overlap"));
    }
    let view = NodeView::new(page);
    for index in 0..count {
        if view.prefix(index) != slot_prefix(view.key(index)) {
            return Err(format!("slot {index} holds a prefix that is not its key's"));
        }
    }
    for index in 1..count {
        if view.key(index - 1) >= view.key(index) {
            return Err(format!("keys {} and {index} out of order", index - 1));
        }
    }
    let link = format::link(page);
    if !leaf && (link == 0 || link >= format::MAX_PAGE_NUMBER) {
        return Err(format!("branch with leftmost child {link}"));
    }
    Ok(())
}

/// Checks cell `index`; returns its length.
fn check_cell(page: &[u8], index: usize, slots_end: usize, leaf: bool) -> Result<usize, String> {
    let cell = read_u16(page, PAGE_HEADER_BYTES + SLOT_BYTES * index) as usize;
    let fixed = if leaf { 3 } else { 10 };
    if cell < slots_end || cell + fixed > page.len() {
        return Err(format!(
            "cell {index} at offset {cell} outside the cell area"
        ));
    }
    let key_length = read_u16(page, cell) as usize;
    if key_length > super::max_key_bytes(page.len()) {
        return Err(format!("cell {index} has a key of {key_length} bytes"));
    }
    let key_end = cell + fixed + key_length;
    let end = if leaf {
        leaf_cell_end(page, index, cell, key_end)?
    } else {
        let child = read_u64(page, cell + 2);
        if child == 0 || child >= format::MAX_PAGE_NUMBER {
            return Err(format!("cell {index} points at page {child}"));
        }
        key_end
    };
    if end > page.len() {
        return Err(format!("cell {index} runs past the end of the page"));
    }
    Ok(end - cell)
}

/// Where a leaf cell ends, by its value tag; inline values and long-value references are
/// bounded here.
fn leaf_cell_end(page: &[u8], index: usize, cell: usize, key_end: usize) -> Result<usize, String> {
    match page[cell + 2] {
        0 if key_end + 4 <= page.len() => {
            let length = read_u32(page, key_end) as usize;
            if length > super::max_inline_value_bytes(page.len()) {
                return Err(format!(
                    "cell {index} has an inline value of {length} bytes"
                ));
            }
            Ok(key_end + 4 + length)
        }
        0 => Ok(usize::MAX),
        1 | 2 if key_end + 24 <= page.len() => {
            let first = read_u64(page, key_end);
            if first == 0 || first >= format::MAX_PAGE_NUMBER {
                return Err(format!("cell {index} has a long value at page {first}"));
            }
            Ok(key_end + 24)
        }
        1 | 2 => Ok(usize::MAX),
        tag => Err(format!("cell {index} has value tag {tag}")),
    }
}
