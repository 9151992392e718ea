//! The database file's pages: their format, the file header, the file, the cache and the
//! allocator. See `docs/design.md` for every byte.

pub mod allocator;
pub mod cache;
pub mod db_header;
pub mod file;
pub mod format;
pub mod free_list;
pub mod store;

pub use db_header::{DbHeader, DbState};
pub use store::{PageStore, WriteAhead};
