//! Space use per table, like `eseutil /ms`.

use super::DatabaseImage;
use crate::btree::view::{NodeView, ValueRef};
use crate::db::DbError;
use crate::page::free_list;
use std::borrow::Cow;

/// Space one table uses.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TableSpace {
    /// The table name ("catalog" for the catalog).
    pub name: String,
    /// Entries.
    pub entries: u64,
    /// Branch pages.
    pub branch_pages: u64,
    /// Leaf pages.
    pub leaf_pages: u64,
    /// Long-value pages.
    pub long_value_pages: u64,
    /// Bytes of keys and values as stored (long values as stored, compressed or not).
    pub stored_bytes: u64,
    /// Bytes of values before compression.
    pub value_bytes: u64,
    /// Used bytes over page bytes, tree pages only.
    pub fill_factor: f64,
}

/// Space of the whole file.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SpaceReport {
    /// The page size.
    pub page_size: u64,
    /// Pages in the file.
    pub file_pages: u64,
    /// Pages allocated (header pages included).
    pub allocated_pages: u64,
    /// Free pages (free and retired) and free-list pages.
    pub free_pages: u64,
    /// Per table, the catalog first.
    pub tables: Vec<TableSpace>,
}

/// Measures every table.
pub fn space(image: &DatabaseImage) -> Result<SpaceReport, DbError> {
    let header = &image.header.header;
    let mut report = SpaceReport {
        page_size: image.page_size() as u64,
        file_pages: image.store.file().page_count(),
        allocated_pages: header.next_page,
        ..SpaceReport::default()
    };
    report
        .tables
        .push(measure(image, "catalog", header.catalog_root)?);
    for (name, meta) in image.tables()? {
        report.tables.push(measure(image, &name, meta.root)?);
    }
    let file = image.store.file();
    let read = |number: u64| file.read_page(number).map(|(page, _)| page);
    let bounds = (image.first_data_page(), header.next_page);
    let loaded = free_list::load(&read, header.free_list, bounds, file.path())?;
    report.free_pages = (loaded.free.len() + loaded.retired.len() + loaded.chain.len()) as u64;
    Ok(report)
}

fn measure(image: &DatabaseImage, name: &str, root: u64) -> Result<TableSpace, DbError> {
    let mut table = TableSpace {
        name: name.to_owned(),
        ..TableSpace::default()
    };
    let mut used = 0u64;
    let mut stack = vec![(root, 0usize)];
    while let Some((page, depth)) = stack.pop() {
        if page == 0 {
            continue;
        }
        if depth >= crate::btree::MAX_DEPTH {
            return Err(image.store.too_deep(page));
        }
        let bytes = image.store.tree_page(page)?;
        let view = NodeView::new(&bytes);
        used += view.to_node().size as u64;
        if view.is_leaf() {
            table.leaf_pages += 1;
            measure_leaf(image, &view, &mut table)?;
        } else {
            table.branch_pages += 1;
            stack.extend((0..=view.len()).map(|index| (view.child(index), depth + 1)));
        }
    }
    let tree_bytes = (table.branch_pages + table.leaf_pages) * image.page_size() as u64;
    table.fill_factor = if tree_bytes == 0 {
        0.0
    } else {
        used as f64 / tree_bytes as f64
    };
    Ok(table)
}

fn measure_leaf(
    image: &DatabaseImage,
    view: &NodeView<'_>,
    table: &mut TableSpace,
) -> Result<(), DbError> {
    for index in 0..view.len() {
        table.entries += 1;
        table.stored_bytes += view.key(index).len() as u64;
        match view.value(index) {
            ValueRef::Inline(bytes) => {
                table.stored_bytes += bytes.len() as u64;
                table.value_bytes += bytes.len() as u64;
            }
            ValueRef::Long(long) => {
                let store = &image.store;
                let fetch = |page: u64| store.page(page).map(|bytes| Cow::Owned(bytes.to_vec()));
                table.long_value_pages +=
                    crate::value::long::chain(long, &fetch, &image.path)?.len() as u64;
                table.stored_bytes += long.stored;
                table.value_bytes += long.length;
            }
        }
    }
    Ok(())
}
