//! Write transactions: changes on copy-on-write pages, logged, committed with group commit.

use super::catalog::TableMeta;
use super::database::{Inner, WriterState};
use super::version::Version;
use super::DbError;
use crate::btree::node::{LongRef, Value};
use crate::btree::write::TreeWriter;
use crate::btree::{max_inline_value_bytes, max_key_bytes};
use crate::content::{entry_hash, ContentSummary, ContentTotals, EntryHasher};
use crate::log::{Durability, LogPosition, PendingRecords};
use crate::value::long::{self, MAX_VALUE_BYTES};
use crate::value::long_reader::{PageSource, ValueStream};
use crate::value::long_writer::ChainWriter;
use parking_lot::{ArcMutexGuard, RawMutex};
use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::io::Read;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Log records carry values in pieces of at most this many bytes.
const LOG_CHUNK_BYTES: usize = 256 << 10;
/// Values at least this long given to [`WriteTransaction::insert_from_reader`] are streamed;
/// shorter ones are read whole and inserted as a slice.
pub const STREAM_FROM_BYTES: u64 = 1 << 20;
/// A streamed insert appends its records to the log once this many bytes of them are
/// gathered, and hands the pages filled meanwhile to the page cache.
const SPILL_BYTES: usize = 1 << 20;

/// The one open write transaction. It sees its own changes; nothing is visible to readers
/// until it commits durably. Dropping it without `commit` aborts it.
///
/// It owns what it writes through (no borrow of the [`Database`](super::Database)), and is
/// `Send` and `'static`: an async server can move it to a blocking pool. While it is open,
/// other writers wait in [`Database::begin_write`](super::Database::begin_write).
pub struct WriteTransaction {
    inner: Arc<Inner>,
    /// The writer lock, held from begin until commit or abort.
    state: Option<ArcMutexGuard<RawMutex, WriterState>>,
    catalog_root: u64,
    tables: HashMap<String, (TableMeta, bool)>,
    log: Option<PendingRecords>,
    /// Entries and content checksum of the whole database with this transaction's changes.
    content: ContentTotals,
    changed: bool,
    /// Set when an operation failed after it had logged or changed something: the
    /// transaction can then only be rolled back.
    failed: Option<DbError>,
    /// The most bytes of long-value pages a streamed insert held at once.
    peak_streamed_pages: usize,
}

/// Where a committed transaction landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The transaction's version number (0 when it changed nothing).
    pub version: u64,
    /// The log position after its commit record.
    pub end: LogPosition,
}

impl WriteTransaction {
    pub(crate) fn begin(inner: &Arc<Inner>) -> Result<Self, DbError> {
        let mut transaction = Self::begin_unlogged(inner);
        transaction.log = Some(inner.log.writer().pending_transaction());
        Ok(transaction)
    }

    /// A transaction whose changes are not logged (recovery redoes logged ones).
    pub(crate) fn begin_unlogged(inner: &Arc<Inner>) -> Self {
        let mut state = inner.writer.lock_arc();
        let horizon = inner.snapshots.horizon();
        state.allocator.reclaim(Some(horizon));
        let catalog_root = state.committed.catalog_root;
        let content = state.committed.content;
        Self {
            inner: Arc::clone(inner),
            state: Some(state),
            catalog_root,
            tables: HashMap::default(),
            log: None,
            content,
            changed: false,
            failed: None,
            peak_streamed_pages: 0,
        }
    }

    fn state(&mut self) -> &mut WriterState {
        self.state.as_mut().expect("an open transaction")
    }

