//! What a database measures as it works: latency histograms of its commits, log syncs and
//! flushes, checkpoints and replayed generations, and how far its checkpoint lags behind.
//!
//! Recording is a few relaxed atomic additions (see [`LatencyHistogram`]); reading is
//! [`Database::metrics`](crate::Database::metrics) or
//! [`PassiveDatabase::metrics`](crate::db::PassiveDatabase::metrics), a [`Metrics`] snapshot.
//! The library exposes them and serves nothing itself: `bluejet node run --metrics ADDR`
//! serves them over HTTP in the Prometheus text format.

mod histogram;

pub use histogram::{HistogramSnapshot, LatencyHistogram};

/// The latencies a database records (shared by the active and the passive database).
#[derive(Debug, Default)]
pub(crate) struct DbLatencies {
    /// A commit, from `commit` called to its return (durable when asked).
    pub commit: LatencyHistogram,
    /// A checkpoint: pages written, file synced, header flipped.
    pub checkpoint: LatencyHistogram,
    /// A passive copy's replay of one shipped generation.
    pub replay: LatencyHistogram,
}

/// The latencies a log stream records.
#[derive(Debug, Default)]
pub(crate) struct LogLatencies {
    /// One fdatasync of a generation file.
    pub sync: LatencyHistogram,
    /// One group flush that syncs: the buffered records written, then synced.
    pub flush: LatencyHistogram,
}

/// A database's measurements at one moment.
///
/// ```
/// use bluejet_engine::{Database, Options};
/// let directory = tempfile::tempdir().unwrap();
/// let db = Database::open(directory.path(), Options::default()).unwrap();
/// let mut write = db.begin_write().unwrap();
/// write.create_table("mail").unwrap();
/// write.insert("mail", b"<a@x>", b"hello").unwrap();
/// write.commit().unwrap();
/// let metrics = db.metrics();
/// assert_eq!(metrics.commits, 1);
/// assert_eq!(metrics.commit_latency.count(), 1);
/// assert!(metrics.checkpoint_depth_bytes > 0);
/// db.close().unwrap();
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// Transactions committed since open (replayed ones on a passive copy).
    pub commits: u64,
    /// Checkpoints completed since open.
    pub checkpoints: u64,
    /// Commit latencies (empty on a passive copy).
    pub commit_latency: HistogramSnapshot,
    /// Log fdatasync latencies (empty on a passive copy).
    pub log_sync_latency: HistogramSnapshot,
    /// Latencies of the log's group flushes that sync (empty on a passive copy).
    pub log_flush_latency: HistogramSnapshot,
    /// Checkpoint latencies.
    pub checkpoint_latency: HistogramSnapshot,
    /// Latencies of replaying one shipped generation (empty on an active database).
    pub replay_latency: HistogramSnapshot,
    /// Log bytes between the checkpoint and the newest commit: what recovery would replay.
    pub checkpoint_depth_bytes: u64,
    /// Log generations between the checkpoint's and the newest commit's.
    pub checkpoint_depth_generations: u32,
}
