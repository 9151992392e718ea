//! The commands, one module each.

pub mod backup;
pub mod backup_truncate;
pub mod backup_verify;
pub mod checkpoint_dump;
pub mod checksum;
pub mod compact;
pub mod demo;
pub mod demo_replicate;
pub mod demo_verify;
pub mod demo_write;
pub mod dump;
pub mod header;
pub mod integrity;
pub mod log_directory;
pub mod log_dump;
pub mod log_file;
pub mod recover;
pub mod repl_control;
pub mod repl_run;
pub mod repl_seed;
pub mod repl_status;
pub mod repl_verify;
pub mod restore;
pub mod space;
