//! `bluejet demo`: a mail server's delivery workload against a real database — several
//! writers delivering at once into several mailboxes — then proof that every message reads
//! back exactly after a reopen, the folder index agrees with the messages, the file passes
//! the integrity check and the log the database wrote verifies. A passive copy, seeded
//! before delivery and replicated while the writers deliver, must end up holding exactly
//! what the active holds.

use super::demo_replicate::{self, Replicated};
use super::demo_verify::{self, Verified};
use super::demo_write::{self, Delivered, Plan};
use super::log_directory::{self, StreamCheck};
use super::{integrity as integrity_command, space as space_command};
use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use crate::problem::verdict_line;
use crate::progress::Progress;
use bluejet_engine::db::{Database, Options, DATABASE_FILE_NAME};
use bluejet_engine::inspect::{integrity, space, IntegrityReport, SpaceReport};
use bluejet_engine::log::BaseName;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The demo's options.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where to put the database; a fresh temporary directory if `None`.
    pub directory: Option<PathBuf>,
    /// Leave the files in place.
    pub keep: bool,
    /// Concurrent writer threads.
    pub writers: usize,
    /// Messages delivered in all.
    pub messages: u64,
    /// Mailboxes they are delivered into.
    pub mailboxes: u32,
    /// Print one JSON document.
    pub json: bool,
}

/// Everything the run measured and checked.
struct Run {
    delivered: Delivered,
    close: Duration,
    replicated: Replicated,
    verified: Verified,
    integrity: IntegrityReport,
    space: SpaceReport,
    file_bytes: u64,
    stream: StreamCheck,
    check: Duration,
}

impl Run {
    fn problems(&self) -> usize {
        self.delivered.problems.len()
            + self.verified.problems()
            + self.integrity.problems.len()
            + self.stream.problems.len()
            + self.replicated.differences.len()
    }
}

/// Runs the demo.
pub fn run(options: &DemoOptions) -> Result<Verdict, ToolError> {
    let place = Place::new(options)?;
    let directory = place.path().to_owned();
    if !options.json {
        crate::out!(
            "demo: {} messages into {} mailboxes by {} writers, database in {}",
            options.messages,
            options.mailboxes,
            options.writers,
            directory.display()
        );
    }
    let plan = Plan {
        messages: options.messages,
        writers: options.writers,
        mailboxes: options.mailboxes,
    };
    let (delivered, close, replicated) = write(&directory, plan)?;
    let run = check(&directory, delivered, close, replicated)?;
    if options.json {
        output::print_json(&run_json(&directory, &run));
    } else {
        print_summary(&run);
    }
    let kept = place.finish(options.keep)?;
    if let (Some(kept), false) = (kept, options.json) {
        crate::out!("database kept in {}", kept.display());
    }
    Ok(Verdict::from_problems(run.problems()))
}

/// Creates the database and its replica, delivers the mail while replicating, checks the
/// copy and closes the database cleanly; returns what was delivered, how long the close
/// took and what the copy did.
fn write(directory: &Path, plan: Plan) -> Result<(Delivered, Duration, Replicated), ToolError> {
    let database = Database::open(directory, Options::default())?;
    let replicating = demo_replicate::start(&database, directory)?;
    let progress = Progress::new("delivering {bar:30} {pos}/{len} messages, {eta} left");
    let delivered = demo_write::deliver(&database, plan, &progress);
    progress.finish();
    let delivered = delivered?;
    let replicated = replicating.finish(&database)?;
    let closing = Instant::now();
    database.close()?;
    Ok((delivered, closing.elapsed(), replicated))
}

/// Reopens and verifies the contents, then checks the file and the log offline.
fn check(
    directory: &Path,
    delivered: Delivered,
    close: Duration,
    replicated: Replicated,
) -> Result<Run, ToolError> {
    let started = Instant::now();
    let verified = demo_verify::verify(directory, &delivered.live)?;
    let image = image::open(directory)?;
    let integrity = integrity(&image)?;
    let space = space(&image)?;
    let file_bytes = image.store.file().length();
    drop(image);
    let stream = log_directory::check(directory, BaseName::default())?;
    Ok(Run {
        delivered,
        close,
        replicated,
        verified,
        integrity,
        space,
        file_bytes,
        stream,
        check: started.elapsed(),
    })
}

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

fn print_summary(run: &Run) {
    let delivered = &run.delivered;
    let log = delivered.log;
    crate::out!(
        "delivered:    {} messages ({}), {} expunged, {} kept",
        delivered.delivered,
        output::bytes(delivered.message_bytes),
        delivered.expunged,
        delivered.live.len()
    );
    crate::out!(
        "commits:      {} ({} durable, {} lazy), {} fsyncs ({:.2} commits per fsync)",
        log.commits,
        delivered.durable,
        delivered.lazy,
        log.syncs,
        log.commits as f64 / log.syncs.max(1) as f64
    );
    crate::out!(
        "throughput:   {:.0} messages/s, {:.1} MiB/s ({:.3} s delivering, {:.3} s closing)",
        per_second(delivered.delivered as f64, delivered.elapsed),
        per_second(mib(delivered.message_bytes), delivered.elapsed),
        delivered.elapsed.as_secs_f64(),
        run.close.as_secs_f64()
    );
    print_checks(run);
    for line in demo_replicate::lines(&run.replicated) {
        crate::out!("{line}");
    }
    print_sizes(run);
    for problem in &delivered.problems {
        crate::out!("problem: {problem}");
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
        "elapsed:      {:.3} s delivering, {:.3} s reopening and verifying",
        delivered.elapsed.as_secs_f64(),
        run.check.as_secs_f64()
    );
    crate::out!("{}", verdict_line(run.problems()));
}

