//! Mutual TLS 1.3 between nodes: each node loads its identity (the cluster CA, its own
//! certificate and key, see [`certs`](crate::net::certs)) and builds a server configuration
//! that admits one named client, or a client configuration that trusts the cluster CA only.
//!
//! The crypto provider (ring) is passed explicitly to every builder: nothing here depends on
//! or changes a process-wide default. Session resumption is off on both sides, so every
//! connection checks the peer's certificate (chain, name, dates) afresh: connections are
//! long-lived, the full handshake costs nothing that matters.
//!
//! [`accept`] and [`connect`] complete the handshake before returning, so a refused peer is
//! an error with a reason there, not on the first read. One asymmetry of TLS 1.3 remains: the
//! client finishes its side first, so a client whose certificate the server refuses learns it
//! on its first read (as a [`Refusal::PeerAlert`] inside the I/O error).

use crate::net::certs::{ca_cert_path, node_cert_path, node_key_path};
use crate::net::client_verifier::{check_peer_name, NamedClientVerifier};
use crate::net::node_name::check_node_name;
use crate::net::tls_error::{Refusal, TlsError};
use crate::net::tls_stream::TlsStream;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest certificate or key file read: far above any real one, and a bound on what a
/// misplaced file can make us read.
pub const MAX_PEM_FILE: u64 = 1 << 20;

/// A node's TLS identity: the cluster CA it trusts, and its certificate chain and key.
pub struct TlsIdentity {
    node: String,
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsIdentity")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Reads `dir/ca.pem`, `dir/<node>.pem` and `dir/<node>.key`. The key file must not be
    /// readable by group or others.
    pub fn load(dir: &Path, node: &str) -> Result<Self, TlsError> {
        check_node_name(node)?;
        let ca_path = ca_cert_path(dir);
        let ca = read_certificates(&ca_path)?.swap_remove(0);
        let chain = read_certificates(&node_cert_path(dir, node))?;
        let key_path = node_key_path(dir, node);
        check_private(&key_path)?;
        let key_pem = read_bounded(&key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::Pem {
            path: key_path,
            what: "private key",
            detail: error.to_string(),
        })?;
        Ok(Self {
            node: node.to_owned(),
            ca,
            chain,
            key,
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// A server configuration that admits only a client whose certificate chains to the
    /// cluster CA and names `expected_client`, checked inside the handshake.
    pub fn server_config(&self, expected_client: &str) -> Result<Arc<ServerConfig>, TlsError> {
        let expected = node_server_name(expected_client)?;
        let provider = provider();
        let webpki = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(|source| TlsError::Verifier {
                node: self.node.clone(),
                cause: source,
            })?;
        let verifier = NamedClientVerifier::new(webpki, expected);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|source| self.config_error(source))?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|source| self.config_error(source))?;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    /// A client configuration that trusts the cluster CA only and presents this node's
    /// certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let roots = Arc::unwrap_or_clone(self.roots()?);
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|source| self.config_error(source))?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|source| self.config_error(source))?;
        config.resumption = Resumption::disabled();
        Ok(Arc::new(config))
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.clone())
            .map_err(|source| self.config_error(source))?;
        Ok(Arc::new(roots))
    }

    fn config_error(&self, source: rustls::Error) -> TlsError {
        TlsError::Config {
            node: self.node.clone(),
            cause: source,
        }
    }
}

/// Completes the server side of a handshake on `tcp` (within the timeouts set on it) with a
/// configuration from [`TlsIdentity::server_config`] for `expected_client`.
pub fn accept(
    config: &Arc<ServerConfig>,
    mut tcp: TcpStream,
    expected_client: &str,
) -> Result<TlsStream, TlsError> {
    let failed = |reason| handshake_error(expected_client, "as server", reason);
    let expected = node_server_name(expected_client)?;
    let mut connection = ServerConnection::new(config.clone())
        .map_err(|error| failed(Refusal::from_rustls(error, expected_client)))?;
    complete_handshake(&mut connection, &mut tcp, expected_client).map_err(failed)?;
    // Checked by the verifier already; again here so that a configuration built for another
    // node can never yield a stream labelled with this one.
    let end_entity = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| failed(Refusal::NoCertificate))?;
    check_peer_name(end_entity, &expected)
        .map_err(|error| failed(Refusal::from_rustls(error, expected_client)))?;
    Ok(TlsStream::server(
        StreamOwned::new(connection, tcp),
        expected_client,
    ))
}

