//! A diverged directory (`<instance>/diverged-<epoch>/`), its report and the divergent log
//! files the report names, each name checked before it becomes a path.

use super::error::DivergedError;
use crate::cluster::resync::{DivergenceReport, DivergentFile};
use crate::file_name;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::format::scan::ScanMode;
use bluejet_engine::{BaseName, LogFileName};
use std::path::{Path, PathBuf};

/// The report's file name in a diverged directory.
pub const REPORT: &str = "report.json";
/// The re-application outcome's file name in a diverged directory.
pub const REAPPLIED: &str = "reapplied.json";
/// The prefix of a diverged directory's name (`diverged-<epoch>`).
pub const PREFIX: &str = "diverged-";
/// The most files a report may name (a divergent tail is a few generations).
pub const MAX_REPORT_FILES: usize = 4096;

/// One divergent log file to decode, as the report names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFile {
    /// Its name in the directory.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// The generation the report gives it.
    pub generation: Option<u32>,
    /// `E00.log` (possibly torn) or a closed generation.
    pub mode: ScanMode,
    /// Bytes of its stream the new active holds too.
    pub shared_prefix_bytes: u64,
    /// A copy of a common generation (the report's `context`): all of it is the new
    /// active's, read for the transactions that begin in it.
    pub context: bool,
}

/// The epoch in a directory name `diverged-<epoch>`, if it is one.
///
/// ```
/// use bluejet_replication::diverged::files::epoch_of;
/// assert_eq!(epoch_of("diverged-12"), Some(12));
/// assert_eq!(epoch_of("diverged-1x"), None);
/// assert_eq!(epoch_of("logs"), None);
/// ```
pub fn epoch_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?;
    let plain = !digits.is_empty() && digits.len() <= 20;
    match plain && digits.bytes().all(|byte| byte.is_ascii_digit()) {
        true => digits.parse().ok(),
        false => None,
    }
}

/// Checks that `directory` is a readable `diverged-<epoch>` directory; returns the epoch.
pub fn check_directory(fs: &dyn FileSystem, directory: &Path) -> Result<u64, DivergedError> {
    let not = |reason: &str| DivergedError::NotDiverged {
        path: directory.to_owned(),
        reason: reason.to_owned(),
    };
    let name = directory
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| not("its name is not diverged-<epoch>"))?;
    let epoch = epoch_of(name).ok_or_else(|| not("its name is not diverged-<epoch>"))?;
    fs.list(directory)
        .map_err(|error| not(&format!("it cannot be listed: {error}")))?;
    Ok(epoch)
}

