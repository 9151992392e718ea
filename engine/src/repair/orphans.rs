//! Orphaned subtrees: readable tree pages that no walk from the catalog reached and that the
//! free list does not hold. In an undamaged file every allocated page is reachable or free,
//! so an orphan is a subtree whose parent was discarded: its leaves are adopted back into the
//! lost range they fit.

use super::census::{Census, PageKind};
use super::walk::{Salvaged, Walker};
use crate::btree::view::NodeView;
use crate::db::DbError;
use std::collections::HashSet;

/// A subtree no walk reached.
#[derive(Debug)]
pub(super) struct Orphan {
    /// Its root page.
    pub root: u64,
    /// What a walk from that root found.
    pub salvaged: Salvaged,
}

/// Every orphaned subtree, walked from its root (a page no other orphan branch names), the
/// oldest first (by the newest page change in it), so that where two overlap the newer is
/// written last and wins.
pub(super) fn find(walker: &mut Walker<'_>, free: &HashSet<u64>) -> Result<Vec<Orphan>, DbError> {
    let unclaimed: Vec<u64> = walker
        .census
        .tree_pages()
        .filter(|page| !walker.claimed.contains(page) && !free.contains(page))
        .collect();
    let mut children = HashSet::new();
    for &page in &unclaimed {
        if is_branch(walker.census, page) {
            let (bytes, _) = walker.file.read_page(page)?;
            let view = NodeView::new(&bytes);
            children.extend((0..=view.len()).map(|index| view.child(index)));
        }
    }
    let mut orphans = Vec::new();
    for root in unclaimed {
        if children.contains(&root) || walker.claimed.contains(&root) {
            continue;
        }
        let salvaged = walker.walk(root)?;
        if salvaged.span.is_some() {
            orphans.push(Orphan { root, salvaged });
        }
    }
    orphans.sort_by_key(|orphan| (orphan.salvaged.newest_lsn, orphan.root));
    Ok(orphans)
}

/// Whether `census` counts `page` as a readable branch.
fn is_branch(census: &Census, page: u64) -> bool {
    matches!(census.kind(page), Some(PageKind::Tree { leaf: false, .. }))
}
