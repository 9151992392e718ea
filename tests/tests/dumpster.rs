//! The transport dumpster: limits, trimming, persistence with a damaged tail, and a lossy
//! failover resubmitted into a real database without losses or double deliveries.

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

use bluejet_engine::{Database, Options};
use bluejet_replication::dumpster::{
    deliver_once, Delivery, DumpsterLimits, TransportDumpster, CLOCK_MARGIN_MICROS,
    DUMPSTER_FILE_NAME, RESUBMIT_MARGIN_MICROS,
};
use bluejet_replication::ReplError;
use std::convert::Infallible;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

const BASE: u64 = 1_700_000_000_000_000;
const SECOND: u64 = 1_000_000;

fn limits(max_bytes: u64, max_age_secs: u64) -> DumpsterLimits {
    DumpsterLimits {
        max_bytes,
        max_age: Duration::from_secs(max_age_secs),
    }
}

fn id(i: u64) -> String {
    format!("<{i:06}@bluejet.test>")
}

fn body(i: u64) -> Vec<u8> {
    format!("message {i} ")
        .repeat(1 + (i % 7) as usize)
        .into_bytes()
}

fn ids(dumpster: &TransportDumpster) -> Vec<String> {
    dumpster.messages().map(|m| m.message_id.clone()).collect()
}

/// Counts what `resubmit` hands out, storing nothing.
fn count_resubmit(dumpster: &TransportDumpster, start: u64) -> Vec<String> {
    let mut seen = Vec::new();
    dumpster
        .resubmit(start, |message| {
            seen.push(message.message_id.clone());
            Ok::<_, Infallible>(Delivery::Stored)
        })
        .unwrap();
    seen
}

#[test]
fn defaults_are_18_mib_and_7_days() {
    let defaults = DumpsterLimits::default();
    assert_eq!(defaults.max_bytes, 18 << 20);
    assert_eq!(defaults.max_age, Duration::from_secs(7 * 24 * 3600));
}

#[test]
fn size_limit_evicts_the_oldest() {
    let mut dumpster = TransportDumpster::new(None, limits(1000, 3600)).unwrap();
    let id_len = id(0).len() as u64;
    for i in 0..10 {
        dumpster.record(&id(i), &[b'x'; 200], BASE + i).unwrap();
    }
    let stats = dumpster.stats();
    let per_message = 200 + id_len;
    assert_eq!(stats.messages as u64, 1000 / per_message);
    assert!(stats.bytes <= 1000);
    assert_eq!(ids(&dumpster).last().unwrap(), &id(9));
    // Evicted while not known replayed: possible losses.
    assert_eq!(stats.possibly_lost, 10 - stats.messages as u64);
    assert_eq!(dumpster.possibly_lost().next().unwrap().message_id, id(0));
}

#[test]
fn age_limit_evicts_messages_older_than_the_newest_delivery_by_max_age() {
    let mut dumpster = TransportDumpster::new(None, limits(1 << 20, 10)).unwrap();
    for i in 0..5 {
        dumpster
            .record(&id(i), b"body", BASE + i * 4 * SECOND)
            .unwrap();
    }
    // Newest at 16 s: 10 s keeps those delivered at 8, 12, 16 s (6 s is too old).
    assert_eq!(ids(&dumpster), vec![id(2), id(3), id(4)]);
    dumpster.evict_expired(BASE + 25 * SECOND).unwrap();
    assert_eq!(ids(&dumpster), vec![id(4)]);
    assert_eq!(dumpster.stats().possibly_lost, 4);
}

#[test]
fn a_message_larger_than_the_limit_is_not_kept_and_counts_as_possibly_lost() {
    let mut dumpster = TransportDumpster::new(None, limits(100, 3600)).unwrap();
    dumpster.record(&id(1), &[0; 500], BASE).unwrap();
    assert_eq!(dumpster.stats().messages, 0);
    assert_eq!(dumpster.stats().possibly_lost, 1);
    // Once the passive reports it replayed (past the clock margin), it was not lost after
    // all.
    dumpster.trim_replayed(BASE + CLOCK_MARGIN_MICROS).unwrap();
    assert_eq!(dumpster.stats().possibly_lost, 1, "within the margin");
    dumpster
        .trim_replayed(BASE + CLOCK_MARGIN_MICROS + 1)
        .unwrap();
    assert_eq!(dumpster.stats().possibly_lost, 0);
}

