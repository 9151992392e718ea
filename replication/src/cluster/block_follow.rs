//! Block mode, the passive's side: once the copy has caught up, the log bytes the active
//! writes are pulled as they become durable there ([`Tail`]), appended to this node's block
//! file of the generation ([`BlockStore`]) and synced, and the synced position is sent back
//! with the next request (what a synchronous commit on the active waits for).
//!
//! Closed generations still arrive whole (file mode) and are inspected and replayed as
//! before; the block files are what a failover adds to them: the part of the active's
//! current generation it wrote before it failed. On anything unexpected (a broken connection,
//! bytes that left the active's memory, a gap, a failed sync) the copy is in file mode, with
//! the reason, until block mode can start again at the beginning of a generation.

use super::node::{NodeState, Shared};
use crate::block_store::{BlockEnd, BlockFile, BlockStore};
use crate::net::remote_fs::NetFileSystem;
use crate::net::tail::{Tail, TailAnswer, MAX_TAIL_WAIT_MS};
use bluejet_engine::format::generation_header::GenerationHeader;
use bluejet_engine::LogPosition;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Most bytes asked for in one request.
const MAX_REQUEST_BYTES: u32 = 1 << 20;
/// Pause after a fall back to file mode before block mode is tried again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// How the copy receives the log, for the status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BlockModeStatus {
    /// `block` (log writes received as they happen) or `file` (closed generations only).
    pub mode: String,
    /// Why the copy is in this mode.
    pub reason: String,
    /// The position through which received blocks are synced here.
    pub received: Option<LogPosition>,
    /// The active's durable position, as it last said.
    pub active_durable: Option<LogPosition>,
    /// Bytes durable on the active and not yet synced here (in this generation).
    pub bytes_in_flight: u64,
    /// The highest position this node acknowledged to the active (everything before it is
    /// synced here): what a synchronous active may have acknowledged to its clients.
    pub acknowledged: Option<LogPosition>,
}

/// What the follower keeps between requests.
struct Follower {
    store: Option<BlockStore>,
    open: Option<BlockFile>,
    /// The highest generation received whole.
    complete: u32,
    /// Block files are removed through this generation (the copy holds it closed).
    removed_through: u32,
}

/// Runs until the node stops: follows the active's log while this node is a passive copy.
pub(crate) fn run(shared: &Shared, client: &Arc<NetFileSystem>) {
    let mut follower = Follower {
        store: None,
        open: None,
        complete: 0,
        removed_through: 0,
    };
    remember_acknowledged(shared, follower.store(shared));
    while !shared.stopping() {
        let Some(next) = next_needed(shared) else {
            follower.open = None;
            set_file_mode(
                shared,
                "not a passive copy with a running replication service",
            );
            std::thread::sleep(RETRY_AFTER);
            continue;
        };
        if let Err(reason) = follower.step(shared, client, next) {
            follower.open = None;
            set_file_mode(shared, &reason);
            std::thread::sleep(RETRY_AFTER);
        }
    }
}

/// What this node may have acknowledged before it (re)started is at most what its block
/// files hold: taken as acknowledged, so that a failover's proof of synchronous commit never
/// rests on block files a restart replaced (the acknowledgements themselves are not kept).
fn remember_acknowledged(shared: &Shared, store: &BlockStore) {
    let held = store
        .generations()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|generation| {
            let (_, stream) = store.read(generation).ok()?;
            Some(match store.completion(generation) {
                Some(_) => LogPosition::new(generation + 1, 0),
                None => LogPosition::new(generation, generation_offset(stream.len())),
            })
        })
        .max();
    let mut status = shared.block_mode.lock();
    status.acknowledged = status.acknowledged.max(held);
}

/// The generation the copy needs next (the one after the last inspected), while this node
/// is a passive copy whose replication service runs.
fn next_needed(shared: &Shared) -> Option<u32> {
    match &*shared.state.read_recursive() {
        NodeState::Passive(passive) => passive
            .service
            .as_ref()
            .map(|service| service.inspected_through() + 1),
        _ => None,
    }
}

