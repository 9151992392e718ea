//! Shipping against a plain durable copy of the same files, and replay of what was shipped.
//!
//! The baseline copies each closed generation with `std::fs::copy`, syncs it, and syncs the
//! target directory once at the end: the least any durable copy does. Shipping also writes
//! under a temporary name, renames and syncs the directory per round. A copy without any
//! sync is measured for information.

use super::BenchResult;
use bluejet_engine::file::{FileSystem, OsFileSystem};
use bluejet_engine::format::log_directory::LogDirectory;
use bluejet_engine::BaseName;
use bluejet_engine::{Options, PassiveDatabase};
use bluejet_replication::identity::ReplicaIdentity;
use bluejet_replication::inspect::Inspector;
use bluejet_replication::layout::ReplicaLayout;
use bluejet_replication::ship::{ShipOptions, Shipper};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes and seconds of one copy of the closed generations.
#[derive(Clone, Copy, Debug, Default)]
pub struct Copied {
    /// Files copied.
    pub files: usize,
    /// Bytes copied.
    pub bytes: u64,
    /// Seconds taken.
    pub seconds: f64,
}

impl Copied {
    /// MiB per second.
    pub fn mib_per_second(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.seconds
    }
}

/// The closed generations of the log in `active`, as paths.
fn closed_generations(active: &Path) -> BenchResult<Vec<std::path::PathBuf>> {
    let listing = LogDirectory::list(&OsFileSystem, active, BaseName::default())?;
    Ok(listing
        .closed
        .values()
        .map(|name| active.join(name))
        .collect())
}

/// The baseline: `std::fs::copy` of each file into `target`, each synced (with `sync`), the
/// directory synced at the end.
pub fn plain_copy(active: &Path, target: &Path, sync: bool) -> BenchResult<Copied> {
    std::fs::create_dir_all(target)?;
    let files = closed_generations(active)?;
    let started = Instant::now();
    let mut bytes = 0;
    for source in &files {
        let destination = target.join(source.file_name().expect("a file name"));
        bytes += std::fs::copy(source, &destination)?;
        if sync {
            File::open(&destination)?.sync_all()?;
        }
    }
    if sync {
        File::open(target)?.sync_all()?;
    }
    Ok(Copied {
        files: files.len(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Ships every closed generation of `active` not yet in the replica `layout` (the seed may
/// have brought the first ones), as the ship stage does.
pub fn ship_all(active: &Path, layout: &ReplicaLayout, compress: bool) -> BenchResult<Copied> {
    let fs: Arc<dyn FileSystem> = Arc::new(OsFileSystem);
    layout.create(fs.as_ref())?;
    let options = ShipOptions {
        compress,
        batch: usize::MAX,
        ..ShipOptions::default()
    };
    let mut shipper = Shipper::new(
        Arc::clone(&fs),
        fs,
        active.to_owned(),
        layout.clone(),
        BaseName::default(),
        options,
    );
    let started = Instant::now();
    let (mut files, mut bytes) = (0, 0);
    loop {
        let round = shipper.ship_once(0)?;
        if let Some(problem) = round.problem {
            return Err(problem.into());
        }
        if round.shipped.is_empty() {
            break;
        }
        files += round.shipped.len();
        bytes += round.bytes.0;
    }
    Ok(Copied {
        files,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Inspects everything shipped into the replica (not timed as replay).
pub fn inspect_all(layout: &ReplicaLayout, identity: ReplicaIdentity) -> BenchResult<()> {
    let fs: Arc<dyn FileSystem> = Arc::new(OsFileSystem);
    let mut inspector = Inspector::new(fs, layout.clone(), identity, 3, Duration::from_secs(1))?;
    loop {
        let round = inspector.inspect_once()?;
        if let Some(failure) = round.failure {
            return Err(failure.into());
        }
        if round.inspected.is_empty() {
            return Ok(());
        }
    }
}

/// Replays every inspected generation into the passive copy; returns the transactions
/// applied and the seconds taken (checkpoint at the end included).
pub fn replay_all(layout: &ReplicaLayout) -> BenchResult<(u64, f64)> {
    let passive = PassiveDatabase::open(&layout.database(), &layout.logs(), Options::default())?;
    let base = BaseName::default();
    let started = Instant::now();
    let mut transactions = 0;
    loop {
        let next = passive.next_generation();
        if !layout.logs().join(base.closed(next)).exists() {
            break;
        }
        transactions += passive
            .replay_generation(next, None)?
            .report
            .transactions_applied;
    }
    passive.checkpoint()?;
    Ok((transactions, started.elapsed().as_secs_f64()))
}
