//! `bluejet log dump DIR`: verifies a whole log stream — every generation, the chain between
//! them, the gaps, and the checkpoint against the generations present.

use super::log_file::GenerationHeaderJson;
use crate::exit::{ToolError, Verdict};
use crate::output;
use crate::problem::{verdict_line, Problem};
use crate::records::{RecordJson, RecordRow};
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::format::checkpoint;
use bluejet_engine::format::checkpoint::Checkpoint;
use bluejet_engine::format::checkpoint::CopyState;
use bluejet_engine::format::log_directory::{path_of, LogDirectory};
use bluejet_engine::format::log_reader::LogReader;
use bluejet_engine::format::log_verify::verify_directory;
use bluejet_engine::format::log_verify::GenerationReport;
use bluejet_engine::format::log_verify::VerifyReport;
use bluejet_engine::format::record::RECORD_HEADER_BYTES;
use bluejet_engine::{BaseName, LogConfig, LogPosition};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::Path;

/// Show a progress bar only for more generations than this.
const PROGRESS_THRESHOLD: usize = 8;

/// The outcome of checking a log directory.
pub struct StreamCheck {
    /// What the engine's verification found.
    pub report: VerifyReport,
    /// Whether `E00tmp.log` exists.
    pub prepared: bool,
    /// The checkpoint in force, if the file could be read.
    pub checkpoint: Option<Checkpoint>,
    /// Notes that are not problems (e.g. one damaged checkpoint copy after a torn update).
    pub notes: Vec<String>,
    /// Every problem: the engine's, then the tool's own checks.
    pub problems: Vec<Problem>,
}

