//! Cluster scenarios with two in-process nodes and a witness directory: bootstrap and seed,
//! planned switchover, failover (lossless and lossy), the mount dial, partitions, and the
//! old active's resynchronisation.

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

mod common;

use bluejet_engine::file::OsFileSystem;
use bluejet_engine::Database;
use bluejet_replication::cluster::heartbeat::{self, Heartbeat};
use bluejet_replication::cluster::requests::request_move;
use bluejet_replication::cluster::witness::{InitError, Witness};
use bluejet_replication::cluster::{MountDial, Node, NodeConfig, Role};
use bluejet_replication::CopyState;
use common::Link;
use std::path::Path;
use std::time::{Duration, Instant};

/// The witness of the cluster in `root`.
fn witness(root: &Path) -> Witness {
    Witness::new(
        std::sync::Arc::new(OsFileSystem),
        &root.join("witness"),
        Duration::ZERO,
    )
}

/// Fast timings for tests.
fn config(name: &str, peer: &str, root: &Path, bootstrap: bool) -> NodeConfig {
    let mut config = NodeConfig::new(
        name,
        &root.join(name),
        peer,
        &root.join(peer),
        &root.join("witness"),
    );
    std::fs::create_dir_all(root.join("witness")).unwrap();
    if bootstrap {
        // `bluejet cluster init`, once: a restart finds the record there.
        match witness(root).init(name, "test") {
            Ok(_) | Err(InitError::Exists(_)) => {}
            Err(error) => panic!("{error}"),
        }
    }
    common::nodes::fast_timings(&mut config);
    config.options.log.generation_bytes = 128 << 10;
    config
}

/// The scenarios depend on timings (leases, heartbeats): they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() > deadline {
            dump_events();
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

thread_local! {
    static ROOT: std::cell::RefCell<Option<std::path::PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// Prints both nodes' event logs (on a failure).
fn dump_events() {
    ROOT.with(|root| {
        if let Some(root) = root.borrow().as_ref() {
            for node in ["a", "b"] {
                let path = root.join(node).join("events.jsonl");
                let (events, _) = bluejet_replication::events::read_events(&OsFileSystem, &path)
                    .unwrap_or_default();
                for event in events {
                    eprintln!(
                        "{node}: {} {:?} {} {:?}",
                        event.kind, event.epoch, event.message, event.generation
                    );
                }
            }
        }
    });
}

fn remember(root: &Path) {
    ROOT.with(|cell| *cell.borrow_mut() = Some(root.to_owned()));
}

fn deliver(node: &Node, first: u32, count: u32) -> u32 {
    let mut delivered = 0;
    for i in first..first + count {
        let stored = node.with_database(|db: &Database| {
            let mut write = db.begin_write()?;
            write.create_table("messages")?;
            write.insert("messages", format!("msg-{i:06}").as_bytes(), &[b'm'; 300])?;
            write.commit()
        });
        if matches!(stored, Some(Ok(_))) {
            delivered += 1;
        }
    }
    delivered
}

fn message_count(node: &Node) -> u64 {
    node.with_database(|db| {
        let read = db.begin_read().unwrap();
        read.open_table("messages").map(|t| t.len()).unwrap_or(0)
    })
    .unwrap()
}

fn healthy(node: &Node) -> bool {
    node.status().copy.is_some_and(|copy| {
        copy.state == CopyState::Healthy && copy.copy_queue == 0 && copy.replay_queue == 0
    })
}

#[test]
fn switchover_is_lossless_and_the_old_active_rejoins() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    remember(root.path());
    let a = Node::start(config("a", "b", root.path(), true)).unwrap();
    wait_until("a active", Duration::from_secs(10), || {
        a.role() == Role::Active
    });
    let b = Node::start(config("b", "a", root.path(), false)).unwrap();
    wait_until("b passive", Duration::from_secs(20), || {
        b.role() == Role::Passive
    });
    assert_eq!(deliver(&a, 0, 300), 300);
    wait_until("b healthy", Duration::from_secs(20), || healthy(&b));

    let fs = OsFileSystem;
    let result = request_move(
        &fs,
        &root.path().join("a"),
        "b",
        "patching a",
        false,
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(result.ok, "{result:?}");
    wait_until("b active", Duration::from_secs(20), || {
        b.role() == Role::Active
    });
    wait_until("a passive", Duration::from_secs(20), || {
        a.role() == Role::Passive
    });
    assert_eq!(message_count(&b), 300);
    assert_eq!(b.failovers()[0].kind, "move");
    assert!(b.failovers()[0].lossless);
    assert_eq!(deliver(&b, 300, 100), 100);
    wait_until("a caught up", Duration::from_secs(20), || healthy(&a));
    // The old active continues from its own database: a planned move never reseeds it
    // (found: it rejoined before b had rolled onto the new timeline and was reseeded).
    let events = std::fs::read_to_string(root.path().join("a/events.jsonl")).unwrap();
    assert!(!events.contains("reseed-needed"), "{events}");
    a.stop();
    b.stop();
}

/// Links of one node: to its peer and to the witness.
struct Links {
    peer: std::sync::Arc<Link>,
    witness: std::sync::Arc<Link>,
}

fn linked(mut config: NodeConfig) -> (NodeConfig, Links) {
    let links = Links {
        peer: Link::new(),
        witness: Link::new(),
    };
    config.peer_fs = links.peer.clone();
    config.witness_fs = links.witness.clone();
    (config, links)
}

/// Starts `a` (active) and `b` (passive, seeded, healthy) with cuttable links.
fn pair(root: &Path, dial_b: MountDial) -> (Node, Links, Node, Links) {
    remember(root);
    let (config_a, links_a) = linked(config("a", "b", root, true));
    let a = Node::start(config_a).unwrap();
    wait_until("a active", Duration::from_secs(10), || {
        a.role() == Role::Active
    });
    let (mut config_b, links_b) = linked(config("b", "a", root, false));
    config_b.dial = dial_b;
    let b = Node::start(config_b).unwrap();
    wait_until("b passive", Duration::from_secs(20), || {
        b.role() == Role::Passive
    });
    wait_until("b healthy", Duration::from_secs(20), || healthy(&b));
    (a, links_a, b, links_b)
}

fn restart_a(root: &Path) -> Node {
    Node::start(config("a", "b", root, true)).unwrap()
}

#[test]
fn failover_with_everything_shipped_is_lossless_and_the_old_active_resynchronizes() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, _links_b) = pair(root.path(), MountDial::Lossless);
    assert_eq!(deliver(&a, 0, 400), 400);
    a.with_database(|db| db.log().roll().unwrap());
    wait_until("b replayed everything", Duration::from_secs(20), || {
        healthy(&b)
    });
    a.kill();
    wait_until("b active", Duration::from_secs(20), || {
        b.role() == Role::Active
    });
    let report = &b.failovers()[0];
    assert_eq!(report.kind, "failover");
    assert!(report.lossless, "{report:?}");
    assert_eq!(message_count(&b), 400);

    let a = restart_a(root.path());
    wait_until("a passive", Duration::from_secs(20), || {
        a.role() == Role::Passive
    });
    assert_eq!(deliver(&b, 400, 100), 100);
    wait_until("a resynchronized", Duration::from_secs(20), || healthy(&a));
    let reports: Vec<_> = std::fs::read_dir(root.path().join("a"))
        .unwrap()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("diverged-"))
        .collect();
    assert_eq!(
        reports.len(),
        1,
        "the old active's divergent files are kept aside"
    );
    a.stop();
    b.stop();
}

