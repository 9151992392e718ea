//! Reading one generation file back: header, segments, and the record stream they carry.
//!
//! A *closed* generation is checked strictly: every home segment up to the end of the stream
//! is valid, every home segment after it is zero, both shadows are valid or zero, and the
//! stream is a whole number of valid records. The *current* generation may end in a torn
//! tail: the stream ends at the first block with no valid copy, then at the last complete
//! record, except that a valid segment after that point known to have been durable (its flush
//! sequence at or below the synced sequence some segment names) is damage, not a tail: the
//! damaged block was written before it, so it was durable too and cannot be a write that
//! never finished.

use super::header::{GenerationHeader, HEADER_BYTES};
use super::record::{read_record, RecordProblem};
use super::segment::{self, SegmentRead, PAYLOAD_BYTES, SEGMENT_BYTES};
use super::LogPosition;
use crate::error::LogError;
use std::path::Path;

/// Where the data of the last block came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailSource {
    /// The stream is empty.
    Nothing,
    /// The last block came from its home segment.
    Home,
    /// The last block came from a shadow segment (its slot).
    Shadow(u32),
}

/// The outcome of scanning a generation.
#[derive(Clone, Debug)]
pub struct GenerationScan {
    /// The header.
    pub header: GenerationHeader,
    /// The record stream, cut after its last complete record.
    pub stream: Vec<u8>,
    /// Bytes of the stream past the last complete record (a torn tail); 0 for a closed one.
    pub torn_bytes: usize,
    /// What ended the stream, when it was not a clean end (for reports).
    pub tail_note: Option<String>,
    /// Where the last block came from.
    pub tail_source: TailSource,
    /// The highest flush sequence of any valid segment in the file.
    pub max_flush_sequence: u64,
    /// The highest synced sequence any valid segment names: every segment with a sequence at
    /// or below it was durable.
    pub synced_sequence: u64,
    /// Valid home segments.
    pub home_segments: u32,
    /// Home segment slots in the file.
    pub home_capacity: u32,
    /// crc32c of the whole file as read.
    pub digest: u32,
    /// Size of the file.
    pub file_bytes: u64,
}

/// Whether the generation is closed (strict checks) or current (tolerates a torn tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanMode {
    /// A closed, numbered generation.
    Closed,
    /// The current generation, `E00.log`.
    Current,
}

/// Decodes the header of a generation file image, naming the file on failure.
pub fn read_header(path: &Path, image: &[u8]) -> Result<GenerationHeader, LogError> {
    GenerationHeader::decode(image).map_err(|problem| LogError::UnreadableHeader {
        path: path.to_owned(),
        reason: problem.to_string(),
    })
}

/// Home segment slots in a generation of `generation_bytes`: all but the header and two shadows.
pub fn home_capacity(generation_bytes: u64) -> u32 {
    u32::try_from((generation_bytes / SEGMENT_BYTES as u64).saturating_sub(3)).unwrap_or(u32::MAX)
}

/// Bytes of record stream a generation of `generation_bytes` can hold.
pub fn stream_capacity(generation_bytes: u64) -> u64 {
    home_capacity(generation_bytes) as u64 * PAYLOAD_BYTES as u64
}

/// The two shadow slots of a generation.
pub fn shadow_slots(generation_bytes: u64) -> [u32; 2] {
    let slots = u32::try_from(generation_bytes / SEGMENT_BYTES as u64).unwrap_or(u32::MAX);
    [slots - 2, slots - 1]
}

struct Context<'a> {
    path: &'a Path,
    image: &'a [u8],
    header: GenerationHeader,
    mode: ScanMode,
}

impl Context<'_> {
    fn slot(&self, slot: u32) -> SegmentRead<'_> {
        let start = slot as usize * SEGMENT_BYTES;
        segment::decode(
            &self.image[start..start + SEGMENT_BYTES],
            self.header.generation,
            slot,
        )
    }

    fn bad(&self, segment: u32, reason: impl Into<String>) -> LogError {
        LogError::BadSegment {
            path: self.path.to_owned(),
            generation: self.header.generation,
            segment,
            reason: reason.into(),
        }
    }
}

