//! Failover: the passive takes the database when the active stopped, within what the
//! mount dial allows; and taking over after a planned move.
//!
//! Order: the witness must show the old owner's lease ended (plus the clock skew); the
//! replication service stops; the generations the old active closed are copied if its
//! directory is still readable (and inspected); the loss is measured against the old
//! active's last heartbeat; the dial (or an operator's forced mount) decides; only then is
//! the witness taken at a new epoch, every inspected generation replayed, and the copy
//! activated on a timeline equal to that epoch.

use super::heartbeat::Role;
use super::loss::{self, Loss, LossFacts};
use super::measured::{self, Measured};
use super::node::{ActiveState, NodeState, Shared};
use super::requests;
use super::witness::{WitnessError, WitnessRecord};
use crate::error::ReplError;
use crate::generation_file::{current_commits, read_header};
use crate::layout::ReplicaLayout;
use crate::replay::replay_available;
use crate::replica::Replica;
use crate::status::CopyState;
use bluejet_engine::log::now_micros;
use bluejet_engine::LogPosition;
use bluejet_engine::PassiveDatabase;
use serde::Serialize;
use std::time::Instant;

/// What a failover or a move did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailoverReport {
    /// `failover` or `move`.
    pub kind: String,
    /// The node that held the database before.
    pub from: String,
    /// The new epoch (and timeline).
    pub epoch: u64,
    /// No committed generation was lost.
    pub lossless: bool,
    /// The generations lost (first, last), if any.
    pub lost_generations: Option<(u32, u32)>,
    /// The time window whose commits may be lost (µs since the Unix epoch, the old
    /// active's clock): from the start of the last generation copied, or the old active's
    /// last known log end when that is later and inside a generation copied, to the old
    /// owner's lease end. A lossy failover always has one: the dumpster resubmits from its
    /// start.
    pub lost_window_micros: Option<(u64, u64)>,
    /// The old active's current generation (`E00.log`) could not be read: the failover is
    /// lossy even if everything it last said it had was copied (it may have rolled and
    /// committed since), and `lost_generations` is a lower bound; the window bounds the loss.
    pub current_unread: bool,
    /// Block mode: the loss starts at this position of the old active's log (the copy held
    /// everything before it); the first generation of `lost_generations` is partly lost.
    pub lost_from: Option<LogPosition>,
    /// Why a failover is lossless although the old active's current generation could not
    /// be read: synchronous commit (see `cluster::sync_commit`).
    pub synchronous_proof: Option<String>,
    /// An operator forced the mount past the dial.
    pub forced: bool,
    /// The content position the new active started from.
    pub position: LogPosition,
    /// Milliseconds from the decision to the database being open.
    pub activation_ms: u64,
}