#[test]
fn bad_messages_are_typed_errors() {
    let mut dumpster = TransportDumpster::new(None, DumpsterLimits::default()).unwrap();
    let error = dumpster.record("", b"x", BASE).unwrap_err();
    assert!(matches!(error, ReplError::InvalidMessage(_)), "{error}");
    let long = "x".repeat(5000);
    let error = dumpster.record(&long, b"x", BASE).unwrap_err();
    assert!(matches!(error, ReplError::InvalidMessage(_)), "{error}");
}

#[test]
fn trim_drops_what_the_passive_replayed() {
    let mut dumpster = TransportDumpster::new(None, DumpsterLimits::default()).unwrap();
    for i in 0..10 {
        dumpster
            .record(&id(i), &body(i), BASE + i * SECOND)
            .unwrap();
    }
    // Replayed through 4 s: the 1 s clock margin keeps message 3 too.
    dumpster.trim_replayed(BASE + 4 * SECOND).unwrap();
    assert_eq!(CLOCK_MARGIN_MICROS, SECOND);
    assert_eq!(ids(&dumpster), (3..10).map(id).collect::<Vec<_>>());
    // An older report changes nothing.
    dumpster.trim_replayed(BASE + 2 * SECOND).unwrap();
    assert_eq!(dumpster.stats().messages, 7);
    assert_eq!(dumpster.stats().trimmed_through_micros, BASE + 4 * SECOND);
    dumpster.trim_replayed(BASE + 100 * SECOND).unwrap();
    assert_eq!(dumpster.stats().messages, 0);
    assert_eq!(dumpster.stats().bytes, 0);
}

#[test]
fn resubmit_takes_the_window_with_a_margin_in_delivery_order() {
    let mut dumpster = TransportDumpster::new(None, DumpsterLimits::default()).unwrap();
    for i in 0..20 {
        dumpster
            .record(&id(i), &body(i), BASE + i * SECOND / 4)
            .unwrap();
    }
    // Window from message 12 (3 s); the 1 s margin adds messages 8..12.
    let seen = count_resubmit(&dumpster, BASE + 3 * SECOND);
    assert_eq!(RESUBMIT_MARGIN_MICROS, SECOND);
    assert_eq!(seen, (8..20).map(id).collect::<Vec<_>>());
}

/// The transport's clock is behind the active's: a message committed in a generation the
/// passive has not replayed carries a delivery time before that generation's start (the
/// trim point). The clock margin keeps it, so a lossy failover resubmits it.
#[test]
fn a_transport_clock_behind_the_active_loses_nothing_to_a_trim() {
    let behind = SECOND / 2;
    let mut dumpster = TransportDumpster::new(None, DumpsterLimits::default()).unwrap();
    // Active's clock: messages 0..10 committed at 0..9 s in generations the passive
    // replayed, which closed at 10 s; messages 10..20 at 10.05..10.5 s in the next
    // generation, which the passive never got. The transport stamps each half a second early.
    for i in 0..20 {
        let committed = match i {
            0..10 => BASE + i * SECOND,
            _ => BASE + 10 * SECOND + (i - 9) * SECOND / 20,
        };
        dumpster
            .record(&id(i), &body(i), committed - behind)
            .unwrap();
    }
    let closed = BASE + 10 * SECOND;
    dumpster.trim_replayed(closed).unwrap();
    assert_eq!(dumpster.stats().possibly_lost, 0);
    // The failover's loss window starts where the passive's log ends.
    let seen = count_resubmit(&dumpster, closed);
    for i in 10..20 {
        assert!(seen.contains(&id(i)), "message {i} was trimmed: {seen:?}");
    }
}

#[test]
fn a_failed_delivery_stops_with_a_partial_report() {
    let mut dumpster = TransportDumpster::new(None, DumpsterLimits::default()).unwrap();
    for i in 0..5 {
        dumpster
            .record(&id(i), &body(i), BASE + i * SECOND * 10)
            .unwrap();
    }
    let failed = dumpster
        .resubmit(BASE, |message| {
            if message.message_id == id(3) {
                Err("store unavailable")
            } else {
                Ok(Delivery::Stored)
            }
        })
        .unwrap_err();
    assert_eq!(failed.message_id, id(3));
    assert_eq!(failed.report.resubmitted, 3);
    assert!(failed.to_string().contains("store unavailable"));
}

