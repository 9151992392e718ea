//! Loss accounting: what a failover loses, from what the new active knows of the old one.
//!
//! A pure function of its facts, so that the node's failover and the cluster simulation
//! (which checks every report against what was really lost) run the same code.

use super::heartbeat::Heartbeat;
use super::witness::WitnessRecord;
use bluejet_engine::LogPosition;

/// What the passive knows when it fails over.
#[derive(Clone, Debug)]
pub struct LossFacts<'a> {
    /// The last generation inspected here (all of it will be replayed).
    pub inspected: u32,
    /// The old active's last heartbeat, if it was written by the witness's owner as active.
    pub heartbeat: Option<&'a Heartbeat>,
    /// The witness's record of the epoch being taken over.
    pub record: &'a WitnessRecord,
    /// The old active's current generation (`E00.log`): its generation and the number of
    /// commits it holds; `None` when it could not be read.
    pub current: Option<(u32, u64)>,
    /// When generation `inspected` was created (its header here), if it could be read.
    pub inspected_created_micros: Option<u64>,
    /// Block mode: the copy holds the old active's log through this position, in generation
    /// `inspected` (taken from the blocks received as the active wrote them).
    pub held: Option<LogPosition>,
}

/// The loss a failover would have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    /// The generations lost (first, last), if any.
    pub lost: Option<(u32, u32)>,
    /// The window (µs, the old active's clock) whose commits may be lost; always present
    /// when `lost` is.
    pub window: Option<(u64, u64)>,
    /// The old active's `E00.log` could not be read.
    pub current_unread: bool,
    /// Block mode: the loss starts at this position (the copy holds everything before it,
    /// in the first generation of `lost`).
    pub from: Option<LogPosition>,
}

impl Loss {
    /// How many generations are lost.
    pub fn generations(&self) -> u32 {
        self.lost.map_or(0, |(first, last)| last - first + 1)
    }
}

/// What is lost: the generations after the last one inspected here, up to the old active's
/// last known end (its current generation counts if it held anything). The time window
/// ends where the old owner's lease did: it could commit nothing after that.
///
/// When the old active's current generation cannot be read, what it did after its last
/// known end is unknown: it may have rolled (the generation then shipped and inspected
/// here) and committed into the next one before it said so again. Such a failover is
/// always lossy, with at least the generation after the last inspected one, and a window
/// that starts no later than the last known end: the dumpster resubmits everything
/// acknowledged after it.
///
/// ```
/// use bluejet_replication::cluster::loss::{measure, LossFacts};
/// use bluejet_replication::cluster::witness::WitnessRecord;
/// let record = WitnessRecord {
///     epoch: 3,
///     owner: "a".into(),
///     lease_until_micros: 9_000,
///     updated_micros: 5_000,
///     comment: String::new(),
///     owner_end: None,
///     cluster: String::new(),
///     synchronous: None,
///     holder: String::new(),
/// };
/// // Generation 7 was copied; the old active's E00.log is generation 8 and holds 2 commits.
/// let facts = LossFacts {
///     inspected: 7,
///     heartbeat: None,
///     record: &record,
///     current: Some((8, 2)),
///     inspected_created_micros: Some(4_000),
///     held: None,
/// };
/// let loss = measure(&facts);
/// assert_eq!(loss.lost, Some((8, 8)));
/// assert_eq!(loss.window, Some((4_000, 9_000)));
///
/// // Nothing copied yet and no heartbeat: nothing bounds the loss from below.
/// let facts = LossFacts { inspected: 0, current: None, inspected_created_micros: None, ..facts };
/// assert_eq!(measure(&facts).window, Some((0, 9_000)));
/// ```
pub fn measure(facts: &LossFacts) -> Loss {
    let inspected = facts.inspected;
    let beat = facts.heartbeat;
    let record = facts.record;
    // The newest of what the old active last said: in its heartbeat, or at the witness when
    // it renewed its lease (which answers even when the peer's link is cut). Not knowing
    // either, its current generation is taken as lost.
    let end = [beat.map(|beat| beat.end), record.owner_end]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(LogPosition::new(inspected + 1, 0));
    // A copy holding the old active's log only through `held` lacks whatever it wrote after:
    // its `E00.log` read says how far it went, not that the copy has it (found by the
    // cluster simulation, seed 621: an `E00.log` of the generation held in part made the
    // failover lossless, and the commits after the blocks received were lost unreported).
    if let Some(held) = facts.held {
        return measure_held(facts, held, end);
    }
    // The old active may have committed into its current generation after it last said
    // where its log ended: that generation is lost unless its `E00.log` can be read and
    // holds no commit.
    let current_unread = facts.current.is_none();
    let last = match facts.current {
        Some((generation, 0)) => generation
            .saturating_sub(1)
            .max(end.generation.saturating_sub(1)),
        Some((generation, _)) => generation.max(end.generation),
        None => end.generation.max(inspected + 1),
    };
    if last <= inspected {
        return Loss {
            lost: None,
            window: None,
            current_unread,
            from: None,
        };
    }
    // The start of the last generation copied: conservative (earlier than its close, so
    // than every commit of a later generation). Without it (nothing copied yet, or its
    // header unreadable), the start of the first lost generation if the heartbeat names
    // it; else nothing bounds the loss from below and the window starts at 0 (the whole
    // dumpster is resubmitted). Not the record's last update: a renewal (or an owner's
    // restart) postdates commits made before it (found by the cluster simulation).
    let first_lost = beat
        .filter(|beat| beat.end.generation == inspected + 1)
        .map(|beat| beat.current_started_micros);
    let mut start = (facts.inspected_created_micros).or(first_lost).unwrap_or(0);
    // When everything the old active last said it had was copied, what is lost came after
    // that: after its last heartbeat's time, which precedes the end it carries (the end at
    // the witness has no such time; a newer end there is later than the heartbeat's).
    if end.generation <= inspected {
        if let Some(beat) = beat {
            start = start.max(beat.time_micros);
        }
    }
    Loss {
        lost: Some((inspected + 1, last)),
        window: Some((start, record.lease_until_micros)),
        current_unread,
        from: None,
    }
}

/// The loss when block mode left the copy holding the old active's log through `held`:
/// whatever it wrote after `held` may be lost, through the newest generation it is known to
/// have written (its last word on its end, `end`, and its `E00.log` when read). The window
/// starts when `held`'s generation was created (every lost commit is later), or at the last
/// heartbeat when the end it carried is held here (the commits before it are).
fn measure_held(facts: &LossFacts, held: LogPosition, end: LogPosition) -> Loss {
    debug_assert_eq!(held.generation, facts.inspected);
    let mut start = facts.inspected_created_micros.unwrap_or(0);
    if let Some(beat) = facts.heartbeat.filter(|beat| beat.end <= held) {
        start = start.max(beat.time_micros);
    }
    let current = facts.current.map_or(0, |(generation, _)| generation);
    let last = end.generation.max(held.generation).max(current);
    Loss {
        lost: Some((held.generation, last)),
        window: Some((start, facts.record.lease_until_micros)),
        current_unread: facts.current.is_none(),
        from: Some(held),
    }
}
