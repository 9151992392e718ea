//! The cluster's certificates: one certificate authority, and per node a certificate signed
//! by it whose only name is the node's name. Nodes trust the cluster CA alone and check the
//! peer's name, so a certificate is worth exactly one node of exactly one cluster.
//!
//! Files in the certificate directory: `ca.pem` and `ca.key` (the CA), `<node>.pem` and
//! `<node>.key` per node. Keys are written 0600; certificates are public (0644). Nothing is
//! ever overwritten: replacing `ca.key` under a running cluster would split it in two, so an
//! operator who runs the command twice gets a refusal naming the file.

use crate::net::node_name::{check_node_name, NodeNameError};
use crate::private_files::create_directory_durably;
use crate::ReplError;
use bluejet_engine::file::{FileSystem, OsFileSystem};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The mode of a private key file: owner read and write only.
pub const KEY_MODE: u32 = 0o600;
/// The mode of a certificate file: public, readable by monitoring tools.
pub const CERT_MODE: u32 = 0o644;
/// The longest validity accepted, in days (about a century; beyond, dates overflow).
pub const MAX_VALID_DAYS: u32 = 36_500;
/// The name reserved for the CA's files.
const CA: &str = "ca";

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A node name is not valid.
    #[error(transparent)]
    Name(#[from] NodeNameError),
    /// A node named like the CA's files.
    #[error("node name {0:?} is reserved for the CA's files")]
    ReservedName(String),
    /// The same node twice.
    #[error("node {0:?} is listed twice")]
    DuplicateNode(String),
    /// No node at all.
    #[error("no node given")]
    NoNodes,
    /// A validity out of range.
    #[error("validity of {0} days: must be 1 to {MAX_VALID_DAYS}")]
    Days(u32),
    /// A validity that ends before it begins.
    #[error("a validity must end after it begins")]
    EmptyValidity,
    /// A file to write exists already.
    #[error("{} exists already: refusing to replace it", .0.display())]
    Exists(PathBuf),
    /// The directory could not be created.
    #[error("creating the certificate directory: {0}")]
    Directory(Box<ReplError>),
    /// A file could not be written or synced.
    #[error("{}: writing failed: {cause}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The failure.
        cause: io::Error,
    },
    /// rcgen could not make a key or a certificate.
    #[error("generating {what}: {cause}")]
    Generate {
        /// The certificate or key being made.
        what: String,
        /// The failure.
        cause: rcgen::Error,
    },
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The first instant it is valid.
    pub not_before: SystemTime,
    /// The last instant it is valid.
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (nodes' clocks differ a little) to `days` days from now.
    pub fn days_from_now(days: u32) -> Result<Self, CertError> {
        if days == 0 || days > MAX_VALID_DAYS {
            return Err(CertError::Days(days));
        }
        let now = SystemTime::now();
        Ok(Self {
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(u64::from(days) * 86_400),
        })
    }

    /// From `not_before` to `not_after`, which must come later. Either may be in the past:
    /// an expired certificate, to test that peers refuse it.
    pub fn between(not_before: SystemTime, not_after: SystemTime) -> Result<Self, CertError> {
        if not_after <= not_before {
            return Err(CertError::EmptyValidity);
        }
        Ok(Self {
            not_before,
            not_after,
        })
    }
}

/// The files [`make_cluster_certs`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The CA's certificate.
    pub ca_cert: PathBuf,
    /// The CA's private key.
    pub ca_key: PathBuf,
    /// Per node, in the order given: its name, certificate and key.
    pub nodes: Vec<(String, PathBuf, PathBuf)>,
    /// When every certificate written (the CA's and the nodes') is valid.
    pub validity: Validity,
}

impl CertFiles {
    /// Every file, the CA's first.
    pub fn all(&self) -> Vec<&Path> {
        let mut all = vec![self.ca_cert.as_path(), self.ca_key.as_path()];
        for (_, cert, key) in &self.nodes {
            all.extend([cert.as_path(), key.as_path()]);
        }
        all
    }
}

/// `dir/ca.pem`.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join(format!("{CA}.pem"))
}

