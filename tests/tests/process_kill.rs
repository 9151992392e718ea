//! Process crashes on the real file layer: a child process runs a load against a database
//! and is killed with SIGKILL at a seeded random moment, again and again on the same
//! directory; each new child recovers what the last one left and loads on. The page cache
//! survives a SIGKILL, so this checks the process-crash path (threads, buffers and handles
//! vanishing mid-operation), not power loss, which `db_crash.rs` simulates.
//!
//! The child is this test binary run again with only the ignored test `load_child` and the
//! case in an environment variable. It opens the database (default options but small
//! generations, cache and checkpoint depth, so rolls, evictions and background checkpoints
//! happen often), writes what recovery gave it to a dump file, then runs `THREADS` threads
//! that commit transactions from seeded generators until killed: inserts, overwrites and
//! removes, some values longer than a page, most commits durable, some lazy. After each
//! commit returns, the thread appends a self-checking line to its ack file.
//!
//! Each thread owns its keys, and its transactions are a pure function of (seed, run,
//! thread, index), so the parent can rebuild every one. What recovery gives back must be, for
//! every thread, its state after some prefix of the transactions it began: at least up to its
//! last acknowledged durable commit (with every lazy one before it; a commit that changed
//! nothing logs nothing and waits for nothing, so it counts as no durable commit), at most up
//! to the one it was running when killed. That is checked at every child's recovery (through
//! its dump, by length and CRC) and at the end by the parent's own recovery (byte for byte);
//! after every kill the file must pass the integrity check as its header names it, and the
//! log must verify.
//!
//! A seed fixes every transaction and the moment of every kill; how far the load has got by
//! then depends on the machine, so a failure names its seed and run and keeps its directory.

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions). Test data
// is made by truncating counters into bytes on purpose, and sizes here are small constants.
// Ignored results are the cleanup of helper threads and sockets a test tears down (work
// left for a later pass: issue 16 asks them to be logged).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::let_underscore_must_use
)]

use bluejet_engine::file::OsFileSystem;
use bluejet_engine::format::inspect::{integrity, DatabaseImage};
use bluejet_engine::format::log_verify::verify_directory;
use bluejet_engine::BaseName;
use bluejet_engine::{Database, DbError, Durability, Options};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The environment variable that makes `load_child` run: "directory;seed;run".
const CHILD_CASE: &str = "BLUEJET_PROCESS_KILL_CASE";
/// Threads committing in the child.
const THREADS: usize = 4;
/// Keys per thread: few enough that overwrites and removes hit existing keys often.
const KEYS: u64 = 40;
const TABLES: [&str; 2] = ["messages", "bodies"];
/// Time from starting a child to killing it: opening takes some tens of milliseconds, so a
/// few kills land in recovery and most in the load.
const KILL_AFTER_MS: std::ops::Range<u64> = 20..800;
/// A child that is never killed stops by itself after this, so a failed parent leaves no
/// process loading forever; the parent reports a child that stopped as a failure.
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// A key's value in the model; `Arc` because every candidate state shares them.
type Value = Arc<[u8]>;
/// (table, key) → value.
type State = BTreeMap<(String, Vec<u8>), Value>;
/// (table, key) → (length, crc32c) of the value: what a child's dump records.
type Prints = BTreeMap<(String, Vec<u8>), (usize, u32)>;

fn options() -> Options {
    let mut options = Options {
        cache_bytes: 2 << 20,
        checkpoint_depth_bytes: 1 << 20,
        ..Options::default()
    };
    options.log.generation_bytes = 128 << 10;
    options
}

fn database_directory(directory: &Path) -> PathBuf {
    directory.join("db")
}

fn dump_path(directory: &Path, run: u32) -> PathBuf {
    directory.join(format!("dump-{run}"))
}

fn ack_path(directory: &Path, run: u32, thread: usize) -> PathBuf {
    directory.join(format!("ack-{run}-{thread}"))
}

fn log_path(directory: &Path, run: u32) -> PathBuf {
    directory.join(format!("child-{run}.log"))
}

/// Key `index` of `thread`: its table, and a key of varying length so leaves hold different
/// numbers of entries.
fn key(thread: usize, index: u64) -> (&'static str, Vec<u8>) {
    let mut key = format!("t{thread}/{index:03}").into_bytes();
    key.resize(6 + (index % 5 * 7) as usize, b'.');
    (TABLES[(index % 2) as usize], key)
}

