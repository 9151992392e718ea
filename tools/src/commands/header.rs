//! `bluejet header DB` (alias `mh`): the database header in force and the condition of both
//! copies, like `eseutil /mh`.

use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use bluejet_engine::format::db_header::{BackupRecord, CopyCondition, HeaderRead};
use bluejet_engine::format::inspect::DatabaseImage;
use bluejet_engine::DbError;
use bluejet_engine::LogPosition;
use bluejet_engine::{DbHeader, DbState};
use serde::Serialize;
use std::path::Path;

/// Prints the header of the database at `path`. A damaged copy is damage (exit 1) even
/// though the other one is used; both damaged is reported copy by copy, then as the error.
pub fn run(path: &Path, json: bool) -> Result<Verdict, ToolError> {
    let file = image::database_file(path)?;
    match DatabaseImage::open(&file) {
        Ok(opened) => {
            let read = &opened.header;
            if json {
                print_json(&file, read);
            } else {
                print_text(&file, read);
            }
            let damaged = read
                .conditions
                .iter()
                .filter(|condition| matches!(condition, CopyCondition::Damaged(_)))
                .count();
            Ok(Verdict::from_problems(damaged))
        }
        Err(error) => {
            if let DbError::BadHeader { copy_0, copy_1, .. } = &error {
                print_unusable(&file, [copy_0, copy_1], &error, json);
            }
            Err(error.into())
        }
    }
}

/// Both copies are unusable: still say why, copy by copy, before the error itself.
fn print_unusable(file: &Path, reasons: [&String; 2], error: &DbError, json: bool) {
    if json {
        output::print_json(&UnusableJson {
            kind: "header",
            path: file.display().to_string(),
            header: None,
            copies: (0..2)
                .map(|slot| CopyJson::damaged(slot, reasons[slot]))
                .collect(),
            error: error.to_string(),
            passed: false,
        });
    } else {
        crate::out!("database file: {}", file.display());
        for (slot, reason) in reasons.iter().enumerate() {
            crate::out!("copy {slot}: damaged: {reason}");
        }
    }
}

/// A state as people say it.
pub fn state_name(state: DbState) -> &'static str {
    match state {
        DbState::JustCreated => "just created",
        DbState::DirtyShutdown => "dirty shutdown",
        DbState::CleanShutdown => "clean shutdown",
    }
}

fn state_json(state: DbState) -> &'static str {
    match state {
        DbState::JustCreated => "just_created",
        DbState::DirtyShutdown => "dirty_shutdown",
        DbState::CleanShutdown => "clean_shutdown",
    }
}

fn print_text(file: &Path, read: &HeaderRead) {
    let header = &read.header;
    crate::out!("database file: {}", file.display());
    for (name, value) in fields(header) {
        crate::out!("  {name:<20} {value}");
    }
    for (slot, condition) in read.conditions.iter().enumerate() {
        crate::out!("{}", copy_text(slot, condition, read.slot as usize == slot));
    }
    if let Some(text) = log_checkpoint_text(file, header) {
        crate::out!("log: {text}");
    }
}

/// The header's fields as (name, value) lines, in the order eseutil prints them.
fn fields(header: &DbHeader) -> Vec<(&'static str, String)> {
    vec![
        ("state", state_name(header.state).to_owned()),
        (
            "log required",
            format!("{}-{}", header.log_required.0, header.log_required.1),
        ),
        ("last consistent", header.last_consistent.to_string()),
        ("checkpoint", header.checkpoint.to_string()),
        ("database signature", output::signature(&header.signature)),
        ("log signature", output::signature(&header.log_signature)),
        ("page size", header.page_size.to_string()),
        ("next page", header.next_page.to_string()),
        ("catalog root", header.catalog_root.to_string()),
        ("free list", header.free_list.to_string()),
        ("state version", header.state_version.to_string()),
        ("repair count", header.repair_count.to_string()),
        ("checksum errors", header.checksum_errors.to_string()),
        ("last full backup", backup_text(&header.last_full_backup)),
        (
            "last incr. backup",
            backup_text(&header.last_incremental_backup),
        ),
        ("timeline", header.timeline.to_string()),
        (
            "content",
            format!(
                "{} entries, checksum {:016x} (at the checkpoint)",
                header.content.entries, header.content.checksum
            ),
        ),
    ]
}

fn backup_text(backup: &BackupRecord) -> String {
    if backup.time_micros == 0 {
        return "none".into();
    }
    format!(
        "generations {}-{} at {}",
        backup.low_generation,
        backup.high_generation,
        output::time(backup.time_micros)
    )
}

fn copy_text(slot: usize, condition: &CopyCondition, in_use: bool) -> String {
    match condition {
        CopyCondition::Valid(sequence) => format!(
            "copy {slot}: valid (sequence {sequence}{})",
            if in_use { ", in use" } else { "" }
        ),
        CopyCondition::Damaged(reason) => format!("copy {slot}: damaged: {reason}"),
    }
}

