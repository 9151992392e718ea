//! Where the demo writes, and what it removes afterwards.

use super::replicate::{CERTS, NODES, WITNESS};
use super::run::DemoOptions;
use crate::exit::ToolError;
use bluejet_engine::file::OsFileSystem;
use bluejet_replication::private_files::create_directory_durably;
use std::path::{Path, PathBuf};

/// Where the demo writes: a temporary directory or the one given.
pub(super) enum Place {
    Temporary(tempfile::TempDir),
    Given { path: PathBuf, created: bool },
}

impl Place {
    pub(super) fn new(options: &DemoOptions) -> Result<Self, ToolError> {
        let Some(path) = &options.directory else {
            let directory = tempfile::Builder::new().prefix("bluejet-demo-").tempdir()?;
            return Ok(Place::Temporary(directory));
        };
        let created = !path.exists();
        create_directory_durably(&OsFileSystem, path)?;
        let occupied = std::fs::read_dir(path)
            .map_err(|error| ToolError::Failure(format!("{}: {error}", path.display())))?
            .next()
            .is_some();
        if occupied {
            return Err(ToolError::Usage(format!(
                "{}: the demo needs an empty directory",
                path.display()
            )));
        }
        Ok(Place::Given {
            path: path.clone(),
            created,
        })
    }

    pub(super) fn path(&self) -> &Path {
        match self {
            Place::Temporary(directory) => directory.path(),
            Place::Given { path, .. } => path,
        }
    }

    /// Keeps the files (returning where) or removes what the demo created.
    pub(super) fn finish(self, keep: bool) -> Result<Option<PathBuf>, ToolError> {
        match (self, keep) {
            (Place::Temporary(directory), true) => Ok(Some(directory.keep())),
            (Place::Temporary(directory), false) => {
                directory.close()?;
                Ok(None)
            }
            (Place::Given { path, .. }, true) => Ok(Some(path)),
            (Place::Given { path, created }, false) => {
                remove_cluster_files(&path)?;
                if created {
                    std::fs::remove_dir(&path)?;
                }
                Ok(None)
            }
        }
    }
}

/// Removes the nodes' instance directories, the witness and the certificates, and nothing
/// else.
fn remove_cluster_files(directory: &Path) -> Result<(), ToolError> {
    for name in NODES.iter().chain([&WITNESS, &CERTS]) {
        let path = directory.join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(())
}
