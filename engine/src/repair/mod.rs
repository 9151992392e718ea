//! Repair, like `eseutil /p`: a damaged database rebuilt from what survives.
//!
//! 1. The [`census`] reads every allocated page and discards those whose checksum fails or
//!    that are structurally invalid.
//! 2. The [`plan`] walks the catalog and each table from its root through the pages kept
//!    ([`walk`]); a discarded page loses the key range its parent gave it. Readable subtrees
//!    no walk reached and the free list does not hold ([`orphans`]) are adopted back into the
//!    lost range they fit.
//! 3. The tables are written into a new database ([`rebuild`]) by ordinary transactions, so
//!    that its trees, catalog counts and content checksums are built as any others are; its
//!    header gets the repair count raised and no log stream ([`stamp`]), and it must pass the
//!    integrity check.
//! 4. The damaged original and its log are kept aside and the new file renamed into place
//!    ([`install`]). The next open starts a new log stream: replicas of the old one must be
//!    reseeded (see `docs/design.md`, "Repair").
//!
//! A dirty database is refused unless forced: its log may hold committed transactions the
//! file lacks, and recovery (`Database::open`) replays them; repair is for when recovery
//! fails.
//!
//! ```
//! use bluejet_engine::db::{Database, Options};
//! use bluejet_engine::{repair, RepairOptions};
//! let directory = tempfile::tempdir().unwrap();
//! let db = Database::open(directory.path(), Options::default()).unwrap();
//! let mut write = db.begin_write().unwrap();
//! write.create_table("mail").unwrap();
//! write.insert("mail", b"<a@x>", b"hello").unwrap();
//! write.commit().unwrap();
//! db.close().unwrap();
//! let report = repair(directory.path(), &RepairOptions::default()).unwrap();
//! assert!(!report.lost_anything());
//! assert_eq!((report.repair_count, report.entries_after), (1, 1));
//! let db = Database::open(directory.path(), Options::default()).unwrap();
//! let read = db.begin_read().unwrap();
//! assert_eq!(read.open_table("mail").unwrap().get(b"<a@x>").unwrap().unwrap(), b"hello");
//! ```

mod census;
mod install;
mod orphans;
mod plan;
mod rebuild;
mod report;
mod stamp;
mod walk;

pub use report::{DiscardedPage, LostEntry, LostRange, RepairReport, TableRepair};

use crate::db::{lock_directory, read_header_copies, DbError, Options, DATABASE_FILE_NAME};
use crate::file::{FileSystem, OpenMode};
use crate::inspect::{integrity, DatabaseImage};
use crate::log::directory::LogDirectory;
use crate::log::BaseName;
use crate::page::db_header::{first_data_page, CopyCondition, HeaderRead};
use crate::page::file::DatabaseFile;
use crate::page::{free_list, DbHeader, DbState};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to repair.
#[derive(Clone, Debug, Default)]
pub struct RepairOptions {
    /// Options of the rebuilt database: its file system, log base name and compression (the
    /// page size is the damaged file's).
    pub options: Options,
    /// Repair a dirty database without recovering it first, losing whatever only its log
    /// holds (for when recovery fails).
    pub force: bool,
}

