//! `bluejet demo --json`: the whole run as one document — the mail delivered and checked,
//! then the cluster's story (move, failovers, returns, the passive copy compared).

use super::lost_mail::{self, LostMailJson};
use super::replicate::NODES;
use super::report::{logical_and_stored, mib, per_second};
use super::run::{synchronous_problems, Run};
use super::scenario::{self, FailedOver, Timeline, TimelineEvent, MOVE_COMMENT};
use crate::commands::integrity as integrity_command;
use crate::problem::verdict_line;
use bluejet_engine::format::inspect::{IntegrityReport, SpaceReport};
use bluejet_engine::log::LogPosition;
use bluejet_replication::cluster::block_follow::BlockModeStatus;
use bluejet_replication::cluster::resync::DivergenceReport;
use bluejet_replication::cluster::sync_commit::SyncStatus;
use bluejet_replication::CopyState;
use serde::Serialize;
use std::path::Path;

/// The demo's document: what was delivered, read back and checked; the story's fields
/// follow at the same level.
#[derive(Serialize)]
pub(super) struct DemoDocument<'a> {
    kind: &'static str,
    directory: String,
    nodes: [&'static str; 2],
    active_database: String,
    seconds: f64,
    timeline: Vec<TimelineEvent>,
    messages_delivered: u64,
    message_bytes: u64,
    delivered_by: DeliveredBy,
    retries: u64,
    longest_wait_ms: u64,
    delivering_seconds: f64,
    messages_per_second: f64,
    mib_per_second: f64,
    messages_acknowledged: usize,
    messages_read: u64,
    messages_identical: u64,
    lost: u64,
    duplicates: u64,
    index_entries_matching: u64,
    verified: bool,
    reopen_seconds: f64,
    transactions_replayed: u64,
    check_seconds: f64,
    logical_bytes: u64,
    stored_bytes: u64,
    file_bytes: u64,
    log_generations: usize,
    integrity: &'a IntegrityReport,
    space: &'a SpaceReport,
    problems: Vec<String>,
    unreported_problems: u64,
    passed: bool,
    verdict: String,
    #[serde(flatten)]
    story: StoryJson<'a>,
}

/// Messages delivered through each node.
#[derive(Serialize)]
struct DeliveredBy {
    a: u64,
    b: u64,
}

/// The cluster's story: seeding, the move, both failovers, the returns, the passive copy.
#[derive(Serialize)]
struct StoryJson<'a> {
    seeded_seconds: f64,
    copy_status: CopyStatusJson,
    moved: bool,
    #[serde(rename = "move")]
    move_: MoveJson<'a>,
    following: FollowingJson<'a>,
    synchronous_failover: SynchronousFailoverJson<'a>,
    rejoin: ResyncJson<'a>,
    failover: FailoverJson<'a>,
    dumpster: DumpsterJson,
    resubmitted: u64,
    resync: ResyncJson<'a>,
    lost_mail: Option<LostMailJson<'a>>,
    passive: PassiveJson<'a>,
}

/// `b`'s copy status while mail flows.
#[derive(Serialize)]
struct CopyStatusJson {
    node: &'static str,
    state: CopyState,
    copy_queue: u32,
    replay_queue: u32,
    last_replayed_generation: Option<u32>,
    loss_window_generations: u32,
    loss_window_seconds: f64,
    safe_before_micros: u64,
    shipped_bytes: u64,
    transferred_bytes: u64,
    compression_ratio: f64,
}

/// The planned move from `a` to `b`.
#[derive(Serialize)]
struct MoveJson<'a> {
    from: &'static str,
    to: &'static str,
    comment: &'static str,
    message: &'a str,
    paused_ms: u64,
    lossless: bool,
    epoch: u64,
    seconds: f64,
    rejoined_seconds: f64,
}

/// How the passive followed the active over TCP.
#[derive(Serialize)]
struct FollowingJson<'a> {
    transport: &'static str,
    block_mode: Option<&'a BlockModeStatus>,
    synchronous: Option<&'a SyncStatus>,
}

/// The failover after synchronous commit, with its dumpster's resubmission.
#[derive(Serialize)]
struct SynchronousFailoverJson<'a> {
    from: &'a str,
    to: &'static str,
    synchronous: Option<&'a SyncStatus>,
    lossless: bool,
    synchronous_proof: Option<&'a str>,
    epoch: u64,
    outage_ms: u64,
    killed_at: LogPosition,
    dumpster: ResubmittedJson,
}

/// What a dumpster resubmitted after a failover.
#[derive(Serialize)]
struct ResubmittedJson {
    resubmitted: u64,
    stored: u64,
    duplicates_dropped: u64,
}

