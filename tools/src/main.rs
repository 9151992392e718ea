//! The `bluejet` command line: inspection, verification and maintenance of BlueJet databases
//! and their logs, and a demo.
//!
//! ```text
//! bluejet header DB [--json]                                (alias: mh)
//! bluejet checksum DB [--json]                              (alias: k)
//! bluejet integrity DB [--json]                             (alias: g)
//! bluejet space DB [--json]                                 (alias: ms)
//! bluejet dump DB TABLE [--hex] [--limit N] [--value-bytes N] [--json]
//! bluejet recover DIR [--json]                              (alias: r)
//! bluejet compact SRC DST [--json]                          (alias: d)
//! bluejet repair DB [--force] [--json]                      (alias: p)
//! bluejet log dump PATH [--records] [--json] [--base E00]   (alias: bluejet ml PATH)
//! bluejet log dump DIR [--from POS] [--to POS] [--table NAME] [--stats | --follow] [--json]
//! bluejet checkpoint dump PATH [--json] [--base E00]        (alias: bluejet mk PATH)
//! bluejet demo [--dir DIR] [--keep] [--writers N] [--messages N] [--mailboxes N] [--rate N]
//!              [--json]
//! bluejet repl seed --active DIR --replica DIR [--json]
//! bluejet repl run --active DIR --replica DIR [--lag SECONDS] [--compress]
//!                  [--duration SECONDS] [--json]
//! bluejet repl status --replica DIR [--json]
//! bluejet repl suspend --replica DIR --comment TEXT [--json]
//! bluejet repl resume --replica DIR --comment TEXT [--json]
//! bluejet repl verify --active DIR --replica DIR [--json]
//! bluejet backup --replica DIR --to DIR [--incremental] [--json]
//! bluejet backup verify DIR [--json]
//! bluejet restore DIR [DIR...] --to DIR [--to-generation N] [--json]
//! bluejet truncate --active DIR (--config FILE | --replica DIR... | --standalone) [--circular]
//!                  [--budget BYTES] [--warn-at FRACTION] [--json]
//! bluejet node run --config FILE [--duration SECONDS] [--load RATE] [--metrics ADDR] [--json]
//! bluejet cluster init --config FILE [--comment TEXT] [--json]
//! bluejet cluster certs --dir DIR --nodes NODE,NODE... [--days N] [--json]
//! bluejet cluster status --config FILE [--json]
//! bluejet cluster move --config FILE --to NODE --comment TEXT [--validate-only]
//!                      [--timeout SECONDS] [--json]
//! bluejet cluster mount --config FILE --node NODE --force --comment TEXT
//!                       [--timeout SECONDS] [--json]
//! bluejet cluster backup --config FILE [--node NODE] --to DIR [--incremental]
//!                        [--timeout SECONDS] [--json]
//! bluejet diverged show DIR [--json]
//! bluejet diverged reapply DIR --to NODE [--timeout SECONDS] [--json]
//! ```
//!
//! DB is a database directory or its `bluejet.db` file. A replica is a directory holding a
//! passive copy of a database and the log generations shipped to it (see
//! `bluejet_replication::layout`).
//!
//! Exit codes: 0 all good, 1 damage or inconsistency found, 2 bad usage, 3 I/O or other
//! error. Errors go to stderr, prefixed `bluejet: `.

mod commands;
mod demo;
mod exit;
mod help;
mod image;
mod live;
mod logging;
mod metrics_exposition;
mod metrics_server;
mod output;
mod position_argument;
mod positions;
mod problem;
mod progress;
mod records;

