//! One owner per database directory: a second open, in this process or another, is refused
//! with `DbError::InUse` naming the holder, until the first closes, is dropped or dies.

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

use bluejet_engine::db::probe_directory;
use bluejet_engine::file::simulated::SimulatedFileSystem;
use bluejet_engine::file::{FileSystem, LockProbe, OsFileSystem, LOCK_FILE_NAME};
use bluejet_engine::LogPosition;
use bluejet_engine::{Database, DbError, Options, PassiveDatabase, PassiveOrigin};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Set in a child process of this test binary: the directory the child holds.
const CHILD_DIRECTORY: &str = "BLUEJET_OWNERSHIP_CHILD";

fn in_use_pid(result: Result<impl Sized, DbError>) -> (u32, String) {
    match result {
        Err(error @ DbError::InUse { .. }) => {
            let DbError::InUse { holder, .. } = &error else {
                unreachable!()
            };
            let holder = holder.clone().expect("the holder record is readable");
            (holder.pid, error.to_string())
        }
        Err(error) => panic!("expected InUse, got {error}"),
        Ok(_) => panic!("expected InUse, the second open succeeded"),
    }
}

fn commit(db: &Database, key: &[u8]) {
    let mut write = db.begin_write().unwrap();
    write.create_table("t").unwrap();
    write.insert("t", key, b"value").unwrap();
    write.commit().unwrap();
}

#[test]
fn a_second_open_in_the_same_process_is_refused_naming_the_holder() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), Options::default()).unwrap();
    commit(&db, b"a");
    let (pid, message) = in_use_pid(Database::open(directory.path(), Options::default()));
    assert_eq!(pid, std::process::id());
    assert!(
        message.contains(&format!("is in use by pid {pid} on host ")),
        "{message}"
    );
    assert!(message.contains(&directory.path().display().to_string()));
    // The refused open changed nothing: the owner keeps committing, and reopens clean.
    commit(&db, b"b");
    db.close().unwrap();
    let db = Database::open(directory.path(), Options::default()).unwrap();
    let read = db.begin_read().unwrap();
    assert_eq!(read.open_table("t").unwrap().len(), 2);
}

#[test]
fn the_lock_is_released_by_close_and_by_drop() {
    let directory = tempfile::tempdir().unwrap();
    let lock_file = directory.path().join(LOCK_FILE_NAME);
    let db = Database::open(directory.path(), Options::default()).unwrap();
    let record = std::fs::read_to_string(&lock_file).unwrap();
    assert!(record.contains(&format!("\"pid\":{}", std::process::id())));
    db.close().unwrap();
    let probe = probe_directory(&OsFileSystem, directory.path()).unwrap();
    assert_eq!(probe, LockProbe::Free);
    let db = Database::open(directory.path(), Options::default()).unwrap();
    commit(&db, b"a");
    drop(db);
    let db = Database::open(directory.path(), Options::default()).unwrap();
    assert_eq!(db.begin_read().unwrap().open_table("t").unwrap().len(), 1);
}

#[test]
fn a_passive_copy_is_owned_like_a_database() {
    let active_directory = tempfile::tempdir().unwrap();
    let passive_directory = tempfile::tempdir().unwrap();
    let active = Database::open(active_directory.path(), Options::default()).unwrap();
    let origin = PassiveOrigin {
        signature: active.log().signature(),
        timeline: 1,
        position: LogPosition::new(1, 0),
    };
    let (copy, logs) = (passive_directory.path(), active_directory.path());
    let passive = PassiveDatabase::create(copy, logs, Options::default(), origin).unwrap();
    let (pid, _) = in_use_pid(PassiveDatabase::open(copy, logs, Options::default()));
    assert_eq!(pid, std::process::id());
    in_use_pid(Database::open(copy, Options::default()));
    passive.close().unwrap();
    let passive = PassiveDatabase::open(copy, logs, Options::default()).unwrap();
    drop(passive);
    PassiveDatabase::open(copy, logs, Options::default()).unwrap();
}

#[test]
fn the_simulated_disk_refuses_a_second_open_until_the_first_ends_or_crashes() {
    let fs = SimulatedFileSystem::new();
    let options = || {
        let mut options = Options::default();
        options.log.file_system = Arc::new(fs.clone()) as Arc<dyn FileSystem>;
        options
    };
    let directory = Path::new("/simulated/db");
    let db = Database::open(directory, options()).unwrap();
    commit(&db, b"a");
    in_use_pid(Database::open(directory, options()));
    // A simulated crash ends the process that held it.
    fs.crash_clean();
    let reopened = Database::open(directory, options()).unwrap();
    drop(db);
    in_use_pid(Database::open(directory, options()));
    drop(reopened);
    Database::open(directory, options())
        .unwrap()
        .close()
        .unwrap();
}

/// Run only as a child of `the_lock_ends_with_its_process`: holds the database, commits,
/// says so and waits to be killed.
#[test]
fn child_holds_a_database_until_killed() {
    let Ok(directory) = std::env::var(CHILD_DIRECTORY) else {
        return;
    };
    let db = Database::open(Path::new(&directory), Options::default()).unwrap();
    commit(&db, b"from the child");
    println!("holding");
    std::thread::sleep(std::time::Duration::from_secs(120));
    drop(db);
}

#[test]
fn the_lock_ends_with_its_process() {
    let directory = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_database_until_killed",
            "--nocapture",
        ])
        .env(CHILD_DIRECTORY, directory.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|line| line.is_ok_and(|line| line.contains("holding"))));
    let (pid, message) = in_use_pid(Database::open(directory.path(), Options::default()));
    assert_eq!(pid, child.id(), "{message}");
    let probe = probe_directory(&OsFileSystem, directory.path()).unwrap();
    assert!(matches!(probe, LockProbe::Held(Some(holder)) if holder.pid == child.id()));
    child.kill().unwrap();
    child.wait().unwrap();
    // The kernel released the lock with the process; recovery finds the child's commit.
    let db = Database::open(directory.path(), Options::default()).unwrap();
    let read = db.begin_read().unwrap();
    let table = read.open_table("t").unwrap();
    assert_eq!(
        table.get(b"from the child").unwrap().as_deref(),
        Some(&b"value"[..])
    );
}

/// Found by an adversarial operator: `repl run`, `repl verify` and `backup` pointed at a
/// directory that is not a replica (a live database directory, a typo) created a `lock` file
/// there before refusing; a later seed of that directory then refused.
#[test]
fn locking_a_directory_that_is_not_a_replica_creates_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let lock = directory.path().join("lock");
    let error =
        bluejet_replication::lock::ReplicaLock::acquire(&bluejet_engine::file::OsFileSystem, &lock)
            .unwrap_err();
    assert!(
        matches!(error, bluejet_replication::ReplError::NotAReplica { .. }),
        "{error}"
    );
    assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 0);
}

/// Found by an adversarial operator: a hard-link "copy" of a live database (`cp -al`), its
/// lock file removed, opened for recovery wrote into the live database's files through the
/// shared inodes. A file BlueJet writes must have one name.
#[test]
fn a_hard_linked_copy_of_a_database_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let db = Database::open(&live, Options::default()).unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("t").unwrap();
    write.insert("t", b"k", b"v").unwrap();
    write.commit().unwrap();
    let copy = root.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&live).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != LOCK_FILE_NAME {
            std::fs::hard_link(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    let error = Database::open(&copy, Options::default())
        .err()
        .expect("refused");
    assert!(error.to_string().contains("hard links"), "{error}");
    drop(db);
}
