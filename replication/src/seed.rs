//! Seeding: create the passive copy from a consistent snapshot of the active while it keeps
//! taking commits, then ship, inspect and replay the generations after the snapshot.
//!
//! The copy is logical: every table of a read snapshot is loaded into a new passive database
//! whose checkpoint is the snapshot's log position, so replay continues with the first
//! transaction after it. The loaded content is checked against digests taken while reading
//! the snapshot. `replica.json` is written last: a seed cut short leaves no identity, and
//! `run` refuses the directory until it is seeded again.
//!
//! Reseeding deletes only files replication itself writes, and only when the copy is Failed
//! (or its previous seed never completed); any other file in the replica refuses the seed.

use crate::error::ReplError;
use crate::events::EventLog;
use crate::identity::ReplicaIdentity;
use crate::layout::ReplicaLayout;
use crate::lock::ReplicaLock;
use crate::private_files::create_directory_durably;
use crate::replica::{Replica, ReplicaConfig};
use crate::status::{CopyState, CopyStatus};
use crate::verify::{self, ContentDigest, TableDigest};
use bluejet_engine::db::{lock_directory, KeyValue, RETENTION_MARKER_NAME};
use bluejet_engine::file::{FileSystem, LOCK_FILE_NAME};
use bluejet_engine::log::now_micros;
use bluejet_engine::LogPosition;
use bluejet_engine::{Database, PassiveDatabase, PassiveOrigin, DATABASE_FILE_NAME};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes loaded into the copy per write batch.
const LOAD_BATCH_BYTES: usize = 4 << 20;

/// What a seed did.
#[derive(Clone, Debug, Serialize)]
pub struct SeedReport {
    /// The snapshot's log position: the copy's content is the active's there.
    pub position: LogPosition,
    /// Tables copied, with their digests (verified on the copy).
    pub tables: ContentDigest,
    /// Files of an earlier copy that were removed (a reseed).
    pub removed: Vec<PathBuf>,
    /// Generations shipped, inspected and replayed after the snapshot during the seed.
    pub generations_replayed: u32,
    /// Seconds taken.
    pub seconds: f64,
}

