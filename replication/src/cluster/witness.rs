//! The file-share witness: the third vote, holding the cluster's epoch, its owner (the one
//! node that may be active) and the owner's lease.
//!
//! One file per epoch: `witness/epoch-<N>.json` (N zero-padded to 20 digits, sealed JSON)
//! names the owner of epoch N. It is created exclusively (`O_EXCL`), written, synced and its
//! directory synced, and never changed afterwards: whoever creates `epoch-<N+1>` first
//! starts epoch N+1, and a writer that stalled between its decision and its creation finds
//! the file there and is refused. The highest epoch whose file is whole and valid is the
//! current one. Its owner's lease lives in `lease-<N>.json` (sealed), written only by the
//! owner of epoch N under a unique temporary name (`lease-<N>.json.<random>.tmp`), synced and
//! renamed: a stalled renewal can only rewrite the lease of its own, older epoch, which no
//! longer counts. There is no lock, so no lock can be judged stale on two machines' clocks.
//! Nor is a lease judged on one: another node takes over only once the record has stayed
//! unchanged, for the lease it grants plus a margin, on that node's own monotonic clock
//! ([`Witness::lease_over`]).
//!
//! The first record (`epoch-1`) is written once by `bluejet cluster init` ([`Witness::init`]);
//! a witness directory without any record is an error for a node, never "no owner yet" (an
//! unmounted share's mount point looks exactly like an empty directory). Every error but
//! `NotFound` when reading the witness is an error, never absence.

use super::clock::{Clock, SystemClock};
use crate::error::ReplError;
use crate::sealed;
use bluejet_engine::file::{FileSystem, OpenMode};
use bluejet_engine::LogPosition;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Epoch files (and their leases) kept below the current epoch; older ones are pruned by
/// the owner of the current epoch.
const KEEP_EPOCHS: u64 = 4;
/// The largest epoch a witness file may name: a larger number is junk, not an epoch (found: a
/// junk `epoch-18446744073709551611.json` made the next epoch's arithmetic wrap, and the
/// clean-up then removed every real epoch file). Far beyond any cluster's life.
const MAX_EPOCH: u64 = 1 << 62;
/// Digits of an epoch in a file name: exactly this many, zero-padded.
const EPOCH_DIGITS: usize = 20;
/// Times the directory is listed again when a file listed is gone when read (pruned).
const READ_ATTEMPTS: u32 = 5;
/// The record of an older BlueJet (one file changed under a lock): refused.
const LEGACY_RECORD: &str = "witness.json";

/// 16 random bytes, in hex: a temporary file's unique suffix.
fn random_hex() -> String {
    bluejet_engine::log::StreamSignature::generate()
        .id
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The witness's record: the current epoch's owner with its lease.
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
    /// The cluster's identity: 32 hex digits drawn by `cluster init` and carried by every
    /// later epoch (empty in a witness initialised before it existed). A node keeps the
    /// first it sees and refuses a witness of another cluster.
    #[serde(default)]
    pub cluster: String,
    /// Synchronous commit: the node every commit the owner acknowledged is on (it claims it
    /// at a renewal once the node has synced everything, and clears it by a renewal before
    /// it acknowledges a commit the node has not confirmed). `None`: no such promise.
    #[serde(default)]
    pub synchronous: Option<String>,
    /// The instance that wrote the lease: its identity (`node-id.json`), or a nonce of a
    /// [`Witness`] given none (empty before the first renewal). The epoch's holder file
    /// says which one may renew it.
    #[serde(default)]
    pub holder: String,
}

/// `epoch-<N>.json`: who owns epoch N (written once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct EpochFile {
    epoch: u64,
    owner: String,
    /// The lease granted with the epoch (0 from `cluster init`: none yet).
    lease_until_micros: u64,
    created_micros: u64,
    comment: String,
    /// The cluster's identity (from `cluster init`, copied into every later epoch).
    #[serde(default)]
    cluster: String,
}

/// `lease-<N>.json`: the owner of epoch N's latest renewal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseFile {
    epoch: u64,
    owner: String,
    lease_until_micros: u64,
    updated_micros: u64,
    owner_end: Option<LogPosition>,
    #[serde(default)]
    synchronous: Option<String>,
    #[serde(default)]
    holder: String,
}

/// `holder-<N>.json`: the holder whose renewals epoch N's lease takes, claimed by the first
/// one (created exclusively, never changed): one instance per name and epoch, even when two
/// start at the same instant (found by an adversarial round: reading the lease's holder,
/// then writing, let both of two instances started together serve for a renewal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct HolderFile {
    epoch: u64,
    holder: String,
}

/// Why the witness refused.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// Another node holds a lease that has not expired (or a newer epoch).
    #[error("the witness is held by {} (epoch {}) until {}", .0.owner, .0.epoch, .0.lease_until_micros)]
    Held(Box<WitnessRecord>),
    /// The witness could not be read or written, or holds no record.
    #[error(transparent)]
    Unreachable(#[from] ReplError),
}