/// The thread owning a key, if the key is one the load writes.
fn owner(table: &str, bytes: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (thread, rest) = text.strip_prefix('t')?.split_once('/')?;
    let thread: usize = thread.parse().ok()?;
    let index: u64 = rest.get(..3)?.parse().ok()?;
    (thread < THREADS && index < KEYS && key(thread, index) == (table, bytes.to_vec()))
        .then_some(thread)
}

enum Operation {
    Insert(&'static str, Vec<u8>, Value),
    Remove(&'static str, Vec<u8>),
}

impl Operation {
    fn apply(&self, state: &mut State) {
        match self {
            Operation::Insert(table, key, value) => {
                state.insert((table.to_string(), key.clone()), Arc::clone(value));
            }
            Operation::Remove(table, key) => {
                state.remove(&(table.to_string(), key.clone()));
            }
        }
    }

    /// The same on the lengths and CRCs of a state.
    fn apply_print(&self, prints: &mut Prints) {
        match self {
            Operation::Insert(table, key, value) => {
                prints.insert((table.to_string(), key.clone()), print(value));
            }
            Operation::Remove(table, key) => {
                prints.remove(&(table.to_string(), key.clone()));
            }
        }
    }
}

struct Transaction {
    operations: Vec<Operation>,
    durability: Durability,
}

/// The transactions of one thread in one run, in order: the child commits them and the
/// parent rebuilds them.
struct Transactions {
    random: Pcg64,
    thread: usize,
}

impl Transactions {
    fn new(seed: u64, run: u32, thread: usize) -> Self {
        let mix = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(run) << 40;
        Self {
            random: Pcg64::seed_from_u64(mix ^ (thread as u64) << 56 ^ 0x4B11),
            thread,
        }
    }

    fn next(&mut self) -> Transaction {
        let count = self.random.random_range(1..=4);
        let operations = (0..count)
            .map(|_| {
                let (table, key) = key(self.thread, self.random.random_range(0..KEYS));
                match self.random.random_range(0..100) {
                    0..=74 => Operation::Insert(table, key, self.value()),
                    _ => Operation::Remove(table, key),
                }
            })
            .collect();
        let durability = match self.random.random_range(0..100) {
            0..=14 => Durability::Lazy,
            _ => Durability::Durable,
        };
        Transaction {
            operations,
            durability,
        }
    }

    /// A value: mostly up to 3000 bytes (inline up to 512, out of line above), some longer
    /// than a page (8 KiB) up to 40 KiB; half of them compressible like text.
    fn value(&mut self) -> Value {
        let length = match self.random.random_range(0..100) {
            0..=9 => self.random.random_range(9 << 10..=40 << 10),
            _ => self.random.random_range(0..=3000),
        };
        let mut bytes = vec![0u8; length];
        self.random.fill(&mut bytes[..]);
        if self.random.random_bool(0.5) {
            for byte in &mut bytes {
                *byte = b'a' + *byte % 6;
            }
        }
        bytes.into()
    }
}

// ---------------------------------------------------------------------------------------
// The child.

/// Ends the child at once with a message for the parent (a panic in one thread would leave
/// the others loading until the limit).
fn die(message: String) -> ! {
    eprintln!("child failed: {message}");
    std::process::exit(2);
}

/// Runs the load of the case in `CHILD_CASE` until killed; without it, does nothing (so
/// `--ignored` runs of this file pass).
#[test]
#[ignore = "the child process of the process-kill tests; runs only when they start it"]
fn load_child() {
    let Ok(case) = std::env::var(CHILD_CASE) else {
        return;
    };
    let fields: Vec<&str> = case.split(';').collect();
    let [directory, seed, run] = fields[..] else {
        die(format!("bad case {case:?}"));
    };
    let directory = Path::new(directory);
    let seed: u64 = seed.parse().expect("seed");
    let run: u32 = run.parse().expect("run");
    let started = Instant::now();

    let db = Database::open(&database_directory(directory), options())
        .unwrap_or_else(|error| die(format!("recovery failed: {error}")));
    let recovered =
        read_all(&db).unwrap_or_else(|error| die(format!("reading back failed: {error}")));
    write_dump(directory, run, &recovered);

    let db = &db;
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let mut state: State = recovered
                .iter()
                .filter(|((table, key), _)| owner(table, key) == Some(thread))
                .map(|(slot, value)| (slot.clone(), Arc::clone(value)))
                .collect();
            scope.spawn(move || {
                let mut transactions = Transactions::new(seed, run, thread);
                let mut acks = File::create(ack_path(directory, run, thread))
                    .unwrap_or_else(|error| die(format!("ack file: {error}")));
                for index in 0.. {
                    if started.elapsed() > CHILD_LIMIT {
                        die("never killed".into());
                    }
                    let transaction = transactions.next();
                    let ack = commit(db, &transaction, &mut state, thread, index);
                    acks.write_all(ack_line(index, ack).as_bytes())
                        .unwrap_or_else(|error| die(format!("writing an ack: {error}")));
                }
            });
        }
    });
}

