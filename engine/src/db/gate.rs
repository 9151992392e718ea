//! The commit gate: what a cluster puts in front of every commit, so that a node that lost
//! its lease (fencing) refuses commits, and a planned switchover can hold them.

use crate::log::LogPosition;
use std::fmt;
use std::sync::Arc;

/// Decides whether a commit may proceed. Called before a transaction's records are
/// appended to the log; it may block (a paused database) and returns `Err(reason)` to
/// refuse (a fenced node). Nothing of a refused transaction reaches the log.
pub trait CommitGate: Send + Sync {
    /// Admits one commit, or says why not.
    fn admit(&self) -> Result<(), String>;

    /// An admitted commit's records are in the log (or the commit failed before): it is no
    /// longer in flight. Called once after every `admit` that returned `Ok`.
    fn appended(&self) {}

    /// The commit ending at `end` is durable (or, with lazy durability, in the log): may it
    /// be acknowledged? A synchronous replica's gate waits here until the passive copy holds
    /// `end`. Called once more before `commit` returns `Ok`; `Err(reason)` makes the commit
    /// [`DbError::NotAcknowledged`](super::DbError::NotAcknowledged) (a node whose lease may
    /// have ended while the commit was on its way: the commit is in this node's log, but this
    /// node may no longer own the database).
    fn confirm(&self, end: LogPosition) -> Result<(), String> {
        let _ = end;
        Ok(())
    }
}

/// An optional gate, as kept in [`Options`](super::Options).
#[derive(Clone, Default)]
pub struct Gate(pub Option<Arc<dyn CommitGate>>);

impl Gate {
    /// A gate that admits everything.
    pub fn open() -> Self {
        Self(None)
    }

    /// Admits a commit through the gate, if there is one.
    pub fn admit(&self) -> Result<(), String> {
        match &self.0 {
            Some(gate) => gate.admit(),
            None => Ok(()),
        }
    }

    /// Tells the gate an admitted commit is appended (or failed).
    pub fn appended(&self) {
        if let Some(gate) = &self.0 {
            gate.appended();
        }
    }

    /// Asks the gate whether a durable commit may be acknowledged, if there is one.
    pub fn confirm(&self, end: LogPosition) -> Result<(), String> {
        match &self.0 {
            Some(gate) => gate.confirm(end),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Gate(set)"
        } else {
            "Gate(open)"
        })
    }
}
