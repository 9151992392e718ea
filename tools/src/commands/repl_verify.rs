//! `bluejet repl verify --active DIR --replica DIR`: prove the copy restorable. A digest of
//! every table is taken from a snapshot of the active; the replica is brought up to the
//! snapshot's position and the same digest taken of the passive. Exit 0 when every table
//! agrees, 1 when any differs. The active must not be open elsewhere, and no replication
//! service may hold the replica.

use super::repl_seed::{tables_json, TablesJson};
use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use bluejet_engine::LogPosition;
use bluejet_engine::{Database, Options};
use bluejet_replication::control::Control;
use bluejet_replication::layout::ReplicaLayout;
use bluejet_replication::lock::ReplicaLock;
use bluejet_replication::verify::{differences, digest, ContentDigest};
use bluejet_replication::{CopyState, ReplError, Replica, ReplicaConfig};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Longest wait for the copy to replay up to the active's snapshot.
const CATCH_UP: Duration = Duration::from_secs(60);

/// Both digests at one position, and how they differ.
struct Comparison {
    position: LogPosition,
    active: ContentDigest,
    passive: ContentDigest,
    differences: Vec<String>,
}

/// Verifies the replica in `replica` against the database in `active`.
pub fn run(active: &Path, replica: &Path, json: bool) -> Result<Verdict, ToolError> {
    // Checked first: opening the active would create a database where there is none.
    let active = image::database_directory(active)?;
    // Checked before the active is touched: a copy in use is refused as a whole.
    drop(
        ReplicaLock::acquire(
            &bluejet_engine::file::OsFileSystem,
            &ReplicaLayout::new(replica).lock(),
        )
        .map_err(verify_refused)?,
    );
    let database = Database::open(
        &active,
        Options {
            // A replicated active: its replication decides what goes, never circular logging.
            circular_logging: false,
            ..Options::default()
        },
    )
    .map_err(verify_refused)?;
    let compared = compare(&database, &ReplicaConfig::new(&active, replica));
    database.close()?;
    let compared = compared?;
    if json {
        print_json(&compared);
    } else {
        print_text(&compared);
    }
    Ok(Verdict::from_problems(compared.differences.len()))
}

fn verify_refused(error: impl Into<ReplError>) -> ToolError {
    crate::live::explain(
        error,
        "Verification opens the active and the copy: stop the node (or `bluejet repl run`) \
         holding them first.",
    )
}

/// Digests the active's snapshot, brings the copy up to it, digests the passive.
fn compare(database: &Database, config: &ReplicaConfig) -> Result<Comparison, ToolError> {
    refuse_suspended(config)?;
    let (position, active) = {
        let read = database.begin_read()?;
        (read.end(), digest(&read)?)
    };
    database.log().wait_durable(position)?;
    // The copy replays closed generations only: close the snapshot's.
    database.log().close_through(position)?;
    let mut replica = Replica::open(config.clone()).map_err(verify_refused)?;
    let passive = caught_up_digest(&mut replica, position);
    let (state, message) = match &passive {
        Ok(passive) if differences(&active, passive).is_empty() => {
            (CopyState::Disabled, "verified".to_owned())
        }
        Ok(_) => (CopyState::Failed, "verification found differences".into()),
        Err(error) => (
            CopyState::Disabled,
            format!("verification did not complete: {error}"),
        ),
    };
    replica.close(state, &message)?;
    let passive = passive?;
    Ok(Comparison {
        position,
        differences: differences(&active, &passive),
        active,
        passive,
    })
}

/// A suspended copy neither ships nor replays: it cannot catch up.
fn refuse_suspended(config: &ReplicaConfig) -> Result<(), ToolError> {
    let control = Control::read(config.fs().as_ref(), &config.layout())?;
    if control.suspended {
        return Err(ToolError::Failure(format!(
            "{}: the copy is suspended ({}); resume it before verifying",
            config.replica.display(),
            control.comment
        )));
    }
    Ok(())
}

/// Steps the replica until it replayed up to `position`, then digests the passive.
fn caught_up_digest(
    replica: &mut Replica,
    position: LogPosition,
) -> Result<ContentDigest, ToolError> {
    replica.catch_up(position, CATCH_UP)?;
    let passive = replica
        .passive()
        .ok_or_else(|| ToolError::Failure("the passive copy could not be opened".into()))?;
    let read = passive.begin_read()?;
    Ok(digest(&read)?)
}

fn print_text(compared: &Comparison) {
    crate::out!("compared at log position {}", compared.position);
    crate::out!(
        "  {:<16} {:>10} {:>12}   {:>10} {:>12}",
        "table",
        "active",
        "crc32c",
        "passive",
        "crc32c"
    );
    let names = compared.active.keys().chain(
        compared
            .passive
            .keys()
            .filter(|name| !compared.active.contains_key(*name)),
    );
    for name in names {
        let side = |digests: &ContentDigest| match digests.get(name) {
            Some(digest) => format!("{:>10} {:>#12x}", digest.entries, digest.crc32c),
            None => format!("{:>10} {:>12}", "-", "-"),
        };
        let same = compared.active.get(name) == compared.passive.get(name);
        crate::out!(
            "  {name:<16} {}   {}   {}",
            side(&compared.active),
            side(&compared.passive),
            if same { "same" } else { "DIFFERENT" }
        );
    }
    for difference in &compared.differences {
        crate::out!("problem: {difference}");
    }
    crate::out!("{}", verdict_text(compared));
}

fn verdict_text(compared: &Comparison) -> String {
    if compared.differences.is_empty() {
        format!(
            "verification passed: the passive copy equals the active ({})",
            output::plural(compared.active.len() as u64, "table")
        )
    } else {
        format!(
            "verification FAILED: {} table(s) differ",
            compared.differences.len()
        )
    }
}

/// The JSON document of `repl verify`.
#[derive(Serialize)]
struct VerifyDocument<'a> {
    kind: &'static str,
    position: LogPosition,
    /// The active's tables with their entries, bytes and crc32c, by name.
    active: TablesJson<'a>,
    /// The passive's, likewise.
    passive: TablesJson<'a>,
    differences: &'a [String],
    equal: bool,
    passed: bool,
    verdict: String,
}

fn print_json(compared: &Comparison) {
    output::print_json(&VerifyDocument {
        kind: "repl-verify",
        position: compared.position,
        active: tables_json(&compared.active),
        passive: tables_json(&compared.passive),
        differences: &compared.differences,
        equal: compared.differences.is_empty(),
        passed: compared.differences.is_empty(),
        verdict: verdict_text(compared),
    });
}
