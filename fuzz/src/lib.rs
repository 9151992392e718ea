//! The checks behind BlueJet's fuzz targets, shared with `tests/tests/fuzz_seeds.rs` (which
//! includes this file as a module), so the seed corpus is run through exactly the calls the
//! fuzzer makes, in ordinary CI.
//!
//! Each check decodes the input as it is, then once more with its checksums recomputed: random
//! bytes almost never carry a matching crc32c, and without the second pass the fuzzer would
//! never get past the checksum of any format. Every check panics on a broken property (that is
//! a bug) and otherwise returns whether the input *as given* decoded.

pub mod db;
pub mod net;

pub use db::{db_open, page_decode};
pub use net::frame_stream;

use bluejet_engine::format::checkpoint::{
    self, CopyState, CHECKPOINT_COPY_BYTES, CHECKPOINT_COPY_STRIDE,
};
use bluejet_engine::format::generation_header::GenerationHeader;
use bluejet_engine::format::generation_header::HEADER_BYTES;
use bluejet_engine::format::record::{read_record, MAX_RECORD_PAYLOAD_BYTES, RECORD_HEADER_BYTES};
use bluejet_engine::format::scan::{self, GenerationScan, ScanMode};
use bluejet_engine::format::segment::{
    self, SegmentRead, PAYLOAD_BYTES, SEGMENT_BYTES, SEGMENT_HEADER_BYTES,
};
use bluejet_engine::LogError;
use crc32c::{crc32c, crc32c_append};
use std::path::Path;

/// Target `generation_header`: `GenerationHeader::decode` on arbitrary bytes. A header that
/// decodes re-encodes to the same 128 bytes and decodes to itself.
pub fn generation_header(data: &[u8]) -> bool {
    let decoded = header_round_trip(data);
    if data.len() >= HEADER_BYTES {
        let mut fixed = data[..HEADER_BYTES].to_vec();
        seal(&mut fixed, 0, HEADER_BYTES);
        header_round_trip(&fixed);
    }
    decoded
}

fn header_round_trip(data: &[u8]) -> bool {
    match GenerationHeader::decode(data) {
        Ok(header) => {
            let encoded = header.encode();
            assert_eq!(GenerationHeader::decode(&encoded), Ok(header));
            assert_eq!(
                &encoded[..],
                &data[..HEADER_BYTES],
                "a header that decodes is the canonical encoding of what it decodes to"
            );
            true
        }
        Err(_) => false,
    }
}

/// Target `segment`: input = generation (u32 LE), slot (u32 LE), then the segment bytes;
/// `segment::decode(bytes, generation, slot)`. A valid segment has a payload of `used` bytes
/// taken from right after its header, belongs to the generation and slot asked for, and
/// re-encodes to the same bytes. Returns whether the input decoded as `Valid`.
pub fn segment(data: &[u8]) -> bool {
    let mut prefix = [0u8; 8];
    let split = data.len().min(8);
    prefix[..split].copy_from_slice(&data[..split]);
    let generation = u32_at(&prefix, 0);
    let slot = u32_at(&prefix, 4);
    let bytes = &data[split..];
    let valid = segment_check(bytes, generation, slot);
    if bytes.len() == SEGMENT_BYTES {
        let mut fixed = bytes.to_vec();
        seal(&mut fixed, 0, SEGMENT_BYTES);
        segment_check(&fixed, generation, slot);
        // Keyed by what the segment itself claims, so the field checks get exercised too.
        segment_check(&fixed, u32_at(&fixed, 8), u32_at(&fixed, 12));
    }
    valid
}

