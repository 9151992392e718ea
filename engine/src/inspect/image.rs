//! A database file opened read-only.

use crate::btree::cursor::{self, Cursor, Direction};
use crate::db::{read_header_copies, DbError, KeyValue, TableMeta};
use crate::file::{FileSystem, OpenMode, OsFileSystem};
use crate::page::db_header::{first_data_page, HeaderRead};
use crate::page::file::DatabaseFile;
use crate::page::{PageStore, WriteAhead};
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// Cache used when inspecting: small, pages are mostly read once.
const INSPECT_CACHE_BYTES: usize = 16 << 20;

/// A database file opened for reading, with its header copies.
pub struct DatabaseImage {
    /// The file.
    pub path: PathBuf,
    /// Both header copies and the one in use.
    pub header: HeaderRead,
    /// The pages.
    pub store: PageStore,
}

impl DatabaseImage {
    /// Opens `path` (a database file, or a directory holding `bluejet.db`).
    pub fn open(path: &Path) -> Result<Self, DbError> {
        Self::open_with(&OsFileSystem, path)
    }

    /// Opens through a given file layer.
    pub fn open_with(fs: &dyn FileSystem, path: &Path) -> Result<Self, DbError> {
        let path = database_path(fs, path);
        let handle = fs
            .open(&path, OpenMode::Read)
            .map_err(|error| DbError::io(&path, "opening", error))?;
        let header = read_header_copies(&handle, &path)?;
        let file = DatabaseFile::new(handle, &path, header.header.page_size as usize)?;
        Ok(Self {
            path,
            header,
            store: PageStore::new(file, INSPECT_CACHE_BYTES, WriteAhead::ReadOnly),
        })
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.store.page_size()
    }

    /// The first data page.
    pub fn first_data_page(&self) -> u64 {
        first_data_page(self.page_size())
    }

    /// Every table with its catalog entry, in name order.
    pub fn tables(&self) -> Result<Vec<(String, TableMeta)>, DbError> {
        let root = self.header.header.catalog_root;
        let mut tables = Vec::new();
        for entry in self.scan(root)? {
            let (name, value) = entry;
            let meta = TableMeta::decode(&value, &self.path, root)?;
            tables.push((String::from_utf8_lossy(&name).into_owned(), meta));
        }
        Ok(tables)
    }

    /// The catalog entry of `table`.
    pub fn table(&self, table: &str) -> Result<TableMeta, DbError> {
        self.tables()?
            .into_iter()
            .find(|(name, _)| name == table)
            .map(|(_, meta)| meta)
            .ok_or_else(|| DbError::TableNotFound(table.to_owned()))
    }

    /// Every entry of the tree at `root`, in key order.
    pub fn scan(&self, root: u64) -> Result<Vec<KeyValue>, DbError> {
        let store = &self.store;
        let mut cursor = Cursor::seek(store, root, Bound::Unbounded, Direction::Forward)?;
        let mut entries = Vec::new();
        while let Some((leaf, index)) = cursor.next(store)? {
            entries.push(cursor::entry(store, &leaf, index)?);
        }
        Ok(entries)
    }
}

/// A directory means the database file inside it.
fn database_path(fs: &dyn FileSystem, path: &Path) -> PathBuf {
    let inside = path.join(crate::db::DATABASE_FILE_NAME);
    if fs.exists(&inside) {
        inside
    } else {
        path.to_owned()
    }
}
