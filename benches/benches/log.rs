//! BlueJet's log against raw baselines on the same disk, in one run:
//!
//! 1. `durable_1_thread/raw_pwrite_fdatasync` (baseline A): one record of a commit's size
//!    written and synced at a time into a zero-filled file; `.../raw_..._fallocated` is the same
//!    into a fallocated file (information: BlueJet writes into fallocated generations).
//! 2. `durable_1_thread/bluejet`: durable commits of a 1 KiB value, one thread (target >= 0.9 A).
//! 3. `durable_8_threads/raw_group_flush` (baseline B): 8 committers, one flusher thread;
//!    `.../raw_group_flush_fallocated` is the same into a fallocated file (information).
//! 4. `durable_8_threads/bluejet`: durable commits from 8 threads (target >= 0.8 B).
//! 5. `sequential/raw_1MiB_pwrites_one_sync`: disk write bandwidth.
//! 6. `sequential/bluejet_lazy_16MiB_generations`: lazy commits, one flush per batch, in record
//!    bytes appended, with generations of 16 MiB (target >= 0.8 of 5). A log streaming lazy
//!    commits closes a generation durably (two syncs, two renames, a directory sync) every
//!    generation's worth of bytes; at the default 1 MiB that alone holds any such log well
//!    under the disk's bandwidth, so the streaming figure is taken with larger generations.
//!    For information: `.../bluejet_lazy` (default 1 MiB generations), and
//!    `.../raw_1MiB_files_closed` (5'): the same bytes as 1 MiB files, each written, synced,
//!    renamed and its directory synced, one after another, which bounds a log of 1 MiB
//!    generations on this disk.
//!
//! `cargo bench -p bluejet-benches` ends with a table of all six figures, their ratios and
//! the syncs per commit, then the target ratios again from paired rounds (baseline and
//! BlueJet alternating), which hold up better when other work loads the machine; in the
//! bandwidth pair both sides write the same 128 MiB per round.
//! `cargo test --benches` runs every benchmark once and skips both.

use bluejet_benches::baseline::{closed_files, sequential_write, Preallocation, RecordFile};
use bluejet_benches::data::{noise, VALUE_BYTES};
use bluejet_benches::group_flush::GroupFlush;
use bluejet_benches::paired::Comparison;
use bluejet_benches::scratch::scratch_root;
use bluejet_benches::tally::Tally;
use bluejet_benches::workload::Workload;
use bluejet_engine::LogConfig;
use bluejet_engine::LogError;
use criterion::{Criterion, Throughput};
use std::path::Path;
use std::time::Duration;

/// Committer threads of the concurrent benchmarks.
const THREADS: u64 = 8;
/// Writes of the bandwidth baseline.
const CHUNK_BYTES: usize = 1 << 20;
/// Region a zero-filled record file wraps around in (written once, before measuring).
const ZEROED_REGION: u64 = 8 << 20;
/// Region of a fallocated record file (large enough not to wrap during the run).
const FALLOCATED_REGION: u64 = 512 << 20;
/// Generation size of the lazy (streaming) benchmark; the default is 1 MiB.
const STREAMING_GENERATION_BYTES: u64 = 16 << 20;

#[derive(Default)]
struct Summary {
    raw_single: Tally,
    raw_single_fallocated: Tally,
    bluejet_single: Tally,
    raw_group: Tally,
    raw_group_fallocated: Tally,
    bluejet_group: Tally,
    raw_bandwidth: Tally,
    raw_closed_files: Tally,
    bluejet_lazy: Tally,
    bluejet_lazy_default: Tally,
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let scratch = tempfile::Builder::new()
        .prefix("log-")
        .tempdir_in(scratch_root())
        .expect("scratch directory");
    let root = scratch.path();
    let value = noise(VALUE_BYTES);

    // The bytes BlueJet appends per commit, so the baselines write exactly as much.
    let probe = Workload::open(&root.join("probe"), value.clone()).expect("open probe log");
    let commit_bytes = probe.bytes_per_commit().expect("probe commit");
    probe.close().expect("close probe log");
    let record = noise(usize::try_from(commit_bytes).expect("a commit's bytes fit usize"));

