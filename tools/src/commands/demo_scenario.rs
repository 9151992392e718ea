//! The demo's story, told while the transport delivers: `b` joins as `a`'s passive copy;
//! the copy status; a planned move to `b`; a lossy failover back to `a` (the replication
//! network to `a` is cut, `b` runs ahead and is killed) with the dumpster resubmitting
//! what the new active lacks; `b` coming back as a resynchronised passive copy; and, once
//! delivery stopped, the passive catching up and proved equal to the active.

use super::demo_replicate::{wait_until, Cluster, DIAL, NODES};
use super::demo_write::Transport;
use super::repl_status;
use crate::exit::ToolError;
use crate::output;
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::log::LogPosition;
use bluejet_replication::cluster::requests::{request_move, MoveResult};
use bluejet_replication::cluster::{resync, FailoverReport, NodeStatus, Role};
use bluejet_replication::dumpster::ResubmitReport;
use bluejet_replication::verify::{differences, digest, ContentDigest};
use bluejet_replication::{CopyState, CopyStatus, Replica};
use serde_json::{json, Value};
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
    pub fn json(&self) -> Value {
        let events = self.events.lock().expect("timeline");
        Value::Array(
            events
                .iter()
                .map(|(at, text)| json!({ "seconds": at, "event": text }))
                .collect(),
        )
    }
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

/// The failover.
pub struct FailedOver {
    /// The new active's report.
    pub report: FailoverReport,
    /// The active's log end when the replication network was cut.
    pub cut_at: LogPosition,
    /// What the copy had replayed then.
    pub copied: LogPosition,
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
    pub divergence: Option<Value>,
}

/// The story up to stopping delivery.
pub struct Story {
    /// From `b`'s start to a Healthy copy.
    pub seeded: Duration,
    /// `b`'s copy status while mail flows.
    pub status: CopyStatus,
    /// The move to `b`.
    pub moved: Moved,
    /// The failover back to `a`.
    pub failed_over: FailedOver,
    /// `b`'s return.
    pub resynchronized: Resynchronized,
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
/// once `b` is a Healthy passive copy again and at least `messages` were delivered.
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
        "b: seeded by a while mail flows; a Healthy passive copy after {:.2} s",
        seeded.as_secs_f64()
    ));
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
    let failed_over = fail_over(cluster, transport, timeline)?;
    let resynchronized = restart_b(cluster, timeline, failed_over.report.epoch)?;
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
        moved,
        failed_over,
        resynchronized,
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

/// Cuts `a`'s replication network, lets `b` run ahead, kills `b`, waits for `a`'s
/// automatic failover and resubmits the dumpster's messages of the loss window.
fn fail_over(
    cluster: &Cluster,
    transport: &Transport<'_>,
    timeline: &Timeline,
) -> Result<FailedOver, ToolError> {
    let b = cluster
        .node(1)
        .ok_or_else(|| ToolError::Failure("b is not running".into()))?;
    let end = || b.status().end.unwrap_or_default();
    let copied = cluster
        .copy(0)
        .map_or_else(LogPosition::default, |copy| copy.replayed_position);
    cluster.link(0).set_cut(true);
    let cut_at = end();
    timeline.note(format!(
        "network: the replication network to a is cut (heartbeats still pass): b's log ends at \
         {cut_at}, a's copy has replayed it up to {copied}"
    ));
    // A few generations, or (when mail trickles in) whatever came in a while.
    let cut = Instant::now();
    wait_until("b to run ahead of its copy", STEP, || {
        let now = end();
        now.generation >= cut_at.generation + RUN_AHEAD
            || (cut.elapsed() >= RUN_AHEAD_AT_MOST && now > cut_at)
    })?;
    drop(b);
    let killed_at = cluster
        .node(1)
        .and_then(|b| b.status().end)
        .unwrap_or_default();
    cluster.kill(1);
    timeline.note(format!(
        "b: killed while active at {killed_at}, {} after the cut",
        output::plural(
            u64::from(killed_at.generation - cut_at.generation),
            "generation"
        )
    ));
    let outage = wait_until("a to take over automatically", STEP, || {
        cluster.serving() == Some(0)
    })?;
    let a = cluster
        .node(0)
        .ok_or_else(|| ToolError::Failure("a is not running".into()))?;
    let report = a
        .failovers()
        .pop()
        .ok_or_else(|| ToolError::Failure("a serves without a failover report".into()))?;
    drop(a);
    timeline.note(format!(
        "a: automatic failover from b, serving {} ms after the kill: {} (dial {DIAL:?}), epoch {}",
        outage.as_millis(),
        loss_text(&report),
        report.epoch
    ));
    cluster.link(0).set_cut(false);
    // Without a loss window, from what the passive was last known to have replayed.
    let window_start = report
        .lost_window_micros
        .map_or_else(|| transport.trimmed_through(), |(start, _)| start);
    let resubmitted = transport.resubmit(0, window_start)?;
    timeline.note(format!(
        "dumpster: resubmitted {} delivered since {}: {} stored (lost by the failover), {} \
         dropped as duplicates",
        output::plural(resubmitted.resubmitted, "message"),
        output::time(resubmitted.resubmitted_from_micros),
        resubmitted.stored,
        resubmitted.duplicates
    ));
    Ok(FailedOver {
        report,
        cut_at,
        copied,
        killed_at,
        outage,
        resubmitted,
    })
}

