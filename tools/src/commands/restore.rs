//! `bluejet restore DIR [DIR...] --to DIR [--to-generation N]`: restore a full backup, and
//! the incrementals that follow it (in order), into a new database directory, replaying
//! through generation N if given. The result opens as an independent database.

use super::backup::tool_error;
use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::LogPosition;
use bluejet_engine::Options;
use bluejet_replication::restore::{restore, RestoreReport};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Restores `backups` into `target`.
pub fn run(
    backups: &[PathBuf],
    target: &Path,
    to_generation: Option<u32>,
    json: bool,
) -> Result<Verdict, ToolError> {
    if let Some(missing) = backups.iter().find(|backup| !backup.is_dir()) {
        return Err(ToolError::Failure(format!(
            "{}: no such backup directory",
            missing.display()
        )));
    }
    let report = restore(backups, target, to_generation, Options::default()).map_err(tool_error)?;
    if json {
        print_json(&report);
    } else {
        print_text(&report);
    }
    Ok(Verdict::Clean)
}

fn generations_text(report: &RestoreReport) -> String {
    match (report.generations.first(), report.generations.last()) {
        (Some(first), Some(last)) => format!("generations {first}..{last} replayed"),
        _ => "no generation replayed".into(),
    }
}

fn print_text(report: &RestoreReport) {
    for backup in &report.backups {
        crate::out!("  from {}", backup.display());
    }
    crate::out!(
        "restored into {}: content at log position {}, {}, {}",
        report.target.display(),
        report.position,
        generations_text(report),
        output::plural(report.transactions, "transaction")
    );
    crate::out!(
        "content recounted: {} entries, checksum {:016x}{}",
        report.content.entries,
        report.content.checksum,
        if report.content_matches_manifest {
            ", as the backup's manifest records"
        } else {
            " (replay stopped before the last backup's end: checked at its proof points)"
        }
    );
}

fn print_json(report: &RestoreReport) {
    output::print_json(&RestoreDocument {
        kind: "restore",
        target: report.target.display().to_string(),
        backups: report
            .backups
            .iter()
            .map(|b| b.display().to_string())
            .collect(),
        position: report.position,
        generations: &report.generations,
        transactions: report.transactions,
        content: RestoredContent {
            entries: report.content.entries,
            checksum: format!("{:016x}", report.content.checksum),
            matches_manifest: report.content_matches_manifest,
        },
        passed: true,
    });
}

/// The JSON document of `restore`.
#[derive(Serialize)]
struct RestoreDocument<'a> {
    kind: &'static str,
    target: String,
    backups: Vec<String>,
    position: LogPosition,
    generations: &'a [u32],
    transactions: u64,
    content: RestoredContent,
    passed: bool,
}

/// The restored database's content totals, against the manifest's.
#[derive(Serialize)]
struct RestoredContent {
    entries: u64,
    checksum: String,
    matches_manifest: bool,
}