#[test]
fn mount_dial_refuses_a_lossy_failover_until_an_operator_forces_it() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, links_b) = pair(root.path(), MountDial::Lossless);
    assert_eq!(deliver(&a, 0, 100), 100);
    wait_until("b healthy", Duration::from_secs(20), || healthy(&b));
    // b loses sight of a: a keeps its lease and goes on alone, b must not take over.
    links_b.peer.set_cut(true);
    assert_eq!(deliver(&a, 100, 1500), 1500);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(b.role(), Role::Passive, "a holds its lease: no failover");
    a.kill();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        b.role(),
        Role::Passive,
        "Lossless refuses to mount with generations lost"
    );
    let events = std::fs::read_to_string(root.path().join("b/events.jsonl")).unwrap();
    assert!(events.contains("mount-refused"), "{events}");
    bluejet_replication::cluster::requests::request_forced_mount(
        &OsFileSystem,
        &root.path().join("b"),
        "accept the loss: the dumpster resubmits",
        Duration::from_secs(30),
    )
    .unwrap();
    wait_until("b active", Duration::from_secs(20), || {
        b.role() == Role::Active
    });
    let report = &b.failovers()[0];
    assert!(!report.lossless && report.forced, "{report:?}");
    assert!(report.lost_generations.is_some() && report.lost_window_micros.is_some());
    b.stop();
}

#[test]
fn partitions_never_leave_two_actives() {
    let _serial = serial();
    for case in ["peer link", "witness", "both"] {
        let root = tempfile::tempdir().unwrap();
        let (a, links_a, b, links_b) = pair(root.path(), MountDial::BestAvailability(12));
        let stop = std::sync::atomic::AtomicBool::new(false);
        let overlap = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                let mut overlap = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if a.status().serving && b.status().serving {
                        overlap += 1;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                overlap
            });
            match case {
                "peer link" => {
                    links_a.peer.set_cut(true);
                    links_b.peer.set_cut(true);
                }
                "witness" => links_a.witness.set_cut(true),
                _ => {
                    links_a.peer.set_cut(true);
                    links_b.peer.set_cut(true);
                    links_a.witness.set_cut(true);
                }
            }
            // Mail keeps coming to both: for 4 s with the nodes' link cut (no failover may
            // happen), else until b has taken over and served for a second (20 s at most).
            let started = Instant::now();
            let mut taken_over: Option<Instant> = None;
            let mut i = 0;
            loop {
                deliver(&a, i, 5);
                deliver(&b, 100_000 + i, 5);
                i += 5;
                if taken_over.is_none() && b.role() == Role::Active {
                    taken_over = Some(Instant::now());
                }
                let done = match case {
                    "peer link" => started.elapsed() > Duration::from_secs(4),
                    _ => {
                        taken_over.is_some_and(|at| at.elapsed() > Duration::from_secs(1))
                            || started.elapsed() > Duration::from_secs(20)
                    }
                };
                if done {
                    break;
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            watcher.join().unwrap()
        });
        assert_eq!(overlap, 0, "{case}: two nodes served at once");
        match case {
            "peer link" => assert_eq!(
                (a.role(), b.role()),
                (Role::Active, Role::Passive),
                "{case}"
            ),
            _ => assert_eq!(
                b.role(),
                Role::Active,
                "{case}: b takes over from a fenced a"
            ),
        }
        if case != "peer link" {
            assert!(!a.status().serving, "{case}: a is fenced");
        }
        if case == "witness" {
            // The fenced event says why the lease could not be renewed.
            let events = std::fs::read_to_string(root.path().join("a/events.jsonl")).unwrap();
            let fenced = events
                .lines()
                .find(|line| line.contains("\"fenced\""))
                .unwrap_or_else(|| panic!("no fenced event: {events}"));
            assert!(
                fenced.contains("renewing it on the witness failed") && fenced.contains("link cut"),
                "{fenced}"
            );
        }
        a.kill();
        b.kill();
    }
}

/// Delivers `ids` through `deliver_once` on the active `node`, recording each in the
/// dumpster once the store acknowledged it.
fn transport(
    node: &Node,
    dumpster: &mut bluejet_replication::dumpster::TransportDumpster,
    ids: std::ops::Range<u32>,
) -> Vec<String> {
    use bluejet_replication::dumpster::deliver_once;
    let mut acknowledged = Vec::new();
    for i in ids {
        let id = format!("<{i:06}@mail.example>");
        let body = format!("Subject: message {i}\r\n\r\n{}", "text ".repeat(60)).into_bytes();
        let delivered = node.with_database(|db| deliver_once(db, "messages", &id, &body));
        if matches!(delivered, Some(Ok(_))) {
            dumpster
                .record(&id, &body, bluejet_engine::log::now_micros())
                .unwrap();
            acknowledged.push(id);
        }
    }
    acknowledged
}