fn file(directory: &Path) -> std::path::PathBuf {
    directory.join(DUMPSTER_FILE_NAME)
}

#[test]
fn persists_across_reopen() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("db1");
    let mut dumpster = TransportDumpster::new(Some(&path), limits(1 << 20, 30)).unwrap();
    for i in 0..20 {
        dumpster
            .record(&id(i), &body(i), BASE + i * SECOND)
            .unwrap();
    }
    dumpster.trim_replayed(BASE + 5 * SECOND).unwrap();
    let before: Vec<_> = dumpster.messages().cloned().collect();
    let stats = dumpster.stats();
    drop(dumpster);
    let dumpster = TransportDumpster::new(Some(&path), limits(1 << 20, 30)).unwrap();
    assert_eq!(dumpster.messages().cloned().collect::<Vec<_>>(), before);
    assert_eq!(dumpster.stats(), stats);
    // Lower limits on reopen evict at once.
    drop(dumpster);
    let dumpster = TransportDumpster::new(Some(&path), limits(1 << 20, 3)).unwrap();
    assert_eq!(ids(&dumpster), (16..20).map(id).collect::<Vec<_>>());
    // Messages 4..16 (the trim to 5 s keeps 4 s on, the clock margin).
    assert_eq!(dumpster.stats().possibly_lost, 12);
}

#[test]
fn a_torn_tail_is_ignored_and_cut_off() {
    let directory = tempfile::tempdir().unwrap();
    let mut dumpster = TransportDumpster::new(Some(directory.path()), Default::default()).unwrap();
    for i in 0..5 {
        dumpster.record(&id(i), &body(i), BASE + i).unwrap();
    }
    drop(dumpster);
    let good = std::fs::metadata(file(directory.path())).unwrap().len();
    // A record cut short: a plausible frame, then not enough bytes.
    let mut appender = OpenOptions::new()
        .append(true)
        .open(file(directory.path()))
        .unwrap();
    appender.write_all(&200u32.to_le_bytes()).unwrap();
    appender.write_all(&[7; 50]).unwrap();
    drop(appender);
    let mut dumpster = TransportDumpster::new(Some(directory.path()), Default::default()).unwrap();
    assert_eq!(ids(&dumpster), (0..5).map(id).collect::<Vec<_>>());
    assert_eq!(dumpster.stats().ignored_tail_bytes, 54);
    assert_eq!(
        std::fs::metadata(file(directory.path())).unwrap().len(),
        good
    );
    // Appending after the cut works and survives another reopen.
    dumpster.record(&id(5), &body(5), BASE + 5).unwrap();
    drop(dumpster);
    let dumpster = TransportDumpster::new(Some(directory.path()), Default::default()).unwrap();
    assert_eq!(ids(&dumpster), (0..6).map(id).collect::<Vec<_>>());
    assert_eq!(dumpster.stats().ignored_tail_bytes, 0);
}

#[test]
fn a_damaged_last_record_is_ignored() {
    let directory = tempfile::tempdir().unwrap();
    let mut dumpster = TransportDumpster::new(Some(directory.path()), Default::default()).unwrap();
    for i in 0..5 {
        dumpster.record(&id(i), &body(i), BASE + i).unwrap();
    }
    drop(dumpster);
    let mut bytes = std::fs::read(file(directory.path())).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    std::fs::write(file(directory.path()), &bytes).unwrap();
    let dumpster = TransportDumpster::new(Some(directory.path()), Default::default()).unwrap();
    assert_eq!(ids(&dumpster), (0..4).map(id).collect::<Vec<_>>());
    let record = 8 + 1 + 8 + 2 + id(4).len() + body(4).len();
    assert_eq!(dumpster.stats().ignored_tail_bytes, record as u64);
}

