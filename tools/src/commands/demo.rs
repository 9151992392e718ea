//! `bluejet demo`: a mail server's delivery stream against a real log, then proof that every
//! committed transaction reads back exactly and the directory verifies.

use super::demo_check::{read_back, Committed, ReadBack, Work, FOLDERS, MESSAGES};
use super::log_directory::{self, StreamCheck};
use crate::exit::{ToolError, Verdict};
use crate::mail::{folder_key, message_key, Delivery, Rng};
use crate::output;
use crate::problem::verdict_line;
use bluejet_engine::log::{BaseName, Durability, Log, LogConfig, LogPosition, LogStats};
use serde_json::json;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The seed of the whole demo: every run writes the same mail.
const SEED: u64 = 0x426c_7565_4a65_7421;
/// Generation size of the demo's log.
const GENERATION_BYTES: u64 = 1 << 20;
/// The demo rolls by hand this many times, spread over the run, as a backup would; the log
/// rolls by itself whenever a generation fills.
const FORCED_ROLLS: u64 = 5;
/// One commit in this many is lazy.
const LAZY_ONE_IN: u64 = 8;
/// One transaction in this many also expunges older messages.
const EXPUNGE_ONE_IN: u64 = 5;

/// The demo's options.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where to put the log; a fresh temporary directory if `None`.
    pub directory: Option<PathBuf>,
    /// Leave the files in place.
    pub keep: bool,
    /// Concurrent writer threads.
    pub writers: usize,
    /// Delivery transactions in all.
    pub transactions: u64,
    /// Print one JSON document.
    pub json: bool,
}

/// What the run measured.
struct Measured {
    /// Where the log ended when opened again after the writers closed it.
    reopened: LogPosition,
    committed: Vec<Committed>,
    stats: LogStats,
    elapsed: Duration,
    durable: u64,
    lazy: u64,
}

/// Runs the demo.
pub fn run(options: &DemoOptions) -> Result<Verdict, ToolError> {
    let place = Place::new(options)?;
    let directory = place.path().to_owned();
    if !options.json {
        crate::out!(
            "demo: {} deliveries by {} writers into {}",
            options.transactions,
            options.writers,
            directory.display()
        );
    }
    let mut measured = write(&directory, options)?;
    let checking = Instant::now();
    measured.reopened = reopen(&directory)?;
    let read = read_back(&directory, &measured.committed)?;
    let stream = log_directory::check(&directory, BaseName::default())?;
    let check_time = checking.elapsed();
    let problems = read.mismatches.len() + stream.problems.len();
    if options.json {
        print_json(&directory, &measured, &read, &stream, check_time);
    } else {
        print_summary(&measured, &read, &stream, check_time);
    }
    let kept = place.finish(options.keep)?;
    if let (Some(kept), false) = (kept, options.json) {
        crate::out!("log files kept in {}", kept.display());
    }
    Ok(Verdict::from_problems(problems))
}

/// Opens the log again the way a restarting server would (finding the true end of the
/// stream), checks that nothing was cut from it, and closes it.
fn reopen(directory: &Path) -> Result<LogPosition, ToolError> {
    let config = LogConfig {
        generation_bytes: GENERATION_BYTES,
        ..LogConfig::default()
    };
    let log = Log::open(directory, config)?;
    let end = log.end_position();
    let torn = log.torn_bytes_at_open();
    log.close()?;
    if torn != 0 {
        return Err(ToolError::Failure(format!(
            "reopening cut {torn} bytes off a log that was closed cleanly"
        )));
    }
    Ok(end)
}

