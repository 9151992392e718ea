//! The `bluejet` command line: inspection and verification of BlueJet log files, and a demo.
//!
//! ```text
//! bluejet log dump PATH [--records] [--json] [--base E00]   (alias: bluejet ml PATH)
//! bluejet checkpoint dump PATH [--json] [--base E00]        (alias: bluejet mk PATH)
//! bluejet demo [--dir DIR] [--keep] [--writers N] [--transactions N] [--json]
//! ```
//!
//! Exit codes: 0 all good, 1 damage or inconsistency found, 2 bad usage, 3 I/O or other
//! error. Errors go to stderr, prefixed `bluejet: `.

mod commands;
mod exit;
mod mail;
mod output;
mod problem;
mod records;

use bluejet_engine::log::BaseName;
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use exit::{ToolError, Verdict};
use std::path::PathBuf;
use std::process::ExitCode;

/// Inspect and verify BlueJet log streams.
#[derive(Debug, Parser)]
#[command(name = "bluejet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log streams and generation files.
    Log {
        #[command(subcommand)]
        action: LogAction,
    },
    /// Alias of `log dump`.
    Ml(LogDumpArgs),
    /// Checkpoint files.
    Checkpoint {
        #[command(subcommand)]
        action: CheckpointAction,
    },
    /// Alias of `checkpoint dump`.
    Mk(CheckpointDumpArgs),
    /// Write a synthetic mail stream with concurrent writers, read it back and verify it.
    Demo(DemoArgs),
}

#[derive(Debug, Subcommand)]
enum LogAction {
    /// Dump one generation file, or verify a whole log directory.
    Dump(LogDumpArgs),
}

#[derive(Debug, Subcommand)]
enum CheckpointAction {
    /// Dump a checkpoint file (or the one in a log directory).
    Dump(CheckpointDumpArgs),
}

/// Options of `log dump`.
#[derive(Debug, Args)]
struct LogDumpArgs {
    /// A generation file (E00.log, E0000000001.log) or a log directory.
    path: PathBuf,
    /// List every record.
    #[arg(long)]
    records: bool,
    /// Print one JSON document instead of text.
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
    /// Write the log here (an empty or new directory) instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the log files and print where they are.
    #[arg(long)]
    keep: bool,
    /// Concurrent writer threads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    writers: u16,
    /// Delivery transactions in all.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    transactions: u64,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_base(text: &str) -> Result<BaseName, String> {
    BaseName::new(text).map_err(|error| error.to_string())
}

fn run(command: Command) -> Result<Verdict, ToolError> {
    match command {
        Command::Log {
            action: LogAction::Dump(args),
        }
        | Command::Ml(args) => {
            commands::log_dump::run(&args.path, args.base, args.records, args.json)
        }
        Command::Checkpoint {
            action: CheckpointAction::Dump(args),
        }
        | Command::Mk(args) => commands::checkpoint_dump::run(&args.path, args.base, args.json),
        Command::Demo(args) => commands::demo::run(&commands::demo::DemoOptions {
            directory: args.dir,
            keep: args.keep,
            writers: usize::from(args.writers),
            transactions: args.transactions,
            json: args.json,
        }),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            return match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = error.print();
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
    match run(cli.command) {
        Ok(verdict) => ExitCode::from(verdict.exit_code()),
        Err(error) => {
            eprintln!("bluejet: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
