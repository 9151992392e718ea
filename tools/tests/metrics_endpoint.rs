//! `bluejet node run --metrics ADDR` on a real two-node cluster under load: both nodes'
//! endpoints are scraped with an HTTP client, every line of the answer is parsed, and the
//! families a monitoring system relies on are there with sane values (commits counted,
//! histograms cumulative with their `_count` equal to the `+Inf` bucket, a passive copy's
//! replay measured). A taken address is refused before the node starts.

// Test code: a panic is how a test reports a failure, so its helpers unwrap too
// (`allow-unwrap-in-tests` in clippy.toml covers only the `#[test]` functions).
#![allow(clippy::unwrap_used)]

mod common;

use common::exposition::{self, Family};
use common::{
    arg, cluster_files, cluster_files_without_init, cluster_node, code, text, wait_for_cluster,
    Nodes,
};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

/// A port nobody listens on now (the OS's choice, released at once).
fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// GET `path` on `address`: the status, the content type and the body.
fn get(address: SocketAddr, path: &str) -> Result<(u16, String, String), ureq::Error> {
    let mut response = agent().get(format!("http://{address}{path}")).call()?;
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.body_mut().read_to_string()?;
    Ok((response.status().as_u16(), content_type, body))
}

/// Scrapes `address` (retrying while the node starts) and parses every line.
fn scrape(address: SocketAddr) -> BTreeMap<String, Family> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match get(address, "/metrics") {
            Ok((200, content_type, body)) => {
                assert!(content_type.contains("text"), "{content_type}");
                assert!(body.ends_with("# EOF\n"), "{body}");
                return exposition::parse(&body);
            }
            Ok((status, _, body)) => panic!("{address}: status {status}: {body}"),
            Err(error) => assert!(Instant::now() < deadline, "{address}: {error}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn family<'a>(families: &'a BTreeMap<String, Family>, name: &str) -> &'a Family {
    families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name} among {:?}", families.keys()))
}

/// The one value of a counter or gauge family (with the given extra labels).
fn value(families: &BTreeMap<String, Family>, name: &str, sample: &str) -> f64 {
    let family = family(families, name);
    let mut samples = family.named(sample);
    let found = samples
        .next()
        .unwrap_or_else(|| panic!("no sample {sample}: {family:?}"));
    assert!(samples.next().is_none(), "{sample} twice: {family:?}");
    found.value
}

/// Checks a histogram family's shape; returns its count.
fn histogram(families: &BTreeMap<String, Family>, name: &str) -> u64 {
    let family = family(families, name);
    assert_eq!(family.kind, "histogram", "{family:?}");
    let buckets: Vec<(f64, f64)> = family
        .named(&format!("{name}_bucket"))
        .map(|sample| {
            let le = &sample.labels["le"];
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (bound, sample.value)
        })
        .collect();
    assert!(buckets.len() > 2, "{family:?}");
    assert!(
        buckets.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "bounds grow: {buckets:?}"
    );
    assert!(
        buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1),
        "cumulative: {buckets:?}"
    );
    let (last_bound, last_count) = *buckets.last().unwrap();
    assert_eq!(last_bound, f64::INFINITY, "{buckets:?}");
    let count = value(families, name, &format!("{name}_count"));
    assert_eq!(count, last_count, "_count is the +Inf bucket: {family:?}");
    let sum = value(families, name, &format!("{name}_sum"));
    assert!(sum >= 0.0 && sum.is_finite(), "{family:?}");
    assert!(count == 0.0 || sum > 0.0, "{family:?}");
    // A count parsed as f64: a whole number well below 2^53 here, and `as` saturates.
    #[allow(clippy::cast_possible_truncation)]
    let count = count as u64;
    count
}

/// Every sample names the node and the database.
fn assert_labelled(families: &BTreeMap<String, Family>, node: &str) {
    for family in families.values() {
        for sample in &family.samples {
            assert_eq!(
                sample.labels.get("node").map(String::as_str),
                Some(node),
                "{sample:?}"
            );
            let database = sample.labels.get("database").expect("a database label");
            assert!(database.ends_with(&format!("/{node}")), "{sample:?}");
        }
    }
}

const DATABASE_FAMILIES: [&str; 5] = [
    "bluejet_commit_duration_seconds",
    "bluejet_log_sync_duration_seconds",
    "bluejet_log_flush_duration_seconds",
    "bluejet_checkpoint_duration_seconds",
    "bluejet_replay_generation_duration_seconds",
];

