//! What the demo prints: the summary in text (the `--json` document is [`super::document`]).

use super::replicate::NODES;
use super::run::{synchronous_problems, Run};
use super::scenario::{self, Story, MOVE_COMMENT};
use crate::commands::{integrity as integrity_command, log_directory, space as space_command};
use crate::output;
use crate::problem::verdict_line;
use bluejet_engine::format::inspect::SpaceReport;
use bluejet_engine::DATABASE_FILE_NAME;
use bluejet_replication::cluster::resync::DivergenceReport;
use bluejet_replication::dumpster::ResubmitReport;
use std::time::Duration;

pub(super) fn per_second(count: f64, elapsed: Duration) -> f64 {
    count / elapsed.as_secs_f64().max(1e-9)
}

pub(super) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Logical bytes (values as delivered) and bytes as stored, over every table.
pub(super) fn logical_and_stored(space: &SpaceReport) -> (u64, u64) {
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

fn divergence_summary(divergence: Option<&DivergenceReport>) -> String {
    let Some(report) = divergence else {
        return "nothing kept aside".to_owned();
    };
    let files = &report.files;
    let commits: u64 = files.iter().map(|file| file.commits).sum();
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
