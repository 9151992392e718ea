//! The ledger of a diverged re-application (`reapplied.json`): what a run committed is
//! listed even when the run stops half-way, so that a later run never compares it again
//! (a lost put of a message that a later lost transaction deleted would be put back).

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

use bluejet_engine::{Database, Options};
use bluejet_replication::cluster::resync::DivergenceReport;
use bluejet_replication::diverged::decode::{Decoded, Operation, Transaction};
use bluejet_replication::diverged::reapply::{self, Reapplying};

fn tx(id: u64, operations: Vec<Operation>) -> Transaction {
    Transaction {
        id,
        commit_micros: 1_000 + id,
        generation: 2,
        file: "E0000000002.log".into(),
        operations,
    }
}

fn put(table: &str, key: &str, value: &str) -> Operation {
    Operation::Put {
        table: table.into(),
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

fn decoded(transactions: Vec<Transaction>) -> Decoded {
    Decoded {
        directory: "/nonexistent/diverged-2".into(),
        epoch: 2,
        report: DivergenceReport {
            epoch: 2,
            common_generation: Some(1),
            files: vec![],
            without_commits: vec![],
            common: vec![],
            context: vec![],
            reason: String::new(),
        },
        transactions,
        unreadable: vec![],
        incomplete: 0,
    }
}

fn get(db: &Database, table: &str, key: &str) -> Option<Vec<u8>> {
    let read = db.begin_read().unwrap();
    let t = read.open_table(table).ok()?;
    t.get(key.as_bytes()).unwrap()
}

/// The lost tail: a message put, then deleted by a later transaction that also moved a
/// folder entry.
fn tail() -> Decoded {
    decoded(vec![
        tx(1, vec![put("mail", "m", "message")]),
        tx(
            2,
            vec![
                Operation::Delete {
                    table: "mail".into(),
                    key: b"m".to_vec(),
                },
                put("folders", "f", "x"),
            ],
        ),
        tx(3, vec![put("other", "o", "v")]),
    ])
}

/// Found by an adversarial round: a step applied T1, T2 and T3 and the node was killed
/// before the ledger was written at the step's end; the active changed `f` meanwhile; the
/// rerun put the deleted message back. What a step may commit is now recorded before it
/// commits any, and a rerun applies none of those it cannot tell were committed.
#[test]
fn a_kill_inside_a_step_then_a_rerun_puts_no_deleted_message_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    // The ledger as the directory would hold it: the last record written.
    let mut ledger = None;
    let mut first = Reapplying::new(tail(), None).unwrap();
    let recorder = &mut |outcome: &reapply::ReapplyOutcome| {
        ledger = Some(outcome.clone());
        Ok(())
    };
    assert!(first.step_recorded(&db, None, recorder).unwrap());
    drop(first); // killed before the step's outcome was recorded
    let ledger = ledger.expect("recorded before the first commit");
    assert_eq!(ledger.in_flight.len(), 3);
    let mut write = db.begin_write().unwrap();
    write.create_table("folders").unwrap();
    write.insert("folders", b"f", b"y").unwrap();
    write.commit().unwrap();
    let again = reapply::reapply(&db, &tail(), Some(&ledger)).unwrap();
    assert_eq!(get(&db, "mail", "m"), None, "the deleted message came back");
    assert_eq!(again.applied_transactions, 0, "{again:?}");
    // T3 is all there: handled; T1 and T2 may have been committed: listed, not applied.
    assert_eq!(again.skipped_transactions, 1, "{again:?}");
    assert_eq!(again.conflicting_transactions, 2, "{again:?}");
    assert!(again.in_flight.is_empty());
    assert_eq!(again.uncertain.len(), 2, "{again:?}");
    // They stay so: a third run applies nothing either.
    let third = reapply::reapply(&db, &tail(), Some(&again)).unwrap();
    assert_eq!(third.applied_transactions, 0, "{third:?}");
    assert_eq!(third.conflicting_transactions, 2, "{third:?}");
    assert_eq!(get(&db, "mail", "m"), None, "the deleted message came back");
}

/// Found by an adversarial round: a run that failed half-way (here a key the new active's
/// pages cannot hold; at a node also a lost lease or a refused commit) wrote no ledger, so
/// a rerun compared again what it had committed, and put a deleted message back once
/// another key of the deleting transaction had changed. The directory is real: the old
/// active (32 KiB pages) committed the transactions in generation 1, copied aside.
#[test]
fn a_run_that_fails_half_way_lists_what_it_committed() {
    use bluejet_engine::file::OsFileSystem;
    use bluejet_replication::cluster::resync::DivergentFile;
    let root = tempfile::tempdir().unwrap();
    let old_dir = root.path().join("old");
    let old = Database::open(
        &old_dir,
        Options {
            page_size: 32768,
            ..Options::default()
        },
    )
    .unwrap();
    let mut w = old.begin_write().unwrap();
    w.create_table("mail").unwrap();
    w.insert("mail", b"m", b"message").unwrap();
    w.commit().unwrap();
    let mut w = old.begin_write().unwrap();
    w.create_table("mail").unwrap();
    w.create_table("folders").unwrap();
    w.remove("mail", b"m").unwrap();
    w.insert("folders", b"f", b"x").unwrap();
    w.commit().unwrap();
    let mut w = old.begin_write().unwrap();
    w.create_table("mail").unwrap();
    w.insert("mail", &[b'k'; 2000], b"v").unwrap();
    w.commit().unwrap();
    let mut w = old.begin_write().unwrap();
    w.create_table("other").unwrap();
    w.insert("other", b"o", b"v").unwrap();
    w.commit().unwrap();
    let closed = old.log().roll().unwrap();
    old.close().unwrap();
    let diverged = root.path().join("diverged-2");
    std::fs::create_dir(&diverged).unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&old_dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("E000") && name.ends_with(".log") {
            std::fs::copy(old_dir.join(&name), diverged.join(&name)).unwrap();
            files.push(DivergentFile {
                name,
                generation: Some(closed),
                commits: 4,
                created_micros: None,
                shared_prefix_bytes: 0,
            });
        }
    }
    let report = DivergenceReport {
        epoch: 2,
        common_generation: None,
        files,
        without_commits: vec![],
        common: vec![],
        context: vec![],
        reason: "test".into(),
    };
    bluejet_replication::sealed::write(&OsFileSystem, &diverged.join("report.json"), &report)
        .unwrap();
    let db = Database::open(&root.path().join("new"), Options::default()).unwrap();
    let error = reapply::reapply_directory(&OsFileSystem, &db, &diverged).unwrap_err();
    assert!(error.to_string().contains("exceeds the limit"), "{error}");
    let ledger = reapply::previous(&OsFileSystem, &diverged)
        .unwrap()
        .expect("a ledger");
    assert_eq!(ledger.handled.len(), 2, "{ledger:?}");
    let mut write = db.begin_write().unwrap();
    write.create_table("folders").unwrap();
    write.insert("folders", b"f", b"y").unwrap();
    write.commit().unwrap();
    let again = reapply::reapply_directory(&OsFileSystem, &db, &diverged).unwrap();
    assert_eq!(get(&db, "mail", "m"), None, "the deleted message came back");
    // The transaction the first run failed on may have been committed: listed, not applied;
    // the rest of the tail goes on.
    assert_eq!(again.conflicting_transactions, 1, "{again:?}");
    assert_eq!(get(&db, "other", "o").unwrap(), b"v");
}
