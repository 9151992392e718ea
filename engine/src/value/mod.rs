//! Values stored out of line.

pub mod long;
pub mod long_reader;
pub mod long_writer;
