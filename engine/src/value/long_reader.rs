//! Reading a value as a stream: a long value's pages are fetched one at a time as the reader
//! advances, and a compressed one is decoded with zstd's streaming decoder, so that reading
//! a value of any size holds about one page and the decoder's window in memory.
//!
//! Skipping ([`ValueStream::skip`]) follows an uncompressed chain by each page's data length
//! without copying its data; a compressed value has no such map from value offsets to pages,
//! so its bytes up to the offset are decoded and discarded.

use super::long::{check_lengths, malformed, DATA_OFFSET};
use crate::btree::node::LongRef;
use crate::db::DbError;
use crate::page::cache::PageBytes;
use crate::page::format::{self, read_u32, PageType, PAGE_HEADER_BYTES};
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Where a stream's long-value pages come from.
pub trait PageSource {
    /// The page numbered `number`, checked.
    fn long_page(&self, number: u64) -> Result<PageBytes, DbError>;
    /// The database file, to name in errors.
    fn path(&self) -> &Path;
}

impl PageSource for &crate::page::PageStore {
    fn long_page(&self, number: u64) -> Result<PageBytes, DbError> {
        self.page(number)
    }

    fn path(&self) -> &Path {
        self.file().path()
    }
}

/// The stored bytes of a long value's chain, page by page, with the chain checked as in
/// [`long::read`](super::long::read): every page a long-value page, its length within what
/// remains, the chain ending exactly where the stored bytes do.
struct StoredReader<S> {
    source: S,
    long: LongRef,
    /// The page being read and the range of its data not yet read.
    page: Option<(PageBytes, usize, usize)>,
    /// The next page of the chain (0: none).
    next: u64,
    /// Stored bytes in the pages not yet fetched.
    unfetched: u64,
}

impl<S: PageSource> StoredReader<S> {
    fn new(source: S, long: LongRef) -> Result<Self, DbError> {
        check_lengths(long, source.path())?;
        Ok(Self {
            source,
            long,
            page: None,
            next: long.first_page,
            unfetched: long.stored,
        })
    }

    /// The unread data of the current page, fetching the next page when it is used up;
    /// empty at the end of the chain.
    fn data(&mut self) -> Result<&[u8], DbError> {
        if self
            .page
            .as_ref()
            .is_none_or(|(_, start, end)| start == end)
        {
            self.page = self.fetch_next()?;
        }
        Ok(match &self.page {
            Some((page, start, end)) => &page[*start..*end],
            None => &[],
        })
    }

    fn consume(&mut self, bytes: usize) {
        if let Some((_, start, _)) = &mut self.page {
            *start += bytes;
        }
    }

    fn fetch_next(&mut self) -> Result<Option<(PageBytes, usize, usize)>, DbError> {
        let path = self.source.path();
        let number = self.next;
        if number == 0 {
            if self.unfetched != 0 {
                let reason = format!("long-value chain ends {} bytes short", self.unfetched);
                return Err(malformed(path, self.long.first_page, reason));
            }
            return Ok(None);
        }
        let page = self.source.long_page(number)?;
        if format::page_type(&page) != Some(PageType::LongValue) {
            return Err(malformed(path, number, "expected a long-value page".into()));
        }
        let length = u64::from(read_u32(&page, PAGE_HEADER_BYTES));
        let fits = DATA_OFFSET as u64 + length <= page.len() as u64;
        if !fits || length > self.unfetched || (length == 0 && self.unfetched > 0) {
            let reason = "long-value chain longer than its value".into();
            return Err(malformed(path, number, reason));
        }
        self.unfetched -= length;
        self.next = format::link(&page);
        if self.unfetched == 0 && self.next != 0 {
            let reason = "long-value chain runs past its value".into();
            return Err(malformed(path, self.next, reason));
        }
        Ok(Some((
            page,
            DATA_OFFSET,
            DATA_OFFSET + usize::try_from(length).expect("checked above: within the page"),
        )))
    }

    /// Passes over up to `bytes` stored bytes, page by page, without copying them; returns
    /// how many it passed.
    fn skip(&mut self, bytes: u64) -> Result<u64, DbError> {
        let mut skipped = 0;
        while skipped < bytes {
            let available = self.data()?.len() as u64;
            if available == 0 {
                break;
            }
            let taken = available.min(bytes - skipped);
            self.consume(usize::try_from(taken).expect("at most the page's data, a usize"));
            skipped += taken;
        }
        Ok(skipped)
    }
}

impl<S: PageSource> StoredReader<S> {
    /// Copies stored bytes into `buf` from the current page; 0 at the end of the chain.
    fn read_into(&mut self, buf: &mut [u8]) -> Result<usize, DbError> {
        let data = self.data()?;
        let taken = data.len().min(buf.len());
        buf[..taken].copy_from_slice(&data[..taken]);
        self.consume(taken);
        Ok(taken)
    }
}

impl<S: PageSource> Read for StoredReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_into(buf).map_err(to_io)
    }
}

