//! Backups from the passive copy, their verification, restores (whole and to a generation),
//! and log truncation that never deletes what a passive or a backup still needs.

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions). Test data
// is made by truncating counters into bytes on purpose, and sizes here are small constants.
// Ignored results are the cleanup of helper threads and sockets a test tears down (work
// left for a later pass: issue 16 asks them to be logged).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::let_underscore_must_use
)]

mod common;

use bluejet_engine::file::OsFileSystem;
use bluejet_engine::BaseName;
use bluejet_engine::LogPosition;
use bluejet_engine::{Database, Options};
use bluejet_replication::backup::{self, BackupHistory};
use bluejet_replication::backup_error::BackupError;
use bluejet_replication::backup_manifest::{copy_files, BackupKind, Manifest, MANIFEST_NAME};
use bluejet_replication::backup_verify::verify;
use bluejet_replication::identity::ReplicaIdentity;
use bluejet_replication::restore::restore;
use bluejet_replication::sealed;
use bluejet_replication::seed::seed;
use bluejet_replication::truncate::{
    decide, gather, space_warning, truncate_active, truncate_replica,
};
use bluejet_replication::verify::{digest, ContentDigest};
use bluejet_replication::{CopyState, ReplError, Replica, ReplicaConfig};
use common::{active_options, model_digest, replica_config, Model};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An active database, its model, and the model's digest at every commit end.
struct Source {
    _dir: tempfile::TempDir,
    path: PathBuf,
    active: Database,
    model: Model,
    states: BTreeMap<LogPosition, ContentDigest>,
    round: u32,
}

impl Source {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let active = Database::open(&path, active_options()).unwrap();
        let mut source = Self {
            _dir: dir,
            path,
            active,
            model: Model::new(),
            states: BTreeMap::new(),
            round: 0,
        };
        source.write(50);
        source
    }

    /// `rounds` transactions of inserts and removes, then a roll (the copy replays closed
    /// generations only).
    fn write(&mut self, rounds: u32) {
        for _ in 0..rounds {
            let round = self.round;
            self.round += 1;
            let mut write = self.active.begin_write().unwrap();
            write.create_table("messages").unwrap();
            write.create_table("folders").unwrap();
            for j in 0..5u32 {
                let key = format!("m-{:05}", (round * 7 + j * 13) % 700).into_bytes();
                let table = if j % 2 == 0 { "messages" } else { "folders" };
                if round % 9 == 4 && j == 1 {
                    write.remove(table, &key).unwrap();
                    self.model.entry(table.into()).or_default().remove(&key);
                } else {
                    let value = format!("{round}-{j}")
                        .repeat(1 + (round as usize % 50))
                        .into_bytes();
                    write.create_table(table).unwrap();
                    write.insert(table, &key, &value).unwrap();
                    self.model
                        .entry(table.into())
                        .or_default()
                        .insert(key, value);
                }
            }
            let committed = write.commit().unwrap();
            self.states.insert(committed.end, model_digest(&self.model));
        }
        self.active.log().roll().unwrap();
    }

    fn end(&self) -> LogPosition {
        self.active.begin_read().unwrap().end()
    }

    /// Seeds a replica in `dir` and records the seed's state.
    fn seed(&mut self, dir: &Path) -> ReplicaConfig {
        let config = replica_config(&self.path, dir);
        let report = seed(&self.active, &config).unwrap();
        self.states
            .insert(report.position, model_digest(&self.model));
        config
    }

    /// Brings the replica up to the active's end, then releases it.
    fn catch_up(&self, config: &ReplicaConfig) {
        let mut replica = Replica::open(config.clone()).unwrap();
        replica
            .catch_up(self.end(), Duration::from_secs(30))
            .unwrap();
        replica.close(CopyState::Disabled, "test").unwrap();
    }
}

fn restored_digest(directory: &Path) -> ContentDigest {
    let database = Database::open(directory, Options::default()).unwrap();
    let content = digest(&database.begin_read().unwrap()).unwrap();
    database.close().unwrap();
    content
}

