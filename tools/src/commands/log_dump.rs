//! `bluejet log dump PATH` (alias `bluejet ml PATH`): a generation file or a whole directory.

use crate::exit::{ToolError, Verdict};
use bluejet_engine::log::BaseName;
use std::path::Path;

/// Dumps `path`: a directory is verified as a whole stream, a file is dumped as one
/// generation. `base` is the stream's base name (for a file, the default comes from its
/// name).
pub fn run(
    path: &Path,
    base: Option<BaseName>,
    list_records: bool,
    json: bool,
) -> Result<Verdict, ToolError> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| ToolError::Failure(format!("{}: {error}", path.display())))?;
    if metadata.is_dir() {
        super::log_directory::run(path, base.unwrap_or_default(), list_records, json)
    } else {
        super::log_file::run(path, base, list_records, json)
    }
}
