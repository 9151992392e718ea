//! Opening a database: create or read the file, check the log belongs to it and holds what
//! recovery needs, load the allocator, replay, checkpoint.

use super::database::{HeaderState, Inner, WriterState, DATABASE_FILE_NAME};
use super::log_link::LogLink;
use super::recovery::{self, ReplayReport};
use super::version::{Snapshots, Version};
use super::{DbError, Options};
use crate::btree::dirty::DirtyPages;
use crate::file::{FileSystem, OpenMode, OwnershipLock};
use crate::log::directory::LogDirectory;
use crate::log::{Log, LogPosition, StreamSignature};
use crate::page::allocator::Allocator;
use crate::page::db_header::{self, first_data_page, HeaderRead, HEADER_BYTES, HEADER_OFFSETS};
use crate::page::file::DatabaseFile;
use crate::page::{free_list, DbHeader, DbState, PageStore, WriteAhead};
use parking_lot::{Condvar, Mutex};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;

/// Opens (or creates) the database in `directory`.
pub(crate) fn open(
    directory: &Path,
    options: Options,
    owner: Option<OwnershipLock>,
) -> Result<Arc<Inner>, DbError> {
    options.validate()?;
    let owner = match owner {
        Some(owner) => owner,
        None => super::owner::lock_directory(options.log.file_system.as_ref(), directory)?,
    };
    let (file, read) = open_file(directory, &options)?;
    let fs = Arc::clone(&options.log.file_system);
    let fresh_log = check_log_present(fs.as_ref(), directory, &options, &read.header)?;
    // The log's threads start only after replay: a flush rolling the generation recovery is
    // reading would rename it under the reader.
    let log = Log::open_paused(directory, options.log.clone()).map_err(recovery::missing_or)?;
    let log = Arc::new(log);
    let mut read = read;
    if fresh_log && read.header.state == DbState::CleanShutdown {
        adopt_new_stream(&mut read.header, &log);
    }
    let header = read.header.clone();
    check_log(&log, &header, file.path())?;
    let allocator = load_allocator(&file, &header)?;
    let store = PageStore::new(file, options.cache_bytes, WriteAhead::Log(Arc::clone(&log)));
    let link = LogLink::Active(log);
    let inner = Arc::new(assemble(
        directory, options, store, link, read, allocator, owner,
    ));
    let report = recovery::replay(&inner, header.checkpoint)?;
    // What recovery rebuilt is checked whole: its proof points compared the summaries the
    // commits kept, the recount compares them with every entry in the file.
    if report.transactions_applied > 0 && inner.options.recount_after_recovery {
        super::content_check::check_stored(&inner)?;
    }
    *inner.replay.lock() = report;
    if let LogLink::Active(log) = &inner.log {
        log.start_background();
    }
    super::checkpoint::run(&inner, DbState::DirtyShutdown)?;
    Ok(inner)
}

/// Creates the database file in `directory` if there is none, opens it and reads its
/// header copies.
pub(crate) fn open_file(
    directory: &Path,
    options: &Options,
) -> Result<(DatabaseFile, HeaderRead), DbError> {
    options.validate()?;
    let fs = Arc::clone(&options.log.file_system);
    fs.create_directory_durably(directory)
        .map_err(|error| DbError::io(directory, "creating the directory", error))?;
    let path = directory.join(DATABASE_FILE_NAME);
    if !fs.exists(&path) {
        create(fs.as_ref(), directory, &path, options.page_size)?;
    }
    let handle = fs
        .open(&path, OpenMode::ReadWrite)
        .map_err(|error| DbError::io(&path, "opening", error))?;
    handle
        .reread_from_device()
        .map_err(|error| DbError::io(&path, "rereading from the disk", error))?;
    let read = read_header_copies(&handle, &path)?;
    let file = DatabaseFile::new(handle, &path, read.header.page_size as usize)?;
    check_length(&file, &read.header)?;
    Ok((file, read))
}

