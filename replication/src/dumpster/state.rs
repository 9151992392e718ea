//! The dumpster's state, changed only by applying [`Record`]s: the live operations and a
//! reload from the file go through the same transitions.

use super::format::{message_file_bytes, Record, FRAME_BYTES, HEADER_BYTES};
use super::{EvictedMessage, Message, CLOCK_MARGIN_MICROS, MAX_TRACKED_LOSSES};
use std::collections::VecDeque;

/// Kept messages, possible losses and counters.
#[derive(Debug, Default)]
pub struct State {
    /// Kept messages in delivery (call) order.
    pub messages: VecDeque<Message>,
    /// Body and id bytes of the kept messages.
    pub bytes: u64,
    /// File bytes of the kept messages' records.
    pub file_bytes: u64,
    /// Messages evicted while not known replayed, oldest first.
    pub lost: VecDeque<EvictedMessage>,
    /// Possible losses beyond [`MAX_TRACKED_LOSSES`], counted only.
    pub lost_untracked: u64,
    /// The newest replayed-through time reported.
    pub trimmed_through: u64,
    /// The newest delivery time seen.
    pub newest_micros: u64,
}

impl State {
    /// Applies one record.
    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Message(message) => self.push(message),
            Record::Trim { through_micros } => self.trim(through_micros),
            Record::Evict { count } => self.evict(count),
            Record::Lost(lost) => self.note_lost(lost),
            Record::Counters {
                trimmed_through,
                lost_untracked,
            } => {
                self.trimmed_through = self.trimmed_through.max(trimmed_through);
                self.lost_untracked += lost_untracked;
            }
        }
    }

    fn push(&mut self, message: Message) {
        self.bytes += message_bytes(&message);
        self.file_bytes += message_file_bytes(&message);
        self.newest_micros = self.newest_micros.max(message.delivered_micros);
        self.messages.push_back(message);
    }

    /// Messages delivered before this time (the transport's clock) are known replayed: the
    /// newest trim point less the clock margin.
    fn replayed_before(&self) -> u64 {
        self.trimmed_through.saturating_sub(CLOCK_MARGIN_MICROS)
    }

    fn trim(&mut self, through: u64) {
        self.trimmed_through = self.trimmed_through.max(through);
        let cut = self.replayed_before();
        let (mut bytes, mut file_bytes) = (0, 0);
        self.messages.retain(|message| {
            let keep = message.delivered_micros >= cut;
            if !keep {
                bytes += message_bytes(message);
                file_bytes += message_file_bytes(message);
            }
            keep
        });
        self.bytes -= bytes;
        self.file_bytes -= file_bytes;
        // An evicted message now known replayed was not lost after all.
        self.lost.retain(|lost| lost.delivered_micros >= cut);
    }

    fn evict(&mut self, count: u32) {
        for _ in 0..count {
            let Some(message) = self.messages.pop_front() else {
                return;
            };
            self.bytes -= message_bytes(&message);
            self.file_bytes -= message_file_bytes(&message);
            self.note_lost(EvictedMessage {
                message_id: message.message_id,
                delivered_micros: message.delivered_micros,
            });
        }
    }

    fn note_lost(&mut self, lost: EvictedMessage) {
        if lost.delivered_micros < self.replayed_before() {
            return;
        }
        if self.lost.len() >= MAX_TRACKED_LOSSES {
            self.lost.pop_front();
            self.lost_untracked += 1;
        }
        self.lost.push_back(lost);
    }

    /// How many of the oldest messages the limits evict at time `now`.
    pub fn over_limits(&self, max_bytes: u64, max_age_micros: u64, now: u64) -> u32 {
        let oldest_allowed = now.saturating_sub(max_age_micros);
        let mut bytes = self.bytes;
        let mut count = 0;
        for message in &self.messages {
            if bytes <= max_bytes && message.delivered_micros >= oldest_allowed {
                break;
            }
            bytes -= message_bytes(message);
            count += 1;
        }
        count
    }

    /// Bytes a compacted file would take, about: the header, the counters, the possible
    /// losses and the kept messages.
    pub fn live_file_bytes(&self) -> u64 {
        let lost: usize = (self.lost.iter())
            .map(|lost| FRAME_BYTES + 1 + 8 + 2 + lost.message_id.len())
            .sum();
        (HEADER_BYTES + FRAME_BYTES + 17 + lost) as u64 + self.file_bytes
    }

    /// The records that rebuild this state in a fresh file (compaction).
    pub fn snapshot(&self) -> Vec<Record> {
        let mut records = vec![Record::Counters {
            trimmed_through: self.trimmed_through,
            lost_untracked: self.lost_untracked,
        }];
        records.extend(self.lost.iter().cloned().map(Record::Lost));
        records.extend(self.messages.iter().cloned().map(Record::Message));
        records
    }
}

/// The bytes a message counts against the size limit: its body and its id.
pub fn message_bytes(message: &Message) -> u64 {
    (message.body.len() + message.message_id.len()) as u64
}
