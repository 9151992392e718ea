//! The event log: one JSON object per line, each with its own checksum, appended and synced.
//!
//! A line is `{"crc32c": N, "event": {...}}` with `N` the crc32c of the event serialised
//! compactly. A reader skips (and counts) lines that do not check out, such as a torn last
//! line after a crash.

use crate::error::ReplError;
use crate::sealed::read_file;
use bluejet_engine::file::{FileHandle, FileSystem, OpenMode};
use bluejet_engine::log::now_micros;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// µs since the Unix epoch.
    pub time_micros: u64,
    /// What happened, in one word (`shipped`, `quarantined`, `state`, `suspended`, ...).
    pub kind: String,
    /// The generation concerned, if any.
    pub generation: Option<u32>,
    /// Details.
    pub message: String,
    /// The node that recorded it (cluster events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The cluster epoch then (cluster events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The operator's comment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An append-only event log.
pub struct EventLog {
    path: PathBuf,
    file: Mutex<Option<Arc<dyn FileHandle>>>,
    fs: Arc<dyn FileSystem>,
    /// The node events are recorded for, if the replica belongs to a cluster node.
    node: Option<String>,
}

impl EventLog {
    /// The event log at `path` (created on the first event).
    pub fn new(fs: Arc<dyn FileSystem>, path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            file: Mutex::new(None),
            fs,
            node: None,
        }
    }

    /// Records `node` in every event (a cluster node's replica).
    pub fn with_node(mut self, node: Option<String>) -> Self {
        self.node = node;
        self
    }

    /// Appends an operator's action (suspend, resume) with its comment.
    pub fn record_comment(&self, kind: &str, message: &str, comment: &str) {
        self.record_event(Event {
            time_micros: now_micros(),
            kind: kind.to_owned(),
            generation: None,
            message: message.to_owned(),
            node: self.node.clone(),
            epoch: None,
            comment: Some(comment.to_owned()),
        });
    }

    /// Appends an event now.
    pub fn record(&self, kind: &str, generation: Option<u32>, message: impl Into<String>) {
        self.record_event(Event {
            time_micros: now_micros(),
            kind: kind.to_owned(),
            generation,
            message: message.into(),
            node: self.node.clone(),
            epoch: None,
            comment: None,
        });
    }

    /// Appends `event` (its time as given).
    pub fn record_event(&self, event: Event) {
        // The event log is a record for operators: failing to write it must not stop
        // replication, whose state is in the status file and the replica's own files.
        let _ = self.append(&event);
    }

    fn append(&self, event: &Event) -> Result<(), ReplError> {
        let body = serde_json::to_value(event).expect("an event serialises");
        let crc = crc32c::crc32c(body.to_string().as_bytes());
        let mut line = serde_json::json!({ "crc32c": crc, "event": body }).to_string();
        line.push('\n');
        let mut file = self.file.lock();
        if file.is_none() {
            *file = Some(self.open()?);
        }
        let handle = file.as_ref().expect("opened above");
        let io = |error| ReplError::io(&self.path, "appending to", error);
        // The end is read at every append: another process (the tool's suspend or resume)
        // may have appended since.
        let length = handle.size().map_err(io)?;
        // After a torn last line (no newline), start a new line: the torn one stays bad
        // alone instead of taking this event with it.
        let mut last = [b'\n'];
        if length > 0 {
            handle.read_exact_at(&mut last, length - 1).map_err(io)?;
        }
        if last[0] != b'\n' {
            line.insert(0, '\n');
        }
        handle.write_at(line.as_bytes(), length).map_err(io)?;
        handle.sync_data().map_err(io)
    }

    fn open(&self) -> Result<Arc<dyn FileHandle>, ReplError> {
        let mode = if self.fs.exists(&self.path) {
            OpenMode::ReadWrite
        } else {
            OpenMode::CreateNew
        };
        let handle = self
            .fs
            .open(&self.path, mode)
            .map_err(|error| ReplError::io(&self.path, "opening", error))?;
        if mode == OpenMode::CreateNew {
            let directory = self.path.parent().unwrap_or(Path::new("."));
            self.fs
                .sync_directory(directory)
                .map_err(|error| ReplError::io(directory, "syncing", error))?;
        }
        Ok(handle)
    }
}

/// Reads every valid event of the log at `path`; returns them and the count of bad lines.
pub fn read_events(fs: &dyn FileSystem, path: &Path) -> Result<(Vec<Event>, usize), ReplError> {
    if !fs.exists(path) {
        return Ok((Vec::new(), 0));
    }
    let bytes = read_file(fs, path, 1 << 30)?;
    let mut events = Vec::new();
    let mut bad = 0;
    for line in bytes.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        match parse_line(line) {
            Some(event) => events.push(event),
            None => bad += 1,
        }
    }
    Ok((events, bad))
}

fn parse_line(line: &[u8]) -> Option<Event> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let body = value.get("event")?;
    let crc = value.get("crc32c")?.as_u64()?;
    (crc32c::crc32c(body.to_string().as_bytes()) as u64 == crc)
        .then(|| serde_json::from_value(body.clone()).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluejet_engine::file::OsFileSystem;

    #[test]
    fn an_event_after_a_torn_line_is_kept() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("events.jsonl");
        let fs: Arc<dyn FileSystem> = Arc::new(OsFileSystem);
        EventLog::new(Arc::clone(&fs), &path).record("first", Some(1), "one");
        // A crash tore the next line.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(br#"{"crc32c": 1, "event": {"time_mic"#);
        std::fs::write(&path, &bytes).unwrap();
        EventLog::new(Arc::clone(&fs), &path).record("second", None, "two");
        let (events, bad) = read_events(fs.as_ref(), &path).unwrap();
        let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
        assert_eq!(kinds, ["first", "second"]);
        assert_eq!(bad, 1);
    }
}
