//! The demo's check: reopen the final active database and compare it with what the
//! transport acknowledged: every acknowledged message there, byte for byte (none lost), no
//! message stored twice (every Message-ID once), nothing else; and every folder index entry
//! pointing at its message, one per message.

use super::mail::{summary_key, Delivery};
use super::write::{FOLDERS, MESSAGES};
use crate::exit::ToolError;
use bluejet_engine::{Database, DbError, Options, ReadTable, ReplayReport};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// Keeps at most this many mismatch messages; more are counted.
const MISMATCH_LIMIT: usize = 20;

/// What the check found.
#[derive(Debug, Default)]
pub struct Verified {
    /// How long reopening took.
    pub reopen: Duration,
    /// What reopening replayed (nothing, after a clean close).
    pub replay: ReplayReport,
    /// Messages read back.
    pub messages: u64,
    /// Of them, identical to the one acknowledged.
    pub identical: u64,
    /// Acknowledged messages missing.
    pub lost: u64,
    /// Messages stored more than once (a Message-ID seen again), and index entries for a
    /// message already indexed.
    pub duplicates: u64,
    /// Index entries read back.
    pub index_entries: u64,
    /// Of them, matching the message they point at.
    pub index_matching: u64,
    /// The first mismatches.
    pub mismatches: Vec<String>,
    /// Mismatches beyond the first ones.
    pub unreported: u64,
}

impl Verified {
    fn mismatch(&mut self, message: String) {
        if self.mismatches.len() < MISMATCH_LIMIT {
            self.mismatches.push(message);
        } else {
            self.unreported += 1;
        }
    }

    /// All mismatches.
    pub fn problems(&self) -> usize {
        self.mismatches
            .len()
            .saturating_add(usize::try_from(self.unreported).unwrap_or(usize::MAX))
    }
}

/// Reopens the database in `directory`, checks it holds exactly `acknowledged`, and closes
/// it.
pub fn verify(
    directory: &Path,
    options: Options,
    acknowledged: &BTreeMap<String, Delivery>,
) -> Result<Verified, ToolError> {
    let started = Instant::now();
    let database = Database::open(directory, options)?;
    let mut verified = Verified {
        reopen: started.elapsed(),
        replay: database.replay_report(),
        ..Verified::default()
    };
    {
        let read = database.begin_read()?;
        let messages = read.open_table(MESSAGES)?;
        let folders = read.open_table(FOLDERS)?;
        check_messages(&messages, acknowledged, &mut verified)?;
        check_index(&folders, &messages, acknowledged, &mut verified)?;
    }
    database.close()?;
    Ok(verified)
}

/// The value of the `Message-ID` header of `message`.
fn message_id(message: &[u8]) -> Option<&[u8]> {
    let start = message
        .windows(13)
        .position(|window| window == b"\nMessage-ID: ")?
        + 13;
    let length = message[start..].iter().position(|&byte| byte == b'\r')?;
    Some(&message[start..start + length])
}

/// Every acknowledged message is there, identical, once; and nothing else is.
fn check_messages(
    messages: &ReadTable<'_>,
    acknowledged: &BTreeMap<String, Delivery>,
    verified: &mut Verified,
) -> Result<(), DbError> {
    let mut seen = HashSet::new();
    let mut message_ids = HashSet::new();
    for entry in messages.range(..)? {
        let (key, value) = entry?;
        verified.messages += 1;
        let key = String::from_utf8_lossy(&key).into_owned();
        if !message_ids.insert(message_id(&value).unwrap_or_default().to_vec()) {
            verified.duplicates += 1;
            verified.mismatch(format!(
                "message {key} is stored twice (its Message-ID again)"
            ));
        }
        match acknowledged.get(&key) {
            Some(delivery) if value == delivery.message() => verified.identical += 1,
            Some(_) => verified.mismatch(format!("message {key} differs from the one delivered")),
            None => verified.mismatch(format!("message {key} was never acknowledged")),
        }
        seen.insert(key);
    }
    for key in acknowledged.keys().filter(|key| !seen.contains(*key)) {
        verified.lost += 1;
        verified.mismatch(format!("message {key} was acknowledged and is missing"));
    }
    if messages.len() != verified.messages {
        verified.mismatch(format!(
            "table {MESSAGES} counts {} entries, {} were read",
            messages.len(),
            verified.messages
        ));
    }
    Ok(())
}

/// Every message has one index entry, and each entry describes the message it points at.
fn check_index(
    folders: &ReadTable<'_>,
    messages: &ReadTable<'_>,
    acknowledged: &BTreeMap<String, Delivery>,
    verified: &mut Verified,
) -> Result<(), DbError> {
    let mut expected: BTreeMap<String, &Delivery> = acknowledged
        .values()
        .map(|delivery| (delivery.folder_key(), delivery))
        .collect();
    let mut indexed = HashSet::new();
    for entry in folders.range(..)? {
        let (key, summary) = entry?;
        verified.index_entries += 1;
        let key = String::from_utf8_lossy(&key).into_owned();
        let Some(target) = summary_key(&summary) else {
            verified.mismatch(format!("index entry {key} names no message"));
            continue;
        };
        if !indexed.insert(target.to_owned()) {
            verified.duplicates += 1;
            verified.mismatch(format!(
                "index entry {key}: message {target} is indexed twice"
            ));
            continue;
        }
        let Some(delivery) = expected.remove(&key) else {
            verified.mismatch(format!(
                "index entry {key} belongs to no acknowledged message"
            ));
            continue;
        };
        match messages.get(target.as_bytes())? {
            Some(message) if summary == delivery.summary(&message) => verified.index_matching += 1,
            Some(_) => verified.mismatch(format!(
                "index entry {key} does not describe message {target}"
            )),
            None => verified.mismatch(format!(
                "index entry {key} points at {target}, which is missing"
            )),
        }
    }
    for key in expected.keys() {
        verified.mismatch(format!("index entry {key} is missing"));
    }
    Ok(())
}
