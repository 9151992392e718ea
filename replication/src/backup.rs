//! Backups taken from the passive copy, with no load on the active.
//!
//! A backup holds the replica for its duration (the replica lock: no replication service
//! may run), opens the passive copy, replays every inspected generation, checkpoints and
//! closes it. The database file then holds exactly the state at its header's checkpoint;
//! a **full** backup copies it and the generations from the checkpoint's through the last
//! replayed, an **incremental** one the generations after the previous backup through the
//! last replayed. Files are copied under temporary names, synced, renamed, the directory
//! synced, and the manifest ([`Manifest`]) written last. The backup is then recorded in the
//! replica's `backups.json` (so the active may truncate what it covers) and its event log.

use crate::backup_error::BackupError;
use crate::backup_manifest::{copy_files, BackupFile, BackupKind, BaseBackup, Manifest};
use crate::events::EventLog;
use crate::identity::ReplicaIdentity;
use crate::layout::ReplicaLayout;
use crate::lock::ReplicaLock;
use crate::private_files::create_directory_durably;
use crate::replay::replay_available;
use crate::replica::ReplicaConfig;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::log::now_micros;
use bluejet_engine::ContentSummary;
use bluejet_engine::{BaseName, LogPosition};
use bluejet_engine::{PassiveDatabase, DATABASE_FILE_NAME};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The record file's name in the replica directory.
pub const HISTORY_NAME: &str = "backups.json";
/// The record file's format version.
pub const HISTORY_FORMAT: u32 = 1;

/// One backup as the replica remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// The backup's id (its manifest's).
    pub id: String,
    /// Full or incremental.
    pub kind: BackupKind,
    /// First and last generation included, if any.
    pub generations: Option<(u32, u32)>,
    /// The newest generation the backup (with its bases) restores.
    pub covers_through: u32,
    /// Its content position.
    pub position: LogPosition,
    /// When it was taken (µs since the Unix epoch).
    pub time_micros: u64,
    /// Where it was written.
    pub target: PathBuf,
}

/// `backups.json`: the last full and the last incremental backup of a replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHistory {
    /// [`HISTORY_FORMAT`].
    pub format: u32,
    /// The last full backup.
    pub last_full: Option<BackupRecord>,
    /// The last incremental backup after it (cleared by a full backup).
    pub last_incremental: Option<BackupRecord>,
}

impl BackupHistory {
    /// The record file of the replica in `layout`.
    pub fn path(layout: &ReplicaLayout) -> PathBuf {
        layout.root.join(HISTORY_NAME)
    }

    /// Reads the replica's backup record (empty if none was ever taken).
    pub fn read(fs: &dyn FileSystem, layout: &ReplicaLayout) -> Result<Self, BackupError> {
        let path = Self::path(layout);
        let Some(history): Option<Self> = sealed::read(fs, &path)? else {
            return Ok(Self::default());
        };
        if history.format != HISTORY_FORMAT {
            return Err(BackupError::Damaged {
                path,
                generation: None,
                reason: format!("format {}, expected {HISTORY_FORMAT}", history.format),
            });
        }
        Ok(history)
    }

    /// Writes the record file.
    pub fn write(&self, fs: &dyn FileSystem, layout: &ReplicaLayout) -> Result<(), BackupError> {
        Ok(sealed::write(fs, &Self::path(layout), self)?)
    }

    /// The newest backup: the last incremental if there is one, else the last full.
    pub fn latest(&self) -> Option<&BackupRecord> {
        self.last_incremental.as_ref().or(self.last_full.as_ref())
    }

    /// The newest generation covered by a backup, if any.
    pub fn covers_through(&self) -> Option<u32> {
        self.latest().map(|record| record.covers_through)
    }

    /// Notes a backup just taken.
    fn note(&mut self, manifest: &Manifest, target: &Path) {
        let record = BackupRecord {
            id: manifest.id.clone(),
            kind: manifest.kind,
            generations: manifest.first_generation.zip(manifest.last_generation),
            covers_through: manifest.covers_through(),
            position: manifest.position,
            time_micros: manifest.created_micros,
            target: target.to_owned(),
        };
        self.format = HISTORY_FORMAT;
        match manifest.kind {
            BackupKind::Full => {
                self.last_full = Some(record);
                self.last_incremental = None;
            }
            BackupKind::Incremental => self.last_incremental = Some(record),
        }
    }
}

