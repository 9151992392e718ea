//! A node of a two-node cluster: its control loop, its role, and what it offers a mail
//! server (the database while it is active, its copy status while it is passive).
//!
//! Every `heartbeat_interval` the loop writes this node's heartbeat and then:
//! - **active**: renews its lease on the witness (the lease gate refuses commits once it
//!   lapses; a newer epoch there demotes the node), closes its current generation once when
//!   it finds itself fenced (so the passive can copy everything committed), seeds the peer
//!   when the peer asks, carries out an operator's move request, re-applies an old
//!   active's divergent transactions on request, and refuses a backup request (a backup is
//!   taken from the passive copy);
//! - **passive**: runs the replication service from the peer's database directory, takes
//!   the database when the witness names it owner (a move), starts a failover when the
//!   peer's heartbeats stop or say it no longer serves, and otherwise serves an operator's
//!   backup request (the service paused meanwhile) and refuses a re-application request;
//! - **joining**: decides its role from the witness: owner → active; otherwise a passive
//!   copy, resynchronising an old active database or asking for a seed.
//!
//! A node runs only against a witness that holds a record (`bluejet cluster init` writes
//! the first), and never against one older than the highest epoch it has seen
//! ([`SeenEpoch`]); an active that sees its peer active at a higher epoch stops serving.

use super::config::NodeConfig;
use super::failover::{self, FailoverReport};
use super::heartbeat::{self, Heartbeat, Role};
use super::lease::LeaseGate;
use super::resync;
use super::seen_epoch::SeenEpoch;
use super::switchover;
use super::witness::{Witness, WitnessError, WitnessRecord};
use crate::error::ReplError;
use crate::events::{Event, EventLog};
use crate::identity::ReplicaIdentity;
use crate::layout::ReplicaLayout;
use crate::private_files::create_directory_durably;
use crate::service::ReplicationService;
use crate::status::CopyStatus;
use bluejet_engine::log::now_micros;
use bluejet_engine::LogPosition;
use bluejet_engine::{Database, Gate};
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// A running node.
pub struct Node {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Block mode's follower, when the peer is reached over the network.
    follower: Option<JoinHandle<()>>,
    /// One node process per instance, for as long as this one runs (dropped after the
    /// loop's thread has ended).
    _instance_lock: Option<super::instance_lock::InstanceLock>,
    /// Serves this node's instance to its peer over the network, when configured (stopped
    /// before the loop's thread ends its role).
    server: Mutex<Option<crate::net::server::Server>>,
    /// Where the server listens (kept after it stops).
    listen_addr: Option<std::net::SocketAddr>,
}

/// The log tap of a node replicating over the network: generations of the default size
/// several times over, so that a passive a little behind still reads from memory.
pub const DEFAULT_TAP_BYTES: usize = 16 << 20;

/// What the loop and the node's handle share.
pub(crate) struct Shared {
    pub config: NodeConfig,
    pub witness: Witness,
    /// The highest epoch this node has seen.
    pub seen: SeenEpoch,
    pub events: EventLog,
    stop: AtomicBool,
    crash: AtomicBool,
    pub state: RwLock<NodeState>,
    pub failovers: Mutex<Vec<FailoverReport>>,
    /// The last heartbeat read from the peer, and when it was read.
    pub peer: Mutex<Option<(Heartbeat, Instant)>>,
    /// The peer's heartbeat as the watcher last read it (`None`: that read failed).
    pub peer_answer: Mutex<Option<Heartbeat>>,
    /// When the peer's heartbeat was last read successfully (or the node started).
    pub peer_contact: Mutex<Instant>,
    /// Since when the active peer's heartbeats say it is fenced.
    pub fenced_since: Mutex<Option<Instant>>,
    /// The last error of the loop (not repeated in the event log).
    pub last_error: Mutex<Option<String>>,
    /// When the node first saw each pending operator request (their expiry).
    pub requests: super::requests::Seen,
    /// Why the node is still Joining (what it waits for, or the error that stops it).
    pub joining: Mutex<Option<String>>,
    /// The backup a passive node is taking for an operator, while it runs.
    pub backup: Mutex<Option<String>>,
    /// Block mode, as the active: how far the passive has synced what it was sent.
    pub blocks: Arc<super::block_source::Acknowledged>,
    /// Block mode, as the passive: how the copy receives the log.
    pub block_mode: Mutex<super::block_follow::BlockModeStatus>,
    /// Held while block files are written or taken by a failover.
    pub blocks_busy: Mutex<()>,
    /// Synchronous commit's status as of the last renewal (for the heartbeat).
    pub sync_status: Mutex<Option<super::sync_commit::SyncStatus>>,
    /// As the active over TCP: why the passive seems unable to reach this node, while it
    /// has not asked for the log for a while.
    pub peer_silent: Mutex<Option<String>>,
    /// As the active: the operator's re-application of divergent transactions in progress,
    /// under its request's id (applied a step per round of the loop).
    pub reapplying: Mutex<Option<(u64, Box<crate::diverged::reapply::Reapplying>)>>,
}

/// A node's role with what it holds.
pub(crate) enum NodeState {
    /// Deciding its role, or waiting for a seed.
    Joining,
    /// Holding the database.
    Active(ActiveState),
    /// Keeping a copy.
    Passive(PassiveState),
}

impl NodeState {
    /// The role this state is in.
    fn role(&self) -> Role {
        match self {
            Self::Joining => Role::Joining,
            Self::Active(_) => Role::Active,
            Self::Passive(_) => Role::Passive,
        }
    }
}