impl Follower {
    /// One request and what follows from its answer; `Err` falls back to file mode.
    fn step(&mut self, shared: &Shared, client: &NetFileSystem, next: u32) -> Result<(), String> {
        let store = self.store(shared).clone();
        // Block files of generations the copy holds closed are not needed any more.
        let _busy = shared.blocks_busy.lock();
        // Listed and removed only when the copy has moved on, not at every request.
        if next - 1 > self.removed_through {
            store
                .remove_through(next - 1)
                .map_err(|error| error.to_string())?;
            self.removed_through = next - 1;
        }
        if self
            .open
            .as_ref()
            .is_some_and(|open| open.generation() < next)
        {
            self.open = None;
        }
        let from = match &self.open {
            Some(open) => LogPosition::new(open.generation(), open.length()),
            None => LogPosition::new(next.max(self.complete + 1), 0),
        };
        drop(_busy);
        {
            let mut status = shared.block_mode.lock();
            status.acknowledged = status.acknowledged.max(Some(from));
        }
        let request = Tail {
            from,
            max: MAX_REQUEST_BYTES,
            wait_ms: MAX_TAIL_WAIT_MS / 2,
            flushed: from,
        };
        let answer = client.tail(request).map_err(|error| error.to_string())?;
        let _busy = shared.blocks_busy.lock();
        match answer {
            TailAnswer::Bytes {
                from: at,
                header,
                bytes,
                durable,
            } => {
                if at != from {
                    return Err(format!("the active answered for {at}, not {from}"));
                }
                self.append(&store, header, &bytes)?;
                let received = LogPosition::new(
                    from.generation,
                    from.offset + generation_offset(bytes.len()),
                );
                set_block_mode(shared, received, durable);
                Ok(())
            }
            TailAnswer::Ended {
                generation,
                length,
                digest,
            } => {
                let end = BlockEnd {
                    generation,
                    length,
                    digest,
                };
                self.ended(shared, &store, &end)
            }
            TailAnswer::Idle { durable } => {
                set_block_mode(shared, from, durable);
                Ok(())
            }
            TailAnswer::Unavailable { reason } => Err(reason),
        }
    }

    fn store(&mut self, shared: &Shared) -> &BlockStore {
        self.store.get_or_insert_with(|| {
            BlockStore::new(
                Arc::clone(&shared.config.options.log.file_system),
                &shared.config.instance,
                shared.config.options.log.base_name,
            )
        })
    }

    /// Appends received bytes to the open block file, starting it at a generation's offset
    /// 0 with the header that comes with them.
    fn append(
        &mut self,
        store: &BlockStore,
        header: Option<[u8; bluejet_engine::format::generation_header::HEADER_BYTES]>,
        bytes: &[u8],
    ) -> Result<(), String> {
        if self.open.is_none() {
            let header = header.ok_or("the first bytes of a generation came without its header")?;
            let header = GenerationHeader::decode(&header)
                .map_err(|problem| format!("the generation header received: {problem}"))?;
            self.open = Some(store.create(&header).map_err(|error| error.to_string())?);
        }
        let open = self.open.as_mut().expect("opened above");
        if let Err(error) = open.append(bytes) {
            // After a failed write or sync nothing unconfirmed in the file is trusted: the
            // generation starts again from its beginning.
            self.open = None;
            return Err(error.to_string());
        }
        Ok(())
    }

    /// The active closed the generation: what was received must be all of it.
    fn ended(&mut self, shared: &Shared, store: &BlockStore, end: &BlockEnd) -> Result<(), String> {
        let (generation, length) = (end.generation, end.length);
        let Some(open) = self.open.take() else {
            // Nothing of it was received here (block mode started after it ended).
            self.complete = self.complete.max(generation);
            return Ok(());
        };
        if open.generation() != generation || open.length() != length {
            shared.event(
                "block-mismatch",
                None,
                &format!(
                    "generation {} ended at {length} bytes on the active, {} received here",
                    open.generation(),
                    open.length()
                ),
            );
            return Err(format!("generation {generation} received incompletely"));
        }
        store
            .mark_complete(end)
            .map_err(|error| error.to_string())?;
        self.complete = self.complete.max(generation);
        Ok(())
    }
}

fn set_block_mode(shared: &Shared, received: LogPosition, durable: LogPosition) {
    let mut status = shared.block_mode.lock();
    if status.mode != "block" {
        shared.event(
            "block-mode",
            None,
            &format!("receiving log writes from {received}"),
        );
    }
    let in_flight = if durable.generation == received.generation {
        u64::from(durable.offset.saturating_sub(received.offset))
    } else {
        u64::from(durable.offset)
    };
    *status = BlockModeStatus {
        mode: "block".into(),
        reason: "caught up: log writes are received as they happen".into(),
        received: Some(received),
        active_durable: Some(durable),
        bytes_in_flight: in_flight,
        acknowledged: status.acknowledged,
    };
}

fn set_file_mode(shared: &Shared, reason: &str) {
    let mut status = shared.block_mode.lock();
    if status.mode == "block" {
        tracing::warn!(
            node = %shared.config.name,
            %reason,
            "following the active's log block by block stopped; copying closed generations"
        );
        shared.event(
            "file-mode",
            None,
            &format!("falling back to file mode: {reason}"),
        );
    }
    status.mode = "file".into();
    status.reason = reason.to_owned();
}

/// An offset or length inside one generation as a `u32`. Cannot fail: a generation is at
/// most `MAX_GENERATION_BYTES` (64 MiB).
pub(crate) fn generation_offset(bytes: usize) -> u32 {
    u32::try_from(bytes)
        .expect("an offset in a generation fits u32: generations are at most 64 MiB")
}
