//! Golden files: every on-disk structure as this version writes it, committed under
//! `tests/golden/`, read back with the current code. A change of format that breaks them is
//! caught here, so that it is always deliberate (a new format version and regenerated files,
//! said so in the commit). `tests/golden/README.md` says how to regenerate them.

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

use bluejet_engine::file::{OsFileSystem, LOCK_FILE_NAME};
use bluejet_engine::format::checkpoint;
use bluejet_engine::format::log_reader::LogReader;
use bluejet_engine::format::record::{frame_into, read_record, Record};
use bluejet_engine::log::Log;
use bluejet_engine::PassiveDatabase;
use bluejet_engine::{Database, Options};
use bluejet_engine::{Durability, LogConfig, LogPosition};
use bluejet_replication::backup::{self, BackupHistory};
use bluejet_replication::backup_manifest::{BackupKind, Manifest};
use bluejet_replication::backup_verify::verify;
use bluejet_replication::identity::ReplicaIdentity;
use bluejet_replication::layout::ReplicaLayout;
use bluejet_replication::restore::restore;
use bluejet_replication::seed::seed;
use bluejet_replication::status::CopyStatus;
use bluejet_replication::{CopyState, Replica};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

type Content = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Where the golden files live.
fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// The smallest page and generation sizes, so that the files stay small.
fn small_options() -> Options {
    let mut options = common::active_options();
    options.page_size = 4096;
    options.background = false;
    options
}

/// A long value that compresses (stored compressed, on value pages of its own).
fn long_value() -> Vec<u8> {
    b"Subject: golden\r\n\r\nA line of a long message body.\r\n"
        .repeat(200)
        .to_vec()
}

/// The first phase's writes, before the replica is seeded: inserts in two tables, a remove,
/// a long value, a table created and dropped, a transaction aborted.
fn write_first_phase(database: &Database) {
    let mut write = database.begin_write().unwrap();
    write.create_table("messages").unwrap();
    write.create_table("folders").unwrap();
    for index in 0..20u32 {
        let key = format!("m-{index:03}");
        let value = format!("message {index}").repeat(1 + index as usize % 4);
        write
            .insert("messages", key.as_bytes(), value.as_bytes())
            .unwrap();
    }
    write.insert("folders", b"inbox", b"1").unwrap();
    write.insert("folders", b"sent", b"2").unwrap();
    write.commit().unwrap();

    let mut write = database.begin_write().unwrap();
    write.create_table("messages").unwrap();
    write.create_table("trash").unwrap();
    write.remove("messages", b"m-005").unwrap();
    write.insert("messages", b"m-long", &long_value()).unwrap();
    write.insert("trash", b"t-1", b"deleted soon").unwrap();
    write.commit().unwrap();

    let mut write = database.begin_write().unwrap();
    write.drop_table("trash").unwrap();
    write.commit().unwrap();

    let mut write = database.begin_write().unwrap();
    write.create_table("messages").unwrap();
    write.insert("messages", b"never", b"aborted").unwrap();
    write.abort();
    database.log().roll().unwrap();
}

/// The second phase's writes, after the seed: what the replica ships and replays.
fn write_second_phase(database: &Database) {
    let mut write = database.begin_write().unwrap();
    write.create_table("folders").unwrap();
    write.create_table("messages").unwrap();
    write.insert("folders", b"archive", b"3").unwrap();
    write.insert("messages", b"m-001", b"replaced").unwrap();
    write.remove("messages", b"m-019").unwrap();
    write.commit().unwrap();
    database.log().roll().unwrap();
}

/// The content the database holds after both phases.
fn expected_content() -> Content {
    let mut content = Content::new();
    let messages = content.entry("messages".into()).or_default();
    for index in 0..20u32 {
        let value = format!("message {index}").repeat(1 + index as usize % 4);
        messages.insert(format!("m-{index:03}").into_bytes(), value.into_bytes());
    }
    messages.remove(b"m-005".as_slice());
    messages.remove(b"m-019".as_slice());
    messages.insert(b"m-001".to_vec(), b"replaced".to_vec());
    messages.insert(b"m-long".to_vec(), long_value());
    let folders = content.entry("folders".into()).or_default();
    for (key, value) in [("inbox", "1"), ("sent", "2"), ("archive", "3")] {
        folders.insert(key.into(), value.into());
    }
    content
}

/// Every entry of every table.
fn content_of(read: &bluejet_engine::ReadTransaction) -> Content {
    let mut content = Content::new();
    for name in read.table_names().unwrap() {
        let table = read.open_table(&name).unwrap();
        let entries = content.entry(name).or_default();
        for entry in table.range(..).unwrap() {
            let (key, value) = entry.unwrap();
            entries.insert(key, value);
        }
    }
    content
}

