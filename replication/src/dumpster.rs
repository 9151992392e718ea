//! The transport dumpster: the mail transport keeps, per database, the messages it recently
//! delivered, so that after a lossy failover it can deliver again those the new active may
//! lack.
//!
//! The transport [`record`](TransportDumpster::record)s each message once the store has
//! committed it; the passive's progress [`trim`](TransportDumpster::trim_replayed)s what it
//! has replayed; size and age limits evict the oldest. After a lossy failover
//! [`resubmit`](TransportDumpster::resubmit) delivers the messages of the loss window to the
//! new active, which drops duplicates by message id ([`deliver_once`]).
//!
//! A persistent dumpster logs every change to `dumpster.log` in its directory, so a
//! transport restart keeps it; see "Transport dumpster" in `docs/design.md` for the format.

mod deliver;
mod file;
mod format;
mod state;

pub use deliver::{deliver_once, Delivery};
pub use format::{
    DUMPSTER_FILE_NAME, DUMPSTER_FORMAT, MAX_BODY_BYTES, MAX_MESSAGE_ID_BYTES, MAX_RECORD_BYTES,
};

use crate::error::ReplError;
use bluejet_engine::file::{FileSystem, OsFileSystem};
use file::RecordFile;
use format::Record;
use state::State;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The one clock margin of the dumpster, used on both sides: the transport stamps a message
/// with its own clock, while the trim point and the loss window are times of the active's
/// log. A trim to `T` keeps every message delivered at or after `T` minus this margin, and a
/// resubmission from `S` takes every message delivered at or after `S` minus this margin. So
/// as long as the transport's clock and the active's differ by less than this (either way),
/// a message committed in a generation the passive has not replayed is never trimmed, and is
/// resubmitted after a lossy failover. Keeping a little more and resubmitting a few
/// duplicates is harmless ([`deliver_once`] drops them).
pub const CLOCK_MARGIN_MICROS: u64 = 1_000_000;
/// The margin a resubmission takes before the loss window: [`CLOCK_MARGIN_MICROS`].
pub const RESUBMIT_MARGIN_MICROS: u64 = CLOCK_MARGIN_MICROS;
/// Possible losses tracked by id; more are only counted.
pub const MAX_TRACKED_LOSSES: usize = 10_000;
/// Dead bytes in the file (trimmed or evicted messages) that start a compaction, at least.
const COMPACT_MIN_DEAD_BYTES: u64 = 1 << 20;

/// How much a dumpster keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DumpsterLimits {
    /// Bytes of kept messages (bodies and ids); default 18 MiB.
    pub max_bytes: u64,
    /// Age of the oldest kept message relative to the newest delivery; default 7 days.
    pub max_age: Duration,
}

impl Default for DumpsterLimits {
    fn default() -> Self {
        Self {
            max_bytes: 18 << 20,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its id (the store's key): 1 to [`MAX_MESSAGE_ID_BYTES`] bytes.
    pub message_id: String,
    /// Its content.
    pub body: Vec<u8>,
    /// When the store acknowledged it (µs since the Unix epoch).
    pub delivered_micros: u64,
}

/// A message dropped by the limits before the passive was known to have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvictedMessage {
    /// Its id.
    pub message_id: String,
    /// When it was delivered.
    pub delivered_micros: u64,
}

/// What the dumpster holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpsterStats {
    /// Kept messages.
    pub messages: usize,
    /// Their bytes (bodies and ids).
    pub bytes: u64,
    /// Delivery time of the oldest kept message.
    pub oldest_micros: Option<u64>,
    /// The newest delivery time seen.
    pub newest_micros: u64,
    /// The newest replayed-through time reported (messages delivered from this time minus
    /// [`CLOCK_MARGIN_MICROS`] on are kept).
    pub trimmed_through_micros: u64,
    /// Messages evicted while not known replayed (tracked and untracked).
    pub possibly_lost: u64,
    /// Bytes of the record file (0 in memory).
    pub file_bytes: u64,
    /// Bytes of a torn or damaged tail ignored (and cut off) when the file was opened.
    pub ignored_tail_bytes: u64,
}

/// What [`TransportDumpster::resubmit`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResubmitReport {
    /// The start of the loss window given.
    pub window_start_micros: u64,
    /// Messages delivered at or after this time were resubmitted (the start minus
    /// [`RESUBMIT_MARGIN_MICROS`]).
    pub resubmitted_from_micros: u64,
    /// Messages resubmitted.
    pub resubmitted: u64,
    /// Of those, stored by the new active (it lacked them).
    pub stored: u64,
    /// Of those, dropped by the new active as duplicates.
    pub duplicates: u64,
    /// Body bytes resubmitted.
    pub bytes: u64,
    /// Messages of the window evicted before the passive was known to have them: the new
    /// active may lack them and the dumpster cannot resubmit them.
    pub possibly_lost: Vec<EvictedMessage>,
    /// Further possible losses no longer tracked by id (their times are unknown).
    pub possibly_lost_untracked: u64,
}

