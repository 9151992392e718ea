//! `bluejet diverged show DIR [--json]`: the lost-mail report of an old active's divergent
//! tail: the transactions in `DIR` (a `diverged-<epoch>` directory, or an instance
//! directory: each of its `diverged-*`, newest first) that the new active never had, in
//! commit order, with their tables, keys, operations, value sizes and the messages among
//! them (Message-ID, mailbox, folder, subject).
//!
//! Exit 0 when every divergent file could be read, 1 when one cannot (listed as
//! unreadable, naming it) or the report is damaged, 2 when DIR is neither, 3 on an I/O error.

use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::file::OsFileSystem;
use bluejet_replication::diverged::summary::{self, DivergedSummary};
use bluejet_replication::diverged::{decode, files, DivergedError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The JSON document of an instance's reports, newest first, in the layout (and version)
/// of the replication crate's summaries.
#[derive(Serialize)]
struct InstanceDocument<'a> {
    schema_version: u32,
    instance: String,
    reports: &'a [DivergedSummary],
}

/// Decodes DIR and prints the report.
pub fn run(directory: &Path, json: bool) -> Result<Verdict, ToolError> {
    let directories = directories(directory)?;
    let mut reports = Vec::new();
    for directory in &directories {
        let decoded = decode::decode_directory(&OsFileSystem, directory).map_err(tool_error)?;
        reports.push(summary::summarize(&decoded));
    }
    let unreadable: usize = reports.iter().map(|report| report.unreadable.len()).sum();
    if json {
        match reports.as_slice() {
            [one] if directories[0] == directory => output::print_json(one),
            _ => output::print_json(&InstanceDocument {
                schema_version: summary::SCHEMA_VERSION,
                instance: directory.display().to_string(),
                reports: &reports,
            }),
        }
    } else {
        for report in &reports {
            print_text(report);
        }
    }
    Ok(Verdict::from_problems(unreadable))
}

/// DIR itself when it is a diverged directory, else its `diverged-*` directories.
fn directories(directory: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let named = directory
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(files::epoch_of);
    if named.is_some() {
        return Ok(vec![directory.to_owned()]);
    }
    let found = files::diverged_directories(directory).map_err(tool_error)?;
    if found.is_empty() {
        return Err(ToolError::Usage(format!(
            "{}: neither a diverged-<epoch> directory nor an instance directory holding one",
            directory.display()
        )));
    }
    Ok(found)
}

/// The exit code of a decoding error.
pub fn tool_error(error: DivergedError) -> ToolError {
    match error {
        DivergedError::NotDiverged { .. } => ToolError::Usage(error.to_string()),
        DivergedError::BadReport { .. }
        | DivergedError::TooLarge { .. }
        | DivergedError::Incomplete { .. } => ToolError::Damage(error.to_string()),
        DivergedError::Db(error) => error.into(),
        DivergedError::Repl(error) => error.into(),
        _ => ToolError::Failure(error.to_string()),
    }
}

/// The report in words: a few lines, then one per transaction.
pub fn print_text(report: &DivergedSummary) {
    crate::out!("{}", headline(report));
    for file in &report.unreadable {
        crate::out!("  unreadable: {}: {}", file.name, file.reason);
    }
    for transaction in &report.transactions {
        let operations: Vec<String> = transaction
            .operations
            .iter()
            .map(|operation| {
                let size = operation
                    .value_bytes
                    .map_or_else(String::new, |bytes| format!(" ({})", output::bytes(bytes)));
                let key = operation.key.as_deref().unwrap_or("");
                format!("{} {}/{key}{size}", operation.kind, operation.table)
            })
            .collect();
        crate::out!(
            "  {} generation {} transaction {}: {}",
            output::time(transaction.commit_micros),
            transaction.generation,
            transaction.transaction,
            operations.join(", ")
        );
    }
    for line in mail_lines(report, usize::MAX) {
        crate::out!("  {line}");
    }
}

/// One line: how many transactions and messages, from which files.
pub fn headline(report: &DivergedSummary) -> String {
    let common = report.common_generation.map_or_else(
        || "no common generation".to_owned(),
        |g| format!("after generation {g}"),
    );
    let incomplete = match report.incomplete {
        0 => String::new(),
        n => format!(", {n} more begun before these files (not listed)"),
    };
    format!(
        "{}: {} the new active never had ({common}, epoch {}): {} operations, {} of values, {}; \
         {} divergent files{}{incomplete}",
        report.directory,
        output::plural(report.totals.transactions, "transaction"),
        report.epoch,
        report.totals.operations,
        output::bytes(report.totals.value_bytes),
        output::plural(report.totals.messages, "message"),
        report.files.len(),
        match report.unreadable.len() {
            0 => String::new(),
            n => format!(", {n} unreadable"),
        },
    )
}

/// The first `limit` messages: Message-ID, mailbox/folder, subject (and how many more).
pub fn mail_lines(report: &DivergedSummary, limit: usize) -> Vec<String> {
    let messages: Vec<_> = report
        .transactions
        .iter()
        .flat_map(|transaction| &transaction.messages)
        .collect();
    let mut lines: Vec<String> = messages
        .iter()
        .take(limit)
        .map(|message| {
            let place = match &message.folder {
                Some(folder) => format!("{}/{folder}", message.mailbox),
                None => message.mailbox.clone(),
            };
            format!(
                "message {} in {place}: \"{}\" ({})",
                message.message_id.as_deref().unwrap_or(&message.key),
                message.subject.as_deref().unwrap_or(""),
                output::bytes(message.bytes)
            )
        })
        .collect();
    if messages.len() > limit {
        lines.push(format!("... and {} more", messages.len() - limit));
    }
    lines
}
