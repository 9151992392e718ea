//! Read transactions: a consistent snapshot of the newest durable state.

use super::catalog::TableMeta;
use super::database::Inner;
use super::version::Version;
use super::write::owned_bounds;
use super::DbError;
use crate::btree::cursor::{self, Cursor, Direction};
use crate::btree::view::NodeView;
use crate::btree::view::ValueRef;
use crate::btree::{after_start, before_end};
use crate::page::cache::PageBytes;
use crate::value::long_reader::ValueStream;
use std::borrow::Cow;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// A snapshot: it sees exactly the transactions committed durably before it began, however
/// long it lives and whatever commits meanwhile.
///
/// It owns what it reads through (no borrow of the [`Database`](super::Database)), and is
/// `Send` and `'static`: an async server can hold one across an `.await` or move it to a
/// blocking pool.
pub struct ReadTransaction {
    inner: Arc<Inner>,
    version: Arc<Version>,
}

impl ReadTransaction {
    pub(crate) fn begin(inner: &Arc<Inner>) -> Self {
        Self {
            inner: Arc::clone(inner),
            version: inner.snapshots.acquire(),
        }
    }

    /// The version this snapshot sees.
    pub fn version(&self) -> u64 {
        self.version.number
    }

    /// The log position of the snapshot: just after the commit record of the last
    /// transaction it sees.
    pub fn end(&self) -> crate::log::LogPosition {
        self.version.end
    }

    /// A table of the snapshot; [`DbError::TableNotFound`] if it does not exist.
    pub fn open_table(&self, table: &str) -> Result<ReadTable<'_>, DbError> {
        let store = &self.inner.store;
        let root = self.version.catalog_root;
        let found = cursor::lookup(store, root, table.as_bytes())?;
        let Some((leaf, index)) = found else {
            return Err(DbError::TableNotFound(table.to_owned()));
        };
        let (_, value) = cursor::entry(store, &leaf, index)?;
        let meta = TableMeta::decode(&value, store.file().path(), root)?;
        let root_page = match meta.root {
            0 => None,
            root => Some(store.tree_page(root)?),
        };
        Ok(ReadTable {
            inner: &self.inner,
            meta,
            root_page,
        })
    }

    /// The content summary the snapshot's catalog stores: each table's entries and
    /// checksum, kept up to date by every commit (see [`crate::content`]).
    pub fn content(&self) -> Result<crate::content::ContentSummary, DbError> {
        let store = &self.inner.store;
        let root = self.version.catalog_root;
        let mut tables = Vec::new();
        let mut cursor = Cursor::seek(store, root, Bound::Unbounded, Direction::Forward)?;
        while let Some((leaf, index)) = cursor.next(store)? {
            let (key, value) = cursor::entry(store, &leaf, index)?;
            let meta = TableMeta::decode(&value, store.file().path(), root)?;
            tables.push(meta.content(String::from_utf8_lossy(&key).into_owned()));
        }
        Ok(crate::content::ContentSummary { tables })
    }

    /// The entries and checksum of every table together, as the snapshot's version keeps
    /// them (the header stores them at checkpoints).
    pub fn totals(&self) -> crate::content::ContentTotals {
        self.version.content
    }

    /// The names of every table, in order.
    pub fn table_names(&self) -> Result<Vec<String>, DbError> {
        let store = &self.inner.store;
        let mut names = Vec::new();
        let mut cursor = Cursor::seek(
            store,
            self.version.catalog_root,
            Bound::Unbounded,
            Direction::Forward,
        )?;
        while let Some((leaf, index)) = cursor.next(store)? {
            let (key, _) = cursor::entry(store, &leaf, index)?;
            names.push(String::from_utf8_lossy(&key).into_owned());
        }
        Ok(names)
    }
}

impl Drop for ReadTransaction {
    fn drop(&mut self) {
        self.inner.snapshots.release(self.version.number);
    }
}

