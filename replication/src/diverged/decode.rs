//! The divergent files' record streams decoded into the transactions the new active never
//! had, in commit order.
//!
//! A transaction is its Begin, its operations (Put, Delete, CreateTable, DropTable, or a
//! large value's PutChunk pieces, assembled here) and its Commit or Rollback, all under one
//! id; records of concurrent transactions may interleave, and a Start record ends every
//! transaction still open. Only committed transactions count, and of the file that
//! continues the new active's stream, only those whose Commit lies after the shared prefix
//! (the others the new active has). Kinds this reader does not use are skipped by their
//! length. Every length read is bounded; a file that cannot be read (missing, truncated,
//! damaged, of another log stream) is listed as unreadable with the reason, never a panic.

use super::error::DivergedError;
use super::files::{self, LogFile};
use crate::cluster::resync::DivergenceReport;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::format::record::{read_record, Record};
use bluejet_engine::format::scan::{scan, GenerationScan};
use bluejet_engine::log::{StreamSignature, MAX_GENERATION_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest value assembled from pieces (the engine's largest value).
pub const MAX_VALUE_BYTES: u64 = 256 << 20;
/// The most value bytes a directory's transactions may hold in all.
pub const MAX_DECODED_BYTES: u64 = 1 << 30;

/// One operation of a divergent transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `key` in `table` set to `value`.
    Put {
        /// The table.
        table: String,
        /// The key.
        key: Vec<u8>,
        /// The whole value (assembled when it came in pieces).
        value: Vec<u8>,
    },
    /// `key` removed from `table`.
    Delete {
        /// The table.
        table: String,
        /// The key.
        key: Vec<u8>,
    },
    /// `table` created.
    CreateTable {
        /// The table.
        table: String,
    },
    /// `table` dropped.
    DropTable {
        /// The table.
        table: String,
    },
}

impl Operation {
    /// The table the operation concerns.
    pub fn table(&self) -> &str {
        match self {
            Operation::Put { table, .. }
            | Operation::Delete { table, .. }
            | Operation::CreateTable { table }
            | Operation::DropTable { table } => table,
        }
    }

    /// Its kind in words: `put`, `delete`, `create-table`, `drop-table`.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Put { .. } => "put",
            Operation::Delete { .. } => "delete",
            Operation::CreateTable { .. } => "create-table",
            Operation::DropTable { .. } => "drop-table",
        }
    }
}

/// A transaction committed on the old active after the common point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// Its id in the old active's log.
    pub id: u64,
    /// Its commit time (µs since the Unix epoch).
    pub commit_micros: u64,
    /// The generation holding its Commit.
    pub generation: u32,
    /// The file holding its Commit.
    pub file: String,
    /// Its operations, in log order.
    pub operations: Vec<Operation>,
}

/// A file the report names that cannot be read, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// The file's name in the directory.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A diverged directory decoded.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// The directory.
    pub directory: PathBuf,
    /// Its epoch (from its name).
    pub epoch: u64,
    /// Its report.
    pub report: DivergenceReport,
    /// The committed transactions the new active never had, in commit order.
    pub transactions: Vec<Transaction>,
    /// Files named by the report that could not be read (nothing is re-applied then).
    pub unreadable: Vec<Unreadable>,
    /// Commits whose Begin lies before these files and their context (in a common
    /// generation not kept): their operations cannot be known from here.
    pub incomplete: u64,
}

/// Decodes the diverged directory `directory` (see the module documentation).
pub fn decode_directory(fs: &dyn FileSystem, directory: &Path) -> Result<Decoded, DivergedError> {
    let epoch = files::check_directory(fs, directory)?;
    let report = files::read_report(fs, directory)?;
    let mut state = Decoder::default();
    let mut unreadable = Vec::new();
    for file in files::divergent_files(directory, &report)? {
        let result = state.file(fs, &file);
        if result.is_err() && file.context {
            // Only Begins were wanted from it: their Commits count as incomplete.
            state.open.clear();
        } else if let Err(reason) = result {
            unreadable.push(Unreadable {
                name: file.name.clone(),
                reason,
            });
            // A transaction cannot be proved whole across a file that cannot be read.
            state.open.clear();
        }
        if state.held > MAX_DECODED_BYTES {
            return Err(DivergedError::TooLarge {
                path: file.path,
                reason: format!("the transactions hold more than {MAX_DECODED_BYTES} bytes"),
            });
        }
    }
    Ok(Decoded {
        directory: directory.to_owned(),
        epoch,
        report,
        transactions: state.committed,
        unreadable,
        incomplete: state.incomplete,
    })
}

/// A transaction being read.
#[derive(Debug, Default)]
struct Pending {
    operations: Vec<Operation>,
    /// A large value being assembled: table, key, total, bytes so far.
    chunk: Option<(String, Vec<u8>, u64, Vec<u8>)>,
}

/// What the decoder carries from file to file.
#[derive(Debug, Default)]
struct Decoder {
    open: BTreeMap<u64, Pending>,
    committed: Vec<Transaction>,
    incomplete: u64,
    held: u64,
    signature: Option<StreamSignature>,
}

/// Where a record is: the file, its generation, and whether the new active holds it.
struct Place<'a> {
    file: &'a LogFile,
    generation: u32,
    shared: bool,
}