#[test]
fn lossy_failover_with_the_dumpster_loses_no_message_and_delivers_none_twice() {
    let _serial = serial();
    use bluejet_replication::dumpster::deliver_once;
    use bluejet_replication::dumpster::{DumpsterLimits, TransportDumpster};
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, links_b) = pair(root.path(), MountDial::BestAvailability(12));
    let mut dumpster = TransportDumpster::new(None, DumpsterLimits::default()).unwrap();
    let mut acknowledged = transport(&a, &mut dumpster, 0..200);
    wait_until("b healthy", Duration::from_secs(20), || healthy(&b));
    let safe = b.status().copy.unwrap().safe_before_micros;
    dumpster.trim_replayed(safe).unwrap();
    // b stops copying; a goes on alone for a few generations, then dies.
    links_b.peer.set_cut(true);
    acknowledged.extend(transport(&a, &mut dumpster, 200..1400));
    assert_eq!(acknowledged.len(), 1400);
    a.kill();
    wait_until("b active", Duration::from_secs(20), || {
        b.role() == Role::Active
    });
    let report = b.failovers()[0].clone();
    assert!(!report.lossless, "{report:?}");
    let (start, _) = report.lost_window_micros.unwrap();
    let resubmitted = dumpster
        .resubmit(start, |message| {
            b.with_database(|db| deliver_once(db, "messages", &message.message_id, &message.body))
                .expect("b is active")
        })
        .unwrap();
    assert!(resubmitted.stored > 0, "{resubmitted:?}");
    assert_eq!(
        resubmitted.resubmitted,
        resubmitted.stored + resubmitted.duplicates
    );
    // Every acknowledged message is on the new active, exactly once (the table is keyed
    // by message id, and it holds nothing else).
    let stored: Vec<String> = b
        .with_database(|db| {
            let read = db.begin_read().unwrap();
            let table = read.open_table("messages").unwrap();
            table
                .range(..)
                .unwrap()
                .map(|entry| String::from_utf8(entry.unwrap().0).unwrap())
                .collect()
        })
        .unwrap();
    let mut expected = acknowledged.clone();
    expected.sort();
    assert_eq!(stored, expected, "zero lost, zero duplicates");
    // A second resubmission stores nothing.
    let again = dumpster
        .resubmit(start, |message| {
            b.with_database(|db| deliver_once(db, "messages", &message.message_id, &message.body))
                .expect("b is active")
        })
        .unwrap();
    assert_eq!(again.stored, 0);

    // The old active comes back: its generations after the common one are kept aside with
    // a report counting their commits, and it resynchronises as b's passive copy.
    let a = restart_a(root.path());
    wait_until("a passive", Duration::from_secs(20), || {
        a.role() == Role::Passive
    });
    wait_until("a resynchronized", Duration::from_secs(30), || healthy(&a));
    let report_path =
        bluejet_replication::cluster::resync::report_path(&root.path().join("a"), report.epoch);
    let text = std::fs::read_to_string(&report_path).unwrap();
    let diverged: serde_json::Value = serde_json::from_str(&text).unwrap();
    let commits: u64 = diverged["content"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["commits"].as_u64().unwrap())
        .sum();
    assert!(commits > 0, "{text}");
    a.stop();
    b.stop();
}

#[test]
fn without_a_common_generation_the_old_active_is_reseeded() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, _links_b) = pair(root.path(), MountDial::BestAvailability(12));
    assert_eq!(deliver(&a, 0, 300), 300);
    a.with_database(|db| db.log().roll().unwrap());
    wait_until("b healthy", Duration::from_secs(20), || healthy(&b));
    a.kill();
    wait_until("b active", Duration::from_secs(20), || {
        b.role() == Role::Active
    });
    // a's log generations are lost (say, its log disk was replaced): nothing to compare.
    let a_database = root.path().join("a/database");
    for entry in std::fs::read_dir(&a_database).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let a = restart_a(root.path());
    wait_until("a reseeded and healthy", Duration::from_secs(30), || {
        healthy(&a)
    });
    let events = std::fs::read_to_string(root.path().join("a/events.jsonl")).unwrap();
    assert!(events.contains("reseed-needed"), "{events}");
    let aside: Vec<_> = std::fs::read_dir(
        root.path()
            .join(format!("a/diverged-{}", b.failovers()[0].epoch)),
    )
    .unwrap()
    .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
    .collect();
    assert!(aside.contains(&"bluejet.db".to_owned()), "{aside:?}");
    assert_eq!(deliver(&b, 300, 50), 50);
    wait_until("a caught up", Duration::from_secs(20), || healthy(&a));
    a.stop();
    b.stop();
}

/// The peer's directory seen through a link on which some files cannot be read (an
/// `E00.log` the share refuses, a heartbeat that stopped arriving), everything else as the
/// link has it.
#[derive(Debug, Default)]
struct Veiled {
    link: std::sync::Arc<Link>,
    hidden: std::sync::Mutex<Vec<&'static str>>,
}

