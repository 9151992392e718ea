//! The log tap: the newest durable record-stream bytes, in memory, for block-mode replication.
//!
//! A replication server on the active follows the log through the tap instead of reading
//! files: [`LogTap::read`] hands out the bytes of a generation's record stream (the
//! concatenated segment payloads, exactly what a reader of the closed generation gets; the
//! stream has no padding: records are contiguous and a generation ends after its last record)
//! as soon as a sync has made them durable, and waits for more when the reader has caught up.
//!
//! The writer copies every chunk it writes into a ring of `tap_bytes` bytes, but a reader
//! sees only bytes below the *tap's durable point*, which moves only when a sync that covers
//! them has succeeded (where the log publishes its own durable position). Bytes a failed sync
//! did not confirm are never handed out: the log is poisoned then and the point never moves
//! again. The ring keeps the newest bytes: a reader that falls more than `tap_bytes` behind
//! the writer is told [`TapRead::Behind`] and must read the files instead.
//!
//! Lock order: the log's state and writer locks come before the tap's lock, which is never
//! held while taking another.

use super::LogPosition;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The largest tap ring ([`super::LogConfig::tap_bytes`]).
pub const MAX_TAP_BYTES: usize = 256 << 20;

/// Ends of closed generations remembered (a reader at the end of one is told
/// [`TapRead::Ended`] even when its bytes have left the ring).
const ENDS_KEPT: usize = 1024;

/// What [`LogTap::read`] found at the position asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TapRead {
    /// Durable bytes of one generation's record stream, starting at `from`: never past the
    /// durable point, never across a generation's end.
    Bytes {
        /// Where the bytes start (the position asked for).
        from: LogPosition,
        /// The bytes (at least one, at most the `max` asked for).
        bytes: Vec<u8>,
        /// The tap's durable point when they were read.
        durable: LogPosition,
    },
    /// The position asked for is the end of a closed generation (durably closed): the reader
    /// goes on at `(generation + 1, 0)`.
    Ended {
        /// The closed generation.
        generation: u32,
        /// Its record-stream length.
        length: u32,
        /// The tap's durable point.
        durable: LogPosition,
    },
    /// Nothing became durable after the position asked for within the wait.
    Idle {
        /// The tap's durable point (the position asked for).
        durable: LogPosition,
    },
    /// The bytes at the position asked for have left the ring (or the tap never held them:
    /// they were written before the log was opened): read them from the files.
    Behind {
        /// The oldest position the tap can serve now.
        oldest: LogPosition,
    },
    /// The position asked for is past everything durable (or past the end of its closed
    /// generation): the reader's copy has diverged from this log.
    Ahead {
        /// The tap's durable point.
        durable: LogPosition,
    },
    /// The log was closed or poisoned and the reader has every durable byte the tap will
    /// ever have at this position.
    Stopped {
        /// Why the log stopped.
        reason: String,
    },
}

/// The bytes of one generation written into the ring.
#[derive(Clone, Copy, Debug)]
struct Span {
    generation: u32,
    /// Stream offset of the span's first byte.
    start: u32,
    /// Ring sequence of the span's first byte.
    sequence: u64,
    /// Bytes written (some of the first may have left the ring).
    length: u32,
}

impl Span {
    fn end(&self) -> u32 {
        self.start + self.length
    }
}

struct TapState {
    /// `capacity` bytes: the byte of ring sequence `s` is at `s % capacity`.
    ring: Vec<u8>,
    /// Bytes ever appended: the sequence of the next byte.
    appended: u64,
    /// Generations with bytes appended, oldest first, contiguous in sequence.
    spans: VecDeque<Span>,
    /// (generation, stream length) of the newest closed generations, oldest first.
    ends: VecDeque<(u32, u32)>,
    /// End of everything appended (written by the log, durable or not).
    written: LogPosition,
    /// End of everything durable: readers see nothing at or past it.
    durable: LogPosition,
    stopped: Option<String>,
}

impl TapState {
    fn capacity(&self) -> u64 {
        self.ring.len() as u64
    }

    /// The sequence of the oldest byte still in the ring.
    fn oldest_sequence(&self) -> u64 {
        self.appended.saturating_sub(self.capacity())
    }

