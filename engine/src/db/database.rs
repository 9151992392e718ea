//! The database: opening, transactions, checkpoints and closing.

use super::checkpoint;
use super::log_link::LogLink;
use super::read::ReadTransaction;
use super::recovery::ReplayReport;
use super::version::{Snapshots, Version};
use super::write::WriteTransaction;
use super::{DbError, Options};
use crate::btree::dirty::DirtyPages;
use crate::file::OwnershipLock;
use crate::log::{Log, LogPosition};
use crate::metrics::{DbLatencies, Metrics};
use crate::page::allocator::Allocator;
use crate::page::{DbHeader, DbState, PageStore};
use parking_lot::{Condvar, Mutex};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The database file's name in its directory.
pub const DATABASE_FILE_NAME: &str = "bluejet.db";

/// A database: a page file and its log stream in one directory.
///
/// A `Database` is a cheap handle (`Clone`, `Send`, `Sync`): clones share one open database,
/// and its transactions own what they use, so they are `Send` and `'static` too. The
/// database stays open while any handle or transaction is alive; [`Database::close`] on the
/// last handle closes it cleanly.
///
/// ```
/// use bluejet_engine::db::{Database, Options};
/// let directory = tempfile::tempdir().unwrap();
/// let db = Database::open(directory.path(), Options::default()).unwrap();
/// let mut write = db.begin_write().unwrap();
/// write.create_table("folders").unwrap();
/// write.insert("folders", b"inbox", b"3 messages").unwrap();
/// write.commit().unwrap();
/// let read = db.begin_read().unwrap();
/// let folders = read.open_table("folders").unwrap();
/// assert_eq!(folders.get(b"inbox").unwrap().as_deref(), Some(&b"3 messages"[..]));
/// drop(folders);
/// drop(read);
/// db.close().unwrap();
/// ```
#[derive(Clone)]
pub struct Database {
    running: Arc<Running>,
}

/// What every handle of one open database shares: dropped with the last handle, it stops the
/// checkpointer (without `close` the database stays dirty: the next open replays the log).
struct Running {
    inner: Arc<Inner>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
}

impl Running {
    fn stop_checkpointer(&self) {
        *self.inner.stopping.lock() = true;
        self.inner.wakeup.notify_all();
        if let Some(handle) = self.checkpointer.lock().take() {
            // A checkpointer that panicked has nothing left to stop; its failure was
            // recorded as the database's poison before.
            if handle.join().is_err() {
                tracing::error!("the checkpointer thread panicked (the database was poisoned)");
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_checkpointer();
    }
}

// The handles and transactions an async server moves between tasks and threads.
const _: () = {
    const fn send_sync_static<T: Send + Sync + 'static>() {}
    const fn send_static<T: Send + 'static>() {}
    send_sync_static::<Database>();
    send_static::<super::ReadTransaction>();
    send_static::<super::WriteTransaction>();
};

/// Counters of an open database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Transactions committed since open.
    pub commits: u64,
    /// Checkpoints completed since open.
    pub checkpoints: u64,
    /// Pages in the cache.
    pub cached_pages: usize,
    /// Pages allocated in the file (header pages included).
    pub allocated_pages: u64,
    /// Free pages (reusable now).
    pub free_pages: u64,
    /// Pages retired and waiting to become free.
    pub retired_pages: u64,
}

pub(crate) struct Inner {
    pub directory: PathBuf,
    pub options: Options,
    pub store: PageStore,
    pub log: LogLink,
    /// The writer state, behind the lock a write transaction holds from begin to commit or
    /// abort (an owned guard, so that the transaction borrows nothing).
    pub writer: Arc<Mutex<WriterState>>,
    pub snapshots: Snapshots,
    pub header: Mutex<HeaderState>,
    pub checkpoint_position: AtomicU64,
    /// The header's highest required log generation, as last written.
    pub required_generation: AtomicU32,
    /// The failure that made the database unusable, if one did.
    pub poison: Mutex<Option<DbError>>,
    pub stopping: Mutex<bool>,
    pub wakeup: Condvar,
    pub commits: AtomicU64,
    pub checkpoints: AtomicU64,
    pub latencies: DbLatencies,
    pub replay: Mutex<ReplayReport>,
    /// The directory's ownership lock, held as long as this database is (`None` only once
    /// handed on, by a passive copy becoming active).
    pub owner: Option<OwnershipLock>,
    /// The log's checkpoint file position as last moved (an active database's).
    pub checkpoint_file_position: AtomicU64,
    /// Circular logging's state; its lock is held through a deletion pass.
    pub circular: Mutex<super::circular::CircularLogging>,
}

pub(crate) struct WriterState {
    pub allocator: Allocator,
    pub dirty: DirtyPages,
    pub committed: Arc<Version>,
    /// The generation the last proof record went to (0: none since the log was opened).
    pub proved_generation: u32,
}

pub(crate) struct HeaderState {
    pub header: DbHeader,
    pub slot: u8,
    /// The free-list pages each header slot names (empty when unknown: those pages are then
    /// in the newer slot's list as retired).
    pub chains: [Vec<u64>; 2],
}

impl Database {
    /// Opens the database in `directory`, creating it if there is none. After a crash the
    /// log is replayed from the checkpoint: every committed transaction is present, none
    /// partly.
    ///
    /// The directory's ownership lock is taken first and held until close or drop: while
    /// it is held, by this process or another, a second open fails at once with
    /// [`DbError::InUse`] naming the holder.
    pub fn open(directory: &Path, options: Options) -> Result<Self, DbError> {
        Self::open_owned(directory, options, None)
    }

