//! Opening a database file read-only for the inspection commands, and reading a table's
//! entries one at a time (a table can be far larger than memory).

use crate::exit::ToolError;
use bluejet_engine::db::KeyValue;
use bluejet_engine::format::cursor::{self, Cursor, Direction};
use bluejet_engine::format::inspect::DatabaseImage;
use bluejet_engine::format::page_store::PageStore;
use bluejet_engine::{DbError, DATABASE_FILE_NAME};
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// The database file `path` names: `path` itself, or `bluejet.db` in the directory `path`.
///
/// Checked here because the engine would open a directory without `bluejet.db` as if it
/// were the file, and report its (unreadable) header as damage instead of a wrong path.
pub fn database_file(path: &Path) -> Result<PathBuf, ToolError> {
    let file = if path.is_dir() {
        path.join(DATABASE_FILE_NAME)
    } else {
        path.to_owned()
    };
    if !file.is_file() {
        return Err(ToolError::Failure(format!(
            "{}: no database file here",
            file.display()
        )));
    }
    Ok(file)
}

/// The directory holding the database `path` names (the directory itself, or the file's).
pub fn database_directory(path: &Path) -> Result<PathBuf, ToolError> {
    let file = database_file(path)?;
    Ok(file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}

/// Opens the database at `path` (file or directory) read-only.
pub fn open(path: &Path) -> Result<DatabaseImage, ToolError> {
    let file = database_file(path)?;
    Ok(DatabaseImage::open(&file)?)
}

/// The entries of one tree, in key order, read lazily. Yields an error once, then ends.
pub struct Entries<'a> {
    store: &'a PageStore,
    cursor: Option<Cursor>,
}

impl<'a> Entries<'a> {
    /// The entries of the tree at `root` (0: an empty table).
    pub fn new(image: &'a DatabaseImage, root: u64) -> Result<Self, DbError> {
        let store = &image.store;
        let cursor = Cursor::seek(store, root, Bound::Unbounded, Direction::Forward)?;
        Ok(Self {
            store,
            cursor: Some(cursor),
        })
    }

    /// The entries of table `name`; [`DbError::TableNotFound`] if there is none.
    pub fn of_table(image: &'a DatabaseImage, name: &str) -> Result<Self, DbError> {
        let meta = image.table(name)?;
        Self::new(image, meta.root)
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<KeyValue, DbError>;

    fn next(&mut self) -> Option<Self::Item> {
        let cursor = self.cursor.as_mut()?;
        let step = cursor.next(self.store).and_then(|found| {
            found
                .map(|(leaf, index)| cursor::entry(self.store, &leaf, index))
                .transpose()
        });
        match step {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.cursor = None;
                None
            }
            Err(error) => {
                self.cursor = None;
                Some(Err(error))
            }
        }
    }
}

/// The table names of a database, in order, for messages that list them.
pub fn table_names(image: &DatabaseImage) -> Vec<String> {
    image
        .tables()
        .map(|tables| tables.into_iter().map(|(name, _)| name).collect())
        .unwrap_or_default()
}
