//! A failover's measurement, persisted before the witness is asked.
//!
//! Taking the witness is the commit point of a failover; opening the database and
//! reporting the loss come after. A node that crashes (or whose activation fails) in
//! between is the owner when it restarts, and opens its copy with nothing in memory of what
//! the failover lost: without this file it would report a lossless move, and the dumpster
//! would never resubmit the loss window (the cluster simulation finds such seeds).
//!
//! `INSTANCE/failover.json` (a sealed file, see `docs/design.md`) holds the loss and the
//! comment the acquisition wrote into the new epoch's witness file, which carries a nonce:
//! the measurement belongs to the epoch whose comment matches, and to no other (a later
//! move to this node never reports a stale loss). It is removed once the report is in the
//! event log and the node's identity as a copy is retired.

use super::loss::Loss;
use crate::error::ReplError;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use bluejet_engine::log::now_micros;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a failover measured before asking the witness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measured {
    /// The old owner.
    pub from: String,
    /// The epoch taken over.
    pub from_epoch: u64,
    /// The comment of the acquisition (with its nonce).
    pub comment: String,
    /// Generations lost (first, last).
    pub lost: Option<(u32, u32)>,
    /// The loss window (µs, the old active's clock).
    pub window: Option<(u64, u64)>,
    /// The old active's `E00.log` could not be read.
    pub current_unread: bool,
    /// Block mode: where the loss starts (the copy held everything before).
    #[serde(default)]
    pub lost_from: Option<bluejet_engine::LogPosition>,
    /// An operator forced the mount past the dial.
    pub forced: bool,
    /// Why the failover lost no acknowledged commit after all (synchronous commit).
    #[serde(default)]
    pub proof: Option<String>,
}

impl Measured {
    /// The measurement of a failover from `from` at `from_epoch`; the comment carries
    /// `nonce` so that it names one acquisition.
    pub fn new(from: &str, from_epoch: u64, loss: &Loss, forced: bool, nonce: u64) -> Self {
        Self {
            from: from.to_owned(),
            from_epoch,
            comment: format!("failover from {from} (measurement {nonce:016x})"),
            lost: loss.lost,
            window: loss.window,
            current_unread: loss.current_unread,
            lost_from: loss.from,
            forced,
            proof: None,
        }
    }

    /// Whether a witness comment was written by a failover's acquisition (one that made a
    /// measurement first).
    pub fn names_failover(comment: &str) -> bool {
        comment.starts_with("failover from ") && comment.contains(" (measurement ")
    }

    /// This measurement, proven lossless by `proof`.
    pub fn proven_lossless(&self, proof: &str) -> Self {
        Self {
            lost: None,
            window: None,
            current_unread: false,
            lost_from: None,
            proof: Some(proof.to_owned()),
            ..self.clone()
        }
    }

    /// The loss measured.
    pub fn loss(&self) -> Loss {
        Loss {
            lost: self.lost,
            window: self.window,
            current_unread: self.current_unread,
            from: self.lost_from,
        }
    }
}

/// The file in the instance directory `instance`.
pub fn path(instance: &Path) -> PathBuf {
    instance.join("failover.json")
}

/// Writes the measurement durably (before the witness is asked). Something else under its
/// name (a directory, a FIFO: found by an adversarial test, it blocked every failover) is
/// moved aside once, to `failover.json.aside-<µs>`, and the write tried again.
pub fn write(fs: &dyn FileSystem, instance: &Path, measured: &Measured) -> Result<(), ReplError> {
    let path = path(instance);
    let Err(error) = sealed::write(fs, &path, measured) else {
        return Ok(());
    };
    let aside = instance.join(format!("failover.json.aside-{}", now_micros()));
    if fs.rename(&path, &aside).is_err() {
        return Err(error);
    }
    sealed::write(fs, &path, measured)
}

/// The measurement of the failover that created the epoch whose witness comment is
/// `comment`, if one was persisted here.
pub fn read_for(
    fs: &dyn FileSystem,
    instance: &Path,
    comment: &str,
) -> Result<Option<Measured>, ReplError> {
    let measured: Option<Measured> = sealed::read(fs, &path(instance))?;
    Ok(measured.filter(|measured| measured.comment == comment))
}

/// Removes the file, if any, and syncs the directory.
pub fn remove(fs: &dyn FileSystem, instance: &Path) -> Result<(), ReplError> {
    let path = path(instance);
    match fs.remove(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(ReplError::io(&path, "removing", error)),
    }
    fs.sync_directory(instance)
        .map_err(|error| ReplError::io(instance, "syncing", error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluejet_engine::file::OsFileSystem;

    fn measurement() -> Measured {
        let loss = Loss {
            lost: Some((3, 4)),
            window: Some((10, 20)),
            current_unread: false,
            from: None,
        };
        Measured::new("a", 2, &loss, false, 1)
    }

    /// A directory or a FIFO under the file's name neither blocks a failover (the write
    /// moves it aside) nor hangs a reader (an error, at once).
    #[test]
    fn junk_under_the_name_is_moved_aside_and_never_hangs_a_reader() {
        let instance = tempfile::tempdir().unwrap();
        let measured = measurement();
        std::fs::create_dir(path(instance.path())).unwrap();
        write(&OsFileSystem, instance.path(), &measured).unwrap();
        let read = read_for(&OsFileSystem, instance.path(), &measured.comment).unwrap();
        assert_eq!(read, Some(measured.clone()));
        remove(&OsFileSystem, instance.path()).unwrap();

        let fifo = path(instance.path());
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|status| status.success()) {
            return; // no mkfifo here
        }
        let started = std::time::Instant::now();
        assert!(read_for(&OsFileSystem, instance.path(), &measured.comment).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        write(&OsFileSystem, instance.path(), &measured).unwrap();
        let read = read_for(&OsFileSystem, instance.path(), &measured.comment).unwrap();
        assert_eq!(read, Some(measured));
    }
}
