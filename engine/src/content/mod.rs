//! The content checksum: what a database holds, summarised so that two copies can be proven
//! equal without reading either whole.
//!
//! For every table the summary keeps the number of entries and the sum, modulo 2^64, of
//! [`entry_hash`] over its entries; the database's checksum is the sum of its tables'. A
//! commit updates it in O(changes): a removed or replaced entry's hash is subtracted, an
//! inserted one's added. The sum (not XOR) keeps two equal entries in two tables, or an
//! entry removed and re-inserted, from cancelling out.
//!
//! Where it lives (see `docs/design.md`): each table's count and checksum in its catalog
//! entry, the database's in the header at every checkpoint, and the whole summary in a
//! proof record in the log, written before the first commit of every generation. Replay
//! (recovery and a passive copy) compares its own summary with each proof record, and a
//! recount reads every entry to check the stored summary.
//!
//! ```
//! use bluejet_engine::format::content::entry_hash;
//! use bluejet_engine::{ContentSummary, TableContent};
//! let summary = ContentSummary {
//!     tables: vec![TableContent {
//!         table: "mail".into(),
//!         entries: 1,
//!         checksum: entry_hash("mail", b"<a@x>", b"hello"),
//!     }],
//! };
//! assert_eq!(summary.checksum(), entry_hash("mail", b"<a@x>", b"hello"));
//! assert!(summary.first_difference(&summary.clone()).is_none());
//! ```

mod hash;
mod proof;
mod recount;
mod summary;

pub use hash::{entry_hash, EntryHasher};
pub use proof::{ContentProof, MAX_LISTED_BYTES, PROOF_FORMAT};
pub use recount::recount;
pub use summary::{ContentDifference, ContentSummary, ContentTotals, TableContent};
