//! A passive copy: a database kept up to date by replaying closed generations shipped from
//! an active database's log, through the same redo path as crash recovery.
//!
//! The passive's file holds exactly the state at its header's checkpoint, like an active
//! database's; the checkpoint is the end of the last transaction replayed when it was taken.
//! Reopening after a crash resumes reading there, so every committed transaction of the
//! shipped stream is applied exactly once, in log order. Its header stays `DirtyShutdown`
//! (it always needs the shipped log), with the active's stream signature and timeline, so
//! `Database::open` refuses it for want of a log instead of starting a new stream over it.

use super::checkpoint::{self, CheckpointReport};
use super::database::Inner;
use super::log_link::{LogLink, PassiveLog};
use super::open::{assemble, load_allocator, open_file};
use super::read::ReadTransaction;
use super::recovery::{Batch, Gatherer, ReplayReport};
use super::write::WriteTransaction;
use super::{DbError, KeyValue, Options, DATABASE_FILE_NAME};
use crate::file::OwnershipLock;
use crate::log::directory::{path_of, read_image, LogDirectory};
use crate::log::record::read_record;
use crate::log::scan::{scan, ScanMode};
use crate::log::verify::{check_shipped, ShippedExpectation};
use crate::log::MAX_GENERATION_BYTES;
use crate::log::{GenerationHeader, LogPosition, LogRecord, StreamSignature};
use crate::page::{DbHeader, DbState, PageStore, WriteAhead};
use crate::LogError;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Where a passive copy's replay begins: the stream it follows and the position its
/// content corresponds to (a seed's snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassiveOrigin {
    /// The active's log stream.
    pub signature: StreamSignature,
    /// The active's timeline at that position.
    pub timeline: u64,
    /// The log position the content corresponds to: replay starts here.
    pub position: LogPosition,
}

/// What replaying (part of) one generation did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GenerationReplay {
    /// The generation.
    pub generation: u32,
    /// Its timeline.
    pub timeline: u64,
    /// When the generation was started on the active (µs since the Unix epoch).
    pub created_micros: u64,
    /// Records read, transactions applied and dropped.
    pub report: ReplayReport,
    /// The end of the last transaction applied so far (the passive's content position).
    pub replayed: LogPosition,
    /// Whether the generation was read to its end (false when stopped at `until`).
    pub complete: bool,
}

/// A passive copy of an active database.
///
/// ```
/// use bluejet_engine::db::{Database, Options, PassiveDatabase, PassiveOrigin};
/// use bluejet_engine::LogPosition;
/// let active_dir = tempfile::tempdir().unwrap();
/// let passive_dir = tempfile::tempdir().unwrap();
/// let active = Database::open(active_dir.path(), Options::default()).unwrap();
/// // An empty passive copy of the active's stream from its first generation.
/// let origin = PassiveOrigin {
///     signature: active.log().signature(),
///     timeline: 1,
///     position: LogPosition::new(1, 0),
/// };
/// let passive =
///     PassiveDatabase::create(passive_dir.path(), active_dir.path(), Options::default(), origin)
///         .unwrap();
/// let mut write = active.begin_write().unwrap();
/// write.create_table("folders").unwrap();
/// write.insert("folders", b"inbox", b"3 messages").unwrap();
/// write.commit().unwrap();
/// active.log().roll().unwrap(); // closes generation 1
/// passive.replay_generation(1, None).unwrap();
/// let read = passive.begin_read().unwrap();
/// let folders = read.open_table("folders").unwrap();
/// assert_eq!(folders.get(b"inbox").unwrap().as_deref(), Some(&b"3 messages"[..]));
/// ```
pub struct PassiveDatabase {
    inner: Arc<Inner>,
    log_directory: PathBuf,
    cursor: Mutex<ReplayCursor>,
    recount: Mutex<RecountSchedule>,
}

