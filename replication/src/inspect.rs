//! Inspect: accept a shipped generation into the passive's log only when it checks out.
//!
//! Checks, in order: the file reads back whole (and decompresses within the size bound), its
//! header and every segment verify (a closed generation's strict scan), the name matches the
//! header, the stream signature is the replica's, the timeline is not older than the previous
//! generation's, and it chains to the previous generation (its creation time and digest).
//! Generations are accepted strictly in order; a later one waits for the missing one, which
//! is reported as a gap. A failure moves the file to the quarantine, so the shipper copies it
//! again; after `attempts` failures of the same generation the copy is Failed, naming the
//! generation and the problem, and the generation is retried only every `retry_after`.

use crate::error::ReplError;
use crate::generation_file::{list_generations, read_generation};
use crate::identity::ReplicaIdentity;
use crate::layout::ReplicaLayout;
use crate::sealed::write_file_atomically;
use crate::status::{Gap, GenerationMark};
use bluejet_engine::file::FileSystem;
use bluejet_engine::format::generation_header::GenerationHeader;
use bluejet_engine::format::log_verify::{check_shipped, ShippedExpectation};
use bluejet_engine::format::scan::{scan, ScanMode};
use bluejet_engine::log::now_micros;
use bluejet_engine::BaseName;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one round of inspection did and saw.
#[derive(Clone, Debug, Default)]
pub struct InspectRound {
    /// Generations accepted.
    pub inspected: Vec<GenerationMark>,
    /// Generations quarantined (or dropped), and why.
    pub rejected: Vec<(u32, String)>,
    /// Duplicates of accepted generations removed from the incoming area.
    pub duplicates: Vec<u32>,
    /// The first generation missing before later ones.
    pub gap: Option<Gap>,
    /// A generation failed too often: the copy is Failed with this message.
    pub failure: Option<String>,
}

/// The inspect stage.
pub struct Inspector {
    fs: Arc<dyn FileSystem>,
    layout: ReplicaLayout,
    identity: ReplicaIdentity,
    base: BaseName,
    /// The next generation to accept.
    next: u32,
    /// The header and digest of the generation before `next`.
    previous: Option<(GenerationHeader, u32)>,
    /// Failed attempts per generation, and when the last one was.
    attempts: BTreeMap<u32, (u32, Instant)>,
    max_attempts: u32,
    retry_after: Duration,
    failure: Option<String>,
}

impl Inspector {
    /// An inspector for the replica in `layout`; it continues after the generations already
    /// in the passive's log.
    pub fn new(
        fs: Arc<dyn FileSystem>,
        layout: ReplicaLayout,
        identity: ReplicaIdentity,
        max_attempts: u32,
        retry_after: Duration,
    ) -> Result<Self, ReplError> {
        let base = identity.base()?;
        let accepted = list_generations(fs.as_ref(), &layout.logs(), base)?;
        // Truncation of `logs/` (after a backup) may have removed the oldest generations:
        // continue after the run that starts with the oldest one kept.
        let oldest = accepted.keys().next().copied();
        let mut next = oldest.map_or(identity.seeded_at.generation, |oldest| {
            oldest.max(identity.seeded_at.generation)
        });
        while accepted.contains_key(&next) {
            next += 1;
        }
        let mut inspector = Self {
            fs,
            layout,
            identity,
            base,
            next,
            previous: None,
            attempts: BTreeMap::new(),
            max_attempts,
            retry_after,
            failure: None,
        };
        inspector.previous = inspector.accepted_header(next.saturating_sub(1));
        Ok(inspector)
    }

    /// The next generation to accept.
    pub fn next_generation(&self) -> u32 {
        self.next
    }

    /// The header and digest of an accepted generation, if it is there and readable.
    fn accepted_header(&self, generation: u32) -> Option<(GenerationHeader, u32)> {
        if generation < self.identity.seeded_at.generation {
            return None;
        }
        let path = self.layout.logs().join(self.base.closed(generation));
        let image = read_generation(self.fs.as_ref(), &path).ok()?;
        let scanned = scan(&path, &image, ScanMode::Closed).ok()?;
        Some((scanned.header, scanned.digest))
    }

    /// Inspects what the incoming area holds, in generation order.
    pub fn inspect_once(&mut self) -> Result<InspectRound, ReplError> {
        let mut round = InspectRound::default();
        let incoming = list_generations(self.fs.as_ref(), &self.layout.incoming(), self.base)?;
        for (&generation, names) in incoming.range(..self.next) {
            for name in names {
                self.drop_duplicate(generation, name, &mut round)?;
            }
        }
        while let Some(names) = incoming.get(&self.next) {
            if !self.retry_due(self.next) {
                break;
            }
            let name = names[0].clone();
            if !self.inspect_file(&name, &mut round)? {
                break;
            }
        }
        let later: Vec<u32> = incoming.range(self.next + 1..).map(|(&g, _)| g).collect();
        if !incoming.contains_key(&self.next) {
            if let (Some(&first), Some(&last)) = (later.first(), later.last()) {
                round.gap = Some(Gap {
                    missing: self.next,
                    have: (first, last),
                });
            }
        }
        round.failure = self.failure.clone();
        Ok(round)
    }