#[test]
fn garbage_after_the_header_or_a_bad_header_never_panics() {
    let directory = tempfile::tempdir().unwrap();
    drop(TransportDumpster::new(Some(directory.path()), Default::default()).unwrap());
    let path = file(directory.path());
    let header = std::fs::read(&path).unwrap();
    // Random garbage after a good header: skipped, counted.
    let mut bytes = header.clone();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&path, &bytes).unwrap();
    let dumpster = TransportDumpster::new(Some(directory.path()), Default::default()).unwrap();
    assert_eq!(dumpster.stats().messages, 0);
    assert_eq!(dumpster.stats().ignored_tail_bytes, 4096);
    drop(dumpster);
    // A damaged header, another version, a short file: typed errors.
    for damage in [0usize, 9, 22] {
        let mut bad = header.clone();
        bad[damage] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let error = TransportDumpster::new(Some(directory.path()), Default::default()).unwrap_err();
        assert!(matches!(error, ReplError::BadReplicaFile { .. }), "{error}");
    }
    std::fs::write(&path, &header[..10]).unwrap();
    let error = TransportDumpster::new(Some(directory.path()), Default::default()).unwrap_err();
    assert!(matches!(error, ReplError::BadReplicaFile { .. }), "{error}");
}

#[test]
fn compaction_keeps_the_content_and_bounds_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let mut dumpster =
        TransportDumpster::new(Some(directory.path()), limits(256 << 10, 3600)).unwrap();
    for i in 0..2000 {
        dumpster
            .record(&id(i), &[b'm'; 4000], BASE + i * 1000)
            .unwrap();
        if i % 100 == 99 {
            // The trim point runs 20 messages behind, plus the clock margin kept.
            dumpster
                .trim_replayed(BASE + (i - 20) * 1000 + CLOCK_MARGIN_MICROS)
                .unwrap();
        }
    }
    let stats = dumpster.stats();
    assert!(stats.file_bytes < 3 << 20, "{stats:?}");
    assert_eq!(stats.possibly_lost, 0, "trims kept ahead of the size limit");
    let before = ids(&dumpster);
    drop(dumpster);
    let dumpster = TransportDumpster::new(Some(directory.path()), limits(256 << 10, 3600)).unwrap();
    assert_eq!(ids(&dumpster), before);
    assert_eq!(dumpster.stats(), stats);
}

#[test]
fn possible_losses_survive_compaction_and_reopen() {
    let directory = tempfile::tempdir().unwrap();
    let small = limits(50_000, 3600);
    let mut dumpster = TransportDumpster::new(Some(directory.path()), small).unwrap();
    for i in 0..400 {
        dumpster
            .record(&id(i), &[b'z'; 5000], BASE + i * SECOND)
            .unwrap();
    }
    let lost = dumpster.stats().possibly_lost;
    assert_eq!(lost, 400 - dumpster.stats().messages as u64);
    drop(dumpster);
    let dumpster = TransportDumpster::new(Some(directory.path()), small).unwrap();
    assert_eq!(dumpster.stats().possibly_lost, lost);
    let first_kept = 400 - dumpster.stats().messages as u64;
    let report = dumpster
        .resubmit(BASE + (first_kept + 1) * SECOND, |_| {
            Ok::<_, Infallible>(Delivery::Stored)
        })
        .unwrap();
    assert_eq!(
        report.possibly_lost.len(),
        0,
        "the window holds only kept messages"
    );
    assert_eq!(report.resubmitted, 400 - first_kept);
    let report = dumpster
        .resubmit(BASE + 300 * SECOND, |_| {
            Ok::<_, Infallible>(Delivery::Stored)
        })
        .unwrap();
    assert_eq!(report.possibly_lost.first().unwrap().message_id, id(299));
}

fn db_options() -> Options {
    Options {
        cache_bytes: 8 << 20,
        ..Options::default()
    }
}

const TABLE: &str = "messages";
const MESSAGES: u64 = 300;
const CUT: u64 = 240;
const SPACING: u64 = SECOND / 10;

/// Every (id, body) in the store's table.
fn contents(db: &Database) -> Vec<(Vec<u8>, Vec<u8>)> {
    let read = db.begin_read().unwrap();
    let table = read.open_table(TABLE).unwrap();
    table
        .range(..)
        .unwrap()
        .map(|entry| entry.unwrap())
        .collect()
}