pub(crate) fn assemble(
    directory: &Path,
    options: Options,
    store: PageStore,
    log: LogLink,
    read: HeaderRead,
    (allocator, chain): (Allocator, Vec<u64>),
    owner: OwnershipLock,
) -> Inner {
    let header = read.header;
    let checkpoint_file = log
        .active()
        .map_or(header.checkpoint, |log| log.checkpoint().position);
    let circular = match &log {
        LogLink::Active(_) => {
            let fs = options.log.file_system.as_ref();
            let marker = super::retention_marker::read_retention_marker(fs, directory);
            let reason = marker.retains().then(|| marker.describe());
            super::circular::CircularLogging::at_open(&options, reason)
        }
        LogLink::Passive(_) => super::circular::CircularLogging::passive(),
    };
    let mut chains = [Vec::new(), Vec::new()];
    chains[read.slot as usize] = chain;
    let version = Version {
        number: header.state_version,
        catalog_root: header.catalog_root,
        end: header.checkpoint,
        content: header.content,
    };
    Inner {
        directory: directory.to_owned(),
        options,
        store,
        log,
        writer: Arc::new(Mutex::new(WriterState {
            allocator,
            dirty: DirtyPages::default(),
            committed: Arc::new(version),
            proved_generation: 0,
        })),
        snapshots: Snapshots::new(version),
        checkpoint_position: AtomicU64::new(header.checkpoint.to_u64()),
        required_generation: AtomicU32::new(header.log_required.1),
        header: Mutex::new(HeaderState {
            header,
            slot: read.slot,
            chains,
        }),
        poison: Mutex::new(None),
        stopping: Mutex::new(false),
        wakeup: Condvar::new(),
        commits: AtomicU64::new(0),
        checkpoints: AtomicU64::new(0),
        latencies: Default::default(),
        replay: Mutex::new(ReplayReport::default()),
        owner: Some(owner),
        checkpoint_file_position: AtomicU64::new(checkpoint_file.to_u64()),
        circular: Mutex::new(circular),
    }
}

/// Creates an empty database file: written under a temporary name, synced, renamed, and the
/// directory synced, so a crash leaves either no file or a whole one.
fn create(
    fs: &dyn FileSystem,
    directory: &Path,
    path: &Path,
    page_size: usize,
) -> Result<(), DbError> {
    let temporary = directory.join(format!("{DATABASE_FILE_NAME}.tmp"));
    if fs.exists(&temporary) {
        fs.remove(&temporary)
            .map_err(|error| DbError::io(&temporary, "removing", error))?;
    }
    let handle = fs
        .open(&temporary, OpenMode::CreateNew)
        .map_err(|error| DbError::io(&temporary, "creating", error))?;
    let header = new_header(page_size);
    let io = |error| DbError::io(&temporary, "writing", error);
    handle
        .set_len(first_data_page(page_size) * page_size as u64)
        .map_err(io)?;
    for slot in 0..2u8 {
        let copy = DbHeader {
            sequence: slot as u64,
            ..header.clone()
        };
        handle
            .write_at(&copy.encode(slot), HEADER_OFFSETS[slot as usize])
            .map_err(io)?;
    }
    handle.sync_data().map_err(io)?;
    fs.rename(&temporary, path)
        .map_err(|error| DbError::io(path, "renaming", error))?;
    fs.sync_directory(directory)
        .map_err(|error| DbError::io(directory, "syncing", error))
}

/// The header of a new database: no tables, recovery from the start of the log.
fn new_header(page_size: usize) -> DbHeader {
    DbHeader {
        page_size: u32::try_from(page_size).expect("a page size fits u32: one of PAGE_SIZES"),
        state: DbState::JustCreated,
        sequence: 0,
        signature: StreamSignature::generate(),
        log_signature: StreamSignature {
            id: [0; 16],
            created_micros: 0,
        },
        log_required: (1, 1),
        last_consistent: LogPosition::new(1, 0),
        checkpoint: LogPosition::new(1, 0),
        catalog_root: 0,
        next_page: first_data_page(page_size),
        free_list: 0,
        state_version: 0,
        repair_count: 0,
        checksum_errors: 0,
        last_full_backup: Default::default(),
        last_incremental_backup: Default::default(),
        timeline: 1,
        content: Default::default(),
    }
}

/// Reads both header copies and picks the newest valid one.
pub fn read_header_copies(
    handle: &Arc<dyn crate::file::FileHandle>,
    path: &Path,
) -> Result<HeaderRead, DbError> {
    let mut copies = [[0u8; HEADER_BYTES]; 2];
    for (slot, copy) in copies.iter_mut().enumerate() {
        // A short file reads as zeros: that copy is then "not initialised".
        if let Err(error) = handle.read_exact_at(copy, HEADER_OFFSETS[slot]) {
            tracing::debug!(path = %path.display(), slot, %error, "header copy unreadable");
        }
    }
    db_header::choose([&copies[0], &copies[1]]).map_err(|[copy_0, copy_1]| DbError::BadHeader {
        path: path.to_owned(),
        copy_0,
        copy_1,
    })
}

