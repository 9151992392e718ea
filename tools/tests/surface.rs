//! The tool's surface as a user meets it: every command's help has an example and its exit
//! codes, aliases stay out of the listing, and every command's `--json` on a real database,
//! replica, backup and cluster files parses and carries `schema_version`. (The commands that
//! need a running two-node cluster or a lossy failover's files, `cluster move`, `mount`,
//! `backup`, `diverged show` and `reapply`, and `demo`, are checked where the other tests
//! run them: their `common::json` asserts `schema_version` on every document.)

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions).
#![allow(clippy::unwrap_used)]

use bluejet_engine::{Database, Options};
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

/// Asserts that the object at `pointer` (a JSON pointer, `""` for the document) has every
/// one of `fields`: the layout a command's `--json` had when it was built by hand, kept
/// when it came to be printed from `Serialize` structs.
fn assert_fields(document: &Value, pointer: &str, fields: &[&str]) {
    let object = document
        .pointer(pointer)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no object at {pointer:?}: {document}"));
    for field in fields {
        assert!(
            object.contains_key(*field),
            "{pointer}/{field} missing: {document}"
        );
    }
}

/// A signature's fields, wherever one is printed.
const SIGNATURE: &[&str] = &["id", "created_micros", "created"];

/// A copy status's fields in `repl status`, `repl run`, `node run` and `cluster status`:
/// every field of `status.json`, then what the tool adds.
const COPY_STATUS: &[&str] = &[
    "state",
    "message",
    "copy_queue",
    "replay_queue",
    "last_generated",
    "last_copied",
    "last_inspected",
    "last_replayed",
    "replayed_position",
    "safe_before_micros",
    "loss_window_generations",
    "loss_window_seconds",
    "gap",
    "shipped_bytes",
    "transferred_bytes",
    "last_contact_micros",
    "updated_micros",
    "compression_ratio",
    "age_seconds",
];

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
        &["checksum", db_arg][..],
        &["integrity", db_arg],
        &["space", db_arg],
        &["log", "dump", db_arg, "--from", "1", "--table", "messages"],
        &["log", "dump", db_arg, "--stats"],
        &["checkpoint", "dump", db_arg],
        &["ml", db_arg],
    ] {
        document(command, &[0]);
    }
    database_documents_keep_their_fields(&db);
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
    let seeded = document(
        &["repl", "seed", "--active", active, "--replica", copy],
        &[0],
    );
    assert_fields(&seeded, "/tables/messages", &["entries", "bytes", "crc32c"]);
    let database = Database::open(&db, Options::default()).unwrap();
    fill(&database, 100, 10);
    database.log().roll().unwrap();
    database.close().unwrap();
    let pair = ["--active", active, "--replica", copy];
    let run = [&["repl", "run"][..], &pair, &["--duration", "1"]].concat();
    let ran = document(&run, &[0]);
    assert_fields(
        &ran,
        "",
        &[
            "kind",
            "replica",
            "status",
            "passed",
            "stopped_by",
            "last_running_state",
        ],
    );
    assert_eq!(ran["kind"], "repl-run");
    assert_fields(&ran, "/status", COPY_STATUS);
    assert_fields(&ran, "/status/replayed_position", &["generation", "offset"]);
    let verified = document(&[&["repl", "verify"][..], &pair].concat(), &[0]);
    for side in ["/active/messages", "/passive/messages"] {
        assert_fields(&verified, side, &["entries", "bytes", "crc32c"]);
    }
    let status = document(&["repl", "status", "--replica", copy], &[0]);
    assert_fields(
        &status,
        "",
        &["kind", "replica", "status", "passed", "transport"],
    );
    assert_eq!(status["kind"], "repl-status");
    assert_fields(&status, "/status", COPY_STATUS);
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
    let node = document(
        &["node", "run", "--config", arg(&a), "--duration", "2"],
        &[0, 1],
    );
    assert_fields(
        &node,
        "",
        &[
            "kind",
            "config",
            "stopped_by",
            "status",
            "failovers",
            "passed",
        ],
    );
    assert_fields(
        &node,
        "/status",
        &[
            "name",
            "role",
            "epoch",
            "serving",
            "end",
            "reason",
            "copy",
            "transport",
            "block_mode",
            "peer_flushed",
            "synchronous",
        ],
    );
    // Without its peer, the cluster is not healthy: exit 1, a full report still.
    let cluster = document(&["cluster", "status", "--config", arg(&a)], &[0, 1]);
    assert_fields(
        &cluster,
        "",
        &["kind", "config", "witness", "nodes", "problems", "passed"],
    );
    assert_fields(
        &cluster,
        "/witness",
        &[
            "owner",
            "epoch",
            "lease_until_micros",
            "lease_until",
            "lease_remaining_seconds",
            "updated",
            "comment",
            "now",
        ],
    );
    let nodes = cluster["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{cluster}");
    for (index, node) in nodes.iter().enumerate() {
        let at = format!("/nodes/{index}");
        assert_fields(
            &cluster,
            &at,
            &["name", "instance", "heartbeat", "unreadable", "copy"],
        );
        if node["heartbeat"].is_object() {
            assert_fields(
                &cluster,
                &format!("{at}/heartbeat"),
                &[
                    "role",
                    "epoch",
                    "serving",
                    "end",
                    "needs_seed",
                    "retention",
                    "log_warning",
                    "time",
                    "age_seconds",
                    "fresh",
                ],
            );
        }
    }
}

