//! How a database is opened.

use super::DbError;
use crate::log::{Durability, LogConfig};
use crate::page::format::PAGE_SIZES;

/// Options of [`Database::open`](super::Database::open). `Options::default()` gives the
/// documented defaults.
///
/// ```
/// use bluejet_engine::Options;
/// let options = Options {
///     page_size: 16384,
///     cache_bytes: 64 << 20,
///     ..Options::default()
/// };
/// assert!(options.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    /// Page size of a new database: 4, 8, 16 or 32 KiB (default 8 KiB). An existing
    /// database keeps its own.
    pub page_size: usize,
    /// Bound on the page cache (default 256 MiB).
    pub cache_bytes: usize,
    /// Log bytes after the checkpoint that start a checkpoint (default 20 MiB): recovery
    /// replays at most about this much (more only when one transaction alone is larger).
    pub checkpoint_depth_bytes: u64,
    /// Durability of `commit()` (default durable).
    pub durability: Durability,
    /// Compress long values with zstd when it saves at least a tenth (default on).
    pub compression: bool,
    /// The log, which lives in the database's directory; its file layer is the database's.
    pub log: LogConfig,
    /// Run the background checkpointer (default on); without it, checkpoints happen inline
    /// when the depth is reached.
    pub background: bool,
    /// Consulted before every commit (default: none, every commit is admitted).
    pub commit_gate: super::gate::Gate,
    /// After a recovery that redid transactions, read every entry and check the content
    /// summary the database stores against it (default on). It costs one read of the whole
    /// database per crash recovery; without it recovery still checks every proof point it
    /// replays, which only sees the entries the replayed transactions changed.
    pub recount_after_recovery: bool,
    /// Circular logging (default on): after each checkpoint, delete the closed log
    /// generations no recovery can need, bounding the directory. Set it off when something
    /// outside the database reads the log (a replica's shipper, incremental backups); the
    /// replication crate does, and writes the directory's retention marker
    /// (`bluejet.keep-logs`), which keeps circular logging off for every later open too.
    pub circular_logging: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            page_size: 8192,
            cache_bytes: 256 << 20,
            checkpoint_depth_bytes: 20 << 20,
            durability: Durability::Durable,
            compression: true,
            log: LogConfig::default(),
            background: true,
            commit_gate: super::gate::Gate::open(),
            recount_after_recovery: true,
            circular_logging: true,
        }
    }
}

impl Options {
    /// Checks every value.
    pub fn validate(&self) -> Result<(), DbError> {
        if !PAGE_SIZES.contains(&self.page_size) {
            return Err(DbError::InvalidOptions(format!(
                "page size {} is not one of {PAGE_SIZES:?}",
                self.page_size
            )));
        }
        if self.cache_bytes < 1 << 20 {
            return Err(DbError::InvalidOptions(
                "the cache needs at least 1 MiB".into(),
            ));
        }
        if self.checkpoint_depth_bytes < 1 << 20 {
            return Err(DbError::InvalidOptions(
                "the checkpoint depth must be at least 1 MiB".into(),
            ));
        }
        self.log.validate()?;
        Ok(())
    }
}