fn print_checks(run: &Run) {
    let verified = &run.verified;
    crate::out!(
        "reopened:     in {:.3} s, {} replayed",
        verified.reopen.as_secs_f64(),
        output::plural(verified.replay.transactions_applied, "transaction")
    );
    crate::out!(
        "verified:     {} of {} messages identical byte for byte",
        verified.identical,
        run.delivered.live.len()
    );
    crate::out!(
        "index:        {} of {} folder entries match their messages",
        verified.index_matching,
        run.delivered.live.len()
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
        "log:          {} of records in {} generations: {}",
        output::bytes(run.delivered.log.bytes),
        run.stream.report.generations.len(),
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

fn run_json(directory: &Path, run: &Run) -> Value {
    let delivered = &run.delivered;
    let verified = &run.verified;
    let log = delivered.log;
    let (logical, stored) = logical_and_stored(&run.space);
    let mut problems: Vec<Value> = delivered.problems.iter().map(|p| json!(p)).collect();
    problems.extend(verified.mismatches.iter().map(|m| json!(m)));
    problems.extend(
        run.integrity
            .problems
            .iter()
            .map(|p| json!(integrity_command::problem_text(p))),
    );
    problems.extend(run.stream.problems.iter().map(|p| json!(p.text())));
    problems.extend(run.replicated.differences.iter().map(|d| json!(d)));
    json!({
        "kind": "demo",
        "directory": directory.display().to_string(),
        "messages_delivered": delivered.delivered,
        "messages_expunged": delivered.expunged,
        "messages_kept": delivered.live.len(),
        "message_bytes": delivered.message_bytes,
        "commits": log.commits,
        "durable_commits": delivered.durable,
        "lazy_commits": delivered.lazy,
        "fsyncs": log.syncs,
        "delivering_seconds": delivered.elapsed.as_secs_f64(),
        "closing_seconds": run.close.as_secs_f64(),
        "check_seconds": run.check.as_secs_f64(),
        "messages_per_second": per_second(delivered.delivered as f64, delivered.elapsed),
        "mib_per_second": per_second(mib(delivered.message_bytes), delivered.elapsed),
        "reopen_seconds": verified.reopen.as_secs_f64(),
        "transactions_replayed": verified.replay.transactions_applied,
        "messages_identical": verified.identical,
        "index_entries_matching": verified.index_matching,
        "logical_bytes": logical,
        "stored_bytes": stored,
        "file_bytes": run.file_bytes,
        "log_bytes": log.bytes,
        "log_generations": run.stream.report.generations.len(),
        "integrity": run.integrity,
        "space": run.space,
        "replication": demo_replicate::json(&run.replicated),
        "problems": problems,
        "unreported_problems": verified.unreported,
        "passed": run.problems() == 0,
        "verdict": verdict_line(run.problems()),
    })
}

/// Where the demo writes: a temporary directory or the one given.
enum Place {
    Temporary(tempfile::TempDir),
    Given { path: PathBuf, created: bool },
}

impl Place {
    fn new(options: &DemoOptions) -> Result<Self, ToolError> {
        let Some(path) = &options.directory else {
            let directory = tempfile::Builder::new().prefix("bluejet-demo-").tempdir()?;
            return Ok(Place::Temporary(directory));
        };
        let created = !path.exists();
        std::fs::create_dir_all(path)
            .map_err(|error| ToolError::Failure(format!("{}: {error}", path.display())))?;
        let occupied = std::fs::read_dir(path)
            .map_err(|error| ToolError::Failure(format!("{}: {error}", path.display())))?
            .next()
            .is_some();
        if occupied {
            return Err(ToolError::Usage(format!(
                "{}: the demo needs an empty directory",
                path.display()
            )));
        }
        Ok(Place::Given {
            path: path.clone(),
            created,
        })
    }

    fn path(&self) -> &Path {
        match self {
            Place::Temporary(directory) => directory.path(),
            Place::Given { path, .. } => path,
        }
    }

    /// Keeps the files (returning where) or removes what the demo created.
    fn finish(self, keep: bool) -> Result<Option<PathBuf>, ToolError> {
        match (self, keep) {
            (Place::Temporary(directory), true) => Ok(Some(directory.keep())),
            (Place::Temporary(directory), false) => {
                directory.close()?;
                Ok(None)
            }
            (Place::Given { path, .. }, true) => Ok(Some(path)),
            (Place::Given { path, created }, false) => {
                remove_database_files(&path)?;
                if created {
                    std::fs::remove_dir(&path)?;
                }
                Ok(None)
            }
        }
    }
}

/// Removes the database file, the log files and the replica, and nothing else.
fn remove_database_files(directory: &Path) -> Result<(), ToolError> {
    let replica = directory.join(demo_replicate::REPLICA_DIRECTORY);
    if replica.is_dir() {
        std::fs::remove_dir_all(&replica)?;
    }
    let base = BaseName::default();
    let temporary = format!("{DATABASE_FILE_NAME}.tmp");
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if base.classify(&name).is_some() || name == DATABASE_FILE_NAME || name == temporary {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
