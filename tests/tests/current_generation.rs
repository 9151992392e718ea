//! Damage in the current generation: a torn tail is cut, durable data that was damaged is an
//! error naming the segment, and the files are left as they were.

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
use bluejet_engine::log::Log;
use bluejet_engine::LogError;
use bluejet_engine::{Durability, LogConfig};
use bluejet_tests::{recover, value_for};
use std::path::Path;
use std::sync::Arc;

const DIRECTORY: &str = "/sim/logs";

fn config(fs: &SimulatedFileSystem) -> LogConfig {
    LogConfig {
        generation_bytes: 256 << 10,
        background: false,
        idle_roll_interval: None,
        file_system: Arc::new(fs.clone()),
        ..LogConfig::default()
    }
}

fn write_commits(fs: &SimulatedFileSystem, count: u64) {
    let log = Log::open(Path::new(DIRECTORY), config(fs)).unwrap();
    for index in 0..count {
        let mut transaction = log.transaction();
        let value = value_for(transaction.id(), 0, 3000);
        transaction.put("messages", &index.to_be_bytes(), &value);
        transaction.commit(Durability::Durable).unwrap();
    }
    log.close().unwrap();
}

#[test]
fn damaged_durable_segment_followed_by_later_flushes_is_an_error_not_a_tail() {
    let fs = SimulatedFileSystem::new();
    write_commits(&fs, 30);
    let path = Path::new(DIRECTORY).join("E00.log");
    let mut image = fs.read_file(&path).unwrap();
    image[2 * 4096 + 100] ^= 0x10;
    fs.write_file_durably(&path, &image);
    let error = Log::open(Path::new(DIRECTORY), config(&fs))
        .err()
        .expect("open must fail");
    match &error {
        LogError::BadSegment {
            segment,
            generation,
            ..
        } => {
            assert_eq!((*segment, *generation), (2, 1), "{error}");
        }
        other => panic!("expected BadSegment, got {other}"),
    }
    assert_eq!(
        fs.read_file(&path).unwrap(),
        image,
        "a failed open changes nothing"
    );
}

#[test]
fn a_torn_tail_is_cut_and_cleared_and_appending_goes_on() {
    let fs = SimulatedFileSystem::new();
    write_commits(&fs, 10);
    let path = Path::new(DIRECTORY).join("E00.log");
    let mut image = fs.read_file(&path).unwrap();
    // Garbage where the next flush would have gone: an unfinished write of a later flush.
    let next_home = 9 * 4096;
    for byte in &mut image[next_home..next_home + 4096] {
        *byte = 0xA5;
    }
    fs.write_file_durably(&path, &image);
    let log = Log::open(Path::new(DIRECTORY), config(&fs)).unwrap();
    drop(log);
    let cleared = fs.read_file(&path).unwrap();
    assert!(
        cleared[next_home..next_home + 4096].iter().all(|&b| b == 0),
        "garbage cleared"
    );
    write_commits(&fs, 5);
    let recovered = recover(Path::new(DIRECTORY), config(&fs)).unwrap();
    assert_eq!(recovered.committed.len(), 15);
}

#[test]
fn an_unreadable_current_header_stops_the_reader_with_an_error() {
    let fs = SimulatedFileSystem::new();
    write_commits(&fs, 3);
    let log = Log::open(Path::new(DIRECTORY), config(&fs)).unwrap();
    log.roll().unwrap();
    log.close().unwrap();
    let path = Path::new(DIRECTORY).join("E00.log");
    let mut image = fs.read_file(&path).unwrap();
    image[20] ^= 1;
    fs.write_file_durably(&path, &image);
    let error = recover(Path::new(DIRECTORY), config(&fs)).unwrap_err();
    assert!(
        matches!(error, LogError::UnreadableHeader { .. }),
        "{error}"
    );
}