fn segment_check(bytes: &[u8], generation: u32, slot: u32) -> bool {
    match segment::decode(bytes, generation, slot) {
        SegmentRead::Valid(header, payload) => {
            assert_eq!(bytes.len(), SEGMENT_BYTES);
            assert_eq!(
                payload.len(),
                header.used as usize,
                "payload is `used` long"
            );
            assert!(!payload.is_empty() && payload.len() <= PAYLOAD_BYTES);
            assert_eq!(header.generation, generation);
            assert_eq!(header.slot, slot);
            let start = SEGMENT_HEADER_BYTES;
            assert_eq!(payload, &bytes[start..start + payload.len()]);
            let mut again = vec![0u8; SEGMENT_BYTES];
            segment::encode(&mut again, &header, payload);
            assert_eq!(again, bytes, "a valid segment is canonical");
            true
        }
        SegmentRead::Empty => {
            assert!(bytes.len() == SEGMENT_BYTES && bytes.iter().all(|&b| b == 0));
            false
        }
        SegmentRead::Invalid(_) => false,
    }
}

/// Target `record`: walks arbitrary bytes as a record stream, the way the scanner frames a
/// generation's stream, decoding every record. Framed records lie inside the input, and a
/// record of a known kind that decodes re-encodes to exactly its bytes. Returns whether the
/// whole input is a sequence of records whose known kinds decode.
pub fn record_stream(data: &[u8]) -> bool {
    let whole = walk_records(data);
    let mut fixed = data.to_vec();
    seal_records(&mut fixed);
    walk_records(&fixed);
    whole
}

fn walk_records(stream: &[u8]) -> bool {
    let mut offset = 0;
    let mut all_decode = true;
    while offset < stream.len() {
        let Ok(raw) = read_record(&stream[offset..]) else {
            return false;
        };
        let length = raw.encoded_len();
        assert!(length >= RECORD_HEADER_BYTES && offset + length <= stream.len());
        assert_eq!(raw.kind, stream[offset]);
        assert_eq!(
            raw.payload,
            &stream[offset + RECORD_HEADER_BYTES..offset + length]
        );
        match raw.decode() {
            Ok(Some(record)) => {
                assert_eq!(record.kind(), raw.kind);
                let mut again = Vec::new();
                record.encode_into(&mut again);
                assert_eq!(
                    again,
                    &stream[offset..offset + length],
                    "a decoded record re-encodes to its bytes"
                );
            }
            Ok(None) => assert!(!(1..=9).contains(&raw.kind), "known kind skipped"),
            Err(_) => all_decode = false,
        }
        offset += length;
    }
    all_decode
}

/// Recomputes the checksum of every record frame that fits in `stream`.
fn seal_records(stream: &mut [u8]) {
    let mut offset = 0;
    while stream.len() - offset >= RECORD_HEADER_BYTES {
        let length = u32_at(stream, offset + 4) as usize;
        let end = offset + RECORD_HEADER_BYTES + length;
        if length > MAX_RECORD_PAYLOAD_BYTES || end > stream.len() {
            return;
        }
        let head = crc32c(&stream[offset..offset + 8]);
        let checksum = crc32c_append(head, &stream[offset + RECORD_HEADER_BYTES..end]);
        stream[offset + 8..offset + 12].copy_from_slice(&checksum.to_le_bytes());
        offset = end;
    }
}

/// What [`generation_scan`] found for the input as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanOutcome {
    /// `scan(.., Closed)` succeeded.
    pub closed: bool,
    /// `scan(.., Current)` succeeded.
    pub current: bool,
}

/// Target `generation_scan`: `scan::scan` of an arbitrary file image, as a closed and as the
/// current generation. A scan that succeeds reports the file's digest and size, a stream
/// within the capacity that frames into whole records, and no torn tail when closed.
pub fn generation_scan(data: &[u8]) -> ScanOutcome {
    let outcome = scan_both(data);
    if data.len() >= HEADER_BYTES {
        let mut fixed = data.to_vec();
        seal(&mut fixed, 0, HEADER_BYTES);
        for start in (SEGMENT_BYTES..fixed.len()).step_by(SEGMENT_BYTES) {
            let end = start + SEGMENT_BYTES;
            if end <= fixed.len() && fixed[start..end].iter().any(|&b| b != 0) {
                seal(&mut fixed, start, end);
            }
        }
        scan_both(&fixed);
    }
    outcome
}