#[test]
fn full_and_incremental_backups_verify_and_restore() {
    let mut source = Source::new();
    let replica_dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let config = source.seed(replica_dir.path());
    source.write(300);
    source.catch_up(&config);
    source.write(100); // shipped to no one yet: the backup has the passive's state

    // A running replica holds the lock: the backup refuses.
    let held = Replica::open(config.clone()).unwrap();
    let error = backup::full(&config, &backups.path().join("refused")).unwrap_err();
    assert!(
        matches!(error, BackupError::Repl(ReplError::Locked { .. })),
        "{error}"
    );
    drop(held);

    // A target holding only a directory or a link is not empty (found: a cluster's root was
    // taken as an empty target).
    let occupied = backups.path().join("occupied");
    std::fs::create_dir_all(occupied.join("a")).unwrap();
    let error = backup::full(&config, &occupied).unwrap_err();
    assert!(error.to_string().contains("not empty"), "{error}");
    let linked = backups.path().join("linked");
    std::fs::create_dir(&linked).unwrap();
    std::os::unix::fs::symlink("/nonexistent", linked.join("bluejet.db")).unwrap();
    let error = backup::full(&config, &linked).unwrap_err();
    assert!(error.to_string().contains("not empty"), "{error}");

    let full_dir = backups.path().join("full");
    let full = backup::full(&config, &full_dir).unwrap();
    let manifest = &full.manifest;
    assert_eq!(manifest.kind, BackupKind::Full);
    assert!(
        full.replayed_before >= 1,
        "the passive replayed what was inspected"
    );
    assert!(manifest.last_generation.unwrap() >= manifest.first_generation.unwrap());
    let report = verify(config.fs().as_ref(), &full_dir).unwrap();
    assert!(report.passed(), "{:?}", report.problems);

    // An incremental with no full before it is refused; without new generations too.
    let error = backup::incremental(&config, &backups.path().join("none")).unwrap_err();
    assert!(matches!(error, BackupError::Refused { .. }), "{error}");

    source.write(300);
    source.catch_up(&config);
    let incremental_dir = backups.path().join("incremental");
    let incremental = backup::incremental(&config, &incremental_dir).unwrap();
    let inc = &incremental.manifest;
    assert_eq!(inc.kind, BackupKind::Incremental);
    assert_eq!(inc.base.as_ref().unwrap().id, manifest.id);
    assert_eq!(inc.first_generation, Some(manifest.covers_through() + 1));
    assert!(verify(config.fs().as_ref(), &incremental_dir)
        .unwrap()
        .passed());
    let history = BackupHistory::read(config.fs().as_ref(), &config.layout()).unwrap();
    assert_eq!(history.last_full.as_ref().unwrap().id, manifest.id);
    assert_eq!(history.covers_through(), Some(inc.covers_through()));

    // The full backup alone restores the content at its position.
    let targets = tempfile::tempdir().unwrap();
    let only_full = targets.path().join("full");
    let restored = restore(
        std::slice::from_ref(&full_dir),
        &only_full,
        None,
        Options::default(),
    )
    .unwrap();
    assert_eq!(restored.position, manifest.position);
    assert_eq!(
        restored_digest(&only_full),
        source.states[&manifest.position]
    );

    // Full + incremental: the content at the incremental's position.
    let chain = [full_dir.clone(), incremental_dir.clone()];
    let both = targets.path().join("both");
    let restored = restore(&chain, &both, None, Options::default()).unwrap();
    assert_eq!(restored.position, inc.position);
    assert!(restored.transactions > 0);
    assert_eq!(restored_digest(&both), source.states[&inc.position]);

    // To a generation inside the incremental: the content at that generation's last commit.
    let to = inc.first_generation.unwrap() + 1;
    let partial = targets.path().join("partial");
    let restored = restore(&chain, &partial, Some(to), Options::default()).unwrap();
    assert_eq!(*restored.generations.last().unwrap(), to);
    assert!(restored.position.generation <= to && restored.position < inc.position);
    let expected = &source.states[&restored.position];
    assert_eq!(restored_digest(&partial), *expected);

    // Out of range, a chain in the wrong order, a target that is not empty: refused.
    let error = restore(
        &chain,
        &targets.path().join("x"),
        Some(1),
        Options::default(),
    );
    assert!(matches!(error, Err(BackupError::Refused { .. })));
    let reversed = [incremental_dir, full_dir];
    let error = restore(
        &reversed,
        &targets.path().join("y"),
        None,
        Options::default(),
    );
    assert!(matches!(error, Err(BackupError::Refused { .. })));
    let error = restore(&chain[..1], &both, None, Options::default());
    assert!(matches!(error, Err(BackupError::Refused { .. })));
}