enum Body<S: PageSource> {
    Inline(Vec<u8>),
    Plain(StoredReader<S>),
    Compressed(Box<zstd::stream::read::Decoder<'static, BufReader<StoredReader<S>>>>),
}

/// A value read as a stream: an inline value from memory, a long one page by page (see the
/// module documentation). It implements [`std::io::Read`]; an error it meets (a damaged page,
/// a value that does not decompress to its length) is an [`io::Error`] carrying the
/// [`DbError`] (`error.get_ref()` and `downcast_ref::<DbError>()` recover it).
pub struct ValueStream<S: PageSource> {
    body: Body<S>,
    length: u64,
    position: u64,
    first_page: u64,
    path: std::path::PathBuf,
}

impl<S: PageSource> ValueStream<S> {
    /// A stream over an inline value.
    pub fn inline(value: Vec<u8>) -> Self {
        Self {
            length: value.len() as u64,
            body: Body::Inline(value),
            position: 0,
            first_page: 0,
            path: Default::default(),
        }
    }

    /// A stream over the long value `long`, its pages read from `source` as needed.
    pub fn long(source: S, long: LongRef) -> Result<Self, DbError> {
        let path = source.path().to_owned();
        let stored = StoredReader::new(source, long)?;
        let body = if long.compressed {
            let decoder = zstd::stream::read::Decoder::new(stored)
                .map_err(|error| corrupt_frame(&path, long.first_page, &error))?
                .single_frame();
            Body::Compressed(Box::new(decoder))
        } else {
            Body::Plain(stored)
        };
        Ok(Self {
            body,
            length: long.length,
            position: 0,
            first_page: long.first_page,
            path,
        })
    }

    /// The value's length.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Bytes read (or skipped) so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Whether the value is stored compressed (skipping then decodes what it skips).
    pub fn is_compressed(&self) -> bool {
        matches!(self.body, Body::Compressed(_))
    }

    /// Reads into `buf` from the current position; returns the bytes read, 0 at the end.
    pub fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, DbError> {
        let wanted = usize::try_from((self.length - self.position).min(buf.len() as u64))
            .expect("at most buf.len()");
        let buf = &mut buf[..wanted];
        let read = match &mut self.body {
            Body::Inline(value) => {
                let start = usize::try_from(self.position).expect("within the inline value");
                buf.copy_from_slice(&value[start..start + wanted]);
                wanted
            }
            Body::Plain(stored) => stored.read_into(buf)?,
            Body::Compressed(_) => self.decoded(buf)?,
        };
        if read == 0 && wanted > 0 {
            let reason = format!(
                "long value ends at {} bytes, not {}",
                self.position, self.length
            );
            return Err(malformed(&self.path, self.first_page, reason));
        }
        self.position += read as u64;
        Ok(read)
    }

    fn decoded(&mut self, buf: &mut [u8]) -> Result<usize, DbError> {
        let Body::Compressed(decoder) = &mut self.body else {
            unreachable!("only called on a compressed body");
        };
        let read = decoder
            .read(buf)
            .map_err(|error| self.decode_error(error))?;
        let at_end = self.position + read as u64 == self.length;
        if at_end && read > 0 {
            // Nothing may follow the declared length.
            let mut extra = [0u8; 1];
            let Body::Compressed(decoder) = &mut self.body else {
                unreachable!("still compressed");
            };
            let more = decoder
                .read(&mut extra)
                .map_err(|error| self.decode_error(error))?;
            if more > 0 {
                let reason = format!("long value decompresses past its {} bytes", self.length);
                return Err(malformed(&self.path, self.first_page, reason));
            }
        }
        Ok(read)
    }

    fn decode_error(&self, error: io::Error) -> DbError {
        match into_db_error(error) {
            Ok(db_error) => db_error,
            Err(error) => corrupt_frame(&self.path, self.first_page, &error),
        }
    }

    /// Moves `bytes` forward (at most to the end); returns how many it moved. An
    /// uncompressed long value is passed over page by page without copying its data; a
    /// compressed one is decoded and the bytes discarded.
    pub fn skip(&mut self, bytes: u64) -> Result<u64, DbError> {
        let bytes = bytes.min(self.length - self.position);
        let skipped = match &mut self.body {
            Body::Inline(_) => bytes,
            Body::Plain(stored) => stored.skip(bytes)?,
            Body::Compressed(_) => {
                let mut scratch =
                    vec![0u8; usize::try_from(bytes).map_or(64 << 10, |bytes| bytes.min(64 << 10))];
                let mut skipped = 0;
                while skipped < bytes {
                    let wanted = usize::try_from((bytes - skipped).min(scratch.len() as u64))
                        .expect("at most scratch.len()");
                    let read = self.read_some(&mut scratch[..wanted])?;
                    skipped += read as u64;
                }
                return Ok(skipped);
            }
        };
        self.position += skipped;
        if skipped < bytes {
            let reason = format!("long value ends before {} bytes", self.length);
            return Err(malformed(&self.path, self.first_page, reason));
        }
        Ok(skipped)
    }

