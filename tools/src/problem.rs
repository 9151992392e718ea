//! Problems found while checking files: a message and, when known, the generation.

use bluejet_engine::format::log_verify::GenerationReport;
use bluejet_engine::LogError;
use serde::Serialize;
use std::path::Path;

/// One piece of damage or inconsistency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The generation it concerns, when one can be named.
    pub generation: Option<u32>,
    /// What is wrong; names the file where there is one.
    pub message: String,
}

impl Problem {
    /// A problem about `generation` (if known).
    pub fn new(generation: Option<u32>, message: impl Into<String>) -> Self {
        Self {
            generation,
            message: message.into(),
        }
    }

    /// A problem from an engine error; the generation comes from the error itself, or else
    /// from the generation whose file the error names (looked up in `generations`).
    pub fn from_error(error: &LogError, generations: &[GenerationReport]) -> Self {
        let generation = error_generation(error).or_else(|| {
            let path = error_path(error)?;
            generations
                .iter()
                .find(|entry| entry.path == path)
                .map(|entry| entry.generation)
                .filter(|&generation| generation != 0)
        });
        Self::new(generation, error.to_string())
    }

    /// One line of text.
    pub fn text(&self) -> String {
        match self.generation {
            Some(generation) => format!("problem in generation {generation}: {}", self.message),
            None => format!("problem: {}", self.message),
        }
    }
}

/// The generation an error names in its fields, if any.
fn error_generation(error: &LogError) -> Option<u32> {
    match error {
        LogError::ForeignGeneration { generation, .. }
        | LogError::TimelineMismatch { generation, .. }
        | LogError::BrokenChain { generation, .. }
        | LogError::BadSegment { generation, .. } => Some(*generation),
        LogError::NameMismatch { named, .. } => Some(*named),
        LogError::MissingGenerations { first, .. } => Some(*first),
        LogError::BadRecord { position, .. } => Some(position.generation),
        _ => None,
    }
}

/// The file an error names, if it names one.
fn error_path(error: &LogError) -> Option<&Path> {
    match error {
        LogError::Io { path, .. }
        | LogError::UnreadableHeader { path, .. }
        | LogError::WrongSize { path, .. }
        | LogError::BadCheckpoint { path, .. } => Some(path),
        _ => None,
    }
}

/// The verdict line of a check: exactly `integrity check passed`, or
/// `integrity check FAILED: N problem(s)`.
pub fn verdict_line(problems: usize) -> String {
    if problems == 0 {
        "integrity check passed".into()
    } else {
        format!("integrity check FAILED: {problems} problem(s)")
    }
}
