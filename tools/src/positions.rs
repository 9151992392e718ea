//! Why a database header's checkpoint and its log's checkpoint file (`E00.chk`) name the
//! same position or different ones: `header` and `checkpoint dump` both say it.

use bluejet_engine::LogPosition;
use bluejet_engine::{DbHeader, DbState};

/// One sentence relating the header's checkpoint to the log checkpoint file's position
/// (`None`: the file is missing or unusable).
pub fn explain(header: &DbHeader, log_checkpoint: Option<LogPosition>) -> String {
    let ours = header.checkpoint;
    let Some(theirs) = log_checkpoint else {
        return format!(
            "no usable log checkpoint file beside the database (a passive copy's log is in its \
             replica's logs/): replay or recovery starts at the header's checkpoint {ours}"
        );
    };
    let clean = header.state == DbState::CleanShutdown;
    match (clean, theirs.cmp(&ours)) {
        (_, std::cmp::Ordering::Equal) => {
            format!("the header and the log's checkpoint file agree: {ours}")
        }
        (true, std::cmp::Ordering::Less) => format!(
            "the database was closed cleanly at {ours}, the log's end after its Stop record; \
             the log's checkpoint file names {theirs}: it follows the header one checkpoint \
             behind (the log is kept from the older header copy's checkpoint, so that either \
             copy can be recovered). A clean database needs no log: nothing is replayed"
        ),
        (false, std::cmp::Ordering::Less) => format!(
            "recovery starts at the header's checkpoint {ours}; the log's checkpoint file \
             names {theirs}: it follows the header one checkpoint behind (the log is kept from \
             the older header copy's checkpoint, so that either copy can be recovered)"
        ),
        (_, std::cmp::Ordering::Greater) => format!(
            "the log's checkpoint file names {theirs}, past the header's checkpoint {ours}: \
             the log went on without this database file (a file restored or copied from an \
             earlier state?); opening it replays from {ours} if the log still holds it"
        ),
    }
}