/// How often replay recounts every entry at a proof point (a scrub of the copy).
#[derive(Clone, Copy, Debug, Default)]
struct RecountSchedule {
    /// The least time between two recounts (`None`: never).
    every: Option<std::time::Duration>,
    /// When the last one ran, or the copy was opened (monotonic): the first recount comes
    /// one interval after the open, not at once, so that a copy reopened or seeded with a
    /// backlog to replay is not held up by a read of the whole file first.
    last: Option<std::time::Instant>,
}

impl RecountSchedule {
    fn due(&self) -> bool {
        match (self.every, self.last) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(every), Some(last)) => last.elapsed() >= every,
        }
    }
}

/// Where replay stands between generations.
struct ReplayCursor {
    /// A transaction begun and not yet committed continues in the next generation.
    gatherer: Gatherer,
    /// Where the next record is read.
    next: LogPosition,
    /// The header and digest of the generation before `next`'s, which it must chain to.
    previous: Option<(GenerationHeader, u32)>,
}

impl PassiveDatabase {
    /// Creates an empty passive copy in `directory` that replays, from `origin`, the
    /// generations found in `log_directory`. Fails if a database file is already there.
    pub fn create(
        directory: &Path,
        log_directory: &Path,
        options: Options,
        origin: PassiveOrigin,
    ) -> Result<Self, DbError> {
        let owner = super::owner::lock_directory(options.log.file_system.as_ref(), directory)?;
        Self::create_owned(owner, directory, log_directory, options, origin)
    }

    /// [`create`](Self::create) with the directory's ownership lock already taken (by
    /// [`lock_directory`](super::lock_directory)), for a caller that must hold it while it
    /// clears the directory first.
    pub fn create_owned(
        owner: OwnershipLock,
        directory: &Path,
        log_directory: &Path,
        options: Options,
        origin: PassiveOrigin,
    ) -> Result<Self, DbError> {
        let path = directory.join(DATABASE_FILE_NAME);
        if options.log.file_system.exists(&path) {
            return Err(DbError::InvalidOptions(format!(
                "{} already exists: a passive copy is created only where there is none",
                path.display()
            )));
        }
        let (file, mut read) = open_file(directory, &options)?;
        let header = &mut read.header;
        header.state = DbState::DirtyShutdown;
        header.log_signature = origin.signature;
        header.timeline = origin.timeline;
        header.checkpoint = origin.position;
        header.last_consistent = origin.position;
        header.log_required = (origin.position.generation, origin.position.generation);
        let passive = Self::assemble(directory, log_directory, options, file, read, owner)?;
        checkpoint::run(&passive.inner, DbState::DirtyShutdown)?;
        Ok(passive)
    }

    /// Opens the passive copy in `directory`; replay resumes at its checkpoint. Like
    /// [`Database::open`](super::Database::open), it holds the directory's ownership lock
    /// until closed or dropped, and fails with [`DbError::InUse`] while another holds it.
    pub fn open(directory: &Path, log_directory: &Path, options: Options) -> Result<Self, DbError> {
        let path = directory.join(DATABASE_FILE_NAME);
        if !options.log.file_system.exists(&path) {
            return Err(DbError::io(
                &path,
                "opening the passive copy",
                std::io::Error::new(std::io::ErrorKind::NotFound, "no database file"),
            ));
        }
        let owner = super::owner::lock_directory(options.log.file_system.as_ref(), directory)?;
        let (file, read) = open_file(directory, &options)?;
        // A cleanly closed active database may rejoin as a passive copy of its stream: its
        // header still names the stream, and its checkpoint is where it ended.
        let resumable = matches!(
            read.header.state,
            DbState::DirtyShutdown | DbState::CleanShutdown
        );
        if !resumable || read.header.log_signature.id == [0; 16] {
            return Err(DbError::InvalidOptions(format!(
                "{} is not a passive copy (state {:?})",
                path.display(),
                read.header.state
            )));
        }
        Self::assemble(directory, log_directory, options, file, read, owner)
    }

