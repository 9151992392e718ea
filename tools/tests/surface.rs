//! The tool's surface as a user meets it: every command's help has an example and its exit
//! codes, aliases stay out of the listing, and every command's `--json` on a real database,
//! replica, backup and cluster files parses and carries `schema_version`. (The commands that
//! need a running two-node cluster or a lossy failover's files, `cluster move`, `mount`,
//! `backup`, `diverged show` and `reapply`, and `demo`, are checked where the other tests
//! run them: their `common::json` asserts `schema_version` on every document.)

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions).
#![allow(clippy::unwrap_used)]

use bluejet_engine::db::{Database, Options};
use serde_json::Value;

mod common;
use common::{arg, bluejet, cluster_files, code, text};

/// Every command and subcommand, as typed after `bluejet`.
const COMMANDS: &[&str] = &[
    "header",
    "checksum",
    "integrity",
    "space",
    "dump",
    "recover",
    "compact",
    "log",
    "log dump",
    "checkpoint",
    "checkpoint dump",
    "demo",
    "repl",
    "repl seed",
    "repl run",
    "repl status",
    "repl suspend",
    "repl resume",
    "repl verify",
    "backup",
    "backup verify",
    "restore",
    "truncate",
    "node",
    "node run",
    "cluster",
    "cluster init",
    "cluster certs",
    "cluster status",
    "cluster move",
    "cluster mount",
    "cluster backup",
    "diverged",
    "diverged show",
    "diverged reapply",
    "completions",
];

#[test]
fn every_command_s_help_has_an_example_and_its_exit_codes() {
    for command in COMMANDS {
        let mut arguments: Vec<&str> = command.split(' ').collect();
        arguments.push("--help");
        let output = bluejet(&arguments);
        let stdout = text(&output.stdout);
        assert_eq!(code(&output), 0, "{command}: {}", text(&output.stderr));
        assert!(
            stdout.contains("Example:\n  bluejet "),
            "{command}:\n{stdout}"
        );
        assert!(stdout.contains("Exit codes: 0 "), "{command}:\n{stdout}");
        assert!(stdout.contains("2 bad usage, 3 "), "{command}:\n{stdout}");
    }
}

#[test]
fn aliases_work_but_are_not_listed() {
    let stdout = text(&bluejet(&["--help"]).stdout);
    assert!(!stdout.contains("alias"), "{stdout}");
    for hidden in ["  ml ", "  mk ", "  mh "] {
        assert!(!stdout.contains(hidden), "{hidden}: {stdout}");
    }
    // Still accepted, and not offered as a suggestion for a near miss.
    let output = bluejet(&["mh", "--help"]);
    assert_eq!(code(&output), 0);
    let output = bluejet(&["m"]);
    assert_eq!(code(&output), 2);
    let stderr = text(&output.stderr);
    for alias in ["'mh'", "'ml'", "'mk'", "'ms'"] {
        assert!(!stderr.contains(alias), "{stderr}");
    }
}

/// Runs `bluejet ARGUMENTS... --json`, expecting `codes`; checks the document parses and
/// has `schema_version`; returns it.
fn document(arguments: &[&str], codes: &[i32]) -> Value {
    let mut all = arguments.to_vec();
    all.push("--json");
    let output = bluejet(&all);
    assert!(
        codes.contains(&code(&output)),
        "{all:?}: {}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let document: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{all:?}: {error}: {}", text(&output.stdout)));
    assert!(
        document["schema_version"].as_u64().is_some(),
        "{all:?}: {document}"
    );
    document
}

fn fill(database: &Database, first: u64, count: u64) {
    for index in first..first + count {
        let mut write = database.begin_write().unwrap();
        write.create_table("messages").unwrap();
        write.create_table("folders").unwrap();
        let key = format!("alice/{index:08}");
        write
            .insert("messages", key.as_bytes(), &[b'm'; 300])
            .unwrap();
        write
            .insert(
                "folders",
                format!("alice/INBOX/{index:08}").as_bytes(),
                key.as_bytes(),
            )
            .unwrap();
        write.commit().unwrap();
    }
}

#[test]
fn every_command_s_json_has_a_schema_version() {
    let root = tempfile::tempdir().unwrap();
    let path = |name: &str| root.path().join(name);
    let db = path("db");
    let database = Database::open(&db, Options::default()).unwrap();
    fill(&database, 0, 30);
    database.close().unwrap();
    let db_arg = arg(&db);

    for command in [
        &["header", db_arg][..],
        &["checksum", db_arg],
        &["integrity", db_arg],
        &["space", db_arg],
        &["dump", db_arg, "messages", "--limit", "3"],
        &["log", "dump", db_arg],
        &["log", "dump", db_arg, "--records"],
        &["log", "dump", arg(&db.join("E00.log"))],
        &["log", "dump", db_arg, "--from", "1", "--table", "messages"],
        &["log", "dump", db_arg, "--stats"],
        &["checkpoint", "dump", db_arg],
        &["ml", db_arg],
        &["mk", db_arg],
    ] {
        document(command, &[0]);
    }
    document(&["compact", db_arg, arg(&path("compacted"))], &[0]);

    // A dirty database for recover.
    let dirty = path("dirty");
    let database = Database::open(&dirty, Options::default()).unwrap();
    fill(&database, 0, 10);
    drop(database);
    document(&["recover", arg(&dirty)], &[0]);

    // Replication, backup, restore, truncate.
    let replica = path("replica");
    let (active, copy) = (db_arg, arg(&replica));
    document(
        &["repl", "seed", "--active", active, "--replica", copy],
        &[0],
    );
    let database = Database::open(&db, Options::default()).unwrap();
    fill(&database, 100, 10);
    database.log().roll().unwrap();
    database.close().unwrap();
    let pair = ["--active", active, "--replica", copy];
    let run = [&["repl", "run"][..], &pair, &["--duration", "1"]].concat();
    document(&run, &[0]);
    document(&[&["repl", "verify"][..], &pair].concat(), &[0]);
    document(&["repl", "status", "--replica", copy], &[0]);
    for action in ["suspend", "resume"] {
        document(
            &["repl", action, "--replica", copy, "--comment", "test"],
            &[0],
        );
    }
    let full = path("full");
    document(&["backup", "--replica", copy, "--to", arg(&full)], &[0]);
    document(&["backup", "verify", arg(&full)], &[0]);
    document(
        &["restore", arg(&full), "--to", arg(&path("restored"))],
        &[0],
    );
    document(&["truncate", "--active", active, "--replica", copy], &[0]);

    // Cluster files: certificates, the witness, a node run briefly, its status.
    let cluster = path("cluster");
    std::fs::create_dir_all(&cluster).unwrap();
    document(
        &[
            "cluster",
            "certs",
            "--dir",
            arg(&cluster.join("certs")),
            "--nodes",
            "a,b",
        ],
        &[0],
    );
    let (a, _b) = cluster_files(&cluster);
    let witness_again = document(&["cluster", "init", "--config", arg(&a)], &[1]);
    assert!(witness_again.is_object());
    document(
        &["node", "run", "--config", arg(&a), "--duration", "2"],
        &[0, 1],
    );
    // Without its peer, the cluster is not healthy: exit 1, a full report still.
    document(&["cluster", "status", "--config", arg(&a)], &[0, 1]);
}
