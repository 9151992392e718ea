//! Circular logging: a standalone database deletes the log generations no recovery can need,
//! keeping its directory under the bound `docs/design.md` documents, and never deletes one a
//! replica still needs (while replicated, and on a later standalone open, through the
//! directory's retention marker). Crashes during and around the deletions lose no commit,
//! and the tools read a directory whose low generations are gone.

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

mod common;

use bluejet_engine::db::{read_retention_marker, RetentionMarker, RETENTION_MARKER_NAME};
use bluejet_engine::file::simulated::{FaultMode, SimulatedFileSystem};
use bluejet_engine::file::FileSystem;
use bluejet_engine::format::inspect::{integrity, DatabaseImage};
use bluejet_engine::format::log_directory::LogDirectory;
use bluejet_engine::format::log_reader::LogReader;
use bluejet_engine::format::log_verify::verify_directory;
use bluejet_engine::{BaseName, LogConfig, LogPosition};
use bluejet_engine::{Database, Options};
use bluejet_replication::seed::seed;
use bluejet_replication::Replica;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const DEPTH: u64 = 1 << 20;
const GENERATION: u64 = 128 << 10;

/// Small generations and depth, checkpoints inline (no timing in the assertions).
fn small_options() -> Options {
    Options {
        checkpoint_depth_bytes: DEPTH,
        background: false,
        log: LogConfig {
            generation_bytes: GENERATION,
            idle_roll_interval: None,
            ..LogConfig::default()
        },
        ..Options::default()
    }
}

/// The bound design.md documents: the generations between the checkpoint file and the end
/// (at most 4 × the checkpoint depth + 2 × the largest transaction), plus the partly
/// covered lowest one, `E00.log` and the prepared `E00tmp.log`.
fn documented_bound(largest_transaction: u64) -> u64 {
    ((4 * DEPTH + 2 * largest_transaction).div_ceil(GENERATION) + 3) * GENERATION
}

/// Bytes of the log's generation files (closed, current and prepared) in `directory`.
fn log_bytes(directory: &Path) -> u64 {
    std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with("E00") && name.ends_with(".log")
        })
        .map(|entry| entry.metadata().unwrap().len())
        .sum()
}

fn closed_generations(fs: &dyn FileSystem, directory: &Path) -> Vec<u32> {
    LogDirectory::list(fs, directory, BaseName::default())
        .unwrap()
        .closed
        .keys()
        .copied()
        .collect()
}

fn bytes_between(from: LogPosition, to: LogPosition) -> u64 {
    let generations = (to.generation - from.generation) as u64;
    generations * GENERATION + to.offset as u64 - from.offset as u64
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Commits `rounds` transactions of 40 values of 400 bytes; returns the largest
/// transaction's log bytes, checking the log's size after every commit.
fn load(db: &Database, model: &mut Model, rounds: std::ops::Range<u32>) -> u64 {
    let mut largest = 0;
    for round in rounds {
        let before = db.log().end_position();
        let mut write = db.begin_write().unwrap();
        write.create_table("mail").unwrap();
        for index in 0..40u32 {
            let key = format!("{round:06}-{index:02}").into_bytes();
            let value = vec![(round % 251) as u8; 400];
            write.insert("mail", &key, &value).unwrap();
            model.insert(key, value);
        }
        write.commit().unwrap();
        largest = largest.max(bytes_between(before, db.log().end_position()));
        let used = log_bytes(db.directory());
        let bound = documented_bound(largest);
        assert!(
            used <= bound,
            "round {round}: the log uses {used} bytes, over the documented bound {bound}"
        );
    }
    largest
}

fn read_all(db: &Database) -> Model {
    let read = db.begin_read().unwrap();
    let table = read.open_table("mail").unwrap();
    table
        .range(..)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.0.to_vec(), entry.1.to_vec())
        })
        .collect()
}

