//! The dumpster file: a checksummed header, then checksummed records appended in order.
//!
//! Header (24 bytes): magic `BJDUMPST`, format version (u32 LE), header length (u32 LE, 24),
//! reserved (u32, 0), crc32c of bytes 0..20 (u32 LE).
//!
//! Record: length `L` (u32 LE, bytes of kind + payload, 1..=[`MAX_RECORD_BYTES`]), crc32c
//! (u32 LE) of the length bytes, the kind and the payload; then the kind (u8) and payload.

use super::{EvictedMessage, Message};

/// The file's name in the dumpster directory.
pub const DUMPSTER_FILE_NAME: &str = "dumpster.log";
/// Format version written in the header; another version is refused.
pub const DUMPSTER_FORMAT: u32 = 1;
/// Longest message id, in bytes.
pub const MAX_MESSAGE_ID_BYTES: usize = 1024;
/// Largest message body the file can hold (64 MiB).
pub const MAX_BODY_BYTES: usize = 64 << 20;
/// Largest record: a message with the longest id and body.
pub const MAX_RECORD_BYTES: usize = 1 + 8 + 2 + MAX_MESSAGE_ID_BYTES + MAX_BODY_BYTES;

const MAGIC: &[u8; 8] = b"BJDUMPST";
/// Bytes of the header.
pub const HEADER_BYTES: usize = 24;
/// Bytes of a record's length and checksum.
pub const FRAME_BYTES: usize = 8;

const KIND_MESSAGE: u8 = 1;
const KIND_TRIM: u8 = 2;
const KIND_EVICT: u8 = 3;
const KIND_LOST: u8 = 4;
const KIND_COUNTERS: u8 = 5;

/// One change of the dumpster's state, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A delivered message is kept.
    Message(Message),
    /// Messages delivered before this time are on the passive: drop them.
    Trim {
        /// The replayed-through time (µs).
        through_micros: u64,
    },
    /// The oldest `count` kept messages were evicted by the limits.
    Evict {
        /// How many.
        count: u32,
    },
    /// A message evicted (or never kept) while not known replayed (written by compaction and
    /// for a message larger than the size limit).
    Lost(EvictedMessage),
    /// Counters carried over by compaction.
    Counters {
        /// The newest replayed-through time reported.
        trimmed_through: u64,
        /// Possible losses no longer tracked by id.
        lost_untracked: u64,
    },
}

/// The header of a new file.
pub fn header() -> [u8; HEADER_BYTES] {
    let mut bytes = [0; HEADER_BYTES];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..12].copy_from_slice(&DUMPSTER_FORMAT.to_le_bytes());
    bytes[12..16].copy_from_slice(
        &u32::try_from(HEADER_BYTES)
            .expect("a small constant")
            .to_le_bytes(),
    );
    let crc = crc32c::crc32c(&bytes[..20]);
    bytes[20..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Checks a header; the problem otherwise.
pub fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("{} bytes, shorter than the header", bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err("not a dumpster file (bad magic)".into());
    }
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&bytes[..20]) {
        return Err("header checksum mismatch".into());
    }
    let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if format != DUMPSTER_FORMAT {
        return Err(format!("format {format}, expected {DUMPSTER_FORMAT}"));
    }
    Ok(())
}

/// Appends the framed record to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_BYTES]);
    match record {
        Record::Message(message) => {
            out.push(KIND_MESSAGE);
            put_id(out, message.delivered_micros, &message.message_id);
            out.extend_from_slice(&message.body);
        }
        Record::Trim { through_micros } => {
            out.push(KIND_TRIM);
            out.extend_from_slice(&through_micros.to_le_bytes());
        }
        Record::Evict { count } => {
            out.push(KIND_EVICT);
            out.extend_from_slice(&count.to_le_bytes());
        }
        Record::Lost(lost) => {
            out.push(KIND_LOST);
            put_id(out, lost.delivered_micros, &lost.message_id);
        }
        Record::Counters {
            trimmed_through,
            lost_untracked,
        } => {
            out.push(KIND_COUNTERS);
            out.extend_from_slice(&trimmed_through.to_le_bytes());
            out.extend_from_slice(&lost_untracked.to_le_bytes());
        }
    }
    seal(out, start);
}