fn print_json(file: &Path, read: &HeaderRead) {
    let header = &read.header;
    let copies: Vec<CopyJson> = read
        .conditions
        .iter()
        .enumerate()
        .map(|(slot, condition)| match condition {
            CopyCondition::Valid(sequence) => CopyJson {
                copy: slot,
                state: "valid",
                sequence: Some(*sequence),
                in_use: Some(read.slot as usize == slot),
                reason: None,
            },
            CopyCondition::Damaged(reason) => CopyJson::damaged(slot, reason),
        })
        .collect();
    let damaged = copies.iter().any(|copy| copy.state == "damaged");
    output::print_json(&HeaderReport {
        kind: "header",
        path: file.display().to_string(),
        header: header_json(header),
        copy_in_use: read.slot,
        copies,
        log_checkpoint: log_checkpoint_text(file, header),
        passed: !damaged,
    });
}

/// `header --json`: the header in force, both copies, and how the log's checkpoint relates.
#[derive(Serialize)]
struct HeaderReport {
    kind: &'static str,
    path: String,
    header: HeaderJson,
    copy_in_use: u8,
    copies: Vec<CopyJson>,
    log_checkpoint: Option<String>,
    passed: bool,
}

/// `header --json` when neither copy is usable: each copy's reason, then the error.
#[derive(Serialize)]
struct UnusableJson {
    kind: &'static str,
    path: String,
    header: Option<HeaderJson>,
    copies: Vec<CopyJson>,
    error: String,
    passed: bool,
}

/// One header copy: valid (with its sequence and whether it is the one in use) or damaged
/// (with why).
#[derive(Serialize)]
struct CopyJson {
    copy: usize,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_use: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl CopyJson {
    fn damaged(copy: usize, reason: &str) -> Self {
        Self {
            copy,
            state: "damaged",
            sequence: None,
            in_use: None,
            reason: Some(reason.to_owned()),
        }
    }
}

/// How the header's checkpoint relates to the log's checkpoint file beside the database.
fn log_checkpoint_text(file: &Path, header: &DbHeader) -> Option<String> {
    let directory = file.parent()?;
    let base = bluejet_engine::BaseName::default();
    let theirs = super::checkpoint_dump::log_checkpoint(directory, base);
    Some(crate::positions::explain(header, theirs))
}

/// The header in force, in JSON.
#[derive(Serialize)]
struct HeaderJson {
    state: &'static str,
    log_required: LogRequiredJson,
    last_consistent: LogPosition,
    checkpoint: LogPosition,
    database_signature: output::SignatureJson,
    log_signature: output::SignatureJson,
    page_size: u32,
    next_page: u64,
    catalog_root: u64,
    free_list: u64,
    state_version: u64,
    sequence: u64,
    repair_count: u64,
    checksum_errors: u64,
    last_full_backup: Option<BackupJson>,
    last_incremental_backup: Option<BackupJson>,
    timeline: u64,
    content: ContentJson,
}

/// The range of generations a database needs to be consistent.
#[derive(Serialize)]
struct LogRequiredJson {
    min: u32,
    max: u32,
}

/// A backup the header records; absent when there was none.
#[derive(Serialize)]
struct BackupJson {
    low_generation: u32,
    high_generation: u32,
    time_micros: u64,
    time: String,
}

/// The content digest at the checkpoint; the checksum in hex.
#[derive(Serialize)]
struct ContentJson {
    entries: u64,
    checksum: String,
}

fn backup_json(backup: &BackupRecord) -> Option<BackupJson> {
    (backup.time_micros != 0).then(|| BackupJson {
        low_generation: backup.low_generation,
        high_generation: backup.high_generation,
        time_micros: backup.time_micros,
        time: output::time(backup.time_micros),
    })
}

fn header_json(header: &DbHeader) -> HeaderJson {
    HeaderJson {
        state: state_json(header.state),
        log_required: LogRequiredJson {
            min: header.log_required.0,
            max: header.log_required.1,
        },
        last_consistent: header.last_consistent,
        checkpoint: header.checkpoint,
        database_signature: output::signature_json(&header.signature),
        log_signature: output::signature_json(&header.log_signature),
        page_size: header.page_size,
        next_page: header.next_page,
        catalog_root: header.catalog_root,
        free_list: header.free_list,
        state_version: header.state_version,
        sequence: header.sequence,
        repair_count: header.repair_count,
        checksum_errors: header.checksum_errors,
        last_full_backup: backup_json(&header.last_full_backup),
        last_incremental_backup: backup_json(&header.last_incremental_backup),
        timeline: header.timeline,
        content: ContentJson {
            entries: header.content.entries,
            checksum: format!("{:016x}", header.content.checksum),
        },
    }
}
