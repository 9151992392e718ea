//! The payloads of record kinds 1..=10, encoded and decoded by hand.
//!
//! Little-endian, fixed width (the bytes bincode 1 wrote with fixed-width integers, so that
//! logs written before the encoding was owned still read): a u32 variant index, `kind - 1`,
//! then the fields in the order [`RecordOf`] declares them. Integers are u64; a table name is
//! a u64 length and that many bytes of UTF-8; a key, value or piece is a u64 length and that
//! many bytes. Nothing follows the last field. `docs/design.md` lists every kind's layout.
//!
//! Encoding writes straight into the caller's buffer from whatever the record borrows or
//! owns; decoding borrows from the payload and copies only when the caller asks for owned
//! data ([`RawRecord::decode`](super::RawRecord::decode)).

use super::{kind, RecordOf, MAX_RECORD_PAYLOAD_BYTES};

/// Why a payload of a known kind does not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadProblem {
    /// The variant index at the start of the payload is not the one of the frame's kind.
    KindMismatch {
        /// The frame's kind.
        kind: u8,
        /// The variant index the payload starts with.
        variant: u32,
    },
    /// The payload ends inside a fixed-width field.
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the payload.
        remaining: usize,
    },
    /// A length prefix reaches past the payload's end or over [`MAX_RECORD_PAYLOAD_BYTES`].
    LengthOutOfBounds {
        /// The field the length belongs to.
        field: &'static str,
        /// The length read.
        length: u64,
        /// Bytes left in the payload after the length.
        remaining: usize,
    },
    /// A table name is not UTF-8.
    NotUtf8 {
        /// The field.
        field: &'static str,
    },
    /// Bytes follow the last field.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A proof record's payload (kind 11) is malformed.
    Proof(String),
}

impl std::fmt::Display for PayloadProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::KindMismatch { kind, variant } => write!(
                formatter,
                "kind {kind} holds a payload of variant {variant} (expected {})",
                u32::from(kind.wrapping_sub(1))
            ),
            Self::Truncated {
                field,
                needed,
                remaining,
            } => write!(
                formatter,
                "{field} needs {needed} bytes, only {remaining} remain"
            ),
            Self::LengthOutOfBounds {
                field,
                length,
                remaining,
            } => write!(
                formatter,
                "{field} length {length} is over the {remaining} bytes that remain \
                 (or the bound of {MAX_RECORD_PAYLOAD_BYTES})"
            ),
            Self::NotUtf8 { field } => write!(formatter, "{field} is not UTF-8"),
            Self::TrailingBytes { count } => {
                write!(formatter, "{count} bytes after the last field")
            }
            Self::Proof(reason) => write!(formatter, "proof: {reason}"),
        }
    }
}

/// The variant index a payload of `kind` (1..=10) starts with: bincode numbered the variants
/// of the record enum from 0 in kind order.
fn variant_of(kind: u8) -> u32 {
    u32::from(kind) - 1
}

/// Appends the payload of `record` (any kind but a proof) to `out`.
pub(super) fn encode<Text: AsRef<str>, Bytes: AsRef<[u8]>>(
    record: &RecordOf<Text, Bytes>,
    out: &mut Vec<u8>,
) {
    let mut fields = Fields { out };
    fields.u32(variant_of(record.kind()));
    match record {
        RecordOf::Begin { transaction } | RecordOf::Rollback { transaction } => {
            fields.u64(*transaction);
        }
        RecordOf::Commit {
            transaction,
            time_micros,
        } => {
            fields.u64(*transaction);
            fields.u64(*time_micros);
        }
        RecordOf::Put {
            transaction,
            table,
            key,
            value,
        } => {
            fields.u64(*transaction);
            fields.bytes(table.as_ref().as_bytes());
            fields.bytes(key.as_ref());
            fields.bytes(value.as_ref());
        }
        RecordOf::Delete {
            transaction,
            table,
            key,
        } => {
            fields.u64(*transaction);
            fields.bytes(table.as_ref().as_bytes());
            fields.bytes(key.as_ref());
        }
        RecordOf::CreateTable { transaction, table }
        | RecordOf::DropTable { transaction, table } => {
            fields.u64(*transaction);
            fields.bytes(table.as_ref().as_bytes());
        }
        RecordOf::Start { time_micros } | RecordOf::Stop { time_micros } => {
            fields.u64(*time_micros);
        }
        RecordOf::PutChunk {
            transaction,
            table,
            key,
            offset,
            total,
            bytes,
        } => {
            fields.u64(*transaction);
            fields.bytes(table.as_ref().as_bytes());
            fields.bytes(key.as_ref());
            fields.u64(*offset);
            fields.u64(*total);
            fields.bytes(bytes.as_ref());
        }
        RecordOf::Proof(_) => unreachable!("a proof is encoded by ContentProof::encode"),
    }
}

