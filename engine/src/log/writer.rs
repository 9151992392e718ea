//! The log writer: appends, group commit, rolls, checkpoint and truncation.
//!
//! Appenders copy framed records into the log buffer under the state lock and get their
//! positions there. Whoever needs durability and finds no flush running becomes the *leader*:
//! it takes everything buffered, writes it outside the state lock, syncs once, and publishes
//! the new durable position; committers that arrived meanwhile wait and are served by the next
//! leader. So N concurrent committers share one fdatasync instead of paying N.
//!
//! A flush that only makes room in a full buffer (nobody waits for durability) writes without
//! syncing: the write-behind thread starts one whenever the buffer passes half full, so
//! appenders rarely write themselves; the background thread syncs at least every
//! `lazy_flush_interval`. A full generation is closed behind the writer (see `closer.rs`).

use super::checkpoint::{Checkpoint, CheckpointFile};
use super::closer::{CloseJob, Closer};
use super::directory::{path_of, LogDirectory};
use super::generation_writer::{GenerationWriter, SyncTicket};
use super::open::{open_stream, Opened};
use super::record::RecordRef;
use super::tap::LogTap;
use super::transaction::Transaction;
use super::{GenerationHeader, LogConfig, LogPosition, StreamSignature};
use crate::error::LogError;
use crate::file::FileHandle;
use crate::metrics::LogLatencies;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Counters of the writer's work, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Flushes that wrote data.
    pub flushes: u64,
    /// fdatasync calls on log generations (flushes, rolls).
    pub syncs: u64,
    /// Generations closed.
    pub rolls: u64,
    /// Commit records appended.
    pub commits: u64,
    /// Record bytes appended.
    pub bytes: u64,
}

/// Chunk buffers kept for reuse after a flush.
const SPARE_CHUNKS: usize = 4;

/// Records appended for one generation, not yet written.
struct Chunk {
    generation: u32,
    start: u32,
    bytes: Vec<u8>,
}

pub(crate) struct State {
    pending: Vec<Chunk>,
    /// Emptied chunk buffers kept for reuse, so appenders do not allocate (and fault in)
    /// megabytes again after every flush.
    spare: Vec<Vec<u8>>,
    /// Bytes appended and not yet written (pending plus in flight): bounded by the config.
    /// (A flush that does not sync frees its bytes here once written.)
    pub(crate) buffered: usize,
    /// End of everything appended.
    pub(crate) append: LogPosition,
    /// End of everything durable.
    pub(crate) durable: LogPosition,
    /// End of the last commit record appended.
    pub(crate) last_commit: LogPosition,
    pub(crate) last_append: Instant,
    /// A flush is writing (one at a time).
    pub(crate) flushing: bool,
    /// A sync is in flight (one at a time); flushes that only write may run meanwhile.
    pub(crate) syncing: bool,
    poisoned: Option<LogError>,
    pub(crate) closing: bool,
}

impl State {
    /// Whether a write or sync failed: then nothing more may be written.
    pub(crate) fn poisoned(&self) -> bool {
        self.poisoned.is_some()
    }
}

pub(crate) struct Shared {
    pub(crate) config: LogConfig,
    directory: PathBuf,
    signature: StreamSignature,
    capacity: u64,
    /// Size of every generation file of this stream (fixed when the stream was created).
    generation_bytes: u64,
    pub(crate) state: Mutex<State>,
    /// Wakes committers waiting for durability (and appenders waiting for buffer room) when a
    /// flush or a sync ends.
    changed: Condvar,
    /// Wakes appenders waiting for buffer room when a flush has written (before its sync), so
    /// committers waiting for durability are not woken for nothing.
    pub(crate) room: Condvar,
    /// Wakes the background thread.
    pub(crate) background_wakeup: Condvar,
    /// Wakes the write-behind thread: the buffer passed half full, or a flush ended with it
    /// still past half full.
    pub(crate) write_wakeup: Condvar,
    io: Mutex<GenerationWriter>,
    pub(crate) closer: Closer,
    checkpoint: Mutex<CheckpointFile>,
    /// The log tap, if the config asks for one: the writer copies what it writes into it and
    /// publishes what each sync made durable.
    tap: Option<Arc<LogTap>>,
    next_transaction: AtomicU64,
    flushes: AtomicU64,
    syncs: AtomicU64,
    rolls: AtomicU64,
    commits: AtomicU64,
    bytes: AtomicU64,
    latencies: LogLatencies,
}