#[test]
fn lossy_failover_resubmits_the_window_without_losses_or_double_deliveries() {
    let root = tempfile::tempdir().unwrap();
    let active = Database::open(&root.path().join("active"), db_options()).unwrap();
    let mut dumpster =
        TransportDumpster::new(Some(&root.path().join("dumpster")), Default::default()).unwrap();
    let time = |i: u64| BASE + i * SPACING;
    for i in 0..MESSAGES {
        assert_eq!(
            deliver_once(&active, TABLE, &id(i), &body(i)).unwrap(),
            Delivery::Stored
        );
        dumpster.record(&id(i), &body(i), time(i)).unwrap();
        // The transport delivering a message again (a retry): the store drops it.
        if i % 50 == 0 {
            assert_eq!(
                deliver_once(&active, TABLE, &id(i), b"retry").unwrap(),
                Delivery::Duplicate
            );
        }
    }
    // The passive reported replaying up to message CUT - 30; it holds up to CUT - 1 when
    // the active fails (the generations after were lost).
    dumpster.trim_replayed(time(CUT - 30)).unwrap();
    let margin = CLOCK_MARGIN_MICROS / SPACING;
    assert_eq!(
        dumpster.stats().messages as u64,
        MESSAGES - (CUT - 30 - margin)
    );
    let new_active = Database::open(&root.path().join("new-active"), db_options()).unwrap();
    for i in 0..CUT {
        deliver_once(&new_active, TABLE, &id(i), &body(i)).unwrap();
    }
    // Restart the transport, then resubmit from the loss window's start.
    drop(dumpster);
    let dumpster =
        TransportDumpster::new(Some(&root.path().join("dumpster")), Default::default()).unwrap();
    let mut deliveries = std::collections::HashMap::<String, u32>::new();
    let report = dumpster
        .resubmit(time(CUT), |message| {
            *deliveries.entry(message.message_id.clone()).or_default() += 1;
            deliver_once(&new_active, TABLE, &message.message_id, &message.body)
        })
        .unwrap();
    // The 1 s margin covers 10 messages before the cut: resubmitted, dropped as duplicates.
    assert_eq!(RESUBMIT_MARGIN_MICROS, CLOCK_MARGIN_MICROS);
    assert_eq!(report.window_start_micros, time(CUT));
    assert_eq!(report.resubmitted_from_micros, time(CUT - margin));
    assert_eq!(report.resubmitted, MESSAGES - CUT + margin);
    assert_eq!(report.stored, MESSAGES - CUT);
    assert_eq!(report.duplicates, margin);
    let bytes: usize = (CUT - margin..MESSAGES).map(|i| body(i).len()).sum();
    assert_eq!(report.bytes, bytes as u64);
    assert!(report.possibly_lost.is_empty());
    assert_eq!(report.possibly_lost_untracked, 0);
    assert!(
        deliveries.values().all(|&count| count == 1),
        "resubmitted once each"
    );
    // Nothing lost, nothing twice: the new active holds exactly the old active's messages.
    let old = contents(&active);
    let new = contents(&new_active);
    assert_eq!(old.len() as u64, MESSAGES);
    assert_eq!(new, old);
    // Resubmitting again (say after a transport crash mid-way) stores nothing new.
    let again = dumpster
        .resubmit(time(CUT), |message| {
            deliver_once(&new_active, TABLE, &message.message_id, &message.body)
        })
        .unwrap();
    assert_eq!((again.stored, again.duplicates), (0, report.resubmitted));
    assert_eq!(contents(&new_active), old);
    active.close().unwrap();
    new_active.close().unwrap();
}

#[test]
fn a_loss_window_reaching_past_evictions_reports_possible_losses() {
    let root = tempfile::tempdir().unwrap();
    let active = Database::open(&root.path().join("active"), db_options()).unwrap();
    let new_active = Database::open(&root.path().join("new-active"), db_options()).unwrap();
    // Room for about 20 messages; the passive never reported.
    let mut dumpster = TransportDumpster::new(None, limits(20 * 130, 3600)).unwrap();
    for i in 0..60 {
        let body = vec![b'q'; 100];
        deliver_once(&active, TABLE, &id(i), &body).unwrap();
        dumpster.record(&id(i), &body, BASE + i * SECOND).unwrap();
        if i < 30 {
            deliver_once(&new_active, TABLE, &id(i), &body).unwrap();
        }
    }
    let kept = dumpster.stats().messages as u64;
    let report = dumpster
        .resubmit(BASE + 30 * SECOND, |message| {
            deliver_once(&new_active, TABLE, &message.message_id, &message.body)
        })
        .unwrap();
    assert_eq!(report.stored, kept);
    let lost: Vec<_> = report
        .possibly_lost
        .iter()
        .map(|m| m.message_id.clone())
        .collect();
    // The window (29 s on, with the margin) minus what was kept: reported; all but the
    // margin's message 29 are indeed missing from the new active.
    assert_eq!(lost, (29..60 - kept).map(id).collect::<Vec<_>>());
    let new = contents(&new_active);
    assert_eq!(new.len() as u64, 30 + kept);
    for (i, missing) in (29..).zip(&lost) {
        let present = new.iter().any(|(key, _)| key == missing.as_bytes());
        assert_eq!(present, i < 30, "{missing}");
    }
    active.close().unwrap();
    new_active.close().unwrap();
}

