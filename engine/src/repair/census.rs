//! The census: every allocated page of the damaged file read once and sorted by what it is.
//! A page whose checksum fails, that says it is another page, or whose slots and cells do not
//! fit is discarded here, and nothing later reads it.

use crate::btree::view;
use crate::db::DbError;
use crate::page::file::DatabaseFile;
use crate::page::format::{self, PageType};
use std::collections::BTreeMap;

/// What one page is, as far as the census could tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PageKind {
    /// A readable leaf or branch, with the log position of its last change.
    Tree { leaf: bool, lsn: u64 },
    /// A readable long-value page.
    LongValue,
    /// A readable free-list page.
    FreeList,
    /// Discarded (the reason is in [`Census::discarded`]).
    Unreadable,
}

/// Every page from the first data page up to the end of the allocated pages.
pub(super) struct Census {
    first: u64,
    kinds: Vec<PageKind>,
    /// Discarded pages and why.
    pub discarded: BTreeMap<u64, String>,
}

impl Census {
    /// Reads pages `first..end` of `file` (`end` bounded by the caller to the file's length).
    /// An I/O error stops the census: a repair never takes a page it could not read for lost.
    pub fn take(file: &DatabaseFile, first: u64, end: u64) -> Result<Self, DbError> {
        let mut census = Self {
            first,
            kinds: Vec::with_capacity(usize::try_from(end.saturating_sub(first)).unwrap_or(0)),
            discarded: BTreeMap::new(),
        };
        for number in first..end {
            let page = file.read_raw(number)?;
            let kind = match classify(&page, number) {
                Ok(kind) => kind,
                Err(problem) => {
                    census.discarded.insert(number, problem);
                    PageKind::Unreadable
                }
            };
            census.kinds.push(kind);
        }
        Ok(census)
    }

    /// What page `number` is; `None` outside the pages counted.
    pub fn kind(&self, number: u64) -> Option<PageKind> {
        let index = number.checked_sub(self.first)?;
        self.kinds.get(usize::try_from(index).ok()?).copied()
    }

    /// Why `number` cannot be used as a tree page.
    pub fn tree_problem(&self, number: u64) -> Option<String> {
        match self.kind(number) {
            Some(PageKind::Tree { .. }) => None,
            Some(PageKind::Unreadable) => Some(
                self.discarded
                    .get(&number)
                    .cloned()
                    .unwrap_or_else(|| "unreadable".into()),
            ),
            Some(PageKind::LongValue) => Some("a long-value page where a tree page belongs".into()),
            Some(PageKind::FreeList) => Some("a free-list page where a tree page belongs".into()),
            None => Some("outside the file's allocated pages".into()),
        }
    }

    /// Every readable tree page, in page order.
    pub fn tree_pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.kinds
            .iter()
            .enumerate()
            .filter(|(_, kind)| matches!(kind, PageKind::Tree { .. }))
            .map(|(index, _)| self.first + index as u64)
    }

    /// Pages counted.
    pub fn pages(&self) -> u64 {
        self.kinds.len() as u64
    }
}

/// The kind of a page that verifies, or why it does not.
fn classify(page: &[u8], number: u64) -> Result<PageKind, String> {
    let page_type = format::verify(page, number).map_err(|problem| problem.to_string())?;
    Ok(match page_type {
        PageType::Leaf | PageType::Branch => {
            view::validate(page).map_err(|reason| format!("malformed tree page: {reason}"))?;
            PageKind::Tree {
                leaf: page_type == PageType::Leaf,
                lsn: format::lsn(page).to_u64(),
            }
        }
        PageType::LongValue => PageKind::LongValue,
        PageType::FreeList => PageKind::FreeList,
    })
}
