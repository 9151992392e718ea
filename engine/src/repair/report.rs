//! What a repair found, kept and lost.

use crate::page::DbState;
use std::path::PathBuf;

/// A page the repair could not use, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscardedPage {
    /// The page number.
    pub page: u64,
    /// Why: a bad checksum, a wrong page number, a malformed page.
    pub problem: String,
}

/// A key range lost with one page: the keys from `lower` (inclusive) to `upper` (exclusive)
/// that its parent gave the page, and the surviving neighbours around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostRange {
    /// The page that was lost.
    pub page: u64,
    /// Why it was lost.
    pub problem: String,
    /// The range's lower bound (inclusive); `None`: from the first key.
    pub lower: Option<Vec<u8>>,
    /// The range's upper bound (exclusive); `None`: to the last key.
    pub upper: Option<Vec<u8>>,
    /// The greatest key that survives below the range, if any.
    pub after: Option<Vec<u8>>,
    /// The least key that survives above the range, if any.
    pub before: Option<Vec<u8>>,
    /// Entries within the range recovered from orphaned pages below the lost one (a lost
    /// branch whose leaves were readable loses nothing but the branch).
    pub recovered_entries: u64,
}

/// An entry whose leaf survived but whose long value did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostEntry {
    /// The key.
    pub key: Vec<u8>,
    /// The leaf holding it.
    pub leaf: u64,
    /// Why its value could not be read.
    pub problem: String,
}

/// One table of the repaired database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRepair {
    /// The table's name.
    pub name: String,
    /// Entries the catalog counted before (`None` when its catalog entry was unreadable).
    pub entries_before: Option<u64>,
    /// Entries after the repair.
    pub entries_after: u64,
    /// Key ranges lost with their pages.
    pub lost_ranges: Vec<LostRange>,
    /// Entries lost with their long values.
    pub lost_entries: Vec<LostEntry>,
    /// For a table whose name was lost with the catalog: the root page of the orphaned tree
    /// it was recovered from (its name is then `recovered-<page>`).
    pub recovered_from: Option<u64>,
}

impl TableRepair {
    /// Whether anything of this table was lost.
    pub fn lost_anything(&self) -> bool {
        !self.lost_ranges.is_empty()
            || !self.lost_entries.is_empty()
            || self.recovered_from.is_some()
            || self
                .entries_before
                .is_some_and(|before| before != self.entries_after)
    }
}

/// The outcome of [`super::repair`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairReport {
    /// The repaired database file.
    pub database: PathBuf,
    /// The directory keeping the damaged original and its old log generations.
    pub kept_aside: PathBuf,
    /// The header's repair count after this repair.
    pub repair_count: u64,
    /// The state the damaged database was in.
    pub state_before: DbState,
    /// Whether a dirty database was repaired on `force` (its log's changes after the
    /// checkpoint are not in the repaired database).
    pub forced: bool,
    /// Why each header copy was unusable, if one was.
    pub damaged_header_copies: Vec<(u8, String)>,
    /// Pages read.
    pub pages_scanned: u64,
    /// Pages discarded.
    pub discarded_pages: Vec<DiscardedPage>,
    /// Why the free list could not be read, if it could not (free pages then look orphaned:
    /// see `docs/design.md`, "Repair").
    pub free_list_problem: Option<String>,
    /// Ranges of table names lost with catalog pages (their `recovered_entries` count the
    /// table names recovered within them from orphaned catalog leaves).
    pub catalog_lost: Vec<LostRange>,
    /// Every table of the repaired database, in name order.
    pub tables: Vec<TableRepair>,
    /// Tables the catalog names whose every entry was lost.
    pub tables_lost: Vec<String>,
    /// Orphaned subtrees that fit no lost range and were dropped (old versions left by a
    /// damaged free list).
    pub orphans_dropped: u64,
    /// Entries the header counted at the last checkpoint.
    pub entries_before: u64,
    /// Entries after the repair.
    pub entries_after: u64,
    /// Log files moved aside with the original (the repaired database starts a new stream).
    pub log_files_moved: Vec<String>,
}

impl RepairReport {
    /// Whether the repair lost anything (a repair of a sound database loses nothing). A
    /// forced repair counts as a loss: what only the log held is gone, and nobody counted it.
    pub fn lost_anything(&self) -> bool {
        self.forced
            || !self.discarded_pages.is_empty()
            || !self.catalog_lost.is_empty()
            || self.tables.iter().any(TableRepair::lost_anything)
            || self.entries_after != self.entries_before
    }
}
