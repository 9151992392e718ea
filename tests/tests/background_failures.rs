//! Failures in background threads are reported through `tracing` as they happen, not only at
//! the next call: a log whose background flush fails says so at once, naming its directory
//! and generation, while the lazy commit that left the records behind has long returned.
//!
//! The events are captured by a subscriber installed for this test binary alone (the
//! libraries never install one).

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
use bluejet_engine::log::Log;
use bluejet_engine::{Durability, LogConfig};
use parking_lot::Mutex;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Everything the subscriber wrote.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static CAPTURED: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writing = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(Arc::clone(&writing)))
            .init();
        buffer
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits (at most 20 s) for a captured line holding every one of `parts`; returns it.
fn wait_for_line(parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = String::from_utf8_lossy(&captured().lock()).into_owned();
        if let Some(line) = text
            .lines()
            .find(|line| parts.iter().all(|part| line.contains(part)))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {parts:?} in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_failed_background_flush_is_reported_as_it_happens() {
    captured();
    let fs = SimulatedFileSystem::new();
    let directory = Path::new("/reported-flush-failure");
    let config = LogConfig {
        generation_bytes: 128 << 10,
        background: true,
        lazy_flush_interval: Duration::from_millis(1),
        idle_roll_interval: None,
        file_system: Arc::new(fs.clone()),
        ..LogConfig::default()
    };
    let log = Log::open(directory, config).unwrap();
    let mut transaction = log.transaction();
    transaction.put("messages", b"<a@x>", b"hello");
    transaction.commit(Durability::Durable).unwrap();
    // From here every write and sync fails. A lazy commit returns at once; only the
    // background thread's flush meets the failure.
    fs.fail_at(fs.operations() + 1, FaultMode::Persistent);
    let mut transaction = log.transaction();
    transaction.put("messages", b"<b@x>", b"world");
    transaction.commit(Durability::Lazy).unwrap();
    let line = wait_for_line(&[
        "ERROR",
        "writing or syncing the log failed",
        "directory=/reported-flush-failure",
        "generation=1",
    ]);
    assert!(line.contains("error="), "{line}");
    drop(log);
}