/// Whether a node may go from role `from` to role `to`. Every change goes through
/// [`change_state`], which checks it: a node leaves the active role only through joining
/// (its database closed or dropped first), becomes active from joining (a start) or passive
/// (a failover or a move), and passive only from joining.
fn legal_transition(from: Role, to: Role) -> bool {
    matches!(
        (from, to),
        (Role::Joining, _)
            | (Role::Passive, Role::Active | Role::Joining)
            | (Role::Active, Role::Joining)
    )
}

/// Replaces the node's state with `next`, checking the transition; returns the old state.
pub(crate) fn change_state(state: &mut NodeState, next: NodeState) -> NodeState {
    let (from, to) = (state.role(), next.role());
    assert!(
        legal_transition(from, to),
        "an illegal role transition: {from:?} to {to:?}"
    );
    std::mem::replace(state, next)
}

pub(crate) struct ActiveState {
    pub db: Database,
    pub gate: Arc<LeaseGate>,
    pub epoch: u64,
    /// The current generation was closed after the lease lapsed.
    pub rolled_when_fenced: AtomicBool,
    /// Log retention.
    pub retention: Mutex<super::retention::Retention>,
}

pub(crate) struct PassiveState {
    pub service: Option<ReplicationService>,
    /// The epoch of the witness when last read.
    pub epoch: u64,
    /// The last failover refusal (not repeated in the event log).
    pub refusal: Option<String>,
}

/// What a node says about itself.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeStatus {
    /// The node.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The epoch it knows.
    pub epoch: u64,
    /// The active database's log end, when active.
    pub end: Option<LogPosition>,
    /// Whether it admits commits (active with a valid lease).
    pub serving: bool,
    /// The copy status, when passive.
    pub copy: Option<CopyStatus>,
    /// Why the oldest log generation is kept, when active.
    pub retention: Vec<String>,
    /// A warning that the log approaches its space budget.
    pub log_warning: Option<String>,
    /// Why the node is still Joining, or the backup a passive node is taking.
    pub reason: Option<String>,
    /// How the peer is reached: `share` (a shared directory) or `tcp` (mutual TLS).
    pub transport: String,
    /// Over TCP, as a passive copy: file or block mode, why, and the bytes in flight.
    pub block_mode: Option<super::block_follow::BlockModeStatus>,
    /// Over TCP, as the active: how far the passive has synced what block mode sent it.
    pub peer_flushed: Option<LogPosition>,
    /// As the active committing synchronously: the level, state and why.
    pub synchronous: Option<super::sync_commit::SyncStatus>,
}