/// Writes the mail stream: a setup transaction, then the writers in parallel.
fn write(directory: &Path, options: &DemoOptions) -> Result<Measured, ToolError> {
    let config = LogConfig {
        generation_bytes: GENERATION_BYTES,
        ..LogConfig::default()
    };
    let log = Log::open(directory, config)?;
    let started = Instant::now();
    let mut setup = log.transaction();
    setup.create_table(MESSAGES);
    setup.create_table(FOLDERS);
    let info = setup.commit(Durability::Durable)?;
    let mut committed = vec![Committed {
        info,
        work: Work::Setup,
    }];
    let done = AtomicU64::new(0);
    let roll_every = (options.transactions / (FORCED_ROLLS + 1)).max(1);
    let writers = options.writers as u64;
    let results: Vec<Result<(Vec<Committed>, u64), ToolError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|writer| {
                let share = options.transactions / writers
                    + u64::from(writer < options.transactions % writers);
                let log = &log;
                let done = &done;
                scope.spawn(move || {
                    let mut job = Writer::new(writer, writers);
                    job.run(log, share, done, roll_every, options.transactions)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(ToolError::Failure("a writer thread panicked".into())))
            })
            .collect()
    });
    let mut lazy = 0;
    for result in results {
        let (work, lazy_commits) = result?;
        committed.extend(work);
        lazy += lazy_commits;
    }
    let elapsed = started.elapsed();
    let stats = log.stats();
    log.close()?;
    Ok(Measured {
        reopened: LogPosition::default(),
        durable: committed.len() as u64 - lazy,
        lazy,
        committed,
        stats,
        elapsed,
    })
}

/// One writer thread: delivers into the mailboxes it owns (mailbox % writers == writer), so
/// UIDs never clash between threads.
struct Writer {
    rng: Rng,
    mailboxes: Vec<u32>,
    next_uid: Vec<u32>,
    live: Vec<VecDeque<u32>>,
}

impl Writer {
    fn new(writer: u64, writers: u64) -> Self {
        let total = writers.max(24);
        let mailboxes: Vec<u32> = (0..total)
            .filter(|mailbox| mailbox % writers == writer)
            .map(|mailbox| mailbox as u32)
            .collect();
        Self {
            rng: Rng::new(SEED ^ writer.wrapping_mul(0x9e37_79b9)),
            next_uid: vec![1; mailboxes.len()],
            live: vec![VecDeque::new(); mailboxes.len()],
            mailboxes,
        }
    }

    /// Commits `count` deliveries; returns them and how many were lazy.
    fn run(
        &mut self,
        log: &Log,
        count: u64,
        done: &AtomicU64,
        roll_every: u64,
        total: u64,
    ) -> Result<(Vec<Committed>, u64), ToolError> {
        let mut committed = Vec::with_capacity(count as usize);
        let mut lazy = 0;
        for _ in 0..count {
            let slot = self.rng.below(self.mailboxes.len() as u64) as usize;
            let mailbox = self.mailboxes[slot];
            let uid = self.next_uid[slot];
            self.next_uid[slot] += 1;
            let delivery = Delivery {
                mailbox,
                uid,
                seed: self.rng.next_u64(),
            };
            let mut expunged = Vec::new();
            if self.rng.below(EXPUNGE_ONE_IN) == 0 && self.live[slot].len() > 3 {
                for _ in 0..self.rng.between(1, 2) {
                    if let Some(old) = self.live[slot].pop_front() {
                        expunged.push((mailbox, old));
                    }
                }
            }
            self.live[slot].push_back(uid);
            let durability = if self.rng.below(LAZY_ONE_IN) == 0 {
                lazy += 1;
                Durability::Lazy
            } else {
                Durability::Durable
            };
            let message = delivery.message();
            let index = delivery.index_entry(message.len());
            let mut transaction = log.transaction();
            transaction.put(MESSAGES, message_key(mailbox, uid).as_bytes(), &message);
            transaction.put(FOLDERS, folder_key(mailbox, uid).as_bytes(), &index);
            for &(mailbox, old) in &expunged {
                transaction.delete(MESSAGES, message_key(mailbox, old).as_bytes());
                transaction.delete(FOLDERS, folder_key(mailbox, old).as_bytes());
            }
            let info = transaction.commit(durability)?;
            committed.push(Committed {
                info,
                work: Work::Delivery { delivery, expunged },
            });
            let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
            if finished.is_multiple_of(roll_every) && finished < total {
                log.roll()?;
            }
        }
        Ok((committed, lazy))
    }
}

