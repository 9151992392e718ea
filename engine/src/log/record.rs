//! Records: typed, length-prefixed entries of the record stream.
//!
//! Framing (little-endian):
//! ```text
//!   0  u8   kind
//!   1  u8   flags, 0
//!   2  u16  reserved, 0
//!   4  u32  payload length
//!   8  u32  crc32c of bytes 0..8 followed by the payload
//!  12  [length] payload
//! ```
//! Every payload is encoded by hand: kinds 1..=10 in [`payload`] (fixed-width little-endian
//! fields after a u32 variant index, the bytes bincode 1 once wrote, so that older logs still
//! read), kind 11, the proof record, by [`crate::content::ContentProof`]. A reader that meets
//! a kind it does not know skips it by its length.

mod payload;

pub use payload::PayloadProblem;

/// Bytes of framing before each payload.
pub const RECORD_HEADER_BYTES: usize = 12;
/// No record payload is ever longer than this (a bound on every length read from disk).
pub const MAX_RECORD_PAYLOAD_BYTES: usize = 64 << 20;

// The framing is 12 bytes, and every payload length fits its u32 field.
const _: () = {
    assert!(RECORD_HEADER_BYTES == 12);
    assert!(MAX_RECORD_PAYLOAD_BYTES <= u32::MAX as usize);
};

/// Kind codes. Codes 1..=63 are reserved for the engine; unknown codes are skipped.
pub mod kind {
    /// A transaction begins.
    pub const BEGIN: u8 = 1;
    /// A transaction commits.
    pub const COMMIT: u8 = 2;
    /// A transaction rolls back.
    pub const ROLLBACK: u8 = 3;
    /// A key is inserted or replaced.
    pub const PUT: u8 = 4;
    /// A key is removed.
    pub const DELETE: u8 = 5;
    /// A table is created.
    pub const CREATE_TABLE: u8 = 6;
    /// A table is dropped.
    pub const DROP_TABLE: u8 = 7;
    /// The log was opened for writing (a new writer session).
    pub const START: u8 = 8;
    /// The log was closed cleanly.
    pub const STOP: u8 = 9;
    /// A piece of a value too large for one record.
    pub const PUT_CHUNK: u8 = 10;
    /// The content summary of every commit before it (a proof point).
    pub const PROOF: u8 = 11;
}

/// A record of a kind the engine knows, generic over how it holds its table name and byte
/// strings: one definition of every kind's fields, both for the owned [`Record`] that decoding
/// returns and for the borrowed [`RecordRef`] that a transaction encodes straight from its
/// caller's slices. Both encode to the same bytes.
///
/// ```
/// use bluejet_engine::format::record::{read_record, Record, RecordRef};
/// let (mut owned, mut borrowed) = (Vec::new(), Vec::new());
/// Record::Delete { transaction: 7, table: "inbox".into(), key: b"id-1".to_vec() }
///     .encode_into(&mut owned);
/// RecordRef::Delete { transaction: 7, table: "inbox", key: b"id-1" }.encode_into(&mut borrowed);
/// assert_eq!(owned, borrowed);
/// let raw = read_record(&borrowed).unwrap();
/// assert_eq!(raw.decode_borrowed().unwrap(), Some(RecordRef::Delete {
///     transaction: 7,
///     table: "inbox",
///     key: b"id-1",
/// }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordOf<Text, Bytes> {
    /// A transaction begins.
    Begin {
        /// The transaction id, unique within the stream.
        transaction: u64,
    },
    /// A transaction commits: its operations are to be redone.
    Commit {
        /// The transaction id.
        transaction: u64,
        /// Commit time, µs since the Unix epoch.
        time_micros: u64,
    },
    /// A transaction rolls back: its operations are to be ignored.
    Rollback {
        /// The transaction id.
        transaction: u64,
    },
    /// Insert or replace `key` in `table` with `value`.
    Put {
        /// The transaction id.
        transaction: u64,
        /// The table name.
        table: Text,
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Remove `key` from `table`.
    Delete {
        /// The transaction id.
        transaction: u64,
        /// The table name.
        table: Text,
        /// The key.
        key: Bytes,
    },
    /// Create a table.
    CreateTable {
        /// The transaction id.
        transaction: u64,
        /// The table name.
        table: Text,
    },
    /// Drop a table.
    DropTable {
        /// The transaction id.
        transaction: u64,
        /// The table name.
        table: Text,
    },
    /// A writer session started.
    Start {
        /// Time, µs since the Unix epoch.
        time_micros: u64,
    },
    /// The log was closed cleanly.
    Stop {
        /// Time, µs since the Unix epoch.
        time_micros: u64,
    },
    /// A piece of a value too large for one record: the pieces of one key follow each other
    /// in offset order, and the put takes effect with the piece that reaches `total`.
    PutChunk {
        /// The transaction id.
        transaction: u64,
        /// The table name.
        table: Text,
        /// The key.
        key: Bytes,
        /// Offset of this piece in the value.
        offset: u64,
        /// The value's whole length.
        total: u64,
        /// The piece.
        bytes: Bytes,
    },
    /// A proof point: the content summary of the database after every commit before this
    /// record. Written before the first commit of each generation; replay compares its own
    /// summary with it.
    Proof(crate::content::ContentProof),
}