/// `dir/ca.key`.
pub fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join(format!("{CA}.key"))
}

/// `dir/<node>.pem`.
pub fn node_cert_path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.pem"))
}

/// `dir/<node>.key`.
pub fn node_key_path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.key"))
}

/// A cluster CA held in memory.
pub struct ClusterCa {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

/// A node's certificate and key, in PEM.
pub struct NodeCert {
    /// The node's name, the certificate's only subject alternative name.
    pub node: String,
    /// The certificate.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

impl ClusterCa {
    /// A new CA with a new key, valid over `validity`.
    pub fn generate(validity: &Validity) -> Result<Self, CertError> {
        let key = generate_key("the CA key")?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "BlueJet cluster CA");
        // Signs node certificates only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, validity);
        let cert = params
            .self_signed(&key)
            .map_err(|source| generate_error("the CA certificate", source))?;
        let cert_pem = cert.pem();
        Ok(Self {
            params,
            key,
            cert_pem,
        })
    }

    /// The CA certificate.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for `node`, for both server and client authentication, valid over
    /// `validity`.
    pub fn issue(&self, node: &str, validity: &Validity) -> Result<NodeCert, CertError> {
        check_node_name(node)?;
        let what = format!("the certificate of node {node}");
        let key = generate_key(&what)?;
        let mut params = CertificateParams::new(vec![node.to_owned()])
            .map_err(|source| generate_error(&what, source))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, node);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, validity);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|source| generate_error(&what, source))?;
        Ok(NodeCert {
            node: node.to_owned(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem` and `ca.key` into `dir` (which must exist), refusing to replace
    /// either.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), CertError> {
        let cert = ca_cert_path(dir);
        let key = ca_key_path(dir);
        write_new(&cert, self.cert_pem.as_bytes(), CERT_MODE)?;
        write_new(&key, self.key_pem().as_bytes(), KEY_MODE)?;
        Ok((cert, key))
    }
}

impl NodeCert {
    /// Writes `<node>.pem` and `<node>.key` into `dir` (which must exist), refusing to
    /// replace either.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), CertError> {
        let cert = node_cert_path(dir, &self.node);
        let key = node_key_path(dir, &self.node);
        write_new(&cert, self.cert_pem.as_bytes(), CERT_MODE)?;
        write_new(&key, self.key_pem.as_bytes(), KEY_MODE)?;
        Ok((cert, key))
    }
}

/// Makes a new cluster CA and a certificate per node, valid `valid_days` from now, and
/// writes them into `dir` (created durably if missing). Refuses before writing anything if
/// any of the files exists already; syncs every file and the directory.
pub fn make_cluster_certs(
    dir: &Path,
    nodes: &[String],
    valid_days: u32,
) -> Result<CertFiles, CertError> {
    check_nodes(nodes)?;
    let validity = Validity::days_from_now(valid_days)?;
    refuse_existing(dir, nodes)?;
    let ca = ClusterCa::generate(&validity)?;
    let issued = nodes
        .iter()
        .map(|node| ca.issue(node, &validity))
        .collect::<Result<Vec<_>, _>>()?;
    create_directory_durably(&OsFileSystem, dir)
        .map_err(|error| CertError::Directory(Box::new(error)))?;
    let (ca_cert, ca_key) = ca.write(dir)?;
    let mut files = Vec::with_capacity(issued.len());
    for node in &issued {
        let (cert, key) = node.write(dir)?;
        files.push((node.node.clone(), cert, key));
    }
    sync_directory(dir)?;
    Ok(CertFiles {
        ca_cert,
        ca_key,
        nodes: files,
        validity,
    })
}

/// Makes `dir`'s new entries durable.
pub fn sync_directory(dir: &Path) -> Result<(), CertError> {
    OsFileSystem
        .sync_directory(dir)
        .map_err(|source| CertError::Write {
            path: dir.to_owned(),
            cause: source,
        })
}

fn check_nodes(nodes: &[String]) -> Result<(), CertError> {
    if nodes.is_empty() {
        return Err(CertError::NoNodes);
    }
    for (index, node) in nodes.iter().enumerate() {
        check_node_name(node)?;
        if node.eq_ignore_ascii_case(CA) {
            return Err(CertError::ReservedName(node.clone()));
        }
        // DNS names compare without case: "A" and "a" would be one name.
        if nodes[..index].iter().any(|n| n.eq_ignore_ascii_case(node)) {
            return Err(CertError::DuplicateNode(node.clone()));
        }
    }
    Ok(())
}

fn refuse_existing(dir: &Path, nodes: &[String]) -> Result<(), CertError> {
    let mut paths = vec![ca_cert_path(dir), ca_key_path(dir)];
    for node in nodes {
        paths.extend([node_cert_path(dir, node), node_key_path(dir, node)]);
    }
    match paths.into_iter().find(|path| path.exists()) {
        Some(path) => Err(CertError::Exists(path)),
        None => Ok(()),
    }
}

/// Creates `path` with `mode` (never replacing a file), writes `contents` and syncs it.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let failed = |source: io::Error| CertError::Write {
        path: path.to_owned(),
        cause: source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => CertError::Exists(path.to_owned()),
            _ => failed(source),
        })?;
    file.write_all(contents).map_err(failed)?;
    file.sync_all().map_err(failed)
}

fn generate_key(what: &str) -> Result<KeyPair, CertError> {
    KeyPair::generate().map_err(|source| generate_error(what, source))
}

fn generate_error(what: &str, source: rcgen::Error) -> CertError {
    CertError::Generate {
        what: what.to_owned(),
        cause: source,
    }
}

fn set_validity(params: &mut CertificateParams, validity: &Validity) {
    params.not_before = time::OffsetDateTime::from(validity.not_before);
    params.not_after = time::OffsetDateTime::from(validity.not_after);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn writes_every_file_with_its_mode_and_refuses_a_second_run() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("certs");
        let files = make_cluster_certs(&dir, &names(&["a", "b"]), 825).unwrap();
        assert_eq!(files.all().len(), 6);
        for path in files.all() {
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            let expected = if path.extension().unwrap() == "key" {
                KEY_MODE
            } else {
                CERT_MODE
            };
            assert_eq!(mode, expected, "{}", path.display());
        }
        let before = std::fs::read(&files.ca_key).unwrap();
        let error = make_cluster_certs(&dir, &names(&["c"]), 825).unwrap_err();
        assert!(
            matches!(&error, CertError::Exists(path) if path == &files.ca_cert),
            "{error}"
        );
        assert_eq!(std::fs::read(&files.ca_key).unwrap(), before);
        assert!(
            !node_cert_path(&dir, "c").exists(),
            "refused before writing"
        );
    }

    type Expect = fn(&CertError) -> bool;

    #[test]
    fn bad_node_lists_are_refused_before_anything_is_written() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("certs");
        let cases: [(&[&str], Expect); 5] = [
            (&[], |e| matches!(e, CertError::NoNodes)),
            (&["a", "../x"], |e| matches!(e, CertError::Name(_))),
            (&["a", "A"], |e| matches!(e, CertError::DuplicateNode(_))),
            (&["ca"], |e| matches!(e, CertError::ReservedName(_))),
            (&[""], |e| {
                matches!(e, CertError::Name(NodeNameError::Empty))
            }),
        ];
        for (list, expected) in cases {
            let error = make_cluster_certs(&dir, &names(list), 10).unwrap_err();
            assert!(expected(&error), "{list:?}: {error}");
        }
        let error = make_cluster_certs(&dir, &names(&["a"]), 0).unwrap_err();
        assert!(matches!(error, CertError::Days(0)), "{error}");
        assert!(!dir.exists());
    }

    #[test]
    fn a_validity_must_end_after_it_begins() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let past = Validity::between(now - 2 * hour, now - hour).unwrap();
        assert_eq!(past.not_after, now - hour);
        for (from, to) in [(now, now), (now, now - hour)] {
            let error = Validity::between(from, to).unwrap_err();
            assert!(matches!(error, CertError::EmptyValidity), "{error}");
        }
    }
}
