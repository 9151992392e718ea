//! `bluejet truncate --active DIR (--config FILE | --replica DIR... | --standalone)`: delete
//! the active's closed generations that recovery, every passive copy and a backup no longer
//! need (`--circular`: no backup needed), and say why the oldest one kept is kept. The
//! active must not be open elsewhere. Truncation must know every copy: from the cluster
//! file (every node but the one whose database is the active), from `--replica`, or
//! `--standalone` saying there is none; without one of them it refuses (a copy it did not
//! know would lose generations it still needs and have to be reseeded).

use super::backup::tool_error;
use super::cluster_file::ClusterFile;
use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use bluejet_engine::db::{read_retention_marker, RETENTION_MARKER_NAME};
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::LogPosition;
use bluejet_engine::{Database, Options};
use bluejet_replication::truncate::{
    decide, gather, log_bytes, space_warning, truncate_active, ReplicaProgress, TruncationDecision,
    TruncationInput,
};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `truncate` is asked.
#[derive(Clone, Debug)]
pub struct TruncateOptions {
    /// The active's directory.
    pub active: PathBuf,
    /// Replicas of it named one by one.
    pub replicas: Vec<PathBuf>,
    /// The cluster file: the nodes other than the active's are replicas.
    pub config: Option<PathBuf>,
    /// The database has no copy.
    pub standalone: bool,
    /// Circular logging: no backup needed.
    pub circular: bool,
    /// The log's space budget in bytes (0: no warning).
    pub budget: u64,
    /// Warn when the log uses at least this fraction of the budget.
    pub warn_at: f64,
    /// Print JSON.
    pub json: bool,
}

/// What was decided and done.
struct Outcome {
    input: TruncationInput,
    decision: TruncationDecision,
    deleted: Vec<u32>,
    warning: Option<String>,
}

/// Decides and truncates.
pub fn run(options: &TruncateOptions) -> Result<Verdict, ToolError> {
    let active = image::database_directory(&options.active)?;
    let replicas = copies(options, &active)?;
    let options = &TruncateOptions {
        replicas,
        config: None,
        ..options.clone()
    };
    let database = Database::open(
        &active,
        Options {
            // A replicated active: its replication decides what goes, never circular logging.
            circular_logging: false,
            ..Options::default()
        },
    )
    .map_err(|error| {
        crate::live::explain(
            error,
            "A running node truncates its own log every few seconds; to truncate by hand, stop \
             it first.",
        )
    })?;
    let outcome = truncate(&database, options);
    database.close()?;
    let outcome = outcome?;
    if options.json {
        print_json(&outcome);
    } else {
        print_text(&outcome);
    }
    Ok(Verdict::Clean)
}

/// Every copy of the active in `active`: those named, and with a cluster file every node
/// whose database is not `active`. Refuses when no copy is named and `--standalone` does
/// not say there is none.
fn copies(options: &TruncateOptions, active: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let mut replicas = options.replicas.clone();
    if let Some(path) = &options.config {
        let cluster = ClusterFile::read(path)?;
        if cluster.config.network.is_some() {
            // Its peer's copy is reachable only through the peer's server, by a running node.
            return Err(ToolError::Usage(format!(
                "{}: the nodes replicate over the network, where only a running node reaches \
                 its peer's copy: let the active node truncate its own log (it does, every few \
                 seconds, keeping what its peer and its backups need)",
                path.display()
            )));
        }
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        let mut found = false;
        for (_, instance) in cluster.nodes() {
            if same(&instance.join("database"), active) {
                found = true;
            } else {
                replicas.push(instance.to_owned());
            }
        }
        if !found {
            return Err(ToolError::Usage(format!(
                "{} is not the database of a node of {} (its nodes keep theirs in \
                 INSTANCE/database)",
                active.display(),
                path.display()
            )));
        }
    }
    if replicas.is_empty() && !options.standalone {
        return Err(ToolError::Usage(
            "truncate must know every copy of the database: give --config FILE (the cluster \
             file) or --replica DIR for each copy, or --standalone if it has none (a copy \
             left out would lose generations it still needs and have to be reseeded)"
                .into(),
        ));
    }
    if replicas.is_empty() {
        refuse_marked_standalone(active)?;
    }
    Ok(replicas)
}

