//! Writing what survived into a new database: every table's readable leaves, in order, through
//! ordinary transactions, so that the new trees, catalog counts and content checksums are
//! built by the same code as any other, and the new file is as sound as any other.

use super::plan::TablePlan;
use super::report::{LostEntry, LostRange, TableRepair};
use super::walk::LostSubtree;
use crate::btree::view::{NodeView, ValueRef};
use crate::db::{Database, DbError, Durability, Options, ReadTable};
use crate::page::file::DatabaseFile;
use std::borrow::Cow;
use std::ops::Bound;
use std::path::Path;

/// Entries per transaction: large transactions amortise commits...
const BATCH_ENTRIES: u64 = 10_000;
/// ... but a transaction's pages stay in memory until it commits.
const BATCH_BYTES: u64 = 16 << 20;

/// Builds the database in `work` (a new directory) from `plans`, reading the leaves from
/// `source`; closes it cleanly and returns every table's outcome.
pub(super) fn rebuild(
    work: &Path,
    options: Options,
    source: &DatabaseFile,
    plans: &[TablePlan],
) -> Result<Vec<TableRepair>, DbError> {
    let database = Database::open(work, options)?;
    let mut lost_entries = Vec::with_capacity(plans.len());
    for plan in plans {
        lost_entries.push(copy_table(&database, source, plan)?);
    }
    let tables = describe(&database, plans, lost_entries)?;
    database.close()?;
    Ok(tables)
}

/// Copies one table's leaves; returns the entries whose long values could not be read.
fn copy_table(
    database: &Database,
    source: &DatabaseFile,
    plan: &TablePlan,
) -> Result<Vec<LostEntry>, DbError> {
    let mut write = database.begin_write()?;
    // Created even when empty: a table whose every entry was lost is still in the schema.
    write.create_table(&plan.name)?;
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut lost = Vec::new();
    for &leaf in plan.sources.iter().flat_map(|salvaged| &salvaged.leaves) {
        for (key, value) in leaf_entries(source, leaf)? {
            let value = match value {
                Ok(value) => value,
                Err(problem) => {
                    lost.push(LostEntry { key, leaf, problem });
                    continue;
                }
            };
            write.insert(&plan.name, &key, &value)?;
            entries += 1;
            bytes += (key.len() + value.len()) as u64;
            if entries >= BATCH_ENTRIES || bytes >= BATCH_BYTES {
                write.commit_with(Durability::Lazy)?;
                write = database.begin_write()?;
                (entries, bytes) = (0, 0);
            }
        }
    }
    write.commit_with(Durability::Durable)?;
    Ok(lost)
}

/// A leaf's entries, each with its value or why the value (a long one) is unreadable.
type LeafEntry = (Vec<u8>, Result<Vec<u8>, String>);

fn leaf_entries(source: &DatabaseFile, leaf: u64) -> Result<Vec<LeafEntry>, DbError> {
    let (page, _) = source.read_page(leaf)?;
    let view = NodeView::new(&page);
    let fetch = |number: u64| {
        source
            .read_page(number)
            .map(|(page, _)| Cow::Owned(page.into_vec()))
    };
    let mut entries = Vec::with_capacity(view.len());
    for index in 0..view.len() {
        let value = match view.value(index) {
            ValueRef::Inline(bytes) => Ok(bytes.to_vec()),
            ValueRef::Long(long) => crate::value::long::read(long, &fetch, source.path())
                .map_err(|error| error.to_string()),
        };
        entries.push((view.key(index).to_vec(), value));
    }
    Ok(entries)
}

/// Every table's outcome, read back from the new database.
fn describe(
    database: &Database,
    plans: &[TablePlan],
    lost_entries: Vec<Vec<LostEntry>>,
) -> Result<Vec<TableRepair>, DbError> {
    let read = database.begin_read()?;
    let mut tables = Vec::with_capacity(plans.len());
    for (plan, lost_entries) in plans.iter().zip(lost_entries) {
        let table = read.open_table(&plan.name)?;
        let lost_ranges = plan
            .lost
            .iter()
            .map(|lost| lost_range(&table, lost))
            .collect::<Result<_, _>>()?;
        tables.push(TableRepair {
            name: plan.name.clone(),
            entries_before: plan.entries_before,
            entries_after: table.len(),
            lost_ranges,
            lost_entries,
            recovered_from: plan.recovered_from,
        });
    }
    Ok(tables)
}

/// A lost subtree with its surviving neighbours and the entries recovered within it.
fn lost_range(table: &ReadTable<'_>, lost: &LostSubtree) -> Result<LostRange, DbError> {
    let lower = bound(lost.lower.as_deref(), true);
    let upper = bound(lost.upper.as_deref(), false);
    let after = match lost.lower.as_deref() {
        Some(lower) => table.range(..lower)?.next_back().transpose()?,
        None => None,
    };
    let before = match lost.upper.as_deref() {
        Some(upper) => table.seek(upper)?,
        None => None,
    };
    let mut recovered_entries = 0;
    for entry in table.entries((lower, upper))? {
        entry?;
        recovered_entries += 1;
    }
    Ok(LostRange {
        page: lost.page,
        problem: lost.problem.clone(),
        lower: lost.lower.clone(),
        upper: lost.upper.clone(),
        after: after.map(|(key, _)| key),
        before: before.map(|(key, _)| key),
        recovered_entries,
    })
}

fn bound(key: Option<&[u8]>, inclusive: bool) -> Bound<&[u8]> {
    match (key, inclusive) {
        (None, _) => Bound::Unbounded,
        (Some(key), true) => Bound::Included(key),
        (Some(key), false) => Bound::Excluded(key),
    }
}
