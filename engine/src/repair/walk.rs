//! The salvaging walk: a tree followed from its root through the pages the census kept.
//! Where a child is unreadable, out of its parent's bounds, reached twice or too deep, the
//! key range its parent gave it is recorded as lost and the walk goes on with its siblings.

use super::census::Census;
use crate::btree::view::NodeView;
use crate::btree::MAX_DEPTH;
use crate::db::DbError;
use crate::page::file::DatabaseFile;
use std::collections::HashSet;

/// A key range a tree lost with one page: from `lower` (inclusive; `None`: the start) to
/// `upper` (exclusive; `None`: the end), the bounds the page's parent gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LostSubtree {
    /// The page that could not be used.
    pub page: u64,
    /// The lowest key it may have held.
    pub lower: Option<Vec<u8>>,
    /// The key its range ends before.
    pub upper: Option<Vec<u8>>,
    /// Why it could not be used.
    pub problem: String,
}

impl LostSubtree {
    /// Whether keys `first..=last` all lie within this range.
    pub fn holds(&self, first: &[u8], last: &[u8]) -> bool {
        self.lower.as_deref().is_none_or(|lower| first >= lower)
            && self.upper.as_deref().is_none_or(|upper| last < upper)
    }
}

/// What a walk found: the readable leaves in key order and the ranges lost.
#[derive(Clone, Debug, Default)]
pub(super) struct Salvaged {
    /// Leaf pages, in key order.
    pub leaves: Vec<u64>,
    /// Ranges lost below the root.
    pub lost: Vec<LostSubtree>,
    /// The lowest and highest key on the leaves.
    pub span: Option<(Vec<u8>, Vec<u8>)>,
    /// The newest log position of any page walked (as a u64).
    pub newest_lsn: u64,
}

/// Walks trees through the census, claiming every page it reaches so that none is taken
/// twice (by two trees, or by a loop).
pub(super) struct Walker<'a> {
    pub file: &'a DatabaseFile,
    pub census: &'a Census,
    pub claimed: &'a mut HashSet<u64>,
}

impl Walker<'_> {
    /// Walks the tree at `root` (0: an empty tree).
    pub fn walk(&mut self, root: u64) -> Result<Salvaged, DbError> {
        let mut salvaged = Salvaged::default();
        if root != 0 {
            self.node(root, (None, None), 0, &mut salvaged)?;
        }
        Ok(salvaged)
    }

    fn node(
        &mut self,
        page: u64,
        bounds: (Option<Vec<u8>>, Option<Vec<u8>>),
        depth: usize,
        salvaged: &mut Salvaged,
    ) -> Result<(), DbError> {
        let problem = if depth >= MAX_DEPTH {
            Some(format!("deeper than {MAX_DEPTH} levels (a loop)"))
        } else if let Some(problem) = self.census.tree_problem(page) {
            Some(problem)
        } else if self.claimed.contains(&page) {
            Some("reached twice".into())
        } else {
            None
        };
        if let Some(problem) = problem {
            salvaged.lost.push(lost(page, bounds, problem));
            return Ok(());
        }
        let (bytes, _) = self.file.read_page(page)?;
        let view = NodeView::new(&bytes);
        if !within(&view, &bounds) {
            let problem = "its keys lie outside its parent's bounds".to_owned();
            salvaged.lost.push(lost(page, bounds, problem));
            return Ok(());
        }
        self.claimed.insert(page);
        let lsn = crate::page::format::lsn(&bytes).to_u64();
        salvaged.newest_lsn = salvaged.newest_lsn.max(lsn);
        if view.is_leaf() {
            take_leaf(page, &view, salvaged);
            return Ok(());
        }
        for index in 0..=view.len() {
            let lower = match index {
                0 => bounds.0.clone(),
                _ => Some(view.key(index - 1).to_vec()),
            };
            let upper = match index == view.len() {
                true => bounds.1.clone(),
                false => Some(view.key(index).to_vec()),
            };
            self.node(view.child(index), (lower, upper), depth + 1, salvaged)?;
        }
        Ok(())
    }
}

fn lost(page: u64, bounds: (Option<Vec<u8>>, Option<Vec<u8>>), problem: String) -> LostSubtree {
    LostSubtree {
        page,
        lower: bounds.0,
        upper: bounds.1,
        problem,
    }
}

/// Whether a page's keys lie within the bounds its parent gives it.
fn within(view: &NodeView<'_>, bounds: &(Option<Vec<u8>>, Option<Vec<u8>>)) -> bool {
    if view.is_empty() {
        return true;
    }
    let (first, last) = (view.key(0), view.key(view.len() - 1));
    bounds.0.as_deref().is_none_or(|lower| first >= lower)
        && bounds.1.as_deref().is_none_or(|upper| last < upper)
}

fn take_leaf(page: u64, view: &NodeView<'_>, salvaged: &mut Salvaged) {
    salvaged.leaves.push(page);
    if view.is_empty() {
        return;
    }
    let (first, last) = (view.key(0), view.key(view.len() - 1));
    salvaged.span = Some(match salvaged.span.take() {
        None => (first.to_vec(), last.to_vec()),
        Some((low, high)) => (low.min(first.to_vec()), high.max(last.to_vec())),
    });
}