impl Node {
    /// Starts the node's control loop; refused when the witness cannot be read, holds no
    /// record (`bluejet cluster init` writes the first) or holds one older than the highest
    /// epoch this node has seen.
    pub fn start(mut config: NodeConfig) -> Result<Self, ReplError> {
        if config.network.is_some() && config.options.log.tap_bytes == 0 {
            // Block mode reads the log's newest bytes from memory as it writes them.
            config.options.log.tap_bytes = DEFAULT_TAP_BYTES;
        }
        let fs = Arc::clone(&config.options.log.file_system);
        create_directory_durably(fs.as_ref(), &config.instance)?;
        let instance_lock = super::instance_lock::InstanceLock::acquire(&config.instance)?;
        let holder = super::node_id::load_or_create(fs.as_ref(), &config.instance)?;
        let witness = Witness::new(Arc::clone(&config.witness_fs), &config.witness, config.skew)
            .with_holder(&holder);
        let seen = SeenEpoch::load(Arc::clone(&fs), &config.instance)?;
        let record = witness.read_initialized()?;
        seen.check_witness(record.epoch, &record.cluster, witness.directory())?;
        witness.bind(seen.cluster());
        let events = EventLog::new(fs, &ReplicaLayout::new(&config.instance).events());
        let shared = Arc::new(Shared {
            config,
            witness,
            seen,
            events,
            stop: AtomicBool::new(false),
            crash: AtomicBool::new(false),
            state: RwLock::new(NodeState::Joining),
            failovers: Mutex::new(Vec::new()),
            peer: Mutex::new(None),
            peer_answer: Mutex::new(None),
            peer_contact: Mutex::new(Instant::now()),
            fenced_since: Mutex::new(None),
            last_error: Mutex::new(None),
            requests: Default::default(),
            reapplying: Mutex::new(None),
            joining: Mutex::new(None),
            backup: Mutex::new(None),
            blocks: Default::default(),
            block_mode: Default::default(),
            blocks_busy: Mutex::new(()),
            sync_status: Mutex::new(None),
            peer_silent: Mutex::new(None),
        });
        let server = match &shared.config.network {
            Some(network) => Some(super::network::serve(&shared, network)?),
            None => None,
        };
        shared.event("node-started", None, "");
        super::requests::drop_stale(&shared);
        let watching = Arc::clone(&shared);
        // Not joined: a read of a peer that does not answer ends within its timeout, and the
        // watcher then sees the stop (it holds no lock and writes nothing).
        std::thread::Builder::new()
            .name(format!("bluejet-peer-{}", shared.config.name))
            .spawn(move || watch_peer(&watching))
            .expect("spawning the peer watcher");
        let looping = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("bluejet-node-{}", shared.config.name))
            .spawn(move || run(&looping))
            .expect("spawning the node thread");
        let follower = shared.config.network.as_ref().map(|network| {
            let following = Arc::clone(&shared);
            let client = Arc::clone(&network.blocks);
            std::thread::Builder::new()
                .name(format!("bluejet-blocks-{}", shared.config.name))
                .spawn(move || super::block_follow::run(&following, &client))
                .expect("spawning the block-mode thread")
        });
        Ok(Self {
            shared,
            thread: Some(thread),
            follower,
            _instance_lock: instance_lock,
            listen_addr: server.as_ref().map(|server| server.local_addr()),
            server: Mutex::new(server),
        })
    }

    /// The address this node serves its peer on, when it replicates over the network.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen_addr
    }

    /// As the active over TCP: how far the passive has synced what block mode sent it.
    pub fn peer_flushed(&self) -> Option<LogPosition> {
        (self.shared.config.network.is_some()).then(|| self.shared.blocks.flushed())
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// The node's role now.
    pub fn role(&self) -> Role {
        // Recursive: callable from inside `with_database` even while a demotion waits.
        match &*self.shared.state.read_recursive() {
            NodeState::Joining => Role::Joining,
            NodeState::Active(_) => Role::Active,
            NodeState::Passive(_) => Role::Passive,
        }
    }

    /// Runs `work` on the database if this node is active (`None` otherwise). Commits are
    /// admitted only while the node holds its lease; a move holds them meanwhile. The node
    /// cannot give the database up while `work` runs (a demotion first refuses commits, then
    /// waits for it); `work` may call [`role`](Self::role) and [`status`](Self::status).
    pub fn with_database<R>(&self, work: impl FnOnce(&Database) -> R) -> Option<R> {
        match &*self.shared.state.read() {
            NodeState::Active(active) => Some(work(&active.db)),
            _ => None,
        }
    }

    /// The node's status.
    pub fn status(&self) -> NodeStatus {
        let state = self.shared.state.read_recursive();
        let (role, epoch, end, serving, copy) = match &*state {
            // The highest epoch seen: a demoted node is joining that one, not epoch 0.
            NodeState::Joining => (Role::Joining, self.shared.seen.highest(), None, false, None),
            NodeState::Active(active) => (
                Role::Active,
                active.epoch,
                Some(active.db.log().durable_position()),
                active.gate.admitting(),
                None,
            ),
            NodeState::Passive(passive) => (
                Role::Passive,
                passive.epoch,
                None,
                false,
                passive.service.as_ref().map(ReplicationService::status),
            ),
        };
        let (retention, log_warning) = match &*state {
            NodeState::Active(active) => {
                let retention = active.retention.lock();
                (retention.reasons.clone(), retention.warning.clone())
            }
            _ => (Vec::new(), None),
        };
        NodeStatus {
            name: self.shared.config.name.clone(),
            role,
            epoch,
            end,
            serving,
            copy,
            retention,
            log_warning,
            reason: match role {
                Role::Joining => self.shared.joining.lock().clone(),
                Role::Passive => self.shared.backup.lock().clone(),
                Role::Active => self.shared.peer_silent.lock().clone(),
            },
            transport: if self.shared.config.network.is_some() {
                "tcp"
            } else {
                "share"
            }
            .into(),
            block_mode: (self.shared.config.network.is_some() && role == Role::Passive)
                .then(|| self.shared.block_mode.lock().clone()),
            peer_flushed: (self.shared.config.network.is_some() && role == Role::Active)
                .then(|| self.shared.blocks.flushed()),
            synchronous: match &*state {
                NodeState::Active(active) => active.gate.sync().map(|sync| sync.status()),
                _ => None,
            },
        }
    }

    /// The database's measurements (see [`Metrics`](bluejet_engine::Metrics)): the active
    /// database's, or the passive copy's once its replication service has opened it; `None`
    /// while joining. They start again from zero when the role changes (a new database).
    pub fn metrics(&self) -> Option<bluejet_engine::Metrics> {
        match &*self.shared.state.read_recursive() {
            NodeState::Active(active) => Some(active.db.metrics()),
            NodeState::Passive(passive) => {
                let service = passive.service.as_ref()?;
                service.passive().map(|db| db.metrics())
            }
            NodeState::Joining => None,
        }
    }

    /// The failovers this node carried out (as the new active).
    pub fn failovers(&self) -> Vec<FailoverReport> {
        self.shared.failovers.lock().clone()
    }

    /// Stops cleanly: an active node gives up nothing (its lease lapses), checkpoints and
    /// closes its database; a passive node stops replication.
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.join_threads();
    }

    /// Waits for the loop's thread, then the follower's (which stops with it).
    fn join_threads(&mut self) {
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the node's loop thread panicked");
            }
        }
        if let Some(thread) = self.follower.take() {
            if thread.join().is_err() {
                tracing::error!("the node's follower thread panicked");
            }
        }
    }

    /// Stops as a crash would: the loop ends, the database is dropped without a checkpoint
    /// or a clean header, and nothing more is written (heartbeats stop).
    pub fn kill(mut self) {
        self.crash();
        self.join_threads();
    }

    /// [`kill`](Self::kill) from any thread, while others still hold the node: returns
    /// before the loop's thread has ended (dropping the node waits for it). Commits not yet
    /// acknowledged are not.
    pub fn crash(&self) {
        // A crashed node serves nothing more.
        self.server.lock().take();
        self.shared.crash.store(true, Ordering::Release);
        self.shared.stop.store(true, Ordering::Release);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The server first: a stopped node serves its files to no one.
        self.server.lock().take();
        self.shared.stop.store(true, Ordering::Release);
        self.join_threads();
    }
}

