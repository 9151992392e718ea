//! The event log: one JSON object per line, each with its own checksum, appended and synced.
//!
//! A line is `{"crc32c": N, "event": {...}}` with `N` the crc32c of the event serialised
//! compactly. A reader skips (and counts) lines that do not check out, such as a torn last
//! line after a crash.
//!
//! **Bound.** Before an append would take `events.jsonl` past [`ROTATE_BYTES`] (1 MiB), the
//! file is renamed `events.1.jsonl` (replacing the previous one) and a new one started: the
//! log never holds more than two files of about 1 MiB each. [`read_all_events`] reads both,
//! oldest first; [`EventFollower`] reads new lines incrementally and follows a rotation.
//!
//! **Repeats.** An event identical to the last one this log wrote (kind, generation,
//! message, node, epoch, comment) within [`COALESCE`] (60 s) of it is not written; the next
//! different event, or the first identical one after the window, is preceded by one
//! `repeated` event saying how many were left out and over what time. A condition that
//! fails every second thus writes two lines a minute, not sixty.

use crate::error::ReplError;
use crate::sealed::read_file;
use bluejet_engine::file::{FileHandle, FileSystem, OpenMode};
use bluejet_engine::log::now_micros;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The size past which `events.jsonl` is rotated to `events.1.jsonl`.
pub const ROTATE_BYTES: u64 = 1 << 20;
/// How long identical events are coalesced.
pub const COALESCE: Duration = Duration::from_secs(60);

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

impl Event {
    /// Whether `other` says the same thing (all but the time).
    fn same_as(&self, other: &Event) -> bool {
        Event {
            time_micros: other.time_micros,
            ..self.clone()
        } == *other
    }
}

/// The identical events left out since the last one written.
#[derive(Default)]
struct Repeats {
    /// The last event written, and when (monotonic).
    last: Option<(Event, Instant)>,
    /// How many identical ones were left out since, and the time of the latest (µs).
    left_out: u64,
    latest_micros: u64,
}

/// An append-only event log.
pub struct EventLog {
    path: PathBuf,
    fs: Arc<dyn FileSystem>,
    /// The node events are recorded for, if the replica belongs to a cluster node.
    node: Option<String>,
    rotate_bytes: u64,
    coalesce: Duration,
    repeats: Mutex<Repeats>,
}

impl EventLog {
    /// The event log at `path` (created on the first event).
    pub fn new(fs: Arc<dyn FileSystem>, path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            fs,
            node: None,
            rotate_bytes: ROTATE_BYTES,
            coalesce: COALESCE,
            repeats: Mutex::new(Repeats::default()),
        }
    }

    /// Records `node` in every event (a cluster node's replica).
    pub fn with_node(mut self, node: Option<String>) -> Self {
        self.node = node;
        self
    }

    /// Other bounds (tests): rotation size and how long identical events are coalesced.
    pub fn with_bounds(mut self, rotate_bytes: u64, coalesce: Duration) -> Self {
        self.rotate_bytes = rotate_bytes;
        self.coalesce = coalesce;
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

    /// Appends `event` (its time as given), unless it repeats the last one within the
    /// coalescing window.
    pub fn record_event(&self, event: Event) {
        let mut repeats = self.repeats.lock();
        if let Some((last, written)) = &repeats.last {
            if last.same_as(&event) && written.elapsed() < self.coalesce {
                repeats.left_out += 1;
                repeats.latest_micros = event.time_micros;
                return;
            }
        }
        self.write_repeats(&mut repeats);
        // The event log is a record for operators: failing to write it must not stop
        // replication, whose state is in the status file and the replica's own files.
        if let Err(error) = self.append(&event) {
            tracing::warn!(%error, "writing the event log");
        }
        repeats.last = Some((event, Instant::now()));
    }

    /// Writes the count of identical events left out, if any.
    pub fn flush(&self) {
        self.write_repeats(&mut self.repeats.lock());
    }

    fn write_repeats(&self, repeats: &mut Repeats) {
        if repeats.left_out == 0 {
            return;
        }
        let Some((last, written)) = &repeats.last else {
            return;
        };
        let event = Event {
            time_micros: repeats.latest_micros,
            kind: "repeated".into(),
            generation: last.generation,
            message: format!(
                "{}: {} (repeated {} more times over {:.0} s)",
                last.kind,
                last.message,
                repeats.left_out,
                written.elapsed().as_secs_f64()
            ),
            node: last.node.clone(),
            epoch: last.epoch,
            comment: last.comment.clone(),
        };
        if let Err(error) = self.append(&event) {
            tracing::warn!(%error, "writing the event log");
        }
        repeats.left_out = 0;
    }

    fn append(&self, event: &Event) -> Result<(), ReplError> {
        let body = serde_json::to_value(event).expect("an event serialises");
        let crc = crc32c::crc32c(body.to_string().as_bytes());
        let mut line = serde_json::json!({ "crc32c": crc, "event": body }).to_string();
        line.push('\n');
        let io = |error| ReplError::io(&self.path, "appending to", error);
        // Opened at every append: another process (the tool's suspend or resume) may have
        // appended or rotated since.
        let mut handle = self.open()?;
        // The end is read at every append, for the same reason.
        let mut length = handle.size().map_err(io)?;
        if length > 0 && length + line.len() as u64 > self.rotate_bytes {
            drop(handle);
            self.rotate()?;
            handle = self.open()?;
            length = handle.size().map_err(io)?;
        }
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

    /// Renames the log `events.1.jsonl` (replacing the previous one).
    fn rotate(&self) -> Result<(), ReplError> {
        let rotated = rotated_path(&self.path);
        self.fs
            .rename(&self.path, &rotated)
            .map_err(|error| ReplError::io(&self.path, "rotating", error))?;
        let directory = self.path.parent().unwrap_or(Path::new("."));
        self.fs
            .sync_directory(directory)
            .map_err(|error| ReplError::io(directory, "syncing", error))
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

impl Drop for EventLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Where the log at `path` is rotated to: `events.jsonl` → `events.1.jsonl`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rotated = match name.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}.1.{extension}"),
        None => format!("{name}.1"),
    };
    path.with_file_name(rotated)
}

