//! Block mode on the wire: a passive asks the active for the log bytes after a position
//! ([`Tail`]), waiting a bounded time for new ones, and says in the same request how far it
//! has synced what it received (`flushed`), which is what a synchronous commit waits for.
//!
//! The answer ([`TailAnswer`]) mirrors the active's [log tap](bluejet_engine::log::tap): durable
//! record-stream bytes of one generation (with the generation's header when they start at its
//! offset 0, so that the passive can later turn what it holds into a closed generation), the
//! end of a closed generation, nothing new, or why block mode cannot go on.

use super::message::DecodeError;
use super::wire::{Reader, WireError, Writer};
use bluejet_engine::format::generation_header::HEADER_BYTES;
use bluejet_engine::LogPosition;

/// Longest wait a tail request may ask for, in milliseconds (well inside a request's deadline).
pub const MAX_TAIL_WAIT_MS: u32 = 1000;

/// Longest reason text.
const MAX_REASON: u32 = 4096;

/// A passive's request for the log bytes after `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tail {
    /// The first position wanted.
    pub from: LogPosition,
    /// The most bytes wanted.
    pub max: u32,
    /// How long to wait for new bytes (at most [`MAX_TAIL_WAIT_MS`]).
    pub wait_ms: u32,
    /// How far the passive has synced the blocks it received (its acknowledgement).
    pub flushed: LogPosition,
}

/// The active's answer to a [`Tail`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TailAnswer {
    /// Durable bytes of one generation's record stream starting at `from`.
    Bytes {
        /// Where they start.
        from: LogPosition,
        /// The generation's header (encoded) when `from` is its offset 0.
        header: Option<[u8; HEADER_BYTES]>,
        /// The bytes.
        bytes: Vec<u8>,
        /// The active's durable position.
        durable: LogPosition,
    },
    /// `from` is the end of a closed generation of `length` stream bytes.
    Ended {
        /// The closed generation.
        generation: u32,
        /// Its stream length.
        length: u32,
        /// crc32c of its whole file on the active (what the next generation's header
        /// chains to).
        digest: u32,
    },
    /// Nothing new within the wait.
    Idle {
        /// The active's durable position.
        durable: LogPosition,
    },
    /// Block mode cannot serve `from` (left the active's memory, past its end, its log
    /// stopped, not active, block mode off): the passive copies closed generations instead.
    Unavailable {
        /// Why, for the status and the event log.
        reason: String,
    },
}

mod code {
    pub const BYTES: u8 = 1;
    pub const ENDED: u8 = 2;
    pub const IDLE: u8 = 3;
    pub const UNAVAILABLE: u8 = 4;
}

impl Tail {
    /// Appends the request's fields.
    pub fn put(&self, w: &mut Writer) {
        w.u64(self.from.to_u64())
            .u32(self.max)
            .u32(self.wait_ms)
            .u64(self.flushed.to_u64());
    }

    /// Reads the request's fields; refuses a wait or size beyond the bounds.
    pub fn get(r: &mut Reader<'_>, max_bytes: u32) -> Result<Self, WireError> {
        let from = LogPosition::from_u64(r.u64("from")?);
        let max = bounded(r.u32("max")?, "max", max_bytes)?;
        let wait_ms = bounded(r.u32("wait")?, "wait", MAX_TAIL_WAIT_MS)?;
        let flushed = LogPosition::from_u64(r.u64("flushed")?);
        Ok(Self {
            from,
            max,
            wait_ms,
            flushed,
        })
    }
}

