//! `bluejet repl seed --active DIR --replica DIR`: create a passive copy of a database from a
//! snapshot of it, then bring the copy up to the snapshot's generation, like
//! `Update-MailboxDatabaseCopy`. The active must not be open elsewhere.

use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use bluejet_engine::LogPosition;
use bluejet_replication::seed::{seed_directory, SeedReport};
use bluejet_replication::verify::ContentDigest;
use bluejet_replication::ReplicaConfig;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The JSON document of `repl seed`.
#[derive(Serialize)]
struct SeedDocument<'a> {
    kind: &'static str,
    active: String,
    replica: String,
    position: LogPosition,
    /// Tables with their entries, bytes and crc32c, by name.
    tables: TablesJson<'a>,
    removed: Vec<String>,
    generations_replayed: u32,
    seconds: f64,
    passed: bool,
}

/// Seeds `replica` from the database in `active`.
pub fn run(active: &Path, replica: &Path, json: bool) -> Result<Verdict, ToolError> {
    // Checked first: opening the active would create a database where there is none.
    let active = image::database_directory(active)?;
    let report = seed_directory(&ReplicaConfig::new(&active, replica)).map_err(|error| {
        crate::live::explain(
            error,
            "Seeding needs the active closed and the copy unused: a running cluster node seeds \
             its peer itself; otherwise stop what holds them first.",
        )
    })?;
    if json {
        output::print_json(&SeedDocument {
            kind: "repl-seed",
            active: active.display().to_string(),
            replica: replica.display().to_string(),
            position: report.position,
            tables: tables_json(&report.tables),
            removed: report
                .removed
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            generations_replayed: report.generations_replayed,
            seconds: report.seconds,
            passed: true,
        });
    } else {
        print_text(&active, replica, &report);
    }
    Ok(Verdict::Clean)
}

/// Tables by name, in JSON.
pub type TablesJson<'a> = BTreeMap<&'a str, TableJson>;

/// One table's entries, bytes and crc32c (in hex).
#[derive(Serialize)]
pub struct TableJson {
    entries: u64,
    bytes: u64,
    crc32c: String,
}

/// Tables with their entries, bytes and crc32c.
pub fn tables_json(tables: &ContentDigest) -> TablesJson<'_> {
    tables
        .iter()
        .map(|(name, digest)| {
            let table = TableJson {
                entries: digest.entries,
                bytes: digest.bytes,
                crc32c: format!("{:#010x}", digest.crc32c),
            };
            (name.as_str(), table)
        })
        .collect()
}

fn print_text(active: &Path, replica: &Path, report: &SeedReport) {
    crate::out!(
        "seeded {} from {} at {}",
        replica.display(),
        active.display(),
        report.position
    );
    for (name, digest) in &report.tables {
        crate::out!(
            "  table {name:<16} {:>10} entries {:>12} crc32c {:#010x}",
            digest.entries,
            output::bytes(digest.bytes),
            digest.crc32c
        );
    }
    for path in &report.removed {
        crate::out!("  removed {} (earlier copy)", path.display());
    }
    crate::out!(
        "seed complete: {} replayed after the snapshot, {:.3} s",
        output::plural(u64::from(report.generations_replayed), "generation"),
        report.seconds
    );
}