/// What a backup did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReport {
    /// The backup directory.
    pub target: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Generations the passive replayed before the backup.
    pub replayed_before: u32,
    /// Bytes copied.
    pub bytes: u64,
}

/// The passive's state once brought up to date and checkpointed.
struct PassiveState {
    /// The content at `position`.
    content: ContentSummary,
    checkpoint: LogPosition,
    position: LogPosition,
    last_replayed: u32,
    timeline: u64,
    replayed_now: u32,
}

/// Takes a full backup of the replica of `config` into `to` (a new or empty directory).
pub fn full(config: &ReplicaConfig, to: &Path) -> Result<BackupReport, BackupError> {
    take(config, to, BackupKind::Full)
}

/// Takes an incremental backup: the generations after the replica's last backup.
pub fn incremental(config: &ReplicaConfig, to: &Path) -> Result<BackupReport, BackupError> {
    take(config, to, BackupKind::Incremental)
}

fn take(config: &ReplicaConfig, to: &Path, kind: BackupKind) -> Result<BackupReport, BackupError> {
    let lock = ReplicaLock::acquire(config.fs().as_ref(), &config.layout().lock())?;
    take_held(config, to, kind, lock.as_ref())
}

/// Takes a backup of the replica of `config` into `to` while the caller holds the replica
/// lock (`_held`; `None` on a simulated file system, which has no lock): a running cluster
/// node pauses its replication service and holds the lock itself between the pause and the
/// restart, so that no other process takes the replica meanwhile.
pub fn take_held(
    config: &ReplicaConfig,
    to: &Path,
    kind: BackupKind,
    _held: Option<&ReplicaLock>,
) -> Result<BackupReport, BackupError> {
    let fs = config.fs();
    let fs = fs.as_ref();
    let layout = config.layout();
    let identity = ReplicaIdentity::read(fs, &layout)?;
    let mut history = BackupHistory::read(fs, &layout)?;
    let base = match kind {
        BackupKind::Full => None,
        BackupKind::Incremental => Some(base_of(&history, &layout)?),
    };
    prepare_target(fs, to)?;
    let state = bring_up_to_date(config, &identity, kind)?;
    let first = match &base {
        None => state.checkpoint.generation,
        Some(base) => base.covers_through + 1,
    };
    if base.is_some() && first > state.last_replayed {
        return Err(BackupError::refused(
            &layout.root,
            format!(
                "nothing to back up: the last backup covers generation {} and the passive has \
                 replayed only through generation {}",
                first - 1,
                state.last_replayed
            ),
        ));
    }
    let base_name = identity.base()?;
    let sources = sources(fs, &layout, base_name, kind, first, state.last_replayed)?;
    let files = copy_files(fs, to, &sources)?;
    let manifest = manifest(&identity, &state, kind, base, files, first, &layout);
    manifest.write(fs, to)?;
    fs.sync_directory(to)
        .map_err(|error| BackupError::io(to, "syncing", error))?;
    history.note(&manifest, to);
    history.write(fs, &layout)?;
    record_event(config, &manifest, to);
    Ok(BackupReport {
        target: to.to_owned(),
        bytes: manifest.files.iter().map(|file| file.bytes).sum(),
        manifest,
        replayed_before: state.replayed_now,
    })
}

/// The backup an incremental follows: the replica's newest.
fn base_of(history: &BackupHistory, layout: &ReplicaLayout) -> Result<BaseBackup, BackupError> {
    let latest = history.latest().ok_or_else(|| {
        BackupError::refused(
            &layout.root,
            "no full backup of this replica yet: an incremental backup needs one to follow",
        )
    })?;
    Ok(BaseBackup {
        id: latest.id.clone(),
        kind: latest.kind,
        covers_through: latest.covers_through,
        position: latest.position,
    })
}