impl StreamCheck {
    /// Whether nothing is wrong.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the stream `base` in `directory`, with a progress bar on a terminal.
pub fn check(directory: &Path, base: BaseName) -> Result<StreamCheck, ToolError> {
    let fs = OsFileSystem;
    let listing = LogDirectory::list(&fs, directory, base)?;
    if listing.closed.is_empty() && !listing.current {
        return Err(ToolError::Failure(format!(
            "{}: no generation of log stream {} found",
            directory.display(),
            base.as_str()
        )));
    }
    let show_progress = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut progress = |done: usize, total: usize| {
        if bar.is_none() && show_progress && total > PROGRESS_THRESHOLD {
            let created = ProgressBar::new(total as u64);
            if let Ok(style) =
                ProgressStyle::with_template("verifying {bar:40} {pos}/{len} generations")
            {
                created.set_style(style);
            }
            bar = Some(created);
        }
        if let Some(bar) = &bar {
            bar.set_position(done as u64);
        }
    };
    let report = verify_directory(&fs, directory, base, &mut progress)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut problems: Vec<Problem> = report
        .problems
        .iter()
        .map(|error| Problem::from_error(error, &report.generations))
        .collect();
    let mut notes = Vec::new();
    let checkpoint = if listing.checkpoint {
        check_checkpoint(directory, base, &report, &mut problems, &mut notes)
    } else {
        notes.push(format!("no checkpoint file {}", base.checkpoint()));
        None
    };
    Ok(StreamCheck {
        report,
        prepared: listing.prepared,
        checkpoint,
        notes,
        problems,
    })
}

/// Reads the checkpoint and checks it against the generations present.
fn check_checkpoint(
    directory: &Path,
    base: BaseName,
    report: &VerifyReport,
    problems: &mut Vec<Problem>,
    notes: &mut Vec<String>,
) -> Option<Checkpoint> {
    let path = path_of(directory, &base.checkpoint());
    let read = match checkpoint::read(&OsFileSystem, &path) {
        Ok(read) => read,
        Err(error) => {
            problems.push(Problem::new(None, error.to_string()));
            return None;
        }
    };
    for state in &read.copies {
        if let CopyState::Damaged(reason) = state {
            notes.push(format!(
                "{}: {reason} (the other copy is valid; a torn update leaves this)",
                path.display()
            ));
        }
    }
    let checkpoint = read.checkpoint;
    let headers: Vec<_> = report.generations.iter().filter_map(|g| g.header).collect();
    if let Some(first) = headers.first() {
        if first.signature != checkpoint.signature {
            problems.push(Problem::new(
                None,
                format!(
                    "{}: checkpoint belongs to stream {}, the log to stream {}",
                    path.display(),
                    checkpoint.signature,
                    first.signature
                ),
            ));
        }
    }
    let needed = checkpoint.position.generation;
    let present = report.generations.iter().any(|g| g.generation == needed);
    if !present {
        problems.push(Problem::new(
            Some(needed),
            format!(
                "{}: the checkpoint at {} needs generation {needed}, which is not in the directory",
                path.display(),
                checkpoint.position
            ),
        ));
    }
    Some(checkpoint)
}

/// Dumps and verifies the stream in `directory`.
pub fn run(
    directory: &Path,
    base: BaseName,
    list_records: bool,
    json: bool,
) -> Result<Verdict, ToolError> {
    let mut check = check(directory, base)?;
    let rows = if list_records {
        read_all(directory, base, &mut check)?
    } else {
        Vec::new()
    };
    if json {
        let mut document = check_json(directory, base, &check);
        if list_records {
            document.record_list = Some(rows.iter().map(RecordRow::view).collect());
        }
        output::print_json(&document);
    } else {
        print_text(directory, base, &check);
        if list_records {
            crate::out!("record list:");
            for row in &rows {
                crate::out!("  {}", row.text());
            }
        }
        print_verdict(&check);
    }
    Ok(Verdict::from_problems(check.problems.len()))
}

/// Reads every record of the stream with the engine's reader. A reader error is a problem
/// of its own only if verification found none (otherwise it repeats one of them).
fn read_all(
    directory: &Path,
    base: BaseName,
    check: &mut StreamCheck,
) -> Result<Vec<RecordRow>, ToolError> {
    let config = LogConfig {
        base_name: base,
        ..LogConfig::default()
    };
    let reader = LogReader::open(directory, config)?;
    let Some(first) = reader.first_generation() else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for item in reader.read_from(LogPosition::new(first, 0)) {
        match item {
            Ok(record) => {
                let decoded = record.decode().map_err(|error| error.to_string());
                let encoded = RECORD_HEADER_BYTES + record.payload.len();
                rows.push(RecordRow::new(
                    record.position,
                    record.kind,
                    encoded,
                    decoded,
                ));
            }
            Err(error) => {
                if check.passed() {
                    let problem = Problem::from_error(&error, &check.report.generations);
                    check.problems.push(problem);
                }
            }
        }
    }
    Ok(rows)
}

fn file_name(entry: &GenerationReport) -> String {
    entry
        .path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Prints the generations, gaps and checkpoint (not the verdict).
pub fn print_text(directory: &Path, base: BaseName, check: &StreamCheck) {
    let generations = &check.report.generations;
    crate::out!(
        "log stream {} in {}: {}",
        base.as_str(),
        directory.display(),
        output::plural(generations.len() as u64, "generation")
    );
    if let Some(header) = generations.iter().find_map(|g| g.header) {
        crate::out!("signature: {}", output::signature(&header.signature));
    }
    crate::out!(
        "{:>10}  {:<18} {:<28} {:>8} {:>8} {:>9}  notes",
        "generation",
        "file",
        "created",
        "records",
        "commits",
        "segments"
    );
    for entry in generations {
        print_generation(entry);
    }
    print_stream_state(base, check);
}

/// One row of the generation table.
fn print_generation(entry: &GenerationReport) {
    let created = entry.header.map_or_else(
        || "(unreadable header)".into(),
        |h| output::time(h.created_micros),
    );
    // A file whose scan failed has no digest; its counts mean nothing.
    let scanned = entry.digest.is_some();
    let (records, commits, segments) = if scanned {
        (
            entry.records.to_string(),
            entry.commits.to_string(),
            format!("{}/{}", entry.segments_used, entry.segments_total),
        )
    } else {
        ("-".to_string(), "-".to_string(), "-".to_string())
    };
    let generation = match entry.generation {
        0 => "?".to_string(),
        number => number.to_string(),
    };
    crate::out!(
        "{generation:>10}  {:<18} {created:<28} {records:>8} {commits:>8} {segments:>9}  {}",
        file_name(entry),
        generation_notes(entry, scanned).join(", ")
    );
}

/// The notes column of a generation's row.
fn generation_notes(entry: &GenerationReport, scanned: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(header) = entry.header {
        notes.push(format!("timeline {}", header.timeline));
    }
    if entry.current {
        notes.push("current".to_string());
        if scanned {
            notes.push(format!("torn tail {} B", entry.torn_bytes));
        }
    }
    if !scanned {
        notes.push("DAMAGED, not read".to_string());
    }
    notes
}

/// The lines after the table: prepared file, gaps, checkpoint, notes.
fn print_stream_state(base: BaseName, check: &StreamCheck) {
    if check.prepared {
        crate::out!("next generation prepared: {}", base.prepared());
    }
    if check.report.missing.is_empty() {
        crate::out!("missing generations: none");
    } else {
        let ranges: Vec<String> = check
            .report
            .missing
            .iter()
            .map(|(first, last)| format!("{first}..={last}"))
            .collect();
        crate::out!("missing generations: {}", ranges.join(", "));
    }
    if let Some(checkpoint) = &check.checkpoint {
        crate::out!(
            "checkpoint: {} (sequence {}, updated {})",
            checkpoint.position,
            checkpoint.sequence,
            output::time(checkpoint.updated_micros)
        );
    }
    for note in &check.notes {
        crate::out!("note: {note}");
    }
}

/// Prints each problem, one a line.
pub fn print_verdict_problems(check: &StreamCheck) {
    for problem in &check.problems {
        crate::out!("{}", problem.text());
    }
}

/// Prints each problem, then the verdict line.
pub fn print_verdict(check: &StreamCheck) {
    print_verdict_problems(check);
    crate::out!("{}", verdict_line(check.problems.len()));
}

/// `log dump DIRECTORY --json`: the stream's generations, gaps, checkpoint and problems.
#[derive(Serialize)]
pub struct StreamJson<'a> {
    kind: &'static str,
    directory: String,
    base_name: String,
    generations: Vec<GenerationJson>,
    prepared: bool,
    missing: Vec<MissingJson>,
    checkpoint: Option<CheckpointJson>,
    notes: &'a [String],
    problems: &'a [Problem],
    passed: bool,
    verdict: String,
    /// Every record, with `--list-records`.
    #[serde(skip_serializing_if = "Option::is_none")]
    record_list: Option<Vec<RecordJson<'a>>>,
}

/// One generation of the stream as verified.
#[derive(Serialize)]
struct GenerationJson {
    generation: u32,
    file: String,
    current: bool,
    scanned: bool,
    header: Option<GenerationHeaderJson>,
    created: Option<String>,
    stream_bytes: u64,
    records: u64,
    commits: u64,
    segments_used: u32,
    segments_total: u32,
    torn_bytes: usize,
    digest: Option<u32>,
}

/// A run of generations missing from the stream.
#[derive(Serialize)]
struct MissingJson {
    first: u32,
    last: u32,
}

/// The checkpoint in force for the stream.
#[derive(Serialize)]
struct CheckpointJson {
    position: LogPosition,
    sequence: u64,
    updated: String,
}

fn generation_json(entry: &GenerationReport) -> GenerationJson {
    GenerationJson {
        generation: entry.generation,
        file: file_name(entry),
        current: entry.current,
        scanned: entry.digest.is_some(),
        header: entry.header.as_ref().map(super::log_file::header_json),
        created: entry.header.map(|h| output::time(h.created_micros)),
        stream_bytes: entry.stream_bytes,
        records: entry.records,
        commits: entry.commits,
        segments_used: entry.segments_used,
        segments_total: entry.segments_total,
        torn_bytes: entry.torn_bytes,
        digest: entry.digest,
    }
}

/// The check as one JSON document.
pub fn check_json<'a>(directory: &Path, base: BaseName, check: &'a StreamCheck) -> StreamJson<'a> {
    StreamJson {
        kind: "stream",
        directory: directory.display().to_string(),
        base_name: base.as_str().to_owned(),
        generations: check
            .report
            .generations
            .iter()
            .map(generation_json)
            .collect(),
        prepared: check.prepared,
        missing: check
            .report
            .missing
            .iter()
            .map(|&(first, last)| MissingJson { first, last })
            .collect(),
        checkpoint: check.checkpoint.as_ref().map(|checkpoint| CheckpointJson {
            position: checkpoint.position,
            sequence: checkpoint.sequence,
            updated: output::time(checkpoint.updated_micros),
        }),
        notes: &check.notes,
        problems: &check.problems,
        passed: check.passed(),
        verdict: verdict_line(check.problems.len()),
        record_list: None,
    }
}