impl Veiled {
    fn hide(&self, names: &[&'static str]) {
        self.hidden.lock().unwrap().extend_from_slice(names);
    }

    fn check(&self, path: &Path) -> std::io::Result<()> {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        match self.hidden.lock().unwrap().contains(&name) {
            true => Err(std::io::Error::other("unreadable on the share")),
            false => Ok(()),
        }
    }
}

impl bluejet_engine::file::FileSystem for Veiled {
    fn open(
        &self,
        path: &Path,
        mode: bluejet_engine::file::OpenMode,
    ) -> std::io::Result<std::sync::Arc<dyn bluejet_engine::file::FileHandle>> {
        self.check(path)?;
        self.link.open(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.link.rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.link.remove(path)
    }
    fn list(&self, directory: &Path) -> std::io::Result<Vec<String>> {
        self.link.list(directory)
    }
    fn sync_directory(&self, directory: &Path) -> std::io::Result<()> {
        self.link.sync_directory(directory)
    }
    fn create_directory(&self, directory: &Path) -> std::io::Result<()> {
        self.link.create_directory(directory)
    }
    fn exists(&self, path: &Path) -> bool {
        self.link.exists(path)
    }
    fn lock_exclusive(
        &self,
        path: &Path,
        holder: &bluejet_engine::file::Holder,
    ) -> std::io::Result<bluejet_engine::file::LockAttempt> {
        self.link.lock_exclusive(path, holder)
    }
    fn probe_lock(&self, path: &Path) -> std::io::Result<bluejet_engine::file::LockProbe> {
        self.link.probe_lock(path)
    }
}

/// Finding 2 of issue 14: with the old active's `E00.log` unreadable, the loss was measured
/// against the generation of its last heartbeat or renewal. That generation rolled and was
/// shipped, commits went into the next one, and the failover called itself lossless: the
/// dumpster was never asked to resubmit them.
#[test]
fn an_unreadable_current_generation_makes_the_failover_lossy_and_the_dumpster_resubmits() {
    let _serial = serial();
    use bluejet_replication::dumpster::deliver_once;
    use bluejet_replication::dumpster::{DumpsterLimits, TransportDumpster};
    let root = tempfile::tempdir().unwrap();
    remember(root.path());
    let (config_a, links_a) = linked(config("a", "b", root.path(), true));
    let a = Node::start(config_a).unwrap();
    wait_until("a active", Duration::from_secs(10), || {
        a.role() == Role::Active
    });
    let veiled = std::sync::Arc::new(Veiled::default());
    let mut config_b = config("b", "a", root.path(), false);
    config_b.dial = MountDial::BestAvailability(12);
    config_b.peer_fs = veiled.clone();
    let b = Node::start(config_b).unwrap();
    wait_until("b passive", Duration::from_secs(20), || {
        b.role() == Role::Passive
    });
    let mut dumpster = TransportDumpster::new(None, DumpsterLimits::default()).unwrap();
    let mut acknowledged = transport(&a, &mut dumpster, 0..100);
    wait_until("b healthy", Duration::from_secs(20), || healthy(&b));
    dumpster
        .trim_replayed(b.status().copy.unwrap().safe_before_micros)
        .unwrap();

    // b's last word from a: a heartbeat and a renewal in a's current generation G. Then a's
    // renewals fail (its lease still runs), its heartbeats and `E00.log` no longer reach b.
    veiled.hide(&["heartbeat.json", "E00.log"]);
    links_a.witness.set_cut(true);
    // G closes (b ships it: closed generations still reach it), commits go into G + 1.
    a.with_database(|db| db.log().roll().unwrap()).unwrap();
    let late = transport(&a, &mut dumpster, 100..120);
    assert_eq!(late.len(), 20, "a's lease was still valid");
    acknowledged.extend(late);
    a.kill();

    wait_until("b active", Duration::from_secs(20), || {
        b.role() == Role::Active
    });
    let report = b.failovers()[0].clone();
    assert!(
        !report.lossless,
        "commits after the last known end: {report:?}"
    );
    assert!(report.current_unread, "{report:?}");
    let (start, _) = report
        .lost_window_micros
        .expect("a lossy failover has a window");
    let resubmitted = dumpster
        .resubmit(start, |message| {
            b.with_database(|db| deliver_once(db, "messages", &message.message_id, &message.body))
                .expect("b is active")
        })
        .unwrap();
    assert_eq!(resubmitted.stored, 20, "{resubmitted:?}");
    let stored: Vec<String> = b
        .with_database(|db| {
            let read = db.begin_read().unwrap();
            let table = read.open_table("messages").unwrap();
            table
                .range(..)
                .unwrap()
                .map(|entry| String::from_utf8(entry.unwrap().0).unwrap())
                .collect()
        })
        .unwrap();
    let mut expected = acknowledged;
    expected.sort();
    assert_eq!(stored, expected, "zero lost, zero duplicates");
    b.stop();
}

/// Finding 1: an empty witness directory (an unmounted share's mount point) gave a second
/// active at epoch 1. A node refuses a witness without a record, and one older than the
/// highest epoch it has seen; its log refuses a timeline older than its newest generation's.
#[test]
fn a_witness_without_a_record_or_older_than_seen_is_refused() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    remember(root);
    std::fs::create_dir_all(root.join("witness")).unwrap();
    let error = Node::start(config("a", "b", root, false))
        .err()
        .expect("a node started against an empty witness directory");
    assert!(
        error.to_string().contains("holds no witness record"),
        "{error}"
    );
    // The cluster goes through epochs 1..3 and a holds the database at epoch 3.
    let witness = witness(root);
    witness.init("a", "test").unwrap();
    let lease = Duration::from_millis(800);
    witness.transfer("a", 1, "b", lease, "move").unwrap();
    witness.transfer("b", 2, "a", lease, "move back").unwrap();
    let a = Node::start(config("a", "b", root, false)).unwrap();
    wait_until("a active at epoch 3", Duration::from_secs(10), || {
        a.status().epoch == 3 && a.status().serving
    });
    a.stop();
    // The share is gone and someone initialises the empty mount point again.
    std::fs::rename(root.join("witness"), root.join("witness-real")).unwrap();
    std::fs::create_dir_all(root.join("witness")).unwrap();
    witness.init("a", "by mistake").unwrap();
    let error = Node::start(config("a", "b", root, false))
        .err()
        .expect("a node started against a witness older than it has seen");
    // A new `cluster init` draws a new identity: refused for that first (the epoch check
    // would refuse it too: epoch 1 is older than 3).
    assert!(error.to_string().contains("belongs to cluster"), "{error}");
    // Even without its record of the epoch seen, a never serves: its log is on timeline 3.
    std::fs::remove_file(root.join("a").join("epoch.json")).unwrap();
    let a = Node::start(config("a", "b", root, false)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_ne!(a.role(), Role::Active);
    assert!(!a.status().serving);
    a.stop();
    let (events, _) =
        bluejet_replication::events::read_events(&OsFileSystem, &root.join("a/events.jsonl"))
            .unwrap();
    assert!(
        events
            .iter()
            .any(|event| event.message.contains("timelines never go back")),
        "{events:?}"
    );
}

/// Finding 1: the engine refuses to continue a stream on a timeline older than its newest
/// generation's (it silently continued on the newer one).
#[test]
fn the_log_refuses_an_older_timeline() {
    let root = tempfile::tempdir().unwrap();
    let mut options = bluejet_engine::Options::default();
    options.log.timeline = 3;
    options.log.fence_timeline = true;
    Database::open(root.path(), options.clone())
        .unwrap()
        .close()
        .unwrap();
    options.log.timeline = 1;
    match Database::open(root.path(), options.clone()) {
        Err(bluejet_engine::DbError::Log(bluejet_engine::LogError::OlderTimeline {
            newest: 3,
            requested: 1,
            ..
        })) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    // Tools that only read or repair open any timeline.
    options.log.fence_timeline = false;
    Database::open(root.path(), options)
        .unwrap()
        .close()
        .unwrap();
}

/// Finding 1: an active that sees its peer's heartbeat say active at a higher epoch stops
/// serving at once, and does not come back at its older epoch.
#[test]
fn a_peer_active_at_a_higher_epoch_fences_the_active() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    remember(root);
    let a = Node::start(config("a", "b", root, true)).unwrap();
    wait_until("a serving", Duration::from_secs(10), || a.status().serving);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, instance) = (stop.clone(), root.join("b"));
        std::fs::create_dir_all(&instance).unwrap();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let beat = Heartbeat {
                    node: "b".into(),
                    role: Role::Active,
                    epoch: 5,
                    serving: true,
                    end: Default::default(),
                    current_started_micros: 0,
                    needs_seed: false,
                    time_micros: bluejet_engine::log::now_micros(),
                    retention: Vec::new(),
                    log_warning: None,
                    transport: None,
                    block_mode: None,
                    synchronous: None,
                };
                heartbeat::write(&OsFileSystem, &instance, &beat).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    wait_until("a fenced", Duration::from_secs(2), || !a.status().serving);
    std::thread::sleep(Duration::from_millis(500));
    assert_ne!(a.role(), Role::Active, "a came back at its older epoch");
    assert!(deliver(&a, 0, 1) == 0);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    a.stop();
    let (events, _) =
        bluejet_replication::events::read_events(&OsFileSystem, &root.join("a/events.jsonl"))
            .unwrap();
    assert!(
        events
            .iter()
            .any(|event| event.kind == "demoted" && event.message.contains("active at epoch 5")),
        "{events:?}"
    );
}

#[test]
fn an_expired_forced_mount_is_removed_and_never_forces_a_later_failover() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, links_b) = pair(root.path(), MountDial::Lossless);
    assert_eq!(deliver(&a, 0, 100), 100);
    wait_until("b healthy", Duration::from_secs(20), || healthy(&b));
    // A forced mount nobody withdrew (its requester was killed): valid for 300 ms from when
    // b first sees it, on b's own clock.
    let request = bluejet_replication::cluster::requests::request_forced_mount(
        &OsFileSystem,
        &root.path().join("b"),
        "left behind",
        Duration::from_millis(300),
    )
    .unwrap();
    assert_ne!(request.id, 0);
    let path = root.path().join("b/requests/mount.json");
    // The event follows the removal: wait for both (the test raced the event under load).
    let events_path = root.path().join("b/events.jsonl");
    let expired = || {
        std::fs::read_to_string(&events_path)
            .unwrap()
            .contains("request-expired")
    };
    wait_until("the request expired", Duration::from_secs(10), || {
        !path.exists() && expired()
    });
    let events = std::fs::read_to_string(&events_path).unwrap();
    assert!(!events.contains("mount-forced"), "{events}");
    // The lossy failover that follows is refused by the dial: nothing forces it any more.
    links_b.peer.set_cut(true);
    assert_eq!(deliver(&a, 100, 1500), 1500);
    std::thread::sleep(Duration::from_millis(1500));
    a.kill();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        b.role(),
        Role::Passive,
        "the expired request forced nothing"
    );
    let events = std::fs::read_to_string(root.path().join("b/events.jsonl")).unwrap();
    assert!(events.contains("mount-refused"), "{events}");
    b.stop();
}