/// An open log stream, writable. Shareable between threads (`&Log` is enough to commit).
pub struct Log {
    shared: Arc<Shared>,
    /// The background and write-behind threads (see `background.rs`), once started.
    background: Mutex<Vec<JoinHandle<()>>>,
    closer: Mutex<Option<JoinHandle<()>>>,
    torn_bytes: usize,
}

impl Log {
    /// Opens the stream in `directory`, creating it if there is none. An existing stream is
    /// read to its true end (a torn tail is cut off and cleared) and continues there.
    pub fn open(directory: &Path, config: LogConfig) -> Result<Self, LogError> {
        let log = Self::open_paused(directory, config)?;
        log.start_background();
        Ok(log)
    }

    /// Opens the stream without starting its threads, so that nothing flushes, rolls or
    /// closes a generation while recovery still reads the stream (a roll renames `E00.log`
    /// under the reader). [`Log::start_background`] starts them; no flush may run before.
    pub(crate) fn open_paused(directory: &Path, config: LogConfig) -> Result<Self, LogError> {
        config.validate()?;
        let Opened {
            writer,
            checkpoint,
            torn_bytes,
        } = open_stream(&config, directory)?;
        let header = writer.header;
        let end = LogPosition::new(
            header.generation,
            u32::try_from(writer.stream_end())
                .expect("a generation's end fits u32: at most 64 MiB"),
        );
        let capacity = writer.capacity();
        let state = State {
            pending: Vec::new(),
            spare: Vec::new(),
            buffered: 0,
            append: end,
            durable: end,
            last_commit: LogPosition::default(),
            last_append: Instant::now(),
            flushing: false,
            syncing: false,
            poisoned: None,
            closing: false,
        };
        let shared = Arc::new(Shared {
            directory: directory.to_owned(),
            signature: header.signature,
            capacity,
            generation_bytes: header.generation_bytes as u64,
            state: Mutex::new(state),
            changed: Condvar::new(),
            room: Condvar::new(),
            background_wakeup: Condvar::new(),
            write_wakeup: Condvar::new(),
            io: Mutex::new(writer),
            closer: Closer::new(
                Arc::clone(&config.file_system),
                directory.to_owned(),
                config.base_name,
                header,
                config.background,
            ),
            checkpoint: Mutex::new(checkpoint),
            tap: (config.tap_bytes > 0).then(|| Arc::new(LogTap::new(config.tap_bytes, end))),
            next_transaction: AtomicU64::new(super::now_micros()),
            flushes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            rolls: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            latencies: LogLatencies::default(),
            config,
        });
        let log = Self {
            shared,
            background: Mutex::new(Vec::new()),
            closer: Mutex::new(None),
            torn_bytes,
        };
        let mut start = Vec::new();
        RecordRef::Start {
            time_micros: super::now_micros(),
        }
        .encode_into(&mut start);
        log.append_records(&start, &[start.len()], false)?;
        Ok(log)
    }

    /// Starts the background, write-behind and closer threads (when the config asks for
    /// them); a second call does nothing.
    pub(crate) fn start_background(&self) {
        let mut closer = self.closer.lock();
        if !self.shared.config.background || closer.is_some() {
            return;
        }
        *closer = Some(super::background::spawn_closer(Arc::clone(&self.shared)));
        self.background.lock().extend([
            super::background::spawn(Arc::clone(&self.shared)),
            super::background::spawn_write_behind(Arc::clone(&self.shared)),
        ]);
    }