#[test]
fn a_long_load_keeps_the_log_under_the_documented_bound_and_every_entry_readable() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), small_options()).unwrap();
    assert!(
        db.circular_logging().enabled,
        "{}",
        db.circular_logging().reason
    );
    let mut model = Model::new();
    // About 17 KiB of log per transaction: some 100 generations in all.
    load(&db, &mut model, 0..800);
    let state = db.circular_logging();
    assert!(state.deleted > 50, "only {} deleted", state.deleted);
    let closed = closed_generations(db.log().config().file_system.as_ref(), directory.path());
    assert!(
        closed.first().is_some_and(|&first| first > 50),
        "{closed:?}"
    );
    db.close().unwrap();

    let db = Database::open(directory.path(), small_options()).unwrap();
    assert_eq!(read_all(&db), model, "every entry after a clean reopen");
    load(&db, &mut model, 800..900);
    drop(db); // dirty: the next open replays from the checkpoint
    let db = Database::open(directory.path(), small_options()).unwrap();
    assert_eq!(read_all(&db), model, "every entry after a recovery");
    db.close().unwrap();
}

#[test]
fn one_large_transaction_is_freed_by_the_checkpoint_after_it() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), small_options()).unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("mail").unwrap();
    for index in 0..20_000u32 {
        write
            .insert("mail", &index.to_be_bytes(), &[7u8; 400])
            .unwrap();
    }
    write.commit().unwrap();
    // The commit checkpointed twice: the checkpoint file follows the header to the end.
    let used = log_bytes(directory.path());
    assert!(
        used <= 4 * GENERATION,
        "{used} bytes of log after an 8 MiB transaction"
    );
    drop(db);
    let db = Database::open(directory.path(), small_options()).unwrap();
    assert_eq!(read_all(&db).len(), 20_000);
    db.close().unwrap();
}

#[test]
fn circular_logging_off_keeps_every_generation() {
    let directory = tempfile::tempdir().unwrap();
    let options = Options {
        circular_logging: false,
        ..small_options()
    };
    let db = Database::open(directory.path(), options).unwrap();
    let state = db.circular_logging();
    assert!(!state.enabled && state.reason.contains("circular_logging is false"));
    let mut write = db.begin_write().unwrap();
    write.create_table("mail").unwrap();
    for index in 0..20_000u32 {
        write
            .insert("mail", &index.to_be_bytes(), &[7u8; 400])
            .unwrap();
    }
    write.commit().unwrap();
    let closed = closed_generations(db.log().config().file_system.as_ref(), directory.path());
    assert_eq!(closed.first(), Some(&1), "{closed:?}");
    assert!(closed.len() > 60);
    db.close().unwrap();
}

/// Commits until the log rolled `generations` times past where it was.
fn write_generations(db: &Database, generations: u32, tag: &str) {
    let target = db.log().current_generation() + generations;
    let mut round = 0u32;
    while db.log().current_generation() < target {
        let mut write = db.begin_write().unwrap();
        write.create_table("mail").unwrap();
        for index in 0..40u32 {
            let key = format!("{tag}-{round:06}-{index:02}").into_bytes();
            write.insert("mail", &key, &[3u8; 400]).unwrap();
        }
        write.commit().unwrap();
        round += 1;
    }
}

