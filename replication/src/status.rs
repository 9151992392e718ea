//! Copy status: what the stages observed, and the state derived from it.
//!
//! The state is Healthy only when every stage has completed a round, the active's log
//! directory was read recently, no stage reports a problem, and the copy and replay queues
//! are within their thresholds; so a copy whose shipper cannot reach an idle active is not
//! Healthy. Soft problems (queues, a gap, a copy being retried, lost contact) change the
//! state only after they have lasted `settle`, and so does their end: a gap filled a moment
//! later does not make the state flap. Hard problems (a generation failing inspection three
//! times, a replay error, a divergent stream, a needed generation deleted on the active)
//! and operator actions apply at once.

use crate::error::ReplError;
use crate::layout::ReplicaLayout;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::log::now_micros;
use bluejet_engine::LogPosition;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The state of a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CopyState {
    /// The service started and has not completed a round of every stage yet.
    Initializing,
    /// Within every threshold.
    Healthy,
    /// Something is wrong: the message says what.
    Failed,
    /// An operator suspended the copy: the message is the comment.
    Suspended,
    /// A seed is in progress.
    Seeding,
    /// Replication is not running (stopped cleanly).
    Disabled,
    /// The copy is catching up after a failover (used by failover).
    Resynchronizing,
}

/// A generation and a time (µs since the Unix epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationMark {
    /// The generation.
    pub generation: u32,
    /// When it happened.
    pub time_micros: u64,
}

/// A hole in the generations the copy holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// First missing generation.
    pub missing: u32,
    /// The generations present after it (first, last).
    pub have: (u32, u32),
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "missing generation {}, have {}..{}",
            self.missing, self.have.0, self.have.1
        )
    }
}

/// The status of a copy, as written to `status.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CopyStatus {
    /// The state.
    pub state: CopyState,
    /// Why (Failed), the comment (Suspended), or a note.
    pub message: String,
    /// Generations closed on the active and not yet inspected here.
    pub copy_queue: u32,
    /// Generations inspected and not yet replayed.
    pub replay_queue: u32,
    /// The newest generation closed on the active, and when it was closed.
    pub last_generated: Option<GenerationMark>,
    /// The newest generation copied here, and when.
    pub last_copied: Option<GenerationMark>,
    /// The newest generation inspected, and when.
    pub last_inspected: Option<GenerationMark>,
    /// The newest generation replayed, and when.
    pub last_replayed: Option<GenerationMark>,
    /// The passive's content position.
    pub replayed_position: LogPosition,
    /// Everything committed on the active before this time (µs; the start of the last
    /// generation replayed) is on the passive: what a transport dumpster may trim.
    #[serde(default)]
    pub safe_before_micros: u64,
    /// Generations the copy would lack if the active were lost now (the closed ones not
    /// inspected here, and the active's current one).
    pub loss_window_generations: u32,
    /// Age of the oldest change the copy would lack: time since the newest generation
    /// inspected here was closed on the active (0 when the active has nothing newer).
    pub loss_window_seconds: f64,
    /// A hole in the shipped generations, if any.
    pub gap: Option<Gap>,
    /// Bytes of generation files shipped, and the bytes they took in transit.
    pub shipped_bytes: u64,
    /// Bytes written to the incoming area (smaller when compressed).
    pub transferred_bytes: u64,
    /// Last successful read of the active's log directory.
    pub last_contact_micros: u64,
    /// When this status was computed.
    pub updated_micros: u64,
    /// The generation this copy needed next was deleted on the active: it is Failed and
    /// needs a reseed; it ships nothing more and holds no generation on the active.
    #[serde(default)]
    pub deleted_on_active: Option<u32>,
    /// The last proof point at which the copy's content was found equal to the active's
    /// (its summaries compared: see `bluejet_engine::content`); none since this process
    /// started replaying, or before the first proof record.
    #[serde(default)]
    pub proven: Option<crate::replay::ProofMark>,
    /// The last proof point at which a recount of every entry of the copy agreed.
    #[serde(default)]
    pub recounted: Option<crate::replay::ProofMark>,
}