    /// The oldest position the tap can serve: the oldest byte in the ring, or the end of
    /// what was written if the ring holds nothing.
    fn oldest(&self) -> LogPosition {
        let oldest = self.oldest_sequence();
        self.spans
            .iter()
            .find(|span| span.sequence + span.length as u64 > oldest)
            .map(|span| {
                let skipped = u32::try_from(oldest.saturating_sub(span.sequence))
                    .expect("inside the span, whose length is a u32");
                LogPosition::new(span.generation, span.start + skipped)
            })
            .unwrap_or(self.written)
    }

    /// The ring sequence of the byte at `position`, if the ring holds it (or `position` is
    /// the end of a span whose last byte it holds).
    fn locate(&self, position: LogPosition) -> Option<u64> {
        let span = self
            .spans
            .iter()
            .find(|span| span.generation == position.generation)?;
        if !(span.start..=span.end()).contains(&position.offset) {
            return None;
        }
        let sequence = span.sequence + (position.offset - span.start) as u64;
        (sequence >= self.oldest_sequence()).then_some(sequence)
    }

    fn end_of(&self, generation: u32) -> Option<u32> {
        self.ends
            .iter()
            .find(|&&(closed, _)| closed == generation)
            .map(|&(_, length)| length)
    }

    /// Copies `length` bytes from ring sequence `sequence` on.
    fn copy_out(&self, sequence: u64, length: usize) -> Vec<u8> {
        assert!(
            sequence >= self.oldest_sequence() && sequence + length as u64 <= self.appended,
            "only bytes the ring holds are copied out"
        );
        let capacity = self.ring.len();
        let start = usize::try_from(sequence % capacity as u64).expect("below capacity, a usize");
        let first = length.min(capacity - start);
        let mut bytes = Vec::with_capacity(length);
        bytes.extend_from_slice(&self.ring[start..start + first]);
        bytes.extend_from_slice(&self.ring[..length - first]);
        bytes
    }

    /// Forgets spans whose bytes all left the ring (keeping the newest, which names where
    /// the writer is).
    fn prune(&mut self) {
        let oldest = self.oldest_sequence();
        while self.spans.len() > 1 && self.spans[0].sequence + self.spans[0].length as u64 <= oldest
        {
            self.spans.pop_front();
        }
    }
}

/// The tap of an open log: see the module notes and [`super::Log::tap`].
pub struct LogTap {
    state: Mutex<TapState>,
    /// Wakes readers when the durable point moves or the log stops.
    changed: Condvar,
}

impl std::fmt::Debug for LogTap {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        formatter
            .debug_struct("LogTap")
            .field("capacity", &state.ring.len())
            .field("written", &state.written)
            .field("durable", &state.durable)
            .field("stopped", &state.stopped)
            .finish_non_exhaustive()
    }
}

impl LogTap {
    /// A tap of `capacity` bytes (1 to [`MAX_TAP_BYTES`]) for a log whose stream ends, and
    /// is durable, at `end`.
    pub(crate) fn new(capacity: usize, end: LogPosition) -> Self {
        assert!(
            (1..=MAX_TAP_BYTES).contains(&capacity),
            "tap size {capacity} out of bounds"
        );
        Self {
            state: Mutex::new(TapState {
                // Zeroed memory is mapped lazily: an idle tap costs no resident memory.
                ring: vec![0; capacity],
                appended: 0,
                spans: VecDeque::new(),
                ends: VecDeque::new(),
                written: end,
                durable: end,
                stopped: None,
            }),
            changed: Condvar::new(),
        }
    }

    /// The ring's size in bytes.
    pub fn capacity(&self) -> usize {
        self.state.lock().ring.len()
    }

    /// The end of everything durable that the tap has published: readers get nothing at or
    /// past it. It equals the log's durable position once a sync has been published (it may
    /// lag it by the moment between the two updates, never lead it).
    pub fn durable(&self) -> LogPosition {
        self.state.lock().durable
    }

    /// The oldest position the tap can serve now (older bytes have left the ring).
    pub fn oldest(&self) -> LogPosition {
        self.state.lock().oldest()
    }

    /// Why the log stopped, once it did.
    pub fn stopped(&self) -> Option<String> {
        self.state.lock().stopped.clone()
    }