/// Flips one bit at `offset` of the file at `path`.
fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_bit_in_a_backup_fails_verification_naming_the_file() {
    let mut source = Source::new();
    let replica_dir = tempfile::tempdir().unwrap();
    let config = source.seed(replica_dir.path());
    source.write(300);
    source.catch_up(&config);
    let backups = tempfile::tempdir().unwrap();
    let full_dir = backups.path().join("full");
    let full = backup::full(&config, &full_dir).unwrap();
    let fs = config.fs();

    let generation = full.manifest.last_generation.unwrap();
    let name = full
        .manifest
        .files
        .iter()
        .find(|file| file.generation == Some(generation))
        .unwrap()
        .name
        .clone();
    flip(&full_dir.join(&name), 5000);
    let report = verify(fs.as_ref(), &full_dir).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].path, full_dir.join(&name));
    assert_eq!(report.problems[0].generation, Some(generation));
    assert!(report.problems[0].reason.contains("crc32c"));
    flip(&full_dir.join(&name), 5000);
    assert!(verify(fs.as_ref(), &full_dir).unwrap().passed());

    flip(&full_dir.join("bluejet.db"), 9000);
    let report = verify(fs.as_ref(), &full_dir).unwrap();
    assert_eq!(report.problems[0].path, full_dir.join("bluejet.db"));
    let target = backups.path().join("restored");
    let error = restore(
        std::slice::from_ref(&full_dir),
        &target,
        None,
        Options::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&error, BackupError::Damaged { path, .. } if path.ends_with("bluejet.db")),
        "{error}"
    );
    assert!(!target.join("bluejet.db").exists());

    // A damaged manifest is reported naming it.
    flip(&full_dir.join("backup.json"), 40);
    let error = verify(fs.as_ref(), &full_dir).unwrap_err();
    assert!(error.to_string().contains("backup.json"), "{error}");
}

#[test]
fn truncation_keeps_what_a_passive_or_a_backup_needs() {
    let mut source = Source::new();
    let behind_dir = tempfile::tempdir().unwrap();
    let ahead_dir = tempfile::tempdir().unwrap();
    let behind = source.seed(behind_dir.path());
    let ahead = source.seed(ahead_dir.path());
    source.write(200);
    source.catch_up(&behind);
    source.write(400);
    source.catch_up(&ahead);
    // The log's checkpoint moves to the older header copy's: two checkpoints move it.
    source.active.checkpoint().unwrap();
    source.active.checkpoint().unwrap();
    let replicas = [behind.replica.clone(), ahead.replica.clone()];

    // The lagging replica and the missing backup both hold the oldest generation.
    let input = gather(&source.active, &replicas, false).unwrap();
    let checkpoint = input.checkpoint.generation;
    let behind_through = input.replicas[0].replayed_through.unwrap();
    assert!(behind_through + 1 < checkpoint, "{input:?}");
    let decision = decide(&input);
    assert!(decision.delete.is_empty(), "{decision:?}");
    let oldest = input.closed[0];
    assert_eq!(decision.oldest_kept, Some(oldest));
    assert_eq!(
        decision.reasons,
        vec![format!(
            "generation {oldest} is kept: not yet covered by a backup (no backup recorded)"
        )]
    );
    let warning = space_warning(90, 100, 0.8, &decision).unwrap();
    assert!(warning.starts_with("log space 90% of 100 B: truncation blocked because"));
    assert!(truncate_active(&source.active, &decision)
        .unwrap()
        .is_empty());

    // A backup of the ahead copy: now only the lagging replica holds generations back.
    let backups = tempfile::tempdir().unwrap();
    let full = backup::full(&ahead, &backups.path().join("full")).unwrap();
    assert!(full.manifest.covers_through() + 1 >= checkpoint);
    let decision = decide(&gather(&source.active, &replicas, false).unwrap());
    assert_eq!(decision.delete_below, behind_through + 1);
    assert_eq!(decision.oldest_kept, Some(behind_through + 1));
    assert_eq!(
        decision.reasons,
        vec![format!(
            "generation {} is kept: replica {} has replayed only through {behind_through}",
            behind_through + 1,
            behind.replica.display()
        )]
    );
    let deleted = truncate_active(&source.active, &decision).unwrap();
    assert_eq!(deleted, decision.delete);
    assert!(deleted.iter().all(|&g| g <= behind_through));

    // Both satisfied: everything below the checkpoint goes, and the active still reopens.
    source.catch_up(&behind);
    let decision = decide(&gather(&source.active, &replicas, false).unwrap());
    assert_eq!(decision.delete_below, checkpoint);
    assert!(decision.reasons[0].contains("at or above the checkpoint"));
    let deleted = truncate_active(&source.active, &decision).unwrap();
    assert!(!deleted.is_empty());
    let expected = digest(&source.active.begin_read().unwrap()).unwrap();
    let Source {
        _dir, active, path, ..
    } = source;
    active.close().unwrap();
    let reopened = Database::open(&path, active_options()).unwrap();
    assert_eq!(digest(&reopened.begin_read().unwrap()).unwrap(), expected);

    // Circular logging waives the backup, never a passive's need.
    let input = bluejet_replication::truncate::TruncationInput {
        closed: vec![3, 4, 5, 6],
        checkpoint: LogPosition::new(6, 100),
        replicas: vec![bluejet_replication::truncate::ReplicaProgress {
            replica: PathBuf::from("/x"),
            replayed_through: Some(4),
            needs_reseed: None,
        }],
        backup_covers_through: None,
        circular: true,
    };
    let decision = decide(&input);
    assert_eq!(decision.delete, vec![3, 4]);
    assert_eq!(
        decision.reasons,
        vec!["generation 5 is kept: replica /x has replayed only through 4".to_owned()]
    );
}

