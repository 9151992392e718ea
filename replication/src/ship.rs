//! Ship: copy each closed generation of the active's log into the replica's incoming area.
//!
//! A copy is written under a temporary name and synced; the round's copies are then renamed
//! to their final names and the directory synced once. A crash leaves no partial file under
//! a final name (a leftover temporary file is replaced by the next copy). A file of the same
//! generation already there counts as shipped when its content is identical; a different one
//! is never overwritten (inspection quarantines it if it is bad, and it is then copied
//! again). Failed copies are retried a bounded number of times with growing pauses.

use crate::error::ReplError;
use crate::generation_file::{
    compress, list_generations, read_generation, read_header, COMPRESSED_SUFFIX,
};
use crate::layout::ReplicaLayout;
use crate::sealed::{publish, write_temporary};
use crate::status::GenerationMark;
use bluejet_engine::file::FileSystem;
use bluejet_engine::format::log_directory::{path_of, LogDirectory};
use bluejet_engine::log::now_micros;
use bluejet_engine::BaseName;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How the shipper copies.
#[derive(Clone, Debug)]
pub struct ShipOptions {
    /// Compress shipped files with zstd.
    pub compress: bool,
    /// Attempts per generation in one round (default 4).
    pub attempts: u32,
    /// Pause after the first failed attempt, doubled after each (default 20 ms).
    pub backoff: Duration,
    /// Most generations copied in one round, so inspection can follow (default 32).
    pub batch: usize,
}

impl Default for ShipOptions {
    fn default() -> Self {
        Self {
            compress: false,
            attempts: 4,
            backoff: Duration::from_millis(20),
            batch: 32,
        }
    }
}

/// What one round of shipping did and saw.
#[derive(Clone, Debug, Default)]
pub struct ShipRound {
    /// Generations copied this round.
    pub shipped: Vec<GenerationMark>,
    /// The newest generation closed on the active, and when it was closed.
    pub newest_closed: Option<GenerationMark>,
    /// The active's current generation.
    pub current_generation: Option<u32>,
    /// Bytes of the generations copied, and the bytes written for them.
    pub bytes: (u64, u64),
    /// Files found in the incoming area that differ from the active's and were left alone.
    pub different: Vec<u32>,
    /// Why the round stopped early, if it did.
    pub problem: Option<String>,
    /// When generation `needed` was started on the active: changes since then are not yet
    /// inspected here.
    pub exposed_since: Option<u64>,
    /// The next generation this copy needs, deleted on the active (truncated) before it was
    /// copied here: it can never arrive, and the copy must be reseeded.
    pub deleted_on_active: Option<u32>,
}

/// A generation copied under its temporary name, synced, not yet renamed.
struct Copy {
    temporary: PathBuf,
    path: PathBuf,
    source_bytes: u64,
    written_bytes: u64,
}

/// The ship stage.
pub struct Shipper {
    active_fs: Arc<dyn FileSystem>,
    fs: Arc<dyn FileSystem>,
    active: PathBuf,
    layout: ReplicaLayout,
    base: BaseName,
    options: ShipOptions,
    /// Incoming files known to hold the active's content.
    verified: BTreeSet<u32>,
    /// Incoming files known to differ (reported once).
    different: BTreeSet<u32>,
}

impl Shipper {
    /// A shipper from the log directory `active` (read through `active_fs`) to `layout`.
    pub fn new(
        active_fs: Arc<dyn FileSystem>,
        fs: Arc<dyn FileSystem>,
        active: PathBuf,
        layout: ReplicaLayout,
        base: BaseName,
        options: ShipOptions,
    ) -> Self {
        Self {
            active_fs,
            fs,
            active,
            layout,
            base,
            options,
            verified: BTreeSet::new(),
            different: BTreeSet::new(),
        }
    }

    /// Copies the closed generations from `needed` on that are in neither the incoming area
    /// nor the inspected logs. An error means the active's directory could not be read.
    pub fn ship_once(&mut self, needed: u32) -> Result<ShipRound, ReplError> {
        let listing = LogDirectory::list(self.active_fs.as_ref(), &self.active, self.base)?;
        let mut round = ShipRound {
            current_generation: self.current_generation(listing.current),
            ..ShipRound::default()
        };
        round.newest_closed = listing
            .closed
            .keys()
            .next_back()
            .map(|&generation| GenerationMark {
                generation,
                time_micros: self.closed_time(generation, &listing.closed),
            });
        round.exposed_since = self.started_time(needed, &listing.closed);
        let incoming = list_generations(self.fs.as_ref(), &self.layout.incoming(), self.base)?;
        let inspected = list_generations(self.fs.as_ref(), &self.layout.logs(), self.base)?;
        // Truncation deletes a prefix: the needed generation was truncated away when it is
        // neither on the active nor here, no older one is on the active, and a later one is
        // (a generation missing between others is a gap, which may yet be repaired).
        let later = listing.closed.range(needed + 1..).next().is_some()
            || round
                .current_generation
                .is_some_and(|current| current > needed);
        let older = listing.closed.range(..needed).next().is_some();
        let absent = !listing.closed.contains_key(&needed) && !incoming.contains_key(&needed);
        if later && !older && absent {
            round.deleted_on_active = Some(needed);
        }
        self.verified
            .retain(|generation| incoming.contains_key(generation));
        self.different
            .retain(|generation| incoming.contains_key(generation));
        if round.deleted_on_active.is_some() {
            // Nothing shipped can be replayed before a reseed: copying on would only fill
            // the incoming area.
            return Ok(round);
        }
        let wanted = listing
            .closed
            .range(needed..)
            .filter(|(generation, _)| !inspected.contains_key(generation))
            .filter(|(generation, _)| !self.verified.contains(generation))
            .take(self.options.batch);
        let wanted: Vec<(u32, String)> = wanted.map(|(&g, name)| (g, name.clone())).collect();
        let mut written = Vec::new();
        for (generation, name) in wanted {
            let present = incoming.get(&generation).cloned().unwrap_or_default();
            match self.ship_with_retries(generation, &name, &present) {
                Ok(Some(copy)) => {
                    round.bytes.0 += copy.source_bytes;
                    round.bytes.1 += copy.written_bytes;
                    written.push((generation, copy));
                }
                Ok(None) => {}
                Err(ReplError::DifferentContent { generation, .. }) => {
                    if self.different.insert(generation) {
                        round.different.push(generation);
                    }
                }
                Err(error) => {
                    round.problem = Some(format!("copying generation {generation}: {error}"));
                    break;
                }
            }
        }
        self.publish(written, &mut round);
        Ok(round)
    }

