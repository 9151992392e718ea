//! The log's threads: the background thread (lazy syncs, idle rolls, preparing the next
//! generation), the write-behind thread (writes a buffer past half full) and the closer
//! (see `closer.rs`).

use super::writer::Shared;
use super::LogPosition;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Starts the background thread; it stops when the log is closing.
pub(crate) fn spawn(shared: Arc<Shared>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("bluejet-log".into())
        .spawn(move || run(&shared))
        .expect("spawn the log thread")
}

/// Starts the closer thread; it stops when the closer is told to.
pub(crate) fn spawn_closer(shared: Arc<Shared>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("bluejet-log-close".into())
        .spawn(move || shared.closer.run())
        .expect("spawn the log closer thread")
}

fn run(shared: &Shared) {
    let interval = shared.config.lazy_flush_interval;
    // Reported once while the same failure repeats at every interval.
    let mut prepare_failure = None;
    loop {
        // A failure to prepare is retried at the roll, which returns it.
        let failure = shared
            .prepare_if_needed()
            .err()
            .map(|error| error.to_string());
        if failure.is_some() && failure != prepare_failure {
            tracing::warn!(
                directory = %shared.directory().display(),
                error = failure.as_deref().unwrap_or_default(),
                "preparing the next log generation failed; the next roll tries again"
            );
        }
        prepare_failure = failure;
        let mut state = shared.state.lock();
        if state.closing {
            return;
        }
        shared.background_wakeup.wait_for(&mut state, interval);
        // A write in progress ends after a buffer's worth of writing (and the rolls in it):
        // waiting for it keeps the lazy bound, where waiting another interval would stretch
        // it.
        while state.flushing && !state.closing {
            shared.room.wait(&mut state);
        }
        if state.closing {
            return;
        }
        let behind = state.append > state.durable;
        let may_sync = !state.syncing;
        // Lazy commits become durable within the interval.
        if may_sync && behind {
            shared.lead_flush(&mut state, true);
        } else if may_sync && shared.idle_roll_due(&state) {
            let next = LogPosition::new(state.append.generation + 1, 0);
            state.append = next;
            shared.lead_flush(&mut state, true);
        }
    }
}

/// Starts the write-behind thread; it stops when the log is closing.
pub(crate) fn spawn_write_behind(shared: Arc<Shared>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("bluejet-log-write".into())
        .spawn(move || write_behind(&shared))
        .expect("spawn the log write-behind thread")
}

/// Writes the buffer (without syncing) whenever it is past half full and no flush runs, so
/// appenders keep filling the other half instead of writing it themselves, even while the
/// background thread waits for a sync.
fn write_behind(shared: &Shared) {
    let half_buffer = shared.config.buffer_bytes / 2;
    let mut state = shared.state.lock();
    while !state.closing {
        // After a failure nothing is written any more (and the buffer never empties).
        if state.buffered > half_buffer && !state.flushing && !state.poisoned() {
            shared.lead_flush(&mut state, false);
        } else {
            shared.write_wakeup.wait(&mut state);
        }
    }
}
