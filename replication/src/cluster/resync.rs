//! Rejoining as a passive copy: a node that held the database (an old active coming back
//! after a failover, or after moving the database away) finds where its log and the new
//! active's diverged, moves its divergent files aside with a report, and continues as a
//! passive copy from its database's checkpoint (Resynchronizing). A full reseed is asked
//! for only when no common point is left.
//!
//! The common point: the new active's first generation on a newer timeline names the
//! digest of the generation before it (its anchor). If this node's copy of the anchor has
//! that digest, every generation up to it is common history. The database can continue
//! from there if its header's checkpoint is not past the anchor's end (its file holds
//! exactly the state at that checkpoint), or if this node's log holds no commit between the
//! anchor's end and the checkpoint (an empty generation left by a fenced roll, the Start and
//! Stop records of a restart): the file then holds the state at the anchor's end as well,
//! and its checkpoint is moved back there before replay resumes in the new active's
//! generations. Only what holds commits after the common point is reported as divergent.

use super::node::Shared;
use crate::error::ReplError;
use crate::generation_file::{count_commits, read_header};
use crate::identity::ReplicaIdentity;
use crate::layout::ReplicaLayout;
use crate::private_files::create_directory_durably;
use crate::sealed;
use bluejet_engine::db::read_header_copies;
use bluejet_engine::file::{FileSystem, OpenMode};
use bluejet_engine::format::generation_header::GenerationHeader;
use bluejet_engine::format::log_directory::LogDirectory;
use bluejet_engine::format::scan::{scan, GenerationScan, ScanMode};
use bluejet_engine::log::now_micros;
use bluejet_engine::DbHeader;
use bluejet_engine::{BaseName, LogFileName, LogPosition};
use bluejet_engine::{PassiveDatabase, DATABASE_FILE_NAME};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a node rejoined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejoin {
    /// It continues as a passive copy from its own database.
    Resynchronized,
    /// It has no usable copy: the active must seed it.
    NeedsSeed,
    /// The new active has not yet written a generation of a newer timeline (it is still
    /// activating): nothing can be compared yet; the next round tries again.
    Waiting,
}

/// One file moved aside.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DivergentFile {
    /// The file name.
    pub name: String,
    /// Its generation, if it is a generation file.
    pub generation: Option<u32>,
    /// Commit records in it (transactions the new active does not have).
    pub commits: u64,
    /// When the generation was started (µs), if known.
    pub created_micros: Option<u64>,
    /// Bytes at the start of the file's record stream that the new active holds too (in the
    /// generation after the common one, when block mode had received that prefix): a reader
    /// of what diverged skips them. 0 in reports written before this field.
    #[serde(default)]
    pub shared_prefix_bytes: u64,
}

/// The report written next to the files moved aside (`diverged-<epoch>/report.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DivergenceReport {
    /// The epoch the node rejoined at.
    pub epoch: u64,
    /// The last common generation, if any.
    pub common_generation: Option<u32>,
    /// The files that diverged: after the common generation (or with none known) and
    /// holding commits the new active does not have.
    pub files: Vec<DivergentFile>,
    /// Files after the common generation moved aside that hold no commit (an empty
    /// generation from a fenced roll, the prepared file, the checkpoint file): nothing in
    /// them diverged.
    #[serde(default)]
    pub without_commits: Vec<DivergentFile>,
    /// Common generations moved aside only because the database is reseeded.
    #[serde(default)]
    pub common: Vec<DivergentFile>,
    /// Files in which lost transactions began and that hold no lost commit (a transaction's
    /// Begin and first records can end a generation, its Commit being in the next one):
    /// divergent generations without a lost commit, and copies of common generations. Read
    /// for those records only. Empty in reports written before this field.
    #[serde(default)]
    pub context: Vec<DivergentFile>,
    /// Why.
    pub reason: String,
}