/// Scans the image of a generation file.
pub fn scan(path: &Path, image: &[u8], mode: ScanMode) -> Result<GenerationScan, LogError> {
    let header = read_header(path, image)?;
    let expected = header.generation_bytes as u64;
    if image.len() as u64 != expected {
        return Err(LogError::WrongSize {
            path: path.to_owned(),
            expected,
            found: image.len() as u64,
        });
    }
    let context = Context {
        path,
        image,
        header,
        mode,
    };
    if image[HEADER_BYTES..SEGMENT_BYTES].iter().any(|&b| b != 0) {
        return Err(context.bad(0, "bytes after the header are not zero"));
    }
    let shadows = read_shadows(&context)?;
    let mut walk = walk_blocks(&context, &shadows)?;
    let valid = valid_segments(&context);
    let newest = valid
        .iter()
        .map(|(_, h)| h.flush_sequence)
        .max()
        .unwrap_or(0);
    let synced = valid
        .iter()
        .map(|(_, h)| h.synced_sequence)
        .max()
        .unwrap_or(0);
    match mode {
        ScanMode::Closed => check_closed_end(&context, &walk)?,
        ScanMode::Current => check_current_damage(&context, &walk, &valid, synced)?,
    }
    let (torn_bytes, note) = cut_at_last_record(&context, &mut walk.stream)?;
    let damage_note = walk
        .damage
        .as_ref()
        .map(|(block, reason)| format!("segment {}: {reason}", block + 1));
    Ok(GenerationScan {
        header,
        torn_bytes,
        tail_note: note.or(damage_note),
        tail_source: walk.tail_source,
        max_flush_sequence: newest,
        synced_sequence: synced,
        home_segments: walk.homes,
        home_capacity: home_capacity(expected),
        digest: crc32c::crc32c(image),
        file_bytes: expected,
        stream: walk.stream,
    })
}

/// A valid shadow: its slot, header and payload.
type Shadow<'a> = (u32, segment::SegmentHeader, &'a [u8]);

fn read_shadows<'a>(context: &'a Context<'_>) -> Result<Vec<Shadow<'a>>, LogError> {
    let capacity = home_capacity(context.header.generation_bytes as u64);
    let mut valid = Vec::new();
    for slot in shadow_slots(context.header.generation_bytes as u64) {
        match context.slot(slot) {
            SegmentRead::Empty => {}
            SegmentRead::Valid(header, payload) if header.shadow && header.block < capacity => {
                valid.push((slot, header, payload));
            }
            SegmentRead::Valid(..) => {
                return Err(context.bad(slot, "shadow segment with inconsistent fields"));
            }
            // A torn shadow in the current generation is an unfinished write; its block has
            // another valid copy (see the writer), so it is simply not a candidate.
            SegmentRead::Invalid(reason) if context.mode == ScanMode::Closed => {
                return Err(context.bad(slot, reason));
            }
            SegmentRead::Invalid(_) => {}
        }
    }
    Ok(valid)
}

struct Walk {
    stream: Vec<u8>,
    /// Blocks walked: the stream holds blocks `0..end_block` (the last maybe partly).
    end_block: u32,
    homes: u32,
    tail_source: TailSource,
    /// The damaged home segment (block, reason) met where the walk ended, if any.
    damage: Option<(u32, String)>,
}

fn walk_blocks(context: &Context<'_>, shadows: &[Shadow<'_>]) -> Result<Walk, LogError> {
    let capacity = home_capacity(context.header.generation_bytes as u64);
    let mut walk = Walk {
        stream: Vec::new(),
        end_block: capacity,
        homes: 0,
        tail_source: TailSource::Nothing,
        damage: None,
    };
    let mut last_sequence = 0;
    for block in 0..capacity {
        let home = read_home(context, block, last_sequence);
        // A closed generation carries all of its data in home segments; shadows there are
        // superseded copies and never supply data.
        let shadow = shadows
            .iter()
            .filter(|candidate| candidate.1.block == block && context.mode == ScanMode::Current)
            .max_by_key(|candidate| candidate.1.flush_sequence);
        let home = match home {
            Ok(home) => home,
            Err(reason) if context.mode == ScanMode::Closed => {
                return Err(context.bad(block + 1, reason));
            }
            Err(reason) => {
                walk.damage = Some((block, reason));
                None
            }
        };
        match (home, shadow) {
            // Between two syncs the writer writes a block's home after every shadow of it,
            // with the same sequence: on a tie the home is the newer copy.
            (Some((header, payload)), shadow)
                if shadow.is_none_or(|s| s.1.flush_sequence <= header.flush_sequence) =>
            {
                walk.homes += 1;
                last_sequence = header.flush_sequence;
                walk.stream.extend_from_slice(payload);
                walk.tail_source = TailSource::Home;
                if payload.len() < PAYLOAD_BYTES {
                    walk.end_block = block + 1;
                    return Ok(walk);
                }
            }
            (_, Some(&(shadow_slot, _, payload))) => {
                walk.stream.extend_from_slice(payload);
                walk.tail_source = TailSource::Shadow(shadow_slot);
                walk.end_block = block + 1;
                return Ok(walk);
            }
            (None, None) => {
                walk.end_block = block;
                return Ok(walk);
            }
            (Some(_), None) => unreachable!("covered by the first arm"),
        }
    }
    Ok(walk)
}