impl Shared {
    /// Whether the node is stopping (or crashing).
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Records a cluster event with this node's name and epoch.
    pub fn event(&self, kind: &str, epoch: Option<u64>, message: &str) {
        self.event_with_comment(kind, epoch, message, None);
    }

    /// Records a cluster event with an operator's comment.
    pub fn event_with_comment(
        &self,
        kind: &str,
        epoch: Option<u64>,
        message: &str,
        comment: Option<&str>,
    ) {
        self.events.record_event(Event {
            time_micros: now_micros(),
            kind: kind.to_owned(),
            generation: None,
            message: message.to_owned(),
            node: Some(self.config.name.clone()),
            epoch,
            comment: comment.map(str::to_owned),
        });
    }

    /// Options of the database with `gate` in front of its commits.
    pub fn gated_options(&self, gate: &Arc<LeaseGate>, timeline: u64) -> bluejet_engine::Options {
        let mut options = self.config.options.clone();
        options.commit_gate = Gate(Some(
            Arc::clone(gate) as Arc<dyn bluejet_engine::db::CommitGate>
        ));
        options.log.timeline = timeline;
        // A log whose newest generation is on a newer timeline than this epoch is refused.
        options.log.fence_timeline = true;
        // The peer replays this log and backups are taken from it: retention decides what
        // goes (`retention.rs`), never the engine's circular logging.
        options.circular_logging = false;
        options
    }

    /// The witness's record: refused when there is none, it cannot be read, or it is older
    /// than the highest epoch this node has seen (recorded otherwise).
    pub fn witness_record(&self) -> Result<WitnessRecord, ReplError> {
        let record = self.witness.read_initialized()?;
        (self.seen).check_witness(record.epoch, &record.cluster, self.witness.directory())?;
        self.witness.bind(self.seen.cluster());
        Ok(record)
    }

    /// Why this node, at `epoch`, must stop serving: `beat` shows the peer active at a
    /// higher epoch (recorded as seen).
    pub fn peer_ahead(&self, beat: &Heartbeat, epoch: u64) -> Option<String> {
        if beat.role != Role::Active || beat.epoch <= epoch {
            return None;
        }
        if let Err(error) = self
            .seen
            .observe(beat.epoch, &format!("{}'s heartbeat", beat.node))
        {
            tracing::warn!(%error, "recording the peer's epoch as seen");
        }
        Some(format!(
            "the peer {} says it is active at epoch {}, newer than this node's epoch {}: \
             this node stops serving",
            beat.node, beat.epoch, epoch
        ))
    }

    /// A new lease gate for this node's timings.
    pub fn new_gate(&self) -> Arc<LeaseGate> {
        let gate = Arc::new(LeaseGate::new(self.config.safety, self.config.lease * 4));
        let settings = self.config.synchronous;
        if settings.level != super::sync_commit::SyncLevel::Off && self.config.network.is_some() {
            let sync = super::sync_commit::SyncCommit::new(
                settings,
                &self.config.peer,
                Arc::clone(&self.blocks),
            );
            gate.set_sync(Arc::new(sync));
        }
        gate
    }

    pub fn write_heartbeat(&self, heartbeat: Heartbeat) {
        let fs = self.config.options.log.file_system.as_ref();
        // A heartbeat that cannot be written is a heartbeat missed: the peer will notice.
        if let Err(error) = heartbeat::write(fs, &self.config.instance, &heartbeat) {
            tracing::warn!(%error, "writing the heartbeat");
        }
    }

    pub fn heartbeat(&self, role: Role, epoch: u64) -> Heartbeat {
        Heartbeat {
            node: self.config.name.clone(),
            role,
            epoch,
            serving: false,
            end: LogPosition::default(),
            current_started_micros: 0,
            needs_seed: false,
            time_micros: now_micros(),
            retention: Vec::new(),
            log_warning: None,
            transport: Some(self.transport().into()),
            block_mode: (self.config.network.is_some() && role == Role::Passive)
                .then(|| self.block_mode.lock().clone()),
            synchronous: (role == Role::Active)
                .then(|| self.sync_status.lock().clone())
                .flatten(),
        }
    }

    /// `tcp` when the peer is reached over the network, else `share`.
    pub fn transport(&self) -> &'static str {
        if self.config.network.is_some() {
            "tcp"
        } else {
            "share"
        }
    }
}

fn run(shared: &Shared) {
    // The first decision (join) sees the peer as it is now.
    read_peer_now(shared);
    while !shared.stop.load(Ordering::Acquire) {
        if let Some(network) = &shared.config.network {
            // The peer is refused at the next handshake if it holds an older epoch.
            network.peer.saw_epoch(shared.seen.highest());
            if let Some(cluster) = shared.seen.cluster() {
                network.peer.set_cluster(&cluster);
            }
        }
        match tick(shared) {
            Ok(()) => *shared.last_error.lock() = None,
            Err(error) => {
                // Recorded once while it repeats.
                let message = error.to_string();
                *shared.joining.lock() = Some(message.clone());
                let mut last = shared.last_error.lock();
                if last.as_deref() != Some(&message) {
                    tracing::warn!(
                        node = %shared.config.name,
                        instance = %shared.config.instance.display(),
                        epoch = shared.seen.highest(),
                        error = %message,
                        "the node's loop failed a round; it tries again"
                    );
                    shared.event("error", None, &message);
                    *last = Some(message);
                }
            }
        }
        std::thread::sleep(shared.config.heartbeat_interval);
    }
    let state = change_state(&mut shared.state.write(), NodeState::Joining);
    if shared.crash.load(Ordering::Acquire) {
        // A crash: drop everything as it is. The database stays dirty; replication threads
        // stop (they only ever leave the replica in states a crash may leave).
        drop(state);
        return;
    }
    match state {
        NodeState::Active(active) => {
            active.gate.close("the node stopped");
            if let Err(error) = active.db.close() {
                tracing::warn!(%error, "closing the active database");
            }
        }
        NodeState::Passive(passive) => {
            if let Some(service) = passive.service {
                if let Err(error) = service.stop() {
                    tracing::warn!(%error, "stopping the replication service");
                }
            }
        }
        NodeState::Joining => {}
    }
    shared.event("node-stopped", None, "");
}

