//! Stamping the rebuilt file's header: the repair count raised, and no log stream. The file
//! was closed cleanly by the database that built it, whose log is thrown away; with no log
//! stream named (a zero signature), the next open starts a new stream and adopts it, as for
//! any cleanly shut down database found without its log (its positions, left by the close,
//! are then replaced by the new stream's start).

use crate::db::{read_header_copies, DbError};
use crate::file::{FileSystem, OpenMode};
use crate::log::StreamSignature;
use crate::page::db_header::HEADER_OFFSETS;
use crate::page::DbState;
use std::path::Path;

/// Rewrites both header copies of the clean database file `path` with `repair_count` and no
/// log stream, and syncs the file.
pub(super) fn stamp(fs: &dyn FileSystem, path: &Path, repair_count: u64) -> Result<(), DbError> {
    let handle = fs
        .open(path, OpenMode::ReadWrite)
        .map_err(|error| DbError::io(path, "opening", error))?;
    let mut header = read_header_copies(&handle, path)?.header;
    assert_eq!(
        header.state,
        DbState::CleanShutdown,
        "the rebuilt database was closed"
    );
    header.repair_count = repair_count;
    header.log_signature = StreamSignature {
        id: [0; 16],
        created_micros: 0,
    };
    let base = header.sequence;
    for slot in 0..2u8 {
        header.sequence = base + 1 + u64::from(slot);
        handle
            .write_at(&header.encode(slot), HEADER_OFFSETS[usize::from(slot)])
            .map_err(|error| DbError::io(path, "writing the header", error))?;
    }
    handle
        .sync_data()
        .map_err(|error| DbError::io(path, "syncing", error))
}
