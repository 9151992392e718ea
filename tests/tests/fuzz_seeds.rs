//! The fuzz seed corpus, run in ordinary CI: every `fuzz/corpus/<target>/seed-*` file goes
//! through the same checks as the fuzz target `<target>` (the checks are `fuzz/src/lib.rs`,
//! included here as a module). No seed may panic; a seed named `seed-valid-*` must decode and
//! every other seed must not.
//!
//! `cargo test -p bluejet-tests --test fuzz_seeds -- --ignored regenerate_seeds` writes the
//! seeds anew from a real log (random stream signature and times, so the bytes change);
//! `... -- --ignored regenerate_db_seeds` writes the base database of `db_open` and the seeds
//! of the database targets; `... -- --ignored regenerate_frame_seeds` the seeds of `frame`
//! (the same bytes every time).

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

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use bluejet_engine::format::record::Record;
use bluejet_engine::format::record::{frame_into, kind};
use bluejet_engine::format::scan::{self, ScanMode, TailSource};
use bluejet_engine::format::segment::{PAYLOAD_BYTES, SEGMENT_BYTES};
use bluejet_engine::log::Log;
use bluejet_engine::{Durability, LogConfig};
use std::path::{Path, PathBuf};

const TARGETS: [&str; 8] = [
    "generation_header",
    "segment",
    "record",
    "generation_scan",
    "checkpoint",
    "db_open",
    "page_decode",
    "frame",
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// The seed files of `target`, sorted by name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let directory = corpus().join(target);
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.expect("directory entry"))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("seed-"))
        .map(|name| {
            let data = std::fs::read(directory.join(&name)).expect("read seed");
            (name, data)
        })
        .collect();
    found.sort();
    found
}

#[test]
fn every_seed_runs_through_its_target() {
    let mut total_bytes = 0;
    for target in TARGETS {
        let seeds = seeds(target);
        let valid = seeds
            .iter()
            .filter(|s| s.0.starts_with("seed-valid-"))
            .count();
        assert!(valid >= 1, "{target}: no valid seed");
        assert!(seeds.len() > valid, "{target}: no damaged seed");
        for (name, data) in &seeds {
            total_bytes += data.len();
            let expect_valid = name.starts_with("seed-valid-");
            let decoded = match target {
                "generation_header" => checks::generation_header(data),
                "segment" => checks::segment(data),
                "record" => checks::record_stream(data),
                "checkpoint" => checks::checkpoint_file(data),
                "db_open" => checks::db_open(data),
                "page_decode" => checks::page_decode(data),
                "frame" => checks::frame_stream(data),
                "generation_scan" => {
                    let outcome = checks::generation_scan(data);
                    if name.starts_with("seed-valid-closed") {
                        // A closed generation also reads as the current one would: it is
                        // what `E00.log` held just before the roll renamed it.
                        assert!(outcome.current, "{target}/{name}: {outcome:?}");
                        outcome.closed
                    } else if name.starts_with("seed-valid-current") {
                        outcome.current
                    } else {
                        // Damaged seeds are damaged closed generations; read as the current
                        // generation, some of that damage passes for a torn tail.
                        outcome.closed
                    }
                }
                other => unreachable!("{other}"),
            };
            assert_eq!(decoded, expect_valid, "{target}/{name}");
        }
    }
    assert!(total_bytes < 3 << 20, "seed corpus is {total_bytes} bytes");
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut damaged = bytes.to_vec();
    damaged[bit / 8] ^= 1 << (bit % 8);
    damaged
}

fn keyed(generation: u32, slot: u32, segment: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(8 + segment.len());
    input.extend_from_slice(&generation.to_le_bytes());
    input.extend_from_slice(&slot.to_le_bytes());
    input.extend_from_slice(segment);
    input
}

fn slot_of(image: &[u8], slot: u32) -> &[u8] {
    let start = slot as usize * SEGMENT_BYTES;
    &image[start..start + SEGMENT_BYTES]
}