    let mut summary = Summary::default();
    single_thread(&mut criterion, root, &record, &value, &mut summary);
    concurrent(&mut criterion, root, &record, &value, &mut summary);
    sequential(&mut criterion, root, commit_bytes, &value, &mut summary);
    criterion.final_summary();

    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.iter().any(|argument| argument == "--bench") {
        print_summary(root, commit_bytes, &summary);
        if !filtered(&arguments) {
            paired(&root.join("paired"), &record, &value);
        }
    }
}

/// Whether the command line names benchmarks to run (a positional argument not following an
/// option that takes a value): the paired rounds then stay out of the way.
fn filtered(arguments: &[String]) -> bool {
    arguments.iter().enumerate().any(|(index, argument)| {
        let after_option = index > 0
            && arguments[index - 1].starts_with("--")
            && arguments[index - 1] != "--bench";
        !argument.starts_with('-') && !after_option
    })
}

/// Rounds of each paired comparison, and the time each side runs per round.
const ROUNDS: usize = 7;
const ROUND_TIME: Duration = Duration::from_millis(250);

/// The four target ratios again, baseline and BlueJet taking turns in short rounds (see
/// `bluejet_benches::paired`): robust to load that other work puts on the machine.
fn paired(root: &Path, record: &[u8], value: &[u8]) {
    std::fs::create_dir_all(root).expect("paired directory");
    println!();
    println!(
        "Paired rounds ({ROUNDS} per pair, sides alternating; {ROUND_TIME:?} a side, bandwidth \
         {} MiB a side):",
        PAIRED_VOLUME >> 20
    );
    paired_single_thread(root, record, value);
    paired_concurrent(root, record, value);
    paired_lazy(root, record.len() as u64, value);
}

/// Prints one paired comparison against its target.
fn report_pair(name: &str, unit: &str, scale: f64, target: f64, comparison: Comparison) {
    let ratios = comparison.ratios();
    let median = comparison.median_ratio();
    let verdict = if median >= target { "met" } else { "MISSED" };
    println!(
        "{name:<30} base {:>8.1} {unit}  bluejet {:>8.1} {unit}  ratio median {median:.3} \
         [min {:.3} max {:.3}] (target >= {target}) {verdict}",
        comparison.median_baseline() / scale,
        comparison.median_ours() / scale,
        ratios.first().copied().unwrap_or(0.0),
        ratios.last().copied().unwrap_or(0.0),
    );
}

/// Ratio 2/1: durable commits on one thread against one record written and synced at a time.
fn paired_single_thread(root: &Path, record: &[u8], value: &[u8]) {
    let mut file = RecordFile::create(
        &root.join("single.raw"),
        ZEROED_REGION,
        Preallocation::ZeroFilled,
    )
    .expect("create record file");
    let workload = Workload::open(&root.join("single"), value.to_vec()).expect("open log");
    let comparison = Comparison::run(
        ROUNDS,
        ROUND_TIME,
        &mut |count| (count, file.run(record, count).expect("raw append")),
        &mut |count| (count, workload.durable(count).expect("durable commits")),
    );
    report_pair("2/1 durable, 1 thread", "c/s", 1.0, 0.9, comparison);
    workload.tidy().expect("tidy");
    workload.close().expect("close log");
}

/// Ratio 4/3: durable commits from 8 threads against 8 raw committers and one flusher.
fn paired_concurrent(root: &Path, record: &[u8], value: &[u8]) {
    let file = RecordFile::create(
        &root.join("group.raw"),
        ZEROED_REGION,
        Preallocation::ZeroFilled,
    )
    .expect("create record file");
    let flusher = GroupFlush::start(file);
    let workload = Workload::open(&root.join("group"), value.to_vec()).expect("open log");
    let comparison = Comparison::run(
        ROUNDS,
        ROUND_TIME,
        &mut |count| {
            let elapsed = flusher.run(record, THREADS, count).expect("raw commits");
            (count, elapsed)
        },
        &mut |count| {
            let elapsed = workload
                .durable_concurrent(THREADS, count)
                .expect("durable commits");
            (count, elapsed)
        },
    );
    report_pair("4/3 durable, 8 threads", "c/s", 1.0, 0.8, comparison);
    workload.tidy().expect("tidy");
    workload.close().expect("close log");
}

