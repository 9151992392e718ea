//! `bluejet integrity DB` (alias `g`): checks every tree, long value and free page, like
//! `eseutil /g`.

use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use bluejet_engine::format::inspect::{integrity, IntegrityProblem, IntegrityReport};
use serde::Serialize;
use std::path::Path;

/// The JSON document of `integrity`.
#[derive(Serialize)]
struct IntegrityDocument<'a> {
    kind: &'static str,
    path: String,
    tables: u64,
    entries: u64,
    tree_pages: u64,
    long_value_pages: u64,
    free_pages: u64,
    problems: &'a [IntegrityProblem],
    passed: bool,
    verdict: String,
}

/// Checks the database at `path`; any problem is damage (exit 1).
pub fn run(path: &Path, json: bool) -> Result<Verdict, ToolError> {
    let image = image::open(path)?;
    let report = integrity(&image)?;
    if json {
        output::print_json(&IntegrityDocument {
            kind: "integrity",
            path: image.path.display().to_string(),
            tables: report.tables,
            entries: report.entries,
            tree_pages: report.tree_pages,
            long_value_pages: report.long_value_pages,
            free_pages: report.free_pages,
            problems: &report.problems,
            passed: !report.damaged(),
            verdict: verdict(&report),
        });
    } else {
        print_text(&image.path, &report);
    }
    Ok(Verdict::from_problems(report.problems.len()))
}

/// `integrity check passed`, or `N problems found`.
pub fn verdict(report: &IntegrityReport) -> String {
    if report.damaged() {
        format!(
            "{} found",
            output::plural(report.problems.len() as u64, "problem")
        )
    } else {
        "integrity check passed".into()
    }
}

/// One problem as a line.
pub fn problem_text(problem: &IntegrityProblem) -> String {
    format!(
        "problem: page {} ({}): {}",
        problem.page, problem.owner, problem.problem
    )
}

fn print_text(file: &Path, report: &IntegrityReport) {
    crate::out!("database file: {}", file.display());
    crate::out!("  {:<18} {}", "tables", report.tables);
    crate::out!("  {:<18} {}", "entries", report.entries);
    crate::out!("  {:<18} {}", "tree pages", report.tree_pages);
    crate::out!("  {:<18} {}", "long-value pages", report.long_value_pages);
    crate::out!("  {:<18} {}", "free pages", report.free_pages);
    for problem in &report.problems {
        crate::out!("{}", problem_text(problem));
    }
    crate::out!("{}", verdict(report));
}