    /// Opens with the ownership lock already held (`None`: take it).
    pub(crate) fn open_owned(
        directory: &Path,
        options: Options,
        owner: Option<OwnershipLock>,
    ) -> Result<Self, DbError> {
        let inner = super::open::open(directory, options, owner)?;
        let checkpointer = inner
            .options
            .background
            .then(|| spawn_checkpointer(Arc::clone(&inner)));
        Ok(Self {
            running: Arc::new(Running {
                inner,
                checkpointer: Mutex::new(checkpointer),
            }),
        })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.running.inner
    }

    /// Starts the write transaction; waits while another is open (writers are serialised,
    /// their commits still share log flushes).
    pub fn begin_write(&self) -> Result<WriteTransaction, DbError> {
        self.inner().check_usable()?;
        WriteTransaction::begin(self.inner())
    }

    /// Starts a read transaction on the newest durable state. Readers never block writers
    /// and are never blocked by them.
    pub fn begin_read(&self) -> Result<ReadTransaction, DbError> {
        Ok(ReadTransaction::begin(self.inner()))
    }

    /// Reads every entry and checks the content summary the database keeps (each table's
    /// count and checksum, the totals) against it: the summary when they agree,
    /// [`DbError::ContentMismatch`] naming the first table that differs when not.
    ///
    /// ```
    /// use bluejet_engine::db::{Database, Options};
    /// let directory = tempfile::tempdir().unwrap();
    /// let db = Database::open(directory.path(), Options::default()).unwrap();
    /// let mut write = db.begin_write().unwrap();
    /// write.create_table("mail").unwrap();
    /// write.insert("mail", b"<a@x>", b"hello").unwrap();
    /// write.commit().unwrap();
    /// assert_eq!(db.verify_content().unwrap().entries(), 1);
    /// db.close().unwrap();
    /// ```
    pub fn verify_content(&self) -> Result<crate::content::ContentSummary, DbError> {
        super::content_check::check_stored(self.inner())
    }

    /// Writes every committed change to the file and moves the checkpoint to the newest
    /// durable commit.
    pub fn checkpoint(&self) -> Result<(), DbError> {
        self.inner().check_usable()?;
        checkpoint::run(self.inner(), DbState::DirtyShutdown).map(|_| ())
    }

    /// The directory holding the database and its log.
    pub fn directory(&self) -> &Path {
        &self.inner().directory
    }

    /// The log stream (for rolls, statistics and replication).
    pub fn log(&self) -> &Log {
        self.inner().log.writer()
    }

    /// The header as last written.
    pub fn header(&self) -> DbHeader {
        self.inner().header.lock().header.clone()
    }

    /// What recovery replayed when this database was opened.
    pub fn replay_report(&self) -> ReplayReport {
        self.inner().replay.lock().clone()
    }

