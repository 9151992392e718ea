//! The database API: tables, transactions, snapshots, reopen and recovery.

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

use bluejet_engine::Durability;
use bluejet_engine::{Database, DbError, Options};
use std::collections::BTreeMap;

fn options() -> Options {
    Options {
        cache_bytes: 4 << 20,
        ..Options::default()
    }
}

fn key(index: u64) -> Vec<u8> {
    format!("key-{:08}", index.wrapping_mul(2_654_435_761) % 1_000_003).into_bytes()
}

#[test]
fn inserts_gets_removes_and_ranges_in_both_directions() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), options()).unwrap();
    let mut model = BTreeMap::new();
    let mut write = db.begin_write().unwrap();
    write.create_table("t").unwrap();
    for index in 0..20_000u64 {
        let value = vec![(index % 251) as u8; (index % 300) as usize];
        write.insert("t", &key(index), &value).unwrap();
        model.insert(key(index), value);
    }
    write.commit().unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("t").unwrap();
    for index in (0..20_000u64).step_by(3) {
        assert!(write.remove("t", &key(index)).unwrap());
        model.remove(&key(index));
    }
    assert!(!write.remove("t", b"absent").unwrap());
    write.commit().unwrap();

    let read = db.begin_read().unwrap();
    let table = read.open_table("t").unwrap();
    assert_eq!(table.len(), model.len() as u64);
    let all: Vec<_> = table.range(..).unwrap().map(|e| e.unwrap()).collect();
    let expected: Vec<_> = model.clone().into_iter().collect();
    assert_eq!(all, expected);
    let backwards: Vec<_> = table.range(..).unwrap().rev().map(|e| e.unwrap()).collect();
    assert_eq!(backwards.len(), expected.len());
    assert!(backwards.iter().rev().eq(expected.iter()));
    let start = key(77);
    let end = key(5000);
    let (low, high) = if start < end {
        (start, end)
    } else {
        (end, start)
    };
    let got: Vec<_> = table
        .range(low.as_slice()..high.as_slice())
        .unwrap()
        .map(|e| e.unwrap().0)
        .collect();
    let want: Vec<_> = model
        .range(low.clone()..high.clone())
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(got, want);
    let mut both = table.range(low.as_slice()..=high.as_slice()).unwrap();
    let mut met = Vec::new();
    loop {
        match (both.next(), both.next_back()) {
            (Some(a), Some(b)) => {
                met.push(a.unwrap().0);
                met.push(b.unwrap().0);
            }
            (Some(a), None) | (None, Some(a)) => met.push(a.unwrap().0),
            (None, None) => break,
        }
    }
    met.sort();
    let want: Vec<_> = model.range(low..=high).map(|(k, _)| k.clone()).collect();
    assert_eq!(met, want);
    drop(read);
    db.close().unwrap();
}

#[test]
fn a_clean_close_and_a_crash_both_reopen_with_every_commit() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), options()).unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("a").unwrap();
    write.insert("a", b"1", b"one").unwrap();
    write.commit().unwrap();
    db.close().unwrap();
    let db = Database::open(directory.path(), options()).unwrap();
    assert_eq!(db.replay_report().transactions_applied, 0);
    let mut write = db.begin_write().unwrap();
    write.create_table("a").unwrap();
    write.insert("a", b"2", b"two").unwrap();
    write.commit().unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("a").unwrap();
    write.insert("a", b"3", b"three").unwrap();
    write.abort();
    drop(db); // no close: the next open replays
    let db = Database::open(directory.path(), options()).unwrap();
    assert_eq!(db.replay_report().transactions_applied, 1);
    let read = db.begin_read().unwrap();
    let table = read.open_table("a").unwrap();
    assert_eq!(table.get(b"1").unwrap().unwrap(), b"one");
    assert_eq!(table.get(b"2").unwrap().unwrap(), b"two");
    assert_eq!(table.get(b"3").unwrap(), None);
    assert_eq!(table.len(), 2);
}

#[test]
fn large_values_go_out_of_line_and_text_is_compressed() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), options()).unwrap();
    let text: Vec<u8> = "Subject: quarterly report\r\nThe figures are attached.\r\n"
        .repeat(1000)
        .into_bytes();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..3_000_000u64)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut write = db.begin_write().unwrap();
    write.create_table("bodies").unwrap();
    write.insert("bodies", b"text", &text).unwrap();
    write.insert("bodies", b"noise", &noise).unwrap();
    assert_eq!(write.get("bodies", b"noise").unwrap().unwrap(), noise);
    write.commit().unwrap();
    drop(db);
    let db = Database::open(directory.path(), options()).unwrap();
    let read = db.begin_read().unwrap();
    let table = read.open_table("bodies").unwrap();
    assert_eq!(table.get(b"text").unwrap().unwrap(), text);
    assert_eq!(table.get(b"noise").unwrap().unwrap(), noise);
    drop(read);
    let mut write = db.begin_write().unwrap();
    write.create_table("bodies").unwrap();
    write.insert("bodies", b"noise", b"small now").unwrap();
    write.commit().unwrap();
    db.checkpoint().unwrap();
    db.checkpoint().unwrap();
    assert!(
        db.stats().free_pages > 300,
        "the long value's pages are reused: {:?}",
        db.stats()
    );
    db.close().unwrap();
}