/// `--standalone` says nothing reads the log, but a retention marker in the directory says
/// something does (a seed writes one naming its replica): the marker wins (found by an
/// adversarial operator: `truncate --standalone --circular` on a seeded active deleted the
/// generations its replica had not replayed, and the replica had to be reseeded).
fn refuse_marked_standalone(active: &Path) -> Result<(), ToolError> {
    let marker = read_retention_marker(&OsFileSystem, active);
    if !marker.retains() {
        return Ok(());
    }
    Err(ToolError::Usage(format!(
        "{}: --standalone says the database has no copy, but {}: name its copies with \
         --replica DIR (or --config FILE); if nothing reads its log any more, remove {} first",
        active.display(),
        marker.describe(),
        active.join(RETENTION_MARKER_NAME).display()
    )))
}

fn truncate(database: &Database, options: &TruncateOptions) -> Result<Outcome, ToolError> {
    let input = gather(database, &options.replicas, options.circular).map_err(tool_error)?;
    let decision = decide(&input);
    let deleted = truncate_active(database, &decision).map_err(tool_error)?;
    let config = database.log().config();
    let used = log_bytes(
        config.file_system.as_ref(),
        database.log().directory(),
        config.base_name,
    )
    .map_err(tool_error)?;
    let warning = space_warning(used, options.budget, options.warn_at, &decision);
    Ok(Outcome {
        input,
        decision,
        deleted,
        warning,
    })
}

fn print_text(outcome: &Outcome) {
    crate::out!("checkpoint at {}", outcome.input.checkpoint);
    for replica in &outcome.input.replicas {
        crate::out!(
            "  replica {} replayed through {}",
            replica.replica.display(),
            replica
                .replayed_through
                .map_or("nothing".into(), |g| format!("generation {g}"))
        );
    }
    match outcome.input.backup_covers_through {
        Some(g) if !outcome.input.circular => crate::out!("  backups cover through generation {g}"),
        None if !outcome.input.circular => crate::out!("  no backup recorded"),
        _ => crate::out!("  circular logging: no backup needed"),
    }
    for reason in &outcome.decision.reasons {
        crate::out!("{reason}");
    }
    if let Some(warning) = &outcome.warning {
        crate::out!("warning: {warning}");
    }
    crate::out!(
        "truncated: {} deleted{}",
        output::plural(outcome.deleted.len() as u64, "generation"),
        match (outcome.deleted.first(), outcome.deleted.last()) {
            (Some(first), Some(last)) => format!(" ({first}..{last})"),
            _ => String::new(),
        }
    );
}

/// The JSON document of `truncate`.
#[derive(Serialize)]
struct TruncateDocument<'a> {
    kind: &'static str,
    checkpoint: LogPosition,
    replicas: &'a [ReplicaProgress],
    backup_covers_through: Option<u32>,
    circular: bool,
    delete_below: u32,
    deleted: &'a [u32],
    oldest_kept: Option<u32>,
    reasons: &'a [String],
    warning: Option<&'a str>,
    passed: bool,
}

fn print_json(outcome: &Outcome) {
    output::print_json(&TruncateDocument {
        kind: "truncate",
        checkpoint: outcome.input.checkpoint,
        replicas: &outcome.input.replicas,
        backup_covers_through: outcome.input.backup_covers_through,
        circular: outcome.input.circular,
        delete_below: outcome.decision.delete_below,
        deleted: &outcome.deleted,
        oldest_kept: outcome.decision.oldest_kept,
        reasons: &outcome.decision.reasons,
        warning: outcome.warning.as_deref(),
        passed: true,
    });
}
