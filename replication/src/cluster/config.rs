//! A node's configuration: itself, its peer, the witness, the mount dial and the timings.

use crate::replica::ReplicaConfig;
use bluejet_engine::file::{FileSystem, OsFileSystem};
use bluejet_engine::Options;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How many lost generations an automatic failover accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountDial {
    /// Never mount with a generation lost.
    Lossless,
    /// At most this many (default 6).
    GoodAvailability(u32),
    /// At most this many (default 12).
    BestAvailability(u32),
}

impl MountDial {
    /// The most generations this dial lets a failover lose.
    pub fn allowed(self) -> u32 {
        match self {
            Self::Lossless => 0,
            Self::GoodAvailability(n) | Self::BestAvailability(n) => n,
        }
    }

    /// Parses `lossless`, `good`, `best`, optionally with `:N`.
    pub fn parse(text: &str) -> Option<Self> {
        let (name, count) = match text.split_once(':') {
            Some((name, count)) => (name, Some(count.parse().ok()?)),
            None => (text, None),
        };
        match name.to_ascii_lowercase().as_str() {
            "lossless" => Some(Self::Lossless),
            "good" | "goodavailability" => Some(Self::GoodAvailability(count.unwrap_or(6))),
            "best" | "bestavailability" => Some(Self::BestAvailability(count.unwrap_or(12))),
            _ => None,
        }
    }
}

/// The cluster file `bluejet node run --config FILE` reads (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeFile {
    /// This node's name.
    pub name: String,
    /// This node's instance directory.
    pub instance: PathBuf,
    /// The peer's name.
    pub peer: String,
    /// The peer's instance directory, as this node reaches it (without `network`); with
    /// `network`, the root its files are named under (default `/bluejet-peer/<peer>`).
    #[serde(default)]
    pub peer_instance: PathBuf,
    /// The witness directory.
    pub witness: PathBuf,
    /// `lossless`, `good[:N]` or `best[:N]` (default `good`).
    #[serde(default)]
    pub dial: Option<String>,
    /// Replication over TCP with mutual TLS instead of a shared directory.
    #[serde(default)]
    pub network: Option<super::network::NetworkFile>,
    /// Synchronous commit over the network: `off` (default), `received` or `flushed`.
    #[serde(default)]
    pub synchronous: Option<String>,
    /// How long a commit waits for the passive before the node degrades to asynchronous
    /// commit (or, strict, refuses it), in ms (default 5000).
    #[serde(default)]
    pub synchronous_timeout_ms: Option<u64>,
    /// Refuse commits the passive does not confirm instead of degrading (default false).
    #[serde(default)]
    pub synchronous_strict: Option<bool>,
    /// How often the passive copy recounts every entry at a proof point, in seconds
    /// (default 600; 0: at every proof point); `null` keeps the default.
    #[serde(default)]
    pub recount_interval_seconds: Option<u64>,
}

/// Everything a node needs.
#[derive(Clone)]
pub struct NodeConfig {
    /// This node's name.
    pub name: String,
    /// This node's instance directory: a replica layout whose `database/` is the active
    /// database's directory when the node is active.
    pub instance: PathBuf,
    /// The peer's name.
    pub peer: String,
    /// The peer's instance directory.
    pub peer_instance: PathBuf,
    /// The witness directory.
    pub witness: PathBuf,
    /// The mount dial.
    pub dial: MountDial,
    /// Database options (its file system is this node's disk).
    pub options: Options,
    /// How the peer's instance is reached.
    pub peer_fs: Arc<dyn FileSystem>,
    /// How the witness is reached.
    pub witness_fs: Arc<dyn FileSystem>,
    /// Lease length (default 3 s).
    pub lease: Duration,
    /// Commits stop this long before the lease ends (default 500 ms).
    pub safety: Duration,
    /// The margin past another node's lease, on this node's monotonic clock, before it may
    /// take the database: request latency and clock drift over a lease (default 500 ms).
    /// Wall clocks are never compared across machines.
    pub skew: Duration,
    /// Heartbeat and control-loop period (default 200 ms).
    pub heartbeat_interval: Duration,
    /// Peer heartbeat age that starts a failover (default 2 s).
    pub failover_after: Duration,
    /// Replication settings of the passive role (paths are filled in by the node).
    pub replica: ReplicaConfig,
    /// Delete closed generations without waiting for a backup (default off).
    pub circular_logging: bool,
    /// Space the log may take before a warning at 80% (default 1 GiB).
    pub log_budget_bytes: u64,
    /// How often the active deletes what no one needs any more (default 5 s).
    pub truncate_interval: Duration,
    /// The network transport, when the peer is reached over TCP (its file system is then
    /// `peer_fs`).
    pub network: Option<super::network::Network>,
    /// Synchronous commit with the passive (over the network only; default off).
    pub synchronous: super::sync_commit::SyncSettings,
}

