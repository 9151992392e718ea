//! Changing a tree inside a write transaction: copy on write, split on insert, merge on
//! remove. Committed pages are never changed; a path is copied to new pages the first time
//! the transaction touches it, and later changes edit those copies in place.

use super::dirty::DirtyPages;
use super::node::{Body, Node, Value};
use super::view::NodeView;
use super::MAX_DEPTH;
use crate::db::DbError;
use crate::page::allocator::Allocator;
use crate::page::PageStore;
use std::ops::Bound;

/// A split node: the separator key and the new right page, for the parent to insert.
type Split = Option<(Vec<u8>, u64)>;

/// A write transaction's access to its trees.
pub struct TreeWriter<'a> {
    /// Committed pages.
    pub store: &'a PageStore,
    /// The transaction's changes.
    pub dirty: &'a mut DirtyPages,
    /// The allocator.
    pub allocator: &'a mut Allocator,
}

/// A node as a read sees it: changed in this transaction, or committed.
pub enum NodeRead<'n> {
    /// Changed here.
    Dirty(&'n Node),
    /// Committed.
    Page(crate::page::cache::PageBytes),
}

impl<'a> TreeWriter<'a> {
    fn page_size(&self) -> usize {
        self.store.page_size()
    }

    fn node_mut(&mut self, page: u64) -> &mut Node {
        self.dirty
            .nodes
            .get_mut(&page)
            .expect("a writable page is dirty")
    }

