//! `bluejet log dump DIR --from POS --to POS --table NAME [--stats]`: the records of a range
//! of a log stream, like pg_waldump, or their statistics.

use super::log_range::{self, Filter, Present};
use super::log_stats::LogStats;
use crate::exit::{ToolError, Verdict};
use crate::output;
use crate::records::{RecordJson, RecordRow};
use bluejet_engine::{BaseName, LogPosition};
use serde::Serialize;
use std::path::Path;

/// What part of the stream to dump, and how.
#[derive(Clone, Debug, Default)]
pub struct RangeOptions {
    /// The first record's position (default: the start of the first generation present).
    pub from: Option<LogPosition>,
    /// Records starting at or after this are left out (default: the end of the log).
    pub to: Option<LogPosition>,
    /// Only records touching this table, and the ends of their transactions.
    pub table: Option<String>,
    /// Statistics instead of records.
    pub stats: bool,
    /// One JSON document instead of text.
    pub json: bool,
}

/// The JSON document of a range dump.
#[derive(Serialize)]
struct RangeDocument<'a> {
    kind: &'static str,
    directory: String,
    base_name: &'a str,
    from: LogPosition,
    to: Option<LogPosition>,
    /// Where reading stopped: `to`, or the end of the log.
    end: LogPosition,
    table: Option<&'a str>,
    record_count: u64,
    records: Option<Vec<RecordJson<'a>>>,
    stats: Option<LogStats>,
}

/// The start of the range, checked; `to` checked too when the log must already hold it.
pub fn checked_bounds(
    present: &Present,
    from: Option<LogPosition>,
    to: Option<LogPosition>,
    to_may_lie_ahead: bool,
) -> Result<LogPosition, ToolError> {
    let from = match from {
        Some(from) => {
            present.check("--from", from)?;
            from
        }
        None => LogPosition::new(present.first(), 0),
    };
    if let Some(to) = to {
        if to < from {
            return Err(ToolError::Usage(format!(
                "--to {to} comes before --from {from}"
            )));
        }
        if !to_may_lie_ahead || to <= present.end()? {
            present.check("--to", to)?;
        }
    }
    Ok(from)
}

/// Dumps the range of the stream `base` in `directory` that `options` selects.
pub fn run(directory: &Path, base: BaseName, options: RangeOptions) -> Result<Verdict, ToolError> {
    let present = Present::list(directory, base)?;
    let from = checked_bounds(&present, options.from, options.to, false)?;
    let mut filter = Filter::new(options.table.clone());
    let mut rows = Vec::new();
    let mut stats = LogStats::default();
    let mut next = from;
    let mut count = 0;
    log_range::read(directory, base, &mut next, options.to, |row| {
        if !filter.keep(&row) {
            return;
        }
        count += 1;
        stats.add(&row);
        if !options.stats {
            rows.push(row);
        }
    })?;
    let end = options.to.unwrap_or(next);
    if options.json {
        output::print_json(&RangeDocument {
            kind: "log-records",
            directory: directory.display().to_string(),
            base_name: base.as_str(),
            from,
            to: options.to,
            end,
            table: options.table.as_deref(),
            record_count: count,
            records: (!options.stats).then(|| rows.iter().map(RecordRow::view).collect()),
            stats: options.stats.then_some(stats),
        });
        return Ok(Verdict::Clean);
    }
    let table = options
        .table
        .as_ref()
        .map_or_else(String::new, |table| format!(", table {table}"));
    crate::out!(
        "log stream {} in {}: records from {from} to {end}{table}",
        base.as_str(),
        directory.display()
    );
    if options.stats {
        for line in stats.text() {
            crate::out!("{line}");
        }
    } else {
        for row in &rows {
            crate::out!("{}", row.text());
        }
        crate::out!(
            "{} in {}",
            output::plural(count, "record"),
            output::bytes(stats.bytes)
        );
    }
    Ok(Verdict::Clean)
}
