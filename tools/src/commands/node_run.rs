//! `bluejet node run --config FILE`: run one node of a two-node cluster in the foreground
//! until Ctrl-C (SIGINT or SIGTERM) or `--duration` passes. A line on stderr whenever its
//! role, epoch, serving or copy state changes, and for each cluster event it records (an
//! error, a seed, a failover); at the end the final status and the failovers it carried out.

use super::cluster_file::ClusterFile;
use super::repl_status;
use crate::exit::{ToolError, Verdict};
use crate::metrics_exposition;
use crate::metrics_server::{BoundMetrics, MetricsServer};
use crate::output;
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::log::LogPosition;
use bluejet_replication::cluster::block_follow::BlockModeStatus;
use bluejet_replication::cluster::sync_commit::SyncStatus;
use bluejet_replication::cluster::{FailoverReport, Node, NodeStatus, Role};
use bluejet_replication::events::EventFollower;
use bluejet_replication::layout::ReplicaLayout;
use bluejet_replication::CopyState;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How often the node's status is looked at.
const POLL: Duration = Duration::from_millis(200);

/// The options of `node run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The cluster file.
    pub config: PathBuf,
    /// Stop after this long (else only on a signal).
    pub duration: Option<Duration>,
    /// Print the final status as JSON.
    pub json: bool,
    /// Commit this many small transactions a second while active (a test load).
    pub load: Option<u32>,
    /// Serve the metrics over HTTP on this address.
    pub metrics: Option<SocketAddr>,
}

/// Runs the node until told to stop; exit 1 if it ends as a Failed copy or Joining.
pub fn run(options: &RunOptions) -> Result<Verdict, ToolError> {
    let cluster = ClusterFile::read(&options.config)?;
    let config = cluster.config.clone();
    if !config.witness.is_dir() {
        // Never made here: a node that created its own witness directory, because the share
        // was not mounted, would be a second cluster.
        return Err(ToolError::Failure(format!(
            "{} (is the share mounted?)",
            super::cluster_file::witness_problem(&config.witness)
        )));
    }
    crate::live::refuse_held_instance(&config.instance)?;
    let signals = super::repl_run::stop_signals()?;
    let events = ReplicaLayout::new(&config.instance).events();
    let mut watcher = EventWatcher::new(&events);
    let bound = options.metrics.map(BoundMetrics::bind).transpose()?;
    let node = Arc::new(Node::start(config)?);
    let metrics = match bound {
        Some(bound) => Some(serve_metrics(bound, &node, &cluster.config.instance)?),
        None => None,
    };
    let load = options
        .load
        .map(|rate| super::node_load::spawn(Arc::clone(&node), rate));
    let name = node.name().to_owned();
    eprintln!(
        "bluejet: node {name} running in {}, peer {} in {}, witness {} (Ctrl-C stops)",
        cluster.file.instance.display(),
        cluster.file.peer,
        cluster.config.peer_instance.display(),
        cluster.file.witness.display()
    );
    let deadline = options.duration.map(|duration| Instant::now() + duration);
    let mut shown = None;
    let stopped_by = loop {
        for line in watcher.new_events() {
            eprintln!("bluejet: {name}: {line}");
        }
        let summary = summary(&node.status());
        if shown.as_ref() != Some(&summary) {
            eprintln!("bluejet: {name}: {summary}");
            shown = Some(summary);
        }
        let wait = deadline.map_or(POLL, |deadline| {
            POLL.min(deadline.saturating_duration_since(Instant::now()))
        });
        match signals.recv_timeout(wait) {
            Ok(()) => break "signal",
            Err(mpsc::RecvTimeoutError::Disconnected) => break "signal handler gone",
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break "duration";
        }
    };
    let last = node.status();
    let failovers = node.failovers();
    drop(load);
    drop(metrics);
    match Arc::try_unwrap(node) {
        Ok(node) => node.stop(),
        Err(_) => return Err(ToolError::Failure("the node is still in use".into())),
    }
    for line in watcher.new_events() {
        eprintln!("bluejet: {name}: {line}");
    }
    // A node that ends as a Failed copy, or still Joining (it never got to hold or copy
    // the database, and its status says why), did not do its job: exit 1.
    let failed_copy = (last.copy.as_ref()).is_some_and(|copy| copy.state == CopyState::Failed);
    let verdict = if failed_copy || last.role == Role::Joining {
        Verdict::Damaged
    } else {
        Verdict::Clean
    };
    if options.json {
        output::print_json(&RunReport {
            kind: "node-run",
            config: options.config.display().to_string(),
            stopped_by,
            status: status_json(&last),
            failovers: &failovers,
            passed: verdict == Verdict::Clean,
        });
    } else {
        crate::out!(
            "node {name} stopped ({stopped_by}), last {}",
            summary(&last)
        );
        if let Some(end) = last.end {
            crate::out!("  log end              {end}");
        }
        if let Some(copy) = &last.copy {
            for line in repl_status::lines(copy) {
                crate::out!("{line}");
            }
        }
        if failovers.is_empty() {
            crate::out!("failovers: none");
        }
        for report in &failovers {
            crate::out!("{}", failover_line(report));
        }
    }
    Ok(verdict)
}