    /// Starts a transaction. Its records are appended when it commits.
    pub fn transaction(&self) -> Transaction<'_> {
        Transaction::new(self, self.next_transaction_id())
    }

    /// Starts a transaction whose records are held apart from the log until
    /// [`PendingRecords::commit`] appends them here.
    pub fn pending_transaction(&self) -> super::PendingRecords {
        super::PendingRecords::new(self.next_transaction_id())
    }

    fn next_transaction_id(&self) -> u64 {
        self.shared.next_transaction.fetch_add(1, Ordering::Relaxed)
    }

    /// The stream signature.
    pub fn signature(&self) -> StreamSignature {
        self.shared.signature
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.shared.config
    }

    /// The log directory.
    pub fn directory(&self) -> &Path {
        &self.shared.directory
    }

    /// Bytes of torn tail that opening cut off the current generation.
    pub fn torn_bytes_at_open(&self) -> usize {
        self.torn_bytes
    }

    /// End of everything appended.
    pub fn end_position(&self) -> LogPosition {
        self.shared.state.lock().append
    }

    /// End of everything durable.
    pub fn durable_position(&self) -> LogPosition {
        self.shared.state.lock().durable
    }

    /// The log tap, if [`LogConfig::tap_bytes`] asks for one: the newest durable bytes of the
    /// record stream, in memory, for a replication server to follow (see
    /// [`super::tap`]). Readers share it; it outlives the log (and then reports
    /// [`super::TapRead::Stopped`] once drained).
    pub fn tap(&self) -> Option<Arc<LogTap>> {
        self.shared.tap.clone()
    }

    /// The generation of the current file `E00.log`. The writer may already be filling the
    /// next one, which becomes current once this one is closed and renamed.
    pub fn current_generation(&self) -> u32 {
        self.shared.closer.installed().generation
    }

    /// Size of every generation of this stream (fixed when the stream was created). Unlike
    /// [`Log::current_header`], never waits for a flush in progress.
    pub fn generation_bytes(&self) -> u64 {
        self.shared.generation_bytes
    }

    /// The header of the current file `E00.log` (see [`Log::current_generation`]).
    pub fn current_header(&self) -> GenerationHeader {
        self.shared.closer.installed()
    }

    /// The largest record (framing included) this log accepts: it must fit in the log buffer
    /// and in one generation of this stream (whose size was fixed when the stream was created
    /// and may differ from the config's).
    pub fn max_record_bytes(&self) -> usize {
        usize::try_from(self.shared.capacity).map_or(self.shared.config.buffer_bytes, |capacity| {
            capacity.min(self.shared.config.buffer_bytes)
        })
    }

    /// Latency histograms of syncs and flushes.
    pub(crate) fn latencies(&self) -> &LogLatencies {
        &self.shared.latencies
    }

    /// Counters.
    pub fn stats(&self) -> LogStats {
        let shared = &self.shared;
        LogStats {
            flushes: shared.flushes.load(Ordering::Relaxed),
            syncs: shared.syncs.load(Ordering::Relaxed),
            rolls: shared.rolls.load(Ordering::Relaxed),
            commits: shared.commits.load(Ordering::Relaxed),
            bytes: shared.bytes.load(Ordering::Relaxed),
        }
    }

    /// Appends framed records (`boundaries` gives each record's end in `encoded`); returns
    /// the position of the first and the end of the last. A record never spans generations:
    /// one that does not fit in the current generation starts the next.
    /// Appends a proof record of `summary` (the content after every commit appended so
    /// far: the caller holds the database's writer lock); returns where it begins.
    pub(crate) fn append_proof(
        &self,
        summary: &crate::content::ContentSummary,
    ) -> Result<LogPosition, LogError> {
        let mut encoded = Vec::new();
        let proof = crate::content::ContentProof::of(summary);
        super::record::Record::Proof(proof).encode_into(&mut encoded);
        let (begin, _) = self.append_records(&encoded, &[encoded.len()], false)?;
        Ok(begin)
    }

    pub(crate) fn append_records(
        &self,
        encoded: &[u8],
        boundaries: &[usize],
        is_commit: bool,
    ) -> Result<(LogPosition, LogPosition), LogError> {
        let limit = self.max_record_bytes();
        // Every record is checked before any is appended, so a refused transaction leaves
        // nothing of itself in the log.
        let mut start = 0;
        for &end in boundaries {
            if end - start > limit {
                return Err(LogError::RecordTooLarge {
                    length: end - start,
                    limit,
                });
            }
            start = end;
        }
        let mut start = 0;
        let mut begin = None;
        let mut state = self.shared.state.lock();
        for &end in boundaries {
            let record = &encoded[start..end];
            self.shared.make_room(&mut state, record.len())?;
            let position = self.shared.place(&mut state, record);
            begin.get_or_insert(position);
            start = end;
        }
        // Past half the buffer, the write-behind thread flushes while appenders go on filling
        // the other half.
        if state.buffered > self.shared.config.buffer_bytes / 2 && !state.flushing {
            self.shared.write_wakeup.notify_one();
        }
        let end = state.append;
        if is_commit {
            state.last_commit = end;
            self.shared.commits.fetch_add(1, Ordering::Relaxed);
        }
        state.last_append = Instant::now();
        Ok((begin.unwrap_or(end), end))
    }

    /// Waits until the log is durable up to `position`, leading a flush if none is running.
    pub fn wait_durable(&self, position: LogPosition) -> Result<(), LogError> {
        let mut state = self.shared.state.lock();
        self.shared.wait_durable(&mut state, position)
    }

    /// Makes everything appended so far durable; returns the durable end.
    pub fn flush(&self) -> Result<LogPosition, LogError> {
        let mut state = self.shared.state.lock();
        let target = state.append;
        self.shared.wait_durable(&mut state, target)?;
        Ok(target)
    }

    /// Closes the current generation now (even an empty one) and starts the next; returns the
    /// number of the generation closed. Everything appended before is durable on return.
    pub fn roll(&self) -> Result<u32, LogError> {
        let mut state = self.shared.state.lock();
        let closing = state.append.generation;
        state.append = LogPosition::new(closing + 1, 0);
        let target = state.append;
        self.shared.wait_durable(&mut state, target)?;
        Ok(closing)
    }

    /// Closes the generation holding `position` if it is still open (it is at or past the
    /// installed `E00.log`: the writer may be one generation ahead), so that a copy replaying
    /// closed generations reaches `position`. Everything appended before is durable on return.
    pub fn close_through(&self, position: LogPosition) -> Result<(), LogError> {
        if position.generation >= self.current_generation() {
            self.roll()?;
        }
        Ok(())
    }

    /// The checkpoint in force.
    pub fn checkpoint(&self) -> Checkpoint {
        self.shared.checkpoint.lock().current()
    }

    /// Moves the checkpoint forward to `position`, which must be durable.
    pub fn advance_checkpoint(&self, position: LogPosition) -> Result<(), LogError> {
        let durable = self.durable_position();
        if position > durable {
            return Err(LogError::PositionNotFound {
                position,
                reason: format!("beyond the durable end {durable}"),
            });
        }
        let timeline = self.shared.closer.installed().timeline;
        self.shared.checkpoint.lock().advance(position, timeline)
    }

    /// Deletes closed generations below `position`'s generation, never one the checkpoint
    /// still needs; returns the generations deleted.
    ///
    /// Lowest first, the directory synced after each removal: a crash part-way leaves the
    /// stream with a gap at its low end only, never a hole between generations it keeps.
    pub fn truncate_below(&self, position: LogPosition) -> Result<Vec<u32>, LogError> {
        let shared = &self.shared;
        let limit = position
            .generation
            .min(self.checkpoint().position.generation);
        let fs = shared.config.file_system.as_ref();
        let listing = LogDirectory::list(fs, &shared.directory, shared.config.base_name)?;
        let mut removed = Vec::new();
        for (&generation, name) in listing.closed.range(..limit) {
            let path = path_of(&shared.directory, name);
            fs.remove(&path)
                .map_err(|e| LogError::io(&path, "remove generation", e))?;
            fs.sync_directory(&shared.directory)
                .map_err(|e| LogError::io(&shared.directory, "sync directory", e))?;
            removed.push(generation);
        }
        Ok(removed)
    }

    /// Writes a clean-stop record, makes everything durable and stops the background thread;
    /// returns the end of the log.
    pub fn close(mut self) -> Result<LogPosition, LogError> {
        let mut stop = Vec::new();
        RecordRef::Stop {
            time_micros: super::now_micros(),
        }
        .encode_into(&mut stop);
        self.append_records(&stop, &[stop.len()], false)?;
        let result = self.flush();
        self.stop_background();
        result
    }

    fn stop_background(&mut self) {
        self.shared.state.lock().closing = true;
        if let Some(tap) = &self.shared.tap {
            tap.stop("log closed");
        }
        self.shared.background_wakeup.notify_all();
        self.shared.write_wakeup.notify_all();
        // The background thread may be waiting for a flush to end.
        self.shared.room.notify_all();
        for handle in self.background.get_mut().drain(..) {
            if handle.join().is_err() {
                tracing::error!("the log's background thread panicked");
            }
        }
        // After the background thread: it may still have led a flush that handed over a close.
        self.shared.closer.stop();
        if let Some(handle) = self.closer.get_mut().take() {
            if handle.join().is_err() {
                tracing::error!("the log's closer thread panicked");
            }
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // Best effort: lazy commits appended before the drop become durable.
        if let Err(error) = self.flush() {
            tracing::warn!(%error, "flushing lazy commits as the log is dropped");
        }
        self.stop_background();
    }
}

