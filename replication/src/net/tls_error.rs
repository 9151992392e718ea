//! The errors of the TLS layer, and why a handshake failed, in terms an operator can act on:
//! wrong CA, wrong name, expired, not TLS, timed out.

use rustls::{AlertDescription, CertificateError};
use std::io;
use std::path::PathBuf;

use crate::net::node_name::NodeNameError;

/// Why the TLS identity could not be loaded, a configuration built or a handshake completed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A node name is not valid.
    #[error(transparent)]
    Name(#[from] NodeNameError),
    /// A file could not be read.
    #[error("{}: reading failed: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        cause: io::Error,
    },
    /// A file larger than any certificate or key.
    #[error("{} is larger than {limit} bytes: not a certificate or key", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A key file that group or others may read.
    #[error("{} may be read by group or others (mode {mode:o}): a key must be 0600", path.display())]
    KeyNotPrivate {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file holds no PEM item of the kind needed, or a damaged one.
    #[error("{}: no valid PEM {what}: {detail}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// rustls refused the certificates, the key or the settings.
    #[error("building the TLS configuration of node {node}: {cause}")]
    Config {
        /// The node whose identity it is.
        node: String,
        /// The failure.
        cause: rustls::Error,
    },
    /// The client certificate verifier could not be built (for example, a bad CA).
    #[error("building the client verifier of node {node}: {cause}")]
    Verifier {
        /// The node whose identity it is.
        node: String,
        /// The failure.
        cause: rustls::server::VerifierBuilderError,
    },
    /// The handshake with a peer failed.
    #[error("TLS handshake with node {peer} ({role}) failed: {reason}")]
    Handshake {
        /// The node expected at the other end.
        peer: String,
        /// "as server" or "as client": which side we were.
        role: &'static str,
        /// Why.
        reason: Refusal,
    },
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The peer's certificate does not chain to the cluster CA: issued by another CA, or
    /// its signature does not verify under the cluster CA's key.
    #[error("the peer's certificate is not issued by the cluster CA")]
    UnknownIssuer,
    /// The peer's certificate names another node.
    #[error("the peer's certificate is not for node {expected}")]
    WrongName {
        /// The node expected.
        expected: String,
    },
    /// The peer's certificate has expired.
    #[error("the peer's certificate has expired")]
    Expired,
    /// The peer's certificate is not valid yet.
    #[error("the peer's certificate is not valid yet")]
    NotYetValid,
    /// The peer presented no certificate.
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// Another problem with the peer's certificate.
    #[error("the peer's certificate is refused: {0}")]
    BadCertificate(rustls::Error),
    /// The peer refused the handshake (often: our certificate).
    #[error("the peer refused the handshake: alert {0:?}")]
    PeerAlert(AlertDescription),
    /// The peer does not speak TLS.
    #[error("the peer does not speak TLS: {0}")]
    NotTls(rustls::Error),
    /// Any other TLS failure.
    #[error("{0}")]
    Protocol(rustls::Error),
    /// The peer said nothing within the read timeout.
    #[error("timed out")]
    Timeout,
    /// The connection closed before the handshake ended.
    #[error("the connection closed during the handshake ({0:?})")]
    Closed(io::ErrorKind),
    /// Another I/O failure.
    #[error("I/O: {0}")]
    Io(io::Error),
}

impl Refusal {
    /// What a handshake's I/O error means. rustls reports its own errors inside an
    /// `io::Error` of kind `InvalidData`.
    pub fn from_io(error: io::Error, expected: &str) -> Self {
        if let Some(tls) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Self::from_rustls(tls.clone(), expected);
        }
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Self::Timeout,
            kind @ (io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe) => Self::Closed(kind),
            _ => Self::Io(error),
        }
    }

    /// What a rustls error means.
    pub fn from_rustls(error: rustls::Error, expected: &str) -> Self {
        match &error {
            rustls::Error::InvalidCertificate(certificate) => {
                Self::from_certificate(certificate, error.clone(), expected)
            }
            rustls::Error::NoCertificatesPresented => Self::NoCertificate,
            rustls::Error::AlertReceived(alert) => Self::PeerAlert(*alert),
            rustls::Error::InvalidMessage(_) => Self::NotTls(error),
            _ => Self::Protocol(error),
        }
    }

    fn from_certificate(
        certificate: &CertificateError,
        error: rustls::Error,
        expected: &str,
    ) -> Self {
        match certificate {
            // Every cluster's CA has the same subject name, so a certificate from another
            // cluster's CA finds ours as its issuer by name and fails on the signature.
            CertificateError::UnknownIssuer | CertificateError::BadSignature => Self::UnknownIssuer,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => Self::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Self::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Self::WrongName {
                    expected: expected.to_owned(),
                }
            }
            _ => Self::BadCertificate(error),
        }
    }
}
