//! Walking committed trees: point lookups and cursors over key ranges in both directions.

use super::view::{NodeView, ValueRef};
use super::MAX_DEPTH;
use crate::db::DbError;
use crate::page::cache::PageBytes;
use crate::page::format;
use crate::page::PageStore;
use std::ops::Bound;

/// The leaf page and index holding `key` in the tree at `root`, if present.
pub fn lookup(store: &PageStore, root: u64, key: &[u8]) -> Result<Option<Position>, DbError> {
    if root == 0 {
        return Ok(None);
    }
    lookup_from(store, &store.tree_page(root)?, key)
}

/// A leaf page and an index in it.
pub type Position = (PageBytes, usize);

/// [`lookup`] from a root page already at hand (a reader keeps its table's root, so that
/// concurrent readers do not all go through the cache for the same page).
pub fn lookup_from(
    store: &PageStore,
    root: &PageBytes,
    key: &[u8],
) -> Result<Option<Position>, DbError> {
    let mut bytes = root.clone();
    for _ in 0..MAX_DEPTH {
        let view = NodeView::new(&bytes);
        if view.is_leaf() {
            return Ok(view.search(key).ok().map(|index| (bytes.clone(), index)));
        }
        let child = view.child(view.child_index(key));
        bytes = store.tree_page(child)?;
    }
    Err(store.too_deep(format::read_u64(root, 8)))
}

/// Which way a cursor moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Ascending keys.
    Forward,
    /// Descending keys.
    Backward,
}

/// A position in a tree: the path from the root. A branch entry's index is the child being
/// visited; a leaf entry's index is, going forward, the next entry, going backward, one past
/// it.
pub struct Cursor {
    stack: Vec<(PageBytes, usize)>,
    direction: Direction,
}

impl Cursor {
    /// A cursor at the first entry within `bound` (the start bound going forward, the end
    /// bound going backward).
    pub fn seek(
        store: &PageStore,
        root: u64,
        bound: Bound<&[u8]>,
        direction: Direction,
    ) -> Result<Self, DbError> {
        match root {
            0 => Ok(Self {
                stack: Vec::new(),
                direction,
            }),
            root => Self::seek_from(store, store.tree_page(root)?, bound, direction),
        }
    }

    /// [`Cursor::seek`] from a root page already at hand.
    pub fn seek_from(
        store: &PageStore,
        root: PageBytes,
        bound: Bound<&[u8]>,
        direction: Direction,
    ) -> Result<Self, DbError> {
        let mut cursor = Self {
            stack: Vec::with_capacity(4),
            direction,
        };
        let mut bytes = root;
        loop {
            if cursor.stack.len() >= MAX_DEPTH {
                return Err(store.too_deep(format::read_u64(&bytes, 8)));
            }
            let view = NodeView::new(&bytes);
            let index = seek_index(&view, bound, direction);
            let child = (!view.is_leaf()).then(|| view.child(index));
            cursor.stack.push((bytes, index));
            match child {
                Some(child) => bytes = store.tree_page(child)?,
                None => return Ok(cursor),
            }
        }
    }

    /// The next entry: its leaf page and index.
    pub fn next(&mut self, store: &PageStore) -> Result<Option<(PageBytes, usize)>, DbError> {
        let Some(index) = self.advance(store)? else {
            return Ok(None);
        };
        Ok(self.leaf().map(|leaf| (leaf.clone(), index)))
    }

    /// Moves to the next entry; returns its index in [`Cursor::leaf`].
    pub fn advance(&mut self, store: &PageStore) -> Result<Option<usize>, DbError> {
        loop {
            let Some((bytes, index)) = self.stack.last_mut() else {
                return Ok(None);
            };
            let view = NodeView::new(bytes);
            match self.direction {
                Direction::Forward if *index < view.len() => {
                    *index += 1;
                    return Ok(Some(*index - 1));
                }
                Direction::Backward if *index > 0 => {
                    *index -= 1;
                    return Ok(Some(*index));
                }
                _ => {}
            }
            self.stack.pop();
            self.step_to_next_leaf(store)?;
        }
    }

