//! The timed phases, run on one store in order. Each phase checks what it did (values read
//! back, entries visited, keys removed), so a fast but wrong engine fails instead of winning.

use super::engine::{Scan, Snapshot, StoreError, StoreResult, StoreUnderTest};
use super::report::{Figure, Metric};
use super::workload::{Dataset, Record, RECORD_BYTES, VALUE_BYTES};
use std::cell::Cell;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs every phase on `store`, whose files are all in `directory`, printing each figure as
/// it is measured under the engine's `name`.
pub fn run_all(
    name: &str,
    store: &dyn StoreUnderTest,
    data: &Dataset,
    directory: &Path,
) -> StoreResult<Vec<Figure>> {
    let mut figures = Vec::new();
    let mut record = |metric, value| {
        let figure = Figure { metric, value };
        println!("{name:>8}: {}", figure.describe());
        figures.push(figure);
    };
    record(Metric::BulkLoad, bulk_load(store, data)?);
    // Measured right after the load: the only point where every engine holds the same data.
    let bytes = store.database_bytes(directory)?;
    record(Metric::SizeBytes, bytes as f64);
    record(
        Metric::SizeRatio,
        bytes as f64 / (data.loaded.len() * RECORD_BYTES) as f64,
    );
    record(Metric::SingleCommits, single_commits(store, data)?);
    record(Metric::BatchedCommits, batched_commits(store, data)?);
    record(Metric::ConcurrentCommits, concurrent_commits(store, data)?);
    record(Metric::Reads1Thread, random_reads(store, data, 1)?);
    record(Metric::Reads2Threads, random_reads(store, data, 2)?);
    record(Metric::RangeReads, range_reads(store, data)?);
    record(Metric::Removal, removal(store, data)?);
    Ok(figures)
}

/// Phase 1, in seconds: every loaded record in one transaction.
fn bulk_load(store: &dyn StoreUnderTest, data: &Dataset) -> StoreResult<f64> {
    let mut session = store.session()?;
    let ((), elapsed) = timed(|| session.insert(&data.loaded))?;
    Ok(elapsed.as_secs_f64())
}

/// Phase 2, in commits per second: one durable commit per insert, one thread.
fn single_commits(store: &dyn StoreUnderTest, data: &Dataset) -> StoreResult<f64> {
    let mut session = store.session()?;
    let ((), elapsed) = timed(|| {
        data.singles
            .iter()
            .try_for_each(|record| session.insert(std::slice::from_ref(record)))
    })?;
    Ok(rate(data.singles.len(), elapsed))
}

/// Phase 3, in seconds: one durable commit per batch.
fn batched_commits(store: &dyn StoreUnderTest, data: &Dataset) -> StoreResult<f64> {
    let mut session = store.session()?;
    let ((), elapsed) = timed(|| {
        data.batched
            .chunks(data.shape.batch_size)
            .try_for_each(|batch| session.insert(batch))
    })?;
    Ok(elapsed.as_secs_f64())
}

/// Phase 4, in commits per second over all threads: every thread commits its own inserts one
/// at a time, all starting together.
fn concurrent_commits(store: &dyn StoreUnderTest, data: &Dataset) -> StoreResult<f64> {
    let shares: Vec<&[Record]> = data
        .concurrent
        .chunks(data.shape.commits_per_thread)
        .collect();
    let elapsed = together(shares.len(), |index, start| {
        let mut session = store.session()?;
        start.wait();
        shares[index]
            .iter()
            .try_for_each(|record| session.insert(std::slice::from_ref(record)))
    })?;
    Ok(rate(data.concurrent.len(), elapsed))
}

/// Phase 5, in reads per second: the point reads split between `threads`, each thread in one
/// read snapshot, every value compared with the one loaded.
fn random_reads(store: &dyn StoreUnderTest, data: &Dataset, threads: usize) -> StoreResult<f64> {
    let shares: Vec<&[usize]> = data
        .read_picks
        .chunks(data.read_picks.len().div_ceil(threads).max(1))
        .collect();
    let elapsed = together(shares.len(), |index, start| {
        store.session()?.read(&mut |snapshot| {
            start.wait();
            check_reads(snapshot, &data.loaded, shares[index])
        })
    })?;
    Ok(rate(data.read_picks.len(), elapsed))
}