/// Writes the seed corpus from a real log. Ignored: run it by hand after a format change.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn regenerate_seeds() {
    let directory = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        generation_bytes: 128 << 10,
        background: false,
        idle_roll_interval: None,
        ..LogConfig::default()
    };
    let log = Log::open(directory.path(), config).expect("open");
    // Generation 1 fills up and rolls by itself; generation 2 is closed early by a roll.
    let mut index = 0u64;
    while log.current_generation() == 1 {
        let mut transaction = log.transaction();
        transaction.put("messages", format!("m{index}").as_bytes(), &[b'x'; 3000]);
        transaction.commit(Durability::Durable).expect("commit");
        index += 1;
    }
    for round in 0..3u64 {
        let mut transaction = log.transaction();
        transaction.create_table("folders");
        transaction.put("folders", b"inbox", &round.to_le_bytes());
        transaction.delete("messages", b"m0");
        transaction.drop_table("old");
        transaction.commit(Durability::Durable).expect("commit");
        let mut transaction = log.transaction();
        transaction.put("messages", b"never", b"committed");
        transaction.abort().expect("abort");
    }
    let mut transaction = log.transaction();
    transaction.put("messages", b"long", &[b'y'; 6000]);
    transaction.commit(Durability::Durable).expect("commit");
    assert_eq!(log.roll().expect("roll"), 2);
    let mut transaction = log.transaction();
    transaction.put("messages", b"tail", b"in a shadow");
    transaction.commit(Durability::Durable).expect("commit");
    log.close().expect("close");

    let read = |name: &str| std::fs::read(directory.path().join(name)).expect(name);
    let first = read("E0000000001.log");
    let second = read("E0000000002.log");
    let current = read("E00.log");
    let checkpoint = read("E00.chk");

    let write = |target: &str, name: &str, data: &[u8]| {
        let folder = corpus().join(target);
        std::fs::create_dir_all(&folder).expect("corpus folder");
        std::fs::write(folder.join(format!("seed-{name}")), data).expect("write seed");
    };

    write("generation_header", "valid-first", &first[..128]);
    write("generation_header", "valid-chained", &second[..128]);
    write(
        "generation_header",
        "valid-with-trailing-bytes",
        &second[..256],
    );
    write(
        "generation_header",
        "damaged-bit-flip",
        &flip(&first[..128], 8 * 50 + 3),
    );
    write("generation_header", "damaged-short", &first[..100]);
    write("generation_header", "damaged-all-zero", &[0; 128]);
    write(
        "generation_header",
        "damaged-checkpoint-copy",
        &checkpoint[..128],
    );

    let path = Path::new("seed.log");
    let second_scan = scan::scan(path, &second, ScanMode::Closed).expect("scan");
    let last_slot = (second_scan.stream.len() as u32 - 1) / PAYLOAD_BYTES as u32 + 1;
    let current_scan = scan::scan(path, &current, ScanMode::Current).expect("scan");
    let TailSource::Shadow(shadow) = current_scan.tail_source else {
        panic!("E00.log ends in a shadow: {:?}", current_scan.tail_source);
    };
    write("segment", "valid-home", &keyed(1, 1, slot_of(&first, 1)));
    write(
        "segment",
        "valid-partial",
        &keyed(2, last_slot, slot_of(&second, last_slot)),
    );
    write(
        "segment",
        "valid-shadow",
        &keyed(3, shadow, slot_of(&current, shadow)),
    );
    write(
        "segment",
        "damaged-wrong-slot",
        &keyed(1, 2, slot_of(&first, 1)),
    );
    write(
        "segment",
        "damaged-wrong-generation",
        &keyed(2, 1, slot_of(&first, 1)),
    );
    write(
        "segment",
        "damaged-bit-flip",
        &keyed(1, 1, &flip(slot_of(&first, 1), 9000)),
    );
    write(
        "segment",
        "damaged-past-used",
        &keyed(2, last_slot, &flip(slot_of(&second, last_slot), 8 * 4000)),
    );
    write(
        "segment",
        "damaged-short",
        &keyed(1, 1, &slot_of(&first, 1)[..100]),
    );
    write("segment", "empty", &keyed(1, 1, &[0; SEGMENT_BYTES]));

    let mut stream = Vec::new();
    let mut offset = 0;
    while offset < 2000 {
        let raw = bluejet_engine::format::record::read_record(&second_scan.stream[offset..])
            .expect("record");
        offset += raw.encoded_len();
    }
    stream.extend_from_slice(&second_scan.stream[..offset]);
    write("record", "valid-stream", &stream);
    let mut kinds = Vec::new();
    let every_kind = [
        Record::Start { time_micros: 1 },
        Record::Begin { transaction: 2 },
        Record::CreateTable {
            transaction: 2,
            table: "t".into(),
        },
        Record::Put {
            transaction: 2,
            table: "t".into(),
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
        Record::Delete {
            transaction: 2,
            table: "t".into(),
            key: b"k".to_vec(),
        },
        Record::DropTable {
            transaction: 2,
            table: "t".into(),
        },
        Record::Commit {
            transaction: 2,
            time_micros: 3,
        },
        Record::Begin { transaction: 4 },
        Record::Rollback { transaction: 4 },
        Record::Stop { time_micros: 5 },
    ];
    for record in &every_kind {
        record.encode_into(&mut kinds);
    }
    frame_into(&mut kinds, 200, b"a kind from the future");
    write("record", "valid-every-kind", &kinds);
    write("record", "damaged-torn", &kinds[..kinds.len() - 5]);
    write("record", "damaged-checksum", &flip(&kinds, 8 * 20));
    let mut lying = Vec::new();
    frame_into(&mut lying, kind::PUT, &[0xFF; 40]);
    write("record", "damaged-payload", &lying);
    let mut zero_kind = kinds.clone();
    zero_kind[0] = 0;
    write("record", "damaged-kind-zero", &zero_kind);

    write("generation_scan", "valid-closed-full", &first);
    write("generation_scan", "valid-closed-rolled", &second);
    write("generation_scan", "valid-current", &current);
    write(
        "generation_scan",
        "damaged-segment",
        &flip(&second, 8 * (SEGMENT_BYTES + 100)),
    );
    write(
        "generation_scan",
        "damaged-truncated",
        &first[..2 * SEGMENT_BYTES],
    );

    write("checkpoint", "valid-both", &checkpoint);
    write(
        "checkpoint",
        "valid-copy-1-only",
        &flip(&checkpoint, 8 * 30),
    );
    let both = flip(&flip(&checkpoint, 8 * 30), 8 * (4096 + 30));
    write("checkpoint", "damaged-both", &both);
    write("checkpoint", "damaged-short", &checkpoint[..100]);
    write(
        "checkpoint",
        "damaged-log-header",
        &first[..2 * SEGMENT_BYTES],
    );
}

