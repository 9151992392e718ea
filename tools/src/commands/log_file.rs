//! `bluejet log dump FILE`: one generation file — header, segments, records.

use crate::exit::{ToolError, Verdict};
use crate::output;
use crate::problem::{verdict_line, Problem};
use crate::records::{RecordJson, RecordRow, Tally, TallyJson};
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::format::generation_header::GenerationHeader;
use bluejet_engine::format::generation_header::{FILE_TYPE_CHECKPOINT, FILE_TYPE_OFFSET, MAGIC};
use bluejet_engine::format::log_directory::read_image;
use bluejet_engine::format::record::read_record;
use bluejet_engine::format::scan::{self, GenerationScan, ScanMode, TailSource};
use bluejet_engine::format::segment::{self, SegmentRead, SEGMENT_BYTES};
use bluejet_engine::log::MAX_GENERATION_BYTES;
use bluejet_engine::LogError;
use bluejet_engine::{BaseName, LogFileName, LogPosition};
use serde::Serialize;
use std::path::Path;

/// What the file name says the file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// `E00.log`.
    Current,
    /// `E00tmp.log`.
    Prepared,
    /// `E00` + 8 hex digits + `.log`.
    Closed(u32),
    /// Any other name: checked strictly, like a closed generation.
    Unrecognised,
}

impl Role {
    fn mode(self) -> ScanMode {
        match self {
            Role::Current | Role::Prepared => ScanMode::Current,
            Role::Closed(_) | Role::Unrecognised => ScanMode::Closed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Current => "current",
            Role::Prepared => "prepared",
            Role::Closed(_) => "closed",
            Role::Unrecognised => "unrecognised name (checked as closed)",
        }
    }
}

/// The state of one shadow slot, described.
struct Shadow {
    slot: u32,
    state: String,
}

/// Everything learnt about one generation file.
struct FileReport {
    role: Role,
    base: Option<BaseName>,
    header: Option<GenerationHeader>,
    scanned: Option<GenerationScan>,
    shadows: Vec<Shadow>,
    tally: Tally,
    rows: Vec<RecordRow>,
    notes: Vec<String>,
    problems: Vec<Problem>,
}

/// Dumps the generation file at `path`; `base` overrides the base name read from the file
/// name.
pub fn run(
    path: &Path,
    base: Option<BaseName>,
    list_records: bool,
    json: bool,
) -> Result<Verdict, ToolError> {
    let (_, image) = read_image(&OsFileSystem, path, MAX_GENERATION_BYTES)?;
    if image.len() > FILE_TYPE_OFFSET
        && image[4..12] == MAGIC
        && image[FILE_TYPE_OFFSET] == FILE_TYPE_CHECKPOINT
    {
        return Err(ToolError::Usage(format!(
            "{} is a checkpoint file; use `bluejet checkpoint dump`",
            path.display()
        )));
    }
    let (role, base) = classify(path, base);
    let report = inspect(path, &image, role, base, list_records);
    if json {
        output::print_json(&report_json(path, &report, list_records));
    } else {
        print_text(path, &report, list_records);
    }
    Ok(Verdict::from_problems(report.problems.len()))
}

/// The role of the file from its name, and the base name used.
fn classify(path: &Path, base: Option<BaseName>) -> (Role, Option<BaseName>) {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = base.or_else(|| name.get(..3).and_then(|prefix| BaseName::new(prefix).ok()));
    let role = match base.and_then(|base| base.classify(&name)) {
        Some(LogFileName::Current) => Role::Current,
        Some(LogFileName::Prepared) => Role::Prepared,
        Some(LogFileName::Closed(generation)) => Role::Closed(generation),
        Some(LogFileName::Checkpoint) | None => Role::Unrecognised,
    };
    (role, base)
}

impl FileReport {
    /// A report with nothing learnt yet.
    fn new(role: Role, base: Option<BaseName>) -> Self {
        FileReport {
            role,
            base,
            header: None,
            scanned: None,
            shadows: Vec::new(),
            tally: Tally::default(),
            rows: Vec::new(),
            notes: Vec::new(),
            problems: Vec::new(),
        }
    }
}

