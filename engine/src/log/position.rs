//! Log positions: (generation, offset), totally ordered.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A position in a log stream: a generation and a byte offset into that generation's record
/// stream (the concatenated segment payloads, not the file). Ordered by generation, then offset.
///
/// ```
/// use bluejet_engine::LogPosition;
/// let early = LogPosition::new(3, 9000);
/// let late = LogPosition::new(4, 0);
/// assert!(early < late);
/// assert_eq!(late.to_string(), "(4,0)");
/// assert_eq!(LogPosition::from_u64(early.to_u64()), early);
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition {
    /// The generation number (1 is the first generation of a stream).
    pub generation: u32,
    /// The offset in the generation's record stream.
    pub offset: u32,
}

impl LogPosition {
    /// A position at `offset` in `generation`.
    pub const fn new(generation: u32, offset: u32) -> Self {
        Self { generation, offset }
    }

    /// A position at a byte offset (a `usize`, as in a generation's stream in memory).
    pub(crate) fn in_stream(generation: u32, offset: usize) -> Self {
        Self::new(generation, stream_offset(offset))
    }

    /// The position packed in one number with the same order: generation in the high half.
    pub const fn to_u64(self) -> u64 {
        ((self.generation as u64) << 32) | self.offset as u64
    }

    /// The inverse of [`LogPosition::to_u64`].
    // Splitting a packed u64 into its halves: keeping the low 32 bits is the point.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn from_u64(packed: u64) -> Self {
        Self {
            generation: (packed >> 32) as u32,
            offset: packed as u32,
        }
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "({},{})", self.generation, self.offset)
    }
}

/// An offset, length or segment count inside one generation as a `u32`. Cannot fail: a
/// generation is at most [`MAX_GENERATION_BYTES`](super::MAX_GENERATION_BYTES) (64 MiB).
pub(crate) fn stream_offset(bytes: usize) -> u32 {
    u32::try_from(bytes)
        .expect("an offset in a generation fits u32: generations are at most 64 MiB")
}
