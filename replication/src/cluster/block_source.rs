//! Block mode, the active's side: answers a passive's [`Tail`] from the log tap of the
//! database this node holds, and takes note of how far the passive has synced (the position
//! a synchronous commit waits for).

use super::node::{NodeState, Shared};
use crate::generation_file::read_header;
use crate::net::tail::{Tail, TailAnswer};
use bluejet_engine::format::generation_header::GenerationHeader;
use bluejet_engine::log::TapRead;
use bluejet_engine::LogPosition;
use std::time::Duration;

/// The answer to `request`, waiting at most its wait for new durable bytes.
pub(crate) fn answer(shared: &Shared, request: &Tail) -> TailAnswer {
    shared.blocks.touch();
    let unavailable = |reason: String| TailAnswer::Unavailable { reason };
    // The tap and the header are taken under the state's lock, which is let go before the
    // wait: a demotion must never wait for a passive's long poll.
    let (tap, current, path) = {
        let state = shared.state.read_recursive();
        let NodeState::Active(active) = &*state else {
            return unavailable("this node does not hold the database".into());
        };
        let log = active.db.log();
        let Some(tap) = log.tap() else {
            return unavailable("block mode is off on the active".into());
        };
        let base = log.config().base_name;
        let path = shared
            .config
            .database()
            .join(base.closed(request.from.generation));
        // A passive acknowledges what precedes the position it asks for next, and that
        // position must be within this log's durable end: an acknowledgement past either (a
        // confused peer) is not believed beyond them (found by an adversarial test: one far
        // ahead of a request from the start kept commits "synchronous" that were not there).
        let believed = request.flushed.min(request.from);
        if request.flushed > request.from {
            // One text, so that the event log coalesces a repeating peer.
            let message = "the passive acknowledged past the position it asked for: not \
                           believed beyond it";
            shared.event("block-acknowledgement-refused", Some(active.epoch), message);
        }
        if request.from <= log.durable_position() {
            shared.blocks.acknowledged(believed);
        }
        (tap, log.current_header(), path)
    };
    let wait = Duration::from_millis(u64::from(request.wait_ms));
    match tap.read(request.from, request.max.max(1) as usize, wait) {
        TapRead::Bytes {
            from,
            bytes,
            durable,
        } => {
            let header = if from.offset == 0 {
                match header_of(shared, from.generation, &current, &path) {
                    Ok(header) => Some(header.encode()),
                    Err(reason) => return unavailable(reason),
                }
            } else {
                None
            };
            TailAnswer::Bytes {
                from,
                header,
                bytes,
                durable,
            }
        }
        TapRead::Ended {
            generation, length, ..
        } => match file_digest(shared, &path) {
            Ok(digest) => TailAnswer::Ended {
                generation,
                length,
                digest,
            },
            Err(reason) => unavailable(reason),
        },
        TapRead::Idle { durable } => TailAnswer::Idle { durable },
        TapRead::Behind { oldest } => unavailable(format!(
            "{} has left the active's memory (the oldest it holds is {oldest})",
            request.from
        )),
        TapRead::Ahead { durable } => unavailable(format!(
            "{} is past the active's durable end {durable}: the copy has diverged",
            request.from
        )),
        TapRead::Stopped { reason } => unavailable(format!("the active's log stopped: {reason}")),
    }
}

/// The header of `generation`: the current one's from the log, a closed one's from its file.
fn header_of(
    shared: &Shared,
    generation: u32,
    current: &GenerationHeader,
    path: &std::path::Path,
) -> Result<GenerationHeader, String> {
    if current.generation == generation {
        return Ok(*current);
    }
    let fs = shared.config.options.log.file_system.as_ref();
    let header = read_header(fs, path).map_err(|error| error.to_string())?;
    if header.generation != generation {
        return Err(format!(
            "{} holds generation {}, not {generation}",
            path.display(),
            header.generation
        ));
    }
    Ok(header)
}

/// crc32c of a closed generation's whole file (bounded by the largest generation).
fn file_digest(shared: &Shared, path: &std::path::Path) -> Result<u32, String> {
    let fs = shared.config.options.log.file_system.as_ref();
    let limit = bluejet_engine::log::MAX_GENERATION_BYTES;
    crate::sealed::read_file(fs, path, limit)
        .map(|bytes| crc32c::crc32c(&bytes))
        .map_err(|error| error.to_string())
}

/// How far the passive has synced what block mode sent it, as it last said (and was
/// believed: see [`answer`]).
#[derive(Debug, Default)]
pub struct Acknowledged {
    flushed: parking_lot::Mutex<LogPosition>,
    changed: parking_lot::Condvar,
    /// When the passive last asked for the log (or this node became active).
    last_request: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl Acknowledged {
    /// Records the passive's acknowledgement (it only moves forward).
    pub fn acknowledged(&self, flushed: LogPosition) {
        let mut held = self.flushed.lock();
        if flushed > *held {
            *held = flushed;
            self.changed.notify_all();
        }
    }

    /// The passive's last acknowledgement.
    pub fn flushed(&self) -> LogPosition {
        *self.flushed.lock()
    }

    /// Waits until the passive has synced through `position`, at most `timeout`; whether it
    /// has.
    pub(crate) fn wait_for(&self, position: LogPosition, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut held = self.flushed.lock();
        while *held < position {
            if self.changed.wait_until(&mut held, deadline).timed_out() {
                return *held >= position;
            }
        }
        true
    }

    /// Forgets the acknowledgements (a new epoch); the passive's silence counts from now.
    pub(crate) fn reset(&self) {
        *self.flushed.lock() = LogPosition::default();
        self.touch();
    }

    /// The passive asked for the log now.
    pub(crate) fn touch(&self) {
        *self.last_request.lock() = Some(std::time::Instant::now());
    }

    /// How long the passive has not asked for the log (since this node became active, if
    /// it never did).
    pub(crate) fn silence(&self) -> Option<Duration> {
        self.last_request.lock().map(|at| at.elapsed())
    }
}
