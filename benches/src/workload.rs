//! BlueJet workloads: commits of one 1 KiB put each, durable or lazy, from one thread or many.

use bluejet_engine::log::{Log, LogStats};
use bluejet_engine::LogError;
use bluejet_engine::{Durability, LogConfig};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The table every put goes to.
pub const TABLE: &str = "messages";

/// A log under test and the value it commits.
pub struct Workload {
    /// The open log.
    pub log: Log,
    value: Vec<u8>,
    next_key: AtomicU64,
}

impl Workload {
    /// Opens a new stream in `directory` with the default configuration (1 MiB generations,
    /// 4 MiB buffer, background thread on) and commits `value`s.
    pub fn open(directory: &Path, value: Vec<u8>) -> Result<Self, LogError> {
        Self::open_with(directory, value, LogConfig::default())
    }

    /// Opens a new stream in `directory` with `config`.
    pub fn open_with(
        directory: &Path,
        value: Vec<u8>,
        config: LogConfig,
    ) -> Result<Self, LogError> {
        Ok(Self {
            log: Log::open(directory, config)?,
            value,
            next_key: AtomicU64::new(0),
        })
    }

    /// One transaction: begin, one put of the value under a fresh 8-byte key, commit.
    pub fn commit(&self, durability: Durability) -> Result<(), LogError> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let mut transaction = self.log.transaction();
        transaction.put(TABLE, &key, &self.value);
        transaction.commit(durability).map(|_| ())
    }

    /// Record bytes one commit appends (framing included), measured on this log.
    pub fn bytes_per_commit(&self) -> Result<u64, LogError> {
        let before = self.log.stats();
        self.commit(Durability::Durable)?;
        let after = self.log.stats();
        Ok((after.bytes - before.bytes) / (after.commits - before.commits))
    }

    /// `count` durable commits from this thread.
    pub fn durable(&self, count: u64) -> Result<Duration, LogError> {
        let start = Instant::now();
        for _ in 0..count {
            self.commit(Durability::Durable)?;
        }
        Ok(start.elapsed())
    }

    /// `count` durable commits spread over `threads` threads, each with its own transactions.
    pub fn durable_concurrent(&self, threads: u64, count: u64) -> Result<Duration, LogError> {
        let start = Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|index| {
                    let share = count / threads + u64::from(index < count % threads);
                    scope.spawn(move || {
                        (0..share).try_for_each(|_| self.commit(Durability::Durable))
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|worker| worker.join().expect("committer panicked"))
        })?;
        Ok(start.elapsed())
    }

    /// `count` lazy commits, then one flush making them all durable.
    pub fn lazy_then_flush(&self, count: u64) -> Result<Duration, LogError> {
        let start = Instant::now();
        for _ in 0..count {
            self.commit(Durability::Lazy)?;
        }
        self.log.flush()?;
        Ok(start.elapsed())
    }

    /// The log's counters.
    pub fn stats(&self) -> LogStats {
        self.log.stats()
    }

    /// Outside the measurement: moves the checkpoint to the durable end and deletes the closed
    /// generations below it, so the directory does not grow by a file per MiB for the whole run.
    pub fn tidy(&self) -> Result<(), LogError> {
        let durable = self.log.durable_position();
        self.log.advance_checkpoint(durable)?;
        self.log.truncate_below(durable)?;
        Ok(())
    }

    /// Closes the log (whatever position it reports at closing is not needed here).
    pub fn close(self) -> Result<(), LogError> {
        self.log.close().map(|_| ())
    }
}
