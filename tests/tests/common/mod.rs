//! Helpers the replication, backup and cluster tests share: the active's options, a
//! replica's fast settings, a model's content digest, a file system standing for a
//! network link that can be cut, (in `nodes`) two cluster nodes' fast configuration and
//! waits, (in `network`) the same over TLS through (in `proxy`) fault-injecting TCP
//! proxies.
#![allow(dead_code)]

pub mod damage;
pub mod network;
pub mod nodes;
pub mod proxy;

use bluejet_engine::file::{
    FileHandle, FileSystem, Holder, LockAttempt, LockProbe, OpenMode, OsFileSystem,
};
use bluejet_engine::Options;
use bluejet_replication::verify::{ContentDigest, TableDigest};
use bluejet_replication::ReplicaConfig;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the tests expect a database to hold: table → key → value.
pub type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Small generations (many rolls) and no idle rolls (the tests roll).
pub fn active_options() -> Options {
    let mut options = Options::default();
    options.log.generation_bytes = 128 << 10;
    options.log.idle_roll_interval = None;
    options
}

/// A replica of `active` in `replica` that polls often, retries soon and changes state at
/// once.
pub fn replica_config(active: &Path, replica: &Path) -> ReplicaConfig {
    let mut config = ReplicaConfig::new(active, replica);
    config.poll_interval = Duration::from_millis(10);
    config.replay.retry_after = Duration::from_millis(50);
    config.thresholds.settle = Duration::ZERO;
    config
}

/// The model's digest, as `verify::digest` computes it.
pub fn model_digest(model: &Model) -> ContentDigest {
    model
        .iter()
        .map(|(name, table)| {
            let mut digest = TableDigest::default();
            for (key, value) in table {
                digest.add(key, value);
            }
            (name.clone(), digest)
        })
        .collect()
}

/// The real disk seen through a link (a share, a network path) that can be cut: while it
/// is, every operation fails with `NotConnected` and nothing exists.
#[derive(Debug, Default)]
pub struct Link {
    cut: AtomicBool,
}

impl Link {
    /// A link that is up.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Cuts or restores the link.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    fn check(&self) -> io::Result<()> {
        match self.cut.load(Ordering::SeqCst) {
            true => Err(io::Error::new(io::ErrorKind::NotConnected, "link cut")),
            false => Ok(()),
        }
    }
}

impl FileSystem for Link {
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