    fn tree(&mut self) -> TreeWriter<'_> {
        let state = self.state.as_mut().expect("an open transaction");
        let WriterState {
            allocator, dirty, ..
        } = &mut **state;
        TreeWriter {
            store: &self.inner.store,
            dirty,
            allocator,
        }
    }

    /// The table's catalog entry; created (and logged) when `create` is set.
    fn meta(&mut self, table: &str, create: bool) -> Result<Option<TableMeta>, DbError> {
        if let Some((meta, _)) = self.tables.get(table) {
            return Ok(Some(*meta));
        }
        let root = self.catalog_root;
        let path = self.inner.store.file().path().to_owned();
        match self.tree().get(root, table.as_bytes())? {
            Some(Value::Inline(bytes)) => {
                let meta = TableMeta::decode(&bytes, &path, root)?;
                self.tables.insert(table.to_owned(), (meta, false));
                Ok(Some(meta))
            }
            Some(Value::Long(_)) => Err(DbError::Corruption {
                path,
                page: root,
                problem: crate::page::format::PageProblem::Malformed(
                    "catalog entry stored out of line".into(),
                ),
            }),
            None if create => {
                check_key(table.as_bytes(), self.inner.store.page_size())?;
                if let Some(log) = &mut self.log {
                    log.create_table(table);
                }
                self.changed = true;
                self.tables
                    .insert(table.to_owned(), (TableMeta::default(), true));
                Ok(Some(TableMeta::default()))
            }
            None => Ok(None),
        }
    }

    fn set_meta(&mut self, table: &str, meta: TableMeta) {
        match self.tables.get_mut(table) {
            Some(entry) => *entry = (meta, true),
            None => {
                self.tables.insert(table.to_owned(), (meta, true));
            }
        }
        self.changed = true;
    }

    /// The table's catalog entry; [`DbError::TableNotFound`] if there is none (a misspelt
    /// name is an error, never a new table).
    fn existing(&mut self, table: &str) -> Result<TableMeta, DbError> {
        self.meta(table, false)?
            .ok_or_else(|| DbError::TableNotFound(table.to_owned()))
    }

    /// Creates `table` if it does not exist; returns whether it was created. Tables are
    /// created only here: every other operation on a table that does not exist fails with
    /// [`DbError::TableNotFound`], so that a misspelt name cannot silently start a new table.
    ///
    /// ```
    /// use bluejet_engine::db::{Database, DbError, Options};
    /// let directory = tempfile::tempdir().unwrap();
    /// let db = Database::open(directory.path(), Options::default()).unwrap();
    /// let mut write = db.begin_write().unwrap();
    /// assert!(write.create_table("messages").unwrap());
    /// assert!(!write.create_table("messages").unwrap()); // already there
    /// write.insert("messages", b"<a@x>", b"hello").unwrap();
    /// assert!(matches!(
    ///     write.insert("mesages", b"<a@x>", b"hello"),
    ///     Err(DbError::TableNotFound(name)) if name == "mesages"
    /// ));
    /// write.commit().unwrap();
    /// db.close().unwrap();
    /// ```
    pub fn create_table(&mut self, table: &str) -> Result<bool, DbError> {
        self.check_open()?;
        check_key(table.as_bytes(), self.inner.store.page_size())?;
        if self.meta(table, false)?.is_some() {
            return Ok(false);
        }
        let result = self.meta(table, true).map(|_| true);
        self.note_failure(result)
    }

    /// A handle on `table`; [`DbError::TableNotFound`] if it does not exist (see
    /// [`create_table`](Self::create_table)).
    pub fn open_table(&mut self, table: &str) -> Result<WriteTable<'_>, DbError> {
        self.existing(table)?;
        Ok(WriteTable {
            transaction: self,
            name: table.to_owned(),
        })
    }

    /// Inserts or replaces `key` in `table`; returns whether a value was replaced.
    /// [`DbError::TableNotFound`] if the table does not exist (see
    /// [`create_table`](Self::create_table)).
    pub fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<bool, DbError> {
        self.check_open()?;
        let meta = self.existing(table)?;
        check_key(key, self.inner.store.page_size())?;
        if value.len() as u64 > MAX_VALUE_BYTES {
            return Err(DbError::ValueTooLarge {
                length: value.len() as u64,
                limit: MAX_VALUE_BYTES,
            });
        }
        let result = self.insert_checked(table, meta, key, value);
        self.note_failure(result)
    }

    /// Inserts or replaces `key` in `table` (which must exist: [`DbError::TableNotFound`]
    /// otherwise, before anything is read) with the `length` bytes
    /// `reader` yields; returns whether a value was replaced. The value is never held whole
    /// in memory: its pieces are logged, and its pages written, as they are read, and at
    /// most about [`STREAM_FROM_BYTES`] of records and pages wait in memory (see
    /// [`WriteTransaction::buffered_peak`]). A value shorter than [`STREAM_FROM_BYTES`] is
    /// read whole and inserted as [`insert`](WriteTransaction::insert) would.
    ///
    /// Afterwards the entry is indistinguishable from one inserted as a slice: the same
    /// value read back, the same content checksum. A long value streamed is stored
    /// uncompressed, so that [`ReadTable::read_value_at`](super::ReadTable::read_value_at)
    /// reaches any offset without decoding what comes before.
    ///
    /// The length is declared up front: a reader that fails
    /// ([`DbError::ValueSource`]), ends early ([`DbError::ValueShorter`]) or yields more
    /// ([`DbError::ValueLonger`]) fails the transaction, which then commits nothing
    /// ([`DbError::TransactionFailed`] from `commit`).
    ///
    /// ```
    /// use bluejet_engine::db::{Database, Options};
    /// use std::io::Read;
    /// let directory = tempfile::tempdir().unwrap();
    /// let db = Database::open(directory.path(), Options::default()).unwrap();
    /// let attachment = std::io::repeat(b'x').take(3 << 20);
    /// let mut write = db.begin_write().unwrap();
    /// write.create_table("bodies").unwrap();
    /// write.insert_from_reader("bodies", b"m1", attachment, 3 << 20).unwrap();
    /// write.commit().unwrap();
    ///
    /// let read = db.begin_read().unwrap();
    /// let table = read.open_table("bodies").unwrap();
    /// let mut stream = table.value_reader(b"m1").unwrap().expect("stored");
    /// let mut head = [0u8; 4];
    /// stream.read_exact(&mut head).unwrap();
    /// assert_eq!(&head, b"xxxx");
    /// let mut tail = [0u8; 8];
    /// assert_eq!(table.read_value_at(b"m1", (3 << 20) - 2, &mut tail).unwrap(), Some(2));
    /// drop(read);
    /// db.close().unwrap();
    /// ```
    pub fn insert_from_reader(
        &mut self,
        table: &str,
        key: &[u8],
        reader: impl Read,
        length: u64,
    ) -> Result<bool, DbError> {
        self.check_open()?;
        check_key(key, self.inner.store.page_size())?;
        if length > MAX_VALUE_BYTES {
            return Err(DbError::ValueTooLarge {
                length,
                limit: MAX_VALUE_BYTES,
            });
        }
        // Before anything is read, whatever the length, as `insert` does.
        let meta = self.existing(table)?;
        let result = if length < STREAM_FROM_BYTES {
            read_value(reader, length)
                .and_then(|value| self.insert_checked(table, meta, key, &value))
        } else {
            self.insert_streamed(table, meta, key, reader, length)
        };
        self.note_failure(result)
    }

    /// The most bytes this transaction held in memory at once of its log records and of a
    /// streamed value's pages: a value inserted as a slice counts whole (its records hold
    /// it), a streamed one at most about twice [`STREAM_FROM_BYTES`] and one log piece.
    pub fn buffered_peak(&self) -> usize {
        let records = self.log.as_ref().map_or(0, PendingRecords::peak_len);
        records + self.peak_streamed_pages
    }

    /// Largest piece of a value in one log record. Half the largest record leaves room for
    /// the table and key beside each piece: small generations hold records smaller than the
    /// usual piece (found by the seeded tests: a value over 115 KiB failed with 128 KiB
    /// generations).
    /// An unlogged transaction (replay) reads in pieces of the usual size.
    fn log_piece_bytes(&self) -> usize {
        match self.inner.log.active() {
            Some(log) if self.log.is_some() => LOG_CHUNK_BYTES.min(log.max_record_bytes() / 2),
            _ => LOG_CHUNK_BYTES,
        }
    }

    /// Streams a long value: each piece read is hashed, logged as a PutChunk record (the
    /// pieces a slice insert logs) and copied into the value's pages; once enough records
    /// are gathered they are appended to the log and the pages filled meanwhile go to the
    /// page cache, sealed with the position of those records.
    fn insert_streamed(
        &mut self,
        table: &str,
        meta: TableMeta,
        key: &[u8],
        mut reader: impl Read,
        length: u64,
    ) -> Result<bool, DbError> {
        let page_size = self.inner.store.page_size();
        let piece_bytes = self.log_piece_bytes();
        let mut hasher = EntryHasher::new(table, key, length);
        let mut chain = {
            let WriterState {
                allocator, dirty, ..
            } = self.state();
            ChainWriter::new(length, page_size, &mut || dirty.allocate(allocator))
        };
        let mut piece = vec![0u8; piece_bytes];
        let mut offset = 0;
        while offset < length {
            let wanted = usize::try_from((length - offset).min(piece_bytes as u64))
                .expect("at most piece_bytes, a usize");
            let piece = &mut piece[..wanted];
            read_piece(&mut reader, piece, offset, length)?;
            hasher.update(piece);
            if let Some(log) = &mut self.log {
                log.put_piece(table, key, offset, length, piece);
            }
            let WriterState {
                allocator, dirty, ..
            } = self.state();
            chain.write(piece, &mut || dirty.allocate(allocator));
            offset += wanted as u64;
            self.peak_streamed_pages = self.peak_streamed_pages.max(chain.buffered_bytes());
            let spill_due = self
                .log
                .as_ref()
                .is_some_and(|log| log.encoded_len() >= SPILL_BYTES);
            if spill_due {
                self.spill(chain.take_full())?;
            }
        }
        check_ended(&mut reader, length)?;
        let (first_page, pages) = chain.finish();
        self.state().dirty.long.extend(pages);
        let stored = Value::Long(LongRef {
            first_page,
            length,
            stored: length,
            compressed: false,
        });
        self.place(table, key, meta, stored, hasher.finish())
    }

    /// Appends the records gathered so far to the log (through the commit gate, as a commit
    /// would: a node that may not commit appends nothing), then stages `pages`, sealed with
    /// the position after those records, in the page cache.
    fn spill(&mut self, pages: Vec<(u64, Vec<u8>)>) -> Result<(), DbError> {
        let inner = Arc::clone(&self.inner);
        let gate = &inner.options.commit_gate;
        gate.admit().map_err(DbError::CommitRefused)?;
        // A proof point in every generation records begin in, as before a commit.
        let appended = self.prove_generation().and_then(|()| {
            let log = self.log.as_mut().expect("a logged transaction");
            log.spill(inner.log.writer()).map_err(DbError::from)
        });
        gate.appended();
        let end = appended.inspect_err(|error| {
            let too_large = matches!(error, DbError::Log(crate::LogError::RecordTooLarge { .. }));
            if matches!(error, DbError::Log(_)) && !too_large {
                inner.poison(error);
            }
        })?;
        for (number, mut page) in pages {
            long::seal(&mut page, number, end);
            self.state().dirty.staged.push(number);
            inner.store.stage_page(number, page)?;
        }
        Ok(())
    }

    /// A failed change may have logged or copied part of itself: the transaction must then
    /// not commit.
    fn note_failure<T>(&mut self, result: Result<T, DbError>) -> Result<T, DbError> {
        if let Err(error) = &result {
            self.failed.get_or_insert_with(|| error.clone());
        }
        result
    }

    fn check_open(&self) -> Result<(), DbError> {
        match &self.failed {
            Some(cause) => Err(DbError::TransactionFailed(Box::new(cause.clone()))),
            None => Ok(()),
        }
    }

    /// Inserts into `table`, whose catalog entry `meta` the caller looked up.
    fn insert_checked(
        &mut self,
        table: &str,
        meta: TableMeta,
        key: &[u8],
        value: &[u8],
    ) -> Result<bool, DbError> {
        let piece_bytes = self.log_piece_bytes();
        if let Some(log) = &mut self.log {
            log.put_chunked(table, key, value, piece_bytes);
        }
        let hash = entry_hash(table, key, value);
        let stored = self.store_value(value);
        self.place(table, key, meta, stored, hash)
    }

    /// Puts a stored value (its pages written) into `table`'s tree and counts the entry's
    /// `hash` in; returns whether a value was replaced.
    fn place(
        &mut self,
        table: &str,
        key: &[u8],
        mut meta: TableMeta,
        stored: Value,
        hash: u64,
    ) -> Result<bool, DbError> {
        let (root, replaced) = self.tree().insert(meta.root, key, stored)?;
        meta.root = root;
        let was_replaced = match replaced {
            Some(old) => {
                let old_hash = self.stored_hash(table, key, &old)?;
                self.free_value(old)?;
                self.count_out(&mut meta, old_hash);
                true
            }
            None => false,
        };
        self.count_in(&mut meta, hash);
        self.set_meta(table, meta);
        Ok(was_replaced)
    }

    /// Adds an entry's hash to its table's and the database's content.
    fn count_in(&mut self, meta: &mut TableMeta, hash: u64) {
        meta.count += 1;
        meta.checksum = meta.checksum.wrapping_add(hash);
        self.content = self.content.plus(1, hash);
    }

    /// Takes a removed or replaced entry's hash out of its table's and the database's content.
    fn count_out(&mut self, meta: &mut TableMeta, hash: u64) {
        debug_assert!(meta.count > 0, "an entry out of an empty table");
        meta.count = meta.count.saturating_sub(1);
        meta.checksum = meta.checksum.wrapping_sub(hash);
        self.content = self.content.minus(1, hash);
    }

    /// The hash of the entry `key` → `value` as the tree holds it (a long value is read).
    /// A long value is hashed page by page, never held whole.
    fn stored_hash(&self, table: &str, key: &[u8], value: &Value) -> Result<u64, DbError> {
        let long = match value {
            Value::Inline(bytes) => return Ok(entry_hash(table, key, bytes)),
            Value::Long(long) => *long,
        };
        let mut stream = ValueStream::long(self.own_pages(), long)?;
        let mut hasher = EntryHasher::new(table, key, long.length);
        let mut buffer =
            vec![0u8; usize::try_from(long.length).map_or(64 << 10, |length| length.min(64 << 10))];
        loop {
            let read = stream.read_some(&mut buffer)?;
            if read == 0 {
                return Ok(hasher.finish());
            }
            hasher.update(&buffer[..read]);
        }
    }

    /// The pages as this transaction sees them, for a [`ValueStream`].
    fn own_pages(&self) -> OwnPages<'_> {
        OwnPages(self)
    }

    /// A value as the leaf will hold it: inline, or written to long-value pages.
    fn store_value(&mut self, value: &[u8]) -> Value {
        let page_size = self.inner.store.page_size();
        if value.len() <= max_inline_value_bytes(page_size) {
            return Value::Inline(value.to_vec().into());
        }
        let (stored, compressed) = long::prepare(value, self.inner.options.compression);
        let state = self.state();
        let WriterState {
            allocator, dirty, ..
        } = state;
        let (first_page, pages) =
            long::format_pages(&stored, page_size, &mut || dirty.allocate(allocator));
        dirty.long.extend(pages);
        Value::Long(LongRef {
            first_page,
            length: value.len() as u64,
            stored: stored.len() as u64,
            compressed,
        })
    }

    /// Stops using a replaced or removed value's pages.
    fn free_value(&mut self, value: Value) -> Result<(), DbError> {
        let Value::Long(long) = value else {
            return Ok(());
        };
        let pages = self.long_chain(long)?;
        let WriterState {
            allocator, dirty, ..
        } = self.state();
        for page in pages {
            dirty.free(allocator, page);
        }
        Ok(())
    }

    /// A long-value page as this transaction sees it: its own unsealed page, else committed.
    fn long_page(&self, page: u64) -> Result<Cow<'_, [u8]>, DbError> {
        let state = self.state.as_ref().expect("an open transaction");
        match state.dirty.long.get(&page) {
            Some(bytes) => Ok(Cow::Borrowed(bytes.as_slice())),
            None => Ok(Cow::Owned(self.inner.store.page(page)?.to_vec())),
        }
    }

    fn long_chain(&self, long: LongRef) -> Result<Vec<u64>, DbError> {
        let path = self.inner.store.file().path();
        long::chain(long, &|page| self.long_page(page), path)
    }

    fn value_bytes(&self, value: Value) -> Result<Vec<u8>, DbError> {
        match value {
            Value::Inline(bytes) => Ok(bytes.into_vec()),
            Value::Long(long) => {
                let path = self.inner.store.file().path();
                long::read(long, &|page| self.long_page(page), path)
            }
        }
    }

    /// The value of `key` in `table`, as this transaction sees it.
    pub fn get(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        let meta = self.existing(table)?;
        match self.tree().get(meta.root, key)? {
            Some(value) => self.value_bytes(value).map(Some),
            None => Ok(None),
        }
    }

    /// Removes `key` from `table`; returns whether it was there.
    pub fn remove(&mut self, table: &str, key: &[u8]) -> Result<bool, DbError> {
        self.check_open()?;
        let meta = self.existing(table)?;
        let result = self.remove_checked(table, meta, key);
        self.note_failure(result)
    }

    fn remove_checked(
        &mut self,
        table: &str,
        mut meta: TableMeta,
        key: &[u8],
    ) -> Result<bool, DbError> {
        let (root, removed) = self.tree().remove(meta.root, key)?;
        let Some(removed) = removed else {
            return Ok(false);
        };
        if let Some(log) = &mut self.log {
            log.delete(table, key);
        }
        let hash = self.stored_hash(table, key, &removed)?;
        self.free_value(removed)?;
        meta.root = root;
        self.count_out(&mut meta, hash);
        self.set_meta(table, meta);
        Ok(true)
    }

    /// The entries of `table` within `range`, in key order (use `.rev()` for descending).
    pub fn range<'k>(
        &mut self,
        table: &str,
        range: impl RangeBounds<&'k [u8]>,
    ) -> Result<std::vec::IntoIter<super::KeyValue>, DbError> {
        let meta = self.existing(table)?;
        let bounds = owned_bounds(range);
        let entries = self.tree().collect(meta.root, &bounds)?;
        let mut values = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            values.push((key, self.value_bytes(value)?));
        }
        Ok(values.into_iter())
    }

    /// Entries in `table`.
    pub fn len(&mut self, table: &str) -> Result<u64, DbError> {
        Ok(self.existing(table)?.count)
    }

    /// Whether `table` is empty.
    pub fn is_empty(&mut self, table: &str) -> Result<bool, DbError> {
        Ok(self.len(table)? == 0)
    }

    /// Removes `table` and everything in it; returns whether it existed.
    pub fn drop_table(&mut self, table: &str) -> Result<bool, DbError> {
        self.check_open()?;
        let result = self.drop_table_checked(table);
        self.note_failure(result)
    }

    fn drop_table_checked(&mut self, table: &str) -> Result<bool, DbError> {
        let Some(meta) = self.meta(table, false)? else {
            return Ok(false);
        };
        let mut long_values = Vec::new();
        let pages = self.tree().pages(meta.root, &mut long_values)?;
        for long in long_values {
            self.free_value(Value::Long(long))?;
        }
        let WriterState {
            allocator, dirty, ..
        } = self.state();
        for page in pages {
            dirty.free(allocator, page);
        }
        if let Some(log) = &mut self.log {
            log.drop_table(table);
        }
        self.tables.remove(table);
        self.content = self.content.minus(meta.count, meta.checksum);
        let root = self.catalog_root;
        let (root, _) = self.tree().remove(root, table.as_bytes())?;
        self.catalog_root = root;
        self.changed = true;
        Ok(true)
    }

    /// Ends a transaction that changed nothing, with the commit gate's word that this node
    /// may acknowledge now, once everything logged so far is durable: what the transaction
    /// read is the owning node's durable state.
    /// A cluster's duplicate check needs it: a node whose lease ended must not answer
    /// "already stored" for a record in a log tail the new owner may lack. Refused like a
    /// commit ([`DbError::CommitRefused`], [`DbError::NotAcknowledged`]).
    ///
    /// ```
    /// use bluejet_engine::db::{Database, Options};
    /// let directory = tempfile::tempdir().unwrap();
    /// let db = Database::open(directory.path(), Options::default()).unwrap();
    /// let read = db.begin_write().unwrap();
    /// read.confirm_unchanged().unwrap();
    /// db.close().unwrap();
    /// ```
    pub fn confirm_unchanged(mut self) -> Result<(), DbError> {
        assert!(!self.changed, "confirm_unchanged after a change: commit it");
        let checked = self.check_open().and_then(|()| {
            let gate = &self.inner.options.commit_gate;
            gate.admit().map_err(DbError::CommitRefused)?;
            gate.appended();
            // What was read may come from a commit made visible while it waits for its
            // sync (found by an adversarial test: a duplicate answered, then the first
            // delivery failed on EIO): everything logged so far must be durable first.
            let end = self.inner.log.writer().end_position();
            self.inner.log.wait_durable(end)?;
            gate.confirm(end).map_err(DbError::NotAcknowledged)
        });
        self.abort_in_memory();
        checked
    }

    /// Commits with the database's default durability.
    pub fn commit(self) -> Result<Committed, DbError> {
        let durability = self.inner.options.durability;
        self.commit_with(durability)
    }

    /// Commits: the records reach the log (and, if durable, the disk) before this returns;
    /// concurrent committers share log flushes.
    pub fn commit_with(mut self, durability: Durability) -> Result<Committed, DbError> {
        let started = Instant::now();
        if let Err(error) = self.check_open() {
            self.abort_in_memory();
            return Err(error);
        }
        if !self.changed {
            self.abort_in_memory();
            return Ok(Committed {
                version: 0,
                end: self.inner.log.writer().end_position(),
            });
        }
        // A count of its own on the database, so that the gate stays borrowed while the
        // transaction is consumed step by step.
        let inner = Arc::clone(&self.inner);
        let gate = &inner.options.commit_gate;
        if let Err(reason) = gate.admit() {
            self.abort_in_memory();
            return Err(DbError::CommitRefused(reason));
        }
        // The gate counts this commit in flight until its records are in the log (or it
        // failed): a pause or a fence waits for it before closing the generation.
        let appended = self
            .prove_generation()
            .and_then(|()| self.write_catalog())
            .and_then(|()| {
                let records = self.log.take().expect("a logged transaction");
                records
                    .commit(self.inner.log.writer(), Durability::Lazy)
                    .map_err(DbError::from)
            });
        gate.appended();
        let end = match appended {
            Ok(info) => info.end,
            Err(error) => {
                self.abort_in_memory();
                let logged = matches!(error, DbError::Log(_));
                let too_large =
                    matches!(error, DbError::Log(crate::LogError::RecordTooLarge { .. }));
                if logged && !too_large {
                    self.inner.poison(&error);
                }
                return Err(error);
            }
        };
        let version = self.install(end)?;
        if durability == Durability::Durable {
            if let Err(error) = self.inner.log.wait_durable(end) {
                let error = DbError::from(error);
                self.inner.poison(&error);
                return Err(error);
            }
            // The commit is durable from here on: a failure to note the generation or to
            // checkpoint poisons the database (it refuses further writes) but does not make
            // this commit an error, which a caller might retry.
            if let Err(error) = self.inner.require_generation(end.generation) {
                tracing::error!(%error, "a durable commit's generation was not noted");
            }
        }
        self.inner.snapshots.publish(Arc::clone(&version));
        if let Err(error) = self.inner.after_commit(end) {
            tracing::error!(%error, "after a commit");
        }
        // Fencing after the fact: a commit that became durable after the node's lease may
        // have ended is not acknowledged (its records stay in this node's log).
        if let Err(reason) = gate.confirm(end) {
            return Err(DbError::NotAcknowledged(reason));
        }
        self.inner.latencies.commit.record(started.elapsed());
        Ok(Committed {
            version: version.number,
            end,
        })
    }

    /// Commits a transaction redone from the log, ending at `end`.
    pub(crate) fn commit_replayed(mut self, end: LogPosition) -> Result<(), DbError> {
        if self.changed {
            self.write_catalog()?;
            let version = self.install(end)?;
            self.inner.snapshots.publish(version);
        }
        Ok(())
    }

    /// Before the first commit in a generation that holds no proof record yet, appends one
    /// with the committed content (this transaction's changes not included): every
    /// generation a commit begins in carries a proof point for replay to check.
    fn prove_generation(&mut self) -> Result<(), DbError> {
        let generation = self.inner.log.writer().current_generation();
        if self.state().proved_generation == generation {
            return Ok(());
        }
        let committed_root = self.state().committed.catalog_root;
        let summary = self.catalog_content(committed_root, false)?;
        debug_assert_eq!(summary.totals(), self.state().committed.content);
        let at = self.inner.log.writer().append_proof(&summary)?;
        self.state().proved_generation = at.generation;
        Ok(())
    }

    /// The content as this transaction sees it (its own changes included): what a replay
    /// compares with a proof record.
    pub(crate) fn content(&mut self) -> Result<ContentSummary, DbError> {
        self.catalog_content(self.catalog_root, true)
    }

    /// The content summary of the catalog rooted at `root`, with this transaction's
    /// changed tables over it when `overlay` is set.
    fn catalog_content(&mut self, root: u64, overlay: bool) -> Result<ContentSummary, DbError> {
        let path = self.inner.store.file().path().to_owned();
        let mut tables = std::collections::BTreeMap::new();
        for (name, value) in self
            .tree()
            .collect(root, &(Bound::Unbounded, Bound::Unbounded))?
        {
            let Value::Inline(bytes) = value else {
                return Err(DbError::Corruption {
                    path,
                    page: root,
                    problem: crate::page::format::PageProblem::Malformed(
                        "catalog entry stored out of line".into(),
                    ),
                });
            };
            let name = String::from_utf8_lossy(&name).into_owned();
            tables.insert(name, TableMeta::decode(&bytes, &path, root)?);
        }
        if overlay {
            for (name, (meta, _)) in &self.tables {
                tables.insert(name.clone(), *meta);
            }
        }
        let tables = tables
            .into_iter()
            .map(|(name, meta)| meta.content(name))
            .collect();
        Ok(ContentSummary { tables })
    }

    /// Repacks and numbers each changed table's tree, then writes the changed catalog
    /// entries into the catalog tree and numbers it.
    fn write_catalog(&mut self) -> Result<(), DbError> {
        let mut changed: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, (_, changed))| *changed)
            .map(|(name, _)| name.clone())
            .collect();
        changed.sort();
        for name in &changed {
            let root = self.tables[name].0.root;
            self.tree().repack(root);
            let WriterState {
                allocator, dirty, ..
            } = self.state();
            let root = dirty.assign(allocator, root);
            self.tables.get_mut(name).expect("a changed table").0.root = root;
        }
        for name in changed {
            let meta = self.tables[&name].0;
            let root = self.catalog_root;
            let (root, _) =
                self.tree()
                    .insert(root, name.as_bytes(), Value::Inline(meta.encode().into()))?;
            self.catalog_root = root;
        }
        let root = self.catalog_root;
        let WriterState {
            allocator, dirty, ..
        } = self.state();
        self.catalog_root = dirty.assign(allocator, root);
        Ok(())
    }

    /// Seals the changed pages with `end`, hands them to the cache and makes the new version
    /// the committed one; releases the writer lock.
    fn install(&mut self, end: LogPosition) -> Result<Arc<Version>, DbError> {
        let inner = &*self.inner;
        let catalog_root = self.catalog_root;
        let mut state = self.state.take().expect("an open transaction");
        let version = state.committed.number + 1;
        let result = seal_pages(inner, &mut state, end);
        let retired = std::mem::take(&mut state.dirty.retired);
        for page in retired {
            state.allocator.retire(version, page);
        }
        state.dirty.allocated.clear();
        let committed = Arc::new(Version {
            number: version,
            catalog_root,
            end,
            content: self.content,
        });
        state.committed = Arc::clone(&committed);
        drop(state);
        inner.commits.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = result {
            inner.poison(&error);
            return Err(error);
        }
        Ok(committed)
    }

    /// Aborts: nothing of the transaction remains.
    pub fn abort(mut self) {
        self.abort_in_memory();
    }

    fn abort_in_memory(&mut self) {
        self.log_rollback();
        if let Some(mut state) = self.state.take() {
            let WriterState {
                allocator, dirty, ..
            } = &mut *state;
            for page in dirty.take_unkept_staged(true) {
                self.inner.store.discard(page);
            }
            dirty.abort(allocator);
        }
    }

    /// Ends the log's view of a transaction that does not commit: a Rollback record if some
    /// of its records were already appended (through the gate; if the gate refuses, or the
    /// append fails, replay still drops the transaction, which has no commit record and is
    /// ended by the next writer's Begin or session's Start).
    fn log_rollback(&mut self) {
        let Some(records) = self.log.take() else {
            return;
        };
        if !records.is_spilled() {
            return;
        }
        let gate = &self.inner.options.commit_gate;
        if gate.admit().is_ok() {
            // Ignored on purpose: see above; a failed append has poisoned the log already.
            if let Err(error) = records.abandon(self.inner.log.writer()) {
                tracing::warn!(%error, "abandoning spilled records");
            }
            gate.appended();
        }
    }
}

