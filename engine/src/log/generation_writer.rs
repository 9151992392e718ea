//! Writes the record stream of the current generation into its segments.
//!
//! The partial block scheme: a complete block goes to its home segment, which is written once
//! and never again. A partly filled block goes to a shadow segment, never to one that holds
//! the last synced copy or the copy a sync in flight is making durable, so no write ever
//! touches the only durable copy of acknowledged bytes. When both shadows are taken that way,
//! the partial block waits in memory until the sync ends. It reaches its home segment when it
//! fills up, or at a roll when the generation closes.
//!
//! Every segment carries two sequences. Its *flush sequence* is the writer's sequence, which
//! moves on when a sync starts, so everything a sync covers has a lower sequence than anything
//! written while it runs. Its *synced sequence* is the highest sequence whose sync had
//! finished: a segment of a later block with a sequence at or below it was durable (see
//! `scan.rs`). A sync may run while the writer goes on writing (see [`SyncTicket`]); at most
//! one does.

use super::scan::{home_capacity, shadow_slots, GenerationScan, TailSource};
use super::segment::{self, SegmentHeader, PAYLOAD_BYTES, SEGMENT_BYTES};
use super::GenerationHeader;
use crate::error::LogError;
use crate::file::FileHandle;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a generation's stream ends, as opening found it.
pub(crate) struct StreamEnd {
    /// Stream bytes.
    pub bytes: u64,
    /// The partial block (empty if the stream ends on a block boundary).
    pub tail: Vec<u8>,
    /// The shadow slot the partial block was read from, if any.
    pub shadow: Option<u32>,
    /// The highest flush sequence of any valid segment in the file.
    pub newest_sequence: u64,
    /// The highest synced sequence any valid segment names.
    pub synced_sequence: u64,
}

impl StreamEnd {
    /// Where the stream of a scanned current generation ends.
    pub fn of_scan(scanned: &GenerationScan) -> Self {
        let bytes = scanned.stream.len() as u64;
        let tail_start = usize::try_from(bytes - bytes % PAYLOAD_BYTES as u64)
            .expect("at most the stream's length");
        Self {
            bytes,
            tail: scanned.stream[tail_start..].to_vec(),
            shadow: match scanned.tail_source {
                TailSource::Shadow(slot) => Some(slot),
                TailSource::Home | TailSource::Nothing => None,
            },
            newest_sequence: scanned.max_flush_sequence,
            synced_sequence: scanned.synced_sequence,
        }
    }
}

/// A sync begun with [`GenerationWriter::begin_sync`]: the file to sync, and what becomes
/// durable with it.
pub(crate) struct SyncTicket {
    pub file: Arc<dyn FileHandle>,
    pub path: PathBuf,
    generation: u32,
    /// Every segment written before the sync began carries this sequence or a lower one.
    sequence: u64,
    /// The shadow slot holding the newest copy of the partial block, if one was written.
    shadow: Option<u32>,
    /// Whether anything was written since the previous sync began (else there is nothing to
    /// sync).
    pub needed: bool,
}

/// The writer of one generation file.
pub(crate) struct GenerationWriter {
    pub path: PathBuf,
    pub file: Arc<dyn FileHandle>,
    pub header: GenerationHeader,
    /// Bytes of the partial block.
    tail: Vec<u8>,
    /// Index of the partial block.
    tail_block: u32,
    /// The shadow slot holding the last synced copy of the partial block: never written
    /// before the next sync ends.
    durable_shadow: Option<u32>,
    /// The shadow slot written since the last sync began, if any.
    written_shadow: Option<u32>,
    /// The shadow slot the sync in flight makes durable: `Some(None)` for a sync in flight
    /// that wrote no shadow.
    in_flight: Option<Option<u32>>,
    /// The partial block has bytes in no shadow (both were taken by syncs).
    shadow_deferred: bool,
    /// The sequence segments are written with now.
    sequence: u64,
    /// The highest sequence whose sync has finished.
    synced: u64,
    /// Whether anything was written since the last sync began.
    unsynced: bool,
    /// The stream end when this writer started, and the syncs since that had something to
    /// sync: the bytes a sync covers decide how the next generation is prepared.
    started_at: u64,
    syncs: u64,
    /// Stream bytes written so far.
    stream_end: u64,
    /// File offsets of the home segments written and not yet handed to the disk by
    /// [`GenerationWriter::start_writeback`].
    writeback: std::ops::Range<u64>,
    /// `Some((k, crc))`: the home segments of blocks `0..k` were written, each once and in
    /// order, and `crc` is their crc32c, so a close reads back only the rest of the file for
    /// the digest. `None` when that prefix is unknown (after reopening mid-generation): the
    /// close reads the whole file back.
    written_homes: Option<(u32, u32)>,
    scratch: Vec<u8>,
}