/// A value of a snapshot read as a stream ([`ReadTable::value_reader`]); it implements
/// [`std::io::Read`], and [`ValueStream::skip`] and [`ValueStream::read_at`] move forward
/// without copying.
pub type ValueReader<'r> = ValueStream<&'r crate::page::PageStore>;

/// A table in a snapshot.
pub struct ReadTable<'r> {
    inner: &'r Inner,
    meta: TableMeta,
    root_page: Option<PageBytes>,
}

impl<'r> ReadTable<'r> {
    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        let store = &self.inner.store;
        let Some(root) = &self.root_page else {
            return Ok(None);
        };
        match cursor::lookup_from(store, root, key)? {
            Some((leaf, index)) => Ok(Some(cursor::entry(store, &leaf, index)?.1)),
            None => Ok(None),
        }
    }

    /// The value of `key` as a stream implementing [`std::io::Read`], without reading it
    /// whole: a long value's pages are fetched one at a time as the stream advances (a
    /// compressed one through zstd's streaming decoder). The stream reads this snapshot's
    /// pages, however long it lives.
    ///
    /// ```
    /// # use bluejet_engine::db::{Database, Options};
    /// # let directory = tempfile::tempdir().unwrap();
    /// # let db = Database::open(directory.path(), Options::default()).unwrap();
    /// let mut write = db.begin_write().unwrap();
    /// write.create_table("bodies").unwrap();
    /// write.insert("bodies", b"m1", &vec![7u8; 100_000]).unwrap();
    /// write.commit().unwrap();
    /// let read = db.begin_read().unwrap();
    /// let table = read.open_table("bodies").unwrap();
    /// let mut stream = table.value_reader(b"m1").unwrap().expect("stored");
    /// assert_eq!(stream.len(), 100_000);
    /// let mut copy = Vec::new();
    /// std::io::copy(&mut stream, &mut copy).unwrap();
    /// assert_eq!(copy, vec![7u8; 100_000]);
    /// ```
    pub fn value_reader(&self, key: &[u8]) -> Result<Option<ValueReader<'r>>, DbError> {
        let store = &self.inner.store;
        let Some(root) = &self.root_page else {
            return Ok(None);
        };
        let Some((leaf, index)) = cursor::lookup_from(store, root, key)? else {
            return Ok(None);
        };
        let stream = match NodeView::new(&leaf).value(index) {
            ValueRef::Inline(bytes) => ValueStream::inline(bytes.to_vec()),
            ValueRef::Long(long) => ValueStream::long(store, long)?,
        };
        Ok(Some(stream))
    }

    /// Reads the value of `key` from `offset` into `buf`, until `buf` is full or the value
    /// ends; returns the bytes read (0 when `offset` is at or past the end), or `None` if
    /// there is no such key.
    ///
    /// Cost: a long value stored uncompressed (every value streamed in with
    /// [`WriteTransaction::insert_from_reader`](super::WriteTransaction::insert_from_reader))
    /// is followed page by page to `offset` by each page's data length, without copying the
    /// data: one page read per page skipped (the chain is linked, not indexed). A compressed
    /// one has no map from offsets to pages: its bytes up to `offset` are decoded and
    /// discarded. For several reads in order, keep one [`ReadTable::value_reader`] instead.
    ///
    /// ```
    /// # use bluejet_engine::db::{Database, Options};
    /// # let directory = tempfile::tempdir().unwrap();
    /// # let db = Database::open(directory.path(), Options::default()).unwrap();
    /// let mut write = db.begin_write().unwrap();
    /// write.create_table("t").unwrap();
    /// write.insert("t", b"k", b"hello, world").unwrap();
    /// write.commit().unwrap();
    /// let read = db.begin_read().unwrap();
    /// let table = read.open_table("t").unwrap();
    /// let mut buf = [0u8; 5];
    /// assert_eq!(table.read_value_at(b"k", 7, &mut buf).unwrap(), Some(5));
    /// assert_eq!(&buf, b"world");
    /// assert_eq!(table.read_value_at(b"k", 99, &mut buf).unwrap(), Some(0));
    /// assert_eq!(table.read_value_at(b"none", 0, &mut buf).unwrap(), None);
    /// ```
    pub fn read_value_at(
        &self,
        key: &[u8],
        offset: u64,
        buf: &mut [u8],
    ) -> Result<Option<usize>, DbError> {
        match self.value_reader(key)? {
            Some(mut stream) => stream.read_at(offset, buf).map(Some),
            None => Ok(None),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.meta.count
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.meta.count == 0
    }

    /// Entries within `range`, ascending; `.rev()` walks them descending.
    ///
    /// ```
    /// # use bluejet_engine::db::{Database, Options};
    /// # let directory = tempfile::tempdir().unwrap();
    /// # let db = Database::open(directory.path(), Options::default()).unwrap();
    /// let mut write = db.begin_write().unwrap();
    /// write.create_table("t").unwrap();
    /// for key in [b"a", b"b", b"c"] {
    ///     write.insert("t", key, b"v").unwrap();
    /// }
    /// write.commit().unwrap();
    /// let read = db.begin_read().unwrap();
    /// let table = read.open_table("t").unwrap();
    /// let keys: Vec<Vec<u8>> = table
    ///     .range(&b"b"[..]..)
    ///     .unwrap()
    ///     .rev()
    ///     .map(|entry| entry.unwrap().0)
    ///     .collect();
    /// assert_eq!(keys, vec![b"c".to_vec(), b"b".to_vec()]);
    /// ```
    pub fn range<'k>(&self, range: impl RangeBounds<&'k [u8]>) -> Result<Range<'r>, DbError> {
        Ok(Range {
            inner: self.inner,
            root: self.root_page.clone(),
            bounds: owned_bounds(range),
            front: None,
            back: None,
            front_yielded: false,
            back_yielded: false,
            done: false,
        })
    }

    /// The entries within `range`, like [`ReadTable::range`], but without copying: each
    /// [`Entry`] borrows its key and (inline) value from the cached leaf page.
    ///
    /// ```
    /// # use bluejet_engine::db::{Database, Options};
    /// # let directory = tempfile::tempdir().unwrap();
    /// # let db = Database::open(directory.path(), Options::default()).unwrap();
    /// let mut write = db.begin_write().unwrap();
    /// write.create_table("t").unwrap();
    /// write.insert("t", b"a", b"one").unwrap();
    /// write.insert("t", b"b", b"two").unwrap();
    /// write.commit().unwrap();
    /// let read = db.begin_read().unwrap();
    /// let table = read.open_table("t").unwrap();
    /// let mut lengths = 0;
    /// for entry in table.entries(&b"a"[..]..).unwrap() {
    ///     let entry = entry.unwrap();
    ///     lengths += entry.key().len() + entry.value().unwrap().len();
    /// }
    /// assert_eq!(lengths, 8);
    /// ```
    pub fn entries<'k>(&self, range: impl RangeBounds<&'k [u8]>) -> Result<Entries<'r>, DbError> {
        Ok(Entries(self.range(range)?))
    }

    /// The first entry at or after `key`.
    pub fn seek(&self, key: &[u8]) -> Result<Option<super::KeyValue>, DbError> {
        self.range(key..)?.next().transpose()
    }
}

