//! `bluejet repl suspend|resume --replica DIR --comment TEXT`: pause or continue shipping
//! and replay of a copy, like `Suspend-MailboxDatabaseCopy`. A running service picks the
//! change up within a status interval. Doing either twice is not an error.

use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_engine::file::OsFileSystem;
use bluejet_replication::control::Control;
use bluejet_replication::events::EventLog;
use bluejet_replication::identity::ReplicaIdentity;
use bluejet_replication::layout::ReplicaLayout;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// The JSON document of `repl suspend` and `repl resume`.
#[derive(Serialize)]
struct ControlDocument<'a> {
    kind: &'static str,
    replica: String,
    suspended: bool,
    changed: bool,
    comment: &'a str,
    passed: bool,
}

/// Suspends (`suspend` true) or resumes the copy in `replica` with the operator's comment.
pub fn run(replica: &Path, suspend: bool, comment: &str, json: bool) -> Result<Verdict, ToolError> {
    let layout = ReplicaLayout::new(replica);
    // Only a replica has a control file: refuse any other directory.
    ReplicaIdentity::read(&OsFileSystem, &layout)?;
    let changed = Control::set(&OsFileSystem, &layout, suspend, comment)?;
    let kind = if suspend { "suspended" } else { "resumed" };
    EventLog::new(Arc::new(OsFileSystem), &layout.events()).record_comment(
        kind,
        "by an operator",
        comment,
    );
    if json {
        output::print_json(&ControlDocument {
            kind: if suspend {
                "repl-suspend"
            } else {
                "repl-resume"
            },
            replica: replica.display().to_string(),
            suspended: suspend,
            changed,
            comment,
            passed: true,
        });
    } else if changed {
        crate::out!("{}: {kind}: {comment}", replica.display());
    } else {
        crate::out!(
            "{}: already {kind}; comment updated: {comment}",
            replica.display()
        );
    }
    Ok(Verdict::Clean)
}
