//! Segments: the fixed 4 KiB units of a generation's body.
//!
//! A generation file of `n` segments holds the header in segment 0, *home* segments 1..n-2 that
//! carry the record stream in order (home segment `s` carries block `s - 1` of the stream), and
//! two *shadow* segments n-2 and n-1 that hold the newest copy of a partly filled block until
//! that block is complete. A home segment is written only with a complete block (or at a roll,
//! with the final partial block), so a flush never overwrites bytes that an earlier flush made
//! durable; see `docs/design.md`, "The partial block".
//!
//! Layout of one segment (little-endian):
//! ```text
//!   0  u32  crc32c of bytes 4..4096
//!   4  [4]  magic "BJLS"
//!   8  u32  generation
//!  12  u32  slot: this segment's index in the file
//!  16  u32  block: which block of the record stream the payload holds
//!  20  u16  used payload bytes (at most 4056)
//!  22  u16  flags: bit 0 = shadow copy; other bits 0
//!  24  u64  flush sequence: the writer's sequence when the segment was written; it moves
//!            on when a sync starts
//!  32  u64  synced sequence: the highest sequence whose sync had finished when the segment
//!            was written (every segment of this file with a sequence at or below it is
//!            durable); always below the flush sequence
//!  40  [4056] payload; bytes past `used` are 0
//! ```

/// Size of a segment in bytes.
pub const SEGMENT_BYTES: usize = 4096;
/// Size of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 40;
/// Payload bytes per segment: the size of one block of the record stream.
pub const PAYLOAD_BYTES: usize = SEGMENT_BYTES - SEGMENT_HEADER_BYTES;
/// Segment magic.
pub const SEGMENT_MAGIC: [u8; 4] = *b"BJLS";
/// Flag bit: the segment is a shadow copy of a partial block.
pub const FLAG_SHADOW: u16 = 1;
/// No flush sequence is above this (a bound on what is read, so that counting on from the
/// newest sequence in a file cannot overflow; a generation never sees 2^62 syncs).
pub const MAX_FLUSH_SEQUENCE: u64 = 1 << 62;

/// The fields of a valid segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The generation the segment was written for.
    pub generation: u32,
    /// Its index in the file.
    pub slot: u32,
    /// The block of the record stream it carries.
    pub block: u32,
    /// Payload bytes in use.
    pub used: u16,
    /// Whether it is a shadow copy.
    pub shadow: bool,
    /// The flush that wrote it.
    pub flush_sequence: u64,
    /// Every segment of the file with a sequence at or below this one was durable when this
    /// segment was written.
    pub synced_sequence: u64,
}

/// What one segment slot holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentRead<'a> {
    /// Every byte is zero: never written.
    Empty,
    /// A segment that checks out, with its payload (`used` bytes).
    Valid(SegmentHeader, &'a [u8]),
    /// Anything else, and why.
    Invalid(String),
}

/// Encodes one segment into `target` (exactly [`SEGMENT_BYTES`] long).
pub fn encode(target: &mut [u8], header: &SegmentHeader, payload: &[u8]) {
    assert_eq!(target.len(), SEGMENT_BYTES, "segment buffer size");
    assert_eq!(
        payload.len(),
        header.used as usize,
        "payload length matches used"
    );
    assert!(payload.len() <= PAYLOAD_BYTES, "payload fits in a segment");
    assert!(
        header.synced_sequence < header.flush_sequence,
        "a segment is written after the syncs it names"
    );
    assert!(
        header.flush_sequence <= MAX_FLUSH_SEQUENCE,
        "flush sequence bound"
    );
    // Every byte is written below (the header field by field, the payload, zeros after it),
    // so a reused buffer needs no clearing first.
    target[4..8].copy_from_slice(&SEGMENT_MAGIC);
    target[8..12].copy_from_slice(&header.generation.to_le_bytes());
    target[12..16].copy_from_slice(&header.slot.to_le_bytes());
    target[16..20].copy_from_slice(&header.block.to_le_bytes());
    target[20..22].copy_from_slice(&header.used.to_le_bytes());
    let flags = if header.shadow { FLAG_SHADOW } else { 0 };
    target[22..24].copy_from_slice(&flags.to_le_bytes());
    target[24..32].copy_from_slice(&header.flush_sequence.to_le_bytes());
    target[32..40].copy_from_slice(&header.synced_sequence.to_le_bytes());
    let (body, padding) = target[SEGMENT_HEADER_BYTES..].split_at_mut(payload.len());
    body.copy_from_slice(payload);
    padding.fill(0);
    let checksum = crc32c::crc32c(&target[4..]);
    target[0..4].copy_from_slice(&checksum.to_le_bytes());
}

