//! Checkpoints: write committed pages, then flip the header to the new state.
//!
//! Order, each step after the previous is done:
//! 1. Under the writer lock, capture the newest committed version, the allocator's free and
//!    retired pages, and the unwritten pages; reserve pages at the end of the file for the
//!    new free list (retiring the previous one).
//! 2. Write the unwritten pages (each after its log records are durable) and the free list.
//! 3. Sync the file; wait until the log is durable up to the captured version.
//! 4. Write the header copy not holding the newest header, with the captured state, and sync.
//! 5. The older copy's state may now be overwritten: retired pages up to its version can be
//!    freed. The log's checkpoint moves to the older copy's checkpoint, so both copies can
//!    always be recovered.
//!
//! 6. With circular logging, closed generations below the checkpoint file are deleted
//!    (see `circular.rs`).
//!
//! Pages written in step 2 are never reachable from either header copy on disk, so a crash
//! at any step leaves the previous state whole.

use super::database::{HeaderState, Inner};
use super::log_link::LogLink;
use super::DbError;
use crate::log::LogPosition;
use crate::page::db_header::HEADER_OFFSETS;
use crate::page::{free_list, DbHeader, DbState};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What one checkpoint did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Pages written.
    pub pages_written: usize,
    /// The new checkpoint position.
    pub position: LogPosition,
}

struct Capture {
    version: u64,
    catalog_root: u64,
    end: LogPosition,
    next_page: u64,
    free_list: Vec<(u64, Vec<u8>)>,
    chain: Vec<u64>,
    /// The committed version's content totals.
    content: crate::content::ContentTotals,
}

/// Runs a checkpoint, writing the header with `state`.
pub(crate) fn run(inner: &Inner, state: DbState) -> Result<CheckpointReport, DbError> {
    let report = {
        let mut header_state = inner.header.lock();
        // After a failed write or fsync the file's state is unknown: no header may claim it.
        inner.check_usable()?;
        let started = Instant::now();
        let result = checkpoint_locked(inner, &mut header_state, state);
        inner.latencies.checkpoint.record(started.elapsed());
        if let Err(error) = &result {
            inner.poison(error);
        }
        result?
    };
    // Step 6, once the header and the checkpoint file are durable, outside the header lock
    // (commits needing a header write go on meanwhile).
    if let Err(error) = super::circular::after_checkpoint(inner) {
        inner.poison(&error);
        return Err(error);
    }
    Ok(report)
}

fn checkpoint_locked(
    inner: &Inner,
    header_state: &mut HeaderState,
    state: DbState,
) -> Result<CheckpointReport, DbError> {
    let capture = capture(inner, header_state);
    let pages_written = inner.store.write_unwritten()?;
    let file = inner.store.file();
    for (number, page) in &capture.free_list {
        file.write_page(*number, page)?;
    }
    file.ensure_pages(capture.next_page)?;
    file.sync()?;
    inner.log.wait_durable(capture.end)?;
    let previous = header_state.header.clone();
    let header = DbHeader {
        state,
        sequence: previous.sequence + 1,
        log_signature: inner.log.signature(),
        log_required: (capture.end.generation, inner.log.newest_generation()),
        last_consistent: capture.end,
        checkpoint: capture.end,
        catalog_root: capture.catalog_root,
        next_page: capture.next_page,
        free_list: capture.free_list.first().map_or(0, |(number, _)| *number),
        state_version: capture.version,
        checksum_errors: previous.checksum_errors.max(inner.store.checksum_errors()),
        timeline: inner.log.timeline(),
        content: capture.content,
        ..previous.clone()
    };
    write_header(inner, header_state, header, capture.chain.clone())?;
    {
        let mut writer = inner.writer.lock();
        writer.allocator.older_header_version = previous.state_version;
        writer.allocator.reclaim(Some(inner.snapshots.horizon()));
    }
    inner
        .checkpoint_position
        .store(capture.end.to_u64(), Ordering::Relaxed);
    inner
        .required_generation
        .fetch_max(header_state.header.log_required.1, Ordering::AcqRel);
    inner.log.checkpoint_moved(previous.checkpoint)?;
    if let Some(log) = inner.log.active() {
        inner
            .checkpoint_file_position
            .store(log.checkpoint().position.to_u64(), Ordering::Relaxed);
    }
    inner.checkpoints.fetch_add(1, Ordering::Relaxed);
    Ok(CheckpointReport {
        pages_written: pages_written + capture.free_list.len(),
        position: capture.end,
    })
}