#[test]
fn a_replicated_active_and_a_later_standalone_open_keep_what_the_replica_needs() {
    let root = tempfile::tempdir().unwrap();
    let active_dir = root.path().join("active");
    let replica_dir = root.path().join("replica");
    let active = Database::open(&active_dir, small_options()).unwrap();
    write_generations(&active, 3, "before");
    let config = common::replica_config(&active_dir, &replica_dir);
    let report = seed(&active, &config).unwrap();
    let needed = report.position.generation;
    let state = active.circular_logging();
    assert!(!state.enabled, "seeding stops circular logging");
    assert!(
        state.reason.contains(RETENTION_MARKER_NAME),
        "{}",
        state.reason
    );
    let fs = active.log().config().file_system.clone();
    assert!(matches!(
        read_retention_marker(fs.as_ref(), &active_dir),
        RetentionMarker::Present { .. }
    ));
    // Many checkpoints with nothing shipped: every generation from the seed's is kept.
    write_generations(&active, 30, "replicated");
    let closed = closed_generations(fs.as_ref(), &active_dir);
    assert!(
        closed.first().is_some_and(|&first| first <= needed),
        "{closed:?}"
    );
    assert!(active.log().checkpoint().position.generation > needed + 10);
    active.close().unwrap();

    // A later standalone open with the default options: the marker keeps circular off.
    let active = Database::open(&active_dir, small_options()).unwrap();
    let state = active.circular_logging();
    assert!(
        !state.enabled && state.reason.contains("replica"),
        "{}",
        state.reason
    );
    write_generations(&active, 30, "standalone");
    let closed = closed_generations(fs.as_ref(), &active_dir);
    assert!(
        closed.first().is_some_and(|&first| first <= needed),
        "{closed:?}"
    );

    // The replica, never shipped to until now, catches up from the seed's generation.
    let end = active.log().end_position();
    active.log().close_through(end).unwrap();
    let mut replica = Replica::open(config).unwrap();
    replica.catch_up(end, Duration::from_secs(60)).unwrap();
    let passive = replica.passive().unwrap();
    let read = passive.begin_read().unwrap();
    let copied = read.open_table("mail").unwrap().range(..).unwrap().count();
    assert_eq!(copied, read_all(&active).len());
    drop(read);
    drop(passive);
    active.close().unwrap();
}

#[test]
fn an_unreadable_marker_still_keeps_the_log() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), small_options()).unwrap();
    db.retain_logs("an incremental backup").unwrap();
    db.close().unwrap();
    let marker = directory.path().join(RETENTION_MARKER_NAME);
    let mut bytes = std::fs::read(&marker).unwrap();
    bytes[30] ^= 0xFF;
    std::fs::write(&marker, &bytes).unwrap();
    let db = Database::open(directory.path(), small_options()).unwrap();
    let state = db.circular_logging();
    assert!(!state.enabled, "{}", state.reason);
    assert!(state.reason.contains("cannot be read"), "{}", state.reason);
    write_generations(&db, 30, "damaged");
    let closed = closed_generations(db.log().config().file_system.as_ref(), directory.path());
    assert_eq!(closed.first(), Some(&1), "{closed:?}");
    db.close().unwrap();
}

#[test]
fn the_log_and_the_checkpoint_read_a_directory_whose_low_generations_are_gone() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), small_options()).unwrap();
    let mut model = Model::new();
    load(&db, &mut model, 0..300);
    drop(db); // dirty, so recovery replays from the checkpoint
    let fs = LogConfig::default().file_system;
    let closed = closed_generations(fs.as_ref(), directory.path());
    assert!(closed.first().is_some_and(|&first| first > 5), "{closed:?}");
    let report = verify_directory(
        fs.as_ref(),
        directory.path(),
        BaseName::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let reader = LogReader::open(directory.path(), LogConfig::default()).unwrap();
    let first = reader.first_generation().unwrap();
    assert_eq!(first, closed[0]);
    let records = reader.read_from(LogPosition::new(first, 0)).count();
    assert!(records > 0);
    let db = Database::open(directory.path(), small_options()).unwrap();
    assert_eq!(read_all(&db), model);
    drop(db);
    let image = DatabaseImage::open_with(fs.as_ref(), directory.path()).unwrap();
    assert!(!integrity(&image).unwrap().damaged());
}

// Crash safety on the simulated disk.

const SIMULATED: &str = "/sim/circular";

fn simulated_options(fs: &SimulatedFileSystem) -> Options {
    Options {
        page_size: 4096,
        cache_bytes: 1 << 20,
        log: LogConfig {
            file_system: Arc::new(fs.clone()),
            background: false,
            ..small_options().log
        },
        ..small_options()
    }
}

