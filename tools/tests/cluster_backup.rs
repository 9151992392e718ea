//! `bluejet cluster backup` against two running `bluejet node run` processes under load: the
//! passive node takes full and incremental backups that verify and restore everything
//! committed up to their position; the active and bad destinations are refused; an
//! interrupted request is withdrawn and never carried out.

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions).
#![allow(clippy::unwrap_used)]

mod common;

use bluejet_engine::{Database, Options};
use common::{
    arg, bluejet, cluster_files, cluster_node, code, expect, json, signal, text, wait_for_cluster,
    Nodes,
};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Waits until `a` is active and `b` passive, healthy and replaying `a`'s load.
fn wait_for_load(config: &Path) {
    wait_for_cluster(
        config,
        "a active and b passive replaying its load",
        |status| {
            cluster_node(status, "a")["heartbeat"]["role"] == "Active"
                && cluster_node(status, "b")["heartbeat"]["role"] == "Passive"
                && cluster_node(status, "b")["copy"]["state"] == "Healthy"
                && cluster_node(status, "b")["copy"]["replayed_position"]["generation"]
                    .as_u64()
                    .is_some_and(|generation| generation >= 2)
        },
    );
}

/// The `load` table of the database in `directory`: `node run --load` commits keys
/// `000000000000`, `000000000001`, ... one at a time, so it must hold exactly the first n
/// with their values. Returns n.
fn load_prefix(directory: &Path) -> u64 {
    let database = Database::open(directory, Options::default()).unwrap();
    let read = database.begin_read().unwrap();
    let table = read.open_table("load").unwrap();
    let mut count = 0u64;
    for entry in table.range(..).unwrap() {
        let (key, value) = entry.unwrap();
        assert_eq!(
            key,
            format!("{count:012}").into_bytes(),
            "a hole in the load"
        );
        assert_eq!(value, vec![(count % 251) as u8; 1024]);
        count += 1;
    }
    drop(table);
    drop(read);
    database.close().unwrap();
    count
}

fn backup(arguments: &[&str], expected: i32) -> Value {
    let mut all = vec!["cluster", "backup"];
    all.extend_from_slice(arguments);
    all.push("--json");
    json(&expect(&all, expected))
}

