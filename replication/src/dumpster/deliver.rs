//! Delivering a message to a store that keys messages by id, at most once.

use bluejet_engine::{Database, DbError};

/// What the store did with a delivered (or resubmitted) message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The message was new and is now committed.
    Stored,
    /// The store already had a message with this id and dropped this copy.
    Duplicate,
}

/// Stores `body` under `message_id` in `table` unless the id is already there: the check and
/// the insert are in one write transaction, so two deliveries of one id store it once. A
/// duplicate is answered only with the commit gate's confirmation, as a commit would be
/// (a node whose lease ended refuses it).
///
/// ```
/// use bluejet_engine::db::{Database, Options};
/// use bluejet_replication::dumpster::{deliver_once, Delivery};
/// let directory = tempfile::tempdir().unwrap();
/// let db = Database::open(directory.path(), Options::default()).unwrap();
/// assert_eq!(deliver_once(&db, "mail", "<a@x>", b"hello").unwrap(), Delivery::Stored);
/// assert_eq!(deliver_once(&db, "mail", "<a@x>", b"hello").unwrap(), Delivery::Duplicate);
/// db.close().unwrap();
/// ```
pub fn deliver_once(
    db: &Database,
    table: &str,
    message_id: &str,
    body: &[u8],
) -> Result<Delivery, DbError> {
    let mut write = db.begin_write()?;
    write.create_table(table)?;
    if write.get(table, message_id.as_bytes())?.is_some() {
        // "Already stored" only from a node that may still acknowledge: a fenced node's copy
        // may be in a tail the new active lacks, and the transport would then drop a
        // message nobody resubmits (found by the cluster simulation's model of duplicates).
        write.confirm_unchanged()?;
        return Ok(Delivery::Duplicate);
    }
    write.insert(table, message_id.as_bytes(), body)?;
    write.commit()?;
    Ok(Delivery::Stored)
}