/// Rejoins as a passive copy of the peer (see the module documentation).
pub(crate) fn rejoin(shared: &Shared, epoch: u64) -> Result<Rejoin, ReplError> {
    let fs = shared.config.options.log.file_system.as_ref();
    let database = shared.config.database();
    let file = database.join(DATABASE_FILE_NAME);
    if !fs.exists(&file) {
        return Ok(Rejoin::NeedsSeed);
    }
    let handle = fs
        .open(&file, OpenMode::Read)
        .map_err(|error| ReplError::io(&file, "opening", error))?;
    let header = read_header_copies(&handle, &file)?.header;
    drop(handle);
    let base = shared.config.options.log.base_name;
    if peer_still_activating(shared, &header, base)? {
        return Ok(Rejoin::Waiting);
    }
    let point = common_generation(shared, &header, base)?;
    let common = point.as_ref().map(|point| point.generation);
    let their_next = point.and_then(|point| point.their_next);
    let resume = common.map(|anchor| LogPosition::new(anchor + 1, 0));
    // Commits between the anchor's end and the checkpoint are in the database file but not
    // on the new active: only those make the file unusable.
    let committed_after = match resume {
        Some(resume) if header.checkpoint > resume => {
            commits_between(fs, &database, base, resume, header.checkpoint)
        }
        _ => Some(0),
    };
    let usable = resume.filter(|_| committed_after == Some(0));
    let aside = shared.config.instance.join(format!("diverged-{epoch}"));
    match usable {
        Some(resume) => {
            let anchor = resume.generation - 1;
            let select = |g: Option<u32>| g.is_none_or(|g| g > anchor);
            let files = move_divergent(fs, &database, &aside, base, select, their_next.as_ref())?;
            let reason = if header.checkpoint > resume {
                format!(
                    "no commit after the common generation {anchor} (the checkpoint {:?} \
                     follows only records without commits): continuing from its end",
                    header.checkpoint
                )
            } else {
                "diverged after the common generation".to_owned()
            };
            write_report(fs, &aside, epoch, Some(anchor), files, &reason)?;
            keep_context(fs, &database, &aside, base, anchor)?;
            report_lost_mail(shared, epoch, &aside);
            if header.checkpoint > resume {
                rewind(shared, &database, resume)?;
            }
            let seeded_at = header.checkpoint.min(resume);
            become_replica(shared, &header, seeded_at, anchor, base)?;
            shared.event(
                "resynchronizing",
                Some(epoch),
                &format!(
                    "continuing from the checkpoint {seeded_at:?}; generations after {anchor} \
                     moved to {}",
                    aside.display()
                ),
            );
            Ok(Rejoin::Resynchronized)
        }
        None => {
            let reason = match (common, committed_after) {
                (Some(anchor), Some(commits)) => format!(
                    "the database's checkpoint {:?} is past the common generation {anchor}, \
                     with {commits} commits after it",
                    header.checkpoint
                ),
                (Some(anchor), None) => format!(
                    "the database's checkpoint {:?} is past the common generation {anchor}, \
                     and this node's log between them cannot be read",
                    header.checkpoint
                ),
                (None, _) => "no common generation with the new active".to_owned(),
            };
            let files = move_divergent(fs, &database, &aside, base, |_| true, None)?;
            move_file(fs, &file, &aside.join(DATABASE_FILE_NAME))?;
            write_report(fs, &aside, epoch, common, files, &reason)?;
            // The common generations were moved aside with the rest: the context is named
            // from there.
            if let Some(anchor) = common {
                keep_context(fs, &aside, &aside, base, anchor)?;
            }
            report_lost_mail(shared, epoch, &aside);
            shared.event("reseed-needed", Some(epoch), &reason);
            Ok(Rejoin::NeedsSeed)
        }
    }
}

/// Says in the event log what the kept-aside generations hold that the new active never
/// had (event `lost-mail`: transactions, messages, and the command that lists and
/// re-applies them), when there is any; a directory that cannot be decoded is said too.
fn report_lost_mail(shared: &Shared, epoch: u64, aside: &Path) {
    let fs = shared.config.options.log.file_system.as_ref();
    let message = match crate::diverged::decode::decode_directory(fs, aside) {
        Ok(decoded) if decoded.transactions.is_empty() && decoded.unreadable.is_empty() => return,
        Ok(decoded) => {
            let totals = crate::diverged::summary::summarize(&decoded).totals;
            format!(
                "{} transactions ({} messages) the new active never had{}: `bluejet diverged \
                 show {}` lists them, `bluejet diverged reapply {} --to <active instance>` \
                 re-applies them",
                totals.transactions,
                totals.messages,
                match decoded.unreadable.len() {
                    0 => String::new(),
                    n => format!(" ({n} kept-aside files unreadable)"),
                },
                aside.display(),
                aside.display()
            )
        }
        Err(error) => format!("the kept-aside generations cannot be decoded: {error}"),
    };
    shared.event("lost-mail", Some(epoch), &message);
}

