//! The checks behind the database fuzz targets `db_open` and `page_decode` (shared, like the
//! rest of this crate, with `tests/tests/fuzz_seeds.rs`).
//!
//! `db_open` runs the database on the simulated disk rather than in a temporary directory:
//! the engine's file layer is the same trait either way, and without real files and fsyncs
//! the fuzzer runs many times faster and every run is deterministic.

use bluejet_engine::file::simulated::SimulatedFileSystem;
use bluejet_engine::file::FileSystem;
use bluejet_engine::format::db_header::{self, DbHeader, HEADER_BYTES, HEADER_OFFSETS};
use bluejet_engine::format::inspect::{self, DatabaseImage};
use bluejet_engine::format::node::{self, NodeView, ValueRef};
use bluejet_engine::format::page::{self, PageType, PAGE_SIZES};
use bluejet_engine::format::page_store;
use bluejet_engine::{Database, DbError, Options, DATABASE_FILE_NAME};
use bluejet_engine::{LogConfig, LogPosition};
use std::path::Path;
use std::sync::Arc;

/// The directory of the database on the simulated disk.
pub const DIRECTORY: &str = "/fuzz/db";
/// Page size of the base database.
pub const BASE_PAGE_SIZE: usize = 4096;
/// The database `db_open` mutates: a small database left dirty, so that opening it replays
/// commits from its log; three tables, long values, a branch page and a free list. Its
/// pages end at the header's next page. Written by `regenerate_db_seeds` in
/// `tests/tests/fuzz_seeds.rs`.
pub const BASE_DATABASE: &[u8] = include_bytes!("../base/db_open/bluejet.db");
/// The base database's log, by file name.
pub const BASE_LOG: [(&str, &[u8]); 2] = [
    ("E00.log", include_bytes!("../base/db_open/E00.log")),
    ("E00.chk", include_bytes!("../base/db_open/E00.chk")),
];
/// Input of `db_open` that starts with these bytes (a header copy's magic) is a whole
/// database file.
pub const WHOLE_FILE_MAGIC: &[u8; 8] = b"BJETDB\0\0";

/// Options for the simulated disk: deterministic (no background threads), small.
pub fn options(fs: &SimulatedFileSystem) -> Options {
    Options {
        page_size: BASE_PAGE_SIZE,
        cache_bytes: 1 << 20,
        checkpoint_depth_bytes: 1 << 20,
        background: false,
        log: LogConfig {
            generation_bytes: 128 << 10,
            background: false,
            idle_roll_interval: None,
            file_system: Arc::new(fs.clone()),
            ..LogConfig::default()
        },
        ..Options::default()
    }
}

/// Target `db_open`: the input is either a whole database file (when it starts with
/// [`WHOLE_FILE_MAGIC`]) or patches XORed into [`BASE_DATABASE`]: each patch is a u32 LE
/// offset (modulo the file length), a u8 length, then that many bytes. The file is put
/// beside the base log on a simulated disk, the offline checks read it, then the database is
/// opened (recovery replays the log) and every table is read forward, backward and key by
/// key. Then the same again with every page checksum and header checksum recomputed. Nothing
/// may panic. Returns whether the file as given opened and read without error.
pub fn db_open(data: &[u8]) -> bool {
    let mut image = database_image(data);
    let opened = open_and_read(&image);
    reseal_database(&mut image);
    open_and_read(&image);
    opened
}

/// The database file an input stands for.
pub fn database_image(data: &[u8]) -> Vec<u8> {
    if data.starts_with(WHOLE_FILE_MAGIC) {
        return data.to_vec();
    }
    let mut image = BASE_DATABASE.to_vec();
    let mut rest = data;
    while rest.len() > 5 {
        let offset = u32_at(rest, 0) as usize;
        let end = (5 + rest[4] as usize).min(rest.len());
        for (index, byte) in rest[5..end].iter().enumerate() {
            let at = (offset + index) % image.len();
            image[at] ^= byte;
        }
        rest = &rest[end..];
    }
    image
}

/// A patch for [`db_open`] input: XOR `bytes` (at most 255) at `offset`.
pub fn patch(offset: u32, bytes: &[u8]) -> Vec<u8> {
    let bytes = &bytes[..bytes.len().min(255)];
    let mut patch = offset.to_le_bytes().to_vec();
    patch.push(bytes.len() as u8);
    patch.extend_from_slice(bytes);
    patch
}

/// Puts `image` and the base log on a new simulated disk; runs the offline checks, then
/// opens the database and reads everything. Returns whether the open and the reads
/// succeeded.
fn open_and_read(image: &[u8]) -> bool {
    let fs = SimulatedFileSystem::new();
    let directory = Path::new(DIRECTORY);
    fs.create_directory(directory).expect("simulated directory");
    fs.write_file_durably(&directory.join(DATABASE_FILE_NAME), image);
    for (name, bytes) in BASE_LOG {
        fs.write_file_durably(&directory.join(name), bytes);
    }
    let _ = inspect_offline(&fs, directory);
    Database::open(directory, options(&fs))
        .and_then(|db| read_everything(&db))
        .is_ok()
}

/// What the `bluejet` tool does to a damaged file: header and checksums, and when the file
/// is as long as its header says, integrity and space.
fn inspect_offline(fs: &SimulatedFileSystem, directory: &Path) -> Result<(), DbError> {
    let image = DatabaseImage::open_with(fs, directory)?;
    inspect::checksum(&image, &mut |_, _| {})?;
    inspect::integrity(&image)?;
    inspect::space(&image)?;
    Ok(())
}

