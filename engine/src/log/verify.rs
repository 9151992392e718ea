//! Verifying a log directory: every generation, the chain between them, and the gaps.

use super::directory::{path_of, read_image, LogDirectory};
use super::record::{kind, read_record};
use super::scan::{scan, GenerationScan, ScanMode};
use super::{BaseName, GenerationHeader, StreamSignature, MAX_GENERATION_BYTES};
use crate::error::LogError;
use crate::file::FileSystem;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Checks that `header` (of the file at `path`) chains to `previous`, whose file has `digest`.
pub fn check_chain(
    path: &Path,
    header: &GenerationHeader,
    previous: &GenerationHeader,
    digest: u32,
) -> Result<(), LogError> {
    if header.signature != previous.signature {
        return Err(LogError::ForeignGeneration {
            path: path.to_owned(),
            generation: header.generation,
            expected: previous.signature,
            found: header.signature,
        });
    }
    let broken = |reason: String| LogError::BrokenChain {
        path: path.to_owned(),
        generation: header.generation,
        previous: previous.generation,
        reason,
    };
    if header.generation != previous.generation + 1 {
        return Err(broken(format!(
            "generation {} does not follow generation {}",
            header.generation, previous.generation
        )));
    }
    if header.previous_created_micros != previous.created_micros {
        return Err(broken(format!(
            "previous creation time {} differs from {}",
            header.previous_created_micros, previous.created_micros
        )));
    }
    if header.previous_digest != digest {
        return Err(broken(format!(
            "previous digest {:#010x} differs from the digest {digest:#010x} of the file",
            header.previous_digest
        )));
    }
    if header.timeline < previous.timeline {
        return Err(broken(format!(
            "timeline {} is older than timeline {}",
            header.timeline, previous.timeline
        )));
    }
    Ok(())
}

/// What a shipped generation must be: its number, its stream, a timeline not older than
/// the copy's, and (when the copy has it) a link to the generation before.
#[derive(Clone, Copy, Debug)]
pub struct ShippedExpectation<'a> {
    /// The generation the file is named for.
    pub generation: u32,
    /// The stream the copy follows.
    pub signature: StreamSignature,
    /// The oldest timeline accepted.
    pub timeline: u64,
    /// The previous generation's header and file digest, when known.
    pub previous: Option<&'a (GenerationHeader, u32)>,
}

/// Checks a scanned closed generation (`header`, from the file at `path`) against what a
/// passive copy expects: the name, the stream, the timeline and the chain.
pub fn check_shipped(
    path: &Path,
    header: &GenerationHeader,
    expected: ShippedExpectation<'_>,
) -> Result<(), LogError> {
    let generation = expected.generation;
    if header.generation != generation {
        return Err(LogError::NameMismatch {
            path: path.to_owned(),
            named: generation,
            inside: header.generation,
        });
    }
    if header.signature != expected.signature {
        return Err(LogError::ForeignGeneration {
            path: path.to_owned(),
            generation,
            expected: expected.signature,
            found: header.signature,
        });
    }
    if header.timeline < expected.timeline {
        return Err(LogError::TimelineMismatch {
            path: path.to_owned(),
            generation,
            expected: expected.timeline,
            found: header.timeline,
        });
    }
    match expected.previous {
        Some((previous, digest)) => check_chain(path, header, previous, *digest),
        None => Ok(()),
    }
}

/// What verification found about one generation.
#[derive(Clone, Debug)]
pub struct GenerationReport {
    /// The generation number (from the file name; the header's if it is `E00.log`).
    pub generation: u32,
    /// The file.
    pub path: PathBuf,
    /// The header, when it could be read.
    pub header: Option<GenerationHeader>,
    /// Record stream bytes.
    pub stream_bytes: u64,
    /// Records found.
    pub records: u64,
    /// Commit records found.
    pub commits: u64,
    /// Valid home segments.
    pub segments_used: u32,
    /// Home segments in the file.
    pub segments_total: u32,
    /// Bytes of torn tail (current generation only).
    pub torn_bytes: usize,
    /// crc32c of the whole file.
    pub digest: Option<u32>,
    /// Whether this is `E00.log`.
    pub current: bool,
}

/// The result of verifying a directory.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Every generation looked at, in order.
    pub generations: Vec<GenerationReport>,
    /// Missing generation ranges (inclusive) with a later generation present.
    pub missing: Vec<(u32, u32)>,
    /// Every problem found.
    pub problems: Vec<LogError>,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies every generation of the stream `base` in `directory`, calling `progress` after
