//! `bluejet log dump PATH` (alias `bluejet ml PATH`): a generation file, a whole directory
//! verified, or (with `--from`, `--to`, `--table`, `--stats`, `--follow`) the records of a
//! range of a directory's stream, as pg_waldump prints them.

use super::log_follow::FollowOptions;
use super::log_records::RangeOptions;
use crate::exit::{ToolError, Verdict};
use bluejet_engine::{BaseName, LogPosition};
use std::path::Path;

/// The options of `log dump`.
#[derive(Clone, Debug, Default)]
pub struct DumpOptions {
    /// The stream's base name (for a file, the default comes from its name).
    pub base: Option<BaseName>,
    /// List every record (file or whole directory).
    pub records: bool,
    /// Records from this position.
    pub from: Option<LogPosition>,
    /// Records before this position.
    pub to: Option<LogPosition>,
    /// Keep printing records as the log grows.
    pub follow: bool,
    /// Statistics of the range instead of its records.
    pub stats: bool,
    /// Only records touching this table and the ends of their transactions.
    pub table: Option<String>,
    /// One JSON document instead of text.
    pub json: bool,
}

impl DumpOptions {
    /// Whether a range of records was asked for rather than a file or stream check.
    fn ranged(&self) -> bool {
        self.from.is_some()
            || self.to.is_some()
            || self.follow
            || self.stats
            || self.table.is_some()
    }
}

/// Dumps `path`: a directory is verified as a whole stream (or a range of it is dumped), a
/// file is dumped as one generation.
pub fn run(path: &Path, options: DumpOptions) -> Result<Verdict, ToolError> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| ToolError::Failure(format!("{}: {error}", path.display())))?;
    let base = options.base.unwrap_or_default();
    match (metadata.is_dir(), options.ranged()) {
        (false, true) => Err(ToolError::Usage(format!(
            "{}: --from, --to, --table, --stats and --follow read a log directory, not one \
             file (give the directory holding it)",
            path.display()
        ))),
        (false, false) => super::log_file::run(path, options.base, options.records, options.json),
        (true, false) => super::log_directory::run(path, base, options.records, options.json),
        (true, true) if options.follow => super::log_follow::run(
            path,
            base,
            FollowOptions {
                from: options.from,
                to: options.to,
                table: options.table,
                json: options.json,
            },
        ),
        (true, true) => super::log_records::run(
            path,
            base,
            RangeOptions {
                from: options.from,
                to: options.to,
                table: options.table,
                stats: options.stats,
                json: options.json,
            },
        ),
    }
}
