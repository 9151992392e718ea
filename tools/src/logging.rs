//! Where the library's `tracing` events go: stderr, at the level `RUST_LOG` says
//! (`warn` when unset), so that a background failure (a checkpoint, a log close, a
//! replication stage) shows as it happens during `node run` or `repl run`. The libraries
//! only emit events; the tool is the one place that installs a subscriber.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The level when `RUST_LOG` is unset or unreadable: failures and warnings only.
const DEFAULT_FILTER: &str = "warn";

/// Installs the stderr subscriber (once; a second call changes nothing).
pub fn install() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    if let Err(error) = installed {
        eprintln!("bluejet: background failures will not be shown: {error}");
    }
}