/// Issue 14, finding 6: generations a copy still needs deleted on the active (a truncation
/// that did not know the copy) make the copy Failed, naming the generation, never Healthy.
#[test]
fn a_copy_whose_next_generation_was_deleted_on_the_active_is_failed() {
    let mut source = Source::new();
    let replica_dir = tempfile::tempdir().unwrap();
    let config = source.seed(replica_dir.path());
    source.write(100);
    source.catch_up(&config);
    let mut replica = Replica::open(config.clone()).unwrap();
    let needed = replica.step().last_replayed.unwrap().generation + 1;
    source.write(300);
    source.active.checkpoint().unwrap();
    source.active.checkpoint().unwrap();
    // Truncated as if there were no copy (circular, none named).
    let decision = decide(&gather(&source.active, &[], true).unwrap());
    let deleted = truncate_active(&source.active, &decision).unwrap();
    assert!(deleted.contains(&needed), "{deleted:?}");
    let mut status = replica.step();
    for _ in 0..5 {
        status = replica.step();
    }
    assert_eq!(status.state, CopyState::Failed, "{status:?}");
    assert!(
        status.message.starts_with(&format!(
            "generation {needed} was deleted on the active: reseed"
        )),
        "{status:?}"
    );
    assert_eq!(status.deleted_on_active, Some(needed));
    let events = std::fs::read_to_string(config.replica.join("events.jsonl")).unwrap();
    assert!(events.contains("generation-deleted"), "{events}");

    // Bounded on both sides: the copy ships nothing more (its incoming area would grow
    // with every generation), and the active's retention no longer keeps generations for
    // it (its log would grow without bound until a reseed).
    let incoming = |config: &ReplicaConfig| {
        std::fs::read_dir(config.replica.join("incoming"))
            .unwrap()
            .count()
    };
    let before = incoming(&config);
    source.write(300);
    for _ in 0..5 {
        replica.step();
    }
    assert_eq!(
        incoming(&config),
        before,
        "nothing shipped after the deletion"
    );
    source.active.checkpoint().unwrap();
    source.active.checkpoint().unwrap();
    let replicas = [config.replica.clone()];
    let decision = decide(&gather(&source.active, &replicas, true).unwrap());
    assert_eq!(
        decision.delete_below,
        source.active.log().checkpoint().position.generation,
        "a copy that needs a reseed holds nothing: {decision:?}"
    );
    assert!(!decision.delete.is_empty());
    replica.close(CopyState::Disabled, "test").unwrap();
}