/// One entry of [`Entries`]: its key and value, read in place from the leaf page it holds.
pub struct Entry<'r> {
    inner: &'r Inner,
    leaf: PageBytes,
    index: usize,
}

impl Entry<'_> {
    /// The key.
    pub fn key(&self) -> &[u8] {
        NodeView::new(&self.leaf).key(self.index)
    }

    /// The value: borrowed from the page when stored inline, read (and decompressed) from its
    /// long-value pages otherwise.
    pub fn value(&self) -> Result<Cow<'_, [u8]>, DbError> {
        match NodeView::new(&self.leaf).value(self.index) {
            ValueRef::Inline(bytes) => Ok(Cow::Borrowed(bytes)),
            long => cursor::value_bytes(&self.inner.store, long).map(Cow::Owned),
        }
    }
}

/// Entries of a range without copies (see [`ReadTable::entries`]); `.rev()` walks them
/// descending. Yields an error once, then ends.
pub struct Entries<'r>(Range<'r>);

impl<'r> Iterator for Entries<'r> {
    type Item = Result<Entry<'r>, DbError>;

    fn next(&mut self) -> Option<Self::Item> {
        let inner = self.0.inner;
        let found = self.0.advance(Direction::Forward)?;
        Some(found.map(|(leaf, index)| Entry { inner, leaf, index }))
    }
}