    /// Reads the durable record-stream bytes at `from`: at most `max` bytes (`max` must not
    /// be 0), never past the durable point and never across the end of a generation. When
    /// the reader has caught up, waits up to `wait` for more to become durable (then
    /// [`TapRead::Idle`]). A reader at the end of a closed generation is told
    /// [`TapRead::Ended`] and goes on at the start of the next. After the log is closed or
    /// poisoned the durable bytes the ring still holds are still handed out; a reader that has
    /// them all is told [`TapRead::Stopped`] (a waiting reader is woken at once).
    ///
    /// ```
    /// use bluejet_engine::log::tap::TapRead;
    /// use bluejet_engine::log::{Durability, Log, LogConfig, LogPosition};
    /// use std::time::Duration;
    ///
    /// let directory = tempfile::tempdir().unwrap();
    /// let config = LogConfig { tap_bytes: 1 << 20, ..LogConfig::default() };
    /// let log = Log::open(directory.path(), config).unwrap();
    /// let tap = log.tap().expect("the config asks for a tap");
    /// let mut transaction = log.transaction();
    /// transaction.put("messages", b"id-1", b"Subject: hello");
    /// let commit = transaction.commit(Durability::Durable).unwrap();
    ///
    /// // Follow the stream from its start until the commit is in.
    /// let mut at = LogPosition::new(1, 0);
    /// let mut stream = Vec::new();
    /// while at < commit.end {
    ///     match tap.read(at, 64 << 10, Duration::from_secs(1)) {
    ///         TapRead::Bytes { from, bytes, durable } => {
    ///             assert_eq!(from, at);
    ///             at.offset += bytes.len() as u32;
    ///             assert!(at <= durable, "only durable bytes");
    ///             stream.extend_from_slice(&bytes);
    ///         }
    ///         TapRead::Ended { generation, .. } => at = LogPosition::new(generation + 1, 0),
    ///         other => panic!("unexpected {other:?}"),
    ///     }
    /// }
    /// // Nothing more is durable: a short wait ends idle.
    /// let idle = tap.read(at, 64 << 10, Duration::from_millis(10));
    /// assert_eq!(idle, TapRead::Idle { durable: at });
    /// log.close().unwrap();
    /// // The close's Stop record, then the end.
    /// assert!(matches!(tap.read(at, 64 << 10, Duration::ZERO), TapRead::Bytes { .. }));
    /// ```
    pub fn read(&self, from: LogPosition, max: usize, wait: Duration) -> TapRead {
        assert!(max > 0, "a read asks for at least one byte");
        let deadline = Instant::now().checked_add(wait);
        let mut state = self.state.lock();
        loop {
            let durable = state.durable;
            assert!(durable <= state.written, "durable bytes were written");
            if from > durable {
                return TapRead::Ahead { durable };
            }
            // The end of what may be read at `from`'s generation.
            let limit = if from.generation < durable.generation {
                match state.end_of(from.generation) {
                    Some(length) if from.offset == length => {
                        return TapRead::Ended {
                            generation: from.generation,
                            length,
                            durable,
                        }
                    }
                    Some(length) if from.offset > length => return TapRead::Ahead { durable },
                    Some(length) => length,
                    // Closed before the tap knew it, or forgotten.
                    None => {
                        return TapRead::Behind {
                            oldest: state.oldest(),
                        }
                    }
                }
            } else {
                durable.offset
            };
            assert!(from.offset <= limit, "the reader is at or before the limit");
            if from.offset == limit {
                // Caught up with the durable point in the generation being written.
                if let Some(reason) = &state.stopped {
                    return TapRead::Stopped {
                        reason: reason.clone(),
                    };
                }
                let timed_out = match deadline {
                    Some(deadline) if Instant::now() >= deadline => true,
                    Some(deadline) => self.changed.wait_until(&mut state, deadline).timed_out(),
                    None => {
                        self.changed.wait(&mut state);
                        false
                    }
                };
                if timed_out && state.durable == durable && state.stopped.is_none() {
                    return TapRead::Idle { durable };
                }
                continue;
            }
            let Some(sequence) = state.locate(from) else {
                return TapRead::Behind {
                    oldest: state.oldest(),
                };
            };
            let length = max.min((limit - from.offset) as usize);
            let bytes = state.copy_out(sequence, length);
            assert!(
                LogPosition::new(
                    from.generation,
                    from.offset + crate::log::stream_offset(length)
                ) <= durable,
                "never past the durable point"
            );
            return TapRead::Bytes {
                from,
                bytes,
                durable,
            };
        }
    }