#[test]
fn both_nodes_serve_their_metrics_and_every_line_parses() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = cluster_files(root.path());
    let (a_address, b_address) = (free_address(), free_address());
    let (a_metrics, b_metrics) = (a_address.to_string(), b_address.to_string());
    let nodes = Nodes::start_each(&[
        (&a, &["--load", "200", "--metrics", &a_metrics]),
        (&b, &["--metrics", &b_metrics]),
    ]);
    wait_for_cluster(&a, "a active and b passive replaying its load", |status| {
        cluster_node(status, "a")["heartbeat"]["role"] == "Active"
            && cluster_node(status, "b")["copy"]["state"] == "Healthy"
            && cluster_node(status, "b")["copy"]["replayed_position"]["generation"]
                .as_u64()
                .is_some_and(|generation| generation >= 2)
    });

    let active = scrape(a_address);
    assert_labelled(&active, "a");
    let roles: Vec<_> = family(&active, "bluejet_node_role")
        .samples
        .iter()
        .map(|sample| (sample.labels["role"].clone(), sample.value))
        .collect();
    assert!(roles.contains(&("active".into(), 1.0)), "{roles:?}");
    assert!(roles.contains(&("passive".into(), 0.0)), "{roles:?}");
    assert_eq!(family(&active, "bluejet_commits").kind, "counter");
    let commits = value(&active, "bluejet_commits", "bluejet_commits_total");
    assert!(commits > 0.0, "{commits}");
    let committed = histogram(&active, "bluejet_commit_duration_seconds");
    assert!(
        committed > 0 && committed as f64 <= commits,
        "{committed} of {commits}"
    );
    assert!(histogram(&active, "bluejet_log_sync_duration_seconds") > 0);
    assert!(histogram(&active, "bluejet_log_flush_duration_seconds") > 0);
    for name in DATABASE_FAMILIES {
        histogram(&active, name);
    }
    let depth = value(
        &active,
        "bluejet_checkpoint_depth_bytes",
        "bluejet_checkpoint_depth_bytes",
    );
    assert!(depth >= 0.0, "{depth}");
    assert_eq!(
        value(&active, "bluejet_node_serving", "bluejet_node_serving"),
        1.0
    );
    assert!(
        !active.contains_key("bluejet_replay_queue_generations"),
        "an active has no copy"
    );

    // The passive's replay is measured once it has replayed a generation of the load.
    let deadline = Instant::now() + Duration::from_secs(30);
    let passive = loop {
        let passive = scrape(b_address);
        if histogram(&passive, "bluejet_replay_generation_duration_seconds") > 0 {
            break passive;
        }
        assert!(
            Instant::now() < deadline,
            "b never measured a replay: {passive:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_labelled(&passive, "b");
    for name in DATABASE_FAMILIES {
        histogram(&passive, name);
    }
    assert!(value(&passive, "bluejet_commits", "bluejet_commits_total") > 0.0);
    assert_eq!(histogram(&passive, "bluejet_commit_duration_seconds"), 0);
    for gauge in [
        "bluejet_copy_queue_generations",
        "bluejet_replay_queue_generations",
        "bluejet_replay_lag_seconds",
    ] {
        let found = value(&passive, gauge, gauge);
        assert!(found >= 0.0 && found.is_finite(), "{gauge} {found}");
    }
    assert_eq!(
        value(&passive, "bluejet_node_serving", "bluejet_node_serving"),
        0.0
    );

    // Only GET /metrics is served.
    let (status, _, _) = get(a_address, "/other").unwrap();
    assert_eq!(status, 404);

    let outputs = nodes.stop();
    for output in &outputs {
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("/metrics"),
            "the address is announced: {stderr}"
        );
    }
    // The endpoints close with their nodes.
    assert!(get(a_address, "/metrics").is_err());
}

#[test]
fn a_taken_address_is_refused_before_the_node_starts() {
    let root = tempfile::tempdir().unwrap();
    let (a, _b) = cluster_files_without_init(root.path());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_bluejet"))
        .args([
            "node",
            "run",
            "--config",
            arg(&a),
            "--duration",
            "5",
            "--metrics",
            &address,
        ])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 3, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve metrics on {address}")) && stderr.contains("in use"),
        "{stderr}"
    );
    // Nothing was started: the node's instance directory was never made.
    assert!(!root.path().join("a").exists(), "{stderr}");
}
