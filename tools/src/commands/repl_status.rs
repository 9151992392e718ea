//! `bluejet repl status --replica DIR`: the copy status a replication service last wrote,
//! like `Get-MailboxDatabaseCopyStatus`. The formatting here is shared by `repl run` and the
//! demo.

use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::log::now_micros;
use bluejet_replication::cluster::block_follow::BlockModeStatus;
use bluejet_replication::cluster::heartbeat::Heartbeat;
use bluejet_replication::cluster::sync_commit::SyncStatus;
use bluejet_replication::layout::ReplicaLayout;
use bluejet_replication::replay::ProofMark;
use bluejet_replication::status::GenerationMark;
use bluejet_replication::{CopyState, CopyStatus};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// A status not rewritten for this long, from a service that did not stop cleanly, means
/// nothing is replicating: it reads as Failed.
pub const STALE: Duration = Duration::from_secs(10);

/// Prints the status of the replica in `replica`: exit 0 unless the copy is Failed (1).
pub fn run(replica: &Path, json: bool) -> Result<Verdict, ToolError> {
    let status = read(replica)?;
    // A cluster node's instance: its heartbeat says how it reaches its peer.
    let beat = bluejet_replication::cluster::heartbeat::read(&OsFileSystem, replica)
        .ok()
        .flatten();
    if json {
        output::print_json(&StatusReport {
            kind: "repl-status",
            replica: replica.display().to_string(),
            status: status_json(&status),
            passed: verdict(&status) == Verdict::Clean,
            transport: beat.as_ref().map(transport_json),
        });
    } else {
        crate::out!("replica: {}", replica.display());
        for line in lines(&status)
            .into_iter()
            .chain(transport_lines(beat.as_ref()))
        {
            crate::out!("{line}");
        }
    }
    Ok(verdict(&status))
}

/// Reads the status of the replica in `replica`; a directory without one is not a replica.
pub fn read(replica: &Path) -> Result<CopyStatus, ToolError> {
    let layout = ReplicaLayout::new(replica);
    CopyStatus::read(&OsFileSystem, &layout, STALE)?.ok_or_else(|| {
        ToolError::Failure(format!(
            "{}: not a replica: no status.json (seed it with `bluejet repl seed`)",
            replica.display()
        ))
    })
}

/// Failed is exit 1; every other state is exit 0.
pub fn verdict(status: &CopyStatus) -> Verdict {
    if status.state == CopyState::Failed {
        Verdict::Damaged
    } else {
        Verdict::Clean
    }
}

/// The state and its message: `Healthy`, `Failed: why`.
pub fn state_text(status: &CopyStatus) -> String {
    if status.message.is_empty() {
        format!("{:?}", status.state)
    } else {
        format!("{:?}: {}", status.state, status.message)
    }
}

/// One line, for a running service: state and its reason, queues, last replayed
/// generation, loss window.
pub fn one_line(status: &CopyStatus) -> String {
    format!(
        "{}, copy queue {}, replay queue {}, replayed through {}, loss window {} ({:.1} s)",
        state_text(status),
        status.copy_queue,
        status.replay_queue,
        status.last_replayed.map_or("-".to_owned(), |mark| format!(
            "generation {}",
            mark.generation
        )),
        output::plural(u64::from(status.loss_window_generations), "generation"),
        status.loss_window_seconds
    )
}

/// A generation and when, with its age: `12 at 2026-...Z (3.2 s ago)`.
fn mark_text(mark: Option<GenerationMark>, now: u64) -> String {
    match mark {
        Some(mark) => format!(
            "{} at {}",
            mark.generation,
            time_with_age(mark.time_micros, now)
        ),
        None => "-".into(),
    }
}

/// A proof point and when it was checked: `12:4096 at 2026-...Z (3.2 s ago)`.
fn proof_text(mark: Option<ProofMark>, now: u64) -> String {
    match mark {
        Some(mark) => format!(
            "{} at {}",
            mark.position,
            time_with_age(mark.time_micros, now)
        ),
        None => "- (no proof point replayed yet)".into(),
    }
}

/// A time with its age: `2026-...Z (3.2 s ago)`, `-` when not set.
fn time_with_age(micros: u64, now: u64) -> String {
    if micros == 0 {
        return "-".into();
    }
    format!(
        "{} ({:.1} s ago)",
        output::time(micros),
        now.saturating_sub(micros) as f64 / 1e6
    )
}

