//! `bluejet backup verify DIR`: check every file of a backup against its manifest, that its
//! generations are valid closed generations of the backup's stream, contiguous and chained,
//! and that its database header reads. Exit 0 sound, 1 damaged.

use super::backup::tool_error;
use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::LogPosition;
use bluejet_replication::backup_manifest::BackupKind;
use bluejet_replication::backup_verify::{verify, Problem, VerifyReport};
use serde::Serialize;
use std::path::Path;

/// Verifies the backup in `directory`.
pub fn run(directory: &Path, json: bool) -> Result<Verdict, ToolError> {
    if !directory.is_dir() {
        return Err(ToolError::Failure(format!(
            "{}: no such backup directory",
            directory.display()
        )));
    }
    let report = verify(&OsFileSystem, directory).map_err(tool_error)?;
    if json {
        print_json(&report);
    } else {
        print_text(&report);
    }
    Ok(Verdict::from_problems(report.problems.len()))
}

fn verdict_text(report: &VerifyReport) -> String {
    if report.passed() {
        format!(
            "backup verified: {} sound",
            output::plural(report.files_checked as u64, "file")
        )
    } else {
        format!(
            "backup verification FAILED: {} problem(s)",
            report.problems.len()
        )
    }
}

fn print_text(report: &VerifyReport) {
    let manifest = &report.manifest;
    crate::out!(
        "{:?} backup {} in {}: content at log position {}",
        manifest.kind,
        manifest.id,
        report.directory.display(),
        manifest.position
    );
    for problem in &report.problems {
        crate::out!("problem: {}: {}", problem.path.display(), problem.reason);
    }
    crate::out!("{}", verdict_text(report));
}

fn print_json(report: &VerifyReport) {
    let manifest = &report.manifest;
    output::print_json(&VerifyDocument {
        kind: "backup-verify",
        directory: report.directory.display().to_string(),
        id: &manifest.id,
        backup_kind: manifest.kind,
        position: manifest.position,
        first_generation: manifest.first_generation,
        last_generation: manifest.last_generation,
        files_checked: report.files_checked,
        problems: &report.problems,
        passed: report.passed(),
        verdict: verdict_text(report),
    });
}

/// The JSON document of `backup verify`.
#[derive(Serialize)]
struct VerifyDocument<'a> {
    kind: &'static str,
    directory: String,
    id: &'a str,
    backup_kind: BackupKind,
    position: LogPosition,
    first_generation: Option<u32>,
    last_generation: Option<u32>,
    files_checked: usize,
    problems: &'a [Problem],
    passed: bool,
    verdict: String,
}
