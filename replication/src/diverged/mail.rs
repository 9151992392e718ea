//! The messages among divergent transactions: a put whose value is an RFC 822 message
//! (a header block with a `Message-ID` or a `Subject`), its mailbox (the first component
//! of its key, as in `<mailbox>/<uid>`), and the folder of an index entry written with it
//! (another put of the transaction keyed `<mailbox>/<folder>/...`).

use super::decode::{Operation, Transaction};
use serde::{Deserialize, Serialize};

/// Header bytes looked at, at most.
const MAX_HEADER_BYTES: usize = 64 << 10;
/// Characters kept of any text taken from a value or key.
const MAX_TEXT: usize = 200;

/// A message stored by a divergent transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailItem {
    /// The table holding the message.
    pub table: String,
    /// The message's key (printable).
    pub key: String,
    /// The mailbox: the key's first component.
    pub mailbox: String,
    /// The folder of an index entry written in the same transaction, if any.
    pub folder: Option<String>,
    /// The `Message-ID` header.
    pub message_id: Option<String>,
    /// The `Subject` header.
    pub subject: Option<String>,
    /// The message's size in bytes.
    pub bytes: u64,
}

/// The messages a transaction stores.
pub fn messages(transaction: &Transaction) -> Vec<MailItem> {
    transaction
        .operations
        .iter()
        .filter_map(|operation| match operation {
            Operation::Put { table, key, value } => message(table, key, value),
            _ => None,
        })
        .map(|mut item| {
            item.folder = folder(transaction, &item);
            item
        })
        .collect()
}

fn message(table: &str, key: &[u8], value: &[u8]) -> Option<MailItem> {
    let message_id = header(value, "Message-ID");
    let subject = header(value, "Subject");
    if message_id.is_none() && subject.is_none() {
        return None;
    }
    let key = super::summary::printable(key);
    Some(MailItem {
        table: table.to_owned(),
        mailbox: key.split('/').next().unwrap_or_default().to_owned(),
        key,
        folder: None,
        message_id,
        subject,
        bytes: value.len() as u64,
    })
}

/// The folder of an index entry (`<mailbox>/<folder>/...`, not itself a message) that the
/// transaction writes beside the message.
fn folder(transaction: &Transaction, item: &MailItem) -> Option<String> {
    let prefix = format!("{}/", item.mailbox);
    transaction.operations.iter().find_map(|operation| {
        let Operation::Put { table, key, value } = operation else {
            return None;
        };
        if *table == item.table || header(value, "Message-ID").is_some() {
            return None;
        }
        let key = super::summary::printable(key);
        let mut parts = key.strip_prefix(&prefix)?.split('/');
        let folder = parts.next().filter(|folder| !folder.is_empty())?;
        parts.next().map(|_| folder.to_owned())
    })
}

/// The value of header `name` (its first line, cut to a bound) in the header block at the
/// start of `value`, if `value` starts with one.
///
/// ```
/// use bluejet_replication::diverged::mail::header;
/// let message = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody";
/// assert_eq!(header(message, "Subject").as_deref(), Some("hello"));
/// assert_eq!(header(b"uid=1 size=2", "Subject"), None);
/// ```
pub fn header(value: &[u8], name: &str) -> Option<String> {
    let block = &value[..value.len().min(MAX_HEADER_BYTES)];
    let end = block
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or(block.len());
    let text = String::from_utf8_lossy(&block[..end]);
    text.split("\r\n").find_map(|line| {
        let (field, rest) = line.split_once(':')?;
        if !field.eq_ignore_ascii_case(name) {
            return None;
        }
        Some(rest.trim().chars().take(MAX_TEXT).collect())
    })
}