/// Reads every valid event of the log at `path` (that file only); returns them and the
/// count of bad lines.
pub fn read_events(fs: &dyn FileSystem, path: &Path) -> Result<(Vec<Event>, usize), ReplError> {
    if !fs.exists(path) {
        return Ok((Vec::new(), 0));
    }
    let bytes = read_file(fs, path, 1 << 30)?;
    Ok(parse_lines(&bytes))
}

/// Reads the rotated log and then the current one, oldest event first.
pub fn read_all_events(fs: &dyn FileSystem, path: &Path) -> Result<(Vec<Event>, usize), ReplError> {
    let (mut events, mut bad) = read_events(fs, &rotated_path(path))?;
    let (newer, newer_bad) = read_events(fs, path)?;
    events.extend(newer);
    bad += newer_bad;
    Ok((events, bad))
}

fn parse_lines(bytes: &[u8]) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut bad = 0;
    for line in bytes.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        match parse_line(line) {
            Some(event) => events.push(event),
            None => bad += 1,
        }
    }
    (events, bad)
}

fn parse_line(line: &[u8]) -> Option<Event> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let body = value.get("event")?;
    let crc = value.get("crc32c")?.as_u64()?;
    (crc32c::crc32c(body.to_string().as_bytes()) as u64 == crc)
        .then(|| serde_json::from_value(body.clone()).ok())
        .flatten()
}

/// Follows an event log, reading only what was appended since the last look, and
/// following a rotation (the rest of the rotated file, then the new one from its start).
///
/// The file followed is told by its first line (every line holds a time and a checksum):
/// no inode, so it works through any [`FileSystem`]. A log rotated twice between two looks
/// loses the events of the file in between.
pub struct EventFollower {
    path: PathBuf,
    /// Bytes of the followed file already read (whole lines).
    offset: u64,
    /// The followed file's first line, once it has one.
    first_line: Option<Vec<u8>>,
}

impl EventFollower {
    /// Follows the log at `path` from its start.
    pub fn from_start(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            offset: 0,
            first_line: None,
        }
    }

    /// Follows the log at `path` from its current end: only events added from now on.
    pub fn from_end(fs: &dyn FileSystem, path: &Path) -> Self {
        let mut follower = Self::from_start(path);
        // An unreadable log is followed from its start once it can be read.
        if let Err(error) = follower.poll(fs) {
            tracing::debug!(%error, "reading the event log's end");
        }
        follower
    }

    /// The events appended since the last call, and the count of bad lines among them.
    pub fn poll(&mut self, fs: &dyn FileSystem) -> Result<(Vec<Event>, usize), ReplError> {
        let mut bytes = Vec::new();
        let current = first_line(fs, &self.path)?;
        if self.first_line.is_some() && current != self.first_line {
            // Rotated: the rest of the file followed, if it is the rotated one now.
            let rotated = rotated_path(&self.path);
            if first_line(fs, &rotated)? == self.first_line {
                let (rest, _) = read_from(fs, &rotated, self.offset)?;
                bytes.extend_from_slice(&rest);
            }
            self.offset = 0;
            self.first_line = None;
        }
        let (new, consumed) = read_from(fs, &self.path, self.offset)?;
        bytes.extend_from_slice(&new[..consumed]);
        self.offset += consumed as u64;
        if self.first_line.is_none() && self.offset > 0 {
            self.first_line = current;
        }
        Ok(parse_lines(&bytes))
    }
}

/// The first whole line of the file at `path` (`None` without a file or a whole line).
fn first_line(fs: &dyn FileSystem, path: &Path) -> Result<Option<Vec<u8>>, ReplError> {
    if !fs.exists(path) {
        return Ok(None);
    }
    let io = |error| ReplError::io(path, "reading", error);
    let handle = fs.open(path, OpenMode::Read).map_err(io)?;
    let size = handle.size().map_err(io)?;
    let mut bytes = vec![0; size.min(64 << 10) as usize];
    handle.read_exact_at(&mut bytes, 0).map_err(io)?;
    Ok(bytes
        .iter()
        .position(|&b| b == b'\n')
        .map(|end| bytes[..end].to_vec()))
}

