//! Running totals of each benchmark (every batch criterion ran, warm-up included), printed
//! as one table at the end so the six figures and their ratios sit side by side.

use bluejet_engine::log::LogStats;
use std::time::Duration;

/// What one benchmark did in all its batches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Commits (or records) made, or bytes written for a bandwidth benchmark.
    pub units: u64,
    /// Time measured.
    pub elapsed: Duration,
    /// Data syncs issued (the log's own counter for BlueJet).
    pub syncs: u64,
    /// Commits, for the syncs-per-commit figure.
    pub commits: u64,
    /// Generations closed (BlueJet only).
    pub rolls: u64,
}

impl Tally {
    /// Adds one batch.
    pub fn add(&mut self, units: u64, elapsed: Duration, syncs: u64, commits: u64) {
        self.units += units;
        self.elapsed += elapsed;
        self.syncs += syncs;
        self.commits += commits;
    }

    /// Adds one BlueJet batch from the log counters before and after it.
    pub fn add_log(&mut self, units: u64, elapsed: Duration, before: LogStats, after: LogStats) {
        self.add(
            units,
            elapsed,
            after.syncs - before.syncs,
            after.commits - before.commits,
        );
        self.rolls += after.rolls - before.rolls;
    }

    /// Units per second.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds == 0.0 {
            0.0
        } else {
            self.units as f64 / seconds
        }
    }

    /// Syncs per commit, if any commit was counted.
    pub fn syncs_per_commit(&self) -> Option<f64> {
        (self.commits > 0).then(|| self.syncs as f64 / self.commits as f64)
    }
}