/// A record that owns its table name and byte strings: what decoding returns.
pub type Record = RecordOf<String, Vec<u8>>;

/// A record that borrows its table name and byte strings: what a transaction appends, encoded
/// from its caller's slices with no owned copy in between.
pub type RecordRef<'a> = RecordOf<&'a str, &'a [u8]>;

/// Why a record could not be framed or decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordProblem {
    /// The stream ends inside the record (a torn tail in the current generation).
    Incomplete {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The frame is inconsistent (zero kind, bad reserved bytes, length out of bounds).
    BadFrame(String),
    /// The frame checksum does not match.
    BadChecksum,
    /// A known kind whose payload does not decode.
    BadPayload(PayloadProblem),
}

impl std::fmt::Display for RecordProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Incomplete { needed, available } => write!(
                formatter,
                "record needs {needed} bytes, only {available} remain"
            ),
            Self::BadFrame(reason) => write!(formatter, "bad record frame: {reason}"),
            Self::BadChecksum => write!(formatter, "record checksum mismatch"),
            Self::BadPayload(reason) => write!(formatter, "bad record payload: {reason}"),
        }
    }
}

/// One framed record: its kind and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// The kind code.
    pub kind: u8,
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl<'a> RawRecord<'a> {
    /// Total encoded size, framing included.
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_BYTES + self.payload.len()
    }

    /// Decodes a known kind into an owned record; `Ok(None)` for a kind this build does not
    /// know.
    pub fn decode(&self) -> Result<Option<Record>, RecordProblem> {
        self.decode_as()
    }

    /// Decodes a known kind into a record that borrows its table name and byte strings from
    /// the payload; `Ok(None)` for a kind this build does not know.
    pub fn decode_borrowed(&self) -> Result<Option<RecordRef<'a>>, RecordProblem> {
        self.decode_as()
    }

    fn decode_as<Text, Bytes>(&self) -> Result<Option<RecordOf<Text, Bytes>>, RecordProblem>
    where
        Text: From<&'a str>,
        Bytes: From<&'a [u8]>,
    {
        if self.kind == kind::PROOF {
            return crate::content::ContentProof::decode(self.payload)
                .map(|proof| Some(RecordOf::Proof(proof)))
                .map_err(|reason| RecordProblem::BadPayload(PayloadProblem::Proof(reason)));
        }
        if !(kind::BEGIN..=kind::PUT_CHUNK).contains(&self.kind) {
            return Ok(None);
        }
        payload::decode(self.kind, self.payload)
            .map(Some)
            .map_err(RecordProblem::BadPayload)
    }
}