/// Bytes each side writes per round of the paired bandwidth comparison.
const PAIRED_VOLUME: u64 = 128 << 20;

/// Ratio 6/5: lazy commits, one flush per batch, 16 MiB generations, against 1 MiB writes,
/// one sync per batch; both sides write the same volume in every round.
fn paired_lazy(root: &Path, commit_bytes: u64, value: &[u8]) {
    let chunk = noise(CHUNK_BYTES);
    let path = root.join("sequential.raw");
    let workload = Workload::open_with(&root.join("lazy"), value.to_vec(), streaming_config())
        .expect("open log");
    let counts = (
        PAIRED_VOLUME / CHUNK_BYTES as u64,
        PAIRED_VOLUME / commit_bytes,
    );
    let comparison = Comparison::run_equal(
        ROUNDS,
        counts,
        &mut |count| {
            let elapsed = sequential_write(&path, &chunk, count).expect("sequential write");
            (count * CHUNK_BYTES as u64, elapsed)
        },
        &mut |count| {
            let before = workload.stats().bytes;
            let elapsed = workload.lazy_then_flush(count).expect("lazy commits");
            let bytes = workload.stats().bytes - before;
            workload.tidy().expect("tidy");
            (bytes, elapsed)
        },
    );
    let mib = (1 << 20) as f64;
    report_pair(
        "6/5 lazy, 16 MiB generations",
        "MiB/s",
        mib,
        0.8,
        comparison,
    );
    workload.close().expect("close log");
}

fn single_thread(
    criterion: &mut Criterion,
    root: &Path,
    record: &[u8],
    value: &[u8],
    summary: &mut Summary,
) {
    let mut group = criterion.benchmark_group("durable_1_thread");
    group.throughput(Throughput::Elements(1));

    let (zeroed, fallocated) = (&mut summary.raw_single, &mut summary.raw_single_fallocated);
    let path = root.join("single.raw");
    raw_single(
        &mut group,
        "raw_pwrite_fdatasync",
        &path,
        Preallocation::ZeroFilled,
        record,
        zeroed,
    );
    let path = root.join("single-fallocated.raw");
    let name = "raw_pwrite_fdatasync_fallocated";
    raw_single(
        &mut group,
        name,
        &path,
        Preallocation::Fallocated,
        record,
        fallocated,
    );

    let workload = Workload::open(&root.join("single"), value.to_vec()).expect("open log");
    bluejet_durable(
        &mut group,
        workload,
        &mut summary.bluejet_single,
        |workload, count| workload.durable(count),
    );
    group.finish();
}

fn concurrent(
    criterion: &mut Criterion,
    root: &Path,
    record: &[u8],
    value: &[u8],
    summary: &mut Summary,
) {
    let mut group = criterion.benchmark_group("durable_8_threads");
    group.throughput(Throughput::Elements(1));

    let (zeroed, fallocated) = (&mut summary.raw_group, &mut summary.raw_group_fallocated);
    let path = root.join("group.raw");
    raw_group(
        &mut group,
        "raw_group_flush",
        &path,
        Preallocation::ZeroFilled,
        record,
        zeroed,
    );
    let path = root.join("group-fallocated.raw");
    let name = "raw_group_flush_fallocated";
    raw_group(
        &mut group,
        name,
        &path,
        Preallocation::Fallocated,
        record,
        fallocated,
    );

    let workload = Workload::open(&root.join("group"), value.to_vec()).expect("open log");
    bluejet_durable(
        &mut group,
        workload,
        &mut summary.bluejet_group,
        |workload, count| workload.durable_concurrent(THREADS, count),
    );
    group.finish();
}