fn tick(shared: &Shared) -> Result<(), ReplError> {
    // Whatever the role: an operator request's expiry runs from when the node first sees it.
    super::requests::sweep(shared);
    let role = match &*shared.state.read() {
        NodeState::Joining => Role::Joining,
        NodeState::Active(_) => Role::Active,
        NodeState::Passive(_) => Role::Passive,
    };
    match role {
        Role::Joining => join(shared),
        Role::Active => active_tick(shared),
        Role::Passive => passive_tick(shared),
    }
}

/// Decides the role from the witness (and the peer's heartbeat: an epoch the peer is
/// active at counts as seen).
fn join(shared: &Shared) -> Result<(), ReplError> {
    if let Some(beat) = read_peer(shared) {
        shared.peer_ahead(&beat, 0);
    }
    let record = match shared.witness_record() {
        Ok(record) => record,
        Err(error) => {
            shared.write_heartbeat(shared.heartbeat(Role::Joining, 0));
            return Err(error);
        }
    };
    if record.owner == shared.config.name {
        become_active(shared)
    } else {
        become_passive(shared, record.epoch)
    }
}

/// A node named owner creates a database only while none can exist: before any owner
/// renewed a lease (a renewal records its log's end at the witness). Otherwise an
/// empty instance is a wiped one, or a second node with the owner's name, or a node of
/// another cluster pointed at this witness: an empty database served in the place of the
/// real one would lose everything committed and make two actives (found by an adversarial
/// round, all three).
fn refuse_a_new_database(shared: &Shared) -> Result<(), ReplError> {
    let fs = shared.config.options.log.file_system.as_ref();
    let file = shared
        .config
        .database()
        .join(bluejet_engine::DATABASE_FILE_NAME);
    if fs.exists(&file) {
        return Ok(());
    }
    let record = shared.witness_record()?;
    if record.owner_end.is_none() {
        return Ok(());
    }
    // Not the end itself: it moves while the real owner runs, and the event would repeat.
    let reason = format!(
        "{} owns epoch {} and has renewed its lease with its log's end",
        record.owner, record.epoch
    );
    let error = ReplError::NoDatabase {
        instance: shared.config.instance.clone(),
        reason: format!(
            "{reason}; is another node running with the name {}, or was this instance \
             wiped? Make it a passive copy, which the peer seeds",
            shared.config.name
        ),
    };
    shared.event("no-database", Some(record.epoch), &error.to_string());
    Err(error)
}

/// The owner's database must hold everything its name renewed a lease with: a log ending
/// before the witness's `owner_end` is an older copy (a restored backup, a copied instance,
/// deleted logs), and serving it would lose what the owner committed since (found by an
/// adversarial round: a copied instance and a database kept without its logs both served).
/// The gate closes and the database is dropped unopened to clients; the lease just taken
/// runs out, and the peer may take over.
fn refuse_an_older_database(
    shared: &Shared,
    record: &WitnessRecord,
    db: &Database,
    gate: &LeaseGate,
) -> Result<(), ReplError> {
    let Some(known) = record.owner_end else {
        return Ok(());
    };
    let end = db.log().durable_position();
    if end >= known {
        return Ok(());
    }
    gate.close("an older copy of the database");
    let error = ReplError::OlderDatabase {
        instance: shared.config.instance.clone(),
        reason: format!(
            "its log ends at {end}, before {known}, where {}'s log had reached at epoch {}: \
             this is an older copy (a restored backup, a copied instance, deleted logs); \
             make it a passive copy of the peer, which holds the newer one",
            record.owner, record.epoch
        ),
    };
    shared.event("older-database", Some(record.epoch), &error.to_string());
    Err(error)
}

/// Takes (or keeps) the witness and opens the database: this node's own active database,
/// or its passive copy activated on the new epoch.
fn become_active(shared: &Shared) -> Result<(), ReplError> {
    let layout = ReplicaLayout::new(&shared.config.instance);
    let fs = shared.config.options.log.file_system.as_ref();
    if fs.exists(&layout.identity()) {
        // A passive copy named owner (a move, or a restart in the middle of one).
        let record = shared.witness_record()?;
        return failover::take_over(shared, record, None, None);
    }
    refuse_a_new_database(shared)?;
    // A failover's measurement left by a crash after its report: reported already.
    super::measured::remove(fs, &shared.config.instance)?;
    let gate = shared.new_gate();
    let lease_started = gate.now();
    let record = shared
        .witness
        .acquire(
            &shared.config.name,
            shared.config.lease,
            "restart of the owner",
        )
        .map_err(witness_error)?;
    let directory = shared.witness.directory();
    (shared.seen).check_witness(record.epoch, &record.cluster, directory)?;
    gate.renewed(lease_started, shared.config.lease);
    let options = shared.gated_options(&gate, record.epoch);
    // The engine creates a missing database directory but does not sync it into the
    // instance directory: a new cluster's database must not vanish in a crash.
    create_directory_durably(
        shared.config.options.log.file_system.as_ref(),
        &shared.config.database(),
    )?;
    bluejet_engine::db::write_retention_marker(
        shared.config.options.log.file_system.as_ref(),
        &shared.config.database(),
        &format!(
            "cluster node {} (its peer replays this log)",
            shared.config.name
        ),
    )?;
    let db = Database::open(&shared.config.database(), options)?;
    refuse_an_older_database(shared, &record, &db, &gate)?;
    shared.event("active", Some(record.epoch), "the node holds the database");
    // Acknowledgements of block mode are of the stream this node holds from now on.
    shared.blocks.reset();
    change_state(
        &mut shared.state.write(),
        NodeState::Active(ActiveState {
            db,
            gate,
            epoch: record.epoch,
            rolled_when_fenced: AtomicBool::new(false),
            retention: Default::default(),
        }),
    );
    Ok(())
}