impl Drop for WriteTransaction {
    fn drop(&mut self) {
        self.abort_in_memory();
    }
}

fn seal_pages(inner: &Inner, state: &mut WriterState, end: LogPosition) -> Result<(), DbError> {
    let mut first_error = None;
    debug_assert!(
        state.dirty.nodes.is_empty(),
        "a changed node outside every tree"
    );
    state.dirty.nodes.clear();
    let assigned = std::mem::take(&mut state.dirty.assigned);
    for (number, node) in &assigned {
        let page = node.encode_into(inner.store.blank_page(), *number, end);
        if let Err(error) = inner.store.commit_page(*number, page) {
            first_error.get_or_insert(error);
        }
    }
    state.dirty.keep_recent(end, assigned);
    for page in state.dirty.take_unkept_staged(false) {
        inner.store.discard(page);
    }
    for (number, mut page) in state.dirty.long.drain() {
        long::seal(&mut page, number, end);
        if let Err(error) = inner.store.commit_page(number, page) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn check_key(key: &[u8], page_size: usize) -> Result<(), DbError> {
    let limit = max_key_bytes(page_size);
    if key.len() > limit {
        return Err(DbError::KeyTooLarge {
            length: key.len(),
            limit,
        });
    }
    Ok(())
}

/// Owned copies of borrowed range bounds.
pub fn owned_bounds<'k>(range: impl RangeBounds<&'k [u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let own = |bound: Bound<&&[u8]>| match bound {
        Bound::Included(key) => Bound::Included(key.to_vec()),
        Bound::Excluded(key) => Bound::Excluded(key.to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (own(range.start_bound()), own(range.end_bound()))
}

/// A write transaction's pages for a [`ValueStream`]: its own unsealed ones, else the store's.
struct OwnPages<'t>(&'t WriteTransaction);

impl PageSource for OwnPages<'_> {
    fn long_page(&self, number: u64) -> Result<crate::page::cache::PageBytes, DbError> {
        let state = self.0.state.as_ref().expect("an open transaction");
        match state.dirty.long.get(&number) {
            Some(bytes) => Ok(bytes.as_slice().into()),
            None => self.0.inner.store.page(number),
        }
    }

    fn path(&self) -> &std::path::Path {
        self.0.inner.store.file().path()
    }
}

/// Reads a value of `length` bytes whole, and checks that nothing follows.
fn read_value(mut reader: impl Read, length: u64) -> Result<Vec<u8>, DbError> {
    let mut value = vec![
        0u8;
        usize::try_from(length)
            .expect("a value's length fits usize: at most MAX_VALUE_BYTES")
    ];
    read_piece(&mut reader, &mut value, 0, length)?;
    check_ended(&mut reader, length)?;
    Ok(value)
}

/// Fills `piece`, the bytes of a value of `total` bytes from `offset`, from `reader`.
fn read_piece(
    reader: &mut impl Read,
    piece: &mut [u8],
    offset: u64,
    total: u64,
) -> Result<(), DbError> {
    let mut filled = 0;
    while filled < piece.len() {
        match reader.read(&mut piece[filled..]) {
            Ok(0) => {
                return Err(DbError::ValueShorter {
                    declared: total,
                    supplied: offset + filled as u64,
                })
            }
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(DbError::ValueSource(Arc::new(error))),
        }
    }
    Ok(())
}

/// Checks that a reader that gave the `declared` bytes has nothing more.
fn check_ended(reader: &mut impl Read, declared: u64) -> Result<(), DbError> {
    let mut probe = [0u8; 1];
    loop {
        match reader.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(DbError::ValueLonger { declared }),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(DbError::ValueSource(Arc::new(error))),
        }
    }
}

/// A table inside a write transaction.
pub struct WriteTable<'t> {
    transaction: &'t mut WriteTransaction,
    name: String,
}

