//! Replication end to end on a real disk: seed, ship, inspect, replay, status, suspend,
//! verify, the service's threads, and the passive's content at every replayed generation.

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

use bluejet_engine::LogPosition;
use bluejet_engine::{Database, Options, PassiveDatabase};
use bluejet_replication::control::Control;
use bluejet_replication::seed::seed;
use bluejet_replication::verify::{differences, digest, ContentDigest};
use bluejet_replication::{CopyState, Replica, ReplicationService};
use common::{active_options, model_digest, replica_config, Link, Model};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn passive_equals_active_at_every_replayed_generation() {
    let active_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let active = Database::open(active_dir.path(), active_options()).unwrap();
    let mut model = Model::new();
    let mut write = active.begin_write().unwrap();
    write.create_table("messages").unwrap();
    for i in 0..200u32 {
        let key = format!("seed-{i:05}").into_bytes();
        let value = vec![i as u8; 300];
        write.insert("messages", &key, &value).unwrap();
        model
            .entry("messages".into())
            .or_default()
            .insert(key, value);
    }
    write.commit().unwrap();
    let config = replica_config(active_dir.path(), replica_dir.path());
    let report = seed(&active, &config).unwrap();
    assert_eq!(report.tables, model_digest(&model));

    // The model's digest after every commit, by commit end.
    let mut states: BTreeMap<LogPosition, ContentDigest> = BTreeMap::new();
    states.insert(report.position, model_digest(&model));
    for round in 0..800u32 {
        let mut write = active.begin_write().unwrap();
        for j in 0..5u32 {
            let key = format!("m-{:05}", (round * 7 + j * 13) % 900).into_bytes();
            let table = if j % 2 == 0 { "messages" } else { "folders" };
            if round % 9 == 4 && j == 1 {
                write.remove(table, &key).unwrap();
                model.entry(table.into()).or_default().remove(&key);
            } else {
                let value = format!("{round}-{j}")
                    .repeat(1 + (round as usize % 40))
                    .into_bytes();
                write.create_table(table).unwrap();
                write.insert(table, &key, &value).unwrap();
                model.entry(table.into()).or_default().insert(key, value);
            }
        }
        let committed = write.commit().unwrap();
        states.insert(committed.end, model_digest(&model));
    }
    active.log().roll().unwrap();

    let mut replica = Replica::open(config.clone()).unwrap();
    let last = active.log().current_generation() - 1;
    while replica.board().inspected_through() < last {
        replica.ship();
        replica.inspect();
    }
    drop(replica);
    let layout = config.layout();
    let passive =
        PassiveDatabase::open(&layout.database(), &layout.logs(), Options::default()).unwrap();
    let mut checked = 0;
    while passive.next_generation() <= last {
        passive
            .replay_generation(passive.next_generation(), None)
            .unwrap();
        let position = passive.replayed();
        let expected = states.get(&position).expect("a commit end");
        let read = passive.begin_read().unwrap();
        assert_eq!(digest(&read).unwrap(), *expected, "at {position:?}");
        checked += 1;
    }
    assert!(checked >= 5, "checked {checked} generations");
    let read = passive.begin_read().unwrap();
    let active_read = active.begin_read().unwrap();
    assert!(differences(&digest(&active_read).unwrap(), &digest(&read).unwrap()).is_empty());
}

