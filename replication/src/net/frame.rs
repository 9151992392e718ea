//! The wire frame of replication over the network: every message between two nodes is one
//! frame, inside the TLS stream.
//!
//! Layout, little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `BJNF` |
//! | 4 | version (1) |
//! | 5 | kind (the protocol's message type; not interpreted here) |
//! | 6..8 | flags (0) |
//! | 8..12 | payload length |
//! | 12..16 | crc32c of bytes 0..12 then of the payload |
//! | 16.. | payload |
//!
//! TLS already protects the bytes in transit; the checksum catches our own bugs (a frame cut
//! or spliced by a faulty sender) before a payload is acted upon. The length is checked
//! against the reader's limit before anything is allocated, so a peer cannot make us reserve
//! memory by announcing a large frame.

use std::io::{self, Read, Write};

/// The frame's first four bytes.
pub const MAGIC: [u8; 4] = *b"BJNF";
/// The only version written and accepted.
pub const VERSION: u8 = 1;
/// The header's length in bytes.
pub const HEADER_BYTES: usize = 16;
/// The largest payload of any frame, whatever a reader's own limit.
pub const MAX_PAYLOAD: u32 = 8 << 20;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message type.
    pub kind: u8,
    /// The message.
    pub payload: Vec<u8>,
}

/// Why a frame could not be written, read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed.
    #[error("frame I/O: {0}")]
    Io(io::Error),
    /// The stream ended cleanly between two frames: the peer closed the connection.
    #[error("the connection was closed")]
    Closed,
    /// The stream ended inside a frame.
    #[error("the connection ended inside a frame")]
    Truncated,
    /// The frame does not start with `BJNF`.
    #[error("not a frame: bad magic")]
    BadMagic,
    /// A version this build does not know.
    #[error("frame version {0} is not supported (only {VERSION})")]
    BadVersion(u8),
    /// Flags set that this version does not define.
    #[error("frame flags are not zero")]
    BadFlags,
    /// The payload is longer than the reader accepts or than any frame may be.
    #[error("frame payload of {length} bytes is over the limit of {limit}")]
    TooLarge {
        /// The length announced or given.
        length: u64,
        /// The limit in force.
        limit: u32,
    },
    /// The checksum does not match the bytes.
    #[error("frame checksum mismatch: header says {expected:#010x}, bytes give {found:#010x}")]
    Checksum {
        /// The checksum in the header.
        expected: u32,
        /// The checksum of the bytes received.
        found: u32,
    },
    /// The buffer holds only part of a frame (from [`decode_frame`]).
    #[error("incomplete frame: more bytes are needed")]
    Incomplete,
}

/// The fields of a header that passed its checks.
struct Header {
    kind: u8,
    length: usize,
    crc: u32,
}

/// Writes one frame and flushes it. A payload over [`MAX_PAYLOAD`] is refused (nothing is
/// written), as no reader would accept it.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> Result<(), FrameError> {
    let header = encode_header(kind, payload)?;
    w.write_all(&header).map_err(FrameError::Io)?;
    w.write_all(payload).map_err(FrameError::Io)?;
    w.flush().map_err(FrameError::Io)
}

/// The whole frame as bytes: header then payload.
pub fn encode_frame(kind: u8, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let header = encode_header(kind, payload)?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(payload);
    Ok(bytes)
}

fn encode_header(kind: u8, payload: &[u8]) -> Result<[u8; HEADER_BYTES], FrameError> {
    let length = u32::try_from(payload.len())
        .ok()
        .filter(|length| *length <= MAX_PAYLOAD)
        .ok_or(FrameError::TooLarge {
            length: payload.len() as u64,
            limit: MAX_PAYLOAD,
        })?;
    let mut header = [0u8; HEADER_BYTES];
    header[0..4].copy_from_slice(&MAGIC);
    header[4] = VERSION;
    header[5] = kind;
    header[8..12].copy_from_slice(&length.to_le_bytes());
    let crc = frame_crc(&header, payload);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    Ok(header)
}

/// Reads one frame whose payload is at most `limit` bytes (and at most [`MAX_PAYLOAD`]).
/// [`FrameError::Closed`] when the stream ends before the first byte of a frame.
pub fn read_frame(r: &mut impl Read, limit: u32) -> Result<Frame, FrameError> {
    let mut header = [0u8; HEADER_BYTES];
    read_header_bytes(r, &mut header)?;
    let fields = decode_header(&header, limit)?;
    // Bounded by decode_header: at most min(limit, MAX_PAYLOAD) bytes.
    let mut payload = vec![0u8; fields.length];
    r.read_exact(&mut payload).map_err(eof_is_truncation)?;
    check_crc(&header, &payload, fields.crc)?;
    Ok(Frame {
        kind: fields.kind,
        payload,
    })
}

/// Decodes the frame at the start of `bytes`; returns it and the number of bytes it took.
/// [`FrameError::Incomplete`] when `bytes` ends before the frame does (the header checks
/// come first, so a bad header is reported as soon as its 16 bytes are there).
pub fn decode_frame(bytes: &[u8], limit: u32) -> Result<(Frame, usize), FrameError> {
    let header: &[u8; HEADER_BYTES] = bytes
        .get(..HEADER_BYTES)
        .and_then(|slice| slice.try_into().ok())
        .ok_or(FrameError::Incomplete)?;
    let fields = decode_header(header, limit)?;
    let end = HEADER_BYTES + fields.length;
    let payload = bytes.get(HEADER_BYTES..end).ok_or(FrameError::Incomplete)?;
    check_crc(header, payload, fields.crc)?;
    let frame = Frame {
        kind: fields.kind,
        payload: payload.to_vec(),
    };
    Ok((frame, end))
}