use bluejet_engine::{BaseName, LogPosition};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use exit::{ToolError, Verdict};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// BlueJet's tool: inspect, verify, recover, repair and compact databases and their log
/// streams; replicate them to passive copies; run and operate a two-node cluster (failover,
/// switchover, certificates); back up, restore and truncate logs; and report and re-apply
/// the mail a lossy failover left behind.
///
/// Exit codes: 0 all good, 1 damage or inconsistency found, 2 bad usage, 3 an I/O or other
/// error.
#[derive(Debug, Parser)]
#[command(name = "bluejet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The database header and the condition of both header copies.
    #[command(alias = "mh")]
    Header(DatabaseArgs),
    /// Read every page of a database and check its checksum.
    #[command(alias = "k")]
    Checksum(DatabaseArgs),
    /// Check every tree, long value and free page of a database.
    #[command(alias = "g")]
    Integrity(DatabaseArgs),
    /// Space use per table.
    #[command(alias = "ms")]
    Space(DatabaseArgs),
    /// Every entry of a table.
    Dump(DumpArgs),
    /// Soft recovery: replay the log into the database and shut it down cleanly.
    #[command(alias = "r")]
    Recover(DatabaseArgs),
    /// Offline compaction into a new directory, verified against the original.
    #[command(alias = "d")]
    Compact(CompactArgs),
    /// Repair a damaged database offline (like eseutil /p): rebuild it from the pages that
    /// survive, keep the original and its log aside, and report what was lost.
    ///
    /// Run `bluejet recover` first on a database not shut down cleanly: repair is for when
    /// recovery or `bluejet integrity` fails. The damaged original and its log generations
    /// are kept in before-repair-<count>-<seconds>/ beside the database; the repaired database
    /// starts a new log stream, so every replica must be reseeded. A database open elsewhere,
    /// or dirty without --force, is refused (exit 3) and left as it was.
    #[command(alias = "p")]
    Repair(RepairArgs),
    /// Log streams and generation files.
    Log {
        #[command(subcommand)]
        action: LogAction,
    },
    /// Alias of `log dump`.
    #[command(hide = true)]
    Ml(LogDumpArgs),
    /// Checkpoint files.
    Checkpoint {
        #[command(subcommand)]
        action: CheckpointAction,
    },
    /// Alias of `checkpoint dump`.
    #[command(hide = true)]
    Mk(CheckpointDumpArgs),
    /// Deliver mail into a database with concurrent writers and a replicated passive copy,
    /// reopen it and verify everything.
    Demo(DemoArgs),
    /// Continuous replication to a passive copy: seed, run, status, suspend, resume, verify.
    Repl {
        #[command(subcommand)]
        action: ReplAction,
    },
    /// Back up a passive copy (full or incremental), or verify a backup.
    Backup(BackupArgs),
    /// Restore a full backup and its incrementals into a new database.
    Restore(RestoreArgs),
    /// Delete the active's generations no longer needed by recovery, passives or backups.
    Truncate(TruncateArgs),
    /// Run a node of a two-node cluster with a file-share witness.
    Node {
        #[command(subcommand)]
        action: NodeAction,
    },
    /// Operate a two-node cluster: certificates, status, planned move, forced mount, backup.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// An old active's divergent transactions (kept aside in `diverged-<epoch>/`): show
    /// them, or re-apply them through the active node.
    Diverged {
        #[command(subcommand)]
        action: DivergedAction,
    },
    /// Print a completion script for a shell, e.g.
    /// `bluejet completions bash > /etc/bash_completion.d/bluejet`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum DivergedAction {
    /// The transactions the new active never had, with the messages among them (exit 1
    /// when a divergent file cannot be read).
    Show(DivergedShowArgs),
    /// Re-apply them through the running active node NODE (its instance directory): what
    /// is missing is committed anew, what it has is skipped, a key changed on both sides is
    /// never overwritten (exit 1 when refused or conflicting).
    Reapply(DivergedReapplyArgs),
}