impl DoubleEndedIterator for Entries<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let inner = self.0.inner;
        let found = self.0.advance(Direction::Backward)?;
        Some(found.map(|(leaf, index)| Entry { inner, leaf, index }))
    }
}

/// Entries of a range, read lazily from either end. Yields an error once, then ends.
pub struct Range<'r> {
    inner: &'r Inner,
    /// The table's root page (none for an empty table).
    root: Option<PageBytes>,
    bounds: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    front: Option<Cursor>,
    back: Option<Cursor>,
    front_yielded: bool,
    back_yielded: bool,
    done: bool,
}

impl Range<'_> {
    /// The next entry's leaf and index from `direction`'s end.
    fn step(&mut self, direction: Direction) -> Result<Option<(PageBytes, usize)>, DbError> {
        let store = &self.inner.store;
        let (cursor, other, bound, other_yielded) = match direction {
            Direction::Forward => (
                &mut self.front,
                &self.back,
                &self.bounds.0,
                self.back_yielded,
            ),
            Direction::Backward => (
                &mut self.back,
                &self.front,
                &self.bounds.1,
                self.front_yielded,
            ),
        };
        if cursor.is_none() {
            let Some(root) = &self.root else {
                return Ok(None);
            };
            *cursor = Some(Cursor::seek_from(
                store,
                root.clone(),
                as_ref(bound),
                direction,
            )?);
        }
        let cursor = cursor.as_mut().expect("just set");
        let Some(index) = cursor.advance(store)? else {
            return Ok(None);
        };
        let leaf = cursor
            .leaf()
            .expect("a cursor that returned an entry is in a leaf");
        let view = NodeView::new(leaf);
        let key = view.key(index);
        // The entry the other end returned last, if it has returned any: the ends stop
        // when they meet.
        let met = other
            .as_ref()
            .filter(|_| other_yielded)
            .and_then(Cursor::last_returned)
            .is_some_and(|(leaf, index)| {
                let last = NodeView::new(leaf).key(index);
                match direction {
                    Direction::Forward => key >= last,
                    Direction::Backward => key <= last,
                }
            });
        let inside = match direction {
            Direction::Forward => before_end(key, &self.bounds.1),
            Direction::Backward => after_start(key, &self.bounds.0),
        };
        if met || !inside {
            return Ok(None);
        }
        match direction {
            Direction::Forward => self.front_yielded = true,
            Direction::Backward => self.back_yielded = true,
        }
        Ok(Some((leaf.clone(), index)))
    }

    fn advance(&mut self, direction: Direction) -> Option<Result<(PageBytes, usize), DbError>> {
        if self.done {
            return None;
        }
        match self.step(direction) {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

fn as_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key),
        Bound::Excluded(key) => Bound::Excluded(key),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Range<'_> {
    fn owned(&mut self, direction: Direction) -> Option<Result<super::KeyValue, DbError>> {
        let store = &self.inner.store;
        let found = self.advance(direction)?;
        let entry = found.and_then(|(leaf, index)| {
            let view = NodeView::new(&leaf);
            let value = cursor::value_bytes(store, view.value(index))?;
            Ok((view.key(index).to_vec(), value))
        });
        // A value that cannot be read ends the range too: an error once, then the end.
        if entry.is_err() {
            self.done = true;
        }
        Some(entry)
    }
}

impl Iterator for Range<'_> {
    type Item = Result<super::KeyValue, DbError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.owned(Direction::Forward)
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.owned(Direction::Backward)
    }
}