/// One step of the crash script: record message `i`, or trim through message `i`'s time.
#[derive(Clone, Copy)]
enum Step {
    Record(u64),
    Trim(u64),
}

fn script() -> Vec<Step> {
    let mut steps = Vec::new();
    for i in 0..80 {
        steps.push(Step::Record(i));
        if i % 10 == 9 {
            steps.push(Step::Trim(i - 5));
        }
    }
    steps
}

fn apply(dumpster: &mut TransportDumpster, step: Step) -> Result<(), ReplError> {
    match step {
        Step::Record(i) => dumpster.record(&id(i), &[b'c'; 30_000], BASE + i * SECOND),
        Step::Trim(i) => dumpster.trim_replayed(BASE + i * SECOND),
    }
}

#[test]
fn a_crash_at_any_file_operation_keeps_every_acknowledged_change() {
    use bluejet_engine::file::simulated::{FaultMode, SimulatedFileSystem};
    use std::sync::Arc;
    // Small limits: the script evicts and compacts (1 MiB of dead records).
    let small = limits(200_000, 3600);
    let directory = Path::new("/dumpster");
    let total = {
        let fs = SimulatedFileSystem::new();
        let mut dumpster =
            TransportDumpster::open_with(Arc::new(fs.clone()), Some(directory), small).unwrap();
        script()
            .into_iter()
            .for_each(|s| apply(&mut dumpster, s).unwrap());
        fs.operations()
    };
    for failing in (1..=total).step_by(3) {
        let fs = SimulatedFileSystem::new();
        let mut model = TransportDumpster::new(None, small).unwrap();
        let mut pending = None;
        fs.fail_at(failing, FaultMode::Persistent);
        if let Ok(mut dumpster) =
            TransportDumpster::open_with(Arc::new(fs.clone()), Some(directory), small)
        {
            for step in script() {
                if apply(&mut dumpster, step).is_err() {
                    pending = Some(step);
                    break;
                }
                apply(&mut model, step).unwrap();
            }
        }
        fs.clear_fault();
        fs.crash(failing);
        let recovered =
            TransportDumpster::open_with(Arc::new(fs.clone()), Some(directory), small).unwrap();
        let acknowledged = ids(&model);
        let with_pending = pending.map(|step| {
            apply(&mut model, step).unwrap();
            ids(&model)
        });
        let got = ids(&recovered);
        assert!(
            got == acknowledged || Some(&got) == with_pending.as_ref(),
            "failing operation {failing}: got {got:?}, acknowledged {acknowledged:?}"
        );
    }
}

/// A gate that refuses everything: a node whose lease ended.
struct Fenced;

impl bluejet_engine::db::CommitGate for Fenced {
    fn admit(&self) -> Result<(), String> {
        Err("this node's lease ended".into())
    }
}

/// A fenced node does not answer "already stored": the record it holds may be in a log
/// tail the new active lacks, and the transport would drop a message nobody resubmits.
#[test]
fn a_fenced_node_answers_no_duplicate() {
    use bluejet_engine::{DbError, Gate};
    let directory = tempfile::tempdir().unwrap();
    let db = Database::open(directory.path(), Options::default()).unwrap();
    assert_eq!(
        deliver_once(&db, "mail", "<a@x>", b"hello").unwrap(),
        Delivery::Stored
    );
    db.close().unwrap();
    let options = Options {
        commit_gate: Gate(Some(std::sync::Arc::new(Fenced))),
        ..Options::default()
    };
    let db = Database::open(directory.path(), options).unwrap();
    let answer = deliver_once(&db, "mail", "<a@x>", b"hello");
    assert!(
        matches!(answer, Err(DbError::CommitRefused(_))),
        "{answer:?}"
    );
    let answer = deliver_once(&db, "mail", "<b@x>", b"new");
    assert!(
        matches!(answer, Err(DbError::CommitRefused(_))),
        "{answer:?}"
    );
    db.close().unwrap();
}