fn per_second(count: f64, elapsed: Duration) -> f64 {
    count / elapsed.as_secs_f64().max(1e-9)
}

fn print_summary(measured: &Measured, read: &ReadBack, stream: &StreamCheck, check: Duration) {
    let stats = measured.stats;
    let seconds = measured.elapsed.as_secs_f64();
    let mib = stats.bytes as f64 / (1 << 20) as f64;
    crate::out!(
        "commits:      {} ({} durable, {} lazy)",
        stats.commits,
        measured.durable,
        measured.lazy
    );
    crate::out!(
        "reopened:     end of the log found at {}, nothing cut",
        measured.reopened
    );
    crate::out!("records:      {} read back", read.records);
    crate::out!(
        "bytes:        {} of records ({})",
        stats.bytes,
        output::bytes(stats.bytes)
    );
    crate::out!(
        "generations:  {} ({} rolls)",
        stream.report.generations.len(),
        stats.rolls
    );
    crate::out!(
        "elapsed:      {seconds:.3} s writing, {:.3} s reading back and verifying",
        check.as_secs_f64()
    );
    crate::out!(
        "throughput:   {:.0} commits/s, {:.1} MiB/s",
        per_second(stats.commits as f64, measured.elapsed),
        mib / seconds.max(1e-9)
    );
    crate::out!(
        "fsyncs:       {} ({:.2} commits per fsync)",
        stats.syncs,
        stats.commits as f64 / stats.syncs.max(1) as f64
    );
    crate::out!(
        "read back:    {} of {} committed transactions identical",
        read.matched,
        measured.committed.len()
    );
    for mismatch in &read.mismatches {
        crate::out!("problem: {mismatch}");
    }
    log_directory::print_verdict_problems(stream);
    crate::out!(
        "{}",
        verdict_line(read.mismatches.len() + stream.problems.len())
    );
}

fn print_json(
    directory: &Path,
    measured: &Measured,
    read: &ReadBack,
    stream: &StreamCheck,
    check: Duration,
) {
    let stats = measured.stats;
    let seconds = measured.elapsed.as_secs_f64();
    let problems = read.mismatches.len() + stream.problems.len();
    let mut stream_problems: Vec<_> = stream.problems.iter().map(|p| p.json()).collect();
    stream_problems.extend(
        read.mismatches
            .iter()
            .map(|m| json!({ "generation": null, "message": m })),
    );
    output::print_json(&json!({
        "kind": "demo",
        "directory": directory.display().to_string(),
        "commits": stats.commits,
        "durable_commits": measured.durable,
        "lazy_commits": measured.lazy,
        "records": read.records,
        "reopened_end": measured.reopened.to_string(),
        "bytes": stats.bytes,
        "generations": stream.report.generations.len(),
        "rolls": stats.rolls,
        "elapsed_seconds": seconds,
        "check_seconds": check.as_secs_f64(),
        "commits_per_second": per_second(stats.commits as f64, measured.elapsed),
        "mib_per_second": stats.bytes as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        "fsyncs": stats.syncs,
        "commits_per_fsync": stats.commits as f64 / stats.syncs.max(1) as f64,
        "transactions_identical": read.matched,
        "transactions_committed": measured.committed.len(),
        "problems": stream_problems,
        "passed": problems == 0,
        "verdict": verdict_line(problems),
    }));
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
                let base = BaseName::default();
                for entry in std::fs::read_dir(&path)? {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if base.classify(&name).is_some() {
                        std::fs::remove_file(entry.path())?;
                    }
                }
                if created {
                    std::fs::remove_dir(&path)?;
                }
                Ok(None)
            }
        }
    }
}