fn inspect(
    path: &Path,
    image: &[u8],
    role: Role,
    base: Option<BaseName>,
    list_records: bool,
) -> FileReport {
    let mut report = FileReport::new(role, base);
    let Some(header) = header_or_reason(&mut report, path, image) else {
        return report;
    };
    report.header = Some(header);
    check_names(&mut report, path, &header, role, base);
    scan_generation(&mut report, path, image, &header, list_records);
    report
}

/// The generation header; without one, a note or a problem in `report` says why.
fn header_or_reason(
    report: &mut FileReport,
    path: &Path,
    image: &[u8],
) -> Option<GenerationHeader> {
    let role = report.role;
    match scan::read_header(path, image) {
        Ok(header) => Some(header),
        // A prepared generation gets its header only at the roll that installs it.
        Err(_) if role == Role::Prepared && image.iter().all(|&byte| byte == 0) => {
            report.notes.push(format!(
                "prepared next generation, {} B, not written yet",
                image.len()
            ));
            None
        }
        Err(error) => {
            let named = match role {
                Role::Closed(generation) => Some(generation),
                _ => None,
            };
            report.problems.push(Problem::new(named, error.to_string()));
            None
        }
    }
}

/// Scans the segments and reads the records; a failed scan is a problem, and the shadow
/// slots are still described when the file has its full size (so they can be read).
fn scan_generation(
    report: &mut FileReport,
    path: &Path,
    image: &[u8],
    header: &GenerationHeader,
    list_records: bool,
) {
    match scan::scan(path, image, report.role.mode()) {
        Ok(scanned) => {
            report.shadows = shadows(image, header, Some(&scanned));
            read_records(report, &scanned, list_records);
            report.scanned = Some(scanned);
        }
        Err(error) => {
            if image.len() as u64 == header.generation_bytes as u64 {
                report.shadows = shadows(image, header, None);
            }
            report
                .problems
                .push(Problem::new(Some(header.generation), error.to_string()));
        }
    }
}

/// Checks the file name against the header: the generation of a closed file, and the base
/// name.
fn check_names(
    report: &mut FileReport,
    path: &Path,
    header: &GenerationHeader,
    role: Role,
    base: Option<BaseName>,
) {
    let generation = Some(header.generation);
    if let Role::Closed(named) = role {
        if named != header.generation {
            let error = LogError::NameMismatch {
                path: path.to_owned(),
                named,
                inside: header.generation,
            };
            report
                .problems
                .push(Problem::new(generation, error.to_string()));
        }
    }
    if let Some(base) = base.filter(|base| base.bytes() != header.base_name) {
        report.problems.push(Problem::new(
            generation,
            format!(
                "{}: the header holds base name {}, the file name says {}",
                path.display(),
                String::from_utf8_lossy(&header.base_name),
                base.as_str()
            ),
        ));
    }
}

/// Describes the two shadow slots.
fn shadows(
    image: &[u8],
    header: &GenerationHeader,
    scanned: Option<&GenerationScan>,
) -> Vec<Shadow> {
    scan::shadow_slots(header.generation_bytes as u64)
        .into_iter()
        .map(|slot| {
            let start = slot as usize * SEGMENT_BYTES;
            let bytes = &image[start..start + SEGMENT_BYTES];
            let state = match segment::decode(bytes, header.generation, slot) {
                SegmentRead::Empty => "empty".to_string(),
                SegmentRead::Invalid(reason) => format!("invalid: {reason}"),
                SegmentRead::Valid(segment, _) => {
                    let use_ = match scanned.map(|s| s.tail_source) {
                        Some(TailSource::Shadow(used)) if used == slot => {
                            "in use: holds the last block"
                        }
                        Some(_) => "superseded",
                        None => "not judged",
                    };
                    format!(
                        "block {}, {} B, flush {} ({use_})",
                        segment.block, segment.used, segment.flush_sequence
                    )
                }
            };
            Shadow { slot, state }
        })
        .collect()
}