/// Repairs the database in `directory`; see the [module](self) documentation.
///
/// Takes the directory's ownership lock first and holds it throughout: a database another
/// process (or handle) holds is refused with [`DbError::InUse`] naming the holder.
pub fn repair(directory: &Path, how: &RepairOptions) -> Result<RepairReport, DbError> {
    let fs = Arc::clone(&how.options.log.file_system);
    let _owner = lock_directory(fs.as_ref(), directory)?;
    let path = directory.join(DATABASE_FILE_NAME);
    let handle = fs
        .open(&path, OpenMode::Read)
        .map_err(|error| DbError::io(&path, "opening", error))?;
    let read = read_header_copies(&handle, &path)?;
    let header = read.header.clone();
    if header.state == DbState::DirtyShutdown && !how.force {
        let base = how.options.log.base_name;
        return Err(refuse_dirty(fs.as_ref(), directory, base, &path, &header)?);
    }
    let page_size = header.page_size as usize;
    let file = DatabaseFile::new(handle, &path, page_size)?;
    let first = first_data_page(page_size);
    let end = header.next_page.min(file.length() / page_size as u64);
    let census = census::Census::take(&file, first, end)?;
    let (free, free_list_problem) = free_pages(&file, &header, first);
    let plan = plan::plan(&file, &census, header.catalog_root, &free)?;
    let repair_count = header.repair_count + 1;
    let work = directory.join(format!("repair-{repair_count}.work"));
    clear(fs.as_ref(), &work)?;
    let options = Options {
        page_size,
        ..how.options.clone()
    };
    let tables = rebuild::rebuild(&work, options, &file, &plan.tables)?;
    drop(file);
    let rebuilt = work.join(DATABASE_FILE_NAME);
    stamp::stamp(fs.as_ref(), &rebuilt, repair_count)?;
    let entries_after = check(fs.as_ref(), &rebuilt, &path)?;
    let aside = aside_directory(fs.as_ref(), directory, repair_count);
    let base = how.options.log.base_name;
    let log_files_moved = install::install(fs.as_ref(), directory, &aside, &rebuilt, base)?;
    clear(fs.as_ref(), &work)?;
    let tables_lost = tables
        .iter()
        .filter(|table| table.entries_before.unwrap_or(0) > 0 && table.entries_after == 0)
        .map(|table| table.name.clone())
        .collect();
    Ok(RepairReport {
        database: path,
        kept_aside: aside,
        repair_count,
        state_before: header.state,
        forced: header.state == DbState::DirtyShutdown,
        damaged_header_copies: damaged_copies(&read),
        pages_scanned: census.pages(),
        discarded_pages: census
            .discarded
            .iter()
            .map(|(&page, problem)| DiscardedPage {
                page,
                problem: problem.clone(),
            })
            .collect(),
        free_list_problem,
        catalog_lost: catalog_lost(&plan.catalog_lost, &tables),
        tables,
        tables_lost,
        orphans_dropped: plan.orphans_dropped,
        entries_before: header.content.entries,
        entries_after,
        log_files_moved,
    })
}

/// Why a dirty database is refused: its log may hold committed transactions its file lacks,
/// which recovery replays and repair would lose. Says whether the generations recovery needs
/// are all there (recovery should then succeed) or which are missing (it will fail, and a
/// forced repair is the way left).
fn refuse_dirty(
    fs: &dyn FileSystem,
    directory: &Path,
    base: BaseName,
    path: &Path,
    header: &DbHeader,
) -> Result<DbError, DbError> {
    let listing = LogDirectory::list(fs, directory, base)?;
    let last_closed = listing.last_closed().unwrap_or(0);
    let first = header.checkpoint.generation;
    let last = header.log_required.1.max(first);
    let present = |generation: u32| {
        listing.closed.contains_key(&generation) || (listing.current && generation > last_closed)
    };
    let missing: Vec<u32> = (first..=last)
        .filter(|&generation| !present(generation))
        .collect();
    let outlook = match missing.first() {
        None => format!(
            "its log holds generations {first}-{last} that recovery needs, so recovery should \
             bring it back with every committed transaction: run `bluejet recover` first, then \
             `bluejet integrity`; repair only if they fail"
        ),
        Some(generation) => format!(
            "recovery will fail: of the generations {first}-{last} it needs, {} are missing \
             (the first: {generation}); if they cannot be found (a backup, a replica), repair \
             with --force",
            missing.len()
        ),
    };
    Ok(DbError::RepairRefused {
        path: path.to_owned(),
        reason: format!(
            "the database was not shut down cleanly and its log may hold committed \
             transactions the file lacks; {outlook} (--force loses what only the log holds)"
        ),
    })
}