/// Decodes the payload of a record of `kind` (1..=10), borrowing from it or copying, as the
/// caller's types choose (`&str`/`&[u8]` or `String`/`Vec<u8>`).
pub(super) fn decode<'a, Text, Bytes>(
    record_kind: u8,
    payload: &'a [u8],
) -> Result<RecordOf<Text, Bytes>, PayloadProblem>
where
    Text: From<&'a str>,
    Bytes: From<&'a [u8]>,
{
    debug_assert!((kind::BEGIN..=kind::PUT_CHUNK).contains(&record_kind));
    let mut fields = FieldReader { rest: payload };
    let variant = fields.u32("variant index")?;
    if variant != variant_of(record_kind) {
        return Err(PayloadProblem::KindMismatch {
            kind: record_kind,
            variant,
        });
    }
    let record = match record_kind {
        kind::BEGIN => RecordOf::Begin {
            transaction: fields.u64("transaction")?,
        },
        kind::COMMIT => RecordOf::Commit {
            transaction: fields.u64("transaction")?,
            time_micros: fields.u64("time")?,
        },
        kind::ROLLBACK => RecordOf::Rollback {
            transaction: fields.u64("transaction")?,
        },
        kind::PUT => RecordOf::Put {
            transaction: fields.u64("transaction")?,
            table: fields.text("table")?.into(),
            key: fields.bytes("key")?.into(),
            value: fields.bytes("value")?.into(),
        },
        kind::DELETE => RecordOf::Delete {
            transaction: fields.u64("transaction")?,
            table: fields.text("table")?.into(),
            key: fields.bytes("key")?.into(),
        },
        kind::CREATE_TABLE => RecordOf::CreateTable {
            transaction: fields.u64("transaction")?,
            table: fields.text("table")?.into(),
        },
        kind::DROP_TABLE => RecordOf::DropTable {
            transaction: fields.u64("transaction")?,
            table: fields.text("table")?.into(),
        },
        kind::START => RecordOf::Start {
            time_micros: fields.u64("time")?,
        },
        kind::STOP => RecordOf::Stop {
            time_micros: fields.u64("time")?,
        },
        _ => RecordOf::PutChunk {
            transaction: fields.u64("transaction")?,
            table: fields.text("table")?.into(),
            key: fields.bytes("key")?.into(),
            offset: fields.u64("offset")?,
            total: fields.u64("total")?,
            bytes: fields.bytes("piece")?.into(),
        },
    };
    fields.finish()?;
    Ok(record)
}

/// Writes fields into a payload being appended.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
}

impl Fields<'_> {
    fn u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// A u64 length, then the bytes.
    fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.out.extend_from_slice(bytes);
    }
}

/// Reads fields from the front of a payload, every length bounded by what remains.
struct FieldReader<'a> {
    rest: &'a [u8],
}

