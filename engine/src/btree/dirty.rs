//! The pages a write transaction has changed, kept decoded until commit.

use super::node::Node;
use crate::page::allocator::Allocator;
use std::collections::{HashMap, HashSet};

/// A write transaction's changed pages. Pages it allocated are private to it; pages of
/// committed state it stopped using are retired at commit.
#[derive(Default)]
pub struct DirtyPages {
    /// Tree nodes, by their new page number.
    pub nodes: HashMap<u64, Node>,
    /// Long-value pages, formatted but not sealed.
    pub long: HashMap<u64, Vec<u8>>,
    /// Pages allocated by this transaction.
    pub allocated: HashSet<u64>,
    /// Pages of committed state this transaction stopped using.
    pub retired: Vec<u64>,
}

impl DirtyPages {
    /// Allocates a page for this transaction.
    pub fn allocate(&mut self, allocator: &mut Allocator) -> u64 {
        let page = allocator.allocate();
        let fresh = self.allocated.insert(page);
        assert!(fresh, "page {page} allocated twice");
        page
    }

    /// Stops using a page: one of ours goes straight back, a committed one is retired.
    pub fn free(&mut self, allocator: &mut Allocator, page: u64) {
        if self.allocated.remove(&page) {
            self.nodes.remove(&page);
            self.long.remove(&page);
            allocator.release(page);
        } else {
            self.retired.push(page);
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.allocated.is_empty() && self.retired.is_empty()
    }

    /// Drops every change, returning the pages allocated.
    pub fn abort(&mut self, allocator: &mut Allocator) {
        for page in self.allocated.drain() {
            allocator.release(page);
        }
        self.nodes.clear();
        self.long.clear();
        self.retired.clear();
    }
}