/// Becomes a passive copy: of a seeded replica, after resynchronising an old active
/// database, or once the active has seeded this node.
fn become_passive(shared: &Shared, epoch: u64) -> Result<(), ReplError> {
    let layout = ReplicaLayout::new(&shared.config.instance);
    let fs = Arc::clone(&shared.config.options.log.file_system);
    let mut resynchronizing = false;
    if !fs.exists(&layout.identity()) {
        // A seed by the active holds the lock while it fills this directory (and says
        // Seeding in the status, for a share where locks do not reach): wait for it.
        let Ok(_lock) = crate::lock::ReplicaLock::acquire_new(fs.as_ref(), &layout.lock()) else {
            *shared.joining.lock() = Some("a seed of this node's copy is in progress".into());
            return Ok(());
        };
        if fs.exists(&layout.identity()) {
            // A seed finished between the look above and the lock: the copy is whole, and
            // rejoining would move it aside. The next round starts it.
            return Ok(());
        }
        let status = CopyStatus::read(fs.as_ref(), &layout, shared.config.failover_after * 5);
        if matches!(status, Ok(Some(status)) if status.state == crate::status::CopyState::Seeding) {
            *shared.joining.lock() = Some("a seed of this node's copy is in progress".into());
            return Ok(());
        }
        match resync::rejoin(shared, epoch)? {
            resync::Rejoin::Resynchronized => resynchronizing = true,
            resync::Rejoin::Waiting => {
                *shared.joining.lock() =
                    Some("waiting for the new active's first generation of its epoch".into());
                return Ok(());
            }
            resync::Rejoin::NeedsSeed => {
                *shared.joining.lock() = Some(waiting_for_seed(shared));
                let mut beat = shared.heartbeat(Role::Joining, epoch);
                beat.needs_seed = true;
                shared.write_heartbeat(beat);
                return Ok(());
            }
        }
    }
    ReplicaIdentity::read(fs.as_ref(), &layout)?;
    let service = ReplicationService::start(shared.config.replica_config())?;
    if resynchronizing {
        service.mark_resynchronizing();
    }
    shared.event("passive", Some(epoch), "the node keeps a passive copy");
    *shared.peer_contact.lock() = Instant::now();
    change_state(
        &mut shared.state.write(),
        NodeState::Passive(PassiveState {
            service: Some(service),
            epoch,
            refusal: None,
        }),
    );
    Ok(())
}

fn active_tick(shared: &Shared) -> Result<(), ReplError> {
    let peer = read_peer(shared);
    let demote = {
        // A read lock: renewing must not wait for work the mail server does on the database.
        let state = shared.state.read();
        let NodeState::Active(active) = &*state else {
            return Ok(());
        };
        // The peer active at a higher epoch: stop serving at once, whatever the witness says.
        match peer
            .as_ref()
            .and_then(|beat| shared.peer_ahead(beat, active.epoch))
        {
            Some(reason) => Some(reason),
            None => {
                let demote = renew(shared, active)?;
                // Retention reads the passive's progress: not while the peer does not
                // answer (the read would hold this loop, and the next renewal, in its
                // timeout), and nothing could be deleted then anyway.
                if demote.is_none() && peer.is_some() {
                    super::retention::maybe_truncate(shared, active);
                }
                demote
            }
        }
    };
    if let Some(reason) = demote {
        demote_to_joining(shared, &reason);
        return Ok(());
    }
    if peer.is_some_and(|peer| peer.needs_seed) {
        seed_peer(shared)?;
    }
    // The epoch only: the state's lock is not held while the answer is written (a demotion
    // waiting for it would make a second read in this thread wait too).
    let epoch = match &*shared.state.read() {
        NodeState::Active(active) => Some(active.epoch),
        _ => None,
    };
    if let Some(epoch) = epoch {
        super::backup_request::refuse_at_active(shared, epoch);
        note_peer_silence(shared, epoch);
        if let NodeState::Active(active) = &*shared.state.read() {
            super::reapply_request::serve(shared, &active.db, epoch);
        }
    }
    switchover::serve_requests(shared)
}

/// Says, once per silence, that the passive has stopped asking for the log (found by an
/// adversarial round: an active whose peer could not reach it said nothing at all).
fn note_peer_silence(shared: &Shared, epoch: u64) {
    if shared.config.network.is_none() {
        return;
    }
    // Five failover timeouts (10 s by default): well past a reconnection.
    let silent_after = shared.config.failover_after * 5;
    let silence = shared.blocks.silence().unwrap_or_default();
    let mut reported = shared.peer_silent.lock();
    if silence < silent_after {
        *reported = None;
        return;
    }
    if reported.is_none() {
        let message = format!(
            "{} has not asked for the log for {} s: it is down, or cannot reach this node \
             (its peer_address, the certificates, its network configuration); its copy falls \
             behind",
            shared.config.peer,
            silence.as_secs()
        );
        shared.event("peer-silent", Some(epoch), &message);
        *reported = Some(message);
    }
}