/// Why `cluster init` refused.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The witness directory already holds records (or files of an older format).
    #[error("{0}")]
    Exists(String),
    /// The witness directory could not be read or written.
    #[error(transparent)]
    Unreachable(#[from] ReplError),
}

/// The witness directory as read: the current record and the highest epoch number of any
/// epoch file, whole or not.
struct View {
    record: Option<WitnessRecord>,
    highest: u64,
}

/// A record as this node first saw it: its identity and when (this node's monotonic
/// clock).
struct Observed {
    key: (u64, String, u64, u64),
    since: Instant,
}

/// The witness directory, reached through a file system (a share).
#[derive(Clone)]
pub struct Witness {
    fs: Arc<dyn FileSystem>,
    directory: PathBuf,
    /// A margin added to every lease before another node may take over: scheduling,
    /// request latency and the drift of monotonic clocks over a lease. (Wall clocks are
    /// never compared across machines.)
    pub skew: Duration,
    /// This node's clocks: the wall clock stamps the records (for people and for the loss
    /// window), the monotonic clock decides when another node's lease is over.
    clock: Arc<dyn Clock>,
    /// The current record and when this node first saw it, updated at every read.
    observed: Arc<Mutex<Option<Observed>>>,
    /// The cluster this node belongs to, once known ([`bind`](Self::bind)): a witness of
    /// another cluster is never written (no renewal, no epoch).
    bound: Arc<Mutex<Option<String>>>,
    /// Who renews: the node instance's identity ([`with_holder`](Self::with_holder)), or a
    /// nonce of this process.
    holder: String,
}

/// A nonce naming one [`Witness`] (one process of a node): the process, the time, a count.
fn new_holder() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros());
    format!("{}-{now:x}-{count}", std::process::id())
}

impl Witness {
    /// The witness in `directory`, on the system's wall clock.
    pub fn new(fs: Arc<dyn FileSystem>, directory: &Path, skew: Duration) -> Self {
        Self::with_clock(fs, directory, skew, Arc::new(SystemClock))
    }

