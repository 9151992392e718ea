//! BlueJet's storage engine. This release holds the transaction log ([`log`]) and the file
//! layer it writes through ([`file`](mod@file)).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod file;
pub mod log;

pub use error::LogError;