/// Writes `fuzz/base/db_open` (a small database left dirty, with its log) and the seeds of
/// `db_open` and `page_decode`. Ignored: run it by hand after a format change; then the fuzz
/// targets and this test binary must be rebuilt, as they include the base.
#[test]
#[ignore = "writes fuzz/base and fuzz/corpus; run by hand after a format change"]
fn regenerate_db_seeds() {
    use bluejet_engine::file::simulated::SimulatedFileSystem;
    let fs = SimulatedFileSystem::new();
    let directory = Path::new(checks::db::DIRECTORY);
    let next_page = build_base_database(&fs, directory);
    let page_size = checks::db::BASE_PAGE_SIZE;
    let base_directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/base/db_open");
    std::fs::create_dir_all(&base_directory).expect("base folder");
    let file = fs
        .read_file(&directory.join("bluejet.db"))
        .expect("database file");
    let base = &file[..next_page as usize * page_size];
    std::fs::write(base_directory.join("bluejet.db"), base).expect("write base");
    for (name, _) in checks::db::BASE_LOG {
        let bytes = fs.read_file(&directory.join(name)).expect(name);
        std::fs::write(base_directory.join(name), bytes).expect("write base log");
    }
    write_db_open_seeds(base, page_size);
    write_page_decode_seeds(base, page_size);
}

