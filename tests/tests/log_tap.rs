//! The log tap (block-mode replication): a reader following it gets exactly the record stream
//! of every generation, only durable bytes, `Behind` when the ring is outrun, `Ended` at each
//! roll, `Stopped` when the log closes or is poisoned, and nothing when the tap is off.

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

use bluejet_engine::file::simulated::SimulatedFileSystem;
use bluejet_engine::format::log_directory::path_of;
use bluejet_engine::format::scan::{scan, ScanMode};
use bluejet_engine::log::tap::LogTap;
use bluejet_engine::log::{Log, TapRead};
use bluejet_engine::{BaseName, Durability, LogConfig, LogPosition};
use bluejet_tests::value_for;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

const DIRECTORY: &str = "/sim/logs";

fn sim_config(fs: &SimulatedFileSystem, tap_bytes: usize, background: bool) -> LogConfig {
    LogConfig {
        generation_bytes: 128 << 10,
        background,
        idle_roll_interval: None,
        tap_bytes,
        file_system: Arc::new(fs.clone()),
        ..LogConfig::default()
    }
}

fn commit(log: &Log, index: u64, length: usize, durability: Durability) -> LogPosition {
    let mut transaction = log.transaction();
    let id = transaction.id();
    transaction.put(
        "messages",
        format!("m{index}").as_bytes(),
        &value_for(id, 0, length),
    );
    transaction.commit(durability).expect("commit").end
}

/// The record stream of a generation file as a reader of the file gets it.
fn file_stream(image: &[u8], path: &Path, mode: ScanMode) -> Vec<u8> {
    scan(path, image, mode).expect("scan").stream
}

fn closed_path(directory: &Path, generation: u32) -> PathBuf {
    path_of(directory, &BaseName::default().closed(generation))
}

fn current_path(directory: &Path) -> PathBuf {
    path_of(directory, &BaseName::default().current())
}

/// What a reader following the tap from (1, 0) to the end got.
#[derive(Default)]
struct Followed {
    streams: BTreeMap<u32, Vec<u8>>,
    /// Where the reader stopped, and why.
    end: LogPosition,
    reason: String,
    ended: BTreeMap<u32, u32>,
    reads: u64,
    idles: u64,
}

/// Follows the tap from (1, 0) until it stops, checking every answer; `log` (while it is
/// alive) checks that no byte handed out is past the log's own durable position.
fn follow(tap: &LogTap, log: &Weak<Log>) -> Followed {
    let mut followed = Followed::default();
    let mut at = LogPosition::new(1, 0);
    // An odd read size, so reads end anywhere in records and blocks.
    let max = 7001;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the reader never saw the end");
        match tap.read(at, max, Duration::from_millis(20)) {
            TapRead::Bytes {
                from,
                bytes,
                durable,
            } => {
                assert_eq!(from, at);
                assert!(!bytes.is_empty() && bytes.len() <= max);
                let end = LogPosition::new(at.generation, at.offset + bytes.len() as u32);
                assert!(
                    end <= durable,
                    "{end} past the tap's durable point {durable}"
                );
                if let Some(log) = log.upgrade() {
                    let durable = log.durable_position();
                    assert!(
                        end <= durable,
                        "{end} past the log's durable position {durable}"
                    );
                }
                followed
                    .streams
                    .entry(at.generation)
                    .or_default()
                    .extend_from_slice(&bytes);
                followed.reads += 1;
                at = end;
            }
            TapRead::Ended {
                generation,
                length,
                durable,
            } => {
                assert_eq!((generation, length), (at.generation, at.offset));
                assert!(durable.generation > generation);
                followed.ended.insert(generation, length);
                at = LogPosition::new(generation + 1, 0);
            }
            TapRead::Idle { durable } => {
                assert_eq!(durable, at, "idle only when caught up");
                followed.idles += 1;
            }
            TapRead::Stopped { reason } => {
                assert_eq!(tap.durable(), at, "stopped only when everything was read");
                followed.end = at;
                followed.reason = reason;
                return followed;
            }
            other => panic!("at {at}: unexpected {other:?}"),
        }
    }
}

/// Takes the log back from the reader's weak references to close it.
fn unshare(mut log: Arc<Log>) -> Log {
    loop {
        match Arc::try_unwrap(log) {
            Ok(log) => return log,
            Err(shared) => {
                log = shared;
                std::thread::yield_now();
            }
        }
    }
}