/// Creates `to` if needed; refuses a directory that already holds anything.
pub(crate) fn prepare_target(fs: &dyn FileSystem, to: &Path) -> Result<(), BackupError> {
    if fs.exists(to) {
        let mut names = fs
            .list(to)
            .map_err(|error| BackupError::io(to, "listing", error))?;
        // The file layer lists regular files only; on the real disk a subdirectory or a
        // symbolic link makes the target not empty too (found: a cluster's root directory
        // was taken as an empty restore target).
        if let Ok(entries) = std::fs::read_dir(to) {
            names = entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
        }
        if !names.is_empty() {
            return Err(BackupError::refused(
                to,
                format!(
                    "not empty ({} entries, such as {}): choose a new directory",
                    names.len(),
                    names[0]
                ),
            ));
        }
        return Ok(());
    }
    Ok(create_directory_durably(fs, to)?)
}

/// Opens the passive copy, replays every inspected generation, checkpoints and closes it.
/// A full backup first recounts every entry of the copy against the summary it keeps (it
/// reads the whole copy anyway): a copy altered behind the engine's back is refused, not
/// backed up. An incremental one takes the summary as kept.
fn bring_up_to_date(
    config: &ReplicaConfig,
    identity: &ReplicaIdentity,
    kind: BackupKind,
) -> Result<PassiveState, BackupError> {
    let layout = config.layout();
    let mut options = config.options.clone();
    options.log.base_name = identity.base()?;
    let fs = config.fs();
    let base = options.log.base_name;
    let passive = PassiveDatabase::open(&layout.database(), &layout.logs(), options)?;
    let replayed_now = replay_available(&passive, fs.as_ref(), &layout.logs(), base)?;
    passive.checkpoint()?;
    let content = match kind {
        BackupKind::Full => passive.verify_content()?,
        BackupKind::Incremental => passive.begin_read()?.content()?,
    };
    let state = PassiveState {
        content,
        checkpoint: passive.header().checkpoint,
        position: passive.replayed(),
        last_replayed: passive.next_generation().saturating_sub(1),
        timeline: passive.timeline(),
        replayed_now,
    };
    passive.close()?;
    Ok(state)
}

/// The files to copy: the database (full) and generations `first..=last` from `logs/`.
fn sources(
    fs: &dyn FileSystem,
    layout: &ReplicaLayout,
    base: BaseName,
    kind: BackupKind,
    first: u32,
    last: u32,
) -> Result<Vec<(PathBuf, String, Option<u32>)>, BackupError> {
    let mut sources = Vec::new();
    if kind == BackupKind::Full {
        let name = DATABASE_FILE_NAME.to_owned();
        sources.push((layout.database().join(&name), name, None));
    }
    for generation in first..=last {
        let name = base.closed(generation);
        let path = layout.logs().join(&name);
        if !fs.exists(&path) {
            return Err(BackupError::refused(
                &path,
                format!(
                    "generation {generation} is no longer in the replica's log: take a full \
                     backup"
                ),
            ));
        }
        sources.push((path, name, Some(generation)));
    }
    Ok(sources)
}

fn manifest(
    identity: &ReplicaIdentity,
    state: &PassiveState,
    kind: BackupKind,
    base: Option<BaseBackup>,
    files: Vec<BackupFile>,
    first: u32,
    layout: &ReplicaLayout,
) -> Manifest {
    let created_micros = now_micros();
    let included = first <= state.last_replayed;
    Manifest {
        format: crate::backup_manifest::BACKUP_FORMAT,
        id: format!(
            "{}-{created_micros}",
            if kind == BackupKind::Full {
                "full"
            } else {
                "incremental"
            }
        ),
        kind,
        signature: identity.signature,
        base_name: identity.base_name.clone(),
        timeline: state.timeline,
        database_checkpoint: (kind == BackupKind::Full).then_some(state.checkpoint),
        position: state.position,
        first_generation: included.then_some(first),
        last_generation: included.then_some(state.last_replayed),
        files,
        created_micros,
        source: layout.root.clone(),
        base,
        content: Some(state.content.clone()),
    }
}

fn record_event(config: &ReplicaConfig, manifest: &Manifest, to: &Path) {
    let events = EventLog::new(config.fs(), &config.layout().events());
    let generations = match manifest.first_generation.zip(manifest.last_generation) {
        Some((first, last)) => format!("generations {first}..{last}"),
        None => "no generations".to_owned(),
    };
    events.record(
        "backup",
        manifest.last_generation,
        format!(
            "{:?} backup {} to {}: {generations}, position {}",
            manifest.kind,
            manifest.id,
            to.display(),
            manifest.position
        ),
    );
}