/// Commits `transaction` (number `index` of `thread`), checking what each operation reports
/// against the thread's `state`; returns what to acknowledge.
fn commit(
    db: &Database,
    transaction: &Transaction,
    state: &mut State,
    thread: usize,
    index: u64,
) -> Ack {
    let before = state.clone();
    let context = format!("thread {thread} transaction {index}");
    let fail =
        |what: &str, error: DbError| -> ! { die(format!("{context}: {what} failed: {error}")) };
    let mut write = db
        .begin_write()
        .unwrap_or_else(|error| fail("begin", error));
    for operation in &transaction.operations {
        match operation {
            Operation::Insert(table, key, value) => {
                write
                    .create_table(table)
                    .unwrap_or_else(|error| fail("create", error));
                let replaced = write
                    .insert(table, key, value)
                    .unwrap_or_else(|error| fail("insert", error));
                let expected = state.contains_key(&(table.to_string(), key.clone()));
                if replaced != expected {
                    die(format!("{context}: insert says replaced = {replaced}"));
                }
            }
            Operation::Remove(table, key) => {
                let removed = match write.remove(table, key) {
                    // Nothing was ever inserted into it: nothing to remove.
                    Err(DbError::TableNotFound(_)) => false,
                    result => result.unwrap_or_else(|error| fail("remove", error)),
                };
                let expected = state.contains_key(&(table.to_string(), key.clone()));
                if removed != expected {
                    die(format!("{context}: remove says removed = {removed}"));
                }
            }
        }
        operation.apply(state);
    }
    let committed = write
        .commit_with(transaction.durability)
        .unwrap_or_else(|error| fail("commit", error));
    if committed.version == 0 {
        // Nothing was logged, so nothing was waited for either.
        if *state != before {
            die(format!(
                "{context}: a commit that changed the keys reports no version"
            ));
        }
        return Ack::Unchanged;
    }
    match transaction.durability {
        Durability::Durable => {
            if db.log().durable_position() < committed.end {
                die(format!(
                    "{context}: a durable commit returned before it was durable"
                ));
            }
            Ack::Durable
        }
        Durability::Lazy => Ack::Lazy,
    }
}

/// Every entry of every table; the count and point reads must agree with the forward walk.
fn read_all(db: &Database) -> Result<State, String> {
    let read = db.begin_read().map_err(|error| error.to_string())?;
    let mut found = State::new();
    for name in read.table_names().map_err(|error| error.to_string())? {
        let table = read.open_table(&name).map_err(|error| error.to_string())?;
        let entries: Vec<(Vec<u8>, Vec<u8>)> = table
            .range(..)
            .map_err(|error| error.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|error| error.to_string())?;
        if table.len() != entries.len() as u64 {
            return Err(format!("table {name} counts differently from its entries"));
        }
        for (key, value) in entries {
            let got = table.get(&key).map_err(|error| error.to_string())?;
            if got.as_ref() != Some(&value) {
                return Err(format!("get of {name}/{key:?} disagrees with the range"));
            }
            found.insert((name.clone(), key), value.into());
        }
    }
    Ok(found)
}

fn print(value: &[u8]) -> (usize, u32) {
    (value.len(), crc32c::crc32c(value))
}

fn prints(state: &State) -> Prints {
    state
        .iter()
        .map(|(slot, value)| (slot.clone(), print(value)))
        .collect()
}

/// Writes what recovery gave the child, ending with a line that checks the rest, in one
/// write: the threads start only after it, so a run without a whole dump loaded nothing.
fn write_dump(directory: &Path, run: u32, state: &State) {
    let mut text = String::new();
    for ((table, key), (length, crc)) in prints(state) {
        let key: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
        writeln!(text, "{table} {key} {length} {crc:08x}").expect("a string");
    }
    let check = crc32c::crc32c(text.as_bytes());
    writeln!(text, "end {} {check:08x}", state.len()).expect("a string");
    std::fs::write(dump_path(directory, run), text)
        .unwrap_or_else(|error| die(format!("writing the dump: {error}")));
}

