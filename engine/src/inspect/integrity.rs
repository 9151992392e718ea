//! A read-only B+tree check, like `eseutil /g`: every tree page in key order and within its
//! parent's bounds, leaves all at one depth, entry counts and content checksums matching the
//! catalog (and the catalog's totals matching the header's), long-value chains whole, and
//! every page either reachable exactly once or free.
//!
//! Trees here have no sibling links (copy on write would have to copy every neighbour), so
//! "sibling order" is checked as the bounds each parent gives its children.

use super::DatabaseImage;
use crate::btree::view::{NodeView, ValueRef};
use crate::content::{entry_hash, ContentTotals};
use crate::db::{DbError, KeyValue, TableMeta};
use crate::page::free_list;
use std::borrow::Cow;
use std::collections::HashMap;

/// One inconsistency.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IntegrityProblem {
    /// The page concerned.
    pub page: u64,
    /// The table (or "catalog", "free list").
    pub owner: String,
    /// What is wrong.
    pub problem: String,
}

/// What the check found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IntegrityReport {
    /// Tables checked.
    pub tables: u64,
    /// Entries in all tables.
    pub entries: u64,
    /// Branch and leaf pages.
    pub tree_pages: u64,
    /// Long-value pages.
    pub long_value_pages: u64,
    /// Free pages, retired pages and free-list pages.
    pub free_pages: u64,
    /// Every problem found.
    pub problems: Vec<IntegrityProblem>,
}

impl IntegrityReport {
    /// Whether anything is wrong.
    pub fn damaged(&self) -> bool {
        !self.problems.is_empty()
    }
}

/// Leaked pages listed one by one, at most.
const MAX_LEAKED_LISTED: u64 = 1000;

struct Checker<'a> {
    image: &'a DatabaseImage,
    owners: HashMap<u64, String>,
    report: IntegrityReport,
    leaf_depth: Option<usize>,
    /// The sum of the entry hashes of the table being checked (none for the catalog).
    content: Option<u64>,
    /// Entries and checksums of every table, to compare with the header's totals.
    totals: ContentTotals,
}

/// Checks the file; damage is reported, not returned as an error (only I/O errors are).
pub fn integrity(image: &DatabaseImage) -> Result<IntegrityReport, DbError> {
    let mut checker = Checker {
        image,
        owners: HashMap::new(),
        report: IntegrityReport::default(),
        leaf_depth: None,
        content: None,
        totals: ContentTotals::default(),
    };
    let header = &image.header.header;
    let catalog = checker.check_tree(header.catalog_root, "catalog")?;
    for (name, value) in catalog {
        checker.check_table(&name, &value, header.catalog_root)?;
    }
    if checker.totals != header.content {
        checker.problem(
            0,
            "header",
            format!(
                "the header's content is {} entries, checksum {:016x}; the catalog's tables \
                 add up to {} entries, checksum {:016x}",
                header.content.entries,
                header.content.checksum,
                checker.totals.entries,
                checker.totals.checksum
            ),
        );
    }
    checker.check_free_list()?;
    checker.check_every_page_owned();
    Ok(checker.report)
}