impl TailAnswer {
    /// Appends the answer's fields.
    pub fn put(&self, w: &mut Writer) {
        match self {
            Self::Bytes {
                from,
                header,
                bytes,
                durable,
            } => {
                w.u8(code::BYTES).u64(from.to_u64()).u64(durable.to_u64());
                match header {
                    Some(header) => w.u8(1).bytes(header),
                    None => w.u8(0),
                };
                w.bytes(bytes);
            }
            Self::Ended {
                generation,
                length,
                digest,
            } => {
                w.u8(code::ENDED).u32(*generation).u32(*length).u32(*digest);
            }
            Self::Idle { durable } => {
                w.u8(code::IDLE).u64(durable.to_u64());
            }
            Self::Unavailable { reason } => {
                let mut end = reason.len().min(MAX_REASON as usize);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                w.u8(code::UNAVAILABLE).str(&reason[..end]);
            }
        }
    }

    /// Reads the answer's fields; `max_bytes` bounds the bytes.
    pub fn get(r: &mut Reader<'_>, max_bytes: u32) -> Result<Self, DecodeError> {
        Ok(match r.u8("tail answer")? {
            code::BYTES => {
                let from = LogPosition::from_u64(r.u64("from")?);
                let durable = LogPosition::from_u64(r.u64("durable")?);
                let header = match r.u8("header present")? {
                    0 => None,
                    _ => Some(header(r.bytes(
                        "header",
                        u32::try_from(HEADER_BYTES).expect("a small constant"),
                    )?)?),
                };
                let bytes = r.bytes("bytes", max_bytes)?.to_vec();
                Self::Bytes {
                    from,
                    header,
                    bytes,
                    durable,
                }
            }
            code::ENDED => Self::Ended {
                generation: r.u32("generation")?,
                length: r.u32("length")?,
                digest: r.u32("digest")?,
            },
            code::IDLE => Self::Idle {
                durable: LogPosition::from_u64(r.u64("durable")?),
            },
            code::UNAVAILABLE => Self::Unavailable {
                reason: r.str("reason", MAX_REASON)?.to_owned(),
            },
            other => return Err(DecodeError::Unknown(other)),
        })
    }
}

fn header(bytes: &[u8]) -> Result<[u8; HEADER_BYTES], WireError> {
    bytes.try_into().map_err(|_| WireError::Short {
        field: "header",
        needed: HEADER_BYTES as u64,
        remaining: bytes.len(),
    })
}

fn bounded(value: u32, field: &'static str, limit: u32) -> Result<u32, WireError> {
    if value > limit {
        return Err(WireError::TooLong {
            field,
            length: u64::from(value),
            limit: u64::from(limit),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        let tail = Tail {
            from: LogPosition::new(4, 100),
            max: 1 << 20,
            wait_ms: 500,
            flushed: LogPosition::new(4, 90),
        };
        let mut w = Writer::new();
        tail.put(&mut w);
        let payload = w.finish().unwrap();
        assert_eq!(
            Tail::get(&mut Reader::new(&payload), 1 << 20).unwrap(),
            tail
        );
        let answers = [
            TailAnswer::Bytes {
                from: LogPosition::new(4, 0),
                header: Some([7; HEADER_BYTES]),
                bytes: vec![1, 2, 3],
                durable: LogPosition::new(4, 3),
            },
            TailAnswer::Ended {
                generation: 4,
                length: 3,
                digest: 0xdead_beef,
            },
            TailAnswer::Idle {
                durable: LogPosition::new(5, 0),
            },
            TailAnswer::Unavailable {
                reason: "behind".into(),
            },
        ];
        for answer in answers {
            let mut w = Writer::new();
            answer.put(&mut w);
            let payload = w.finish().unwrap();
            assert_eq!(
                TailAnswer::get(&mut Reader::new(&payload), 1 << 20).unwrap(),
                answer
            );
        }
    }

    #[test]
    fn a_wait_beyond_the_bound_is_refused() {
        let tail = Tail {
            from: LogPosition::new(1, 0),
            max: 10,
            wait_ms: MAX_TAIL_WAIT_MS + 1,
            flushed: LogPosition::new(1, 0),
        };
        let mut w = Writer::new();
        tail.put(&mut w);
        let payload = w.finish().unwrap();
        assert!(Tail::get(&mut Reader::new(&payload), 1 << 20).is_err());
    }
}
