//! The errors an embedding mail server handles: a full disk is its own kind, a database made
//! unusable keeps the failure that did it as a value, and no message repeats its cause.

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

use bluejet_engine::file::simulated::{FaultMode, SimulatedFileSystem};
use bluejet_engine::LogConfig;
use bluejet_engine::LogError;
use bluejet_engine::{Database, DbError, Options};
use std::error::Error;
use std::path::Path;
use std::sync::Arc;

fn options(fs: &SimulatedFileSystem) -> Options {
    Options {
        page_size: 4096,
        cache_bytes: 1 << 20,
        background: false,
        log: LogConfig {
            generation_bytes: 128 << 10,
            background: false,
            file_system: Arc::new(fs.clone()),
            ..LogConfig::default()
        },
        ..Options::default()
    }
}

/// Every message in the chain below `error` must be its own: none may be repeated by the
/// error above it (a reporter walking the chain prints each once).
fn assert_no_repeated_cause(error: &dyn Error) {
    let mut above = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        assert!(
            !above.contains(&text),
            "{above:?} repeats its source {text:?}"
        );
        above = text;
        source = cause.source();
    }
}

#[test]
fn a_full_disk_is_out_of_space_and_the_poison_keeps_it_as_its_cause() {
    let fs = SimulatedFileSystem::new();
    let db = Database::open(Path::new("/db"), options(&fs)).unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("mail").unwrap();
    write.insert("mail", b"<1@x>", b"stored").unwrap();
    write.commit().unwrap();
    // Every later write finds the disk full (syncs still work).
    fs.fail_at(fs.operations() + 1, FaultMode::DiskFull);
    let mut write = db.begin_write().unwrap();
    write.insert("mail", b"<2@x>", &[b'm'; 50_000]).unwrap();
    let error = write.commit().unwrap_err();
    assert!(error.is_out_of_space(), "the commit's error: {error}");
    assert!(
        error.to_string().contains("no space left on the device"),
        "{error}"
    );
    assert_no_repeated_cause(&error);
    // The database refuses writes from then on, and says why with the failure itself.
    let refused = db.begin_write().map(drop).unwrap_err();
    let DbError::Poisoned(cause) = &refused else {
        panic!("a write after the failure: {refused:?}");
    };
    assert!(cause.is_out_of_space(), "the poison's cause: {cause:?}");
    assert!(matches!(
        **cause,
        DbError::OutOfSpace { .. }
            | DbError::Log(LogError::OutOfSpace { .. } | LogError::Poisoned(_))
    ));
    assert!(refused.is_out_of_space());
    assert_no_repeated_cause(&refused);
    // Space again and a reopen: the acknowledged commit is there, the failed one is not.
    fs.clear_fault();
    drop(db);
    let db = Database::open(Path::new("/db"), options(&fs)).unwrap();
    let read = db.begin_read().unwrap();
    let mail = read.open_table("mail").unwrap();
    assert_eq!(mail.get(b"<1@x>").unwrap(), Some(b"stored".to_vec()));
    assert_eq!(mail.get(b"<2@x>").unwrap(), None);
}

#[test]
fn io_errors_have_one_form_naming_the_file_and_the_operation() {
    let directory = tempfile::tempdir().unwrap();
    // A database directory under a regular file cannot be created.
    let file = directory.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let error = Database::open(&file.join("db"), Options::default())
        .err()
        .expect("opening under a regular file fails");
    let text = error.to_string();
    assert!(
        text.contains(" failed: ") && text.contains("a-file"),
        "{text}"
    );
    assert!(!error.is_out_of_space());
    assert_no_repeated_cause(&error);
}

#[test]
fn a_misspelt_table_is_an_error_that_does_not_fail_the_transaction() {
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), Options::default()).unwrap();
    let mut write = db.begin_write().unwrap();
    write.create_table("messages").unwrap();
    write.insert("messages", b"<1@x>", b"one").unwrap();
    for error in [
        write.insert("mesages", b"<1@x>", b"one").unwrap_err(),
        write.get("mesages", b"<1@x>").unwrap_err(),
        write.remove("mesages", b"<1@x>").unwrap_err(),
        write.len("mesages").unwrap_err(),
    ] {
        assert!(
            matches!(&error, DbError::TableNotFound(name) if name == "mesages"),
            "{error:?}"
        );
    }
    assert!(write.open_table("mesages").is_err());
    // Nothing was changed by the refused calls: the transaction commits what it did.
    write.commit().unwrap();
    let read = db.begin_read().unwrap();
    assert_eq!(read.table_names().unwrap(), vec!["messages".to_owned()]);
    assert!(matches!(
        read.open_table("mesages"),
        Err(DbError::TableNotFound(_))
    ));
    drop(read);
    db.close().unwrap();
}