/// Frames, decodes and tallies every record of the stream.
fn read_records(report: &mut FileReport, scanned: &GenerationScan, list_records: bool) {
    let generation = scanned.header.generation;
    let stream = &scanned.stream;
    let mut offset = 0;
    while offset < stream.len() {
        // Scanning framed every record already; a failure here would be an engine bug.
        let raw = match read_record(&stream[offset..]) {
            Ok(raw) => raw,
            Err(problem) => {
                let message = format!("record at offset {offset} does not frame: {problem}");
                report
                    .problems
                    .push(Problem::new(Some(generation), message));
                return;
            }
        };
        let position = LogPosition::new(
            generation,
            u32::try_from(offset)
                .expect("a generation offset fits u32: generations are at most 64 MiB"),
        );
        let decoded = raw.decode().map_err(|problem| problem.to_string());
        let row = RecordRow::new(position, raw.kind, raw.encoded_len(), decoded);
        if let Some(problem) = &row.problem {
            report.problems.push(Problem::new(
                Some(generation),
                format!("record at {position}: {problem}"),
            ));
        }
        report.tally.add(&row);
        if list_records {
            report.rows.push(row);
        }
        offset += raw.encoded_len();
    }
}

fn print_text(path: &Path, report: &FileReport, list_records: bool) {
    let base = report
        .base
        .map_or_else(|| "?".to_owned(), |base| base.as_str().to_owned());
    crate::out!(
        "file: {} ({} generation file of stream {base})",
        path.display(),
        report.role.name()
    );
    if let Some(header) = &report.header {
        print_header(header);
    }
    if let Some(scanned) = &report.scanned {
        print_segments(scanned);
    }
    print_shadows(report);
    if let Some(scanned) = &report.scanned {
        print_stream_end(report, scanned);
    }
    if list_records && !report.rows.is_empty() {
        crate::out!("record list:");
        for row in &report.rows {
            crate::out!("  {}", row.text());
        }
    }
    for note in &report.notes {
        crate::out!("note: {note}");
    }
    for problem in &report.problems {
        crate::out!("{}", problem.text());
    }
    crate::out!("{}", verdict_line(report.problems.len()));
}

/// The header's fields, one a line.
fn print_header(header: &GenerationHeader) {
    crate::out!("header:");
    for (field, value) in header_fields(header) {
        crate::out!("  {field:<22} {value}");
    }
}

/// The shadow slots' lines; they go under the segment summary, or under a heading of their
/// own when the scan failed and there is no summary.
fn print_shadows(report: &FileReport) {
    if !report.shadows.is_empty() && report.scanned.is_none() {
        crate::out!("segments: (scan failed)");
    }
    for shadow in &report.shadows {
        crate::out!(
            "  {:<22} {}",
            format!("shadow segment {}", shadow.slot),
            shadow.state
        );
    }
}

/// How the stream ends (torn tail of a current generation, tail note) and the record tally.
fn print_stream_end(report: &FileReport, scanned: &GenerationScan) {
    if report.role.mode() == ScanMode::Current {
        crate::out!("  {:<22} {} B", "torn tail", scanned.torn_bytes);
    }
    if let Some(note) = &scanned.tail_note {
        crate::out!("  {:<22} {note}", "end of stream");
    }
    for line in report.tally.text() {
        crate::out!("{line}");
    }
}

/// The segment summary of a scanned generation.
fn print_segments(scanned: &GenerationScan) {
    let capacity = scan::stream_capacity(scanned.file_bytes);
    crate::out!("segments:");
    crate::out!(
        "  {:<22} {} / {}",
        "home segments used",
        scanned.home_segments,
        scanned.home_capacity
    );
    crate::out!(
        "  {:<22} {} of {} ({:.1}%)",
        "record stream",
        output::bytes(scanned.stream.len() as u64),
        output::bytes(capacity),
        100.0 * scanned.stream.len() as f64 / capacity.max(1) as f64
    );
    crate::out!("  {:<22} {}", "highest flush", scanned.max_flush_sequence);
    crate::out!("  {:<22} {:#010x}", "file digest", scanned.digest);
}