/// Decodes the segment in `bytes`, which must have been read from `slot` of the file of
/// `generation`. A segment that belongs elsewhere (another generation, another slot) is
/// invalid, which catches stale and misdirected writes.
pub fn decode(bytes: &[u8], generation: u32, slot: u32) -> SegmentRead<'_> {
    if bytes.len() != SEGMENT_BYTES {
        return SegmentRead::Invalid(format!(
            "segment is {} bytes, not {SEGMENT_BYTES}",
            bytes.len()
        ));
    }
    if bytes.iter().all(|&byte| byte == 0) {
        return SegmentRead::Empty;
    }
    let stored = super::header::u32_at(bytes, 0);
    let computed = crc32c::crc32c(&bytes[4..]);
    if stored != computed {
        return SegmentRead::Invalid(format!(
            "bad checksum (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    if bytes[4..8] != SEGMENT_MAGIC {
        return SegmentRead::Invalid("bad segment magic".into());
    }
    let header = fields(bytes);
    if header.generation != generation || header.slot != slot {
        return SegmentRead::Invalid(format!(
            "holds generation {} segment {}: stale or misplaced",
            header.generation, header.slot
        ));
    }
    if let Err(reason) = check_fields(bytes, &header) {
        return SegmentRead::Invalid(reason);
    }
    let end = SEGMENT_HEADER_BYTES + header.used as usize;
    SegmentRead::Valid(header, &bytes[SEGMENT_HEADER_BYTES..end])
}

fn fields(bytes: &[u8]) -> SegmentHeader {
    let flags = u16::from_le_bytes([bytes[22], bytes[23]]);
    SegmentHeader {
        generation: super::header::u32_at(bytes, 8),
        slot: super::header::u32_at(bytes, 12),
        block: super::header::u32_at(bytes, 16),
        used: u16::from_le_bytes([bytes[20], bytes[21]]),
        shadow: flags & FLAG_SHADOW != 0,
        flush_sequence: super::header::u64_at(bytes, 24),
        synced_sequence: super::header::u64_at(bytes, 32),
    }
}

fn check_fields(bytes: &[u8], header: &SegmentHeader) -> Result<(), String> {
    let flags = u16::from_le_bytes([bytes[22], bytes[23]]);
    if flags & !FLAG_SHADOW != 0 {
        return Err(format!("unknown flags {flags:#06x}"));
    }
    let used = header.used as usize;
    if used == 0 || used > PAYLOAD_BYTES {
        return Err(format!(
            "used length {used} out of range 1..={PAYLOAD_BYTES}"
        ));
    }
    if header.flush_sequence > MAX_FLUSH_SEQUENCE {
        return Err(format!(
            "flush sequence {} over the bound {MAX_FLUSH_SEQUENCE}",
            header.flush_sequence
        ));
    }
    if header.synced_sequence >= header.flush_sequence {
        return Err(format!(
            "synced sequence {} not below the flush sequence {}",
            header.synced_sequence, header.flush_sequence
        ));
    }
    if bytes[SEGMENT_HEADER_BYTES + used..].iter().any(|&b| b != 0) {
        return Err("bytes past the used payload are not zero".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_keying() {
        let header = SegmentHeader {
            generation: 3,
            slot: 5,
            block: 4,
            used: 10,
            shadow: false,
            flush_sequence: 77,
            synced_sequence: 75,
        };
        let mut bytes = vec![0u8; SEGMENT_BYTES];
        encode(&mut bytes, &header, b"0123456789");
        assert_eq!(
            decode(&bytes, 3, 5),
            SegmentRead::Valid(header, b"0123456789")
        );
        assert!(matches!(decode(&bytes, 3, 6), SegmentRead::Invalid(_)));
        assert!(matches!(decode(&bytes, 4, 5), SegmentRead::Invalid(_)));
        assert_eq!(decode(&vec![0; SEGMENT_BYTES], 3, 5), SegmentRead::Empty);
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let header = SegmentHeader {
            generation: 1,
            slot: 1,
            block: 0,
            used: 100,
            shadow: false,
            flush_sequence: 1,
            synced_sequence: 0,
        };
        let mut bytes = vec![0u8; SEGMENT_BYTES];
        encode(&mut bytes, &header, &[0xAB; 100]);
        for bit in (0..SEGMENT_BYTES * 8).step_by(7) {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(decode(&damaged, 1, 1), SegmentRead::Invalid(_)),
                "bit {bit}"
            );
        }
    }
}