fn sequential(
    criterion: &mut Criterion,
    root: &Path,
    commit_bytes: u64,
    value: &[u8],
    summary: &mut Summary,
) {
    let mut group = criterion.benchmark_group("sequential");

    let chunk = noise(CHUNK_BYTES);
    let path = root.join("sequential.raw");
    let tally = &mut summary.raw_bandwidth;
    group.throughput(Throughput::Bytes(CHUNK_BYTES as u64));
    group.bench_function("raw_1MiB_pwrites_one_sync", |bencher| {
        bencher.iter_custom(|count| {
            let elapsed = sequential_write(&path, &chunk, count).expect("sequential write");
            tally.add(count * CHUNK_BYTES as u64, elapsed, 1, 0);
            elapsed
        })
    });

    let files = root.join("closed-files");
    std::fs::create_dir_all(&files).expect("closed files directory");
    let tally = &mut summary.raw_closed_files;
    group.bench_function("raw_1MiB_files_closed", |bencher| {
        bencher.iter_custom(|count| {
            let elapsed = closed_files(&files, &chunk, count).expect("closed files");
            tally.add(count * CHUNK_BYTES as u64, elapsed, count, 0);
            elapsed
        })
    });

    group.throughput(Throughput::Bytes(commit_bytes));
    let workload = Workload::open_with(&root.join("lazy"), value.to_vec(), streaming_config())
        .expect("open log");
    let name = "bluejet_lazy_16MiB_generations";
    lazy(&mut group, name, workload, &mut summary.bluejet_lazy);

    // Information only: the default generation size.
    let workload = Workload::open(&root.join("lazy-default"), value.to_vec()).expect("open log");
    let tally = &mut summary.bluejet_lazy_default;
    lazy(&mut group, "bluejet_lazy", workload, tally);
    group.finish();
}