/// Fills `header`, telling a clean end of stream (no byte at all) from one inside it.
fn read_header_bytes(r: &mut impl Read, header: &mut [u8; HEADER_BYTES]) -> Result<(), FrameError> {
    let mut filled = 0;
    while filled < HEADER_BYTES {
        match r.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(eof_is_truncation(error)),
        }
    }
    Ok(())
}

fn eof_is_truncation(error: io::Error) -> FrameError {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        FrameError::Io(error)
    }
}

fn decode_header(header: &[u8; HEADER_BYTES], limit: u32) -> Result<Header, FrameError> {
    if header[0..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    if header[4] != VERSION {
        return Err(FrameError::BadVersion(header[4]));
    }
    if header[6..8] != [0, 0] {
        return Err(FrameError::BadFlags);
    }
    let length = u32_at(header, 8);
    let limit = limit.min(MAX_PAYLOAD);
    if length > limit {
        return Err(FrameError::TooLarge {
            length: u64::from(length),
            limit,
        });
    }
    Ok(Header {
        kind: header[5],
        length: length as usize,
        crc: u32_at(header, 12),
    })
}

fn check_crc(header: &[u8; HEADER_BYTES], payload: &[u8], expected: u32) -> Result<(), FrameError> {
    let found = frame_crc(header, payload);
    if found == expected {
        Ok(())
    } else {
        Err(FrameError::Checksum { expected, found })
    }
}

/// The checksum covers the header's first 12 bytes (everything but itself) and the payload.
fn frame_crc(header: &[u8; HEADER_BYTES], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[..12]), payload)
}

fn u32_at(bytes: &[u8; HEADER_BYTES], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        encode_frame(7, b"hello, passive").unwrap()
    }

    #[test]
    fn a_frame_round_trips_through_a_stream_and_a_buffer() {
        let mut stream = Vec::new();
        write_frame(&mut stream, 7, b"hello, passive").unwrap();
        write_frame(&mut stream, 0, b"").unwrap();
        assert_eq!(&stream[..sample().len()], &sample()[..]);
        let mut reader = &stream[..];
        let first = read_frame(&mut reader, 1024).unwrap();
        assert_eq!(
            (first.kind, &first.payload[..]),
            (7, &b"hello, passive"[..])
        );
        let second = read_frame(&mut reader, 1024).unwrap();
        assert_eq!((second.kind, second.payload.len()), (0, 0));
        assert!(matches!(
            read_frame(&mut reader, 1024),
            Err(FrameError::Closed)
        ));
        let (decoded, used) = decode_frame(&stream, 1024).unwrap();
        assert_eq!((decoded, used), (first, sample().len()));
    }

    type Expect = fn(&FrameError) -> bool;

    #[test]
    fn every_corruption_is_named() {
        let cases: [(usize, u8, Expect); 6] = [
            (0, b'X', |e| matches!(e, FrameError::BadMagic)),
            (4, 2, |e| matches!(e, FrameError::BadVersion(2))),
            (7, 1, |e| matches!(e, FrameError::BadFlags)),
            (5, 8, |e| matches!(e, FrameError::Checksum { .. })),
            (13, 0xAA, |e| matches!(e, FrameError::Checksum { .. })),
            (20, b'!', |e| matches!(e, FrameError::Checksum { .. })),
        ];
        for (at, value, expected) in cases {
            let mut bytes = sample();
            bytes[at] = value;
            let decoded = decode_frame(&bytes, 1024).unwrap_err();
            assert!(expected(&decoded), "byte {at}: {decoded:?}");
            let read = read_frame(&mut &bytes[..], 1024).unwrap_err();
            assert!(expected(&read), "byte {at}: {read:?}");
        }
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_reading_the_payload() {
        let mut bytes = sample();
        bytes[8..12].copy_from_slice(&1025u32.to_le_bytes());
        // Only the header: had the reader allocated and read, it would report truncation.
        let header = &bytes[..HEADER_BYTES];
        let error = read_frame(&mut &header[..], 1024).unwrap_err();
        assert!(
            matches!(
                error,
                FrameError::TooLarge {
                    length: 1025,
                    limit: 1024
                }
            ),
            "{error:?}"
        );
        bytes[8..12].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        let error = decode_frame(&bytes[..HEADER_BYTES], u32::MAX).unwrap_err();
        let limit = MAX_PAYLOAD;
        assert!(
            matches!(error, FrameError::TooLarge { limit: l, .. } if l == limit),
            "{error:?}"
        );
    }

    #[test]
    fn a_payload_over_the_maximum_is_not_written() {
        let big = vec![0u8; MAX_PAYLOAD as usize + 1];
        let mut out = Vec::new();
        assert!(matches!(
            write_frame(&mut out, 1, &big),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn a_frame_cut_at_any_offset_is_incomplete_or_truncated() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            let part = &bytes[..cut];
            assert!(
                matches!(decode_frame(part, 1024), Err(FrameError::Incomplete)),
                "cut at {cut}"
            );
            let read = read_frame(&mut &part[..], 1024).unwrap_err();
            let expected = if cut == 0 { "Closed" } else { "Truncated" };
            assert_eq!(format!("{read:?}"), expected, "cut at {cut}");
        }
    }
}
