//! Replication over the network: TCP with mutual TLS 1.3 between the nodes of one cluster,
//! and the framing of the messages they exchange.
//!
//! - [`certs`]: the cluster CA and the node certificates (`bluejet cluster certs`);
//! - [`tls`]: a node's TLS identity, its configurations, and the handshakes ([`tls::accept`],
//!   [`tls::connect`]) that authenticate the peer as one named node;
//! - [`frame`]: the wire frame (magic, version, kind, length, crc32c, payload);
//! - [`wire`]: the payload codec of the protocol's messages;
//! - [`message`]: the handshake, requests and responses; [`path`]: paths on the wire;
//! - [`server`]: a node serving its instance directory to its peer;
//! - [`tail`]: block mode's request for the log bytes after a position, and its answer;
//! - [`remote_fs`]: the peer's instance directory as a `FileSystem` over the network.

pub mod certs;
pub mod client_verifier;
pub mod frame;
pub mod message;
pub mod node_name;
pub mod path;
pub mod remote_fs;
pub mod server;
pub mod tail;
pub mod tls;
pub mod tls_error;
pub mod tls_stream;
pub mod wire;

pub use tls::{accept, connect, TlsIdentity};
pub use tls_error::{Refusal, TlsError};
pub use tls_stream::TlsStream;
