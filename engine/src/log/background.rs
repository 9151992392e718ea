//! The background thread: lazy flushes, idle rolls and preparing the next generation.

use super::writer::Shared;
use super::LogPosition;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Starts the thread; it stops when the log is closing.
pub(crate) fn spawn(shared: Arc<Shared>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("bluejet-log".into())
        .spawn(move || run(&shared))
        .expect("spawn the log thread")
}

fn run(shared: &Shared) {
    let interval = shared.config.lazy_flush_interval;
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
        if state.append > state.durable {
            shared.lead_flush(&mut state);
        } else if shared.idle_roll_due(&state) {
            let next = LogPosition::new(state.append.generation + 1, 0);
            state.append = next;
            shared.lead_flush(&mut state);
        }
    }
}