/// The loss of a failover, in words.
pub fn loss_text(report: &FailoverReport) -> String {
    match (report.lost_generations, report.lost_window_micros) {
        (Some((first, last)), Some((start, end))) => format!(
            "lossy, generations {first}..{last} lost, a loss window of {:.2} s",
            end.saturating_sub(start) as f64 / 1e6
        ),
        (Some((first, last)), None) => format!("lossy, generations {first}..{last} lost"),
        _ => "lossless".to_owned(),
    }
}

/// Restarts `b`: it rejoins as `a`'s passive copy, resynchronising.
fn restart_b(
    cluster: &Cluster,
    timeline: &Timeline,
    epoch: u64,
) -> Result<Resynchronized, ToolError> {
    cluster.start(1)?;
    timeline.note("b: restarted".to_owned());
    let restarted = Instant::now();
    let mut states: Vec<(f64, String)> = Vec::new();
    let healthy_after = wait_until("b to resynchronise as a healthy passive copy", STEP, || {
        // One look at the node, so that the last state recorded is the one that ends the wait.
        let status = cluster.node(1).map(|node| node.status());
        let (state, healthy) = match status {
            Some(NodeStatus {
                role: Role::Passive,
                copy: Some(copy),
                ..
            }) => (
                format!("passive, {:?}", copy.state),
                copy.state == CopyState::Healthy && copy.copy_queue == 0 && copy.replay_queue == 0,
            ),
            Some(status) => (format!("{:?}", status.role).to_lowercase(), false),
            None => ("starting".to_owned(), false),
        };
        if states.last().is_none_or(|(_, last)| *last != state) {
            states.push((restarted.elapsed().as_secs_f64(), state));
        }
        healthy
    })?;
    let path = resync::report_path(&cluster.instance(1), epoch);
    let divergence = bluejet_replication::sealed::read::<Value>(&OsFileSystem, &path)
        .ok()
        .flatten()
        .map(|sealed| sealed.get("content").cloned().unwrap_or(sealed));
    let transitions: Vec<String> = states
        .iter()
        .map(|(at, state)| format!("{state} ({at:.2} s)"))
        .collect();
    timeline.note(format!("b: {}", transitions.join(" → ")));
    timeline.note(format!(
        "b: {}",
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
pub fn divergence_text(report: &Value, path: &std::path::Path) -> String {
    let files = report["files"].as_array().cloned().unwrap_or_default();
    let commits: u64 = files
        .iter()
        .filter_map(|file| file["commits"].as_u64())
        .sum();
    let generations: Vec<u64> = files
        .iter()
        .filter_map(|file| file["generation"].as_u64())
        .collect();
    let range = match (generations.iter().min(), generations.iter().max()) {
        (Some(first), Some(last)) => format!(" (generations {first}..{last})"),
        _ => String::new(),
    };
    format!(
        "{} after common generation {} kept aside{range}, holding {} the new active never had, \
         in {}",
        output::plural(files.len() as u64, "divergent log file"),
        report["common_generation"],
        output::plural(commits, "commit"),
        path.parent().unwrap_or(path).display()
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