/// The bytes of the file at `path` from `offset`, and how many of them are whole lines.
fn read_from(fs: &dyn FileSystem, path: &Path, offset: u64) -> Result<(Vec<u8>, usize), ReplError> {
    if !fs.exists(path) {
        return Ok((Vec::new(), 0));
    }
    let io = |error| ReplError::io(path, "reading", error);
    let handle = fs.open(path, OpenMode::Read).map_err(io)?;
    let size = handle.size().map_err(io)?;
    if size <= offset {
        return Ok((Vec::new(), 0));
    }
    let mut bytes =
        vec![0; usize::try_from(size - offset).map_err(|error| io(std::io::Error::other(error)))?];
    handle.read_exact_at(&mut bytes, offset).map_err(io)?;
    let whole = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |end| end + 1);
    Ok((bytes, whole))
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

    fn kinds(events: &[Event]) -> Vec<&str> {
        events.iter().map(|event| event.kind.as_str()).collect()
    }

    #[test]
    fn identical_events_are_coalesced_with_a_count() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("events.jsonl");
        let fs: Arc<dyn FileSystem> = Arc::new(OsFileSystem);
        let log = EventLog::new(Arc::clone(&fs), &path);
        for _ in 0..100 {
            log.record("copy-failed", Some(7), "the disk is full");
        }
        log.record("state", None, "Healthy");
        let (events, bad) = read_events(fs.as_ref(), &path).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(kinds(&events), ["copy-failed", "repeated", "state"]);
        assert!(
            events[1]
                .message
                .starts_with("copy-failed: the disk is full (repeated 99 more times"),
            "{:?}",
            events[1]
        );
        assert_eq!(events[1].generation, Some(7));
        // Past the window, the same event is written again (after its count).
        let log = EventLog::new(Arc::clone(&fs), &path).with_bounds(ROTATE_BYTES, Duration::ZERO);
        log.record("gap", None, "same");
        log.record("gap", None, "same");
        let (events, _) = read_events(fs.as_ref(), &path).unwrap();
        assert_eq!(kinds(&events)[3..], ["gap", "gap"]);
        // A log dropped with repeats left out writes their count.
        let log = EventLog::new(Arc::clone(&fs), &path);
        log.record("error", None, "again");
        log.record("error", None, "again");
        drop(log);
        let (events, _) = read_events(fs.as_ref(), &path).unwrap();
        assert_eq!(kinds(&events)[5..], ["error", "repeated"]);
    }

    #[test]
    fn the_log_rotates_at_its_bound_and_keeps_one_old_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("events.jsonl");
        let fs: Arc<dyn FileSystem> = Arc::new(OsFileSystem);
        let log = EventLog::new(Arc::clone(&fs), &path).with_bounds(4096, COALESCE);
        for index in 0..500 {
            log.record("shipped", Some(index), format!("generation {index}"));
        }
        let rotated = directory.path().join("events.1.jsonl");
        assert_eq!(rotated_path(&path), rotated);
        for file in [&path, &rotated] {
            let size = std::fs::metadata(file).unwrap().len();
            assert!(size <= 4096, "{} is {size} bytes", file.display());
        }
        let names: Vec<String> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let (events, bad) = read_all_events(fs.as_ref(), &path).unwrap();
        assert_eq!(bad, 0);
        let generations: Vec<u32> = events.iter().filter_map(|e| e.generation).collect();
        assert_eq!(generations.last(), Some(&499));
        assert!(generations.windows(2).all(|pair| pair[1] == pair[0] + 1));
    }

    #[test]
    fn a_follower_reads_only_new_events_across_a_rotation() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("events.jsonl");
        let fs: Arc<dyn FileSystem> = Arc::new(OsFileSystem);
        let log = EventLog::new(Arc::clone(&fs), &path).with_bounds(2048, COALESCE);
        log.record("old", None, "before the follower");
        let mut follower = EventFollower::from_end(fs.as_ref(), &path);
        assert!(follower.poll(fs.as_ref()).unwrap().0.is_empty());
        let mut seen = Vec::new();
        for index in 0..200 {
            log.record("shipped", Some(index), "x");
            if index % 7 == 0 {
                seen.extend(follower.poll(fs.as_ref()).unwrap().0);
            }
        }
        seen.extend(follower.poll(fs.as_ref()).unwrap().0);
        let generations: Vec<u32> = seen.iter().filter_map(|e| e.generation).collect();
        assert_eq!(generations, (0..200).collect::<Vec<_>>());
        assert!(fs.exists(&rotated_path(&path)), "it rotated");
        // A torn line is left until it is whole.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"{\"crc32c\": 1").unwrap();
        assert!(follower.poll(fs.as_ref()).unwrap().0.is_empty());
        log.record("after", None, "the torn line");
        let (events, bad) = follower.poll(fs.as_ref()).unwrap();
        assert_eq!((kinds(&events), bad), (vec!["after"], 1));
    }
}
