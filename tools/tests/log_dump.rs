//! `bluejet log dump DIR` with `--from/--to`, `--stats`, `--table` and `--follow`, on logs
//! written here through the engine with a known workload.

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions).
#![allow(clippy::unwrap_used)]

use bluejet_engine::log::{Log, MIN_GENERATION_BYTES};
use bluejet_engine::{Database, Options};
use bluejet_engine::{Durability, LogConfig, LogPosition};
use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::{arg, bluejet, code, expect, json, signal, text};

/// What the workload wrote, as the writer reported it.
struct Workload {
    /// (transaction, first record, end) of every committed transaction, in order.
    committed: Vec<(u64, LogPosition, LogPosition)>,
}

const COMMITTED_FIRST: u64 = 10;
const ROLLED_BACK: u64 = 3;
const COMMITTED_SECOND: u64 = 5;
const DELETES: u64 = 2;

/// Writes, in generation 1: ten transactions putting into `messages` and `folders`, three
/// rolled back putting into `messages`; then after a roll, in generation 2: five putting
/// into `folders` only and two deleting from `messages`.
fn workload(directory: &Path) -> Workload {
    let log = Log::open(directory, LogConfig::default()).unwrap();
    let mut committed = Vec::new();
    let mut commit = |transaction: bluejet_engine::log::Transaction<'_>| {
        let id = transaction.id();
        let info = transaction.commit(Durability::Durable).unwrap();
        committed.push((id, info.begin, info.end));
    };
    for index in 0..COMMITTED_FIRST {
        let mut transaction = log.transaction();
        transaction.put("messages", format!("m{index}").as_bytes(), &[b'x'; 100]);
        transaction.put("folders", format!("f{index}").as_bytes(), b"INBOX");
        commit(transaction);
    }
    for index in 0..ROLLED_BACK {
        let mut transaction = log.transaction();
        transaction.put("messages", format!("r{index}").as_bytes(), b"gone");
        transaction.abort().unwrap();
    }
    assert_eq!(log.roll().unwrap(), 1);
    for index in 0..COMMITTED_SECOND {
        let mut transaction = log.transaction();
        transaction.put("folders", format!("g{index}").as_bytes(), b"Sent");
        commit(transaction);
    }
    for index in 0..DELETES {
        let mut transaction = log.transaction();
        transaction.delete("messages", format!("m{index}").as_bytes());
        commit(transaction);
    }
    log.close().unwrap();
    Workload { committed }
}

fn logged() -> (tempfile::TempDir, PathBuf, Workload) {
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("log");
    let workload = workload(&directory);
    (root, directory, workload)
}

fn position(value: &Value) -> LogPosition {
    LogPosition::new(
        u32::try_from(value["generation"].as_u64().unwrap()).unwrap(),
        u32::try_from(value["offset"].as_u64().unwrap()).unwrap(),
    )
}

fn records(document: &Value) -> &Vec<Value> {
    document["records"].as_array().unwrap()
}

/// `POS` as the tool prints it.
fn shown(position: LogPosition) -> String {
    position.to_string()
}

#[test]
fn from_and_to_give_exactly_the_records_in_range() {
    let (_root, directory, workload) = logged();
    let (third, from, _) = workload.committed[2];
    let (fifth, _, to) = workload.committed[4];
    // Both notations: the one the tool prints and GENERATION:OFFSET.
    let to_colon = format!("{}:{}", to.generation, to.offset);
    let output = expect(
        &[
            "log",
            "dump",
            arg(&directory),
            "--from",
            &shown(from),
            "--to",
            &to_colon,
            "--json",
        ],
        0,
    );
    let document = json(&output);
    assert_eq!(document["schema_version"], 1, "{document}");
    let rows = records(&document);
    // Three transactions of begin, two puts and a commit.
    assert_eq!(rows.len(), 12, "{document}");
    assert_eq!(document["record_count"], 12);
    assert_eq!(position(&rows[0]["position"]), from);
    let transactions: HashSet<u64> = rows
        .iter()
        .map(|row| row["transaction"].as_u64().unwrap())
        .collect();
    assert_eq!(transactions, (third..=fifth).collect());
    for row in rows {
        let at = position(&row["position"]);
        assert!(from <= at && at < to, "{row}");
    }
    assert_eq!(rows.last().unwrap()["kind"], "commit");
    // Without --to: through the end of the log, across the roll into generation 2.
    let rest = json(&expect(
        &[
            "log",
            "dump",
            arg(&directory),
            "--from",
            &shown(from),
            "--json",
        ],
        0,
    ));
    let generations: HashSet<u64> = records(&rest)
        .iter()
        .map(|row| row["position"]["generation"].as_u64().unwrap())
        .collect();
    assert_eq!(generations, HashSet::from([1, 2]), "{rest}");
    // Text: one line per record between the heading and the total.
    let output = expect(
        &[
            "log",
            "dump",
            arg(&directory),
            "--from",
            &shown(from),
            "--to",
            &shown(to),
        ],
        0,
    );
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 12 + 2, "{stdout}");
    assert!(stdout.contains("12 records in"), "{stdout}");
}

