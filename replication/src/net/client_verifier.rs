//! The server's check of a client: the webpki verifier (the certificate chains to the
//! cluster CA, is in its validity and allows client authentication), then the certificate
//! must name the one node this listener expects. Both inside the handshake, so a wrong
//! client is refused with an alert and never gets a stream.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;

/// A client verifier that also requires the certificate to be valid for one node name.
#[derive(Debug)]
pub struct NamedClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    expected: ServerName<'static>,
}

impl NamedClientVerifier {
    /// Wraps `inner`, requiring certificates valid for `expected`.
    pub fn new(inner: Arc<dyn ClientCertVerifier>, expected: ServerName<'static>) -> Self {
        Self { inner, expected }
    }
}

/// Whether `end_entity` is valid for `name` (its subject alternative names).
pub fn check_peer_name(
    end_entity: &CertificateDer<'_>,
    name: &ServerName<'_>,
) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(end_entity)?;
    rustls::client::verify_server_name(&parsed, name)
}

impl ClientCertVerifier for NamedClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_peer_name(end_entity, &self.expected)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