/// Found by an adversarial test: a node paused (SIGSTOP) while a forced mount was
/// requested saw the request for the first time long after its requester had given up, and
/// carried it out 48 s later. A request also expires by the age its requester stamped.
#[test]
fn a_request_older_than_its_timeout_is_dropped_at_first_sight() {
    use bluejet_replication::cluster::requests::MountRequest;
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, _links_b) = pair(root.path(), MountDial::Lossless);
    let requests = root.path().join("b/requests");
    std::fs::create_dir_all(&requests).unwrap();
    let path = requests.join("mount.json");
    let request = MountRequest {
        id: 9,
        force: true,
        comment: "written 40 s ago, valid for 30 s".into(),
        timeout_ms: 30_000,
        created_micros: bluejet_engine::log::now_micros() - 40_000_000,
    };
    bluejet_replication::sealed::write(&OsFileSystem, &path, &request).unwrap();
    let events_path = root.path().join("b/events.jsonl");
    let expired = || {
        std::fs::read_to_string(&events_path)
            .unwrap()
            .contains("request-expired")
    };
    wait_until("the request dropped", Duration::from_secs(3), || {
        !path.exists() && expired()
    });
    let events = std::fs::read_to_string(&events_path).unwrap();
    assert!(!events.contains("mount-forced"), "{events}");
    a.stop();
    b.stop();
}

/// Found by an adversarial test: a copy an operator had suspended still failed over
/// automatically. As ESE's activation-suspended copy, it is not activated automatically
/// (a forced mount still may); resumed, it fails over.
#[test]
fn a_suspended_copy_is_not_activated_automatically() {
    use bluejet_replication::control::Control;
    use bluejet_replication::layout::ReplicaLayout;
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, _links_b) = pair(root.path(), MountDial::BestAvailability(12));
    assert_eq!(deliver(&a, 0, 20), 20);
    let layout = ReplicaLayout::new(&root.path().join("b"));
    Control::set(&OsFileSystem, &layout, true, "maintenance").unwrap();
    a.kill();
    std::thread::sleep(Duration::from_millis(3_000));
    assert_eq!(b.role(), Role::Passive, "a suspended copy was activated");
    let events = std::fs::read_to_string(root.path().join("b/events.jsonl")).unwrap();
    assert!(
        events.contains("the copy is suspended (maintenance)"),
        "{events}"
    );
    Control::set(&OsFileSystem, &layout, false, "done").unwrap();
    wait_until("b active once resumed", Duration::from_secs(20), || {
        b.role() == Role::Active
    });
    b.stop();
}