impl Shared {
    /// Copies one record into the buffer; returns its position.
    fn place(&self, state: &mut State, record: &[u8]) -> LogPosition {
        if state.append.offset as u64 + record.len() as u64 > self.capacity {
            state.append = LogPosition::new(state.append.generation + 1, 0);
        }
        let position = state.append;
        let contiguous = state.pending.last_mut().filter(|chunk| {
            chunk.generation == position.generation
                && chunk.start as usize + chunk.bytes.len() == position.offset as usize
        });
        match contiguous {
            Some(chunk) => chunk.bytes.extend_from_slice(record),
            None => {
                let mut bytes = state.spare.pop().unwrap_or_default();
                bytes.extend_from_slice(record);
                state.pending.push(Chunk {
                    generation: position.generation,
                    start: position.offset,
                    bytes,
                });
            }
        }
        state.append.offset += crate::log::stream_offset(record.len());
        state.buffered += record.len();
        self.bytes.fetch_add(record.len() as u64, Ordering::Relaxed);
        position
    }

    /// Waits until `length` more bytes fit in the log buffer.
    fn make_room(&self, state: &mut MutexGuard<'_, State>, length: usize) -> Result<(), LogError> {
        while state.buffered + length > self.config.buffer_bytes {
            check_usable(state)?;
            if state.flushing {
                self.room.wait(state);
            } else {
                self.lead_flush(state, false);
            }
        }
        check_usable(state)
    }

