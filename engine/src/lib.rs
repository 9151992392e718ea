//! BlueJet's storage engine: the database ([`db`]) of B+tree tables ([`btree`]) on
//! checksummed pages ([`page`]), the transaction log ([`log`]) every change goes through, and
//! the file layer both write through ([`file`](mod@file)).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod btree;
pub mod content;
pub mod db;
pub mod error;
pub mod file;
pub mod inspect;
pub mod log;
pub mod metrics;
pub mod page;
pub mod repair;
pub mod value;

pub use db::{Database, DbError, Options};
pub use error::LogError;
pub use metrics::Metrics;

// The README's example is compiled and run with the doc tests, so that it shows the API as
// it is.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;
