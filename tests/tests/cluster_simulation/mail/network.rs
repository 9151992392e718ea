//! The network transport, block mode and synchronous commit, on top of the data path.
//!
//! Over the network the passive reaches the active's directory only through the active's
//! process ([`Simulation::readable`]): nothing of it can be read while the link is cut or
//! the active is down or paused. In block mode (always on with the network transport, as
//! the node's) the passive's follower asks the active's log tap for the entries it made
//! durable after a position (a long poll, answered at the first new durable entry or when
//! the generation ends), syncs them in its block file of the generation, and asks again
//! from the new end: that request acknowledges everything before it (the real
//! [`Confirmed`], which the real [`SyncCommit`] reads). A failure of the follower falls back
//! to file mode; the next request starts a generation from its beginning. At a failover the
//! block files after the copy's last closed generation become closed generations of its
//! copy when they chain to it (as `block_salvage` does), and the failover proves itself
//! lossless as `failover::synchronous_proof` does.

use super::*;
use bluejet_replication::cluster::sync_commit::{SyncDecision, SyncLevel, SyncSettings};
use std::fmt;

/// How the passive reaches the active's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTransport {
    /// The active's directory on a share (readable while its machine is up).
    Share,
    /// Over TCP from the active's process, with block mode and these synchronous settings.
    Network(SyncSettings),
}

impl LogTransport {
    /// Half the seeds share the directory; the others reach it over the network, with
    /// synchronous commit off, received or flushed (the same here: the passive acknowledges
    /// only what it synced), a timeout of 300 ms to 2 s, strict in a quarter of them.
    pub fn draw(seed: u64) -> Self {
        // A stream of its own: a seed of the share transport runs as it did before.
        let mut random = Pcg64::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b00);
        if random.random_bool(0.5) {
            return Self::Share;
        }
        let levels = [SyncLevel::Off, SyncLevel::Received, SyncLevel::Flushed];
        Self::Network(SyncSettings {
            level: levels[random.random_range(0..levels.len())],
            timeout: Duration::from_millis(random.random_range(300..=2_000)),
            strict: random.random_bool(0.25),
        })
    }

    /// The settings of synchronous commit, when it is on.
    pub fn sync_settings(&self) -> Option<SyncSettings> {
        match self {
            Self::Network(settings) if settings.level != SyncLevel::Off => Some(*settings),
            _ => None,
        }
    }
}

impl fmt::Display for LogTransport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Share => write!(formatter, "share"),
            Self::Network(settings) if settings.level == SyncLevel::Off => {
                write!(formatter, "network, block mode, synchronous off")
            }
            Self::Network(settings) => write!(
                formatter,
                "network, block mode, synchronous {:?} (timeout {} ms{})",
                settings.level,
                settings.timeout.as_millis(),
                if settings.strict { ", strict" } else { "" }
            ),
        }
    }
}

/// The synchronous commit rule under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRule {
    /// The real one.
    Real,
    /// Broken: every renewal writes a claim of synchronous commit at the witness, whatever
    /// the passive confirmed (the node's own state goes on as it decided).
    ClaimWithoutConfirmation,
    /// Broken: a degrading node acknowledges before a renewal cleared the claim.
    AcknowledgeWhileDegrading,
}

/// A block file: the synced entries of one generation of the active's log.
#[derive(Clone, Debug)]
pub struct BlockCopy {
    number: u32,
    /// The active's generation (its origin), and the one before it there (its header's
    /// chain: a block file that does not follow the copy's last generation is refused).
    origin: u64,
    follows: Option<u64>,
    timeline: u64,
    created: u64,
    entries: Vec<u64>,
    /// Received whole: the active ended the generation at this length.
    complete: bool,
}

impl BlockCopy {
    /// Everything before this position is in the block file.
    pub fn covers(&self) -> LogPosition {
        match self.complete {
            true => LogPosition::new(self.number + 1, 0),
            false => LogPosition::new(self.number, self.entries.len() as u32),
        }
    }
}

/// Block mode's request: from `from` (acknowledging what precedes it), reaching the active
/// at `arrives`; then its answer, synced here at `synced`.
pub struct Follow {
    from: LogPosition,
    arrives: u64,
    at_active: bool,
    answer: Option<(u64, Answer)>,
}

enum Answer {
    /// Entries after `from` (with the generation's header when `from` is its start).
    Bytes(BlockCopy),
    /// The generation ended at `from` (its header, no entries).
    Ended(BlockCopy),
}