/// The pages the free list names (free, retired and its own), or why it is unreadable.
fn free_pages(
    file: &DatabaseFile,
    header: &DbHeader,
    first: u64,
) -> (HashSet<u64>, Option<String>) {
    let read = |number: u64| file.read_page(number).map(|(page, _)| page);
    match free_list::load(
        &read,
        header.free_list,
        (first, header.next_page),
        file.path(),
    ) {
        Ok(loaded) => {
            let pages = loaded
                .free
                .into_iter()
                .chain(loaded.retired)
                .chain(loaded.chain);
            (pages.collect(), None)
        }
        Err(error) => (HashSet::new(), Some(error.to_string())),
    }
}

/// Removes what an interrupted repair left in its work directory.
fn clear(fs: &dyn FileSystem, work: &Path) -> Result<(), DbError> {
    if !fs.exists(work) {
        return Ok(());
    }
    let names = fs
        .list(work)
        .map_err(|error| DbError::io(work, "listing", error))?;
    for name in names {
        let path = work.join(name);
        fs.remove(&path)
            .map_err(|error| DbError::io(&path, "removing", error))?;
    }
    // A file system without directory removal keeps the empty directory.
    if let Err(error) = fs.remove_directory(work) {
        tracing::debug!(path = %work.display(), %error, "the empty work directory stays");
    }
    Ok(())
}

/// The rebuilt file must pass the integrity check before it replaces anything; returns its
/// entries.
fn check(fs: &dyn FileSystem, rebuilt: &Path, original: &Path) -> Result<u64, DbError> {
    let image = DatabaseImage::open_with(fs, rebuilt)?;
    let report = integrity(&image)?;
    if report.damaged() {
        let problems: Vec<String> = report
            .problems
            .iter()
            .map(|problem| {
                format!(
                    "page {} ({}): {}",
                    problem.page, problem.owner, problem.problem
                )
            })
            .collect();
        return Err(DbError::RepairRefused {
            path: original.to_owned(),
            reason: format!(
                "the rebuilt database fails its integrity check, the original is untouched: {}",
                problems.join("; ")
            ),
        });
    }
    Ok(report.entries)
}

/// `before-repair-<count>-<seconds since the Unix epoch>` in `directory`, with a suffix
/// (`.2`, `.3`, ...) if an interrupted repair left one of that name: nothing kept aside is
/// ever replaced.
fn aside_directory(fs: &dyn FileSystem, directory: &Path, repair_count: u64) -> PathBuf {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let base = format!("before-repair-{repair_count}-{seconds}");
    let mut aside = directory.join(&base);
    let mut suffix = 1;
    while fs.exists(&aside) {
        suffix += 1;
        aside = directory.join(format!("{base}.{suffix}"));
    }
    aside
}

fn damaged_copies(read: &HeaderRead) -> Vec<(u8, String)> {
    (0u8..2)
        .filter_map(|slot| match &read.conditions[usize::from(slot)] {
            CopyCondition::Damaged(reason) => Some((slot, reason.clone())),
            CopyCondition::Valid(_) => None,
        })
        .collect()
}

/// The catalog's lost ranges, with the surviving table names around each.
fn catalog_lost(lost: &[walk::LostSubtree], tables: &[TableRepair]) -> Vec<LostRange> {
    let names: Vec<&[u8]> = tables
        .iter()
        .filter(|table| table.recovered_from.is_none())
        .map(|table| table.name.as_bytes())
        .collect();
    lost.iter()
        .map(|lost| {
            let after = names
                .iter()
                .filter(|name| lost.lower.as_deref().is_some_and(|lower| **name < lower))
                .max()
                .map(|name| name.to_vec());
            let before = names
                .iter()
                .filter(|name| lost.upper.as_deref().is_some_and(|upper| **name >= upper))
                .min()
                .map(|name| name.to_vec());
            let recovered_entries =
                names.iter().filter(|name| lost.holds(name, name)).count() as u64;
            LostRange {
                page: lost.page,
                problem: lost.problem.clone(),
                lower: lost.lower.clone(),
                upper: lost.upper.clone(),
                after,
                before,
                recovered_entries,
            }
        })
        .collect()
}