#[test]
fn service_replicates_reports_status_and_suspends() {
    let active_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let active = Database::open(active_dir.path(), active_options()).unwrap();
    let config = replica_config(active_dir.path(), replica_dir.path());
    seed(&active, &config).unwrap();
    let service = ReplicationService::start(config.clone()).unwrap();
    for i in 0..2000u32 {
        let mut write = active.begin_write().unwrap();
        write.create_table("messages").unwrap();
        write
            .insert("messages", format!("{i:06}").as_bytes(), &[7u8; 200])
            .unwrap();
        write.commit().unwrap();
    }
    active.log().roll().unwrap();
    let end = active.begin_read().unwrap().end();
    service.wait_replayed(end, Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let status = service.status();
    assert_eq!(status.state, CopyState::Healthy, "{status:?}");
    assert_eq!(status.copy_queue, 0);
    assert_eq!(status.replay_queue, 0);
    let passive = service.passive().unwrap();
    let expected = digest(&active.begin_read().unwrap()).unwrap();
    assert_eq!(digest(&passive.begin_read().unwrap()).unwrap(), expected);

    let fs = config.fs();
    let layout = config.layout();
    assert!(Control::set(fs.as_ref(), &layout, true, "disk swap").unwrap());
    assert!(!Control::set(fs.as_ref(), &layout, true, "disk swap").unwrap());
    std::thread::sleep(Duration::from_millis(100));
    let status = service.status();
    assert_eq!(status.state, CopyState::Suspended);
    assert_eq!(status.message, "disk swap");
    assert!(Control::set(fs.as_ref(), &layout, false, "done").unwrap());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(service.status().state, CopyState::Healthy);
    service.stop().unwrap();
    let status =
        bluejet_replication::CopyStatus::read(fs.as_ref(), &layout, Duration::from_secs(5))
            .unwrap()
            .unwrap();
    assert_eq!(status.state, CopyState::Disabled);
}

#[test]
fn activated_copy_continues_the_stream_on_a_new_timeline() {
    let active_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let active = Database::open(active_dir.path(), active_options()).unwrap();
    let config = replica_config(active_dir.path(), replica_dir.path());
    seed(&active, &config).unwrap();
    for i in 0..500u32 {
        let mut write = active.begin_write().unwrap();
        write.create_table("messages").unwrap();
        write
            .insert("messages", format!("{i:06}").as_bytes(), &[3u8; 300])
            .unwrap();
        write.commit().unwrap();
    }
    active.log().roll().unwrap();
    let end = active.begin_read().unwrap().end();
    let expected = digest(&active.begin_read().unwrap()).unwrap();
    let mut replica = Replica::open(config.clone()).unwrap();
    replica.catch_up(end, Duration::from_secs(30)).unwrap();
    let last = replica.passive().unwrap().next_generation() - 1;
    drop(replica);
    drop(active);

    let layout = config.layout();
    let passive =
        PassiveDatabase::open(&layout.database(), &layout.logs(), Options::default()).unwrap();
    // Reopened at its checkpoint: replay what is left before taking over.
    while passive.next_generation() <= last {
        passive
            .replay_generation(passive.next_generation(), None)
            .unwrap();
    }
    let promoted = passive.activate(2).unwrap();
    assert_eq!(digest(&promoted.begin_read().unwrap()).unwrap(), expected);
    let header = promoted.log().current_header();
    assert_eq!(header.generation, last + 1);
    assert_eq!(header.timeline, 2);
    let mut write = promoted.begin_write().unwrap();
    write.create_table("messages").unwrap();
    write.insert("messages", b"after-failover", b"x").unwrap();
    write.commit().unwrap();
    promoted.close().unwrap();
    let reopened = Database::open(&layout.database(), Options::default()).unwrap();
    let read = reopened.begin_read().unwrap();
    let table = read.open_table("messages").unwrap();
    assert_eq!(table.len(), 501);
}

#[test]
fn seed_while_the_active_keeps_committing() {
    let active_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let active = Database::open(active_dir.path(), active_options()).unwrap();
    for i in 0..3000u32 {
        let mut write = active.begin_write().unwrap();
        write.create_table("messages").unwrap();
        write
            .insert("messages", format!("before-{i:06}").as_bytes(), &[1u8; 200])
            .unwrap();
        write.commit().unwrap();
    }
    let config = replica_config(active_dir.path(), replica_dir.path());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut write = active.begin_write().unwrap();
                write.create_table("messages").unwrap();
                write
                    .insert("messages", format!("during-{i:06}").as_bytes(), &[2u8; 200])
                    .unwrap();
                write.commit().unwrap();
                i += 1;
            }
            i
        });
        let report = seed(&active, &config).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let during = writer.join().unwrap();
        assert!(during > 0);
        report
    });
    assert!(report.tables["messages"].entries >= 3000);
    active.log().roll().unwrap();
    let end = active.begin_read().unwrap().end();
    let mut replica = Replica::open(config).unwrap();
    replica.catch_up(end, Duration::from_secs(30)).unwrap();
    let passive = replica.passive().unwrap();
    let expected = digest(&active.begin_read().unwrap()).unwrap();
    assert_eq!(digest(&passive.begin_read().unwrap()).unwrap(), expected);
}

