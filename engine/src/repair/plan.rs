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
    let (entries, undecodable) = catalog_entries(file, &catalog, catalog_root)?;
    plan.catalog_lost.extend(undecodable);
    for (name, meta) in entries {
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
    let mut orphans = orphans::find(&mut walker, free)?;
    if !plan.catalog_lost.is_empty() {
        let pieces = take_catalog_pieces(file, &mut orphans, &plan.catalog_lost)?;
        for (name, meta) in pieces {
            let table = named_orphan(census, &mut orphans, name.clone(), meta);
            tables.entry(name).or_insert(table);
        }
    }
    for orphan in orphans {
        adopt(&mut tables, orphan, &mut plan);
    }
    plan.tables = tables.into_values().collect();
    Ok(plan)
}

/// A table's name and catalog entry.
type CatalogEntry = (String, TableMeta);

/// The catalog's entries that decode, and a one-name lost range for each that does not: its
/// table is lost by name, and its tree's pages become orphans, recovered without the name.
fn catalog_entries(
    file: &DatabaseFile,
    catalog: &Salvaged,
    catalog_root: u64,
) -> Result<(Vec<CatalogEntry>, Vec<LostSubtree>), DbError> {
    let (mut entries, mut undecodable) = (Vec::new(), Vec::new());
    for &leaf in &catalog.leaves {
        let (page, _) = file.read_page(leaf)?;
        let view = crate::btree::view::NodeView::new(&page);
        for index in 0..view.len() {
            let name = view.key(index);
            let decoded = match view.value(index) {
                crate::btree::view::ValueRef::Inline(value) => {
                    TableMeta::decode(value, file.path(), catalog_root)
                        .map_err(|error| error.to_string())
                }
                crate::btree::view::ValueRef::Long(_) => Err("a catalog entry out of line".into()),
            };
            match decoded {
                Ok(meta) => entries.push((String::from_utf8_lossy(name).into_owned(), meta)),
                Err(problem) => undecodable.push(LostSubtree {
                    page: leaf,
                    lower: Some(name.to_vec()),
                    upper: Some([name, &[0]].concat()),
                    problem,
                }),
            }
        }
    }
    Ok((entries, undecodable))
}

/// Takes out of `orphans` the pieces of the catalog below a lost catalog branch: orphans whose
/// keys fit a lost catalog range and whose every entry is a catalog entry. Returns their
/// entries.
fn take_catalog_pieces(
    file: &DatabaseFile,
    orphans: &mut Vec<Orphan>,
    catalog_lost: &[LostSubtree],
) -> Result<Vec<CatalogEntry>, DbError> {
    let mut entries = Vec::new();
    let mut index = 0;
    while index < orphans.len() {
        let fits = orphans[index]
            .salvaged
            .span
            .as_ref()
            .is_some_and(|(first, last)| catalog_lost.iter().any(|lost| lost.holds(first, last)));
        let piece = match fits {
            true => catalog_piece(file, &orphans[index].salvaged)?,
            false => None,
        };
        match piece {
            Some(piece) => {
                entries.extend(piece);
                orphans.remove(index);
            }
            None => index += 1,
        }
    }
    Ok(entries)
}

/// The entries of an orphan if every one decodes as a catalog entry.
fn catalog_piece(
    file: &DatabaseFile,
    salvaged: &Salvaged,
) -> Result<Option<Vec<CatalogEntry>>, DbError> {
    let mut entries = Vec::new();
    for &leaf in &salvaged.leaves {
        let (page, _) = file.read_page(leaf)?;
        let view = crate::btree::view::NodeView::new(&page);
        for index in 0..view.len() {
            let crate::btree::view::ValueRef::Inline(value) = view.value(index) else {
                return Ok(None);
            };
            let Ok(meta) = TableMeta::decode(value, file.path(), leaf) else {
                return Ok(None);
            };
            entries.push((String::from_utf8_lossy(view.key(index)).into_owned(), meta));
        }
    }
    Ok(Some(entries))
}

/// The table an orphaned catalog entry names: its tree is the orphan rooted at its root
/// page (no catalog walk reached it), or, if that page was discarded, a tree lost whole
/// (orphans below it are adopted into it later).
fn named_orphan(
    census: &Census,
    orphans: &mut Vec<Orphan>,
    name: String,
    meta: TableMeta,
) -> TablePlan {
    let mut table = TablePlan {
        name,
        entries_before: Some(meta.count),
        sources: Vec::new(),
        lost: Vec::new(),
        recovered_from: None,
    };
    if meta.root == 0 {
        return table;
    }
    match orphans.iter().position(|orphan| orphan.root == meta.root) {
        Some(index) => {
            let orphan = orphans.remove(index);
            table.lost = orphan.salvaged.lost.clone();
            table.sources.push(orphan.salvaged);
        }
        None => table.lost.push(LostSubtree {
            page: meta.root,
            lower: None,
            upper: None,
            problem: census
                .tree_problem(meta.root)
                .unwrap_or_else(|| "reached from another tree".into()),
        }),
    }
    table
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
