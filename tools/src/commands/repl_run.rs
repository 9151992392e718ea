//! `bluejet repl run --active DIR --replica DIR`: run the replication service for a seeded
//! replica in the foreground, a status line on stderr every second, until Ctrl-C (SIGINT or
//! SIGTERM) or `--duration` passes; then stop cleanly and print the final status.

use super::repl_status;
use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_replication::{CopyState, ReplicaConfig, ReplicationService};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How often the status line is printed.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// The options of `repl run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The active's directory.
    pub active: PathBuf,
    /// The replica directory (seeded).
    pub replica: PathBuf,
    /// Replay only generations at least this old.
    pub lag: Option<Duration>,
    /// Ship compressed.
    pub compress: bool,
    /// Recount every entry at a proof point at most this often (default: the library's).
    pub recount_interval: Option<Duration>,
    /// Stop after this long (else only on a signal).
    pub duration: Option<Duration>,
    /// Print the final status as JSON.
    pub json: bool,
}

/// `repl run --json`: the status the service left on disk, what stopped it, and its last
/// state while running (which decides `passed`).
#[derive(Serialize)]
struct RunReport<'a> {
    kind: &'static str,
    replica: String,
    status: repl_status::StatusJson<'a>,
    passed: bool,
    stopped_by: &'static str,
    last_running_state: CopyState,
}

/// Runs the service until told to stop; exit 1 if the copy ends Failed.
pub fn run(options: &RunOptions) -> Result<Verdict, ToolError> {
    let signals = stop_signals()?;
    let service = ReplicationService::start(config(options))?;
    eprintln!(
        "bluejet: replicating {} to {} (Ctrl-C stops)",
        options.active.display(),
        options.replica.display()
    );
    let stopped_by = watch(&service, &signals, options.duration);
    let last = service.status();
    service.stop()?;
    let status = repl_status::read(&options.replica)?;
    if options.json {
        output::print_json(&RunReport {
            kind: "repl-run",
            replica: options.replica.display().to_string(),
            status: repl_status::status_json(&status),
            passed: repl_status::verdict(&last) == Verdict::Clean,
            stopped_by,
            last_running_state: last.state,
        });
    } else {
        crate::out!(
            "replication stopped ({stopped_by}), last running state {:?}",
            last.state
        );
        crate::out!("replica: {}", options.replica.display());
        for line in repl_status::lines(&status) {
            crate::out!("{line}");
        }
    }
    Ok(repl_status::verdict(&last))
}

/// The replica configuration the options call for.
fn config(options: &RunOptions) -> ReplicaConfig {
    let mut config = ReplicaConfig::new(&options.active, &options.replica);
    config.replay.lag = options.lag;
    config.ship.compress = options.compress;
    if let Some(every) = options.recount_interval {
        config.replay.recount_interval = Some(every);
    }
    config
}

/// A channel that receives once SIGINT or SIGTERM arrives.
pub fn stop_signals() -> Result<mpsc::Receiver<()>, ToolError> {
    let (sender, receiver) = mpsc::channel();
    ctrlc::set_handler(move || {
        if sender.send(()).is_err() {
            tracing::debug!("interrupted after the command finished");
        }
    })
    .map_err(|error| ToolError::Failure(format!("installing the signal handler: {error}")))?;
    Ok(receiver)
}

/// A flag set once SIGINT or SIGTERM arrives (the process then goes on: the command
/// withdraws what it asked for and exits).
pub fn interrupt_flag() -> Result<Arc<AtomicBool>, ToolError> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    ctrlc::set_handler(move || set.store(true, Ordering::Release))
        .map_err(|error| ToolError::Failure(format!("installing the signal handler: {error}")))?;
    Ok(flag)
}

/// Prints a status line every second until a signal or the deadline; says which.
fn watch(
    service: &ReplicationService,
    signals: &mpsc::Receiver<()>,
    duration: Option<Duration>,
) -> &'static str {
    let deadline = duration.map(|duration| Instant::now() + duration);
    loop {
        let wait = deadline.map_or(STATUS_EVERY, |deadline| {
            STATUS_EVERY.min(deadline.saturating_duration_since(Instant::now()))
        });
        match signals.recv_timeout(wait) {
            Ok(()) => return "signal",
            Err(mpsc::RecvTimeoutError::Disconnected) => return "signal handler gone",
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return "duration";
        }
        eprintln!("bluejet: {}", repl_status::one_line(&service.status()));
    }
}

/// The longest duration or timeout a command takes: a year. Larger values overflowed
/// `Instant` arithmetic (a panic after a request was already written).
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Parses a number of seconds (`2`, `0.5`, at most [`MAX_SECONDS`]) as a duration.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if seconds > MAX_SECONDS {
        return Err(format!("{text:?}: at most {MAX_SECONDS} seconds (a year)"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}