/// Tries a failover now; does nothing while the old owner's lease may still be valid, the
/// witness cannot be reached (no quorum), or the dial refuses.
pub(crate) fn attempt(shared: &Shared) -> Result<(), ReplError> {
    let Ok(Some(record)) = shared.witness.read() else {
        return Ok(());
    };
    // Judged on this node's monotonic clock, from when it first saw the record: never by
    // comparing the old owner's wall clock with this node's.
    if record.owner != shared.config.name && !shared.witness.lease_over(&record) {
        return Ok(());
    }
    // An operator suspended this copy: it is not activated automatically (ESE's
    // activation-suspended copy), nor is anything shipped for it; a forced mount may.
    let suspension = suspended(shared);
    let forced_early = suspension.is_some() && requests::take_mount(shared);
    if let Some(why) = suspension.filter(|_| !forced_early) {
        let message =
            format!("mount refused: {why}; an operator may resume the copy or force the mount");
        note_refusal(shared, message);
        return Ok(());
    }
    stop_service(shared);
    let measured = (|| {
        let mut replica = Replica::open(shared.config.replica_config())?;
        copy_last_generations(&mut replica);
        let (held, covered) = super::block_salvage::salvage(shared, &mut replica);
        // Held in part only: a generation taken whole leaves nothing of it to lose.
        let partial = held.filter(|held| *held == covered);
        let loss = measure(shared, &replica, &record, partial);
        // A copy that cannot replay what it holds (a content mismatch at a proof point, a
        // damaged generation) would fail its activation after taking the witness, leaving
        // nothing serving (found by an adversarial round): it is replayed first.
        replica.replay();
        let damaged = replica.board().replay_failure();
        let closed = replica.close(CopyState::Disabled, "failing over");
        // A copy whose replay failed is poisoned: its checkpoint fails too, and the
        // refusal below says why.
        if damaged.is_none() {
            closed?;
        }
        Ok::<_, ReplError>((loss, covered, damaged))
    })();
    let (loss, covered, damaged) = match measured {
        Ok(measured) => measured,
        Err(error) => {
            // Replication goes on while the failover cannot proceed.
            restart_service(shared)?;
            return Err(error);
        }
    };
    let forced = forced_early || requests::take_mount(shared);
    // Not even by force: such a copy either cannot activate (it would hold the witness
    // without serving) or would serve content known to differ from the active's (found by
    // an adversarial round).
    if let Some(why) = damaged {
        let message = format!(
            "mount refused{}: the copy cannot be brought up to date ({why}); it needs a \
             reseed from a sound copy",
            if forced { " although forced" } else { "" }
        );
        return refuse_because(shared, message);
    }
    let allowed = shared.config.dial.allowed();
    // Synchronous commit with this node, as the record read says (checked again, final,
    // once this node's epoch exists): nothing acknowledged is lost, whatever the dial.
    let claimed = record.synchronous.as_deref() == Some(shared.config.name.as_str())
        && covered >= shared.block_mode.lock().acknowledged.unwrap_or_default();
    if loss.generations() > allowed && !forced && !claimed {
        return refuse(shared, &loss, allowed);
    }
    // The measurement is on disk before the witness is asked: a crash after the witness
    // was taken must not forget what the failover lost (see `measured`).
    let fs = shared.config.options.log.file_system.as_ref();
    let instance = &shared.config.instance;
    // `acquire` may wait out a late renewal (a full lease and the margin) before it
    // returns: a crash in that wait must not leave a window ending too early.
    let mut loss = loss;
    if let Some((_, end)) = &mut loss.window {
        let granted = record
            .lease_until_micros
            .saturating_sub(record.updated_micros);
        let margin = u64::try_from(shared.config.skew.as_micros()).unwrap_or(u64::MAX);
        *end = (*end).max(now_micros() + granted + margin);
    }
    let measured = Measured::new(&record.owner, record.epoch, &loss, forced, nonce());
    if let Err(error) = measured::write(fs, instance, &measured) {
        restart_service(shared)?;
        return Err(error);
    }
    // The new lease runs from the moment the request starts (the gate's monotonic clock).
    let lease_started = Instant::now();
    let acquired =
        (shared.witness).acquire(&shared.config.name, shared.config.lease, &measured.comment);
    match acquired {
        Ok(new) => {
            // `acquire` may have waited out a renewal that landed after the record was read:
            // the old owner could commit until then, so the window ends no earlier.
            let mut measured = measured;
            if let Some((_, end)) = &mut measured.window {
                *end = (*end).max(now_micros());
            }
            if let Some(proof) = synchronous_proof(shared, &record, covered) {
                // Best effort: a crash before this write reports the lossy measurement,
                // whose resubmission is harmless.
                let proven = measured.proven_lossless(&proof);
                if measured::write(fs, instance, &proven).is_ok() {
                    measured = proven;
                }
            }
            take_over(shared, new, Some(lease_started), Some(measured))
        }
        // Refused: this node's epoch is not the current one (if its file was created at
        // all), so the measurement names no epoch that will ever be taken over.
        Err(WitnessError::Held(_)) => {
            measured::remove(fs, instance)?;
            restart_service(shared)
        }
        // The epoch file may have been created before the error (a failed sync, a failed
        // re-read): the witness may name this node owner at the next round, whose takeover
        // needs the measurement. It is kept (found by an adversarial test).
        Err(WitnessError::Unreachable(_)) => restart_service(shared),
    }
}