impl Checker<'_> {
    fn problem(&mut self, page: u64, owner: &str, problem: String) {
        self.report.problems.push(IntegrityProblem {
            page,
            owner: owner.to_owned(),
            problem,
        });
    }

    /// Records that `owner` uses `page`; false (with a problem) if it is out of range or
    /// already used.
    fn claim(&mut self, page: u64, owner: &str) -> bool {
        let next_page = self.image.header.header.next_page;
        if page < self.image.first_data_page() || page >= next_page {
            self.problem(
                page,
                owner,
                format!("page outside the allocated pages (below {next_page})"),
            );
            return false;
        }
        if let Some(previous) = self.owners.insert(page, owner.to_owned()) {
            self.problem(
                page,
                owner,
                format!("page reached twice (also by {previous})"),
            );
            return false;
        }
        true
    }

    fn check_table(&mut self, name: &[u8], value: &[u8], catalog_root: u64) -> Result<(), DbError> {
        let name = String::from_utf8_lossy(name).into_owned();
        let meta = match TableMeta::decode(value, &self.image.path, catalog_root) {
            Ok(meta) => meta,
            Err(error) => {
                self.problem(catalog_root, &name, error.to_string());
                return Ok(());
            }
        };
        self.report.tables += 1;
        self.leaf_depth = None;
        self.totals = self.totals.plus(meta.count, meta.checksum);
        self.content = Some(0);
        let entries = self.check_tree(meta.root, &name)?;
        let checksum = self.content.take().unwrap_or_default();
        if checksum != meta.checksum {
            self.problem(
                meta.root,
                &name,
                format!(
                    "catalog content checksum {:016x}, the entries add up to {checksum:016x}",
                    meta.checksum
                ),
            );
        }
        self.report.entries += entries.len() as u64;
        if entries.len() as u64 != meta.count {
            let found = entries.len();
            self.problem(
                meta.root,
                &name,
                format!(
                    "catalog counts {} entries, the tree holds {found}",
                    meta.count
                ),
            );
        }
        Ok(())
    }

    /// Checks a tree; returns its leaf entries with inline values (long values are checked,
    /// not read).
    fn check_tree(&mut self, root: u64, owner: &str) -> Result<Vec<KeyValue>, DbError> {
        let mut entries = Vec::new();
        self.leaf_depth = None;
        if root != 0 {
            self.check_node(root, owner, (None, None), 0, &mut entries)?;
        }
        Ok(entries)
    }

    fn check_node(
        &mut self,
        page: u64,
        owner: &str,
        bounds: (Option<Vec<u8>>, Option<Vec<u8>>),
        depth: usize,
        entries: &mut Vec<KeyValue>,
    ) -> Result<(), DbError> {
        if depth >= crate::btree::MAX_DEPTH || !self.claim(page, owner) {
            return Ok(());
        }
        let bytes = match self.image.store.tree_page(page) {
            Ok(bytes) => bytes,
            Err(DbError::Corruption { problem, .. }) => {
                self.problem(page, owner, problem.to_string());
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        self.report.tree_pages += 1;
        let view = NodeView::new(&bytes);
        self.check_bounds(page, owner, &view, &bounds);
        if view.is_leaf() {
            self.check_leaf(page, owner, &view, depth, entries);
            return Ok(());
        }
        if view.is_empty() {
            self.problem(page, owner, "branch without keys".into());
        }
        for index in 0..=view.len() {
            let lower = if index == 0 {
                bounds.0.clone()
            } else {
                Some(view.key(index - 1).to_vec())
            };
            let upper = if index == view.len() {
                bounds.1.clone()
            } else {
                Some(view.key(index).to_vec())
            };
            self.check_node(view.child(index), owner, (lower, upper), depth + 1, entries)?;
        }
        Ok(())
    }

    fn check_bounds(
        &mut self,
        page: u64,
        owner: &str,
        view: &NodeView<'_>,
        bounds: &(Option<Vec<u8>>, Option<Vec<u8>>),
    ) {
        if view.is_empty() {
            return;
        }
        let (first, last) = (view.key(0), view.key(view.len() - 1));
        if bounds.0.as_deref().is_some_and(|lower| first < lower) {
            self.problem(page, owner, "a key lies below its parent's bound".into());
        }
        if bounds.1.as_deref().is_some_and(|upper| last >= upper) {
            self.problem(
                page,
                owner,
                "a key lies at or above its parent's bound".into(),
            );
        }
    }

    fn check_leaf(
        &mut self,
        page: u64,
        owner: &str,
        view: &NodeView<'_>,
        depth: usize,
        entries: &mut Vec<KeyValue>,
    ) {
        match self.leaf_depth {
            Some(expected) if expected != depth => {
                self.problem(
                    page,
                    owner,
                    format!("leaf at depth {depth}, others at {expected}"),
                );
            }
            _ => self.leaf_depth = Some(depth),
        }
        for index in 0..view.len() {
            let value = match view.value(index) {
                ValueRef::Inline(bytes) => {
                    self.add_entry(owner, view.key(index), Some(bytes));
                    bytes.to_vec()
                }
                ValueRef::Long(long) => {
                    let whole = self.check_long_value(page, owner, long);
                    self.add_entry(owner, view.key(index), whole.as_deref());
                    Vec::new()
                }
            };
            entries.push((view.key(index).to_vec(), value));
        }
    }

    /// Adds an entry's hash to the table's sum; a value that cannot be read makes the sum
    /// unknowable (its problem is reported already), so the comparison is skipped.
    fn add_entry(&mut self, table: &str, key: &[u8], value: Option<&[u8]>) {
        let Some(sum) = self.content else {
            return;
        };
        self.content = value.map(|value| sum.wrapping_add(entry_hash(table, key, value)));
    }

    /// Checks a long value's chain and returns the value when it reads whole (only while a
    /// table's content is summed).
    fn check_long_value(
        &mut self,
        leaf: u64,
        owner: &str,
        long: crate::btree::node::LongRef,
    ) -> Option<Vec<u8>> {
        let store = &self.image.store;
        let fetch = |page: u64| store.page(page).map(|bytes| Cow::Owned(bytes.to_vec()));
        match crate::value::long::chain(long, &fetch, &self.image.path) {
            Ok(pages) => {
                for page in pages {
                    if self.claim(page, owner) {
                        self.report.long_value_pages += 1;
                    }
                }
            }
            Err(error) => {
                self.problem(leaf, owner, format!("long value: {error}"));
                return None;
            }
        }
        self.content?;
        match crate::value::long::read(long, &fetch, &self.image.path) {
            Ok(value) => Some(value),
            Err(error) => {
                self.problem(leaf, owner, format!("long value: {error}"));
                None
            }
        }
    }

    fn check_free_list(&mut self) -> Result<(), DbError> {
        let header = &self.image.header.header;
        let file = self.image.store.file();
        let read = |number: u64| file.read_page(number).map(|(page, _)| page);
        let bounds = (self.image.first_data_page(), header.next_page);
        let loaded = match free_list::load(&read, header.free_list, bounds, file.path()) {
            Ok(loaded) => loaded,
            Err(DbError::Corruption { page, problem, .. }) => {
                self.problem(page, "free list", problem.to_string());
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        for page in loaded
            .chain
            .iter()
            .chain(&loaded.free)
            .chain(&loaded.retired)
        {
            if self.claim(*page, "free list") {
                self.report.free_pages += 1;
            }
        }
        Ok(())
    }

    /// Every allocated page must be used or free. Pages the header counts beyond the end of
    /// the file are one problem, and at most [`MAX_LEAKED_LISTED`] leaked pages are listed.
    fn check_every_page_owned(&mut self) {
        let next_page = self.image.header.header.next_page;
        let file_pages = self.image.store.file().length() / self.image.page_size() as u64;
        if next_page > file_pages {
            let problem =
                format!("the header counts {next_page} pages, the file holds {file_pages}");
            self.problem(file_pages, "-", problem);
        }
        let mut leaked = 0u64;
        for page in self.image.first_data_page()..next_page.min(file_pages) {
            if !self.owners.contains_key(&page) {
                leaked += 1;
                if leaked <= MAX_LEAKED_LISTED {
                    self.problem(page, "-", "page neither in use nor free (leaked)".into());
                }
            }
        }
        if leaked > MAX_LEAKED_LISTED {
            let more = leaked - MAX_LEAKED_LISTED;
            self.problem(
                next_page,
                "-",
                format!("{more} more leaked pages not listed"),
            );
        }
    }
}
