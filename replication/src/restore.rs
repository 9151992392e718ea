//! Restoring a backup into an independent database.
//!
//! A restore takes a chain of backups: a full backup, then optionally incrementals, each
//! following the one before (its manifest's `base.id` is the previous backup's id and its
//! first generation the one after what the previous covers). Every backup is verified
//! first. The database file is copied into the target, the chain's generations (up to
//! `to_generation` if given) are copied into a staging directory `TARGET/restore-logs`, and
//! replayed in order by a [`PassiveDatabase`] as one run, so a transaction spanning two
//! backups is applied whole; replay checks every proof point on the way. Every entry of the
//! result is then recounted and checked against the summary the copy keeps and, when replay
//! ended where the last backup ends, against the content its manifest records. The copy is
//! then closed clean (a header that needs no log) and
//! the staging directory removed: `Database::open(TARGET)` opens it as a new database with a
//! new log stream.

use crate::backup::prepare_target;
use crate::backup_error::BackupError;
use crate::backup_manifest::{copy_files, BackupKind, Manifest};
use crate::backup_verify::verify;
use bluejet_engine::file::{FileSystem, LockProbe};
use bluejet_engine::{BaseName, LogPosition};
use bluejet_engine::{ContentSummary, ContentTotals};
use bluejet_engine::{DbError, Options, PassiveDatabase, DATABASE_FILE_NAME};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The staging directory's name inside the target.
pub const STAGING_NAME: &str = "restore-logs";

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// The restored database's directory.
    pub target: PathBuf,
    /// The backups used, in order.
    pub backups: Vec<PathBuf>,
    /// The log position the restored content corresponds to.
    pub position: LogPosition,
    /// Generations replayed.
    pub generations: Vec<u32>,
    /// Transactions applied.
    pub transactions: u64,
    /// The restored content, recounted from every entry.
    pub content: ContentTotals,
    /// Whether it was checked against the last backup's manifest (replay ended at the
    /// manifest's position and the manifest records its content).
    pub content_matches_manifest: bool,
}

/// Restores the chain `backups` (a full backup, then its incrementals in order) into
/// `target`, a new or empty directory, replaying through `to_generation` (default: all).
pub fn restore(
    backups: &[PathBuf],
    target: &Path,
    to_generation: Option<u32>,
    options: Options,
) -> Result<RestoreReport, BackupError> {
    let fs = options.log.file_system.clone();
    let fs = fs.as_ref();
    refuse_owned(fs, target)?;
    let manifests = verified_chain(fs, backups)?;
    let last = check_range(&manifests, backups, to_generation)?;
    prepare_target(fs, target)?;
    let staging = target.join(STAGING_NAME);
    prepare_target(fs, &staging)?;
    stage(fs, backups, &manifests, target, &staging, last)?;
    let mut options = options;
    options.log.base_name = BaseName::new(&manifests[0].base_name)?;
    let replayed = replay(target, &staging, options, last, manifests.last())?;
    remove_staging(fs, &staging, target)?;
    Ok(RestoreReport {
        target: target.to_owned(),
        backups: backups.to_vec(),
        position: replayed.position,
        generations: replayed.generations,
        transactions: replayed.transactions,
        content: replayed.content.totals(),
        content_matches_manifest: replayed.matched,
    })
}

/// A target a database is open in (a running node's, say) is refused naming its owner,
/// before anything is written there.
fn refuse_owned(fs: &dyn FileSystem, target: &Path) -> Result<(), BackupError> {
    match bluejet_engine::db::probe_directory(fs, target)? {
        LockProbe::Free => Ok(()),
        LockProbe::Held(holder) => Err(DbError::InUse {
            directory: target.to_owned(),
            holder,
        }
        .into()),
    }
}

/// Verifies every backup and that they form a chain; returns their manifests.
fn verified_chain(fs: &dyn FileSystem, backups: &[PathBuf]) -> Result<Vec<Manifest>, BackupError> {
    let Some(first) = backups.first() else {
        return Err(BackupError::refused(Path::new("."), "no backup to restore"));
    };
    let mut manifests: Vec<Manifest> = Vec::new();
    for directory in backups {
        let report = verify(fs, directory)?;
        if let Some(problem) = report.problems.into_iter().next() {
            return Err(problem.into_error());
        }
        let manifest = report.manifest;
        check_link(directory, manifests.last(), &manifest)?;
        manifests.push(manifest);
    }
    if manifests[0].kind != BackupKind::Full {
        return Err(BackupError::refused(
            first,
            "an incremental backup: a restore starts from a full backup",
        ));
    }
    Ok(manifests)
}

