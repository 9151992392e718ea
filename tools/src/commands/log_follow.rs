//! `bluejet log dump DIR --follow`: prints records as a live log grows and rolls to new
//! generations, as `pg_waldump --follow` does, until Ctrl-C or SIGTERM (or `--to`).
//!
//! It reads the files as they are, without the database's ownership lock and without
//! writing anything, so an owner can run (or start) meanwhile. What it reads can be caught
//! mid-change (a roll renaming `E00.log`, a segment being written): such a read fails, and
//! is tried again from the last record printed. Only a failure that persists is reported.

use super::log_range::{self, Filter, Present};
use super::log_records::checked_bounds;
use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::{BaseName, LogPosition};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the log is looked at for new records.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// How long a read may keep failing at the same position before the failure is reported:
/// far longer than a roll or a segment write takes.
const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

/// What to follow.
#[derive(Clone, Debug, Default)]
pub struct FollowOptions {
    /// Where to start (default: the end of the log, so only new records are printed).
    pub from: Option<LogPosition>,
    /// Stop before the first record at or after this position.
    pub to: Option<LogPosition>,
    /// Only records touching this table, and the ends of their transactions.
    pub table: Option<String>,
    /// One JSON document a line (JSON Lines) instead of text.
    pub json: bool,
}

/// Follows the stream `base` in `directory`.
pub fn run(directory: &Path, base: BaseName, options: FollowOptions) -> Result<Verdict, ToolError> {
    let present = Present::list(directory, base)?;
    let from = match options.from {
        Some(_) => checked_bounds(&present, options.from, options.to, true)?,
        None => {
            let end = present.end()?;
            checked_bounds(&present, Some(end), options.to, true)?
        }
    };
    let stop = super::repl_run::interrupt_flag()?;
    eprintln!(
        "bluejet: following log stream {} in {} from {from}; Ctrl-C to stop",
        base.as_str(),
        directory.display()
    );
    let mut filter = Filter::new(options.table);
    let mut next = from;
    let mut failing_since: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        let before = next;
        let read = log_range::read(directory, base, &mut next, options.to, |row| {
            if !filter.keep(&row) {
                return;
            }
            match options.json {
                true => output::print_json_line(&row.view()),
                false => crate::out!("{}", row.text()),
            }
        });
        match read {
            Ok(true) => break,
            Ok(false) => failing_since = None,
            Err(error) => {
                if next != before {
                    failing_since = None;
                }
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > GIVE_UP_AFTER {
                    return Err(ToolError::from(error));
                }
            }
        }
        std::thread::sleep(POLL_EVERY);
    }
    Ok(Verdict::Clean)
}
