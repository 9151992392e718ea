//! The demo's mail transport: writer threads deliver mail continuously to whichever node is
//! active, each message in one transaction that stores the message (keyed by its id, at
//! most once) and its folder index entry. A message is acknowledged once committed, and
//! then kept in the transport dumpster until the passive copy is known to have it. A
//! delivery the cluster refuses (no node active, a move holding commits, a lease lapsed)
//! stays in the transport's queue and is retried on whichever node is active, so no
//! message is dropped; after a lossy failover the dumpster delivers again what the new
//! active may lack.

use super::mail::{Delivery, Rng};
use super::replicate::Cluster;
use crate::exit::ToolError;
use bluejet_engine::log::now_micros;
use bluejet_engine::{Database, DbError};
use bluejet_replication::dumpster::{self, DumpsterLimits, ResubmitReport, TransportDumpster};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// Table of whole messages, keyed `<mailbox>/<uid>` (the message's id in the transport).
pub const MESSAGES: &str = "messages";
/// Table of folder index entries, keyed `<mailbox>/<folder>/<received>/<uid>`.
pub const FOLDERS: &str = "folders";

/// The seed of the whole demo: every run writes the same kind of mail.
const SEED: u64 = 0x426c_7565_4a65_7421;
/// A message no node accepts for this long is a failure.
const GIVE_UP: Duration = Duration::from_secs(30);
/// Pause between two attempts at a refused delivery.
const RETRY_AFTER: Duration = Duration::from_millis(10);
/// How often the passive's progress trims the dumpster.
const TRIM_INTERVAL: Duration = Duration::from_millis(100);
/// The dumpster's size limit (its age limit is the default).
const DUMPSTER_BYTES: u64 = 256 << 20;

/// How to deliver.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Writer threads.
    pub writers: usize,
    /// Mailboxes.
    pub mailboxes: u32,
    /// Messages per second, all writers together.
    pub rate: f64,
}

/// Stores `message` (as `delivery`) and its folder index entry in one transaction, unless
/// a message with its id is already there: [`dumpster::deliver_once`] for a mail store with
/// an index.
pub fn store(
    db: &Database,
    delivery: &Delivery,
    message: &[u8],
) -> Result<dumpster::Delivery, DbError> {
    let id = delivery.message_key();
    let mut write = db.begin_write()?;
    write.create_table(MESSAGES)?;
    write.create_table(FOLDERS)?;
    if write.get(MESSAGES, id.as_bytes())?.is_some() {
        // As `deliver_once`: "already stored" only with the gate's word, once durable.
        write.confirm_unchanged()?;
        return Ok(dumpster::Delivery::Duplicate);
    }
    write.insert(MESSAGES, id.as_bytes(), message)?;
    write.insert(
        FOLDERS,
        delivery.folder_key().as_bytes(),
        &delivery.summary(message),
    )?;
    write.commit()?;
    Ok(dumpster::Delivery::Stored)
}

/// What the transport did.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Every message acknowledged (committed by a node), by id.
    pub acknowledged: BTreeMap<String, Delivery>,
    /// Bytes of those messages.
    pub message_bytes: u64,
    /// Deliveries acknowledged, resubmissions not included.
    pub delivered: u64,
    /// Attempts refused by the cluster and retried.
    pub retries: u64,
    /// Deliveries per node.
    pub per_node: [u64; 2],
    /// The longest a message waited in the queue for a node to accept it.
    pub longest_wait: Duration,
    /// From the first delivery to the writers stopping.
    pub elapsed: Duration,
    /// Messages the dumpster held at the end, and messages evicted from it unreplayed.
    pub dumpster_messages: usize,
    /// Messages evicted from the dumpster before the passive was known to have them.
    pub possibly_lost: u64,
    /// A writer's failure.
    pub problems: Vec<String>,
}

