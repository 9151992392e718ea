//! The generation header: the first 128 bytes of segment 0 of every log file.
//!
//! Layout (little-endian), see `docs/design.md`:
//! ```text
//!   0  u32  crc32c of bytes 4..128
//!   4  [8]  magic "BLUEJET\0"
//!  12  u8   file type (1 = log generation)
//!  13  u8   reserved, 0
//!  14  u16  format version (1)
//!  16  u32  generation
//!  20  u32  reserved, 0
//!  24  [16] stream signature id
//!  40  u64  stream signature creation time (µs)
//!  48  u64  timeline
//!  56  u64  creation time of this generation (µs)
//!  64  u64  creation time of the previous generation (µs; 0 for the first)
//!  72  u32  digest (crc32c) of the whole previous generation file (0 for the first)
//!  76  u32  segment size in bytes (4096)
//!  80  u32  generation size in bytes
//!  84  [3]  base name ("E00"), then one 0 byte
//!  88  [40] reserved, 0
//! ```

use super::signature::StreamSignature;

/// The magic shared by every BlueJet file.
pub const MAGIC: [u8; 8] = *b"BLUEJET\0";
/// Offset of the file-type byte, the same in every BlueJet file.
pub const FILE_TYPE_OFFSET: usize = 12;
/// File type of a log generation.
pub const FILE_TYPE_LOG: u8 = 1;
/// File type of a checkpoint file.
pub const FILE_TYPE_CHECKPOINT: u8 = 2;
/// Current format version of log generations. Version 2: segments carry their synced
/// sequence (bytes 32..40, reserved in version 1).
pub const LOG_FORMAT_VERSION: u16 = 2;
/// Encoded length of a generation header.
pub const HEADER_BYTES: usize = 128;

/// The header of one log generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerationHeader {
    /// The generation number.
    pub generation: u32,
    /// The stream the generation belongs to.
    pub signature: StreamSignature,
    /// The timeline (epoch); failover starts a new one.
    pub timeline: u64,
    /// When this generation was started (µs since the Unix epoch).
    pub created_micros: u64,
    /// When the previous generation was started; 0 for the first generation of a stream.
    pub previous_created_micros: u64,
    /// crc32c of the whole previous generation file; 0 for the first generation.
    pub previous_digest: u32,
    /// Segment size in bytes.
    pub segment_bytes: u32,
    /// Size of the generation file in bytes.
    pub generation_bytes: u32,
    /// The stream's base name.
    pub base_name: [u8; 3],
}

/// Why a header could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Fewer bytes than a header.
    Short(usize),
    /// Every byte is zero: the header was never written.
    Uninitialised,
    /// The magic is not BlueJet's.
    BadMagic,
    /// The file is a BlueJet file of another type.
    WrongFileType(u8),
    /// The checksum does not match.
    BadChecksum {
        /// The checksum stored.
        stored: u32,
        /// The checksum computed.
        computed: u32,
    },
    /// A format version this build cannot read.
    UnsupportedVersion(u16),
    /// A field is out of its allowed range.
    BadField(&'static str),
}

impl std::fmt::Display for HeaderProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Short(length) => write!(
                formatter,
                "only {length} bytes, a header needs {HEADER_BYTES}"
            ),
            Self::Uninitialised => write!(formatter, "never written (all zero)"),
            Self::BadMagic => write!(formatter, "not a BlueJet file (bad magic)"),
            Self::WrongFileType(kind) => {
                write!(formatter, "file type {kind} is not a log generation")
            }
            Self::BadChecksum { stored, computed } => write!(
                formatter,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Self::UnsupportedVersion(version) => {
                write!(formatter, "unsupported format version {version}")
            }
            Self::BadField(field) => write!(formatter, "field {field} out of range"),
        }
    }
}