    /// Renames the synced copies of this round to their final names with one directory
    /// sync for all of them.
    fn publish(&mut self, written: Vec<(u32, Copy)>, round: &mut ShipRound) {
        // A round ships generations in ascending order, each once.
        assert!(
            written.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "shipped generations out of order: {:?}",
            written
                .iter()
                .map(|(generation, _)| generation)
                .collect::<Vec<_>>()
        );
        let renames: Vec<_> = written
            .iter()
            .map(|(_, copy)| (copy.temporary.clone(), copy.path.clone()))
            .collect();
        match publish(self.fs.as_ref(), &renames) {
            Ok(()) => {
                for (generation, _) in written {
                    self.verified.insert(generation);
                    round.shipped.push(GenerationMark {
                        generation,
                        time_micros: now_micros(),
                    });
                }
            }
            Err(error) => {
                round.bytes = (0, 0);
                round.problem = Some(format!("publishing shipped generations: {error}"));
            }
        }
    }

    /// Ships one generation, retrying; `Ok(None)` when an identical copy was already there.
    fn ship_with_retries(
        &mut self,
        generation: u32,
        name: &str,
        present: &[String],
    ) -> Result<Option<Copy>, ReplError> {
        let mut pause = self.options.backoff;
        let mut attempt = 1;
        loop {
            match self.ship(generation, name, present) {
                Ok(result) => {
                    if result.is_none() {
                        self.verified.insert(generation);
                    }
                    return Ok(result);
                }
                Err(error @ ReplError::DifferentContent { .. }) => return Err(error),
                Err(error) if attempt >= self.options.attempts => return Err(error),
                Err(_) => {
                    std::thread::sleep(pause);
                    pause *= 2;
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt: compare with a copy already there, or write a new one under its
    /// temporary name, synced.
    fn ship(
        &self,
        generation: u32,
        name: &str,
        present: &[String],
    ) -> Result<Option<Copy>, ReplError> {
        let source = path_of(&self.active, name);
        let image = read_generation(self.active_fs.as_ref(), &source)?;
        if !present.is_empty() {
            for existing in present {
                let path = self.layout.incoming().join(existing);
                // An unreadable copy is as different as a wrong one: inspection deals with it.
                let same =
                    read_generation(self.fs.as_ref(), &path).is_ok_and(|bytes| bytes == image);
                if !same {
                    return Err(ReplError::DifferentContent { path, generation });
                }
            }
            return Ok(None);
        }
        let (target, bytes) = if self.options.compress {
            (format!("{name}{COMPRESSED_SUFFIX}"), compress(&image))
        } else {
            (name.to_owned(), image.clone())
        };
        let path = self.layout.incoming().join(target);
        let temporary = write_temporary(self.fs.as_ref(), &path, &bytes)?;
        Ok(Some(Copy {
            temporary,
            path,
            source_bytes: image.len() as u64,
            written_bytes: bytes.len() as u64,
        }))
    }

    /// The active's current generation, from the header of `E00.log`.
    fn current_generation(&self, present: bool) -> Option<u32> {
        let path = path_of(&self.active, &self.base.current());
        present
            .then(|| read_header(self.active_fs.as_ref(), &path).ok())
            .flatten()
            .map(|header| header.generation)
    }

    /// When generation `generation` was closed: when the one after it was started.
    fn closed_time(&self, generation: u32, closed: &BTreeMap<u32, String>) -> u64 {
        self.started_time(generation + 1, closed).unwrap_or(0)
    }

    /// When generation `generation` was started, from its header (closed or current).
    fn started_time(&self, generation: u32, closed: &BTreeMap<u32, String>) -> Option<u64> {
        let path = match closed.get(&generation) {
            Some(name) => path_of(&self.active, name),
            None => path_of(&self.active, &self.base.current()),
        };
        read_header(self.active_fs.as_ref(), &path)
            .ok()
            .filter(|header| header.generation == generation)
            .map(|header| header.created_micros)
    }
}