/// Found by an adversarial test: the seed of a passive deleted the node's `epoch.json`,
/// and with it its cluster identity and the highest epoch it had seen. A seed keeps the
/// node's own files.
#[test]
fn a_seeded_passive_keeps_its_cluster_identity() {
    use bluejet_replication::cluster::seen_epoch::SeenEpoch;
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, _links_b) = pair(root.path(), MountDial::Lossless);
    let cluster = witness(root.path()).read_initialized().unwrap().cluster;
    let seen = SeenEpoch::load(std::sync::Arc::new(OsFileSystem), &root.path().join("b"));
    assert_eq!(seen.unwrap().cluster(), Some(cluster));
    a.stop();
    b.stop();
}

/// The digest of the passive copy kept in `instance` (the node stopped).
fn passive_digest(instance: &Path) -> bluejet_replication::verify::ContentDigest {
    let passive = bluejet_engine::PassiveDatabase::open(
        &instance.join("database"),
        &instance.join("logs"),
        bluejet_engine::Options::default(),
    )
    .unwrap();
    let digest = bluejet_replication::verify::digest(&passive.begin_read().unwrap()).unwrap();
    drop(passive);
    digest
}

/// Issue 14, finding 9: a fenced roll leaves an empty generation after the last one shipped;
/// the old active's clean stop then checkpoints inside it. Nothing was committed after the
/// common generation, so the old active resynchronises (no reseed), and its report lists no
/// generation as divergent.
#[test]
fn an_empty_generation_after_the_common_one_is_no_divergence() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, links_a, b, _links_b) = pair(root.path(), MountDial::BestAvailability(12));
    assert_eq!(deliver(&a, 0, 300), 300);
    a.with_database(|db| db.log().roll().unwrap());
    wait_until("b replayed everything", Duration::from_secs(20), || {
        healthy(&b)
    });
    // a loses the witness: fenced, it rolls (a generation without commits); b takes over
    // with everything a committed.
    links_a.witness.set_cut(true);
    wait_until("b active", Duration::from_secs(20), || {
        b.role() == Role::Active
    });
    assert_eq!(message_count(&b), 300, "{:?}", b.failovers());
    let events = std::fs::read_to_string(root.path().join("a/events.jsonl")).unwrap();
    assert!(events.contains("fenced"), "{events}");
    // a stops (its clean close checkpoints past the fenced roll) and comes back.
    a.stop();
    let a = restart_a(root.path());
    wait_until("a passive", Duration::from_secs(20), || {
        a.role() == Role::Passive
    });
    assert_eq!(deliver(&b, 300, 100), 100);
    let last = b
        .with_database(|db| {
            db.log().roll().unwrap();
            db.log().current_header().generation - 1
        })
        .unwrap();
    wait_until("a resynchronized", Duration::from_secs(30), || {
        healthy(&a)
            && a.status().copy.is_some_and(|copy| {
                copy.last_replayed
                    .is_some_and(|mark| mark.generation >= last)
            })
    });
    let events = std::fs::read_to_string(root.path().join("a/events.jsonl")).unwrap();
    assert!(!events.contains("reseed-needed"), "{events}");
    assert!(events.contains("resynchronizing"), "{events}");
    let epoch = b.failovers()[0].epoch;
    let path = bluejet_replication::cluster::resync::report_path(&root.path().join("a"), epoch);
    let text = std::fs::read_to_string(&path).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let common = report["content"]["common_generation"].as_u64().unwrap();
    let divergent = report["content"]["files"].as_array().unwrap();
    assert!(divergent.is_empty(), "nothing diverged: {text}");
    for file in report["content"]["without_commits"].as_array().unwrap() {
        assert!(
            file["generation"].as_u64().is_none_or(|g| g > common),
            "{text}"
        );
    }
    // The copy holds exactly b's content.
    let expected = b
        .with_database(|db| bluejet_replication::verify::digest(&db.begin_read().unwrap()))
        .unwrap()
        .unwrap();
    a.stop();
    b.stop();
    assert_eq!(passive_digest(&root.path().join("a")), expected);
}

/// Found by an adversarial operator: a forced mount whose requester was killed while the node
/// was down was carried out when the node started, past a lossless dial. A request already
/// in place when a node starts is dropped, with an event.
#[test]
fn a_request_left_while_the_node_was_down_is_dropped_at_start() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, _links_b) = pair(root.path(), MountDial::Lossless);
    b.stop();
    bluejet_replication::cluster::requests::request_forced_mount(
        &OsFileSystem,
        &root.path().join("b"),
        "left behind by a killed requester",
        Duration::from_secs(30),
    )
    .unwrap();
    let mut config_b = config("b", "a", root.path(), false);
    config_b.dial = MountDial::Lossless;
    let b = Node::start(config_b).unwrap();
    assert!(!root.path().join("b/requests/mount.json").exists());
    let events = std::fs::read_to_string(root.path().join("b/events.jsonl")).unwrap();
    assert!(events.contains("request-dropped"), "{events}");
    assert!(!events.contains("mount-forced"), "{events}");
    b.stop();
    a.stop();
}

/// Found by the cluster simulation: a passive that took the witness in a failover and
/// crashed (or failed to open its copy) before reporting, reported on restart a lossless
/// move, and the dumpster was never asked to resubmit what the failover lost. The
/// measurement is persisted before the witness is asked, and the restarted owner reports it.
#[test]
fn a_failover_interrupted_after_taking_the_witness_reports_its_loss_on_restart() {
    let report = interrupted_failover(true);
    assert_eq!(report.lost_generations, Some((7, 7)));
    assert_eq!(report.lost_window_micros, Some((1_000, 2_000)));
}

/// Found by an adversarial test: with the measurement gone (removed by hand, or by the old
/// error path after a witness error that followed the epoch's creation), the restarted
/// owner reported a lossless move although the witness says a failover took its epoch.
/// Such a failover is reported lossy, with a window from 0 (the whole dumpster).
#[test]
fn a_failover_whose_measurement_is_gone_is_reported_lossy() {
    let report = interrupted_failover(false);
    assert_eq!(report.lost_generations, None);
    let (start, _) = report.lost_window_micros.expect("a window");
    assert_eq!(start, 0);
}

