//! Helpers the command-line tests share: running `bluejet`, reading its output, and a
//! two-node cluster of `bluejet node run` processes.
#![allow(dead_code)] // each test file uses its own subset

pub mod exposition;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bluejet(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bluejet"))
        .args(arguments)
        .output()
        .expect("run bluejet")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

/// The JSON document `bluejet` printed; every one carries `schema_version`.
pub fn json(output: &Output) -> Value {
    let document: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", text(&output.stdout)));
    assert!(
        document["schema_version"].as_u64().is_some(),
        "no schema_version: {document}"
    );
    document
}

/// `bluejet ARGUMENTS...`, asserting the exit code; returns the output.
pub fn expect(arguments: &[&str], expected: i32) -> Output {
    let output = bluejet(arguments);
    assert_eq!(
        code(&output),
        expected,
        "{arguments:?}\n{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

pub fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Writes the cluster files of nodes `a` and `b` in `root`, sharing a witness directory
/// there, and initialises the witness with `a` as its first owner; returns their paths.
pub fn cluster_files(root: &Path) -> (PathBuf, PathBuf) {
    let (a, b) = cluster_files_without_init(root);
    expect(&["cluster", "init", "--config", arg(&a)], 0);
    (a, b)
}

/// The cluster files of `cluster_files`, the witness directory left empty.
pub fn cluster_files_without_init(root: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(root.join("witness")).unwrap();
    let write = |name: &str, peer: &str| {
        let path = root.join(format!("{name}.json"));
        let file = serde_json::json!({
            "name": name,
            "instance": root.join(name),
            "peer": peer,
            "peer_instance": root.join(peer),
            "witness": root.join("witness"),
        });
        std::fs::write(&path, file.to_string()).unwrap();
        path
    };
    (write("a", "b"), write("b", "a"))
}

/// `bluejet node run` children, killed if a test fails before stopping them.
pub struct Nodes(pub Vec<std::process::Child>);

impl Nodes {
    pub fn start(configs: &[&Path]) -> Self {
        Self::start_with(configs, &[])
    }

    /// With `extra` arguments for every node (`--load RATE`).
    pub fn start_with(configs: &[&Path], extra: &[&str]) -> Self {
        let each: Vec<_> = configs.iter().map(|config| (*config, extra)).collect();
        Self::start_each(&each)
    }

    /// Each node with its own extra arguments (`--metrics ADDR`).
    pub fn start_each(nodes: &[(&Path, &[&str])]) -> Self {
        Self(
            nodes
                .iter()
                .map(|(config, extra)| {
                    Command::new(env!("CARGO_BIN_EXE_bluejet"))
                        .args(["node", "run", "--config", arg(config)])
                        // A safety net: the test stops them with SIGINT long before.
                        .args(["--duration", "120", "--json"])
                        .args(*extra)
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .expect("start bluejet node run")
                })
                .collect(),
        )
    }

    /// Stops every node with SIGINT; returns their outputs.
    pub fn stop(mut self) -> Vec<Output> {
        for child in &self.0 {
            let signalled = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(signalled.success());
        }
        std::mem::take(&mut self.0)
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if let Err(error) = child.kill() {
                eprintln!("killing a test process: {error}");
            }
            if let Err(error) = child.wait() {
                eprintln!("reaping a test process: {error}");
            }
        }
    }
}

/// Polls `cluster status --json` until `condition` holds; returns that status.
pub fn wait_for_cluster(config: &Path, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let output = bluejet(&["cluster", "status", "--config", arg(config), "--json"]);
        assert!(matches!(code(&output), 0 | 1), "{}", text(&output.stderr));
        let status = json(&output);
        if condition(&status) {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The entry of `name` in a `cluster status --json` document.
pub fn cluster_node<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["name"] == name)
        .unwrap_or_else(|| panic!("no node {name}: {status}"))
}

/// Sends `signal` (`-STOP`, `-CONT`, `-TERM`) to `pid`.
pub fn signal(name: &str, pid: u32) {
    let sent = Command::new("kill")
        .args([name, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}