impl<Text, Bytes> RecordOf<Text, Bytes> {
    /// The kind code of this record.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Begin { .. } => kind::BEGIN,
            Self::Commit { .. } => kind::COMMIT,
            Self::Rollback { .. } => kind::ROLLBACK,
            Self::Put { .. } => kind::PUT,
            Self::Delete { .. } => kind::DELETE,
            Self::CreateTable { .. } => kind::CREATE_TABLE,
            Self::DropTable { .. } => kind::DROP_TABLE,
            Self::Start { .. } => kind::START,
            Self::Stop { .. } => kind::STOP,
            Self::PutChunk { .. } => kind::PUT_CHUNK,
            Self::Proof(_) => kind::PROOF,
        }
    }

    /// The transaction the record belongs to, if any.
    pub fn transaction(&self) -> Option<u64> {
        match self {
            Self::Begin { transaction }
            | Self::Commit { transaction, .. }
            | Self::Rollback { transaction }
            | Self::Put { transaction, .. }
            | Self::Delete { transaction, .. }
            | Self::CreateTable { transaction, .. }
            | Self::DropTable { transaction, .. }
            | Self::PutChunk { transaction, .. } => Some(*transaction),
            Self::Start { .. } | Self::Stop { .. } | Self::Proof(_) => None,
        }
    }
}

impl<Text: AsRef<str>, Bytes: AsRef<[u8]>> RecordOf<Text, Bytes> {
    /// Appends the framed record to `target`, encoding the payload in place (no payload
    /// buffer in between, but for a proof).
    ///
    /// ```
    /// use bluejet_engine::log::{Record, read_record};
    /// let mut stream = Vec::new();
    /// Record::Begin { transaction: 1 }.encode_into(&mut stream);
    /// let raw = read_record(&stream).unwrap();
    /// assert_eq!(raw.decode().unwrap(), Some(Record::Begin { transaction: 1 }));
    /// ```
    pub fn encode_into(&self, target: &mut Vec<u8>) {
        if let Self::Proof(proof) = self {
            return frame_into(target, kind::PROOF, &proof.encode());
        }
        let start = target.len();
        target.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
        payload::encode(self, target);
        seal_frame(&mut target[start..], self.kind());
    }
}

/// Fills in the header of `frame`: a record header (zeros) followed by its whole payload.
fn seal_frame(frame: &mut [u8], kind: u8) {
    assert_ne!(kind, 0, "kind 0 is not a record");
    let (header, payload) = frame.split_at_mut(RECORD_HEADER_BYTES);
    assert!(payload.len() <= MAX_RECORD_PAYLOAD_BYTES, "payload bound");
    header[0] = kind;
    header[4..8].copy_from_slice(
        &u32::try_from(payload.len())
            .expect("a payload fits u32: at most MAX_RECORD_PAYLOAD_BYTES")
            .to_le_bytes(),
    );
    let checksum = crc32c::crc32c_append(crc32c::crc32c(&header[..8]), payload);
    header[8..12].copy_from_slice(&checksum.to_le_bytes());
}

/// Appends a framed record of `kind` with `payload` to `target`.
pub fn frame_into(target: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let start = target.len();
    target.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    target.extend_from_slice(payload);
    seal_frame(&mut target[start..], kind);
}

