//! `control.json`: whether an operator suspended the copy, and why. The running service
//! reads it every round, so `bluejet repl suspend` from another process takes effect.

use crate::error::ReplError;
use crate::layout::ReplicaLayout;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::log::now_micros;
use serde::{Deserialize, Serialize};

/// The operator's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// Shipping and replay are paused.
    pub suspended: bool,
    /// The comment of the last suspend or resume.
    pub comment: String,
    /// When it was set (µs since the Unix epoch).
    pub since_micros: u64,
}

impl Control {
    /// Reads the control file (the default when there is none).
    pub fn read(fs: &dyn FileSystem, layout: &ReplicaLayout) -> Result<Self, ReplError> {
        Ok(sealed::read(fs, &layout.control())?.unwrap_or_default())
    }

    /// Sets suspended or resumed with `comment`; returns whether anything changed (doing
    /// either twice is not an error, the second time only updates the comment).
    pub fn set(
        fs: &dyn FileSystem,
        layout: &ReplicaLayout,
        suspended: bool,
        comment: &str,
    ) -> Result<bool, ReplError> {
        let previous = Self::read(fs, layout)?;
        let control = Self {
            suspended,
            comment: comment.to_owned(),
            since_micros: if previous.suspended == suspended {
                previous.since_micros
            } else {
                now_micros()
            },
        };
        sealed::write(fs, &layout.control(), &control)?;
        Ok(previous.suspended != suspended)
    }
}