/// The `diverged-<epoch>` directories of an instance directory on this machine's file
/// system, newest epoch first.
pub fn diverged_directories(instance: &Path) -> Result<Vec<PathBuf>, DivergedError> {
    let io = |error| crate::error::ReplError::io(instance, "listing", error);
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(instance).map_err(io)? {
        let entry = entry.map_err(io)?;
        let epoch = entry.file_name().to_str().and_then(epoch_of);
        if let (Some(epoch), true) = (epoch, entry.file_type().map_err(io)?.is_dir()) {
            found.push((epoch, entry.path()));
        }
    }
    found.sort_by_key(|(epoch, _)| std::cmp::Reverse(*epoch));
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// Reads the directory's sealed `report.json`.
pub fn read_report(
    fs: &dyn FileSystem,
    directory: &Path,
) -> Result<DivergenceReport, DivergedError> {
    let path = directory.join(REPORT);
    let bad = |reason: String| DivergedError::BadReport {
        path: path.clone(),
        reason,
    };
    let report = match sealed::read::<DivergenceReport>(fs, &path) {
        Ok(Some(report)) => report,
        Ok(None) => return Err(bad("missing: no report of what diverged".into())),
        Err(error) => return Err(bad(format!("unreadable: {error}"))),
    };
    let named = report.files.len()
        + report.without_commits.len()
        + report.common.len()
        + report.context.len();
    if named > MAX_REPORT_FILES {
        return Err(bad(format!(
            "names {named} files, more than the {MAX_REPORT_FILES} a divergent tail can have"
        )));
    }
    Ok(report)
}

/// The divergent files the report names (those holding commits the new active never had),
/// after its context files (common generations lost transactions began in), in generation
/// order, `E00.log` (the newest) last.
pub fn divergent_files(
    directory: &Path,
    report: &DivergenceReport,
) -> Result<Vec<LogFile>, DivergedError> {
    let context = report.context.iter().map(|file| (file, true));
    let mut files = context
        .chain(report.files.iter().map(|file| (file, false)))
        .map(|(file, context)| {
            let mut file = log_file(directory, file)?;
            file.context = context;
            Ok(file)
        })
        .collect::<Result<Vec<_>, DivergedError>>()?;
    files.sort_by_key(|file| (file.mode == ScanMode::Current, file.generation));
    Ok(files)
}

/// One named file, its name checked: a plain name of a closed or current generation.
fn log_file(directory: &Path, file: &DivergentFile) -> Result<LogFile, DivergedError> {
    let report = directory.join(REPORT);
    let bad = |reason: String| DivergedError::BadReport {
        path: report.clone(),
        reason: format!("names {:?}: {reason}", file.name),
    };
    file_name::check_plain(&report, &file.name).map_err(|error| bad(error.to_string()))?;
    let base = file
        .name
        .get(..3)
        .and_then(|base| BaseName::new(base).ok())
        .ok_or_else(|| bad("not a log file name".into()))?;
    let mode = match base.classify(&file.name) {
        Some(LogFileName::Closed(generation)) if file.generation == Some(generation) => {
            ScanMode::Closed
        }
        Some(LogFileName::Closed(generation)) => {
            return Err(bad(format!(
                "the file of generation {generation}, reported as {:?}",
                file.generation
            )))
        }
        Some(LogFileName::Current) => ScanMode::Current,
        _ => return Err(bad("not a generation file".into())),
    };
    let path = file_name::path_in(directory, &file.name).map_err(|error| bad(error.to_string()))?;
    Ok(LogFile {
        name: file.name.clone(),
        path,
        generation: file.generation,
        mode,
        shared_prefix_bytes: file.shared_prefix_bytes,
        context: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_written_before_shared_prefix_bytes_still_reads() {
        let old = serde_json::json!({
            "epoch": 4,
            "common_generation": 17,
            "files": [{"name": "E0000000012.log", "generation": 18, "commits": 2,
                       "created_micros": 1}],
            "reason": "diverged after the common generation",
        });
        let report: DivergenceReport = serde_json::from_value(old).unwrap();
        assert_eq!(report.files[0].shared_prefix_bytes, 0);
        assert!(report.without_commits.is_empty() && report.common.is_empty());
        assert!(report.context.is_empty(), "a report written before context");
        let files = divergent_files(Path::new("/x/diverged-4"), &report).unwrap();
        assert_eq!(files[0].mode, ScanMode::Closed);
    }

    #[test]
    fn names_outside_the_directory_or_of_another_generation_are_refused() {
        for (name, generation) in [
            ("../E0000000012.log", Some(18)),
            ("E0000000012.log", Some(19)),
            ("E00.chk", None),
            ("report.json", None),
        ] {
            let report = DivergenceReport {
                epoch: 1,
                common_generation: None,
                files: vec![DivergentFile {
                    name: name.into(),
                    generation,
                    commits: 1,
                    created_micros: None,
                    shared_prefix_bytes: 0,
                }],
                without_commits: Vec::new(),
                common: Vec::new(),
                context: Vec::new(),
                reason: String::new(),
            };
            let refused = divergent_files(Path::new("/x/diverged-1"), &report);
            assert!(
                matches!(refused, Err(DivergedError::BadReport { .. })),
                "{name}"
            );
        }
    }
}