/// Frames the record at the start of `stream`.
pub fn read_record(stream: &[u8]) -> Result<RawRecord<'_>, RecordProblem> {
    let Some(header) = stream.get(..RECORD_HEADER_BYTES) else {
        return Err(RecordProblem::Incomplete {
            needed: RECORD_HEADER_BYTES,
            available: stream.len(),
        });
    };
    if header[0] == 0 {
        return Err(RecordProblem::BadFrame("kind 0".into()));
    }
    if header[1..4] != [0, 0, 0] {
        return Err(RecordProblem::BadFrame(
            "flags or reserved bytes not zero".into(),
        ));
    }
    let length = super::header::u32_at(header, 4) as usize;
    if length > MAX_RECORD_PAYLOAD_BYTES {
        return Err(RecordProblem::BadFrame(format!(
            "length {length} over the bound"
        )));
    }
    let needed = RECORD_HEADER_BYTES + length;
    let Some(payload) = stream.get(RECORD_HEADER_BYTES..needed) else {
        return Err(RecordProblem::Incomplete {
            needed,
            available: stream.len(),
        });
    };
    let stored = super::header::u32_at(header, 8);
    let computed = crc32c::crc32c_append(crc32c::crc32c(&header[..8]), payload);
    if stored != computed {
        return Err(RecordProblem::BadChecksum);
    }
    Ok(RawRecord {
        kind: header[0],
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind is encoded from borrowed data (`RecordRef`, what transactions append)
    /// exactly as the owned `Record`, and decodes back.
    #[test]
    fn every_kind_round_trips() {
        let (table, value) = ("messages", vec![7; 1000]);
        let borrowed = [
            RecordRef::Begin { transaction: 1 },
            RecordRef::Commit {
                transaction: 2,
                time_micros: 3,
            },
            RecordRef::Rollback { transaction: 4 },
            RecordRef::Put {
                transaction: 5,
                table,
                key: b"key",
                value: &value,
            },
            RecordRef::Delete {
                transaction: 6,
                table,
                key: b"gone",
            },
            RecordRef::CreateTable {
                transaction: 7,
                table,
            },
            RecordRef::DropTable {
                transaction: 8,
                table,
            },
            RecordRef::Start { time_micros: 9 },
            RecordRef::Stop { time_micros: 10 },
            RecordRef::PutChunk {
                transaction: 11,
                table,
                key: b"big",
                offset: 12,
                total: 13,
                bytes: &[1, 2, 3],
            },
        ];
        let table = table.to_string();
        let records = [
            Record::Begin { transaction: 1 },
            Record::Commit {
                transaction: 2,
                time_micros: 3,
            },
            Record::Rollback { transaction: 4 },
            Record::Put {
                transaction: 5,
                table: table.clone(),
                key: b"key".to_vec(),
                value: value.clone(),
            },
            Record::Delete {
                transaction: 6,
                table: table.clone(),
                key: b"gone".to_vec(),
            },
            Record::CreateTable {
                transaction: 7,
                table: table.clone(),
            },
            Record::DropTable {
                transaction: 8,
                table: table.clone(),
            },
            Record::Start { time_micros: 9 },
            Record::Stop { time_micros: 10 },
            Record::PutChunk {
                transaction: 11,
                table,
                key: b"big".to_vec(),
                offset: 12,
                total: 13,
                bytes: vec![1, 2, 3],
            },
        ];
        let mut stream = Vec::new();
        for record in &borrowed {
            record.encode_into(&mut stream);
        }
        let mut owned = Vec::new();
        for record in &records {
            record.encode_into(&mut owned);
        }
        assert_eq!(owned, stream, "byte for byte the same");
        let mut offset = 0;
        for record in &records {
            let raw = read_record(&stream[offset..]).unwrap();
            assert_eq!(raw.kind, record.kind());
            assert_eq!(raw.decode().unwrap().as_ref(), Some(record));
            offset += raw.encoded_len();
        }
        assert_eq!(offset, stream.len());
    }

    #[test]
    fn unknown_kinds_are_skipped_by_length() {
        let mut stream = Vec::new();
        frame_into(&mut stream, 200, b"future");
        Record::Begin { transaction: 9 }.encode_into(&mut stream);
        let first = read_record(&stream).unwrap();
        assert_eq!(first.decode(), Ok(None));
        let second = read_record(&stream[first.encoded_len()..]).unwrap();
        assert_eq!(second.decode(), Ok(Some(Record::Begin { transaction: 9 })));
    }

    #[test]
    fn truncation_is_incomplete_not_a_panic() {
        let mut stream = Vec::new();
        Record::Put {
            transaction: 1,
            table: "t".into(),
            key: b"k".to_vec(),
            value: vec![1; 100],
        }
        .encode_into(&mut stream);
        for cut in 0..stream.len() {
            assert!(matches!(
                read_record(&stream[..cut]),
                Err(RecordProblem::Incomplete { .. })
            ));
        }
    }

    #[test]
    fn lying_payload_lengths_are_bounded() {
        let mut stream = Vec::new();
        let mut huge = 3u32.to_le_bytes().to_vec();
        huge.extend_from_slice(&1u64.to_le_bytes());
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        frame_into(&mut stream, kind::PUT, &huge);
        let raw = read_record(&stream).unwrap();
        assert!(matches!(
            raw.decode(),
            Err(RecordProblem::BadPayload(
                PayloadProblem::LengthOutOfBounds { .. }
            ))
        ));
    }
}
