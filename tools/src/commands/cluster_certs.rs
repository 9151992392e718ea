//! `bluejet cluster certs --dir DIR --nodes a,b [--days N]`: makes the certificates of a
//! cluster's mutual TLS, once: a new cluster CA (`ca.pem`, `ca.key`) and per node a
//! certificate and key signed by it (`<node>.pem`, `<node>.key`), valid [`DEFAULT_DAYS`]
//! days unless `--days` says otherwise. Keys are written 0600, certificates 0644; DIR is
//! created (0700) if missing; every file and the directory are synced.
//!
//! Nothing is ever replaced: if any of the files exists already, the command writes nothing
//! and is refused naming the file (a new `ca.key` under a running cluster would split it in
//! two; renewing is making a new directory and copying the files over deliberately).
//!
//! Exit 0 written, 1 refused (a file exists already), 2 bad usage (a node name that is not
//! a plain DNS label, `ca`, a node listed twice, days out of range), 3 when the directory
//! or a file cannot be created or written.

use crate::exit::{ToolError, Verdict};
use crate::output;
use bluejet_replication::net::certs::{make_cluster_certs, CertError, CertFiles, Validity};
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

/// The validity of new certificates when `--days` is not given: 825 days (about 27
/// months), the longest the CA/Browser Forum allowed for a server certificate until 2020.
/// Long enough that a cluster does not renew often, short enough that a leaked key does
/// not stay good for a decade.
pub const DEFAULT_DAYS: u32 = 825;

/// Makes and writes the certificates; see the module documentation.
pub fn run(dir: &Path, nodes: &[String], days: u32, as_json: bool) -> Result<Verdict, ToolError> {
    match make_cluster_certs(dir, nodes, days) {
        Ok(files) => {
            report_written(dir, &files, days, as_json);
            Ok(Verdict::Clean)
        }
        Err(CertError::Exists(path)) => {
            let message = format!(
                "{} exists already: nothing was written (certificates are never replaced; \
                 choose a new directory)",
                path.display()
            );
            report_refused(dir, &message, as_json);
            Ok(Verdict::Damaged)
        }
        Err(error) => Err(tool_error(error)),
    }
}

/// A bad argument is a usage error (exit 2); anything else stopped the command (exit 3).
fn tool_error(error: CertError) -> ToolError {
    match error {
        CertError::Name(_)
        | CertError::ReservedName(_)
        | CertError::DuplicateNode(_)
        | CertError::NoNodes
        | CertError::Days(_)
        | CertError::EmptyValidity => ToolError::Usage(error.to_string()),
        error => ToolError::Failure(error.to_string()),
    }
}

/// One file written: its path, what it is, and its mode as read back from the disk.
struct Written {
    path: String,
    what: String,
    node: Option<String>,
    mode: Option<u32>,
}

fn written(files: &CertFiles) -> Vec<Written> {
    let entry = |path: &Path, what: String, node: Option<&str>| Written {
        path: path.display().to_string(),
        what,
        node: node.map(str::to_owned),
        mode: mode_of(path),
    };
    let mut all = vec![
        entry(&files.ca_cert, "the cluster CA's certificate".into(), None),
        entry(&files.ca_key, "the cluster CA's private key".into(), None),
    ];
    for (node, cert, key) in &files.nodes {
        all.push(entry(
            cert,
            format!("node {node}'s certificate"),
            Some(node),
        ));
        all.push(entry(key, format!("node {node}'s private key"), Some(node)));
    }
    all
}

fn mode_of(path: &Path) -> Option<u32> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(metadata.permissions().mode() & 0o777)
}

/// The JSON document of `cluster certs`; a refusal has no nodes, days nor validity.
#[derive(Serialize)]
struct CertsDocument<'a> {
    kind: &'static str,
    dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nodes: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
    files: Vec<WrittenJson<'a>>,
    ok: bool,
    message: Option<&'a str>,
    passed: bool,
}

/// One file written, in the JSON document.
#[derive(Serialize)]
struct WrittenJson<'a> {
    path: &'a str,
    what: &'a str,
    node: Option<&'a str>,
    mode: String,
}

fn mode_text(mode: Option<u32>) -> String {
    mode.map_or_else(|| "?".into(), |mode| format!("{mode:04o}"))
}

fn micros(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

fn report_written(dir: &Path, files: &CertFiles, days: u32, as_json: bool) {
    let entries = written(files);
    let Validity {
        not_before,
        not_after,
    } = files.validity;
    if as_json {
        let list = entries
            .iter()
            .map(|file| WrittenJson {
                path: &file.path,
                what: &file.what,
                node: file.node.as_deref(),
                mode: mode_text(file.mode),
            })
            .collect();
        output::print_json(&CertsDocument {
            kind: "cluster-certs",
            dir: dir.display().to_string(),
            nodes: Some(files.nodes.iter().map(|node| node.0.as_str()).collect()),
            days: Some(days),
            not_before: Some(output::time(micros(not_before))),
            not_after: Some(output::time(micros(not_after))),
            files: list,
            ok: true,
            message: None,
            passed: true,
        });
        return;
    }
    crate::out!(
        "cluster certificates written in {} (valid {days} days, until {}):",
        dir.display(),
        output::time(micros(not_after))
    );
    for file in &entries {
        crate::out!("  {}  {}  {}", mode_text(file.mode), file.path, file.what);
    }
    crate::out!(
        "copy to each node ca.pem, <node>.pem and <node>.key (kept 0600); keep ca.key off the \
         nodes: whoever holds it can make certificates for this cluster"
    );
}

fn report_refused(dir: &Path, message: &str, as_json: bool) {
    if as_json {
        output::print_json(&CertsDocument {
            kind: "cluster-certs",
            dir: dir.display().to_string(),
            nodes: None,
            days: None,
            not_before: None,
            not_after: None,
            files: Vec::new(),
            ok: false,
            message: Some(message),
            passed: false,
        });
    } else {
        crate::out!("cluster certs refused: {message}");
    }
}
