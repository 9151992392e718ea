//! Summaries of a database's content, and how two of them differ.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One table's part of the content checksum.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableContent {
    /// The table's name.
    pub table: String,
    /// Its entries.
    pub entries: u64,
    /// The sum (mod 2^64) of its entries' hashes.
    pub checksum: u64,
}

/// The whole database's entries and checksum (the sum of its tables').
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentTotals {
    /// Entries in every table.
    pub entries: u64,
    /// The sum (mod 2^64) of every table's checksum.
    pub checksum: u64,
}

impl ContentTotals {
    /// These totals with `table`'s part added.
    pub fn plus(self, entries: u64, checksum: u64) -> Self {
        Self {
            entries: self.entries.wrapping_add(entries),
            checksum: self.checksum.wrapping_add(checksum),
        }
    }

    /// These totals with `table`'s part taken away.
    pub fn minus(self, entries: u64, checksum: u64) -> Self {
        Self {
            entries: self.entries.wrapping_sub(entries),
            checksum: self.checksum.wrapping_sub(checksum),
        }
    }
}

/// Every table's part, in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSummary {
    /// The tables, sorted by name, each at most once.
    pub tables: Vec<TableContent>,
}

/// The first table whose content differs between an expected summary and a found one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContentDifference {
    /// The table.
    pub table: String,
    /// Its entries and checksum where expected (absent: no such table, or empty).
    pub expected: Option<(u64, u64)>,
    /// Its entries and checksum where found.
    pub found: Option<(u64, u64)>,
}

impl ContentSummary {
    /// The database's totals.
    pub fn totals(&self) -> ContentTotals {
        self.tables
            .iter()
            .fold(ContentTotals::default(), |totals, table| {
                totals.plus(table.entries, table.checksum)
            })
    }

    /// The database's checksum.
    pub fn checksum(&self) -> u64 {
        self.totals().checksum
    }

    /// The entries of every table.
    pub fn entries(&self) -> u64 {
        self.totals().entries
    }

    /// The part of `table`, if it has entries.
    pub fn table(&self, table: &str) -> Option<&TableContent> {
        self.tables
            .iter()
            .find(|content| content.table == table && !content.is_empty())
    }

    /// The first table (in name order) whose entries or checksum differ, `self` being what
    /// was expected. An empty table and an absent one hold the same content.
    pub fn first_difference(&self, found: &ContentSummary) -> Option<ContentDifference> {
        let mut names: Vec<&str> = self
            .tables
            .iter()
            .chain(&found.tables)
            .filter(|content| !content.is_empty())
            .map(|content| content.table.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().find_map(|name| {
            let expected = self.table(name).map(TableContent::pair);
            let found = found.table(name).map(TableContent::pair);
            (expected != found).then(|| ContentDifference {
                table: name.to_owned(),
                expected,
                found,
            })
        })
    }
}

impl TableContent {
    fn is_empty(&self) -> bool {
        self.entries == 0 && self.checksum == 0
    }

    fn pair(&self) -> (u64, u64) {
        (self.entries, self.checksum)
    }
}

impl fmt::Display for ContentDifference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |pair: Option<(u64, u64)>| match pair {
            Some((entries, checksum)) => format!("{entries} entries, checksum {checksum:016x}"),
            None => "no entries".to_owned(),
        };
        write!(
            formatter,
            "table {:?}: expected {}, found {}",
            self.table,
            side(self.expected),
            side(self.found)
        )
    }
}
