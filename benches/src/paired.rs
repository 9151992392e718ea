//! Paired comparisons for a shared, noisy machine: the baseline and BlueJet take turns in
//! short rounds, so load that comes and goes hits both alike, and the median of the per-round
//! ratios says how BlueJet compares even when the absolute figures drift.

use std::time::Duration;

/// One batch of work: given a count, does it and returns (units done, time taken).
pub type Batch<'a> = dyn FnMut(u64) -> (u64, Duration) + 'a;

/// Runs `batch` with doubling counts until `target` time has been measured; units per second.
pub fn rate_for(target: Duration, batch: &mut Batch<'_>) -> f64 {
    let mut count = 1;
    let mut units = 0;
    let mut elapsed = Duration::ZERO;
    while elapsed < target {
        let (done, taken) = batch(count);
        units += done;
        elapsed += taken;
        count *= 2;
    }
    units as f64 / elapsed.as_secs_f64()
}

/// The rates of both sides in every round.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    /// Baseline rate per round.
    pub baseline: Vec<f64>,
    /// BlueJet rate per round.
    pub ours: Vec<f64>,
}

impl Comparison {
    /// `rounds` rounds of `target` each side, the side going first alternating.
    pub fn run(
        rounds: usize,
        target: Duration,
        baseline: &mut Batch<'_>,
        ours: &mut Batch<'_>,
    ) -> Self {
        Self::alternate(rounds, &mut || rate_for(target, baseline), &mut || {
            rate_for(target, ours)
        })
    }

    /// `rounds` rounds of one batch each side, of counts the caller chose to do the same
    /// work (for bandwidth: the same bytes), the side going first alternating. Equal volumes
    /// keep a write cache below the file system (the host's, on a virtual disk) from
    /// favouring the side that happens to write less per batch.
    pub fn run_equal(
        rounds: usize,
        (baseline_count, ours_count): (u64, u64),
        baseline: &mut Batch<'_>,
        ours: &mut Batch<'_>,
    ) -> Self {
        let rate = |batch: &mut Batch<'_>, count| {
            let (units, taken) = batch(count);
            units as f64 / taken.as_secs_f64()
        };
        Self::alternate(rounds, &mut || rate(baseline, baseline_count), &mut || {
            rate(ours, ours_count)
        })
    }

    /// Measures both sides `rounds` times, the side going first alternating.
    fn alternate(
        rounds: usize,
        baseline: &mut dyn FnMut() -> f64,
        ours: &mut dyn FnMut() -> f64,
    ) -> Self {
        let mut comparison = Self::default();
        for round in 0..rounds {
            if round % 2 == 0 {
                comparison.baseline.push(baseline());
                comparison.ours.push(ours());
            } else {
                comparison.ours.push(ours());
                comparison.baseline.push(baseline());
            }
        }
        comparison
    }

    /// Per-round ratios ours / baseline, sorted.
    pub fn ratios(&self) -> Vec<f64> {
        let mut ratios: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.baseline)
            .map(|(ours, baseline)| ours / baseline)
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios
    }

    /// Median of the per-round ratios.
    pub fn median_ratio(&self) -> f64 {
        median(&self.ratios())
    }

    /// Median baseline rate.
    pub fn median_baseline(&self) -> f64 {
        let mut rates = self.baseline.clone();
        rates.sort_by(f64::total_cmp);
        median(&rates)
    }

    /// Median BlueJet rate.
    pub fn median_ours(&self) -> f64 {
        let mut rates = self.ours.clone();
        rates.sort_by(f64::total_cmp);
        median(&rates)
    }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        length if length % 2 == 1 => sorted[length / 2],
        length => (sorted[length / 2 - 1] + sorted[length / 2]) / 2.0,
    }
}