/// b takes the witness in a failover from a (as its node would, with a measurement on
/// disk if `measured`) while stopped; then b starts: its report.
fn interrupted_failover(write_measurement: bool) -> bluejet_replication::cluster::FailoverReport {
    use bluejet_replication::cluster::loss::Loss;
    use bluejet_replication::cluster::measured::{self, Measured};
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, _links_b) = pair(root.path(), MountDial::BestAvailability(12));
    assert_eq!(deliver(&a, 0, 50), 50);
    let closed = a.with_database(|db| db.log().roll().unwrap()).unwrap();
    wait_until("b replayed the commits", Duration::from_secs(20), || {
        b.status().copy.is_some_and(|copy| {
            (copy.last_replayed.as_ref()).is_some_and(|mark| mark.generation >= closed)
        })
    });
    b.stop();
    a.kill();
    // What b's failover did before it stopped: it measured, persisted, took the witness.
    let epoch = witness(root.path()).read_initialized().unwrap().epoch;
    let loss = Loss {
        lost: Some((7, 7)),
        window: Some((1_000, 2_000)),
        current_unread: false,
        from: None,
    };
    let measurement = Measured::new("a", epoch, &loss, false, 42);
    let instance_b = root.path().join("b");
    if write_measurement {
        measured::write(&OsFileSystem, &instance_b, &measurement).unwrap();
    }
    // One witness, as b's process would hold it: a's lease is over once b has seen its
    // record unchanged for the lease plus the margin.
    let seen_by_b = witness(root.path());
    wait_until("a's lease ended", Duration::from_secs(10), || {
        (seen_by_b)
            .acquire("b", Duration::from_millis(800), &measurement.comment)
            .is_ok()
    });

    let b = Node::start(config("b", "a", root.path(), false)).unwrap();
    wait_until("b active", Duration::from_secs(20), || {
        b.role() == Role::Active
    });
    let report = b.failovers()[0].clone();
    assert_eq!(report.kind, "failover", "{report:?}");
    assert!(!report.lossless, "{report:?}");
    assert!(
        !measured::path(&instance_b).exists(),
        "removed once reported"
    );
    assert_eq!(message_count(&b), 50);
    b.stop();
    report
}

/// A node of another cluster pointed at this witness (a copied configuration, a share
/// swapped under it) could renew as the owner of the same name and block a failover. `cluster
/// init` draws an identity that every epoch carries; a node keeps the first it sees and
/// refuses a witness of another cluster.
#[test]
fn a_node_of_another_cluster_refuses_the_witness() {
    use bluejet_replication::cluster::seen_epoch::SeenEpoch;
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    // Node a of another cluster ran once against that cluster's witness: it is bound to it.
    std::fs::create_dir_all(other.path().join("witness")).unwrap();
    let foreign = witness(other.path())
        .init("a", "the other cluster")
        .unwrap();
    assert_eq!(foreign.cluster.len(), 32, "{foreign:?}");
    let instance = root.path().join("a");
    std::fs::create_dir_all(&instance).unwrap();
    let seen = SeenEpoch::load(std::sync::Arc::new(OsFileSystem), &instance).unwrap();
    seen.check_witness(1, &foreign.cluster, &other.path().join("witness"))
        .unwrap();
    assert_eq!(seen.cluster().as_deref(), Some(foreign.cluster.as_str()));
    // Within one cluster, epochs still never go back (a witness restored from a backup).
    seen.check_witness(5, &foreign.cluster, &other.path().join("witness"))
        .unwrap();
    let older = seen.check_witness(3, &foreign.cluster, &other.path().join("witness"));
    let older = older.unwrap_err().to_string();
    assert!(older.contains("older than epoch 5"), "{older}");

    // This cluster's witness: another identity, which every later epoch keeps.
    let error = Node::start(config("a", "b", root.path(), true))
        .err()
        .expect("a node of another cluster must not start");
    let message = error.to_string();
    assert!(message.contains("belongs to cluster"), "{message}");
    let ours = witness(root.path()).read_initialized().unwrap();
    assert_ne!(ours.cluster, foreign.cluster);
    let moved = witness(root.path())
        .transfer("a", 1, "b", Duration::from_secs(1), "move")
        .unwrap();
    assert_eq!((moved.epoch, &moved.cluster), (2, &ours.cluster));

    // A fresh instance binds to this cluster and starts.
    std::fs::remove_file(SeenEpoch::path(&instance)).unwrap();
    let b = Node::start(config("b", "a", root.path(), false)).unwrap();
    let seen_b = SeenEpoch::load(std::sync::Arc::new(OsFileSystem), &root.path().join("b"));
    assert_eq!(seen_b.unwrap().cluster(), Some(ours.cluster.clone()));
    b.stop();
}

#[test]
fn an_owner_without_its_database_never_starts_an_empty_one() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    remember(root.path());
    let a = Node::start(config("a", "b", root.path(), true)).unwrap();
    wait_until("a active", Duration::from_secs(10), || {
        a.role() == Role::Active
    });
    assert_eq!(deliver(&a, 0, 20), 20);
    // The lease's renewal records the log's end at the witness.
    wait_until("a renewed", Duration::from_secs(10), || {
        witness(root.path())
            .read_initialized()
            .is_ok_and(|record| record.owner_end.is_some())
    });
    // A second node with the owner's name, in another instance directory (a copied
    // configuration), and the owner itself restarted on a wiped instance: neither serves.
    let mut twin = config("a", "b", root.path(), false);
    twin.instance = root.path().join("twin");
    let twin = Node::start(twin).unwrap();
    a.stop();
    std::fs::rename(root.path().join("a"), root.path().join("a.lost")).unwrap();
    let wiped = Node::start(config("a", "b", root.path(), false)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    for (node, instance) in [(&twin, "twin"), (&wiped, "a")] {
        assert_eq!(node.role(), Role::Joining, "{instance}");
        let database = root
            .path()
            .join(instance)
            .join("database")
            .join("bluejet.db");
        assert!(!database.exists(), "{instance}: an empty database was made");
        let events = std::fs::read_to_string(root.path().join(instance).join("events.jsonl"));
        assert!(events.unwrap().contains("no-database"), "{instance}");
    }
    twin.stop();
    wiped.stop();
}

