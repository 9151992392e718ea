//! The commands, one module each.

pub mod checkpoint_dump;
pub mod demo;
pub mod demo_check;
pub mod log_directory;
pub mod log_dump;
pub mod log_file;
