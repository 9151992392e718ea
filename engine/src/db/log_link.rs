//! The log a database is tied to: the stream it writes (an active database) or the shipped
//! stream it replays (a passive copy).

use crate::log::{Log, LogPosition, StreamSignature};
use crate::metrics::LogLatencies;
use crate::LogError;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// The log behind a database.
pub(crate) enum LogLink {
    /// An active database writes its own log.
    Active(Arc<Log>),
    /// A passive copy replays generations shipped from the active's log.
    Passive(PassiveLog),
}

/// What a passive copy knows of the stream it replays.
pub(crate) struct PassiveLog {
    pub signature: StreamSignature,
    pub timeline: AtomicU64,
    pub generation_bytes: AtomicU64,
    /// The newest generation replayed (or being replayed).
    pub newest_generation: AtomicU32,
}

impl LogLink {
    /// The active log; `None` for a passive copy.
    pub fn active(&self) -> Option<&Arc<Log>> {
        match self {
            Self::Active(log) => Some(log),
            Self::Passive(_) => None,
        }
    }

    /// The active log of a database that has one by construction (`Database`, whose
    /// transactions log their changes).
    pub fn writer(&self) -> &Arc<Log> {
        self.active()
            .expect("only an active database writes transactions")
    }

    pub fn signature(&self) -> StreamSignature {
        match self {
            Self::Active(log) => log.signature(),
            Self::Passive(passive) => passive.signature,
        }
    }

    pub fn timeline(&self) -> u64 {
        match self {
            Self::Active(log) => log.current_header().timeline,
            Self::Passive(passive) => passive.timeline.load(Ordering::Acquire),
        }
    }

    /// The newest generation: the active's current one, or the newest one replayed.
    pub fn newest_generation(&self) -> u32 {
        match self {
            Self::Active(log) => log.current_generation(),
            Self::Passive(passive) => passive.newest_generation.load(Ordering::Acquire),
        }
    }

    /// The active log's latencies (a replayed log writes nothing).
    pub fn latencies(&self) -> Option<&LogLatencies> {
        self.active().map(|log| log.latencies())
    }

    pub fn generation_bytes(&self) -> u64 {
        match self {
            Self::Active(log) => log.generation_bytes(),
            Self::Passive(passive) => passive.generation_bytes.load(Ordering::Relaxed),
        }
    }

    /// Waits until `position` is durable; a replayed log is durable already.
    pub fn wait_durable(&self, position: LogPosition) -> Result<(), LogError> {
        match self {
            Self::Active(log) => log.wait_durable(position),
            Self::Passive(_) => Ok(()),
        }
    }

    /// After a header flip: the older header copy's checkpoint is where recovery may have
    /// to start, so the active log's checkpoint file moves there.
    pub fn checkpoint_moved(&self, older: LogPosition) -> Result<(), LogError> {
        match self {
            Self::Active(log) if older > log.checkpoint().position => log.advance_checkpoint(older),
            _ => Ok(()),
        }
    }
}