/// Options of `diverged show`.
#[derive(Debug, Args)]
struct DivergedShowArgs {
    /// A `diverged-<epoch>` directory, or an instance directory (each of its, newest first).
    #[arg(value_name = "DIR")]
    directory: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `diverged reapply`.
#[derive(Debug, Args)]
struct DivergedReapplyArgs {
    /// The `diverged-<epoch>` directory.
    #[arg(value_name = "DIR")]
    directory: PathBuf,
    /// The active node's instance directory.
    #[arg(long, value_name = "NODE")]
    to: PathBuf,
    /// How long to wait for the node's answer before withdrawing the request.
    #[arg(long, value_name = "SECONDS", default_value = "60",
          value_parser = commands::repl_run::parse_seconds)]
    timeout: Duration,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum NodeAction {
    /// Run the node until Ctrl-C or --duration, a line on stderr at every change of role.
    Run(NodeRunArgs),
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// Initialise a new cluster once: write the witness's first record (epoch 1, owned by
    /// the node the cluster file names) into an existing, empty witness directory (exit 1
    /// when it holds records already).
    Init(ClusterInitArgs),
    /// Make the cluster's TLS certificates once: a new cluster CA and a certificate and key
    /// per node (exit 1 when a file exists already: nothing is replaced).
    Certs(ClusterCertsArgs),
    /// The witness, both nodes' heartbeats and the passive's copy (exit 1 when unhealthy).
    Status(ClusterFileArgs),
    /// Move the database to the other node without loss (exit 1 when refused).
    Move(ClusterMoveArgs),
    /// Let a passive node fail over past the mount dial (exit 1 when refused or not taken).
    Mount(ClusterMountArgs),
    /// Back up the running cluster's passive copy, taken by the passive node (exit 1 when
    /// refused or failed).
    Backup(ClusterBackupArgs),
}

/// A cluster file and the output format.
#[derive(Debug, Args)]
struct ClusterFileArgs {
    /// The cluster file (JSON: name, instance, peer, peer_instance, witness, dial).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `cluster init`.
#[derive(Debug, Args)]
struct ClusterInitArgs {
    #[command(flatten)]
    file: ClusterFileArgs,
    /// Why: recorded in the witness's first record.
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
}

/// Options of `cluster certs`.
#[derive(Debug, Args)]
struct ClusterCertsArgs {
    /// The certificate directory (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The nodes' names, comma-separated: plain DNS labels (letters, digits, '-', '_').
    #[arg(
        long,
        value_name = "NODE,NODE...",
        value_delimiter = ',',
        required = true
    )]
    nodes: Vec<String>,
    /// How long the certificates are valid, in days.
    #[arg(long, value_name = "N", default_value_t = commands::cluster_certs::DEFAULT_DAYS,
          value_parser = clap::value_parser!(u32)
              .range(1..=i64::from(bluejet_replication::net::certs::MAX_VALID_DAYS)))]
    days: u32,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `node run`.
#[derive(Debug, Args)]
struct NodeRunArgs {
    #[command(flatten)]
    file: ClusterFileArgs,
    /// Stop after this long instead of waiting for Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = commands::repl_run::parse_seconds)]
    duration: Option<Duration>,
    /// Commit RATE small transactions a second while this node is active (a test load).
    #[arg(long, value_name = "RATE", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    load: Option<u32>,
    /// Serve the node's metrics in the Prometheus text format at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9464); exit 3 at once if ADDR is taken.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

/// Options of `cluster move`.
#[derive(Debug, Args)]
struct ClusterMoveArgs {
    #[command(flatten)]
    file: ClusterFileArgs,
    /// The node to move the database to.
    #[arg(long, value_name = "NODE")]
    to: String,
    /// Why: recorded in the witness and the event log.
    #[arg(long, value_name = "TEXT")]
    comment: String,
    /// Only check that the move would be allowed.
    #[arg(long)]
    validate_only: bool,
    /// How long to wait for the active node's answer.
    #[arg(long, value_name = "SECONDS", default_value = "60",
          value_parser = commands::repl_run::parse_seconds)]
    timeout: Duration,
}

/// Options of `cluster mount`.
#[derive(Debug, Args)]
struct ClusterMountArgs {
    #[command(flatten)]
    file: ClusterFileArgs,
    /// The passive node to mount the database on.
    #[arg(long, value_name = "NODE")]
    node: String,
    /// Mount even if the mount dial refuses (required: generations may be lost).
    #[arg(long)]
    force: bool,
    /// Why: recorded in the node's event log.
    #[arg(long, value_name = "TEXT")]
    comment: String,
    /// How long to wait for the node to take the database before withdrawing the request.
    #[arg(long, value_name = "SECONDS", default_value = "30",
          value_parser = commands::repl_run::parse_seconds)]
    timeout: Duration,
}