    /// The writer wrote `bytes` at `position`, which must be the end of what it wrote before
    /// (the start of the generation after one it closed). Not readable before
    /// [`LogTap::publish`] covers them.
    pub(crate) fn append(&self, position: LogPosition, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut state = self.state.lock();
        assert_eq!(position, state.written, "the writer appends contiguously");
        let capacity = state.ring.len();
        let sequence = state.appended;
        // Only the newest `capacity` bytes can stay.
        let kept = &bytes[bytes.len().saturating_sub(capacity)..];
        let mut at =
            usize::try_from((sequence + (bytes.len() - kept.len()) as u64) % capacity as u64)
                .expect("below capacity, a usize");
        let mut rest = kept;
        while !rest.is_empty() {
            let length = rest.len().min(capacity - at);
            state.ring[at..at + length].copy_from_slice(&rest[..length]);
            rest = &rest[length..];
            at = 0;
        }
        state.appended += bytes.len() as u64;
        match state.spans.back_mut() {
            Some(span) if span.generation == position.generation => {
                span.length += crate::log::stream_offset(bytes.len());
            }
            _ => state.spans.push_back(Span {
                generation: position.generation,
                start: position.offset,
                sequence,
                length: crate::log::stream_offset(bytes.len()),
            }),
        }
        state.written.offset += crate::log::stream_offset(bytes.len());
        state.prune();
        assert!(
            state.appended - state.oldest_sequence() <= capacity as u64,
            "the ring holds at most its capacity"
        );
    }

    /// The writer closed `generation`, whose stream is `length` bytes (the end of what it
    /// wrote); it writes the next generation from its start. Readers learn of it once the
    /// durable point passes into a later generation.
    pub(crate) fn close_generation(&self, generation: u32, length: u32) {
        let mut state = self.state.lock();
        assert_eq!(
            state.written,
            LogPosition::new(generation, length),
            "a generation closes where its writer ended"
        );
        state.written = LogPosition::new(generation + 1, 0);
        state.ends.push_back((generation, length));
        if state.ends.len() > ENDS_KEPT {
            // A span of a closed generation always has its end known.
            let (forgotten, _) = state.ends.pop_front().expect("not empty");
            state.spans.retain(|span| span.generation > forgotten);
        }
    }

    /// A sync covering everything up to `durable` succeeded: readers may have it.
    pub(crate) fn publish(&self, durable: LogPosition) {
        let mut state = self.state.lock();
        assert!(durable >= state.durable, "durability only moves forward");
        assert!(
            durable <= state.written,
            "only written bytes become durable"
        );
        if durable > state.durable {
            state.durable = durable;
            self.changed.notify_all();
        }
    }

