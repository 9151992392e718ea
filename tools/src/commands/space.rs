//! `bluejet space DB` (alias `ms`): space use per table, like `eseutil /ms`.

use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use bluejet_engine::format::inspect::{space, SpaceReport, TableSpace};
use serde::Serialize;
use std::path::Path;

/// The JSON document of `space`.
#[derive(Serialize)]
struct SpaceDocument<'a> {
    kind: &'static str,
    path: String,
    page_size: u64,
    file_pages: u64,
    file_bytes: u64,
    allocated_pages: u64,
    free_pages: u64,
    tables: &'a [TableSpace],
    totals: &'a TableSpace,
}

/// Prints the space report of the database at `path`.
pub fn run(path: &Path, json: bool) -> Result<Verdict, ToolError> {
    let image = image::open(path)?;
    let report = space(&image)?;
    let totals = totals(&report);
    if json {
        output::print_json(&SpaceDocument {
            kind: "space",
            path: image.path.display().to_string(),
            page_size: report.page_size,
            file_pages: report.file_pages,
            file_bytes: report.file_pages * report.page_size,
            allocated_pages: report.allocated_pages,
            free_pages: report.free_pages,
            tables: &report.tables,
            totals: &totals,
        });
    } else {
        crate::out!("database file: {}", image.path.display());
        for line in table_lines(&report, &totals) {
            crate::out!("{line}");
        }
        print_file(&report);
    }
    Ok(Verdict::Clean)
}

/// The sum over every table (the catalog included).
pub fn totals(report: &SpaceReport) -> TableSpace {
    let mut total = TableSpace {
        name: "total".into(),
        ..TableSpace::default()
    };
    let mut used = 0.0;
    for table in &report.tables {
        total.entries += table.entries;
        total.branch_pages += table.branch_pages;
        total.leaf_pages += table.leaf_pages;
        total.long_value_pages += table.long_value_pages;
        total.stored_bytes += table.stored_bytes;
        total.value_bytes += table.value_bytes;
        used += table.fill_factor * (table.branch_pages + table.leaf_pages) as f64;
    }
    let tree_pages = (total.branch_pages + total.leaf_pages) as f64;
    total.fill_factor = if tree_pages == 0.0 {
        0.0
    } else {
        used / tree_pages
    };
    total
}

/// The per-table lines: a heading, one line per table, the totals.
pub fn table_lines(report: &SpaceReport, totals: &TableSpace) -> Vec<String> {
    let mut lines = vec![format!(
        "  {:<12} {:>9} {:>7} {:>7} {:>9} {:>11} {:>11} {:>6}",
        "table", "entries", "branch", "leaf", "long-val", "stored", "values", "fill"
    )];
    for table in report.tables.iter().chain(std::iter::once(totals)) {
        lines.push(format!(
            "  {:<12} {:>9} {:>7} {:>7} {:>9} {:>11} {:>11} {:>5.1}%",
            table.name,
            table.entries,
            table.branch_pages,
            table.leaf_pages,
            table.long_value_pages,
            output::bytes(table.stored_bytes),
            output::bytes(table.value_bytes),
            table.fill_factor * 100.0
        ));
    }
    lines
}

fn print_file(report: &SpaceReport) {
    crate::out!("  {:<16} {}", "page size", report.page_size);
    crate::out!(
        "  {:<16} {} ({})",
        "file pages",
        report.file_pages,
        output::bytes(report.file_pages * report.page_size)
    );
    crate::out!("  {:<16} {}", "allocated pages", report.allocated_pages);
    crate::out!("  {:<16} {}", "free pages", report.free_pages);
    crate::out!(
        "  {:<16} {}",
        "never used",
        report.file_pages.saturating_sub(report.allocated_pages)
    );
}
