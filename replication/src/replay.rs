//! Replay: apply inspected generations, in order, to the passive copy.
//!
//! The passive copy ([`PassiveDatabase`]) redoes each committed transaction through the
//! engine's recovery path and checkpoints periodically; after a crash it resumes at its
//! checkpoint, so nothing is applied twice or skipped. A replay error (a generation of
//! another stream or timeline, one that does not chain, damage) makes the copy Failed naming
//! the generation; the passive is then reopened and the generation retried every
//! `retry_after`, so a repaired log converges and a divergent one stays Failed.

use crate::error::ReplError;
use crate::generation_file::{list_generations, read_header};
use crate::layout::ReplicaLayout;
use crate::status::GenerationMark;
use bluejet_engine::log::now_micros;
use bluejet_engine::{BaseName, LogPosition};
use bluejet_engine::{DbError, Options, PassiveDatabase};
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Replays every generation of `logs` (through `fs`, stream `base`) from the copy's next
/// one on, stopping at the first missing; returns how many were replayed.
pub fn replay_available(
    passive: &PassiveDatabase,
    fs: &dyn bluejet_engine::file::FileSystem,
    logs: &std::path::Path,
    base: BaseName,
) -> Result<u32, ReplError> {
    let available = list_generations(fs, logs, base)?;
    let mut replayed = 0;
    while available.contains_key(&passive.next_generation()) {
        passive.replay_generation(passive.next_generation(), None)?;
        replayed += 1;
    }
    Ok(replayed)
}

/// How the replayer works.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Apply only generations started at least this long ago (a lagged copy).
    pub lag: Option<Duration>,
    /// Checkpoint once this many log bytes were replayed since the last one (default 8 MiB).
    pub checkpoint_bytes: u64,
    /// Checkpoint at least this often while replaying (default 10 s).
    pub checkpoint_interval: Duration,
    /// After a failure, retry no more often than this (default 2 s).
    pub retry_after: Duration,
    /// What happens to `logs/` after each checkpoint (default: truncated once backed up).
    pub log_retention: ReplicaLogRetention,
    /// At a proof point, also recount every entry of the copy when the last recount is at
    /// least this old (default 10 minutes; `None`: never). Every proof point compares the
    /// content summaries; only a recount sees an entry changed behind the engine's back
    /// that no later transaction touches. A recount reads the whole copy and holds replay
    /// while it runs.
    pub recount_interval: Option<Duration>,
}

/// How a running copy bounds its `logs/`: after each checkpoint of the passive copy it
/// deletes the generations below `min(checkpoint generation − 1, covered + 1)`, `covered`
/// being what the replica's newest backup covers (no backup condition when circular). The
/// generation before the checkpoint's stays: activation and a reopen chain to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplicaLogRetention {
    /// Keep every generation.
    Keep,
    /// Delete what is replayed, checkpointed and covered by a backup.
    #[default]
    AfterBackup,
    /// Circular logging: delete what is replayed and checkpointed.
    Circular,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            lag: None,
            checkpoint_bytes: 8 << 20,
            checkpoint_interval: Duration::from_secs(10),
            retry_after: Duration::from_secs(2),
            log_retention: ReplicaLogRetention::default(),
            recount_interval: Some(Duration::from_secs(600)),
        }
    }
}

/// What one round of replay did.
#[derive(Clone, Debug, Default)]
pub struct ReplayRound {
    /// Generations replayed.
    pub replayed: Vec<GenerationMark>,
    /// When the last generation replayed was started on the active (µs): everything
    /// committed before then is on the passive.
    pub safe_before_micros: Option<u64>,
    /// Transactions applied.
    pub transactions: u64,
    /// The passive's content position after the round.
    pub position: LogPosition,
    /// The next generation to replay.
    pub next: u32,
    /// Inspected generations waiting (for their turn, or for the lag).
    pub waiting: u32,
    /// Whether a checkpoint was taken.
    pub checkpointed: bool,
    /// Generations deleted from `logs/` after it (see [`ReplicaLogRetention`]).
    pub logs_deleted: Vec<u32>,
    /// Replay failed: the copy is Failed with this message.
    pub failure: Option<String>,
    /// The last proof point at which the copy's content was found equal to the active's.
    pub proven: Option<ProofMark>,
    /// The last proof point at which a recount of every entry found it equal.
    pub recounted: Option<ProofMark>,
}

