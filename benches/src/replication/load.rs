//! The active's peak durable commit rate: 8 threads committing one small message each per
//! transaction, as fast as group commit allows.

use super::BenchResult;
use bluejet_engine::Database;
use bluejet_engine::LogPosition;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Value bytes of one commit (a small message or a flag change with its index entry).
pub const VALUE_BYTES: usize = 512;

/// What a load produced.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Commits acknowledged.
    pub commits: u64,
    /// Seconds of load.
    pub seconds: f64,
    /// Each commit's acknowledgement time and log end (when `record` was set).
    pub acknowledged: Vec<(Instant, LogPosition)>,
}

impl LoadResult {
    /// Commits per second.
    pub fn rate(&self) -> f64 {
        self.commits as f64 / self.seconds
    }
}

/// Runs `threads` committers for `duration`; each pauses `pause` between commits (zero for
/// peak load). With `record`, keeps every commit's acknowledgement time and position.
pub fn run(
    db: &Database,
    threads: usize,
    duration: Duration,
    pause: Duration,
    record: bool,
) -> BenchResult<LoadResult> {
    let stop = AtomicBool::new(false);
    let commits = AtomicU64::new(0);
    let acknowledged = Mutex::new(Vec::new());
    let started = Instant::now();
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (stop, commits, acknowledged, failure) = (&stop, &commits, &acknowledged, &failure);
            scope.spawn(move || {
                let value = vec![b'm'; VALUE_BYTES];
                let mut sequence = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{thread:02}-{sequence:010}");
                    sequence += 1;
                    let result = db.begin_write().and_then(|mut write| {
                        write.create_table("messages")?;
                        write.insert("messages", key.as_bytes(), &value)?;
                        write.commit()
                    });
                    match result {
                        Ok(committed) => {
                            commits.fetch_add(1, Ordering::Relaxed);
                            if record {
                                acknowledged.lock().push((Instant::now(), committed.end));
                            }
                        }
                        Err(error) => {
                            *failure.lock() = Some(error.to_string());
                            return;
                        }
                    }
                    if !pause.is_zero() {
                        std::thread::sleep(pause);
                    }
                }
            });
        }
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    if let Some(error) = failure.into_inner() {
        return Err(error.into());
    }
    Ok(LoadResult {
        commits: commits.into_inner(),
        seconds: started.elapsed().as_secs_f64(),
        acknowledged: acknowledged.into_inner(),
    })
}