/// Role, epoch, serving and copy state in a few words: what a change is printed for.
/// Serves the node's metrics, labelled with its instance directory.
fn serve_metrics(
    bound: BoundMetrics,
    node: &Arc<Node>,
    instance: &Path,
) -> Result<MetricsServer, ToolError> {
    let registry =
        metrics_exposition::node_registry(Arc::clone(node), &instance.display().to_string());
    let server = bound.serve(Box::new(move || {
        metrics_exposition::render(&registry)
            .map_err(|error| format!("encoding the metrics: {error}"))
    }))?;
    eprintln!(
        "bluejet: node {}: metrics at http://{}/metrics",
        node.name(),
        server.local_addr()
    );
    Ok(server)
}

fn summary(status: &NodeStatus) -> String {
    let mut text = format!("{:?}", status.role);
    if let Some(reason) = &status.reason {
        text.push_str(&format!(" ({reason})"));
    }
    text.push_str(&format!(", epoch {}", status.epoch));
    if status.end.is_some() {
        text.push_str(if status.serving {
            ", serving"
        } else {
            ", not serving"
        });
    }
    if let Some(copy) = &status.copy {
        text.push_str(&format!(", copy {}", repl_status::state_text(copy)));
    }
    if let Some(mode) = &status.block_mode {
        text.push_str(&format!(", {} mode over {}", mode.mode, status.transport));
    }
    if let Some(sync) = &status.synchronous {
        text.push_str(&format!(", commit {} ({})", sync.state, sync.reason));
    }
    text
}

/// A failover or move the node carried out, in one line.
pub fn failover_line(report: &FailoverReport) -> String {
    let generations = match (report.lost_generations, report.lost_from) {
        (Some((_, last)), Some(from)) => {
            format!("everything after {from} (held from block mode) through generation {last}")
        }
        (Some((first, last)), None) => format!("generations {first}..{last}"),
        (None, _) => "unknown generations".to_owned(),
    };
    let loss = match (report.lossless, report.lost_window_micros) {
        (true, _) => match &report.synchronous_proof {
            Some(proof) => format!("lossless ({proof})"),
            None => "lossless".to_owned(),
        },
        (false, window) => format!(
            "lossy, {generations}{} lost{}",
            if report.current_unread {
                " at least"
            } else {
                ""
            },
            window.map_or(String::new(), |(start, end)| format!(
                ", window {}..{}",
                output::time(start),
                output::time(end)
            ))
        ),
    };
    format!(
        "{} from {} at epoch {}: {loss}{}, started at {}, activated in {} ms",
        report.kind,
        report.from,
        report.epoch,
        if report.forced {
            ", forced by an operator"
        } else {
            ""
        },
        report.position,
        report.activation_ms
    )
}

/// `node run --json`: what stopped the node, its last status, and the failovers it made.
#[derive(Serialize)]
struct RunReport<'a> {
    kind: &'static str,
    config: String,
    stopped_by: &'a str,
    status: NodeStatusJson<'a>,
    failovers: &'a [FailoverReport],
    passed: bool,
}

/// A node's status in JSON: its copy's status with the compression ratio and age that
/// `repl status` adds.
#[derive(Serialize)]
pub struct NodeStatusJson<'a> {
    name: &'a str,
    role: Role,
    epoch: u64,
    serving: bool,
    end: Option<LogPosition>,
    reason: Option<&'a str>,
    copy: Option<repl_status::StatusJson<'a>>,
    transport: &'a str,
    block_mode: Option<&'a BlockModeStatus>,
    peer_flushed: Option<LogPosition>,
    synchronous: Option<&'a SyncStatus>,
}

/// A node's status as JSON.
pub fn status_json(status: &NodeStatus) -> NodeStatusJson<'_> {
    NodeStatusJson {
        name: &status.name,
        role: status.role,
        epoch: status.epoch,
        serving: status.serving,
        end: status.end,
        reason: status.reason.as_deref(),
        copy: status.copy.as_ref().map(repl_status::status_json),
        transport: &status.transport,
        block_mode: status.block_mode.as_ref(),
        peer_flushed: status.peer_flushed,
        synchronous: status.synchronous.as_ref(),
    }
}

/// Follows the node's event log and yields the cluster events added since the node started:
/// reads only the lines appended since the last look, and follows the log's rotation.
struct EventWatcher {
    follower: EventFollower,
}

impl EventWatcher {
    fn new(path: &Path) -> Self {
        // Those of earlier runs are not shown.
        Self {
            follower: EventFollower::from_end(&OsFileSystem, path),
        }
    }

    fn new_events(&mut self) -> Vec<String> {
        let Ok((events, _)) = self.follower.poll(&OsFileSystem) else {
            return Vec::new();
        };
        events
            .iter()
            .filter(|event| event.node.is_some())
            .map(|event| {
                let mut line = event.kind.clone();
                if let Some(epoch) = event.epoch {
                    line.push_str(&format!(" (epoch {epoch})"));
                }
                if !event.message.is_empty() {
                    line.push_str(&format!(": {}", event.message));
                }
                if let Some(comment) = &event.comment {
                    line.push_str(&format!(" [{comment}]"));
                }
                line
            })
            .collect()
    }
}