/// The transport, shared by its writers, its trimmer and the scenario.
pub struct Transport<'a> {
    cluster: &'a Cluster,
    plan: Plan,
    dumpster: Mutex<TransportDumpster>,
    acknowledged: Mutex<BTreeMap<String, Delivery>>,
    /// Held (shared) by every delivery attempt from its commit to its record in the
    /// dumpster; a resubmission holds it exclusively, so no acknowledged message is missed.
    attempts: RwLock<()>,
    uids: Vec<AtomicU32>,
    stop: AtomicBool,
    /// The node that took the last delivery (tried first).
    last: AtomicUsize,
    delivered: AtomicU64,
    message_bytes: AtomicU64,
    retries: AtomicU64,
    per_node: [AtomicU64; 2],
    longest_wait_micros: AtomicU64,
    problems: Mutex<Vec<String>>,
}

impl<'a> Transport<'a> {
    /// A transport to `cluster` with an in-memory dumpster.
    pub fn new(cluster: &'a Cluster, plan: Plan) -> Result<Self, ToolError> {
        let limits = DumpsterLimits {
            max_bytes: DUMPSTER_BYTES,
            ..DumpsterLimits::default()
        };
        Ok(Self {
            cluster,
            plan,
            dumpster: Mutex::new(TransportDumpster::new(None, limits)?),
            acknowledged: Mutex::new(BTreeMap::new()),
            attempts: RwLock::new(()),
            uids: (0..plan.mailboxes).map(|_| AtomicU32::new(0)).collect(),
            stop: AtomicBool::new(false),
            last: AtomicUsize::new(0),
            delivered: AtomicU64::new(0),
            message_bytes: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            per_node: [AtomicU64::new(0), AtomicU64::new(0)],
            longest_wait_micros: AtomicU64::new(0),
            problems: Mutex::new(Vec::new()),
        })
    }

    /// Messages acknowledged so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Attempts refused so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Deliveries taken by node `index` so far.
    pub fn delivered_to(&self, index: usize) -> u64 {
        self.per_node[index].load(Ordering::Relaxed)
    }

