//! The embedding API's handles: a cheap, shared `Database`, and transactions that own what
//! they use, so that they move between threads and outlive the borrow of any handle.

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

use bluejet_engine::LogPosition;
use bluejet_engine::{Database, DbError, Options, PassiveDatabase, PassiveOrigin};

fn open(directory: &std::path::Path) -> Database {
    Database::open(directory, Options::default()).unwrap()
}

#[test]
fn a_write_transaction_commits_on_another_thread_and_a_snapshot_reads_there() {
    let directory = tempfile::tempdir().unwrap();
    let db = open(directory.path());
    let mut write = db.begin_write().unwrap();
    write.create_table("mail").unwrap();
    write.insert("mail", b"<1@x>", b"first").unwrap();
    // Moved whole, the writer lock with it: the commit happens on the other thread.
    std::thread::spawn(move || write.commit().unwrap())
        .join()
        .unwrap();
    let read = db.begin_read().unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("mail").unwrap();
    write.insert("mail", b"<2@x>", b"second").unwrap();
    write.commit().unwrap();
    // The snapshot taken before the second commit, read on another thread, sees the first
    // message only.
    let seen = std::thread::spawn(move || {
        let mail = read.open_table("mail").unwrap();
        (mail.len(), mail.get(b"<2@x>").unwrap())
    })
    .join()
    .unwrap();
    assert_eq!(seen, (1, None));
    db.close().unwrap();
}

#[test]
fn clones_share_one_database_and_only_the_last_handle_closes_it() {
    let directory = tempfile::tempdir().unwrap();
    let db = open(directory.path());
    let other = db.clone();
    let mut write = other.begin_write().unwrap();
    write.create_table("mail").unwrap();
    write.insert("mail", b"<1@x>", b"one").unwrap();
    write.commit().unwrap();
    let read = db.begin_read().unwrap();
    assert_eq!(read.open_table("mail").unwrap().len(), 1);
    match db.close() {
        Err(DbError::StillInUse {
            handles: 1,
            transactions: 1,
        }) => {}
        other => panic!("a close with a clone and a snapshot alive: {other:?}"),
    }
    // The failed close left the database open for the remaining holders.
    assert_eq!(
        read.open_table("mail").unwrap().get(b"<1@x>").unwrap(),
        Some(b"one".to_vec())
    );
    let mut write = other.begin_write().unwrap();
    write.create_table("mail").unwrap();
    write.insert("mail", b"<2@x>", b"two").unwrap();
    write.commit().unwrap();
    match other.clone().close() {
        Err(DbError::StillInUse {
            transactions: 1, ..
        }) => {}
        result => panic!("a close with a snapshot alive: {result:?}"),
    }
    drop(read);
    other.close().unwrap();
    let reopened = open(directory.path());
    assert_eq!(reopened.replay_report().transactions_applied, 0);
    assert_eq!(
        reopened
            .begin_read()
            .unwrap()
            .open_table("mail")
            .unwrap()
            .len(),
        2
    );
    reopened.close().unwrap();
}

#[test]
fn a_snapshot_outliving_every_handle_keeps_the_directory_owned() {
    let directory = tempfile::tempdir().unwrap();
    let db = open(directory.path());
    let mut write = db.begin_write().unwrap();
    write.create_table("mail").unwrap();
    write.insert("mail", b"<1@x>", b"one").unwrap();
    write.commit().unwrap();
    let read = db.begin_read().unwrap();
    drop(db);
    // The snapshot still reads, and the database is still held: a second open is refused.
    assert_eq!(read.open_table("mail").unwrap().len(), 1);
    assert!(matches!(
        Database::open(directory.path(), Options::default()),
        Err(DbError::InUse { .. })
    ));
    drop(read);
    // Dropped without a close: the next open redoes the commit from the log.
    let reopened = open(directory.path());
    assert_eq!(reopened.replay_report().transactions_applied, 1);
    assert_eq!(
        reopened
            .begin_read()
            .unwrap()
            .open_table("mail")
            .unwrap()
            .len(),
        1
    );
    reopened.close().unwrap();
}

#[test]
fn a_passive_copy_with_a_snapshot_alive_is_not_activated() {
    let root = tempfile::tempdir().unwrap();
    let (active_dir, passive_dir) = (root.path().join("active"), root.path().join("passive"));
    std::fs::create_dir_all(&active_dir).unwrap();
    std::fs::create_dir_all(&passive_dir).unwrap();
    let active = open(&active_dir);
    // The copy is created before the first commit, so that it replays from generation 1.
    let origin = PassiveOrigin {
        signature: active.log().signature(),
        timeline: 1,
        position: LogPosition::new(1, 0),
    };
    let passive =
        PassiveDatabase::create(&passive_dir, &active_dir, Options::default(), origin).unwrap();
    let mut write = active.begin_write().unwrap();
    write.create_table("mail").unwrap();
    write.insert("mail", b"<1@x>", b"one").unwrap();
    write.commit().unwrap();
    active.log().roll().unwrap();
    passive.replay_generation(1, None).unwrap();
    let read = passive.begin_read().unwrap();
    match passive.activate(active.log().current_header().timeline + 1) {
        Err(DbError::StillInUse {
            transactions: 1, ..
        }) => {}
        other => panic!("activation with a snapshot alive: {:?}", other.err()),
    }
    assert_eq!(read.open_table("mail").unwrap().len(), 1);
}
