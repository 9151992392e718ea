//! Offline inspection of a database file, for the `bluejet` tool: header copies, page
//! checksums, B+tree integrity, space use and table dumps. Everything here reads the file
//! as its header's checkpoint left it and never writes.

mod checksum;
mod image;
mod integrity;
mod space;

pub use checksum::{checksum, BadPage, ChecksumReport};
pub use image::DatabaseImage;
pub use integrity::{integrity, IntegrityProblem, IntegrityReport};
pub use space::{space, SpaceReport, TableSpace};