/// Step 1, under the writer lock.
fn capture(inner: &Inner, header_state: &HeaderState) -> Capture {
    let mut writer = inner.writer.lock();
    let version = writer.committed.number;
    let allocator = &mut writer.allocator;
    // The new free list goes on pages taken from the free list itself (free in both header
    // copies' states), so checkpoints do not grow the file; taking them only shortens the list.
    let page_size = inner.store.page_size();
    // The chains the two slots name stay in use until their slot is written over; the new
    // list records them as retired, so that after a crash they become free at the next flip.
    // (Both slots may name the same chain.)
    let named: std::collections::BTreeSet<u64> =
        header_state.chains.iter().flatten().copied().collect();
    let entries = allocator.free.len()
        + allocator.retired.len()
        + allocator.fresh_retired.len()
        + named.len();
    let chain: Vec<u64> = (0..free_list::pages_needed(entries, page_size))
        .map(|_| allocator.allocate())
        .collect();
    allocator.checkpoint_begins();
    let free: Vec<u64> = allocator.free.iter().copied().collect();
    let mut retired = allocator.all_retired();
    retired.extend(named);
    let committed = *writer.committed;
    // A checkpoint never moves back, even with no commit since the last one.
    let end = committed.end.max(header_state.header.checkpoint);
    Capture {
        version,
        content: committed.content,
        catalog_root: committed.catalog_root,
        end,
        next_page: writer.allocator.next_page,
        free_list: free_list::encode(&free, &retired, &chain, page_size, end),
        chain,
    }
}

/// Writes `header`, whose free list is on the pages `chain`, into the slot not holding the
/// newest copy, and syncs. The chain the overwritten copy named, unless the other copy names
/// it too, is free from then on.
pub(crate) fn write_header(
    inner: &Inner,
    header_state: &mut HeaderState,
    header: DbHeader,
    chain: Vec<u64>,
) -> Result<(), DbError> {
    let slot = 1 - header_state.slot;
    let bytes = header.encode(slot);
    let file = inner.store.file();
    file.write_at(&bytes, HEADER_OFFSETS[slot as usize])?;
    file.sync()?;
    header_state.header = header;
    header_state.slot = slot;
    let replaced = std::mem::replace(&mut header_state.chains[slot as usize], chain);
    let still_named = &header_state.chains;
    let unnamed: Vec<u64> = replaced
        .into_iter()
        .filter(|page| !still_named.iter().flatten().any(|named| named == page))
        .collect();
    let mut writer = inner.writer.lock();
    for page in unnamed {
        writer.allocator.free.insert(page);
    }
    Ok(())
}

/// The last step of a clean close: the log is closed, then the header says CleanShutdown
/// with no log required.
pub(crate) fn close_clean(inner: Inner) -> Result<(), DbError> {
    let Inner {
        mut store,
        log,
        header,
        owner,
        ..
    } = inner;
    drop(store.take_log());
    let LogLink::Active(log) = log else {
        return Err(DbError::ReadOnly {
            what: "a clean close of a passive copy's log (it has none of its own)",
        });
    };
    let log = std::sync::Arc::try_unwrap(log).map_err(|log| DbError::StillInUse {
        handles: 0,
        transactions: std::sync::Arc::strong_count(&log) - 1,
    })?;
    let end = log.close()?;
    let header_state = header.into_inner();
    let previous = header_state.header.clone();
    let clean = DbHeader {
        state: DbState::CleanShutdown,
        sequence: previous.sequence + 1,
        log_required: (0, 0),
        last_consistent: end,
        checkpoint: end,
        ..previous
    };
    let slot = 1 - header_state.slot;
    store
        .file()
        .write_at(&clean.encode(slot), HEADER_OFFSETS[slot as usize])?;
    let synced = store.file().sync();
    // Released only once the clean header is durable: no other owner writes before.
    drop(owner);
    synced
}