    fn assemble(
        directory: &Path,
        log_directory: &Path,
        options: Options,
        file: crate::page::file::DatabaseFile,
        read: crate::page::db_header::HeaderRead,
        owner: OwnershipLock,
    ) -> Result<Self, DbError> {
        let header = read.header.clone();
        let fs = options.log.file_system.as_ref();
        let base = options.log.base_name;
        if fs.exists(log_directory) {
            LogDirectory::list(fs, log_directory, base)?.reread_from_device(
                fs,
                log_directory,
                base,
            )?;
        }
        let allocator = load_allocator(&file, &header)?;
        let store = PageStore::new(file, options.cache_bytes, WriteAhead::Replayed);
        let link = LogLink::Passive(PassiveLog {
            signature: header.log_signature,
            timeline: AtomicU64::new(header.timeline),
            generation_bytes: AtomicU64::new(options.log.generation_bytes),
            newest_generation: AtomicU32::new(header.log_required.1),
        });
        let inner = Arc::new(assemble(
            directory, options, store, link, read, allocator, owner,
        ));
        let previous = read_previous(&inner, log_directory, header.checkpoint.generation);
        Ok(Self {
            inner,
            recount: Mutex::new(RecountSchedule {
                every: None,
                last: Some(std::time::Instant::now()),
            }),
            log_directory: log_directory.to_owned(),
            cursor: Mutex::new(ReplayCursor {
                gatherer: Gatherer::default(),
                next: header.checkpoint,
                previous,
            }),
        })
    }

    /// The next generation to replay.
    pub fn next_generation(&self) -> u32 {
        self.cursor.lock().next.generation
    }

    /// Where replay reads next (the start of a generation, or a point inside one when a
    /// replay stopped early or a transaction spans generations at open).
    pub fn next_position(&self) -> LogPosition {
        self.cursor.lock().next
    }

    /// The end of the last transaction replayed: the content of the copy is the active's at
    /// this log position.
    pub fn replayed(&self) -> LogPosition {
        self.inner.snapshots.published().end
    }

    /// The stream the copy follows.
    pub fn signature(&self) -> StreamSignature {
        self.inner.log.signature()
    }

    /// The timeline of the newest generation replayed.
    pub fn timeline(&self) -> u64 {
        self.inner.log.timeline()
    }

    /// The directory of the copy's file.
    pub fn directory(&self) -> &Path {
        &self.inner.directory
    }

    /// The directory the shipped generations are read from.
    pub fn log_directory(&self) -> &Path {
        &self.log_directory
    }

    /// The header as last written.
    pub fn header(&self) -> DbHeader {
        self.inner.header.lock().header.clone()
    }

    /// Replays generation `generation`, which must be the next one, from the log directory.
    /// With `until`, stops at the first transaction boundary at or after it (the rest of the
    /// generation is read by the next call). A generation of another stream, of an
    /// older timeline, or not chaining to the previous one is refused and nothing of it is
    /// applied.
    pub fn replay_generation(
        &self,
        generation: u32,
        until: Option<LogPosition>,
    ) -> Result<GenerationReplay, DbError> {
        self.inner.check_usable()?;
        let mut cursor = self.cursor.lock();
        if generation != cursor.next.generation {
            return Err(DbError::InvalidOptions(format!(
                "generation {generation} replayed out of order: generation {} is next",
                cursor.next.generation
            )));
        }
        let path = path_of(
            &self.log_directory,
            &self.inner.options.log.base_name.closed(generation),
        );
        let started = Instant::now();
        let (header, stream, digest) = self.read_generation(&path, generation, &cursor)?;
        let result = self.apply(&mut cursor, &path, &header, &stream, until);
        self.inner.latencies.replay.record(started.elapsed());
        match result {
            Ok(mut replay) => {
                if replay.complete {
                    cursor.next = LogPosition::new(generation + 1, 0);
                    cursor.previous = Some((header, digest));
                }
                self.note_generation(&header);
                replay.replayed = self.replayed();
                Ok(replay)
            }
            Err(error) => {
                self.inner.poison(&error);
                Err(error)
            }
        }
    }