impl GenerationWriter {
    /// A writer of an empty generation whose header is written.
    pub fn new(path: PathBuf, file: Arc<dyn FileHandle>, header: GenerationHeader) -> Self {
        let end = StreamEnd {
            bytes: 0,
            tail: Vec::new(),
            shadow: None,
            newest_sequence: 0,
            synced_sequence: 0,
        };
        Self::resumed(path, file, header, end)
    }

    /// A writer continuing after `end` (see [`GenerationWriter::resume`], which must run
    /// before anything else is written).
    pub fn resumed(
        path: PathBuf,
        file: Arc<dyn FileHandle>,
        header: GenerationHeader,
        end: StreamEnd,
    ) -> Self {
        let tail_block = u32::try_from(end.bytes / PAYLOAD_BYTES as u64)
            .expect("a block number fits u32: generations are at most 64 MiB");
        assert_eq!(
            end.tail.len() as u64,
            end.bytes % PAYLOAD_BYTES as u64,
            "tail matches end"
        );
        assert!(
            end.synced_sequence <= end.newest_sequence,
            "synced sequences were written"
        );
        Self {
            path,
            file,
            header,
            tail: end.tail,
            tail_block,
            durable_shadow: end.shadow,
            written_shadow: None,
            in_flight: None,
            shadow_deferred: false,
            // Bounded by `segment::MAX_FLUSH_SEQUENCE`, checked when the segment was read.
            sequence: end.newest_sequence + 1,
            synced: end.synced_sequence,
            unsynced: false,
            started_at: end.bytes,
            syncs: 0,
            stream_end: end.bytes,
            writeback: 0..0,
            written_homes: (end.bytes == 0).then_some((0, 0)),
            scratch: Vec::new(),
        }
    }

    /// Stream bytes written.
    pub fn stream_end(&self) -> u64 {
        self.stream_end
    }

    /// Stream bytes written per sync since the writer started (all of them if none synced).
    pub fn bytes_per_sync(&self) -> u64 {
        (self.stream_end - self.started_at) / self.syncs.max(1)
    }

    /// Stream bytes this generation can hold.
    pub fn capacity(&self) -> u64 {
        home_capacity(self.header.generation_bytes as u64) as u64 * PAYLOAD_BYTES as u64
    }