/// `manifest` (of `directory`) follows `previous` in a chain.
fn check_link(
    directory: &Path,
    previous: Option<&Manifest>,
    manifest: &Manifest,
) -> Result<(), BackupError> {
    let Some(previous) = previous else {
        return Ok(());
    };
    let refuse = |reason: String| Err(BackupError::refused(directory, reason));
    if manifest.kind != BackupKind::Incremental {
        return refuse(
            "a full backup after the first: pass one full backup, then incrementals".into(),
        );
    }
    if manifest.signature != previous.signature {
        return refuse("a backup of another log stream".into());
    }
    if manifest.base.as_ref().map(|b| b.id.as_str()) != Some(previous.id.as_str()) {
        return refuse(format!(
            "follows backup {:?}, not {} (the backup before it on the command line)",
            manifest.base.as_ref().map(|b| &b.id),
            previous.id
        ));
    }
    if manifest.first_generation != Some(previous.covers_through() + 1) {
        return refuse(format!(
            "starts at generation {:?}, not {}",
            manifest.first_generation,
            previous.covers_through() + 1
        ));
    }
    Ok(())
}

/// The last generation to replay: `to_generation`, which must be within the chain.
fn check_range(
    manifests: &[Manifest],
    backups: &[PathBuf],
    to_generation: Option<u32>,
) -> Result<Option<u32>, BackupError> {
    let first = manifests[0].first_generation;
    let last = manifests.iter().rev().find_map(|m| m.last_generation);
    let Some(to) = to_generation else {
        return Ok(last);
    };
    match first.zip(last) {
        Some((first, last)) if (first..=last).contains(&to) => Ok(Some(to)),
        range => Err(BackupError::refused(
            &backups[0],
            format!(
                "generation {to} is not in the backup{}",
                range.map_or(" (it holds no generations)".into(), |(first, last)| {
                    format!(", which holds generations {first}..{last}")
                })
            ),
        )),
    }
}

/// Copies the database into `target` and the generations through `last` into `staging`.
fn stage(
    fs: &dyn FileSystem,
    backups: &[PathBuf],
    manifests: &[Manifest],
    target: &Path,
    staging: &Path,
    last: Option<u32>,
) -> Result<(), BackupError> {
    let database = backups[0].join(DATABASE_FILE_NAME);
    copy_files(
        fs,
        target,
        &[(database, DATABASE_FILE_NAME.to_owned(), None)],
    )?;
    let mut generations = Vec::new();
    for (directory, manifest) in backups.iter().zip(manifests) {
        for file in &manifest.files {
            if let Some(generation) = file.generation.filter(|&g| Some(g) <= last) {
                generations.push((
                    directory.join(&file.name),
                    file.name.clone(),
                    Some(generation),
                ));
            }
        }
    }
    copy_files(fs, staging, &generations)?;
    Ok(())
}

/// What replaying the staged generations gave.
struct Replayed {
    position: LogPosition,
    generations: Vec<u32>,
    transactions: u64,
    content: ContentSummary,
    matched: bool,
}

/// Replays the staged generations through `last`, recounts the result (and compares it with
/// `expected`'s content when replay ended at its position) and closes the copy clean.
fn replay(
    target: &Path,
    staging: &Path,
    options: Options,
    last: Option<u32>,
    expected: Option<&Manifest>,
) -> Result<Replayed, BackupError> {
    let passive = PassiveDatabase::open(target, staging, options)?;
    let mut generations = Vec::new();
    let mut transactions = 0;
    while last.is_some_and(|last| passive.next_generation() <= last) {
        let generation = passive.next_generation();
        let replay = passive.replay_generation(generation, None)?;
        transactions += replay.report.transactions_applied;
        generations.push(generation);
    }
    let position = passive.replayed();
    let content = passive.verify_content()?;
    let compared = expected
        .filter(|manifest| manifest.position == position)
        .and_then(|manifest| manifest.content.as_ref());
    if let Some(difference) = compared.and_then(|recorded| recorded.first_difference(&content)) {
        return Err(BackupError::Damaged {
            path: target.join(DATABASE_FILE_NAME),
            generation: None,
            reason: format!(
                "the restored content differs from the backup's manifest at {position}: \
                 {difference}"
            ),
        });
    }
    passive.close_clean()?;
    Ok(Replayed {
        position,
        generations,
        transactions,
        content,
        matched: compared.is_some(),
    })
}

/// Removes the staging directory's files and the directory, then syncs the target.
fn remove_staging(fs: &dyn FileSystem, staging: &Path, target: &Path) -> Result<(), BackupError> {
    let names = fs
        .list(staging)
        .map_err(|error| BackupError::io(staging, "listing", error))?;
    for name in names {
        let path = staging.join(name);
        fs.remove(&path)
            .map_err(|error| BackupError::io(&path, "removing", error))?;
    }
    std::fs::remove_dir(staging).map_err(|error| BackupError::io(staging, "removing", error))?;
    fs.sync_directory(target)
        .map_err(|error| BackupError::io(target, "syncing", error))
}