/// A small database left dirty: a checkpoint holds three tables (a branch, long values,
/// freed pages); later commits, durable and lazy, are only in the log. Returns the header's
/// next page.
fn build_base_database(
    fs: &bluejet_engine::file::simulated::SimulatedFileSystem,
    directory: &Path,
) -> u64 {
    use bluejet_engine::Database;
    let db = Database::open(directory, checks::db::options(fs)).expect("open");
    let mut write = db.begin_write().expect("begin");
    write.create_table("messages").expect("create");
    write.create_table("bodies").expect("create");
    write.create_table("folders").expect("create");
    for index in 0..80u64 {
        let value = bluejet_tests::value_for(index, 0, 100 + index as usize);
        write
            .insert("messages", format!("m{index:03}").as_bytes(), &value)
            .expect("insert");
    }
    let text = "Subject: fuzz\r\nA line of mail text.\r\n".repeat(200);
    write
        .insert("bodies", b"text", text.as_bytes())
        .expect("insert");
    let noise: Vec<u8> = (0..6000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    write.insert("bodies", b"noise", &noise).expect("insert");
    write.insert("folders", b"inbox", b"80").expect("insert");
    write.commit().expect("commit");
    let mut write = db.begin_write().expect("begin");
    write.create_table("messages").expect("create");
    write.create_table("bodies").expect("create");
    for index in 0..10u64 {
        write
            .remove("messages", format!("m{index:03}").as_bytes())
            .expect("remove");
    }
    write
        .insert("bodies", b"noise", &noise[..5000])
        .expect("replace");
    write.commit().expect("commit");
    db.checkpoint().expect("checkpoint");
    let next_page = db.header().next_page;
    let mut write = db.begin_write().expect("begin");
    write.create_table("bodies").expect("create");
    write.create_table("folders").expect("create");
    write.create_table("messages").expect("create");
    write.insert("folders", b"sent", b"1").expect("insert");
    write
        .insert("bodies", b"late", &noise[..3000])
        .expect("insert");
    write.remove("messages", b"m050").expect("remove");
    write.commit().expect("commit");
    let mut write = db.begin_write().expect("begin");
    write.create_table("folders").expect("create");
    write.insert("folders", b"drafts", b"0").expect("insert");
    write
        .commit_with(bluejet_engine::Durability::Lazy)
        .expect("commit");
    let mut write = db.begin_write().expect("begin");
    write.create_table("folders").expect("create");
    write
        .insert("folders", b"never", b"aborted")
        .expect("insert");
    write.abort();
    drop(db);
    next_page
}

fn write_seed(target: &str, name: &str, data: &[u8]) {
    let folder = corpus().join(target);
    std::fs::create_dir_all(&folder).expect("corpus folder");
    std::fs::write(folder.join(format!("seed-{name}")), data).expect("write seed");
}

/// The root pages of the base database's catalog and of `table`.
fn roots(base: &[u8], table: &str) -> (u64, u64) {
    use bluejet_engine::file::simulated::SimulatedFileSystem;
    use bluejet_engine::format::inspect::DatabaseImage;
    let fs = SimulatedFileSystem::new();
    let path = Path::new("/seed/bluejet.db");
    fs.write_file_durably(path, base);
    let image = DatabaseImage::open_with(&fs, path).expect("image");
    let catalog = image.header.header.catalog_root;
    (catalog, image.table(table).expect("table").root)
}

fn write_db_open_seeds(base: &[u8], page_size: usize) {
    write_seed("db_open", "valid-unchanged", &[]);
    write_seed("db_open", "valid-whole-file", base);
    let (catalog, _) = roots(base, "messages");
    let leaf_bit = checks::db::patch(catalog as u32 * page_size as u32 + 100, &[0x10]);
    write_seed("db_open", "damaged-catalog-bit", &leaf_bit);
    let mut headers = checks::db::patch(200, &[1]);
    headers.extend(checks::db::patch(4096 + 200, &[1]));
    write_seed("db_open", "damaged-both-headers", &headers);
    write_seed("db_open", "damaged-truncated", &base[..3 * page_size]);
}

fn write_page_decode_seeds(base: &[u8], page_size: usize) {
    let (catalog, messages) = roots(base, "messages");
    let page = |number: u64| {
        let start = number as usize * page_size;
        let mut input = vec![0u8];
        input.extend_from_slice(&base[start..start + page_size]);
        input
    };
    assert_eq!(
        base[messages as usize * page_size + 4],
        1,
        "messages has a branch root"
    );
    write_seed("page_decode", "valid-leaf", &page(catalog));
    write_seed("page_decode", "valid-branch", &page(messages));
    let mut header = vec![0u8];
    header.extend_from_slice(&base[..1024]);
    write_seed("page_decode", "valid-header", &header);
    write_seed(
        "page_decode",
        "damaged-leaf",
        &flip(&page(catalog), 8 * 300 + 1),
    );
}

/// Writes the seeds of `frame`: streams of wire frames, whole or damaged one way each.
/// Ignored: run it by hand after a change of the frame's format.
#[test]
#[ignore = "writes fuzz/corpus/frame; run by hand after a format change"]
fn regenerate_frame_seeds() {
    use bluejet_replication::net::frame::encode_frame;
    use bluejet_replication::net::wire::Writer;
    let encode = |kind: u8, payload: &[u8]| encode_frame(kind, payload).expect("encode");
    let mut message = Writer::new();
    message
        .u8(1)
        .u16(2)
        .u32(3)
        .u64(u64::MAX)
        .bytes(b"generation bytes")
        .str("node-a");
    let one = encode(1, &message.finish().expect("message"));
    write_seed("frame", "valid-one-message", &one);
    write_seed("frame", "valid-empty-payload", &encode(0, b""));
    let limit = checks::net::LIMIT as usize;
    let body: Vec<u8> = (0..limit).map(|i| (i * 31 % 251) as u8).collect();
    let mut three = encode(2, b"");
    three.extend(encode(200, &body[..100]));
    three.extend(encode(7, &body));
    write_seed("frame", "valid-three-frames-up-to-the-limit", &three);

    let patched = |at: usize, value: &[u8]| {
        let mut bytes = one.clone();
        bytes[at..at + value.len()].copy_from_slice(value);
        bytes
    };
    write_seed("frame", "damaged-bad-magic", &patched(0, b"HTTP"));
    write_seed("frame", "damaged-bad-version", &patched(4, &[2]));
    write_seed("frame", "damaged-bad-flags", &patched(6, &[0, 1]));
    write_seed("frame", "damaged-bad-crc", &flip(&one, 8 * 20 + 1));
    write_seed("frame", "damaged-truncated-header", &one[..10]);
    write_seed("frame", "damaged-truncated-payload", &one[..one.len() - 3]);
    let over = (checks::net::LIMIT + 1).to_le_bytes();
    write_seed("frame", "damaged-over-the-limit", &patched(8, &over));
    let mut cut_second = one.clone();
    cut_second.extend(&encode(3, b"second")[..20]);
    write_seed("frame", "damaged-second-frame-cut", &cut_second);
    write_seed(
        "frame",
        "damaged-plaintext-http",
        b"GET / HTTP/1.1\r\nHost: b\r\n\r\n",
    );
}
