//! The demo's story, told while the transport delivers: `b` joins as `a`'s passive copy
//! over TCP and follows its log in block mode, `a` committing synchronously; the copy
//! status; a planned move to `b`; `b` killed while committing synchronously, and a lossless
//! failover to `a` (the dumpster's resubmission finds nothing missing); `b` back as a
//! passive copy; the network cut, `a` degrading to asynchronous commit and running ahead
//! before it is killed, and a lossy failover to `b` with the dumpster resubmitting what
//! the new active lacks; `a` back as a resynchronised passive copy, its lost-mail report
//! shown and re-applied through `b`; and, once delivery stopped, the passive catching up and proved equal to the active.

use super::replicate::{wait_until, Cluster, DIAL, NODES, SYNC_TIMEOUT};
use super::write::Transport;
use crate::commands::repl_status;
use crate::exit::ToolError;
use crate::output;
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::LogPosition;
use bluejet_engine::DATABASE_FILE_NAME;
use bluejet_replication::cluster::block_follow::BlockModeStatus;
use bluejet_replication::cluster::requests::{request_move, MoveResult};
use bluejet_replication::cluster::resync::DivergenceReport;
use bluejet_replication::cluster::sync_commit::SyncStatus;
use bluejet_replication::cluster::{resync, FailoverReport, NodeStatus, Role};
use bluejet_replication::dumpster::ResubmitReport;
use bluejet_replication::verify::{differences, digest, ContentDigest};
use bluejet_replication::{CopyState, CopyStatus, Replica};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest wait for any one step.
const STEP: Duration = Duration::from_secs(30);
/// How long mail flows before the copy status is shown.
const SHOW_STATUS_AFTER: Duration = Duration::from_millis(1200);
/// Generations the active starts after the replication network is cut, before it is killed.
const RUN_AHEAD: u32 = 3;
/// How long the active runs ahead at most, if it wrote anything.
const RUN_AHEAD_AT_MOST: Duration = Duration::from_millis(1500);
/// The comment of the move.
pub const MOVE_COMMENT: &str = "moving to b to patch a";

/// What happened, when, as the demo tells it.
pub struct Timeline {
    started: Instant,
    quiet: bool,
    events: Mutex<Vec<(f64, String)>>,
}

impl Timeline {
    /// A timeline starting now; `quiet` keeps it off stdout (for `--json`).
    pub fn new(quiet: bool) -> Self {
        Self {
            started: Instant::now(),
            quiet,
            events: Mutex::new(Vec::new()),
        }
    }