    /// Writes `bytes` (appended at the stream end) without syncing.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        assert!(
            self.stream_end + bytes.len() as u64 <= self.capacity(),
            "the appender never overfills a generation"
        );
        if bytes.is_empty() {
            return Ok(());
        }
        // The partial block is topped up first; the rest is encoded straight from `bytes`,
        // without copying the flush into one buffer.
        let mut tail = std::mem::take(&mut self.tail);
        let fill = (PAYLOAD_BYTES - tail.len()).min(bytes.len());
        tail.extend_from_slice(&bytes[..fill]);
        let rest = &bytes[fill..];
        if tail.len() == PAYLOAD_BYTES {
            let (complete, remainder) = rest.split_at(rest.len() - rest.len() % PAYLOAD_BYTES);
            self.write_homes(&tail, complete)?;
            self.tail_block += 1 + crate::log::stream_offset(complete.len() / PAYLOAD_BYTES);
            // The block that waited for a shadow is home now.
            self.shadow_deferred = false;
            tail.clear();
            tail.extend_from_slice(remainder);
        }
        if !tail.is_empty() {
            self.write_shadow(&tail)?;
        }
        self.tail = tail;
        self.stream_end += bytes.len() as u64;
        Ok(())
    }

    /// Writes home segments from the current tail block on: `first` (if not empty), then
    /// `rest` in blocks.
    fn write_homes(&mut self, first: &[u8], rest: &[u8]) -> Result<(), LogError> {
        let blocks = std::iter::once(first)
            .filter(|block| !block.is_empty())
            .chain(rest.chunks(PAYLOAD_BYTES));
        // The buffer keeps its largest length: `encode` writes every byte of a segment, so
        // no flush pays for zeroing it again.
        let mut length = 0;
        for (index, payload) in blocks.enumerate() {
            let block = self.tail_block + crate::log::stream_offset(index);
            let header = SegmentHeader {
                generation: self.header.generation,
                slot: block + 1,
                block,
                used: u16::try_from(payload.len())
                    .expect("a payload fits u16: at most PAYLOAD_BYTES"),
                shadow: false,
                flush_sequence: self.sequence,
                synced_sequence: self.synced,
            };
            if self.scratch.len() < length + SEGMENT_BYTES {
                self.scratch.resize(length + SEGMENT_BYTES, 0);
            }
            segment::encode(
                &mut self.scratch[length..length + SEGMENT_BYTES],
                &header,
                payload,
            );
            length += SEGMENT_BYTES;
        }
        let offset = (self.tail_block as u64 + 1) * SEGMENT_BYTES as u64;
        self.unsynced = true;
        self.file
            .write_at(&self.scratch[..length], offset)
            .map_err(|e| LogError::io(&self.path, "write log segments", e))?;
        self.extend_written_homes(length);
        let end = offset + length as u64;
        if self.writeback.is_empty() {
            self.writeback = offset..end;
        } else {
            self.writeback.end = end;
        }
        Ok(())
    }

    /// Adds the `length` bytes of home segments just written from `scratch` (blocks from the
    /// tail block on) to the digest's prefix, if they continue it; otherwise the prefix is
    /// forgotten and the close reads the file back.
    fn extend_written_homes(&mut self, length: usize) {
        let blocks = crate::log::stream_offset(length / SEGMENT_BYTES);
        self.written_homes = match self.written_homes {
            Some((next, crc)) if next == self.tail_block => Some((
                next + blocks,
                crc32c::crc32c_append(crc, &self.scratch[..length]),
            )),
            _ => None,
        };
    }

    /// Starts writing the home segments written so far to the disk, without waiting. Only
    /// a hint: a failure is ignored here (a real I/O error shows at the sync, which is fatal).
    pub fn start_writeback(&mut self) {
        let range = std::mem::replace(&mut self.writeback, 0..0);
        if !range.is_empty() {
            let length = range.end - range.start;
            if let Err(error) = self.file.start_writeback(range.start, length) {
                tracing::debug!(path = %self.path.display(), %error, "starting writeback");
            }
        }
    }

    /// Writes the partial block to a free shadow, or leaves it in memory if both shadows are
    /// taken (see the module notes).
    fn write_shadow(&mut self, partial: &[u8]) -> Result<(), LogError> {
        let Some(slot) = self.free_shadow() else {
            self.shadow_deferred = true;
            return Ok(());
        };
        let header = SegmentHeader {
            generation: self.header.generation,
            slot,
            block: self.tail_block,
            used: u16::try_from(partial.len())
                .expect("a partial block fits u16: under PAYLOAD_BYTES"),
            shadow: true,
            flush_sequence: self.sequence,
            synced_sequence: self.synced,
        };
        let mut bytes = vec![0u8; SEGMENT_BYTES];
        segment::encode(&mut bytes, &header, partial);
        self.unsynced = true;
        self.file
            .write_at(&bytes, slot as u64 * SEGMENT_BYTES as u64)
            .map_err(|e| LogError::io(&self.path, "write log shadow segment", e))?;
        self.written_shadow = Some(slot);
        self.shadow_deferred = false;
        Ok(())
    }

    /// A shadow slot that holds neither the last synced copy nor the one a sync in flight is
    /// making durable.
    fn free_shadow(&self) -> Option<u32> {
        let taken =
            |slot: u32| Some(slot) == self.durable_shadow || self.in_flight == Some(Some(slot));
        shadow_slots(self.header.generation_bytes as u64)
            .into_iter()
            .find(|&slot| !taken(slot))
    }

    /// Starts a sync of everything written so far; the caller syncs the ticket's file (the
    /// writer may go on writing meanwhile) and then calls [`GenerationWriter::end_sync`].
    /// One sync at a time.
    pub fn begin_sync(&mut self) -> Result<SyncTicket, LogError> {
        assert!(self.in_flight.is_none(), "one sync at a time");
        if self.shadow_deferred {
            // With no sync in flight a shadow is free.
            let tail = std::mem::take(&mut self.tail);
            let written = self.write_shadow(&tail);
            self.tail = tail;
            written?;
        }
        assert!(
            !self.shadow_deferred,
            "the partial block is on disk before a sync"
        );
        let ticket = SyncTicket {
            file: Arc::clone(&self.file),
            path: self.path.clone(),
            generation: self.header.generation,
            sequence: self.sequence,
            shadow: self.written_shadow.take(),
            needed: self.unsynced,
        };
        self.syncs += u64::from(ticket.needed);
        // Segments written from now on are not covered by this sync: a new sequence.
        self.sequence += 1;
        self.unsynced = false;
        self.in_flight = Some(ticket.shadow);
        Ok(ticket)
    }

    /// Ends a sync begun with [`GenerationWriter::begin_sync`], after the file was synced.
    /// A ticket of another generation (this writer took over after a roll) changes nothing:
    /// the closer syncs the generation it was for.
    pub fn end_sync(&mut self, ticket: SyncTicket) {
        if ticket.generation != self.header.generation {
            return;
        }
        assert_eq!(self.in_flight, Some(ticket.shadow), "the sync in flight");
        self.in_flight = None;
        if let Some(slot) = ticket.shadow {
            self.durable_shadow = Some(slot);
        }
        assert!(
            ticket.sequence < self.sequence,
            "sequences move on at each sync"
        );
        self.synced = self.synced.max(ticket.sequence);
    }

    /// Makes everything written durable, waiting for it: at a roll (for the closer, which may
    /// take over a writer with a sync still in flight: this sync covers it too) and at open.
    pub fn sync(&mut self) -> Result<(), LogError> {
        assert!(
            self.in_flight.is_none() || !self.shadow_deferred,
            "a shadow written now could take the slot of the sync in flight"
        );
        if let Some(shadow) = self.in_flight.take() {
            // The sync in flight covers this shadow; the one below covers it as well.
            self.written_shadow = self.written_shadow.or(shadow);
        }
        let ticket = self.begin_sync()?;
        ticket
            .file
            .sync_data()
            .map_err(|e| LogError::io(&self.path, "sync log", e))?;
        self.end_sync(ticket);
        Ok(())
    }

    /// Writes the partial block to its home segment, without syncing: once synced, the
    /// generation is complete in its home segments and can be closed.
    pub fn complete(&mut self) -> Result<(), LogError> {
        if !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.write_homes(&tail, &[])?;
            self.tail = tail;
        }
        // The home segment now holds the whole block: no shadow is needed any more.
        self.shadow_deferred = false;
        Ok(())
    }

    /// The crc32c of the whole file, the digest the next generation's header records. The
    /// home segments this writer wrote in order count from their crc taken as they were
    /// written; the rest (the header, the two shadows, homes never written) is read back.
    pub fn digest(&self) -> Result<u32, LogError> {
        // Read in pieces into one small buffer: a whole-file buffer would be allocated, and
        // faulted in, again at every roll.
        let mut buffer = [0u8; 64 << 10];
        let header = &mut buffer[..SEGMENT_BYTES];
        self.file
            .read_exact_at(header, 0)
            .map_err(|e| LogError::io(&self.path, "read log back", e))?;
        let mut digest = crc32c::crc32c(header);
        let mut offset = SEGMENT_BYTES as u64;
        if let Some((blocks, crc)) = self.written_homes {
            let length = blocks as usize * SEGMENT_BYTES;
            digest = crc32c::crc32c_combine(digest, crc, length);
            offset += length as u64;
        }
        let size = self.header.generation_bytes as u64;
        assert!(offset <= size, "written homes lie inside the file");
        while offset < size {
            let piece = &mut buffer[..(size - offset).min(64 << 10) as usize];
            self.file
                .read_exact_at(piece, offset)
                .map_err(|e| LogError::io(&self.path, "read log back", e))?;
            digest = crc32c::crc32c_append(digest, piece);
            offset += piece.len() as u64;
        }
        Ok(digest)
    }
}