/// Renews the lease; returns why the node must give the database up, if it must.
fn renew(shared: &Shared, active: &ActiveState) -> Result<Option<String>, ReplError> {
    let config = &shared.config;
    // The lease runs from the moment the request starts, on this node's monotonic clock.
    let lease_started = active.gate.now();
    let sync = active.gate.sync();
    // Read before the durable position: a claim is made only for commits the passive had
    // confirmed when it was decided.
    let claim = sync.as_ref().and_then(|sync| sync.claim());
    let durable = active.db.log().durable_position();
    match shared.witness.renew_claiming(
        &config.name,
        active.epoch,
        config.lease,
        durable,
        claim.as_deref(),
    ) {
        // A witness of another cluster never answers a renewal: the node's `Witness` is
        // bound to its cluster (`Witness::bind`) and refuses it as unreachable.
        Ok(_) => {
            active.gate.renewed(lease_started, config.lease);
            active.rolled_when_fenced.store(false, Ordering::Release);
            if let Some(sync) = &sync {
                sync.renewed(claim.as_deref(), durable, || active.db.log().end_position());
                for change in sync.take_changes() {
                    shared.event("synchronous", Some(active.epoch), &change);
                }
            }
            *shared.sync_status.lock() = sync.map(|sync| sync.status());
        }
        Err(WitnessError::Held(record)) => {
            if record.epoch > active.epoch {
                if let Err(error) = shared.seen.observe(record.epoch, "the witness") {
                    tracing::warn!(%error, "recording the witness's epoch as seen");
                }
            }
            if record.owner == config.name && record.epoch == active.epoch {
                return Ok(Some(format!(
                    "another instance holds node {}'s epoch {} (holder {}): is a second node \
                     running with this name?",
                    record.owner, record.epoch, record.holder
                )));
            }
            return Ok(Some(format!(
                "the witness names {} owner at epoch {} (this node had epoch {})",
                record.owner, record.epoch, active.epoch
            )));
        }
        Err(WitnessError::Unreachable(cause)) => {
            if !active.gate.admitting() && !active.rolled_when_fenced.load(Ordering::Acquire) {
                // Commits admitted before the lease lapsed reach the log first; while one
                // has not, the roll waits for the next round (it would land after it).
                if active.gate.drain() {
                    // Fenced: close the generation, so that everything committed can be
                    // copied and a failover loses nothing.
                    active.db.log().roll()?;
                    active.rolled_when_fenced.store(true, Ordering::Release);
                    shared.event(
                        "fenced",
                        Some(active.epoch),
                        &format!(
                            "the lease lapsed: commits refused (renewing it on the witness \
                             failed: {cause})"
                        ),
                    );
                }
            }
        }
    }
    let log = active.db.log();
    let mut beat = shared.heartbeat(Role::Active, active.epoch);
    beat.serving = active.gate.admitting();
    beat.end = log.durable_position();
    beat.current_started_micros = log.current_header().created_micros;
    {
        let retention = active.retention.lock();
        beat.retention = retention.reasons.clone();
        beat.log_warning = retention.warning.clone();
    }
    shared.write_heartbeat(beat);
    Ok(None)
}

/// Gives the database up: commits are refused, the database is checkpointed and dropped
/// (left dirty: it rejoins as a passive copy from its checkpoint).
pub(crate) fn demote_to_joining(shared: &Shared, reason: &str) {
    // Commits are refused first, so that work holding the database lets go of it. A
    // commit still on its way to the log after the close's wait is never acknowledged
    // (the gate revokes it), and the state's write lock below waits for it to finish.
    if let NodeState::Active(active) = &*shared.state.read() {
        active.gate.close(reason);
    }
    let state = change_state(&mut shared.state.write(), NodeState::Joining);
    if let NodeState::Active(active) = state {
        if let Err(error) = active.db.checkpoint() {
            tracing::warn!(%error, "checkpointing the demoted database");
        }
        shared.event("demoted", Some(active.epoch), reason);
    }
}

/// Seeds the peer, which asked for it, from this active database. The seed runs on its
/// own thread while this one keeps the lease renewed: a seed takes as long as the
/// database is large.
fn seed_peer(shared: &Shared) -> Result<(), ReplError> {
    let state = shared.state.read();
    let NodeState::Active(active) = &*state else {
        return Ok(());
    };
    let config = shared.config.peer_replica_config();
    let report = std::thread::scope(|scope| {
        let seeding = scope.spawn(|| crate::seed::seed(&active.db, &config));
        while !seeding.is_finished() {
            if let Err(error) = switchover::keep_lease(shared, active) {
                tracing::warn!(%error, "renewing the lease while seeding");
            }
            std::thread::sleep(shared.config.heartbeat_interval);
        }
        seeding.join().expect("the seed thread does not panic")
    })?;
    shared.event(
        "seeded-peer",
        Some(active.epoch),
        &format!("seeded {} at {:?}", shared.config.peer, report.position),
    );
    Ok(())
}