/// Durable commits of key `n` → value until `commits`, or until one fails; returns how
/// many were acknowledged and the disk operations at which deletions happened.
fn crash_workload(fs: &SimulatedFileSystem, commits: u32) -> (u32, Vec<(u64, u64)>) {
    let Ok(db) = Database::open(Path::new(SIMULATED), simulated_options(fs)) else {
        return (0, Vec::new());
    };
    let mut acknowledged = 0;
    let mut deletions = Vec::new();
    for n in 0..commits {
        let before = (fs.operations(), db.circular_logging().deleted);
        let committed = db.begin_write().and_then(|mut write| {
            write.create_table("mail")?;
            write.insert("mail", &n.to_be_bytes(), &[n as u8; 2000])?;
            write.commit()
        });
        if committed.is_err() {
            break;
        }
        acknowledged = n + 1;
        if db.circular_logging().deleted > before.1 {
            deletions.push((before.0, fs.operations()));
        }
    }
    drop(db);
    (acknowledged, deletions)
}

fn check_after_crash(fs: &SimulatedFileSystem, acknowledged: u32, context: &str) {
    let db = Database::open(Path::new(SIMULATED), simulated_options(fs))
        .unwrap_or_else(|error| panic!("{context}: reopen failed: {error}"));
    let read = db.begin_read().unwrap();
    let found: Vec<u32> = match read.open_table("mail") {
        Ok(table) => table
            .range(..)
            .unwrap()
            .map(|entry| {
                let (key, value) = entry.unwrap();
                let n = u32::from_be_bytes(key[..4].try_into().unwrap());
                assert_eq!(&value[..], &[n as u8; 2000][..], "{context}: value of {n}");
                n
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    drop(read);
    // Every acknowledged commit, and at most the one under way besides, in order.
    let expected: Vec<u32> = (0..found.len() as u32).collect();
    assert_eq!(found, expected, "{context}: not a prefix of the commits");
    assert!(
        found.len() as u32 >= acknowledged && found.len() as u32 <= acknowledged + 1,
        "{context}: {} found, {acknowledged} acknowledged",
        found.len()
    );
    let directory = Path::new(SIMULATED);
    let report = verify_directory(fs, directory, BaseName::default(), &mut |_, _| {}).unwrap();
    assert!(
        report.problems.is_empty(),
        "{context}: {:?}",
        report.problems
    );
    drop(db);
    let image = DatabaseImage::open_with(fs, directory).unwrap();
    assert!(
        !integrity(&image).unwrap().damaged(),
        "{context}: integrity"
    );
}

#[test]
fn crashes_during_and_around_deletions_lose_no_committed_transaction() {
    const COMMITS: u32 = 4000;
    let fs = SimulatedFileSystem::new();
    let (acknowledged, deletions) = crash_workload(&fs, COMMITS);
    assert_eq!(acknowledged, COMMITS);
    assert!(deletions.len() >= 3, "the workload deletes: {deletions:?}");
    // Three commits whose checkpoint deleted generations: every operation at the end of
    // each (the checkpoint file's update, then the removals and directory syncs) and a few
    // just after, and 20 spread over the rest; each cut and crashed with its own seed.
    let mut cuts = Vec::new();
    for &(from, to) in deletions.iter().take(3) {
        let tail = to.saturating_sub(40).max(from);
        cuts.extend(tail..=to + 3);
        cuts.extend((0..20).map(|step| from + step * (tail - from) / 20));
    }
    assert!(cuts.len() > 100);
    // The lowest generation each crash left: many values show the cuts fell between the
    // removals of a pass, not only before or after it.
    let mut lowest_after_crash = std::collections::BTreeSet::new();
    for (index, &cut) in cuts.iter().enumerate() {
        let seed = 0xC1C0 + index as u64;
        let fs = SimulatedFileSystem::new();
        fs.fail_at(cut, FaultMode::Persistent);
        let (acknowledged, _) = crash_workload(&fs, COMMITS);
        fs.crash(seed);
        lowest_after_crash.insert(
            closed_generations(&fs, Path::new(SIMULATED))
                .first()
                .copied(),
        );
        let context = format!("cut {cut} seed {seed}");
        check_after_crash(&fs, acknowledged, &context);
    }
    assert!(
        lowest_after_crash.len() >= 6,
        "crashes left only these lowest generations: {lowest_after_crash:?}"
    );
}
