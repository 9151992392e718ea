//! The replication service: ship, inspect and replay as threads joined by channels, and a
//! status thread that derives the state and writes `status.json`.
//!
//! A stage that finishes work wakes the next one through its channel; each also looks for
//! work every poll interval. Stopping drops the stop channel's sender, which wakes every
//! thread; replay then checkpoints the passive and the status says Disabled (or still Failed,
//! with its reason, if the copy had failed).

use crate::error::ReplError;
use crate::replica::{Board, Replica, ReplicaConfig};
use crate::status::CopyStatus;
use bluejet_engine::LogPosition;
use bluejet_engine::PassiveDatabase;
use crossbeam_channel::{bounded, select, Receiver, Sender};
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running replication service for one replica.
///
/// ```no_run
/// use bluejet_replication::{ReplicaConfig, ReplicationService};
/// use std::path::Path;
/// let config = ReplicaConfig::new(Path::new("/var/mail/db"), Path::new("/mnt/replica/db"));
/// let service = ReplicationService::start(config).unwrap();
/// println!("{:?}", service.status().state);
/// service.stop().unwrap();
/// ```
pub struct ReplicationService {
    board: Arc<Board>,
    passive: Arc<RwLock<Option<Arc<PassiveDatabase>>>>,
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<Result<(), ReplError>>>,
    poll: Duration,
}

impl ReplicationService {
    /// Opens the replica (it must have been seeded) and starts the stages.
    pub fn start(config: ReplicaConfig) -> Result<Self, ReplError> {
        let replica = Replica::open(config)?;
        let passive = replica.passive_handle();
        let (config, mut shipper, mut inspector, mut replayer, board, lock) = replica.into_parts();
        let (stop, stopped) = bounded::<()>(0);
        let (shipped_tx, shipped_rx) = bounded::<()>(1);
        let (inspected_tx, inspected_rx) = bounded::<()>(1);
        let poll = config.poll_interval;
        let inspected_next = Arc::new(AtomicU32::new(inspector.next_generation()));
        let mut threads = Vec::new();
        {
            let (board, stopped, next) = (
                Arc::clone(&board),
                stopped.clone(),
                Arc::clone(&inspected_next),
            );
            threads.push(spawn("bluejet-ship", move || {
                while wait(&stopped, None, poll) {
                    if board.suspended() {
                        continue;
                    }
                    let round = shipper.ship_once(next.load(Ordering::Acquire));
                    let shipped = round.as_ref().is_ok_and(|r| !r.shipped.is_empty());
                    board.note_ship(round);
                    if shipped {
                        // Full: a wake-up is pending already. Closed: the inspector stopped.
                        if shipped_tx.try_send(()).is_err() {
                            tracing::trace!("the inspector has a wake-up pending or stopped");
                        }
                    }
                }
                Ok(())
            }));
        }
        {
            let (board, stopped) = (Arc::clone(&board), stopped.clone());
            threads.push(spawn("bluejet-inspect", move || {
                while wait(&stopped, Some(&shipped_rx), poll) {
                    let round = inspector.inspect_once();
                    let inspected = round.as_ref().is_ok_and(|r| !r.inspected.is_empty());
                    inspected_next.store(inspector.next_generation(), Ordering::Release);
                    board.note_inspect(round, inspector.next_generation());
                    if inspected {
                        // Full: a wake-up is pending already. Closed: the replayer stopped.
                        if inspected_tx.try_send(()).is_err() {
                            tracing::trace!("the replayer has a wake-up pending or stopped");
                        }
                    }
                }
                Ok(())
            }));
        }
        {
            let (board, stopped) = (Arc::clone(&board), stopped.clone());
            threads.push(spawn("bluejet-replay", move || {
                while wait(&stopped, Some(&inspected_rx), poll) {
                    if board.suspended() {
                        continue;
                    }
                    let round = replayer.replay_once();
                    board.note_replay(round);
                }
                replayer.checkpoint()
            }));
        }
        {
            let (board, interval) = (Arc::clone(&board), config.status_interval);
            threads.push(spawn("bluejet-status", move || {
                let _lock = lock;
                while wait(&stopped, None, interval) {
                    board.publish();
                }
                Ok(())
            }));
        }
        board
            .events
            .record("started", None, "replication service started");
        Ok(Self {
            board,
            passive,
            stop: Some(stop),
            threads,
            poll,
        })
    }

    /// Shows the copy Resynchronizing until it has caught up (see [`Board`]).
    pub fn mark_resynchronizing(&self) {
        self.board.mark_resynchronizing();
    }

    /// The last generation inspected (the copy holds every generation through it).
    pub fn inspected_through(&self) -> u32 {
        self.board.inspected_through()
    }

    /// The status as last derived (publishing it now).
    pub fn status(&self) -> CopyStatus {
        self.board.publish()
    }

    /// The passive copy, for reading, once replay has opened it.
    pub fn passive(&self) -> Option<Arc<PassiveDatabase>> {
        self.passive.read().clone()
    }

    /// Waits until the passive has replayed everything up to `position`.
    pub fn wait_replayed(&self, position: LogPosition, timeout: Duration) -> Result<(), ReplError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .passive()
                .is_some_and(|p| p.next_position() >= position)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let status = self.status();
                return Err(ReplError::Timeout(format!(
                    "the passive did not reach {position:?} in {timeout:?}: {:?} {}",
                    status.state, status.message
                )));
            }
            std::thread::sleep(self.poll / 4);
        }
    }

    /// Stops every stage, checkpoints the passive and writes the final status: Disabled, or
    /// Failed with its reason if the copy was Failed. An error if a stage failed or the
    /// final status cannot be written.
    pub fn stop(self) -> Result<(), ReplError> {
        self.stop_because("the replication service stopped")
    }

    /// [`stop`](Self::stop), with `message` as the final status's message (a cluster node
    /// pausing its copy for a backup says so, so that `cluster status` tells the pause from
    /// a stop).
    pub fn stop_because(mut self, message: &str) -> Result<(), ReplError> {
        self.shutdown(message)
    }

    fn shutdown(&mut self, message: &str) -> Result<(), ReplError> {
        drop(self.stop.take());
        let mut first = Ok(());
        for thread in self.threads.drain(..) {
            let result = thread
                .join()
                .unwrap_or_else(|_| Err(ReplError::Timeout("a stage panicked".into())));
            if first.is_ok() {
                first = result;
            }
        }
        let written = self.board.publish_stopped(message);
        self.board
            .events
            .record("stopped", None, "replication service stopped");
        first.and(written)
    }
}

impl Drop for ReplicationService {
    fn drop(&mut self) {
        if self.stop.is_some() {
            if let Err(error) = self.shutdown("the replication service stopped") {
                tracing::warn!(%error, "stopping the replication service as it is dropped");
            }
        }
    }
}

fn spawn(
    name: &str,
    body: impl FnOnce() -> Result<(), ReplError> + Send + 'static,
) -> JoinHandle<Result<(), ReplError>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .expect("spawning a replication thread")
}

/// Waits for a wake-up or `poll`; false once the service is stopping.
fn wait(stopped: &Receiver<()>, wake: Option<&Receiver<()>>, poll: Duration) -> bool {
    let never = crossbeam_channel::never();
    let wake = wake.unwrap_or(&never);
    select! {
        recv(stopped) -> _ => false,
        recv(wake) -> message => message.is_ok() || {
            // The previous stage ended: keep polling until told to stop.
            std::thread::sleep(poll);
            true
        },
        default(poll) => true,
    }
}
