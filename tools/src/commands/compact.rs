//! `bluejet compact SRC DST` (alias `d`): offline compaction, like `eseutil /d`. Every table
//! of SRC is copied in key order into a new database at DST, whose trees are then packed full
//! and hold no free pages; DST is then read back and compared with SRC entry by entry.

use super::header::state_name;
use crate::exit::{ToolError, Verdict};
use crate::image::{self, Entries};
use crate::output;
use crate::progress::Progress;
use bluejet_engine::db::lock_directory;
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::format::inspect::DatabaseImage;
use bluejet_engine::DbState;
use bluejet_engine::{Database, Durability, Options};
use bluejet_replication::private_files::create_directory_durably;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// Entries per transaction: large transactions amortise commits...
const BATCH_ENTRIES: u64 = 10_000;
/// ... but a transaction's records and pages stay in memory until it commits, so a batch of
/// large values ends early.
const BATCH_BYTES: u64 = 16 << 20;
/// Mismatches reported in full; more are only counted.
const MISMATCH_LIMIT: usize = 20;

/// Size of one database file.
#[derive(Clone, Copy, Debug, Serialize)]
struct Size {
    /// Pages allocated (what the data needs).
    allocated_pages: u64,
    /// Bytes of the file (it grows in extents, so usually a little more).
    file_bytes: u64,
}

impl Size {
    fn of(image: &DatabaseImage) -> Self {
        Self {
            allocated_pages: image.header.header.next_page,
            file_bytes: image.store.file().length(),
        }
    }
}

/// What copying and comparing found.
#[derive(Debug, Default)]
struct Outcome {
    tables: u64,
    entries: u64,
    value_bytes: u64,
    mismatches: Vec<String>,
    unreported: usize,
}

impl Outcome {
    fn mismatch(&mut self, message: String) {
        if self.mismatches.len() < MISMATCH_LIMIT {
            self.mismatches.push(message);
        } else {
            self.unreported += 1;
        }
    }

    fn problems(&self) -> usize {
        self.mismatches.len() + self.unreported
    }
}

/// Compacts the database in `source` into the new directory `destination`.
pub fn run(source: &Path, destination: &Path, json: bool) -> Result<Verdict, ToolError> {
    // Held throughout: compaction is offline, and a database opened meanwhile would change
    // under the copy.
    let _owner =
        lock_directory(&OsFileSystem, &image::database_directory(source)?).map_err(|error| {
            crate::live::explain(
                error,
                "Compaction is offline: stop the node holding it first.",
            )
        })?;
    let original = image::open(source)?;
    refuse_unclean(source, &original)?;
    check_destination(destination)?;
    let started = Instant::now();
    let mut outcome = copy(&original, destination)?;
    let copy_time = started.elapsed();
    let compacted = image::open(destination)?;
    compare(&original, &compacted, &mut outcome)?;
    let (before, after) = (Size::of(&original), Size::of(&compacted));
    if json {
        print_json(source, destination, &outcome, before, after, copy_time);
    } else {
        print_text(destination, &outcome, before, after, copy_time);
    }
    Ok(Verdict::from_problems(outcome.problems()))
}

/// Only a cleanly shut down database holds all its data in the file; otherwise some is
/// still only in its log, which compaction does not read.
fn refuse_unclean(source: &Path, image: &DatabaseImage) -> Result<(), ToolError> {
    let state = image.header.header.state;
    if state == DbState::CleanShutdown {
        return Ok(());
    }
    Err(ToolError::Damage(format!(
        "{}: the database is in state {}, not clean shutdown: run `bluejet recover {}` first",
        image.path.display(),
        state_name(state),
        source.display()
    )))
}

/// The destination must be new (or an empty directory): compaction never overwrites.
fn check_destination(destination: &Path) -> Result<(), ToolError> {
    if !destination.exists() {
        return Ok(());
    }
    let occupied = destination.is_dir()
        && std::fs::read_dir(destination)
            .map_err(|error| ToolError::Failure(format!("{}: {error}", destination.display())))?
            .next()
            .is_some();
    if !destination.is_dir() || occupied {
        return Err(ToolError::Usage(format!(
            "{}: the destination must not exist or be an empty directory",
            destination.display()
        )));
    }
    Ok(())
}

/// Copies every table into a new database at `destination` and closes it cleanly.
fn copy(source: &DatabaseImage, destination: &Path) -> Result<Outcome, ToolError> {
    let tables = source.tables()?;
    let total: u64 = tables.iter().map(|(_, meta)| meta.count).sum();
    let options = Options {
        page_size: source.page_size(),
        ..Options::default()
    };
    // The engine creates the directory too, but does not sync it into its parent.
    create_directory_durably(&OsFileSystem, destination)?;
    let database = Database::open(destination, options)?;
    let progress = Progress::new("compacting {bar:30} {pos}/{len} entries, {eta} left");
    let mut outcome = Outcome::default();
    for (name, meta) in &tables {
        copy_table(source, &database, name, meta.root, &mut outcome, &|done| {
            progress.update(done, total)
        })?;
        outcome.tables += 1;
    }
    progress.finish();
    database.close()?;
    Ok(outcome)
}