impl Default for CopyStatus {
    fn default() -> Self {
        Self {
            state: CopyState::Initializing,
            message: String::new(),
            copy_queue: 0,
            replay_queue: 0,
            last_generated: None,
            last_copied: None,
            last_inspected: None,
            last_replayed: None,
            replayed_position: LogPosition::default(),
            proven: None,
            recounted: None,
            safe_before_micros: 0,
            loss_window_generations: 0,
            loss_window_seconds: 0.0,
            gap: None,
            shipped_bytes: 0,
            transferred_bytes: 0,
            last_contact_micros: 0,
            updated_micros: 0,
            deleted_on_active: None,
        }
    }
}

impl CopyStatus {
    /// How far replay is behind the active, in seconds: from when the newest generation the
    /// active closed was closed to this status's time, while that generation is not replayed
    /// yet; 0 once every closed generation is replayed (or none is known). Its queues are
    /// [`copy_queue`](Self::copy_queue) and [`replay_queue`](Self::replay_queue).
    ///
    /// ```
    /// use bluejet_replication::status::{CopyStatus, GenerationMark};
    /// let mut status = CopyStatus::default();
    /// status.last_generated = Some(GenerationMark { generation: 5, time_micros: 1_000_000 });
    /// status.last_replayed = Some(GenerationMark { generation: 4, time_micros: 1_200_000 });
    /// status.updated_micros = 3_500_000;
    /// assert_eq!(status.replay_lag_seconds(), 2.5);
    /// status.last_replayed = Some(GenerationMark { generation: 5, time_micros: 3_000_000 });
    /// assert_eq!(status.replay_lag_seconds(), 0.0);
    /// ```
    pub fn replay_lag_seconds(&self) -> f64 {
        let Some(generated) = self.last_generated else {
            return 0.0;
        };
        let replayed = self.last_replayed.map_or(0, |mark| mark.generation);
        if replayed >= generated.generation {
            return 0.0;
        }
        self.updated_micros.saturating_sub(generated.time_micros) as f64 / 1e6
    }

    /// Shipped bytes over transferred bytes (1.0 uncompressed).
    pub fn compression_ratio(&self) -> f64 {
        if self.transferred_bytes == 0 {
            1.0
        } else {
            self.shipped_bytes as f64 / self.transferred_bytes as f64
        }
    }

    /// Reads `status.json`; a status older than `stale` from a service that did not stop
    /// cleanly is reported Failed, since nothing is replicating.
    pub fn read(
        fs: &dyn FileSystem,
        layout: &ReplicaLayout,
        stale: Duration,
    ) -> Result<Option<Self>, ReplError> {
        let Some(mut status): Option<Self> = sealed::read(fs, &layout.status())? else {
            return Ok(None);
        };
        let age = now_micros().saturating_sub(status.updated_micros);
        let running = !matches!(status.state, CopyState::Disabled | CopyState::Failed);
        if running && age > u64::try_from(stale.as_micros()).unwrap_or(u64::MAX) {
            status.message = format!(
                "the status was last updated {:.0} s ago: the replication service is not running \
                 (it was {:?}{})",
                age as f64 / 1e6,
                status.state,
                if status.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", status.message)
                }
            );
            status.state = CopyState::Failed;
        }
        Ok(Some(status))
    }

    /// Writes `status.json`.
    pub fn write(&self, fs: &dyn FileSystem, layout: &ReplicaLayout) -> Result<(), ReplError> {
        sealed::write(fs, &layout.status(), self)
    }
}

/// When a copy counts as Healthy.
#[derive(Clone, Debug)]
pub struct Thresholds {
    /// Most generations waiting to be copied and inspected (default 8).
    pub max_copy_queue: u32,
    /// Most generations waiting to be replayed (default 16; a replay lag adds to it).
    pub max_replay_queue: u32,
    /// Longest time without reading the active's log directory (default 10 s).
    pub max_contact_age: Duration,
    /// How long a soft problem, or its end, must last to change the state (default 2 s).
    pub settle: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_copy_queue: 8,
            max_replay_queue: 16,
            max_contact_age: Duration::from_secs(10),
            settle: Duration::from_secs(2),
        }
    }
}