/// Commit records in this node's log from `from` (a generation's start) up to `to`; `None`
/// when a generation in between is missing or cannot be read (nothing can be proven).
fn commits_between(
    fs: &dyn FileSystem,
    database: &Path,
    base: BaseName,
    from: LogPosition,
    to: LogPosition,
) -> Option<u64> {
    use bluejet_engine::format::record::{kind, read_record};
    let mut commits = 0;
    for generation in from.generation..=to.generation {
        let closed = database.join(base.closed(generation));
        let (path, mode) = match fs.exists(&closed) {
            true => (closed, ScanMode::Closed),
            false => (database.join(base.current()), ScanMode::Current),
        };
        let image =
            crate::sealed::read_file(fs, &path, bluejet_engine::log::MAX_GENERATION_BYTES).ok()?;
        let scanned = scan(&path, &image, mode).ok()?;
        if scanned.header.generation != generation {
            return None;
        }
        let end = match generation == to.generation {
            true => (to.offset as usize).min(scanned.stream.len()),
            false => scanned.stream.len(),
        };
        let mut offset = 0;
        while offset < end {
            let Ok(record) = read_record(&scanned.stream[offset..]) else {
                break;
            };
            commits += (record.kind == kind::COMMIT) as u64;
            offset += record.encoded_len();
        }
    }
    Some(commits)
}

/// Moves the database's checkpoint back to `to` (nothing was committed in between).
fn rewind(shared: &Shared, database: &Path, to: LogPosition) -> Result<(), ReplError> {
    let passive = PassiveDatabase::open(database, database, shared.config.options.clone())?;
    passive.rewind_and_close(to)?;
    Ok(())
}

/// Generations a search for the common point looks back at most, below the anchor.
const COMMON_SEARCH: u32 = 16;

/// Where this node's log and the new active's meet.
struct CommonPoint {
    /// The last generation both hold.
    generation: u32,
    /// The new active's stream of the generation after it, when it was read: this node's
    /// may continue it (block mode received part of it), and only its commits after that
    /// are lost.
    their_next: Option<(u32, Vec<u8>)>,
}