    /// Whether circular logging is on (closed log generations no recovery needs are deleted
    /// after each checkpoint), and why.
    ///
    /// ```
    /// use bluejet_engine::db::{Database, Options};
    /// let directory = tempfile::tempdir().unwrap();
    /// let db = Database::open(directory.path(), Options::default()).unwrap();
    /// assert!(db.circular_logging().enabled);
    /// db.retain_logs("replica /srv/replica").unwrap();
    /// let state = db.circular_logging();
    /// assert!(!state.enabled, "{}", state.reason);
    /// db.close().unwrap();
    /// ```
    pub fn circular_logging(&self) -> super::circular::CircularLogging {
        self.inner().circular.lock().clone()
    }

    /// Keeps every log generation from now on, for a reader outside the database (a
    /// replica's shipper, an incremental backup) named by `reason`: writes the directory's
    /// retention marker `bluejet.keep-logs` durably and stops circular logging. Once this
    /// returns no generation is deleted, by this open or any later one.
    pub fn retain_logs(&self, reason: &str) -> Result<(), DbError> {
        super::circular::retain(self.inner(), reason)
    }

    /// Counters.
    pub fn stats(&self) -> DbStats {
        let inner = self.inner();
        let writer = inner.writer.lock();
        DbStats {
            commits: inner.commits.load(Ordering::Relaxed),
            checkpoints: inner.checkpoints.load(Ordering::Relaxed),
            cached_pages: inner.store.cached_pages(),
            allocated_pages: writer.allocator.next_page,
            free_pages: writer.allocator.free.len() as u64,
            retired_pages: writer.allocator.all_retired().len() as u64,
        }
    }

    /// Latency histograms and gauges, as they are now (see [`Metrics`]): cheap to call,
    /// takes no lock the writers hold.
    pub fn metrics(&self) -> Metrics {
        self.inner().metrics(self.inner().snapshots.published().end)
    }

    /// Closes cleanly: checkpoints everything, closes the log and writes a clean header
    /// (log required 0-0).
    ///
    /// Only the last handle closes: while another clone of this handle or a transaction is
    /// alive, the database stays open for them and this fails with [`DbError::StillInUse`]
    /// (the other holders go on; the last one to close, or to drop, ends it).
    pub fn close(self) -> Result<(), DbError> {
        let handles = Arc::strong_count(&self.running);
        // The handle's own reference and the checkpointer thread's; any more are
        // transactions. No new one can begin: only a handle begins one, and this is the last.
        // (A checkpointer that stopped on a failure holds none; `try_unwrap` below is the
        // final word either way.)
        let thread = self
            .running
            .checkpointer
            .lock()
            .as_ref()
            .is_some_and(|handle| !handle.is_finished());
        let transactions = Arc::strong_count(self.inner()).saturating_sub(1 + usize::from(thread));
        if handles > 1 || transactions > 0 {
            return Err(DbError::StillInUse {
                handles: handles - 1,
                transactions,
            });
        }
        self.running.stop_checkpointer();
        self.inner().check_usable()?;
        checkpoint::run(self.inner(), DbState::DirtyShutdown)?;
        let running = Arc::try_unwrap(self.running)
            .unwrap_or_else(|_| unreachable!("the last handle was checked above"));
        let inner = Arc::clone(&running.inner);
        drop(running);
        let inner = Arc::try_unwrap(inner).map_err(|inner| DbError::StillInUse {
            handles: 0,
            transactions: Arc::strong_count(&inner) - 1,
        })?;
        checkpoint::close_clean(inner)
    }
}

impl Inner {
    pub fn check_usable(&self) -> Result<(), DbError> {
        match self.poison.lock().as_ref() {
            Some(cause) => Err(DbError::Poisoned(Box::new(cause.clone()))),
            None => Ok(()),
        }
    }

    /// Records a failure that leaves memory and disk out of step; the database then refuses
    /// writes until reopened (recovery rebuilds from the log).
    pub fn poison(&self, error: &DbError) {
        let mut poison = self.poison.lock();
        if poison.is_none() {
            *poison = Some(error.clone());
        }
    }

