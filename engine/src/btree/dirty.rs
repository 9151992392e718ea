//! The pages a write transaction has changed, kept decoded until commit.
//!
//! Changed tree nodes live under temporary numbers (from [`TEMPORARY_PAGE_BASE`] up) and get
//! real page numbers only at commit, after repacking, in key order: so a large transaction
//! allocates no page it later drops, and its leaves land on ascending pages.

use super::node::Node;
use crate::log::LogPosition;
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
    /// Long-value pages handed to the page cache before commit (a streamed value's), to
    /// drop from the cache if the transaction does not keep them.
    pub staged: Vec<u64>,
    /// Pages of committed state this transaction stopped using.
    pub retired: Vec<u64>,
    /// Nodes recent commits wrote, still decoded, by page number, with the log position
    /// sealed into their page: the branches of recent commits and every node of the last
    /// one. A transaction that copies one of those pages again (the root, the branches above
    /// its leaf, the catalog: commits keep copying them) takes the node instead of decoding
    /// the page. At most [`RECENT_NODES`] nodes.
    pub recent: HashMap<u64, (LogPosition, Node)>,
    next_temporary: u64,
}

/// Most nodes kept decoded in [`DirtyPages::recent`]: every branch of a tree of a few million
/// entries. A branch node takes at most about twice a page, so at most 16 MiB at the default
/// page size (the last commit's leaves also keep the page their values point into).
pub const RECENT_NODES: usize = 1024;

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

    /// The decoded node of committed `page`, if the last commit left it here and `page`
    /// still holds what that commit sealed (`sealed` is the position in the page).
    pub fn take_recent(&mut self, page: u64, sealed: LogPosition) -> Option<Node> {
        match self.recent.remove(&page) {
            Some((position, node)) if position == sealed => Some(node),
            _ => None,
        }
    }

    /// Keeps the nodes a commit sealed at `end` decoded (see [`DirtyPages::recent`]).
    pub fn keep_recent(&mut self, end: LogPosition, sealed: Vec<(u64, Node)>) {
        // A leaf is copied again only if the next commit hits the same one; branches near
        // the root are copied by most commits.
        self.recent.retain(|_, (_, node)| !node.is_leaf());
        if self.recent.len() + sealed.len() > RECENT_NODES {
            self.recent.clear();
        }
        if sealed.len() <= RECENT_NODES {
            self.recent
                .extend(sealed.into_iter().map(|(page, node)| (page, (end, node))));
        }
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

    /// The staged pages (see [`DirtyPages::staged`]) the transaction no longer holds, all of
    /// them when it aborts; the list is emptied.
    pub fn take_unkept_staged(&mut self, aborting: bool) -> Vec<u64> {
        let mut staged = std::mem::take(&mut self.staged);
        if !aborting {
            staged.retain(|page| !self.allocated.contains(page));
        }
        staged
    }
}
