//! Ownership locks: one writer per directory, across processes and within one.
//!
//! On the real disk a lock is `flock(2)` (`LOCK_EX | LOCK_NB`) on the directory holding the
//! lock file (a directory cannot be deleted or replaced while it holds the database, unlike a
//! file); the kernel releases it when the holder closes it or dies. `flock` belongs to the
//! open file description, so a second open of the same directory conflicts even in the
//! process that holds the first. Once taken, the lock file is rewritten with the holder's
//! identity (one JSON line), which a refused opener and a read-only inspection read to name
//! the holder; it is opened without following links, and only if it is a regular file.
//! The simulated disk keeps its locks in memory (`simulated_locks`, with the `simulation`
//! feature).

use super::{FileSystem, OsFileSystem};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The ownership lock file of a database directory (active database or passive copy).
pub const LOCK_FILE_NAME: &str = "bluejet.lock";

/// Attempts at taking a lock another process only probes: a probe holds a shared lock for
/// microseconds, and must never make an owner's open fail. Kept short: a refusal is still
/// "at once", and callers that poll a lock (a node waiting for a seed) see it as it is.
const ATTEMPTS: u32 = 3;
const ATTEMPT_PAUSE: Duration = Duration::from_millis(1);
/// A holder record longer than this is not ours.
const MAX_RECORD_BYTES: u64 = 4096;

/// Who holds a lock: written into the lock file once it is taken (informational only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holding process.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
    /// When it took the lock, RFC 3339 UTC.
    pub since: String,
    /// When it took the lock, µs since the Unix epoch.
    pub since_micros: u64,
    /// The program: the executable's name and its subcommand (`bluejet node run`).
    pub program: String,
}

impl Holder {
    /// This process, now.
    pub fn current() -> Self {
        let since_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
            });
        Self {
            pid: std::process::id(),
            host: host_name(),
            since: rfc3339(since_micros),
            since_micros,
            program: program(),
        }
    }

    /// The record as stored: one JSON line.
    pub fn encode(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Whether the process the record names may still run: on this host, its pid must
    /// exist (`/proc/PID`); on another host, nothing here can tell.
    pub fn may_be_alive(&self) -> bool {
        self.host != host_name() || Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// A stored record; `None` if it is empty (being written) or not a holder record.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "pid {} on host {} since {} ({})",
            self.pid, self.host, self.since, self.program
        )
    }
}

/// The holder as a phrase, also when its record could not be read.
pub fn describe(holder: &Option<Holder>) -> String {
    match holder {
        Some(holder) => holder.to_string(),
        None => "another process or handle (its holder record is not readable yet)".into(),
    }
}

/// A lock taken: held until dropped (or the process dies).
pub struct OwnershipLock {
    path: PathBuf,
    _guard: Box<dyn Send + Sync>,
}