    /// Asks the writers and the trimmer to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Runs the writers and the trimmer until [`stop`](Self::stop); then what was done.
    pub fn run(&self) -> Delivered {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for writer in 0..self.plan.writers {
                scope.spawn(move || self.write(writer));
            }
            scope.spawn(|| self.trim());
        });
        let dumpster = self.dumpster.lock().expect("dumpster").stats();
        Delivered {
            acknowledged: std::mem::take(&mut *self.acknowledged.lock().expect("acknowledged")),
            message_bytes: self.message_bytes.load(Ordering::Relaxed),
            delivered: self.delivered(),
            retries: self.retries(),
            per_node: [self.delivered_to(0), self.delivered_to(1)],
            longest_wait: Duration::from_micros(self.longest_wait_micros.load(Ordering::Relaxed)),
            elapsed: started.elapsed(),
            dumpster_messages: dumpster.messages,
            possibly_lost: dumpster.possibly_lost,
            problems: std::mem::take(&mut *self.problems.lock().expect("problems")),
        }
    }

    /// One writer: delivers at its share of the rate until stopped.
    fn write(&self, writer: usize) {
        let mut rng = Rng::new(SEED ^ (writer as u64).wrapping_mul(0x9e37_79b9));
        let interval = Duration::from_secs_f64(self.plan.writers as f64 / self.plan.rate.max(0.1));
        let mut due = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let mailbox =
                usize::try_from(rng.below(self.uids.len() as u64)).expect("below uids.len()");
            let delivery = Delivery {
                mailbox: u32::try_from(mailbox).expect("the demo has a few mailboxes"),
                uid: self.uids[mailbox].fetch_add(1, Ordering::Relaxed) + 1,
                seed: rng.next_u64(),
            };
            if let Err(problem) = self.deliver(delivery) {
                self.problems.lock().expect("problems").push(problem);
                self.stop();
                return;
            }
            // A queue that built up during an outage drains at most half a second early.
            due = (due + interval).max(Instant::now() - Duration::from_millis(500));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Delivers one message, retrying on whichever node is active until one commits it.
    fn deliver(&self, delivery: Delivery) -> Result<(), String> {
        let message = delivery.message();
        let queued = Instant::now();
        loop {
            let first = self.last.load(Ordering::Relaxed);
            for index in [first, 1 - first] {
                let _attempt = self.attempts.read().expect("attempts");
                let Some(node) = self.cluster.node(index) else {
                    continue;
                };
                if let Some(Ok(_)) = node.with_database(|db| store(db, &delivery, &message)) {
                    self.acknowledge(index, &delivery, &message, queued)?;
                    return Ok(());
                }
            }
            if queued.elapsed() > GIVE_UP {
                return Err(format!(
                    "no node accepted message {} in {} s",
                    delivery.message_key(),
                    GIVE_UP.as_secs()
                ));
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(RETRY_AFTER);
        }
    }

    /// The message is committed on node `index`: acknowledged, and kept in the dumpster.
    fn acknowledge(
        &self,
        index: usize,
        delivery: &Delivery,
        message: &[u8],
        queued: Instant,
    ) -> Result<(), String> {
        let id = delivery.message_key();
        self.dumpster
            .lock()
            .expect("dumpster")
            .record(&id, message, now_micros())
            .map_err(|error| format!("recording {id} in the dumpster: {error}"))?;
        self.acknowledged
            .lock()
            .expect("acknowledged")
            .insert(id, *delivery);
        self.last.store(index, Ordering::Relaxed);
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.per_node[index].fetch_add(1, Ordering::Relaxed);
        self.message_bytes
            .fetch_add(message.len() as u64, Ordering::Relaxed);
        let waited = u64::try_from(queued.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.longest_wait_micros
            .fetch_max(waited, Ordering::Relaxed);
        Ok(())
    }

    /// Trims the dumpster by what the passive copy has replayed, now and then.
    fn trim(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            let safe = (0..2)
                .filter_map(|index| self.cluster.copy(index))
                .map(|copy| copy.safe_before_micros)
                .max();
            if let Some(safe) = safe.filter(|&safe| safe > 0) {
                let trimmed = self.dumpster.lock().expect("dumpster").trim_replayed(safe);
                if let Err(error) = trimmed {
                    self.problems
                        .lock()
                        .expect("problems")
                        .push(format!("trimming the dumpster: {error}"));
                }
            }
            std::thread::sleep(TRIM_INTERVAL);
        }
    }

    /// After a failover: delivers again, to node `index`, every message the dumpster kept
    /// from `window_start` (µs) on. Deliveries wait meanwhile.
    pub fn resubmit(&self, index: usize, window_start: u64) -> Result<ResubmitReport, ToolError> {
        let _exclusive = self.attempts.write().expect("attempts");
        let dumpster = self.dumpster.lock().expect("dumpster");
        let acknowledged = self.acknowledged.lock().expect("acknowledged");
        let resubmitted = dumpster.resubmit(window_start, |message| {
            let delivery = acknowledged
                .get(&message.message_id)
                .ok_or_else(|| format!("{} was never acknowledged", message.message_id))?;
            let started = Instant::now();
            loop {
                let node = self.cluster.node(index).ok_or("the node stopped")?;
                match node.with_database(|db| store(db, delivery, &message.body)) {
                    Some(Ok(done)) => return Ok(done),
                    _ if started.elapsed() > GIVE_UP => {
                        return Err(format!(
                            "node {index} did not accept {} in {} s",
                            message.message_id,
                            GIVE_UP.as_secs()
                        ))
                    }
                    _ => std::thread::sleep(RETRY_AFTER),
                }
            }
        });
        resubmitted.map_err(|failed| ToolError::Failure(failed.to_string()))
    }

    /// The dumpster's trim point: everything delivered before it is on the passive copy.
    pub fn trimmed_through(&self) -> u64 {
        self.dumpster
            .lock()
            .expect("dumpster")
            .stats()
            .trimmed_through_micros
    }
}
