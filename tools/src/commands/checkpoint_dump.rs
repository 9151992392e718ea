//! `bluejet checkpoint dump PATH` (alias `bluejet mk PATH`): both copies of a checkpoint file.

use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::format::checkpoint;
use bluejet_engine::format::checkpoint::Checkpoint;
use bluejet_engine::format::checkpoint::CopyState;
use bluejet_engine::format::checkpoint::{CHECKPOINT_COPY_STRIDE, CHECKPOINT_FILE_BYTES};
use bluejet_engine::format::generation_header::{FILE_TYPE_LOG, FILE_TYPE_OFFSET, MAGIC};
use bluejet_engine::format::log_directory::path_of;
use bluejet_engine::{BaseName, LogPosition};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What was read from one checkpoint file.
struct Dump {
    file: PathBuf,
    checkpoint: Option<Checkpoint>,
    copies: [CopyState; 2],
    /// The copy that holds `checkpoint`, if any.
    in_force: Option<usize>,
    /// Why neither copy is usable, if so.
    problem: Option<String>,
}

/// Dumps the checkpoint at `path`, or `E00.chk` (after `base`) in the directory `path`.
///
/// One damaged copy is reported but is not damage: a torn update leaves exactly that, and the
/// other copy is in force. Both copies damaged is damage (exit 1). The file is decoded with
/// the engine's `checkpoint::decode_file`, as `checkpoint::read` does.
pub fn run(path: &Path, base: BaseName, json: bool) -> Result<Verdict, ToolError> {
    let file = locate(path, base)?;
    let image = read_prefix(&file)?;
    refuse_log_generation(&file, &image)?;
    let (checkpoint, copies, problem) = decode(&file, &image);
    let in_force = copies
        .iter()
        .position(|state| matches!(state, CopyState::Valid(copy) if Some(*copy) == checkpoint));
    let dump = Dump {
        file,
        checkpoint,
        copies,
        in_force,
        problem,
    };
    if json {
        print_json(&dump);
    } else {
        print_text(&dump);
    }
    Ok(Verdict::from_problems(usize::from(dump.problem.is_some())))
}

/// The checkpoint file `path` names: `path` itself, or the stream's checkpoint in the
/// directory `path`. It must exist.
fn locate(path: &Path, base: BaseName) -> Result<PathBuf, ToolError> {
    let file: PathBuf = if path.is_dir() {
        path_of(path, &base.checkpoint())
    } else {
        path.to_owned()
    };
    if !file.exists() {
        return Err(ToolError::Failure(format!(
            "{}: no such checkpoint file",
            file.display()
        )));
    }
    Ok(file)
}

/// A usage error if the file is a log generation: the user wants `log dump` instead.
fn refuse_log_generation(file: &Path, image: &[u8]) -> Result<(), ToolError> {
    if image.len() > FILE_TYPE_OFFSET
        && image[4..12] == MAGIC
        && image[FILE_TYPE_OFFSET] == FILE_TYPE_LOG
    {
        return Err(ToolError::Usage(format!(
            "{} is a log generation; use `bluejet log dump`",
            file.display()
        )));
    }
    Ok(())
}

/// `checkpoint dump --json`: the checkpoint in force, both copies, and how the database
/// beside it relates.
#[derive(Serialize)]
struct CheckpointReport<'a> {
    kind: &'static str,
    path: String,
    checkpoint: Option<CheckpointJson>,
    copies: Vec<CopyJson<'a>>,
    /// Why no copy is usable; empty when one is.
    problems: Vec<&'a String>,
    database: Option<String>,
    passed: bool,
}

/// One checkpoint (the one in force, or a copy's) in JSON.
#[derive(Serialize)]
struct CheckpointJson {
    position: LogPosition,
    signature: output::SignatureJson,
    timeline: u64,
    sequence: u64,
    updated_micros: u64,
    updated: String,
}

/// One copy of the checkpoint: valid (whether in force, and what it holds) or damaged (why).
#[derive(Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum CopyStateJson<'a> {
    Valid {
        in_force: bool,
        checkpoint: CheckpointJson,
    },
    Damaged {
        reason: &'a str,
    },
}

/// A copy's slot and state.
#[derive(Serialize)]
struct CopyJson<'a> {
    copy: usize,
    #[serde(flatten)]
    state: CopyStateJson<'a>,
}

fn print_json(dump: &Dump) {
    output::print_json(&CheckpointReport {
        kind: "checkpoint",
        path: dump.file.display().to_string(),
        checkpoint: dump.checkpoint.as_ref().map(checkpoint_json),
        copies: dump
            .copies
            .iter()
            .enumerate()
            .map(|(index, state)| copy_json(index, state, dump.in_force == Some(index)))
            .collect(),
        problems: dump.problem.iter().collect(),
        database: database_text(dump),
        passed: dump.problem.is_none(),
    });
}