    /// Reads from `offset` into `buf` until it is full or the value ends; returns the bytes
    /// read (0 when `offset` is at or past the end). The stream must be at its start or
    /// before `offset`.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, DbError> {
        assert!(offset >= self.position, "a stream only moves forward");
        if offset >= self.length {
            return Ok(0);
        }
        self.skip(offset - self.position)?;
        let mut filled = 0;
        while filled < buf.len() {
            let read = self.read_some(&mut buf[filled..])?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        Ok(filled)
    }
}

impl<S: PageSource> Read for ValueStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_some(buf).map_err(to_io)
    }
}

/// A database error as an I/O error, kept as its source.
fn to_io(error: DbError) -> io::Error {
    let kind = match &error {
        DbError::Corruption { .. } => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, error)
}

/// The database error an I/O error carries, or the I/O error back.
fn into_db_error(error: io::Error) -> Result<DbError, io::Error> {
    if error.get_ref().is_some_and(|inner| inner.is::<DbError>()) {
        let inner = error.into_inner().expect("checked above");
        return Ok(*inner.downcast::<DbError>().expect("checked above"));
    }
    Err(error)
}

fn corrupt_frame(path: &Path, page: u64, error: &io::Error) -> DbError {
    malformed(
        path,
        page,
        format!("long value does not decompress: {error}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogPosition;
    use crate::value::long::{format_pages, prepare, seal};
    use std::collections::HashMap;

    const PAGE: usize = 4096;

    struct Pages(HashMap<u64, PageBytes>);

    impl PageSource for &Pages {
        fn long_page(&self, number: u64) -> Result<PageBytes, DbError> {
            self.0
                .get(&number)
                .cloned()
                .ok_or_else(|| malformed(Path::new("test"), number, "no such page".into()))
        }

        fn path(&self) -> &Path {
            Path::new("test")
        }
    }

    /// `value` stored as a chain from page 10 (compressed if `compress` and it pays).
    fn stored(value: &[u8], compress: bool) -> (Pages, LongRef) {
        let (bytes, compressed) = prepare(value, compress);
        let mut next = 9;
        let (first_page, pages) = format_pages(&bytes, PAGE, &mut || {
            next += 1;
            next
        });
        let pages = pages
            .into_iter()
            .map(|(number, mut page)| {
                seal(&mut page, number, LogPosition::new(1, 0));
                (number, PageBytes::from(page))
            })
            .collect();
        let long = LongRef {
            first_page,
            length: value.len() as u64,
            stored: bytes.len() as u64,
            compressed,
        };
        (Pages(pages), long)
    }

    fn value() -> Vec<u8> {
        (0..60_000u32).map(|i| (i / 50 % 7) as u8 + b'a').collect()
    }

    #[test]
    fn reads_and_skips_give_the_value_whether_compressed_or_not() {
        let value = value();
        for compress in [false, true] {
            let (pages, long) = stored(&value, compress);
            assert_eq!(long.compressed, compress);
            for offset in [0, 1, 4059, 4060, 4061, 30_000, 59_999, 60_000, 70_000] {
                let mut stream = ValueStream::long(&pages, long).unwrap();
                let mut buf = vec![0u8; 1000];
                let read = stream.read_at(offset, &mut buf).unwrap();
                let start = (usize::try_from(offset).unwrap_or(usize::MAX)).min(value.len());
                let end = (start + 1000).min(value.len());
                assert_eq!(&buf[..read], &value[start..end], "at {offset}");
            }
            let mut whole = Vec::new();
            ValueStream::long(&pages, long)
                .unwrap()
                .read_to_end(&mut whole)
                .unwrap();
            assert_eq!(whole, value);
        }
    }

    #[test]
    fn a_damaged_chain_is_a_corruption_error_naming_the_page() {
        let value = value();
        let (mut pages, long) = stored(&value, false);
        // A page cut out of the chain: the one before it now ends it early.
        let mut page = pages.0[&12].to_vec();
        crate::page::format::set_link(&mut page, 0);
        pages.0.insert(12, page.into());
        let mut stream = ValueStream::long(&pages, long).unwrap();
        let error = stream.skip(value.len() as u64).unwrap_err();
        assert!(
            matches!(error, DbError::Corruption { page: 10, .. }),
            "{error}"
        );
        // Through `Read`, the same error as the I/O error's source.
        let mut stream = ValueStream::long(&pages, long).unwrap();
        let error = stream.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<DbError>().is_some()));
    }

    #[test]
    fn a_compressed_value_longer_or_shorter_than_its_length_is_refused() {
        let value = value();
        let (pages, long) = stored(&value, true);
        for length in [value.len() as u64 - 1, value.len() as u64 + 1] {
            let long = LongRef { length, ..long };
            let mut stream = ValueStream::long(&pages, long).unwrap();
            let error = stream.read_to_end(&mut Vec::new()).unwrap_err();
            assert_eq!(
                error.kind(),
                io::ErrorKind::InvalidData,
                "{length}: {error}"
            );
        }
    }
}