    /// A node for reading.
    pub fn read_node(&self, page: u64) -> Result<NodeRead<'_>, DbError> {
        match self.dirty.nodes.get(&page) {
            Some(node) => Ok(NodeRead::Dirty(node)),
            None => Ok(NodeRead::Page(self.store.tree_page(page)?)),
        }
    }

    /// Makes `page` writable: a page of this transaction as it is, else a copy on a new page
    /// (the old one is retired). Returns the writable page number.
    pub fn writable(&mut self, page: u64) -> Result<u64, DbError> {
        if self.dirty.nodes.contains_key(&page) {
            return Ok(page);
        }
        let bytes = self.store.tree_page(page)?;
        let node = match self
            .dirty
            .take_recent(page, crate::page::format::lsn(&bytes))
        {
            Some(node) => node,
            None => NodeView::to_node_shared(&bytes),
        };
        let copy = self.dirty.temporary();
        self.dirty.nodes.insert(copy, node);
        self.dirty.free(self.allocator, page);
        Ok(copy)
    }

    fn allocate_node(&mut self, node: Node) -> u64 {
        let page = self.dirty.temporary();
        self.dirty.nodes.insert(page, node);
        page
    }

    /// Inserts or replaces; returns the new root and the value replaced.
    pub fn insert(
        &mut self,
        root: u64,
        key: &[u8],
        value: Value,
    ) -> Result<(u64, Option<Value>), DbError> {
        if root == 0 {
            let mut leaf = Node::empty_leaf();
            leaf.leaf_insert(0, key.to_vec(), value);
            return Ok((self.allocate_node(leaf), None));
        }
        let root = self.writable(root)?;
        let (split, replaced) = self.insert_into(root, key, value, true, 0)?;
        let root = match split {
            Some((separator, right)) => self.allocate_node(Node::new_root(root, separator, right)),
            None => root,
        };
        Ok((root, replaced))
    }

    /// Inserts below the writable `page`; returns a split (separator, new right page) for
    /// the parent, and the value replaced.
    fn insert_into(
        &mut self,
        page: u64,
        key: &[u8],
        value: Value,
        rightmost: bool,
        depth: usize,
    ) -> Result<(Split, Option<Value>), DbError> {
        self.check_depth(page, depth)?;
        let page_size = self.page_size();
        let node = self.node_mut(page);
        if node.is_leaf() {
            let (replaced, index) = match node.search(key) {
                Ok(index) => (Some(node.leaf_replace(index, value)), index),
                Err(index) => {
                    node.leaf_insert(index, key.to_vec(), value);
                    (None, index)
                }
            };
            let append = rightmost && index + 1 == node.keys.len();
            return Ok((self.split_if_full(page, page_size, append), replaced));
        }
        let index = node.child_index(key);
        let last = index + 1 == node.children().len();
        let child = node.children()[index];
        let child = self.writable(child)?;
        self.node_mut(page).children_mut()[index] = child;
        let (split, replaced) =
            self.insert_into(child, key, value, rightmost && last, depth + 1)?;
        if let Some((separator, right)) = split {
            self.node_mut(page).branch_insert(index, separator, right);
        }
        Ok((self.split_if_full(page, page_size, false), replaced))
    }

    fn split_if_full(
        &mut self,
        page: u64,
        page_size: usize,
        append: bool,
    ) -> Option<(Vec<u8>, u64)> {
        let node = self.node_mut(page);
        if node.size <= page_size {
            return None;
        }
        let (separator, right) = node.split(page_size, append);
        Some((separator, self.allocate_node(right)))
    }

    /// Removes `key`; returns the new root (0 for an empty tree) and the value removed.
    /// A key that is absent changes nothing.
    pub fn remove(&mut self, root: u64, key: &[u8]) -> Result<(u64, Option<Value>), DbError> {
        if root == 0 || self.get(root, key)?.is_none() {
            return Ok((root, None));
        }
        let root = self.writable(root)?;
        let removed = self.remove_from(root, key, 0)?;
        Ok((self.shrink_root(root), removed))
    }

    fn remove_from(
        &mut self,
        page: u64,
        key: &[u8],
        depth: usize,
    ) -> Result<Option<Value>, DbError> {
        self.check_depth(page, depth)?;
        let node = self.node_mut(page);
        if node.is_leaf() {
            return Ok(match node.search(key) {
                Ok(index) => Some(node.leaf_remove(index)),
                Err(_) => None,
            });
        }
        let index = node.child_index(key);
        let child = node.children()[index];
        let child = self.writable(child)?;
        self.node_mut(page).children_mut()[index] = child;
        let removed = self.remove_from(child, key, depth + 1)?;
        if removed.is_some() {
            self.merge_if_sparse(page, index)?;
        }
        Ok(removed)
    }

    /// Merges child `index` of the writable branch `parent` with a neighbour when it has
    /// fallen below a quarter page and the two fit in one page.
    fn merge_if_sparse(&mut self, parent: u64, index: usize) -> Result<(), DbError> {
        let page_size = self.page_size();
        let parent_node = &self.dirty.nodes[&parent];
        let child_page = parent_node.children()[index];
        let children_count = parent_node.children().len();
        let child = &self.dirty.nodes[&child_page];
        if child.size >= page_size / 4 || children_count < 2 {
            return Ok(());
        }
        let keyless_branch = !child.is_leaf() && child.keys.is_empty();
        let children = parent_node.children().to_vec();
        let left = if index > 0 { index - 1 } else { index };
        let separator = self.node_mut(parent).keys[left].to_vec();
        let fits = {
            let left_node = self.node_copy(children[left])?;
            let right_node = self.node_copy(children[left + 1])?;
            // Siblings of different kinds mean leaves at different depths: a damaged tree.
            if left_node.is_leaf() != right_node.is_leaf() {
                return Err(self.store.corrupt(parent, "siblings at different depths"));
            }
            left_node.merged_size(&separator, &right_node) <= page_size
        };
        if !fits {
            return match keyless_branch {
                true => self.rotate_into(parent, index, left),
                false => Ok(()),
            };
        }
        let left_page = self.writable(children[left])?;
        let right_page = self.writable(children[left + 1])?;
        let right_node = self.dirty.nodes.remove(&right_page).expect("writable");
        self.node_mut(left_page).merge(separator, right_node);
        let parent_node = self.node_mut(parent);
        parent_node.children_mut()[left] = left_page;
        parent_node.branch_remove(left);
        self.dirty.free(self.allocator, right_page);
        Ok(())
    }

    /// Gives the keyless branch child `index` of `parent` one key and child from its
    /// neighbour (which is too full to merge with): through the parent's separator, so the
    /// order of keys is kept.
    fn rotate_into(&mut self, parent: u64, index: usize, left: usize) -> Result<(), DbError> {
        let sibling_index = if left == index { index + 1 } else { left };
        let sibling_page = self.node_mut(parent).children()[sibling_index];
        let sibling = self.writable(sibling_page)?;
        self.node_mut(parent).children_mut()[sibling_index] = sibling;
        let target = self.node_mut(parent).children()[index];
        let mut donor = self.dirty.nodes.remove(&sibling).expect("writable");
        let (raised, child) = if sibling_index < index {
            let child = donor.children_mut().pop().expect("a donor child");
            (donor.keys.pop().expect("a donor key"), child)
        } else {
            (donor.keys.remove(0), donor.children_mut().remove(0))
        };
        let key = self.node_mut(parent).keys.replace(left, raised);
        donor.size = donor.computed_size();
        self.dirty.nodes.insert(sibling, donor);
        let node = self.node_mut(target);
        if sibling_index < index {
            node.keys.insert(0, key);
            node.children_mut().insert(0, child);
        } else {
            node.keys.push(key);
            node.children_mut().push(child);
        }
        node.size = node.computed_size();
        let parent_node = self.node_mut(parent);
        parent_node.size = parent_node.computed_size();
        Ok(())
    }

    fn node_copy(&self, page: u64) -> Result<Node, DbError> {
        Ok(match self.read_node(page)? {
            NodeRead::Dirty(node) => node.clone(),
            NodeRead::Page(bytes) => NodeView::new(&bytes).to_node(),
        })
    }

    /// A root branch left with one child gives way to it; an empty root leaf empties the tree.
    fn shrink_root(&mut self, root: u64) -> u64 {
        let node = &self.dirty.nodes[&root];
        match &node.body {
            Body::Branch(children) if node.keys.is_empty() => {
                let only = children[0];
                self.dirty.free(self.allocator, root);
                self.shrink_root_if_dirty(only)
            }
            Body::Leaf(_) if node.keys.is_empty() => {
                self.dirty.free(self.allocator, root);
                0
            }
            _ => root,
        }
    }

    fn shrink_root_if_dirty(&mut self, root: u64) -> u64 {
        if self.dirty.nodes.contains_key(&root) {
            self.shrink_root(root)
        } else {
            root
        }
    }

    /// The value of `key`.
    pub fn get(&self, root: u64, key: &[u8]) -> Result<Option<Value>, DbError> {
        let mut page = root;
        for _ in 0..MAX_DEPTH {
            if page == 0 {
                return Ok(None);
            }
            match self.read_node(page)? {
                NodeRead::Dirty(node) if node.is_leaf() => {
                    return Ok(node.search(key).ok().map(|i| node.values()[i].clone()))
                }
                NodeRead::Dirty(node) => page = node.children()[node.child_index(key)],
                NodeRead::Page(bytes) => {
                    let view = NodeView::new(&bytes);
                    if view.is_leaf() {
                        return Ok(view.search(key).ok().map(|i| view.value(i).to_value()));
                    }
                    page = view.child(view.child_index(key));
                }
            }
        }
        Err(self.store.too_deep(root))
    }

    /// Every entry within the bounds, in key order.
    pub fn collect(
        &self,
        root: u64,
        bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>),
    ) -> Result<Vec<(Vec<u8>, Value)>, DbError> {
        let mut entries = Vec::new();
        if root != 0 {
            self.collect_below(root, bounds, &mut entries, 0)?;
        }
        Ok(entries)
    }

    fn collect_below(
        &self,
        page: u64,
        bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>),
        entries: &mut Vec<(Vec<u8>, Value)>,
        depth: usize,
    ) -> Result<(), DbError> {
        self.check_depth(page, depth)?;
        let node = self.node_copy(page)?;
        match &node.body {
            Body::Leaf(values) => {
                for (key, value) in node.keys.iter().zip(values) {
                    if super::in_bounds(key, bounds) {
                        entries.push((key.to_vec(), value.clone()));
                    }
                }
            }
            Body::Branch(children) => {
                let (first, last) = super::child_span(&node.keys, bounds);
                for &child in &children[first..=last] {
                    self.collect_below(child, bounds, entries, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// Every page of a tree (to drop it), leaves' long values included via `long_value`.
    pub fn pages(
        &self,
        root: u64,
        long_values: &mut Vec<super::node::LongRef>,
    ) -> Result<Vec<u64>, DbError> {
        let mut pages = Vec::new();
        let mut stack = vec![(root, 0)];
        while let Some((page, depth)) = stack.pop() {
            if page == 0 {
                continue;
            }
            self.check_depth(page, depth)?;
            pages.push(page);
            let node = self.node_copy(page)?;
            match &node.body {
                Body::Leaf(values) => long_values.extend(values.iter().filter_map(|v| match v {
                    Value::Long(long) => Some(*long),
                    Value::Inline(_) => None,
                })),
                Body::Branch(children) => stack.extend(children.iter().map(|&c| (c, depth + 1))),
            }
        }
        Ok(pages)
    }

    fn check_depth(&self, page: u64, depth: usize) -> Result<(), DbError> {
        if depth >= MAX_DEPTH {
            return Err(self.store.too_deep(page));
        }
        Ok(())
    }
}