#[test]
fn stats_count_the_known_workload() {
    let (_root, directory, _) = logged();
    let document = json(&expect(
        &["log", "dump", arg(&directory), "--stats", "--json"],
        0,
    ));
    assert_eq!(document["schema_version"], 1, "{document}");
    assert!(document["records"].is_null(), "stats instead of records");
    let stats = &document["stats"];
    let count = |kind: &str| stats["by_kind"][kind]["count"].as_u64().unwrap_or(0);
    let committed = COMMITTED_FIRST + COMMITTED_SECOND + DELETES;
    assert_eq!(count("commit"), committed, "{stats}");
    assert_eq!(count("rollback"), ROLLED_BACK, "{stats}");
    assert_eq!(count("begin"), committed + ROLLED_BACK, "{stats}");
    assert_eq!(
        count("put"),
        2 * COMMITTED_FIRST + ROLLED_BACK + COMMITTED_SECOND,
        "{stats}"
    );
    assert_eq!(count("delete"), DELETES, "{stats}");
    assert_eq!(stats["transactions_committed"], committed);
    assert_eq!(stats["transactions_rolled_back"], ROLLED_BACK);
    let by_kind = stats["by_kind"].as_object().unwrap();
    let summed: u64 = by_kind.values().map(|k| k["count"].as_u64().unwrap()).sum();
    let summed_bytes: u64 = by_kind.values().map(|k| k["bytes"].as_u64().unwrap()).sum();
    assert_eq!(summed, stats["records"].as_u64().unwrap());
    assert_eq!(summed_bytes, stats["bytes"].as_u64().unwrap());
    let generations = stats["generations"].as_array().unwrap();
    let numbers: Vec<u64> = generations
        .iter()
        .map(|g| g["generation"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2], "{stats}");
    let generation_bytes: u64 = generations
        .iter()
        .map(|g| g["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(generation_bytes, stats["bytes"].as_u64().unwrap());
    let first = stats["first_commit_micros"].as_u64().unwrap();
    let last = stats["last_commit_micros"].as_u64().unwrap();
    assert!(first <= last, "{stats}");
    if last > first {
        let expected = committed as f64 * 1e6 / (last - first) as f64;
        let rate = stats["commits_per_second"].as_f64().unwrap();
        assert!((rate - expected).abs() < 1e-6 * expected, "{stats}");
    }
    // Text names every kind and the transactions.
    let stdout = text(&expect(&["log", "dump", arg(&directory), "--stats"], 0).stdout);
    assert!(
        stdout.contains(&format!(
            "transactions: {committed} committed, {ROLLED_BACK} rolled back"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("commits/s"), "{stdout}");
}

#[test]
fn table_keeps_its_records_and_the_ends_of_their_transactions() {
    let (_root, directory, _) = logged();
    let document = json(&expect(
        &[
            "log",
            "dump",
            arg(&directory),
            "--table",
            "messages",
            "--json",
        ],
        0,
    ));
    let rows = records(&document);
    let mut touched = HashSet::new();
    let (mut puts, mut deletes, mut commits, mut rollbacks) = (0, 0, 0, 0);
    for row in rows {
        let transaction = row["transaction"].as_u64().unwrap();
        match row["kind"].as_str().unwrap() {
            "put" | "delete" => {
                assert_eq!(row["table"], "messages", "{row}");
                touched.insert(transaction);
                if row["kind"] == "put" {
                    puts += 1;
                } else {
                    deletes += 1;
                }
            }
            "commit" | "rollback" => {
                assert!(touched.contains(&transaction), "{row}");
                if row["kind"] == "commit" {
                    commits += 1;
                } else {
                    rollbacks += 1;
                }
            }
            other => panic!("{other} is not a record of table messages: {row}"),
        }
    }
    assert_eq!(puts, COMMITTED_FIRST + ROLLED_BACK);
    assert_eq!(deletes, DELETES);
    assert_eq!(commits, COMMITTED_FIRST + DELETES);
    assert_eq!(rollbacks, ROLLED_BACK);
    // With --stats: the same records counted.
    let stats = json(&expect(
        &[
            "log",
            "dump",
            arg(&directory),
            "--table",
            "messages",
            "--stats",
            "--json",
        ],
        0,
    ));
    assert_eq!(
        stats["stats"]["records"].as_u64().unwrap(),
        rows.len() as u64
    );
    assert_eq!(
        stats["stats"]["transactions_committed"],
        COMMITTED_FIRST + DELETES
    );
    // A table nothing touched: no records.
    let none = json(&expect(
        &[
            "log",
            "dump",
            arg(&directory),
            "--table",
            "nothing",
            "--json",
        ],
        0,
    ));
    assert!(records(&none).is_empty(), "{none}");
}

#[test]
fn bad_positions_are_refused_naming_the_generation() {
    let (_root, directory, workload) = logged();
    let (_, first, end) = workload.committed[0];
    let inside = format!("{}:{}", first.generation, first.offset + 1);
    let past = format!("2:{}", 1 << 20);
    let cases: [(&[&str], &str); 6] = [
        (&["--from", "9:0"], "generation 9 does not exist"),
        (&["--to", "9:0"], "generation 9 does not exist"),
        (&["--from", &inside], "inside the record at"),
        (&["--from", &past], "beyond the end of generation 2"),
        (
            &["--from", &shown(end), "--to", &shown(first)],
            "comes before",
        ),
        (&["--from", "three"], "not a number"),
    ];
    for (options, expected) in cases {
        let mut arguments = vec!["log", "dump", arg(&directory)];
        arguments.extend_from_slice(options);
        let output = bluejet(&arguments);
        let stderr = text(&output.stderr);
        assert_eq!(code(&output), 2, "{arguments:?}: {stderr}");
        assert!(stderr.contains(expected), "{arguments:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{arguments:?}");
    }
    // The range options read a directory, not a single generation file.
    let file = directory.join("E00.log");
    let output = bluejet(&["log", "dump", arg(&file), "--stats"]);
    assert_eq!(code(&output), 2, "{}", text(&output.stderr));
}

/// Lines a child prints on a pipe, as they come.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A `log dump --follow` child, killed if the test fails first.
struct Follower(std::process::Child);

impl Drop for Follower {
    fn drop(&mut self) {
        if let Err(error) = self.0.kill() {
            eprintln!("killing the follower: {error}");
        }
        if let Err(error) = self.0.wait() {
            eprintln!("reaping the follower: {error}");
        }
    }
}

#[test]
fn follow_prints_records_committed_after_it_started_across_generations() {
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("db");
    let mut options = Options::default();
    options.log.generation_bytes = MIN_GENERATION_BYTES;
    // The database is open (its owner holds the lock) the whole time the follower reads.
    let database = Database::open(&directory, options).unwrap();
    let write = |key: &str| {
        let mut transaction = database.begin_write().unwrap();
        transaction.create_table("messages").unwrap();
        transaction
            .insert("messages", key.as_bytes(), &[b'y'; 2000])
            .unwrap();
        transaction.commit().unwrap();
    };
    write("before");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bluejet"))
        .args(["log", "dump", arg(&directory), "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines_of(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    let follower = Follower(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    // It says where it starts once it has found the end of the log.
    let started = loop {
        let line = stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the follower says it follows");
        if line.contains("following log stream") {
            break line;
        }
    };
    let mut seen_keys = HashSet::new();
    let mut generations = HashSet::new();
    let mut commits = 0;
    let mut written = 0;
    // Writes until the follower has printed a record of a later generation than the first
    // it printed, and commits: the roll was followed.
    while generations.len() < 2 || commits < 2 {
        assert!(
            Instant::now() < deadline,
            "{started}: saw {seen_keys:?} in {generations:?}"
        );
        write(&format!("after-{written:04}"));
        written += 1;
        while let Ok(line) = stdout.recv_timeout(Duration::from_millis(20)) {
            let row: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(row["schema_version"], 1, "{line}");
            let key = row["key"].as_str().unwrap_or_default().to_owned();
            assert_ne!(key, "before", "a record from before it started: {line}");
            if !key.is_empty() {
                seen_keys.insert(key);
            }
            if row["kind"] == "commit" {
                commits += 1;
            }
            generations.insert(row["position"]["generation"].as_u64().unwrap());
        }
    }
    assert!(
        seen_keys.iter().all(|key| key.starts_with("after-")),
        "{seen_keys:?}"
    );
    // SIGTERM stops it cleanly, and it changed nothing: the owner goes on writing.
    signal("-TERM", follower.0.id());
    let mut follower = follower;
    let stop_deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = follower.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < stop_deadline,
            "the follower ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    write("after-stop");
    database.close().unwrap();
}
