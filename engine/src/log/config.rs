//! Configuration of a log stream.

use super::{BaseName, MAX_GENERATION_BYTES, MIN_GENERATION_BYTES};
use crate::error::LogError;
use crate::file::{FileSystem, OsFileSystem};
use std::sync::Arc;
use std::time::Duration;

/// How a log stream is set up. `LogConfig::default()` gives the documented defaults.
///
/// ```
/// use bluejet_engine::log::{BaseName, LogConfig};
/// let config = LogConfig {
///     base_name: BaseName::new("E01").unwrap(),
///     generation_bytes: 256 << 10,
///     ..LogConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone)]
pub struct LogConfig {
    /// The 3-character base name (default `E00`).
    pub base_name: BaseName,
    /// Size of every generation file: 128 KiB to 64 MiB, a multiple of 4 KiB (default 1 MiB).
    pub generation_bytes: u64,
    /// Bound on log buffer memory: records appended and not yet durable (default 4 MiB).
    /// Appenders wait for a flush when it is full.
    pub buffer_bytes: usize,
    /// A lazy commit is durable within this interval plus one flush (default 10 ms).
    pub lazy_flush_interval: Duration,
    /// Close a generation holding a durable commit after this long without appends
    /// (default 5 s); `None` turns idle rolls off.
    pub idle_roll_interval: Option<Duration>,
    /// Run the background threads: lazy syncs, idle rolls and preparing the next generation;
    /// write-behind of a buffer past half full; closing full generations.
    /// Tests that want determinism turn it off; the log then does all of it inline.
    pub background: bool,
    /// Timeline of a new stream (default 1).
    pub timeline: u64,
    /// Refuse to open a stream whose newest generation is on a newer timeline than
    /// `timeline` ([`LogError::OlderTimeline`]): timelines only move forward, and a writer
    /// holding an older epoch must not continue a newer stream (default off: tools that
    /// only read or repair open any timeline).
    pub fence_timeline: bool,
    /// Size of the log tap's ring, the newest durable record-stream bytes kept in memory for
    /// block-mode replication (see [`super::tap`]): 0 (the default) means no tap, and costs
    /// nothing; at most [`super::tap::MAX_TAP_BYTES`].
    pub tap_bytes: usize,
    /// The file layer.
    pub file_system: Arc<dyn FileSystem>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            base_name: BaseName::default(),
            generation_bytes: 1 << 20,
            buffer_bytes: 4 << 20,
            lazy_flush_interval: Duration::from_millis(10),
            idle_roll_interval: Some(Duration::from_secs(5)),
            background: true,
            timeline: 1,
            fence_timeline: false,
            tap_bytes: 0,
            file_system: Arc::new(OsFileSystem),
        }
    }
}

impl std::fmt::Debug for LogConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LogConfig")
            .field("base_name", &self.base_name.as_str())
            .field("generation_bytes", &self.generation_bytes)
            .field("buffer_bytes", &self.buffer_bytes)
            .field("lazy_flush_interval", &self.lazy_flush_interval)
            .field("idle_roll_interval", &self.idle_roll_interval)
            .field("background", &self.background)
            .field("timeline", &self.timeline)
            .field("fence_timeline", &self.fence_timeline)
            .field("tap_bytes", &self.tap_bytes)
            .finish_non_exhaustive()
    }
}

impl LogConfig {
    /// Checks every value against its bounds.
    pub fn validate(&self) -> Result<(), LogError> {
        let size = self.generation_bytes;
        if !(MIN_GENERATION_BYTES..=MAX_GENERATION_BYTES).contains(&size)
            || !size.is_multiple_of(4096)
        {
            return Err(LogError::InvalidConfig(format!(
                "generation size {size} must be a multiple of 4096 from {MIN_GENERATION_BYTES} to {MAX_GENERATION_BYTES}"
            )));
        }
        if self.buffer_bytes < 64 << 10 {
            return Err(LogError::InvalidConfig(format!(
                "log buffer of {} bytes is below the minimum of 64 KiB",
                self.buffer_bytes
            )));
        }
        if self.tap_bytes > super::tap::MAX_TAP_BYTES {
            return Err(LogError::InvalidConfig(format!(
                "log tap of {} bytes is above the maximum of {} bytes",
                self.tap_bytes,
                super::tap::MAX_TAP_BYTES
            )));
        }
        if self.timeline == 0 {
            return Err(LogError::InvalidConfig("timeline 0 is reserved".into()));
        }
        Ok(())
    }
}