/// The header's fields as (name, value) text pairs.
fn header_fields(header: &GenerationHeader) -> Vec<(&'static str, String)> {
    vec![
        ("generation", header.generation.to_string()),
        ("signature", output::signature(&header.signature)),
        ("timeline", header.timeline.to_string()),
        (
            "created",
            format!(
                "{} ({})",
                output::time(header.created_micros),
                header.created_micros
            ),
        ),
        (
            "previous created",
            format!(
                "{} ({})",
                output::time(header.previous_created_micros),
                header.previous_created_micros
            ),
        ),
        (
            "previous digest",
            format!("{:#010x}", header.previous_digest),
        ),
        ("segment size", header.segment_bytes.to_string()),
        ("generation size", header.generation_bytes.to_string()),
        (
            "base name",
            String::from_utf8_lossy(&header.base_name).into_owned(),
        ),
    ]
}

/// A generation header in JSON.
#[derive(Serialize)]
pub struct GenerationHeaderJson {
    generation: u32,
    signature: output::SignatureJson,
    timeline: u64,
    created_micros: u64,
    created: String,
    previous_created_micros: u64,
    previous_digest: u32,
    segment_bytes: u32,
    generation_bytes: u32,
    base_name: String,
}

/// A generation header as JSON.
pub fn header_json(header: &GenerationHeader) -> GenerationHeaderJson {
    GenerationHeaderJson {
        generation: header.generation,
        signature: output::signature_json(&header.signature),
        timeline: header.timeline,
        created_micros: header.created_micros,
        created: output::time(header.created_micros),
        previous_created_micros: header.previous_created_micros,
        previous_digest: header.previous_digest,
        segment_bytes: header.segment_bytes,
        generation_bytes: header.generation_bytes,
        base_name: String::from_utf8_lossy(&header.base_name).into_owned(),
    }
}

/// `log dump FILE --json`: one generation file, its role, header, segments, shadows,
/// records and problems.
#[derive(Serialize)]
struct FileReportJson<'a> {
    kind: &'static str,
    path: String,
    role: &'static str,
    named_generation: Option<u32>,
    base_name: Option<String>,
    header: Option<GenerationHeaderJson>,
    segments: Option<SegmentsJson<'a>>,
    shadows: Vec<ShadowJson<'a>>,
    records: Option<TallyJson>,
    notes: &'a [String],
    problems: &'a [Problem],
    passed: bool,
    verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_list: Option<Vec<RecordJson<'a>>>,
}

/// How the generation's segments were found when scanned.
#[derive(Serialize)]
struct SegmentsJson<'a> {
    home_segments_used: u32,
    home_segments_total: u32,
    stream_bytes: usize,
    stream_capacity: u64,
    highest_flush: u64,
    digest: u32,
    torn_bytes: usize,
    tail_note: Option<&'a str>,
}

/// One shadow slot and its state.
#[derive(Serialize)]
struct ShadowJson<'a> {
    slot: u32,
    state: &'a str,
}

fn report_json<'a>(path: &Path, report: &'a FileReport, list_records: bool) -> FileReportJson<'a> {
    let segments = report.scanned.as_ref().map(|scanned| SegmentsJson {
        home_segments_used: scanned.home_segments,
        home_segments_total: scanned.home_capacity,
        stream_bytes: scanned.stream.len(),
        stream_capacity: scan::stream_capacity(scanned.file_bytes),
        highest_flush: scanned.max_flush_sequence,
        digest: scanned.digest,
        torn_bytes: scanned.torn_bytes,
        tail_note: scanned.tail_note.as_deref(),
    });
    let shadows = report
        .shadows
        .iter()
        .map(|shadow| ShadowJson {
            slot: shadow.slot,
            state: &shadow.state,
        })
        .collect();
    let named = match report.role {
        Role::Closed(generation) => Some(generation),
        _ => None,
    };
    FileReportJson {
        kind: "generation",
        path: path.display().to_string(),
        role: report.role.name(),
        named_generation: named,
        base_name: report.base.map(|base| base.as_str().to_owned()),
        header: report.header.as_ref().map(header_json),
        segments,
        shadows,
        records: report.scanned.as_ref().map(|_| report.tally.json()),
        notes: &report.notes,
        problems: &report.problems,
        passed: report.problems.is_empty(),
        verdict: verdict_line(report.problems.len()),
        record_list: list_records.then(|| report.rows.iter().map(RecordRow::view).collect()),
    }
}
