//! Replication lag under steady load: from a commit's acknowledgement on the active to the
//! moment the passive's replayed position passes its commit record, with the replication
//! service running as a mail server would run it.

use super::load;
use super::BenchResult;
use bluejet_engine::Database;
use bluejet_engine::LogPosition;
use bluejet_replication::{ReplicaConfig, ReplicationService};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Lag percentiles.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lag {
    /// Commits measured.
    pub commits: usize,
    /// Commits per second of the steady load.
    pub rate: f64,
    /// Median lag, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// Runs `threads` committers pausing `pause` each for `duration` with the service running.
pub fn measure(
    active: &Database,
    mut config: ReplicaConfig,
    threads: usize,
    pause: Duration,
    duration: Duration,
) -> BenchResult<Lag> {
    config.poll_interval = Duration::from_millis(10);
    let service = ReplicationService::start(config)?;
    let stop = AtomicBool::new(false);
    let (samples, result) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sample(&service, &stop));
        let result = load::run(active, threads, duration, pause, true);
        let last_full = active.log().current_generation();
        let drained = active
            .log()
            .roll()
            .map_err(|e| e.to_string())
            .and_then(|_| {
                let end = active.begin_read().map_err(|e| e.to_string())?.end();
                service
                    .wait_replayed(end, Duration::from_secs(60))
                    .map_err(|e| e.to_string())
            });
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.join().expect("the sampler");
        (
            samples,
            result.and_then(|r| drained.map(|_| (r, last_full)).map_err(Into::into)),
        )
    });
    service.stop()?;
    let (load, last_full) = result?;
    // The generation open when the load stopped is closed by hand: leave its commits out.
    let mut lags: Vec<f64> = load
        .acknowledged
        .iter()
        .filter(|(_, end)| end.generation < last_full)
        .filter_map(|(at, end)| replayed_after(&samples, *end, *at))
        .collect();
    lags.sort_by(f64::total_cmp);
    // A fraction of the last index: in 0..len, and `as` from a float saturates.
    #[allow(clippy::cast_possible_truncation)]
    let percentile = |p: f64| lags.get(((lags.len() as f64 - 1.0) * p) as usize).copied();
    Ok(Lag {
        commits: lags.len(),
        rate: load.rate(),
        p50_ms: percentile(0.5).unwrap_or(f64::NAN),
        p99_ms: percentile(0.99).unwrap_or(f64::NAN),
        max_ms: lags.last().copied().unwrap_or(f64::NAN),
    })
}

/// The passive's replayed position every millisecond.
fn sample(service: &ReplicationService, stop: &AtomicBool) -> Vec<(Instant, LogPosition)> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(passive) = service.passive() {
            samples.push((Instant::now(), passive.replayed()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    samples
}

/// Milliseconds from `acknowledged` to the first sample at or past `end`.
fn replayed_after(
    samples: &[(Instant, LogPosition)],
    end: LogPosition,
    acknowledged: Instant,
) -> Option<f64> {
    let index = samples.partition_point(|(_, position)| *position < end);
    let (at, _) = samples.get(index)?;
    Some(at.saturating_duration_since(acknowledged).as_secs_f64() * 1e3)
}
