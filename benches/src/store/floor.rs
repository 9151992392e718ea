//! What the disk allows a durable commit at best, measured where the engines' files go: a
//! small write and an `fdatasync`, one at a time. No engine that syncs every commit can beat
//! these on a single thread.

use super::engine::StoreResult;
use super::workload::RECORD_BYTES;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

/// Synced writes per floor.
pub const FLOOR_OPS: usize = 1_000;

/// One floor's figure.
#[derive(Clone, Debug)]
pub struct Floor {
    /// What was measured.
    pub name: &'static str,
    /// Synced writes per second.
    pub ops_per_second: f64,
}

/// Both floors, in a fresh directory under `root` removed afterwards.
pub fn measure(root: &Path) -> StoreResult<Vec<Floor>> {
    let directory = tempfile::Builder::new()
        .prefix("bluejet-store-floor-")
        .tempdir_in(root)?;
    Ok(vec![
        Floor {
            name: "append + fdatasync",
            ops_per_second: append_synced(&directory.path().join("append"))?,
        },
        Floor {
            name: "overwrite + fdatasync",
            ops_per_second: overwrite_synced(&directory.path().join("overwrite"))?,
        },
    ])
}

/// Appends one entry's bytes to a new file and syncs, [`FLOOR_OPS`] times. Each append grows
/// the file, so each sync also commits the new length to the file system's journal, as a
/// commit that extends a file must.
fn append_synced(path: &Path) -> StoreResult<f64> {
    let mut file = File::options().create_new(true).append(true).open(path)?;
    let record = [0xA5u8; RECORD_BYTES];
    let start = Instant::now();
    for _ in 0..FLOOR_OPS {
        file.write_all(&record)?;
        file.sync_data()?;
    }
    Ok(FLOOR_OPS as f64 / start.elapsed().as_secs_f64())
}

/// Writes one entry's bytes at successive offsets of a file already written and synced,
/// syncing after each: no metadata changes, the cheapest durable write (a tuned WAL's).
fn overwrite_synced(path: &Path) -> StoreResult<f64> {
    let file = File::options().create_new(true).write(true).open(path)?;
    file.write_all_at(&vec![0u8; FLOOR_OPS * RECORD_BYTES], 0)?;
    file.sync_all()?;
    let record = [0x5Au8; RECORD_BYTES];
    let start = Instant::now();
    for index in 0..FLOOR_OPS {
        file.write_all_at(&record, (index * RECORD_BYTES) as u64)?;
        file.sync_data()?;
    }
    Ok(FLOOR_OPS as f64 / start.elapsed().as_secs_f64())
}
