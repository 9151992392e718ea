//! The log's threads: the background thread (lazy flushes, idle rolls, preparing the next
//! generation) and the closer (see `closer.rs`).

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
    let half_buffer = shared.config.buffer_bytes / 2;
    loop {
        // A failure to prepare is retried at the roll, which reports it.
        let _ = shared.prepare_if_needed();
        let mut state = shared.state.lock();
        if state.closing {
            return;
        }
        shared.background_wakeup.wait_for(&mut state, interval);
        if state.closing {
            return;
        }
        if state.flushing {
            continue;
        }
        let behind = state.append > state.durable;
        let may_sync = !state.syncing;
        // Lazy commits become durable within the interval; a buffer past half full is
        // written (not synced) so appenders keep filling the other half, even while a sync
        // is in flight.
        if may_sync && behind && state.last_sync.elapsed() >= interval {
            shared.lead_flush(&mut state, true);
        } else if state.buffered > half_buffer {
            shared.lead_flush(&mut state, false);
        } else if may_sync && behind {
            shared.lead_flush(&mut state, true);
        } else if may_sync && shared.idle_roll_due(&state) {
            let next = LogPosition::new(state.append.generation + 1, 0);
            state.append = next;
            shared.lead_flush(&mut state, true);
        }
    }
}
