//! Exit codes and the error type every command returns.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | all good |
//! | 1 | damage or inconsistency found in the files |
//! | 2 | bad usage |
//! | 3 | an I/O or other error stopped the command |

use bluejet_engine::{DbError, LogError};
use bluejet_replication::ReplError;
use std::fmt;

/// Everything checked out.
pub const SUCCESS: u8 = 0;
/// Damage or inconsistency was found.
pub const DAMAGE: u8 = 1;
/// The command line was wrong.
pub const USAGE: u8 = 2;
/// An I/O or other error stopped the command.
pub const FAILURE: u8 = 3;

/// Why a command stopped without a complete report.
#[derive(Debug)]
pub enum ToolError {
    /// Damage or inconsistency in the files (exit 1).
    Damage(String),
    /// Bad usage the parser could not catch (exit 2).
    Usage(String),
    /// An I/O or other error (exit 3).
    Failure(String),
}

impl ToolError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ToolError::Damage(_) => DAMAGE,
            ToolError::Usage(_) => USAGE,
            ToolError::Failure(_) => FAILURE,
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::Damage(message)
            | ToolError::Usage(message)
            | ToolError::Failure(message) => formatter.write_str(message),
        }
    }
}

impl From<LogError> for ToolError {
    fn from(error: LogError) -> Self {
        if error.is_damage() {
            ToolError::Damage(error.to_string())
        } else {
            ToolError::Failure(error.to_string())
        }
    }
}

impl From<DbError> for ToolError {
    fn from(error: DbError) -> Self {
        match error {
            // A table the user named that is not there is a wrong argument, not damage.
            DbError::TableNotFound(_) | DbError::InvalidOptions(_) => {
                ToolError::Usage(error.to_string())
            }
            error if error.is_damage() => ToolError::Damage(error.to_string()),
            error => ToolError::Failure(error.to_string()),
        }
    }
}

impl From<ReplError> for ToolError {
    fn from(error: ReplError) -> Self {
        match error {
            ReplError::Db(error) => error.into(),
            ReplError::Log(error) => error.into(),
            // A damaged replica file, a generation unlike the active's, content that differs.
            ReplError::BadReplicaFile { .. }
            | ReplError::BadFileName(_)
            | ReplError::DifferentContent { .. }
            | ReplError::Mismatch(_) => ToolError::Damage(error.to_string()),
            // Not a replica, locked, refused, timed out, I/O.
            error => ToolError::Failure(error.to_string()),
        }
    }
}

impl From<std::io::Error> for ToolError {
    fn from(error: std::io::Error) -> Self {
        ToolError::Failure(error.to_string())
    }
}

/// What a command that ran to the end found: clean (exit 0) or not (exit 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong.
    Clean,
    /// Damage or inconsistency was reported.
    Damaged,
}

impl Verdict {
    /// `Clean` when `problems` is 0.
    pub fn from_problems(problems: usize) -> Self {
        if problems == 0 {
            Verdict::Clean
        } else {
            Verdict::Damaged
        }
    }

    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Clean => SUCCESS,
            Verdict::Damaged => DAMAGE,
        }
    }
}