impl OwnershipLock {
    /// Wraps what keeps the lock held (an open file, an in-memory entry).
    pub fn new(path: &Path, guard: Box<dyn Send + Sync>) -> Self {
        Self {
            path: path.to_owned(),
            _guard: guard,
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for OwnershipLock {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("OwnershipLock")
            .field("path", &self.path)
            .finish()
    }
}

/// The outcome of [`FileSystem::lock_exclusive`].
#[derive(Debug)]
pub enum LockAttempt {
    /// Taken; this process now holds it.
    Taken(OwnershipLock),
    /// Held by someone else (another process, or another handle in this one).
    Held(Option<Holder>),
}

/// The outcome of [`FileSystem::probe_lock`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockProbe {
    /// Nobody holds it (or there is no lock file).
    Free,
    /// Held, by this holder if its record could be read.
    Held(Option<Holder>),
}

/// Takes the lock at `path` for this process through `fs`.
pub fn lock(fs: &dyn FileSystem, path: &Path) -> io::Result<LockAttempt> {
    fs.lock_exclusive(path, &Holder::current())
}

/// Takes the lock at `path` on the real disk. The `flock` is on the lock file's *directory*,
/// which an operator cannot delete while it holds the database (found: deleting a locked
/// `bluejet.lock` let the next opener lock a new file of the same name beside the live owner);
/// the lock file only carries the holder's record, and is opened without following a
/// symbolic link and only if it is a regular file.
pub(super) fn os_lock_exclusive(path: &Path, holder: &Holder) -> io::Result<LockAttempt> {
    let directory = open_directory(path)?;
    if !try_flock(&directory)? {
        return Ok(LockAttempt::Held(read_record_at(path)));
    }
    let record = open_record(path)?;
    write_record(&record, holder)?;
    let guard = HeldFile {
        record,
        _locked: directory,
    };
    Ok(LockAttempt::Taken(OwnershipLock::new(
        path,
        Box::new(guard),
    )))
}

/// Takes an exclusive `flock` on the file `path` itself (created 0600 if missing, a regular
/// file with one name) and records this process in it: for locks that guard a process rather
/// than a database directory (one `node run` per instance). Deleting the file by hand
/// defeats such a lock, which is why databases are locked by their directory instead.
pub fn os_lock_file(path: &Path) -> io::Result<LockAttempt> {
    let record = open_record(path)?;
    if !try_flock(&record)? {
        return Ok(LockAttempt::Held(read_record_at(path)));
    }
    write_record(&record, &Holder::current())?;
    let guard = HeldFile {
        record: record.try_clone()?,
        _locked: record,
    };
    Ok(LockAttempt::Taken(OwnershipLock::new(
        path,
        Box::new(guard),
    )))
}

/// Opens (creating 0600) a holder record without following a link, never blocking on a FIFO,
/// and only if it is a regular file with one name.
fn open_record(path: &Path) -> io::Result<File> {
    let record = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    require_regular(&record, path)?;
    Ok(record)
}

/// Replaces the record with `holder`, durably. Informational: a crash in between leaves a
/// short record, read as "not readable".
fn write_record(record: &File, holder: &Holder) -> io::Result<()> {
    record.set_len(0)?;
    record.write_all_at(&holder.encode(), 0)?;
    record.sync_data()
}

/// The directory holding the lock file `path`, opened read-only: the object `flock` locks.
fn open_directory(path: &Path) -> io::Result<File> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(directory)
}

/// A lock file that is a FIFO, a device or a directory is not ours: refuse it, naming it.
fn require_regular(file: &File, path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let metadata = file.metadata()?;
    // A hard link elsewhere would let another directory's owner rewrite this record.
    if metadata.is_file() && metadata.nlink() <= 1 {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{} is not a regular file with one name: a lock file must be",
        path.display()
    )))
}

/// `flock(LOCK_EX | LOCK_NB)`, tried a few times so a concurrent probe cannot refuse it.
fn try_flock(file: &File) -> io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    for attempt in 0..ATTEMPTS {
        match flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) if attempt + 1 < ATTEMPTS => {
                std::thread::sleep(ATTEMPT_PAUSE)
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(false)
}

/// Whether the lock at `path` on the real disk is held, and by whom. Opens the directory
/// read-only, writes nothing, creates nothing; a shared lock tells whether an exclusive one
/// is held and is released at once.
pub(super) fn os_probe(path: &Path) -> io::Result<LockProbe> {
    use rustix::fs::{flock, FlockOperation};
    let directory = match open_directory(path) {
        Ok(directory) => directory,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(LockProbe::Free),
        Err(error) => return Err(error),
    };
    match flock(&directory, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            flock(&directory, FlockOperation::Unlock)?;
            Ok(LockProbe::Free)
        }
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(LockProbe::Held(read_record_at(path))),
        Err(errno) => Err(errno.into()),
    }
}

/// The holder record at `path`, if it is a regular file holding one: never follows a link,
/// never blocks on a FIFO, reads at most `MAX_RECORD_BYTES`. A record naming a process of
/// this host that no longer runs is stale (the lock is held by something else) and is not
/// reported as the holder.
fn read_record_at(path: &Path) -> Option<Holder> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    require_regular(&file, path).ok()?;
    let mut bytes = Vec::new();
    let mut reader = &file;
    reader
        .by_ref()
        .take(MAX_RECORD_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    Holder::decode(&bytes).filter(Holder::may_be_alive)
}

/// Keeps the locked descriptor open (the directory, or for a file lock the file itself) and
/// the record file; empties the record before the lock goes, so a stale record is never read
/// as a holder's.
struct HeldFile {
    record: File,
    _locked: File,
}

impl Drop for HeldFile {
    fn drop(&mut self) {
        if let Err(error) = self.record.set_len(0) {
            // The record stays; a reader checks that its holder is alive.
            tracing::warn!(%error, "emptying the ownership record");
        }
    }
}

