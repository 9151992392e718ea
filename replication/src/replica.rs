//! A replica and its stages, driven one round at a time, and the board the stages report to.

use crate::control::Control;
use crate::error::ReplError;
use crate::events::EventLog;
use crate::identity::ReplicaIdentity;
use crate::inspect::{InspectRound, Inspector};
use crate::layout::ReplicaLayout;
use crate::lock::ReplicaLock;
use crate::replay::{ReplayOptions, ReplayRound, Replayer};
use crate::ship::{ShipOptions, ShipRound, Shipper};
use crate::status::{CopyState, CopyStatus, Observations, StateMachine, Thresholds};
use bluejet_engine::file::{FileSystem, OsFileSystem};
use bluejet_engine::log::now_micros;
use bluejet_engine::LogPosition;
use bluejet_engine::{Options, PassiveDatabase};
use parking_lot::{Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Everything a replica needs to run.
#[derive(Clone)]
pub struct ReplicaConfig {
    /// The active's directory (its log stream).
    pub active: PathBuf,
    /// The replica directory.
    pub replica: PathBuf,
    /// Options of the passive copy; its file system is the replica's.
    pub options: Options,
    /// The file system the active's directory is read through.
    pub active_fs: Arc<dyn FileSystem>,
    /// Shipping.
    pub ship: ShipOptions,
    /// Replay.
    pub replay: ReplayOptions,
    /// When the copy is Healthy.
    pub thresholds: Thresholds,
    /// Failed inspections of one generation before the copy is Failed (default 3).
    pub inspect_attempts: u32,
    /// How often the stages look for work when not woken (default 100 ms).
    pub poll_interval: Duration,
    /// How often the service writes the status (default 250 ms).
    pub status_interval: Duration,
    /// The cluster node this replica belongs to, named in its events.
    pub node: Option<String>,
}

impl ReplicaConfig {
    /// The defaults for a replica of `active` in `replica`, both on the real disk.
    pub fn new(active: &Path, replica: &Path) -> Self {
        Self {
            active: active.to_owned(),
            replica: replica.to_owned(),
            options: Options::default(),
            active_fs: Arc::new(OsFileSystem),
            ship: ShipOptions::default(),
            replay: ReplayOptions::default(),
            thresholds: Thresholds::default(),
            inspect_attempts: 3,
            poll_interval: Duration::from_millis(100),
            status_interval: Duration::from_millis(250),
            node: None,
        }
    }

    /// The replica's file system.
    pub fn fs(&self) -> Arc<dyn FileSystem> {
        Arc::clone(&self.options.log.file_system)
    }

    /// The replica's layout.
    pub fn layout(&self) -> ReplicaLayout {
        ReplicaLayout::new(&self.replica)
    }
}

/// What the stages report to, and what derives and publishes the status from it.
pub struct Board {
    fs: Arc<dyn FileSystem>,
    layout: ReplicaLayout,
    thresholds: Thresholds,
    observations: Mutex<Observations>,
    machine: Mutex<StateMachine>,
    published: Mutex<Option<(CopyState, String)>>,
    /// Held while `status.json` is written: its writers (the status thread, a caller asking
    /// for the status, the final close) share one temporary name (found: two concurrent
    /// writes renamed each other's temporary away, and the copy showed Failed).
    status_file: Mutex<()>,
    /// A copy rebuilt from an old active shows Resynchronizing until it has caught up.
    resynchronizing: std::sync::atomic::AtomicBool,
    /// The event log.
    pub events: EventLog,
}

impl Board {
    /// A board for the replica of `config`.
    pub fn new(config: &ReplicaConfig) -> Self {
        let fs = config.fs();
        let layout = config.layout();
        Self {
            events: EventLog::new(Arc::clone(&fs), &layout.events()).with_node(config.node.clone()),
            fs,
            layout,
            thresholds: config.thresholds.clone(),
            observations: Mutex::new(Observations::default()),
            machine: Mutex::new(StateMachine::default()),
            published: Mutex::new(None),
            status_file: Mutex::new(()),
            resynchronizing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Shows the copy Resynchronizing until every stage has completed a round with empty
    /// queues (an old active catching up after a failover).
    pub fn mark_resynchronizing(&self) {
        self.resynchronizing
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Replaces a Healthy, Initializing or soft state by Resynchronizing while catching up.
    fn resynchronizing_state(&self, seen: &Observations, state: CopyState) -> Option<CopyState> {
        use std::sync::atomic::Ordering;
        if !self.resynchronizing.load(Ordering::Acquire) {
            return None;
        }
        let caught_up = seen.rounds.iter().all(|&done| done)
            && seen.status.copy_queue == 0
            && seen.status.replay_queue == 0;
        if caught_up {
            self.resynchronizing.store(false, Ordering::Release);
            return None;
        }
        let hard = seen.replay_failure.is_some()
            || seen.inspect_failure.is_some()
            || seen.source_failure.is_some();
        (!hard && state != CopyState::Suspended).then_some(CopyState::Resynchronizing)
    }

    /// Whether an operator suspended the copy (read from `control.json`).
    pub fn suspended(&self) -> bool {
        self.observations.lock().suspended.is_some()
    }

    /// The generation shipping should start from: the one after the last inspected.
    pub fn inspected_through(&self) -> u32 {
        self.observations.lock().inspected_through
    }

    /// Sets a stage's problem, reporting it through `tracing` when it changes.
    fn note_problem(&self, slot: &mut Option<String>, stage: &str, problem: Option<String>) {
        crate::stage_report::note_problem(slot, stage, &self.layout.root, problem);
    }

    /// Notes a round of shipping.
    pub fn note_ship(&self, result: Result<ShipRound, ReplError>) {
        let mut seen = self.observations.lock();
        let round = match result {
            Ok(round) => round,
            Err(error) => {
                let problem = format!("reading the active's log: {error}");
                self.note_problem(&mut seen.stage_problems[0], "ship", Some(problem));
                return;
            }
        };
        let now = now_micros();
        seen.rounds[0] = true;
        seen.status.last_contact_micros = now;
        seen.status.last_generated = round.newest_closed.or(seen.status.last_generated);
        seen.active_current = round.current_generation;
        seen.exposed_since = round.exposed_since;
        if let Some(mark) = round.shipped.last() {
            seen.status.last_copied = Some(*mark);
        }
        seen.status.shipped_bytes += round.bytes.0;
        seen.status.transferred_bytes += round.bytes.1;
        for generation in &round.different {
            self.events.record(
                "different",
                Some(*generation),
                "the incoming copy differs from the active's: left for inspection",
            );
        }
        if let Some(problem) = &round.problem {
            if seen.stage_problems[0].as_ref() != Some(problem) {
                self.events.record("copy-failed", None, problem.clone());
            }
        }
        let source_failure = round.deleted_on_active.map(|generation| {
            format!(
                "generation {generation} was deleted on the active: reseed (stop this \
                 node, move its instance's copy aside, start it: the active seeds it)"
            )
        });
        if source_failure.is_some() && seen.source_failure != source_failure {
            self.events.record(
                "generation-deleted",
                round.deleted_on_active,
                source_failure.clone().unwrap_or_default(),
            );
        }
        seen.source_failure = source_failure;
        seen.status.deleted_on_active = round.deleted_on_active;
        self.note_problem(&mut seen.stage_problems[0], "ship", round.problem);
    }

    /// Notes a round of inspection.
    pub fn note_inspect(&self, result: Result<InspectRound, ReplError>, next: u32) {
        let mut seen = self.observations.lock();
        let round = match result {
            Ok(round) => round,
            Err(error) => {
                let problem = format!("inspecting: {error}");
                self.note_problem(&mut seen.stage_problems[1], "inspect", Some(problem));
                return;
            }
        };
        seen.rounds[1] = true;
        self.note_problem(&mut seen.stage_problems[1], "inspect", None);
        seen.inspected_through = next.saturating_sub(1);
        if let Some(mark) = round.inspected.last() {
            seen.status.last_inspected = Some(*mark);
        }
        for (generation, problem) in &round.rejected {
            self.events
                .record("quarantined", Some(*generation), problem.clone());
        }
        for generation in &round.duplicates {
            self.events
                .record("duplicate", Some(*generation), "identical copy removed");
        }
        if round.gap != seen.status.gap {
            if let Some(gap) = round.gap {
                self.events
                    .record("gap", Some(gap.missing), gap.to_string());
            }
        }
        seen.status.gap = round.gap;
        self.note_problem(&mut seen.inspect_failure, "inspect", round.failure);
    }

    /// Notes a round of replay.
    pub fn note_replay(&self, result: Result<ReplayRound, ReplError>) {
        let mut seen = self.observations.lock();
        let round = match result {
            Ok(round) => round,
            Err(error) => {
                let problem = format!("replaying: {error}");
                self.note_problem(&mut seen.stage_problems[2], "replay", Some(problem));
                return;
            }
        };
        self.note_problem(&mut seen.stage_problems[2], "replay", None);
        self.note_problem(&mut seen.replay_failure, "replay", round.failure);
        if seen.replay_failure.is_some() {
            return;
        }
        seen.rounds[2] = true;
        seen.replayed_through = round.next.saturating_sub(1);
        seen.status.replayed_position = round.position;
        if let Some(safe) = round.safe_before_micros {
            seen.status.safe_before_micros = seen.status.safe_before_micros.max(safe);
        }
        if let Some(mark) = round.replayed.last() {
            seen.status.last_replayed = Some(*mark);
        }
        if round.proven.is_some() {
            seen.status.proven = round.proven;
        }
        if round.recounted.is_some() {
            seen.status.recounted = round.recounted;
        }
    }

    /// Reads the control file, derives the state, writes `status.json` and records a state
    /// change in the event log. Returns the status.
    pub fn publish(&self) -> CopyStatus {
        let control = Control::read(self.fs.as_ref(), &self.layout);
        let now = now_micros();
        let mut seen = self.observations.lock();
        match control {
            Ok(control) => seen.suspended = control.suspended.then_some(control.comment),
            Err(error) => self.note_problem(
                &mut seen.stage_problems[0],
                "control",
                Some(error.to_string()),
            ),
        }
        derive_figures(&mut seen, now);
        let (mut state, message) = self.machine.lock().evaluate(&seen, &self.thresholds, now);
        if let Some(resynchronizing) = self.resynchronizing_state(&seen, state) {
            state = resynchronizing;
        }
        seen.status.state = state;
        seen.status.message = message.clone();
        seen.status.updated_micros = now;
        let status = seen.status.clone();
        drop(seen);
        let written = {
            let _writing = self.status_file.lock();
            status.write(self.fs.as_ref(), &self.layout)
        };
        if let Err(error) = written {
            // The file on disk now says something stale: the state says so (and the event
            // log, if it can be written).
            let failure = format!(
                "{} cannot be written: {error}",
                self.layout.status().display()
            );
            let mut seen = self.observations.lock();
            self.note_problem(&mut seen.status_failure, "status", Some(failure));
            let (state, message) = self.machine.lock().evaluate(&seen, &self.thresholds, now);
            seen.status.state = state;
            seen.status.message = message.clone();
            let status = seen.status.clone();
            drop(seen);
            self.note_state(state, &message);
            return status;
        }
        self.note_problem(&mut self.observations.lock().status_failure, "status", None);
        self.note_state(state, &message);
        status
    }

    /// Why the last round of replay failed (a damaged generation, a content mismatch at a
    /// proof point), if it did.
    pub fn replay_failure(&self) -> Option<String> {
        self.observations.lock().replay_failure.clone()
    }

    /// The state and message last published, if any.
    pub fn published(&self) -> Option<(CopyState, String)> {
        self.published.lock().clone()
    }

    fn note_state(&self, state: CopyState, message: &str) {
        let mut published = self.published.lock();
        let changed = published
            .as_ref()
            .is_none_or(|(previous, _)| *previous != state);
        if changed {
            let text = if message.is_empty() {
                format!("{state:?}")
            } else {
                format!("{state:?}: {message}")
            };
            self.events.record("state", None, text);
        }
        *published = Some((state, message.to_owned()));
    }

    /// Writes a final status (a clean stop); an error if it cannot be written (the file
    /// on disk is then stale).
    pub fn publish_final(&self, state: CopyState, message: &str) -> Result<(), ReplError> {
        let mut status = self.observations.lock().status.clone();
        status.state = state;
        status.message = message.to_owned();
        status.updated_micros = now_micros();
        self.note_state(state, message);
        let _writing = self.status_file.lock();
        status
            .write(self.fs.as_ref(), &self.layout)
            .inspect_err(|error| {
                self.events.record(
                    "status-failed",
                    None,
                    format!("the final status ({state:?}) cannot be written: {error}"),
                );
            })
    }

    /// Writes the status of a clean stop: Disabled, unless the copy was Failed, which it
    /// stays, with its reason (a stop does not make a failure go away).
    pub fn publish_stopped(&self, message: &str) -> Result<(), ReplError> {
        match self.published() {
            Some((CopyState::Failed, reason)) => {
                self.publish_final(CopyState::Failed, &format!("{reason} ({message})"))
            }
            _ => self.publish_final(CopyState::Disabled, message),
        }
    }
}

/// Queues and the loss window, from the generations seen by each stage.
fn derive_figures(seen: &mut Observations, now: u64) {
    let newest = seen.status.last_generated.map_or(0, |mark| mark.generation);
    let status = &mut seen.status;
    status.copy_queue = newest.saturating_sub(seen.inspected_through);
    // Until replay has completed a round, what it has replayed is not known yet.
    status.replay_queue = match seen.rounds[2] {
        true => seen.inspected_through.saturating_sub(seen.replayed_through),
        false => 0,
    };
    status.loss_window_generations = status.copy_queue + seen.active_current.is_some() as u32;
    status.loss_window_seconds = match seen.exposed_since {
        Some(since) if status.copy_queue > 0 => now.saturating_sub(since) as f64 / 1e6,
        _ => 0.0,
    };
}

/// A replica driven one round at a time (tests, the tool's one-shot commands); the
/// [`ReplicationService`](crate::ReplicationService) runs the same stages in threads.
pub struct Replica {
    config: ReplicaConfig,
    identity: ReplicaIdentity,
    shipper: Shipper,
    inspector: Inspector,
    replayer: Replayer,
    board: Arc<Board>,
    _lock: Option<ReplicaLock>,
}

impl Replica {
    /// Opens the replica of `config` (it must have been seeded).
    pub fn open(config: ReplicaConfig) -> Result<Self, ReplError> {
        let layout = config.layout();
        let fs = config.fs();
        let lock = ReplicaLock::acquire(fs.as_ref(), &layout.lock())?;
        let identity = ReplicaIdentity::read(fs.as_ref(), &layout)?;
        layout.create(fs.as_ref())?;
        let mut options = config.options.clone();
        options.log.base_name = identity.base()?;
        let config = ReplicaConfig { options, ..config };
        let shipper = Shipper::new(
            Arc::clone(&config.active_fs),
            Arc::clone(&fs),
            config.active.clone(),
            layout.clone(),
            identity.base()?,
            config.ship.clone(),
        );
        let inspector = Inspector::new(
            Arc::clone(&fs),
            layout.clone(),
            identity.clone(),
            config.inspect_attempts,
            config.replay.retry_after,
        )?;
        let replayer = Replayer::new(layout, config.options.clone(), config.replay.clone());
        let board = Arc::new(Board::new(&config));
        board.observations.lock().inspected_through = inspector.next_generation() - 1;
        Ok(Self {
            config,
            identity,
            shipper,
            inspector,
            replayer,
            board,
            _lock: lock,
        })
    }

    /// The identity.
    pub fn identity(&self) -> &ReplicaIdentity {
        &self.identity
    }

    /// The configuration (with the stream's base name filled in).
    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// The board the stages report to.
    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// One round of shipping (nothing while suspended).
    pub fn ship(&mut self) {
        if self.board.suspended() {
            return;
        }
        let needed = self.board.inspected_through() + 1;
        let round = self.shipper.ship_once(needed);
        self.board.note_ship(round);
    }

    /// One round of inspection.
    pub fn inspect(&mut self) {
        let round = self.inspector.inspect_once();
        self.board
            .note_inspect(round, self.inspector.next_generation());
    }

    /// One round of replay (nothing while suspended).
    pub fn replay(&mut self) {
        if self.board.suspended() {
            return;
        }
        let round = self.replayer.replay_once();
        self.board.note_replay(round);
    }

    /// Ship, inspect, replay, then publish the status.
    pub fn step(&mut self) -> CopyStatus {
        self.board.publish();
        self.ship();
        self.inspect();
        self.replay();
        self.board.publish()
    }

    /// Steps until the passive has replayed up to `position` (or `timeout` passes).
    pub fn catch_up(&mut self, position: LogPosition, timeout: Duration) -> Result<(), ReplError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let status = self.step();
            if status.replayed_position >= position
                || self
                    .passive()
                    .is_some_and(|p| p.next_position() >= position)
            {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(ReplError::Timeout(format!(
                    "the passive reached {:?}, not {position:?}: {:?} {}",
                    status.replayed_position, status.state, status.message
                )));
            }
            std::thread::sleep(self.config.poll_interval);
        }
    }

    /// The passive copy, once replay has opened it.
    pub fn passive(&self) -> Option<Arc<PassiveDatabase>> {
        self.replayer.passive_handle().read().clone()
    }

    /// The shared handle on the passive copy.
    pub fn passive_handle(&self) -> Arc<RwLock<Option<Arc<PassiveDatabase>>>> {
        self.replayer.passive_handle()
    }

    /// Checkpoints the passive and writes a final status.
    pub fn close(self, state: CopyState, message: &str) -> Result<(), ReplError> {
        self.replayer.checkpoint()?;
        self.board.publish_final(state, message)
    }

    pub(crate) fn into_parts(
        self,
    ) -> (
        ReplicaConfig,
        Shipper,
        Inspector,
        Replayer,
        Arc<Board>,
        Option<ReplicaLock>,
    ) {
        (
            self.config,
            self.shipper,
            self.inspector,
            self.replayer,
            self.board,
            self._lock,
        )
    }
}
