//! What the first hour with tidemark shows an operator, on the scripted stub cluster: the
//! status page's counts of groups and topics seen, monitored and filtered out, partitions
//! and series; the warning when filters match nothing (once, and a line when they match
//! again); and authorization failures, named once per cycle and resource with the ACL that
//! fixes them, and counted.
//!
//! Every expected value comes from what the test scripted into the stub, never from what
//! tidemark read. The log lines are captured as JSON from this test binary's subscriber.

use tidemark_testkit as common;

use common::workload::now_ms;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::exporter::{config, RunningExporter, FAST};
use common::stub::{code, StubCluster, StubGroup, Target};
use kafka_protocol::messages::ApiKey;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

// Logs ------------------------------------------------------------------------------------

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture every log line of this binary, as JSON, at info and above.
fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_writer(|| LogWriter)
            .init();
    });
}

/// The fields (message included) of every captured line of `cluster` at `level`.
fn logs(cluster: &str, level: &str) -> Vec<BTreeMap<String, String>> {
    let text =
        String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == level)
        .filter_map(|v| {
            let fields = v["fields"].as_object()?;
            let fields: BTreeMap<String, String> = fields
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect();
            (fields.get("cluster").map(String::as_str) == Some(cluster)).then_some(fields)
        })
        .collect()
}

/// Captured lines of `cluster` at `level` whose message starts with `message`.
fn count(cluster: &str, level: &str, message: &str) -> usize {
    logs(cluster, level)
        .iter()
        .filter(|f| f.get("message").is_some_and(|m| m.starts_with(message)))
        .count()
}

// The status page --------------------------------------------------------------------------

/// The cells of `cluster`'s row on the status page, by column header.
async fn status_row(exp: &RunningExporter, cluster: &str) -> BTreeMap<String, String> {
    let page = exp.get("/").await.body;
    let headers: Vec<&str> = page
        .split("<th>")
        .skip(1)
        .filter_map(|h| h.split("</th>").next())
        .collect();
    let start = page
        .find(&format!("<tr><td>{cluster}</td>"))
        .unwrap_or_else(|| panic!("no row for {cluster}:\n{page}"));
    let row = &page[start + "<tr><td>".len()..];
    let row = &row[..row.find("</td></tr>").expect("end of the row")];
    let cells: Vec<&str> = row.split("</td><td>").collect();
    assert_eq!(cells.len(), headers.len(), "{page}");
    headers
        .into_iter()
        .map(str::to_owned)
        .zip(cells.into_iter().map(str::to_owned))
        .collect()
}

// Filters -----------------------------------------------------------------------------------