/// Issue 14, finding 6: a running copy truncates its own `logs/` once a generation is
/// replayed, checkpointed and backed up (or at once with circular logging), keeping the
/// generation before its checkpoint's.
#[test]
fn a_running_copy_bounds_its_logs_once_backed_up_or_circular() {
    use bluejet_replication::replay::ReplicaLogRetention;
    for circular in [false, true] {
        let mut source = Source::new();
        let replica_dir = tempfile::tempdir().unwrap();
        let mut config = source.seed(replica_dir.path());
        config.replay.checkpoint_interval = Duration::ZERO;
        if circular {
            config.replay.log_retention = ReplicaLogRetention::Circular;
        }
        source.write(300);
        source.catch_up(&config);
        let covered = if circular {
            None
        } else {
            let backups = tempfile::tempdir().unwrap();
            let full = backup::full(&config, &backups.path().join("full")).unwrap();
            Some(full.manifest.covers_through())
        };
        source.write(100);
        let logs = config.replica.join("logs");
        let mut replica = Replica::open(config.clone()).unwrap();
        replica
            .catch_up(source.end(), Duration::from_secs(30))
            .unwrap();
        source.write(20);
        replica
            .catch_up(source.end(), Duration::from_secs(30))
            .unwrap();
        let status = replica.step();
        assert_eq!(status.state, CopyState::Healthy, "{status:?}");
        let replayed = status.last_replayed.unwrap().generation;
        let oldest = std::fs::read_dir(&logs)
            .unwrap()
            .filter_map(|entry| {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                name.strip_prefix("E00")?
                    .strip_suffix(".log")?
                    .parse::<u32>()
                    .ok()
            })
            .min()
            .unwrap();
        match covered {
            Some(covered) => assert_eq!(oldest, covered + 1, "circular {circular}"),
            None => assert!(
                oldest + 2 >= replayed && oldest < replayed,
                "{oldest} {replayed}"
            ),
        }
        replica.close(CopyState::Disabled, "test").unwrap();
    }
}

#[test]
fn a_replica_truncated_after_a_backup_keeps_replicating_and_backing_up() {
    let mut source = Source::new();
    let replica_dir = tempfile::tempdir().unwrap();
    let config = source.seed(replica_dir.path());
    source.write(300);
    source.catch_up(&config);
    let fs = config.fs();
    // No backup yet: nothing goes.
    let kept = truncate_replica(fs.as_ref(), &config.replica, false).unwrap();
    assert!(kept.deleted.is_empty(), "{kept:?}");

    let backups = tempfile::tempdir().unwrap();
    let full_dir = backups.path().join("full");
    let full = backup::full(&config, &full_dir).unwrap();
    let truncated = truncate_replica(fs.as_ref(), &config.replica, false).unwrap();
    assert!(!truncated.deleted.is_empty(), "{truncated:?}");
    let checkpoint = full.manifest.database_checkpoint.unwrap().generation;
    assert!(truncated.deleted.iter().all(|&g| g < checkpoint));

    // The copy continues after the generations kept, and the next incremental follows.
    source.write(200);
    source.catch_up(&config);
    let incremental_dir = backups.path().join("incremental");
    let incremental = backup::incremental(&config, &incremental_dir).unwrap();
    let target = backups.path().join("restored");
    let chain = [full_dir, incremental_dir];
    let restored = restore(&chain, &target, None, Options::default()).unwrap();
    assert_eq!(restored.position, incremental.manifest.position);
    assert_eq!(restored_digest(&target), source.states[&restored.position]);
}

/// Reseals the manifest of the backup in `directory` with `change` applied, as someone able
/// to write the backup could: the checksum then matches the forged content.
fn reseal(directory: &Path, change: impl FnOnce(&mut Manifest)) {
    let mut manifest = Manifest::read(&OsFileSystem, directory).unwrap();
    change(&mut manifest);
    sealed::write(&OsFileSystem, &directory.join(MANIFEST_NAME), &manifest).unwrap();
}

/// The name the error refuses, if it is a refused file name held by `holder`.
fn refused_name(error: &BackupError, holder: &Path) -> Option<String> {
    match error {
        BackupError::Repl(ReplError::BadFileName(bad)) if bad.holder == holder => {
            Some(bad.name.clone())
        }
        _ => None,
    }
}