/// A resubmission stopped by a failed delivery. Resubmitting again is safe: what was
/// already stored is dropped as a duplicate.
#[derive(Debug)]
pub struct ResubmitFailed<E> {
    /// What was done before the failure.
    pub report: ResubmitReport,
    /// The message whose delivery failed.
    pub message_id: String,
    /// The delivery's error.
    pub error: E,
}

impl<E: fmt::Display> fmt::Display for ResubmitFailed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "resubmitting {} failed after {} messages: {}",
            self.message_id, self.report.resubmitted, self.error
        )
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ResubmitFailed<E> {}

/// The recently delivered messages of one database, in delivery order, within size and age
/// limits; in memory, or persistent in a directory.
///
/// ```
/// use bluejet_replication::dumpster::{Delivery, DumpsterLimits, TransportDumpster};
/// let mut dumpster = TransportDumpster::new(None, DumpsterLimits::default()).unwrap();
/// for (i, id) in ["<a@x>", "<b@x>", "<c@x>"].iter().enumerate() {
///     // After the store committed the message:
///     dumpster.record(id, b"body", 1_000_000_000 + i as u64 * 5_000_000).unwrap();
/// }
/// // The passive replayed everything delivered before the second message.
/// dumpster.trim_replayed(1_005_000_000).unwrap();
/// assert_eq!(dumpster.stats().messages, 2);
/// // Lossy failover: the new active lacks what was delivered from the third message on.
/// let report = dumpster
///     .resubmit(1_010_000_000, |message| {
///         assert_eq!(message.message_id, "<c@x>");
///         Ok::<_, std::convert::Infallible>(Delivery::Stored)
///     })
///     .unwrap();
/// assert_eq!((report.resubmitted, report.stored, report.duplicates), (1, 1, 0));
/// ```
pub struct TransportDumpster {
    limits: DumpsterLimits,
    state: State,
    file: Option<RecordFile>,
    ignored_tail_bytes: u64,
}

impl TransportDumpster {
    /// A dumpster persistent in `directory` (created if needed; an existing one is read
    /// back, a torn tail ignored) or, with `None`, in memory.
    pub fn new(directory: Option<&Path>, limits: DumpsterLimits) -> Result<Self, ReplError> {
        Self::open_with(Arc::new(OsFileSystem), directory, limits)
    }

    /// [`new`](Self::new) on the file system `fs`.
    pub fn open_with(
        fs: Arc<dyn FileSystem>,
        directory: Option<&Path>,
        limits: DumpsterLimits,
    ) -> Result<Self, ReplError> {
        let mut dumpster = Self {
            limits,
            state: State::default(),
            file: None,
            ignored_tail_bytes: 0,
        };
        if let Some(directory) = directory {
            let loaded = RecordFile::open(fs, directory)?;
            for record in loaded.records {
                dumpster.state.apply(record);
            }
            dumpster.file = Some(loaded.file);
            dumpster.ignored_tail_bytes = loaded.ignored_tail_bytes;
            // Limits may be lower than when the file was written.
            dumpster.enforce_limits(dumpster.state.newest_micros)?;
        }
        Ok(dumpster)
    }

    /// Keeps a message the store has committed, then evicts the oldest messages beyond the
    /// limits (age measured from the newest delivery). A message larger than the size limit
    /// is not kept; it counts as possibly lost until the passive is known to have it.
    pub fn record(
        &mut self,
        message_id: &str,
        body: &[u8],
        delivered_micros: u64,
    ) -> Result<(), ReplError> {
        check_message(message_id, body)?;
        let message = Message {
            message_id: message_id.to_owned(),
            body: body.to_vec(),
            delivered_micros,
        };
        if state::message_bytes(&message) > self.limits.max_bytes {
            return self.commit(vec![Record::Lost(EvictedMessage {
                message_id: message.message_id,
                delivered_micros,
            })]);
        }
        self.commit(vec![Record::Message(message)])?;
        self.enforce_limits(self.state.newest_micros)
    }

    /// The passive has replayed everything committed on the active before
    /// `replayed_through_micros` (the active's clock): drops the messages delivered before
    /// that time minus [`CLOCK_MARGIN_MICROS`] (the transport's clock may be behind). Pass the
    /// close time of the last replayed generation (the creation time of the one after it;
    /// `safe_before_micros` in the copy's status), not the time it was replayed.
    pub fn trim_replayed(&mut self, replayed_through_micros: u64) -> Result<(), ReplError> {
        if replayed_through_micros <= self.state.trimmed_through {
            return Ok(());
        }
        self.commit(vec![Record::Trim {
            through_micros: replayed_through_micros,
        }])?;
        self.maybe_compact()
    }