impl GenerationWriter {
    /// After reopening: clears everything past the end of the log and makes the partial block
    /// durable in a fresh shadow, in synced steps, each leaving a file that reopens to the
    /// same end:
    /// 0. sync what was read: it came from the page cache and may hold writes never synced
    ///    (a process that died, not the machine), and the steps below overwrite slots that
    ///    may hold the only durable copy of acknowledged bytes (a shadow, superseded in the
    ///    cache by a newer copy that is not yet on disk);
    /// 1. zero the home segments after the partial block (and both shadows if there is no
    ///    partial block): nothing there was ever acknowledged;
    /// 2. write the partial block to the shadow it was not read from, with a flush sequence
    ///    above any in the file, so it wins over every other copy;
    /// 3. zero the partial block's home segment and the other shadow, both superseded.
    pub fn resume(&mut self, image: &[u8]) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(|e| LogError::io(&self.path, "sync log read at open", e))?;
        // Every sequence in the file is durable now, and new segments may say so.
        self.synced = self.sequence - 1;
        let capacity = home_capacity(self.header.generation_bytes as u64);
        let shadows = shadow_slots(self.header.generation_bytes as u64);
        let partial = !self.tail.is_empty();
        let first_clear = self.tail_block + 1 + u32::from(partial);
        let mut past_end: Vec<u32> = (first_clear..=capacity).collect();
        if !partial {
            past_end.extend(shadows);
        }
        self.zero_slots(image, &past_end)?;
        if !partial {
            return Ok(());
        }
        let tail = std::mem::take(&mut self.tail);
        self.write_shadow(&tail)?;
        self.tail = tail;
        self.sync()?;
        let written = self.durable_shadow;
        let superseded = shadows.into_iter().filter(|&slot| Some(slot) != written);
        let superseded: Vec<u32> = std::iter::once(self.tail_block + 1)
            .chain(superseded)
            .collect();
        self.zero_slots(image, &superseded)
    }

    /// Zeroes the slots among `slots` that are not already zero in `image`, then syncs.
    fn zero_slots(&mut self, image: &[u8], slots: &[u32]) -> Result<(), LogError> {
        let zero = vec![0u8; SEGMENT_BYTES];
        let mut wrote = false;
        for &slot in slots {
            let start = slot as usize * SEGMENT_BYTES;
            let stale = image
                .get(start..start + SEGMENT_BYTES)
                .is_some_and(|bytes| bytes.iter().any(|&b| b != 0));
            if stale {
                self.file
                    .write_at(&zero, start as u64)
                    .map_err(|e| LogError::io(&self.path, "clear stale log segment", e))?;
                wrote = true;
            }
        }
        if wrote {
            self.file
                .sync_data()
                .map_err(|e| LogError::io(&self.path, "sync log", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::simulated::{FaultMode, SimulatedFileSystem};
    use crate::file::{FileSystem, OpenMode};
    use crate::log::record::frame_into;
    use crate::log::roll::{sync_header, write_header};
    use crate::log::scan::{scan, ScanMode};
    use crate::log::{BaseName, StreamSignature};
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;
    use std::path::Path;

    const GENERATION_BYTES: u64 = 128 << 10;
    const PATH: &str = "/sim/E00.log";

    fn writer(fs: &SimulatedFileSystem) -> GenerationWriter {
        let path = PathBuf::from(PATH);
        let file = fs.open(&path, OpenMode::CreateNew).unwrap();
        file.allocate(GENERATION_BYTES).unwrap();
        let header = GenerationHeader {
            generation: 1,
            signature: StreamSignature::generate(),
            timeline: 1,
            created_micros: 1,
            previous_created_micros: 0,
            previous_digest: 0,
            segment_bytes: crate::log::stream_offset(SEGMENT_BYTES),
            generation_bytes: u32::try_from(GENERATION_BYTES)
                .expect("a test generation size fits u32"),
            base_name: BaseName::default().bytes(),
        };
        write_header(file.as_ref(), &path, &header).unwrap();
        sync_header(file.as_ref(), &path).unwrap();
        fs.sync_directory(Path::new("/sim")).unwrap();
        GenerationWriter::new(path, file, header)
    }

    /// Framed records (of a kind the scan skips) adding up to at least `bytes`.
    fn records(random: &mut Pcg64, bytes: usize) -> Vec<u8> {
        let mut stream = Vec::new();
        while stream.len() < bytes {
            let payload = vec![random.random::<u8>() | 1; random.random_range(1..3000)];
            frame_into(&mut stream, 200, &payload);
        }
        stream
    }

    fn scan_after_crash(fs: &SimulatedFileSystem, seed: u64) -> Result<Vec<u8>, LogError> {
        fs.crash(seed);
        let image = fs.read_file(Path::new(PATH)).unwrap();
        scan(Path::new(PATH), &image, ScanMode::Current).map(|scanned| scanned.stream)
    }

    /// The previous writer wrote past its last sync and died (the machine did not); the log
    /// is opened again from the page cache, and the machine loses power while `resume` runs
    /// (an operation fails, then the disk crashes). The bytes acknowledged before survive:
    /// `resume` syncs what it read before it overwrites anything. Both shapes of the end are
    /// covered: the unsynced write completed the block (its home is the end, and `resume`
    /// zeroes both shadows, one holding the only durable copy), or it went to the other
    /// shadow (and `resume` writes the block back into the durable one).
    #[test]
    fn a_crash_while_reopening_after_a_process_died_keeps_what_was_acknowledged() {
        for unsynced in [PAYLOAD_BYTES - 1000, 500] {
            for failing in 1..8u64 {
                for seed in 0..100u64 {
                    let fs = SimulatedFileSystem::new();
                    let mut writer = writer(&fs);
                    let mut first = Vec::new();
                    frame_into(&mut first, 200, &[7; 988]);
                    writer.write(&first).unwrap();
                    writer.sync().unwrap();
                    let acknowledged = writer.stream_end();
                    let mut more = Vec::new();
                    frame_into(&mut more, 200, &vec![9; unsynced - 12]);
                    writer.write(&more).unwrap();
                    drop(writer);
                    let image = fs.read_file(Path::new(PATH)).unwrap();
                    let mut reopened = reopen(&fs, &image);
                    fs.fail_at(fs.operations() + failing, FaultMode::Persistent);
                    // The fault may fail the resume or not; the scan below checks either way.
                    let _may_fail = reopened.resume(&image);
                    let stream = scan_after_crash(&fs, seed).unwrap();
                    assert!(
                        stream.len() as u64 >= acknowledged,
                        "unsynced {unsynced}, failing {failing}, seed {seed}: lost"
                    );
                }
            }
        }
    }

    /// How the next generation is prepared follows the bytes a sync covered: syncs with
    /// nothing to sync do not count, and a writer that never synced counts all it wrote.
    #[test]
    fn bytes_per_sync_counts_the_syncs_that_wrote() {
        let fs = SimulatedFileSystem::new();
        let mut writer = writer(&fs);
        let mut random = Pcg64::seed_from_u64(7);
        let stream = records(&mut random, 60_000);
        writer.write(&stream[..30_000]).unwrap();
        assert_eq!(writer.bytes_per_sync(), 30_000);
        writer.sync().unwrap();
        writer.sync().unwrap();
        writer.write(&stream[30_000..40_000]).unwrap();
        writer.sync().unwrap();
        assert_eq!(writer.bytes_per_sync(), 20_000);
    }

    /// The digest a close records is the crc32c of the whole file as written, whether the
    /// generation filled up, was closed part full with its partial block home and stale
    /// shadows, or was reopened first (when the writer knows no prefix of its homes).
    #[test]
    fn the_digest_is_the_crc_of_the_whole_file() {
        for seed in 0..60u64 {
            let mut random = Pcg64::seed_from_u64(seed);
            let fs = SimulatedFileSystem::new();
            let mut writer = writer(&fs);
            let length = random.random_range(0..200_000);
            let stream = records(&mut random, length);
            let stream = &stream[..stream.len().min(
                usize::try_from(writer.capacity())
                    .expect("a test generation's capacity fits usize"),
            )];
            let cut = random.random_range(0..=stream.len());
            for piece in stream[..cut].chunks(random.random_range(1..20_000)) {
                writer.write(piece).unwrap();
                if random.random_bool(0.3) {
                    writer.sync().unwrap();
                }
            }
            if seed % 3 == 0 {
                writer.sync().unwrap();
                drop(writer);
                let image = fs.read_file(Path::new(PATH)).unwrap();
                writer = reopen(&fs, &image);
                writer.resume(&image).unwrap();
            }
            for piece in stream[cut..].chunks(random.random_range(1..20_000)) {
                writer.write(piece).unwrap();
            }
            writer.complete().unwrap();
            let image = fs.read_file(Path::new(PATH)).unwrap();
            assert_eq!(
                writer.digest().unwrap(),
                crc32c::crc32c(&image),
                "seed {seed}"
            );
        }
    }

    /// A writer for the file as `image` shows it, the way `open.rs` makes one.
    fn reopen(fs: &SimulatedFileSystem, image: &[u8]) -> GenerationWriter {
        let scanned = scan(Path::new(PATH), image, ScanMode::Current).unwrap();
        let file = fs.open(Path::new(PATH), OpenMode::ReadWrite).unwrap();
        let end = StreamEnd::of_scan(&scanned);
        GenerationWriter::resumed(PathBuf::from(PATH), file, scanned.header, end)
    }

    /// Writes go on while a sync is in flight (with shadows held back when both are taken),
    /// before and after the disk finished it. A crash then, or after the sync ended and more
    /// was written, keeps everything the sync covered (once the disk finished it) and what was
    /// synced before, shows nothing but a prefix of what was written, and is never taken for
    /// damage.
    #[test]
    fn writing_during_a_sync_survives_a_crash_at_any_moment() {
        for seed in 0..900u64 {
            let fs = SimulatedFileSystem::new();
            let mut random = Pcg64::seed_from_u64(seed);
            let mut writer = writer(&fs);
            let mut written = Vec::new();
            let mut write = |writer: &mut GenerationWriter, random: &mut Pcg64| {
                let size = random.random_range(0..20_000);
                let piece = records(random, size);
                writer.write(&piece).unwrap();
                written.extend_from_slice(&piece);
            };
            write(&mut writer, &mut random);
            writer.sync().unwrap();
            let mut acknowledged = writer.stream_end();
            write(&mut writer, &mut random);
            let covered = writer.stream_end();
            let ticket = writer.begin_sync().unwrap();
            write(&mut writer, &mut random);
            // Seed % 3: 0, the disk never finishes the sync; 1, it does, and the writer goes
            // on before it learns so; 2, the writer learns so and goes on.
            if seed % 3 > 0 {
                ticket.file.sync_data().unwrap();
                acknowledged = covered;
                write(&mut writer, &mut random);
                if seed % 3 == 2 {
                    writer.end_sync(ticket);
                    write(&mut writer, &mut random);
                }
            }
            let stream = scan_after_crash(&fs, seed)
                .unwrap_or_else(|error| panic!("seed {seed}: a crash taken for damage: {error}"));
            assert!(written.starts_with(&stream), "seed {seed}: not a prefix");
            assert!(stream.len() as u64 >= acknowledged, "seed {seed}: lost");
        }
    }
}