    /// Before a durable commit in `generation` is acknowledged: the header must require that
    /// generation, so that the loss of the log file holding it (the current generation,
    /// `E00.log`) is refused at open rather than taken for a roll cut by a crash. One header
    /// write per generation.
    pub fn require_generation(&self, generation: u32) -> Result<(), DbError> {
        if generation <= self.required_generation.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut header_state = self.header.lock();
        let previous = header_state.header.clone();
        if generation > previous.log_required.1 {
            let header = DbHeader {
                sequence: previous.sequence + 1,
                log_required: (previous.log_required.0, generation),
                ..previous
            };
            let chain = header_state.chains[header_state.slot as usize].clone();
            if let Err(error) = checkpoint::write_header(self, &mut header_state, header, chain) {
                self.poison(&error);
                return Err(error);
            }
        }
        self.required_generation
            .fetch_max(generation, Ordering::AcqRel);
        Ok(())
    }

    /// The measurements, with the newest commit (or replayed transaction) ending at `end`.
    pub fn metrics(&self, end: LogPosition) -> Metrics {
        let checkpoint = LogPosition::from_u64(self.checkpoint_position.load(Ordering::Relaxed));
        let log = self.log.latencies();
        Metrics {
            commits: self.commits.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            commit_latency: self.latencies.commit.snapshot(),
            log_sync_latency: log.map(|log| log.sync.snapshot()).unwrap_or_default(),
            log_flush_latency: log.map(|log| log.flush.snapshot()).unwrap_or_default(),
            checkpoint_latency: self.latencies.checkpoint.snapshot(),
            replay_latency: self.latencies.replay.snapshot(),
            checkpoint_depth_bytes: self.depth(end),
            checkpoint_depth_generations: end.generation.saturating_sub(checkpoint.generation),
        }
    }

    /// Log bytes between the checkpoint and `end`.
    pub fn depth(&self, end: LogPosition) -> u64 {
        let checkpoint = LogPosition::from_u64(self.checkpoint_position.load(Ordering::Relaxed));
        let generation_bytes = self.log.generation_bytes();
        let generations = end.generation.saturating_sub(checkpoint.generation) as u64;
        (generations * generation_bytes + end.offset as u64)
            .saturating_sub(checkpoint.offset as u64)
    }

    /// After a commit ending at `end`: wakes the checkpointer past half the depth, and
    /// checkpoints inline past twice the depth (or without a checkpointer).
    pub fn after_commit(&self, end: LogPosition) -> Result<(), DbError> {
        let depth = self.depth(end);
        let limit = self.options.checkpoint_depth_bytes;
        let due = depth
            >= if self.options.background {
                limit * 2
            } else {
                limit
            };
        if self.options.background && !due && depth >= limit / 2 {
            self.wakeup.notify_all();
        }
        if due {
            checkpoint::run(self, DbState::DirtyShutdown)?;
        }
        // The checkpoint file trails the header by one checkpoint: after a long interval
        // (one large transaction, say) it holds that whole interval's generations. With
        // circular logging one more checkpoint moves it up, and they are deleted.
        if super::circular::trail(self) >= limit * 2 {
            checkpoint::run(self, DbState::DirtyShutdown)?;
        }
        Ok(())
    }
}

fn spawn_checkpointer(inner: Arc<Inner>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("bluejet-checkpoint".into())
        .spawn(move || loop {
            {
                let mut stopping = inner.stopping.lock();
                if *stopping {
                    return;
                }
                inner.wakeup.wait_for(&mut stopping, Duration::from_secs(1));
                if *stopping {
                    return;
                }
            }
            let end = inner.snapshots.published().end;
            let limit = inner.options.checkpoint_depth_bytes;
            let trailing = super::circular::trail(&inner) >= limit * 2;
            if inner.depth(end) < limit / 2 && !trailing {
                continue;
            }
            if let Err(error) = checkpoint::run(&inner, DbState::DirtyShutdown) {
                // Reported now: writers only see it at their next call, as a poisoned database.
                tracing::error!(
                    directory = %inner.directory.display(),
                    checkpoint = %LogPosition::from_u64(inner.checkpoint_position.load(Ordering::Relaxed)),
                    %error,
                    "the background checkpoint failed; the database refuses writes until reopened"
                );
                inner.poison(&error);
                return;
            }
        })
        .expect("spawning the checkpoint thread")
}
