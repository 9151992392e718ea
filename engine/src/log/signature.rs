//! The stream signature: which log stream a file belongs to.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Identifies one log stream: a random id and the stream's creation time. Every generation and
/// the checkpoint carry it, so a file from another stream is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamSignature {
    /// 16 random bytes.
    pub id: [u8; 16],
    /// Creation time in microseconds since the Unix epoch.
    pub created_micros: u64,
}

impl StreamSignature {
    /// A new signature with a random id, created now.
    pub fn generate() -> Self {
        Self {
            id: rand::random(),
            created_micros: now_micros(),
        }
    }
}

impl fmt::Display for StreamSignature {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.id {
            write!(formatter, "{byte:02x}")?;
        }
        write!(formatter, "@{}", self.created_micros)
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
