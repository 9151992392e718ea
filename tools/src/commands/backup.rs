//! `bluejet backup --replica DIR --to DIR [--incremental]`: a full (or incremental) backup
//! taken from a passive copy, with no load on the active. No replication service may hold
//! the replica while it runs (a running cluster: `bluejet cluster backup`).

use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::LogPosition;
use bluejet_replication::backup::{self, BackupReport};
use bluejet_replication::backup_error::BackupError;
use bluejet_replication::backup_manifest::{BackupFile, BackupKind};
use bluejet_replication::ReplicaConfig;
use serde::Serialize;
use std::path::Path;

/// The exit code of a backup error: damage 1, a refusal 2, anything else as replication's.
pub fn tool_error(error: BackupError) -> ToolError {
    match error {
        BackupError::Repl(error) => crate::live::explain(
            error,
            "Backups, restores and truncation need these files to themselves: stop the service \
             holding them (`bluejet repl run` or the node) first; a running cluster's passive \
             node takes a backup itself (`bluejet cluster backup`); a restore goes into a new \
             directory.",
        ),
        BackupError::Refused { .. } => ToolError::Usage(error.to_string()),
        BackupError::Damaged { .. } => ToolError::Damage(error.to_string()),
        // A kind added later is an error like any other until it is given its own code.
        _ => ToolError::Failure(error.to_string()),
    }
}

/// Backs up the replica in `replica` into `to`.
pub fn run(replica: &Path, to: &Path, incremental: bool, json: bool) -> Result<Verdict, ToolError> {
    if !replica.is_dir() {
        return Err(ToolError::Failure(format!(
            "{}: no such replica directory",
            replica.display()
        )));
    }
    // The active's directory is not used: the backup reads only the replica.
    let config = ReplicaConfig::new(replica, replica);
    let report = if incremental {
        backup::incremental(&config, to)
    } else {
        backup::full(&config, to)
    }
    .map_err(tool_error)?;
    if json {
        print_json(&report);
    } else {
        print_text(&report);
    }
    Ok(Verdict::Clean)
}

fn generations_text(first: Option<u32>, last: Option<u32>) -> String {
    match first.zip(last) {
        Some((first, last)) => format!("generations {first}..{last}"),
        None => "no generations".into(),
    }
}

/// The manifest summary of a backup taken, as text.
pub fn print_text(report: &BackupReport) {
    let manifest = &report.manifest;
    crate::out!(
        "{:?} backup {} of {} into {}",
        manifest.kind,
        manifest.id,
        manifest.source.display(),
        report.target.display()
    );
    if let Some(checkpoint) = manifest.database_checkpoint {
        crate::out!("  database checkpoint {checkpoint}");
    }
    if let Some(base) = &manifest.base {
        crate::out!(
            "  follows {} (through generation {})",
            base.id,
            base.covers_through
        );
    }
    for file in &manifest.files {
        crate::out!(
            "  {:<20} {:>12} crc32c {:#010x}",
            file.name,
            output::bytes(file.bytes),
            file.crc32c
        );
    }
    crate::out!(
        "backup complete: {}, content at log position {}, {} ({} replayed first)",
        generations_text(manifest.first_generation, manifest.last_generation),
        manifest.position,
        output::bytes(report.bytes),
        output::plural(u64::from(report.replayed_before), "generation")
    );
}

fn print_json(report: &BackupReport) {
    output::print_json(&report_json(report));
}

/// The manifest summary of a backup taken, the JSON document of `backup` (and part of
/// `cluster backup`'s).
#[derive(Serialize)]
pub struct BackupDocument<'a> {
    kind: &'static str,
    backup_kind: BackupKind,
    id: &'a str,
    replica: String,
    target: String,
    position: LogPosition,
    database_checkpoint: Option<LogPosition>,
    first_generation: Option<u32>,
    last_generation: Option<u32>,
    covers_through: u32,
    base: Option<&'a str>,
    files: &'a [BackupFile],
    bytes: u64,
    replayed_before: u32,
    passed: bool,
}

/// The manifest summary of a backup taken.
pub fn report_json(report: &BackupReport) -> BackupDocument<'_> {
    let manifest = &report.manifest;
    BackupDocument {
        kind: "backup",
        backup_kind: manifest.kind,
        id: &manifest.id,
        replica: manifest.source.display().to_string(),
        target: report.target.display().to_string(),
        position: manifest.position,
        database_checkpoint: manifest.database_checkpoint,
        first_generation: manifest.first_generation,
        last_generation: manifest.last_generation,
        covers_through: manifest.covers_through(),
        base: manifest.base.as_ref().map(|base| base.id.as_str()),
        files: &manifest.files,
        bytes: report.bytes,
        replayed_before: report.replayed_before,
        passed: true,
    }
}
