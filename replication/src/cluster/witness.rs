//! The file-share witness: the third vote, holding the cluster's epoch, its owner (the one
//! node that may be active) and the owner's lease.
//!
//! `witness/witness.json` (sealed JSON) is changed only under `witness/witness.lock`, a file
//! created exclusively (`O_EXCL`, atomic on local and network file systems) and removed
//! afterwards; a lock older than `STALE_LOCK` is taken to belong to a dead process and
//! broken. Every change that gives the database to a node increments the epoch, which is
//! also the new timeline of its log: epochs fence, since a node that sees a newer epoch than
//! its own knows it is no longer active.

use crate::error::ReplError;
use crate::sealed;
use bluejet_engine::file::{FileSystem, OpenMode};
use bluejet_engine::log::{now_micros, LogPosition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A lock file older than this is broken (by default).
const STALE_LOCK: Duration = Duration::from_secs(10);
/// Attempts to take the lock before giving up (a few milliseconds apart).
const LOCK_ATTEMPTS: u32 = 200;
/// A lock file: the µs time it was taken, then 16 random bytes.
const LOCK_BYTES: usize = 24;

/// 16 random bytes: a lock's token.
fn rand_token() -> [u8; 16] {
    bluejet_engine::log::StreamSignature::generate().id
}

/// The witness's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessRecord {
    /// Incremented at every change of owner.
    pub epoch: u64,
    /// The node that may be active.
    pub owner: String,
    /// The owner's lease ends here (µs since the Unix epoch).
    pub lease_until_micros: u64,
    /// Last change (µs).
    pub updated_micros: u64,
    /// Why the owner last changed.
    pub comment: String,
    /// The owner's durable log end at its last renewal: what a failover measures its loss
    /// against when the owner's heartbeats cannot be read.
    #[serde(default)]
    pub owner_end: Option<LogPosition>,
}

/// Why the witness refused.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// Another node holds a lease that has not expired (or a newer epoch).
    #[error("the witness is held by {} (epoch {}) until {}", .0.owner, .0.epoch, .0.lease_until_micros)]
    Held(WitnessRecord),
    /// The witness could not be read or written.
    #[error(transparent)]
    Unreachable(#[from] ReplError),
}

/// A lock file seen without a whole stamp: when first and last seen, and its content.
type UnreadableLock = (std::time::Instant, std::time::Instant, Vec<u8>);

/// The witness directory, reached through a file system (a share).
#[derive(Clone)]
pub struct Witness {
    fs: Arc<dyn FileSystem>,
    directory: PathBuf,
    /// Largest clock difference assumed between any two nodes and the share.
    pub skew: Duration,
    /// A lock file seen without a whole stamp: since when, and its content then.
    unreadable: Arc<parking_lot::Mutex<Option<UnreadableLock>>>,
    /// A lock older than this is taken to belong to a dead process (default 10 s).
    pub stale_lock: Duration,
}

impl Witness {
    /// The witness in `directory`.
    pub fn new(fs: Arc<dyn FileSystem>, directory: &Path, skew: Duration) -> Self {
        Self {
            fs,
            directory: directory.to_owned(),
            skew,
            unreadable: Arc::default(),
            stale_lock: STALE_LOCK,
        }
    }

    fn record_path(&self) -> PathBuf {
        self.directory.join("witness.json")
    }

    /// The record (none before the first owner).
    pub fn read(&self) -> Result<Option<WitnessRecord>, ReplError> {
        sealed::read(self.fs.as_ref(), &self.record_path())
    }

    /// Extends `owner`'s lease at `epoch` to `lease` from now; refused if the epoch or the
    /// owner changed (this node was fenced out).
    pub fn renew(
        &self,
        owner: &str,
        epoch: u64,
        lease: Duration,
        end: LogPosition,
    ) -> Result<WitnessRecord, WitnessError> {
        self.update(|record, now| match record {
            Some(record) if record.owner == owner && record.epoch == epoch => Ok(WitnessRecord {
                lease_until_micros: now + lease.as_micros() as u64,
                updated_micros: now,
                owner_end: Some(end),
                ..record.clone()
            }),
            Some(record) => Err(WitnessError::Held(record.clone())),
            None => Err(WitnessError::Held(vacant())),
        })
    }

    /// Makes `owner` the owner with a fresh lease, if there is no owner, the owner is
    /// `owner` already (its epoch is kept), or the owner's lease ended more than the clock
    /// skew ago (a new epoch).
    pub fn acquire(
        &self,
        owner: &str,
        lease: Duration,
        comment: &str,
    ) -> Result<WitnessRecord, WitnessError> {
        let skew = self.skew.as_micros() as u64;
        self.update(|record, now| {
            let free = record.is_none_or(|r| r.owner == owner || now > r.lease_until_micros + skew);
            if !free {
                return Err(WitnessError::Held(record.cloned().expect("held")));
            }
            // The owner itself (a restart) keeps its epoch; anyone else starts a new one.
            let epoch = match record {
                Some(r) if r.owner == owner => r.epoch,
                Some(r) => r.epoch + 1,
                None => 1,
            };
            Ok(WitnessRecord {
                epoch,
                owner: owner.to_owned(),
                lease_until_micros: now + lease.as_micros() as u64,
                updated_micros: now,
                comment: comment.to_owned(),
                owner_end: None,
            })
        })
    }