/// Seeds the replica of `config` from the open active database `active`.
pub fn seed(active: &Database, config: &ReplicaConfig) -> Result<SeedReport, ReplError> {
    let started = Instant::now();
    let fs = config.fs();
    let layout = config.layout();
    refuse_nested(fs.as_ref(), &layout.root)?;
    create_directory_durably(fs.as_ref(), &layout.root)?;
    let lock = ReplicaLock::acquire_new(fs.as_ref(), &layout.lock())?;
    // Held before anything is removed: a database open there (an active node's, a running
    // copy) is refused, not cleared.
    let owner = lock_directory(fs.as_ref(), &layout.database())?;
    let removed = prepare(fs.as_ref(), &layout)?;
    let events = EventLog::new(Arc::clone(&fs), &layout.events());
    events.record("seeding", None, format!("from {}", config.active.display()));
    seeding_status(fs.as_ref(), &layout)?;
    // From here the copy needs every generation from the snapshot on: circular logging
    // stops, in this open and every later one, before the snapshot is taken.
    active.retain_logs(&retention_reason(&layout.root))?;
    let read = active.begin_read()?;
    let position = read.end();
    // A lazily committed snapshot must be durable before a copy depends on it.
    active.log().wait_durable(position)?;
    let origin = PassiveOrigin {
        signature: active.log().signature(),
        timeline: active.log().current_header().timeline,
        position,
    };
    let mut options = config.options.clone();
    options.log.base_name = active.log().config().base_name;
    let passive = PassiveDatabase::create_owned(
        owner,
        &layout.database(),
        &layout.logs(),
        options.clone(),
        origin,
    )?;
    // What the active's commits kept of the snapshot's content: the copy's, computed from
    // the entries loaded, must agree, or the copy would be Failed at its first proof point
    // for damage that is the active's (found by an adversarial round).
    let summary = read.content()?;
    let tables = copy_tables(&read, &passive)?;
    drop(read);
    passive.checkpoint()?;
    if let Some(difference) = summary.first_difference(&passive.begin_read()?.content()?) {
        return Err(ReplError::SeedRefused {
            path: config.active.clone(),
            reason: format!(
                "the active's entries differ from the content summary its commits kept \
                 ({difference}): the active's database is damaged (`bluejet integrity` names \
                 the pages); a copy of it would fail at its first proof point"
            ),
        });
    }
    let loaded = verify::digest(&passive.begin_read()?)?;
    let differences = verify::differences(&tables, &loaded);
    if !differences.is_empty() {
        return Err(ReplError::Mismatch(differences.join("; ")));
    }
    passive.close()?;
    ReplicaIdentity {
        signature: origin.signature,
        base_name: options.log.base_name.as_str().to_owned(),
        timeline: origin.timeline,
        seeded_at: position,
        seeded_micros: now_micros(),
        active: config.active.clone(),
    }
    .write(fs.as_ref(), &layout)?;
    events.record(
        "seeded",
        Some(position.generation),
        format!("at {position:?}"),
    );
    drop(lock);
    let generations_replayed = catch_up(active, config, position)?;
    Ok(SeedReport {
        position,
        tables,
        removed,
        generations_replayed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Seeds from the database in `active_directory`, opening it (it must not be open
/// elsewhere) and closing it afterwards.
pub fn seed_directory(config: &ReplicaConfig) -> Result<SeedReport, ReplError> {
    let mut options = bluejet_engine::Options {
        circular_logging: false,
        ..bluejet_engine::Options::default()
    };
    options.log.file_system = Arc::clone(&config.active_fs);
    let active = Database::open(&config.active, options)?;
    // Closed cleanly whatever the seed's outcome (found: a refused seed left the active in
    // dirty shutdown, needing a recovery).
    let seeded = seed(&active, config);
    let closed = active.close();
    let report = seeded?;
    closed?;
    Ok(report)
}

/// What the active's retention marker says of a replica in `root`.
pub fn retention_reason(root: &Path) -> String {
    format!(
        "replica {} (its shipper copies closed generations)",
        root.display()
    )
}

/// A copy is never made inside another replica or database directory (found: a seed into a
/// live replica's `incoming/` succeeded, nesting a whole replica in the directory its node
/// ships into).
fn refuse_nested(fs: &dyn FileSystem, root: &Path) -> Result<(), ReplError> {
    for ancestor in root.ancestors().skip(1) {
        let layout = crate::layout::ReplicaLayout::new(ancestor);
        let holder = [layout.identity(), ancestor.join(DATABASE_FILE_NAME)]
            .into_iter()
            .find(|marker| fs.exists(marker));
        if let Some(marker) = holder {
            return Err(ReplError::SeedRefused {
                path: root.to_owned(),
                reason: format!(
                    "it lies inside {} (it holds {}): choose a directory of its own",
                    ancestor.display(),
                    marker.display()
                ),
            });
        }
    }
    Ok(())
}

/// Closes the snapshot's generation on the active and brings the copy up to it.
fn catch_up(
    active: &Database,
    config: &ReplicaConfig,
    position: LogPosition,
) -> Result<u32, ReplError> {
    active.log().close_through(position)?;
    let mut replica = Replica::open(config.clone())?;
    replica.catch_up(position, Duration::from_secs(60))?;
    let replayed = replica
        .passive()
        .map_or(0, |p| p.next_generation() - position.generation);
    replica.close(CopyState::Initializing, "seeded")?;
    Ok(replayed)
}

/// Copies every table of the snapshot into the copy; returns the snapshot's digests.
fn copy_tables(
    read: &bluejet_engine::ReadTransaction,
    passive: &PassiveDatabase,
) -> Result<ContentDigest, ReplError> {
    let mut digests = ContentDigest::new();
    for name in read.table_names()? {
        let table = read.open_table(&name)?;
        let mut digest = TableDigest::default();
        let mut batch: Vec<KeyValue> = Vec::new();
        let mut batch_bytes = 0;
        passive.load(&name, &[])?;
        for entry in table.range(..)? {
            let (key, value) = entry?;
            digest.add(&key, &value);
            batch_bytes += key.len() + value.len();
            batch.push((key, value));
            if batch_bytes >= LOAD_BATCH_BYTES {
                passive.load(&name, &batch)?;
                batch.clear();
                batch_bytes = 0;
            }
        }
        passive.load(&name, &batch)?;
        digests.insert(name, digest);
    }
    Ok(digests)
}

fn seeding_status(fs: &dyn FileSystem, layout: &ReplicaLayout) -> Result<(), ReplError> {
    CopyStatus {
        state: CopyState::Seeding,
        message: "seeding from a snapshot of the active".into(),
        updated_micros: now_micros(),
        ..CopyStatus::default()
    }
    .write(fs, layout)
}

/// Makes the replica directory ready for a seed: refuses a copy that is not Failed (unless
/// its seed never completed) and any file replication does not write; removes the rest.
fn prepare(fs: &dyn FileSystem, layout: &ReplicaLayout) -> Result<Vec<PathBuf>, ReplError> {
    let refuse = |reason: String| ReplError::SeedRefused {
        path: layout.root.clone(),
        reason,
    };
    if fs.exists(&layout.identity()) {
        let status = CopyStatus::read(fs, layout, Duration::from_secs(30))
            .ok()
            .flatten();
        let state = status.as_ref().map(|status| status.state);
        if !matches!(state, Some(CopyState::Failed)) {
            return Err(refuse(format!(
                "the copy is {}; only a Failed copy is reseeded",
                state.map_or("of unknown state".to_owned(), |s| format!("{s:?}"))
            )));
        }
    }
    let (known, unknown) = survey(fs, layout)?;
    if !unknown.is_empty() {
        let names: Vec<String> = unknown.iter().map(|p| p.display().to_string()).collect();
        return Err(refuse(format!(
            "files replication did not write are present: {}",
            names.join(", ")
        )));
    }
    for path in &known {
        fs.remove(path)
            .map_err(|error| ReplError::io(path, "removing", error))?;
    }
    layout.create(fs)?;
    for directory in layout.directories() {
        fs.sync_directory(&directory)
            .map_err(|error| ReplError::io(&directory, "syncing", error))?;
    }
    Ok(known)
}

/// The files of the replica a reseed removes, and the files it does not know.
fn survey(
    fs: &dyn FileSystem,
    layout: &ReplicaLayout,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), ReplError> {
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    let list = |directory: &Path| {
        fs.list(directory)
            .map_err(|error| ReplError::io(directory, "listing", error))
    };
    for name in list(&layout.root)? {
        let path = layout.root.join(&name);
        if !layout.is_known(&layout.root, &name) {
            unknown.push(path);
        } else if ReplicaLayout::is_node_file(&name) {
            // The node's own: never the seed's to remove.
        } else if name.ends_with(".json") || name.ends_with(".tmp") {
            known.push(path);
        }
    }
    for directory in layout.directories().into_iter().chain([layout.blocks()]) {
        if !fs.exists(&directory) {
            continue;
        }
        for name in list(&directory)? {
            let path = directory.join(&name);
            if name == LOCK_FILE_NAME {
                // Never removed: a new file would be a second lock beside a holder's.
                continue;
            }
            if name == RETENTION_MARKER_NAME {
                // Never removed: a node's database keeps its log for its peer, and the
                // marker says so to every later open (design.md, "Circular logging").
                continue;
            }
            if layout.is_known(&directory, &name) {
                known.push(path);
            } else {
                unknown.push(path);
            }
        }
    }
    Ok((known, unknown))
}