    /// The log was closed or poisoned: nothing more becomes durable. Wakes every reader.
    pub(crate) fn stop(&self, reason: &str) {
        let mut state = self.state.lock();
        state.stopped.get_or_insert_with(|| reason.to_owned());
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MAX: usize = 1 << 20;

    fn at(generation: u32, offset: u32) -> LogPosition {
        LogPosition::new(generation, offset)
    }

    fn pattern(start: usize, length: usize) -> Vec<u8> {
        (start..start + length)
            .map(|i| u8::try_from(i % 251).expect("below 251"))
            .collect()
    }

    fn bytes_of(read: TapRead) -> Vec<u8> {
        match read {
            TapRead::Bytes { bytes, .. } => bytes,
            other => panic!("expected bytes, got {other:?}"),
        }
    }

    #[test]
    fn only_durable_bytes_are_read() {
        let tap = LogTap::new(1000, at(1, 0));
        tap.append(at(1, 0), &pattern(0, 300));
        assert_eq!(
            tap.read(at(1, 0), MAX, Duration::ZERO),
            TapRead::Idle { durable: at(1, 0) }
        );
        assert_eq!(
            tap.read(at(1, 10), MAX, Duration::ZERO),
            TapRead::Ahead { durable: at(1, 0) }
        );
        tap.publish(at(1, 120));
        assert_eq!(
            tap.read(at(1, 0), MAX, Duration::ZERO),
            TapRead::Bytes {
                from: at(1, 0),
                bytes: pattern(0, 120),
                durable: at(1, 120)
            }
        );
        assert_eq!(
            bytes_of(tap.read(at(1, 100), 7, Duration::ZERO)),
            pattern(100, 7)
        );
        assert_eq!(
            tap.read(at(1, 121), MAX, Duration::ZERO),
            TapRead::Ahead {
                durable: at(1, 120)
            }
        );
        assert_eq!(
            tap.read(at(2, 0), MAX, Duration::ZERO),
            TapRead::Ahead {
                durable: at(1, 120)
            }
        );
    }

    #[test]
    fn the_ring_keeps_the_newest_bytes_and_wraps() {
        let tap = LogTap::new(1000, at(1, 0));
        let mut offset = 0;
        for length in [400, 700, 999, 1, 2500, 333] {
            tap.append(at(1, offset), &pattern(offset as usize, length));
            offset += crate::log::stream_offset(length);
            tap.publish(at(1, offset));
            let oldest = tap.oldest();
            assert_eq!(oldest, at(1, offset.saturating_sub(1000)));
            assert_eq!(
                bytes_of(tap.read(oldest, MAX, Duration::ZERO)),
                pattern(oldest.offset as usize, (offset - oldest.offset) as usize)
            );
            if oldest.offset > 0 {
                assert_eq!(
                    tap.read(at(1, oldest.offset - 1), MAX, Duration::ZERO),
                    TapRead::Behind { oldest }
                );
            }
            let state = tap.state.lock();
            assert!(state.appended - state.oldest_sequence() <= 1000);
        }
    }

    #[test]
    fn a_tap_opened_mid_generation_has_nothing_before() {
        let tap = LogTap::new(1000, at(4, 500));
        assert_eq!(
            tap.read(at(4, 0), MAX, Duration::ZERO),
            TapRead::Behind { oldest: at(4, 500) }
        );
        assert_eq!(
            tap.read(at(3, 10), MAX, Duration::ZERO),
            TapRead::Behind { oldest: at(4, 500) }
        );
        tap.append(at(4, 500), &pattern(0, 10));
        tap.publish(at(4, 510));
        assert_eq!(
            bytes_of(tap.read(at(4, 500), MAX, Duration::ZERO)),
            pattern(0, 10)
        );
    }

    #[test]
    fn generations_end_only_once_durably_closed() {
        let tap = LogTap::new(1000, at(1, 0));
        tap.append(at(1, 0), &pattern(0, 100));
        tap.close_generation(1, 100);
        tap.append(at(2, 0), &pattern(100, 50));
        tap.publish(at(1, 100));
        // Generation 1 is not known durably closed: the reader waits.
        assert_eq!(
            tap.read(at(1, 100), MAX, Duration::ZERO),
            TapRead::Idle {
                durable: at(1, 100)
            }
        );
        tap.publish(at(2, 20));
        // Bytes stop at the generation's end.
        assert_eq!(
            bytes_of(tap.read(at(1, 60), MAX, Duration::ZERO)),
            pattern(60, 40)
        );
        assert_eq!(
            tap.read(at(1, 100), MAX, Duration::ZERO),
            TapRead::Ended {
                generation: 1,
                length: 100,
                durable: at(2, 20)
            }
        );
        assert_eq!(
            tap.read(at(1, 101), MAX, Duration::ZERO),
            TapRead::Ahead { durable: at(2, 20) }
        );
        assert_eq!(
            bytes_of(tap.read(at(2, 0), MAX, Duration::ZERO)),
            pattern(100, 20)
        );
        // Empty generations (rolled with nothing in them) end at 0.
        tap.close_generation(2, 50);
        tap.close_generation(3, 0);
        tap.publish(at(4, 0));
        assert!(matches!(
            tap.read(at(2, 50), MAX, Duration::ZERO),
            TapRead::Ended {
                generation: 2,
                length: 50,
                ..
            }
        ));
        assert!(matches!(
            tap.read(at(3, 0), MAX, Duration::ZERO),
            TapRead::Ended {
                generation: 3,
                length: 0,
                ..
            }
        ));
    }

    #[test]
    fn ends_are_remembered_after_their_bytes_left() {
        let tap = LogTap::new(64, at(1, 0));
        tap.append(at(1, 0), &pattern(0, 40));
        tap.close_generation(1, 40);
        tap.append(at(2, 0), &pattern(40, 100));
        tap.publish(at(2, 100));
        assert_eq!(tap.oldest(), at(2, 36));
        assert!(matches!(
            tap.read(at(1, 40), MAX, Duration::ZERO),
            TapRead::Ended {
                generation: 1,
                length: 40,
                ..
            }
        ));
        assert_eq!(
            tap.read(at(1, 0), MAX, Duration::ZERO),
            TapRead::Behind { oldest: at(2, 36) }
        );
        // Beyond the remembered ends the tap knows nothing of a generation.
        for generation in 2..2 + crate::log::stream_offset(ENDS_KEPT) {
            let length = if generation == 2 { 100 } else { 0 };
            tap.close_generation(generation, length);
        }
        tap.publish(at(2 + crate::log::stream_offset(ENDS_KEPT), 0));
        assert!(matches!(
            tap.read(at(1, 40), MAX, Duration::ZERO),
            TapRead::Behind { .. }
        ));
        assert!(matches!(
            tap.read(at(2, 100), MAX, Duration::ZERO),
            TapRead::Ended { generation: 2, .. }
        ));
    }

    #[test]
    fn a_chunk_larger_than_the_ring_keeps_its_end() {
        let tap = LogTap::new(100, at(1, 0));
        tap.append(at(1, 0), &pattern(0, 30));
        tap.append(at(1, 30), &pattern(30, 450));
        tap.publish(at(1, 480));
        assert_eq!(tap.oldest(), at(1, 380));
        assert_eq!(
            bytes_of(tap.read(at(1, 380), MAX, Duration::ZERO)),
            pattern(380, 100)
        );
        assert_eq!(
            tap.read(at(1, 379), MAX, Duration::ZERO),
            TapRead::Behind { oldest: at(1, 380) }
        );
    }

    #[test]
    fn idle_waits_about_the_wait_and_new_bytes_wake_the_reader() {
        let tap = Arc::new(LogTap::new(1000, at(1, 0)));
        let start = Instant::now();
        assert_eq!(
            tap.read(at(1, 0), MAX, Duration::from_millis(50)),
            TapRead::Idle { durable: at(1, 0) }
        );
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");

        let writer = Arc::clone(&tap);
        let handle = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            writer.append(at(1, 0), &pattern(0, 10));
            writer.publish(at(1, 10));
        });
        let start = Instant::now();
        let read = tap.read(at(1, 0), MAX, Duration::from_secs(20));
        assert_eq!(bytes_of(read), pattern(0, 10));
        assert!(start.elapsed() < Duration::from_secs(10));
        handle.join().unwrap();
    }

    #[test]
    fn stopping_wakes_readers_and_the_rest_is_still_read() {
        let tap = Arc::new(LogTap::new(1000, at(1, 0)));
        tap.append(at(1, 0), &pattern(0, 10));
        tap.publish(at(1, 10));
        // Written, never confirmed durable.
        tap.append(at(1, 10), &pattern(10, 10));
        let stopper = Arc::clone(&tap);
        let handle = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            stopper.stop("log closed");
        });
        let start = Instant::now();
        let read = tap.read(at(1, 10), MAX, Duration::from_secs(20));
        assert_eq!(
            read,
            TapRead::Stopped {
                reason: "log closed".into()
            }
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        handle.join().unwrap();
        assert_eq!(
            bytes_of(tap.read(at(1, 0), MAX, Duration::ZERO)),
            pattern(0, 10)
        );
        assert!(matches!(
            tap.read(at(1, 10), MAX, Duration::ZERO),
            TapRead::Stopped { .. }
        ));
        assert!(matches!(
            tap.read(at(1, 15), MAX, Duration::ZERO),
            TapRead::Ahead { .. }
        ));
    }

    #[test]
    #[should_panic(expected = "the writer appends contiguously")]
    fn a_gap_is_refused() {
        let tap = LogTap::new(1000, at(1, 0));
        tap.append(at(1, 5), b"x");
    }

    #[test]
    #[should_panic(expected = "only written bytes become durable")]
    fn publishing_unwritten_bytes_is_refused() {
        let tap = LogTap::new(1000, at(1, 0));
        tap.append(at(1, 0), b"xy");
        tap.publish(at(1, 3));
    }
}