/// (a), (b): concurrent committers (durable and lazy, records of many sizes, several full
/// generations and rolls on demand); a reader following the tap reassembles every closed
/// generation exactly as its file holds it, and the current one as `E00.log` holds it.
fn followed_streams_equal_the_files(
    config: LogConfig,
    directory: &Path,
    read_file: &dyn Fn(&Path) -> Vec<u8>,
) {
    let log = Arc::new(Log::open(directory, config).unwrap());
    let tap = log.tap().expect("a tap");
    let weak = Arc::downgrade(&log);
    let followed = std::thread::scope(|scope| {
        let reader = scope.spawn(|| follow(&tap, &weak));
        std::thread::scope(|committers| {
            for thread in 0..6u64 {
                let log = &log;
                committers.spawn(move || {
                    for index in 0..120 {
                        let durability = if (index + thread) % 3 == 0 {
                            Durability::Lazy
                        } else {
                            Durability::Durable
                        };
                        let length = 50 + ((index * 7919 + thread * 104_729) % 6000) as usize;
                        commit(log, thread * 1000 + index, length, durability);
                        if thread == 0 && index % 50 == 49 {
                            log.roll().unwrap();
                        }
                    }
                });
            }
        });
        let log = unshare(log);
        let end = log.close().unwrap();
        let followed = reader.join().unwrap();
        assert_eq!(tap.durable(), end);
        followed
    });
    assert_eq!(followed.reason, "log closed");
    let last = *followed.streams.keys().last().unwrap();
    assert!(last >= 4, "several generations: {last}");
    assert!(followed.reads > 20);
    for generation in 1..last {
        let path = closed_path(directory, generation);
        let expected = file_stream(&read_file(&path), &path, ScanMode::Closed);
        let got = followed
            .streams
            .get(&generation)
            .cloned()
            .unwrap_or_default();
        assert!(
            got == expected,
            "generation {generation}: {} bytes from the tap, {} in the file",
            got.len(),
            expected.len()
        );
        assert_eq!(followed.ended.get(&generation), Some(&(got.len() as u32)));
    }
    let path = current_path(directory);
    let expected = file_stream(&read_file(&path), &path, ScanMode::Current);
    assert!(
        followed.streams[&last] == expected,
        "the current generation"
    );
}

#[test]
fn a_follower_reassembles_every_generation_on_the_simulated_disk() {
    let fs = SimulatedFileSystem::new();
    // Syncs take a while, so writes and rolls overlap syncs in flight as on a disk.
    fs.set_sync_delay(Duration::from_micros(300));
    let config = sim_config(&fs, 8 << 20, true);
    followed_streams_equal_the_files(config, Path::new(DIRECTORY), &|path| {
        fs.read_file(path).expect("file")
    });
}

#[test]
fn a_follower_reassembles_every_generation_on_a_real_disk() {
    let directory = tempfile::tempdir().unwrap();
    let config = LogConfig {
        generation_bytes: 128 << 10,
        idle_roll_interval: None,
        tap_bytes: 8 << 20,
        ..LogConfig::default()
    };
    followed_streams_equal_the_files(config, directory.path(), &|path| {
        std::fs::read(path).expect("file")
    });
}

/// (c) A tap smaller than a burst keeps only the newest bytes: a reader at the start is
/// behind and told the oldest position it can have, from which it reads the burst's end.
#[test]
fn a_burst_larger_than_the_tap_leaves_a_slow_reader_behind() {
    let fs = SimulatedFileSystem::new();
    let log = Log::open(Path::new(DIRECTORY), sim_config(&fs, 4096, false)).unwrap();
    let tap = log.tap().unwrap();
    assert_eq!(tap.capacity(), 4096);
    for index in 0..30 {
        commit(&log, index, 1000, Durability::Lazy);
    }
    let durable = log.flush().unwrap();
    assert_eq!(tap.durable(), durable);
    let TapRead::Behind { oldest } = tap.read(LogPosition::new(1, 0), 1 << 20, Duration::ZERO)
    else {
        panic!("expected Behind");
    };
    assert_eq!(oldest, LogPosition::new(1, durable.offset - 4096));
    assert_eq!(tap.oldest(), oldest);
    let TapRead::Bytes { bytes, .. } = tap.read(oldest, 1 << 20, Duration::ZERO) else {
        panic!("expected bytes");
    };
    assert_eq!(bytes.len(), 4096);
    drop(log);
    let path = current_path(Path::new(DIRECTORY));
    let stream = file_stream(&fs.read_file(&path).unwrap(), &path, ScanMode::Current);
    let start = oldest.offset as usize;
    assert!(bytes == stream[start..start + 4096]);
}