impl Simulation {
    /// The passive's follower: one request at a time, as `block_follow` does.
    pub(super) fn follow(&mut self, index: usize) {
        if self.log_transport == LogTransport::Share || self.failing_over(index) {
            return;
        }
        let running = self.nodes[index].running.as_mut().unwrap();
        if !matches!(running.part, Part::Passive { .. }) {
            (running.follow, running.block_open, running.block_mode) = (None, None, false);
            return;
        }
        if let Some(reason) = self.tail_unavailable(1 - index) {
            return self.file_mode(index, reason);
        }
        let running = self.nodes[index].running.as_mut().unwrap();
        match running.follow.take() {
            None => self.request_tail(index),
            Some(follow) if self.now < follow.arrives => running.follow = Some(follow),
            Some(follow) if follow.answer.is_none() => self.answer_tail(index, follow),
            Some(follow) if self.now < follow.answer.as_ref().unwrap().0 => {
                running.follow = Some(follow)
            }
            Some(follow) => self.receive(index, follow),
        }
    }

    /// Why the active `index`'s log tap cannot answer now, if it cannot.
    fn tail_unavailable(&self, index: usize) -> Option<&'static str> {
        let node = &self.nodes[index];
        if !self.link_up() {
            return Some("the link is cut");
        }
        if node.running.is_none() || self.now < node.paused_until {
            return Some("the active does not answer");
        }
        node.active_epoch()
            .is_none()
            .then_some("the peer does not hold the database")
    }

    /// Falls back to file mode: the request is lost, the block file no longer open.
    fn file_mode(&mut self, index: usize, reason: &str) {
        let running = self.nodes[index].running.as_mut().unwrap();
        let was = running.block_mode;
        (running.follow, running.block_open, running.block_mode) = (None, None, false);
        if was {
            self.event(Some(index), format!("falls back to file mode: {reason}"));
        }
    }

    /// Asks from the open block file's end, or from the start of the generation needed next.
    fn request_tail(&mut self, index: usize) {
        let arrives = self.now + self.latency();
        let node = &mut self.nodes[index];
        let next = node
            .log
            .last()
            .map_or(1, |generation| generation.number + 1);
        let running = node.running.as_mut().unwrap();
        let open = (running.block_open)
            .filter(|&open| open >= next)
            .and_then(|open| node.blocks.get(&open));
        let from = match open {
            Some(block) => LogPosition::new(block.number, block.entries.len() as u32),
            None => LogPosition::new(next.max(running.block_complete + 1), 0),
        };
        running.block_open = open.map(|block| block.number);
        running.acknowledged_sent = running.acknowledged_sent.max(Some(from));
        running.follow = Some(Follow {
            from,
            arrives,
            at_active: false,
            answer: None,
        });
    }

    /// The active's log tap: takes note of the acknowledgement, then answers with the
    /// entries made durable after `from`, or the generation's end, or waits (a long poll).
    fn answer_tail(&mut self, index: usize, mut follow: Follow) {
        let answered = self.now + self.latency() + self.sync_time();
        let from = follow.from;
        let active = &self.nodes[1 - index];
        let running = active.running.as_ref().unwrap();
        if !std::mem::replace(&mut follow.at_active, true) && from <= active.end() {
            running.confirmed.acknowledged(from);
        }
        let generations = active.log.iter().enumerate();
        let mut found = generations.filter(|(_, g)| g.number == from.generation);
        let Some((at, generation)) = found.next() else {
            if active
                .log
                .last()
                .is_some_and(|last| from.generation > last.number)
            {
                // Not written yet: the request waits.
                self.nodes[index].running.as_mut().unwrap().follow = Some(follow);
                return;
            }
            return self.file_mode(index, "the generation asked for left the active's log");
        };
        let durable = generation.durable_prefix();
        let open = self.nodes[index].running.as_ref().unwrap().block_open;
        let other = open.and_then(|open| self.nodes[index].blocks.get(&open));
        if other.is_some_and(|block| block.origin != generation.origin) {
            return self.file_mode(index, "the active's generation is another one: diverged");
        }
        let offset = from.offset as usize;
        let header = BlockCopy {
            number: generation.number,
            origin: generation.origin,
            follows: at.checked_sub(1).map(|before| active.log[before].origin),
            timeline: generation.timeline,
            created: generation.created,
            entries: Vec::new(),
            complete: false,
        };
        let answer = if offset > durable {
            return self.file_mode(index, "past the active's durable end: diverged");
        } else if offset < durable {
            Answer::Bytes(BlockCopy {
                entries: (generation.entries[offset..durable].iter())
                    .map(|entry| entry.message)
                    .collect(),
                ..header
            })
        } else if generation.closed {
            Answer::Ended(header)
        } else {
            self.nodes[index].running.as_mut().unwrap().follow = Some(follow);
            return;
        };
        follow.answer = Some((answered, answer));
        self.nodes[index].running.as_mut().unwrap().follow = Some(follow);
    }

    /// The answer is synced in the block file (a crash before that loses it: the request
    /// dies with the process); the next request acknowledges it.
    fn receive(&mut self, index: usize, follow: Follow) {
        let (_, answer) = follow.answer.unwrap();
        let from = follow.from;
        let node = &mut self.nodes[index];
        let running = node.running.as_mut().unwrap();
        if node
            .log
            .last()
            .is_some_and(|last| last.number >= from.generation)
        {
            // The copy holds the generation closed meanwhile: its block file is not needed.
            running.block_open = None;
            return;
        }
        match answer {
            Answer::Bytes(block) if from.offset == 0 => {
                running.block_open = Some(block.number);
                node.blocks.insert(block.number, block);
            }
            Answer::Bytes(block) => {
                // Gone if the copy holds the generation closed meanwhile.
                if let Some(open) = node.blocks.get_mut(&block.number) {
                    open.entries.extend(block.entries);
                }
            }
            Answer::Ended(header) => {
                let open = running.block_open.take();
                let held = open.and_then(|open| node.blocks.get_mut(&open));
                match held {
                    Some(held)
                        if held.number == from.generation
                            && held.entries.len() == from.offset as usize =>
                    {
                        held.complete = true
                    }
                    // An empty generation: nothing of it was received here. The crate keeps
                    // no block file of it (see `Settings::empty_block_files`).
                    None if from.offset == 0 => {
                        if self.settings.empty_block_files {
                            let empty = BlockCopy {
                                complete: true,
                                ..header
                            };
                            node.blocks.insert(empty.number, empty);
                        }
                    }
                    _ => {
                        let what = format!("generation {} received incompletely", from.generation);
                        return self.file_mode(index, &what);
                    }
                }
                running.block_complete = running.block_complete.max(from.generation);
            }
        }
        if !std::mem::replace(&mut running.block_mode, true) {
            self.event(
                Some(index),
                format!("block mode: receiving log writes from {from}"),
            );
        }
    }

    fn sync_time(&mut self) -> u64 {
        match self.random.random_range(0..100) {
            0..=4 => self.random.random_range(0..200 * MS),
            _ => self.random.random_range(0..5 * MS),
        }
    }

    /// The highest position the passive `index` acknowledged to the active.
    pub(super) fn acknowledged_sent(&self, index: usize) -> LogPosition {
        let running = self.nodes[index].running.as_ref().unwrap();
        running.acknowledged_sent.unwrap_or_default()
    }

    /// At a failover: the block files that follow the copy's last closed generation become
    /// closed generations of it (images, not the active's files: new origins). Returns
    /// where the copy holds the old active's log through, if a block file was taken, and
    /// the position before which it holds everything.
    pub(super) fn salvage(&mut self, index: usize) -> (Option<LogPosition>, LogPosition) {
        let mut held = None;
        let last = self.nodes[index].log.last();
        if let Some(partial) = last.and_then(|g| g.partial) {
            // Taken at an earlier attempt whose mount was refused.
            if self.settings.remember_partial {
                return (Some(partial), partial);
            }
        }
        // The active's origin of the last block taken whole: the next block's header chains to
        // it (the crate checks the active's digest, then names the image's).
        let mut chain = None;
        loop {
            let node = &mut self.nodes[index];
            let last = chain.or(node.log.last().map(|generation| generation.origin));
            let next = node
                .log
                .last()
                .map_or(1, |generation| generation.number + 1);
            let Some(block) = node.blocks.remove(&next) else {
                return (held, LogPosition::new(next, 0));
            };
            if block.follows != last {
                let what = format!("generation {next} from block mode refused: it does not chain");
                self.event(Some(index), what);
                return (held, LogPosition::new(next, 0));
            }
            let covers = block.covers();
            node.log.push(Generation {
                number: next,
                origin: self.next_origin,
                timeline: block.timeline,
                created: block.created,
                closed: true,
                partial: (!block.complete).then_some(covers),
                entries: (block.entries.iter())
                    .map(|&message| Entry {
                        message,
                        durable: true,
                    })
                    .collect(),
            });
            self.next_origin += 1;
            self.outcome.salvaged += 1;
            held = Some(LogPosition::new(next, block.entries.len() as u32));
            let what = format!(
                "generation {next}: {} entries taken from block mode{}",
                block.entries.len(),
                if block.complete { " (whole)" } else { "" }
            );
            self.event(Some(index), what);
            if !block.complete {
                return (held, covers);
            }
            chain = Some(block.origin);
        }
    }

    /// After the witness was taken: the old owner's last renewal that counted claimed
    /// synchronous commit with this node, and the copy holds everything it acknowledged:
    /// the failover is lossless, whatever was measured.
    pub(super) fn prove_lossless(
        &mut self,
        index: usize,
        record: &WitnessRecord,
        covered: LogPosition,
    ) {
        let node = &self.nodes[index];
        let claim = node.witness.final_claim(record.epoch).ok().flatten();
        let acknowledged = self.acknowledged_sent(index);
        if claim.as_deref() != Some(node.name) {
            return;
        }
        if covered < acknowledged {
            let what = format!(
                "cannot prove the failover lossless: the copy holds everything before \
                 {covered} only, it acknowledged {acknowledged}"
            );
            return self.event(Some(index), what);
        }
        let node = &mut self.nodes[index];
        let running = node.running.as_mut().unwrap();
        for measured in [&mut node.measured, &mut running.measured]
            .into_iter()
            .flatten()
        {
            measured.loss = Loss {
                lost: None,
                window: None,
                current_unread: false,
                from: None,
            };
            measured.proven = true;
        }
        let what = format!(
            "proves the failover lossless: {} claimed synchronous commit with it at epoch {}, \
             the copy holds everything before {covered}, it acknowledged {acknowledged}",
            record.owner, record.epoch
        );
        self.event(Some(index), what);
    }

    /// What the checker reads: the synchronous claim of `epoch`'s last renewal that counted.
    pub(super) fn final_claim(&self, epoch: u64) -> Option<String> {
        let witness = Witness::new(
            Arc::new(self.share.clone()),
            Path::new(WITNESS),
            self.settings.skew,
        );
        witness.final_claim(epoch).unwrap()
    }

    /// What the active `index`'s next renewal claims.
    pub(super) fn claim(&self, index: usize) -> Option<String> {
        let running = self.nodes[index].running.as_ref()?;
        let sync = running.sync.as_ref().filter(|_| running.part.is_active())?;
        sync.claim()
    }

    /// A renewal succeeded: synchronous commit learns what it claimed.
    pub(super) fn sync_renewed(&mut self, index: usize, request: &Request) {
        let node = &self.nodes[index];
        let Some(sync) = node.running.as_ref().unwrap().sync.as_ref() else {
            return;
        };
        let claim = request.claim.as_deref();
        sync.renewed(claim, request.durable, || node.written_end());
        self.sync_changes(index);
    }

    fn sync_changes(&mut self, index: usize) {
        let running = self.nodes[index].running.as_ref().unwrap();
        let changes = running.sync.as_ref().map(|sync| sync.take_changes());
        for change in changes.unwrap_or_default() {
            self.event(Some(index), format!("synchronous commit now {change}"));
        }
    }

    /// Whether a durable commit may be acknowledged as far as synchronous commit goes, as
    /// the gate's `confirm` waits for it: `None` while it waits.
    pub(super) fn wait_for_passive(
        &mut self,
        index: usize,
        commit: &mut Commit,
    ) -> Option<Result<(), String>> {
        let now = self.now;
        let node = &self.nodes[index];
        let running = node.running.as_ref().unwrap();
        if node.active_epoch() != Some(commit.epoch) {
            return Some(Err("the database was given up".into()));
        }
        let Some(sync) = running.sync.clone() else {
            return Some(Ok(()));
        };
        let waited = Duration::from_micros(now - commit.durable);
        let decision = sync.poll(commit.position, waited);
        self.sync_changes(index);
        match decision {
            SyncDecision::Acknowledge => Some(Ok(())),
            SyncDecision::Refuse(reason) => Some(Err(reason)),
            SyncDecision::Wait if sync.status().state == "degrading" => {
                if self.settings.sync_rule == SyncRule::AcknowledgeWhileDegrading {
                    return Some(Ok(()));
                }
                // `SyncCommit::wait` waits this long for the renewal that clears the claim.
                let timeout = self.log_transport.sync_settings().unwrap().timeout;
                let limit = timeout.max(Duration::from_secs(1)) * 2;
                let seen = *commit.degrading_seen.get_or_insert(now);
                (now - seen >= limit.as_micros() as u64).then(|| {
                    Err("synchronous commit degrading: the witness could not be told".into())
                })
            }
            SyncDecision::Wait => None,
        }
    }
}

impl Part {
    fn is_active(&self) -> bool {
        matches!(self, Part::Active { .. })
    }
}