/// What a thread acknowledged of a commit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// Durable: it, and everything logged before it, survives any crash.
    Durable,
    /// Lazy: it may be lost with the process.
    Lazy,
    /// It changed nothing, so it logged nothing and waited for nothing: a durable commit
    /// of it makes no earlier lazy commit durable.
    Unchanged,
}

/// The line acknowledging commit `index`, with a CRC so a torn last line is recognised.
fn ack_line(index: u64, ack: Ack) -> String {
    let body = format!(
        "{index} {}",
        match ack {
            Ack::Durable => 'D',
            Ack::Lazy => 'L',
            Ack::Unchanged => 'U',
        }
    );
    format!("{body} {:08x}\n", crc32c::crc32c(body.as_bytes()))
}

// ---------------------------------------------------------------------------------------
// The parent.

/// A case's directory, kept when the case fails so the files can be looked at.
struct KeptOnFailure(tempfile::TempDir);

impl Drop for KeptOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.disable_cleanup(true);
            eprintln!(
                "the failed case's files are kept in {}",
                self.0.path().display()
            );
        }
    }
}

/// A child that is killed if the parent fails before it does.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_child(directory: &Path, seed: u64, run: u32) -> Running {
    let log = File::create(log_path(directory, run)).expect("child log");
    let child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "load_child", "--nocapture", "--ignored"])
        .env(CHILD_CASE, format!("{};{seed};{run}", directory.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("child log"))
        .stderr(log)
        .spawn()
        .expect("starting the child");
    Running(child)
}

/// The dump of `run`, or `None` if the child was killed before it was whole.
fn read_dump(directory: &Path, run: u32, context: &str) -> Option<Prints> {
    let text = std::fs::read_to_string(dump_path(directory, run)).ok()?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map_or(0, |at| at + 1);
    let (body, last) = text.split_at(body_end);
    let mut end = last.trim_end_matches('\n').split(' ');
    let (Some("end"), Some(count), Some(check)) = (end.next(), end.next(), end.next()) else {
        return None;
    };
    if !last.ends_with('\n') || format!("{:08x}", crc32c::crc32c(body.as_bytes())) != check {
        return None;
    }
    let mut prints = Prints::new();
    for line in body.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [table, key, length, crc] = fields[..] else {
            panic!("{context}: bad dump line {line:?}");
        };
        let key = (0..key.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&key[at..at + 2], 16).expect("hex"))
            .collect();
        let length = length.parse().expect("length");
        let crc = u32::from_str_radix(crc, 16).expect("crc");
        prints.insert((table.to_owned(), key), (length, crc));
    }
    assert_eq!(
        count.parse::<usize>().ok(),
        Some(prints.len()),
        "{context}: the dump's count"
    );
    Some(prints)
}

/// What one run acknowledged, per thread: each commit, in order.
fn read_acks(directory: &Path, run: u32, context: &str) -> Vec<Vec<Ack>> {
    (0..THREADS)
        .map(|thread| {
            let Ok(bytes) = std::fs::read(ack_path(directory, run, thread)) else {
                return Vec::new();
            };
            let mut acks = Vec::new();
            let lines: Vec<&[u8]> = bytes.split_inclusive(|&byte| byte == b'\n').collect();
            for (number, line) in lines.iter().enumerate() {
                let ack = [Ack::Durable, Ack::Lazy, Ack::Unchanged]
                    .into_iter()
                    .find(|&ack| ack_line(acks.len() as u64, ack).as_bytes() == *line);
                match ack {
                    Some(ack) => acks.push(ack),
                    // Only the last line can be torn by the kill.
                    None if number + 1 == lines.len() => {}
                    None => panic!("{context}: thread {thread}'s ack line {number} is {line:?}"),
                }
            }
            acks
        })
        .collect()
}

/// A run whose outcome the next recovery shows, and what it acknowledged.
struct Pending {
    run: u32,
    acks: Vec<Vec<Ack>>,
}

/// What a case did, for the summary.
#[derive(Default)]
struct Figures {
    kills: u64,
    /// Children killed before their dump was whole (while starting or recovering).
    early_kills: u64,
    child_recoveries: u64,
    durable_acks: u64,
    lazy_acks: u64,
    unchanged_acks: u64,
}

