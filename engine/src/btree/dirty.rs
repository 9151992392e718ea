//! The pages a write transaction has changed, kept decoded until commit.
//!
//! Changed tree nodes live under temporary numbers (from [`TEMPORARY_PAGE_BASE`] up) and get
//! real page numbers only at commit, after repacking, in key order: so a large transaction
//! allocates no page it later drops, and its leaves land on ascending pages.

use super::node::Node;
use crate::page::allocator::Allocator;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Temporary numbers of changed nodes start here; no file has this many pages.
pub const TEMPORARY_PAGE_BASE: u64 = 1 << 62;

/// A write transaction's changed pages.
#[derive(Default)]
pub struct DirtyPages {
    /// Changed tree nodes, by temporary number.
    pub nodes: HashMap<u64, Node>,
    /// Nodes given their real page number at commit.
    pub assigned: Vec<(u64, Node)>,
    /// Long-value pages, formatted but not sealed, by real page number.
    pub long: HashMap<u64, Vec<u8>>,
    /// Real pages allocated by this transaction.
    pub allocated: HashSet<u64>,
    /// Pages of committed state this transaction stopped using.
    pub retired: Vec<u64>,
    next_temporary: u64,
}

impl DirtyPages {
    /// A temporary number for a new or copied node.
    pub fn temporary(&mut self) -> u64 {
        self.next_temporary += 1;
        TEMPORARY_PAGE_BASE + self.next_temporary
    }

    /// Allocates a real page for this transaction.
    pub fn allocate(&mut self, allocator: &mut Allocator) -> u64 {
        let page = allocator.allocate();
        let fresh = self.allocated.insert(page);
        assert!(fresh, "page {page} allocated twice");
        page
    }

    /// Stops using a page: a temporary node is dropped, a real page of ours goes straight
    /// back, a committed one is retired.
    pub fn free(&mut self, allocator: &mut Allocator, page: u64) {
        if page >= TEMPORARY_PAGE_BASE {
            self.nodes.remove(&page);
        } else if self.allocated.remove(&page) {
            self.long.remove(&page);
            allocator.release(page);
        } else {
            self.retired.push(page);
        }
    }

    /// Gives every temporary node reachable from `root` a real page, children before their
    /// parent (so leaves get ascending pages in key order); returns the root's real page.
    pub fn assign(&mut self, allocator: &mut Allocator, root: u64) -> u64 {
        if root < TEMPORARY_PAGE_BASE {
            return root;
        }
        let mut node = self.nodes.remove(&root).expect("a temporary node");
        if !node.is_leaf() {
            let children = node.children().to_vec();
            let real: Vec<u64> = children
                .into_iter()
                .map(|c| self.assign(allocator, c))
                .collect();
            *node.children_mut() = real;
        }
        let page = self.allocate(allocator);
        self.assigned.push((page, node));
        page
    }

    /// Drops every change, returning the pages allocated.
    pub fn abort(&mut self, allocator: &mut Allocator) {
        for page in self.allocated.drain() {
            allocator.release(page);
        }
        self.nodes.clear();
        self.assigned.clear();
        self.long.clear();
        self.retired.clear();
    }
}