/// Topics orders (2 partitions), payments (1) and the internal __consumer_offsets (1), all
/// at offsets 0..10; groups app-a, app-b and other, caught up on every partition.
fn filter_setup(stub: &StubCluster) {
    for (topic, partitions) in [("orders", 2), ("payments", 1), ("__consumer_offsets", 1)] {
        stub.add_topic(topic, &vec![1; partitions]);
        for p in 0..partitions as i32 {
            stub.set_watermarks(topic, p, 0, 10);
        }
    }
    stub.set_internal("__consumer_offsets");
    for g in ["app-a", "app-b", "other"] {
        stub.add_group(
            StubGroup::consumer(g)
                .offset("orders", 0, 10)
                .offset("orders", 1, 10)
                .offset("payments", 0, 10),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_counts_what_the_filters_keep() {
    capture_logs();
    let stub = StubCluster::start(&[1]).await;
    filter_setup(&stub);
    let filters = "group_whitelist = [\"^app\"]\ntopic_whitelist = [\"^orders$\"]";
    let exp = RunningExporter::start(&config("kept", &stub.bootstrap(), FAST, filters)).await;
    exp.wait_cycles("kept", 2, WAIT).await;
    let row = status_row(&exp, "kept").await;
    // 3 groups listed, app-a and app-b kept; 3 topics, orders kept.
    assert_eq!(
        row["groups seen / monitored / filtered out"], "3 / 2 / 1",
        "{row:?}"
    );
    assert_eq!(
        row["topics seen / monitored / filtered out"], "3 / 1 / 2",
        "{row:?}"
    );
    assert_eq!(row["partitions"], "2", "{row:?}");
    // Partitions: latest and earliest offsets of orders/0 and orders/1 (4). Group
    // partitions: 2 groups × 2 partitions × 6 families, time lag 0 as they are caught up
    // (24). Groups: state, stale, max lag, max time lag, sum lag, and for their one topic
    // its sum, max lag and max time lag (16).
    assert_eq!(row["series"], "44", "{row:?}");
    assert_eq!(row["result"], "ok", "{row:?}");
    assert_eq!(row["last error"], "none", "{row:?}");
    assert!(!row["last success (UTC)"].contains("never"), "{row:?}");
    exp.shutdown().await;
    assert_eq!(count("kept", "WARN", "group filters match nothing"), 0);
    assert_eq!(count("kept", "WARN", "topic filters match nothing"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_that_match_nothing_are_named_once_and_again_when_they_match() {
    capture_logs();
    let stub = StubCluster::start(&[1]).await;
    filter_setup(&stub);
    let filters = "group_whitelist = [\"^late\"]\ntopic_whitelist = [\"^late\"]";
    let exp = RunningExporter::start(&config("nothing", &stub.bootstrap(), FAST, filters)).await;
    exp.wait_cycles("nothing", 3, WAIT).await;
    let row = status_row(&exp, "nothing").await;
    let groups = &row["groups seen / monitored / filtered out"];
    let topics = &row["topics seen / monitored / filtered out"];
    assert!(
        groups.starts_with("3 / 0 / 3") && groups.contains("the group filters match nothing"),
        "{row:?}"
    );
    assert!(
        topics.starts_with("3 / 0 / 3") && topics.contains("the topic filters match nothing"),
        "{row:?}"
    );
    assert_eq!(
        (row["partitions"].as_str(), row["series"].as_str()),
        ("0", "0"),
        "{row:?}"
    );
    // Once, however many cycles it lasts.
    assert_eq!(count("nothing", "WARN", "group filters match nothing"), 1);
    assert_eq!(count("nothing", "WARN", "topic filters match nothing"), 1);

    // A group and a topic the filters keep show up: one line each, then quiet again.
    stub.add_topic("late-topic", &[1]);
    stub.set_watermarks("late-topic", 0, 0, 5);
    stub.add_group(StubGroup::consumer("late-group").offset("late-topic", 0, 5));
    let n = exp.cycles_ok("nothing");
    exp.wait_cycles("nothing", n + 3, WAIT).await;
    assert_eq!(
        count("nothing", "INFO", "group filters match groups again"),
        1
    );
    assert_eq!(
        count("nothing", "INFO", "topic filters match topics again"),
        1
    );
    assert_eq!(count("nothing", "WARN", "group filters match nothing"), 1);
    let row = status_row(&exp, "nothing").await;
    assert_eq!(
        row["groups seen / monitored / filtered out"], "4 / 1 / 3",
        "{row:?}"
    );
    assert_eq!(
        row["topics seen / monitored / filtered out"], "4 / 1 / 3",
        "{row:?}"
    );
    exp.shutdown().await;
}

// Authorization -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_failures_name_the_acl_once_per_resource_and_are_counted() {
    capture_logs();
    const CLUSTER: &str = "acl";
    let stub = StubCluster::start(&[1]).await;
    let base = now_ms() - 600_000;
    let ts = |o: i64| base + o * 1000;
    for topic in ["orders", "unreadable", "hidden"] {
        stub.add_topic(topic, &[1]);
        stub.append_records(topic, 0, &(0..10).map(ts).collect::<Vec<_>>());
    }
    stub.add_group(StubGroup::consumer("g-ok").offset("orders", 0, 4));
    stub.add_group(StubGroup::consumer("g-denied").offset("orders", 0, 3));
    stub.add_group(
        StubGroup::consumer("g-mixed")
            .offset("orders", 0, 7)
            .offset("unreadable", 0, 2)
            .offset("hidden", 0, 1),
    );
    // No Describe on group g-denied; no Describe on topic hidden; no Read on unreadable.
    let group = Target::group("g-denied");
    stub.fail_always(
        ApiKey::OffsetFetch,
        group.clone(),
        code::GROUP_AUTHORIZATION_FAILED,
    );
    stub.fail_always(
        ApiKey::DescribeGroups,
        group,
        code::GROUP_AUTHORIZATION_FAILED,
    );
    let hidden = Target::topic("hidden");
    stub.fail_always(
        ApiKey::ListOffsets,
        hidden,
        code::TOPIC_AUTHORIZATION_FAILED,
    );
    let unreadable = Target::topic("unreadable");
    stub.fail_always(ApiKey::Fetch, unreadable, code::TOPIC_AUTHORIZATION_FAILED);

    let exp = RunningExporter::start(&config(CLUSTER, &stub.bootstrap(), FAST, "")).await;
    exp.wait_cycles(CLUSTER, 3, WAIT).await;
    let (cycles, m) = exp.consistent_metrics(CLUSTER).await;

    // Counted once per cycle and resource: each of the three resources is denied in every
    // cycle, on however many requests and items.
    let denied = |resource_type: &str, operation: &str| {
        m.value(
            "tidemark_authorization_failures_total",
            &[
                ("cluster_name", CLUSTER),
                ("resource_type", resource_type),
                ("operation", operation),
            ],
        )
    };
    let n = Some(cycles as f64);
    assert_eq!(denied("group", "Describe"), n);
    assert_eq!(denied("topic", "Describe"), n);
    assert_eq!(denied("topic", "Read"), n);
    assert_eq!(
        m.find("tidemark_authorization_failures_total", &[]).len(),
        3
    );

    // The other groups stay exact.
    let gp = |g: &'static str, t: &'static str| [("group", g), ("topic", t), ("partition", "0")];
    let age = |o: i64| (now_ms() - ts(o)) as f64 / 1000.0;
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &gp("g-ok", "orders")),
        Some(6.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &gp("g-mixed", "orders")),
        Some(3.0)
    );
    assert_eq!(
        m.value(
            "kafka_consumergroup_group_lag",
            &gp("g-mixed", "unreadable")
        ),
        Some(8.0)
    );
    for (g, o) in [("g-ok", 4), ("g-mixed", 7)] {
        let secs = m
            .value("kafka_consumergroup_group_lag_seconds", &gp(g, "orders"))
            .unwrap_or_else(|| panic!("no time lag for {g}"));
        assert!(
            (secs - age(o)).abs() < 5.0,
            "{g}: {secs} s, want {}",
            age(o)
        );
    }
    // What was denied has no series: no time lag without Read, nothing without Describe.
    assert!(m
        .find(
            "kafka_consumergroup_group_lag_seconds",
            &gp("g-mixed", "unreadable")
        )
        .is_empty());
    assert!(m
        .find("kafka_partition_latest_offset", &[("topic", "hidden")])
        .is_empty());
    assert!(m
        .find("kafka_consumergroup_group_offset", &[("group", "g-denied")])
        .is_empty());

    // The status page names each missing ACL and the command that grants it.
    let row = status_row(&exp, CLUSTER).await;
    let bootstrap = stub.bootstrap();
    for want in [
        "Describe on group g-denied".to_string(),
        "Describe on topic hidden".to_string(),
        "Read on topic unreadable".to_string(),
        format!("kafka-acls.sh --bootstrap-server {bootstrap} --add --allow-principal 'User:&lt;principal&gt;' --operation Read --topic 'unreadable'"),
    ] {
        assert!(row["result"].contains(&want), "{want} missing: {row:?}");
    }

    // One log line per cycle and resource, with the fix, and no per-item warning for them.
    let before = exp.cycles_ok(CLUSTER);
    let lines = logs(CLUSTER, "WARN");
    let denials = |resource: &str, operation: &str| {
        lines
            .iter()
            .filter(|f| {
                f["message"].starts_with("authorization failed")
                    && f.get("resource").map(String::as_str) == Some(resource)
                    && f.get("operation").map(String::as_str) == Some(operation)
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    for (resource, operation) in [
        ("g-denied", "Describe"),
        ("hidden", "Describe"),
        ("unreadable", "Read"),
    ] {
        let found = denials(resource, operation);
        // Logged before the cycle publishes: the cycle in progress may have logged too.
        let logged = found.len() as u64;
        assert!(
            logged >= before && logged <= before + 1,
            "{resource}: {logged} lines in {before} cycles"
        );
        assert!(
            found[0]["fix"].ends_with(&format!(
                "--operation {operation} --{} '{resource}'",
                if resource.starts_with("g-") {
                    "group"
                } else {
                    "topic"
                }
            )),
            "{:?}",
            found[0]
        );
    }
    // (message, field, value) of the per-item warnings the denials replace.
    let replaced = [
        ("no committed offsets", "group", "g-denied"),
        ("describe failed", "group", "g-denied"),
        ("no watermarks", "partition", "hidden"),
        ("no timestamp", "partition", "unreadable"),
    ];
    for f in &lines {
        let per_item = replaced.iter().any(|(message, key, value)| {
            f["message"].starts_with(message) && f.get(*key).is_some_and(|v| v.contains(value))
        });
        assert!(!per_item, "a per-item warning for a denied resource: {f:?}");
    }
    exp.shutdown().await;
}

/// CLUSTER_AUTHORIZATION_FAILED on ListGroups from every broker: Describe on the cluster,
/// one denied resource per cycle however many brokers refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_denial_names_describe_on_the_cluster() {
    const CLUSTER: &str = "acl-cluster";
    const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    let stub = StubCluster::start(&[1, 2]).await;
    stub.add_topic("orders", &[1, 2]);
    stub.fail_always(
        ApiKey::ListGroups,
        Target::Any,
        CLUSTER_AUTHORIZATION_FAILED,
    );
    let exp = RunningExporter::start(&config(CLUSTER, &stub.bootstrap(), FAST, "")).await;
    exp.wait_cycles(CLUSTER, 2, WAIT).await;
    let (cycles, m) = exp.consistent_metrics(CLUSTER).await;
    let labels = [
        ("cluster_name", CLUSTER),
        ("resource_type", "cluster"),
        ("operation", "Describe"),
    ];
    // Both brokers refuse ListGroups in every cycle: one denied resource per cycle.
    assert_eq!(
        m.value("tidemark_authorization_failures_total", &labels),
        Some(cycles as f64)
    );
    let row = status_row(&exp, CLUSTER).await;
    assert!(
        row["result"].contains("ListGroups: Describe on cluster kafka-cluster is not allowed")
            && row["result"].contains("--operation Describe --cluster</li>"),
        "{row:?}"
    );
    exp.shutdown().await;
}