    /// Hands ownership from `from` (at `epoch`) to `to` at a new epoch (a planned move).
    pub fn transfer(
        &self,
        from: &str,
        epoch: u64,
        to: &str,
        lease: Duration,
        comment: &str,
    ) -> Result<WitnessRecord, WitnessError> {
        self.update(|record, now| match record {
            Some(record) if record.owner == from && record.epoch == epoch => Ok(WitnessRecord {
                epoch: epoch + 1,
                owner: to.to_owned(),
                lease_until_micros: now + lease.as_micros() as u64,
                updated_micros: now,
                comment: comment.to_owned(),
                owner_end: None,
            }),
            Some(record) => Err(WitnessError::Held(record.clone())),
            None => Err(WitnessError::Held(vacant())),
        })
    }

    /// Reads, changes and writes the record under the lock.
    fn update(
        &self,
        change: impl FnOnce(Option<&WitnessRecord>, u64) -> Result<WitnessRecord, WitnessError>,
    ) -> Result<WitnessRecord, WitnessError> {
        let token = self.lock()?;
        let result = self.read().map_err(WitnessError::from).and_then(|record| {
            let next = change(record.as_ref(), now_micros())?;
            // The lock must still be this update's: a holder stalled past `STALE_LOCK` may
            // have had it broken, and must not write over its successor.
            if self.lock_content().as_deref() != Some(&token[..]) {
                return Err(ReplError::Timeout("the witness lock was broken".into()).into());
            }
            sealed::write(self.fs.as_ref(), &self.record_path(), &next)?;
            Ok(next)
        });
        let unlocked = self.unlock(&token);
        let record = result?;
        unlocked?;
        Ok(record)
    }

    fn lock_path(&self) -> PathBuf {
        self.directory.join("witness.lock")
    }

    /// The lock file's content, if it can be read.
    fn lock_content(&self) -> Option<Vec<u8>> {
        self.small_file(&self.lock_path())
    }

    /// The first 64 bytes (all a lock file holds) of the file at `path`, if it can be read.
    fn small_file(&self, path: &Path) -> Option<Vec<u8>> {
        let file = self.fs.open(path, OpenMode::Read).ok()?;
        let length = file.size().ok()?.min(64) as usize;
        let mut content = vec![0; length];
        file.read_exact_at(&mut content, 0).ok()?;
        Some(content)
    }