    fn retry_due(&self, generation: u32) -> bool {
        match self.attempts.get(&generation) {
            Some((count, last)) if *count >= self.max_attempts => {
                last.elapsed() >= self.retry_after
            }
            _ => true,
        }
    }

    /// Inspects the incoming file `name` of generation `next`; returns whether it was accepted.
    fn inspect_file(&mut self, name: &str, round: &mut InspectRound) -> Result<bool, ReplError> {
        let generation = self.next;
        let path = self.layout.incoming().join(name);
        let checked = read_generation(self.fs.as_ref(), &path)
            .and_then(|image| self.check(&path, generation, &image).map(|c| (image, c)));
        match checked {
            Ok((image, (header, digest))) => {
                let target = self.layout.logs().join(self.base.closed(generation));
                write_file_atomically(self.fs.as_ref(), &target, &image)?;
                self.remove_incoming(&path)?;
                // Generations are inspected in order, none skipped: the accepted file is
                // the one after the last accepted.
                assert_eq!(
                    header.generation, generation,
                    "inspected generation {} in place of generation {generation}",
                    header.generation
                );
                self.previous = Some((header, digest));
                self.next += 1;
                self.attempts.remove(&generation);
                self.failure = None;
                round.inspected.push(GenerationMark {
                    generation,
                    time_micros: now_micros(),
                });
                Ok(true)
            }
            // A file that could not be read is not shown to be bad: try again next round.
            Err(error @ ReplError::Io { operation, .. }) if operation != "decompressing" => {
                Err(error)
            }
            Err(error @ ReplError::OutOfSpace { .. }) => Err(error),
            Err(problem) => {
                self.reject(generation, &path, name, &problem.to_string(), round)?;
                Ok(false)
            }
        }
    }

    /// Every check of one generation image; returns its header and digest.
    fn check(
        &self,
        path: &Path,
        generation: u32,
        image: &[u8],
    ) -> Result<(GenerationHeader, u32), ReplError> {
        let scanned = scan(path, image, ScanMode::Closed)?;
        let header = scanned.header;
        let timeline = self
            .previous
            .map_or(self.identity.timeline, |(previous, _)| previous.timeline);
        let expected = ShippedExpectation {
            generation,
            signature: self.identity.signature,
            timeline,
            previous: self.previous.as_ref(),
        };
        check_shipped(path, &header, expected)?;
        Ok((header, scanned.digest))
    }

    /// Moves a failed file to the quarantine (up to `max_attempts` copies per generation;
    /// later ones are removed) and counts the attempt.
    fn reject(
        &mut self,
        generation: u32,
        path: &Path,
        name: &str,
        problem: &str,
        round: &mut InspectRound,
    ) -> Result<(), ReplError> {
        let entry = self
            .attempts
            .entry(generation)
            .or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.1 = Instant::now();
        let count = entry.0;
        if count <= self.max_attempts {
            let target = self.layout.quarantine().join(format!("{name}.{count}"));
            self.quarantine_file(path, &target)?;
        } else {
            self.remove_incoming(path)?;
        }
        if count >= self.max_attempts {
            self.failure = Some(format!(
                "generation {generation} failed inspection {count} times: {problem}"
            ));
        }
        round.rejected.push((generation, problem.to_owned()));
        Ok(())
    }

    /// An incoming copy of a generation already accepted: removed if identical, else
    /// quarantined (an accepted generation is never replaced).
    fn drop_duplicate(
        &mut self,
        generation: u32,
        name: &str,
        round: &mut InspectRound,
    ) -> Result<(), ReplError> {
        let path = self.layout.incoming().join(name);
        let accepted = self.layout.logs().join(self.base.closed(generation));
        let incoming = read_generation(self.fs.as_ref(), &path).ok();
        let same =
            incoming.is_some() && read_generation(self.fs.as_ref(), &accepted).ok() == incoming;
        if same || generation < self.identity.seeded_at.generation {
            self.remove_incoming(&path)?;
            round.duplicates.push(generation);
            return Ok(());
        }
        let target = self.layout.quarantine().join(format!("{name}.duplicate"));
        self.quarantine_file(&path, &target)?;
        round.rejected.push((
            generation,
            format!("a different copy of generation {generation}, already accepted"),
        ));
        Ok(())
    }

    /// Moves an incoming file into the quarantine, durably in both directories.
    fn quarantine_file(&self, path: &Path, target: &Path) -> Result<(), ReplError> {
        self.fs
            .rename(path, target)
            .map_err(|error| ReplError::io(path, "quarantining", error))?;
        for directory in [self.layout.quarantine(), self.layout.incoming()] {
            self.fs
                .sync_directory(&directory)
                .map_err(|error| ReplError::io(&directory, "syncing", error))?;
        }
        Ok(())
    }

    fn remove_incoming(&self, path: &Path) -> Result<(), ReplError> {
        self.fs
            .remove(path)
            .map_err(|error| ReplError::io(path, "removing", error))?;
        let directory = self.layout.incoming();
        self.fs
            .sync_directory(&directory)
            .map_err(|error| ReplError::io(&directory, "syncing", error))
    }
}
