//! A node's measurements in the Prometheus (OpenMetrics) text format, read afresh at every
//! scrape: the database's latency histograms and gauges, the node's role, and a passive
//! copy's queues and lag. `prometheus-client` does the encoding (names, HELP/TYPE lines,
//! cumulative `_bucket{le=...}`, `_sum`, `_count`, label escaping); this file only says what
//! is exposed.

use bluejet_engine::HistogramSnapshot;
use bluejet_engine::Metrics;
use bluejet_replication::cluster::{Node, Role};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The prefix of every metric name.
const PREFIX: &str = "bluejet";

/// The registry of a node: every family labelled with the node's name and its instance
/// directory (the database).
pub fn node_registry(node: Arc<Node>, database: &str) -> Registry {
    let labels = [
        (Cow::Borrowed("node"), Cow::Owned(node.name().to_owned())),
        (Cow::Borrowed("database"), Cow::Owned(database.to_owned())),
    ];
    let mut registry = Registry::with_prefix_and_labels(PREFIX, labels.into_iter());
    registry.register_collector(Box::new(NodeCollector { node }));
    registry
}

/// The registry rendered as text.
pub fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// Reads the node's status and its database's metrics at each scrape.
struct NodeCollector {
    node: Arc<Node>,
}

impl fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCollector")
            .field("node", &self.node.name())
            .finish()
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let status = self.node.status();
        encode_role(&mut encoder, status.role)?;
        gauge(
            &mut encoder,
            "node_epoch",
            "The epoch the node holds or joins.",
            status.epoch,
        )?;
        let serving = u64::from(status.serving);
        gauge(
            &mut encoder,
            "node_serving",
            "1 while the node accepts commits.",
            serving,
        )?;
        // Zeros while no database is open (joining), so that every family is always there.
        encode_database(&mut encoder, &self.node.metrics().unwrap_or_default())?;
        if let Some(copy) = status.copy {
            let help = "Closed generations of the active not yet copied and inspected.";
            gauge(
                &mut encoder,
                "copy_queue_generations",
                help,
                u64::from(copy.copy_queue),
            )?;
            let help = "Inspected generations not yet replayed.";
            gauge(
                &mut encoder,
                "replay_queue_generations",
                help,
                u64::from(copy.replay_queue),
            )?;
            let help =
                "Seconds since the newest closed generation was closed, while it is not replayed.";
            let lag = copy.replay_lag_seconds();
            let mut metric =
                encoder.encode_descriptor("replay_lag_seconds", help, None, MetricType::Gauge)?;
            metric.encode_gauge(&lag)?;
        }
        Ok(())
    }
}

/// `node_role{role=...}`: 1 for the node's role, 0 for the others.
fn encode_role(encoder: &mut DescriptorEncoder, role: Role) -> fmt::Result {
    let help = "The node's role: 1 for the role it has.";
    let mut family = encoder.encode_descriptor("node_role", help, None, MetricType::Gauge)?;
    for (name, each) in [
        ("active", Role::Active),
        ("passive", Role::Passive),
        ("joining", Role::Joining),
    ] {
        let labels = [("role", name)];
        family
            .encode_family(&labels)?
            .encode_gauge(&u64::from(role == each))?;
    }
    Ok(())
}

fn encode_database(encoder: &mut DescriptorEncoder, metrics: &Metrics) -> fmt::Result {
    counter(
        encoder,
        "commits",
        "Transactions committed (or replayed) since the database was opened.",
        metrics.commits,
    )?;
    counter(
        encoder,
        "checkpoints",
        "Checkpoints completed since the database was opened.",
        metrics.checkpoints,
    )?;
    histogram(
        encoder,
        "commit_duration_seconds",
        "Commit latency, durable when asked.",
        &metrics.commit_latency,
    )?;
    histogram(
        encoder,
        "log_sync_duration_seconds",
        "Latency of one fdatasync of a log generation.",
        &metrics.log_sync_latency,
    )?;
    histogram(
        encoder,
        "log_flush_duration_seconds",
        "Latency of one group flush of the log that syncs.",
        &metrics.log_flush_latency,
    )?;
    histogram(
        encoder,
        "checkpoint_duration_seconds",
        "Checkpoint latency.",
        &metrics.checkpoint_latency,
    )?;
    histogram(
        encoder,
        "replay_generation_duration_seconds",
        "Latency of replaying one shipped generation on a passive copy.",
        &metrics.replay_latency,
    )?;
    gauge(
        encoder,
        "checkpoint_depth_bytes",
        "Log bytes between the checkpoint and the newest commit.",
        metrics.checkpoint_depth_bytes,
    )?;
    gauge(
        encoder,
        "checkpoint_depth_generations",
        "Log generations between the checkpoint and the newest commit.",
        u64::from(metrics.checkpoint_depth_generations),
    )?;
    Ok(())
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    snapshot: &HistogramSnapshot,
) -> fmt::Result {
    // The encoder accumulates per-bucket counts itself and writes `+Inf` for `f64::MAX`.
    let buckets: Vec<(f64, u64)> = snapshot
        .buckets()
        .map(|(bound, count)| (if bound.is_finite() { bound } else { f64::MAX }, count))
        .collect();
    encoder
        .encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(snapshot.sum_seconds(), snapshot.count(), &buckets, None)
}