/// Options of `cluster backup`.
#[derive(Debug, Args)]
struct ClusterBackupArgs {
    #[command(flatten)]
    file: ClusterFileArgs,
    /// The passive node to take the backup (default: the node the witness does not name
    /// owner).
    #[arg(long, value_name = "NODE")]
    node: Option<String>,
    /// A new (or empty) directory for the backup, outside both instances and the witness.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Only the generations after the copy's last backup.
    #[arg(long)]
    incremental: bool,
    /// How long the node has to take the request (the backup itself is waited for while
    /// the node runs).
    #[arg(long, value_name = "SECONDS", default_value = "60",
          value_parser = commands::repl_run::parse_seconds)]
    timeout: Duration,
}

/// Options of `backup`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BackupArgs {
    #[command(subcommand)]
    action: Option<BackupAction>,
    /// The replica to back up (no replication service may hold it).
    #[arg(long, value_name = "DIR")]
    replica: Option<PathBuf>,
    /// A new (or empty) directory for the backup.
    #[arg(long, value_name = "DIR")]
    to: Option<PathBuf>,
    /// Only the generations after the replica's last backup.
    #[arg(long)]
    incremental: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BackupAction {
    /// Check a backup's files against its manifest (exit 1 when damaged).
    Verify(DatabaseArgs),
}

