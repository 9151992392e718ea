//! Repacking at commit: leaves a transaction changed side by side are refilled to nearly
//! full pages before they are written.
//!
//! Random inserts leave leaves about 70% full (each split halves one). A large transaction
//! (a bulk load) changes whole runs of neighbouring leaves; packing those runs to 15/16 of a
//! page makes the file about a quarter smaller. Only leaves already copied by this
//! transaction are repacked, so this never copies a page it would not have written anyway.

use super::node::{Body, Node, Value};
use super::write::TreeWriter;
use crate::page::format::PAGE_HEADER_BYTES;

/// Transactions that changed fewer nodes than this are not repacked.
const MIN_NODES_TO_REPACK: usize = 16;

impl TreeWriter<'_> {
    /// Repacks runs of this transaction's leaves under the tree at `root`.
    pub fn repack(&mut self, root: u64) {
        // A small transaction changed too few leaves for a run worth repacking; walking its
        // branches would cost more than a single-insert commit does otherwise.
        if self.dirty.nodes.len() >= MIN_NODES_TO_REPACK && self.dirty.nodes.contains_key(&root) {
            self.repack_below(root, 0);
        }
    }

    fn repack_below(&mut self, page: u64, depth: usize) {
        if depth >= super::MAX_DEPTH {
            return;
        }
        let node = &self.dirty.nodes[&page];
        let Body::Branch(children) = &node.body else {
            return;
        };
        let children = children.clone();
        let leaves = children
            .iter()
            .find_map(|child| self.dirty.nodes.get(child))
            .is_some_and(Node::is_leaf);
        if !leaves {
            for child in children {
                if self.dirty.nodes.contains_key(&child) {
                    self.repack_below(child, depth + 1);
                }
            }
            return;
        }
        for (start, end) in dirty_leaf_runs(&children, |child| {
            self.dirty.nodes.get(&child).is_some_and(Node::is_leaf)
        })
        .into_iter()
        .rev()
        {
            self.repack_run(page, start, end);
        }
    }

    /// Refills children `start..end` of `parent` (all leaves of this transaction).
    fn repack_run(&mut self, parent: u64, start: usize, end: usize) {
        let page_size = self.store.page_size();
        let target = page_size - page_size / 16;
        let pages: Vec<u64> = self.dirty.nodes[&parent].children()[start..end].to_vec();
        let needed = leaves_needed(pages.iter().map(|page| &self.dirty.nodes[page]), target);
        // A branch keeps at least one key: a run of all its children stays two leaves at least.
        let whole = start == 0 && end == self.dirty.nodes[&parent].children().len();
        if needed >= pages.len() || (whole && needed < 2) {
            return;
        }
        let mut keys = Vec::new();
        let mut values = Vec::new();
        for page in &pages {
            let node = self.dirty.nodes.remove(page).expect("a dirty leaf");
            let Body::Leaf(node_values) = node.body else {
                unreachable!("runs hold leaves only")
            };
            keys.extend(node.keys.into_vec());
            values.extend(node_values);
        }
        let leaves = fill(keys, values, target);
        debug_assert_eq!(leaves.len(), needed);
        self.place_leaves(parent, start, end, &pages, leaves);
    }

    fn place_leaves(
        &mut self,
        parent: u64,
        start: usize,
        end: usize,
        pages: &[u64],
        leaves: Vec<Node>,
    ) {
        let mut numbers = Vec::with_capacity(leaves.len());
        for (index, leaf) in leaves.into_iter().enumerate() {
            let number = match pages.get(index) {
                Some(&number) => number,
                None => self.dirty.temporary(),
            };
            self.dirty.nodes.insert(number, leaf);
            numbers.push(number);
        }
        for &unused in &pages[numbers.len()..] {
            self.dirty.free(self.allocator, unused);
        }
        let separators: Vec<Vec<u8>> = numbers[1..]
            .iter()
            .map(|number| self.dirty.nodes[number].keys[0].to_vec())
            .collect();
        let node = self.dirty.nodes.get_mut(&parent).expect("a dirty parent");
        node.keys.splice(start..end - 1, separators);
        node.children_mut().splice(start..end, numbers);
        node.size = node.computed_size();
    }
}

/// Maximal runs (start, end) of at least two consecutive children passing `dirty`.
fn dirty_leaf_runs(children: &[u64], dirty: impl Fn(u64) -> bool) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (index, &child) in children.iter().enumerate() {
        match (dirty(child), start) {
            (true, None) => start = Some(index),
            (false, Some(first)) => {
                if index - first >= 2 {
                    runs.push((first, index));
                }
                start = None;
            }
            _ => {}
        }
    }
    if let Some(first) = start {
        if children.len() - first >= 2 {
            runs.push((first, children.len()));
        }
    }
    runs
}

/// How many leaves [`fill`] would make of these leaves' entries.
fn leaves_needed<'n>(leaves: impl Iterator<Item = &'n Node>, target: usize) -> usize {
    let (mut count, mut size, mut entries) = (1, PAGE_HEADER_BYTES, 0);
    for leaf in leaves {
        for (key, value) in leaf.keys.iter().zip(leaf.values()) {
            let cell = super::node::leaf_cell_bytes(key, value);
            if size + cell > target && entries > 0 {
                count += 1;
                size = PAGE_HEADER_BYTES;
                entries = 0;
            }
            size += cell;
            entries += 1;
        }
    }
    count
}

/// Fills leaves in key order up to `target` bytes each (at least one entry per leaf, and at
/// least one leaf).
fn fill(keys: Vec<Vec<u8>>, values: Vec<Value>, target: usize) -> Vec<Node> {
    let mut leaves = vec![Node::empty_leaf()];
    for (key, value) in keys.into_iter().zip(values) {
        let cell = super::node::leaf_cell_bytes(&key, &value);
        let current = leaves.last_mut().expect("at least one leaf");
        if current.size + cell > target && !current.keys.is_empty() {
            leaves.push(Node::empty_leaf());
        }
        let current = leaves.last_mut().expect("at least one leaf");
        let index = current.keys.len();
        current.leaf_insert(index, key, value);
    }
    debug_assert!(leaves.iter().all(|leaf| leaf.size >= PAGE_HEADER_BYTES));
    leaves
}
