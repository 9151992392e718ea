//! A node's network transport: it serves its instance directory to its peer over mutual
//! TLS, and reaches the peer's the same way (instead of through a shared file system).
//!
//! Configured by the cluster file's `network` object (`listen`, `peer_address`, `certs`);
//! without it the peer's instance is a directory this node reads directly (two copies on
//! one machine, or a file share).

use super::node::{NodeState, Shared};
use crate::net::message::Welcome;
use crate::net::remote_fs::{NetFileSystem, PeerAddress};
use crate::net::server::ServeError;
use crate::net::server::{ServedNode, Server, ServerOptions};
use crate::net::tail::{Tail, TailAnswer};
use crate::net::{TlsError, TlsIdentity};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

/// The cluster file's `network` object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkFile {
    /// `host:port` this node listens on (port 0: the OS chooses).
    pub listen: String,
    /// `host:port` of the peer.
    pub peer_address: String,
    /// The directory `bluejet cluster certs` wrote (`ca.pem`, `<node>.pem`, `<node>.key`).
    pub certs: PathBuf,
}

/// A node's network settings, ready to run.
#[derive(Clone)]
pub struct Network {
    /// Where this node listens.
    pub listen: SocketAddr,
    /// This node's certificate, key and the cluster CA.
    pub identity: Arc<TlsIdentity>,
    /// The peer's instance, reached over the network (also the node's `peer_fs`).
    pub peer: Arc<NetFileSystem>,
    /// A second connection to the peer, for block mode's long polls (so that they never
    /// hold up file mode's requests).
    pub blocks: Arc<NetFileSystem>,
}

impl Network {
    /// From the cluster file's object: loads the certificates (a key readable by others is
    /// refused) and prepares the peer's file system under `peer_root`.
    pub fn from_file(
        file: &NetworkFile,
        me: &str,
        peer: &str,
        peer_root: &Path,
    ) -> Result<Self, String> {
        let listen = file
            .listen
            .parse()
            .map_err(|error| format!("network.listen {:?}: {error}", file.listen))?;
        let identity =
            TlsIdentity::load(&file.certs, me).map_err(|error: TlsError| error.to_string())?;
        let address = PeerAddress::new(me, peer, &file.peer_address);
        let connect = || {
            NetFileSystem::new(peer_root, address.clone(), &identity)
                .map(Arc::new)
                .map_err(|error| error.to_string())
        };
        let (peer, blocks) = (connect()?, connect()?);
        Ok(Self {
            listen,
            identity: Arc::new(identity),
            peer,
            blocks,
        })
    }
}

/// The root under which the peer's files are named when it is reached over the network
/// (no such directory exists here: every path under it is a request to the peer).
pub fn peer_root(peer: &str) -> PathBuf {
    PathBuf::from("/bluejet-peer").join(peer)
}

/// Starts serving this node's instance to its peer.
pub(crate) fn serve(shared: &Arc<Shared>, network: &Network) -> Result<Server, ServeError> {
    let config = &shared.config;
    let options = ServerOptions::new(
        network.listen,
        config.instance.clone(),
        Arc::clone(&config.options.log.file_system),
        &config.peer,
    );
    let served = Arc::new(Served(Arc::downgrade(shared)));
    Server::start(options, &network.identity, served)
}

/// What the server asks of the node, without keeping it alive.
struct Served(Weak<Shared>);

impl ServedNode for Served {
    fn welcome(&self) -> Welcome {
        let Some(shared) = self.0.upgrade() else {
            return Welcome::default();
        };
        let mut welcome = Welcome {
            node: shared.config.name.clone(),
            cluster: shared.seen.cluster().unwrap_or_default(),
            role: "joining".into(),
            epoch: shared.seen.highest(),
            ..Welcome::default()
        };
        match &*shared.state.read_recursive() {
            NodeState::Joining => {}
            NodeState::Passive(_) => welcome.role = "passive".into(),
            NodeState::Active(active) => {
                let signature = active.db.log().signature();
                welcome.role = "active".into();
                welcome.epoch = active.epoch;
                welcome.signature = Some((signature.id, signature.created_micros));
                welcome.timeline = active.db.log().current_header().timeline;
            }
        }
        welcome
    }

    fn tail(&self, request: &Tail) -> TailAnswer {
        match self.0.upgrade() {
            Some(shared) => super::block_source::answer(&shared, request),
            None => TailAnswer::Unavailable {
                reason: "the node is stopping".into(),
            },
        }
    }

    fn event(&self, kind: &str, message: &str) {
        if let Some(shared) = self.0.upgrade() {
            // The server's events are its failures (a peer refused, a connection closed on a
            // bad frame): reported as they happen, besides the node's event log.
            tracing::warn!(node = %shared.config.name, kind, %message, "replication server");
            shared.event(kind, None, message);
        }
    }
}