/// The last generation this node's log shares with the new active's: the anchor the new
/// active's first newer-timeline generation chains to, if this node's copy of it matches.
///
/// After a failover in block mode it does not: the anchor is the generation the new active
/// received in part, and the generations it received as blocks are not this node's files
/// byte for byte (only their records are the same). The search then walks down the new
/// active's chain: the common point is the last generation whose records both hold,
/// provided that below it the two logs meet in a generation whose file has the digest the
/// new active's chain names (the histories below are then the same). This node's files of
/// the generations the same only in their records are replaced by the new active's, so that
/// the new active's chain holds in the copy.
fn common_generation(
    shared: &Shared,
    header: &DbHeader,
    base: BaseName,
) -> Result<Option<CommonPoint>, ReplError> {
    let Some(first) = first_newer_generation(shared, header.timeline, base)? else {
        return Ok(None);
    };
    let anchor = first.generation - 1;
    let fs = shared.config.options.log.file_system.as_ref();
    let peer_fs = shared.config.peer_fs.as_ref();
    let mine = |generation: u32| shared.config.database().join(base.closed(generation));
    // The new active's generation: in its database directory, or, for those before its
    // activation's checkpoint, still in the copy's `logs/` it activated from.
    let theirs = |generation: u32| {
        let name = base.closed(generation);
        let active = shared.config.peer_database().join(&name);
        match peer_fs.exists(&active) {
            true => active,
            false => ReplicaLayout::new(&shared.config.peer_instance)
                .logs()
                .join(name),
        }
    };
    // The digest the new active's chain gives the generation looked at.
    let mut expected = first.previous_digest;
    let mut common: Option<CommonPoint> = None;
    let mut adopt: Vec<(u32, Vec<u8>)> = Vec::new();
    // The new active's stream of the generation looked at before (the one above).
    let mut above: Option<(u32, Vec<u8>)> = None;
    for generation in (anchor.saturating_sub(COMMON_SEARCH).max(1)..=anchor).rev() {
        let mine_image = match read_generation(fs, &mine(generation)) {
            Some(image) => Some(image),
            // This node's current generation (it was active): it differs, and the walk
            // goes on below it.
            None if current_generation(fs, shared, base) == Some(generation) => None,
            None => return Ok(None),
        };
        if mine_image
            .as_ref()
            .is_some_and(|image| crc32c::crc32c(image) == expected)
        {
            adopt_images(shared, fs, &adopt, mine)?;
            return Ok(Some(common.unwrap_or(CommonPoint {
                generation,
                their_next: above,
            })));
        }
        // Not the same file: block mode's copy, or a generation after the logs diverged.
        let Some(their_image) = read_generation(peer_fs, &theirs(generation)) else {
            return Ok(None);
        };
        let Ok(their_scan) = scan(&theirs(generation), &their_image, ScanMode::Closed) else {
            return Ok(None);
        };
        let same = mine_image
            .as_ref()
            .is_some_and(|image| same_records(&mine(generation), image, &their_scan));
        if same {
            common.get_or_insert(CommonPoint {
                generation,
                their_next: above.take(),
            });
            adopt.push((generation, their_image));
        } else if common.is_some() {
            // Different below a generation with the same records: the chains cannot meet.
            return Ok(None);
        }
        expected = their_scan.header.previous_digest;
        above = Some((generation, their_scan.stream));
    }
    Ok(None)
}

/// The generation of this node's `E00.log`, if it can be read.
fn current_generation(fs: &dyn FileSystem, shared: &Shared, base: BaseName) -> Option<u32> {
    let path = shared.config.database().join(base.current());
    read_header(fs, &path).ok().map(|header| header.generation)
}

/// Replaces this node's files of `adopt`'s generations (found from the top down) by the new
/// active's images of them, lowest first: a crash in between leaves the adopted ones below
/// the others, where the next search meets them by digest and goes on adopting above
/// (highest first, it would meet the adopted top one at once and leave a broken chain
/// below it: found by an adversarial review).
fn adopt_images(
    shared: &Shared,
    fs: &dyn FileSystem,
    adopt: &[(u32, Vec<u8>)],
    mine: impl Fn(u32) -> PathBuf,
) -> Result<(), ReplError> {
    for (generation, image) in adopt.iter().rev() {
        let path = mine(*generation);
        sealed::write_file_atomically(fs, &path, image)?;
        shared.event(
            "resync-adopted",
            None,
            &format!(
                "generation {generation}: the new active's copy (the same records, received \
                 in block mode) replaces {}",
                path.display()
            ),
        );
    }
    Ok(())
}

/// A closed generation's file, if it can be read (bounded by the largest generation).
fn read_generation(fs: &dyn FileSystem, path: &Path) -> Option<Vec<u8>> {
    if !fs.exists(path) {
        return None;
    }
    sealed::read_file(fs, path, bluejet_engine::log::MAX_GENERATION_BYTES).ok()
}

/// Whether two images of a closed generation hold the same records under the same header
/// (but for the digest it chains to, which block mode's copies rewrite).
fn same_records(path: &Path, mine: &[u8], theirs: &GenerationScan) -> bool {
    let Ok(mine) = scan(path, mine, ScanMode::Closed) else {
        return false;
    };
    let mut their_header = theirs.header;
    their_header.previous_digest = mine.header.previous_digest;
    their_header == mine.header && theirs.stream == mine.stream
}

/// Whether the peer's log continues this database's stream but holds no generation of a
/// newer timeline yet: the new active is still activating (found: every planned move
/// reseeded the old active, which rejoined before its peer had rolled onto the new timeline
/// and took the absence for "no common generation").
fn peer_still_activating(
    shared: &Shared,
    header: &DbHeader,
    base: BaseName,
) -> Result<bool, ReplError> {
    if first_newer_generation(shared, header.timeline, base)?.is_some() {
        return Ok(false);
    }
    let fs = shared.config.peer_fs.as_ref();
    let current = shared.config.peer_database().join(base.current());
    if !fs.exists(&current) {
        // Between its copy's last replay and its first generation as active.
        return Ok(true);
    }
    Ok(read_header(fs, &current)?.signature == header.log_signature)
}