/// A content mismatch found by replay, kept in `damaged.json` (sealed): replay found it at a
/// proof point (a recount, or the summaries) and a reopened copy would pass that point again
/// when only a recount sees the damage, turning Healthy until the next recount. So the copy
/// stays Failed, replays nothing and is never failed over to, until a reseed removes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContentDamage {
    /// The replay failure, naming the generation, the proof point and the table.
    pub message: String,
    /// When it was found (µs since the Unix epoch).
    pub time_micros: u64,
}

impl ContentDamage {
    /// The record in `layout`, if any (one that cannot be read counts: the copy is not
    /// trusted while it is there).
    pub fn read(fs: &dyn bluejet_engine::file::FileSystem, layout: &ReplicaLayout) -> Option<Self> {
        let path = layout.damaged();
        if !fs.exists(&path) {
            return None;
        }
        Some(match crate::sealed::read::<Self>(fs, &path) {
            Ok(Some(damage)) => damage,
            _ => Self {
                message: format!(
                    "{} records a content mismatch (unreadable): the copy needs a reseed",
                    path.display()
                ),
                time_micros: 0,
            },
        })
    }

    fn record(
        fs: &dyn bluejet_engine::file::FileSystem,
        layout: &ReplicaLayout,
        message: &str,
    ) -> Result<(), ReplError> {
        let damage = Self {
            message: format!("{message}; the copy needs a reseed"),
            time_micros: now_micros(),
        };
        crate::sealed::write(fs, &layout.damaged(), &damage)
    }
}

/// A proof point at which the copy was found to hold the active's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProofMark {
    /// Where the proof record is in the active's log.
    pub position: LogPosition,
    /// When it was checked here (µs since the Unix epoch).
    pub time_micros: u64,
}

/// The replay stage. The passive copy is shared so readers (verification, the mail server)
/// can read it while it replays.
pub struct Replayer {
    layout: ReplicaLayout,
    options: Options,
    base: BaseName,
    replay: ReplayOptions,
    passive: Arc<RwLock<Option<Arc<PassiveDatabase>>>>,
    last_checkpoint: Instant,
    failed_at: Option<(Instant, String)>,
}

impl Replayer {
    /// A replayer for the passive copy in `layout`, opened with `options`.
    pub fn new(layout: ReplicaLayout, options: Options, replay: ReplayOptions) -> Self {
        let base = options.log.base_name;
        Self {
            layout,
            options,
            base,
            replay,
            passive: Arc::new(RwLock::new(None)),
            last_checkpoint: Instant::now(),
            failed_at: None,
        }
    }

    /// The passive copy, once opened (shared with readers).
    pub fn passive_handle(&self) -> Arc<RwLock<Option<Arc<PassiveDatabase>>>> {
        Arc::clone(&self.passive)
    }

    fn passive(&self) -> Result<Arc<PassiveDatabase>, ReplError> {
        if let Some(passive) = self.passive.read().as_ref() {
            return Ok(Arc::clone(passive));
        }
        let passive = Arc::new(PassiveDatabase::open(
            &self.layout.database(),
            &self.layout.logs(),
            self.options.clone(),
        )?);
        passive.set_recount_interval(self.replay.recount_interval);
        *self.passive.write() = Some(Arc::clone(&passive));
        Ok(passive)
    }

