//! `bluejet repair DB [--force]` (alias `p`): repair, like `eseutil /p`. The damaged database
//! is rebuilt from the pages that survive (see `bluejet_engine::repair`), the original and its
//! log are kept in `before-repair-<count>-<seconds>/` beside it, and the report says what was
//! lost: pages, tables, key ranges between their surviving neighbours, entry counts.
//!
//! Exit codes: 0 nothing was lost, 1 the database was repaired and something was lost (always
//! after `--force`: what only the log held is gone, uncounted), 3 the repair was refused (a
//! live or dirty database) or failed, leaving the original as it was.

use super::header::state_name;
use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use bluejet_engine::DATABASE_FILE_NAME;
use bluejet_engine::{repair, LostRange, RepairOptions, RepairReport, TableRepair};
use serde::Serialize;
use std::path::Path;

/// The version of the JSON document below.
pub const SCHEMA_VERSION: u32 = 1;
/// Discarded pages listed one by one, at most.
const LISTED_PAGES: usize = 100;
/// Key bytes shown.
const KEY_LIMIT: usize = 80;

/// Repairs the database in `path` (its directory or its file).
pub fn run(path: &Path, force: bool, json: bool) -> Result<Verdict, ToolError> {
    let directory = repaired_directory(path)?;
    let how = RepairOptions {
        force,
        ..RepairOptions::default()
    };
    let report = repair(&directory, &how).map_err(|error| {
        // Exit 1 says a repair happened and lost something: a repair that did not happen
        // (a file it cannot read, say) is a failure, whatever its cause (found by an
        // adversarial operator: a database with both header copies damaged exited 1).
        let explained = crate::live::explain(
            error,
            "Repair is offline: stop the node (or process) holding the database first.",
        );
        ToolError::Failure(explained.to_string())
    })?;
    if json {
        print_json(&report);
    } else {
        print_text(&report);
    }
    Ok(match report.lost_anything() {
        true => Verdict::Damaged,
        false => Verdict::Clean,
    })
}

/// The database directory `path` names. A file must be the directory's `bluejet.db`: repair
/// works on that name, so any other file given (a copy `mail.db.bak`, a log generation)
/// would have repaired, or taken the lock of, a database the user did not name (found by an
/// adversarial operator: `repair DIR/E00.log` repaired `DIR/bluejet.db`).
fn repaired_directory(path: &Path) -> Result<std::path::PathBuf, ToolError> {
    let file = image::database_file(path)?;
    if file.file_name() != Some(std::ffi::OsStr::new(DATABASE_FILE_NAME)) {
        return Err(ToolError::Failure(format!(
            "{}: repair works on a directory's {DATABASE_FILE_NAME}; to repair this file, \
             copy it as {DATABASE_FILE_NAME} into a directory of its own and name that \
             directory",
            file.display()
        )));
    }
    image::database_directory(&file)
}

/// A key as text, escaped and cut; `None` for an open end.
fn key(key: Option<&[u8]>) -> Option<String> {
    key.map(|key| output::byte_string(key, KEY_LIMIT))
}

fn range_text(range: &LostRange) -> String {
    let side = |key: Option<String>, open: &str| key.unwrap_or_else(|| open.to_owned());
    format!(
        "page {} ({}): keys [{} .. {}), between the surviving {} and {}; {} entries \
         recovered from orphaned pages",
        range.page,
        range.problem,
        side(key(range.lower.as_deref()), "the first key"),
        side(key(range.upper.as_deref()), "the end"),
        side(key(range.after.as_deref()), "(none)"),
        side(key(range.before.as_deref()), "(none)"),
        range.recovered_entries,
    )
}

fn print_text(report: &RepairReport) {
    crate::out!("repaired database: {}", report.database.display());
    crate::out!(
        "  {:<26} {}",
        "original and its log kept",
        report.kept_aside.display()
    );
    crate::out!("  {:<26} {}", "repair count", report.repair_count);
    crate::out!(
        "  {:<26} {}",
        "state before",
        state_name(report.state_before)
    );
    if report.forced {
        crate::out!("  forced: changes only the log held (after the last checkpoint) are lost");
    }
    for (slot, reason) in &report.damaged_header_copies {
        crate::out!("  header copy {slot} was damaged: {reason}");
    }
    crate::out!(
        "  {:<26} {} scanned, {} discarded",
        "pages",
        report.pages_scanned,
        report.discarded_pages.len()
    );
    for page in report.discarded_pages.iter().take(LISTED_PAGES) {
        crate::out!("    page {}: {}", page.page, page.problem);
    }
    if report.discarded_pages.len() > LISTED_PAGES {
        crate::out!(
            "    {} more not listed",
            report.discarded_pages.len() - LISTED_PAGES
        );
    }
    if let Some(problem) = &report.free_list_problem {
        crate::out!("  free list unreadable: {problem}");
    }
    for range in &report.catalog_lost {
        crate::out!("  catalog: table names lost with {}", range_text(range));
    }
    crate::out!(
        "  {:<26} {} before, {} after",
        "entries",
        report.entries_before,
        report.entries_after
    );
    for table in &report.tables {
        print_table(table);
    }
    if !report.tables_lost.is_empty() {
        crate::out!("  tables lost: {}", report.tables_lost.join(", "));
    }
    if report.orphans_dropped > 0 {
        crate::out!(
            "  {} dropped: they fit no lost range (old versions)",
            output::plural(report.orphans_dropped, "orphaned subtree")
        );
    }
    crate::out!(
        "  log files moved aside: {} (the next open starts a new log stream: reseed every \
         replica)",
        report.log_files_moved.len()
    );
    match report.lost_anything() {
        true => crate::out!("repair complete: data was lost, see above"),
        false => crate::out!("repair complete: nothing was lost"),
    }
}