    /// Reads and checks one shipped generation: its segments, stream, timeline and chain.
    fn read_generation(
        &self,
        path: &Path,
        generation: u32,
        cursor: &ReplayCursor,
    ) -> Result<(GenerationHeader, Vec<u8>, u32), DbError> {
        let fs = self.inner.options.log.file_system.as_ref();
        let (_, image) = read_image(fs, path, MAX_GENERATION_BYTES)?;
        let scanned = scan(path, &image, ScanMode::Closed)?;
        let header = scanned.header;
        // A timeline never goes back along the chain; the copy's own timeline is the newest
        // it saw, which may be newer than the generation its checkpoint is in.
        let expected = ShippedExpectation {
            generation,
            signature: self.signature(),
            timeline: cursor.previous.map_or(0, |(previous, _)| previous.timeline),
            previous: cursor.previous.as_ref(),
        };
        check_shipped(path, &header, expected)?;
        Ok((header, scanned.stream, scanned.digest))
    }

    /// Applies the records of `stream` from the cursor's position.
    fn apply(
        &self,
        cursor: &mut ReplayCursor,
        path: &Path,
        header: &GenerationHeader,
        stream: &[u8],
        until: Option<LogPosition>,
    ) -> Result<GenerationReplay, DbError> {
        let generation = header.generation;
        let mut offset = seek(stream, cursor.next)?;
        let path = Arc::new(path.to_owned());
        let mut replay = GenerationReplay {
            generation,
            timeline: header.timeline,
            created_micros: header.created_micros,
            complete: true,
            ..GenerationReplay::default()
        };
        let mut batch = Batch::new(&self.inner);
        batch.recount = self.recount.lock().due();
        while offset < stream.len() {
            // Scanning framed every record of a closed generation; this cannot fail.
            let raw = read_record(&stream[offset..]).map_err(|problem| LogError::BadRecord {
                path: path.as_ref().clone(),
                position: LogPosition::in_stream(generation, offset),
                reason: problem.to_string(),
            })?;
            let end = LogPosition::in_stream(generation, offset + raw.encoded_len());
            if until.is_some_and(|until| end > until) && !cursor.gatherer.is_open() {
                replay.complete = false;
                break;
            }
            let record = LogRecord {
                position: LogPosition::in_stream(generation, offset),
                end,
                kind: raw.kind,
                payload: raw.payload.to_vec(),
                path: Arc::clone(&path),
            };
            cursor
                .gatherer
                .feed_record(&record, &mut batch, &mut replay.report)?;
            offset = end.offset as usize;
            cursor.next = end;
        }
        batch.finish()?;
        if replay.report.last_recount.is_some() {
            self.recount.lock().last = Some(std::time::Instant::now());
        }
        Ok(replay)
    }

    fn note_generation(&self, header: &GenerationHeader) {
        if let LogLink::Passive(passive) = &self.inner.log {
            passive
                .newest_generation
                .fetch_max(header.generation, Ordering::AcqRel);
            passive
                .timeline
                .fetch_max(header.timeline, Ordering::AcqRel);
            passive
                .generation_bytes
                .store(header.generation_bytes as u64, Ordering::Relaxed);
        }
    }

    /// Makes replay also recount every entry at a proof point, at most once per `every`,
    /// the first one `every` after the copy was opened (`None`, the default: never; proof points then compare the summaries commits keep,
    /// which see only the entries replay changes). A recount that differs fails the replay
    /// like a proof point that does ([`DbError::ContentMismatch`]).
    pub fn set_recount_interval(&self, every: Option<std::time::Duration>) {
        self.recount.lock().every = every;
    }

    /// Reads every entry and checks the content summary the copy keeps against it (see
    /// [`Database::verify_content`](super::Database::verify_content)).
    pub fn verify_content(&self) -> Result<crate::content::ContentSummary, DbError> {
        super::content_check::check_stored(&self.inner)
    }

    /// Writes entries into `table` (created if missing) without logging them: how a seed
    /// fills a new copy. The copy's position does not move.
    pub fn load(&self, table: &str, entries: &[KeyValue]) -> Result<(), DbError> {
        self.inner.check_usable()?;
        let mut write = WriteTransaction::begin_unlogged(&self.inner);
        write.create_table(table)?;
        for (key, value) in entries {
            write.insert(table, key, value)?;
        }
        write.commit_replayed(self.replayed())
    }