/// each one.
pub fn verify_directory(
    fs: &dyn FileSystem,
    directory: &Path,
    base: BaseName,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<VerifyReport, LogError> {
    let listing = LogDirectory::list(fs, directory, base)?;
    let mut files: Vec<(Option<u32>, PathBuf)> = listing
        .closed
        .iter()
        .map(|(&generation, name)| (Some(generation), path_of(directory, name)))
        .collect();
    if listing.current {
        files.push((None, path_of(directory, &base.current())));
    }
    let mut check = Check {
        signature: stream_signature(fs, directory, base, &files),
        links: BTreeMap::new(),
    };
    let mut report = VerifyReport::default();
    let total = files.len();
    for (index, (named, path)) in files.into_iter().enumerate() {
        let (entry, problems) = check.file(fs, &path, named);
        report.problems.extend(problems);
        report.generations.push(entry);
        progress(index + 1, total);
    }
    let current = report
        .generations
        .iter()
        .find(|g| g.current)
        .map(|g| g.generation);
    report.missing = listing.missing_ranges(current);
    for &(first, last) in &report.missing {
        report.problems.push(LogError::MissingGenerations {
            directory: directory.to_owned(),
            first,
            last,
            next: last + 1,
        });
    }
    Ok(report)
}

/// The signature of the stream in the directory: the checkpoint's, else the current
/// generation's, else the oldest generation's. Files with another one are foreign.
fn stream_signature(
    fs: &dyn FileSystem,
    directory: &Path,
    base: BaseName,
    files: &[(Option<u32>, PathBuf)],
) -> Option<StreamSignature> {
    let checkpoint = path_of(directory, &base.checkpoint());
    if let Ok(read) = super::checkpoint::read(fs, &checkpoint) {
        return Some(read.checkpoint.signature);
    }
    let header_of = |path: &PathBuf| {
        let (_, image) = read_image(fs, path, MAX_GENERATION_BYTES).ok()?;
        GenerationHeader::decode(&image)
            .ok()
            .map(|header| header.signature)
    };
    let current = files.iter().rev().find(|(named, _)| named.is_none());
    current
        .and_then(|(_, path)| header_of(path))
        .or_else(|| files.iter().find_map(|(_, path)| header_of(path)))
}

/// Verification state: the stream's signature and the verified generations that later ones
/// chain to (only files of this stream whose names match their headers).
struct Check {
    signature: Option<StreamSignature>,
    links: BTreeMap<u32, (GenerationHeader, u32)>,
}

impl Check {
    fn file(
        &mut self,
        fs: &dyn FileSystem,
        path: &Path,
        named: Option<u32>,
    ) -> (GenerationReport, Vec<LogError>) {
        let mode = if named.is_some() {
            ScanMode::Closed
        } else {
            ScanMode::Current
        };
        let mut entry = GenerationReport::new(path, named);
        let image = match read_image(fs, path, MAX_GENERATION_BYTES) {
            Ok((_, image)) => image,
            Err(error) => return (entry, vec![error]),
        };
        let scanned = match scan(path, &image, mode) {
            Ok(scanned) => scanned,
            Err(error) => {
                // Even a damaged file may have a readable header, which names it in reports.
                entry.header = GenerationHeader::decode(&image).ok();
                if let Some(header) = entry.header {
                    entry.generation = named.unwrap_or(header.generation);
                }
                return (entry, vec![error]);
            }
        };
        fill_entry(&mut entry, &scanned);
        let problem = self.link(path, named, &scanned);
        (entry, problem.into_iter().collect())
    }

    /// Checks the file's stream, name and chain; a file that passes becomes a link.
    fn link(
        &mut self,
        path: &Path,
        named: Option<u32>,
        scanned: &GenerationScan,
    ) -> Option<LogError> {
        let header = scanned.header;
        let expected = self.signature.unwrap_or(header.signature);
        if header.signature != expected {
            return Some(LogError::ForeignGeneration {
                path: path.to_owned(),
                generation: header.generation,
                expected,
                found: header.signature,
            });
        }
        if let Some(named) = named.filter(|&named| named != header.generation) {
            return Some(LogError::NameMismatch {
                path: path.to_owned(),
                named,
                inside: header.generation,
            });
        }
        let previous = header
            .generation
            .checked_sub(1)
            .and_then(|g| self.links.get(&g));
        let broken = previous
            .and_then(|(previous, digest)| check_chain(path, &header, previous, *digest).err());
        // A broken link is between this generation and the one before; this one still
        // anchors the next.
        self.links
            .insert(header.generation, (header, scanned.digest));
        broken
    }
}

impl GenerationReport {
    fn new(path: &Path, named: Option<u32>) -> Self {
        Self {
            generation: named.unwrap_or(0),
            path: path.to_owned(),
            header: None,
            stream_bytes: 0,
            records: 0,
            commits: 0,
            segments_used: 0,
            segments_total: 0,
            torn_bytes: 0,
            digest: None,
            current: named.is_none(),
        }
    }
}

fn fill_entry(entry: &mut GenerationReport, scanned: &GenerationScan) {
    entry.header = Some(scanned.header);
    if entry.current {
        entry.generation = scanned.header.generation;
    }
    entry.stream_bytes = scanned.stream.len() as u64;
    entry.segments_used = scanned.home_segments;
    entry.segments_total = scanned.home_capacity;
    entry.torn_bytes = scanned.torn_bytes;
    entry.digest = Some(scanned.digest);
    let mut offset = 0;
    while let Ok(record) = read_record(&scanned.stream[offset..]) {
        entry.records += 1;
        if record.kind == kind::COMMIT {
            entry.commits += 1;
        }
        offset += record.encoded_len();
    }
}