#[test]
fn lagged_copy_applies_only_old_enough_generations() {
    let active_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let active = Database::open(active_dir.path(), active_options()).unwrap();
    let mut config = replica_config(active_dir.path(), replica_dir.path());
    seed(&active, &config).unwrap();
    let seeded = active.begin_read().unwrap().end();
    for i in 0..300u32 {
        let mut write = active.begin_write().unwrap();
        write.create_table("messages").unwrap();
        write
            .insert("messages", format!("{i:06}").as_bytes(), &[5u8; 400])
            .unwrap();
        write.commit().unwrap();
    }
    active.log().roll().unwrap();
    config.replay.lag = Some(Duration::from_secs(3600));
    let mut replica = Replica::open(config.clone()).unwrap();
    for _ in 0..3 {
        replica.step();
    }
    let status = replica.step();
    assert!(status.last_inspected.is_some(), "{status:?}");
    assert!(status.replay_queue > 0, "{status:?}");
    assert_eq!(replica.passive().unwrap().replayed(), seeded);
    drop(replica);
    config.replay.lag = Some(Duration::ZERO);
    let mut replica = Replica::open(config).unwrap();
    let end = active.begin_read().unwrap().end();
    replica.catch_up(end, Duration::from_secs(30)).unwrap();
    assert_eq!(replica.passive().unwrap().replayed(), end);
}