/// The status for people, one field a line.
pub fn lines(status: &CopyStatus) -> Vec<String> {
    let now = now_micros();
    let field = |name: &str, value: String| format!("  {name:<20} {value}");
    vec![
        field("state", state_text(status)),
        field("copy queue", status.copy_queue.to_string()),
        field("replay queue", status.replay_queue.to_string()),
        field("last generated", mark_text(status.last_generated, now)),
        field("last copied", mark_text(status.last_copied, now)),
        field("last inspected", mark_text(status.last_inspected, now)),
        field("last replayed", mark_text(status.last_replayed, now)),
        field("replayed position", status.replayed_position.to_string()),
        field("proven equal at", proof_text(status.proven, now)),
        field("recounted at", proof_text(status.recounted, now)),
        field(
            "loss window",
            format!(
                "{}, {:.1} s",
                output::plural(u64::from(status.loss_window_generations), "generation"),
                status.loss_window_seconds
            ),
        ),
        field(
            "gap",
            status.gap.map_or("none".to_owned(), |gap| gap.to_string()),
        ),
        field(
            "shipped",
            format!(
                "{}, {} transferred ({:.2}x compression)",
                output::bytes(status.shipped_bytes),
                output::bytes(status.transferred_bytes),
                status.compression_ratio()
            ),
        ),
        field(
            "last contact",
            time_with_age(status.last_contact_micros, now),
        ),
        field("updated", time_with_age(status.updated_micros, now)),
    ]
}

/// How a cluster node's copy receives the log, from its heartbeat: transport, mode and why,
/// bytes in flight (nothing for a replica that is not a node's instance).
pub fn transport_lines(beat: Option<&Heartbeat>) -> Vec<String> {
    let Some(beat) = beat else {
        return Vec::new();
    };
    let field = |name: &str, value: String| format!("  {name:<20} {value}");
    let mut lines = vec![field(
        "transport",
        beat.transport.clone().unwrap_or_else(|| "share".into()),
    )];
    if let Some(mode) = &beat.block_mode {
        lines.push(field("mode", format!("{} ({})", mode.mode, mode.reason)));
        lines.push(field(
            "bytes in flight",
            output::bytes(mode.bytes_in_flight),
        ));
        if let Some(received) = mode.received {
            lines.push(field("received", received.to_string()));
        }
    }
    if let Some(sync) = &beat.synchronous {
        lines.push(field(
            "synchronous",
            format!("{:?}: {} ({})", sync.level, sync.state, sync.reason).to_lowercase(),
        ));
    }
    lines
}

/// `repl status --json`: the copy's status and, for a node's instance, its transport.
#[derive(Serialize)]
struct StatusReport<'a> {
    kind: &'static str,
    replica: String,
    status: StatusJson<'a>,
    passed: bool,
    /// `null` for a replica that is not a node's instance.
    transport: Option<TransportJson<'a>>,
}

/// How a node's instance reaches its peer: [`transport_lines`] in JSON.
#[derive(Serialize)]
pub struct TransportJson<'a> {
    transport: &'a str,
    block_mode: Option<&'a BlockModeStatus>,
    synchronous: Option<&'a SyncStatus>,
}

/// [`transport_lines`] as JSON.
pub fn transport_json(beat: &Heartbeat) -> TransportJson<'_> {
    TransportJson {
        transport: beat.transport.as_deref().unwrap_or("share"),
        block_mode: beat.block_mode.as_ref(),
        synchronous: beat.synchronous.as_ref(),
    }
}

/// The status in JSON: every field of `status.json`, then the compression ratio and the
/// status's age.
#[derive(Serialize)]
pub struct StatusJson<'a> {
    #[serde(flatten)]
    status: &'a CopyStatus,
    compression_ratio: f64,
    age_seconds: f64,
}

/// The status as JSON: every field of `status.json`, the compression ratio and ages.
pub fn status_json(status: &CopyStatus) -> StatusJson<'_> {
    let now = now_micros();
    StatusJson {
        status,
        compression_ratio: status.compression_ratio(),
        age_seconds: now.saturating_sub(status.updated_micros) as f64 / 1e6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_says_why() {
        let status = CopyStatus {
            state: CopyState::Failed,
            message: "generation 7 failed inspection 3 times".into(),
            ..CopyStatus::default()
        };
        let line = one_line(&status);
        assert!(
            line.starts_with("Failed: generation 7 failed inspection 3 times, copy queue 0"),
            "{line}"
        );
    }
}
