//! The log's behaviour: group commit, rolls (full, on demand, idle), names, preallocation,
//! lazy commits, the buffer bound, the checkpoint, truncation and injected faults.

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions). Test data
// is made by truncating counters into bytes on purpose, and sizes here are small constants.
// Ignored results are the cleanup of helper threads and sockets a test tears down (work
// left for a later pass: issue 16 asks them to be logged).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::let_underscore_must_use
)]

use bluejet_engine::file::simulated::{FaultMode, SimulatedFileSystem};
use bluejet_engine::file::{FileHandle, FileSystem, Holder, LockAttempt, LockProbe, OpenMode};
use bluejet_engine::log::Log;
use bluejet_engine::LogError;
use bluejet_engine::{BaseName, Durability, LogConfig, LogPosition};
use bluejet_tests::{recover, value_for};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIRECTORY: &str = "/sim/logs";

fn sim_config(fs: &SimulatedFileSystem) -> LogConfig {
    LogConfig {
        generation_bytes: 128 << 10,
        background: false,
        idle_roll_interval: None,
        file_system: Arc::new(fs.clone()),
        ..LogConfig::default()
    }
}

fn commit(log: &Log, index: u64, length: usize) -> bluejet_engine::log::CommitInfo {
    let mut transaction = log.transaction();
    let id = transaction.id();
    transaction.put(
        "messages",
        format!("m{index}").as_bytes(),
        &value_for(id, 0, length),
    );
    transaction.commit(Durability::Durable).expect("commit")
}

/// A file system whose data syncs take a while, as a disk's do.
struct SlowSync {
    inner: SimulatedFileSystem,
    delay: Duration,
}

struct SlowFile {
    inner: Arc<dyn FileHandle>,
    delay: Duration,
}

impl FileHandle for SlowFile {
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buffer, offset)
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(data, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.sync_data()
    }
    fn set_len(&self, length: u64) -> io::Result<()> {
        self.inner.set_len(length)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
}