#[test]
fn unreachable_idle_active_is_not_healthy_and_a_brief_gap_does_not_flap() {
    let active_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let active = Database::open(active_dir.path(), active_options()).unwrap();
    let mut config = replica_config(active_dir.path(), replica_dir.path());
    seed(&active, &config).unwrap();
    let share = Link::new();
    config.active_fs = share.clone();
    config.thresholds.max_contact_age = Duration::from_millis(300);
    config.thresholds.settle = Duration::from_millis(400);
    config.thresholds.max_copy_queue = 1;
    let mut replica = Replica::open(config).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while replica.step().state != CopyState::Healthy {
        assert!(std::time::Instant::now() < deadline, "never Healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The active is idle, and its share goes away: nothing queues up, yet the copy is not
    // Healthy once contact is older than the threshold (and the change has settled).
    share.set_cut(true);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = replica.step();
        if status.state != CopyState::Healthy {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "an unreachable active stayed Healthy"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.state, CopyState::Failed);
    assert!(status.message.contains("log"), "{}", status.message);
    share.set_cut(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while replica.step().state != CopyState::Healthy {
        assert!(std::time::Instant::now() < deadline, "never Healthy again");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A gap that lasts less than the settle time leaves the state Healthy throughout.
    for i in 0..300u32 {
        let mut write = active.begin_write().unwrap();
        write.create_table("messages").unwrap();
        write
            .insert("messages", format!("{i:06}").as_bytes(), &[9u8; 900])
            .unwrap();
        write.commit().unwrap();
    }
    active.log().roll().unwrap();
    // Ship, then lose the first shipped file before inspection: a gap, filled a moment
    // later by the next ship round. The state stays Healthy throughout.
    let layout = replica.config().layout();
    replica.ship();
    let mut shipped: Vec<_> = std::fs::read_dir(layout.incoming())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    shipped.sort();
    assert!(shipped.len() >= 2, "{shipped:?}");
    std::fs::remove_file(&shipped[0]).unwrap();
    replica.inspect();
    let during = replica.board().publish();
    assert!(during.gap.is_some(), "{during:?}");
    let mut states = vec![during.state];
    for _ in 0..5 {
        states.push(replica.step().state);
    }
    assert!(
        states.iter().all(|state| *state == CopyState::Healthy),
        "{states:?}"
    );
    assert!(replica.step().gap.is_none());
}

#[test]
fn reseeding_refuses_a_healthy_copy_and_unknown_files() {
    let active_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let active = Database::open(active_dir.path(), active_options()).unwrap();
    let config = replica_config(active_dir.path(), replica_dir.path());
    seed(&active, &config).unwrap();
    let mut replica = Replica::open(config.clone()).unwrap();
    while replica.step().state != CopyState::Healthy {
        std::thread::sleep(Duration::from_millis(20));
    }
    replica.close(CopyState::Healthy, "").unwrap();
    let error = seed(&active, &config).unwrap_err().to_string();
    assert!(error.contains("only a Failed copy is reseeded"), "{error}");

    let junk = replica_dir.path().join("logs").join("notes.txt");
    std::fs::write(&junk, b"an operator's notes").unwrap();
    let fs = config.fs();
    let layout = config.layout();
    let mut status =
        bluejet_replication::CopyStatus::read(fs.as_ref(), &layout, Duration::from_secs(60))
            .unwrap()
            .unwrap();
    status.state = CopyState::Failed;
    status.write(fs.as_ref(), &layout).unwrap();
    let error = seed(&active, &config).unwrap_err().to_string();
    assert!(error.contains("notes.txt"), "{error}");
    assert!(junk.exists() && layout.database().join("bluejet.db").exists());

    std::fs::remove_file(&junk).unwrap();
    let report = seed(&active, &config).unwrap();
    assert!(
        !report.removed.is_empty(),
        "the old copy's files were removed"
    );

    // Found by an adversarial operator: a seed into a replica's `incoming/` (or any
    // directory below a replica or a database) nested a whole copy there. Refused, and
    // nothing is created.
    for inside in [
        replica_dir.path().join("incoming").join("nested"),
        active_dir.path().join("nested"),
    ] {
        let nested = replica_config(active_dir.path(), &inside);
        let error = seed(&active, &nested).unwrap_err().to_string();
        assert!(error.contains("lies inside"), "{error}");
        assert!(!inside.exists(), "{}", inside.display());
    }
}

#[test]
fn a_stop_after_a_failure_keeps_failed_with_its_reason() {
    let active_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let active = Database::open(active_dir.path(), active_options()).unwrap();
    let mut config = replica_config(active_dir.path(), replica_dir.path());
    seed(&active, &config).unwrap();
    let share = Link::new();
    share.set_cut(true);
    config.active_fs = share.clone();
    let service = ReplicationService::start(config.clone()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let status = service.status();
        if status.state == CopyState::Failed {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "never Failed");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!failed.message.is_empty(), "{failed:?}");
    service.stop().unwrap();
    let status = bluejet_replication::CopyStatus::read(
        config.fs().as_ref(),
        &config.layout(),
        Duration::from_secs(5),
    )
    .unwrap()
    .unwrap();
    assert_eq!(status.state, CopyState::Failed, "{status:?}");
    assert!(status.message.contains(&failed.message), "{status:?}");
    assert!(status.message.contains("stopped"), "{status:?}");
}

#[test]
fn a_status_that_cannot_be_written_fails_the_copy_and_is_reported() {
    let active_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let active = Database::open(active_dir.path(), active_options()).unwrap();
    let config = replica_config(active_dir.path(), replica_dir.path());
    seed(&active, &config).unwrap();
    let mut replica = Replica::open(config.clone()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while replica.step().state != CopyState::Healthy {
        assert!(std::time::Instant::now() < deadline, "never Healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
    // As a full disk would: status.json cannot be replaced.
    let path = config.layout().status();
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("in the way"), b"").unwrap();
    let status = replica.step();
    assert_eq!(status.state, CopyState::Failed, "{status:?}");
    assert!(status.message.contains("cannot be written"), "{status:?}");
    std::fs::remove_dir_all(&path).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while replica.step().state != CopyState::Healthy {
        assert!(std::time::Instant::now() < deadline, "never Healthy again");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("in the way"), b"").unwrap();
    assert!(replica.close(CopyState::Disabled, "stopping").is_err());
}

/// Found by an adversarial operator: `status()` (which `node run` polls) and the service's
/// status thread wrote `status.json` through one temporary name at once; one renamed the
/// other's away, and the copy reported itself Failed ("status.json cannot be written").
#[test]
fn concurrent_status_writes_never_fail_the_copy() {
    let active_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let active = Database::open(active_dir.path(), active_options()).unwrap();
    let config = replica_config(active_dir.path(), replica_dir.path());
    seed(&active, &config).unwrap();
    let service = ReplicationService::start(config).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..300 {
                    let status = service.status();
                    assert!(
                        !status.message.contains("cannot be written"),
                        "{:?}: {}",
                        status.state,
                        status.message
                    );
                }
            });
        }
    });
    service.stop().unwrap();
}
