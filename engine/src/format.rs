//! The on-disk formats, decoded: what `bluejet` (the inspection tool), the fuzz targets and
//! the format tests read, one module per structure. `docs/design.md` describes every one
//! byte by byte.
//!
//! An application does not need these: it opens a [`Database`](crate::Database). They are
//! for reading a database or a log directory offline, as the tool does, and for checking
//! that every decoder answers damaged input with a typed error rather than a panic.
//!
//! ```
//! use bluejet_engine::format::generation_header::{GenerationHeader, HEADER_BYTES};
//! // A zeroed header is not a log file: the decoder says why rather than panicking.
//! assert!(GenerationHeader::decode(&[0u8; HEADER_BYTES]).is_err());
//! ```

/// The database file's pages: the common page header, page types and checksums.
pub mod page {
    pub use crate::page::format::*;
}

/// The database header (page 0 and its shadow copy): state, positions and backups.
pub mod db_header {
    pub use crate::page::db_header::*;
}

/// Reading pages of a database file through its cache, validated as the engine reads them.
pub mod page_store {
    pub use crate::page::store::*;
}

/// B+tree nodes: branch and leaf pages, their entries and value references.
pub mod node {
    pub use crate::btree::view::*;
}

/// Walking a B+tree's leaves in key order, as a reader without a transaction does.
pub mod cursor {
    pub use crate::btree::cursor::*;
}

/// Long values: values stored on chains of their own pages.
pub mod long_value {
    pub use crate::value::long::*;
}

/// The content checksum: the stable hash of an entry, and the proof record a log carries
/// (each table's entry count and checksum, or the totals).
pub mod content {
    pub use crate::content::{
        entry_hash, ContentProof, EntryHasher, MAX_LISTED_BYTES, PROOF_FORMAT,
    };
}

/// The header of a log generation file (its first page).
pub mod generation_header {
    pub use crate::log::header::*;
}

/// Segments: the checksummed, fixed-size units a generation is written in.
pub mod segment {
    pub use crate::log::segment::*;
}

/// Log records: their framing and payloads.
pub mod record {
    pub use crate::log::record::*;
}

/// Scanning a generation file: its header, segments and records, and where its tail ends.
pub mod scan {
    pub use crate::log::scan::*;
}

/// Reading a log's records in order across its generations.
pub mod log_reader {
    pub use crate::log::{LogReader, LogRecord, RecordIterator};
}

/// The checkpoint file and its copies.
pub mod checkpoint {
    pub use crate::log::checkpoint::*;
}

/// A log directory's generation files, listed and read.
pub mod log_directory {
    pub use crate::log::directory::*;
}

/// A generation's bytes as they would be once closed.
pub mod log_image {
    pub use crate::log::image::*;
}

/// Checking a log directory's generations: each on its own and as a chain.
pub mod log_verify {
    pub use crate::log::verify::*;
}

/// Offline readers of a closed database file: page checksums, tree integrity and space use.
pub mod inspect {
    pub use crate::inspect::*;
}