/// Reads the records at `picks` and fails on any missing or different value.
fn check_reads(snapshot: &mut dyn Snapshot, loaded: &[Record], picks: &[usize]) -> StoreResult<()> {
    let mut value = Vec::with_capacity(VALUE_BYTES);
    for &pick in picks {
        let record = &loaded[pick];
        if !snapshot.get_into(&record.key, &mut value)? {
            return Err(StoreError::msg(format!("loaded key {pick} not found")));
        }
        if value != record.value {
            return Err(StoreError::msg(format!("loaded key {pick}: wrong value")));
        }
    }
    Ok(())
}

/// Phase 6, in range reads per second: from each picked loaded key on, one thread, one
/// snapshot.
fn range_reads(store: &dyn StoreUnderTest, data: &Dataset) -> StoreResult<f64> {
    let mut session = store.session()?;
    let ((), elapsed) = timed(|| {
        session.read(&mut |snapshot| {
            data.range_picks.iter().try_for_each(|&pick| {
                let scan = snapshot.scan(&data.loaded[pick].key, data.shape.range_length)?;
                check_scan(scan, data.shape.range_length)
            })
        })
    })?;
    Ok(rate(data.range_picks.len(), elapsed))
}

/// A range read starts at a present key, so it visits at least that one and, near the end
/// of the key space, may visit fewer than asked; every value has the loaded length.
fn check_scan(scan: Scan, asked: usize) -> StoreResult<()> {
    if scan.entries == 0 || scan.entries > asked || scan.value_bytes != scan.entries * VALUE_BYTES {
        return Err(StoreError::msg(format!("range read went wrong: {scan:?}")));
    }
    Ok(())
}

/// Phase 7, in seconds: the first half of the loaded keys removed in one transaction.
fn removal(store: &dyn StoreUnderTest, data: &Dataset) -> StoreResult<f64> {
    let doomed = &data.loaded[..data.shape.removals()];
    let mut session = store.session()?;
    let (removed, elapsed) = timed(|| session.remove(doomed))?;
    if removed != doomed.len() as u64 {
        return Err(StoreError::msg(format!(
            "removed {removed} of {} loaded keys",
            doomed.len()
        )));
    }
    Ok(elapsed.as_secs_f64())
}

/// Runs `work` and times it.
fn timed<T>(work: impl FnOnce() -> StoreResult<T>) -> StoreResult<(T, Duration)> {
    let start = Instant::now();
    let result = work()?;
    Ok((result, start.elapsed()))
}

/// Operations per second.
fn rate(operations: usize, elapsed: Duration) -> f64 {
    operations as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// Runs `work(index, start)` on `threads` threads and returns the time from the moment all
/// of them have called `start.wait()` (once set up: connection open, snapshot taken) until
/// the last one finishes.
fn together<F>(threads: usize, work: F) -> StoreResult<Duration>
where
    F: Fn(usize, &Start) -> StoreResult<()> + Sync,
{
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|index| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || work(index, &Start::new(barrier)))
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let results: Vec<_> = workers
            .into_iter()
            .map(|worker| worker.join().expect("benchmark thread panicked"))
            .collect();
        let elapsed = started.elapsed();
        results.into_iter().collect::<StoreResult<()>>()?;
        Ok(elapsed)
    })
}

/// A thread's pass through the starting barrier: waited at most once, and on drop if never,
/// so a thread that fails during set-up (or panics) cannot leave the others waiting forever.
struct Start<'b> {
    barrier: &'b Barrier,
    passed: Cell<bool>,
}

impl<'b> Start<'b> {
    fn new(barrier: &'b Barrier) -> Self {
        Self {
            barrier,
            passed: Cell::new(false),
        }
    }

    /// Waits until every thread and the timer are ready.
    fn wait(&self) {
        if !self.passed.replace(true) {
            self.barrier.wait();
        }
    }
}

impl Drop for Start<'_> {
    fn drop(&mut self) {
        self.wait();
    }
}

/// Bytes of every file under `directory`: the engine's data, journal and side files alike.
pub fn directory_bytes(directory: &Path) -> StoreResult<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            directory_bytes(&entry.path())?
        } else {
            metadata.len()
        };
    }
    Ok(total)
}