/// Copies one table in batches; the batches commit lazily and the table's last one durably
/// (so a crash costs at most a re-run, and fsyncs do not dominate).
fn copy_table(
    source: &DatabaseImage,
    database: &Database,
    table: &str,
    root: u64,
    outcome: &mut Outcome,
    progress: &dyn Fn(u64),
) -> Result<(), ToolError> {
    let mut write = database.begin_write()?;
    // Created even when empty: an empty table is still part of the schema.
    write.create_table(table)?;
    let (mut batch_entries, mut batch_bytes) = (0, 0);
    for entry in Entries::new(source, root)? {
        let (key, value) = entry?;
        write.insert(table, &key, &value)?;
        batch_entries += 1;
        batch_bytes += (key.len() + value.len()) as u64;
        outcome.entries += 1;
        outcome.value_bytes += value.len() as u64;
        if batch_entries >= BATCH_ENTRIES || batch_bytes >= BATCH_BYTES {
            write.commit_with(Durability::Lazy)?;
            write = database.begin_write()?;
            (batch_entries, batch_bytes) = (0, 0);
            progress(outcome.entries);
        }
    }
    write.commit_with(Durability::Durable)?;
    progress(outcome.entries);
    Ok(())
}

/// Compares the two databases: the same tables, each with the same entries in order.
fn compare(
    original: &DatabaseImage,
    compacted: &DatabaseImage,
    outcome: &mut Outcome,
) -> Result<(), ToolError> {
    let names = |image: &DatabaseImage| -> Result<Vec<String>, ToolError> {
        Ok(image.tables()?.into_iter().map(|(name, _)| name).collect())
    };
    let (before, after) = (names(original)?, names(compacted)?);
    if before != after {
        outcome.mismatch(format!(
            "tables differ: {} before, {} after",
            before.join(","),
            after.join(",")
        ));
    }
    for table in before.iter().filter(|table| after.contains(table)) {
        compare_table(original, compacted, table, outcome)?;
    }
    Ok(())
}

fn compare_table(
    original: &DatabaseImage,
    compacted: &DatabaseImage,
    table: &str,
    outcome: &mut Outcome,
) -> Result<(), ToolError> {
    let mut before = Entries::of_table(original, table)?;
    let mut after = Entries::of_table(compacted, table)?;
    let mut index = 0u64;
    loop {
        let pair = (before.next().transpose()?, after.next().transpose()?);
        let message = match pair {
            (None, None) => return Ok(()),
            (Some(entry), None) => format!("entry {index} ({}) is missing", key_text(&entry.0)),
            (None, Some(entry)) => format!("entry {index} ({}) was added", key_text(&entry.0)),
            (Some(old), Some(new)) if old.0 != new.0 => format!(
                "entry {index}: key {} became {}",
                key_text(&old.0),
                key_text(&new.0)
            ),
            (Some(old), Some(new)) if old.1 != new.1 => {
                format!("entry {index} ({}): the value differs", key_text(&old.0))
            }
            _ => {
                index += 1;
                continue;
            }
        };
        outcome.mismatch(format!("table {table}: {message}"));
        // After a difference the streams are out of step: one report per table is enough.
        return Ok(());
    }
}

fn key_text(key: &[u8]) -> String {
    output::byte_string(key, 80)
}

/// After as a percentage of before.
fn ratio(before: u64, after: u64) -> f64 {
    after as f64 * 100.0 / before.max(1) as f64
}

fn print_text(destination: &Path, outcome: &Outcome, before: Size, after: Size, elapsed: Duration) {
    crate::out!(
        "copied {} tables, {} entries ({} of values) into {} in {:.3} s",
        outcome.tables,
        outcome.entries,
        output::bytes(outcome.value_bytes),
        destination.display(),
        elapsed.as_secs_f64()
    );
    crate::out!(
        "  {:<16} {:>12} {:>12} {:>7}",
        "",
        "before",
        "after",
        "ratio"
    );
    crate::out!(
        "  {:<16} {:>12} {:>12} {:>6.1}%",
        "allocated pages",
        before.allocated_pages,
        after.allocated_pages,
        ratio(before.allocated_pages, after.allocated_pages)
    );
    crate::out!(
        "  {:<16} {:>12} {:>12} {:>6.1}%",
        "file bytes",
        output::bytes(before.file_bytes),
        output::bytes(after.file_bytes),
        ratio(before.file_bytes, after.file_bytes)
    );
    for mismatch in &outcome.mismatches {
        crate::out!("problem: {mismatch}");
    }
    if outcome.unreported > 0 {
        crate::out!("problem: {} more differences", outcome.unreported);
    }
    if outcome.problems() == 0 {
        crate::out!("verified: every table and entry of the copy is identical to the original");
    } else {
        crate::out!("verification FAILED: {} problem(s)", outcome.problems());
    }
}

/// The JSON document of `compact`.
#[derive(Serialize)]
struct CompactDocument<'a> {
    kind: &'static str,
    source: String,
    destination: String,
    tables: u64,
    entries: u64,
    value_bytes: u64,
    elapsed_seconds: f64,
    before: Size,
    after: Size,
    allocated_pages_ratio: f64,
    file_bytes_ratio: f64,
    problems: &'a [String],
    unreported_problems: usize,
    passed: bool,
}

fn print_json(
    source: &Path,
    destination: &Path,
    outcome: &Outcome,
    before: Size,
    after: Size,
    elapsed: Duration,
) {
    output::print_json(&CompactDocument {
        kind: "compact",
        source: source.display().to_string(),
        destination: destination.display().to_string(),
        tables: outcome.tables,
        entries: outcome.entries,
        value_bytes: outcome.value_bytes,
        elapsed_seconds: elapsed.as_secs_f64(),
        before,
        after,
        allocated_pages_ratio: ratio(before.allocated_pages, after.allocated_pages) / 100.0,
        file_bytes_ratio: ratio(before.file_bytes, after.file_bytes) / 100.0,
        problems: &outcome.mismatches,
        unreported_problems: outcome.unreported,
        passed: outcome.problems() == 0,
    });
}
