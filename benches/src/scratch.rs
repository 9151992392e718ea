//! Where the benchmarks put their files: under the workspace's `target/`, on the disk the
//! project lives on, so BlueJet and the raw baselines meet the same file system and device.

use std::path::PathBuf;

/// `target/bench-scratch` of this workspace (created if needed), or the system temporary
/// directory when that cannot be created.
pub fn scratch_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch");
    match std::fs::create_dir_all(&root) {
        Ok(()) => root,
        Err(_) => std::env::temp_dir(),
    }
}