impl Decoder {
    /// Reads one file; `Err` says why it cannot be (the transactions before stay).
    fn file(&mut self, fs: &dyn FileSystem, file: &LogFile) -> Result<(), String> {
        let scanned = self.scan(fs, file)?;
        let stream = &scanned.stream;
        // A context file is the new active's all through.
        let prefix = match file.context {
            true => stream.len() as u64,
            false => file.shared_prefix_bytes,
        };
        if prefix > stream.len() as u64 {
            return Err(format!(
                "the report says {prefix} bytes are shared, the stream holds {}",
                stream.len()
            ));
        }
        let mut offset = 0;
        while offset < stream.len() {
            let raw = read_record(&stream[offset..])
                .map_err(|problem| format!("record at stream offset {offset}: {problem}"))?;
            let place = Place {
                file,
                generation: scanned.header.generation,
                shared: (offset as u64) < prefix,
            };
            match raw.decode() {
                Ok(Some(record)) => self
                    .record(record, &place)
                    .map_err(|reason| format!("record at stream offset {offset}: {reason}"))?,
                Ok(None) => {}
                Err(problem) => return Err(format!("record at stream offset {offset}: {problem}")),
            }
            offset += raw.encoded_len();
        }
        Ok(())
    }

    /// Reads and scans the file, checking it is the generation the report names and of the
    /// same log stream as the others.
    fn scan(&mut self, fs: &dyn FileSystem, file: &LogFile) -> Result<GenerationScan, String> {
        let image = sealed::read_file(fs, &file.path, MAX_GENERATION_BYTES)
            .map_err(|error| error.to_string())?;
        let scanned = scan(&file.path, &image, file.mode).map_err(|error| error.to_string())?;
        let header = &scanned.header;
        if let Some(expected) = file.generation.filter(|&g| g != header.generation) {
            return Err(format!(
                "holds generation {}, the report says {expected}",
                header.generation
            ));
        }
        match self.signature {
            Some(signature) if signature != header.signature => Err(format!(
                "of another log stream ({}, the others are {signature})",
                header.signature
            )),
            _ => {
                self.signature = Some(header.signature);
                Ok(scanned)
            }
        }
    }

    /// Applies one record to the open transactions.
    fn record(&mut self, record: Record, place: &Place) -> Result<(), String> {
        match record {
            Record::Begin { transaction } => {
                self.open.insert(transaction, Pending::default());
            }
            Record::Commit {
                transaction,
                time_micros,
            } => self.commit(transaction, time_micros, place),
            Record::Rollback { transaction } => {
                self.open.remove(&transaction);
            }
            Record::Start { .. } => self.open.clear(),
            Record::Put {
                transaction,
                table,
                key,
                value,
            } => self.operation(transaction, Operation::Put { table, key, value }),
            Record::Delete {
                transaction,
                table,
                key,
            } => self.operation(transaction, Operation::Delete { table, key }),
            Record::CreateTable { transaction, table } => {
                self.operation(transaction, Operation::CreateTable { table })
            }
            Record::DropTable { transaction, table } => {
                self.operation(transaction, Operation::DropTable { table })
            }
            Record::PutChunk {
                transaction,
                table,
                key,
                offset,
                total,
                bytes,
            } => return self.chunk(transaction, (table, key), (offset, total), bytes),
            // Stop, and kinds this reader does not use.
            _ => {}
        }
        Ok(())
    }

    fn commit(&mut self, transaction: u64, time_micros: u64, place: &Place) {
        let Some(pending) = self.open.remove(&transaction) else {
            self.incomplete += u64::from(!place.shared);
            return;
        };
        if place.shared {
            return;
        }
        self.committed.push(Transaction {
            id: transaction,
            commit_micros: time_micros,
            generation: place.generation,
            file: place.file.name.clone(),
            operations: pending.operations,
        });
    }

    fn operation(&mut self, transaction: u64, operation: Operation) {
        if let Operation::Put { value, .. } = &operation {
            self.held += value.len() as u64;
        }
        // Without its Begin (in an earlier generation), the transaction cannot be known.
        if let Some(pending) = self.open.get_mut(&transaction) {
            pending.operations.push(operation);
        }
    }

    /// One piece of a large value: pieces of one key follow each other in offset order,
    /// and the put takes effect with the piece that reaches `total`.
    fn chunk(
        &mut self,
        transaction: u64,
        (table, key): (String, Vec<u8>),
        (offset, total): (u64, u64),
        bytes: Vec<u8>,
    ) -> Result<(), String> {
        let Some(pending) = self.open.get_mut(&transaction) else {
            return Ok(());
        };
        if total > MAX_VALUE_BYTES {
            return Err(format!("a value of {total} bytes, above {MAX_VALUE_BYTES}"));
        }
        let mut assembled = match pending.chunk.take() {
            None if offset == 0 => (table, key, total, Vec::new()),
            Some(chunk) if chunk.0 == table && chunk.1 == key && chunk.2 == total => chunk,
            _ => return Err(format!("a value piece at offset {offset} out of order")),
        };
        let length = assembled.3.len() as u64;
        if offset != length || length + bytes.len() as u64 > total {
            return Err(format!(
                "a value piece at offset {offset} of {} bytes, after {length} of {total}",
                bytes.len()
            ));
        }
        assembled.3.extend_from_slice(&bytes);
        self.held += bytes.len() as u64;
        if assembled.3.len() as u64 == total {
            let (table, key, _, value) = assembled;
            pending
                .operations
                .push(Operation::Put { table, key, value });
        } else {
            pending.chunk = Some(assembled);
        }
        Ok(())
    }
}
