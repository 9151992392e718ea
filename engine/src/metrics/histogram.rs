//! A latency histogram cheap enough for the commit path: a fixed array of atomic counters
//! with power-of-two bucket bounds, so that recording is an index computed from the leading
//! zeros and two relaxed additions, with no lock and no allocation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Finite buckets: upper bounds of 1 µs, 2 µs, 4 µs, ... 2^25 µs (about 33.5 s).
const FINITE_BUCKETS: usize = 26;
/// The finite buckets and the overflow bucket (`+Inf`).
const SLOTS: usize = FINITE_BUCKETS + 1;

/// Latencies counted into buckets whose upper bounds double from 1 µs to about 33.5 s, plus
/// one for anything longer, with their sum.
///
/// ```
/// use bluejet_engine::LatencyHistogram;
/// use std::time::Duration;
/// let histogram = LatencyHistogram::default();
/// histogram.record(Duration::from_micros(3));
/// histogram.record(Duration::from_millis(2));
/// let snapshot = histogram.snapshot();
/// assert_eq!(snapshot.count(), 2);
/// // 3 µs is counted under the 4 µs bound, 2 ms under 2.048 ms.
/// assert_eq!(snapshot.cumulative().find(|(bound, _)| *bound >= 4e-6).unwrap().1, 1);
/// assert_eq!(snapshot.cumulative().last().unwrap(), (f64::INFINITY, 2));
/// ```
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; SLOTS],
    sum_nanos: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Counts one latency.
    pub fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts as they are now. Recordings that run meanwhile may be in the buckets and
    /// not yet in the sum; the count is always the buckets' total.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect(),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

/// The bucket of a latency: the smallest bound of 2^i µs at or above it (the overflow bucket
/// past the last).
fn bucket_of(nanos: u64) -> usize {
    let micros = nanos.div_ceil(1_000);
    if micros <= 1 {
        return 0;
    }
    // ceil(log2(micros)) for micros >= 2.
    let index = (u64::BITS - (micros - 1).leading_zeros()) as usize;
    index.min(FINITE_BUCKETS)
}

/// The upper bound of bucket `index` in seconds (infinite for the overflow bucket).
fn upper_bound_seconds(index: usize) -> f64 {
    if index >= FINITE_BUCKETS {
        f64::INFINITY
    } else {
        (1u64 << index) as f64 / 1e6
    }
}

/// A histogram's counts at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Per bucket, not cumulative; the last is the overflow bucket.
    buckets: Vec<u64>,
    sum_nanos: u64,
}

/// Empty, with every bucket (so that its cumulative form still ends at infinity).
impl Default for HistogramSnapshot {
    fn default() -> Self {
        Self {
            buckets: vec![0; SLOTS],
            sum_nanos: 0,
        }
    }
}

impl HistogramSnapshot {
    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Their sum, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos as f64 / 1e9
    }

    /// Each bucket's upper bound in seconds with its own count (not cumulative); the last
    /// bound is infinite.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        (self.buckets.iter().enumerate()).map(|(index, count)| (upper_bound_seconds(index), *count))
    }

    /// Each bucket's upper bound in seconds with the count at or below it, as Prometheus
    /// exposes them; the last bound is infinite and its count is [`count`](Self::count).
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.buckets().scan(0, |total, (bound, count)| {
            *total += count;
            Some((bound, *total))
        })
    }

    /// The upper bound in seconds of the bucket holding quantile `q` (0 to 1): within a
    /// factor of two of the true value. `None` when nothing was counted.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        // `as` from a float saturates, and the product is in 0..=count.
        #[allow(clippy::cast_possible_truncation)]
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        self.cumulative()
            .find(|(_, total)| *total >= rank)
            .map(|(bound, _)| bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_go_to_the_smallest_bound_at_or_above_them() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1_000), 0);
        assert_eq!(bucket_of(1_001), 1);
        assert_eq!(bucket_of(2_000), 1);
        assert_eq!(bucket_of(2_001), 2);
        assert_eq!(bucket_of(4_000), 2);
        assert_eq!(bucket_of(1_000_000), 10); // 1 ms <= 1.024 ms
        assert_eq!(bucket_of((1 << 25) * 1_000), FINITE_BUCKETS - 1);
        assert_eq!(bucket_of((1 << 25) * 1_000 + 1), FINITE_BUCKETS);
        assert_eq!(bucket_of(u64::MAX), FINITE_BUCKETS);
    }

    #[test]
    fn every_latency_is_within_its_bucket() {
        for micros in [1u64, 2, 3, 7, 100, 999, 65_536, 1_000_000, 33_554_432] {
            let index = bucket_of(micros * 1_000);
            let bound = upper_bound_seconds(index);
            assert!(micros as f64 / 1e6 <= bound, "{micros} µs above {bound}");
            if index > 0 {
                let below = upper_bound_seconds(index - 1);
                assert!(micros as f64 / 1e6 > below, "{micros} µs fits {below}");
            }
        }
    }

    #[test]
    fn cumulative_counts_grow_and_end_at_the_count() {
        let histogram = LatencyHistogram::default();
        for micros in [1, 5, 5, 300, 70_000, 100_000_000] {
            histogram.record(Duration::from_micros(micros));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 6);
        let cumulative: Vec<_> = snapshot.cumulative().collect();
        assert_eq!(cumulative.len(), SLOTS);
        assert!(cumulative.windows(2).all(|pair| pair[0].1 <= pair[1].1));
        assert!(cumulative.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert_eq!(cumulative.last(), Some(&(f64::INFINITY, 6)));
        // 100 s is past the last finite bound: only the overflow bucket holds it.
        assert_eq!(cumulative[FINITE_BUCKETS - 1].1, 5);
        let sum = 1 + 5 + 5 + 300 + 70_000 + 100_000_000;
        assert!((snapshot.sum_seconds() - sum as f64 / 1e6).abs() < 1e-9);
    }

    #[test]
    fn quantiles_name_the_bucket_holding_them() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.snapshot().quantile_bound(0.5), None);
        assert_eq!(histogram.snapshot(), HistogramSnapshot::default());
        for _ in 0..99 {
            histogram.record(Duration::from_micros(3));
        }
        histogram.record(Duration::from_millis(10));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.quantile_bound(0.5), Some(4e-6));
        assert_eq!(snapshot.quantile_bound(0.99), Some(4e-6));
        assert_eq!(snapshot.quantile_bound(1.0), Some(16_384e-6));
    }

    #[test]
    fn recording_from_threads_loses_nothing() {
        let histogram = LatencyHistogram::default();
        std::thread::scope(|scope| {
            for thread in 0..4u64 {
                let histogram = &histogram;
                scope.spawn(move || {
                    for i in 0..1_000 {
                        histogram.record(Duration::from_micros(thread * 1_000 + i));
                    }
                });
            }
        });
        assert_eq!(histogram.snapshot().count(), 4_000);
    }
}