fn put_id(out: &mut Vec<u8>, delivered_micros: u64, id: &str) {
    out.extend_from_slice(&delivered_micros.to_le_bytes());
    out.extend_from_slice(
        &u16::try_from(id.len())
            .expect("a message id fits u16: checked when the record is built")
            .to_le_bytes(),
    );
    out.extend_from_slice(id.as_bytes());
}

/// Fills in the length and checksum of the record starting at `start`.
fn seal(out: &mut [u8], start: usize) {
    let length = u32::try_from(out.len() - start - FRAME_BYTES)
        .expect("a dumpster record fits u32: its fields are bounded");
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    let mut crc = crc32c::crc32c(&length.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &out[start + FRAME_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The length of the record whose frame is `frame`, if within bounds.
pub fn frame_length(frame: &[u8; FRAME_BYTES]) -> Result<usize, String> {
    let length = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
    if length == 0 || length > MAX_RECORD_BYTES {
        return Err(format!("record length {length} out of bounds"));
    }
    Ok(length)
}

/// Decodes a record from its frame and its `body` (kind + payload).
pub fn decode(frame: &[u8; FRAME_BYTES], body: &[u8]) -> Result<Record, String> {
    let stored = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
    let crc = crc32c::crc32c_append(crc32c::crc32c(&frame[..4]), body);
    if crc != stored {
        return Err("record checksum mismatch".into());
    }
    let (kind, payload) = body.split_first().ok_or("empty record")?;
    match *kind {
        KIND_MESSAGE => {
            let (delivered_micros, message_id, rest) = take_id(payload)?;
            Ok(Record::Message(Message {
                message_id,
                body: rest.to_vec(),
                delivered_micros,
            }))
        }
        KIND_TRIM => Ok(Record::Trim {
            through_micros: exact_u64s::<1>(payload)?[0],
        }),
        KIND_EVICT => {
            let count = payload.try_into().map_err(|_| "bad evict record")?;
            Ok(Record::Evict {
                count: u32::from_le_bytes(count),
            })
        }
        KIND_LOST => decode_lost(payload),
        KIND_COUNTERS => {
            let [trimmed_through, lost_untracked] = exact_u64s::<2>(payload)?;
            Ok(Record::Counters {
                trimmed_through,
                lost_untracked,
            })
        }
        other => Err(format!("unknown record kind {other}")),
    }
}

fn decode_lost(payload: &[u8]) -> Result<Record, String> {
    let (delivered_micros, message_id, rest) = take_id(payload)?;
    if !rest.is_empty() {
        return Err("trailing bytes in a lost record".into());
    }
    Ok(Record::Lost(EvictedMessage {
        message_id,
        delivered_micros,
    }))
}

/// Splits a time, an id and the rest off `payload`.
fn take_id(payload: &[u8]) -> Result<(u64, String, &[u8]), String> {
    if payload.len() < 10 {
        return Err("record too short".into());
    }
    let delivered = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
    let length = u16::from_le_bytes(payload[8..10].try_into().expect("2 bytes")) as usize;
    if length == 0 || length > MAX_MESSAGE_ID_BYTES || payload.len() < 10 + length {
        return Err(format!("message id length {length} out of bounds"));
    }
    let id = std::str::from_utf8(&payload[10..10 + length]).map_err(|_| "message id not UTF-8")?;
    Ok((delivered, id.to_owned(), &payload[10 + length..]))
}

fn exact_u64s<const N: usize>(payload: &[u8]) -> Result<[u64; N], String> {
    if payload.len() != 8 * N {
        return Err(format!(
            "{} payload bytes, expected {}",
            payload.len(),
            8 * N
        ));
    }
    let mut values = [0; N];
    for (value, chunk) in values.iter_mut().zip(payload.chunks_exact(8)) {
        *value = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    Ok(values)
}

/// Bytes `message` takes in the file.
pub fn message_file_bytes(message: &Message) -> u64 {
    (FRAME_BYTES + 1 + 8 + 2 + message.message_id.len() + message.body.len()) as u64
}