    pub(crate) fn wait_durable(
        &self,
        state: &mut MutexGuard<'_, State>,
        target: LogPosition,
    ) -> Result<(), LogError> {
        loop {
            if state.durable >= target {
                return Ok(());
            }
            check_usable(state)?;
            if !state.flushing && !state.syncing {
                self.lead_flush(state, true);
            } else {
                self.changed.wait(state);
            }
        }
    }

    /// Takes everything buffered and writes it outside the state lock; with `sync`, also
    /// makes it durable and publishes the new durable end. Called with the state locked, no
    /// flush running and, with `sync`, no sync in flight.
    ///
    /// The sync runs after the flush has given up its turn: while it waits for the disk,
    /// appenders fill the buffer and flushes that only write go on (see `generation_writer.rs`
    /// for why that is safe).
    pub(crate) fn lead_flush(&self, state: &mut MutexGuard<'_, State>, sync: bool) {
        assert!(!state.flushing, "one flush at a time");
        assert!(!(sync && state.syncing), "one sync at a time");
        // After a failure the writer's position is unknown: nothing more may be written.
        if state.poisoned.is_some() {
            self.notify_all();
            return;
        }
        let started = Instant::now();
        state.flushing = true;
        state.syncing |= sync;
        let chunks = std::mem::take(&mut state.pending);
        let target = state.append;
        let written = MutexGuard::unlocked(state, || {
            let mut io = self.io.lock();
            self.write_chunks(&mut io, &chunks, target.generation, sync)
        });
        self.release(state, chunks);
        state.flushing = false;
        self.room.notify_all();
        // Only when there is work for it: waking a thread costs two context switches, a
        // large share of a durable commit's time.
        if state.buffered > self.config.buffer_bytes / 2 {
            self.write_wakeup.notify_one();
        }
        let result = match written {
            Ok(()) if sync => MutexGuard::unlocked(state, || self.sync_through(target)),
            other => other,
        };
        if sync {
            state.syncing = false;
        }
        match result {
            Ok(()) if sync => {
                self.latencies.flush.record(started.elapsed());
                assert!(target >= state.durable, "durability only moves forward");
                state.durable = target;
                // Here and only here: the sync that covers the bytes up to `target` succeeded.
                if let Some(tap) = &self.tap {
                    tap.publish(target);
                }
            }
            Ok(()) => {}
            Err(error) => {
                // Reported as it happens: a lazy commit's writer may not call again for long.
                tracing::error!(
                    directory = %self.directory.display(),
                    generation = target.generation,
                    %error,
                    "writing or syncing the log failed; the log refuses further writes"
                );
                if let Some(tap) = &self.tap {
                    tap.stop(&format!("log poisoned: {error}"));
                }
                state.poisoned = Some(error);
            }
        }
        self.notify_all();
    }