    /// Evicts messages older than the age limit at `now_micros` (for a transport that has
    /// delivered nothing for a while).
    pub fn evict_expired(&mut self, now_micros: u64) -> Result<(), ReplError> {
        self.enforce_limits(now_micros.max(self.state.newest_micros))
    }

    /// After a lossy failover: delivers, in delivery order, every kept message delivered at
    /// or after `loss_window_start_micros` minus [`RESUBMIT_MARGIN_MICROS`] through
    /// `deliver` (to the new active). Messages are kept: the new active's passive trims them.
    pub fn resubmit<E>(
        &self,
        loss_window_start_micros: u64,
        mut deliver: impl FnMut(&Message) -> Result<Delivery, E>,
    ) -> Result<ResubmitReport, ResubmitFailed<E>> {
        let from = loss_window_start_micros.saturating_sub(RESUBMIT_MARGIN_MICROS);
        let mut report = self.empty_report(loss_window_start_micros, from);
        let window = self.messages().filter(|m| m.delivered_micros >= from);
        for message in window {
            match deliver(message) {
                Ok(Delivery::Stored) => report.stored += 1,
                Ok(Delivery::Duplicate) => report.duplicates += 1,
                Err(error) => {
                    return Err(ResubmitFailed {
                        report,
                        message_id: message.message_id.clone(),
                        error,
                    })
                }
            }
            report.resubmitted += 1;
            report.bytes += message.body.len() as u64;
        }
        Ok(report)
    }

    fn empty_report(&self, start: u64, from: u64) -> ResubmitReport {
        ResubmitReport {
            window_start_micros: start,
            resubmitted_from_micros: from,
            possibly_lost: (self.state.lost.iter())
                .filter(|lost| lost.delivered_micros >= from)
                .cloned()
                .collect(),
            possibly_lost_untracked: self.state.lost_untracked,
            ..ResubmitReport::default()
        }
    }

    /// The kept messages, in delivery order.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.state.messages.iter()
    }

    /// Messages evicted while not known replayed (the newest [`MAX_TRACKED_LOSSES`]).
    pub fn possibly_lost(&self) -> impl Iterator<Item = &EvictedMessage> {
        self.state.lost.iter()
    }

    /// The limits.
    pub fn limits(&self) -> DumpsterLimits {
        self.limits
    }

    /// What the dumpster holds.
    pub fn stats(&self) -> DumpsterStats {
        DumpsterStats {
            messages: self.state.messages.len(),
            bytes: self.state.bytes,
            oldest_micros: self.state.messages.front().map(|m| m.delivered_micros),
            newest_micros: self.state.newest_micros,
            trimmed_through_micros: self.state.trimmed_through,
            possibly_lost: self.state.lost.len() as u64 + self.state.lost_untracked,
            file_bytes: self.file.as_ref().map_or(0, RecordFile::len),
            ignored_tail_bytes: self.ignored_tail_bytes,
        }
    }

    /// Logs `records` (if persistent), then applies them.
    fn commit(&mut self, records: Vec<Record>) -> Result<(), ReplError> {
        if let Some(file) = &mut self.file {
            file.append(&records)?;
        }
        for record in records {
            self.state.apply(record);
        }
        Ok(())
    }

    fn enforce_limits(&mut self, now: u64) -> Result<(), ReplError> {
        let max_age = u64::try_from(self.limits.max_age.as_micros()).unwrap_or(u64::MAX);
        let count = self.state.over_limits(self.limits.max_bytes, max_age, now);
        if count == 0 {
            return Ok(());
        }
        self.commit(vec![Record::Evict { count }])?;
        self.maybe_compact()
    }

    /// Rewrites the file when the records of dropped messages outweigh the live ones.
    fn maybe_compact(&mut self) -> Result<(), ReplError> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let live = self.state.live_file_bytes();
        let dead = file.len().saturating_sub(live);
        if dead < live.max(COMPACT_MIN_DEAD_BYTES) {
            return Ok(());
        }
        file.rewrite(&self.state.snapshot())
    }
}

impl fmt::Debug for TransportDumpster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportDumpster")
            .field("limits", &self.limits)
            .field("path", &self.file.as_ref().map(RecordFile::path))
            .field("stats", &self.stats())
            .finish()
    }
}

fn check_message(message_id: &str, body: &[u8]) -> Result<(), ReplError> {
    if message_id.is_empty() || message_id.len() > MAX_MESSAGE_ID_BYTES {
        return Err(ReplError::InvalidMessage(format!(
            "a message id of {} bytes (1 to {MAX_MESSAGE_ID_BYTES} allowed)",
            message_id.len()
        )));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ReplError::InvalidMessage(format!(
            "{message_id}: a body of {} bytes (at most {MAX_BODY_BYTES})",
            body.len()
        )));
    }
    Ok(())
}