    /// Latency histograms and gauges, as they are now (see [`Metrics`](crate::Metrics)):
    /// replayed generations, checkpoints and the depth of replay past the checkpoint.
    pub fn metrics(&self) -> crate::Metrics {
        self.inner.metrics(self.replayed())
    }

    /// Log bytes replayed since the last checkpoint.
    pub fn checkpoint_depth(&self) -> u64 {
        self.inner.depth(self.replayed())
    }

    /// Writes every replayed change to the file and moves the checkpoint to the last
    /// transaction replayed.
    pub fn checkpoint(&self) -> Result<CheckpointReport, DbError> {
        self.inner.check_usable()?;
        checkpoint::run(&self.inner, DbState::DirtyShutdown)
    }

    /// Starts a read transaction on the replayed state.
    pub fn begin_read(&self) -> Result<ReadTransaction, DbError> {
        self.inner.check_usable()?;
        Ok(ReadTransaction::begin(&self.inner))
    }

    /// Checkpoints and closes; the copy stays a passive copy, resuming where it stopped.
    pub fn close(self) -> Result<(), DbError> {
        self.checkpoint().map(|_| ())
    }

    /// Moves the copy's checkpoint back to `to`, the start of a generation at or before the
    /// checkpoint, and closes the copy (nothing replayed in between). Only for a caller that
    /// has checked that no transaction committed between `to` and the checkpoint, so that
    /// the file holds exactly the state at `to` as well: an old active whose log after `to`
    /// holds no commit (an empty generation from a fenced roll, a Start or Stop record)
    /// rejoining a new active whose log continues differently from `to`. Replay then
    /// resumes at `to` in the new active's generations.
    pub fn rewind_and_close(self, to: LogPosition) -> Result<(), DbError> {
        let inner = &self.inner;
        inner.check_usable()?;
        let mut header_state = inner.header.lock();
        let previous = header_state.header.clone();
        let replayed_nothing = self.cursor.lock().next == previous.checkpoint;
        if to.offset != 0 || to > previous.checkpoint || !replayed_nothing {
            return Err(DbError::InvalidOptions(format!(
                "a copy rewinds only to the start of a generation at or before its checkpoint \
                 {:?}, before replaying anything (asked for {to:?})",
                previous.checkpoint
            )));
        }
        let header = DbHeader {
            sequence: previous.sequence + 1,
            checkpoint: to,
            last_consistent: to,
            log_required: (to.generation, to.generation),
            ..previous
        };
        let chain = header_state.chains[header_state.slot as usize].clone();
        checkpoint::write_header(inner, &mut header_state, header, chain)
    }

    /// Ends replay for good: checkpoints and writes a clean header that needs no log.
    /// `Database::open` then starts a new log stream over it (a restored copy).
    pub fn close_clean(self) -> Result<(), DbError> {
        self.checkpoint()?;
        let inner = &self.inner;
        let mut header_state = inner.header.lock();
        let previous = header_state.header.clone();
        let clean = DbHeader {
            state: DbState::CleanShutdown,
            sequence: previous.sequence + 1,
            log_required: (0, 0),
            ..previous
        };
        let chain = header_state.chains[header_state.slot as usize].clone();
        checkpoint::write_header(inner, &mut header_state, clean, chain)
    }