/// Records of every kind, in a standalone log: the golden record stream.
fn write_every_kind(directory: &Path) -> Vec<u8> {
    let log = Log::open(directory, LogConfig::default()).unwrap();
    let mut transaction = log.transaction();
    transaction.create_table("inbox");
    transaction.put("inbox", b"id-1", b"Subject: hello");
    transaction.put_chunked("inbox", b"id-2", b"a value in three pieces", 8);
    transaction.delete("inbox", b"id-1");
    transaction.drop_table("inbox");
    transaction.commit(Durability::Durable).unwrap();
    let mut transaction = log.transaction();
    transaction.put("inbox", b"id-3", b"never");
    transaction.abort().unwrap();
    log.close().unwrap();
    let reader = LogReader::open(directory, LogConfig::default()).unwrap();
    let mut stream = Vec::new();
    for record in reader.read_from(LogPosition::new(1, 0)) {
        let record = record.unwrap();
        frame_into(&mut stream, record.kind, &record.payload);
    }
    stream
}

/// Files longer than this are committed compressed (`NAME.zst`): database and generation
/// files are mostly zeros (extents and generations are allocated whole).
const COMPRESS_ABOVE_BYTES: u64 = 16 << 10;

/// Copies the files of `from` (recursively, but for ownership locks) into `to`, compressing
/// the long ones.
fn pack_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name == LOCK_FILE_NAME || name == "lock" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            pack_tree(&entry.path(), &to.join(&name));
        } else if entry.metadata().unwrap().len() > COMPRESS_ABOVE_BYTES {
            let bytes = std::fs::read(entry.path()).unwrap();
            let packed = zstd::encode_all(bytes.as_slice(), 19).unwrap();
            std::fs::write(to.join(format!("{name}.zst")), packed).unwrap();
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// Copies the golden directory `from` into `to` as the code wrote it: every `NAME.zst`
/// decompressed to `NAME`, every file private (0600), as the engine creates them.
fn unpack_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let target = if entry.file_type().unwrap().is_dir() {
            unpack_tree(&entry.path(), &to.join(&name));
            continue;
        } else if let Some(stem) = name.strip_suffix(".zst") {
            let packed = std::fs::read(entry.path()).unwrap();
            let bytes = zstd::decode_all(packed.as_slice()).unwrap();
            std::fs::write(to.join(stem), bytes).unwrap();
            to.join(stem)
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
            to.join(&name)
        };
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Rebuilds every golden file. Run by hand, deliberately, when a format changes:
/// `cargo test -p bluejet-tests --test golden -- --ignored regenerate_golden_files`.
#[test]
#[ignore = "rewrites tests/golden; run by hand when a format changes on purpose"]
fn regenerate_golden_files() {
    let work = tempfile::tempdir().unwrap();
    let (active_dir, replica_dir) = (work.path().join("active"), work.path().join("replica"));
    let backup_dir = work.path().join("backup");

    let active = Database::open(&active_dir, small_options()).unwrap();
    write_first_phase(&active);
    let mut config = common::replica_config(&active_dir, &replica_dir);
    config.options = small_options();
    let seeded = seed(&active, &config).unwrap();
    write_second_phase(&active);
    let end = active.begin_read().unwrap().end();
    let mut replica = Replica::open(config.clone()).unwrap();
    replica.catch_up(end, Duration::from_secs(30)).unwrap();
    replica.close(CopyState::Disabled, "golden files").unwrap();
    let backup = backup::full(&config, &backup_dir).unwrap();
    active.checkpoint().unwrap();
    active.close().unwrap();
    // The positions the checks expect (their constants).
    let checkpoint_file = checkpoint::read(&OsFileSystem, &active_dir.join("E00.chk")).unwrap();
    println!(
        "LOG_END {end:?}, CHECKPOINT {:?}, SEEDED_AT {:?}, BACKUP_POSITION {:?}",
        checkpoint_file.checkpoint.position, seeded.position, backup.manifest.position
    );

    let root = golden();
    for part in ["database", "replica", "backup", "records.bin"] {
        let path = root.join(part);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    pack_tree(&active_dir, &root.join("database"));
    pack_tree(&replica_dir, &root.join("replica"));
    pack_tree(&backup_dir, &root.join("backup"));
    let stream = write_every_kind(&work.path().join("log"));
    std::fs::write(root.join("records.bin"), stream).unwrap();
}

/// A golden directory copied (and decompressed) into a fresh temporary directory: the tests
/// never touch the committed files.
fn unpacked(part: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    unpack_tree(&golden().join(part), copy.path());
    copy
}

/// A short description of a record: its kind, and the table and key it names.
fn describe(record: &Record) -> String {
    match record {
        Record::Put { table, key, .. } => format!("Put {table} {}", String::from_utf8_lossy(key)),
        Record::PutChunk {
            table,
            key,
            offset,
            total,
            bytes,
            ..
        } => format!(
            "PutChunk {table} {} {offset}+{}/{total}",
            String::from_utf8_lossy(key),
            bytes.len()
        ),
        Record::Delete { table, key, .. } => {
            format!("Delete {table} {}", String::from_utf8_lossy(key))
        }
        Record::CreateTable { table, .. } => format!("CreateTable {table}"),
        Record::DropTable { table, .. } => format!("DropTable {table}"),
        other => format!("{other:?}")
            .split([' ', '('])
            .next()
            .unwrap()
            .to_owned(),
    }
}

/// Where the golden database's log ended, where its checkpoint stands, where the replica
/// was seeded, and where the backup's content stands (printed by the generator).
const LOG_END: LogPosition = LogPosition::new(2, 328);
const CHECKPOINT: LogPosition = LogPosition::new(2, 328);
const SEEDED_AT: LogPosition = LogPosition::new(1, 12582);
const BACKUP_POSITION: LogPosition = LogPosition::new(2, 328);

/// The records of the golden database's log, described, in order.
fn expected_database_log() -> Vec<String> {
    let mut expected = vec!["Start", "Proof", "Begin", "CreateTable messages"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    expected.extend((0..20).map(|index| format!("Put messages m-{index:03}")));
    expected.extend(
        [
            "CreateTable folders",
            "Put folders inbox",
            "Put folders sent",
            "Commit",
            "Begin",
            "Delete messages m-005",
            "Put messages m-long",
            "CreateTable trash",
            "Put trash t-1",
            "Commit",
            "Begin",
            "DropTable trash",
            "Commit",
            // Generation 2: the second phase, after the roll.
            "Proof",
            "Begin",
            "Put folders archive",
            "Put messages m-001",
            "Delete messages m-019",
            "Commit",
            // Generation 3: the close.
            "Stop",
        ]
        .map(String::from),
    );
    expected
}

/// Applies the committed changes of `records` (one writer, so never interleaved) to a model.
fn replay_into_model(records: &[Record]) -> Content {
    let (mut content, mut pending) = (Content::new(), Vec::new());
    for record in records {
        match record {
            Record::Begin { .. } => pending.clear(),
            Record::Commit { .. } => {
                for change in pending.drain(..) {
                    match change {
                        Record::Put {
                            table, key, value, ..
                        } => {
                            content.entry(table).or_default().insert(key, value);
                        }
                        Record::Delete { table, key, .. } => {
                            content.entry(table).or_default().remove(&key);
                        }
                        Record::DropTable { table, .. } => {
                            content.remove(&table);
                        }
                        _ => {}
                    }
                }
            }
            change => pending.push(change.clone()),
        }
    }
    content
}

#[test]
fn the_database_opens_with_its_content() {
    let directory = unpacked("database");
    let database = Database::open(directory.path(), small_options()).unwrap();
    let header = database.header();
    assert_eq!(header.page_size, 4096);
    let read = database.begin_read().unwrap();
    assert_eq!(content_of(&read), expected_content());
    let summary = read.content().unwrap();
    assert_eq!(summary.entries(), 22);
    drop(read);
    database.close().unwrap();
}

#[test]
fn the_log_decodes_to_the_expected_records_and_re_encodes_to_its_bytes() {
    let directory = unpacked("database");
    let reader = LogReader::open(directory.path(), common::active_options().log).unwrap();
    let mut records = Vec::new();
    for record in reader.read_from(LogPosition::new(1, 0)) {
        let record = record.unwrap();
        let decoded = record.decode().unwrap().expect("every kind is known");
        let (mut again, mut golden) = (Vec::new(), Vec::new());
        decoded.encode_into(&mut again);
        frame_into(&mut golden, record.kind, &record.payload);
        assert_eq!(again, golden, "record at {:?} re-encodes", record.position);
        records.push((record.position, decoded));
    }
    let described: Vec<String> = records.iter().map(|(_, record)| describe(record)).collect();
    assert_eq!(described, expected_database_log());
    // The generations begin where the writer rolled: the second with its proof point.
    let starts: Vec<(LogPosition, String)> = records
        .iter()
        .filter(|(position, _)| position.offset == 0)
        .map(|(position, record)| (*position, describe(record)))
        .collect();
    assert_eq!(
        starts,
        [
            (LogPosition::new(1, 0), "Start".to_owned()),
            (LogPosition::new(2, 0), "Proof".to_owned()),
            (LogPosition::new(3, 0), "Stop".to_owned()),
        ]
    );
    let Record::Proof(proof) = &records[records.len() - 7].1 else {
        panic!("the second generation starts with a proof point");
    };
    assert_eq!((proof.tables, proof.totals.entries), (2, 22));
    let decoded: Vec<Record> = records.into_iter().map(|(_, record)| record).collect();
    assert_eq!(replay_into_model(&decoded), expected_content());
}

#[test]
fn the_record_stream_of_every_kind_decodes_and_re_encodes_byte_for_byte() {
    let golden_stream = std::fs::read(golden().join("records.bin")).unwrap();
    let (mut offset, mut records) = (0, Vec::new());
    while offset < golden_stream.len() {
        let raw = read_record(&golden_stream[offset..]).unwrap();
        records.push(raw.decode().unwrap().expect("every kind is known"));
        offset += raw.encoded_len();
    }
    let described: Vec<String> = records.iter().map(describe).collect();
    assert_eq!(
        described,
        [
            "Start",
            "Begin",
            "CreateTable inbox",
            "Put inbox id-1",
            "PutChunk inbox id-2 0+8/23",
            "PutChunk inbox id-2 8+8/23",
            "PutChunk inbox id-2 16+7/23",
            "Delete inbox id-1",
            "DropTable inbox",
            "Commit",
            "Begin",
            "Put inbox id-3",
            "Rollback",
            "Stop",
        ]
    );
    assert_eq!(
        records[3],
        Record::Put {
            transaction: records[1].transaction().unwrap(),
            table: "inbox".into(),
            key: b"id-1".to_vec(),
            value: b"Subject: hello".to_vec(),
        }
    );
    let pieces: Vec<u8> = records[4..7]
        .iter()
        .flat_map(|record| match record {
            Record::PutChunk { bytes, .. } => bytes.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(pieces, b"a value in three pieces");
    let mut again = Vec::new();
    for record in &records {
        record.encode_into(&mut again);
    }
    assert_eq!(again, golden_stream, "the stream re-encodes byte for byte");
}

#[test]
fn the_checkpoint_decodes_to_its_position() {
    let directory = unpacked("database");
    let read = checkpoint::read(&OsFileSystem, &directory.path().join("E00.chk")).unwrap();
    assert_eq!(read.checkpoint.position, CHECKPOINT);
    assert_eq!(read.checkpoint.timeline, 1);
    let replica = unpacked("replica");
    let identity =
        ReplicaIdentity::read(&OsFileSystem, &ReplicaLayout::new(replica.path())).unwrap();
    assert_eq!(read.checkpoint.signature, identity.signature, "one stream");
}

#[test]
fn the_replica_files_are_read_by_the_replication_readers() {
    let directory = unpacked("replica");
    let layout = ReplicaLayout::new(directory.path());
    let identity = ReplicaIdentity::read(&OsFileSystem, &layout).unwrap();
    assert_eq!(identity.base_name, "E00");
    assert_eq!((identity.timeline, identity.seeded_at), (1, SEEDED_AT));
    let status = CopyStatus::read(&OsFileSystem, &layout, Duration::MAX)
        .unwrap()
        .expect("a status");
    assert_eq!(status.state, CopyState::Disabled);
    assert_eq!(status.message, "golden files");
    assert_eq!(status.replayed_position, LOG_END);
    assert_eq!(status.last_replayed.map(|mark| mark.generation), Some(2));
    let history = BackupHistory::read(&OsFileSystem, &layout).unwrap();
    let backup = Manifest::read(&OsFileSystem, &golden().join("backup")).unwrap();
    assert_eq!(history.last_full.as_ref().unwrap().id, backup.id);

    let passive =
        PassiveDatabase::open(&layout.database(), &layout.logs(), small_options()).unwrap();
    assert_eq!(passive.replayed(), LOG_END);
    assert_eq!(passive.signature(), identity.signature);
    assert_eq!(
        content_of(&passive.begin_read().unwrap()),
        expected_content()
    );
    passive.close().unwrap();
}

#[test]
fn the_backup_verifies_and_restores_its_content() {
    let directory = unpacked("backup");
    let manifest = Manifest::read(&OsFileSystem, directory.path()).unwrap();
    assert_eq!(manifest.kind, BackupKind::Full);
    assert_eq!(manifest.position, BACKUP_POSITION);
    assert_eq!(
        (manifest.first_generation, manifest.last_generation),
        (Some(2), Some(2))
    );
    let report = verify(&OsFileSystem, directory.path()).unwrap();
    assert!(report.passed(), "{:?}", report.problems);

    let target = tempfile::tempdir().unwrap();
    let restored_dir = target.path().join("restored");
    let restored = restore(
        &[directory.path().to_owned()],
        &restored_dir,
        None,
        Options::default(),
    )
    .unwrap();
    assert_eq!(restored.position, BACKUP_POSITION);
    let database = Database::open(&restored_dir, Options::default()).unwrap();
    assert_eq!(
        content_of(&database.begin_read().unwrap()),
        expected_content()
    );
    database.close().unwrap();
}