/// The lossy failover after the active was killed.
#[derive(Serialize)]
struct FailoverJson<'a> {
    from: &'a str,
    to: &'static str,
    synchronous: Option<&'a SyncStatus>,
    kind: &'a str,
    lossy: bool,
    lost_generations: Option<(u32, u32)>,
    /// The old active's E00.log was not read: it may have written later generations (the
    /// window covers them).
    lost_generations_at_least: bool,
    lost_window_micros: Option<(u64, u64)>,
    forced: bool,
    epoch: u64,
    activation_ms: u64,
    outage_ms: u64,
    cut_at: LogPosition,
    copy_at_cut: LogPosition,
    killed_at: LogPosition,
}

/// The transport's dumpster after the lossy failover and at the end.
#[derive(Serialize)]
struct DumpsterJson {
    window_start_micros: u64,
    resubmitted_from_micros: u64,
    resubmitted: u64,
    stored: u64,
    duplicates_dropped: u64,
    possibly_lost: u64,
    kept_at_end: usize,
    evicted_unreplayed_at_end: u64,
}

/// An old active's return as a passive copy.
#[derive(Serialize)]
struct ResyncJson<'a> {
    node: &'static str,
    states: Vec<StateJson<'a>>,
    healthy_seconds: f64,
    divergence: Option<&'a DivergenceReport>,
}

/// One state of a returning node, with the seconds since its restart.
#[derive(Serialize)]
struct StateJson<'a> {
    seconds: f64,
    state: &'a str,
}

/// The passive copy, caught up and compared with the active.
#[derive(Serialize)]
struct PassiveJson<'a> {
    node: &'static str,
    position: LogPosition,
    catch_up_seconds: f64,
    state: CopyState,
    tables: usize,
    entries: u64,
    differences: &'a [String],
    equal: bool,
}

/// The demo's JSON document.
pub(super) fn document<'a>(
    directory: &Path,
    run: &'a Run,
    timeline: &Timeline,
) -> DemoDocument<'a> {
    let delivered = &run.delivered;
    let verified = &run.verified;
    let (logical, stored) = logical_and_stored(&run.space);
    DemoDocument {
        kind: "demo",
        directory: directory.display().to_string(),
        nodes: NODES,
        active_database: run.active.display().to_string(),
        seconds: run.elapsed.as_secs_f64(),
        timeline: timeline.json(),
        messages_delivered: delivered.delivered,
        message_bytes: delivered.message_bytes,
        delivered_by: DeliveredBy {
            a: delivered.per_node[0],
            b: delivered.per_node[1],
        },
        retries: delivered.retries,
        longest_wait_ms: u64::try_from(delivered.longest_wait.as_millis()).unwrap_or(u64::MAX),
        delivering_seconds: delivered.elapsed.as_secs_f64(),
        messages_per_second: per_second(delivered.delivered as f64, delivered.elapsed),
        mib_per_second: per_second(mib(delivered.message_bytes), delivered.elapsed),
        messages_acknowledged: delivered.acknowledged.len(),
        messages_read: verified.messages,
        messages_identical: verified.identical,
        lost: verified.lost,
        duplicates: verified.duplicates,
        index_entries_matching: verified.index_matching,
        verified: verified.problems() == 0
            && verified.identical == delivered.acknowledged.len() as u64,
        reopen_seconds: verified.reopen.as_secs_f64(),
        transactions_replayed: verified.replay.transactions_applied,
        check_seconds: run.check.as_secs_f64(),
        logical_bytes: logical,
        stored_bytes: stored,
        file_bytes: run.file_bytes,
        log_generations: run.stream.report.generations.len(),
        integrity: &run.integrity,
        space: &run.space,
        problems: problems(run),
        unreported_problems: verified.unreported,
        passed: run.problems() == 0,
        verdict: verdict_line(run.problems()),
        story: story_json(run),
    }
}

/// Every problem of the run, as text.
fn problems(run: &Run) -> Vec<String> {
    let resubmitted = &run.story.failed_over.resubmitted;
    let mut problems = run.delivered.problems.clone();
    problems.extend(run.compared.differences.iter().cloned());
    problems.extend(synchronous_problems(&run.story.synchronous));
    problems.extend(resubmitted.possibly_lost.iter().map(|lost| {
        format!(
            "{} was evicted from the dumpster before the passive had it",
            lost.message_id
        )
    }));
    problems.extend(run.verified.mismatches.iter().cloned());
    problems.extend(
        run.integrity
            .problems
            .iter()
            .map(integrity_command::problem_text),
    );
    problems.extend(run.stream.problems.iter().map(|p| p.text()));
    problems
}