    fn notify_all(&self) {
        self.changed.notify_all();
        self.room.notify_all();
    }

    /// Frees the buffer room of written chunks and keeps some of their buffers for reuse.
    fn release(&self, state: &mut State, chunks: Vec<Chunk>) {
        let bytes: usize = chunks.iter().map(|chunk| chunk.bytes.len()).sum();
        state.buffered -= bytes;
        // Spare buffers are bounded too: together at most one log buffer's worth.
        for mut chunk in chunks {
            let kept: usize = state.spare.iter().map(Vec::capacity).sum();
            let fits = kept + chunk.bytes.capacity() <= self.config.buffer_bytes;
            if state.spare.len() < SPARE_CHUNKS && fits {
                chunk.bytes.clear();
                state.spare.push(chunk.bytes);
            }
        }
    }

    /// Writes the chunks, rolling into the generations they belong to (and up to
    /// `target_generation`). Without `sync`, hints the kernel to start writing them out.
    fn write_chunks(
        &self,
        io: &mut GenerationWriter,
        chunks: &[Chunk],
        target_generation: u32,
        sync: bool,
    ) -> Result<(), LogError> {
        for chunk in chunks {
            while io.header.generation < chunk.generation {
                self.roll(io)?;
            }
            assert_eq!(io.stream_end(), chunk.start as u64, "chunks are contiguous");
            io.write(&chunk.bytes)?;
            // Written, not yet durable: readers of the tap see it once a sync publishes it.
            if let Some(tap) = &self.tap {
                tap.append(
                    LogPosition::new(chunk.generation, chunk.start),
                    &chunk.bytes,
                );
            }
        }
        while io.header.generation < target_generation {
            self.roll(io)?;
        }
        if !sync {
            io.start_writeback();
        }
        Ok(())
    }

    /// Makes everything up to `target` (written) durable. Nothing of a generation counts
    /// before it is installed as `E00.log`, and the close that installs a generation syncs
    /// the one before it. So: once a generation past the target's is installed, the target
    /// is durable already; once the writer's generation is installed with no close pending,
    /// a sync of it makes the target durable; otherwise wait for the next install, holding
    /// nothing, so the writer goes on meanwhile (a close takes several device flushes). At
    /// most two installs are waited for, however fast the writer rolls.
    fn sync_through(&self, target: LogPosition) -> Result<(), LogError> {
        let ticket = loop {
            // Rolls hand closes over under `io`: with it held, none can start between the
            // check and the ticket.
            let mut io = self.io.lock();
            let (installed, pending) = self.closer.install_state()?;
            assert!(
                target.generation <= io.header.generation,
                "a flush writes its target before it syncs"
            );
            if installed > target.generation {
                return Ok(());
            }
            if !pending {
                assert_eq!(
                    installed, io.header.generation,
                    "with no close pending the writer's generation is installed"
                );
                break io.begin_sync()?;
            }
            drop(io);
            self.closer.wait_install_after(installed)?;
        };
        self.finish_sync(ticket)
    }