/// The proof that the failover lost no acknowledged commit, if there is one: the old
/// owner's last renewal that counted (final once this node's epoch exists) claimed
/// synchronous commit with this node, and the copy holds everything this node acknowledged
/// to it.
fn synchronous_proof(
    shared: &Shared,
    record: &WitnessRecord,
    covered: LogPosition,
) -> Option<String> {
    let claim = shared.witness.final_claim(record.epoch).ok()??;
    if claim != shared.config.name {
        return None;
    }
    let acknowledged = shared.block_mode.lock().acknowledged.unwrap_or_default();
    (covered >= acknowledged).then(|| {
        format!(
            "synchronous commit: {} acknowledged only what this node confirmed (its last \
             renewal at epoch {} says so), and the copy holds everything before {covered}, \
             at or after the last position confirmed, {acknowledged}",
            record.owner, record.epoch
        )
    })
}

/// A nonce naming one acquisition: the time and the process.
fn nonce() -> u64 {
    (now_micros() << 16) ^ u64::from(std::process::id())
}

/// Activates this node's copy at `record`'s epoch: after a failover (`failed`: its
/// measurement; without it, one persisted for this epoch is used) or as the target of a
/// move. `lease_started`:
/// when this node started the request that granted `record`'s lease (monotonic); without
/// it (a lease granted by the peer's transfer) the lease is renewed once the database is
/// open, and commits wait for that.
pub(crate) fn take_over(
    shared: &Shared,
    record: WitnessRecord,
    lease_started: Option<Instant>,
    failed: Option<Measured>,
) -> Result<(), ReplError> {
    let started = Instant::now();
    // The epoch this node takes is one it has seen, before it serves at it: a witness
    // restored from an older copy is refused from now on (found by an adversarial round:
    // a node active at epoch 4 had recorded 3).
    shared.seen.observe(record.epoch, "this node's own epoch")?;
    let failed = match failed {
        Some(failed) => Some(failed),
        None => persisted_measurement(shared, &record),
    };
    stop_service(shared);
    {
        let mut replica = Replica::open(shared.config.replica_config())?;
        copy_last_generations(&mut replica);
        replica.close(CopyState::Disabled, "activating")?;
    }
    let layout = ReplicaLayout::new(&shared.config.instance);
    let gate = shared.new_gate();
    if let Some(started) = lease_started {
        gate.renewed(started, shared.config.lease);
    }
    let options = shared.gated_options(&gate, record.epoch);
    let fs = shared.config.options.log.file_system.as_ref();
    bluejet_engine::db::write_retention_marker(
        fs,
        &layout.database(),
        &format!(
            "cluster node {} (its peer replays this log)",
            shared.config.name
        ),
    )?;
    let current = layout.database().join(options.log.base_name.current());
    let (db, position) = if fs.exists(&current) {
        // Activated already (a crash came before the identity was retired): open it.
        let db = bluejet_engine::Database::open(&layout.database(), options)?;
        let position = db.begin_read()?.end();
        (db, position)
    } else {
        let passive = PassiveDatabase::open(&layout.database(), &layout.logs(), options)?;
        let fs = shared.config.options.log.file_system.as_ref();
        replay_available(
            &passive,
            fs,
            &layout.logs(),
            shared.config.options.log.base_name,
        )?;
        let position = passive.replayed();
        (passive.activate(record.epoch)?, position)
    };
    if lease_started.is_none() {
        // A lease granted by the peer's transfer: this node's own lease starts with its
        // own request. A failed renewal is retried by the next round of the loop.
        let config = &shared.config;
        let started = gate.now();
        let end = db.log().durable_position();
        let renewed = shared
            .witness
            .renew(&config.name, record.epoch, config.lease, end);
        if renewed.is_ok() {
            gate.renewed(started, config.lease);
        }
    }
    // The report is in the event log before the measurement is removed: a crash in
    // between reports it again on restart (resubmitting is idempotent), never not at all.
    let report = report(shared, &record, failed, position, started);
    shared.event(&report.kind, Some(record.epoch), &describe(&report));
    shared.failovers.lock().push(report);
    retire_identity(shared, &layout)?;
    measured::remove(fs, &shared.config.instance)?;
    super::block_salvage::forget_partial(shared)?;
    // Acknowledgements of block mode are of the stream this node holds from now on.
    shared.blocks.reset();
    super::node::change_state(
        &mut shared.state.write(),
        NodeState::Active(ActiveState {
            db,
            gate,
            epoch: record.epoch,
            rolled_when_fenced: std::sync::atomic::AtomicBool::new(false),
            retention: Default::default(),
        }),
    );
    Ok(())
}

