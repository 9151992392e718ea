//! Committed states of the database, and the readers holding them.

use crate::log::LogPosition;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One committed state: the catalog root after a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// The transaction number (the header's state version counts the same way).
    pub number: u64,
    /// The catalog root page (0: no tables).
    pub catalog_root: u64,
    /// The log position just after the transaction's commit record.
    pub end: LogPosition,
    /// The entries and content checksum of every table (see [`crate::content`]).
    pub content: crate::content::ContentTotals,
}

/// The newest durable state, which new readers get, and the versions readers hold.
pub struct Snapshots {
    published: Mutex<Arc<Version>>,
    readers: Mutex<BTreeMap<u64, usize>>,
}

impl Snapshots {
    /// Starts with `version` published.
    pub fn new(version: Version) -> Self {
        Self {
            published: Mutex::new(Arc::new(version)),
            readers: Mutex::new(BTreeMap::new()),
        }
    }

    /// Publishes `version` unless a newer one is already published.
    pub fn publish(&self, version: Arc<Version>) {
        let mut published = self.published.lock();
        if version.number > published.number {
            *published = version;
        }
    }

    /// The published version, registered as read until [`Snapshots::release`].
    pub fn acquire(&self) -> Arc<Version> {
        // Registering under the `published` lock keeps `horizon` from missing a reader
        // between reading the version and registering it.
        let published = self.published.lock();
        *self.readers.lock().entry(published.number).or_insert(0) += 1;
        Arc::clone(&published)
    }

    /// Ends a reader of `number`.
    pub fn release(&self, number: u64) {
        let mut readers = self.readers.lock();
        let count = readers.get_mut(&number).expect("a registered reader");
        *count -= 1;
        if *count == 0 {
            readers.remove(&number);
        }
    }

    /// The oldest version any reader holds or a new reader could get.
    pub fn horizon(&self) -> u64 {
        let published = self.published.lock();
        let oldest = self.readers.lock().keys().next().copied();
        oldest.map_or(published.number, |oldest| oldest.min(published.number))
    }

    /// The published version.
    pub fn published(&self) -> Arc<Version> {
        Arc::clone(&self.published.lock())
    }
}