/// Two processes configured with the same name, started at the same instant after `cluster
/// init` (before any renewal recorded a log's end): the witness's lease names the process
/// holding it, and the other is refused until that lease is over (found by an adversarial
/// round: both served at epoch 1).
#[test]
fn two_processes_with_one_name_never_both_hold_it() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    remember(root.path());
    let first = config("a", "b", root.path(), true);
    let mut second = config("a", "b", root.path(), false);
    second.instance = root.path().join("twin");
    let (one, two) = (Node::start(first).unwrap(), Node::start(second).unwrap());
    let started = Instant::now();
    let mut overlaps = 0;
    let mut served = [0, 0];
    while started.elapsed() < Duration::from_secs(5) {
        let serving = [one.status().serving, two.status().serving];
        overlaps += usize::from(serving[0] && serving[1]);
        for (count, now) in served.iter_mut().zip(serving) {
            *count += usize::from(now);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("served {served:?}, overlapping samples {overlaps}");
    assert_eq!(overlaps, 0, "{served:?}");
    assert!(
        served.iter().filter(|&&count| count > 0).count() <= 1,
        "{served:?}"
    );
    one.stop();
    two.stop();
}

/// An owner restarted on an older copy of its database (a copy of its instance taken
/// earlier, a restored backup) never serves it: its log ends before the witness's record
/// of the owner's log (found by an adversarial round: a copied instance served).
#[test]
fn an_owner_on_an_older_copy_of_its_database_never_serves_it() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    remember(root.path());
    let a = Node::start(config("a", "b", root.path(), true)).unwrap();
    wait_until("a active", Duration::from_secs(10), || a.status().serving);
    assert_eq!(deliver(&a, 0, 20), 20);
    a.stop();
    copy_dir(&root.path().join("a"), &root.path().join("a.old"));
    let a = Node::start(config("a", "b", root.path(), false)).unwrap();
    wait_until("a active again", Duration::from_secs(10), || {
        a.status().serving
    });
    assert_eq!(deliver(&a, 100, 200), 200);
    // Its lease renewed with the log's end past the copy's.
    std::thread::sleep(Duration::from_millis(500));
    a.stop();
    std::fs::rename(root.path().join("a"), root.path().join("a.new")).unwrap();
    std::fs::rename(root.path().join("a.old"), root.path().join("a")).unwrap();
    let old = Node::start(config("a", "b", root.path(), false)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!old.status().serving);
    assert_eq!(old.role(), Role::Joining);
    let events = std::fs::read_to_string(root.path().join("a").join("events.jsonl")).unwrap();
    assert!(events.contains("older-database"), "{events}");
    old.stop();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "lock" && entry.file_name() != "node.lock" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The owner's own instance restarted holds its name again at once (its identity is the
/// lease's holder): no failover (found by an adversarial round, when the holder was each
/// process's: every restart of the active was a failover, and a clean one then a reseed).
#[test]
fn an_owner_restarted_on_its_instance_holds_its_name_at_once() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    remember(root.path());
    let a = Node::start(config("a", "b", root.path(), true)).unwrap();
    wait_until("a active", Duration::from_secs(10), || a.status().serving);
    let b = Node::start(config("b", "a", root.path(), false)).unwrap();
    wait_until("b healthy", Duration::from_secs(20), || healthy(&b));
    a.kill();
    let a = Node::start(config("a", "b", root.path(), false)).unwrap();
    wait_until("a serving again", Duration::from_secs(10), || {
        a.status().serving
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.status().epoch, 1);
    assert!(a.status().serving);
    assert_eq!(b.role(), Role::Passive);
    b.stop();
    a.stop();
}

/// Found by an adversarial round: a copy Failed by a content mismatch took the witness at
/// its failover, then could not activate: nothing served. It is refused before the witness.
#[test]
fn a_copy_whose_content_differs_is_not_failed_over_to() {
    use bluejet_replication::layout::ReplicaLayout;
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (a, _links_a, b, _links_b) = pair(root.path(), MountDial::BestAvailability(12));
    a.with_database(|db| {
        let mut write = db.begin_write()?;
        write.create_table("marker")?;
        write.insert("marker", b"m", b"marker-value-0123456789")?;
        write.commit()
    })
    .unwrap()
    .unwrap();
    assert_eq!(deliver(&a, 0, 20), 20);
    a.with_database(|db| db.log().roll().unwrap());
    wait_until("b replayed everything", Duration::from_secs(20), || {
        healthy(&b)
    });
    b.stop();
    let layout = ReplicaLayout::new(&root.path().join("b"));
    let page_size = bluejet_engine::Options::default().page_size;
    common::damage::flip_value(
        &layout.database().join(bluejet_engine::DATABASE_FILE_NAME),
        b"marker-value-0123456789",
        page_size,
    );
    let mut config_b = config("b", "a", root.path(), false);
    config_b.dial = MountDial::BestAvailability(12);
    config_b.replica.replay.recount_interval = Some(Duration::ZERO);
    let b = Node::start(config_b).unwrap();
    assert_eq!(deliver(&a, 20, 20), 20);
    a.with_database(|db| db.log().roll().unwrap());
    wait_until("b Failed", Duration::from_secs(20), || {
        b.status().copy.is_some_and(|copy| {
            copy.state == CopyState::Failed && copy.message.contains("content differs")
        })
    });
    a.kill();
    std::thread::sleep(Duration::from_millis(3_000));
    assert_ne!(
        b.role(),
        Role::Active,
        "a copy whose content differs was activated"
    );
    let events = std::fs::read_to_string(root.path().join("b/events.jsonl")).unwrap();
    assert!(
        events.contains("mount refused: the copy cannot be brought up to date"),
        "{events}"
    );
    let record = witness(root.path()).read().unwrap().unwrap();
    assert_eq!(record.owner, "a", "the witness was left to the old owner");
    // Not even by force: it would hold the witness without serving, or serve content known
    // to differ from the active's.
    bluejet_replication::cluster::requests::request_forced_mount(
        &OsFileSystem,
        &root.path().join("b"),
        "the only copy left",
        Duration::from_secs(30),
    )
    .unwrap();
    wait_until("the forced mount refused", Duration::from_secs(10), || {
        std::fs::read_to_string(root.path().join("b/events.jsonl"))
            .unwrap()
            .contains("mount refused although forced")
    });
    assert_ne!(b.role(), Role::Active);
    let record = witness(root.path()).read().unwrap().unwrap();
    assert_eq!(record.owner, "a");
    b.stop();
}
