//! A range of a log stream for `log dump --from/--to/--table`: checking the positions the
//! user gave against the generations present, and reading the records between them.

use crate::exit::ToolError;
use crate::records::RecordRow;
use bluejet_engine::file::OsFileSystem;
use bluejet_engine::format::log_directory::{path_of, read_image, LogDirectory};
use bluejet_engine::format::log_reader::LogReader;
use bluejet_engine::format::record::read_record;
use bluejet_engine::format::record::{kind, RECORD_HEADER_BYTES};
use bluejet_engine::format::scan::{read_header, scan, ScanMode};
use bluejet_engine::log::MAX_GENERATION_BYTES;
use bluejet_engine::LogError;
use bluejet_engine::{BaseName, LogConfig, LogPosition};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The generations of a stream present in its directory, read without any lock.
pub struct Present {
    directory: PathBuf,
    base: BaseName,
    listing: LogDirectory,
    current: Option<u32>,
}

impl Present {
    /// Lists the stream `base` in `directory`; none of its generations is an error.
    pub fn list(directory: &Path, base: BaseName) -> Result<Self, ToolError> {
        let listing = LogDirectory::list(&OsFileSystem, directory, base)?;
        let current = match listing.current {
            true => {
                let path = path_of(directory, &base.current());
                let (_, image) = read_image(&OsFileSystem, &path, MAX_GENERATION_BYTES)?;
                Some(read_header(&path, &image)?.generation)
            }
            false => None,
        };
        if listing.closed.is_empty() && current.is_none() {
            return Err(ToolError::Failure(format!(
                "{}: no generation of log stream {} found",
                directory.display(),
                base.as_str()
            )));
        }
        Ok(Self {
            directory: directory.to_owned(),
            base,
            listing,
            current,
        })
    }

    /// The lowest generation present.
    pub fn first(&self) -> u32 {
        let closed = self.listing.closed.keys().next().copied();
        closed.or(self.current).unwrap_or(1)
    }

    /// The highest generation present.
    fn last(&self) -> u32 {
        let closed = self.listing.closed.keys().next_back().copied();
        self.current.max(closed).unwrap_or(1)
    }

    /// The file of `generation` and how to scan it; `None` when it is not present.
    fn file(&self, generation: u32) -> Option<(PathBuf, ScanMode)> {
        if Some(generation) == self.current {
            let path = path_of(&self.directory, &self.base.current());
            return Some((path, ScanMode::Current));
        }
        let name = self.listing.closed.get(&generation)?;
        Some((path_of(&self.directory, name), ScanMode::Closed))
    }

    /// The end of the log: after the last record of the last generation.
    pub fn end(&self) -> Result<LogPosition, ToolError> {
        let last = self.last();
        Ok(LogPosition::new(last, self.records_end(last)?))
    }

    /// Where the records of `generation` (present) end.
    fn records_end(&self, generation: u32) -> Result<u32, ToolError> {
        let (path, mode) = self
            .file(generation)
            .ok_or_else(|| self.absent(generation))?;
        let (_, image) = read_image(&OsFileSystem, &path, MAX_GENERATION_BYTES)?;
        Ok(u32::try_from(scan(&path, &image, mode)?.stream.len())
            .expect("a generation offset fits u32: generations are at most 64 MiB"))
    }

    fn absent(&self, generation: u32) -> ToolError {
        ToolError::Usage(format!(
            "generation {generation} does not exist in log stream {} in {} (it holds \
             generations {}..={})",
            self.base.as_str(),
            self.directory.display(),
            self.first(),
            self.last()
        ))
    }

    /// Checks that `position`, given as `option`, is the start of a record or the end of
    /// its generation's records; a usage error naming the generation says why not.
    pub fn check(&self, option: &str, position: LogPosition) -> Result<(), ToolError> {
        let generation = position.generation;
        let (path, mode) = self.file(generation).ok_or_else(|| {
            let absent = self.absent(generation);
            ToolError::Usage(format!("{option} {position}: {absent}"))
        })?;
        let (_, image) = read_image(&OsFileSystem, &path, MAX_GENERATION_BYTES)?;
        let stream = scan(&path, &image, mode)?.stream;
        let target = position.offset as usize;
        if target > stream.len() {
            return Err(ToolError::Usage(format!(
                "{option} {position}: beyond the end of generation {generation}, whose records \
                 end at {}",
                LogPosition::new(
                    generation,
                    u32::try_from(stream.len())
                        .expect("a generation offset fits u32: generations are at most 64 MiB")
                )
            )));
        }
        let mut offset = 0;
        while offset < target {
            // Scanning framed every record already.
            let length = read_record(&stream[offset..])
                .map_err(|problem| LogError::BadRecord {
                    path: path.clone(),
                    position: LogPosition::new(
                        generation,
                        u32::try_from(offset)
                            .expect("a generation offset fits u32: generations are at most 64 MiB"),
                    ),
                    reason: problem.to_string(),
                })?
                .encoded_len();
            if offset + length > target {
                return Err(ToolError::Usage(format!(
                    "{option} {position}: inside the record at {} of generation {generation} \
                     (the next record starts at {})",
                    LogPosition::new(
                        generation,
                        u32::try_from(offset)
                            .expect("a generation offset fits u32: generations are at most 64 MiB")
                    ),
                    LogPosition::new(
                        generation,
                        u32::try_from(offset + length)
                            .expect("a generation offset fits u32: generations are at most 64 MiB")
                    )
                )));
            }
            offset += length;
        }
        Ok(())
    }
}

/// Which records a dump keeps: all, or those touching one table and the ends (commit or
/// rollback) of the transactions that touched it.
#[derive(Debug, Default)]
pub struct Filter {
    table: Option<String>,
    touched: HashSet<u64>,
}

impl Filter {
    /// A filter on `table` (`None`: keeps everything).
    pub fn new(table: Option<String>) -> Self {
        Self {
            table,
            touched: HashSet::new(),
        }
    }

    /// Whether to keep `row`; remembers the transactions that touch the table.
    pub fn keep(&mut self, row: &RecordRow) -> bool {
        let Some(table) = &self.table else {
            return true;
        };
        if row.table.as_ref() == Some(table) {
            if let Some(transaction) = row.transaction {
                self.touched.insert(transaction);
            }
            return true;
        }
        let ends = matches!(row.kind, kind::COMMIT | kind::ROLLBACK);
        match (ends, row.transaction) {
            (true, Some(transaction)) => self.touched.remove(&transaction),
            _ => false,
        }
    }
}

/// Reads the records of the stream that start at or after `*next` and before `to`, passing
/// each to `each`; `*next` follows, so that after an error (or at the end of the log) it
/// says where to go on. Returns whether `to` was reached.
pub fn read(
    directory: &Path,
    base: BaseName,
    next: &mut LogPosition,
    to: Option<LogPosition>,
    mut each: impl FnMut(RecordRow),
) -> Result<bool, LogError> {
    if to.is_some_and(|to| *next >= to) {
        return Ok(true);
    }
    let config = LogConfig {
        base_name: base,
        ..LogConfig::default()
    };
    let reader = LogReader::open(directory, config)?;
    for item in reader.read_from(*next) {
        let record = item?;
        if to.is_some_and(|to| record.position >= to) {
            return Ok(true);
        }
        let decoded = record.decode().map_err(|error| error.to_string());
        let encoded = RECORD_HEADER_BYTES + record.payload.len();
        each(RecordRow::new(
            record.position,
            record.kind,
            encoded,
            decoded,
        ));
        *next = record.end;
    }
    Ok(false)
}
