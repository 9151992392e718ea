//! Opening a log stream for writing: create it, or find the true end of an existing one.

use super::checkpoint::{Checkpoint, CheckpointFile};
use super::directory::{path_of, read_image, LogDirectory};
use super::generation_writer::{GenerationWriter, StreamEnd};
use super::roll::{install, prepare_next, sync_header, write_header, Fill};
use super::scan::{read_header, scan, ScanMode};
use super::signature::now_micros;
use super::{GenerationHeader, LogConfig, LogPosition, MAX_GENERATION_BYTES};
use crate::error::LogError;
use crate::file::OpenMode;
use std::path::Path;

/// What opening found and set up.
pub(crate) struct Opened {
    pub writer: GenerationWriter,
    pub checkpoint: CheckpointFile,
    /// Bytes of torn tail discarded from the current generation.
    pub torn_bytes: usize,
}

/// Opens (creating if needed) the stream in `directory`.
pub(crate) fn open_stream(config: &LogConfig, directory: &Path) -> Result<Opened, LogError> {
    let fs = config.file_system.as_ref();
    fs.create_directory_durably(directory)
        .map_err(|e| LogError::io(directory, "create directory", e))?;
    let listing = LogDirectory::list(fs, directory, config.base_name)?;
    listing.reread_from_device(fs, directory, config.base_name)?;
    if !listing.current {
        establish_current(config, directory, &listing)?;
    }
    let current_path = path_of(directory, &config.base_name.current());
    let (_, image) = read_image(fs, &current_path, MAX_GENERATION_BYTES)?;
    let scanned = scan(&current_path, &image, ScanMode::Current)?;
    let header = scanned.header;
    refuse_older_timeline(config, &current_path, &header)?;
    if let Some(last) = listing.last_closed() {
        check_link(config, directory, last, &current_path, &header)?;
    }
    let checkpoint = open_checkpoint(config, directory, &listing, &header)?;
    let file = fs
        .open(&current_path, OpenMode::ReadWrite)
        .map_err(|e| LogError::io(&current_path, "open current generation", e))?;
    let end = StreamEnd::of_scan(&scanned);
    let mut writer = GenerationWriter::resumed(current_path, file, header, end);
    writer.resume(&image)?;
    Ok(Opened {
        writer,
        checkpoint,
        torn_bytes: scanned.torn_bytes,
    })
}

/// There is no `E00.log`: finish a roll that stopped after closing it, or start a generation.
fn establish_current(
    config: &LogConfig,
    directory: &Path,
    listing: &LogDirectory,
) -> Result<(), LogError> {
    let fs = config.file_system.as_ref();
    let base = config.base_name;
    let Some(last) = listing.last_closed() else {
        if listing.checkpoint {
            let path = path_of(directory, &base.checkpoint());
            return Err(LogError::BadCheckpoint {
                path,
                reason: "a checkpoint exists but no log generation does".into(),
            });
        }
        let first = GenerationHeader {
            generation: 1,
            signature: super::StreamSignature::generate(),
            timeline: config.timeline,
            created_micros: now_micros(),
            previous_created_micros: 0,
            previous_digest: 0,
            segment_bytes: crate::log::stream_offset(super::segment::SEGMENT_BYTES),
            generation_bytes: u32::try_from(config.generation_bytes)
                .expect("a generation size fits u32: at most MAX_GENERATION_BYTES"),
            base_name: base.bytes(),
        };
        return create_current(config, directory, &first);
    };
    let last_path = path_of(directory, &base.closed(last));
    let (_, image) = read_image(fs, &last_path, MAX_GENERATION_BYTES)?;
    let previous = read_header(&last_path, &image)?;
    refuse_older_timeline(config, &last_path, &previous)?;
    // A failover continues a stream on a new timeline: the configured one when it is newer.
    let next = GenerationHeader {
        generation: last + 1,
        timeline: previous.timeline.max(config.timeline),
        created_micros: now_micros().max(previous.created_micros + 1),
        previous_created_micros: previous.created_micros,
        previous_digest: crc32c::crc32c(&image),
        ..previous
    };
    if listing.prepared && prepared_holds(config, directory, &next) {
        return install(fs, directory, base, None);
    }
    create_current(config, directory, &next)
}