/// What the stages report, from which the state is derived.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    /// The status figures (state and message are derived).
    pub status: CopyStatus,
    /// Problems of the last round of each stage (ship, inspect, replay) that retrying may
    /// clear: an unreachable active, a copy that failed, an I/O error.
    pub stage_problems: [Option<String>; 3],
    /// A generation failed inspection too often (hard).
    pub inspect_failure: Option<String>,
    /// Replay failed (hard).
    pub replay_failure: Option<String>,
    /// `status.json` could not be written (hard): the file on disk is stale.
    pub status_failure: Option<String>,
    /// The active no longer has a generation this copy needs (hard: a reseed is needed).
    pub source_failure: Option<String>,
    /// Which stages completed a round: ship, inspect, replay.
    pub rounds: [bool; 3],
    /// Suspended with this comment.
    pub suspended: Option<String>,
    /// The newest generation inspected here (the seed's generation minus one at first).
    pub inspected_through: u32,
    /// The newest generation replayed.
    pub replayed_through: u32,
    /// The active's current generation, when its directory was last read.
    pub active_current: Option<u32>,
    /// When the oldest change not inspected here was made (µs), if known.
    pub exposed_since: Option<u64>,
}

/// Derives the state, holding soft changes back until they have lasted `settle`.
#[derive(Debug, Default)]
pub struct StateMachine {
    published: Option<(CopyState, String)>,
    candidate: Option<((CopyState, String), u64)>,
}

impl StateMachine {
    /// The state for `observations` at `now` (µs).
    pub fn evaluate(
        &mut self,
        observations: &Observations,
        thresholds: &Thresholds,
        now: u64,
    ) -> (CopyState, String) {
        let (raw, hard) = raw_state(observations, thresholds, now);
        let settled = match (&self.published, hard) {
            (None, _) | (_, true) => true,
            (Some(published), false) if published.0 == raw.0 => true,
            (Some(_), false) => {
                let since = match &self.candidate {
                    Some((candidate, since)) if candidate.0 == raw.0 => *since,
                    _ => now,
                };
                self.candidate = Some((raw.clone(), since));
                now.saturating_sub(since)
                    >= u64::try_from(thresholds.settle.as_micros()).unwrap_or(u64::MAX)
            }
        };
        if settled {
            self.candidate = None;
            self.published = Some(raw);
        } else if let Some(published) = &mut self.published {
            // The state holds; its message still follows the facts, unless the state is a
            // failure whose message should stay the reason it failed.
            if published.0 == CopyState::Healthy {
                published.1 = raw.1;
            }
        }
        self.published.clone().expect("set above")
    }
}

/// The state the observations call for, and whether it applies at once.
fn raw_state(
    observations: &Observations,
    thresholds: &Thresholds,
    now: u64,
) -> ((CopyState, String), bool) {
    if let Some(comment) = &observations.suspended {
        return ((CopyState::Suspended, comment.clone()), true);
    }
    if let Some(failure) = observations
        .status_failure
        .as_ref()
        .or(observations.replay_failure.as_ref())
        .or(observations.inspect_failure.as_ref())
        .or(observations.source_failure.as_ref())
    {
        return ((CopyState::Failed, failure.clone()), true);
    }
    let status = &observations.status;
    let contact_age = now.saturating_sub(status.last_contact_micros);
    let soft = if let Some(problem) = observations.stage_problems.iter().flatten().next() {
        Some(problem.clone())
    } else if observations.rounds[0]
        && contact_age > u64::try_from(thresholds.max_contact_age.as_micros()).unwrap_or(u64::MAX)
    {
        Some(format!(
            "the active's log directory was last read {:.1} s ago",
            contact_age as f64 / 1e6
        ))
    } else if status.copy_queue > thresholds.max_copy_queue {
        Some(match status.gap {
            Some(gap) => format!("copy queue {}: {gap}", status.copy_queue),
            None => format!(
                "copy queue {} exceeds {}",
                status.copy_queue, thresholds.max_copy_queue
            ),
        })
    } else if status.replay_queue > thresholds.max_replay_queue {
        Some(format!(
            "replay queue {} exceeds {}",
            status.replay_queue, thresholds.max_replay_queue
        ))
    } else {
        None
    };
    if let Some(problem) = soft {
        return ((CopyState::Failed, problem), false);
    }
    if !observations.rounds.iter().all(|&done| done) {
        return ((CopyState::Initializing, String::new()), false);
    }
    let note = status.gap.map(|gap| gap.to_string()).unwrap_or_default();
    ((CopyState::Healthy, note), false)
}
