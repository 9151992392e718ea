//! Reading records from any position, across generations, checking the chain as it goes.

use super::directory::{path_of, read_image, LogDirectory};
use super::record::{read_record, Record};
use super::scan::{scan, ScanMode};
use super::verify::check_chain;
use super::{BaseName, GenerationHeader, LogPosition, MAX_GENERATION_BYTES};
use crate::error::LogError;
use crate::file::FileSystem;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A record read back from the log. Two records are equal when their positions, kinds and
/// payloads are: the file they were read from is provenance, not content.
#[derive(Clone, Debug)]
pub struct LogRecord {
    /// Where the record starts.
    pub position: LogPosition,
    /// Where the next record starts.
    pub end: LogPosition,
    /// The kind code.
    pub kind: u8,
    /// The payload.
    pub payload: Vec<u8>,
    /// The file the record was read from.
    pub path: Arc<PathBuf>,
}

impl PartialEq for LogRecord {
    fn eq(&self, other: &Self) -> bool {
        (self.position, self.end, self.kind, &self.payload)
            == (other.position, other.end, other.kind, &other.payload)
    }
}

impl Eq for LogRecord {}

impl LogRecord {
    /// Decodes the payload; `Ok(None)` for a kind this build does not know.
    pub fn decode(&self) -> Result<Option<Record>, LogError> {
        let raw = super::record::RawRecord {
            kind: self.kind,
            payload: &self.payload,
        };
        raw.decode().map_err(|problem| LogError::BadRecord {
            path: self.path.as_ref().clone(),
            position: self.position,
            reason: problem.to_string(),
        })
    }
}

/// Reads the log stream in a directory.
///
/// ```
/// use bluejet_engine::log::{Durability, Log, LogConfig, LogPosition, LogReader, Record};
/// let directory = tempfile::tempdir().unwrap();
/// let log = Log::open(directory.path(), LogConfig::default()).unwrap();
/// let mut transaction = log.transaction();
/// transaction.put("messages", b"id-1", b"Subject: hello");
/// transaction.commit(Durability::Durable).unwrap();
/// log.close().unwrap();
///
/// let reader = LogReader::open(directory.path(), LogConfig::default()).unwrap();
/// let puts = reader
///     .read_from(LogPosition::new(1, 0))
///     .map(|record| record.unwrap().decode().unwrap())
///     .filter(|record| matches!(record, Some(Record::Put { .. })))
///     .count();
/// assert_eq!(puts, 1);
/// ```
pub struct LogReader {
    fs: Arc<dyn FileSystem>,
    directory: PathBuf,
    base: BaseName,
    listing: LogDirectory,
}

impl LogReader {
    /// A reader of the stream configured by `config` in `directory`.
    pub fn open(directory: &Path, config: super::LogConfig) -> Result<Self, LogError> {
        let fs = config.file_system;
        let listing = LogDirectory::list(fs.as_ref(), directory, config.base_name)?;
        Ok(Self {
            fs,
            directory: directory.to_owned(),
            base: config.base_name,
            listing,
        })
    }

    /// The lowest generation present.
    pub fn first_generation(&self) -> Option<u32> {
        self.listing
            .closed
            .keys()
            .next()
            .copied()
            .or(self.current_generation())
    }

    fn current_generation(&self) -> Option<u32> {
        if !self.listing.current {
            return None;
        }
        let path = path_of(&self.directory, &self.base.current());
        let (_, image) = read_image(self.fs.as_ref(), &path, MAX_GENERATION_BYTES).ok()?;
        GenerationHeader::decode(&image)
            .ok()
            .map(|header| header.generation)
    }

    /// Every record from `start` (which must be the start of a record, or the end of the log)
    /// to the end of the log.
    pub fn read_from(&self, start: LogPosition) -> RecordIterator<'_> {
        RecordIterator {
            reader: self,
            next: start,
            stream: Vec::new(),
            offset: 0,
            loaded: None,
            path: Arc::new(PathBuf::new()),
            previous: None,
            current: self.current_generation(),
            failed: false,
        }
    }
}

/// Iterator over records; yields an error (and then stops) on damage.
pub struct RecordIterator<'a> {
    reader: &'a LogReader,
    next: LogPosition,
    stream: Vec<u8>,
    offset: usize,
    loaded: Option<u32>,
    path: Arc<PathBuf>,
    previous: Option<(GenerationHeader, u32)>,
    current: Option<u32>,
    failed: bool,
}