/// Checks that `found` is, thread by thread, `known` advanced by a prefix of `pending`'s
/// transactions that its acknowledgements allow (or `known` itself with nothing pending);
/// returns that state.
fn resolve(
    seed: u64,
    known: &State,
    pending: Option<&Pending>,
    found: &Prints,
    context: &str,
) -> State {
    if let Some((table, key)) = found
        .keys()
        .find(|(table, key)| owner(table, key).is_none())
    {
        panic!(
            "{context}: {table}/{} present but never written",
            String::from_utf8_lossy(key)
        );
    }
    let mut resolved = State::new();
    for thread in 0..THREADS {
        let mine = |(table, key): &(String, Vec<u8>)| owner(table, key) == Some(thread);
        let wanted: Prints = found
            .iter()
            .filter(|(slot, _)| mine(slot))
            .map(|(slot, print)| (slot.clone(), *print))
            .collect();
        let mut state: State = known
            .iter()
            .filter(|(slot, _)| mine(slot))
            .map(|(slot, value)| (slot.clone(), Arc::clone(value)))
            .collect();
        let mut current = prints(&state);
        let (least, most) = match pending {
            None => (0, 0),
            Some(pending) => {
                let acks = &pending.acks[thread];
                // Every commit up to the last durable one is durable (the log is written in
                // order), and the thread had begun at most the one after its last ack.
                let least = acks
                    .iter()
                    .rposition(|&ack| ack == Ack::Durable)
                    .map_or(0, |index| index + 1);
                (least, acks.len() + 1)
            }
        };
        let mut transactions = pending.map(|p| Transactions::new(seed, p.run, thread));
        let mut at_least = None;
        let mut matched = false;
        for applied in 0..=most {
            if applied > 0 {
                let transaction = transactions.as_mut().expect("a pending run").next();
                for operation in &transaction.operations {
                    operation.apply(&mut state);
                    operation.apply_print(&mut current);
                }
            }
            if applied == least {
                at_least = Some(current.clone());
            }
            if applied >= least && current == wanted {
                matched = true;
                break;
            }
        }
        assert!(
            matched,
            "{context}: thread {thread}'s keys hold no state after {least} (through its last \
             acknowledged durable commit) to {most} (through the one it had begun) of its \
             transactions: after {least}, {}; after {most}, {}",
            difference(at_least.as_ref().expect("least <= most"), &wanted),
            difference(&current, &wanted)
        );
        resolved.extend(state);
    }
    resolved
}

/// The first difference between an expected state and what was found, for messages.
fn difference(expected: &Prints, found: &Prints) -> String {
    let name =
        |(table, key): &(String, Vec<u8>)| format!("{table}/{}", String::from_utf8_lossy(key));
    for (slot, print) in expected {
        match found.get(slot) {
            None => return format!("{} missing", name(slot)),
            Some(got) if got != print => {
                return format!(
                    "{} holds {} bytes (crc {:08x}), expected {} (crc {:08x})",
                    name(slot),
                    got.0,
                    got.1,
                    print.0,
                    print.1
                )
            }
            Some(_) => {}
        }
    }
    match found.keys().find(|slot| !expected.contains_key(*slot)) {
        Some(slot) => format!("{} present, expected absent", name(slot)),
        None => "no difference".into(),
    }
}

/// After a kill, before anything reopens the database: the file as its header names it
/// passes the integrity check (no page reachable from a header is ever overwritten), and
/// every log generation verifies (a torn tail of the current one is allowed).
fn check_files(directory: &Path, context: &str) {
    let directory = database_directory(directory);
    if !directory.join(bluejet_engine::DATABASE_FILE_NAME).exists() {
        // Killed before the database was created.
        return;
    }
    check_image(&directory, context);
    check_log(&directory, context);
}

fn check_image(directory: &Path, context: &str) {
    let image = DatabaseImage::open(directory)
        .unwrap_or_else(|error| panic!("{context}: opening the image failed: {error}"));
    let report = integrity(&image)
        .unwrap_or_else(|error| panic!("{context}: the integrity check failed: {error}"));
    assert!(
        !report.damaged(),
        "{context}: integrity problems: {:?}",
        &report.problems[..report.problems.len().min(5)]
    );
}