fn report(
    shared: &Shared,
    record: &WitnessRecord,
    failed: Option<Measured>,
    position: LogPosition,
    started: Instant,
) -> FailoverReport {
    let failed_proof = failed.as_ref().and_then(|measured| measured.proof.clone());
    let (kind, from, loss, forced) = match failed {
        Some(measured) => (
            "failover",
            measured.from.clone(),
            Some(measured.loss()),
            measured.forced,
        ),
        None => ("move", shared.config.peer.clone(), None, false),
    };
    FailoverReport {
        kind: kind.into(),
        from,
        epoch: record.epoch,
        lossless: loss.is_none_or(|loss| loss.lost.is_none() && loss.window.is_none()),
        lost_generations: loss.and_then(|loss| loss.lost),
        lost_window_micros: loss.and_then(|loss| loss.window),
        current_unread: loss.is_some_and(|loss| loss.current_unread),
        lost_from: loss.and_then(|loss| loss.from),
        synchronous_proof: failed_proof,
        forced,
        position,
        activation_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// The measurement persisted by the failover that created `record`'s epoch, if this node
/// made one. One that cannot be read still says a failover happened: its loss is taken as
/// everything the dumpster holds (a window from 0), which resubmits harmlessly.
/// The measurement persisted by the failover that created `record`'s epoch, if this node
/// made one. An epoch whose witness comment says this node took it in a failover
/// ([`Measured::names_failover`]) is always reported as one: when its measurement cannot be
/// read, or is gone (removed by hand, lost), its loss is taken as everything the dumpster
/// holds (a window from 0), which resubmits harmlessly; never as a lossless move.
fn persisted_measurement(shared: &Shared, record: &WitnessRecord) -> Option<Measured> {
    let fs = shared.config.options.log.file_system.as_ref();
    let instance = &shared.config.instance;
    let problem = match measured::read_for(fs, instance, &record.comment) {
        Ok(Some(measured)) => return Some(measured),
        Ok(None) if !Measured::names_failover(&record.comment) => return None,
        Ok(None) => "is missing".to_owned(),
        Err(error) => format!("cannot be read ({error})"),
    };
    let message = format!(
        "the measurement of the failover that took epoch {} ({}) {problem}: the whole \
         dumpster is resubmitted",
        record.epoch, record.comment
    );
    shared.event(
        "failover-measurement-unreadable",
        Some(record.epoch),
        &message,
    );
    let loss = Loss {
        lost: None,
        window: Some((0, now_micros())),
        current_unread: true,
        from: None,
    };
    Some(Measured::new("unknown", 0, &loss, false, 0))
}

fn describe(report: &FailoverReport) -> String {
    if report.lossless {
        let proof = report
            .synchronous_proof
            .as_ref()
            .map_or(String::new(), |proof| format!(" ({proof})"));
        return format!(
            "{} from {}: lossless{proof}, at {:?}",
            report.kind, report.from, report.position
        );
    }
    let generations = match (report.lost_generations, report.lost_from) {
        (Some((_, last)), Some(from)) => {
            format!("everything after {from} (held here from block mode) through generation {last}")
        }
        (Some((first, last)), None) => format!("generations {first}..{last}"),
        (None, _) => "unknown generations".to_owned(),
    };
    // The window in µs, in the event log (durable): what a transport resubmits from, even
    // if it reads it only after this process is gone.
    let window = report
        .lost_window_micros
        .map_or(String::new(), |(start, end)| {
            format!("; window {start}..{end} µs")
        });
    format!(
        "{} from {}: lossy, {generations}{} lost{}{window}",
        report.kind,
        report.from,
        if report.current_unread {
            " at least (its current generation could not be read)"
        } else {
            ""
        },
        if report.forced {
            " (forced by an operator)"
        } else {
            ""
        }
    )
}

/// Ships and inspects until nothing more comes (the old active's last closed generations,
/// if its directory is still readable).
fn copy_last_generations(replica: &mut Replica) {
    for _ in 0..64 {
        let before = replica.board().inspected_through();
        replica.ship();
        replica.inspect();
        if replica.board().inspected_through() == before {
            return;
        }
    }
}

/// What is lost ([`loss::measure`]), from what this node knows of the old active: its last
/// heartbeat, the witness's record, its `E00.log` if readable, and the copy here.
fn measure(
    shared: &Shared,
    replica: &Replica,
    record: &WitnessRecord,
    held: Option<LogPosition>,
) -> Loss {
    let inspected = replica.board().inspected_through();
    let peer = shared.peer.lock().clone();
    let beat = peer
        .map(|(beat, _)| beat)
        .filter(|beat| beat.role == Role::Active && beat.node == record.owner);
    let base = shared.config.options.log.base_name;
    let current = current_commits(
        shared.config.peer_fs.as_ref(),
        &shared.config.peer_database(),
        base,
    );
    let layout = ReplicaLayout::new(&shared.config.instance);
    let path = layout.logs().join(base.closed(inspected));
    let fs = shared.config.options.log.file_system.as_ref();
    loss::measure(&LossFacts {
        inspected,
        heartbeat: beat.as_ref(),
        record,
        current,
        inspected_created_micros: read_header(fs, &path).ok().map(|h| h.created_micros),
        held,
    })
}

/// Why this copy must not be activated automatically, if an operator suspended it (or its
/// control file cannot be read: an error is never taken for "not suspended").
fn suspended(shared: &Shared) -> Option<String> {
    let fs = shared.config.options.log.file_system.as_ref();
    let layout = ReplicaLayout::new(&shared.config.instance);
    match crate::control::Control::read(fs, &layout) {
        Ok(control) if control.suspended => {
            Some(format!("the copy is suspended ({})", control.comment))
        }
        Ok(_) => None,
        Err(error) => Some(format!("the copy's control file cannot be read ({error})")),
    }
}

fn refuse(shared: &Shared, loss: &Loss, allowed: u32) -> Result<(), ReplError> {
    let message = format!(
        "mount refused: {} generations would be lost ({:?}), the dial {:?} allows {allowed}; \
         an operator may force the mount",
        loss.generations(),
        loss.lost,
        shared.config.dial
    );
    refuse_because(shared, message)
}

fn refuse_because(shared: &Shared, message: String) -> Result<(), ReplError> {
    restart_service(shared)?;
    note_refusal(shared, message);
    Ok(())
}

/// Records a refused mount (the event once while the reason stays the same).
fn note_refusal(shared: &Shared, message: String) {
    let repeated = matches!(&*shared.state.read(), NodeState::Passive(p) if p.refusal.as_deref() == Some(&message));
    if !repeated {
        shared.event("mount-refused", None, &message);
    }
    if let NodeState::Passive(passive) = &mut *shared.state.write() {
        passive.refusal = Some(message);
    }
}

fn stop_service(shared: &Shared) {
    stop_service_because(shared, "the replication service stopped");
}

/// Stops the passive's replication service (if it runs), its final status saying `why`.
pub(crate) fn stop_service_because(shared: &Shared, why: &str) {
    let service = match &mut *shared.state.write() {
        NodeState::Passive(passive) => passive.service.take(),
        _ => None,
    };
    if let Some(service) = service {
        if let Err(error) = service.stop_because(why) {
            tracing::warn!(%error, "stopping the replication service");
        }
    }
}

pub(crate) fn restart_service(shared: &Shared) -> Result<(), ReplError> {
    let service = crate::service::ReplicationService::start(shared.config.replica_config())?;
    if let NodeState::Passive(passive) = &mut *shared.state.write() {
        passive.service = Some(service);
    }
    Ok(())
}

/// The node is no longer a replica: its identity and copy status are removed (the event
/// log keeps the history), so a restart opens the database as the active's.
fn retire_identity(shared: &Shared, layout: &ReplicaLayout) -> Result<(), ReplError> {
    let fs = shared.config.options.log.file_system.as_ref();
    for path in [layout.identity(), layout.status(), layout.control()] {
        if fs.exists(&path) {
            fs.remove(&path)
                .map_err(|error| ReplError::io(&path, "removing", error))?;
        }
    }
    fs.sync_directory(&layout.root)
        .map_err(|error| ReplError::io(&layout.root, "syncing", error))
}