/// The new active's first generation on a timeline newer than `timeline`.
fn first_newer_generation(
    shared: &Shared,
    timeline: u64,
    base: BaseName,
) -> Result<Option<GenerationHeader>, ReplError> {
    let fs = shared.config.peer_fs.as_ref();
    let directory = shared.config.peer_database();
    let listing = LogDirectory::list(fs, &directory, base)?;
    let mut names: Vec<String> = listing.closed.values().cloned().collect();
    if listing.current {
        names.push(base.current());
    }
    for name in names {
        let header = read_header(fs, &directory.join(&name))?;
        if header.timeline > timeline {
            return Ok(Some(header));
        }
    }
    Ok(None)
}

/// Moves this node's log files (those `select` picks by generation; `None` for `E00.log`,
/// the prepared file and the checkpoint) from `database` into `aside`.
fn move_divergent(
    fs: &dyn FileSystem,
    database: &Path,
    aside: &Path,
    base: BaseName,
    select: impl Fn(Option<u32>) -> bool,
    their_next: Option<&(u32, Vec<u8>)>,
) -> Result<Vec<DivergentFile>, ReplError> {
    // The directory's own entry must be durable before files move into it.
    create_directory_durably(fs, aside)?;
    let names = fs
        .list(database)
        .map_err(|error| ReplError::io(database, "listing", error))?;
    let mut moved = Vec::new();
    for name in names {
        let generation = match base.classify(&name) {
            Some(LogFileName::Closed(generation)) => Some(generation),
            Some(_) => None,
            None => continue,
        };
        if !select(generation) {
            continue;
        }
        let path = database.join(&name);
        moved.push(describe(fs, &path, &name, generation, their_next));
        move_file(fs, &path, &aside.join(&name))?;
    }
    Ok(moved)
}

/// A divergent file and its commits the new active never had: all of them, but in the
/// generation after the common one when this file continues the new active's records of it
/// (`their_next`: the generation and its stream there), only those after.
fn describe(
    fs: &dyn FileSystem,
    path: &Path,
    name: &str,
    generation: Option<u32>,
    their_next: Option<&(u32, Vec<u8>)>,
) -> DivergentFile {
    let image = crate::sealed::read_file(fs, path, bluejet_engine::log::MAX_GENERATION_BYTES).ok();
    let mode = if generation.is_some() {
        ScanMode::Closed
    } else {
        ScanMode::Current
    };
    let scanned = image
        .as_ref()
        .and_then(|image| scan(path, image, mode).ok());
    let skip = scanned.as_ref().map_or(0, |scanned| {
        their_next
            .filter(|(generation, stream)| {
                *generation == scanned.header.generation && scanned.stream.starts_with(stream)
            })
            .map_or(0, |(_, stream)| stream.len())
    });
    let commits = scanned
        .as_ref()
        .map_or(0, |scanned| count_commits(&scanned.stream[skip..]));
    DivergentFile {
        name: name.to_owned(),
        generation: generation.or(scanned.as_ref().map(|s| s.header.generation)),
        commits,
        created_micros: scanned.map(|s| s.header.created_micros),
        shared_prefix_bytes: skip as u64,
    }
}