impl GenerationHeader {
    /// Encodes the header into 128 bytes.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut bytes = [0u8; HEADER_BYTES];
        bytes[4..12].copy_from_slice(&MAGIC);
        bytes[FILE_TYPE_OFFSET] = FILE_TYPE_LOG;
        bytes[14..16].copy_from_slice(&LOG_FORMAT_VERSION.to_le_bytes());
        bytes[16..20].copy_from_slice(&self.generation.to_le_bytes());
        bytes[24..40].copy_from_slice(&self.signature.id);
        bytes[40..48].copy_from_slice(&self.signature.created_micros.to_le_bytes());
        bytes[48..56].copy_from_slice(&self.timeline.to_le_bytes());
        bytes[56..64].copy_from_slice(&self.created_micros.to_le_bytes());
        bytes[64..72].copy_from_slice(&self.previous_created_micros.to_le_bytes());
        bytes[72..76].copy_from_slice(&self.previous_digest.to_le_bytes());
        bytes[76..80].copy_from_slice(&self.segment_bytes.to_le_bytes());
        bytes[80..84].copy_from_slice(&self.generation_bytes.to_le_bytes());
        bytes[84..87].copy_from_slice(&self.base_name);
        let checksum = crc32c::crc32c(&bytes[4..]);
        bytes[0..4].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Decodes and checks a header. Checks everything that can be checked without context:
    /// checksum, magic, type, version, reserved bytes and the ranges of the sizes.
    pub fn decode(input: &[u8]) -> Result<Self, HeaderProblem> {
        let bytes: &[u8; HEADER_BYTES] = input
            .get(..HEADER_BYTES)
            .and_then(|slice| slice.try_into().ok())
            .ok_or(HeaderProblem::Short(input.len()))?;
        if bytes.iter().all(|&byte| byte == 0) {
            return Err(HeaderProblem::Uninitialised);
        }
        if bytes[4..12] != MAGIC {
            return Err(HeaderProblem::BadMagic);
        }
        let stored = u32_at(bytes, 0);
        let computed = crc32c::crc32c(&bytes[4..]);
        if stored != computed {
            return Err(HeaderProblem::BadChecksum { stored, computed });
        }
        if bytes[FILE_TYPE_OFFSET] != FILE_TYPE_LOG {
            return Err(HeaderProblem::WrongFileType(bytes[FILE_TYPE_OFFSET]));
        }
        let version = u16::from_le_bytes([bytes[14], bytes[15]]);
        if version != LOG_FORMAT_VERSION {
            return Err(HeaderProblem::UnsupportedVersion(version));
        }
        let reserved_zero = bytes[13] == 0
            && bytes[20..24].iter().all(|&b| b == 0)
            && bytes[87..].iter().all(|&b| b == 0);
        if !reserved_zero {
            return Err(HeaderProblem::BadField("reserved"));
        }
        let header = Self::fields(bytes);
        header.check_ranges()?;
        Ok(header)
    }

    fn fields(bytes: &[u8; HEADER_BYTES]) -> Self {
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[24..40]);
        Self {
            generation: u32_at(bytes, 16),
            signature: StreamSignature {
                id,
                created_micros: u64_at(bytes, 40),
            },
            timeline: u64_at(bytes, 48),
            created_micros: u64_at(bytes, 56),
            previous_created_micros: u64_at(bytes, 64),
            previous_digest: u32_at(bytes, 72),
            segment_bytes: u32_at(bytes, 76),
            generation_bytes: u32_at(bytes, 80),
            base_name: [bytes[84], bytes[85], bytes[86]],
        }
    }

    fn check_ranges(&self) -> Result<(), HeaderProblem> {
        if self.generation == 0 {
            return Err(HeaderProblem::BadField("generation"));
        }
        if self.segment_bytes as usize != super::segment::SEGMENT_BYTES {
            return Err(HeaderProblem::BadField("segment size"));
        }
        let size = self.generation_bytes as u64;
        let aligned = size.is_multiple_of(self.segment_bytes as u64);
        let in_range = (super::MIN_GENERATION_BYTES..=super::MAX_GENERATION_BYTES).contains(&size);
        if !aligned || !in_range {
            return Err(HeaderProblem::BadField("generation size"));
        }
        if !self.base_name.iter().all(u8::is_ascii_alphanumeric) {
            return Err(HeaderProblem::BadField("base name"));
        }
        Ok(())
    }
}

pub(crate) fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

pub(crate) fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GenerationHeader {
        GenerationHeader {
            generation: 7,
            signature: StreamSignature {
                id: [9; 16],
                created_micros: 5,
            },
            timeline: 1,
            created_micros: 100,
            previous_created_micros: 90,
            previous_digest: 0xdead_beef,
            segment_bytes: 4096,
            generation_bytes: 1 << 20,
            base_name: *b"E00",
        }
    }

    #[test]
    fn round_trip() {
        let header = sample();
        assert_eq!(GenerationHeader::decode(&header.encode()), Ok(header));
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let encoded = sample().encode();
        for bit in 0..HEADER_BYTES * 8 {
            let mut damaged = encoded;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(GenerationHeader::decode(&damaged).is_err(), "bit {bit}");
        }
    }
}