impl RecordIterator<'_> {
    /// Loads generation `generation`; `Ok(false)` when the log ends before it.
    fn load(&mut self, generation: u32) -> Result<bool, LogError> {
        let reader = self.reader;
        let (path, mode) = if Some(generation) == self.current {
            (
                path_of(&reader.directory, &reader.base.current()),
                ScanMode::Current,
            )
        } else if let Some(name) = reader.listing.closed.get(&generation) {
            (path_of(&reader.directory, name), ScanMode::Closed)
        } else {
            return self.missing(generation);
        };
        let (_, image) = read_image(reader.fs.as_ref(), &path, MAX_GENERATION_BYTES)?;
        let scanned = scan(&path, &image, mode)?;
        if scanned.header.generation != generation {
            return Err(LogError::NameMismatch {
                path,
                named: generation,
                inside: scanned.header.generation,
            });
        }
        if let Some((previous, digest)) = &self.previous {
            check_chain(&path, &scanned.header, previous, *digest)?;
        }
        self.previous = Some((scanned.header, scanned.digest));
        self.stream = scanned.stream;
        self.loaded = Some(generation);
        self.path = Arc::new(path);
        Ok(true)
    }

    fn missing(&self, generation: u32) -> Result<bool, LogError> {
        // An `E00.log` whose header cannot be read is not the end of the log: it is damage.
        if self.reader.listing.current && self.current.is_none() {
            let path = path_of(&self.reader.directory, &self.reader.base.current());
            let (_, image) = read_image(self.reader.fs.as_ref(), &path, MAX_GENERATION_BYTES)?;
            super::scan::read_header(&path, &image)?;
        }
        let later = self
            .reader
            .listing
            .closed
            .range(generation..)
            .next()
            .map(|(&g, _)| g);
        let later = later.or(self.current.filter(|&current| current > generation));
        match later {
            Some(next) => Err(LogError::MissingGenerations {
                directory: self.reader.directory.clone(),
                first: generation,
                last: next - 1,
                next,
            }),
            None => Ok(false),
        }
    }

    /// Moves to the start position inside the first generation loaded.
    fn seek(&mut self) -> Result<(), LogError> {
        let target = self.next.offset as usize;
        let mut offset = 0;
        while offset < target {
            let Ok(record) = read_record(&self.stream[offset..]) else {
                break;
            };
            offset += record.encoded_len();
        }
        if offset < target {
            // The generation's records end before the position (a checkpoint, say) that
            // was durably recorded inside it: bytes were lost.
            return Err(LogError::BadRecord {
                path: self.path.as_ref().clone(),
                position: LogPosition::in_stream(self.next.generation, offset),
                reason: format!(
                    "the records end here, before position {} which must be in the log",
                    self.next
                ),
            });
        }
        if offset != target {
            return Err(LogError::PositionNotFound {
                position: self.next,
                reason: "not the start of a record".into(),
            });
        }
        self.offset = offset;
        Ok(())
    }

    fn step(&mut self) -> Result<Option<LogRecord>, LogError> {
        loop {
            if self.loaded != Some(self.next.generation) {
                let first = self.loaded.is_none();
                if !self.load(self.next.generation)? {
                    return Ok(None);
                }
                if first {
                    self.seek()?
                } else {
                    self.offset = 0
                }
            }
            if self.offset < self.stream.len() {
                return self.take_record().map(Some);
            }
            // The current generation is the last; a closed one continues in the next.
            if Some(self.next.generation) == self.current {
                return Ok(None);
            }
            self.next = LogPosition::new(self.next.generation + 1, 0);
        }
    }

    fn take_record(&mut self) -> Result<LogRecord, LogError> {
        let generation = self.next.generation;
        let position = LogPosition::in_stream(generation, self.offset);
        // Scanning already framed every record of the stream; this cannot fail.
        let raw =
            read_record(&self.stream[self.offset..]).map_err(|problem| LogError::BadRecord {
                path: self.path.as_ref().clone(),
                position,
                reason: problem.to_string(),
            })?;
        self.offset += raw.encoded_len();
        let end = LogPosition::in_stream(generation, self.offset);
        self.next = end;
        Ok(LogRecord {
            position,
            end,
            kind: raw.kind,
            payload: raw.payload.to_vec(),
            path: Arc::clone(&self.path),
        })
    }
}

impl Iterator for RecordIterator<'_> {
    type Item = Result<LogRecord, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(record) => record.map(Ok),
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }
}