    /// The leaf the cursor is in.
    pub fn leaf(&self) -> Option<&PageBytes> {
        self.stack.last().map(|(leaf, _)| leaf)
    }

    /// The entry the last [`Cursor::advance`] returned (the cursor moves to the next leaf
    /// only when asked for a further entry, so it is still in the current leaf).
    pub fn last_returned(&self) -> Option<(&PageBytes, usize)> {
        let (leaf, index) = self.stack.last()?;
        match self.direction {
            Direction::Forward => index.checked_sub(1).map(|index| (leaf, index)),
            Direction::Backward => (*index < NodeView::new(leaf).len()).then_some((leaf, *index)),
        }
    }

    /// After a leaf is done: moves the nearest branch with a further child to it and
    /// descends to that child's first (or last) leaf.
    fn step_to_next_leaf(&mut self, store: &PageStore) -> Result<(), DbError> {
        while let Some((bytes, index)) = self.stack.last_mut() {
            let view = NodeView::new(bytes);
            let further = match self.direction {
                Direction::Forward => *index < view.len(),
                Direction::Backward => *index > 0,
            };
            if !further {
                self.stack.pop();
                continue;
            }
            match self.direction {
                Direction::Forward => *index += 1,
                Direction::Backward => *index -= 1,
            }
            let child = view.child(*index);
            return self.descend_edge(store, child);
        }
        Ok(())
    }

    fn descend_edge(&mut self, store: &PageStore, mut page: u64) -> Result<(), DbError> {
        loop {
            if self.stack.len() >= MAX_DEPTH {
                return Err(store.too_deep(page));
            }
            let bytes = store.tree_page(page)?;
            let view = NodeView::new(&bytes);
            let index = match self.direction {
                Direction::Forward => 0,
                Direction::Backward => view.len(),
            };
            let leaf = view.is_leaf();
            let child = if leaf { 0 } else { view.child(index) };
            self.stack.push((bytes, index));
            if leaf {
                return Ok(());
            }
            page = child;
        }
    }
}

fn seek_index(view: &NodeView<'_>, bound: Bound<&[u8]>, direction: Direction) -> usize {
    let (key, included) = match bound {
        Bound::Unbounded => {
            return match direction {
                Direction::Forward => 0,
                Direction::Backward => view.len(),
            }
        }
        Bound::Included(key) => (key, true),
        Bound::Excluded(key) => (key, false),
    };
    let found = view.search(key);
    if !view.is_leaf() {
        return match (found, direction, included) {
            (Ok(index), Direction::Backward, false) => index,
            (Ok(index), _, _) => index + 1,
            (Err(index), _, _) => index,
        };
    }
    match (found, direction, included) {
        (Ok(index), Direction::Forward, true) => index,
        (Ok(index), Direction::Forward, false) => index + 1,
        (Ok(index), Direction::Backward, true) => index + 1,
        (Ok(index), Direction::Backward, false) => index,
        (Err(index), _, _) => index,
    }
}

/// A leaf entry's key and value bytes (a long value is read from its chain).
pub fn entry(
    store: &PageStore,
    leaf: &PageBytes,
    index: usize,
) -> Result<(Vec<u8>, Vec<u8>), DbError> {
    let view = NodeView::new(leaf);
    let value = value_bytes(store, view.value(index))?;
    Ok((view.key(index).to_vec(), value))
}

/// The bytes of a value.
pub fn value_bytes(store: &PageStore, value: ValueRef<'_>) -> Result<Vec<u8>, DbError> {
    match value {
        ValueRef::Inline(bytes) => Ok(bytes.to_vec()),
        ValueRef::Long(long) => crate::value::long::read(
            long,
            &|page| {
                store
                    .page(page)
                    .map(|bytes| std::borrow::Cow::Owned(bytes.to_vec()))
            },
            store.file().path(),
        ),
    }
}