/// With `fence_timeline`, refuses a stream whose newest generation (`header`) is on a newer
/// timeline than the configured one.
fn refuse_older_timeline(
    config: &LogConfig,
    path: &Path,
    header: &GenerationHeader,
) -> Result<(), LogError> {
    if config.fence_timeline && header.timeline > config.timeline {
        return Err(LogError::OlderTimeline {
            path: path.to_owned(),
            generation: header.generation,
            newest: header.timeline,
            requested: config.timeline,
        });
    }
    Ok(())
}

/// Whether `E00tmp.log` already holds the header of `next` (a roll stopped between its
/// renames).
fn prepared_holds(config: &LogConfig, directory: &Path, next: &GenerationHeader) -> bool {
    let path = path_of(directory, &config.base_name.prepared());
    let Ok((_, image)) = read_image(config.file_system.as_ref(), &path, MAX_GENERATION_BYTES)
    else {
        return false;
    };
    match read_header(&path, &image) {
        Ok(found) => {
            found.generation == next.generation
                && found.signature == next.signature
                && found.previous_digest == next.previous_digest
                && image.len() as u64 == found.generation_bytes as u64
        }
        Err(_) => false,
    }
}

fn create_current(
    config: &LogConfig,
    directory: &Path,
    header: &GenerationHeader,
) -> Result<(), LogError> {
    let fs = config.file_system.as_ref();
    let file = prepare_next(
        fs,
        directory,
        config.base_name,
        header.generation_bytes as u64,
        Fill::Zeros,
    )?;
    let path = path_of(directory, &config.base_name.prepared());
    write_header(file.as_ref(), &path, header)?;
    sync_header(file.as_ref(), &path)?;
    install(fs, directory, config.base_name, None)
}

/// Checks that `E00.log` follows the last closed generation.
fn check_link(
    config: &LogConfig,
    directory: &Path,
    last: u32,
    current_path: &Path,
    current: &GenerationHeader,
) -> Result<(), LogError> {
    let last_path = path_of(directory, &config.base_name.closed(last));
    let (_, image) = read_image(
        config.file_system.as_ref(),
        &last_path,
        MAX_GENERATION_BYTES,
    )?;
    let previous = read_header(&last_path, &image)?;
    if previous.generation != last {
        return Err(LogError::NameMismatch {
            path: last_path,
            named: last,
            inside: previous.generation,
        });
    }
    if current.generation > last + 1 {
        return Err(LogError::MissingGenerations {
            directory: directory.to_owned(),
            first: last + 1,
            last: current.generation - 1,
            next: current.generation,
        });
    }
    super::verify::check_chain(current_path, current, &previous, crc32c::crc32c(&image))
}

fn open_checkpoint(
    config: &LogConfig,
    directory: &Path,
    listing: &LogDirectory,
    current: &GenerationHeader,
) -> Result<CheckpointFile, LogError> {
    let fs = config.file_system.as_ref();
    let path = path_of(directory, &config.base_name.checkpoint());
    if listing.checkpoint {
        let (file, read) = CheckpointFile::open(fs, &path)?;
        if read.checkpoint.signature != current.signature {
            return Err(LogError::BadCheckpoint {
                path,
                reason: format!(
                    "belongs to stream {}, the log to stream {}",
                    read.checkpoint.signature, current.signature
                ),
            });
        }
        return Ok(file);
    }
    let oldest = listing
        .closed
        .keys()
        .next()
        .copied()
        .unwrap_or(current.generation);
    let checkpoint = Checkpoint {
        position: LogPosition::new(oldest, 0),
        signature: current.signature,
        timeline: current.timeline,
        sequence: 1,
        updated_micros: now_micros(),
    };
    CheckpointFile::create(fs, &path, checkpoint)
}