/// The log configuration of the streaming benchmark.
fn streaming_config() -> LogConfig {
    LogConfig {
        generation_bytes: STREAMING_GENERATION_BYTES,
        ..LogConfig::default()
    }
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Baseline A (or its fallocated variant): one record written and synced at a time.
fn raw_single(
    group: &mut Group<'_>,
    name: &str,
    path: &Path,
    preallocation: Preallocation,
    record: &[u8],
    tally: &mut Tally,
) {
    let mut file =
        RecordFile::create(path, region(preallocation), preallocation).expect("create record file");
    group.bench_function(name, |bencher| {
        bencher.iter_custom(|count| {
            let elapsed = file.run(record, count).expect("raw append");
            tally.add(count, elapsed, count, count);
            elapsed
        })
    });
}

/// Baseline B (or its fallocated variant): 8 committers and one flusher thread.
fn raw_group(
    group: &mut Group<'_>,
    name: &str,
    path: &Path,
    preallocation: Preallocation,
    record: &[u8],
    tally: &mut Tally,
) {
    let file =
        RecordFile::create(path, region(preallocation), preallocation).expect("create record file");
    let flusher = GroupFlush::start(file);
    group.bench_function(name, |bencher| {
        bencher.iter_custom(|count| {
            let syncs = flusher.syncs();
            let elapsed = flusher.run(record, THREADS, count).expect("raw commits");
            tally.add(count, elapsed, flusher.syncs() - syncs, count);
            elapsed
        })
    });
}

/// The region a record file wraps around in.
fn region(preallocation: Preallocation) -> u64 {
    match preallocation {
        Preallocation::ZeroFilled => ZEROED_REGION,
        Preallocation::Fallocated => FALLOCATED_REGION,
    }
}

/// BlueJet durable commits, `run` committing one batch; counted in commits.
fn bluejet_durable(
    group: &mut Group<'_>,
    workload: Workload,
    tally: &mut Tally,
    run: impl Fn(&Workload, u64) -> Result<Duration, LogError>,
) {
    group.bench_function("bluejet", |bencher| {
        bencher.iter_custom(|count| {
            let before = workload.stats();
            let elapsed = run(&workload, count).expect("durable commits");
            tally.add_log(count, elapsed, before, workload.stats());
            workload.tidy().expect("tidy");
            elapsed
        })
    });
    workload.close().expect("close log");
}

/// BlueJet lazy commits, one flush per batch, counted in record bytes.
fn lazy(group: &mut Group<'_>, name: &str, workload: Workload, tally: &mut Tally) {
    group.bench_function(name, |bencher| {
        bencher.iter_custom(|count| {
            let before = workload.stats();
            let elapsed = workload.lazy_then_flush(count).expect("lazy commits");
            let after = workload.stats();
            tally.add_log(after.bytes - before.bytes, elapsed, before, after);
            workload.tidy().expect("tidy");
            elapsed
        })
    });
    workload.close().expect("close log");
}

fn print_summary(root: &Path, commit_bytes: u64, summary: &Summary) {
    println!();
    println!(
        "Summary (all batches incl. warm-up; {commit_bytes} record bytes per commit; files in {})",
        root.display()
    );
    print_rates(summary);
    println!();
    print_ratios(summary);
}

/// Syncs per commit of a tally, as text.
fn syncs_text(tally: &Tally) -> String {
    tally
        .syncs_per_commit()
        .map_or_else(|| "-".to_string(), |value| format!("{value:.3}"))
}

/// Rolls per commit of a tally, as text.
fn rolls_text(tally: &Tally) -> String {
    match tally.commits {
        0 => "-".to_string(),
        commits => format!("{:.4}", tally.rolls as f64 / commits as f64),
    }
}

/// The table of the six figures (and the informational variants).
fn print_rates(summary: &Summary) {
    const MIB: f64 = (1 << 20) as f64;
    println!(
        "{:<44} {:>14} {:>12} {:>12}",
        "benchmark", "rate", "syncs/commit", "rolls/commit"
    );
    let commits = [
        ("1  raw pwrite+fdatasync (zero-filled)", &summary.raw_single),
        (
            "1' raw pwrite+fdatasync (fallocated)",
            &summary.raw_single_fallocated,
        ),
        ("2  bluejet durable, 1 thread", &summary.bluejet_single),
        ("3  raw group flush, 8 threads", &summary.raw_group),
        (
            "3' raw group flush, 8 threads (fallocated)",
            &summary.raw_group_fallocated,
        ),
        ("4  bluejet durable, 8 threads", &summary.bluejet_group),
    ];
    for (name, tally) in commits {
        let (rate, syncs, rolls) = (tally.rate(), syncs_text(tally), rolls_text(tally));
        println!("{name:<44} {rate:>9.0} c/s {syncs:>12} {rolls:>12}");
    }
    let bandwidths = [
        ("5  raw 1 MiB pwrites, one sync", &summary.raw_bandwidth),
        (
            "5' raw 1 MiB files, each closed durably",
            &summary.raw_closed_files,
        ),
        ("6  bluejet lazy, 16 MiB generations", &summary.bluejet_lazy),
        (
            "6' bluejet lazy, 1 MiB generations",
            &summary.bluejet_lazy_default,
        ),
    ];
    for (name, tally) in bandwidths {
        let (rate, syncs, rolls) = (tally.rate() / MIB, syncs_text(tally), rolls_text(tally));
        println!("{name:<44} {rate:>8.1} MiB/s {syncs:>12} {rolls:>12}");
    }
}

/// Each target ratio and whether it is met.
fn print_ratios(summary: &Summary) {
    let ratios = [
        (
            "2/1  single-thread durable",
            &summary.bluejet_single,
            &summary.raw_single,
            0.9,
        ),
        (
            "2/1' single-thread durable vs fallocated",
            &summary.bluejet_single,
            &summary.raw_single_fallocated,
            0.9,
        ),
        (
            "4/3  8-thread durable",
            &summary.bluejet_group,
            &summary.raw_group,
            0.8,
        ),
        (
            "6/5  lazy bandwidth, 16 MiB generations",
            &summary.bluejet_lazy,
            &summary.raw_bandwidth,
            0.8,
        ),
    ];
    for (name, ours, base, target) in ratios {
        let value = ours.rate() / base.rate();
        let verdict = if value >= target { "met" } else { "MISSED" };
        println!("{name:<44} {value:>6.3} (target >= {target}) {verdict}");
    }
    let information = [
        (
            "6'/5  lazy bandwidth, 1 MiB generations",
            &summary.bluejet_lazy_default,
            &summary.raw_bandwidth,
        ),
        (
            "6'/5' the same against closing 1 MiB files",
            &summary.bluejet_lazy_default,
            &summary.raw_closed_files,
        ),
    ];
    for (name, ours, base) in information {
        let value = ours.rate() / base.rate();
        println!("{name:<44} {value:>6.3} (information)");
    }
}
