//! The demo's passive copy: seeded from the empty database before delivery, kept up by a
//! replication service while the writers deliver, then proved equal to the active: the
//! active's log is rolled, the copy waits until it replayed the active's last snapshot, and
//! the content digests of both are compared table by table.

use super::repl_status;
use crate::exit::ToolError;
use crate::output;
use crate::records::position_json;
use bluejet_engine::db::Database;
use bluejet_engine::log::LogPosition;
use bluejet_replication::seed::{seed, SeedReport};
use bluejet_replication::verify::{differences, digest};
use bluejet_replication::{CopyState, CopyStatus, ReplicaConfig, ReplicationService};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The replica's directory inside the demo's directory.
pub const REPLICA_DIRECTORY: &str = "replica";
/// Longest wait for the copy to replay the active's last snapshot.
const CATCH_UP: Duration = Duration::from_secs(30);
/// Longest wait, once caught up, for the state to settle on Healthy.
const SETTLE: Duration = Duration::from_secs(2);

/// A replication service running beside the writers.
pub struct Replicating {
    replica: PathBuf,
    seed: SeedReport,
    service: ReplicationService,
}

/// What the copy did, and whether it holds what the active holds.
#[derive(Debug)]
pub struct Replicated {
    /// The replica directory.
    pub replica: PathBuf,
    /// The seed.
    pub seed: SeedReport,
    /// The status once the copy caught up.
    pub status: CopyStatus,
    /// The active's last snapshot, which the copy replayed.
    pub position: LogPosition,
    /// From the last roll to the copy having replayed it.
    pub catch_up: Duration,
    /// Tables compared.
    pub tables: usize,
    /// Tables whose content differs (nothing, when the copy is sound).
    pub differences: Vec<String>,
}

impl Replicated {
    /// Generations the service replayed after the seed.
    pub fn generations_replayed(&self) -> u32 {
        self.status
            .last_replayed
            .map_or(0, |mark| mark.generation)
            .saturating_sub(self.seed.position.generation)
    }
}

/// The demo's replica configuration: compressed shipping, quick polling, a short settle.
fn config(active: &Path, replica: &Path) -> ReplicaConfig {
    let mut config = ReplicaConfig::new(active, replica);
    config.ship.compress = true;
    config.poll_interval = Duration::from_millis(20);
    config.status_interval = Duration::from_millis(100);
    config.thresholds.settle = Duration::from_millis(200);
    config
}

/// Seeds the replica in `directory`/`replica` from `active` and starts replicating.
pub fn start(active: &Database, directory: &Path) -> Result<Replicating, ToolError> {
    let replica = directory.join(REPLICA_DIRECTORY);
    let config = config(directory, &replica);
    let seed = seed(active, &config)?;
    let service = ReplicationService::start(config)?;
    Ok(Replicating {
        replica,
        seed,
        service,
    })
}

impl Replicating {
    /// Closes the active's generation, waits for the copy to replay it, compares both
    /// copies' content and stops the service.
    pub fn finish(self, active: &Database) -> Result<Replicated, ToolError> {
        let rolled = Instant::now();
        active.log().roll()?;
        let (position, expected) = {
            let read = active.begin_read()?;
            (read.end(), digest(&read)?)
        };
        self.service.wait_replayed(position, CATCH_UP)?;
        let catch_up = rolled.elapsed();
        let status = self.settled_status();
        let passive = self
            .service
            .passive()
            .ok_or_else(|| ToolError::Failure("the passive copy is not open".into()))?;
        let found = digest(&passive.begin_read()?)?;
        drop(passive);
        self.service.stop()?;
        Ok(Replicated {
            replica: self.replica,
            seed: self.seed,
            status,
            position,
            catch_up,
            tables: expected.len(),
            differences: differences(&expected, &found),
        })
    }

    /// The status once Healthy, or as it is after a short wait.
    fn settled_status(&self) -> CopyStatus {
        let deadline = Instant::now() + SETTLE;
        loop {
            let status = self.service.status();
            if status.state == CopyState::Healthy || Instant::now() >= deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The demo's lines about the copy.
pub fn lines(replicated: &Replicated) -> Vec<String> {
    let status = &replicated.status;
    let mut lines = vec![
        format!(
            "replica:      seeded at {} in {:.3} s, in {}",
            replicated.seed.position,
            replicated.seed.seconds,
            replicated.replica.display()
        ),
        format!(
            "replication:  {}, copy queue {}, replay queue {}",
            repl_status::state_text(status),
            status.copy_queue,
            status.replay_queue
        ),
        format!(
            "shipped:      {} shipped and replayed, through generation {}; {} as {} ({:.2}x compression)",
            output::plural(u64::from(replicated.generations_replayed()), "generation"),
            status.last_replayed.map_or(0, |mark| mark.generation),
            output::bytes(status.shipped_bytes),
            output::bytes(status.transferred_bytes),
            status.compression_ratio()
        ),
        format!(
            "loss window:  {}, {:.1} s; no replay lag, caught up {:.3} s after the last roll",
            output::plural(u64::from(status.loss_window_generations), "generation"),
            status.loss_window_seconds,
            replicated.catch_up.as_secs_f64()
        ),
        format!(
            "passive:      {} at {}: {}",
            output::plural(replicated.tables as u64, "table"),
            replicated.position,
            if replicated.differences.is_empty() {
                "content identical to the active's"
            } else {
                "content DIFFERS from the active's"
            }
        ),
    ];
    lines.extend(
        replicated
            .differences
            .iter()
            .map(|difference| format!("problem: passive copy: {difference}")),
    );
    lines
}

/// The demo's `replication` object.
pub fn json(replicated: &Replicated) -> Value {
    let status = &replicated.status;
    json!({
        "replica": replicated.replica.display().to_string(),
        "seeded_at": position_json(replicated.seed.position),
        "seed_seconds": replicated.seed.seconds,
        "state": format!("{:?}", status.state),
        "message": status.message,
        "copy_queue": status.copy_queue,
        "replay_queue": status.replay_queue,
        "generations_replayed": replicated.generations_replayed(),
        "last_replayed_generation": status.last_replayed.map(|mark| mark.generation),
        "loss_window_generations": status.loss_window_generations,
        "loss_window_seconds": status.loss_window_seconds,
        "shipped_bytes": status.shipped_bytes,
        "transferred_bytes": status.transferred_bytes,
        "compression_ratio": status.compression_ratio(),
        "replay_lag_seconds": null,
        "catch_up_seconds": replicated.catch_up.as_secs_f64(),
        "position": position_json(replicated.position),
        "tables": replicated.tables,
        "differences": replicated.differences,
        "equal": replicated.differences.is_empty(),
    })
}