/// Completes the client side of a handshake on `tcp` (within the timeouts set on it) with
/// the node `server_node`, whose certificate must name it.
pub fn connect(
    config: &Arc<ClientConfig>,
    mut tcp: TcpStream,
    server_node: &str,
) -> Result<TlsStream, TlsError> {
    let failed = |reason| handshake_error(server_node, "as client", reason);
    let name = node_server_name(server_node)?;
    let mut connection = ClientConnection::new(config.clone(), name)
        .map_err(|error| failed(Refusal::from_rustls(error, server_node)))?;
    complete_handshake(&mut connection, &mut tcp, server_node).map_err(failed)?;
    Ok(TlsStream::client(
        StreamOwned::new(connection, tcp),
        server_node,
    ))
}

/// Drives the handshake to its end, then sends what it left queued (the client's Finished).
/// The socket's read timeout bounds the whole handshake, not each read (found: a client
/// sending a byte every 3 s held a connection, and with eight of them every slot, for as
/// long as it liked).
fn complete_handshake(
    connection: &mut impl Handshake,
    tcp: &mut TcpStream,
    peer: &str,
) -> Result<(), Refusal> {
    let io = |error| Refusal::from_io(error, peer);
    let per_read = tcp.read_timeout().map_err(io)?;
    let deadline = Instant::now() + per_read.unwrap_or(DEFAULT_HANDSHAKE);
    while connection.is_handshaking() || connection.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Refusal::Timeout);
        }
        tcp.set_read_timeout(Some(left)).map_err(io)?;
        let moved = connection.drive(tcp).map_err(io)?;
        // No progress and no error: the peer is gone (guards against spinning).
        if moved == (0, 0) && connection.is_handshaking() {
            return Err(Refusal::Closed(io::ErrorKind::UnexpectedEof));
        }
    }
    tcp.set_read_timeout(per_read).map_err(io)
}

/// The whole handshake's bound when the socket has no read timeout.
const DEFAULT_HANDSHAKE: Duration = Duration::from_secs(10);

/// What [`complete_handshake`] needs of either side's connection (rustls's own common type
/// bounds its I/O on a private trait, so it cannot be named generically).
trait Handshake {
    fn is_handshaking(&self) -> bool;
    fn wants_write(&self) -> bool;
    fn drive(&mut self, tcp: &mut TcpStream) -> io::Result<(usize, usize)>;
}

impl Handshake for ServerConnection {
    fn is_handshaking(&self) -> bool {
        rustls::CommonState::is_handshaking(self)
    }
    fn wants_write(&self) -> bool {
        rustls::CommonState::wants_write(self)
    }
    fn drive(&mut self, tcp: &mut TcpStream) -> io::Result<(usize, usize)> {
        self.complete_io(tcp)
    }
}

impl Handshake for ClientConnection {
    fn is_handshaking(&self) -> bool {
        rustls::CommonState::is_handshaking(self)
    }
    fn wants_write(&self) -> bool {
        rustls::CommonState::wants_write(self)
    }
    fn drive(&mut self, tcp: &mut TcpStream) -> io::Result<(usize, usize)> {
        self.complete_io(tcp)
    }
}

fn node_server_name(node: &str) -> Result<ServerName<'static>, TlsError> {
    check_node_name(node)?;
    ServerName::try_from(node.to_owned()).map_err(|_| {
        TlsError::Name(crate::net::node_name::NodeNameError::NotDnsName {
            name: node.to_owned(),
        })
    })
}

fn handshake_error(peer: &str, role: &'static str, reason: Refusal) -> TlsError {
    TlsError::Handshake {
        peer: peer.to_owned(),
        role,
        reason,
    }
}

/// The ring provider. rustls 0.23.48 deprecates it for lacking post-quantum key exchange;
/// the provider that has it (aws-lc-rs) needs cmake to build, which this project does without.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_bounded(path)?;
    let bad = |detail: String| TlsError::Pem {
        path: path.to_owned(),
        what: "certificate",
        detail,
    };
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(error.to_string()))?;
    if certificates.is_empty() {
        return Err(bad("the file holds none".into()));
    }
    Ok(certificates)
}

/// The file's bytes, if it has at most [`MAX_PEM_FILE`] of them.
fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    let failed = |source| TlsError::Read {
        path: path.to_owned(),
        cause: source,
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let mut bytes = Vec::new();
    // One byte more than allowed, to tell a file at the limit from one past it.
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(TlsError::FileTooLarge {
            path: path.to_owned(),
            limit: MAX_PEM_FILE,
        });
    }
    Ok(bytes)
}

/// Refuses a key file with any permission bit for group or others.
fn check_private(path: &Path) -> Result<(), TlsError> {
    let metadata = std::fs::metadata(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        cause: source,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyNotPrivate {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}