    /// Takes the lock: creates the lock file exclusively and writes a time stamp and a
    /// random token into it. Returns the content written.
    fn lock(&self) -> Result<[u8; LOCK_BYTES], ReplError> {
        let path = self.lock_path();
        let mut token = [0u8; LOCK_BYTES];
        token[..8].copy_from_slice(&now_micros().to_le_bytes());
        token[8..].copy_from_slice(&rand_token());
        for _ in 0..LOCK_ATTEMPTS {
            match self.fs.open(&path, OpenMode::CreateNew) {
                Ok(file) => {
                    let written = file.write_at(&token, 0).and_then(|()| file.sync_data());
                    if let Err(error) = written {
                        let _ = self.fs.remove(&path);
                        return Err(ReplError::io(&path, "writing", error));
                    }
                    return Ok(token);
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    self.break_if_stale(&path);
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(error) => return Err(ReplError::io(&path, "creating", error)),
            }
        }
        Err(ReplError::Timeout(format!(
            "{} stayed locked",
            path.display()
        )))
    }

    /// Breaks a lock whose time stamp is older than `STALE_LOCK`, or that has had no
    /// readable stamp for that long as seen from here (its taker died between creating and
    /// writing it). The lock is renamed aside first and removed only if the renamed file
    /// is the one judged stale; a fresh lock renamed by mistake is put back.
    fn break_if_stale(&self, path: &Path) {
        let content = self.lock_content().unwrap_or_default();
        let stale = match content.get(..8) {
            Some(stamp) if content.len() == LOCK_BYTES => {
                let stamp = u64::from_le_bytes(stamp.try_into().expect("8 bytes"));
                now_micros().saturating_sub(stamp) > self.stale_lock.as_micros() as u64
            }
            _ => self.unreadable_for(&content) > self.stale_lock,
        };
        if !stale {
            return;
        }
        let aside = path.with_extension(format!(
            "lock.broken-{:016x}",
            u64::from_le_bytes(rand_token()[..8].try_into().expect("8 bytes"))
        ));
        if self.fs.rename(path, &aside).is_err() {
            return;
        }
        if self.small_file(&aside).unwrap_or_default() == content {
            let _ = self.fs.remove(&aside);
        } else if !self.fs.exists(path) {
            let _ = self.fs.rename(&aside, path);
        }
    }

    /// How long a lock without a whole stamp has looked the same from here, watched without
    /// a break (a sighting from another episode, or after a pause, starts the count anew).
    fn unreadable_for(&self, content: &[u8]) -> Duration {
        let now = std::time::Instant::now();
        let mut seen = self.unreadable.lock();
        match &mut *seen {
            Some((first, last, same))
                if same == content && last.elapsed() < Duration::from_millis(500) =>
            {
                *last = now;
                first.elapsed()
            }
            _ => {
                *seen = Some((now, now, content.to_vec()));
                Duration::ZERO
            }
        }
    }

    /// Removes the lock if it is still this update's.
    fn unlock(&self, token: &[u8]) -> Result<(), ReplError> {
        if self.lock_content().as_deref() != Some(token) {
            return Ok(());
        }
        let path = self.lock_path();
        self.fs
            .remove(&path)
            .map_err(|error| ReplError::io(&path, "removing", error))
    }
}

fn vacant() -> WitnessRecord {
    WitnessRecord {
        epoch: 0,
        owner: String::new(),
        lease_until_micros: 0,
        updated_micros: 0,
        comment: "no owner yet".into(),
        owner_end: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluejet_engine::file::OsFileSystem;

    fn witness(directory: &Path) -> Witness {
        let mut witness = Witness::new(Arc::new(OsFileSystem), directory, Duration::ZERO);
        witness.stale_lock = Duration::from_millis(200);
        witness
    }

    #[test]
    fn epochs_follow_owners_and_leases_fence() {
        let directory = tempfile::tempdir().unwrap();
        let witness = witness(directory.path());
        let lease = Duration::from_millis(300);
        let a = witness.acquire("a", lease, "bootstrap").unwrap();
        assert_eq!((a.epoch, a.owner.as_str()), (1, "a"));
        // The owner re-acquiring keeps its epoch; another node is refused while it is held.
        assert_eq!(witness.acquire("a", lease, "restart").unwrap().epoch, 1);
        assert!(matches!(
            witness.acquire("b", lease, "x"),
            Err(WitnessError::Held(_))
        ));
        let end = LogPosition::new(7, 100);
        let renewed = witness.renew("a", 1, lease, end).unwrap();
        assert_eq!(renewed.owner_end, Some(end));
        // Once the lease lapsed, b takes over at a new epoch, and a's renewal is refused.
        std::thread::sleep(lease + Duration::from_millis(50));
        let b = witness.acquire("b", lease, "failover").unwrap();
        assert_eq!((b.epoch, b.owner.as_str()), (2, "b"));
        assert!(matches!(
            witness.renew("a", 1, lease, end),
            Err(WitnessError::Held(_))
        ));
        let moved = witness.transfer("b", 2, "a", lease, "move").unwrap();
        assert_eq!((moved.epoch, moved.owner.as_str()), (3, "a"));
        assert!(!directory.path().join("witness.lock").exists());
    }

    #[test]
    fn a_stale_or_stampless_lock_is_broken_and_a_fresh_one_is_not() {
        let directory = tempfile::tempdir().unwrap();
        let witness = witness(directory.path());
        let lock = directory.path().join("witness.lock");
        // A lock whose taker died before writing its stamp.
        std::fs::write(&lock, b"").unwrap();
        let started = std::time::Instant::now();
        let record = witness.acquire("a", Duration::from_secs(1), "x").unwrap();
        assert!(started.elapsed() >= witness.stale_lock, "broken too early");
        assert_eq!(record.owner, "a");
        // An old stamp is broken at once.
        let mut old = (now_micros() - 60_000_000).to_le_bytes().to_vec();
        old.extend_from_slice(&[7; 16]);
        std::fs::write(&lock, &old).unwrap();
        witness
            .renew("a", 1, Duration::from_secs(1), LogPosition::default())
            .unwrap();
        // A fresh lock held by someone else is waited for, never broken.
        let mut fresh = now_micros().to_le_bytes().to_vec();
        fresh.extend_from_slice(&[9; 16]);
        std::fs::write(&lock, &fresh).unwrap();
        let mut impatient = witness.clone();
        impatient.stale_lock = Duration::from_secs(60);
        assert!(impatient
            .renew("a", 1, Duration::from_secs(1), LogPosition::default())
            .is_err());
        assert_eq!(
            std::fs::read(&lock).unwrap(),
            fresh,
            "another holder's lock is left"
        );
    }
}