fn check_length(file: &DatabaseFile, header: &DbHeader) -> Result<(), DbError> {
    let needed = header.next_page * header.page_size as u64;
    if file.length() < needed {
        return Err(DbError::Truncated {
            path: file.path().to_owned(),
            length: file.length(),
            needed,
        });
    }
    Ok(())
}

/// A cleanly shut down database needs no log: if its log is gone, it starts a new stream
/// (as ESE does), its positions restarting at the new stream's first generation.
fn adopt_new_stream(header: &mut DbHeader, log: &Log) {
    let start = LogPosition::new(log.current_generation(), 0);
    header.log_signature = StreamSignature {
        id: [0; 16],
        created_micros: 0,
    };
    header.checkpoint = start;
    header.last_consistent = start;
    header.log_required = (start.generation, start.generation);
}

/// A database that needs its log must find it before `Log::open` would start a new stream.
/// Returns whether the directory holds no log at all (a new stream will be started).
fn check_log_present(
    fs: &dyn FileSystem,
    directory: &Path,
    options: &Options,
    header: &DbHeader,
) -> Result<bool, DbError> {
    let listing = LogDirectory::list(fs, directory, options.log.base_name)?;
    let empty = !listing.current && listing.closed.is_empty();
    if header.state != DbState::DirtyShutdown {
        return Ok(empty);
    }
    let last_closed = listing.closed.keys().next_back().copied().unwrap_or(0);
    // Without `E00.log`, opening the log would start a new current generation after the last
    // closed one, as after a roll cut by a crash: refuse if the header says the log went
    // further than that.
    let reason = if !listing.current && listing.closed.is_empty() {
        "the directory holds no log generation".to_owned()
    } else if !listing.current && header.log_required.1 > last_closed {
        format!(
            "generation {} (the current generation, {}) is missing",
            header.log_required.1,
            options.log.base_name.current()
        )
    } else {
        return Ok(false);
    };
    Err(DbError::MissingLogGenerations {
        directory: directory.to_owned(),
        first: header.log_required.0,
        last: header.log_required.1,
        reason,
    })
}

/// The log must be this database's and hold every generation recovery needs.
fn check_log(log: &Log, header: &DbHeader, path: &Path) -> Result<(), DbError> {
    let adopting = header.log_signature.id == [0; 16];
    if !adopting && header.log_signature != log.signature() {
        return Err(DbError::ForeignLog {
            path: path.to_owned(),
            expected: header.log_signature,
            found: log.signature(),
        });
    }
    let (first, last) = (
        header.checkpoint.generation,
        header.log_required.1.max(header.checkpoint.generation),
    );
    let current = log.current_generation();
    let directory = log.directory();
    let listing = LogDirectory::list(log_file_system(log).as_ref(), directory, log_base(log))?;
    for generation in first..=last {
        if generation != current && !listing.closed.contains_key(&generation) {
            return Err(DbError::MissingLogGenerations {
                directory: directory.to_owned(),
                first,
                last,
                reason: format!("generation {generation} is missing"),
            });
        }
    }
    Ok(())
}

fn log_file_system(log: &Log) -> Arc<dyn FileSystem> {
    log.config().file_system.clone()
}

fn log_base(log: &Log) -> crate::log::BaseName {
    log.config().base_name
}

/// The allocator as the header's checkpoint left it.
pub(crate) fn load_allocator(
    file: &DatabaseFile,
    header: &DbHeader,
) -> Result<(Allocator, Vec<u64>), DbError> {
    let first = first_data_page(header.page_size as usize);
    let read = |number: u64| -> Result<Box<[u8]>, DbError> {
        let (page, _) = file.read_page(number)?;
        Ok(page)
    };
    let loaded = free_list::load(
        &read,
        header.free_list,
        (first, header.next_page),
        file.path(),
    )?;
    let mut allocator = Allocator {
        next_page: header.next_page,
        older_header_version: 0,
        ..Allocator::default()
    };
    allocator.free.extend(loaded.free);
    for page in loaded.retired {
        allocator.retire(header.state_version, page);
    }
    Ok((allocator, loaded.chain))
}
