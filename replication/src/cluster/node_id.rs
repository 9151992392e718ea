//! A node instance's identity (`<instance>/node-id.json`, sealed): drawn at its first start
//! and kept, it is the holder a node's leases name at the witness. Its restarts hold its
//! name at once; another instance configured with the same name is refused while the name's
//! lease is not over (see `witness`).

use crate::error::ReplError;
use crate::sealed;
use bluejet_engine::file::FileSystem;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file's name in the instance directory.
pub const NODE_ID_FILE: &str = "node-id.json";

#[derive(Serialize, Deserialize)]
struct NodeId {
    id: String,
}

/// `instance/node-id.json`.
pub fn path(instance: &Path) -> PathBuf {
    instance.join(NODE_ID_FILE)
}

/// The instance's identity, drawn (and made durable) the first time.
pub fn load_or_create(fs: &dyn FileSystem, instance: &Path) -> Result<String, ReplError> {
    let path = path(instance);
    if let Some(NodeId { id }) = sealed::read(fs, &path)? {
        if valid(&id) {
            return Ok(id);
        }
        return Err(ReplError::BadReplicaFile {
            path,
            reason: format!("{id:?} is not an identity (1 to 64 letters, digits and dashes)"),
        });
    }
    let id = draw();
    sealed::write(fs, &path, &NodeId { id: id.clone() })?;
    Ok(id)
}

/// An identity read from a file is untrusted: bounded, and only letters, digits, dashes.
fn valid(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// 128 bits from the system's randomness (the time and the process, where it has none).
fn draw() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut bytes));
    if random.is_err() {
        let now = bluejet_engine::log::now_micros();
        bytes[..8].copy_from_slice(&now.to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluejet_engine::file::OsFileSystem;

    #[test]
    fn an_identity_is_drawn_once_and_kept_and_junk_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let first = load_or_create(&OsFileSystem, root.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(load_or_create(&OsFileSystem, root.path()).unwrap(), first);
        sealed::write(
            &OsFileSystem,
            &path(root.path()),
            &NodeId { id: "../x".into() },
        )
        .unwrap();
        let error = load_or_create(&OsFileSystem, root.path()).unwrap_err();
        assert!(error.to_string().contains("node-id.json"), "{error}");
    }
}
