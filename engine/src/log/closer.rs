//! Closing generations behind the writer, so a roll does not stop the log.
//!
//! When the writer fills `E00.log` (generation g) it writes g's partial block home and goes on
//! writing g+1's segments into the prepared `E00tmp.log` at once. The closer then finishes the
//! roll of `roll.rs` with every read-back and disk wait off the writer's path: digest g, write
//! g+1's header, sync g, sync the header, rename both files and sync the directory, and
//! prepare the next `E00tmp.log`. Invariants:
//! - one close at a time: the writer waits for the previous close before it takes the next
//!   prepared file (so the name `E00tmp.log` belongs to one generation at a time);
//! - nothing in g+1 counts as durable before g+1 is installed: a flush that syncs waits for
//!   the close first ([`Closer::wait_install_after`]), after it has written and given up its
//!   turn, so other flushes write meanwhile;
//! - nobody prepares a new `E00tmp.log` while a close owns the name.
//!
//! Without the background thread (tests on the simulated disk, which must be repeatable) the
//! writer runs each close itself, in the same order.

use super::directory::path_of;
use super::generation_writer::GenerationWriter;
use super::roll::{install, prepare_next, sync_header, write_header, Fill};
use super::{BaseName, GenerationHeader};
use crate::error::LogError;
use crate::file::{FileHandle, FileSystem};
use parking_lot::{Condvar, Mutex};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A generation whose syncs covered more than this on average marks a streaming log (large
/// flushes), whose next generation is prepared without zeros. Zeros cost one extra write of
/// the generation; leaving them out costs every sync an extent conversion (a synchronous
/// metadata write on ext4): about even at 64 KiB a sync on this machine's disk. Durable
/// commits stay far below it (4 to 16 KiB a sync for 1 KiB commits from 1 to 8 threads);
/// lazy streaming covers megabytes a sync. Counting per sync, not per second, keeps a stream
/// that paused (a generation that took long to fill) from being taken for commits.
const STREAMING_BYTES_PER_SYNC: u64 = 64 << 10;

/// A roll the writer handed over: the finished writer of g, the header of g+1 (all but the
/// digest of g) and `E00tmp.log`, which the writer is already filling with g+1's segments.
pub(crate) struct CloseJob {
    pub closing: GenerationWriter,
    pub next: GenerationHeader,
    pub next_file: Arc<dyn FileHandle>,
}

struct State {
    /// `E00tmp.log`, ready for the next roll.
    prepared: Option<Arc<dyn FileHandle>>,
    /// Someone is creating `E00tmp.log`.
    preparing: bool,
    /// A roll owns `E00tmp.log`: from taking it until its generation is installed and the
    /// next `E00tmp.log` prepared.
    rolling: bool,
    /// A close was handed over and its generation is not installed yet.
    installing: bool,
    /// A close handed over and not yet started by the closer thread.
    job: Option<CloseJob>,
    /// The header of the generation installed as `E00.log`.
    installed: GenerationHeader,
    /// The first close that failed (reported once; later waiters see `failed_cause`).
    failed: Option<LogError>,
    /// The failure every later waiter is refused with (as the cause of `Poisoned`).
    failed_cause: Option<LogError>,
    stop: bool,
}

/// Prepares generation files and closes full ones.
pub(crate) struct Closer {
    fs: Arc<dyn FileSystem>,
    directory: PathBuf,
    base: BaseName,
    generation_bytes: u64,
    /// Whether a closer thread runs [`Closer::run`]; otherwise closes run inline.
    threaded: bool,
    /// Whether the last generation's syncs covered more than `STREAMING_BYTES_PER_SYNC`: then the
    /// next one is prepared without zeros (see `Fill`).
    streaming: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

impl Closer {
    pub fn new(
        fs: Arc<dyn FileSystem>,
        directory: PathBuf,
        base: BaseName,
        installed: GenerationHeader,
        threaded: bool,
    ) -> Self {
        Self {
            fs,
            directory,
            base,
            generation_bytes: installed.generation_bytes as u64,
            threaded,
            streaming: AtomicBool::new(false),
            state: Mutex::new(State {
                prepared: None,
                preparing: false,
                rolling: false,
                installing: false,
                job: None,
                installed,
                failed: None,
                failed_cause: None,
                stop: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// The header of the generation installed as `E00.log` (the writer may already be filling
    /// the next one while this one closes).
    pub fn installed(&self) -> GenerationHeader {
        self.state.lock().installed
    }

    /// Notes how much the syncs of the generation being closed covered on average (decides
    /// how the next is prepared).
    pub fn note_bytes_per_sync(&self, bytes: u64) {
        let streaming = bytes > STREAMING_BYTES_PER_SYNC;
        self.streaming.store(streaming, Ordering::Relaxed);
    }

    fn fill(&self) -> Fill {
        if self.streaming.load(Ordering::Relaxed) {
            Fill::Allocated
        } else {
            Fill::Zeros
        }
    }

    fn prepare(&self) -> Result<Arc<dyn FileHandle>, LogError> {
        let fs = self.fs.as_ref();
        prepare_next(
            fs,
            &self.directory,
            self.base,
            self.generation_bytes,
            self.fill(),
        )
    }

    /// Prepares `E00tmp.log` if none is ready and no roll owns the name.
    pub fn prepare_if_needed(&self) -> Result<(), LogError> {
        {
            let mut state = self.state.lock();
            if state.prepared.is_some() || state.preparing || state.rolling || state.stop {
                return Ok(());
            }
            state.preparing = true;
        }
        let result = self.prepare();
        let mut state = self.state.lock();
        state.preparing = false;
        let outcome = result.map(|file| state.prepared = Some(file));
        self.changed.notify_all();
        outcome
    }

    /// Prepares the next file in the background: a failure is retried (and returned) by the
    /// roll, and reported now.
    fn prepare_reported(&self) -> Option<Arc<dyn FileHandle>> {
        self.prepare()
            .inspect_err(|error| {
                tracing::warn!(
                    directory = %self.directory.display(),
                    %error,
                    "preparing the next log generation failed; the next roll tries again"
                );
            })
            .ok()
    }

    /// Starts a roll: waits for the previous close, then takes the prepared file (preparing
    /// it now if none is ready). The caller must [`Closer::submit`] or [`Closer::abandon`].
    pub fn begin(&self) -> Result<Arc<dyn FileHandle>, LogError> {
        let mut state = self.state.lock();
        while state.rolling || state.preparing {
            self.changed.wait(&mut state);
        }
        failure(&mut state)?;
        state.rolling = true;
        if let Some(file) = state.prepared.take() {
            return Ok(file);
        }
        drop(state);
        let prepared = self.prepare();
        if prepared.is_err() {
            self.abandon();
        }
        prepared
    }

    /// Gives up a roll begun with [`Closer::begin`] (after an error).
    pub fn abandon(&self) {
        self.state.lock().rolling = false;
        self.changed.notify_all();
    }

    /// Hands over a close: to the closer thread, or runs it here without one.
    pub fn submit(&self, job: CloseJob) -> Result<(), LogError> {
        if self.threaded {
            let mut state = self.state.lock();
            assert!(state.rolling && state.job.is_none(), "one close at a time");
            state.job = Some(job);
            state.installing = true;
            self.changed.notify_all();
            return Ok(());
        }
        let result = self.close(job);
        let mut state = self.state.lock();
        state.rolling = false;
        // The caller gets the error; everyone after it sees the log as failed, as with the
        // closer thread.
        if let Err(error) = &result {
            state.failed_cause = Some(error.clone());
        }
        let outcome = result.map(|next| state.installed = next);
        self.changed.notify_all();
        outcome
    }

    /// The installed generation, and whether a close handed over is still pending (without
    /// waiting); an error if a close failed.
    pub fn install_state(&self) -> Result<(u32, bool), LogError> {
        let mut state = self.state.lock();
        failure(&mut state)?;
        Ok((state.installed.generation, state.installing))
    }

    /// Waits until no close is pending or a generation after `seen` is installed.
    pub fn wait_install_after(&self, seen: u32) -> Result<(), LogError> {
        let mut state = self.state.lock();
        while state.installing && state.installed.generation <= seen && state.failed_cause.is_none()
        {
            self.changed.wait(&mut state);
        }
        failure(&mut state)
    }

    /// The closer thread: runs handed-over closes until [`Closer::stop`].
    pub fn run(&self) {
        loop {
            let job = {
                let mut state = self.state.lock();
                while state.job.is_none() && !state.stop {
                    self.changed.wait(&mut state);
                }
                match state.job.take() {
                    Some(job) => job,
                    None => return,
                }
            };
            let closing = job.closing.header.generation;
            let result = self.close(job);
            let installed = result.is_ok();
            {
                let mut state = self.state.lock();
                state.installing = false;
                match result {
                    Ok(next) => state.installed = next,
                    Err(error) => {
                        // Reported now: the writer only learns of it at its next roll or sync.
                        tracing::error!(
                            directory = %self.directory.display(),
                            generation = closing,
                            %error,
                            "closing a log generation failed; the log refuses further writes"
                        );
                        state.failed_cause = Some(error.clone());
                        state.failed = Some(error);
                    }
                }
                self.changed.notify_all();
            }
            // The roll keeps the name until the next file is prepared, so the writer finds
            // it ready when it fills the generation just installed (and nobody else creates
            // `E00tmp.log` meanwhile). A failure to prepare is reported by the roll that
            // tries again.
            let prepared = installed.then(|| self.prepare_reported()).flatten();
            let mut state = self.state.lock();
            state.prepared = prepared;
            state.rolling = false;
            self.changed.notify_all();
        }
    }

    /// Stops the closer thread once the close in hand (if any) is done.
    pub fn stop(&self) {
        self.state.lock().stop = true;
        self.changed.notify_all();
    }

    /// Steps 2 to 4 of the roll (see `roll.rs`): digest the finished generation, write the
    /// next one's header with it, sync both, install both; returns the installed header.
    fn close(&self, job: CloseJob) -> Result<GenerationHeader, LogError> {
        let CloseJob {
            mut closing,
            next,
            next_file,
        } = job;
        assert_eq!(
            next.generation,
            closing.header.generation + 1,
            "a close installs the generation after the one it closes"
        );
        let next = GenerationHeader {
            // Read back from the page cache: the same bytes the disk is being sent.
            previous_digest: closing.digest()?,
            ..next
        };
        let prepared = path_of(&self.directory, &self.base.prepared());
        write_header(next_file.as_ref(), &prepared, &next)?;
        // The finished generation first: its data was sent to the disk before the header.
        closing.sync()?;
        sync_header(next_file.as_ref(), &prepared)?;
        install(
            self.fs.as_ref(),
            &self.directory,
            self.base,
            Some(closing.header.generation),
        )?;
        Ok(next)
    }
}

fn failure(state: &mut State) -> Result<(), LogError> {
    if let Some(error) = state.failed.take() {
        return Err(error);
    }
    match &state.failed_cause {
        Some(cause) => Err(LogError::Poisoned(Box::new(cause.clone()))),
        None => Ok(()),
    }
}