/// The host name, as the kernel has it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The executable's name and its subcommand words (up to two, before the first option).
fn program() -> String {
    let mut arguments = std::env::args();
    let executable = arguments
        .next()
        .map(|path| {
            Path::new(&path)
                .file_name()
                .map_or(path.clone(), |name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let words: Vec<String> = arguments
        .take_while(|word| !word.starts_with('-'))
        .take(2)
        .collect();
    std::iter::once(executable)
        .chain(words)
        .collect::<Vec<_>>()
        .join(" ")
}

/// µs since the Unix epoch as RFC 3339 UTC with microseconds.
pub fn rfc3339(micros: u64) -> String {
    let seconds = micros / 1_000_000;
    let days = (seconds / 86_400) as i64;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let in_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60,
        micros % 1_000_000
    )
}

/// Takes the lock at `path` on the real disk, for callers that hold no [`FileSystem`].
pub fn os_lock(path: &Path) -> io::Result<LockAttempt> {
    lock(&OsFileSystem, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(1), "1970-01-01T00:00:00.000001Z");
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn a_second_handle_in_one_process_is_refused_and_named() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(LOCK_FILE_NAME);
        let LockAttempt::Taken(first) = os_lock(&path).unwrap() else {
            panic!("the first lock must be taken");
        };
        match os_lock(&path).unwrap() {
            LockAttempt::Held(Some(holder)) => assert_eq!(holder.pid, std::process::id()),
            other => panic!("expected held with a holder, got {other:?}"),
        }
        assert!(matches!(os_probe(&path).unwrap(), LockProbe::Held(Some(_))));
        drop(first);
        assert_eq!(os_probe(&path).unwrap(), LockProbe::Free);
        assert!(matches!(os_lock(&path).unwrap(), LockAttempt::Taken(_)));
    }

    /// Found by an adversarial operator: deleting a held `bluejet.lock` let a second process
    /// lock a new file of the same name and write into the live database.
    #[test]
    fn deleting_the_lock_file_does_not_free_the_lock() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(LOCK_FILE_NAME);
        let LockAttempt::Taken(_held) = os_lock(&path).unwrap() else {
            panic!("the first lock must be taken");
        };
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(os_lock(&path).unwrap(), LockAttempt::Held(_)));
        assert!(matches!(os_probe(&path).unwrap(), LockProbe::Held(_)));
    }

    /// Found: a `bluejet.lock` that is a symbolic link was followed, and its target truncated.
    #[test]
    fn a_symbolic_link_as_lock_file_is_refused_and_its_target_untouched() {
        let directory = tempfile::tempdir().unwrap();
        let victim = directory.path().join("victim.txt");
        std::fs::write(&victim, b"IMPORTANT").unwrap();
        let database = directory.path().join("db");
        std::fs::create_dir(&database).unwrap();
        let path = database.join(LOCK_FILE_NAME);
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(os_lock(&path).is_err(), "a link is not a lock file");
        assert_eq!(std::fs::read(&victim).unwrap(), b"IMPORTANT");
    }

    /// Found: a FIFO as lock file made a read-only inspection hang in `open`.
    #[test]
    fn a_fifo_as_lock_file_neither_hangs_nor_is_taken() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(LOCK_FILE_NAME);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert_eq!(os_probe(&path).unwrap(), LockProbe::Free);
        assert!(os_lock(&path).is_err(), "a FIFO is not a lock file");
        assert_eq!(read_record_at(&path), None);
    }

    /// A record naming a process of this host that no longer runs is not shown as the
    /// holder of a lock something else holds.
    #[test]
    fn a_dead_holders_record_is_not_named() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(LOCK_FILE_NAME);
        let dead = Holder {
            pid: i32::MAX as u32,
            ..Holder::current()
        };
        std::fs::write(&path, dead.encode()).unwrap();
        let other = open_directory(&path).unwrap();
        assert!(try_flock(&other).unwrap());
        assert_eq!(os_probe(&path).unwrap(), LockProbe::Held(None));
        let alive = Holder::current();
        std::fs::write(&path, alive.encode()).unwrap();
        assert_eq!(os_probe(&path).unwrap(), LockProbe::Held(Some(alive)));
    }

    #[test]
    fn a_probe_writes_nothing_and_creates_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(LOCK_FILE_NAME);
        assert_eq!(os_probe(&path).unwrap(), LockProbe::Free);
        assert!(!path.exists());
    }
}
