//! The demo's delivery phase: writer threads delivering mail into the database at once, each
//! message in one transaction that writes the message and its folder index entry (and now
//! and then expunges an older message, as a mail client would).

use crate::exit::ToolError;
use crate::mail::{Delivery, Rng};
use crate::progress::Progress;
use bluejet_engine::db::{Database, Durability};
use bluejet_engine::log::LogStats;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Table of whole messages, keyed `<mailbox>/<uid>`.
pub const MESSAGES: &str = "messages";
/// Table of folder index entries, keyed `<mailbox>/<folder>/<received>/<uid>`.
pub const FOLDERS: &str = "folders";

/// The seed of the whole demo: every run writes the same kind of mail.
const SEED: u64 = 0x426c_7565_4a65_7421;
/// One commit in this many is lazy.
const LAZY_ONE_IN: u64 = 8;
/// One delivery in this many also expunges an older message of the same mailbox.
const EXPUNGE_ONE_IN: u64 = 10;

/// How much to deliver.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Messages in all.
    pub messages: u64,
    /// Writer threads.
    pub writers: usize,
    /// Mailboxes.
    pub mailboxes: u32,
}

/// What the writers did.
#[derive(Debug, Default)]
pub struct Delivered {
    /// What the database must now hold: every message delivered and not expunged, by key.
    pub live: BTreeMap<String, Delivery>,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages expunged again.
    pub expunged: u64,
    /// Bytes of every message delivered.
    pub message_bytes: u64,
    /// Durable commits (the setup transaction included).
    pub durable: u64,
    /// Lazy commits.
    pub lazy: u64,
    /// Things the database did not do as asked (an expunged message that was not there).
    pub problems: Vec<String>,
    /// From the first commit to the last.
    pub elapsed: Duration,
    /// The log's counters at the end.
    pub log: LogStats,
}

/// What one writer did.
#[derive(Debug, Default)]
struct Work {
    delivered: Vec<Delivery>,
    expunged: Vec<Delivery>,
    message_bytes: u64,
    lazy: u64,
    problems: Vec<String>,
}

/// Creates the tables, then runs the writers to the end.
pub fn deliver(
    database: &Database,
    plan: Plan,
    progress: &Progress,
) -> Result<Delivered, ToolError> {
    let started = Instant::now();
    let mut setup = database.begin_write()?;
    setup.open_table(MESSAGES)?;
    setup.open_table(FOLDERS)?;
    setup.commit_with(Durability::Durable)?;
    // UIDs are per mailbox and shared by all writers, as an IMAP server's are.
    let uids: Vec<AtomicU32> = (0..plan.mailboxes).map(|_| AtomicU32::new(0)).collect();
    let claimed = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let results: Vec<Result<Work, ToolError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.writers)
            .map(|writer| {
                let mut job = Writer {
                    database,
                    rng: Rng::new(SEED ^ (writer as u64).wrapping_mul(0x9e37_79b9)),
                    uids: &uids,
                    own: vec![VecDeque::new(); plan.mailboxes as usize],
                    work: Work::default(),
                };
                let (claimed, done) = (&claimed, &done);
                scope.spawn(move || {
                    while claimed.fetch_add(1, Ordering::Relaxed) < plan.messages {
                        job.deliver_one()?;
                        progress.update(done.fetch_add(1, Ordering::Relaxed) + 1, plan.messages);
                    }
                    Ok(job.work)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(ToolError::Failure("a writer thread panicked".into())))
            })
            .collect()
    });
    let mut delivered = Delivered {
        durable: 1,
        ..Delivered::default()
    };
    for result in results {
        merge(&mut delivered, result?);
    }
    delivered.durable += delivered.delivered - delivered.lazy;
    delivered.elapsed = started.elapsed();
    delivered.log = database.log().stats();
    Ok(delivered)
}

/// Adds one writer's work. Writers only expunge what they delivered themselves, after
/// delivering it, so the final contents do not depend on how the threads interleaved.
fn merge(total: &mut Delivered, work: Work) {
    total.delivered += work.delivered.len() as u64;
    total.expunged += work.expunged.len() as u64;
    total.message_bytes += work.message_bytes;
    total.lazy += work.lazy;
    total.problems.extend(work.problems);
    for delivery in work.delivered {
        total.live.insert(delivery.message_key(), delivery);
    }
    for delivery in work.expunged {
        total.live.remove(&delivery.message_key());
    }
}

/// One writer thread.
struct Writer<'a> {
    database: &'a Database,
    rng: Rng,
    uids: &'a [AtomicU32],
    /// This writer's own live messages per mailbox, oldest first: what it may expunge.
    own: Vec<VecDeque<Delivery>>,
    work: Work,
}

impl Writer<'_> {
    /// Delivers one message in one transaction.
    fn deliver_one(&mut self) -> Result<(), ToolError> {
        let mailbox = self.rng.below(self.uids.len() as u64) as usize;
        let delivery = Delivery {
            mailbox: mailbox as u32,
            uid: self.uids[mailbox].fetch_add(1, Ordering::Relaxed) + 1,
            seed: self.rng.next_u64(),
        };
        // Built before the transaction: only the database work is serialised.
        let message = delivery.message();
        let summary = delivery.summary(&message);
        let expunge = self.pick_expunged(mailbox);
        let durability = if self.rng.below(LAZY_ONE_IN) == 0 {
            self.work.lazy += 1;
            Durability::Lazy
        } else {
            Durability::Durable
        };
        let mut write = self.database.begin_write()?;
        write.insert(MESSAGES, delivery.message_key().as_bytes(), &message)?;
        write.insert(FOLDERS, delivery.folder_key().as_bytes(), &summary)?;
        if let Some(old) = expunge {
            let message_gone = write.remove(MESSAGES, old.message_key().as_bytes())?;
            let index_gone = write.remove(FOLDERS, old.folder_key().as_bytes())?;
            if !(message_gone && index_gone) {
                self.work.problems.push(format!(
                    "expunging {}: the message or its index entry was not there",
                    old.message_key()
                ));
            }
            self.work.expunged.push(old);
        }
        write.commit_with(durability)?;
        self.own[mailbox].push_back(delivery);
        self.work.delivered.push(delivery);
        self.work.message_bytes += message.len() as u64;
        Ok(())
    }

    /// Now and then, the oldest of this writer's messages in `mailbox`.
    fn pick_expunged(&mut self, mailbox: usize) -> Option<Delivery> {
        if self.rng.below(EXPUNGE_ONE_IN) != 0 || self.own[mailbox].len() < 3 {
            return None;
        }
        self.own[mailbox].pop_front()
    }
}