impl WriteTable<'_> {
    /// Inserts or replaces; returns whether a value was replaced.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<bool, DbError> {
        self.transaction.insert(&self.name, key, value)
    }

    /// Inserts or replaces with the `length` bytes `reader` yields (see
    /// [`WriteTransaction::insert_from_reader`]).
    pub fn insert_from_reader(
        &mut self,
        key: &[u8],
        reader: impl Read,
        length: u64,
    ) -> Result<bool, DbError> {
        self.transaction
            .insert_from_reader(&self.name, key, reader, length)
    }

    /// The value of `key`.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        self.transaction.get(&self.name, key)
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &[u8]) -> Result<bool, DbError> {
        self.transaction.remove(&self.name, key)
    }

    /// Entries within `range`, in key order.
    pub fn range<'k>(
        &mut self,
        range: impl RangeBounds<&'k [u8]>,
    ) -> Result<std::vec::IntoIter<super::KeyValue>, DbError> {
        self.transaction.range(&self.name, range)
    }

    /// Number of entries.
    pub fn len(&mut self) -> Result<u64, DbError> {
        self.transaction.len(&self.name)
    }

    /// Whether the table is empty.
    pub fn is_empty(&mut self) -> Result<bool, DbError> {
        Ok(self.len()? == 0)
    }
}