/// Every table, forward, backward and key by key; the first error ends the read.
pub fn read_everything(db: &Database) -> Result<(), DbError> {
    let read = db.begin_read()?;
    for name in read.table_names()? {
        let table = read.open_table(&name)?;
        let mut keys = Vec::new();
        for entry in table.range(..)? {
            keys.push(entry?.0);
        }
        for entry in table.range(..)?.rev() {
            entry?;
        }
        for key in keys {
            table.get(&key)?;
        }
        table.len();
    }
    Ok(())
}

/// Recomputes the checksum of both header copies and of every page that is not all zeros
/// (so the fuzzer gets past the checksums to the structure behind them).
fn reseal_database(image: &mut [u8]) {
    for offset in HEADER_OFFSETS {
        let start = offset as usize;
        if image.len() >= start + HEADER_BYTES {
            let checksum = crc32c::crc32c(&image[start + 12..start + HEADER_BYTES]);
            image[start + 8..start + 12].copy_from_slice(&checksum.to_le_bytes());
        }
    }
    let first = db_header::first_data_page(BASE_PAGE_SIZE) as usize;
    for (number, page) in image
        .chunks_exact_mut(BASE_PAGE_SIZE)
        .enumerate()
        .skip(first)
    {
        if page.iter().any(|&byte| byte != 0) {
            let checksum = page::page_checksum(number as u64, page);
            page[..4].copy_from_slice(&checksum.to_le_bytes());
        }
    }
}

/// Target `page_decode`: the first input byte picks the page size (low two bits), the rest
/// is the page (cut or zero-padded to that size), checked as the store checks pages read
/// from disk: `page::verify` at the page number it holds, then `page_store::validate`. A tree
/// page that validates must be safe to read with every `NodeView` accessor, find each of
/// its keys, and decode to a node that encodes back to an equal page (when its cells fit
/// apart). The rest of the input is also decoded as a header copy, and a copy that decodes
/// encodes back to itself. Both again with checksums recomputed. Returns whether the input as
/// given decoded as a page or as a header copy.
pub fn page_decode(data: &[u8]) -> bool {
    let Some((&selector, content)) = data.split_first() else {
        return false;
    };
    let page_size = PAGE_SIZES[selector as usize % PAGE_SIZES.len()];
    let mut page = vec![0u8; page_size];
    let length = content.len().min(page_size);
    page[..length].copy_from_slice(&content[..length]);
    let number = page::read_u64(&page, 8);
    let page_decoded = page_check(&page, number);
    let checksum = page::page_checksum(number, &page);
    page[..4].copy_from_slice(&checksum.to_le_bytes());
    page_check(&page, number);
    let header_decoded = header_check(content);
    if content.len() >= HEADER_BYTES {
        let mut sealed = content[..HEADER_BYTES].to_vec();
        let checksum = crc32c::crc32c(&sealed[12..]);
        sealed[8..12].copy_from_slice(&checksum.to_le_bytes());
        header_check(&sealed);
    }
    page_decoded || header_decoded
}

/// Checks a page as the store does; returns whether it may be used.
fn page_check(page: &[u8], number: u64) -> bool {
    // The structural check alone must hold up on any bytes, checksum or not.
    let structure = node::validate(page);
    if structure.is_ok() {
        exercise_node(page, number);
    }
    let Ok(page_type) = page::verify(page, number) else {
        return false;
    };
    let valid = page_store::validate(page, page_type).is_ok();
    if matches!(page_type, PageType::Leaf | PageType::Branch) {
        assert_eq!(
            valid,
            structure.is_ok(),
            "the store validates tree pages so"
        );
        let checked = NodeView::checked(page, number, page.len());
        assert_eq!(checked.is_ok(), valid, "NodeView::checked agrees");
    }
    valid
}

/// Every accessor of a validated tree page, and its decode–encode round trip.
fn exercise_node(page: &[u8], number: u64) {
    let view = NodeView::new(page);
    for index in 0..view.len() {
        let key = view.key(index);
        assert_eq!(view.search(key), Ok(index), "key {index} is found");
        if view.is_leaf() {
            if let ValueRef::Inline(value) = view.value(index) {
                assert!(value.len() < page.len());
            }
        } else {
            assert_eq!(view.child_index(key), index + 1);
        }
    }
    if !view.is_leaf() {
        for index in 0..=view.len() {
            assert_ne!(view.child(index), 0, "a validated branch has no child 0");
        }
    }
    let node = view.to_node();
    assert_eq!(node.keys.len(), view.len());
    // Cells may overlap in a page built by hand: laid out apart, they may not fit.
    if node.size <= page.len() {
        let encoded = node.encode(page.len(), number, LogPosition::new(1, 0));
        let again = NodeView::checked(&encoded, number, page.len())
            .unwrap_or_else(|problem| panic!("an encoded node is valid: {problem}"));
        assert_eq!(again.to_node(), node, "decode, encode, decode");
    }
}

/// Decodes a header copy; one that decodes encodes back to the same header.
fn header_check(bytes: &[u8]) -> bool {
    let Ok((header, slot)) = DbHeader::decode(bytes) else {
        return false;
    };
    if slot < 2 {
        let encoded = header.encode(slot);
        assert_eq!(DbHeader::decode(&encoded), Ok((header.clone(), slot)));
    }
    if bytes.len() >= 2 * HEADER_BYTES {
        let pair = [
            &bytes[..HEADER_BYTES],
            &bytes[HEADER_BYTES..2 * HEADER_BYTES],
        ];
        if let Ok(read) = db_header::choose(pair) {
            let chosen = DbHeader::decode(pair[read.slot as usize]).expect("chosen copy decodes");
            assert_eq!(chosen.0, read.header, "the chosen copy is the one returned");
        }
    }
    true
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}
