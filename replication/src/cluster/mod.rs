//! A two-node cluster with a file-share witness: roles, leases, heartbeats, automatic
//! failover with a mount dial, planned switchover, and resynchronisation of an old active.
//!
//! Three votes: the two nodes and the witness; a node holds the database only while the
//! witness names it owner and its lease there is valid ([`witness`], [`lease`]). See
//! `docs/design.md` ("Cluster") for the files and the timing assumptions.

pub mod backup_request;
pub mod block_follow;
mod block_salvage;
mod block_source;
pub mod clock;
pub mod config;
pub mod failover;
pub mod heartbeat;
pub mod instance_lock;
pub mod lease;
pub mod loss;
pub mod measured;
pub mod network;
pub mod node;
pub mod node_id;
pub mod reapply_request;
pub mod requests;
pub mod resync;
pub mod retention;
pub mod seen_epoch;
pub mod switchover;
pub mod sync_commit;
pub mod witness;

pub use config::{MountDial, NodeConfig, NodeFile};
pub use failover::FailoverReport;
pub use heartbeat::Role;
pub use node::{Node, NodeStatus};
