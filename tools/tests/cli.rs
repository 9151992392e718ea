//! Runs the built `bluejet` binary: the demo, dumps of what it leaves, the database commands
//! on databases made here through the engine, damage and misuse.

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions).
#![allow(clippy::unwrap_used)]

use bluejet_engine::file::OsFileSystem;
use bluejet_engine::format::db_header::HEADER_OFFSETS;
use bluejet_engine::format::inspect::DatabaseImage;
use bluejet_engine::{Database, Options};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{
    arg, bluejet, cluster_files, cluster_files_without_init, cluster_node, code, expect, json,
    signal, text, wait_for_cluster, Nodes,
};

/// Runs `bluejet` under a umask of 0, which removes no permission bits: the modes of what
/// it creates are exactly the ones it asks for.
fn bluejet_with_umask_0(arguments: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 0 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_bluejet"))
        .args(arguments)
        .output()
        .expect("run bluejet through sh")
}

/// The directory of one demo run (two nodes and a witness), kept for the tests that read
/// what it leaves; each takes its own copy. Run once per test process: the demo takes
/// seconds and its cluster keeps time with leases.
fn demo_cluster() -> &'static Path {
    static DEMO: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DEMO.get_or_init(|| {
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Directories of earlier test processes that are gone.
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("demo-cluster-") {
                if !Path::new("/proc").join(pid).exists() {
                    if let Err(error) = std::fs::remove_dir_all(entry.path()) {
                        eprintln!("removing {}: {error}", entry.path().display());
                    }
                }
            }
        }
        let directory = parent.join(format!("demo-cluster-{}", std::process::id()));
        match std::fs::remove_dir_all(&directory) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                panic!("removing {}: {error}", directory.display())
            }
            _ => {}
        }
        let output = bluejet_with_umask_0(&[
            "demo",
            "--dir",
            directory.to_str().unwrap(),
            "--keep",
            "--messages",
            "300",
            "--writers",
            "3",
        ]);
        let stdout = text(&output.stdout);
        assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
        assert!(
            stdout.ends_with(&format!(
                "integrity check passed\ndatabase kept in {}\n",
                directory.display()
            )),
            "{stdout}"
        );
        let verified = line(&stdout, "verified:");
        let words: Vec<&str> = verified.split_whitespace().collect();
        assert_eq!(words[1], words[3], "{verified}");
        assert!(
            line(&stdout, "lost:").starts_with("lost:         0 of"),
            "{stdout}"
        );
        assert!(
            line(&stdout, "duplicates:").starts_with("duplicates:   0 ("),
            "{stdout}"
        );
        assert!(line(&stdout, "move:").contains(": lossless,"), "{stdout}");
        assert!(
            line(&stdout, "failover 1:").contains(": lossless, proved by synchronous commit"),
            "{stdout}"
        );
        assert!(line(&stdout, "failover:").contains(": lossy, "), "{stdout}");
        // Resynchronised, or (when the new active no longer holds the generations the
        // search needs) seeded again: Healthy either way.
        let resync = line(&stdout, "resync:");
        assert!(resync.contains("→ passive, Healthy"), "{stdout}");
        assert!(
            resync.contains("Resynchronizing") || stdout.contains("seeded again"),
            "{stdout}"
        );
        assert!(
            line(&stdout, "index:").contains("folder entries match"),
            "{stdout}"
        );
        assert!(
            line(&stdout, "passive:").ends_with("content identical to the active's"),
            "{stdout}"
        );
        assert!(directory.join("b/database/bluejet.db").exists());
        assert!(
            directory.join("a/replica.json").exists(),
            "a is a passive copy"
        );
        let diverged = std::fs::read_dir(directory.join("a"))
            .unwrap()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("diverged-"))
            .count();
        // One for the move (its files after the common generation, holding no commit) and
        // one for the lossy failover.
        assert_eq!(
            diverged, 2,
            "the old active's divergent files are kept aside"
        );
        directory
    })
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the demo's cluster in a fresh directory; returns it and the database
/// directory of the final active node, `b`.
fn demo_directory() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    copy_tree(demo_cluster(), &root.path().join("demo"));
    let database = root.path().join("demo").join("b").join("database");
    (root, database)
}

/// The closed generations in `directory`, oldest first.
fn closed_generations(directory: &Path) -> Vec<(u32, PathBuf)> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(directory)
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix("E00")?.strip_suffix(".log")?;
            let generation = u32::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() == 8)?;
            Some((generation, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// The line of `stdout` that starts with `prefix`.
fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}:\n{stdout}"))
}

/// A message-like value of about `size` bytes: text, so it compresses.
fn value(index: u64, size: usize) -> Vec<u8> {
    let line =
        format!("Subject: message {index}\r\nthe quick brown fox jumps over the lazy dog\r\n");
    line.repeat(size / line.len() + 1).into_bytes()[..size].to_vec()
}

/// Writes `count` entries into `messages` (some long) and `folders`, one transaction each.
fn fill(database: &Database, first: u64, count: u64) {
    for index in first..first + count {
        let mut write = database.begin_write().unwrap();
        write.create_table("messages").unwrap();
        write.create_table("folders").unwrap();
        let key = format!("alice/{index:08}");
        let size = if index % 3 == 0 { 20_000 } else { 300 };
        write
            .insert("messages", key.as_bytes(), &value(index, size))
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

/// A small database closed cleanly.
fn small_database() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("db");
    let database = Database::open(&directory, Options::default()).unwrap();
    fill(&database, 0, 60);
    database.close().unwrap();
    (root, directory)
}

/// A database dropped without closing after `count` more commits since it was opened.
fn dirty_database(count: u64) -> (tempfile::TempDir, PathBuf) {
    let (root, directory) = small_database();
    let database = Database::open(&directory, Options::default()).unwrap();
    fill(&database, 100, count);
    drop(database);
    (root, directory)
}

/// Flips a byte inside the root page of table `table`.
fn damage_table_root(directory: &Path, table: &str) -> u64 {
    let image = DatabaseImage::open(directory).unwrap();
    let root = image.table(table).unwrap().root;
    let offset = usize::try_from(root).unwrap() * image.page_size() + 100;
    drop(image);
    let path = directory.join("bluejet.db");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offset] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    root
}

/// Every file and directory under `root` whose mode is not 0600 (files; 0644 for
/// certificates) or 0700 (directories), with its mode; and how many entries there were.
fn wrong_modes(root: &Path) -> (Vec<(PathBuf, u32)>, usize) {
    use std::os::unix::fs::PermissionsExt;
    let mut wrong = Vec::new();
    let mut seen = 0;
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            let certificate = entry.path().extension().is_some_and(|e| e == "pem");
            let expected = if metadata.is_dir() {
                pending.push(entry.path());
                0o700
            } else if certificate {
                // Certificates are public (`cluster certs`); their keys are not.
                0o644
            } else {
                0o600
            };
            seen += 1;
            let mode = metadata.permissions().mode() & 0o777;
            if mode != expected {
                wrong.push((entry.path(), mode));
            }
        }
    }
    (wrong, seen)
}

#[test]
fn the_demo_creates_every_file_0600_and_directory_0700_under_umask_0() {
    let directory = demo_cluster();
    let (wrong, seen) = wrong_modes(directory);
    assert!(seen > 30, "only {seen} entries in {}", directory.display());
    assert_eq!(wrong, Vec::new());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(directory).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "the --dir directory the demo created");
}