    /// Makes this copy the active database, continuing the stream on `timeline` (newer than
    /// the copy's). Every generation replayed so far stays the common history; the next
    /// generation, created in the copy's directory, chains to the last one replayed and
    /// carries the new timeline, so the old active's later generations can never be taken
    /// for it. A transaction begun in the last replayed generation and never committed in
    /// it is dropped. The last replayed generation must have been replayed whole.
    ///
    /// No read transaction of the copy may be alive ([`DbError::StillInUse`] otherwise): the
    /// active database reuses pages such a snapshot could still be reading.
    pub fn activate(mut self, timeline: u64) -> Result<super::Database, DbError> {
        let transactions = Arc::strong_count(&self.inner) - 1;
        if transactions > 0 {
            return Err(DbError::StillInUse {
                handles: 0,
                transactions,
            });
        }
        let next = self.next_position();
        let last = next.generation.saturating_sub(1);
        if next.offset != 0 || last < 1 || self.cursor.lock().previous.is_none() {
            return Err(DbError::InvalidOptions(format!(
                "activation needs a whole replayed generation (replay stands at {next:?})"
            )));
        }
        if timeline <= self.timeline() {
            return Err(DbError::InvalidOptions(format!(
                "the new timeline {timeline} must be newer than {}",
                self.timeline()
            )));
        }
        self.checkpoint()?;
        let directory = self.inner.directory.clone();
        let mut options = self.inner.options.clone();
        self.adopt_last_generation(last)?;
        self.write_active_header(next, last)?;
        // Handed on, so no other opener slips in between the copy and the database.
        let owner = Arc::get_mut(&mut self.inner)
            .expect("no transaction began since the check above: this copy is held by value")
            .owner
            .take();
        drop(self);
        options.log.timeline = timeline;
        super::Database::open_owned(&directory, options, owner)
    }

    /// Copies the last replayed generation into the copy's directory, where the new
    /// generation will chain to it.
    fn adopt_last_generation(&self, last: u32) -> Result<(), DbError> {
        let config = &self.inner.options.log;
        let fs = config.file_system.as_ref();
        let name = config.base_name.closed(last);
        let source = path_of(&self.log_directory, &name);
        let (_, image) = read_image(fs, &source, MAX_GENERATION_BYTES)?;
        let target = path_of(&self.inner.directory, &name);
        let io = |error| DbError::io(&target, "writing the last replayed generation", error);
        if fs.exists(&target) {
            fs.remove(&target).map_err(io)?;
        }
        let file = fs
            .open(&target, crate::file::OpenMode::CreateNew)
            .map_err(io)?;
        file.write_at(&image, 0).map_err(io)?;
        file.sync_data().map_err(io)?;
        fs.sync_directory(&self.inner.directory)
            .map_err(|error| DbError::io(&self.inner.directory, "syncing", error))
    }

    /// The header of the database about to become active: its state is complete through
    /// generation `last`, and recovery starts at the generation the new log opens with.
    fn write_active_header(&self, next: LogPosition, last: u32) -> Result<(), DbError> {
        let inner = &self.inner;
        let mut header_state = inner.header.lock();
        let previous = header_state.header.clone();
        let header = DbHeader {
            sequence: previous.sequence + 1,
            checkpoint: next,
            last_consistent: next,
            log_required: (last, last),
            ..previous
        };
        let chain = header_state.chains[header_state.slot as usize].clone();
        checkpoint::write_header(inner, &mut header_state, header, chain)
    }
}

/// The header and digest of generation `generation - 1` in `log_directory`, if it is there
/// and readable: the generation replay continues from must chain to it.
fn read_previous(
    inner: &Inner,
    log_directory: &Path,
    generation: u32,
) -> Option<(GenerationHeader, u32)> {
    let previous = generation.checked_sub(1).filter(|&g| g > 0)?;
    let config = &inner.options.log;
    let path = path_of(log_directory, &config.base_name.closed(previous));
    let (_, image) = read_image(config.file_system.as_ref(), &path, MAX_GENERATION_BYTES).ok()?;
    let scanned = scan(&path, &image, ScanMode::Closed).ok()?;
    (scanned.header.generation == previous).then_some((scanned.header, scanned.digest))
}

/// The offset in `stream` of the record at `position` (0 at the start of a generation).
fn seek(stream: &[u8], position: LogPosition) -> Result<usize, DbError> {
    let target = position.offset as usize;
    let mut offset = 0;
    while offset < target {
        let Ok(record) = read_record(&stream[offset..]) else {
            break;
        };
        offset += record.encoded_len();
    }
    if offset != target {
        return Err(LogError::PositionNotFound {
            position,
            reason: "not the start of a record in the shipped generation".into(),
        }
        .into());
    }
    Ok(offset)
}