    /// Records (and prints) an event.
    pub fn note(&self, text: String) {
        let at = self.started.elapsed().as_secs_f64();
        if !self.quiet {
            crate::out!("[{at:6.2} s] {text}");
        }
        self.events.lock().expect("timeline").push((at, text));
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The events as JSON.
    pub fn json(&self) -> Vec<TimelineEvent> {
        let events = self.events.lock().expect("timeline");
        events
            .iter()
            .map(|(at, text)| TimelineEvent {
                seconds: *at,
                event: text.clone(),
            })
            .collect()
    }
}

/// One event of the timeline in JSON: seconds since the start, and what happened.
#[derive(Serialize)]
pub struct TimelineEvent {
    seconds: f64,
    event: String,
}

/// The move.
pub struct Moved {
    /// The node's answer.
    pub result: MoveResult,
    /// The new active reports the move lossless.
    pub lossless: bool,
    /// From the request to the answer.
    pub took: Duration,
    /// From the answer to the old active being a Healthy passive copy.
    pub rejoined: Duration,
}

/// A failover.
pub struct FailedOver {
    /// The node killed (the active then).
    pub from: usize,
    /// The new active's report.
    pub report: FailoverReport,
    /// The active's log end when the step began (the network cut, or the kill when the
    /// nodes committed synchronously).
    pub cut_at: LogPosition,
    /// What the copy had replayed then.
    pub copied: LogPosition,
    /// The active's synchronous commit when it was killed: state and why.
    pub synchronous: Option<SyncStatus>,
    /// The killed active's log end.
    pub killed_at: LogPosition,
    /// From the kill to the new active admitting commits.
    pub outage: Duration,
    /// What the dumpster resubmitted, and from when.
    pub resubmitted: ResubmitReport,
}

/// The old active's return.
pub struct Resynchronized {
    /// Its role and copy state, each time they changed, with the seconds since its restart.
    pub states: Vec<(f64, String)>,
    /// From its restart to a Healthy copy.
    pub healthy_after: Duration,
    /// The report on the files it moved aside (`diverged-<epoch>/report.json`).
    pub divergence: Option<DivergenceReport>,
}

/// The story up to stopping delivery.
pub struct Story {
    /// From `b`'s start to a Healthy copy.
    pub seeded: Duration,
    /// `b`'s copy status while mail flows.
    pub status: CopyStatus,
    /// `b`'s block mode and `a`'s synchronous commit then.
    pub following: Following,
    /// The move to `b`.
    pub moved: Moved,
    /// `b` killed while committing synchronously: the lossless failover to `a`.
    pub synchronous: FailedOver,
    /// `b`'s return as `a`'s passive copy.
    pub rejoined: Resynchronized,
    /// The network cut, `a` killed: the lossy failover to `b`.
    pub failed_over: FailedOver,
    /// `a`'s return.
    pub resynchronized: Resynchronized,
    /// `a`'s divergent transactions, shown and re-applied through `b`.
    pub lost_mail: Option<super::lost_mail::LostMail>,
}

/// How the passive follows the active over the network.
pub struct Following {
    /// The passive's block mode: `block` or `file`, and why.
    pub block_mode: Option<BlockModeStatus>,
    /// The active's synchronous commit.
    pub synchronous: Option<SyncStatus>,
}

/// Starts `a`; returns once it is active.
pub fn start(cluster: &Cluster, timeline: &Timeline) -> Result<(), ToolError> {
    cluster.start(0)?;
    let took = wait_until("a to become active", STEP, || cluster.serving() == Some(0))?;
    timeline.note(format!(
        "a: active (first owner by cluster init), serving {} ms after starting",
        took.as_millis()
    ));
    Ok(())
}

/// Tells the story while `transport` delivers (about `rate` messages per second); returns
/// once `a` is a Healthy passive copy again and at least `messages` were delivered.
pub fn run(
    cluster: &Cluster,
    transport: &Transport<'_>,
    timeline: &Timeline,
    messages: u64,
    rate: f64,
) -> Result<Story, ToolError> {
    cluster.start(1)?;
    let seeded = wait_until("b to become a healthy passive copy", STEP, || {
        cluster.healthy(1)
    })?;
    timeline.note(format!(
        "b: seeded by a over TCP (mutual TLS) while mail flows; a Healthy passive copy after \
         {:.2} s",
        seeded.as_secs_f64()
    ));
    let following = follow(cluster, 0, timeline)?;
    std::thread::sleep(SHOW_STATUS_AFTER);
    let status = cluster
        .copy(1)
        .ok_or_else(|| ToolError::Failure("b is no longer a passive copy".into()))?;
    timeline.note(format!(
        "b: {}; {} delivered so far",
        repl_status::one_line(&status),
        output::plural(transport.delivered(), "message")
    ));
    let moved = move_to_b(cluster, timeline)?;
    let synchronous = synchronous_failover(cluster, transport, timeline)?;
    let rejoined = restart(cluster, timeline, 1, synchronous.report.epoch)?;
    let failed_over = cut_failover(cluster, transport, timeline)?;
    let resynchronized = restart(cluster, timeline, 0, failed_over.report.epoch)?;
    let lost_mail = super::lost_mail::show_and_reapply(
        cluster,
        timeline,
        failed_over.from,
        1 - failed_over.from,
        failed_over.report.epoch,
    )?;
    let remaining = messages.saturating_sub(transport.delivered()) as f64 / rate.max(0.1);
    let enough = STEP + Duration::from_secs_f64(remaining * 2.0);
    wait_until(
        "the transport to deliver every message asked for",
        enough,
        || transport.delivered() >= messages,
    )?;
    Ok(Story {
        seeded,
        status,
        following,
        moved,
        synchronous,
        rejoined,
        failed_over,
        resynchronized,
        lost_mail,
    })
}

/// Waits until `active` commits synchronously with its passive, which follows in block
/// mode, and the witness says so (a failover then proves it lost nothing).
fn follow(cluster: &Cluster, active: usize, timeline: &Timeline) -> Result<Following, ToolError> {
    let (name, peer) = (NODES[active], NODES[1 - active]);
    wait_until(
        &format!("{name} to commit synchronously with {peer}, as its witness renewal says"),
        STEP,
        || {
            cluster.witness_record().is_ok_and(|record| {
                record.owner == name && record.synchronous.as_deref() == Some(peer)
            })
        },
    )?;
    let block_mode = cluster
        .node(1 - active)
        .and_then(|node| node.status().block_mode);
    let synchronous = cluster
        .node(active)
        .and_then(|node| node.status().synchronous);
    timeline.note(format!(
        "{peer}: {}; {name}: {}",
        block_mode.as_ref().map_or_else(
            || "block mode unknown".to_owned(),
            |mode| format!("{} mode ({})", mode.mode, mode.reason)
        ),
        synchronous.as_ref().map_or_else(
            || "not synchronous".to_owned(),
            |sync| format!("commits {} ({})", sync.state, sync.reason)
        )
    ));
    Ok(Following {
        block_mode,
        synchronous,
    })
}

/// A planned move of the database to `b`, with a comment; `a` rejoins as its passive copy.
fn move_to_b(cluster: &Cluster, timeline: &Timeline) -> Result<Moved, ToolError> {
    timeline.note(format!(
        "operator: move the database to b (\"{MOVE_COMMENT}\")"
    ));
    let asked = Instant::now();
    let result = request_move(
        &OsFileSystem,
        &cluster.instance(0),
        NODES[1],
        MOVE_COMMENT,
        false,
        STEP,
    )?;
    let took = asked.elapsed();
    if !result.ok {
        return Err(ToolError::Failure(format!(
            "the move to b was refused: {}",
            result.message
        )));
    }
    wait_until("b to serve after the move", STEP, || {
        cluster.serving() == Some(1)
    })?;
    let lossless = cluster
        .node(1)
        .and_then(|b| b.failovers().pop())
        .is_some_and(|report| report.kind == "move" && report.lossless);
    timeline.note(format!(
        "b: active at epoch {} after the move; commits were held {} ms; {}",
        result.epoch,
        result.paused_ms,
        if lossless { "lossless" } else { "NOT lossless" }
    ));
    let rejoined = wait_until("a to become b's healthy passive copy", STEP, || {
        cluster.healthy(0)
    })?;
    timeline.note(format!(
        "a: rejoined as b's passive copy, Healthy {:.2} s after the move",
        rejoined.as_secs_f64()
    ));
    Ok(Moved {
        result,
        lossless,
        took,
        rejoined,
    })
}

/// Kills `b` while it commits synchronously with `a`: `a` takes over, and proves that it
/// lost nothing acknowledged; the dumpster's resubmission finds every message there.
fn synchronous_failover(
    cluster: &Cluster,
    transport: &Transport<'_>,
    timeline: &Timeline,
) -> Result<FailedOver, ToolError> {
    follow(cluster, 1, timeline)?;
    let end = node_end(cluster, 1);
    let copied = copied(cluster, 0);
    let synchronous = cluster.node(1).and_then(|b| b.status().synchronous);
    kill_and_take_over(cluster, transport, timeline, 1, (end, copied, synchronous))
}

/// Cuts the network while `a` is active: commits wait [`SYNC_TIMEOUT`] for `b`, then `a`
/// degrades to asynchronous commit and runs ahead of its copy; `a` is killed, `b` takes over
/// losing what it never received, and the dumpster resubmits it.
fn cut_failover(
    cluster: &Cluster,
    transport: &Transport<'_>,
    timeline: &Timeline,
) -> Result<FailedOver, ToolError> {
    follow(cluster, 0, timeline)?;
    let end = || node_end(cluster, 0);
    let copied = copied(cluster, 1);
    cluster.cut_network(true);
    let cut_at = end();
    timeline.note(format!(
        "network: cut between a and b: a's log ends at {cut_at}, b's copy has replayed it up \
         to {copied}"
    ));
    let degraded = wait_until("a to degrade to asynchronous commit", STEP, || {
        sync_state(cluster, 0).is_some_and(|sync| sync.state == "asynchronous")
    })?;
    let synchronous = sync_state(cluster, 0);
    timeline.note(format!(
        "a: commits asynchronous {} ms after the cut ({} ms timeout): {}",
        degraded.as_millis(),
        SYNC_TIMEOUT.as_millis(),
        synchronous.as_ref().map_or("", |sync| sync.reason.as_str())
    ));
    // A few generations, or (when mail trickles in) whatever came in a while.
    let cut = Instant::now();
    wait_until("a to run ahead of its copy", STEP, || {
        let now = end();
        now.generation >= cut_at.generation + RUN_AHEAD
            || (cut.elapsed() >= RUN_AHEAD_AT_MOST && now > cut_at)
    })?;
    let failed = kill_and_take_over(
        cluster,
        transport,
        timeline,
        0,
        (cut_at, copied, synchronous),
    );
    cluster.cut_network(false);
    timeline.note("network: restored".to_owned());
    failed
}

/// The log end of node `index` (the origin when it is not running).
fn node_end(cluster: &Cluster, index: usize) -> LogPosition {
    cluster
        .node(index)
        .and_then(|node| node.status().end)
        .unwrap_or_default()
}

/// What node `index`'s copy has replayed.
fn copied(cluster: &Cluster, index: usize) -> LogPosition {
    cluster
        .copy(index)
        .map_or_else(LogPosition::default, |copy| copy.replayed_position)
}

fn sync_state(cluster: &Cluster, index: usize) -> Option<SyncStatus> {
    cluster
        .node(index)
        .and_then(|node| node.status().synchronous)
}

/// Kills the active `killed`, waits for its peer's automatic failover and resubmits the
/// dumpster's messages of the loss window (without one, from what the passive was last
/// known to have: all of them are found there). `before`: the active's end and the copy's
/// when the step began, and the active's synchronous commit.
fn kill_and_take_over(
    cluster: &Cluster,
    transport: &Transport<'_>,
    timeline: &Timeline,
    killed: usize,
    before: (LogPosition, LogPosition, Option<SyncStatus>),
) -> Result<FailedOver, ToolError> {
    let (cut_at, copied, synchronous) = before;
    let (name, peer) = (NODES[killed], NODES[1 - killed]);
    let killed_at = node_end(cluster, killed);
    cluster.kill(killed);
    timeline.note(format!(
        "{name}: killed while active at {killed_at}, commits {}",
        synchronous
            .as_ref()
            .map_or("asynchronous", |sync| sync.state.as_str())
    ));
    let outage = wait_until(&format!("{peer} to take over automatically"), STEP, || {
        cluster.serving() == Some(1 - killed)
    })?;
    let report = cluster
        .node(1 - killed)
        .and_then(|node| node.failovers().pop())
        .ok_or_else(|| ToolError::Failure(format!("{peer} serves without a failover report")))?;
    timeline.note(format!(
        "{peer}: automatic failover from {name}, serving {} ms after the kill: {} (dial \
         {DIAL:?}), epoch {}",
        outage.as_millis(),
        loss_text(&report),
        report.epoch
    ));
    let window_start = report
        .lost_window_micros
        .map_or_else(|| transport.trimmed_through(), |(start, _)| start);
    let resubmitted = transport.resubmit(1 - killed, window_start)?;
    timeline.note(format!(
        "dumpster: resubmitted {} delivered since {}: {} stored (lost by the failover), {} \
         dropped as duplicates",
        output::plural(resubmitted.resubmitted, "message"),
        output::time(resubmitted.resubmitted_from_micros),
        resubmitted.stored,
        resubmitted.duplicates
    ));
    Ok(FailedOver {
        from: killed,
        report,
        cut_at,
        copied,
        synchronous,
        killed_at,
        outage,
        resubmitted,
    })
}

/// The loss of a failover, in words.
pub fn loss_text(report: &FailoverReport) -> String {
    // Without the old active's `E00.log`, the generations are those it was last known to
    // have written: it may have written more (the window covers them all).
    let at_least = if report.current_unread {
        "at least "
    } else {
        ""
    };
    match (report.lost_generations, report.lost_window_micros) {
        (Some((first, last)), Some((start, end))) => format!(
            "lossy, {at_least}generations {first}..{last} lost, a loss window of {:.2} s",
            end.saturating_sub(start) as f64 / 1e6
        ),
        (Some((first, last)), None) => {
            format!("lossy, {at_least}generations {first}..{last} lost")
        }
        _ if report.synchronous_proof.is_some() => "lossless, proved by synchronous commit".into(),
        _ => "lossless".to_owned(),
    }
}

/// Restarts node `index`, a killed active: it rejoins as its peer's passive copy,
/// resynchronising (or seeded again).
fn restart(
    cluster: &Cluster,
    timeline: &Timeline,
    index: usize,
    epoch: u64,
) -> Result<Resynchronized, ToolError> {
    let name = NODES[index];
    cluster.start(index)?;
    timeline.note(format!("{name}: restarted"));
    let restarted = Instant::now();
    let mut states: Vec<(f64, String)> = Vec::new();
    let healthy_after = wait_until(
        &format!("{name} to resynchronise as a healthy passive copy"),
        STEP,
        || {
            // One look at the node, so that the last state recorded is the one that ends the wait.
            let status = cluster.node(index).map(|node| node.status());
            let (state, healthy) = match status {
                Some(NodeStatus {
                    role: Role::Passive,
                    copy: Some(copy),
                    ..
                }) => (
                    format!("passive, {:?}", copy.state),
                    copy.state == CopyState::Healthy
                        && copy.copy_queue == 0
                        && copy.replay_queue == 0,
                ),
                Some(status) => (format!("{:?}", status.role).to_lowercase(), false),
                None => ("starting".to_owned(), false),
            };
            if states.last().is_none_or(|(_, last)| *last != state) {
                states.push((restarted.elapsed().as_secs_f64(), state));
            }
            healthy
        },
    )?;
    let path = resync::report_path(&cluster.instance(index), epoch);
    let divergence = bluejet_replication::sealed::read::<DivergenceReport>(&OsFileSystem, &path)
        .ok()
        .flatten();
    let transitions: Vec<String> = states
        .iter()
        .map(|(at, state)| format!("{state} ({at:.2} s)"))
        .collect();
    timeline.note(format!("{name}: {}", transitions.join(" → ")));
    timeline.note(format!(
        "{name}: {}",
        divergence.as_ref().map_or_else(
            || "no divergent files".to_owned(),
            |report| divergence_text(report, &path)
        )
    ));
    Ok(Resynchronized {
        states,
        healthy_after,
        divergence,
    })
}

/// The divergence report, in words.
pub fn divergence_text(report: &DivergenceReport, path: &std::path::Path) -> String {
    let files = &report.files;
    let commits: u64 = files.iter().map(|file| file.commits).sum();
    let generations: Vec<u32> = files.iter().filter_map(|file| file.generation).collect();
    let range = match (generations.iter().min(), generations.iter().max()) {
        (Some(first), Some(last)) => format!(" (generations {first}..{last})"),
        _ => String::new(),
    };
    let after = match report.common_generation {
        Some(common) => format!("after common generation {common}"),
        // Block mode's copies of the generations differ from the old active's files byte
        // for byte, so no common generation is proved: the copy was seeded again.
        None => "(no common generation proved: seeded again)".to_owned(),
    };
    // A database file kept aside means the copy could not continue from it: it was seeded
    // again (its checkpoint holds commits after the common point, say).
    let aside = path.parent().unwrap_or(path);
    let reseeded = match aside.join(DATABASE_FILE_NAME).exists() {
        true => format!(
            "; seeded again: {}",
            match report.reason.as_str() {
                "" => "no usable copy",
                reason => reason,
            }
        ),
        false => String::new(),
    };
    format!(
        "{} {after} kept aside{range}, holding {} the new active never had, in {}{reseeded}",
        output::plural(files.len() as u64, "divergent log file"),
        output::plural(commits, "commit"),
        aside.display()
    )
}

/// The passive copy, caught up and compared with the active.
pub struct Compared {
    /// The index of the node active at the end.
    pub active: usize,
    /// The active's log end after its last roll, which the copy replayed.
    pub position: LogPosition,
    /// From the last roll to the copy having replayed it.
    pub catch_up: Duration,
    /// The copy's status then.
    pub status: CopyStatus,
    /// Tables compared.
    pub tables: usize,
    /// Entries compared.
    pub entries: u64,
    /// Tables whose content differs (nothing, when the copy is sound).
    pub differences: Vec<String>,
}

/// With delivery stopped: closes the active's generation, waits for the passive copy to
/// replay it, stops both nodes cleanly and compares the copy's content with the active's.
pub fn finish(cluster: &Cluster, timeline: &Timeline) -> Result<Compared, ToolError> {
    let (active, passive) = match cluster.serving() {
        Some(active) => (active, 1 - active),
        None => return Err(ToolError::Failure("no node is active at the end".into())),
    };
    let node = cluster.node(active).expect("serving");
    let rolled = Instant::now();
    let (position, expected) = node
        .with_database(|db| -> Result<(LogPosition, ContentDigest), ToolError> {
            db.log().roll()?;
            let read = db.begin_read()?;
            Ok((read.end(), digest(&read)?))
        })
        .ok_or_else(|| ToolError::Failure("the active node stopped".into()))??;
    drop(node);
    wait_until(
        "the passive copy to replay the last generation",
        STEP,
        || {
            cluster
                .copy(passive)
                .is_some_and(|copy| copy.replayed_position >= position)
        },
    )?;
    let catch_up = rolled.elapsed();
    let status = cluster.copy(passive).unwrap_or_default();
    timeline.note(format!(
        "{}: caught up {} ms after the last roll: {}",
        NODES[passive],
        catch_up.as_millis(),
        repl_status::one_line(&status)
    ));
    cluster.stop(passive);
    cluster.stop(active);
    timeline.note("a and b: stopped cleanly".to_owned());
    let mut replica = Replica::open(cluster.config(passive).replica_config())?;
    let found = (|| -> Result<ContentDigest, ToolError> {
        replica.catch_up(position, STEP)?;
        let copy = replica
            .passive()
            .ok_or_else(|| ToolError::Failure("the passive copy could not be opened".into()))?;
        let read = copy.begin_read()?;
        Ok(digest(&read)?)
    })();
    replica.close(CopyState::Disabled, "stopped after the demo")?;
    let found = found?;
    Ok(Compared {
        active,
        position,
        catch_up,
        status,
        tables: expected.len(),
        entries: expected.values().map(|table| table.entries).sum(),
        differences: differences(&expected, &found),
    })
}