#[test]
fn a_manifest_resealed_with_an_escaping_name_fails_verify_and_restore_writes_nothing_outside() {
    let mut source = Source::new();
    let replica_dir = tempfile::tempdir().unwrap();
    let config = source.seed(replica_dir.path());
    source.write(300);
    source.catch_up(&config);
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let original = root.join("backups/original");
    let full = backup::full(&config, &original).unwrap();
    let generation = full.manifest.last_generation.unwrap();
    let name = BaseName::default().closed(generation);

    // From the backup `root/backups/forged`, `../../escape/NAME` is `root/escape/NAME`; from
    // the staging directory `root/restores/t1/restore-logs` it is `root/restores/escape/NAME`.
    let absolute = root.join("absolute").join(&name);
    for (label, forged) in [
        ("parent", format!("../../escape/{name}")),
        ("absolute", absolute.display().to_string()),
    ] {
        let backup = root.join("backups").join(label);
        copy_directory(&original, &backup);
        // The forged name reads the real generation: only its name is wrong.
        for place in [root.join("escape"), root.join("absolute")] {
            std::fs::create_dir_all(&place).unwrap();
            std::fs::copy(original.join(&name), place.join(&name)).unwrap();
        }
        reseal(&backup, |manifest| {
            let file = manifest
                .files
                .iter_mut()
                .find(|file| file.generation == Some(generation))
                .unwrap();
            file.name = forged.clone();
        });
        let holder = backup.join(MANIFEST_NAME);

        let error = verify(&OsFileSystem, &backup).unwrap_err();
        assert_eq!(
            refused_name(&error, &holder),
            Some(forged.clone()),
            "{error}"
        );
        assert!(error.to_string().contains(&forged), "{error}");

        let target = root.join("restores").join(label).join("t1");
        let error = restore(
            std::slice::from_ref(&backup),
            &target,
            None,
            Options::default(),
        )
        .unwrap_err();
        assert_eq!(
            refused_name(&error, &holder),
            Some(forged.clone()),
            "{error}"
        );
        assert!(!target.exists(), "nothing restored from a forged backup");
        assert!(
            !root.join("restores").join(label).join("escape").exists(),
            "nothing written outside the target"
        );
        assert!(!PathBuf::from(format!("{}.tmp", absolute.display())).exists());
    }

    // Names the format does not allow, even plain ones, are refused as well.
    for (label, change) in [
        (
            "renamed",
            Box::new(|m: &mut Manifest| m.files[0].name = "other.db".into())
                as Box<dyn FnOnce(&mut Manifest)>,
        ),
        (
            "wrong-generation",
            Box::new(move |m: &mut Manifest| {
                let file = m
                    .files
                    .iter_mut()
                    .find(|f| f.generation == Some(generation))
                    .unwrap();
                file.name = BaseName::default().closed(generation + 1);
            }),
        ),
        (
            "base",
            Box::new(|m: &mut Manifest| m.base_name = "../".into()),
        ),
    ] {
        let backup = root.join("backups").join(label);
        copy_directory(&original, &backup);
        reseal(&backup, change);
        let error = verify(&OsFileSystem, &backup).unwrap_err();
        assert!(
            refused_name(&error, &backup.join(MANIFEST_NAME)).is_some(),
            "{label}: {error}"
        );
    }
}

#[test]
fn a_replica_identity_resealed_with_a_bad_base_name_is_refused_naming_it() {
    let mut source = Source::new();
    let replica_dir = tempfile::tempdir().unwrap();
    let config = source.seed(replica_dir.path());
    let layout = config.layout();
    let mut identity = ReplicaIdentity::read(&OsFileSystem, &layout).unwrap();
    identity.base_name = "../".into();
    identity.write(&OsFileSystem, &layout).unwrap();
    let backups = tempfile::tempdir().unwrap();
    let error = backup::full(&config, &backups.path().join("full")).unwrap_err();
    assert!(
        matches!(
            &error,
            BackupError::Repl(ReplError::BadFileName(bad))
                if bad.holder == layout.identity() && bad.name == "../"
        ),
        "{error}"
    );
    match Replica::open(config) {
        Err(ReplError::BadFileName(bad)) => assert_eq!(bad.holder, layout.identity()),
        Err(error) => panic!("{error}"),
        Ok(_) => panic!("a replica with a forged base name opened"),
    }
}

/// Copies the files of `from` (no subdirectories) into the new directory `to`.
fn copy_directory(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn copying_into_a_backup_or_restore_refuses_a_name_leaving_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("source.log");
    std::fs::write(&source, b"a generation").unwrap();
    let directory = root.path().join("target");
    std::fs::create_dir(&directory).unwrap();
    let outside = root.path().join("outside.log");
    for name in ["../outside.log".to_owned(), outside.display().to_string()] {
        let error = copy_files(
            &OsFileSystem,
            &directory,
            &[(source.clone(), name.clone(), Some(1))],
        )
        .unwrap_err();
        assert!(
            matches!(&error, BackupError::Repl(ReplError::BadFileName(bad))
                if bad.holder == directory && bad.name == name),
            "{error}"
        );
    }
    assert!(!outside.exists());
    assert!(!root.path().join("outside.log.tmp").exists());
    assert_eq!(std::fs::read_dir(&directory).unwrap().count(), 0);
}