/// The story's fields of the document.
fn story_json(run: &Run) -> StoryJson<'_> {
    let story = &run.story;
    let failed = &story.failed_over;
    let resubmitted = &failed.resubmitted;
    let compared = &run.compared;
    let status = &story.status;
    StoryJson {
        seeded_seconds: story.seeded.as_secs_f64(),
        copy_status: CopyStatusJson {
            node: "b",
            state: status.state,
            copy_queue: status.copy_queue,
            replay_queue: status.replay_queue,
            last_replayed_generation: status.last_replayed.map(|mark| mark.generation),
            loss_window_generations: status.loss_window_generations,
            loss_window_seconds: status.loss_window_seconds,
            safe_before_micros: status.safe_before_micros,
            shipped_bytes: status.shipped_bytes,
            transferred_bytes: status.transferred_bytes,
            compression_ratio: status.compression_ratio(),
        },
        moved: story.moved.result.ok,
        move_: MoveJson {
            from: "a",
            to: "b",
            comment: MOVE_COMMENT,
            message: &story.moved.result.message,
            paused_ms: story.moved.result.paused_ms,
            lossless: story.moved.lossless,
            epoch: story.moved.result.epoch,
            seconds: story.moved.took.as_secs_f64(),
            rejoined_seconds: story.moved.rejoined.as_secs_f64(),
        },
        following: FollowingJson {
            transport: "tcp",
            block_mode: story.following.block_mode.as_ref(),
            synchronous: story.following.synchronous.as_ref(),
        },
        synchronous_failover: synchronous_failover_json(&story.synchronous),
        rejoin: resync_json(story.synchronous.from, &story.rejoined),
        failover: failover_json(failed),
        dumpster: DumpsterJson {
            window_start_micros: resubmitted.window_start_micros,
            resubmitted_from_micros: resubmitted.resubmitted_from_micros,
            resubmitted: resubmitted.resubmitted,
            stored: resubmitted.stored,
            duplicates_dropped: resubmitted.duplicates,
            possibly_lost: resubmitted.possibly_lost.len() as u64
                + resubmitted.possibly_lost_untracked,
            kept_at_end: run.delivered.dumpster_messages,
            evicted_unreplayed_at_end: run.delivered.possibly_lost,
        },
        resubmitted: resubmitted.resubmitted,
        resync: resync_json(failed.from, &story.resynchronized),
        lost_mail: story.lost_mail.as_ref().map(lost_mail::json),
        passive: PassiveJson {
            node: NODES[1 - compared.active],
            position: compared.position,
            catch_up_seconds: compared.catch_up.as_secs_f64(),
            state: compared.status.state,
            tables: compared.tables,
            entries: compared.entries,
            differences: &compared.differences,
            equal: compared.differences.is_empty(),
        },
    }
}

/// The lossy failover's fields.
fn failover_json(failed: &FailedOver) -> FailoverJson<'_> {
    FailoverJson {
        from: &failed.report.from,
        to: NODES[1 - failed.from],
        synchronous: failed.synchronous.as_ref(),
        kind: &failed.report.kind,
        lossy: !failed.report.lossless,
        lost_generations: failed.report.lost_generations,
        lost_generations_at_least: failed.report.current_unread,
        lost_window_micros: failed.report.lost_window_micros,
        forced: failed.report.forced,
        epoch: failed.report.epoch,
        activation_ms: failed.report.activation_ms,
        outage_ms: u64::try_from(failed.outage.as_millis()).unwrap_or(u64::MAX),
        cut_at: failed.cut_at,
        copy_at_cut: failed.copied,
        killed_at: failed.killed_at,
    }
}

/// The synchronous failover's fields, with its dumpster's resubmission.
fn synchronous_failover_json(failed: &FailedOver) -> SynchronousFailoverJson<'_> {
    let resubmitted = &failed.resubmitted;
    SynchronousFailoverJson {
        from: &failed.report.from,
        to: NODES[1 - failed.from],
        synchronous: failed.synchronous.as_ref(),
        lossless: failed.report.lossless,
        synchronous_proof: failed.report.synchronous_proof.as_deref(),
        epoch: failed.report.epoch,
        outage_ms: u64::try_from(failed.outage.as_millis()).unwrap_or(u64::MAX),
        killed_at: failed.killed_at,
        dumpster: ResubmittedJson {
            resubmitted: resubmitted.resubmitted,
            stored: resubmitted.stored,
            duplicates_dropped: resubmitted.duplicates,
        },
    }
}

/// An old active's return as a passive copy.
fn resync_json(index: usize, resync: &scenario::Resynchronized) -> ResyncJson<'_> {
    ResyncJson {
        node: NODES[index],
        states: resync
            .states
            .iter()
            .map(|(at, state)| StateJson {
                seconds: *at,
                state,
            })
            .collect(),
        healthy_seconds: resync.healthy_after.as_secs_f64(),
        divergence: resync.divergence.as_ref(),
    }
}
