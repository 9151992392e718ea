//! Runs the built `bluejet` binary: the demo, dumps of what it leaves, damage and misuse.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bluejet(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bluejet"))
        .args(arguments)
        .output()
        .expect("run bluejet")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

/// Runs a small demo into a fresh directory and keeps its files.
fn demo_directory() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("log");
    let output = bluejet(&[
        "demo",
        "--dir",
        directory.to_str().unwrap(),
        "--keep",
        "--transactions",
        "120",
        "--writers",
        "3",
    ]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.contains("integrity check passed"), "{stdout}");
    assert!(
        stdout.contains("121 of 121 committed transactions identical"),
        "{stdout}"
    );
    assert!(directory.join("E0000000001.log").exists());
    (root, directory)
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
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
    // The demo rolls by hand five times: at least six generations.
    assert!(stdout.contains("E0000000005.log"), "{stdout}");

    let output = bluejet(&["ml", arg(&directory), "--json", "--records"]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["passed"], true);
    assert!(document["generations"].as_array().unwrap().len() >= 6);
    let records = document["record_list"].as_array().unwrap();
    assert!(records.iter().any(|record| record["kind"] == "put"));

    let file = directory.join("E0000000002.log");
    let output = bluejet(&["log", "dump", arg(&file), "--records"]);
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
fn checkpoint_dump_reads_both_copies() {
    let (_root, directory) = demo_directory();
    let output = bluejet(&["checkpoint", "dump", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 0, "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.contains("position     (1,0)"), "{stdout}");
    assert!(stdout.contains("copy 0: valid"), "{stdout}");
    assert!(stdout.contains("copy 1: valid"), "{stdout}");

    let output = bluejet(&["mk", arg(&directory.join("E00.chk")), "--json"]);
    assert_eq!(code(&output), 0);
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["checkpoint"]["sequence"], 1);

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
    let path = directory.join("E0000000002.log");
    let mut image = std::fs::read(&path).unwrap();
    // A byte of the payload of home segment 1, which every closed generation uses.
    image[4096 + 100] ^= 0x10;
    std::fs::write(&path, image).unwrap();

    let output = bluejet(&["log", "dump", arg(&directory)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 1, "{stdout}");
    let problem = stdout
        .lines()
        .find(|line| line.starts_with("problem in generation 2:"))
        .unwrap_or_else(|| panic!("no problem named generation 2:\n{stdout}"));
    assert!(problem.contains("E0000000002.log"), "{problem}");
    assert!(
        stdout.ends_with("integrity check FAILED: 1 problem(s)\n"),
        "{stdout}"
    );

    let output = bluejet(&["ml", arg(&path), "--json"]);
    assert_eq!(code(&output), 1);
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["passed"], false);
    assert_eq!(document["problems"][0]["generation"], 2);
}

#[test]
fn a_renamed_generation_is_a_name_mismatch() {
    let (_root, directory) = demo_directory();
    let copy = directory.parent().unwrap().join("E0000000009.log");
    std::fs::copy(directory.join("E0000000002.log"), &copy).unwrap();
    let output = bluejet(&["ml", arg(&copy)]);
    let stdout = text(&output.stdout);
    assert_eq!(code(&output), 1, "{stdout}");
    assert!(stdout.contains("the name says generation 9"), "{stdout}");
}

#[test]
fn bad_usage_exits_2() {
    for arguments in [
        &["log", "dump"][..],
        &["log", "dump", "x", "--no-such-option"],
        &["frobnicate"],
        &["demo", "--writers", "0"],
        &["ml", ".", "--base", "TOOLONG"],
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
}

#[test]
fn a_missing_path_exits_3() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("nothing-here");
    for arguments in [
        vec!["log", "dump", arg(&missing)],
        vec!["checkpoint", "dump", arg(&missing)],
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
    let output = bluejet(&["demo", "--transactions", "40", "--writers", "2", "--json"]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["passed"], true);
    assert_eq!(document["commits"], 41);
    let directory = PathBuf::from(document["directory"].as_str().unwrap());
    assert!(
        !directory.exists(),
        "the temporary directory is removed without --keep"
    );
}