    /// Syncs what a ticket covers (outside every lock) and records it in the writer.
    fn finish_sync(&self, ticket: SyncTicket) -> Result<(), LogError> {
        if ticket.needed {
            let started = Instant::now();
            ticket
                .file
                .sync_data()
                .map_err(|e| LogError::io(&ticket.path, "sync log", e))?;
            self.latencies.sync.record(started.elapsed());
            self.syncs.fetch_add(1, Ordering::Relaxed);
            self.flushes.fetch_add(1, Ordering::Relaxed);
        }
        self.io.lock().end_sync(ticket);
        Ok(())
    }

    /// Writes the partial block of the current generation home, moves the writer to the
    /// prepared next generation and hands the rest of the roll to the closer.
    fn roll(&self, io: &mut GenerationWriter) -> Result<(), LogError> {
        let next_file = self.closer.begin()?;
        let (generation, length) = (
            io.header.generation,
            u32::try_from(io.stream_end()).expect("a generation's end fits u32: at most 64 MiB"),
        );
        let result = self.hand_over(io, next_file);
        match &result {
            Err(_) => self.closer.abandon(),
            Ok(()) => {
                if let Some(tap) = &self.tap {
                    tap.close_generation(generation, length);
                }
            }
        }
        result
    }

    /// Step 1 of the roll (see `roll.rs`), on the writer's side; the closer does the rest.
    fn hand_over(
        &self,
        io: &mut GenerationWriter,
        next_file: Arc<dyn FileHandle>,
    ) -> Result<(), LogError> {
        io.complete()?;
        io.start_writeback();
        self.closer.note_bytes_per_sync(io.bytes_per_sync());
        let previous = io.header;
        // The closer reads the finished generation back for the digest and writes this header
        // with it into `E00tmp.log`: reading a generation back and syncing wait for the disk
        // or the page cache, which the writer should not. The writer's own copy of the header
        // never needs the digest.
        let next = GenerationHeader {
            generation: previous.generation + 1,
            created_micros: super::now_micros().max(previous.created_micros + 1),
            previous_created_micros: previous.created_micros,
            previous_digest: 0,
            ..previous
        };
        let fresh = GenerationWriter::new(io.path.clone(), Arc::clone(&next_file), next);
        let closing = std::mem::replace(io, fresh);
        self.syncs.fetch_add(2, Ordering::Relaxed);
        self.rolls.fetch_add(1, Ordering::Relaxed);
        self.closer.submit(CloseJob {
            closing,
            next,
            next_file,
        })
    }

    /// Prepares the next generation file if none is ready.
    /// The log's directory.
    pub(crate) fn directory(&self) -> &Path {
        &self.directory
    }

    pub(crate) fn prepare_if_needed(&self) -> Result<(), LogError> {
        self.closer.prepare_if_needed()
    }

    /// Whether the current generation holds a durable commit and nothing was appended for
    /// the idle interval.
    pub(crate) fn idle_roll_due(&self, state: &State) -> bool {
        let Some(interval) = self.config.idle_roll_interval else {
            return false;
        };
        let commit = state.last_commit;
        commit.generation == state.append.generation
            && commit.offset > 0
            && state.durable >= commit
            && state.last_append.elapsed() >= interval
    }
}

fn check_usable(state: &State) -> Result<(), LogError> {
    if let Some(cause) = &state.poisoned {
        return Err(LogError::Poisoned(Box::new(cause.clone())));
    }
    Ok(())
}
