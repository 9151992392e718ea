//! Writes the record stream of the current generation into its segments.
//!
//! The partial block scheme: a complete block goes to its home segment, which is written once
//! and never again. A partly filled block goes to a shadow segment: always the shadow that
//! does *not* hold the last synced copy, so no write ever touches the only durable copy of
//! acknowledged bytes, however many unsynced flushes come between two syncs. The partial block
//! reaches its home segment when it fills up, or at a roll when the generation closes.
//!
//! Every segment carries the writer's flush sequence, which moves on at each sync: segments
//! written between two syncs share one sequence, so a segment with a lower sequence than the
//! newest in the file was durable (see `scan.rs`).

use super::scan::{home_capacity, shadow_slots};
use super::segment::{self, SegmentHeader, PAYLOAD_BYTES, SEGMENT_BYTES};
use super::GenerationHeader;
use crate::error::LogError;
use crate::file::FileHandle;
use std::path::PathBuf;
use std::sync::Arc;

/// The writer of one generation file.
pub(crate) struct GenerationWriter {
    pub path: PathBuf,
    pub file: Arc<dyn FileHandle>,
    pub header: GenerationHeader,
    /// Bytes of the partial block (durable in `tail_shadow`, or empty).
    tail: Vec<u8>,
    /// Index of the partial block.
    tail_block: u32,
    /// The shadow slot holding the last synced copy of the partial block: never written
    /// before the next sync.
    durable_shadow: Option<u32>,
    /// The shadow slot written since the last sync, if any.
    written_shadow: Option<u32>,
    /// Sequence of the last sync; segments written since carry the next one.
    flush_sequence: u64,
    /// Whether anything was written since the last sync.
    unsynced: bool,
    /// When this writer started, and the stream end then: how fast the generation fills
    /// decides how the next one is prepared.
    started: (std::time::Instant, u64),
    /// Stream bytes written so far.
    stream_end: u64,
    /// File offsets of the home segments written and not yet handed to the disk by
    /// [`GenerationWriter::start_writeback`].
    writeback: std::ops::Range<u64>,
    scratch: Vec<u8>,
}

impl GenerationWriter {
    /// A writer positioned at `stream_end`, whose partial block `tail` is durable in
    /// `durable_shadow` (or empty), continuing after flush `flush_sequence`.
    pub fn new(
        path: PathBuf,
        file: Arc<dyn FileHandle>,
        header: GenerationHeader,
        tail: Vec<u8>,
        durable_shadow: Option<u32>,
        flush_sequence: u64,
        stream_end: u64,
    ) -> Self {
        let tail_block = (stream_end / PAYLOAD_BYTES as u64) as u32;
        assert_eq!(
            tail.len() as u64,
            stream_end % PAYLOAD_BYTES as u64,
            "tail matches end"
        );
        Self {
            path,
            file,
            header,
            tail,
            tail_block,
            durable_shadow,
            written_shadow: None,
            flush_sequence,
            unsynced: false,
            started: (std::time::Instant::now(), stream_end),
            stream_end,
            writeback: 0..0,
            scratch: Vec::new(),
        }
    }

    /// Stream bytes written.
    pub fn stream_end(&self) -> u64 {
        self.stream_end
    }

    /// Bytes a second written into this generation since the writer started.
    pub fn fill_rate(&self) -> f64 {
        let (when, end) = self.started;
        let seconds = when.elapsed().as_secs_f64().max(1e-9);
        (self.stream_end - end) as f64 / seconds
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
            self.tail_block += 1 + (complete.len() / PAYLOAD_BYTES) as u32;
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
        self.scratch.clear();
        for (index, payload) in blocks.enumerate() {
            let block = self.tail_block + index as u32;
            let header = SegmentHeader {
                generation: self.header.generation,
                slot: block + 1,
                block,
                used: payload.len() as u16,
                shadow: false,
                flush_sequence: self.flush_sequence + 1,
            };
            let start = self.scratch.len();
            self.scratch.resize(start + SEGMENT_BYTES, 0);
            segment::encode(&mut self.scratch[start..], &header, payload);
        }
        let offset = (self.tail_block as u64 + 1) * SEGMENT_BYTES as u64;
        self.unsynced = true;
        self.file
            .write_at(&self.scratch, offset)
            .map_err(|e| LogError::io(&self.path, "write log segments", e))?;
        let end = offset + self.scratch.len() as u64;
        if self.writeback.is_empty() {
            self.writeback = offset..end;
        } else {
            self.writeback.end = end;
        }
        Ok(())
    }

    /// Starts writing the home segments written so far to the disk, without waiting. Only
    /// a hint: a failure is ignored here (a real I/O error shows at the sync, which is fatal).
    pub fn start_writeback(&mut self) {
        let range = std::mem::replace(&mut self.writeback, 0..0);
        if !range.is_empty() {
            let _ = self
                .file
                .start_writeback(range.start, range.end - range.start);
        }
    }

    fn write_shadow(&mut self, partial: &[u8]) -> Result<(), LogError> {
        let [first, second] = shadow_slots(self.header.generation_bytes as u64);
        let slot = if self.durable_shadow == Some(first) {
            second
        } else {
            first
        };
        debug_assert_ne!(
            Some(slot),
            self.durable_shadow,
            "the durable copy is never rewritten"
        );
        let header = SegmentHeader {
            generation: self.header.generation,
            slot,
            block: self.tail_block,
            used: partial.len() as u16,
            shadow: true,
            flush_sequence: self.flush_sequence + 1,
        };
        let mut bytes = vec![0u8; SEGMENT_BYTES];
        segment::encode(&mut bytes, &header, partial);
        self.unsynced = true;
        self.file
            .write_at(&bytes, slot as u64 * SEGMENT_BYTES as u64)
            .map_err(|e| LogError::io(&self.path, "write log shadow segment", e))?;
        self.written_shadow = Some(slot);
        Ok(())
    }

    /// Whether anything was written since the last sync.
    pub fn is_unsynced(&self) -> bool {
        self.unsynced
    }

    /// Makes everything written durable. The shadow written since the last sync (if any) then
    /// holds the durable copy of the partial block, and later writes carry the next sequence.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(|e| LogError::io(&self.path, "sync log", e))?;
        if self.unsynced {
            self.flush_sequence += 1;
            self.unsynced = false;
        }
        if let Some(slot) = self.written_shadow.take() {
            self.durable_shadow = Some(slot);
        }
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
        Ok(())
    }

    /// Reads the whole file back and returns its crc32c, the digest the next generation's
    /// header records.
    pub fn digest(&self) -> Result<u32, LogError> {
        // Read in pieces into one small buffer: a whole-file buffer would be allocated, and
        // faulted in, again at every roll.
        let mut buffer = [0u8; 64 << 10];
        let mut digest = 0;
        let mut offset = 0u64;
        let size = self.header.generation_bytes as u64;
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
    /// durable in a fresh shadow, in three synced steps, each leaving a file that reopens to
    /// the same end:
    /// 1. zero the home segments after the partial block (and both shadows if there is no
    ///    partial block): nothing there was ever acknowledged;
    /// 2. write the partial block to the shadow it was not read from, with a flush sequence
    ///    above any in the file, so it wins over every other copy;
    /// 3. zero the partial block's home segment and the other shadow, both superseded.
    pub fn resume(&mut self, image: &[u8]) -> Result<(), LogError> {
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