#[test]
fn a_snapshot_keeps_its_view_while_writers_commit() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), options()).unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("t").unwrap();
    write.insert("t", b"k", b"old").unwrap();
    write.commit().unwrap();
    let read = db.begin_read().unwrap();
    for round in 0..200u32 {
        let mut write = db.begin_write().unwrap();
        write.create_table("t").unwrap();
        write
            .insert("t", b"k", format!("new {round}").as_bytes())
            .unwrap();
        for filler in 0..50u32 {
            write
                .insert("t", format!("{round}-{filler}").as_bytes(), &[7; 100])
                .unwrap();
        }
        write.commit_with(Durability::Lazy).unwrap();
        if round % 50 == 0 {
            db.checkpoint().unwrap();
        }
    }
    let table = read.open_table("t").unwrap();
    assert_eq!(table.get(b"k").unwrap().unwrap(), b"old");
    assert_eq!(table.len(), 1);
    drop(read);
    let read = db.begin_read().unwrap();
    assert_eq!(
        read.open_table("t").unwrap().get(b"k").unwrap().unwrap(),
        b"new 199"
    );
    assert!(matches!(
        read.open_table("none"),
        Err(DbError::TableNotFound(_))
    ));
}

#[test]
fn concurrent_committers_share_log_flushes() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), options()).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..8u32 {
            let db = &db;
            scope.spawn(move || {
                for index in 0..50u32 {
                    let mut write = db.begin_write().unwrap();
                    write.create_table("t").unwrap();
                    write
                        .insert("t", format!("{thread}-{index}").as_bytes(), b"v")
                        .unwrap();
                    write.commit().unwrap();
                }
            });
        }
    });
    let stats = db.log().stats();
    assert!(stats.syncs < 400, "{} syncs for 400 commits", stats.syncs);
    let read = db.begin_read().unwrap();
    assert_eq!(read.open_table("t").unwrap().len(), 400);
}

#[test]
fn the_file_passes_the_integrity_check_after_splits_merges_and_long_values() {
    use bluejet_engine::format::inspect::{integrity, space, DatabaseImage};
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), options()).unwrap();
    for round in 0..6u64 {
        let mut write = db.begin_write().unwrap();
        write.create_table("folders").unwrap();
        write.create_table("m").unwrap();
        for index in 0..5_000u64 {
            let length = if index % 97 == 0 {
                20_000
            } else {
                (index % 200) as usize
            };
            write
                .insert("m", &key(index + round * 1000), &vec![round as u8; length])
                .unwrap();
        }
        for index in (0..5_000u64).step_by(2) {
            write.remove("m", &key(index + round * 700)).unwrap();
        }
        write
            .insert("folders", format!("f{round}").as_bytes(), b"x")
            .unwrap();
        write.commit().unwrap();
        db.checkpoint().unwrap();
    }
    let expected = db.begin_read().unwrap().open_table("m").unwrap().len();
    drop(db);
    let image = DatabaseImage::open(directory.path()).unwrap();
    let report = integrity(&image).unwrap();
    assert!(
        report.problems.is_empty(),
        "{:?}",
        &report.problems[..report.problems.len().min(5)]
    );
    assert_eq!(report.tables, 2);
    let space = space(&image).unwrap();
    let messages = space.tables.iter().find(|t| t.name == "m").unwrap();
    assert_eq!(messages.entries, expected);
    assert!(messages.fill_factor > 0.4, "fill {}", messages.fill_factor);
}

#[test]
fn data_ten_times_the_cache_is_written_back_and_read_again_within_the_bound() {
    let directory = tempfile::tempdir().unwrap();
    let options = Options {
        cache_bytes: 1 << 20,
        checkpoint_depth_bytes: 4 << 20,
        ..Options::default()
    };
    let page_size = options.page_size;
    let db = Database::open(directory.path(), options.clone()).unwrap();
    let value = |index: u64| vec![(index % 253) as u8; 700 + (index % 5) as usize * 1000];
    for batch in 0..20u64 {
        let mut write = db.begin_write().unwrap();
        write.create_table("big").unwrap();
        for index in batch * 500..(batch + 1) * 500 {
            write.insert("big", &key(index), &value(index)).unwrap();
        }
        write.commit().unwrap();
        let cached = db.stats().cached_pages * page_size;
        assert!(
            cached <= (1 << 20) + 16 * page_size,
            "cache holds {cached} bytes"
        );
    }
    let read = db.begin_read().unwrap();
    let table = read.open_table("big").unwrap();
    for index in 0..10_000u64 {
        assert_eq!(
            table.get(&key(index)).unwrap(),
            Some(value(index)),
            "entry {index}"
        );
    }
    let cached = db.stats().cached_pages * page_size;
    assert!(
        cached <= (1 << 20) + 16 * page_size,
        "cache holds {cached} bytes"
    );
}