fn print_text(dump: &Dump) {
    crate::out!("checkpoint file: {}", dump.file.display());
    if let Some(checkpoint) = &dump.checkpoint {
        print_checkpoint(checkpoint);
    }
    for (index, state) in dump.copies.iter().enumerate() {
        crate::out!("{}", copy_text(index, state, dump.in_force == Some(index)));
    }
    if let Some(problem) = &dump.problem {
        crate::out!("problem: {problem}");
    }
    if let Some(text) = database_text(dump) {
        crate::out!("database: {text}");
    }
}

/// How this checkpoint relates to the header of the database beside it, if there is one.
fn database_text(dump: &Dump) -> Option<String> {
    let header = database_header(&dump.file)?;
    let position = dump
        .checkpoint
        .as_ref()
        .map(|checkpoint| checkpoint.position);
    Some(crate::positions::explain(&header, position))
}

/// The header of the database beside the checkpoint file, if there is one and it reads.
fn database_header(file: &Path) -> Option<bluejet_engine::DbHeader> {
    use bluejet_engine::file::{FileSystem, OpenMode, OsFileSystem};
    let path = file.parent()?.join(bluejet_engine::DATABASE_FILE_NAME);
    let handle = OsFileSystem.open(&path, OpenMode::Read).ok()?;
    let read = bluejet_engine::db::read_header_copies(&handle, &path).ok()?;
    Some(read.header)
}

/// The position the checkpoint file in `directory` holds in force, if it reads.
pub fn log_checkpoint(directory: &Path, base: BaseName) -> Option<bluejet_engine::LogPosition> {
    let file = path_of(directory, &base.checkpoint());
    let image = read_prefix(&file).ok()?;
    decode(&file, &image)
        .0
        .map(|checkpoint| checkpoint.position)
}

/// The checkpoint in force (if any), both copies' states, and the problem if neither copy
/// is usable.
fn decode(file: &Path, image: &[u8]) -> (Option<Checkpoint>, [CopyState; 2], Option<String>) {
    match checkpoint::decode_file(file, image) {
        Ok(read) => (Some(read.checkpoint), read.copies, None),
        Err(error) => {
            // Both copies are damaged: still say why, copy by copy.
            let copy = |index: u8| {
                let start = index as usize * CHECKPOINT_COPY_STRIDE;
                match Checkpoint::decode(image.get(start..).unwrap_or(&[]), index) {
                    Ok(copy) => CopyState::Valid(copy),
                    Err(reason) => CopyState::Damaged(reason),
                }
            };
            (None, [copy(0), copy(1)], Some(error.to_string()))
        }
    }
}

/// The first [`CHECKPOINT_FILE_BYTES`] of the file (all that a checkpoint uses).
fn read_prefix(path: &Path) -> Result<Vec<u8>, ToolError> {
    use std::io::Read;
    let failed = |error: std::io::Error| ToolError::Failure(format!("{}: {error}", path.display()));
    let file = std::fs::File::open(path).map_err(failed)?;
    let mut image = Vec::with_capacity(CHECKPOINT_FILE_BYTES);
    file.take(CHECKPOINT_FILE_BYTES as u64)
        .read_to_end(&mut image)
        .map_err(failed)?;
    Ok(image)
}

fn print_checkpoint(checkpoint: &Checkpoint) {
    crate::out!("  {:<12} {}", "position", checkpoint.position);
    crate::out!(
        "  {:<12} {}",
        "signature",
        output::signature(&checkpoint.signature)
    );
    crate::out!("  {:<12} {}", "timeline", checkpoint.timeline);
    crate::out!("  {:<12} {}", "sequence", checkpoint.sequence);
    crate::out!(
        "  {:<12} {} ({})",
        "updated",
        output::time(checkpoint.updated_micros),
        checkpoint.updated_micros
    );
}

fn copy_text(index: usize, state: &CopyState, in_force: bool) -> String {
    match state {
        CopyState::Valid(copy) => format!(
            "copy {index}: valid, sequence {}, position {}{}",
            copy.sequence,
            copy.position,
            if in_force { " (in force)" } else { "" }
        ),
        CopyState::Damaged(reason) => format!("copy {index}: damaged: {reason}"),
    }
}

fn checkpoint_json(checkpoint: &Checkpoint) -> CheckpointJson {
    CheckpointJson {
        position: checkpoint.position,
        signature: output::signature_json(&checkpoint.signature),
        timeline: checkpoint.timeline,
        sequence: checkpoint.sequence,
        updated_micros: checkpoint.updated_micros,
        updated: output::time(checkpoint.updated_micros),
    }
}

fn copy_json(index: usize, state: &CopyState, in_force: bool) -> CopyJson<'_> {
    let state = match state {
        CopyState::Valid(copy) => CopyStateJson::Valid {
            in_force,
            checkpoint: checkpoint_json(copy),
        },
        CopyState::Damaged(reason) => CopyStateJson::Damaged { reason },
    };
    CopyJson { copy: index, state }
}