/// (d) A reader at the end of a rolled generation is told so, with its length, and goes on
/// at the start of the next.
#[test]
fn a_roll_ends_the_generation_and_the_reader_goes_on() {
    let fs = SimulatedFileSystem::new();
    let log = Log::open(Path::new(DIRECTORY), sim_config(&fs, 1 << 20, false)).unwrap();
    let tap = log.tap().unwrap();
    for index in 0..5 {
        commit(&log, index, 700, Durability::Durable);
    }
    let end_of_first = log.durable_position();
    // Not closed yet: the reader at the end waits.
    assert_eq!(
        tap.read(end_of_first, 100, Duration::from_millis(5)),
        TapRead::Idle {
            durable: end_of_first
        }
    );
    assert_eq!(log.roll().unwrap(), 1);
    let mut at = LogPosition::new(1, 0);
    let mut first = Vec::new();
    let (generation, length) = loop {
        match tap.read(at, 1000, Duration::ZERO) {
            TapRead::Bytes { bytes, .. } => {
                first.extend_from_slice(&bytes);
                at.offset += bytes.len() as u32;
            }
            TapRead::Ended {
                generation,
                length,
                durable,
            } => {
                assert_eq!(durable, LogPosition::new(2, 0));
                break (generation, length);
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!((generation, length), (1, end_of_first.offset));
    let path = closed_path(Path::new(DIRECTORY), 1);
    let stream = file_stream(&fs.read_file(&path).unwrap(), &path, ScanMode::Closed);
    assert!(first == stream);
    assert_eq!(stream.len() as u32, length);
    // Past the end of the closed generation: diverged.
    assert!(matches!(
        tap.read(LogPosition::new(1, length + 1), 10, Duration::ZERO),
        TapRead::Ahead { .. }
    ));
    let next = LogPosition::new(2, 0);
    assert!(matches!(
        tap.read(next, 10, Duration::ZERO),
        TapRead::Idle { .. }
    ));
    let end = commit(&log, 99, 300, Durability::Durable);
    let TapRead::Bytes { from, bytes, .. } = tap.read(next, 1 << 20, Duration::ZERO) else {
        panic!("expected bytes");
    };
    assert_eq!((from, bytes.len() as u32), (next, end.offset));
    log.close().unwrap();
}

/// (e) Closing or dropping the log wakes a reader waiting at the durable point: it gets the
/// close's last bytes (the Stop record), then `Stopped`, at once rather than at the end of
/// its wait.
#[test]
fn closing_or_dropping_the_log_stops_a_waiting_reader_promptly() {
    for close in [true, false] {
        let fs = SimulatedFileSystem::new();
        let log = Log::open(Path::new(DIRECTORY), sim_config(&fs, 1 << 20, true)).unwrap();
        let tap = log.tap().unwrap();
        let end = commit(&log, 1, 500, Durability::Durable);
        let start = Instant::now();
        let waiting = {
            let tap = Arc::clone(&tap);
            std::thread::spawn(move || {
                let mut at = end;
                loop {
                    match tap.read(at, 1 << 20, Duration::from_secs(60)) {
                        TapRead::Bytes { bytes, .. } => at.offset += bytes.len() as u32,
                        TapRead::Stopped { reason } => return (reason, at),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let closed = if close {
            log.close().unwrap()
        } else {
            drop(log);
            tap.durable()
        };
        let (reason, at) = waiting.join().unwrap();
        assert_eq!(reason, "log closed");
        assert_eq!(at, closed, "the reader got everything durable");
        // Only a close writes a Stop record; a drop makes the lazy rest durable.
        assert_eq!(at > end, close, "the Stop record");
        assert!(start.elapsed() < Duration::from_secs(10), "not promptly");
        assert!(tap.stopped().is_some());
    }
}

/// (f) No tap unless asked for; a tap above the bound is refused.
#[test]
fn the_tap_is_off_by_default_and_bounded() {
    let fs = SimulatedFileSystem::new();
    let log = Log::open(Path::new(DIRECTORY), sim_config(&fs, 0, false)).unwrap();
    assert!(log.tap().is_none());
    log.close().unwrap();
    let too_big = LogConfig {
        tap_bytes: (256 << 20) + 1,
        ..LogConfig::default()
    };
    assert!(too_big.validate().is_err());
    let largest = LogConfig {
        tap_bytes: 256 << 20,
        ..LogConfig::default()
    };
    assert!(largest.validate().is_ok());
}

/// A sync that fails never publishes what it did not confirm: the tap's durable point stays
/// where the last good sync left it, the bytes written since are never handed out, and the
/// reader is told the log stopped. What it handed out is what the disk keeps after a crash.
#[test]
fn a_failed_sync_publishes_nothing_it_did_not_confirm() {
    let fs = SimulatedFileSystem::new();
    let log = Log::open(Path::new(DIRECTORY), sim_config(&fs, 1 << 20, false)).unwrap();
    let tap = log.tap().unwrap();
    for index in 0..3 {
        commit(&log, index, 900, Durability::Durable);
    }
    let confirmed = tap.durable();
    assert_eq!(confirmed, log.durable_position());
    fs.fail_sync_at(1);
    let mut transaction = log.transaction();
    transaction.put("messages", b"never", &[7; 2000]);
    assert!(transaction.commit(Durability::Durable).is_err());
    assert_eq!(tap.durable(), confirmed);
    assert_eq!(log.durable_position(), confirmed);
    assert!(log.end_position() > confirmed);
    match tap.read(confirmed, 1 << 20, Duration::from_secs(30)) {
        TapRead::Stopped { reason } => assert!(reason.contains("poisoned"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        tap.read(
            LogPosition::new(1, confirmed.offset + 1),
            10,
            Duration::ZERO
        ),
        TapRead::Ahead { .. }
    ));
    let TapRead::Bytes { bytes, .. } = tap.read(LogPosition::new(1, 0), 1 << 20, Duration::ZERO)
    else {
        panic!("expected bytes");
    };
    assert_eq!(bytes.len() as u32, confirmed.offset);
    drop(log);
    fs.crash_clean();
    let path = current_path(Path::new(DIRECTORY));
    let stream = file_stream(&fs.read_file(&path).unwrap(), &path, ScanMode::Current);
    assert!(
        stream.starts_with(&bytes),
        "the tap handed out bytes the disk lost"
    );
}

/// A failed sync at a random moment of a busy log with its threads (group commits, write-behind,
/// rolls and closes in the closer thread): a follower gets every acknowledged commit, is
/// stopped with the poisoning's reason, and every byte it got is on the disk after a crash
/// that loses what no sync confirmed.
#[test]
fn a_failed_sync_under_load_never_reaches_a_follower() {
    let mut poisoned = 0;
    for seed in 0..16u64 {
        let fs = SimulatedFileSystem::new();
        fs.set_sync_delay(Duration::from_micros(200));
        let directory = Path::new(DIRECTORY);
        let log = Arc::new(Log::open(directory, sim_config(&fs, 8 << 20, true)).unwrap());
        let tap = log.tap().unwrap();
        let weak = Arc::downgrade(&log);
        fs.fail_sync_at(3 + seed * 2);
        let (followed, (acknowledged, failed)) = std::thread::scope(|scope| {
            let reader = scope.spawn(|| follow(&tap, &weak));
            let acknowledged = std::thread::scope(|committers| {
                let threads: Vec<_> = (0..4u64)
                    .map(|thread| {
                        let log = &log;
                        committers.spawn(move || {
                            let mut acknowledged = LogPosition::default();
                            let mut failed = false;
                            for index in 0..200u64 {
                                let mut transaction = log.transaction();
                                let id = transaction.id();
                                let length = 100 + ((index * 31 + thread * 977 + seed) % 5000);
                                transaction.put(
                                    "messages",
                                    format!("m{thread}-{index}").as_bytes(),
                                    &value_for(id, 0, length as usize),
                                );
                                match transaction.commit(Durability::Durable) {
                                    Ok(commit) => acknowledged = acknowledged.max(commit.end),
                                    Err(_) => {
                                        failed = true;
                                        break;
                                    }
                                }
                            }
                            (acknowledged, failed)
                        })
                    })
                    .collect();
                let results: Vec<_> = threads
                    .into_iter()
                    .map(|thread| thread.join().unwrap())
                    .collect();
                let acknowledged = results.iter().map(|&(end, _)| end).max().unwrap();
                (acknowledged, results.iter().any(|&(_, failed)| failed))
            });
            drop(unshare(log));
            (reader.join().unwrap(), acknowledged)
        });
        // The failing sync may be one of a prepared `E00tmp.log`, which is only retried.
        assert_eq!(
            followed.reason.contains("poisoned"),
            failed,
            "seed {seed}: {}",
            followed.reason
        );
        poisoned += u32::from(failed);
        assert!(
            followed.end >= acknowledged,
            "seed {seed}: the follower stopped at {} before the acknowledged {acknowledged}",
            followed.end
        );
        fs.crash_clean();
        let current = current_path(directory);
        let current_image = fs.read_file(&current);
        for (&generation, got) in &followed.streams {
            let closed = closed_path(directory, generation);
            let stream = match fs.read_file(&closed) {
                Some(image) => file_stream(&image, &closed, ScanMode::Closed),
                None => {
                    let image = current_image.as_ref().expect("E00.log");
                    let stream = scan(&current, image, ScanMode::Current).expect("scan");
                    assert_eq!(stream.header.generation, generation, "seed {seed}");
                    stream.stream
                }
            };
            assert!(
                stream.starts_with(got),
                "seed {seed}: generation {generation}: the follower got {} bytes, the disk kept {}",
                got.len(),
                stream.len()
            );
        }
    }
    assert!(
        poisoned >= 8,
        "only {poisoned} of 16 runs saw the log poisoned"
    );
}