impl NodeConfig {
    /// A node on the real disk with the default timings.
    pub fn new(
        name: &str,
        instance: &Path,
        peer: &str,
        peer_instance: &Path,
        witness: &Path,
    ) -> Self {
        Self {
            name: name.to_owned(),
            instance: instance.to_owned(),
            peer: peer.to_owned(),
            peer_instance: peer_instance.to_owned(),
            witness: witness.to_owned(),
            dial: MountDial::GoodAvailability(6),
            options: Options::default(),
            peer_fs: Arc::new(OsFileSystem),
            witness_fs: Arc::new(OsFileSystem),
            lease: Duration::from_secs(3),
            safety: Duration::from_millis(500),
            skew: Duration::from_millis(500),
            heartbeat_interval: Duration::from_millis(200),
            failover_after: Duration::from_secs(2),
            replica: ReplicaConfig::new(&peer_instance.join("database"), instance),
            circular_logging: false,
            log_budget_bytes: 1 << 30,
            truncate_interval: Duration::from_secs(5),
            network: None,
            synchronous: Default::default(),
        }
    }

    /// From a cluster file.
    pub fn from_file(file: &NodeFile) -> Result<Self, String> {
        let peer_instance = match (&file.network, file.peer_instance.as_os_str().is_empty()) {
            (_, false) => file.peer_instance.clone(),
            (Some(_), true) => super::network::peer_root(&file.peer),
            (None, true) => return Err("peer_instance is required without network".into()),
        };
        let mut config = Self::new(
            &file.name,
            &file.instance,
            &file.peer,
            &peer_instance,
            &file.witness,
        );
        if let Some(network) = &file.network {
            let network = super::network::Network::from_file(
                network,
                &file.name,
                &file.peer,
                &peer_instance,
            )?;
            config.peer_fs = Arc::clone(&network.peer) as Arc<dyn FileSystem>;
            config.network = Some(network);
        }
        config.synchronous = synchronous_settings(file)?;
        if let Some(seconds) = file.recount_interval_seconds {
            // The bound `repl run --recount-interval` has too.
            if seconds > 365 * 24 * 3600 {
                return Err(format!("recount_interval_seconds {seconds} is over a year"));
            }
            config.replica.replay.recount_interval = Some(Duration::from_secs(seconds));
        }
        if let Some(dial) = &file.dial {
            config.dial =
                MountDial::parse(dial).ok_or_else(|| format!("unknown mount dial {dial:?}"))?;
        }
        Ok(config)
    }

    /// The active database's directory on this node.
    pub fn database(&self) -> PathBuf {
        self.instance.join("database")
    }

    /// The peer's database directory (the log a passive copy ships from).
    pub fn peer_database(&self) -> PathBuf {
        self.peer_instance.join("database")
    }

    /// The replication settings of this node as a passive copy of its peer.
    pub fn replica_config(&self) -> ReplicaConfig {
        let mut replica = self.replica.clone();
        replica.active = self.peer_database();
        replica.replica = self.instance.clone();
        replica.node = Some(self.name.clone());
        replica.active_fs = Arc::clone(&self.peer_fs);
        replica.options.log.file_system = Arc::clone(&self.options.log.file_system);
        if self.circular_logging {
            replica.replay.log_retention = crate::replay::ReplicaLogRetention::Circular;
        }
        replica
    }

    /// The replication settings for seeding the peer from this node.
    pub fn peer_replica_config(&self) -> ReplicaConfig {
        let mut replica = self.replica.clone();
        replica.active = self.database();
        replica.replica = self.peer_instance.clone();
        replica.active_fs = Arc::clone(&self.options.log.file_system);
        replica.options.log.file_system = Arc::clone(&self.peer_fs);
        replica
    }
}

/// The synchronous commit settings of a cluster file: refused without the network transport
/// (block mode carries the passive's confirmations).
fn synchronous_settings(file: &NodeFile) -> Result<super::sync_commit::SyncSettings, String> {
    use super::sync_commit::{SyncLevel, SyncSettings};
    let mut settings = SyncSettings::default();
    if let Some(level) = &file.synchronous {
        settings.level = SyncLevel::parse(level).ok_or_else(|| {
            format!("synchronous {level:?}: expected \"off\", \"received\" or \"flushed\"")
        })?;
    }
    if let Some(ms) = file.synchronous_timeout_ms {
        if !(10..=600_000).contains(&ms) {
            return Err(format!(
                "synchronous_timeout_ms {ms} is not from 10 to 600000"
            ));
        }
        settings.timeout = Duration::from_millis(ms);
    }
    settings.strict = file.synchronous_strict.unwrap_or(false);
    if settings.level != SyncLevel::Off && file.network.is_none() {
        return Err("synchronous commit needs the network transport (a \"network\" object)".into());
    }
    Ok(settings)
}