fn print_table(table: &TableRepair) {
    let before = table
        .entries_before
        .map_or_else(|| "unknown".to_owned(), |count| count.to_string());
    let origin = match table.recovered_from {
        Some(root) => format!(" (name lost: recovered from the orphaned tree at page {root})"),
        None => String::new(),
    };
    crate::out!(
        "  table {}: {before} entries before, {} after{origin}",
        table.name,
        table.entries_after
    );
    for range in &table.lost_ranges {
        crate::out!("    lost {}", range_text(range));
    }
    for entry in &table.lost_entries {
        crate::out!(
            "    lost entry {} (leaf {}): {}",
            output::byte_string(&entry.key, KEY_LIMIT),
            entry.leaf,
            entry.problem
        );
    }
}

/// The JSON document.
#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    kind: &'static str,
    database: String,
    kept_aside: String,
    repair_count: u64,
    state_before: &'static str,
    forced: bool,
    damaged_header_copies: Vec<HeaderCopy<'a>>,
    pages_scanned: u64,
    discarded_pages: Vec<Page<'a>>,
    free_list_problem: Option<&'a str>,
    catalog_lost: Vec<Range<'a>>,
    tables: Vec<Table<'a>>,
    tables_lost: &'a [String],
    orphans_dropped: u64,
    entries_before: u64,
    entries_after: u64,
    log_files_moved: &'a [String],
    new_log_stream: bool,
    lost_anything: bool,
}

#[derive(Serialize)]
struct HeaderCopy<'a> {
    slot: u8,
    problem: &'a str,
}

#[derive(Serialize)]
struct Page<'a> {
    page: u64,
    problem: &'a str,
}

/// A lost range; keys as escaped text and as hex.
#[derive(Serialize)]
struct Range<'a> {
    page: u64,
    problem: &'a str,
    lower: Option<Key>,
    upper: Option<Key>,
    after: Option<Key>,
    before: Option<Key>,
    recovered_entries: u64,
}

#[derive(Serialize)]
struct Key {
    text: String,
    hex: String,
}

#[derive(Serialize)]
struct Table<'a> {
    name: &'a str,
    entries_before: Option<u64>,
    entries_after: u64,
    lost_ranges: Vec<Range<'a>>,
    lost_entries: Vec<Entry<'a>>,
    recovered_from_page: Option<u64>,
}

#[derive(Serialize)]
struct Entry<'a> {
    key: Key,
    leaf: u64,
    problem: &'a str,
}

fn key_json(key: &[u8]) -> Key {
    Key {
        text: output::byte_string(key, KEY_LIMIT),
        hex: key.iter().map(|byte| format!("{byte:02x}")).collect(),
    }
}

fn range_json(range: &LostRange) -> Range<'_> {
    Range {
        page: range.page,
        problem: &range.problem,
        lower: range.lower.as_deref().map(key_json),
        upper: range.upper.as_deref().map(key_json),
        after: range.after.as_deref().map(key_json),
        before: range.before.as_deref().map(key_json),
        recovered_entries: range.recovered_entries,
    }
}

fn table_json(table: &TableRepair) -> Table<'_> {
    Table {
        name: &table.name,
        entries_before: table.entries_before,
        entries_after: table.entries_after,
        lost_ranges: table.lost_ranges.iter().map(range_json).collect(),
        lost_entries: table
            .lost_entries
            .iter()
            .map(|entry| Entry {
                key: key_json(&entry.key),
                leaf: entry.leaf,
                problem: &entry.problem,
            })
            .collect(),
        recovered_from_page: table.recovered_from,
    }
}

fn print_json(report: &RepairReport) {
    let document = Document {
        schema_version: SCHEMA_VERSION,
        kind: "repair",
        database: report.database.display().to_string(),
        kept_aside: report.kept_aside.display().to_string(),
        repair_count: report.repair_count,
        state_before: state_name(report.state_before),
        forced: report.forced,
        damaged_header_copies: report
            .damaged_header_copies
            .iter()
            .map(|(slot, problem)| HeaderCopy {
                slot: *slot,
                problem,
            })
            .collect(),
        pages_scanned: report.pages_scanned,
        discarded_pages: report
            .discarded_pages
            .iter()
            .map(|page| Page {
                page: page.page,
                problem: &page.problem,
            })
            .collect(),
        free_list_problem: report.free_list_problem.as_deref(),
        catalog_lost: report.catalog_lost.iter().map(range_json).collect(),
        tables: report.tables.iter().map(table_json).collect(),
        tables_lost: &report.tables_lost,
        orphans_dropped: report.orphans_dropped,
        entries_before: report.entries_before,
        entries_after: report.entries_after,
        log_files_moved: &report.log_files_moved,
        new_log_stream: true,
        lost_anything: report.lost_anything(),
    };
    // Serialising these structs cannot fail.
    let value = serde_json::to_value(&document).unwrap_or_default();
    output::print_json(&value);
}