/// Options of `restore`.
#[derive(Debug, Args)]
struct RestoreArgs {
    /// A full backup, then the incrementals that follow it, in order.
    #[arg(required = true)]
    backups: Vec<PathBuf>,
    /// A new (or empty) directory for the restored database.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Replay through this generation only.
    #[arg(long, value_name = "N")]
    to_generation: Option<u32>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `truncate`.
#[derive(Debug, Args)]
struct TruncateArgs {
    /// The active database's directory (not open elsewhere).
    #[arg(long, value_name = "DIR")]
    active: PathBuf,
    /// Every replica of the active (repeat the option).
    #[arg(long, value_name = "DIR")]
    replica: Vec<PathBuf>,
    /// The cluster file: every node's copy other than the active's is a replica.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The database has no copy at all (required when neither --config nor --replica is
    /// given).
    #[arg(long, conflicts_with_all = ["replica", "config"])]
    standalone: bool,
    /// Circular logging: delete without waiting for a backup.
    #[arg(long)]
    circular: bool,
    /// The log directory's space budget in bytes (0: no space warning).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    budget: u64,
    /// Warn when the log uses at least this fraction of the budget.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.8)]
    warn_at: f64,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ReplAction {
    /// Create the passive copy from a snapshot of the active (which must not be open).
    Seed(ReplPairArgs),
    /// Run the replication service until Ctrl-C or --duration, a status line every second.
    Run(ReplRunArgs),
    /// The copy status: state, queues, generations, loss window (exit 1 when Failed).
    Status(ReplicaArgs),
    /// Pause shipping and replay.
    Suspend(ReplControlArgs),
    /// Continue shipping and replay.
    Resume(ReplControlArgs),
    /// Compare the passive's content with the active's at one log position.
    Verify(ReplPairArgs),
}

#[derive(Debug, Subcommand)]
enum LogAction {
    /// Dump one generation file, verify a whole log directory, or print a range of its
    /// records as pg_waldump does (--from, --to, --table, --stats, --follow).
    Dump(LogDumpArgs),
}

#[derive(Debug, Subcommand)]
enum CheckpointAction {
    /// Dump a checkpoint file (or the one in a log directory).
    Dump(CheckpointDumpArgs),
}

/// A database and the output format.
#[derive(Debug, Args)]
struct DatabaseArgs {
    /// A database directory (holding bluejet.db) or the database file.
    path: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `dump`.
#[derive(Debug, Args)]
struct DumpArgs {
    /// A database directory or file.
    path: PathBuf,
    /// The table.
    table: String,
    /// Keys and values in hex instead of escaped text.
    #[arg(long)]
    hex: bool,
    /// Stop after N entries.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Show at most N bytes of each value.
    #[arg(long, value_name = "N")]
    value_bytes: Option<usize>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `compact`.
#[derive(Debug, Args)]
struct CompactArgs {
    /// The database directory to compact (cleanly shut down).
    source: PathBuf,
    /// A new (or empty) directory for the compacted database.
    destination: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `repair`.
#[derive(Debug, Args)]
struct RepairArgs {
    /// A database directory (holding bluejet.db) or the database file.
    path: PathBuf,
    /// Repair a database that was not shut down cleanly without recovering it first: what
    /// only its log holds is lost (for when recovery fails).
    #[arg(long)]
    force: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `log dump`.
#[derive(Debug, Args)]
struct LogDumpArgs {
    /// A generation file (E00.log, E0000000001.log) or a log directory.
    path: PathBuf,
    /// List every record.
    #[arg(long)]
    records: bool,
    /// Only records from this position: GENERATION:OFFSET, or (G,O) as the tool prints
    /// positions, or G for the start of generation G. It must start a record.
    #[arg(long, value_name = "POS", value_parser = position_argument::parse)]
    from: Option<LogPosition>,
    /// Only records that start before this position (same notation as --from).
    #[arg(long, value_name = "POS", value_parser = position_argument::parse)]
    to: Option<LogPosition>,
    /// Keep printing records as the log grows and rolls to new generations, until Ctrl-C or
    /// SIGTERM (from the end of the log unless --from says otherwise). Takes no lock and
    /// changes nothing, so the database's owner runs on.
    #[arg(long, conflicts_with_all = ["stats", "records"])]
    follow: bool,
    /// Statistics instead of records: records by kind with counts and bytes, transactions
    /// committed and rolled back, commits per second, bytes per generation.
    #[arg(long, conflicts_with = "records")]
    stats: bool,
    /// Only records touching table NAME, and the commits and rollbacks of the transactions
    /// that touched it.
    #[arg(long, value_name = "NAME")]
    table: Option<String>,
    /// Print one JSON document instead of text (with --follow: one a line).
    #[arg(long)]
    json: bool,
    /// The stream's base name [default: E00; for a file, taken from its name].
    #[arg(long, value_parser = parse_base)]
    base: Option<BaseName>,
}

/// Options of `checkpoint dump`.
#[derive(Debug, Args)]
struct CheckpointDumpArgs {
    /// A checkpoint file (E00.chk) or a log directory.
    path: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// The stream's base name, to find the checkpoint in a directory.
    #[arg(long, value_parser = parse_base, default_value = "E00")]
    base: BaseName,
}

/// Options of `demo`.
#[derive(Debug, Args)]
struct DemoArgs {
    /// Put the cluster here (an empty or new directory) instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the nodes' directories and the witness and print where they are.
    #[arg(long)]
    keep: bool,
    /// Concurrent writer threads of the mail transport.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    writers: u16,
    /// Messages delivered at least (delivery goes on while the demo runs).
    #[arg(long, alias = "transactions", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Mailboxes to deliver into.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    mailboxes: u32,
    /// Messages per second the transport delivers, all writers together.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// An active database and its replica.
#[derive(Debug, Args)]
struct ReplPairArgs {
    /// The active database's directory.
    #[arg(long, value_name = "DIR")]
    active: PathBuf,
    /// The replica directory.
    #[arg(long, value_name = "DIR")]
    replica: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `repl run`.
#[derive(Debug, Args)]
struct ReplRunArgs {
    #[command(flatten)]
    pair: ReplPairArgs,
    /// Replay only generations closed at least this long ago (a lagged copy).
    #[arg(long, value_name = "SECONDS", value_parser = commands::repl_run::parse_seconds)]
    lag: Option<Duration>,
    /// Compress shipped generations with zstd.
    #[arg(long)]
    compress: bool,
    /// Recount every entry of the copy at a proof point at most this often (default 600;
    /// 0: at every proof point, which holds replay for a read of the whole copy each time).
    #[arg(long, value_name = "SECONDS", value_parser = commands::repl_run::parse_seconds)]
    recount_interval: Option<Duration>,
    /// Stop after this long instead of waiting for Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = commands::repl_run::parse_seconds)]
    duration: Option<Duration>,
}

/// A replica and the output format.
#[derive(Debug, Args)]
struct ReplicaArgs {
    /// The replica directory.
    #[arg(long, value_name = "DIR")]
    replica: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `repl suspend` and `repl resume`.
#[derive(Debug, Args)]
struct ReplControlArgs {
    #[command(flatten)]
    replica: ReplicaArgs,
    /// Why: recorded in the control file and the event log, shown by `repl status`.
    #[arg(long, value_name = "TEXT")]
    comment: String,
}

fn parse_base(text: &str) -> Result<BaseName, String> {
    BaseName::new(text).map_err(|error| error.to_string())
}

fn run(command: Command) -> Result<Verdict, ToolError> {
    if let Some((path, json)) = inspected(&command) {
        live::announce(path, json);
    }
    match command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // Generated into memory first: clap_complete panics on a failed write (a closed
            // pipe), and the tool's own output exits quietly instead.
            let mut script = Vec::new();
            let mut command = help::complete(Cli::command());
            clap_complete::generate(shell, &mut command, "bluejet", &mut script);
            let script = String::from_utf8_lossy(&script);
            crate::out!("{}", script.trim_end());
            Ok(Verdict::Clean)
        }
        Command::Header(args) => commands::header::run(&args.path, args.json),
        Command::Checksum(args) => commands::checksum::run(&args.path, args.json),
        Command::Integrity(args) => commands::integrity::run(&args.path, args.json),
        Command::Space(args) => commands::space::run(&args.path, args.json),
        Command::Recover(args) => commands::recover::run(&args.path, args.json),
        Command::Dump(args) => commands::dump::run(
            &args.path,
            &args.table,
            &commands::dump::DumpOptions {
                hex: args.hex,
                limit: args.limit,
                value_bytes: args.value_bytes,
                json: args.json,
            },
        ),
        Command::Compact(args) => {
            commands::compact::run(&args.source, &args.destination, args.json)
        }
        Command::Repair(args) => commands::repair::run(&args.path, args.force, args.json),
        Command::Log {
            action: LogAction::Dump(args),
        }
        | Command::Ml(args) => commands::log_dump::run(
            &args.path,
            commands::log_dump::DumpOptions {
                base: args.base,
                records: args.records,
                from: args.from,
                to: args.to,
                follow: args.follow,
                stats: args.stats,
                table: args.table,
                json: args.json,
            },
        ),
        Command::Checkpoint {
            action: CheckpointAction::Dump(args),
        }
        | Command::Mk(args) => commands::checkpoint_dump::run(&args.path, args.base, args.json),
        Command::Demo(args) => commands::demo::run(&demo::DemoOptions {
            directory: args.dir,
            keep: args.keep,
            writers: usize::from(args.writers),
            messages: args.messages,
            mailboxes: args.mailboxes,
            rate: f64::from(args.rate),
            json: args.json,
        }),
        Command::Repl { action } => run_repl(action),
        Command::Node {
            action: NodeAction::Run(args),
        } => commands::node_run::run(&commands::node_run::RunOptions {
            config: args.file.config,
            duration: args.duration,
            json: args.file.json,
            load: args.load,
            metrics: args.metrics,
        }),
        Command::Cluster { action } => run_cluster(action),
        Command::Diverged {
            action: DivergedAction::Show(args),
        } => commands::diverged_show::run(&args.directory, args.json),
        Command::Diverged {
            action: DivergedAction::Reapply(args),
        } => commands::diverged_reapply::run(&commands::diverged_reapply::ReapplyOptions {
            directory: args.directory,
            to: args.to,
            timeout: args.timeout,
            json: args.json,
        }),
        Command::Backup(args) => run_backup(args),
        Command::Restore(args) => {
            commands::restore::run(&args.backups, &args.to, args.to_generation, args.json)
        }
        Command::Truncate(args) => {
            commands::backup_truncate::run(&commands::backup_truncate::TruncateOptions {
                active: args.active,
                replicas: args.replica,
                config: args.config,
                standalone: args.standalone,
                circular: args.circular,
                budget: args.budget,
                warn_at: args.warn_at,
                json: args.json,
            })
        }
    }
}

/// The path a read-only inspection reads (it may be live), and whether it prints JSON.
fn inspected(command: &Command) -> Option<(&Path, bool)> {
    match command {
        Command::Header(args)
        | Command::Checksum(args)
        | Command::Integrity(args)
        | Command::Space(args) => Some((&args.path, args.json)),
        Command::Dump(args) => Some((&args.path, args.json)),
        Command::Log {
            action: LogAction::Dump(args),
        }
        | Command::Ml(args) => Some((&args.path, args.json)),
        Command::Checkpoint {
            action: CheckpointAction::Dump(args),
        }
        | Command::Mk(args) => Some((&args.path, args.json)),
        _ => None,
    }
}

fn run_backup(args: BackupArgs) -> Result<Verdict, ToolError> {
    match (args.action, args.replica, args.to) {
        (Some(BackupAction::Verify(verify)), _, _) => {
            commands::backup_verify::run(&verify.path, verify.json)
        }
        (None, Some(replica), Some(to)) => {
            commands::backup::run(&replica, &to, args.incremental, args.json)
        }
        _ => Err(ToolError::Usage(
            "backup needs --replica DIR and --to DIR (or: backup verify DIR)".into(),
        )),
    }
}

fn run_cluster(action: ClusterAction) -> Result<Verdict, ToolError> {
    match action {
        ClusterAction::Init(args) => {
            commands::cluster_init::run(&args.file.config, args.comment.as_deref(), args.file.json)
        }
        ClusterAction::Certs(args) => {
            commands::cluster_certs::run(&args.dir, &args.nodes, args.days, args.json)
        }
        ClusterAction::Status(args) => commands::cluster_status::run(&args.config, args.json),
        ClusterAction::Move(args) => {
            commands::cluster_move::run(&commands::cluster_move::MoveOptions {
                config: args.file.config,
                to: args.to,
                comment: args.comment,
                validate_only: args.validate_only,
                timeout: args.timeout,
                json: args.file.json,
            })
        }
        ClusterAction::Mount(args) => {
            commands::cluster_mount::run(&commands::cluster_mount::MountOptions {
                config: args.file.config,
                node: args.node,
                force: args.force,
                comment: args.comment,
                timeout: args.timeout,
                json: args.file.json,
            })
        }
        ClusterAction::Backup(args) => {
            commands::cluster_backup::run(&commands::cluster_backup::BackupOptions {
                config: args.file.config,
                node: args.node,
                to: args.to,
                incremental: args.incremental,
                timeout: args.timeout,
                json: args.file.json,
            })
        }
    }
}

fn run_repl(action: ReplAction) -> Result<Verdict, ToolError> {
    match action {
        ReplAction::Seed(args) => commands::repl_seed::run(&args.active, &args.replica, args.json),
        ReplAction::Run(args) => commands::repl_run::run(&commands::repl_run::RunOptions {
            active: args.pair.active,
            replica: args.pair.replica,
            lag: args.lag,
            compress: args.compress,
            recount_interval: args.recount_interval,
            duration: args.duration,
            json: args.pair.json,
        }),
        ReplAction::Status(args) => commands::repl_status::run(&args.replica, args.json),
        ReplAction::Suspend(args) => commands::repl_control::run(
            &args.replica.replica,
            true,
            &args.comment,
            args.replica.json,
        ),
        ReplAction::Resume(args) => commands::repl_control::run(
            &args.replica.replica,
            false,
            &args.comment,
            args.replica.json,
        ),
        ReplAction::Verify(args) => {
            commands::repl_verify::run(&args.active, &args.replica, args.json)
        }
    }
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let command = help::complete(Cli::command());
    let parsed = command
        .clone()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
        .map_err(|error| help::without_hidden_suggestions(error, &command));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => {
            return match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    if let Err(problem) = error.print() {
                        eprintln!("bluejet: printing the help: {problem}");
                    }
                    ExitCode::from(exit::SUCCESS)
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    eprint!("{}", error.render());
                    ExitCode::from(exit::USAGE)
                }
                _ => {
                    let text = error.render().to_string();
                    let text = text.strip_prefix("error: ").unwrap_or(&text);
                    eprint!("bluejet: {text}");
                    ExitCode::from(exit::USAGE)
                }
            };
        }
    };
    logging::install();
    match run(cli.command) {
        Ok(verdict) => ExitCode::from(verdict.exit_code()),
        Err(error) => {
            eprintln!("bluejet: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
