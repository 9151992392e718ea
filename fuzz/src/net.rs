//! The checks behind the fuzz target `frame` (shared, like the rest of this crate, with
//! `tests/tests/fuzz_seeds.rs`): what a peer sends over replication's TLS stream, the wire
//! frames of `bluejet_replication::net::frame` and the payloads `net::wire::Reader` reads.
//!
//! The input is a byte stream of frames. It goes through `decode_frame` (a buffer) and
//! `read_frame` (a `Cursor`, as from a socket), which must agree frame by frame; every frame
//! that decodes is the canonical encoding of what it decodes to, and its payload is read
//! field by field with the wire `Reader`, each field read re-encoding to the bytes it took.

use bluejet_replication::net::frame::{
    decode_frame, encode_frame, read_frame, Frame, FrameError, HEADER_BYTES,
};
use bluejet_replication::net::wire::{Reader, WireError, Writer};
use crc32c::{crc32c, crc32c_append};
use std::io::Cursor;

/// The reader's payload limit: small, so that the fuzzer meets `TooLarge` often.
pub const LIMIT: u32 = 4096;
/// The limit of a length-prefixed byte field in the payload walk.
const FIELD_LIMIT: u32 = 1024;
/// At most this many fields are read from one payload.
const MAX_FIELDS: usize = 64;

/// Target `frame`: returns whether the input as given is one or more whole frames and
/// nothing else. Panics on a broken property (a bug).
pub fn frame_stream(data: &[u8]) -> bool {
    let whole = walk_frames(data);
    let mut sealed = data.to_vec();
    seal_frames(&mut sealed);
    walk_frames(&sealed);
    whole
}

/// Decodes `stream` frame after frame both ways; true if it is whole frames only.
fn walk_frames(stream: &[u8]) -> bool {
    let mut cursor = Cursor::new(stream);
    let mut offset = 0;
    loop {
        let decoded = decode_frame(&stream[offset..], LIMIT);
        let read = read_frame(&mut cursor, LIMIT);
        match (decoded, read) {
            (Ok((frame, used)), Ok(same)) => {
                check_frame(&stream[offset..], &frame, used);
                assert_eq!(frame, same, "decode_frame and read_frame agree");
                offset += used;
                assert_eq!(
                    cursor.position(),
                    offset as u64,
                    "read_frame took the frame"
                );
                walk_payload(frame.kind, &frame.payload);
            }
            (Err(FrameError::Incomplete), Err(FrameError::Closed)) => {
                assert_eq!(offset, stream.len(), "Closed only at the end of the stream");
                return offset > 0;
            }
            (Err(decoded), Err(read)) => {
                assert_same_error(&decoded, &read);
                return false;
            }
            (decoded, read) => panic!("decode_frame {decoded:?} but read_frame {read:?}"),
        }
    }
}

/// A decoded frame lies inside the input and is the canonical encoding of itself.
fn check_frame(bytes: &[u8], frame: &Frame, used: usize) {
    assert_eq!(used, HEADER_BYTES + frame.payload.len());
    assert!(used <= bytes.len());
    assert!(frame.payload.len() <= LIMIT as usize, "the limit holds");
    let encoded = encode_frame(frame.kind, &frame.payload).expect("a decoded frame encodes");
    assert_eq!(encoded, &bytes[..used], "a decoded frame is canonical");
}

/// Both readers name the same fault (a buffer that ends early is `Incomplete` to one and
/// `Truncated` to the other).
fn assert_same_error(decoded: &FrameError, read: &FrameError) {
    match (decoded, read) {
        (FrameError::Incomplete, FrameError::Truncated) => {}
        (FrameError::Io(error), _) | (_, FrameError::Io(error)) => {
            panic!("no I/O error from a buffer: {error}")
        }
        _ => assert_eq!(format!("{decoded:?}"), format!("{read:?}")),
    }
}

/// Reads `payload` as a message of fields chosen by `kind` (a fixed pseudo-random
/// sequence per kind) until a field is refused: the fields read re-encode, with the
/// `Writer`, to exactly the bytes they took, and `finish` accepts the message exactly when
/// every byte was read.
fn walk_payload(kind: u8, payload: &[u8]) {
    let mut reader = Reader::new(payload);
    let mut writer = Writer::new();
    let mut accepted = 0;
    let mut state = u32::from(kind);
    for _ in 0..MAX_FIELDS {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let before = reader.remaining();
        if !read_field(&mut reader, &mut writer, (state >> 16) % 6) {
            assert!(reader.remaining() <= before);
            break;
        }
        accepted = payload.len() - reader.remaining();
    }
    let again = writer.finish().expect("a part of a frame fits in a frame");
    assert_eq!(
        &again[..],
        &payload[..accepted],
        "fields re-encode to their bytes"
    );
    let remaining = reader.remaining();
    match reader.finish() {
        Ok(()) => assert_eq!(remaining, 0),
        Err(WireError::Trailing { remaining: left }) => {
            assert!(remaining > 0 && left == remaining)
        }
        Err(error) => panic!("finish can only find trailing bytes: {error}"),
    }
}

/// One field of type `choice`, copied into `writer` when read; false when the reader
/// refused it.
fn read_field(reader: &mut Reader<'_>, writer: &mut Writer, choice: u32) -> bool {
    let read = match choice {
        0 => reader.u8("u8").map(|value| {
            writer.u8(value);
        }),
        1 => reader.u16("u16").map(|value| {
            writer.u16(value);
        }),
        2 => reader.u32("u32").map(|value| {
            writer.u32(value);
        }),
        3 => reader.u64("u64").map(|value| {
            writer.u64(value);
        }),
        4 => reader.bytes("bytes", FIELD_LIMIT).map(|value| {
            assert!(value.len() <= FIELD_LIMIT as usize, "the field limit holds");
            writer.bytes(value);
        }),
        _ => reader.str("str", FIELD_LIMIT).map(|value| {
            writer.str(value);
        }),
    };
    read.is_ok()
}

/// Recomputes the checksum of every frame whose header and payload fit in `stream` and
/// whose length is within [`LIMIT`]: random bytes almost never carry a matching crc32c.
fn seal_frames(stream: &mut [u8]) {
    let mut offset = 0;
    while stream.len() - offset >= HEADER_BYTES {
        let length = u32_at(stream, offset + 8);
        let end = offset + HEADER_BYTES + length as usize;
        if length > LIMIT || end > stream.len() {
            return;
        }
        let head = crc32c(&stream[offset..offset + 12]);
        let checksum = crc32c_append(head, &stream[offset + HEADER_BYTES..end]);
        stream[offset + 12..offset + 16].copy_from_slice(&checksum.to_le_bytes());
        offset = end;
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}