/// Why a node waiting for a seed is still waiting: what it can see of its peer.
fn waiting_for_seed(shared: &Shared) -> String {
    let (peer, instance) = (&shared.config.peer, &shared.config.peer_instance);
    let fs = shared.config.peer_fs.as_ref();
    if let Err(error) = fs.list(instance) {
        return format!(
            "waiting for a seed from {peer}: peer instance unreachable: {}: {error}",
            instance.display()
        );
    }
    match heartbeat::read(fs, instance) {
        Err(error) => format!("waiting for a seed from {peer}: peer instance unreachable: {error}"),
        Ok(None) => format!(
            "waiting for a seed from {peer}: it has never written a heartbeat in {}",
            instance.display()
        ),
        Ok(Some(beat)) => format!(
            "waiting for a seed from {peer} (its last heartbeat says {:?} at epoch {})",
            beat.role, beat.epoch
        ),
    }
}

/// The peer's heartbeat as last read (by the watcher, every heartbeat interval); `None` if
/// that read failed.
pub(crate) fn read_peer(shared: &Shared) -> Option<Heartbeat> {
    shared.peer_answer.lock().clone()
}

/// Reads the peer's heartbeat every heartbeat interval on a thread of its own, so that no
/// tick of the node's loop waits for a peer that does not answer (found by an adversarial
/// round: a frozen peer held an active's loop in network timeouts until its lease lapsed,
/// and it stopped serving every few seconds; a passive took 51 s to fail over).
fn watch_peer(shared: &Shared) {
    while !shared.stopping() {
        read_peer_now(shared);
        std::thread::sleep(shared.config.heartbeat_interval);
    }
}

/// Reads the peer's heartbeat, remembering the last one and when it changed.
fn read_peer_now(shared: &Shared) -> Option<Heartbeat> {
    let fs = shared.config.peer_fs.as_ref();
    let read = heartbeat::read(fs, &shared.config.peer_instance)
        .ok()
        .flatten();
    let mut peer = shared.peer.lock();
    if let Some(beat) = &read {
        let fresh = peer
            .as_ref()
            .is_none_or(|(last, _)| last.time_micros != beat.time_micros);
        if fresh {
            *peer = Some((beat.clone(), Instant::now()));
            *shared.peer_contact.lock() = Instant::now();
            let mut fenced = shared.fenced_since.lock();
            match (beat.role == Role::Active && !beat.serving, *fenced) {
                (true, None) => *fenced = Some(Instant::now()),
                (false, _) => *fenced = None,
                (true, Some(_)) => {}
            }
        }
    }
    drop(peer);
    *shared.peer_answer.lock() = read.clone();
    read
}

fn passive_tick(shared: &Shared) -> Result<(), ReplError> {
    let record = shared.witness_record();
    let epoch = record.as_ref().map_or(0, |record| record.epoch);
    shared.write_heartbeat(shared.heartbeat(Role::Passive, epoch));
    if let NodeState::Passive(passive) = &mut *shared.state.write() {
        passive.epoch = passive.epoch.max(epoch);
    }
    // Without a witness record this node accepts, no failover (and it says why).
    let record = match record {
        Ok(record) => record,
        Err(error) => {
            read_peer(shared);
            return Err(error);
        }
    };
    if record.owner == shared.config.name {
        // Owner without the database yet: say so, so that if taking over keeps failing the
        // peer sees an active that does not serve, and fails over back once this node's
        // lease lapses.
        let mut beat = shared.heartbeat(Role::Active, record.epoch);
        beat.serving = false;
        shared.write_heartbeat(beat);
        return failover::take_over(shared, record, None, None);
    }
    read_peer(shared);
    if peer_down(shared) {
        return failover::attempt(shared);
    }
    super::reapply_request::refuse_unless_active(shared, record.epoch, "a passive copy");
    // Between two rounds, with the active up: a failover never waits behind a backup that
    // has not started.
    super::backup_request::serve(shared, record.epoch)
}

/// Whether the active peer has stopped: no new heartbeat for `failover_after`, or its
/// heartbeats have said for that long that it no longer serves (fenced).
fn peer_down(shared: &Shared) -> bool {
    let limit = shared.config.failover_after;
    if shared.peer_contact.lock().elapsed() > limit {
        return true;
    }
    shared
        .fenced_since
        .lock()
        .is_some_and(|since| since.elapsed() > limit)
}

fn witness_error(error: WitnessError) -> ReplError {
    match error {
        WitnessError::Unreachable(error) => error,
        WitnessError::Held(record) if record.holder.is_empty() => ReplError::Timeout(format!(
            "the witness is held by {} at epoch {}",
            record.owner, record.epoch
        )),
        // Also this node's own name, its epoch claimed by another instance.
        WitnessError::Held(record) => ReplError::Timeout(format!(
            "the witness is held by {} at epoch {} (claimed by instance {})",
            record.owner, record.epoch, record.holder
        )),
    }
}

#[cfg(test)]
mod transition_tests {
    use super::*;

    #[test]
    fn the_role_transition_table() {
        use Role::{Active, Joining, Passive};
        let legal = [
            (Joining, Joining),
            (Joining, Active),
            (Joining, Passive),
            (Passive, Active),
            (Passive, Joining),
            (Active, Joining),
        ];
        for from in [Joining, Active, Passive] {
            for to in [Joining, Active, Passive] {
                assert_eq!(
                    legal_transition(from, to),
                    legal.contains(&(from, to)),
                    "{from:?} to {to:?}"
                );
            }
        }
    }

    #[test]
    fn a_state_change_returns_the_old_state() {
        let mut state = NodeState::Joining;
        let old = change_state(&mut state, NodeState::Joining);
        assert!(matches!(old, NodeState::Joining));
    }
}