    /// Replays every inspected generation that is due, then checkpoints if due. A copy
    /// whose content was once found to differ from the active's replays nothing more (see
    /// [`ContentDamage`]).
    pub fn replay_once(&mut self) -> Result<ReplayRound, ReplError> {
        let mut round = ReplayRound::default();
        if let Some(damage) =
            ContentDamage::read(self.options.log.file_system.as_ref(), &self.layout)
        {
            round.failure = Some(damage.message);
            return Ok(round);
        }
        if let Some((at, failure)) = &self.failed_at {
            if at.elapsed() < self.replay.retry_after {
                round.failure = Some(failure.clone());
                return Ok(round);
            }
            // A failed replay poisoned the copy: reopen it from its checkpoint, once no
            // reader holds the old instance (its cache must not write into the file the
            // new instance allocates from).
            let mut slot = self.passive.write();
            if slot.as_ref().is_some_and(|old| Arc::strong_count(old) > 1) {
                round.failure = Some(failure.clone());
                return Ok(round);
            }
            *slot = None;
        }
        let passive = match self.passive() {
            Ok(passive) => passive,
            Err(error) => return Ok(self.fail(round, format!("opening the passive copy: {error}"))),
        };
        let available = list_generations(
            self.options.log.file_system.as_ref(),
            &self.layout.logs(),
            self.base,
        )?;
        let mut next = passive.next_generation();
        while available.contains_key(&next) && self.due(next) {
            match passive.replay_generation(next, None) {
                Ok(replay) => {
                    round.transactions += replay.report.transactions_applied;
                    round.safe_before_micros = Some(replay.created_micros);
                    let mark = |position: Option<LogPosition>| {
                        position.map(|position| ProofMark {
                            position,
                            time_micros: now_micros(),
                        })
                    };
                    round.proven = mark(replay.report.last_proof).or(round.proven);
                    round.recounted = mark(replay.report.last_recount).or(round.recounted);
                    round.replayed.push(GenerationMark {
                        generation: next,
                        time_micros: now_micros(),
                    });
                    next += 1;
                    // Replayed generations are contiguous: a whole generation replayed moves
                    // the passive database to the start of the next one.
                    assert_eq!(
                        passive.next_generation(),
                        next,
                        "after replaying generation {}, the next is {}, not {next}",
                        next - 1,
                        passive.next_generation()
                    );
                }
                Err(error) => {
                    let message = format!("replaying generation {next}: {error}");
                    if matches!(error, DbError::ContentMismatch { .. }) {
                        let fs = self.options.log.file_system.as_ref();
                        ContentDamage::record(fs, &self.layout, &message)?;
                    }
                    return Ok(self.fail(round, message));
                }
            }
        }
        self.failed_at = None;
        round.next = next;
        round.position = passive.replayed();
        round.waiting = u32::try_from(available.range(next..).count()).unwrap_or(u32::MAX);
        let depth_due = passive.checkpoint_depth() >= self.replay.checkpoint_bytes;
        let time_due = self.last_checkpoint.elapsed() >= self.replay.checkpoint_interval;
        if depth_due || (time_due && passive.checkpoint_depth() > 0) {
            // A failed checkpoint leaves the copy unusable: fail, so that it is reopened
            // from its last checkpoint after `retry_after` (with `?` the poisoned copy
            // was kept, and with nothing left to replay it was never reopened).
            if let Err(error) = passive.checkpoint() {
                let message = format!("checkpointing the passive copy: {error}");
                return Ok(self.fail(round, message));
            }
            self.last_checkpoint = Instant::now();
            round.checkpointed = true;
            round.logs_deleted = self.truncate_logs(passive.replayed().generation);
        }
        Ok(round)
    }

    /// Deletes from `logs/` what the retention rule allows once the passive's checkpoint is
    /// in `checkpoint_generation`; the generations deleted (none when it cannot tell).
    fn truncate_logs(&self, checkpoint_generation: u32) -> Vec<u32> {
        let covered = match self.replay.log_retention {
            ReplicaLogRetention::Keep => return Vec::new(),
            ReplicaLogRetention::Circular => None,
            ReplicaLogRetention::AfterBackup => {
                let fs = self.options.log.file_system.as_ref();
                match crate::backup::BackupHistory::read(fs, &self.layout) {
                    Ok(history) => Some(history.covers_through().map_or(0, |g| g + 1)),
                    Err(_) => return Vec::new(),
                }
            }
        };
        let mut limit = checkpoint_generation.saturating_sub(1);
        if let Some(covered) = covered {
            limit = limit.min(covered);
        }
        crate::truncate::delete_replica_logs(
            self.options.log.file_system.as_ref(),
            &self.layout,
            self.base,
            limit,
        )
        .unwrap_or_default()
    }

    fn fail(&mut self, mut round: ReplayRound, message: String) -> ReplayRound {
        self.failed_at = Some((Instant::now(), message.clone()));
        round.failure = Some(message);
        round
    }

    /// Whether a lagged copy may apply `generation` yet.
    fn due(&self, generation: u32) -> bool {
        let Some(lag) = self.replay.lag else {
            return true;
        };
        let path = self.layout.logs().join(self.base.closed(generation));
        let fs = self.options.log.file_system.as_ref();
        read_header(fs, &path).is_ok_and(|header| {
            now_micros().saturating_sub(header.created_micros)
                >= u64::try_from(lag.as_micros()).unwrap_or(u64::MAX)
        })
    }

    /// Checkpoints the copy (at a clean stop).
    pub fn checkpoint(&self) -> Result<(), ReplError> {
        if let Some(passive) = self.passive.read().as_ref() {
            passive.checkpoint()?;
        }
        Ok(())
    }
}