#[test]
fn demo_then_dumps_pass() {
    let (_root, directory) = demo_directory();

    let output = bluejet(&["log", "dump", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert!(
        stdout.lines().any(|line| line == "integrity check passed"),
        "{stdout}"
    );
    let generations = closed_generations(&directory);
    assert!(generations.len() >= 5, "{generations:?}");
    let (_, second) = &generations[1];
    let name = second.file_name().unwrap().to_str().unwrap();
    assert!(stdout.contains(name), "{stdout}");

    let output = bluejet(&["ml", arg(&directory), "--json", "--records"]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["passed"], true);
    assert!(document["generations"].as_array().unwrap().len() >= 6);
    let records = document["record_list"].as_array().unwrap();
    assert!(records.iter().any(|record| record["kind"] == "put"));

    let output = bluejet(&["log", "dump", arg(second), "--records"]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}");
    assert!(stdout.contains("home segments used"), "{stdout}");
    assert!(stdout.contains("messages ["), "{stdout}");

    let output = bluejet(&["ml", arg(&directory.join("E00.log")), "--json"]);
    assert_eq!(code(&output), 0, "{}", text(&output.stdout));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["role"], "current");
    assert_eq!(document["segments"]["torn_bytes"], 0);
}

#[test]
fn diverged_show_lists_the_demo_s_lost_tail() {
    let (root, _) = demo_directory();
    let instance = root.path().join("demo").join("a");
    let output = expect(&["diverged", "show", arg(&instance), "--json"], 0);
    let document = json(&output);
    assert_eq!(document["schema_version"], 1, "{document}");
    let reports = document["reports"].as_array().unwrap();
    assert_eq!(
        reports.len(),
        2,
        "newest first: the lossy failover's, the move's"
    );
    let lossy = &reports[0];
    let directory = PathBuf::from(lossy["directory"].as_str().unwrap());
    let commits: u64 = lossy["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["commits"].as_u64().unwrap())
        .sum();
    let transactions = lossy["transactions"].as_array().unwrap();
    // Each commit counted is listed, or (seeded again: no common point, whole files) begun
    // before the first file kept aside.
    let incomplete = lossy["incomplete"].as_u64().unwrap();
    assert_eq!(transactions.len() as u64 + incomplete, commits, "{lossy}");
    assert_eq!(lossy["totals"]["transactions"].as_u64(), Some(commits));
    assert!(
        transactions
            .iter()
            .all(|transaction| transaction["messages"][0]["message_id"]
                .as_str()
                .is_some_and(|id| id.starts_with('<'))),
        "each transaction of the demo stores one message"
    );
    // The demo re-applied it through the new active, and recorded the outcome.
    assert!(directory.join("reapplied.json").exists());
    let output = expect(&["diverged", "show", arg(&directory)], 0);
    assert!(text(&output.stdout).contains("the new active never had"));
    // A truncated divergent file is named; junk where a directory is expected is usage.
    if let Some(file) = lossy["files"][0]["name"].as_str() {
        let handle = std::fs::OpenOptions::new()
            .write(true)
            .open(directory.join(file))
            .unwrap();
        handle.set_len(100).unwrap();
        let output = expect(&["diverged", "show", arg(&directory), "--json"], 1);
        let document = json(&output);
        assert_eq!(document["unreadable"][0]["name"], file, "{document}");
    }
    expect(
        &[
            "diverged",
            "show",
            arg(&root.path().join("demo").join("witness")),
        ],
        2,
    );
}

#[test]
fn checkpoint_dump_reads_both_copies() {
    let (_root, directory) = demo_directory();
    let output = bluejet(&["checkpoint", "dump", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.contains("position     ("), "{stdout}");
    assert!(stdout.contains("copy 0: valid"), "{stdout}");
    assert!(stdout.contains("copy 1: valid"), "{stdout}");
    // Beside a cleanly closed database: why the two positions differ (or agree).
    assert!(
        stdout.contains("database: the database was closed cleanly at")
            || stdout.contains("database: the header and the log's checkpoint file agree"),
        "{stdout}"
    );

    let output = bluejet(&["mk", arg(&directory.join("E00.chk")), "--json"]);
    assert_eq!(code(&output), 0);
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(document["checkpoint"]["sequence"].as_u64().unwrap() >= 1);

    // Both copies damaged: damage, exit 1, each copy says why.
    let path = directory.join("E00.chk");
    let mut image = std::fs::read(&path).unwrap();
    image[20] ^= 1;
    image[4096 + 20] ^= 1;
    std::fs::write(&path, image).unwrap();
    let output = bluejet(&["mk", arg(&path)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 1, "{stdout}");
    assert!(
        stdout.contains("copy 0: damaged: copy 0: bad checksum"),
        "{stdout}"
    );
}

#[test]
fn a_flipped_bit_in_a_closed_generation_fails_verification() {
    let (_root, directory) = demo_directory();
    let (generation, path) = closed_generations(&directory)[1].clone();
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    let mut image = std::fs::read(&path).unwrap();
    // A byte of the payload of home segment 1, which every closed generation uses.
    image[4096 + 100] ^= 0x10;
    std::fs::write(&path, image).unwrap();

    let output = bluejet(&["log", "dump", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 1, "{stdout}");
    let problem = stdout
        .lines()
        .find(|line| line.starts_with(&format!("problem in generation {generation}:")))
        .unwrap_or_else(|| panic!("no problem named generation {generation}:\n{stdout}"));
    assert!(problem.contains(&name), "{problem}");
    assert!(
        stdout.ends_with("integrity check FAILED: 1 problem(s)\n"),
        "{stdout}"
    );

    let output = bluejet(&["ml", arg(&path), "--json"]);
    assert_eq!(code(&output), 1);
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["passed"], false);
    assert_eq!(document["problems"][0]["generation"], generation);
}

#[test]
fn a_renamed_generation_is_a_name_mismatch() {
    let (_root, directory) = demo_directory();
    let (generation, path) = closed_generations(&directory)[1].clone();
    let renamed = generation + 7;
    let copy = directory
        .parent()
        .unwrap()
        .join(format!("E00{renamed:08X}.log"));
    std::fs::copy(path, &copy).unwrap();
    let output = bluejet(&["ml", arg(&copy)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 1, "{stdout}");
    assert!(
        stdout.contains(&format!("the name says generation {renamed} ")),
        "{stdout}"
    );
}

#[test]
fn bad_usage_exits_2() {
    for arguments in [
        &["log", "dump"][..],
        &["log", "dump", "x", "--no-such-option"],
        &["frobnicate"],
        &["demo", "--writers", "0"],
        &["ml", ".", "--base", "TOOLONG"],
        &["header"],
        &["compact", "x"],
        &["dump", "x"],
        &["dump", "x", "t", "--limit", "-1"],
    ] {
        let output = bluejet(arguments);
        assert_eq!(code(&output), 2, "{arguments:?}");
        assert!(
            text(&output.stderr).starts_with("bluejet: "),
            "{arguments:?}"
        );
    }
    let output = bluejet(&["--help"]);
    assert_eq!(code(&output), 0);
    assert!(text(&output.stdout).contains("Usage"));
    assert_eq!(code(&bluejet(&["--version"])), 0);
    assert_eq!(code(&bluejet(&["completions", "tcsh"])), 2);
}

#[test]
fn completions_cover_every_command_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = bluejet(&["completions", shell]);
        assert_eq!(code(&output), 0, "{shell}");
        let script = text(&output.stdout);
        for command in [
            "diverged",
            "cluster",
            "backup",
            "repl",
            "integrity",
            "completions",
        ] {
            assert!(script.contains(command), "{shell}: {command}");
        }
    }
}

#[test]
fn a_missing_path_exits_3() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("nothing-here");
    for arguments in [
        vec!["log", "dump", arg(&missing)],
        vec!["checkpoint", "dump", arg(&missing)],
        vec!["header", arg(&missing)],
        vec!["checksum", arg(&missing)],
        vec!["integrity", arg(&missing)],
        vec!["space", arg(&missing)],
        vec!["dump", arg(&missing), "messages"],
        vec!["recover", arg(&missing)],
        vec!["compact", arg(&missing), arg(&root.path().join("out"))],
    ] {
        let output = bluejet(&arguments);
        assert_eq!(code(&output), 3, "{arguments:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.starts_with("bluejet: "), "{stderr}");
        assert!(stderr.contains("nothing-here"), "{stderr}");
    }
    // A directory without a log is not a log either.
    let output = bluejet(&["log", "dump", arg(root.path())]);
    assert_eq!(code(&output), 3);
}

#[test]
fn demo_json_in_a_temporary_directory() {
    let output = bluejet(&[
        "demo",
        "--messages",
        "40",
        "--writers",
        "2",
        "--rate",
        "150",
        "--json",
    ]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["passed"], true, "{document}");
    assert_eq!(document["verified"], true, "{document}");
    // The layout it had when built by hand, kept now that it is printed from structs.
    for field in [
        "schema_version",
        "kind",
        "directory",
        "nodes",
        "active_database",
        "seconds",
        "timeline",
        "messages_delivered",
        "message_bytes",
        "delivered_by",
        "retries",
        "longest_wait_ms",
        "delivering_seconds",
        "messages_per_second",
        "mib_per_second",
        "messages_acknowledged",
        "messages_read",
        "messages_identical",
        "lost",
        "duplicates",
        "index_entries_matching",
        "verified",
        "reopen_seconds",
        "transactions_replayed",
        "check_seconds",
        "logical_bytes",
        "stored_bytes",
        "file_bytes",
        "log_generations",
        "integrity",
        "space",
        "problems",
        "unreported_problems",
        "verdict",
        "seeded_seconds",
        "copy_status",
        "moved",
        "move",
        "following",
        "synchronous_failover",
        "rejoin",
        "failover",
        "dumpster",
        "resubmitted",
        "resync",
        "lost_mail",
        "passive",
    ] {
        assert!(document.get(field).is_some(), "{field} missing: {document}");
    }
    assert!(document["timeline"][0]["event"].is_string(), "{document}");
    assert!(document["lost_mail"]["totals"].is_object(), "{document}");
    assert!(document["rejoin"]["states"].is_array(), "{document}");
    assert!(document["messages_delivered"].as_u64().unwrap() >= 40);
    assert_eq!(
        document["messages_identical"], document["messages_acknowledged"],
        "{document}"
    );
    assert_eq!(document["lost"], 0, "{document}");
    assert_eq!(document["duplicates"], 0, "{document}");
    assert_eq!(document["moved"], true, "{document}");
    assert_eq!(document["move"]["lossless"], true, "{document}");
    assert_eq!(document["move"]["comment"], "moving to b to patch a");
    let failover = &document["failover"];
    assert_eq!(failover["kind"], "failover", "{failover}");
    assert_eq!(failover["from"], "a", "{failover}");
    let synchronous = &document["synchronous_failover"];
    assert_eq!(synchronous["from"], "b", "{synchronous}");
    assert_eq!(synchronous["lossless"], true, "{synchronous}");
    assert!(
        synchronous["synchronous_proof"].is_string(),
        "{synchronous}"
    );
    assert_eq!(synchronous["dumpster"]["stored"], 0, "{synchronous}");
    assert_eq!(document["following"]["transport"], "tcp");
    assert_eq!(failover["lossy"], true, "{failover}");
    assert!(failover["lost_window_micros"].is_array(), "{failover}");
    assert!(failover["epoch"].as_u64().unwrap() > document["move"]["epoch"].as_u64().unwrap());
    let resubmitted = document["resubmitted"].as_u64().unwrap();
    let dumpster = &document["dumpster"];
    assert!(resubmitted > 0, "{dumpster}");
    assert!(dumpster["stored"].as_u64().unwrap() > 0, "{dumpster}");
    assert_eq!(dumpster["possibly_lost"], 0, "{dumpster}");
    // The dumpster stored exactly what the old active's divergent generations hold.
    let files = document["resync"]["divergence"]["files"]
        .as_array()
        .unwrap();
    let commits: u64 = files
        .iter()
        .map(|file| file["commits"].as_u64().unwrap())
        .sum();
    let states = document["resync"]["states"].as_array().unwrap();
    assert_eq!(
        states.last().unwrap()["state"],
        "passive, Healthy",
        "{states:?}"
    );
    let stored = dumpster["stored"].as_u64().unwrap();
    if document["resync"]["divergence"]["common_generation"].is_null() {
        // Seeded again (the new active no longer held what the search needs): every file
        // after the last known common point is kept aside, a superset of what was lost.
        assert!(commits >= stored, "{document}");
    } else {
        assert_eq!(stored, commits, "{document}");
        assert!(
            states
                .iter()
                .any(|state| state["state"] == "passive, Resynchronizing"),
            "{states:?}"
        );
    }
    let passive = &document["passive"];
    assert_eq!(passive["equal"], true, "{passive}");
    assert_eq!(passive["tables"], 2, "{passive}");
    assert!(document["integrity"]["problems"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(
        document["copy_status"]["compression_ratio"]
            .as_f64()
            .unwrap()
            > 1.0
    );
    assert!(document["seconds"].as_f64().unwrap() < 60.0, "{document}");
    let directory = PathBuf::from(document["directory"].as_str().unwrap());
    assert!(
        !directory.exists(),
        "the temporary directory is removed without --keep"
    );
}

#[test]
fn header_reports_both_copies() {
    let (_root, directory) = small_database();
    let output = bluejet(&["header", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert_eq!(
        line(&stdout, "  state")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["state", "clean", "shutdown"]
    );
    assert!(
        line(&stdout, "  log required").ends_with(" 0-0"),
        "{stdout}"
    );
    assert!(line(&stdout, "  page size").ends_with(" 8192"), "{stdout}");
    for field in [
        "last consistent",
        "checkpoint",
        "database signature",
        "log signature",
        "next page",
        "state version",
        "repair count",
        "checksum errors",
        "last full backup",
        "timeline",
    ] {
        line(&stdout, &format!("  {field}"));
    }
    assert!(
        line(&stdout, "copy 0: valid (sequence ").ends_with(')'),
        "{stdout}"
    );
    assert!(
        line(&stdout, "copy 1: valid (sequence ").ends_with(')'),
        "{stdout}"
    );
    assert_eq!(stdout.matches(", in use)").count(), 1, "{stdout}");

    let output = bluejet(&["mh", arg(&directory.join("bluejet.db")), "--json"]);
    assert_eq!(code(&output), 0);
    let document = json(&output);
    assert_eq!(document["header"]["state"], "clean_shutdown");
    assert_eq!(document["header"]["page_size"], 8192);
    let relation = document["log_checkpoint"].as_str().unwrap();
    assert!(
        relation.starts_with("the database was closed cleanly at")
            || relation.starts_with("the header and the log's checkpoint file agree"),
        "{relation}"
    );
    assert_eq!(document["copies"][0]["state"], "valid");
    assert_eq!(document["passed"], true);
}

#[test]
fn header_reports_a_damaged_copy_and_uses_the_other() {
    let (_root, directory) = small_database();
    let path = directory.join("bluejet.db");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4096 + 100..4096 + 108].copy_from_slice(b"garbage!");
    std::fs::write(&path, &bytes).unwrap();

    let output = bluejet(&["header", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 1, "{stdout}\n{}", text(&output.stderr));
    assert!(
        line(&stdout, "copy 0:").starts_with("copy 0: valid (sequence "),
        "{stdout}"
    );
    assert!(line(&stdout, "copy 0:").ends_with(", in use)"), "{stdout}");
    assert!(
        line(&stdout, "copy 1:").starts_with("copy 1: damaged: bad checksum"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  state                clean shutdown"),
        "{stdout}"
    );

    let output = bluejet(&["header", arg(&directory), "--json"]);
    assert_eq!(code(&output), 1);
    let document = json(&output);
    assert_eq!(document["copy_in_use"], 0);
    assert_eq!(document["copies"][1]["state"], "damaged");
    assert_eq!(document["passed"], false);

    // Both copies damaged: each still named, then the error; exit 1.
    bytes[100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let output = bluejet(&["header", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 1, "{stdout}");
    assert!(
        line(&stdout, "copy 0:").starts_with("copy 0: damaged: bad checksum"),
        "{stdout}"
    );
    assert!(
        text(&output.stderr).contains("no usable header"),
        "{}",
        text(&output.stderr)
    );
    let output = bluejet(&["header", arg(&directory), "--json"]);
    assert_eq!(code(&output), 1);
    assert!(json(&output)["error"]
        .as_str()
        .unwrap()
        .contains("no usable header"));
}

#[test]
fn checksum_and_integrity_pass_on_a_sound_database() {
    let (_root, directory) = small_database();
    let output = bluejet(&["checksum", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert!(line(&stdout, "  bad checksums").ends_with(" 0"), "{stdout}");
    assert!(line(&stdout, "  read").ends_with("MiB/s"), "{stdout}");
    assert!(
        stdout.ends_with("checksum passed: every page verified\n"),
        "{stdout}"
    );
    assert!(
        text(&output.stderr).is_empty(),
        "no progress bar off a terminal"
    );

    let output = bluejet(&["k", arg(&directory), "--json"]);
    assert_eq!(code(&output), 0);
    let document = json(&output);
    assert!(document["pages"].as_u64().unwrap() > 10);
    assert_eq!(document["bad_pages"].as_array().unwrap().len(), 0);

    let output = bluejet(&["integrity", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert!(line(&stdout, "  tables").ends_with(" 2"), "{stdout}");
    assert!(line(&stdout, "  entries").ends_with(" 120"), "{stdout}");
    assert!(
        line(&stdout, "  long-value pages")
            .split_whitespace()
            .last()
            != Some("0")
    );
    assert!(stdout.ends_with("\nintegrity check passed\n"), "{stdout}");

    let output = bluejet(&["g", arg(&directory), "--json"]);
    assert_eq!(code(&output), 0);
    let document = json(&output);
    assert_eq!(document["entries"], 120);
    assert_eq!(document["passed"], true);
}

#[test]
fn a_flipped_byte_in_a_data_page_fails_checksum_and_integrity() {
    let (_root, directory) = small_database();
    let page = damage_table_root(&directory, "folders");

    let output = bluejet(&["checksum", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 1, "{stdout}\n{}", text(&output.stderr));
    assert!(line(&stdout, "  bad checksums").ends_with(" 1"), "{stdout}");
    assert!(
        line(&stdout, &format!("bad page {page}: ")).contains("checksum"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("checksum FAILED: 1 bad page\n"),
        "{stdout}"
    );
    let output = bluejet(&["k", arg(&directory), "--json"]);
    assert_eq!(code(&output), 1);
    assert_eq!(json(&output)["bad_pages"][0]["page"], page);

    let output = bluejet(&["integrity", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 1, "{stdout}\n{}", text(&output.stderr));
    assert!(
        line(&stdout, &format!("problem: page {page} (folders): ")).contains("checksum"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("problems found")
            || stdout.trim_end().ends_with("problem found"),
        "{stdout}"
    );
    let output = bluejet(&["g", arg(&directory), "--json"]);
    assert_eq!(code(&output), 1);
    let document = json(&output);
    assert_eq!(document["passed"], false);
    assert_eq!(document["problems"][0]["page"], page);
}

#[test]
fn space_lists_every_table() {
    let (_root, directory) = small_database();
    let output = bluejet(&["space", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    let messages: Vec<&str> = line(&stdout, "  messages").split_whitespace().collect();
    assert_eq!(messages[1], "60", "{stdout}");
    assert_ne!(messages[4], "0", "long values: {stdout}");
    line(&stdout, "  folders");
    line(&stdout, "  total");
    line(&stdout, "  free pages");
    line(&stdout, "  file pages");

    let output = bluejet(&["ms", arg(&directory), "--json"]);
    assert_eq!(code(&output), 0);
    let document = json(&output);
    let tables = document["tables"].as_array().unwrap();
    let names: Vec<&str> = tables
        .iter()
        .map(|table| table["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["catalog", "folders", "messages"]);
    assert_eq!(document["totals"]["entries"], 122);
    assert!(
        tables[2]["stored_bytes"].as_u64() < tables[2]["value_bytes"].as_u64(),
        "compressed"
    );
}

#[test]
fn dump_prints_every_entry() {
    let (_root, directory) = small_database();
    let output = bluejet(&["dump", arg(&directory), "folders"]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.starts_with("table folders in "), "{stdout}");
    assert_eq!(stdout.lines().count(), 61, "{stdout}");
    assert!(
        stdout.contains("\nalice/INBOX/00000000 (14 bytes): alice/00000000\n"),
        "{stdout}"
    );

    let output = bluejet(&["dump", arg(&directory), "folders", "--hex", "--limit", "2"]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0);
    assert!(
        stdout.contains(
            "616c6963652f494e424f582f3030303030303030 (14 bytes): 616c6963652f3030303030303030\n"
        ),
        "{stdout}"
    );
    assert!(stdout.ends_with("2 of 60 entries shown\n"), "{stdout}");

    let output = bluejet(&["dump", arg(&directory), "messages", "--json"]);
    assert_eq!(code(&output), 0);
    let document = json(&output);
    let entries = document["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 60);
    assert_eq!(document["complete"], true);
    assert_eq!(entries[3]["value_bytes"], 20_000);
    assert!(entries[3]["value"]
        .as_str()
        .unwrap()
        .starts_with("Subject: message 3\\x0d\\x0a"));

    let output = bluejet(&["dump", arg(&directory), "nothing"]);
    assert_eq!(code(&output), 2);
    assert!(
        text(&output.stderr).contains("tables: folders, messages"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn recover_replays_a_dirty_shutdown() {
    let (_root, directory) = dirty_database(25);
    let output = bluejet(&["header", arg(&directory)]);
    assert!(
        text(&output.stdout).contains("dirty shutdown"),
        "{}",
        text(&output.stdout)
    );

    let output = bluejet(&["recover", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert!(
        line(&stdout, "  state before").ends_with("dirty shutdown"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "  transactions applied").ends_with(" 25"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "  state after").ends_with("clean shutdown"),
        "{stdout}"
    );
    line(&stdout, "  generations replayed");
    line(&stdout, "  records read");
    line(&stdout, "  from");
    line(&stdout, "  to");

    // Now clean: nothing more to apply, and every entry is there.
    let output = bluejet(&["r", arg(&directory), "--json"]);
    assert_eq!(code(&output), 0);
    let document = json(&output);
    assert_eq!(document["transactions_applied"], 0);
    assert_eq!(document["state_before"], "clean shutdown");
    let output = bluejet(&["integrity", arg(&directory), "--json"]);
    assert_eq!(json(&output)["entries"], 170);
}

/// A database written with small generations and circular logging, left dirty: its low
/// generations were deleted.
fn circular_database() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("db");
    let mut options = Options {
        checkpoint_depth_bytes: 1 << 20,
        background: false,
        compression: false,
        ..Options::default()
    };
    options.log.generation_bytes = 128 << 10;
    options.log.idle_roll_interval = None;
    let database = Database::open(&directory, options).unwrap();
    for round in 0..300u64 {
        let mut write = database.begin_write().unwrap();
        write.create_table("messages").unwrap();
        for index in 0..10u64 {
            let key = format!("alice/{round:06}/{index:02}");
            let body = value(round * 10 + index, 1500);
            write.insert("messages", key.as_bytes(), &body).unwrap();
        }
        write.commit().unwrap();
    }
    assert!(database.circular_logging().deleted > 0);
    drop(database);
    (root, directory)
}

#[test]
fn the_tools_read_a_directory_whose_low_generations_circular_logging_deleted() {
    let (_root, directory) = circular_database();
    let first = closed_generations(&directory)[0].0;
    assert!(first > 5, "generation {first} is the lowest kept");
    let output = expect(&["log", "dump", arg(&directory)], 0);
    let stdout = text(&output.stdout);
    assert!(stdout.contains(&format!("E00{first:08X}.log")), "{stdout}");
    assert!(stdout.contains("missing generations: none"), "{stdout}");
    assert!(stdout.contains("integrity check passed"), "{stdout}");
    expect(&["checkpoint", "dump", arg(&directory)], 0);
    let output = expect(&["recover", arg(&directory)], 0);
    let stdout = text(&output.stdout);
    assert!(
        line(&stdout, "  state after").ends_with("clean shutdown"),
        "{stdout}"
    );
    let output = expect(&["integrity", arg(&directory), "--json"], 0);
    assert_eq!(json(&output)["entries"], 3000);
    expect(&["log", "dump", arg(&directory)], 0);
}

#[test]
fn recover_names_missing_log_generations() {
    let (_root, directory) = dirty_database(5);
    for entry in std::fs::read_dir(&directory).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "log") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let output = bluejet(&["recover", arg(&directory)]);
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 1, "{}\n{stderr}", text(&output.stdout));
    assert!(
        stderr.contains("log generations 1..=1 are required"),
        "{stderr}"
    );
}

#[test]
fn compact_copies_and_verifies() {
    let (root, directory) = small_database();
    // Churn leaves free pages behind for compaction to drop.
    let database = Database::open(&directory, Options::default()).unwrap();
    for index in 0..40u64 {
        let mut write = database.begin_write().unwrap();
        write.create_table("messages").unwrap();
        write
            .remove("messages", format!("alice/{index:08}").as_bytes())
            .unwrap();
        write.commit().unwrap();
    }
    {
        let mut write = database.begin_write().unwrap();
        write.create_table("empty").unwrap();
        write.commit().unwrap();
    }
    database.close().unwrap();

    let destination = root.path().join("compact");
    let output = bluejet(&["compact", arg(&directory), arg(&destination)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert!(
        stdout.starts_with("copied 3 tables, 80 entries"),
        "{stdout}"
    );
    line(&stdout, "  allocated pages");
    line(&stdout, "  file bytes");
    assert!(
        stdout.ends_with(
            "verified: every table and entry of the copy is identical to the original\n"
        ),
        "{stdout}"
    );
    for table in ["messages", "folders", "empty"] {
        let before = bluejet(&["dump", arg(&directory), table, "--json"]);
        let after = bluejet(&["dump", arg(&destination), table, "--json"]);
        assert_eq!(code(&after), 0, "{table}");
        assert_eq!(json(&before)["entries"], json(&after)["entries"], "{table}");
    }
    assert_eq!(code(&bluejet(&["integrity", arg(&destination)])), 0);
    let output = bluejet(&["header", arg(&destination), "--json"]);
    assert_eq!(json(&output)["header"]["state"], "clean_shutdown");

    // The destination must be new; the JSON form reports the same.
    let output = bluejet(&["compact", arg(&directory), arg(&destination)]);
    assert_eq!(code(&output), 2);
    let again = root.path().join("again");
    let output = bluejet(&["d", arg(&directory), arg(&again), "--json"]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let document = json(&output);
    assert_eq!(document["passed"], true);
    assert_eq!(document["entries"], 80);
    assert!(
        document["after"]["allocated_pages"].as_u64()
            < document["before"]["allocated_pages"].as_u64()
    );
}

#[test]
fn repair_reports_what_was_lost_and_keeps_the_original() {
    let (_root, directory) = small_database();
    // A sound database: nothing lost (exit 0), the repair count raised.
    let output = expect(&["repair", arg(&directory), "--json"], 0);
    let document = json(&output);
    assert_eq!(document["schema_version"], 1);
    assert_eq!(document["kind"], "repair");
    assert_eq!(document["lost_anything"], false);
    assert_eq!(document["repair_count"], 1);
    assert_eq!(document["entries_before"], document["entries_after"]);
    // A damaged root page: its leaves are adopted back, the page and its range reported.
    let root = damage_table_root(&directory, "messages");
    let damaged = std::fs::read(directory.join("bluejet.db")).unwrap();
    let output = expect(&["p", arg(&directory), "--json"], 1);
    let document = json(&output);
    assert_eq!(document["repair_count"], 2);
    assert_eq!(document["discarded_pages"][0]["page"], root);
    let messages = document["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|table| table["name"] == "messages")
        .unwrap();
    assert_eq!(messages["lost_ranges"][0]["page"], root);
    assert_eq!(messages["entries_after"], 60);
    assert_eq!(messages["entries_before"], 60);
    let kept = PathBuf::from(document["kept_aside"].as_str().unwrap());
    assert_eq!(std::fs::read(kept.join("bluejet.db")).unwrap(), damaged);
    expect(&["integrity", arg(&directory)], 0);
    // The text form names the page and says data was lost... and the third repair nothing.
    let output = expect(&["repair", arg(&directory)], 0);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("repair count               3"), "{stdout}");
    assert!(
        stdout.ends_with("repair complete: nothing was lost\n"),
        "{stdout}"
    );
}

#[test]
fn repair_refuses_a_dirty_database_unless_forced() {
    let (_root, directory) = dirty_database(3);
    let output = expect(&["repair", arg(&directory)], 3);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("run `bluejet recover` first"), "{stderr}");
    assert!(!std::fs::read_dir(&directory).unwrap().any(|entry| entry
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("before-repair")));
    // Forced: what only the log held is lost, uncounted (exit 1).
    let output = expect(&["repair", arg(&directory), "--force", "--json"], 1);
    assert_eq!(json(&output)["forced"], true);
}

/// Found by an adversarial operator: `repair DIR/E00.log` repaired `DIR/bluejet.db`, and
/// `repair DIR/mail.db.bak` took the lock of `DIR` and failed on a `bluejet.db` it never
/// named; a database whose two header copies are damaged, never repaired, exited 1 ("repaired,
/// something lost"). Each now exits 3 with the directory as it was.
#[test]
fn repair_refuses_a_file_it_was_not_named_and_a_failure_exits_3() {
    let (root, directory) = small_database();
    let listing = |directory: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing(&directory);
    let log = directory.join("E00.log");
    let output = expect(&["repair", arg(&log)], 3);
    assert!(text(&output.stderr).contains("a directory's bluejet.db"));
    assert_eq!(listing(&directory), before);
    let elsewhere = root.path().join("copies");
    std::fs::create_dir(&elsewhere).unwrap();
    let copy = elsewhere.join("mail.db.bak");
    std::fs::copy(directory.join("bluejet.db"), &copy).unwrap();
    expect(&["repair", arg(&copy)], 3);
    assert_eq!(listing(&elsewhere), ["mail.db.bak"]);
    // Both header copies damaged: nothing can be repaired.
    let file = directory.join("bluejet.db");
    let mut bytes = std::fs::read(&file).unwrap();
    for offset in HEADER_OFFSETS {
        bytes[usize::try_from(offset).unwrap() + 100] ^= 0xFF;
    }
    std::fs::write(&file, &bytes).unwrap();
    let output = expect(&["repair", arg(&directory)], 3);
    assert!(text(&output.stderr).contains("no usable header"));
    assert_eq!(listing(&directory), before);
}

/// Found by an adversarial operator: `truncate --standalone --circular` on an active a
/// replica was seeded from deleted the generations the replica had not replayed, although
/// the active's retention marker named the replica. The marker now refuses `--standalone`.
#[test]
fn truncate_standalone_is_refused_while_a_retention_marker_names_a_reader() {
    let (_root, directory) = small_database();
    bluejet_engine::db::write_retention_marker(&OsFileSystem, &directory, "replica /srv/r1")
        .unwrap();
    let database = Database::open(&directory, Options::default()).unwrap();
    database.log().roll().unwrap();
    fill(&database, 200, 3);
    database.close().unwrap();
    let before = closed_generations(&directory);
    assert!(!before.is_empty());
    let output = expect(
        &[
            "truncate",
            "--active",
            arg(&directory),
            "--standalone",
            "--circular",
        ],
        2,
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("replica /srv/r1"), "{stderr}");
    assert!(stderr.contains("bluejet.keep-logs"), "{stderr}");
    assert_eq!(closed_generations(&directory), before);
}

#[test]
fn compact_refuses_a_dirty_database() {
    let (root, directory) = dirty_database(3);
    let destination = root.path().join("compact");
    let output = bluejet(&["compact", arg(&directory), arg(&destination)]);
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 1, "{stderr}");
    assert!(stderr.contains("run `bluejet recover "), "{stderr}");
    assert!(!destination.exists());
}

#[test]
fn demo_database_passes_every_command() {
    let (root, directory) = demo_directory();
    for command in ["header", "checksum", "integrity", "space"] {
        let output = bluejet(&[command, arg(&directory), "--json"]);
        assert_eq!(code(&output), 0, "{command}: {}", text(&output.stderr));
        assert_eq!(json(&output)["kind"], command);
    }
    let output = bluejet(&[
        "dump",
        arg(&directory),
        "messages",
        "--limit",
        "1",
        "--value-bytes",
        "12",
    ]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0);
    assert!(stdout.contains("): Return-Path:..."), "{stdout}");
    let output = bluejet(&[
        "compact",
        arg(&directory),
        arg(&root.path().join("compact")),
    ]);
    assert_eq!(code(&output), 0, "{}", text(&output.stdout));
}

/// A small database and the path of a replica beside it (not created).
fn active_and_replica() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (root, active) = small_database();
    let replica = root.path().join("replica");
    (root, active, replica)
}

/// `bluejet repl ARGUMENTS...`, asserting the exit code; returns the output.
fn repl(arguments: &[&str], expected: i32) -> Output {
    let mut all = vec!["repl"];
    all.extend_from_slice(arguments);
    let output = bluejet(&all);
    assert_eq!(
        code(&output),
        expected,
        "{arguments:?}\n{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

#[test]
fn repl_seed_run_status_and_verify() {
    let (_root, active, replica) = active_and_replica();
    let (active, replica) = (arg(&active), arg(&replica));
    let seeded = json(&repl(
        &["seed", "--active", active, "--replica", replica, "--json"],
        0,
    ));
    assert_eq!(seeded["tables"]["messages"]["entries"], 60, "{seeded}");
    assert_eq!(seeded["tables"]["folders"]["entries"], 60, "{seeded}");

    // More mail on the active after the seed, for the service to ship.
    let database = Database::open(Path::new(active), Options::default()).unwrap();
    fill(&database, 100, 40);
    database.log().roll().unwrap();
    database.close().unwrap();

    let ran = repl(
        &[
            "run",
            "--active",
            active,
            "--replica",
            replica,
            "--compress",
            "--duration",
            "2",
            "--json",
        ],
        0,
    );
    let ran = json(&ran);
    assert_eq!(ran["kind"], "repl-run");
    assert_eq!(ran["stopped_by"], "duration");
    assert_eq!(ran["status"]["state"], "Disabled", "{ran}");

    let status = json(&repl(&["status", "--replica", replica, "--json"], 0));
    let fields = &status["status"];
    assert!(
        ["Disabled", "Healthy"].contains(&fields["state"].as_str().unwrap()),
        "{status}"
    );
    assert_eq!(fields["copy_queue"], 0, "{status}");
    assert_eq!(fields["replay_queue"], 0, "{status}");
    assert!(fields["last_replayed"]["generation"].as_u64().unwrap() >= 2);
    let stdout = text(&repl(&["status", "--replica", replica], 0).stdout);
    assert!(line(&stdout, "  state").contains("Disabled"), "{stdout}");
    assert!(stdout.contains("loss window"), "{stdout}");

    let verified = repl(&["verify", "--active", active, "--replica", replica], 0);
    let stdout = text(&verified.stdout);
    assert!(
        stdout.ends_with("verification passed: the passive copy equals the active (2 tables)\n"),
        "{stdout}"
    );
    let verified = json(&repl(
        &["verify", "--active", active, "--replica", replica, "--json"],
        0,
    ));
    assert_eq!(verified["equal"], true, "{verified}");
    assert_eq!(
        verified["passive"]["messages"]["entries"], 100,
        "{verified}"
    );
    assert_eq!(verified["active"], verified["passive"]);
}

#[test]
fn repl_suspend_and_resume_twice() {
    let (_root, active, replica_path) = active_and_replica();
    let replica = arg(&replica_path);
    repl(&["seed", "--active", arg(&active), "--replica", replica], 0);
    let suspend = ["suspend", "--replica", replica, "--comment", "disk swap"];
    let stdout = text(&repl(&suspend, 0).stdout);
    assert!(stdout.ends_with(": suspended: disk swap\n"), "{stdout}");
    let stdout = text(&repl(&suspend, 0).stdout);
    assert!(stdout.contains("already suspended"), "{stdout}");
    let resume = [
        "resume",
        "--replica",
        replica,
        "--comment",
        "done",
        "--json",
    ];
    let resumed = json(&repl(&resume, 0));
    assert_eq!(resumed["changed"], true);
    assert_eq!(resumed["suspended"], false);
    assert_eq!(json(&repl(&resume, 0))["changed"], false);
    let events = std::fs::read_to_string(replica_path.join("events.jsonl")).unwrap();
    assert!(events.contains(r#""kind":"suspended""#), "{events}");
    assert!(events.contains(r#""comment":"disk swap""#), "{events}");
    assert!(events.contains(r#""kind":"resumed""#), "{events}");
}

#[test]
fn repl_on_a_directory_that_is_not_a_replica_exits_3() {
    let (_root, active) = small_database();
    let output = repl(&["status", "--replica", arg(&active)], 3);
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("bluejet: "), "{stderr}");
    assert!(stderr.contains("not a replica"), "{stderr}");
    let output = repl(&["suspend", "--replica", arg(&active), "--comment", "x"], 3);
    assert!(text(&output.stderr).contains("is not a replica"));
    assert!(!active.join("control.json").exists());
    let output = repl(
        &[
            "verify",
            "--active",
            arg(&active),
            "--replica",
            arg(&active),
        ],
        3,
    );
    assert!(text(&output.stderr).contains("is not a replica"));
    let output = repl(
        &["run", "--active", arg(&active), "--replica", arg(&active)],
        3,
    );
    assert!(text(&output.stderr).contains("is not a replica"));
}

#[test]
fn repl_bad_usage_exits_2() {
    for arguments in [
        &["repl"][..],
        &["repl", "suspend", "--replica", "x"],
        &["repl", "seed", "--active", "x"],
        &[
            "repl",
            "run",
            "--active",
            "a",
            "--replica",
            "b",
            "--duration",
            "soon",
        ],
        &[
            "repl",
            "run",
            "--active",
            "a",
            "--replica",
            "b",
            "--lag",
            "-1",
        ],
    ] {
        let output = bluejet(arguments);
        assert_eq!(code(&output), 2, "{arguments:?}");
    }
}

#[test]
fn repl_run_stops_on_a_signal_and_holds_the_replica() {
    let (_root, active, replica_path) = active_and_replica();
    let (active, replica) = (arg(&active), arg(&replica_path));
    repl(&["seed", "--active", active, "--replica", replica], 0);
    let child = Command::new(env!("CARGO_BIN_EXE_bluejet"))
        .args([
            "repl",
            "run",
            "--active",
            active,
            "--replica",
            replica,
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the service wrote a status of its own.
    let started = std::time::Instant::now();
    loop {
        let status = json(&repl(&["status", "--replica", replica, "--json"], 0));
        if ["Healthy", "Initializing"].contains(&status["status"]["state"].as_str().unwrap())
            && status["status"]["message"] != "seeded"
        {
            break;
        }
        assert!(started.elapsed().as_secs() < 20, "{status}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let output = repl(&["verify", "--active", active, "--replica", replica], 3);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("is in use by pid {} on host ", child.id())),
        "{stderr}"
    );
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let document = json(&output);
    assert_eq!(document["stopped_by"], "signal");
    assert_eq!(document["status"]["state"], "Disabled");
    repl(&["verify", "--active", active, "--replica", replica], 0);
}

#[test]
fn backup_verify_restore_and_truncate() {
    let (root, active, replica) = active_and_replica();
    let (active_arg, replica_arg) = (arg(&active), arg(&replica));
    repl(
        &["seed", "--active", active_arg, "--replica", replica_arg],
        0,
    );
    let database = Database::open(&active, Options::default()).unwrap();
    fill(&database, 100, 40);
    database.log().roll().unwrap();
    database.close().unwrap();
    // Brings the copy up to the active.
    repl(
        &["verify", "--active", active_arg, "--replica", replica_arg],
        0,
    );

    let full = root.path().join("full");
    let made = json(&expect(
        &[
            "backup",
            "--replica",
            replica_arg,
            "--to",
            arg(&full),
            "--json",
        ],
        0,
    ));
    assert_eq!(made["backup_kind"], "full", "{made}");
    let stdout = text(&expect(&["backup", "verify", arg(&full)], 0).stdout);
    assert!(stdout.ends_with(" sound\n"), "{stdout}");

    let restored = root.path().join("restored");
    let report = json(&expect(
        &["restore", arg(&full), "--to", arg(&restored), "--json"],
        0,
    ));
    assert_eq!(report["position"], made["position"], "{report}");
    let database = Database::open(&restored, Options::default()).unwrap();
    let read = database.begin_read().unwrap();
    let messages = read.open_table("messages").unwrap();
    assert_eq!(messages.range(..).unwrap().count(), 100);
    drop(messages);
    drop(read);
    database.close().unwrap();

    let truncated = json(&expect(
        &[
            "truncate",
            "--active",
            active_arg,
            "--replica",
            replica_arg,
            "--json",
        ],
        0,
    ));
    assert_eq!(truncated["kind"], "truncate", "{truncated}");
    // Replayed and backed up through the last closed generation: all of them go.
    assert!(
        !truncated["deleted"].as_array().unwrap().is_empty(),
        "{truncated}"
    );
    assert_eq!(truncated["oldest_kept"], Value::Null, "{truncated}");

    forged_names_fail_verify_and_restore(root.path(), &full);

    let mut bytes = std::fs::read(full.join("bluejet.db")).unwrap();
    bytes[10_000] ^= 1;
    std::fs::write(full.join("bluejet.db"), bytes).unwrap();
    let stdout = text(&expect(&["backup", "verify", arg(&full)], 1).stdout);
    assert!(stdout.contains("bluejet.db: crc32c"), "{stdout}");
    expect(&["backup", "--replica", replica_arg], 2);
    expect(&["restore", arg(&full)], 2);
}

/// A copy of the backup `full` whose manifest is resealed naming a generation by a path out
/// of the backup (`..`, then absolute) fails `backup verify` and `restore` (exit 1, naming
/// the manifest and the name), and the restore writes nothing anywhere. The generation is
/// where the forged names point, so only the names are wrong.
fn forged_names_fail_verify_and_restore(root: &Path, full: &Path) {
    use bluejet_replication::backup_manifest::{Manifest, MANIFEST_NAME};
    let manifest = Manifest::read(&OsFileSystem, full).unwrap();
    let generation = manifest
        .files
        .iter()
        .find(|f| f.generation.is_some())
        .unwrap();
    let outside = root.join("outside");
    let escape = root.join("escape");
    for place in [&outside, &escape] {
        std::fs::create_dir_all(place).unwrap();
        std::fs::copy(full.join(&generation.name), place.join(&generation.name)).unwrap();
    }
    for (label, name) in [
        ("parent", format!("../../escape/{}", generation.name)),
        (
            "absolute",
            outside.join(&generation.name).display().to_string(),
        ),
    ] {
        // `root/forged/LABEL/../../escape` is `root/escape`.
        let forged = root.join("forged").join(label);
        std::fs::create_dir_all(&forged).unwrap();
        for entry in std::fs::read_dir(full).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), forged.join(entry.file_name())).unwrap();
        }
        let mut changed = manifest.clone();
        for file in &mut changed.files {
            if file.name == generation.name {
                file.name = name.clone();
            }
        }
        let holder = forged.join(MANIFEST_NAME);
        bluejet_replication::sealed::write(&OsFileSystem, &holder, &changed).unwrap();
        let output = expect(&["backup", "verify", arg(&forged)], 1);
        let message = text(&output.stderr);
        assert!(
            message.contains(&holder.display().to_string()) && message.contains(&name),
            "{message}"
        );
        // Its staging directory `TARGET/restore-logs`, with `../../escape`, would write
        // `root/restores/LABEL/escape`.
        let target = root.join("restores").join(label).join("t1");
        let output = expect(&["restore", arg(&forged), "--to", arg(&target)], 1);
        assert!(
            text(&output.stderr).contains(&name),
            "{}",
            text(&output.stderr)
        );
        assert!(!target.exists());
        assert!(!root.join("restores").join(label).join("escape").exists());
        for place in [&outside, &escape] {
            assert_eq!(
                std::fs::read_dir(place).unwrap().count(),
                1,
                "only the copy"
            );
        }
    }
}

#[test]
fn cluster_nodes_move_the_database_and_report_status() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = cluster_files(root.path());
    let nodes = Nodes::start(&[&a, &b]);

    // a bootstraps, seeds b, and b keeps a passive copy.
    let status = wait_for_cluster(&a, "a active and b passive with a copy", |status| {
        status["witness"]["owner"] == "a"
            && cluster_node(status, "a")["heartbeat"]["role"] == "Active"
            && cluster_node(status, "b")["heartbeat"]["role"] == "Passive"
            && cluster_node(status, "b")["copy"]["state"]
                .as_str()
                .is_some_and(|state| state != "Seeding" && state != "Failed")
    });
    assert_eq!(status["witness"]["epoch"], 1, "{status}");
    assert_eq!(cluster_node(&status, "a")["heartbeat"]["serving"], true);
    assert_eq!(cluster_node(&status, "a")["copy"], Value::Null);
    // What b's file says is the same cluster, seen from b.
    let from_b = json(&bluejet(&[
        "cluster",
        "status",
        "--config",
        arg(&b),
        "--json",
    ]));
    assert_eq!(from_b["witness"]["owner"], "a", "{from_b}");
    assert_eq!(from_b["nodes"][0]["name"], "b", "{from_b}");

    let (a_arg, b_arg) = (arg(&a), arg(&b));
    let validated = json(&expect(
        &[
            "cluster",
            "move",
            "--config",
            a_arg,
            "--to",
            "b",
            "--comment",
            "test",
            "--validate-only",
            "--json",
        ],
        0,
    ));
    assert_eq!(validated["ok"], true, "{validated}");
    assert_eq!(validated["from"], "a", "{validated}");
    // The active's own file and the passive's both find the active through the witness.
    let moved = json(&expect(
        &[
            "cluster",
            "move",
            "--config",
            b_arg,
            "--to",
            "b",
            "--comment",
            "test",
            "--json",
        ],
        0,
    ));
    assert_eq!(moved["ok"], true, "{moved}");
    assert_eq!(moved["epoch"], 2, "{moved}");

    let status = wait_for_cluster(&a, "b active at epoch 2", |status| {
        status["witness"]["owner"] == "b"
            && cluster_node(status, "b")["heartbeat"]["role"] == "Active"
            && cluster_node(status, "b")["heartbeat"]["serving"] == true
    });
    assert_eq!(status["witness"]["epoch"], 2, "{status}");
    assert_eq!(status["witness"]["comment"], "test", "{status}");

    // Moving to where the database is, or forcing a mount on a serving cluster, is refused.
    let again = json(&expect(
        &[
            "cluster",
            "move",
            "--config",
            a_arg,
            "--to",
            "b",
            "--comment",
            "again",
            "--json",
        ],
        1,
    ));
    assert!(
        again["message"].as_str().unwrap().contains("already holds"),
        "{again}"
    );
    let mount = json(&expect(
        &[
            "cluster",
            "mount",
            "--config",
            a_arg,
            "--node",
            "a",
            "--force",
            "--comment",
            "no",
            "--json",
        ],
        1,
    ));
    assert!(
        mount["message"]
            .as_str()
            .unwrap()
            .contains("active and serving"),
        "{mount}"
    );
    assert!(!root.path().join("a/requests/mount.json").exists());

    let outputs = nodes.stop();
    for output in &outputs {
        assert_eq!(code(output), 0, "{}", text(&output.stderr));
    }
    let (a_run, b_run) = (json(&outputs[0]), json(&outputs[1]));
    assert_eq!(a_run["stopped_by"], "signal", "{a_run}");
    assert_eq!(b_run["status"]["role"], "Active", "{b_run}");
    assert_eq!(b_run["status"]["epoch"], 2, "{b_run}");
    let failovers = b_run["failovers"].as_array().unwrap();
    assert_eq!(failovers.len(), 1, "{b_run}");
    assert_eq!(failovers[0]["kind"], "move", "{b_run}");
    assert_eq!(failovers[0]["from"], "a", "{b_run}");
    assert_eq!(failovers[0]["lossless"], true, "{b_run}");
    let b_log = text(&outputs[1].stderr);
    assert!(b_log.contains("b: Active, epoch 2, serving"), "{b_log}");
}

/// Finding 1: a node started against an empty witness directory (an unmounted share's mount
/// point) became a second active at epoch 1. Bootstrap is `cluster init`, once; a node
/// refuses a witness without a record.
#[test]
fn cluster_init_is_once_and_a_node_refuses_an_empty_witness() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = cluster_files_without_init(root.path());
    let witness = root.path().join("witness");
    let refused = expect(&["node", "run", "--config", arg(&a), "--duration", "1"], 3);
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains(&witness.display().to_string()) && stderr.contains("cluster init"),
        "{stderr}"
    );
    let init = json(&expect(
        &[
            "cluster",
            "init",
            "--config",
            arg(&a),
            "--comment",
            "new",
            "--json",
        ],
        0,
    ));
    assert_eq!(
        (init["epoch"].as_u64(), init["owner"].as_str()),
        (Some(1), Some("a")),
        "{init}"
    );
    let again = expect(&["cluster", "init", "--config", arg(&b)], 1);
    assert!(
        text(&again.stdout).contains("initialised already: a owns epoch 1"),
        "{}",
        text(&again.stdout)
    );
    let status = json(&bluejet(&[
        "cluster",
        "status",
        "--config",
        arg(&b),
        "--json",
    ]));
    assert_eq!(status["witness"]["owner"], "a", "{status}");
    // A witness directory that does not exist is never created.
    std::fs::rename(&witness, root.path().join("elsewhere")).unwrap();
    expect(&["cluster", "init", "--config", arg(&a)], 3);
    assert!(!witness.exists());
}

#[test]
fn cluster_usage_errors_exit_2_and_a_missing_config_exits_3() {
    let root = tempfile::tempdir().unwrap();
    let (a, _) = cluster_files_without_init(root.path());
    let a_arg = arg(&a);
    let missing = root.path().join("missing.json");
    expect(&["cluster", "status", "--config", arg(&missing)], 3);
    expect(&["node", "run", "--config", arg(&missing)], 3);
    expect(
        &[
            "cluster",
            "move",
            "--config",
            arg(&missing),
            "--to",
            "b",
            "--comment",
            "x",
        ],
        3,
    );
    expect(&["cluster", "move", "--config", a_arg, "--comment", "x"], 2);
    expect(&["cluster", "move", "--config", a_arg, "--to", "b"], 2);
    expect(
        &[
            "cluster",
            "move",
            "--config",
            a_arg,
            "--to",
            "c",
            "--comment",
            "x",
        ],
        2,
    );
    expect(
        &[
            "cluster",
            "mount",
            "--config",
            a_arg,
            "--node",
            "b",
            "--comment",
            "x",
        ],
        2,
    );
    expect(
        &[
            "cluster",
            "mount",
            "--config",
            a_arg,
            "--node",
            "c",
            "--force",
            "--comment",
            "x",
        ],
        2,
    );
    expect(&["node", "run"], 2);
    expect(&["cluster", "status"], 2);
    let garbage = root.path().join("garbage.json");
    std::fs::write(&garbage, "{\"name\": \"a\"}").unwrap();
    expect(&["cluster", "status", "--config", arg(&garbage)], 2);

    // Nothing has run yet: no owner, so nothing to move; a missing witness share is refused.
    let status = json(&expect(
        &["cluster", "status", "--config", a_arg, "--json"],
        1,
    ));
    assert_eq!(status["witness"], Value::Null, "{status}");
    assert!(
        !status["problems"].as_array().unwrap().is_empty(),
        "{status}"
    );
    expect(
        &[
            "cluster",
            "move",
            "--config",
            a_arg,
            "--to",
            "b",
            "--comment",
            "x",
        ],
        1,
    );
    // A forced mount no node takes is withdrawn, not left to force a later failover.
    let mount = json(&expect(
        &[
            "cluster",
            "mount",
            "--config",
            a_arg,
            "--node",
            "b",
            "--force",
            "--comment",
            "x",
            "--timeout",
            "0.3",
            "--json",
        ],
        1,
    ));
    assert!(
        mount["message"].as_str().unwrap().contains("withdrawn"),
        "{mount}"
    );
    assert!(!root.path().join("b/requests/mount.json").exists());
    std::fs::remove_dir(root.path().join("witness")).unwrap();
    let stderr = text(&expect(&["node", "run", "--config", a_arg, "--duration", "1"], 3).stderr);
    assert!(stderr.contains("witness directory"), "{stderr}");
    assert!(!root.path().join("witness").exists());
}

/// `bluejet ARGUMENTS...` on a live cluster must be refused with exit 3, naming the holder
/// (one of `pids`) and saying what to do.
fn expect_refused(arguments: &[&str], pids: &[u32]) {
    let output = expect(arguments, 3);
    let stderr = text(&output.stderr);
    assert!(
        pids.iter()
            .any(|pid| stderr.contains(&format!("is in use by pid {pid} on host "))),
        "{arguments:?}: {stderr}"
    );
    assert!(stderr.contains("stop"), "{arguments:?}: {stderr}");
}

/// An inspection of a live path goes on read-only and says it is live: on stderr in text,
/// as `"live"` (naming the holder) in JSON.
fn expect_live(arguments: &[&str], pids: &[u32]) {
    let output = bluejet(arguments);
    let stderr = text(&output.stderr);
    assert!(matches!(code(&output), 0 | 1), "{arguments:?}: {stderr}");
    assert!(
        stderr.contains("is live: in use by pid") && stderr.contains("may be inconsistent"),
        "{arguments:?}: {stderr}"
    );
    let mut json_arguments = arguments.to_vec();
    json_arguments.push("--json");
    let document = json(&bluejet(&json_arguments));
    let pid = u32::try_from(document["live"]["holder"]["pid"].as_u64().unwrap_or(0)).unwrap();
    assert!(pids.contains(&pid), "{json_arguments:?}: {document}");
}

#[test]
fn every_command_on_a_running_cluster_refuses_or_reads_live() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = cluster_files(root.path());
    // Under load: the active commits 200 transactions a second throughout.
    let nodes = Nodes::start_with(&[&a, &b], &["--load", "200"]);
    let pids: Vec<u32> = nodes.0.iter().map(std::process::Child::id).collect();
    wait_for_cluster(&a, "a active and b passive replaying its load", |status| {
        cluster_node(status, "a")["heartbeat"]["role"] == "Active"
            && cluster_node(status, "b")["heartbeat"]["role"] == "Passive"
            && cluster_node(status, "b")["copy"]["state"] == "Healthy"
            && cluster_node(status, "b")["copy"]["replayed_position"]["generation"]
                .as_u64()
                .is_some_and(|generation| generation >= 2)
    });
    let path = |relative: &str| root.path().join(relative).display().to_string();
    let (a_dir, b_dir, a_db, b_db) = (path("a"), path("b"), path("a/database"), path("b/database"));
    let (fresh, copied) = (path("fresh"), path("copied"));
    let empty = path("empty");
    std::fs::create_dir(&empty).unwrap();
    let (a_config, b_config) = (arg(&a), arg(&b));
    let refused: [&[&str]; 18] = [
        &["node", "run", "--config", a_config, "--duration", "1"],
        &["node", "run", "--config", b_config, "--duration", "1"],
        &["restore", &empty, "--to", &a_db],
        &["restore", &empty, "--to", &b_db],
        &["recover", &a_db],
        &["recover", &b_db],
        &["repair", &a_db],
        &["repair", &b_db, "--force"],
        &["compact", &a_db, &copied],
        &["repl", "seed", "--active", &a_db, "--replica", &fresh],
        &["repl", "seed", "--active", &a_db, "--replica", &b_dir],
        &["repl", "verify", "--active", &a_db, "--replica", &b_dir],
        &[
            "repl",
            "run",
            "--active",
            &a_db,
            "--replica",
            &b_dir,
            "--duration",
            "1",
        ],
        &["backup", "--replica", &b_dir, "--to", &path("backup-b")],
        &["backup", "--replica", &a_dir, "--to", &path("backup-a")],
        &[
            "truncate",
            "--active",
            &a_db,
            "--replica",
            &b_dir,
            "--circular",
        ],
        &[
            "truncate",
            "--active",
            &b_db,
            "--replica",
            &a_dir,
            "--circular",
        ],
        &["repl", "verify", "--active", &b_db, "--replica", &a_dir],
    ];
    for arguments in refused {
        expect_refused(arguments, &pids);
    }
    // A running cluster is never initialised again (its witness files removed or not).
    let init = expect(&["cluster", "init", "--config", a_config], 3);
    assert!(
        text(&init.stderr).contains("is running"),
        "{}",
        text(&init.stderr)
    );
    let inspections: [&[&str]; 9] = [
        &["header", &a_db],
        &["checksum", &a_db],
        &["integrity", &a_db],
        &["space", &a_db],
        &["log", "dump", &a_db],
        &["checkpoint", "dump", &a_db],
        &["header", &b_db],
        &["log", "dump", &path("b/logs")],
        &["space", &b_db],
    ];
    for arguments in inspections {
        expect_live(arguments, &pids);
    }
    let dump = bluejet(&["dump", &a_db, "no-such-table"]);
    assert!(
        text(&dump.stderr).contains("is live"),
        "{}",
        text(&dump.stderr)
    );

    // Nothing was damaged: the nodes stop cleanly, the active's log verifies, and its
    // database opens and checks out.
    for output in nodes.stop() {
        assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    }
    let stdout = text(&expect(&["log", "dump", &a_db], 0).stdout);
    assert!(stdout.contains("integrity check passed"), "{stdout}");
    expect(&["integrity", &a_db], 0);
    let output = expect(&["header", &a_db], 0);
    assert!(text(&output.stderr).is_empty(), "{}", text(&output.stderr));
    let database = Database::open(Path::new(&a_db), Options::default()).unwrap();
    let loaded = database
        .begin_read()
        .unwrap()
        .open_table("load")
        .unwrap()
        .len();
    assert!(loaded > 100, "{loaded} load commits");
    database.close().unwrap();
    // And b's copy still matches it entry for entry.
    expect(
        &["repl", "verify", "--active", &a_db, "--replica", &b_dir],
        0,
    );
    assert!(!Path::new(&fresh).join("database/bluejet.db").exists());
    assert!(!Path::new(&copied).join("bluejet.db").exists());
}

#[test]
fn an_interrupted_move_is_withdrawn_and_never_carried_out() {
    let root = tempfile::tempdir().unwrap();
    let (a, _b) = cluster_files(root.path());
    let nodes = Nodes::start(&[&a, &_b]);
    wait_for_cluster(&a, "a active and b passive with a copy", |status| {
        status["witness"]["owner"] == "a"
            && cluster_node(status, "a")["heartbeat"]["role"] == "Active"
            && cluster_node(status, "b")["heartbeat"]["role"] == "Passive"
            && cluster_node(status, "b")["copy"]["state"]
                .as_str()
                .is_some_and(|state| state != "Seeding" && state != "Failed")
    });
    // b cannot replay the move's last generation while stopped: a waits for it.
    let b_pid = nodes.0[1].id();
    signal("-STOP", b_pid);
    let mover = Command::new(env!("CARGO_BIN_EXE_bluejet"))
        .args(["cluster", "move", "--config", arg(&a), "--to", "b"])
        .args(["--comment", "aborted by operator", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let request = root.path().join("a/requests/move.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !request.exists() {
        assert!(std::time::Instant::now() < deadline, "no request placed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // a takes the request within a round and waits for b.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    signal("-TERM", mover.id());
    let output = mover.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 3, "{stderr}");
    assert!(stderr.contains("withdrawn"), "{stderr}");
    assert!(!request.exists(), "the request was withdrawn");
    signal("-CONT", b_pid);
    // Long enough for b to catch up and for a to have carried out a move still pending.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let status = wait_for_cluster(&a, "a active again", |status| {
        cluster_node(status, "a")["heartbeat"]["role"] == "Active"
            && cluster_node(status, "a")["heartbeat"]["serving"] == true
    });
    assert_eq!(status["witness"]["owner"], "a", "{status}");
    assert_eq!(status["witness"]["epoch"], 1, "{status}");
    let outputs = nodes.stop();
    let a_log = text(&outputs[0].stderr);
    assert!(!a_log.contains("switchover"), "{a_log}");
    assert!(a_log.contains("withdrawn"), "{a_log}");
}

#[test]
fn a_joining_node_says_why() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = cluster_files(root.path());
    // a bootstraps (the witness names it owner), then its instance goes away.
    let output = bluejet(&["node", "run", "--config", arg(&a), "--duration", "2"]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    std::fs::rename(root.path().join("a"), root.path().join("a-away")).unwrap();
    let output = bluejet(&[
        "node",
        "run",
        "--config",
        arg(&b),
        "--duration",
        "2",
        "--json",
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(
        code(&output),
        1,
        "a run that ends Joining did not do its job"
    );
    let document = json(&output);
    assert_eq!(document["status"]["role"], "Joining", "{document}");
    let reason = document["status"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("peer instance unreachable"), "{document}");
    assert!(
        stderr.contains("Joining (waiting for a seed from a"),
        "{stderr}"
    );
}

/// Issue 14, finding 6: `truncate` must know every copy. Without `--config`, `--replica` or
/// `--standalone` it refuses; with the cluster file it finds the peer's copy and keeps what
/// that copy has not replayed.
#[test]
fn truncate_refuses_without_knowing_every_copy() {
    let root = tempfile::tempdir().unwrap();
    let (config_a, _) = cluster_files(root.path());
    let active = root.path().join("a").join("database");
    let replica = root.path().join("b");
    let database = Database::open(&active, Options::default()).unwrap();
    fill(&database, 0, 20);
    database.log().roll().unwrap();
    database.close().unwrap();
    repl(
        &["seed", "--active", arg(&active), "--replica", arg(&replica)],
        0,
    );
    for round in 0..4 {
        let database = Database::open(&active, Options::default()).unwrap();
        fill(&database, 100 + round * 20, 20);
        database.log().roll().unwrap();
        database.checkpoint().unwrap();
        database.close().unwrap();
    }
    let refused = expect(&["truncate", "--active", arg(&active), "--circular"], 2);
    assert!(
        text(&refused.stderr).contains("--config"),
        "{}",
        text(&refused.stderr)
    );
    expect(
        &[
            "truncate",
            "--active",
            arg(&active),
            "--standalone",
            "--replica",
            arg(&replica),
        ],
        2,
    );
    let kept = json(&expect(
        &[
            "truncate",
            "--active",
            arg(&active),
            "--config",
            arg(&config_a),
            "--circular",
            "--json",
        ],
        0,
    ));
    let replicas = kept["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 1, "{kept}");
    assert!(
        replicas[0]["replica"].as_str().unwrap().ends_with("b"),
        "{kept}"
    );
    // Only what the copy has replayed goes.
    let through = replicas[0]["replayed_through"].as_u64().unwrap();
    assert_eq!(kept["oldest_kept"].as_u64(), Some(through + 1), "{kept}");
    let deleted = kept["deleted"].as_array().unwrap();
    assert!(
        deleted.iter().all(|g| g.as_u64().unwrap() <= through),
        "{kept}"
    );
    // Not a node's database: bad usage.
    let other = root.path().join("other");
    Database::open(&other, Options::default())
        .unwrap()
        .close()
        .unwrap();
    expect(
        &[
            "truncate",
            "--active",
            arg(&other),
            "--config",
            arg(&config_a),
        ],
        2,
    );
    // `--standalone` contradicts the retention marker the seed wrote: refused, until the
    // operator removes the marker (nothing reads the log any more).
    let refused = expect(
        &[
            "truncate",
            "--active",
            arg(&active),
            "--standalone",
            "--circular",
        ],
        2,
    );
    assert!(text(&refused.stderr).contains("bluejet.keep-logs"));
    std::fs::remove_file(active.join("bluejet.keep-logs")).unwrap();
    // A database without copies says so.
    let standalone = json(&expect(
        &[
            "truncate",
            "--active",
            arg(&active),
            "--standalone",
            "--circular",
            "--json",
        ],
        0,
    ));
    assert!(
        !standalone["deleted"].as_array().unwrap().is_empty(),
        "{standalone}"
    );
}

/// Every file of `dir` and its bytes, sorted by name.
fn directory_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A TLS handshake over 127.0.0.1: `server` accepts `client` and the client sends one frame
/// that the server reads back; every blocking call is bounded by timeouts.
fn handshake_and_frame(dir: &Path, client: &str, server: &str) {
    use bluejet_replication::net::frame::{read_frame, write_frame};
    use bluejet_replication::net::{accept, connect, TlsIdentity};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;
    let timeout = Some(Duration::from_secs(10));
    let server_identity = TlsIdentity::load(dir, server).unwrap();
    let client_identity = TlsIdentity::load(dir, client).unwrap();
    let server_config = server_identity.server_config(client).unwrap();
    let client_config = client_identity.client_config().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let expected = client.to_owned();
    let serving = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(timeout).unwrap();
        tcp.set_write_timeout(timeout).unwrap();
        let mut stream = accept(&server_config, tcp, &expected).unwrap();
        let frame = read_frame(&mut stream, 1024).unwrap();
        (stream.peer_name().to_owned(), frame)
    });
    let tcp = TcpStream::connect_timeout(&address, Duration::from_secs(10)).unwrap();
    tcp.set_read_timeout(timeout).unwrap();
    tcp.set_write_timeout(timeout).unwrap();
    let mut stream = connect(&client_config, tcp, server).unwrap();
    assert_eq!(stream.peer_name(), server);
    write_frame(&mut stream, 3, b"hello over tls").unwrap();
    let (peer, frame) = serving.join().unwrap();
    assert_eq!(peer, client);
    assert_eq!(
        (frame.kind, &frame.payload[..]),
        (3, &b"hello over tls"[..])
    );
}

#[test]
fn cluster_certs_writes_working_certificates_with_their_modes() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("new/certs");
    let output = bluejet_with_umask_0(&["cluster", "certs", "--dir", arg(&dir), "--nodes", "a,b"]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.contains("valid 825 days"), "{stdout}");
    let expected = [
        ("ca.pem", 0o644),
        ("ca.key", 0o600),
        ("a.pem", 0o644),
        ("a.key", 0o600),
        ("b.pem", 0o644),
        ("b.key", 0o600),
    ];
    for (name, expected_mode) in expected {
        let path = dir.join(name);
        assert_eq!(mode(&path), expected_mode, "{name}");
        let listed = format!("  {expected_mode:04o}  {}  ", path.display());
        assert!(stdout.contains(&listed), "{listed:?} in {stdout}");
    }
    assert_eq!(directory_contents(&dir).len(), 6);
    assert_eq!(mode(&dir), 0o700, "the directory is private");
    handshake_and_frame(&dir, "a", "b");
    handshake_and_frame(&dir, "b", "a");
}

#[test]
fn cluster_certs_json_lists_every_file_and_honours_days() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("certs");
    let report = json(&expect(
        &[
            "cluster",
            "certs",
            "--dir",
            arg(&dir),
            "--nodes",
            "mx-1,mx_2",
            "--days",
            "30",
            "--json",
        ],
        0,
    ));
    assert_eq!(
        (
            report["kind"].as_str(),
            report["passed"].as_bool(),
            report["days"].as_u64()
        ),
        (Some("cluster-certs"), Some(true), Some(30)),
        "{report}"
    );
    let files = report["files"].as_array().unwrap();
    let listed: Vec<(&str, &str)> = files
        .iter()
        .map(|file| {
            (
                file["path"].as_str().unwrap(),
                file["mode"].as_str().unwrap(),
            )
        })
        .collect();
    let names = [
        "ca.pem", "ca.key", "mx-1.pem", "mx-1.key", "mx_2.pem", "mx_2.key",
    ];
    assert_eq!(listed.len(), names.len(), "{report}");
    for ((path, listed_mode), name) in listed.iter().zip(names) {
        assert_eq!(*path, dir.join(name).display().to_string());
        assert_eq!(*listed_mode, format!("{:04o}", mode(&dir.join(name))));
    }
    assert!(listed
        .iter()
        .all(|(path, listed_mode)| !path.ends_with(".key") || *listed_mode == "0600"));
    handshake_and_frame(&dir, "mx-1", "mx_2");
}

#[test]
fn cluster_certs_never_replaces_a_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("certs");
    expect(
        &["cluster", "certs", "--dir", arg(&dir), "--nodes", "a,b"],
        0,
    );
    let before = directory_contents(&dir);
    // Again the same, a new node beside the old CA, or only a node's files that exist.
    for nodes in ["a,b", "c", "b"] {
        let refused = expect(
            &["cluster", "certs", "--dir", arg(&dir), "--nodes", nodes],
            1,
        );
        let stdout = text(&refused.stdout);
        let named = dir.join("ca.pem").display().to_string();
        assert!(
            stdout.contains("cluster certs refused: ") && stdout.contains(&named),
            "{nodes}: {stdout}"
        );
        assert_eq!(directory_contents(&dir), before, "{nodes}: nothing changed");
    }
    // A directory where only a node's key is left from before: refused naming it.
    let other = root.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("b.key"), b"old key").unwrap();
    let refused = json(&expect(
        &[
            "cluster",
            "certs",
            "--dir",
            arg(&other),
            "--nodes",
            "a,b",
            "--json",
        ],
        1,
    ));
    let message = report_message(&refused);
    assert!(
        message.contains(&other.join("b.key").display().to_string()),
        "{refused}"
    );
    assert_eq!(refused["passed"].as_bool(), Some(false), "{refused}");
    assert_eq!(
        directory_contents(&other),
        vec![("b.key".to_owned(), b"old key".to_vec())]
    );
    handshake_and_frame(&dir, "a", "b");
}

fn report_message(report: &Value) -> &str {
    report["message"].as_str().unwrap_or_default()
}

#[test]
fn cluster_certs_refuses_bad_names_and_days_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("certs");
    let bad_nodes = [
        "a,../x", "a/b", "..", "a.b", "-a", "a,", "a,A", "ca", "a b", "é",
    ];
    for nodes in bad_nodes {
        let refused = expect(
            &["cluster", "certs", "--dir", arg(&dir), "--nodes", nodes],
            2,
        );
        let stderr = text(&refused.stderr);
        assert!(stderr.starts_with("bluejet: "), "{nodes}: {stderr}");
        assert!(!dir.exists(), "{nodes}: nothing written");
    }
    let named = expect(
        &["cluster", "certs", "--dir", arg(&dir), "--nodes", "a,b/c"],
        2,
    );
    assert!(
        text(&named.stderr).contains("\"b/c\""),
        "{}",
        text(&named.stderr)
    );
    for days in ["0", "36501", "-1", "x"] {
        expect(
            &[
                "cluster",
                "certs",
                "--dir",
                arg(&dir),
                "--nodes",
                "a",
                "--days",
                days,
            ],
            2,
        );
    }
    expect(&["cluster", "certs", "--dir", arg(&dir)], 2);
    assert!(!dir.exists());
    // A directory that cannot be made: a file stands in its place.
    let file = root.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    expect(
        &[
            "cluster",
            "certs",
            "--dir",
            arg(&file.join("certs")),
            "--nodes",
            "a",
        ],
        3,
    );
}

/// The cluster files of `cluster_files`, replicating over TCP with mutual TLS (certificates
/// from `cluster certs`, two free ports on 127.0.0.1) and synchronous commit `flushed`.
fn network_cluster_files(root: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(root.join("witness")).unwrap();
    let certs = root.join("certs");
    expect(
        &["cluster", "certs", "--dir", arg(&certs), "--nodes", "a,b"],
        0,
    );
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let ports = [port(), port()];
    let write = |name: &str, peer: &str, mine: u16, theirs: u16| {
        let path = root.join(format!("{name}.json"));
        let file = serde_json::json!({
            "name": name,
            "instance": root.join(name),
            "peer": peer,
            "witness": root.join("witness"),
            "synchronous": "flushed",
            "network": {
                "listen": format!("127.0.0.1:{mine}"),
                "peer_address": format!("127.0.0.1:{theirs}"),
                "certs": certs,
            },
        });
        std::fs::write(&path, file.to_string()).unwrap();
        path
    };
    let files = (
        write("a", "b", ports[0], ports[1]),
        write("b", "a", ports[1], ports[0]),
    );
    expect(&["cluster", "init", "--config", arg(&files.0)], 0);
    files
}

/// Found by an adversarial round: over the network the cluster commands read the peer's
/// instance from the file's (absent) peer_instance. Through the peer's server they see it.
#[test]
fn a_cluster_over_tcp_reports_status_moves_and_shows_its_transport() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = network_cluster_files(root.path());
    let nodes = Nodes::start_with(&[&a, &b], &["--load", "50"]);
    let status = wait_for_cluster(&a, "a active and b a copy in block mode", |status| {
        status["witness"]["owner"] == "a"
            && cluster_node(status, "a")["heartbeat"]["role"] == "Active"
            && cluster_node(status, "b")["heartbeat"]["role"] == "Passive"
            && cluster_node(status, "b")["copy"]["state"] == "Healthy"
    });
    assert_eq!(status["witness"]["epoch"], 1, "{status}");
    // b's file reaches a through a's server: the same cluster, seen from b.
    let from_b = wait_for_cluster(&b, "a seen from b", |status| {
        cluster_node(status, "a")["heartbeat"]["role"] == "Active"
    });
    assert_eq!(from_b["nodes"][0]["name"], "b", "{from_b}");
    // repl status on b's instance says how it receives the log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let output = bluejet(&["repl", "status", "--replica", arg(&root.path().join("b"))]);
        let stdout = text(&output.stdout);
        if stdout.contains("transport") && stdout.contains("tcp") && stdout.contains("block (") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{stdout}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A move asked through b's file: the request goes into a's instance through a's server.
    let moved = json(&expect(
        &[
            "cluster",
            "move",
            "--config",
            arg(&b),
            "--to",
            "b",
            "--comment",
            "tcp",
            "--json",
        ],
        0,
    ));
    assert_eq!(moved["ok"], true, "{moved}");
    wait_for_cluster(&a, "b active at epoch 2", |status| {
        status["witness"]["owner"] == "b"
            && cluster_node(status, "b")["heartbeat"]["serving"] == true
    });
    // a (now the passive) frozen: the status read through b's file waits for a's answer,
    // and still judges b's heartbeat and lease as of when it read them (found by an
    // adversarial round: false "lease ended" problems against a healthy active).
    let frozen = nodes.0[0].id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &frozen])
        .status()
        .unwrap()
        .success());
    let output = bluejet(&["cluster", "status", "--config", arg(&b), "--json"]);
    assert!(Command::new("kill")
        .args(["-CONT", &frozen])
        .status()
        .unwrap()
        .success());
    let status = json(&output);
    let problems = status["problems"].to_string();
    assert!(!problems.contains("lease ended"), "{status}");
    assert!(!problems.contains("b's last heartbeat"), "{status}");
    let age = cluster_node(&status, "b")["heartbeat"]["age_seconds"]
        .as_f64()
        .unwrap();
    assert!(age < 2.0, "{status}");
    let truncate = bluejet(&[
        "truncate",
        "--active",
        arg(&root.path().join("b/database")),
        "--config",
        arg(&b),
    ]);
    assert_eq!(code(&truncate), 2, "{}", text(&truncate.stderr));
    assert!(text(&truncate.stderr).contains("over the network"));
    let outputs = nodes.stop();
    let b_run = json(&outputs[1]);
    assert_eq!(b_run["status"]["role"], "Active", "{b_run}");
    assert_eq!(b_run["status"]["transport"], "tcp", "{b_run}");
    assert_eq!(b_run["failovers"][0]["kind"], "move", "{b_run}");
    assert_eq!(b_run["failovers"][0]["lossless"], true, "{b_run}");
}