fn scan_both(image: &[u8]) -> ScanOutcome {
    let path = Path::new("E0000000001.log");
    let closed = scan::scan(path, image, ScanMode::Closed);
    let current = scan::scan(path, image, ScanMode::Current);
    if let Ok(scanned) = &closed {
        check_scan(image, scanned, ScanMode::Closed);
    }
    if let Ok(scanned) = &current {
        check_scan(image, scanned, ScanMode::Current);
    }
    ScanOutcome {
        closed: closed.is_ok(),
        current: current.is_ok(),
    }
}

fn check_scan(image: &[u8], scanned: &GenerationScan, mode: ScanMode) {
    assert_eq!(
        GenerationHeader::decode(image).as_ref(),
        Ok(&scanned.header)
    );
    assert_eq!(scanned.file_bytes, image.len() as u64);
    assert_eq!(scanned.file_bytes, scanned.header.generation_bytes as u64);
    assert_eq!(scanned.digest, crc32c(image));
    assert!(scanned.stream.len() as u64 <= scan::stream_capacity(scanned.file_bytes));
    assert!(scanned.home_segments <= scanned.home_capacity);
    if mode == ScanMode::Closed {
        assert_eq!(
            scanned.torn_bytes, 0,
            "a closed generation has no torn tail"
        );
    }
    let mut offset = 0;
    while offset < scanned.stream.len() {
        let raw = read_record(&scanned.stream[offset..])
            .expect("a scanned stream is a sequence of whole records");
        offset += raw.encoded_len();
    }
    assert_eq!(offset, scanned.stream.len());
}

/// Target `checkpoint`: `checkpoint::decode_file` on an arbitrary file image. The checkpoint
/// in force is a valid copy with the highest sequence, every valid copy is the canonical
/// encoding of what it decodes to, and the only error is `BadCheckpoint`. Returns whether the
/// input gave a checkpoint.
pub fn checkpoint_file(data: &[u8]) -> bool {
    let decoded = checkpoint_check(data);
    let mut fixed = data.to_vec();
    for index in 0..2 {
        let start = index * CHECKPOINT_COPY_STRIDE;
        if fixed.len() >= start + CHECKPOINT_COPY_BYTES {
            seal(&mut fixed, start, start + CHECKPOINT_COPY_BYTES);
        }
    }
    checkpoint_check(&fixed);
    decoded
}

fn checkpoint_check(image: &[u8]) -> bool {
    match checkpoint::decode_file(Path::new("E00.chk"), image) {
        Ok(read) => {
            let mut in_force = false;
            for (index, copy) in read.copies.iter().enumerate() {
                if let CopyState::Valid(copy) = copy {
                    let start = index * CHECKPOINT_COPY_STRIDE;
                    let encoded = copy.encode(index as u8);
                    assert_eq!(&encoded[..], &image[start..start + CHECKPOINT_COPY_BYTES]);
                    assert!(copy.sequence <= read.checkpoint.sequence);
                    in_force |= *copy == read.checkpoint;
                }
            }
            assert!(
                in_force,
                "the checkpoint in force is one of the valid copies"
            );
            true
        }
        Err(error) => {
            assert!(matches!(error, LogError::BadCheckpoint { .. }), "{error}");
            false
        }
    }
}

/// Stores at `bytes[start..start + 4]` the crc32c of `bytes[start + 4..end]`: the checksum
/// layout of headers, segments and checkpoint copies.
fn seal(bytes: &mut [u8], start: usize, end: usize) {
    let checksum = crc32c(&bytes[start + 4..end]);
    bytes[start..start + 4].copy_from_slice(&checksum.to_le_bytes());
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}
