//! Planned switchover: the active moves the database to its peer without losing anything.
//!
//! Refused when the peer's copy is Failed, Seeding or Suspended, or its queues exceed the
//! thresholds. Otherwise: commits are held (the lease gate pauses them), the current
//! generation is closed, the peer's copy must report everything replayed, the witness is
//! handed to the peer at a new epoch, and this node gives the database up and rejoins as a
//! passive copy. The peer sees itself owner and activates on the new epoch. Held commits are
//! refused ("moved") and the time they were held is reported.

use super::heartbeat::Role;
use super::node::{demote_to_joining, ActiveState, NodeState, Shared};
use super::requests::{self, MoveRequest, MoveResult};
use crate::error::ReplError;
use crate::layout::ReplicaLayout;
use crate::status::{CopyState, CopyStatus};
use std::time::{Duration, Instant};

/// How long a move waits for the peer to replay the last generation.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves a pending move request, if any.
pub(crate) fn serve_requests(shared: &Shared) -> Result<(), ReplError> {
    let Some(request) = requests::pending_move(shared) else {
        return Ok(());
    };
    let result = match perform(shared, &request) {
        Ok(result) => result,
        Err(error) => {
            let message = error.to_string();
            shared.event_with_comment("move-failed", None, &message, Some(&request.comment));
            MoveResult {
                id: request.id,
                ok: false,
                message,
                paused_ms: 0,
                epoch: 0,
            }
        }
    };
    requests::answer_move(shared, &result)
}

fn perform(shared: &Shared, request: &MoveRequest) -> Result<MoveResult, ReplError> {
    let refuse = |message: String| MoveResult {
        id: request.id,
        ok: false,
        message,
        paused_ms: 0,
        epoch: 0,
    };
    if request.to != shared.config.peer {
        return Ok(refuse(format!(
            "unknown node {:?} (the peer is {})",
            request.to, shared.config.peer
        )));
    }
    if let Err(reason) = validate(shared) {
        return Ok(refuse(reason));
    }
    if request.validate_only {
        return Ok(MoveResult {
            ok: true,
            message: format!("{} can take the database", request.to),
            ..refuse(String::new())
        });
    }
    let (epoch, paused) = hand_over(shared, request)?;
    demote_to_joining(shared, &format!("the database moved to {}", request.to));
    let message = format!(
        "moved to {} at epoch {epoch}, commits held {} ms",
        request.to,
        paused.as_millis()
    );
    shared.event_with_comment("switchover", Some(epoch), &message, Some(&request.comment));
    Ok(MoveResult {
        id: request.id,
        ok: true,
        message,
        paused_ms: u64::try_from(paused.as_millis()).unwrap_or(u64::MAX),
        epoch,
    })
}

/// The peer's copy must be able to take the database.
fn validate(shared: &Shared) -> Result<(), String> {
    let layout = ReplicaLayout::new(&shared.config.peer_instance);
    let status = CopyStatus::read(
        shared.config.peer_fs.as_ref(),
        &layout,
        Duration::from_secs(10),
    )
    .map_err(|error| format!("the peer's copy status cannot be read: {error}"))?
    .ok_or("the peer has no copy status")?;
    if matches!(
        status.state,
        CopyState::Failed | CopyState::Seeding | CopyState::Suspended | CopyState::Disabled
    ) {
        return Err(format!(
            "the peer's copy is {:?}: {}",
            status.state, status.message
        ));
    }
    let thresholds = &shared.config.replica.thresholds;
    if status.copy_queue > thresholds.max_copy_queue
        || status.replay_queue > thresholds.max_replay_queue
    {
        return Err(format!(
            "the peer's queues (copy {}, replay {}) exceed the thresholds",
            status.copy_queue, status.replay_queue
        ));
    }
    Ok(())
}

/// Holds commits, closes the generation, waits for the peer, hands the witness over.
/// Returns the new epoch and how long commits were held.
fn hand_over(shared: &Shared, request: &MoveRequest) -> Result<(u64, Duration), ReplError> {
    let state = shared.state.read();
    let NodeState::Active(active) = &*state else {
        return Err(ReplError::Timeout("the node is no longer active".into()));
    };
    let held = Instant::now();
    // Waits for commits already admitted to reach the log: the roll then takes them all. A
    // commit that does not reach it in time would land after the roll, on a node that gave
    // the database up: the move is given up instead.
    if !active.gate.pause() {
        active.gate.resume();
        return Err(ReplError::Timeout(
            "a commit admitted before the move did not reach the log in time: the move is \
             given up and commits resume"
                .into(),
        ));
    }
    let result = (|| {
        let closed = active.db.log().roll()?;
        wait_replayed(shared, active, closed, request)?;
        // The last moment the requester can call the move off.
        requests::still_wanted(shared, request).map_err(ReplError::Timeout)?;
        shared
            .witness
            .transfer(
                &shared.config.name,
                active.epoch,
                &request.to,
                shared.config.lease,
                &request.comment,
            )
            .map_err(|error| ReplError::Timeout(error.to_string()))
    })();
    match result {
        Ok(record) => {
            active
                .gate
                .close(&format!("the database moved to {}", request.to));
            Ok((record.epoch, held.elapsed()))
        }
        Err(error) if still_owner(shared, active.epoch) => {
            active.gate.resume();
            Err(error)
        }
        Err(error) => {
            // The transfer may have reached the witness before failing (or the witness
            // cannot be read): the peer may own the database now, so this node never
            // admits a commit again.
            active
                .gate
                .close("the database move failed after the witness may have changed");
            Err(error)
        }
    }
}

/// Whether the witness can be read and still names this node owner at `epoch`.
fn still_owner(shared: &Shared, epoch: u64) -> bool {
    matches!(
        shared.witness.read(),
        Ok(Some(record)) if record.owner == shared.config.name && record.epoch == epoch
    )
}

/// Waits until the peer's copy has replayed generation `closed` whole, renewing this
/// node's lease meanwhile (the peer must not take the wait for a dead active). Gives up
/// once the request is withdrawn or expires.
fn wait_replayed(
    shared: &Shared,
    active: &ActiveState,
    closed: u32,
    request: &MoveRequest,
) -> Result<(), ReplError> {
    let layout = ReplicaLayout::new(&shared.config.peer_instance);
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        keep_lease(shared, active)?;
        requests::still_wanted(shared, request).map_err(ReplError::Timeout)?;
        let status = CopyStatus::read(
            shared.config.peer_fs.as_ref(),
            &layout,
            Duration::from_secs(10),
        )?;
        let replayed = status.and_then(|status| status.last_replayed);
        if replayed.is_some_and(|mark| mark.generation >= closed) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ReplError::Timeout(format!(
                "the peer did not replay generation {closed} within {CATCH_UP_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(
            shared
                .config
                .heartbeat_interval
                .min(Duration::from_millis(20)),
        );
    }
}

/// Renews the lease and writes a heartbeat during a long step of the node loop.
pub(crate) fn keep_lease(shared: &Shared, active: &ActiveState) -> Result<(), ReplError> {
    let config = &shared.config;
    // The heartbeat's time precedes its end (a failover's loss window starts there); the
    // lease runs from the moment the request starts.
    let mut beat = shared.heartbeat(Role::Active, active.epoch);
    let end = active.db.log().durable_position();
    let lease_started = active.gate.now();
    shared
        .witness
        .renew(&config.name, active.epoch, config.lease, end)
        .map_err(|error| ReplError::Timeout(error.to_string()))?;
    active.gate.renewed(lease_started, config.lease);
    beat.serving = true;
    beat.end = end;
    shared.write_heartbeat(beat);
    Ok(())
}