/// Names in the report of `aside` the files that lost transactions began in, until the
/// divergent files' every Commit has its Begin: a transaction's Begin and first records
/// can end a generation the log then rolled from, so that its Commit is in a later file.
/// First the divergent generations holding no lost commit (already in `aside`, reported
/// as `without_commits`), then copies of the common generations, from `anchor` down (the
/// new active holds them, but without them such a transaction could not be decoded and was
/// left out of the lost-mail report). All go in the report's `context`. Stops when a
/// generation is no longer in `database` or the directory cannot be decoded (the report
/// says so itself).
fn keep_context(
    fs: &dyn FileSystem,
    database: &Path,
    aside: &Path,
    base: BaseName,
    anchor: u32,
) -> Result<(), ReplError> {
    let Some(report) = lacking_begins(fs, aside) else {
        return Ok(());
    };
    let generations = report.without_commits.iter().filter(|file| {
        matches!(
            base.classify(&file.name),
            Some(LogFileName::Closed(_) | LogFileName::Current)
        )
    });
    for file in generations {
        let Some(mut report) = lacking_begins(fs, aside) else {
            return Ok(());
        };
        report.context.push(file.clone());
        sealed::write(fs, &aside.join("report.json"), &report)?;
    }
    for generation in (1..=anchor).rev() {
        let name = base.closed(generation);
        let from = database.join(&name);
        let Some(mut report) = lacking_begins(fs, aside).filter(|_| fs.exists(&from)) else {
            return Ok(());
        };
        let to = aside.join(&name);
        // A reseed moved the common generations aside already: nothing to copy then.
        if from != to {
            let image = sealed::read_file(fs, &from, bluejet_engine::log::MAX_GENERATION_BYTES)?;
            sealed::write_file_atomically(fs, &to, &image)?;
        }
        report
            .context
            .push(describe(fs, &to, &name, Some(generation), None));
        sealed::write(fs, &aside.join("report.json"), &report)?;
    }
    Ok(())
}

/// The report of `aside` when a divergent Commit lacks its Begin there.
fn lacking_begins(fs: &dyn FileSystem, aside: &Path) -> Option<DivergenceReport> {
    let decoded = crate::diverged::decode::decode_directory(fs, aside).ok()?;
    (decoded.incomplete > 0).then_some(decoded.report)
}

fn move_file(fs: &dyn FileSystem, from: &Path, to: &Path) -> Result<(), ReplError> {
    fs.rename(from, to)
        .map_err(|error| ReplError::io(from, "moving aside", error))?;
    for directory in [from.parent(), to.parent()].into_iter().flatten() {
        fs.sync_directory(directory)
            .map_err(|error| ReplError::io(directory, "syncing", error))?;
    }
    Ok(())
}

fn write_report(
    fs: &dyn FileSystem,
    aside: &Path,
    epoch: u64,
    common_generation: Option<u32>,
    moved: Vec<DivergentFile>,
    reason: &str,
) -> Result<(), ReplError> {
    let mut report = DivergenceReport {
        epoch,
        common_generation,
        files: Vec::new(),
        without_commits: Vec::new(),
        common: Vec::new(),
        context: Vec::new(),
        reason: reason.to_owned(),
    };
    for file in moved {
        let common = matches!((file.generation, common_generation), (Some(g), Some(c)) if g <= c);
        if common {
            report.common.push(file);
        } else if file.commits > 0 {
            report.files.push(file);
        } else {
            report.without_commits.push(file);
        }
    }
    sealed::write(fs, &aside.join("report.json"), &report)
}

/// Turns the node's directory into a replica whose passive copy is its own database: the
/// common generations go to `logs/`, and the identity says where replay resumes.
fn become_replica(
    shared: &Shared,
    header: &DbHeader,
    seeded_at: LogPosition,
    anchor: u32,
    base: BaseName,
) -> Result<(), ReplError> {
    let fs = shared.config.options.log.file_system.as_ref();
    let layout = ReplicaLayout::new(&shared.config.instance);
    layout.create(fs)?;
    let database = shared.config.database();
    let listing = LogDirectory::list(fs, &database, base)?;
    for (&generation, name) in listing.closed.range(..=anchor) {
        let target = layout.logs().join(name);
        if fs.exists(&target) {
            fs.remove(&target)
                .map_err(|error| ReplError::io(&target, "replacing", error))?;
        }
        debug_assert!(generation <= anchor);
        move_file(fs, &database.join(name), &target)?;
    }
    ReplicaIdentity {
        signature: header.log_signature,
        base_name: base.as_str().to_owned(),
        timeline: header.timeline,
        seeded_at,
        seeded_micros: now_micros(),
        active: shared.config.peer_database(),
    }
    .write(fs, &layout)
}

/// Paths a divergence report is written to, for tools.
pub fn report_path(instance: &Path, epoch: u64) -> PathBuf {
    instance
        .join(format!("diverged-{epoch}"))
        .join("report.json")
}