fn check_log(directory: &Path, context: &str) {
    let report = verify_directory(
        &OsFileSystem,
        directory,
        BaseName::default(),
        &mut |_, _| {},
    )
    .unwrap_or_else(|error| panic!("{context}: verifying the log failed: {error}"));
    assert!(
        report.passed(),
        "{context}: the log does not verify: {:?}",
        &report.problems[..report.problems.len().min(5)]
    );
}

/// One case: `kills` children each killed at a seeded moment, every recovery checked, then
/// the parent's own recovery checked byte for byte.
fn kill_case(seed: u64, kills: u32) -> Figures {
    let temporary = KeptOnFailure(tempfile::tempdir().expect("a temporary directory"));
    let directory = temporary.0.path();
    let mut random = Pcg64::seed_from_u64(seed ^ 0x5161_C111);
    let mut figures = Figures::default();
    // The exact state before `pending`, whose outcome the next recovery shows.
    let mut known = State::new();
    let mut pending: Option<Pending> = None;
    for run in 0..kills {
        let context = format!("seed {seed} run {run}");
        let mut child = start_child(directory, seed, run);
        std::thread::sleep(Duration::from_millis(random.random_range(KILL_AFTER_MS)));
        if let Some(status) = child.0.try_wait().expect("polling the child") {
            let output = std::fs::read_to_string(log_path(directory, run)).unwrap_or_default();
            panic!("{context}: the child stopped by itself ({status}) before the kill:\n{output}");
        }
        child.0.kill().expect("killing the child");
        child.0.wait().expect("waiting for the child");
        figures.kills += 1;
        check_files(directory, &format!("{context}, after the kill"));

        let acks = read_acks(directory, run, &context);
        match read_dump(directory, run, &context) {
            Some(found) => {
                if run > 0 {
                    figures.child_recoveries += 1;
                }
                let context = format!("{context}, the child's recovery");
                known = resolve(seed, &known, pending.as_ref(), &found, &context);
                for ack in acks.iter().flatten() {
                    match ack {
                        Ack::Durable => figures.durable_acks += 1,
                        Ack::Lazy => figures.lazy_acks += 1,
                        Ack::Unchanged => figures.unchanged_acks += 1,
                    }
                }
                pending = Some(Pending { run, acks });
            }
            None => {
                // Killed while opening or dumping: it loaded nothing, and what the run before
                // left is still to be checked.
                figures.early_kills += 1;
                assert!(
                    acks.iter().all(Vec::is_empty),
                    "{context}: acks without a dump"
                );
            }
        }
    }

    let context = format!("seed {seed}, the final recovery");
    let db = Database::open(&database_directory(directory), options())
        .unwrap_or_else(|error| panic!("{context}: reopening failed: {error}"));
    let found = read_all(&db).unwrap_or_else(|error| panic!("{context}: {error}"));
    let expected = resolve(seed, &known, pending.as_ref(), &prints(&found), &context);
    // The lengths and CRCs matched; the bytes must too.
    assert!(
        expected == found,
        "{context}: the values differ from the model's bytes"
    );
    db.close()
        .unwrap_or_else(|error| panic!("{context}: closing failed: {error}"));
    check_image(&database_directory(directory), &context);
    check_log(&database_directory(directory), &context);
    figures
}

fn run_kill_cases(first_seed: u64, seeds: u64, kills: u32) {
    let started = Instant::now();
    let mut total = Figures::default();
    for seed in first_seed..first_seed + seeds {
        let figures = kill_case(seed, kills);
        total.kills += figures.kills;
        total.early_kills += figures.early_kills;
        total.child_recoveries += figures.child_recoveries;
        total.durable_acks += figures.durable_acks;
        total.lazy_acks += figures.lazy_acks;
        total.unchanged_acks += figures.unchanged_acks;
    }
    println!(
        "{seeds} seeds: {} kills ({} before the load), {} recoveries by a child and {seeds} by \
         the parent, {} durable, {} lazy and {} unchanging acknowledged commits checked, in \
         {:.1} s",
        total.kills,
        total.early_kills,
        total.child_recoveries,
        total.durable_acks,
        total.lazy_acks,
        total.unchanged_acks,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn killed_processes_keep_every_acknowledged_commit() {
    run_kill_cases(0, 3, 4);
}

#[test]
#[ignore = "long: 50 seeds of 8 kills; run with --ignored"]
fn fifty_seeds_of_killed_processes_long() {
    run_kill_cases(1000, 50, 8);
}
