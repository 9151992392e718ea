//! A closed generation's file built from its header and record stream: how a passive copy
//! that received a generation as it was written (block mode) turns what it holds into a
//! generation replay and activation read like any shipped one.
//!
//! The image is what a writer that wrote the whole stream in one flush and closed the
//! generation would leave: segment 0 the header, home segment `s` block `s - 1` (flush
//! sequence 1, synced sequence 0), every later segment and both shadows empty. Only whole
//! records are kept (see [`whole_records`]), so the image reads as a closed generation.

use super::header::GenerationHeader;
use super::record::read_record;
use super::segment::{self, SegmentHeader, PAYLOAD_BYTES, SEGMENT_BYTES};

/// The length of the longest prefix of `stream` made of whole, valid records.
///
/// ```
/// use bluejet_engine::format::log_image::whole_records;
/// assert_eq!(whole_records(&[]), 0);
/// assert_eq!(whole_records(&[0; 10]), 0); // a zero kind is no record
/// ```
pub fn whole_records(stream: &[u8]) -> usize {
    let mut offset = 0;
    while let Ok(record) = read_record(&stream[offset..]) {
        offset += record.encoded_len();
    }
    offset
}

/// The file image of a closed generation with `header` holding `stream` (cut to whole
/// records first); `Err` when the stream does not fit in the generation.
pub fn closed_image(header: &GenerationHeader, stream: &[u8]) -> Result<Vec<u8>, String> {
    let stream = &stream[..whole_records(stream)];
    let file_bytes = header.generation_bytes as usize;
    let segments = file_bytes / SEGMENT_BYTES;
    // Segment 0 is the header; the last two are the shadows.
    let home = segments.saturating_sub(3);
    if stream.len() > home * PAYLOAD_BYTES {
        return Err(format!(
            "{} stream bytes do not fit in generation {} of {file_bytes} bytes",
            stream.len(),
            header.generation
        ));
    }
    let mut image = vec![0; file_bytes];
    image[..super::header::HEADER_BYTES].copy_from_slice(&header.encode());
    for (block, payload) in stream.chunks(PAYLOAD_BYTES).enumerate() {
        let slot = block + 1;
        let fields = SegmentHeader {
            generation: header.generation,
            slot: crate::log::stream_offset(slot),
            block: crate::log::stream_offset(block),
            used: u16::try_from(payload.len()).expect("a payload fits u16: at most PAYLOAD_BYTES"),
            shadow: false,
            flush_sequence: 1,
            synced_sequence: 0,
        };
        let target = &mut image[slot * SEGMENT_BYTES..(slot + 1) * SEGMENT_BYTES];
        segment::encode(target, &fields, payload);
    }
    Ok(image)
}
