//! Checking the content summary a database stores (its catalog's counts and checksums, the
//! totals of its newest version) against a recount of every entry.

use super::database::Inner;
use super::read::ReadTransaction;
use super::DbError;
use crate::content::{recount, ContentDifference, ContentSummary};
use std::sync::Arc;

/// Recounts the newest committed state and compares it with what its catalog and version
/// store; the summary when they agree, [`DbError::ContentMismatch`] naming the first table
/// that differs when not.
pub(crate) fn check_stored(inner: &Arc<Inner>) -> Result<ContentSummary, DbError> {
    let read = ReadTransaction::begin(inner);
    let stored = read.content()?;
    let counted = recount(&read)?;
    let path = inner.store.file().path().to_owned();
    let mismatch = |difference| DbError::ContentMismatch {
        path: path.clone(),
        position: None,
        difference: Box::new(difference),
    };
    if let Some(difference) = stored.first_difference(&counted) {
        return Err(mismatch(difference));
    }
    let totals = read.totals();
    if totals != counted.totals() {
        return Err(mismatch(ContentDifference {
            table: "(all tables: the version's totals)".to_owned(),
            expected: Some((totals.entries, totals.checksum)),
            found: Some((counted.entries(), counted.checksum())),
        }));
    }
    Ok(counted)
}