/// `header`, `dump`, `log dump` of the directory and of a file, and `checkpoint dump` of the
/// closed database `db`: each document has the fields it had when built by hand.
fn database_documents_keep_their_fields(db: &std::path::Path) {
    let db_arg = arg(db);
    let header = document(&["header", db_arg], &[0]);
    assert_fields(
        &header,
        "",
        &[
            "kind",
            "path",
            "header",
            "copy_in_use",
            "copies",
            "log_checkpoint",
            "passed",
        ],
    );
    assert_fields(
        &header,
        "/header",
        &[
            "state",
            "log_required",
            "last_consistent",
            "checkpoint",
            "database_signature",
            "log_signature",
            "page_size",
            "next_page",
            "catalog_root",
            "free_list",
            "state_version",
            "sequence",
            "repair_count",
            "checksum_errors",
            "last_full_backup",
            "last_incremental_backup",
            "timeline",
            "content",
        ],
    );
    assert_fields(&header, "/header/log_required", &["min", "max"]);
    assert_fields(&header, "/header/checkpoint", &["generation", "offset"]);
    assert_fields(&header, "/header/database_signature", SIGNATURE);
    assert_fields(&header, "/header/content", &["entries", "checksum"]);
    assert_eq!(header["header"]["state"], "clean_shutdown", "{header}");
    for copy in ["/copies/0", "/copies/1"] {
        assert_fields(&header, copy, &["copy", "state", "sequence", "in_use"]);
    }

    let dump = document(&["dump", db_arg, "messages", "--limit", "3"], &[0]);
    assert_fields(
        &dump,
        "",
        &[
            "kind",
            "path",
            "table",
            "table_entries",
            "encoding",
            "entries",
            "shown",
            "complete",
        ],
    );
    assert_eq!(dump["entries"].as_array().map(Vec::len), Some(3), "{dump}");
    assert_fields(
        &dump,
        "/entries/0",
        &["key", "value", "value_bytes", "value_cut"],
    );

    let stream_fields = [
        "kind",
        "directory",
        "base_name",
        "generations",
        "prepared",
        "missing",
        "checkpoint",
        "notes",
        "problems",
        "passed",
        "verdict",
    ];
    let stream = document(&["log", "dump", db_arg], &[0]);
    assert_fields(&stream, "", &stream_fields);
    assert!(stream.get("record_list").is_none(), "{stream}");
    assert_fields(
        &stream,
        "/generations/0",
        &[
            "generation",
            "file",
            "current",
            "scanned",
            "header",
            "created",
            "stream_bytes",
            "records",
            "commits",
            "segments_used",
            "segments_total",
            "torn_bytes",
            "digest",
        ],
    );
    let generation_header = [
        "generation",
        "signature",
        "timeline",
        "created_micros",
        "created",
        "previous_created_micros",
        "previous_digest",
        "segment_bytes",
        "generation_bytes",
        "base_name",
    ];
    assert_fields(&stream, "/generations/0/header", &generation_header);
    assert_fields(&stream, "/generations/0/header/signature", SIGNATURE);
    assert_fields(&stream, "/checkpoint", &["position", "sequence", "updated"]);
    let listed = document(&["log", "dump", db_arg, "--records"], &[0]);
    assert_fields(&listed, "", &stream_fields);
    assert_fields(
        &listed,
        "/record_list/0",
        &["position", "kind", "kind_code"],
    );

    let file = document(&["log", "dump", arg(&db.join("E00.log"))], &[0]);
    assert_fields(
        &file,
        "",
        &[
            "kind",
            "path",
            "role",
            "named_generation",
            "base_name",
            "header",
            "segments",
            "shadows",
            "records",
            "notes",
            "problems",
            "passed",
            "verdict",
        ],
    );
    assert_fields(&file, "/header", &generation_header);
    assert_fields(
        &file,
        "/segments",
        &[
            "home_segments_used",
            "home_segments_total",
            "stream_bytes",
            "stream_capacity",
            "highest_flush",
            "digest",
            "torn_bytes",
            "tail_note",
        ],
    );
    assert_fields(
        &file,
        "/records",
        &["records", "bytes", "commits", "value_bytes", "by_kind"],
    );
    assert_fields(&file, "/records/by_kind/commit", &["count", "bytes"]);

    for command in [&["checkpoint", "dump", db_arg][..], &["mk", db_arg]] {
        let checkpoint = document(command, &[0]);
        assert_fields(
            &checkpoint,
            "",
            &[
                "kind",
                "path",
                "checkpoint",
                "copies",
                "problems",
                "database",
                "passed",
            ],
        );
        let fields = [
            "position",
            "signature",
            "timeline",
            "sequence",
            "updated_micros",
            "updated",
        ];
        assert_fields(&checkpoint, "/checkpoint", &fields);
        assert_fields(&checkpoint, "/checkpoint/signature", SIGNATURE);
        assert_fields(&checkpoint, "/copies/0", &["copy", "state"]);
        let valid = (checkpoint["copies"].as_array().unwrap())
            .iter()
            .position(|copy| copy["state"] == "valid")
            .unwrap_or_else(|| panic!("no valid copy: {checkpoint}"));
        assert_fields(
            &checkpoint,
            &format!("/copies/{valid}"),
            &["copy", "state", "in_force", "checkpoint"],
        );
    }
    let file = document(&["ml", arg(&db.join("E00.log"))], &[0]);
    assert_eq!(file["kind"], "generation", "{file}");
}