#[test]
fn a_deleted_current_generation_is_refused_not_taken_for_a_cut_roll() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), options()).unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("t").unwrap();
    write.insert("t", b"before the roll", b"1").unwrap();
    write.commit().unwrap();
    db.log().roll().unwrap();
    db.checkpoint().unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("t").unwrap();
    write.insert("t", b"after the roll", b"2").unwrap();
    write.commit().unwrap();
    drop(db);
    std::fs::remove_file(directory.path().join("E00.log")).unwrap();
    match Database::open(directory.path(), options()) {
        Err(DbError::MissingLogGenerations { last, .. }) => assert_eq!(last, 2),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("opened without its current generation"),
    }
}

#[test]
fn the_older_header_copy_stays_whole_after_a_reopen_and_small_commits() {
    use bluejet_engine::db::read_header_copies;
    use bluejet_engine::file::{FileSystem, OpenMode, OsFileSystem};
    use bluejet_engine::format::db_header::HEADER_OFFSETS;
    let directory = tempfile::tempdir().unwrap();
    let small = Options {
        cache_bytes: 1 << 20,
        ..Options::default()
    };
    let mut model = BTreeMap::new();
    let db = Database::open(directory.path(), small.clone()).unwrap();
    for batch in 0..4u64 {
        let mut write = db.begin_write().unwrap();
        write.create_table("t").unwrap();
        for index in batch * 1000..(batch + 1) * 1000 {
            write.insert("t", &key(index), &[batch as u8; 300]).unwrap();
            model.insert(key(index), vec![batch as u8; 300]);
        }
        write.commit().unwrap();
    }
    db.close().unwrap();
    let db = Database::open(directory.path(), small.clone()).unwrap();
    for index in 0..200u64 {
        let mut write = db.begin_write().unwrap();
        write.create_table("t").unwrap();
        write.insert("t", &key(index), b"changed").unwrap();
        model.insert(key(index), b"changed".to_vec());
        write.commit().unwrap();
        let read = db.begin_read().unwrap();
        let table = read.open_table("t").unwrap();
        assert_eq!(table.range(..).unwrap().count(), model.len());
    }
    drop(db);
    // Damage the newest copy: the older one, with the log, must give the same content.
    let path = directory.path().join("bluejet.db");
    let handle = OsFileSystem.open(&path, OpenMode::Read).unwrap();
    let newest = read_header_copies(&handle, &path).unwrap().slot as usize;
    drop(handle);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[HEADER_OFFSETS[newest] as usize + 100] ^= 0xFF;
    std::fs::write(&path, bytes).unwrap();
    let db = Database::open(directory.path(), small).unwrap();
    let read = db.begin_read().unwrap();
    let table = read.open_table("t").unwrap();
    let found: BTreeMap<Vec<u8>, Vec<u8>> = table.range(..).unwrap().map(|e| e.unwrap()).collect();
    assert!(
        found == model,
        "content differs after falling back to the older header copy"
    );
}

/// A gate that admits every commit and confirms none (a node whose lease ended while the
/// commit was on its way), or refuses them all.
struct Fence {
    admit: bool,
}

impl bluejet_engine::db::CommitGate for Fence {
    fn admit(&self) -> Result<(), String> {
        match self.admit {
            true => Ok(()),
            false => Err("no lease".into()),
        }
    }

    fn confirm(&self, _end: bluejet_engine::LogPosition) -> Result<(), String> {
        Err("the lease may have ended".into())
    }
}

#[test]
fn a_commit_the_gate_cannot_confirm_is_not_acknowledged_and_a_refused_one_leaves_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let gated = |admit| Options {
        commit_gate: bluejet_engine::Gate(Some(std::sync::Arc::new(Fence { admit }))),
        ..options()
    };
    let db = Database::open(directory.path(), gated(true)).unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("t").unwrap();
    write.insert("t", b"k", b"v").unwrap();
    let error = write.commit().unwrap_err();
    assert!(matches!(error, DbError::NotAcknowledged(_)), "{error}");
    assert!(error.to_string().contains("retry"), "{error}");
    // The commit is in this node's log: not an acknowledgement, but not undone either.
    let read = db.begin_read().unwrap();
    assert_eq!(
        read.open_table("t").unwrap().get(b"k").unwrap(),
        Some(b"v".to_vec())
    );
    drop(read);
    db.close().unwrap();

    let db = Database::open(directory.path(), gated(false)).unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("t").unwrap();
    write.insert("t", b"other", b"v").unwrap();
    let error = write.commit().unwrap_err();
    assert!(matches!(error, DbError::CommitRefused(_)), "{error}");
    let read = db.begin_read().unwrap();
    assert_eq!(read.open_table("t").unwrap().get(b"other").unwrap(), None);
}
