//! `bluejet recover DIR` (alias `r`): soft recovery, like `eseutil /r`. Opening a database
//! replays its log from the checkpoint; closing it then leaves it clean.

use super::header::state_name;
use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use bluejet_engine::DbState;
use bluejet_engine::LogPosition;
use bluejet_engine::{Database, Options, ReplayReport};
use serde::Serialize;
use std::path::Path;

/// Recovers the database in `path` (its directory or its file). Missing log generations are
/// damage (exit 1); the engine's error names them.
pub fn run(path: &Path, json: bool) -> Result<Verdict, ToolError> {
    // Checked first: `Database::open` would create a database where there is none.
    let directory = image::database_directory(path)?;
    let before = image::open(&directory)?.header.header.state;
    let database = Database::open(&directory, Options::default()).map_err(|error| {
        crate::live::explain(
            error,
            "Recovery is for a database nobody has open: a running node needs none; stop it \
             first.",
        )
    })?;
    let report = database.replay_report();
    database.close()?;
    let after = image::open(&directory)?.header.header.state;
    if json {
        print_json(&directory, before, after, &report);
    } else {
        print_text(&directory, before, after, &report);
    }
    Ok(Verdict::Clean)
}

fn generations_text(report: &ReplayReport) -> String {
    match report.generations {
        Some((first, last)) => format!("{first}-{last}"),
        None => "none".into(),
    }
}

fn print_text(directory: &Path, before: DbState, after: DbState, report: &ReplayReport) {
    crate::out!("database directory: {}", directory.display());
    crate::out!("  {:<22} {}", "state before", state_name(before));
    crate::out!(
        "  {:<22} {}",
        "generations replayed",
        generations_text(report)
    );
    crate::out!("  {:<22} {}", "from", report.from);
    crate::out!("  {:<22} {}", "to", report.to);
    crate::out!("  {:<22} {}", "records read", report.records);
    crate::out!(
        "  {:<22} {}",
        "transactions applied",
        report.transactions_applied
    );
    crate::out!(
        "  {:<22} {}",
        "transactions dropped",
        report.transactions_dropped
    );
    crate::out!("  {:<22} {}", "state after", state_name(after));
    crate::out!(
        "recovery complete: {} applied",
        output::plural(report.transactions_applied, "transaction")
    );
}

/// The JSON document of `recover`.
#[derive(Serialize)]
struct RecoverDocument {
    kind: &'static str,
    directory: String,
    state_before: &'static str,
    state_after: &'static str,
    generations: Option<GenerationRange>,
    from: LogPosition,
    to: LogPosition,
    records: u64,
    transactions_applied: u64,
    transactions_dropped: u64,
    passed: bool,
}

/// The generations replayed, first and last.
#[derive(Serialize)]
struct GenerationRange {
    first: u32,
    last: u32,
}

fn print_json(directory: &Path, before: DbState, after: DbState, report: &ReplayReport) {
    output::print_json(&RecoverDocument {
        kind: "recover",
        directory: directory.display().to_string(),
        state_before: state_name(before),
        state_after: state_name(after),
        generations: report
            .generations
            .map(|(first, last)| GenerationRange { first, last }),
        from: report.from,
        to: report.to,
        records: report.records,
        transactions_applied: report.transactions_applied,
        transactions_dropped: report.transactions_dropped,
        passed: true,
    });
}
