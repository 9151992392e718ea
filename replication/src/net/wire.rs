//! The payload codec of the protocol's messages: fixed-width little-endian integers and
//! length-prefixed (u32) byte strings.
//!
//! A [`Reader`] trusts nothing it reads: every length is checked against the bytes left and
//! against the caller's limit for that field before a slice is taken, and every error names
//! the field that failed. A [`Writer`] keeps its first error (a field too long to encode)
//! and reports it at [`Writer::finish`], so a message is built without a `?` per field.

use super::frame::MAX_PAYLOAD;

/// Why a payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The payload ends before the field does.
    #[error("{field}: needs {needed} bytes, {remaining} left in the message")]
    Short {
        /// The field being read.
        field: &'static str,
        /// The bytes the field needs.
        needed: u64,
        /// The bytes left.
        remaining: usize,
    },
    /// A length prefix over the caller's limit for the field.
    #[error("{field}: length {length} is over the limit of {limit}")]
    TooLong {
        /// The field being read.
        field: &'static str,
        /// The length announced.
        length: u64,
        /// The limit for the field.
        limit: u64,
    },
    /// A text field that is not UTF-8.
    #[error("{field}: not UTF-8")]
    NotUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes left after the message's last field.
    #[error("{remaining} bytes after the end of the message")]
    Trailing {
        /// How many.
        remaining: usize,
    },
    /// The message being written is over [`MAX_PAYLOAD`].
    #[error("message of {length} bytes is over the frame limit of {MAX_PAYLOAD}")]
    MessageTooLong {
        /// The message's length, or the length of the field that overflowed.
        length: u64,
    },
}

/// Builds a message payload.
#[derive(Debug, Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a byte.
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }

    /// Appends a u16, little-endian.
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends a u32, little-endian.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends a u64, little-endian.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends `value`'s length (u32) then its bytes. A value that cannot fit in a frame
    /// makes [`Writer::finish`] fail.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        // Saturating: an oversized field fails finish() by the message's length anyway.
        let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.u32(length);
        self.0.extend_from_slice(value);
        self
    }

    /// Appends `value` as [`Writer::bytes`] of its UTF-8.
    pub fn str(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// The payload, if it fits in a frame.
    pub fn finish(self) -> Result<Vec<u8>, WireError> {
        if self.0.len() > MAX_PAYLOAD as usize {
            return Err(WireError::MessageTooLong {
                length: self.0.len() as u64,
            });
        }
        Ok(self.0)
    }
}

/// Reads a message payload field by field.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `payload` from its start.
    pub fn new(payload: &'a [u8]) -> Self {
        Self { rest: payload }
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Reads a byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads a little-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        self.array(field).map(u16::from_le_bytes)
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        self.array(field).map(u32::from_le_bytes)
    }

    /// Reads a little-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// Reads a u32 length then that many bytes; the length must be at most `limit`.
    pub fn bytes(&mut self, field: &'static str, limit: u32) -> Result<&'a [u8], WireError> {
        let length = self.u32(field)?;
        if length > limit {
            return Err(WireError::TooLong {
                field,
                length: u64::from(length),
                limit: u64::from(limit),
            });
        }
        self.take(field, length as usize)
    }

    /// Reads [`Reader::bytes`] that must be UTF-8.
    pub fn str(&mut self, field: &'static str, limit: u32) -> Result<&'a str, WireError> {
        let bytes = self.bytes(field, limit)?;
        std::str::from_utf8(bytes).map_err(|_| WireError::NotUtf8 { field })
    }

    /// Ends the message: every byte must have been read.
    pub fn finish(self) -> Result<(), WireError> {
        match self.rest.len() {
            0 => Ok(()),
            remaining => Err(WireError::Trailing { remaining }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let bytes = self.take(field, N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn take(&mut self, field: &'static str, count: usize) -> Result<&'a [u8], WireError> {
        if count > self.rest.len() {
            return Err(WireError::Short {
                field,
                needed: count as u64,
                remaining: self.rest.len(),
            });
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Vec<u8> {
        let mut writer = Writer::new();
        writer
            .u8(1)
            .u16(0x0203)
            .u32(0x0405_0607)
            .u64(u64::MAX - 1)
            .bytes(b"mail")
            .str("node-a");
        writer.finish().unwrap()
    }

    #[test]
    fn every_field_round_trips() {
        let bytes = message();
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.u8("a").unwrap(), 1);
        assert_eq!(reader.u16("b").unwrap(), 0x0203);
        assert_eq!(reader.u32("c").unwrap(), 0x0405_0607);
        assert_eq!(reader.u64("d").unwrap(), u64::MAX - 1);
        assert_eq!(reader.bytes("e", 4).unwrap(), b"mail");
        assert_eq!(reader.str("f", 100).unwrap(), "node-a");
        assert_eq!(reader.remaining(), 0);
        reader.finish().unwrap();
    }

    #[test]
    fn a_message_cut_anywhere_names_the_short_field() {
        let bytes = message();
        for cut in 0..bytes.len() {
            let mut reader = Reader::new(&bytes[..cut]);
            let result = (|| {
                reader.u8("a")?;
                reader.u16("b")?;
                reader.u32("c")?;
                reader.u64("d")?;
                reader.bytes("e", 4)?;
                reader.str("f", 100).map(|_| ())
            })();
            assert!(
                matches!(result, Err(WireError::Short { .. })),
                "cut {cut}: {result:?}"
            );
        }
    }

    #[test]
    fn a_length_over_the_limit_or_the_message_is_refused() {
        let mut writer = Writer::new();
        writer.bytes(b"12345");
        let bytes = writer.finish().unwrap();
        let error = Reader::new(&bytes).bytes("body", 4).unwrap_err();
        assert_eq!(
            error,
            WireError::TooLong {
                field: "body",
                length: 5,
                limit: 4
            }
        );
        let lying = u32::MAX.to_le_bytes();
        let error = Reader::new(&lying).bytes("body", u32::MAX).unwrap_err();
        assert!(
            matches!(error, WireError::Short { field: "body", .. }),
            "{error:?}"
        );
    }

    #[test]
    fn text_must_be_utf8_and_nothing_may_trail() {
        let mut writer = Writer::new();
        writer.bytes(&[0xFF, 0xFE]).u8(9);
        let bytes = writer.finish().unwrap();
        let mut reader = Reader::new(&bytes);
        assert_eq!(
            reader.str("name", 10).unwrap_err(),
            WireError::NotUtf8 { field: "name" }
        );
        assert_eq!(
            reader.finish().unwrap_err(),
            WireError::Trailing { remaining: 1 }
        );
    }

    #[test]
    fn a_message_over_a_frame_is_refused() {
        let mut writer = Writer::new();
        writer.bytes(&vec![0u8; MAX_PAYLOAD as usize]);
        assert!(matches!(
            writer.finish(),
            Err(WireError::MessageTooLong { .. })
        ));
    }
}