impl<'a> FieldReader<'a> {
    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], PayloadProblem> {
        let Some((head, rest)) = self.rest.split_first_chunk::<N>() else {
            return Err(PayloadProblem::Truncated {
                field,
                needed: N,
                remaining: self.rest.len(),
            });
        };
        self.rest = rest;
        Ok(*head)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, PayloadProblem> {
        self.take(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, PayloadProblem> {
        self.take(field).map(u64::from_le_bytes)
    }

    /// A u64 length and that many bytes, the length at most what remains and at most
    /// [`MAX_RECORD_PAYLOAD_BYTES`].
    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], PayloadProblem> {
        let length = self.u64(field)?;
        let out_of_bounds = PayloadProblem::LengthOutOfBounds {
            field,
            length,
            remaining: self.rest.len(),
        };
        let Ok(length) = usize::try_from(length) else {
            return Err(out_of_bounds);
        };
        if length > MAX_RECORD_PAYLOAD_BYTES || length > self.rest.len() {
            return Err(out_of_bounds);
        }
        let (bytes, rest) = self.rest.split_at(length);
        self.rest = rest;
        Ok(bytes)
    }

    /// Bytes that must be UTF-8.
    fn text(&mut self, field: &'static str) -> Result<&'a str, PayloadProblem> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| PayloadProblem::NotUtf8 { field })
    }

    fn finish(self) -> Result<(), PayloadProblem> {
        match self.rest.len() {
            0 => Ok(()),
            count => Err(PayloadProblem::TrailingBytes { count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{frame_into, read_record, Record, RecordProblem, RecordRef};
    use super::*;
    use crate::content::{ContentProof, ContentSummary, TableContent};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn encoded(record: &Record) -> Vec<u8> {
        let mut stream = Vec::new();
        record.encode_into(&mut stream);
        stream
    }

    /// One record of each kind and its framed bytes, as the bincode 1 implementation (fixint,
    /// little-endian, through serde) wrote them before the encoding was done by hand: logs
    /// written then must still read, and must re-encode to the same bytes.
    fn fixed_vectors() -> Vec<(Record, &'static str)> {
        vec![
            (
                Record::Begin {
                    transaction: 0x0102_0304_0506_0708,
                },
                "010000000c000000d992b66e000000000807060504030201",
            ),
            (
                Record::Commit {
                    transaction: 2,
                    time_micros: 1_700_000_000_000_000,
                },
                "0200000014000000ce14824c01000000020000000000000000401e18240a0600",
            ),
            (
                Record::Rollback { transaction: 4 },
                "030000000c00000038e71ee9020000000400000000000000",
            ),
            (
                Record::Put {
                    transaction: 5,
                    table: "t".into(),
                    key: b"k".to_vec(),
                    value: b"val".to_vec(),
                },
                "04000000290000008e4d3c730300000005000000000000000100000000000000740100000000\
                 0000006b030000000000000076616c",
            ),
            (
                Record::Delete {
                    transaction: 6,
                    table: "boîte".into(),
                    key: b"gone".to_vec(),
                },
                "050000002600000052d99f54040000000600000000000000060000000000000062\
                 6fc3ae74650400000000000000676f6e65",
            ),
            (
                Record::CreateTable {
                    transaction: 7,
                    table: "inbox".into(),
                },
                "06000000190000006182537505000000070000000000000005000000000000\
                 00696e626f78",
            ),
            (
                Record::DropTable {
                    transaction: 8,
                    table: "inbox".into(),
                },
                "0700000019000000026b53160600000008000000000000000500000000000000\
                 696e626f78",
            ),
            (
                Record::Start { time_micros: 9 },
                "080000000c000000864b85d1070000000900000000000000",
            ),
            (
                Record::Stop {
                    time_micros: u64::MAX,
                },
                "090000000c0000006ac7b93108000000ffffffffffffffff",
            ),
            (
                Record::PutChunk {
                    transaction: 11,
                    table: "t".into(),
                    key: b"big".to_vec(),
                    offset: 12,
                    total: 15,
                    bytes: vec![1, 2, 3],
                },
                "0a0000003b000000a4f140b4090000000b000000000000000100000000000000740300\
                 0000000000006269670c000000000000000f000000000000000300000000000000010203",
            ),
            (
                Record::Put {
                    transaction: 1,
                    table: String::new(),
                    key: Vec::new(),
                    value: Vec::new(),
                },
                "04000000240000000aeed63b030000000100000000000000000000000000000000000000\
                 000000000000000000000000",
            ),
        ]
    }

    #[test]
    fn every_kind_encodes_to_its_fixed_bytes_and_back() {
        for (record, expected) in fixed_vectors() {
            let stream = encoded(&record);
            assert_eq!(hex(&stream), expected, "{record:?}");
            let raw = read_record(&stream).unwrap();
            assert_eq!(raw.encoded_len(), stream.len());
            assert_eq!(raw.decode().unwrap(), Some(record.clone()));
            let borrowed = raw.decode_borrowed().unwrap().unwrap();
            let mut again = Vec::new();
            borrowed.encode_into(&mut again);
            assert_eq!(
                again, stream,
                "borrowed re-encodes byte for byte: {record:?}"
            );
        }
    }

    #[test]
    fn every_kind_round_trips_with_extreme_fields() {
        let big = vec![0xa5; 70_000];
        let proof = ContentProof::of(&ContentSummary {
            tables: vec![TableContent {
                table: "inbox".into(),
                entries: 3,
                checksum: 99,
            }],
        });
        let records = [
            Record::Begin { transaction: 0 },
            Record::Commit {
                transaction: u64::MAX,
                time_micros: 0,
            },
            Record::Rollback {
                transaction: u64::MAX,
            },
            Record::Put {
                transaction: 1,
                table: "boîte aux lettres".into(),
                key: vec![0; 255],
                value: big.clone(),
            },
            Record::Delete {
                transaction: 2,
                table: "x".repeat(4096),
                key: Vec::new(),
            },
            Record::CreateTable {
                transaction: 3,
                table: String::new(),
            },
            Record::DropTable {
                transaction: 4,
                table: "\u{1F4E7}".into(),
            },
            Record::Start { time_micros: 1 },
            Record::Stop { time_micros: 2 },
            Record::PutChunk {
                transaction: 5,
                table: "t".into(),
                key: b"k".to_vec(),
                offset: u64::MAX,
                total: 0,
                bytes: big,
            },
            Record::Proof(proof),
        ];
        let mut stream = Vec::new();
        for record in &records {
            record.encode_into(&mut stream);
        }
        let mut offset = 0;
        for record in &records {
            let raw = read_record(&stream[offset..]).unwrap();
            assert_eq!(raw.kind, record.kind());
            assert_eq!(raw.decode().unwrap().as_ref(), Some(record));
            offset += raw.encoded_len();
        }
        assert_eq!(offset, stream.len());
    }

    /// Decodes `payload` framed as `kind`.
    fn decode_framed(kind: u8, payload: &[u8]) -> Result<Option<Record>, RecordProblem> {
        let mut stream = Vec::new();
        frame_into(&mut stream, kind, payload);
        let raw = read_record(&stream).unwrap();
        let owned = raw.decode();
        assert_eq!(
            raw.decode_borrowed().map(|record| record.is_some()),
            owned
                .as_ref()
                .map(|record| record.is_some())
                .map_err(Clone::clone),
            "borrowed and owned decoding agree"
        );
        owned
    }

    fn payload_of(record: &Record) -> Vec<u8> {
        encoded(record)[crate::log::record::RECORD_HEADER_BYTES..].to_vec()
    }

    #[test]
    fn every_truncated_payload_is_rejected() {
        for (record, _) in fixed_vectors() {
            let payload = payload_of(&record);
            for cut in 0..payload.len() {
                let problem = decode_framed(record.kind(), &payload[..cut]).unwrap_err();
                assert!(
                    matches!(
                        problem,
                        RecordProblem::BadPayload(
                            PayloadProblem::Truncated { .. }
                                | PayloadProblem::LengthOutOfBounds { .. }
                        )
                    ),
                    "{record:?} cut at {cut}: {problem:?}"
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        for (record, _) in fixed_vectors() {
            let mut payload = payload_of(&record);
            payload.push(0);
            assert_eq!(
                decode_framed(record.kind(), &payload),
                Err(RecordProblem::BadPayload(PayloadProblem::TrailingBytes {
                    count: 1
                })),
                "{record:?}"
            );
        }
    }

    /// Every length prefix of every kind, set past the payload's end, over the bound, or to
    /// u64::MAX, is refused, never trusted.
    #[test]
    fn oversized_lengths_are_rejected() {
        let record = Record::PutChunk {
            transaction: 1,
            table: "t".into(),
            key: b"k".to_vec(),
            offset: 0,
            total: 1,
            bytes: vec![9],
        };
        let payload = payload_of(&record);
        // The table's, the key's and the piece's length fields.
        for (field, at) in [("table", 12), ("key", 21), ("piece", 46)] {
            let just_past_the_end = (payload.len() - (at + 8) + 1) as u64;
            for length in [
                just_past_the_end,
                MAX_RECORD_PAYLOAD_BYTES as u64 + 1,
                u64::MAX,
            ] {
                let mut lying = payload.clone();
                lying[at..at + 8].copy_from_slice(&length.to_le_bytes());
                match decode_framed(kind::PUT_CHUNK, &lying) {
                    Err(RecordProblem::BadPayload(PayloadProblem::LengthOutOfBounds {
                        field: named,
                        length: read,
                        ..
                    })) => assert_eq!((named, read), (field, length)),
                    other => panic!("{field} length {length}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_table_name_that_is_not_utf8_is_rejected() {
        let mut payload = payload_of(&Record::CreateTable {
            transaction: 1,
            table: "ab".into(),
        });
        let last = payload.len() - 1;
        payload[last] = 0xff;
        assert_eq!(
            decode_framed(kind::CREATE_TABLE, &payload),
            Err(RecordProblem::BadPayload(PayloadProblem::NotUtf8 {
                field: "table"
            }))
        );
    }

    #[test]
    fn a_payload_of_another_kind_is_rejected() {
        let payload = payload_of(&Record::Begin { transaction: 1 });
        assert_eq!(
            decode_framed(kind::ROLLBACK, &payload),
            Err(RecordProblem::BadPayload(PayloadProblem::KindMismatch {
                kind: kind::ROLLBACK,
                variant: 0
            }))
        );
    }

    /// Borrowed records (what transactions append) encode exactly as owned ones.
    #[test]
    fn borrowed_and_owned_encode_alike() {
        let mut borrowed = Vec::new();
        RecordRef::Put {
            transaction: 5,
            table: "t",
            key: b"k",
            value: b"val",
        }
        .encode_into(&mut borrowed);
        let (owned, _) = &fixed_vectors()[3];
        assert_eq!(borrowed, encoded(owned));
    }
}