impl FileSystem for SlowSync {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(SlowFile {
            inner,
            delay: self.delay,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        self.inner.list(directory)
    }
    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        self.inner.sync_directory(directory)
    }
    fn create_directory(&self, directory: &Path) -> io::Result<()> {
        self.inner.create_directory(directory)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn lock_exclusive(&self, path: &Path, holder: &Holder) -> io::Result<LockAttempt> {
        self.inner.lock_exclusive(path, holder)
    }
    fn probe_lock(&self, path: &Path) -> io::Result<LockProbe> {
        self.inner.probe_lock(path)
    }
}

#[test]
fn eight_concurrent_committers_share_flushes() {
    let fs = SimulatedFileSystem::new();
    let slow = SlowSync {
        inner: fs.clone(),
        delay: Duration::from_millis(2),
    };
    let config = LogConfig {
        file_system: Arc::new(slow),
        ..sim_config(&fs)
    };
    let log = Log::open(Path::new(DIRECTORY), config).unwrap();
    let before = log.stats();
    std::thread::scope(|scope| {
        for thread in 0..8u64 {
            let log = &log;
            scope.spawn(move || {
                for index in 0..40 {
                    commit(log, thread * 1000 + index, 1024);
                }
            });
        }
    });
    let after = log.stats();
    let commits = after.commits - before.commits;
    let flushes = after.flushes - before.flushes;
    assert_eq!(commits, 320);
    // One committer at a time would need 320 flushes; sharing must cut that by far.
    assert!(
        flushes * 3 <= commits,
        "{flushes} flushes for {commits} commits"
    );
    log.close().unwrap();
    let recovered = recover(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    assert_eq!(recovered.committed.len(), 320);
}

#[test]
fn generations_fill_roll_and_chain_with_configured_names() {
    let fs = SimulatedFileSystem::new();
    let config = LogConfig {
        base_name: BaseName::new("E07").unwrap(),
        ..sim_config(&fs)
    };
    let log = Log::open(Path::new(DIRECTORY), config.clone()).unwrap();
    for index in 0..100 {
        commit(&log, index, 4000);
    }
    let generation = log.current_generation();
    assert!(
        generation >= 3,
        "100 commits of 4 KB fill several 128 KiB generations"
    );
    assert_eq!(log.roll().unwrap(), generation);
    assert_eq!(log.current_generation(), generation + 1);
    log.close().unwrap();
    let names = fs.list(Path::new(DIRECTORY)).unwrap();
    for number in 1..=generation {
        let name = format!("E07{number:08X}.log");
        assert!(names.contains(&name), "{name} in {names:?}");
        let size = fs
            .read_file(&Path::new(DIRECTORY).join(&name))
            .unwrap()
            .len();
        assert_eq!(size, 128 << 10, "{name} keeps the fixed size");
    }
    assert!(names.contains(&"E07.log".to_string()));
    assert!(names.contains(&"E07.chk".to_string()));
    let recovered = recover(Path::new(DIRECTORY), config).unwrap();
    assert_eq!(recovered.committed.len(), 100);
}

#[test]
fn the_next_generation_is_prepared_ahead_by_the_background_thread() {
    let fs = SimulatedFileSystem::new();
    let config = LogConfig {
        background: true,
        ..sim_config(&fs)
    };
    let log = Log::open(Path::new(DIRECTORY), config).unwrap();
    let prepared = Path::new(DIRECTORY).join("E00tmp.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fs.exists(&prepared) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        fs.read_file(&prepared).map(|image| image.len()),
        Some(128 << 10)
    );
    log.close().unwrap();
}

#[test]
fn an_idle_generation_holding_a_commit_is_rolled() {
    let fs = SimulatedFileSystem::new();
    let config = LogConfig {
        background: true,
        idle_roll_interval: Some(Duration::from_millis(100)),
        lazy_flush_interval: Duration::from_millis(5),
        ..sim_config(&fs)
    };
    let log = Log::open(Path::new(DIRECTORY), config).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(log.current_generation(), 1, "no commit, no idle roll");
    commit(&log, 1, 100);
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.current_generation() == 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(log.current_generation(), 2, "idle roll closed generation 1");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        log.current_generation(),
        2,
        "an empty generation is not rolled again"
    );
    log.close().unwrap();
}

#[test]
fn lazy_commits_become_durable_within_the_interval() {
    let fs = SimulatedFileSystem::new();
    let config = LogConfig {
        background: true,
        lazy_flush_interval: Duration::from_millis(10),
        ..sim_config(&fs)
    };
    let log = Log::open(Path::new(DIRECTORY), config).unwrap();
    let mut transaction = log.transaction();
    transaction.put("t", b"k", b"v");
    let info = transaction.commit(Durability::Lazy).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.durable_position() < info.end && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(log.durable_position() >= info.end);
    // Durable now means it survives a crash that loses everything unsynced. The process dies
    // here: nothing more reaches the disk, and the log's background thread stops before the
    // crash (leaked, it would go on writing after it).
    fs.fail_at(fs.operations(), FaultMode::Persistent);
    drop(log);
    fs.crash_clean();
    let recovered = recover(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    assert!(recovered.committed.contains_key(&info.transaction));
}

#[test]
fn records_larger_than_the_buffer_or_a_generation_are_refused() {
    let fs = SimulatedFileSystem::new();
    let log = Log::open(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    let mut transaction = log.transaction();
    transaction.put("t", b"k", &vec![0u8; 200 << 10]);
    let error = transaction.commit(Durability::Durable).unwrap_err();
    assert!(matches!(error, LogError::RecordTooLarge { .. }), "{error}");
    // A transaction larger than the buffer, made of records that fit, streams through it.
    let config = LogConfig {
        buffer_bytes: 64 << 10,
        ..sim_config(&fs)
    };
    drop(log);
    let log = Log::open(Path::new(DIRECTORY), config).unwrap();
    let mut transaction = log.transaction();
    for part in 0..40u64 {
        transaction.put("t", &part.to_be_bytes(), &vec![7u8; 10_000]);
    }
    transaction.commit(Durability::Durable).unwrap();
    log.close().unwrap();
    let recovered = recover(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    assert!(recovered.committed.values().any(|puts| puts.len() == 40));
    assert!(
        recovered.uncommitted.is_empty(),
        "a refused transaction leaves nothing behind"
    );
}

#[test]
fn the_checkpoint_moves_forward_only_and_guards_truncation() {
    let fs = SimulatedFileSystem::new();
    let log = Log::open(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    for round in 0..5 {
        commit(&log, round, 1000);
        log.roll().unwrap();
    }
    assert_eq!(log.current_generation(), 6);
    assert_eq!(log.checkpoint().position, LogPosition::new(1, 0));
    // Truncation never passes the checkpoint.
    assert!(log
        .truncate_below(LogPosition::new(5, 0))
        .unwrap()
        .is_empty());
    log.advance_checkpoint(LogPosition::new(4, 0)).unwrap();
    let error = log.advance_checkpoint(LogPosition::new(3, 0)).unwrap_err();
    assert!(matches!(error, LogError::CheckpointBackwards { .. }));
    assert_eq!(
        log.truncate_below(LogPosition::new(5, 0)).unwrap(),
        vec![1, 2, 3]
    );
    log.close().unwrap();
    // Reopen keeps the checkpoint and reads from it.
    let log = Log::open(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    assert_eq!(log.checkpoint().position, LogPosition::new(4, 0));
    log.close().unwrap();
    let recovered = recover(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    assert_eq!(
        recovered.committed.len(),
        2,
        "the commits of generations 4 and 5"
    );
}

/// SQLite's method: fail operation N, for N = 1, 2, 3, ... until a run goes through. Every
/// failure is a typed error; after it, reopening recovers every acknowledged commit.
#[test]
fn every_failed_operation_is_reported_and_recovered_from() {
    for mode in [FaultMode::Once, FaultMode::Persistent, FaultMode::DiskFull] {
        let mut operation = 1;
        loop {
            let fs = SimulatedFileSystem::new();
            fs.fail_at(operation, mode);
            let mut acknowledged = Vec::new();
            let outcome = (|| -> Result<(), LogError> {
                let log = Log::open(Path::new(DIRECTORY), sim_config(&fs))?;
                for index in 0..30 {
                    let mut transaction = log.transaction();
                    transaction.put("t", &[index as u8], &value_for(index, 0, 3000));
                    acknowledged.push(transaction.id());
                    if let Err(error) = transaction.commit(Durability::Durable) {
                        acknowledged.pop();
                        return Err(error);
                    }
                    if index % 10 == 9 {
                        log.roll()?;
                    }
                }
                log.close().map(|_| ())
            })();
            fs.crash(operation);
            let recovered = recover(Path::new(DIRECTORY), sim_config(&fs))
                .or_else(|_| {
                    Log::open(Path::new(DIRECTORY), sim_config(&fs))?;
                    recover(Path::new(DIRECTORY), sim_config(&fs))
                })
                .unwrap_or_else(|e| panic!("{mode:?} at {operation}: recovery failed: {e}"));
            for id in &acknowledged {
                assert!(
                    recovered.committed.contains_key(id),
                    "{mode:?} at {operation}: lost {id}"
                );
            }
            if outcome.is_ok() {
                break;
            }
            operation += 1;
            assert!(operation < 2000, "the workload never completed");
        }
    }
}

#[test]
fn a_stream_keeps_its_generation_size_when_reopened_with_another() {
    let fs = SimulatedFileSystem::new();
    let log = Log::open(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    commit(&log, 0, 100);
    log.close().unwrap();
    let bigger = LogConfig {
        generation_bytes: 1 << 20,
        ..sim_config(&fs)
    };
    let log = Log::open(Path::new(DIRECTORY), bigger).unwrap();
    assert_eq!(log.current_header().generation_bytes, 128 << 10);
    let mut transaction = log.transaction();
    transaction.put("t", b"k", &vec![1u8; 200 << 10]);
    let error = transaction.commit(Durability::Durable).unwrap_err();
    assert!(matches!(error, LogError::RecordTooLarge { .. }), "{error}");
    for index in 1..60 {
        commit(&log, index, 5000);
    }
    log.close().unwrap();
    let recovered = recover(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    assert_eq!(recovered.committed.len(), 60);
}

#[test]
fn records_are_read_from_any_record_position_across_generations() {
    use bluejet_engine::format::log_reader::LogReader;
    use bluejet_engine::format::record::Record;
    let fs = SimulatedFileSystem::new();
    let log = Log::open(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    let commits: Vec<_> = (0..80).map(|index| commit(&log, index, 3000)).collect();
    log.close().unwrap();
    let reader = LogReader::open(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
    let middle = commits[41];
    assert!(
        middle.begin.generation > 1,
        "the start lies past the first generation"
    );
    let records: Vec<_> = reader.read_from(middle.begin).map(Result::unwrap).collect();
    assert_eq!(records[0].position, middle.begin);
    let first = records[0].decode().unwrap();
    assert_eq!(
        first,
        Some(Record::Begin {
            transaction: middle.transaction
        })
    );
    let later_commits = records
        .iter()
        .filter(|record| matches!(record.decode(), Ok(Some(Record::Commit { .. }))))
        .count();
    assert_eq!(later_commits, 80 - 41);
    // A position inside a record is refused, not misread.
    let inside = LogPosition::new(middle.begin.generation, middle.begin.offset + 1);
    let error = reader.read_from(inside).next().unwrap().unwrap_err();
    assert!(
        matches!(error, LogError::PositionNotFound { .. }),
        "{error}"
    );
}

/// A failure at any operation of a checkpoint update, then a crash: the checkpoint reads back
/// as the old or the new position, never as damage, and the log reopens.
#[test]
fn a_checkpoint_update_cut_anywhere_leaves_the_old_or_the_new_checkpoint() {
    for step in 1..=6 {
        let fs = SimulatedFileSystem::new();
        let log = Log::open(Path::new(DIRECTORY), sim_config(&fs)).unwrap();
        commit(&log, 0, 1000);
        log.roll().unwrap();
        fs.fail_at(fs.operations() + step, FaultMode::Persistent);
        let outcome = log.advance_checkpoint(LogPosition::new(2, 0));
        std::mem::forget(log);
        fs.crash(step);
        let log = Log::open(Path::new(DIRECTORY), sim_config(&fs))
            .unwrap_or_else(|error| panic!("step {step}: reopen failed: {error}"));
        let position = log.checkpoint().position;
        assert!(
            position == LogPosition::new(1, 0) || position == LogPosition::new(2, 0),
            "step {step}: checkpoint at {position}"
        );
        if outcome.is_ok() {
            assert_eq!(
                position,
                LogPosition::new(2, 0),
                "step {step}: acknowledged update lost"
            );
        }
    }
}

/// A durable commit completes while another thread streams lazy commits as fast as it can:
/// the write-behind thread then rolls in nearly every flush, and a sync that waited for
/// "no close pending" could wait for ever. Closes are slow here (every sync takes 2 ms).
#[test]
fn durable_commits_complete_while_the_log_streams() {
    let fs = SimulatedFileSystem::new();
    fs.set_sync_delay(Duration::from_millis(2));
    let config = LogConfig {
        background: true,
        buffer_bytes: 64 << 10,
        ..sim_config(&fs)
    };
    let log = Log::open(Path::new(DIRECTORY), config).unwrap();
    let streaming = std::sync::atomic::AtomicBool::new(true);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut index = 1_000_000;
            while streaming.load(std::sync::atomic::Ordering::Relaxed) {
                let mut transaction = log.transaction();
                transaction.put("stream", &u64::to_be_bytes(index), &[7; 2000]);
                transaction.commit(Durability::Lazy).unwrap();
                index += 1;
            }
        });
        scope.spawn(|| {
            for index in 0..20 {
                commit(&log, index, 500);
            }
            done.send(()).unwrap();
        });
        let outcome = finished.recv_timeout(Duration::from_secs(60));
        streaming.store(false, std::sync::atomic::Ordering::Relaxed);
        assert!(outcome.is_ok(), "durable commits starved while streaming");
    });
    assert!(log.stats().rolls >= 3, "the stream rolled");
    log.close().unwrap();
}