/// The home segment of `block`: `Ok(None)` if empty, `Err` with the reason if damaged.
fn read_home<'a>(
    context: &'a Context<'_>,
    block: u32,
    last_sequence: u64,
) -> Result<Option<(segment::SegmentHeader, &'a [u8])>, String> {
    match context.slot(block + 1) {
        SegmentRead::Valid(header, payload) => {
            check_home(&header, block, last_sequence)?;
            Ok(Some((header, payload)))
        }
        SegmentRead::Empty => Ok(None),
        SegmentRead::Invalid(reason) => Err(reason),
    }
}

fn check_home(
    header: &segment::SegmentHeader,
    block: u32,
    last_sequence: u64,
) -> Result<(), String> {
    if header.shadow {
        return Err("home segment flagged as shadow".into());
    }
    if header.block != block {
        return Err(format!(
            "home segment holds block {}, expected {block}",
            header.block
        ));
    }
    if header.flush_sequence < last_sequence {
        return Err(format!(
            "flush sequence {} older than the segment before it ({last_sequence})",
            header.flush_sequence
        ));
    }
    Ok(())
}

/// Every valid segment after the header, home or shadow: (slot, header).
fn valid_segments(context: &Context<'_>) -> Vec<(u32, segment::SegmentHeader)> {
    let slots = context.header.generation_bytes / crate::log::stream_offset(SEGMENT_BYTES);
    (1..slots)
        .filter_map(|slot| match context.slot(slot) {
            SegmentRead::Valid(header, _) => Some((slot, header)),
            _ => None,
        })
        .collect()
}

/// Closed generation: every home segment after the end of the stream is empty.
fn check_closed_end(context: &Context<'_>, walk: &Walk) -> Result<(), LogError> {
    let capacity = home_capacity(context.header.generation_bytes as u64);
    for slot in walk.end_block + 1..=capacity {
        match context.slot(slot) {
            SegmentRead::Empty => {}
            SegmentRead::Valid(..) => {
                return Err(context.bad(slot, "data after the end of the generation"));
            }
            SegmentRead::Invalid(reason) => return Err(context.bad(slot, reason)),
        }
    }
    Ok(())
}

/// Current generation: where the walk ended (a damaged or empty home segment, a shadow, a
/// partial home) is a torn tail only if nothing after it is known to have been durable. A
/// valid segment (home or shadow) of a later block whose flush sequence is at or below the
/// highest synced sequence in the file was durable, and so was every block before it, written
/// no later: that is damage (a lost or zeroed write) and must not be cut off as a tail.
fn check_current_damage(
    context: &Context<'_>,
    walk: &Walk,
    valid: &[(u32, segment::SegmentHeader)],
    synced: u64,
) -> Result<(), LogError> {
    let evidence = valid
        .iter()
        .find(|(_, header)| header.block >= walk.end_block && header.flush_sequence <= synced);
    let Some((slot, header)) = evidence else {
        return Ok(());
    };
    let (block, reason) = match (&walk.damage, walk.tail_source) {
        (Some((block, reason)), _) => (*block, reason.clone()),
        (None, TailSource::Shadow(shadow)) => (
            walk.end_block - 1,
            format!("its block ends in shadow segment {shadow}, not in this home segment"),
        ),
        (None, _) => (walk.end_block, "empty (never written)".to_owned()),
    };
    Err(context.bad(
        block + 1,
        format!(
            "{reason}; segment {slot} holds block {} of flush {}, which the file names synced \
             (through {synced}), so this block was durable",
            header.block, header.flush_sequence
        ),
    ))
}

/// Cuts the stream after its last complete record; returns the bytes cut and why.
fn cut_at_last_record(
    context: &Context<'_>,
    stream: &mut Vec<u8>,
) -> Result<(usize, Option<String>), LogError> {
    let mut offset = 0usize;
    while offset < stream.len() {
        match read_record(&stream[offset..]) {
            Ok(record) => offset += record.encoded_len(),
            Err(problem) if context.mode == ScanMode::Closed => {
                return Err(LogError::BadRecord {
                    path: context.path.to_owned(),
                    position: LogPosition::in_stream(context.header.generation, offset),
                    reason: problem.to_string(),
                });
            }
            Err(problem) => {
                let torn = stream.len() - offset;
                stream.truncate(offset);
                let note = match problem {
                    RecordProblem::Incomplete { .. } => {
                        format!("incomplete record at offset {offset}")
                    }
                    other => format!("{other} at offset {offset}"),
                };
                return Ok((torn, Some(note)));
            }
        }
    }
    Ok((0, None))
}
