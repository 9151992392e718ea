//! What the demo prints: the summary in text, or one JSON document.

use super::replicate::NODES;
use super::run::{synchronous_problems, Run};
use super::scenario::{self, FailedOver, Story, Timeline, MOVE_COMMENT};
use crate::commands::{integrity as integrity_command, log_directory, space as space_command};
use crate::output;
use crate::problem::verdict_line;
use crate::records::position_json;
use bluejet_engine::db::DATABASE_FILE_NAME;
use bluejet_engine::inspect::SpaceReport;
use bluejet_replication::dumpster::ResubmitReport;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn per_second(count: f64, elapsed: Duration) -> f64 {
    count / elapsed.as_secs_f64().max(1e-9)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Logical bytes (values as delivered) and bytes as stored, over every table.
fn logical_and_stored(space: &SpaceReport) -> (u64, u64) {
    let totals = space_command::totals(space);
    (totals.value_bytes, totals.stored_bytes)
}

pub(super) fn print_summary(run: &Run) {
    crate::out!("");
    print_cluster(run);
    print_checks(run);
    print_sizes(run);
    for problem in &run.delivered.problems {
        crate::out!("problem: {problem}");
    }
    for difference in &run.compared.differences {
        crate::out!("problem: passive copy: {difference}");
    }
    for problem in synchronous_problems(&run.story.synchronous) {
        crate::out!("problem: {problem}");
    }
    for lost in &run.story.failed_over.resubmitted.possibly_lost {
        crate::out!(
            "problem: {} was evicted from the dumpster before the passive had it",
            lost.message_id
        );
    }
    for mismatch in &run.verified.mismatches {
        crate::out!("problem: {mismatch}");
    }
    if run.verified.unreported > 0 {
        crate::out!("problem: {} more mismatches", run.verified.unreported);
    }
    for problem in &run.integrity.problems {
        crate::out!("{}", integrity_command::problem_text(problem));
    }
    log_directory::print_verdict_problems(&run.stream);
    crate::out!(
        "elapsed:      {:.2} s in all ({:.2} s delivering, {:.3} s reopening and verifying)",
        run.elapsed.as_secs_f64(),
        run.delivered.elapsed.as_secs_f64(),
        run.check.as_secs_f64()
    );
    crate::out!("{}", verdict_line(run.problems()));
}

fn print_cluster(run: &Run) {
    let delivered = &run.delivered;
    let story = &run.story;
    crate::out!(
        "delivered:    {} messages ({}) acknowledged, {} by a and {} by b, {:.0} messages/s; \
         {} attempts refused and retried, the longest wait {} ms",
        delivered.delivered,
        output::bytes(delivered.message_bytes),
        delivered.per_node[0],
        delivered.per_node[1],
        per_second(delivered.delivered as f64, delivered.elapsed),
        delivered.retries,
        delivered.longest_wait.as_millis()
    );
    let status = &story.status;
    crate::out!(
        "copy status:  b {}, replayed through generation {}, loss window {} ({:.1} s), {:.2}x \
         compression",
        status_text(status),
        status.last_replayed.map_or(0, |mark| mark.generation),
        output::plural(u64::from(status.loss_window_generations), "generation"),
        status.loss_window_seconds,
        status.compression_ratio()
    );
    let moved = &story.moved;
    crate::out!(
        "move:         a → b \"{MOVE_COMMENT}\": {}, commits held {} ms, epoch {}; a is a \
         Healthy passive again {:.2} s later",
        if moved.lossless {
            "lossless"
        } else {
            "NOT lossless"
        },
        moved.result.paused_ms,
        moved.result.epoch,
        moved.rejoined.as_secs_f64()
    );
    print_synchronous(story);
    let failed = &story.failed_over;
    crate::out!(
        "network cut:  {} commits {} ({}), {} ahead of its copy",
        NODES[failed.from],
        failed
            .synchronous
            .as_ref()
            .map_or("asynchronous", |sync| sync.state.as_str()),
        failed
            .synchronous
            .as_ref()
            .map_or("", |sync| sync.reason.as_str()),
        output::plural(
            u64::from(
                failed
                    .killed_at
                    .generation
                    .saturating_sub(failed.copied.generation)
            ),
            "generation"
        )
    );
    crate::out!(
        "failover:     {} killed at {}, {} serving {} ms later: {}, epoch {}",
        NODES[failed.from],
        failed.killed_at,
        NODES[1 - failed.from],
        failed.outage.as_millis(),
        scenario::loss_text(&failed.report),
        failed.report.epoch
    );
    print_dumpster(&failed.resubmitted);
    print_return("resync:", failed.from, &story.resynchronized);
    crate::out!(
        "lost mail:    {}",
        super::lost_mail::summary_line(story.lost_mail.as_ref())
    );
    let compared = &run.compared;
    crate::out!(
        "passive:      {} caught up {} ms after the last roll; {}, {} entries at {}: {}",
        NODES[1 - compared.active],
        compared.catch_up.as_millis(),
        output::plural(compared.tables as u64, "table"),
        compared.entries,
        compared.position,
        if compared.differences.is_empty() {
            "content identical to the active's"
        } else {
            "content DIFFERS from the active's"
        }
    );
}

/// The passive following in block mode, and the failover after synchronous commit.
fn print_synchronous(story: &Story) {
    let following = &story.following;
    crate::out!(
        "following:    b over TCP (mutual TLS), {}; a commits {}",
        following
            .block_mode
            .as_ref()
            .map_or("block mode unknown", |mode| mode.mode.as_str())
            .to_owned()
            + " mode",
        following
            .synchronous
            .as_ref()
            .map_or("asynchronously", |sync| sync.state.as_str())
    );
    let failed = &story.synchronous;
    crate::out!(
        "failover 1:   {} killed at {} (commits {}), {} serving {} ms later: {}, epoch {}",
        NODES[failed.from],
        failed.killed_at,
        failed
            .synchronous
            .as_ref()
            .map_or("asynchronous", |sync| sync.state.as_str()),
        NODES[1 - failed.from],
        failed.outage.as_millis(),
        scenario::loss_text(&failed.report),
        failed.report.epoch
    );
    print_dumpster(&failed.resubmitted);
    print_return("rejoin:", failed.from, &story.rejoined);
}

/// An old active's return as a passive copy: its states and what it kept aside.
fn print_return(label: &str, node: usize, back: &scenario::Resynchronized) {
    let states: Vec<&str> = back
        .states
        .iter()
        .map(|(_, state)| state.as_str())
        .collect();
    crate::out!(
        "{label:<13} {} {} in {:.2} s; {}",
        NODES[node],
        states.join(" → "),
        back.healthy_after.as_secs_f64(),
        divergence_summary(back.divergence.as_ref())
    );
}

fn print_dumpster(resubmitted: &ResubmitReport) {
    crate::out!(
        "dumpster:     {} resubmitted: {} stored (lost by the failover), {} dropped as \
         duplicates; {} possibly lost",
        resubmitted.resubmitted,
        resubmitted.stored,
        resubmitted.duplicates,
        resubmitted.possibly_lost.len() as u64 + resubmitted.possibly_lost_untracked
    );
}

fn status_text(status: &bluejet_replication::CopyStatus) -> String {
    format!(
        "{:?}, copy queue {}, replay queue {}",
        status.state, status.copy_queue, status.replay_queue
    )
}

fn divergence_summary(divergence: Option<&Value>) -> String {
    let Some(report) = divergence else {
        return "nothing kept aside".to_owned();
    };
    let files = report["files"].as_array().cloned().unwrap_or_default();
    let commits: u64 = files
        .iter()
        .filter_map(|file| file["commits"].as_u64())
        .sum();
    format!(
        "{} ({}) kept aside",
        output::plural(files.len() as u64, "divergent log file"),
        output::plural(commits, "commit")
    )
}

fn print_checks(run: &Run) {
    let verified = &run.verified;
    let acknowledged = run.delivered.acknowledged.len();
    crate::out!(
        "reopened:     {} in {:.3} s, {} replayed",
        run.active.display(),
        verified.reopen.as_secs_f64(),
        output::plural(verified.replay.transactions_applied, "transaction")
    );
    crate::out!(
        "verified:     {} of {} acknowledged messages identical byte for byte",
        verified.identical,
        acknowledged
    );
    crate::out!(
        "lost:         {} of {} acknowledged messages missing",
        verified.lost,
        acknowledged
    );
    crate::out!(
        "duplicates:   {} ({} messages and {} index entries read, every Message-ID once)",
        verified.duplicates,
        verified.messages,
        verified.index_entries
    );
    crate::out!(
        "index:        {} of {} folder entries match their messages",
        verified.index_matching,
        acknowledged
    );
    let integrity = &run.integrity;
    crate::out!(
        "integrity:    {} tables, {} entries, {} tree pages, {} long-value pages, {} free pages: {}",
        integrity.tables,
        integrity.entries,
        integrity.tree_pages,
        integrity.long_value_pages,
        integrity.free_pages,
        integrity_command::verdict(integrity)
    );
    crate::out!(
        "log:          {} of the final active: {}",
        output::plural(run.stream.report.generations.len() as u64, "generation"),
        verdict_line(run.stream.problems.len())
    );
}

fn print_sizes(run: &Run) {
    let (logical, stored) = logical_and_stored(&run.space);
    crate::out!(
        "sizes:        {} logical, {} stored ({:.2}x compression), {} file {}",
        output::bytes(logical),
        output::bytes(stored),
        logical as f64 / stored.max(1) as f64,
        output::bytes(run.file_bytes),
        DATABASE_FILE_NAME
    );
    crate::out!("space:");
    let totals = space_command::totals(&run.space);
    for line in space_command::table_lines(&run.space, &totals) {
        crate::out!("{line}");
    }
}

pub(super) fn run_json(directory: &Path, run: &Run, timeline: &Timeline) -> Value {
    let delivered = &run.delivered;
    let verified = &run.verified;
    let story = &run.story;
    let failed = &story.failed_over;
    let resubmitted = &failed.resubmitted;
    let compared = &run.compared;
    let (logical, stored) = logical_and_stored(&run.space);
    let mut problems: Vec<Value> = delivered.problems.iter().map(|p| json!(p)).collect();
    problems.extend(compared.differences.iter().map(|d| json!(d)));
    problems.extend(
        synchronous_problems(&story.synchronous)
            .iter()
            .map(|p| json!(p)),
    );
    problems.extend(resubmitted.possibly_lost.iter().map(|lost| {
        json!(format!(
            "{} was evicted from the dumpster before the passive had it",
            lost.message_id
        ))
    }));
    problems.extend(verified.mismatches.iter().map(|m| json!(m)));
    problems.extend(
        run.integrity
            .problems
            .iter()
            .map(|p| json!(integrity_command::problem_text(p))),
    );
    problems.extend(run.stream.problems.iter().map(|p| json!(p.text())));
    let mut document = json!({
        "kind": "demo",
        "directory": directory.display().to_string(),
        "nodes": NODES,
        "active_database": run.active.display().to_string(),
        "seconds": run.elapsed.as_secs_f64(),
        "timeline": timeline.json(),
        "messages_delivered": delivered.delivered,
        "message_bytes": delivered.message_bytes,
        "delivered_by": { "a": delivered.per_node[0], "b": delivered.per_node[1] },
        "retries": delivered.retries,
        "longest_wait_ms": u64::try_from(delivered.longest_wait.as_millis()).unwrap_or(u64::MAX),
        "delivering_seconds": delivered.elapsed.as_secs_f64(),
        "messages_per_second": per_second(delivered.delivered as f64, delivered.elapsed),
        "mib_per_second": per_second(mib(delivered.message_bytes), delivered.elapsed),
        "messages_acknowledged": delivered.acknowledged.len(),
        "messages_read": verified.messages,
        "messages_identical": verified.identical,
        "lost": verified.lost,
        "duplicates": verified.duplicates,
        "index_entries_matching": verified.index_matching,
        "verified": verified.problems() == 0
            && verified.identical == delivered.acknowledged.len() as u64,
        "reopen_seconds": verified.reopen.as_secs_f64(),
        "transactions_replayed": verified.replay.transactions_applied,
        "check_seconds": run.check.as_secs_f64(),
        "logical_bytes": logical,
        "stored_bytes": stored,
        "file_bytes": run.file_bytes,
        "log_generations": run.stream.report.generations.len(),
        "integrity": run.integrity,
        "space": run.space,
        "problems": problems,
        "unreported_problems": verified.unreported,
        "passed": run.problems() == 0,
        "verdict": verdict_line(run.problems()),
    });
    if let (Some(document), Value::Object(story)) = (document.as_object_mut(), cluster_json(run)) {
        document.extend(story);
    }
    document
}

/// The story's fields of the JSON document.
fn cluster_json(run: &Run) -> Value {
    let story = &run.story;
    let failed = &story.failed_over;
    let resubmitted = &failed.resubmitted;
    let compared = &run.compared;
    let status = &story.status;
    json!({
        "seeded_seconds": story.seeded.as_secs_f64(),
        "copy_status": {
            "node": "b",
            "state": format!("{:?}", status.state),
            "copy_queue": status.copy_queue,
            "replay_queue": status.replay_queue,
            "last_replayed_generation": status.last_replayed.map(|mark| mark.generation),
            "loss_window_generations": status.loss_window_generations,
            "loss_window_seconds": status.loss_window_seconds,
            "safe_before_micros": status.safe_before_micros,
            "shipped_bytes": status.shipped_bytes,
            "transferred_bytes": status.transferred_bytes,
            "compression_ratio": status.compression_ratio(),
        },
        "moved": story.moved.result.ok,
        "move": {
            "from": "a",
            "to": "b",
            "comment": MOVE_COMMENT,
            "message": story.moved.result.message,
            "paused_ms": story.moved.result.paused_ms,
            "lossless": story.moved.lossless,
            "epoch": story.moved.result.epoch,
            "seconds": story.moved.took.as_secs_f64(),
            "rejoined_seconds": story.moved.rejoined.as_secs_f64(),
        },
        "following": {
            "transport": "tcp",
            "block_mode": story.following.block_mode,
            "synchronous": story.following.synchronous,
        },
        "synchronous_failover": failover_json(&story.synchronous),
        "rejoin": resync_json(story.synchronous.from, &story.rejoined),
        "failover": {
            "from": failed.report.from,
            "to": NODES[1 - failed.from],
            "synchronous": failed.synchronous,
            "kind": failed.report.kind,
            "lossy": !failed.report.lossless,
            "lost_generations": failed.report.lost_generations,
            // The old active's E00.log was not read: it may have written later generations
            // (the window covers them).
            "lost_generations_at_least": failed.report.current_unread,
            "lost_window_micros": failed.report.lost_window_micros,
            "forced": failed.report.forced,
            "epoch": failed.report.epoch,
            "activation_ms": failed.report.activation_ms,
            "outage_ms": u64::try_from(failed.outage.as_millis()).unwrap_or(u64::MAX),
            "cut_at": position_json(failed.cut_at),
            "copy_at_cut": position_json(failed.copied),
            "killed_at": position_json(failed.killed_at),
        },
        "dumpster": {
            "window_start_micros": resubmitted.window_start_micros,
            "resubmitted_from_micros": resubmitted.resubmitted_from_micros,
            "resubmitted": resubmitted.resubmitted,
            "stored": resubmitted.stored,
            "duplicates_dropped": resubmitted.duplicates,
            "possibly_lost": resubmitted.possibly_lost.len() as u64
                + resubmitted.possibly_lost_untracked,
            "kept_at_end": run.delivered.dumpster_messages,
            "evicted_unreplayed_at_end": run.delivered.possibly_lost,
        },
        "resubmitted": resubmitted.resubmitted,
        "resync": resync_json(failed.from, &story.resynchronized),
        "lost_mail": super::lost_mail::json(story.lost_mail.as_ref()),
        "passive": {
            "node": NODES[1 - compared.active],
            "position": position_json(compared.position),
            "catch_up_seconds": compared.catch_up.as_secs_f64(),
            "state": format!("{:?}", compared.status.state),
            "tables": compared.tables,
            "entries": compared.entries,
            "differences": compared.differences,
            "equal": compared.differences.is_empty(),
        },
    })
}

/// A failover's fields of the JSON document, with its dumpster's resubmission.
fn failover_json(failed: &FailedOver) -> Value {
    let resubmitted = &failed.resubmitted;
    json!({
        "from": failed.report.from,
        "to": NODES[1 - failed.from],
        "synchronous": failed.synchronous,
        "lossless": failed.report.lossless,
        "synchronous_proof": failed.report.synchronous_proof,
        "epoch": failed.report.epoch,
        "outage_ms": u64::try_from(failed.outage.as_millis()).unwrap_or(u64::MAX),
        "killed_at": position_json(failed.killed_at),
        "dumpster": {
            "resubmitted": resubmitted.resubmitted,
            "stored": resubmitted.stored,
            "duplicates_dropped": resubmitted.duplicates,
        },
    })
}

/// An old active's return as a passive copy.
fn resync_json(index: usize, resync: &scenario::Resynchronized) -> Value {
    json!({
        "node": NODES[index],
        "states": resync.states.iter()
            .map(|(at, state)| json!({ "seconds": at, "state": state }))
            .collect::<Vec<_>>(),
        "healthy_seconds": resync.healthy_after.as_secs_f64(),
        "divergence": resync.divergence,
    })
}