    /// The witness in `directory`, seen from a node whose wall clock is `clock` (tests and
    /// the simulation).
    pub fn with_clock(
        fs: Arc<dyn FileSystem>,
        directory: &Path,
        skew: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            fs,
            directory: directory.to_owned(),
            skew,
            clock,
            observed: Arc::new(Mutex::new(None)),
            bound: Arc::new(Mutex::new(None)),
            holder: new_holder(),
        }
    }

    /// Binds this node to `cluster` (from its `epoch.json`): from now on a witness whose
    /// record names another cluster is unreachable for writing (found by an adversarial
    /// test: an active whose witness was swapped wrote a renewal into the foreign one).
    pub fn bind(&self, cluster: Option<String>) {
        *self.bound.lock() = cluster.filter(|cluster| !cluster.is_empty());
    }

    /// Refuses to write into a witness of another cluster than the one bound.
    fn check_cluster(&self, record: &WitnessRecord) -> Result<(), WitnessError> {
        match self.bound.lock().as_deref() {
            Some(bound) if bound != record.cluster => {
                Err(WitnessError::Unreachable(ReplError::Witness {
                    directory: self.directory.clone(),
                    reason: format!(
                        "it belongs to cluster {:?}, this node to cluster {bound}: nothing \
                         is written into it",
                        record.cluster
                    ),
                }))
            }
            _ => Ok(()),
        }
    }

    /// The same witness seen by a new process of this node: nothing observed yet, the same
    /// holder (the simulation restarts nodes with it).
    pub fn restarted(&self) -> Self {
        Self::with_clock(
            Arc::clone(&self.fs),
            &self.directory,
            self.skew,
            Arc::clone(&self.clock),
        )
        .with_holder(&self.holder)
    }

    /// Renews as `holder`: a node's instance identity (`node-id.json`), so that its restarts
    /// hold its name at once while another instance with the same name is refused.
    pub fn with_holder(mut self, holder: &str) -> Self {
        self.holder = holder.to_owned();
        self
    }

    /// Notes `record` as seen now, unless it is the one seen before; returns when this
    /// node first saw it.
    fn observe(&self, record: &WitnessRecord) -> Instant {
        let key = (
            record.epoch,
            record.owner.clone(),
            record.updated_micros,
            record.lease_until_micros,
        );
        let mut observed = self.observed.lock();
        match observed.as_ref() {
            Some(seen) if seen.key == key => seen.since,
            _ => {
                let since = self.clock.now();
                *observed = Some(Observed { key, since });
                since
            }
        }
    }

    /// Whether `record`'s lease is over as far as this node can tell, on its own monotonic
    /// clock: the record has not changed since this node first saw it for longer than the
    /// lease it grants plus `skew`. The owner's lease started (on the owner's monotonic
    /// clock) before the record was written, hence before this node first saw it; so once
    /// this returns true the owner has stopped admitting commits, whatever the two wall
    /// clocks say. A node that has just started waits a full lease.
    pub fn lease_over(&self, record: &WitnessRecord) -> bool {
        let since = self.observe(record);
        let granted = record
            .lease_until_micros
            .saturating_sub(record.updated_micros);
        let waited = self.clock.now().saturating_duration_since(since);
        waited > Duration::from_micros(granted) + self.skew
    }

    /// The wall clock (µs since the Unix epoch).
    fn now_micros(&self) -> u64 {
        self.clock.wall_micros()
    }

    /// The witness directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn epoch_path(&self, epoch: u64) -> PathBuf {
        self.directory.join(format!("epoch-{epoch:020}.json"))
    }

    fn lease_path(&self, epoch: u64) -> PathBuf {
        self.directory.join(format!("lease-{epoch:020}.json"))
    }

    fn holder_path(&self, epoch: u64) -> PathBuf {
        self.directory.join(format!("holder-{epoch:020}.json"))
    }

    /// Takes `epoch` for this holder if no one has (its file created exclusively), or checks
    /// that this holder has: refused otherwise (another instance with this name, or a claim
    /// being written or left part-written: that epoch then ends with a failover).
    fn claim(&self, epoch: u64, current: &WitnessRecord) -> Result<(), WitnessError> {
        let path = self.holder_path(epoch);
        let claim = HolderFile {
            epoch,
            holder: self.holder.clone(),
        };
        if self.create_exclusively(&path, &claim)? {
            return Ok(());
        }
        match sealed::read::<HolderFile>(self.fs.as_ref(), &path) {
            Ok(Some(file)) if file == claim => Ok(()),
            Ok(Some(file)) => {
                let mut held = current.clone();
                held.holder = file.holder;
                Err(WitnessError::Held(Box::new(held)))
            }
            _ => Err(WitnessError::Held(Box::new(current.clone()))),
        }
    }

    /// The current record; `None` only when the directory holds no epoch file at all (never
    /// initialised, or the share is not mounted). An I/O error is an error.
    pub fn read(&self) -> Result<Option<WitnessRecord>, ReplError> {
        Ok(self.view()?.record)
    }

    /// The current record, or an error saying the witness holds none.
    pub fn read_initialized(&self) -> Result<WitnessRecord, ReplError> {
        self.read()?.ok_or_else(|| self.uninitialized())
    }

    /// The error of a witness directory without a record.
    pub fn uninitialized(&self) -> ReplError {
        ReplError::Witness {
            directory: self.directory.clone(),
            reason: "holds no witness record: is the share mounted? A new cluster is \
                     initialised once with `bluejet cluster init`"
                .into(),
        }
    }

    /// The names in the witness directory.
    fn list(&self) -> Result<Vec<String>, ReplError> {
        self.fs.list(&self.directory).map_err(|error| {
            let operation = if error.kind() == ErrorKind::NotFound {
                "listing (it does not exist: is the share mounted?) the witness directory"
            } else {
                "listing the witness directory"
            };
            ReplError::io(&self.directory, operation, error)
        })
    }

    /// Reads the directory: the highest whole epoch file with its lease.
    fn view(&self) -> Result<View, ReplError> {
        'listing: for _ in 0..READ_ATTEMPTS {
            let names = self.list()?;
            let mut epochs: Vec<u64> = names.iter().filter_map(|n| parse_epoch(n)).collect();
            epochs.sort_unstable_by(|a, b| b.cmp(a));
            let Some(&highest) = epochs.first() else {
                if names.iter().any(|name| name == LEGACY_RECORD) {
                    return Err(ReplError::Witness {
                        directory: self.directory.clone(),
                        reason: format!(
                            "{LEGACY_RECORD} is the record of an older BlueJet; with both \
                             nodes stopped, move it away and run `bluejet cluster init` \
                             naming the node that held the database"
                        ),
                    });
                }
                return Ok(View {
                    record: None,
                    highest: 0,
                });
            };
            let mut invalid = Vec::new();
            for epoch in epochs {
                let path = self.epoch_path(epoch);
                let file: EpochFile = match sealed::read(self.fs.as_ref(), &path) {
                    Ok(Some(file)) => file,
                    // Pruned since the listing: list again.
                    Ok(None) => continue 'listing,
                    // Being created, or its creator died while writing it: it never counted.
                    Err(ReplError::BadReplicaFile { reason, .. }) => {
                        invalid.push(format!("epoch {epoch}: {reason}"));
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                if file.epoch != epoch {
                    invalid.push(format!("epoch {epoch}: holds epoch {}", file.epoch));
                    continue;
                }
                let lease: Option<LeaseFile> =
                    sealed::read(self.fs.as_ref(), &self.lease_path(epoch))?;
                let lease = lease.filter(|l| l.epoch == epoch && l.owner == file.owner);
                let record = WitnessRecord {
                    epoch,
                    owner: file.owner,
                    lease_until_micros: lease
                        .as_ref()
                        .map_or(file.lease_until_micros, |l| l.lease_until_micros),
                    updated_micros: lease
                        .as_ref()
                        .map_or(file.created_micros, |l| l.updated_micros),
                    comment: file.comment,
                    owner_end: lease.as_ref().and_then(|l| l.owner_end),
                    cluster: file.cluster,
                    holder: lease.as_ref().map(|l| l.holder.clone()).unwrap_or_default(),
                    synchronous: lease.and_then(|l| l.synchronous),
                };
                self.observe(&record);
                return Ok(View {
                    record: Some(record),
                    highest,
                });
            }
            return Err(ReplError::Witness {
                directory: self.directory.clone(),
                reason: format!("no whole epoch file: {}", invalid.join("; ")),
            });
        }
        Err(ReplError::Witness {
            directory: self.directory.clone(),
            reason: "its files kept changing while read".into(),
        })
    }

    /// Writes the first record, epoch 1 owned by `owner`, into an existing witness directory
    /// that holds no record: the one-time bootstrap of a cluster (`bluejet cluster init`).
    pub fn init(&self, owner: &str, comment: &str) -> Result<WitnessRecord, InitError> {
        let names = self.list()?;
        let ours: Vec<&String> = names
            .iter()
            .filter(|name| {
                parse_epoch(name).is_some()
                    || name.starts_with("lease-")
                    || name.as_str() == LEGACY_RECORD
            })
            .collect();
        if !ours.is_empty() {
            let current = match self.read() {
                Ok(Some(record)) => format!(
                    ": {} owns epoch {} ({})",
                    record.owner, record.epoch, record.comment
                ),
                _ => String::new(),
            };
            return Err(InitError::Exists(format!(
                "the witness {} is initialised already{current} (found {}): a cluster is \
                 initialised once",
                self.directory.display(),
                ours.iter()
                    .map(|name| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let now = self.now_micros();
        let file = EpochFile {
            epoch: 1,
            owner: owner.to_owned(),
            lease_until_micros: 0,
            created_micros: now,
            comment: comment.to_owned(),
            cluster: random_hex(),
        };
        match self.create_epoch(&file)? {
            true => Ok(record_of(file)),
            false => Err(InitError::Exists(format!(
                "the witness {} was initialised by someone else meanwhile",
                self.directory.display()
            ))),
        }
    }

    /// Creates `epoch-<N>.json` exclusively, writes, syncs it and syncs the directory.
    /// `Ok(false)` if it exists already (another writer started that epoch first).
    fn create_epoch(&self, file: &EpochFile) -> Result<bool, ReplError> {
        self.create_exclusively(&self.epoch_path(file.epoch), file)
    }

    /// Creates `path` holding `content` sealed, unless it exists (`false`); synced with its
    /// directory.
    fn create_exclusively<T: Serialize>(
        &self,
        path: &Path,
        content: &T,
    ) -> Result<bool, ReplError> {
        let path = path.to_owned();
        let bytes = sealed::seal(&path, content)?;
        let handle = match self.fs.open(&path, OpenMode::CreateNew) {
            Ok(handle) => handle,
            Err(error) if error.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(error) => return Err(ReplError::io(&path, "creating", error)),
        };
        let written = handle
            .write_at(&bytes, 0)
            .and_then(|()| handle.sync_data())
            .map_err(|error| ReplError::io(&path, "writing", error))
            .and_then(|()| {
                self.fs
                    .sync_directory(&self.directory)
                    .map_err(|error| ReplError::io(&self.directory, "syncing", error))
            });
        // A part-written file never counts; its number stays used.
        written?;
        Ok(true)
    }

    /// Writes the lease of `epoch` under a unique temporary name, synced, renamed.
    fn write_lease(&self, lease: &LeaseFile) -> Result<(), ReplError> {
        let path = self.lease_path(lease.epoch);
        let bytes = sealed::seal(&path, lease)?;
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{}.tmp", random_hex()));
        let temporary = PathBuf::from(name);
        let handle = self
            .fs
            .open(&temporary, OpenMode::CreateNew)
            .map_err(|error| ReplError::io(&temporary, "creating", error))?;
        let written = handle
            .write_at(&bytes, 0)
            .and_then(|()| handle.sync_data())
            .map_err(|error| ReplError::io(&temporary, "writing", error));
        drop(handle);
        if let Err(error) = written {
            if let Err(error) = self.fs.remove(&temporary) {
                tracing::warn!(path = %temporary.display(), %error, "removing a failed lease file");
            }
            return Err(error);
        }
        sealed::publish(self.fs.as_ref(), &[(temporary, path)])
    }

    /// Extends `owner`'s lease at `epoch` to `lease` from now; refused if the epoch or the
    /// owner changed (this node was fenced out).
    ///
    /// The lease end is computed before the witness is read; the renewal counts only if the
    /// epoch is still the current one when read again after the lease file was renamed in.
    /// So a renewal that counts was in place before any newer epoch file was created, and
    /// the creator of that newer epoch sees it ([`acquire`](Self::acquire) waits it out).
    pub fn renew(
        &self,
        owner: &str,
        epoch: u64,
        lease: Duration,
        end: LogPosition,
    ) -> Result<WitnessRecord, WitnessError> {
        self.extend(owner, epoch, lease, Some(end), None)
    }

    /// [`renew`](Self::renew), recording `synchronous`: the node every commit acknowledged
    /// so far is on (see [`WitnessRecord::synchronous`]).
    pub fn renew_claiming(
        &self,
        owner: &str,
        epoch: u64,
        lease: Duration,
        end: LogPosition,
        synchronous: Option<&str>,
    ) -> Result<WitnessRecord, WitnessError> {
        self.extend(owner, epoch, lease, Some(end), synchronous)
    }

    /// What the last renewal of `epoch` that counted claimed of synchronous commit. Read
    /// after a newer epoch was created, it is final: a renewal counts only if it was in place
    /// before the newer epoch's file ([`renew`](Self::renew)).
    pub fn final_claim(&self, epoch: u64) -> Result<Option<String>, WitnessError> {
        let lease: Option<LeaseFile> = sealed::read(self.fs.as_ref(), &self.lease_path(epoch))?;
        Ok(lease
            .filter(|lease| lease.epoch == epoch)
            .and_then(|lease| lease.synchronous))
    }

    fn extend(
        &self,
        owner: &str,
        epoch: u64,
        lease: Duration,
        end: Option<LogPosition>,
        synchronous: Option<&str>,
    ) -> Result<WitnessRecord, WitnessError> {
        let now = self.now_micros();
        let current = self.current()?;
        self.check_cluster(&current)?;
        if current.owner != owner || current.epoch != epoch {
            return Err(WitnessError::Held(Box::new(current)));
        }
        // The name held by another instance (a second node configured with this name):
        // refused (found by an adversarial round: two processes named owner both served).
        self.claim(epoch, &current)?;
        // The record's lease end is the holder's wall clock plus the lease, never the max of
        // it and an earlier end: a peer waits the length the record states (end minus
        // update), so after a wall clock stepped back a kept-longer end would hold failover
        // off by the size of the step. The holder's own lease never shrinks on its monotonic
        // clock (`LeaseGate::renewed`), which is where that invariant lives.
        let until = now.saturating_add(u64::try_from(lease.as_micros()).unwrap_or(u64::MAX));
        self.write_lease(&LeaseFile {
            epoch,
            owner: owner.to_owned(),
            lease_until_micros: until,
            updated_micros: now,
            owner_end: end.or(current.owner_end),
            synchronous: synchronous.map(str::to_owned),
            holder: self.holder.clone(),
        })?;
        let renewed = self.current()?;
        if renewed.owner != owner || renewed.epoch != epoch || renewed.holder != self.holder {
            return Err(WitnessError::Held(Box::new(renewed)));
        }
        self.prune(epoch);
        Ok(renewed)
    }

    /// The current record; an uninitialised witness is unreachable.
    fn current(&self) -> Result<WitnessRecord, WitnessError> {
        Ok(self.read_initialized()?)
    }

    /// Makes `owner` the owner with a fresh lease, if the owner is `owner` already (its
    /// epoch is kept: a restart) or the owner's lease ended more than the clock skew ago (a
    /// new epoch, created exclusively).
    pub fn acquire(
        &self,
        owner: &str,
        lease: Duration,
        comment: &str,
    ) -> Result<WitnessRecord, WitnessError> {
        let skew = self.skew;
        let view = self.view()?;
        let current = view.record.ok_or_else(|| self.uninitialized())?;
        self.check_cluster(&current)?;
        if current.owner == owner {
            return self.extend(owner, current.epoch, lease, None, None);
        }
        if !self.lease_over(&current) {
            return Err(WitnessError::Held(Box::new(current)));
        }
        let next = (view.highest + 1, current.cluster.as_str());
        let record = self.start_epoch(next, owner, lease, comment)?;
        // A renewal of the old epoch that was in place before this epoch's file (see
        // `renew`) may have extended its lease after it was read above: wait it out.
        let old: Option<LeaseFile> =
            sealed::read(self.fs.as_ref(), &self.lease_path(current.epoch))?;
        if let Some(old) = old.filter(|old| old.epoch == current.epoch) {
            // Its request started before now: its lease is over a full lease from now.
            if old.updated_micros > current.updated_micros {
                let granted = old.lease_until_micros.saturating_sub(old.updated_micros);
                std::thread::sleep(Duration::from_micros(granted) + skew);
            }
        }
        Ok(record)
    }

    /// Creates epoch `epoch` of `cluster` for `owner` and checks that it is the current one.
    fn start_epoch(
        &self,
        (epoch, cluster): (u64, &str),
        owner: &str,
        lease: Duration,
        comment: &str,
    ) -> Result<WitnessRecord, WitnessError> {
        let now = self.now_micros();
        let file = EpochFile {
            epoch,
            owner: owner.to_owned(),
            lease_until_micros: now + u64::try_from(lease.as_micros()).unwrap_or(u64::MAX),
            created_micros: now,
            comment: comment.to_owned(),
            cluster: cluster.to_owned(),
        };
        if !self.create_epoch(&file)? {
            return Err(WitnessError::Held(Box::new(self.current()?)));
        }
        // A stalled writer may have created a number below one already in use (pruned
        // since): the highest epoch wins, and this one is not it.
        let current = self.current()?;
        if current.epoch != epoch {
            return Err(WitnessError::Held(Box::new(current)));
        }
        Ok(current)
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
        let view = self.view()?;
        let current = view.record.ok_or_else(|| self.uninitialized())?;
        self.check_cluster(&current)?;
        if current.owner != from || current.epoch != epoch {
            return Err(WitnessError::Held(Box::new(current)));
        }
        self.start_epoch((view.highest + 1, &current.cluster), to, lease, comment)
    }

    /// Removes the epoch and lease files more than `KEEP_EPOCHS` below `epoch`, and the
    /// temporary lease files of older epochs: only the owner of `epoch`, the current one,
    /// calls it. Failures are ignored (the next renewal tries again).
    fn prune(&self, epoch: u64) {
        let Ok(names) = self.fs.list(&self.directory) else {
            return;
        };
        for name in names {
            let number = parse_epoch(&name)
                .or_else(|| parse_lease(&name))
                .or_else(|| parse_number(&name, "holder-", ".json"));
            let old = match number {
                Some(number) => number.saturating_add(KEEP_EPOCHS) < epoch,
                None => parse_lease_temporary(&name).is_some_and(|number| number < epoch),
            };
            if old {
                let path = self.directory.join(name);
                if let Err(error) = self.fs.remove(&path) {
                    tracing::warn!(path = %path.display(), %error, "removing an old lease file");
                }
            }
        }
    }
}

fn record_of(file: EpochFile) -> WitnessRecord {
    WitnessRecord {
        epoch: file.epoch,
        owner: file.owner,
        lease_until_micros: file.lease_until_micros,
        updated_micros: file.created_micros,
        comment: file.comment,
        owner_end: None,
        cluster: file.cluster,
        synchronous: None,
        holder: String::new(),
    }
}

/// The number in `<prefix><digits><suffix>`: exactly `EPOCH_DIGITS` digits, as the witness
/// writes them (found: a junk `epoch-99.json` parsed as 99, its padded name was then not
/// found, and the witness read as "kept changing"), from 1 to `MAX_EPOCH`.
fn parse_number(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != EPOCH_DIGITS || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits
        .parse()
        .ok()
        .filter(|&number| (1..=MAX_EPOCH).contains(&number))
}

/// N of `epoch-<N>.json`.
fn parse_epoch(name: &str) -> Option<u64> {
    parse_number(name, "epoch-", ".json")
}

/// N of `lease-<N>.json`.
fn parse_lease(name: &str) -> Option<u64> {
    parse_number(name, "lease-", ".json")
}

/// N of `lease-<N>.json.<random>.tmp`.
fn parse_lease_temporary(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".tmp")?;
    let (lease, _) = stem.rsplit_once('.')?;
    parse_lease(lease)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluejet_engine::file::OsFileSystem;
    use bluejet_engine::log::now_micros;

    fn witness(directory: &Path) -> Witness {
        Witness::new(Arc::new(OsFileSystem), directory, Duration::ZERO)
    }

    /// Found by an adversarial operator: junk epoch names took the witness down.
    #[test]
    fn junk_epoch_names_are_not_epochs() {
        assert_eq!(parse_epoch("epoch-99.json"), None);
        assert_eq!(
            parse_epoch(&format!("epoch-{:020}.json", u64::MAX - 4)),
            None
        );
        assert_eq!(parse_epoch(&format!("epoch-{:020}.json", 0)), None);
        assert_eq!(parse_epoch(&format!("epoch-{:020}.json", 7)), Some(7));
        let directory = tempfile::tempdir().unwrap();
        let witness = witness(directory.path());
        witness.init("a", "first").unwrap();
        for junk in [
            "epoch-99.json".to_owned(),
            format!("epoch-{:020}.json", u64::MAX - 4),
        ] {
            std::fs::write(directory.path().join(junk), b"garbage").unwrap();
        }
        let record = witness.read().unwrap().unwrap();
        assert_eq!((record.epoch, record.owner.as_str()), (1, "a"));
    }

    #[test]
    fn epochs_follow_owners_and_leases_fence() {
        let directory = tempfile::tempdir().unwrap();
        let witness = witness(directory.path());
        let lease = Duration::from_millis(300);
        assert!(matches!(witness.read(), Ok(None)));
        assert!(matches!(
            witness.acquire("a", lease, "x"),
            Err(WitnessError::Unreachable(ReplError::Witness { .. }))
        ));
        let init = witness.init("a", "bootstrap").unwrap();
        assert_eq!((init.epoch, init.owner.as_str()), (1, "a"));
        assert!(matches!(
            witness.init("b", "again"),
            Err(InitError::Exists(_))
        ));
        let a = witness.acquire("a", lease, "start").unwrap();
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
        assert_eq!(witness.read().unwrap().unwrap(), moved);
        // Only files of old epochs are pruned, by the owner of the newest.
        for epoch in 4..=9 {
            let owner = if epoch % 2 == 0 { "b" } else { "a" };
            let from = if epoch % 2 == 0 { "a" } else { "b" };
            witness
                .transfer(from, epoch - 1, owner, lease, "m")
                .unwrap();
            witness.renew(owner, epoch, lease, end).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.first().unwrap(), &format!("epoch-{:020}.json", 5));
        assert!(
            !names.iter().any(|name| name.ends_with(".tmp")),
            "{names:?}"
        );
    }

    /// A renewal states the lease it grants, whatever was granted before: a peer waits the
    /// record's length (end minus update) unchanged, so a record kept at an earlier, longer
    /// end (after the holder's wall clock stepped back, or a shorter lease configured)
    /// would hold failover off for the difference.
    #[test]
    fn a_renewal_states_exactly_the_lease_it_grants() {
        let directory = tempfile::tempdir().unwrap();
        let witness = witness(directory.path());
        witness.init("a", "init").unwrap();
        let end = LogPosition::default();
        let long = witness
            .renew("a", 1, Duration::from_secs(600), end)
            .unwrap();
        assert_eq!(long.lease_until_micros - long.updated_micros, 600_000_000);
        let short = witness
            .renew("a", 1, Duration::from_millis(3), end)
            .unwrap();
        assert_eq!(short.lease_until_micros - short.updated_micros, 3_000);
    }

    /// Finding 3: a writer that decided on epoch N, then stalled while its successor wrote
    /// epoch N+1, must not replace N+1 (with the old lock-and-rename protocol the stalled
    /// rename put the old record back over its successor's).
    #[test]
    fn a_stalled_writer_never_replaces_a_newer_epoch() {
        let directory = tempfile::tempdir().unwrap();
        let witness = witness(directory.path());
        let lease = Duration::from_millis(100);
        witness.init("a", "init").unwrap();
        witness
            .renew("a", 1, lease, LogPosition::default())
            .unwrap();
        std::thread::sleep(lease + Duration::from_millis(20));
        // b decides to take over epoch 1 (its view), then stalls before it writes.
        let stalled_view = witness.view().unwrap();
        assert_eq!(stalled_view.highest, 1);
        // Meanwhile a (restarting, its lease lapsed) is moved to c... simulated by a
        // failover of c, then c renews.
        let c = witness.acquire("c", lease, "failover").unwrap();
        assert_eq!(c.epoch, 2);
        witness
            .renew("c", 2, lease, LogPosition::default())
            .unwrap();
        // b wakes up and writes the epoch it decided on: refused, c keeps epoch 2.
        let woke = witness.start_epoch((stalled_view.highest + 1, ""), "b", lease, "stalled");
        assert!(
            matches!(woke, Err(WitnessError::Held(ref r)) if r.owner == "c"),
            "{woke:?}"
        );
        // A stalled renewal of the old epoch lands after the new epoch: it counts for
        // nothing, and the old owner's next renewal is refused.
        witness
            .write_lease(&LeaseFile {
                epoch: 1,
                owner: "a".into(),
                lease_until_micros: now_micros() + 60_000_000,
                updated_micros: now_micros(),
                owner_end: None,
                synchronous: None,
                holder: String::new(),
            })
            .unwrap();
        let current = witness.read().unwrap().unwrap();
        assert_eq!((current.epoch, current.owner.as_str()), (2, "c"));
        assert!(matches!(
            witness.renew("a", 1, lease, LogPosition::default()),
            Err(WitnessError::Held(_))
        ));
        // If epoch 2's file had been pruned, a writer stalled since epoch 1 that creates it
        // again does not win over epoch 3.
        witness.transfer("c", 2, "a", lease, "move").unwrap();
        std::fs::remove_file(witness.epoch_path(2)).unwrap();
        let late = witness.start_epoch((2, ""), "b", lease, "very stalled");
        assert!(
            matches!(late, Err(WitnessError::Held(ref r)) if r.epoch == 3),
            "{late:?}"
        );
        assert_eq!(witness.read().unwrap().unwrap().owner, "a");
    }

    #[test]
    fn a_half_written_newest_epoch_does_not_count_and_its_number_is_skipped() {
        let directory = tempfile::tempdir().unwrap();
        let witness = witness(directory.path());
        witness.init("a", "init").unwrap();
        // A creator of epoch 2 died while writing it.
        std::fs::write(witness.epoch_path(2), b"{\"form").unwrap();
        assert_eq!(witness.read().unwrap().unwrap().epoch, 1);
        let moved = witness
            .transfer("a", 1, "b", Duration::from_secs(1), "move")
            .unwrap();
        assert_eq!((moved.epoch, moved.owner.as_str()), (3, "b"));
    }

    #[test]
    fn an_old_format_record_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let witness = witness(directory.path());
        std::fs::write(directory.path().join(LEGACY_RECORD), b"{}").unwrap();
        assert!(matches!(witness.read(), Err(ReplError::Witness { .. })));
        assert!(matches!(witness.init("a", "x"), Err(InitError::Exists(_))));
    }
}

#[cfg(test)]
mod io_error_tests {
    use super::*;
    use bluejet_engine::file::{FileHandle, Holder, LockAttempt, LockProbe, OsFileSystem};
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The real disk, except that while `failing` every read, listing and open fails with
    /// `kind` and nothing "exists" (what `Path::exists` says on ESTALE or EIO).
    struct Failing {
        failing: AtomicBool,
        kind: io::ErrorKind,
    }

    impl Failing {
        fn check(&self) -> io::Result<()> {
            match self.failing.load(Ordering::SeqCst) {
                true => Err(io::Error::new(self.kind, "stale file handle")),
                false => Ok(()),
            }
        }
    }

    impl FileSystem for Failing {
        fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
            self.check()?;
            OsFileSystem.open(path, mode)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.check()?;
            OsFileSystem.rename(from, to)
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            self.check()?;
            OsFileSystem.remove(path)
        }
        fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
            self.check()?;
            OsFileSystem.list(directory)
        }
        fn sync_directory(&self, directory: &Path) -> io::Result<()> {
            self.check()?;
            OsFileSystem.sync_directory(directory)
        }
        fn create_directory(&self, directory: &Path) -> io::Result<()> {
            self.check()?;
            OsFileSystem.create_directory(directory)
        }
        fn exists(&self, path: &Path) -> bool {
            self.check().is_ok() && OsFileSystem.exists(path)
        }
        fn lock_exclusive(&self, path: &Path, holder: &Holder) -> io::Result<LockAttempt> {
            self.check()?;
            OsFileSystem.lock_exclusive(path, holder)
        }
        fn probe_lock(&self, path: &Path) -> io::Result<LockProbe> {
            self.check()?;
            OsFileSystem.probe_lock(path)
        }
    }

    /// A node bound to its cluster writes nothing into another cluster's witness: no
    /// renewal, no epoch (an active whose witness share was swapped under it).
    #[test]
    fn a_bound_node_writes_nothing_into_a_foreign_witness() {
        let directory = tempfile::tempdir().unwrap();
        let witness = Witness::new(Arc::new(OsFileSystem), directory.path(), Duration::ZERO);
        let record = witness.init("a", "foreign cluster").unwrap();
        witness.bind(Some("0123456789abcdef0123456789abcdef".into()));
        let lease = Duration::from_secs(1);
        let end = LogPosition::default();
        for refused in [
            witness.renew("a", record.epoch, lease, end),
            witness.acquire("a", lease, "restart"),
            witness.acquire("b", lease, "failover"),
            witness.transfer("a", record.epoch, "b", lease, "move"),
        ] {
            assert!(
                matches!(refused, Err(WitnessError::Unreachable(_))),
                "{refused:?}"
            );
        }
        let names: Vec<String> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![format!("epoch-{:020}.json", 1)],
            "nothing written"
        );
        witness.bind(Some(record.cluster.clone()));
        witness.renew("a", record.epoch, lease, end).unwrap();
    }

    /// Finding 1: an I/O error on the share (ESTALE, EIO) is the witness unreachable, never
    /// a witness without a record (which the old code took for "no owner yet").
    #[test]
    fn an_io_error_is_unreachable_never_absence() {
        for kind in [io::ErrorKind::Other, io::ErrorKind::TimedOut] {
            let directory = tempfile::tempdir().unwrap();
            let fs = Arc::new(Failing {
                failing: AtomicBool::new(false),
                kind,
            });
            let witness = Witness::new(fs.clone(), directory.path(), Duration::ZERO);
            witness.init("a", "init").unwrap();
            let lease = Duration::from_secs(1);
            witness.acquire("a", lease, "start").unwrap();
            fs.failing.store(true, Ordering::SeqCst);
            assert!(witness.read().is_err(), "{kind:?} read as absence");
            assert!(witness.read_initialized().is_err());
            assert!(matches!(
                witness.acquire("b", lease, "x"),
                Err(WitnessError::Unreachable(ReplError::Io { .. }))
            ));
            assert!(matches!(
                witness.renew("a", 1, lease, LogPosition::default()),
                Err(WitnessError::Unreachable(ReplError::Io { .. }))
            ));
            assert!(matches!(
                witness.init("b", "x"),
                Err(InitError::Unreachable(_))
            ));
            fs.failing.store(false, Ordering::SeqCst);
            assert_eq!(witness.read().unwrap().unwrap().owner, "a");
        }
        // A missing witness directory (an unmounted share's parent) is an error too.
        let directory = tempfile::tempdir().unwrap();
        let witness = Witness::new(
            Arc::new(OsFileSystem),
            &directory.path().join("missing"),
            Duration::ZERO,
        );
        assert!(witness.read().is_err());
    }
}