#[test]
fn a_running_cluster_is_backed_up_through_its_passive_node() {
    let root = tempfile::tempdir().unwrap();
    let (a, _b) = cluster_files(root.path());
    let nodes = Nodes::start_with(&[&a, &_b], &["--load", "200"]);
    wait_for_load(&a);
    let path = |relative: &str| root.path().join(relative).display().to_string();
    let config = arg(&a);

    // No --node: the node the witness does not name owner, b.
    let full = backup(&["--config", config, "--to", &path("full")], 0);
    assert_eq!(full["node"], "b", "{full}");
    assert_eq!(full["backup"]["backup_kind"], "full", "{full}");
    expect(&["backup", "verify", &path("full")], 0);
    // More load, replayed by b past the full backup, then an incremental backup that
    // follows it.
    let covered = full["backup"]["covers_through"].as_u64().unwrap();
    wait_for_cluster(&a, "b replaying past the full backup", |status| {
        cluster_node(status, "b")["copy"]["last_replayed"]["generation"]
            .as_u64()
            .is_some_and(|generation| generation > covered)
    });
    let incremental = backup(
        &[
            "--config",
            config,
            "--node",
            "b",
            "--to",
            &path("incr"),
            "--incremental",
        ],
        0,
    );
    assert_eq!(
        incremental["backup"]["base"], full["backup"]["id"],
        "{incremental}"
    );
    expect(&["backup", "verify", &path("incr")], 0);

    // The active is refused, and so are bad destinations, with the reason.
    let refused = backup(&["--config", config, "--node", "a", "--to", &path("x")], 1);
    assert!(
        refused["message"].as_str().unwrap().contains("active node"),
        "{refused}"
    );
    let inside = backup(&["--config", config, "--to", &path("b/backup")], 1);
    assert!(
        inside["message"]
            .as_str()
            .unwrap()
            .contains("inside this node's instance directory"),
        "{inside}"
    );
    let output = expect(
        &[
            "cluster",
            "backup",
            "--config",
            config,
            "--to",
            &path("full"),
        ],
        1,
    );
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("backup on b not taken") && stdout.contains("not empty"),
        "{stdout}"
    );
    assert!(!Path::new(&path("x")).exists() && !Path::new(&path("b/backup")).exists());

    // The node went on: b's copy is healthy again, and both nodes stop cleanly.
    wait_for_load(&a);
    let outputs = nodes.stop();
    for output in &outputs {
        assert_eq!(code(output), 0, "{}", text(&output.stderr));
    }
    let b_log = text(&outputs[1].stderr);
    assert!(b_log.contains("backup-started"), "{b_log}");
    assert!(b_log.contains("backup-done"), "{b_log}");
    assert!(b_log.contains("backup-refused"), "{b_log}");

    // Restored, the backups hold every load commit up to their position, and fewer than
    // the active holds in the end.
    let restored = json(&expect(
        &[
            "restore",
            &path("full"),
            "--to",
            &path("restored-full"),
            "--json",
        ],
        0,
    ));
    assert_eq!(
        restored["position"], full["backup"]["position"],
        "{restored}"
    );
    let first = load_prefix(Path::new(&path("restored-full")));
    let restored = json(&expect(
        &[
            "restore",
            &path("full"),
            &path("incr"),
            "--to",
            &path("restored-both"),
            "--json",
        ],
        0,
    ));
    assert_eq!(
        restored["position"], incremental["backup"]["position"],
        "{restored}"
    );
    let both = load_prefix(Path::new(&path("restored-both")));
    let active = load_prefix(Path::new(&path("a/database")));
    assert!(
        100 < first && first < both && both <= active,
        "{first} {both} {active}"
    );
}

#[test]
fn an_interrupted_cluster_backup_is_withdrawn_and_never_carried_out() {
    let root = tempfile::tempdir().unwrap();
    let (a, _b) = cluster_files(root.path());
    let nodes = Nodes::start(&[&a, &_b]);
    wait_for_cluster(&a, "a active and b passive with a copy", |status| {
        cluster_node(status, "b")["heartbeat"]["role"] == "Passive"
            && cluster_node(status, "b")["copy"]["state"]
                .as_str()
                .is_some_and(|state| state != "Seeding" && state != "Failed")
    });
    // b cannot see the request while stopped.
    let b_pid = nodes.0[1].id();
    signal("-STOP", b_pid);
    let target = root.path().join("backup");
    let requester = Command::new(env!("CARGO_BIN_EXE_bluejet"))
        .args([
            "cluster",
            "backup",
            "--config",
            arg(&a),
            "--to",
            arg(&target),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let request = root.path().join("b/requests/backup.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !request.exists() {
        assert!(Instant::now() < deadline, "no request placed");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    signal("-INT", requester.id());
    let output = requester.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 3, "{stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("withdrawn"),
        "{stderr}"
    );
    assert!(!request.exists(), "the request was withdrawn");
    signal("-CONT", b_pid);
    // Long enough for b to have carried out a request still pending.
    std::thread::sleep(Duration::from_secs(3));
    let status = json(&bluejet(&[
        "cluster",
        "status",
        "--config",
        arg(&a),
        "--json",
    ]));
    assert_eq!(
        cluster_node(&status, "b")["heartbeat"]["role"],
        "Passive",
        "{status}"
    );
    let outputs = nodes.stop();
    let b_log = text(&outputs[1].stderr);
    assert!(!b_log.contains("backup-started"), "{b_log}");
    assert!(!target.exists(), "the withdrawn backup was carried out");
}
