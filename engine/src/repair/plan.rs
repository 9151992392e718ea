//! The plan: which leaves make up each table of the repaired database. The catalog is walked
//! first, then every table it names, then the orphaned subtrees are given to the lost range
//! they fit.

use super::census::Census;
use super::orphans::{self, Orphan};
use super::walk::{LostSubtree, Salvaged, Walker};
use crate::db::{DbError, TableMeta};
use crate::page::file::DatabaseFile;
use std::collections::{BTreeMap, HashSet};

/// One table to rebuild.
#[derive(Debug)]
pub(super) struct TablePlan {
    /// Its name.
    pub name: String,
    /// Entries its catalog entry counted, if readable.
    pub entries_before: Option<u64>,
    /// Where its entries come from, written in this order (a later source wins a key): the
    /// walk from its root, then the orphaned subtrees adopted, oldest first.
    pub sources: Vec<Salvaged>,
    /// The key ranges it lost.
    pub lost: Vec<LostSubtree>,
    /// The orphan root of a table recovered without its name.
    pub recovered_from: Option<u64>,
}

/// Every table, the catalog's lost ranges and the orphans dropped.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Tables in name order.
    pub tables: Vec<TablePlan>,
    /// Ranges of table names lost with catalog pages.
    pub catalog_lost: Vec<LostSubtree>,
    /// Orphaned subtrees that fit no lost range.
    pub orphans_dropped: u64,
}

/// Plans the repair of the file behind `census` from its catalog at `catalog_root`; `free`
/// holds the pages the free list names.
pub(super) fn plan(
    file: &DatabaseFile,
    census: &Census,
    catalog_root: u64,
    free: &HashSet<u64>,
) -> Result<Plan, DbError> {
    let mut claimed = HashSet::new();
    let mut walker = Walker {
        file,
        census,
        claimed: &mut claimed,
    };
    let catalog = walker.walk(catalog_root)?;
    let mut plan = Plan {
        catalog_lost: catalog.lost.clone(),
        ..Plan::default()
    };
    let mut tables = BTreeMap::new();
    for (name, meta) in catalog_entries(file, &catalog, catalog_root)? {
        let salvaged = walker.walk(meta.root)?;
        let table = TablePlan {
            entries_before: Some(meta.count),
            lost: salvaged.lost.clone(),
            sources: vec![salvaged],
            name: name.clone(),
            recovered_from: None,
        };
        tables.insert(name, table);
    }
    for orphan in orphans::find(&mut walker, free)? {
        adopt(&mut tables, orphan, &mut plan);
    }
    plan.tables = tables.into_values().collect();
    Ok(plan)
}

/// The catalog's entries that decode; an entry that does not is a table lost by name (its
/// tree's pages then become orphans).
fn catalog_entries(
    file: &DatabaseFile,
    catalog: &Salvaged,
    catalog_root: u64,
) -> Result<Vec<(String, TableMeta)>, DbError> {
    let mut entries = Vec::new();
    for &leaf in &catalog.leaves {
        let (page, _) = file.read_page(leaf)?;
        let view = crate::btree::view::NodeView::new(&page);
        for index in 0..view.len() {
            let crate::btree::view::ValueRef::Inline(value) = view.value(index) else {
                continue;
            };
            if let Ok(meta) = TableMeta::decode(value, file.path(), catalog_root) {
                let name = String::from_utf8_lossy(view.key(index)).into_owned();
                entries.push((name, meta));
            }
        }
    }
    Ok(entries)
}

/// Gives an orphan to the one table whose lost range holds its keys. With none, it is a table
/// of its own if catalog pages were lost (its name was with them), else an old version a
/// damaged free list no longer names, and dropped; with several, a table of its own.
fn adopt(tables: &mut BTreeMap<String, TablePlan>, orphan: Orphan, plan: &mut Plan) {
    let Some((first, last)) = orphan.salvaged.span.clone() else {
        return;
    };
    let homes: Vec<&String> = tables
        .iter()
        .filter(|(_, table)| table.lost.iter().any(|lost| lost.holds(&first, &last)))
        .map(|(name, _)| name)
        .collect();
    if let [home] = homes[..] {
        let home = home.clone();
        let table = tables.get_mut(&home).expect("a table just found");
        table.lost.extend(orphan.salvaged.lost.iter().cloned());
        table.sources.push(orphan.salvaged);
        return;
    }
    if homes.is_empty() && plan.catalog_lost.is_empty() {
        plan.orphans_dropped += 1;
        return;
    }
    let name = unused_name(tables, orphan.root);
    let table = TablePlan {
        name: name.clone(),
        entries_before: None,
        lost: orphan.salvaged.lost.clone(),
        sources: vec![orphan.salvaged],
        recovered_from: Some(orphan.root),
    };
    tables.insert(name, table);
}

/// `recovered-<page>`, with a suffix if a table has that name already.
fn unused_name(tables: &BTreeMap<String, TablePlan>, root: u64) -> String {
    let base = format!("recovered-{root}");
    let mut name = base.clone();
    let mut suffix = 1;
    while tables.contains_key(&name) {
        suffix += 1;
        name = format!("{base}.{suffix}");
    }
    name
}
