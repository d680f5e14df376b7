//! The real exporter (in-process, `Exporter::start`) against the scripted stub cluster:
//! data loss, compaction, member labels, the timestamp cache and its request economy,
//! vanishing series, filters, isolation of clusters and partial failures.
//!
//! Every expected value comes from what the test scripted into the stub's model, never
//! from what tidemark read. Poll intervals are short so the whole file runs in seconds.

use tidemark_testkit as common;

use common::workload::now_ms;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::exporter::{config, Metrics, RunningExporter, FAST, GROUP_PARTITION_FAMILIES};
use common::stub::{
    code, consumer_assignment, Received, Reply, Request, StubCluster, StubGroup, StubMember,
    Target, LATEST,
};
use kafka_protocol::messages::ApiKey;

/// The cluster name used by the single-cluster tests.
const CLUSTER: &str = "stub";

/// Generous bound for waits on cycles (each cycle takes milliseconds against the stub).
const WAIT: Duration = Duration::from_secs(15);

/// Start an exporter on one stub cluster with `exporter_lines` and `cluster_lines`.
async fn exporter_on(
    stub: &StubCluster,
    exporter_lines: &str,
    cluster_lines: &str,
) -> RunningExporter {
    RunningExporter::start(&config(
        CLUSTER,
        &stub.bootstrap(),
        exporter_lines,
        cluster_lines,
    ))
    .await
}

/// Wait until a cycle that started after "now" has completed, and scrape.
async fn next_full_cycle(exp: &RunningExporter, cluster: &str) -> Metrics {
    let n = exp.cycles_ok(cluster);
    exp.wait_cycles(cluster, n + 2, WAIT).await;
    exp.metrics().await
}

/// Labels of one group partition.
fn gp<'a>(group: &'a str, topic: &'a str, partition: &'a str) -> [(&'a str, &'a str); 3] {
    [("group", group), ("topic", topic), ("partition", partition)]
}

/// Seconds elapsed since `ts_ms`, as the test sees it now.
fn age_s(ts_ms: i64) -> f64 {
    (now_ms() - ts_ms) as f64 / 1000.0
}

fn assert_close(what: &str, got: Option<f64>, want: f64, tolerance: f64) {
    let got = got.unwrap_or_else(|| panic!("{what}: no such series"));
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: got {got}, want {want} ± {tolerance}"
    );
}

/// Every label value `key` takes over the samples of `name`.
fn label_values(m: &Metrics, name: &str, key: &str) -> BTreeSet<String> {
    m.find(name, &[])
        .iter()
        .filter_map(|s| s.labels.get(key).cloned())
        .collect()
}

/// Names of the families with at least one sample carrying `key` = `value`.
fn families_with(m: &Metrics, key: &str, value: &str) -> BTreeSet<String> {
    m.samples
        .iter()
        .filter(|s| s.labels.get(key).map(String::as_str) == Some(value))
        .map(|s| s.name.clone())
        .collect()
}

/// The request log split into collection cycles. A cycle opens with its ListGroups
/// requests (one per broker, sent together; a first connection's ApiVersions and Metadata
/// may interleave); a ListGroups after any other request opens the next cycle. Requests
/// before the first ListGroups (bootstrapping) are left out.
fn cycles_of(log: &[Received]) -> Vec<Vec<Received>> {
    let mut log = log.to_vec();
    log.sort_by_key(|r| r.seq);
    let mut cycles: Vec<Vec<Received>> = Vec::new();
    let mut opening = false;
    for r in log {
        match r.api {
            ApiKey::ListGroups if !opening => {
                cycles.push(Vec::new());
                opening = true;
            }
            ApiKey::ListGroups | ApiKey::ApiVersions | ApiKey::Metadata => {}
            _ => opening = false,
        }
        if let Some(c) = cycles.last_mut() {
            c.push(r);
        }
    }
    cycles
}

/// (topic, partition, fetch offset, partition_max_bytes): one partition of a Fetch.
type FetchTarget = (String, i32, i64, i32);

/// Every partition of a Fetch request.
fn fetch_targets(r: &Received) -> Vec<FetchTarget> {
    match &r.request {
        Request::Fetch(f) => f
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        t.topic.0.as_str().to_owned(),
                        p.partition,
                        p.fetch_offset,
                        p.partition_max_bytes,
                    )
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn fetches(requests: &[Received]) -> Vec<&Received> {
    requests.iter().filter(|r| r.api == ApiKey::Fetch).collect()
}

// 1. Data loss ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_loss_is_quantified_flagged_and_counted() {
    let stub = StubCluster::start(&[1, 2]).await;
    stub.add_topic("events", &[1, 2]);
    // Record o of events/0 was produced at base + o s; retention then deleted 0..100.
    let base = now_ms() - 3_600_000;
    let ts0 = |o: i64| base + o * 1000;
    stub.append_records("events", 0, &(0..500).map(ts0).collect::<Vec<_>>());
    stub.delete_records_before("events", 0, 100);
    // events/1 is intact: 20 records, an hour apart from the first ones.
    let base1 = now_ms() - 7_200_000;
    let ts1 = |o: i64| base1 + o * 1000;
    stub.append_records("events", 1, &(0..20).map(ts1).collect::<Vec<_>>());
    stub.add_group(
        StubGroup::consumer("behind")
            .offset("events", 0, 40)
            .offset("events", 1, 10),
    );

    let exp = exporter_on(&stub, FAST, "").await;
    exp.wait_cycles(CLUSTER, 2, WAIT).await;
    let m = exp.metrics().await;

    let lost = gp("behind", "events", "0");
    assert_eq!(
        m.value("kafka_consumergroup_group_offset", &lost),
        Some(40.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &lost),
        Some(460.0),
        "offset lag is high - committed also under data loss (metrics.md)"
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_messages_lost", &lost),
        Some(60.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_retention_margin", &lost),
        Some(-60.0)
    );
    assert_close(
        "lag_retention_ratio of the lost partition",
        m.value("kafka_consumergroup_group_lag_retention_ratio", &lost),
        460.0 / 400.0 * 100.0,
        1e-9,
    );
    let series = m.find("kafka_consumergroup_group_lag_seconds", &lost);
    assert_eq!(series.len(), 1, "one lag_seconds series: {series:?}");
    assert_eq!(series[0].labels["data_loss_detected"], "true");
    assert_eq!(series[0].labels["compaction_detected"], "false");
    // The committed record is gone: the first record still there (100) answers.
    assert_close(
        "lag_seconds of the lost partition",
        Some(series[0].value),
        age_s(ts0(100)),
        1.0,
    );

    // The other partition of the same group is not flagged.
    let intact = gp("behind", "events", "1");
    let series = m.find("kafka_consumergroup_group_lag_seconds", &intact);
    assert_eq!(series.len(), 1, "one lag_seconds series: {series:?}");
    assert_eq!(series[0].labels["data_loss_detected"], "false");
    assert_eq!(series[0].labels["compaction_detected"], "false");
    assert_close(
        "lag_seconds of the intact partition",
        Some(series[0].value),
        age_s(ts1(10)),
        1.0,
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &intact),
        Some(10.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_messages_lost", &intact),
        Some(0.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_retention_margin", &intact),
        Some(10.0)
    );
    assert_close(
        "lag_retention_ratio of the intact partition",
        m.value("kafka_consumergroup_group_lag_retention_ratio", &intact),
        50.0,
        1e-9,
    );
    let group = [("cluster_name", CLUSTER), ("group", "behind")];
    assert_eq!(
        m.value("kafka_consumergroup_group_max_lag", &group),
        Some(460.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_sum_lag", &group),
        Some(470.0)
    );

    // The counter grows by one per cycle (one partition with data loss each cycle).
    let cluster = [("cluster_name", CLUSTER)];
    let (n1, m1) = exp.consistent_metrics(CLUSTER).await;
    assert_eq!(
        m1.value("kafka_lag_exporter_data_loss_partitions_total", &cluster),
        Some(n1 as f64),
        "after {n1} cycles"
    );
    assert_eq!(
        m1.value("kafka_lag_exporter_compaction_detected_total", &cluster),
        Some(0.0)
    );
    exp.wait_cycles(CLUSTER, n1 + 2, WAIT).await;
    let (n2, m2) = exp.consistent_metrics(CLUSTER).await;
    assert!(n2 >= n1 + 2);
    assert_eq!(
        m2.value("kafka_lag_exporter_data_loss_partitions_total", &cluster),
        Some(n2 as f64),
        "after {n2} cycles"
    );
    let raw = exp.get("/metrics").await.body;
    assert!(
        raw.contains("# TYPE kafka_lag_exporter_data_loss_partitions_total counter"),
        "a real counter:\n{raw}"
    );

    // Retention moves on: record 100 is gone too; the cached answer for offset 40 is stale.
    stub.delete_records_before("events", 0, 150);
    let m = next_full_cycle(&exp, CLUSTER).await;
    let series = m.find("kafka_consumergroup_group_lag_seconds", &lost);
    assert_eq!(series.len(), 1, "one lag_seconds series: {series:?}");
    assert_eq!(series[0].labels["data_loss_detected"], "true");
    assert_close(
        "lag_seconds after retention moved to 150",
        Some(series[0].value),
        age_s(ts0(150)),
        1.0,
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_messages_lost", &lost),
        Some(110.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_retention_margin", &lost),
        Some(-110.0)
    );
    assert_close(
        "lag_retention_ratio after retention moved to 150",
        m.value("kafka_consumergroup_group_lag_retention_ratio", &lost),
        460.0 / 350.0 * 100.0,
        1e-9,
    );
    exp.shutdown().await;
}

// 2. Compaction --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_away_offsets_use_the_next_record_and_are_flagged() {
    let stub = StubCluster::start(&[1, 2]).await;
    let base = now_ms() - 600_000;
    let ts = |o: i64| base + o * 10_000;
    let stamps: Vec<i64> = (0..30).map(ts).collect();
    for (topic, leader) in [("changelog", 1), ("mixed", 2), ("plain", 1)] {
        stub.add_topic(topic, &[leader]);
        stub.append_records(topic, 0, &stamps);
    }
    stub.set_topic_config("changelog", "cleanup.policy", "compact");
    stub.set_topic_config("mixed", "cleanup.policy", "compact,delete");
    stub.set_topic_config("plain", "cleanup.policy", "delete");
    // Committed 10 of changelog/0 and 5 of mixed/0 were compacted away.
    stub.compact_away("changelog", 0, &[10, 11, 12, 13, 14]);
    stub.compact_away("mixed", 0, &[5]);
    stub.add_group(
        StubGroup::consumer("reader")
            .offset("changelog", 0, 10)
            .offset("mixed", 0, 5)
            .offset("plain", 0, 3),
    );

    let exp = exporter_on(&stub, FAST, "").await;
    exp.wait_cycles(CLUSTER, 2, WAIT).await;
    let m = exp.metrics().await;

    for (topic, committed, answered) in [("changelog", 10, 15), ("mixed", 5, 6)] {
        let labels = gp("reader", topic, "0");
        let series = m.find("kafka_consumergroup_group_lag_seconds", &labels);
        assert_eq!(series.len(), 1, "{topic}: {series:?}");
        assert_eq!(series[0].labels["compaction_detected"], "true", "{topic}");
        assert_eq!(series[0].labels["data_loss_detected"], "false", "{topic}");
        assert_close(
            &format!("{topic}: lag_seconds from the next surviving record {answered}"),
            Some(series[0].value),
            age_s(ts(answered)),
            1.0,
        );
        assert_eq!(
            m.value("kafka_consumergroup_group_lag", &labels),
            Some((30 - committed) as f64),
            "{topic}: offset lag counts the compacted offsets too"
        );
        assert_eq!(
            m.value("kafka_consumergroup_group_messages_lost", &labels),
            Some(0.0),
            "{topic}"
        );
    }
    let plain = gp("reader", "plain", "0");
    let series = m.find("kafka_consumergroup_group_lag_seconds", &plain);
    assert_eq!(series.len(), 1, "plain: {series:?}");
    assert_eq!(series[0].labels["compaction_detected"], "false");
    assert_eq!(series[0].labels["data_loss_detected"], "false");
    assert_close(
        "plain: lag_seconds",
        Some(series[0].value),
        age_s(ts(3)),
        1.0,
    );

    // Two flagged partitions per cycle.
    let cluster = [("cluster_name", CLUSTER)];
    let (n, m) = exp.consistent_metrics(CLUSTER).await;
    assert_eq!(
        m.value("kafka_lag_exporter_compaction_detected_total", &cluster),
        Some(2.0 * n as f64),
        "after {n} cycles"
    );
    assert_eq!(
        m.value("kafka_lag_exporter_data_loss_partitions_total", &cluster),
        Some(0.0)
    );
    // cleanup.policy is read once and cached (hourly refresh).
    assert_eq!(stub.count(ApiKey::DescribeConfigs), 1);
    exp.shutdown().await;
}

/// DESIGN.md ("Time lag, exactly") and klag-exporter's docs/compaction-detection.md tie
/// `compaction_detected` to the committed offset no longer existing (the record that
/// answers is a later one). A compacted topic whose committed record is still there, or a
/// caught-up group on it, has nothing understated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_flag_only_where_the_committed_record_is_gone() {
    let stub = StubCluster::start(&[1]).await;
    let base = now_ms() - 600_000;
    let ts = |o: i64| base + o * 10_000;
    stub.add_topic("changelog", &[1, 1, 1]);
    for p in 0..3 {
        stub.append_records("changelog", p, &(0..30).map(ts).collect::<Vec<_>>());
    }
    stub.set_topic_config("changelog", "cleanup.policy", "compact");
    stub.compact_away("changelog", 0, &[10, 11]);
    stub.add_group(
        StubGroup::consumer("reader")
            .offset("changelog", 0, 10) // compacted away: flagged
            .offset("changelog", 1, 20) // record 20 still there: not flagged
            .offset("changelog", 2, 30), // caught up: not flagged
    );
    let exp = exporter_on(&stub, FAST, "").await;
    exp.wait_cycles(CLUSTER, 2, WAIT).await;
    let (n, m) = exp.consistent_metrics(CLUSTER).await;
    let flag = |p: &str| {
        let series = m.find(
            "kafka_consumergroup_group_lag_seconds",
            &gp("reader", "changelog", p),
        );
        assert_eq!(series.len(), 1, "changelog/{p}: {series:?}");
        series[0].labels["compaction_detected"].clone()
    };
    assert_eq!(flag("0"), "true", "committed 10 was compacted away");
    assert_eq!(flag("1"), "false", "committed 20 still exists");
    assert_eq!(flag("2"), "false", "caught up: nothing sampled");
    assert_eq!(
        m.value(
            "kafka_lag_exporter_compaction_detected_total",
            &[("cluster_name", CLUSTER)]
        ),
        Some(n as f64),
        "one flagged partition per cycle, after {n} cycles"
    );
    exp.shutdown().await;
}

// 3. Member assignments and group states -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_labels_come_from_assignments_and_states_are_encoded() {
    let stub = StubCluster::start(&[1, 2]).await;
    stub.add_topic("orders", &[1, 2, 1, 2]);
    for p in 0..4 {
        stub.set_watermarks("orders", p, 0, 100);
    }
    let mut stable = StubGroup::consumer("billing")
        .state("Stable")
        .coordinator(2)
        .member(
            StubMember::new("billing-1-4f2a", "billing-app", "/10.0.0.1").assignment(
                consumer_assignment(1, &[("orders", &[0, 2])], Some(b"user-data")),
            ),
        )
        .member(
            StubMember::new("billing-2-9c0d", "billing-worker", "/10.0.0.2")
                .assignment(consumer_assignment(3, &[("orders", &[1])], None)),
        );
    for p in 0..4 {
        stable = stable.offset("orders", p, 100);
    }
    stub.add_group(stable);
    stub.add_group(
        StubGroup::consumer("rebalancing")
            .state("PreparingRebalance")
            .offset("orders", 0, 50),
    );
    stub.add_group(
        StubGroup::consumer("idle")
            .state("Empty")
            .offset("orders", 0, 100),
    );
    stub.add_group(
        StubGroup::consumer("strange")
            .state("SomethingNew")
            .offset("orders", 0, 100),
    );

    let exp = exporter_on(&stub, FAST, "").await;
    exp.wait_cycles(CLUSTER, 1, WAIT).await;
    let m = exp.metrics().await;

    let expected = [
        ("0", "/10.0.0.1", "billing-1-4f2a", "billing-app"),
        ("1", "/10.0.0.2", "billing-2-9c0d", "billing-worker"),
        ("2", "/10.0.0.1", "billing-1-4f2a", "billing-app"),
        // Committed but assigned to nobody.
        ("3", "", "", ""),
    ];
    for family in GROUP_PARTITION_FAMILIES {
        for (p, host, consumer, client) in expected {
            let series = m.find(family, &gp("billing", "orders", p));
            assert_eq!(series.len(), 1, "{family} orders/{p}: {series:?}");
            let l = &series[0].labels;
            assert_eq!(l["cluster_name"], CLUSTER, "{family} orders/{p}");
            assert_eq!(l["member_host"], host, "{family} orders/{p}");
            assert_eq!(l["consumer_id"], consumer, "{family} orders/{p}");
            assert_eq!(l["client_id"], client, "{family} orders/{p}");
        }
    }
    let state = |g: &str| {
        m.value(
            "kafka_consumergroup_group_state",
            &[("cluster_name", CLUSTER), ("group", g)],
        )
    };
    assert_eq!(state("billing"), Some(3.0));
    assert_eq!(state("rebalancing"), Some(1.0));
    assert_eq!(state("idle"), Some(5.0));
    assert_eq!(state("strange"), Some(0.0));
    // A group without members has empty member labels.
    let series = m.find(
        "kafka_consumergroup_group_lag",
        &gp("rebalancing", "orders", "0"),
    );
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].value, 50.0);
    for key in ["member_host", "consumer_id", "client_id"] {
        assert_eq!(series[0].labels[key], "", "{key}");
    }
    exp.shutdown().await;
}

// 4. Timestamp cache and request economy -------------------------------------------------

/// Topic "t": partition 0 led by node 1, partition 1 by node 2, 20 records each.
/// "a" and "b" sit at 10 on both partitions, "done" is caught up at 20.
fn lagging_setup(stub: &StubCluster, ts: impl Fn(i64) -> i64) {
    stub.add_topic("t", &[1, 2]);
    for p in 0..2 {
        stub.append_records("t", p, &(0..20).map(&ts).collect::<Vec<_>>());
    }
    for g in ["a", "b"] {
        stub.add_group(StubGroup::consumer(g).offset("t", 0, 10).offset("t", 1, 10));
    }
    stub.add_group(
        StubGroup::consumer("done")
            .offset("t", 0, 20)
            .offset("t", 1, 20),
    );
}

/// Cycles whose committed offsets cannot be read (the groups keep their last values) do
/// not evict the timestamps those values point at: once offsets answer again, nothing is
/// fetched a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_without_offsets_keep_the_timestamp_cache() {
    let stub = StubCluster::start(&[1, 2]).await;
    let base = now_ms() - 900_000;
    lagging_setup(&stub, move |o: i64| base + o * 1000);
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let failing = failing.clone();
        stub.set_handler(move |r, _| {
            if r.api == ApiKey::OffsetFetch && failing.load(std::sync::atomic::Ordering::SeqCst) {
                Reply::Close
            } else {
                Reply::Default
            }
        });
    }
    let exp = exporter_on(&stub, FAST, "").await;
    exp.wait_cycles(CLUSTER, 2, WAIT).await;
    let fetched_before = fetches(&stub.requests()).len();
    assert!(fetched_before > 0, "the first cycle fetches the samples");
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let ok = exp.cycles_ok(CLUSTER);
    exp.wait_cycles(CLUSTER, ok + 3, WAIT).await;
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let ok = exp.cycles_ok(CLUSTER);
    exp.wait_cycles(CLUSTER, ok + 3, WAIT).await;
    let log = stub.requests();
    assert!(
        log.iter().any(|r| r.api == ApiKey::OffsetFetch),
        "offsets were read"
    );
    assert_eq!(
        fetches(&log).len(),
        fetched_before,
        "samples fetched again after cycles without offsets: {:?}",
        fetches(&log)
    );
    let m = exp.metrics().await;
    assert!(m
        .value("kafka_consumergroup_group_lag_seconds", &gp("a", "t", "0"))
        .is_some());
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_are_fetched_once_per_leader_then_cached() {
    let stub = StubCluster::start(&[1, 2]).await;
    let base = now_ms() - 900_000;
    let ts = move |o: i64| base + o * 1000;
    lagging_setup(&stub, ts);

    let exp = exporter_on(&stub, FAST, "").await;
    exp.wait_cycles(CLUSTER, 3, WAIT).await;
    assert_eq!(exp.cycles_failed(CLUSTER), 0);
    let m = exp.metrics().await;
    assert_every_request_timed(&m);
    let log = stub.requests();
    let cycles = cycles_of(&log);
    assert!(cycles.len() >= 3, "{} cycles in the log", cycles.len());

    for (i, cycle) in cycles.iter().enumerate() {
        for node in [1, 2] {
            let n = fetches(cycle).iter().filter(|r| r.node == node).count();
            assert!(n <= 1, "cycle {i}: {n} Fetch requests to node {node}");
        }
    }
    // First cycle: one Fetch per leader, each for the one offset both groups share.
    let mut first: Vec<(i32, Vec<FetchTarget>)> = fetches(&cycles[0])
        .iter()
        .map(|r| (r.node, fetch_targets(r)))
        .collect();
    first.sort_by_key(|(node, _)| *node);
    assert_eq!(first.len(), 2, "first cycle Fetches: {first:?}");
    for (node, partition) in [(1, 0), (2, 1)] {
        let (n, targets) = &first[partition as usize];
        assert_eq!(*n, node);
        assert_eq!(targets.len(), 1, "{targets:?}");
        let (topic, p, offset, max_bytes) = &targets[0];
        assert_eq!((topic.as_str(), *p, *offset), ("t", partition, 10));
        assert!(
            *max_bytes > 0 && *max_bytes <= 256 * 1024,
            "partition_max_bytes {max_bytes}"
        );
    }
    // Cycles 2 and 3: cache hits, no Fetch at all.
    for (i, cycle) in cycles.iter().enumerate().take(3).skip(1) {
        assert!(fetches(cycle).is_empty(), "cycle {i}: {:?}", fetches(cycle));
    }
    // The caught-up group never causes a Fetch.
    for r in fetches(&log) {
        for (_, _, offset, _) in fetch_targets(r) {
            assert_ne!(offset, 20, "Fetch for the caught-up group: {r:?}");
        }
    }
    // Both groups got the same (shared) answer.
    for p in ["0", "1"] {
        let a = m.value("kafka_consumergroup_group_lag_seconds", &gp("a", "t", p));
        let b = m.value("kafka_consumergroup_group_lag_seconds", &gp("b", "t", p));
        assert_eq!(a, b, "t/{p}");
        assert_close(&format!("a t/{p}"), a, age_s(ts(10)), 1.0);
        assert_eq!(
            m.value("kafka_consumergroup_group_lag_seconds", &gp("done", "t", p)),
            Some(0.0),
            "caught up: 0"
        );
    }

    // One group moves on: only its new offset is fetched, once.
    let mark = log.iter().map(|r| r.seq).max().unwrap_or(0);
    stub.commit("b", "t", 0, 15);
    let m = next_full_cycle(&exp, CLUSTER).await;
    let _ = next_full_cycle(&exp, CLUSTER).await;
    let later: Vec<Received> = stub
        .requests()
        .into_iter()
        .filter(|r| r.seq > mark && r.api == ApiKey::Fetch)
        .collect();
    assert_eq!(later.len(), 1, "Fetches after the commit: {later:?}");
    assert_eq!(later[0].node, 1);
    let targets: Vec<(String, i32, i64)> = fetch_targets(&later[0])
        .into_iter()
        .map(|(t, p, o, _)| (t, p, o))
        .collect();
    assert_eq!(targets, vec![("t".to_string(), 0, 15)]);
    assert_close(
        "b t/0 after the commit",
        m.value("kafka_consumergroup_group_lag_seconds", &gp("b", "t", "0")),
        age_s(ts(15)),
        1.0,
    );
    assert_close(
        "a t/0 still at 10",
        m.value("kafka_consumergroup_group_lag_seconds", &gp("a", "t", "0")),
        age_s(ts(10)),
        1.0,
    );
    exp.shutdown().await;
}

/// Every (broker, api) of `tidemark_kafka_requests_total` has a request-duration histogram
/// that counted each of those requests once (none failed here), and there is no other.
fn assert_every_request_timed(m: &Metrics) {
    let requests = m.find("tidemark_kafka_requests_total", &[]);
    assert!(!requests.is_empty(), "no requests counted");
    for r in &requests {
        let labels = [
            ("broker", r.labels["broker"].as_str()),
            ("api", r.labels["api"].as_str()),
        ];
        let what = format!("{labels:?}");
        assert_eq!(
            m.value("tidemark_kafka_request_errors_total", &labels),
            Some(0.0),
            "{what}"
        );
        let count = m.value("tidemark_kafka_request_duration_seconds_count", &labels);
        assert_eq!(count, Some(r.value), "{what}: _count");
        let mut inf = labels.to_vec();
        inf.push(("le", "+Inf"));
        let all = m.value("tidemark_kafka_request_duration_seconds_bucket", &inf);
        assert_eq!(all, Some(r.value), "{what}: +Inf bucket");
    }
    let timed = m.find("tidemark_kafka_request_duration_seconds_count", &[]);
    assert_eq!(timed.len(), requests.len(), "{timed:?}");
}

/// The configuration of the tests that read exactly one cycle: the next one is a minute
/// away, no time-lag samples.
const ONE_CYCLE: &str = "poll_interval = \"60s\"\ngranularity = \"partition\"\n\
[exporter.timestamp_sampling]\nenabled = false\n\
[exporter.performance]\nkafka_timeout = \"5s\"\noffset_fetch_timeout = \"5s\"";

/// How long the slow broker of the next test waits before each answer.
const SLOW_BROKER_DELAY: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_broker_s_delay_is_in_its_own_request_durations() {
    let stub = StubCluster::start(&[1, 2]).await;
    let base = now_ms() - 900_000;
    lagging_setup(&stub, move |o| base + o * 1000);
    // Node 2 answers everything SLOW_BROKER_DELAY late; node 1 (the bootstrap server)
    // answers at once.
    stub.set_node_delay(2, SLOW_BROKER_DELAY);
    let exp = exporter_on(&stub, ONE_CYCLE, "").await;
    exp.wait_cycles(CLUSTER, 1, WAIT).await;
    let (cycles, m) = exp.consistent_metrics(CLUSTER).await;
    assert_eq!(cycles, 1);
    exp.shutdown().await;
    assert_every_request_timed(&m);

    let name = "tidemark_kafka_request_duration_seconds";
    let delay = SLOW_BROKER_DELAY.as_secs_f64();
    let mut slow_requests = 0;
    for api in ApiKey::iter() {
        let key = format!("{api:?}");
        let on = |broker: &'static str| [("broker", broker), ("api", key.as_str())];
        let timed = |broker: &'static str| {
            m.value(&format!("{name}_count"), &on(broker))
                .unwrap_or(0.0)
        };
        // What each broker received (the stub's log) is what the histograms counted,
        // under the broker that received it.
        let slow = stub.count_on(2, api) as f64;
        assert_eq!(timed("2"), slow, "{key} on node 2");
        assert_eq!(
            timed("1") + timed("bootstrap"),
            stub.count_on(1, api) as f64,
            "{key} on node 1"
        );
        if slow == 0.0 {
            continue;
        }
        slow_requests += slow as usize;
        // Every answer of node 2 came at least the delay after its request was sent.
        let sum = m.value(&format!("{name}_sum"), &on("2")).unwrap_or(0.0);
        assert!(sum >= delay * slow, "{key}: {sum} s for {slow} requests");
        let mut fast = on("2").to_vec();
        fast.push(("le", "0.05"));
        assert_eq!(
            m.value(&format!("{name}_bucket"), &fast),
            Some(0.0),
            "{key}: a node-2 request within 50 ms"
        );
    }
    // ApiVersions, ListGroups and both ListOffsets at least.
    assert!(slow_requests >= 4, "{slow_requests} requests to node 2");
}

/// The consumer commits and the producer writes while a cycle runs: the committed offset
/// must be read before the watermark it is compared with, or lag is understated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_are_read_before_watermarks() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const OFFSET_FETCH_DELAY: Duration = Duration::from_millis(500);
    let stub = StubCluster::start(&[1, 2]).await;
    stub.add_topic("t", &[2]);
    stub.set_watermarks("t", 0, 0, 100);
    stub.add_group(StubGroup::consumer("g").coordinator(1).offset("t", 0, 90));
    // OffsetFetch is answered late, from the model as it is then. The first LATEST
    // ListOffsets is answered from the model as it is when it arrives, after which the
    // producer writes 100 records and the consumer commits 100 further: a ListOffsets
    // sent before the committed offset was in would make the OffsetFetch answer 190
    // against a high watermark of 100.
    let moved = Arc::new(AtomicBool::new(false));
    stub.set_handler(move |r, stub| match r.api {
        ApiKey::OffsetFetch => Reply::Delay(OFFSET_FETCH_DELAY, Box::new(Reply::Default)),
        ApiKey::ListOffsets
            if r.list_offsets_timestamp() == Some(LATEST)
                && !moved.swap(true, Ordering::SeqCst) =>
        {
            let Some(now) = stub.default_response(r) else {
                return Reply::Close;
            };
            stub.set_watermarks("t", 0, 0, 200);
            stub.commit("g", "t", 0, 190);
            Reply::Respond(now)
        }
        _ => Reply::Default,
    });
    let exp = exporter_on(&stub, ONE_CYCLE, "").await;
    exp.wait_cycles(CLUSTER, 1, WAIT).await;
    let (cycles, m) = exp.consistent_metrics(CLUSTER).await;
    assert_eq!(cycles, 1);
    exp.shutdown().await;
    assert_eq!(stub.count(ApiKey::OffsetFetch), 1);
    let p = [("topic", "t"), ("partition", "0")];
    assert_eq!(m.value("kafka_partition_latest_offset", &p), Some(100.0));
    let g = gp("g", "t", "0");
    assert_eq!(m.value("kafka_consumergroup_group_offset", &g), Some(90.0));
    assert_eq!(m.value("kafka_consumergroup_group_lag", &g), Some(10.0));
}

/// With sampling disabled nothing is fetched and lagging partitions have no time lag
/// (metrics.md only defines lag_seconds from a sampled record; a caught-up partition is
/// 0 by definition and needs no sample).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_disabled_never_fetches() {
    let stub = StubCluster::start(&[1, 2]).await;
    let base = now_ms() - 900_000;
    lagging_setup(&stub, move |o| base + o * 1000);
    let lines = format!("{FAST}\n[exporter.timestamp_sampling]\nenabled = false");
    let exp = exporter_on(&stub, &lines, "").await;
    exp.wait_cycles(CLUSTER, 3, WAIT).await;
    let m = exp.metrics().await;

    assert_eq!(
        stub.count(ApiKey::Fetch),
        0,
        "no Fetch with sampling disabled"
    );
    for p in ["0", "1"] {
        for g in ["a", "b"] {
            assert!(
                m.find("kafka_consumergroup_group_lag_seconds", &gp(g, "t", p))
                    .is_empty(),
                "{g} t/{p}: no time lag without a sample"
            );
            assert_eq!(
                m.value("kafka_consumergroup_group_lag", &gp(g, "t", p)),
                Some(10.0),
                "{g} t/{p}: offset lag still there"
            );
        }
        assert_eq!(
            m.value("kafka_consumergroup_group_lag_seconds", &gp("done", "t", p)),
            Some(0.0),
            "caught up: 0 (no sample needed)"
        );
    }
    let group_a = [("cluster_name", CLUSTER), ("group", "a")];
    assert_eq!(
        m.value("kafka_consumergroup_group_max_lag_seconds", &group_a),
        None,
        "no partition of a has a time lag"
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_max_lag", &group_a),
        Some(10.0)
    );
    exp.shutdown().await;
}

/// A cycle sends at most `fetch_requests_per_broker` Fetch requests per broker. A sample
/// past that budget has no time lag in that cycle — never an estimate — and is fetched
/// first in the next one; the deferral is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_budget_defers_samples_to_the_next_cycle_and_never_estimates() {
    let stub = StubCluster::start(&[1]).await;
    let base = now_ms() - 900_000;
    let ts = move |o: i64| base + o * 1000;
    stub.add_topic("t", &[1]);
    stub.append_records("t", 0, &(0..200).map(ts).collect::<Vec<_>>());
    // One Fetch from offset 10 (at the first partition_max_bytes, 4 KiB of one-record
    // batches) cannot reach offset 150: that takes a second request.
    stub.add_group(StubGroup::consumer("near").offset("t", 0, 10));
    stub.add_group(StubGroup::consumer("far").offset("t", 0, 150));

    let lines = "poll_interval = \"1s\"\ngranularity = \"partition\"\n\
        [exporter.timestamp_sampling]\nfetch_requests_per_broker = 1\n\
        [exporter.performance]\nkafka_timeout = \"2s\"\noffset_fetch_timeout = \"2s\"";
    let exp = exporter_on(&stub, lines, "").await;
    exp.wait_cycles(CLUSTER, 1, WAIT).await;
    let (cycles, m) = exp.consistent_metrics(CLUSTER).await;
    assert_eq!(cycles, 1, "scraped between the first two cycles");
    let lag_s = |m: &Metrics, g| m.value("kafka_consumergroup_group_lag_seconds", &gp(g, "t", "0"));
    assert_close("near, cycle 1", lag_s(&m, "near"), age_s(ts(10)), 1.0);
    assert_eq!(lag_s(&m, "far"), None, "deferred: no time lag, no estimate");
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &gp("far", "t", "0")),
        Some(50.0),
        "offset lag is there all the same"
    );
    let deferred = |m: &Metrics| {
        m.value(
            "tidemark_timestamp_samples_deferred_total",
            &[("cluster_name", CLUSTER)],
        )
    };
    assert_eq!(deferred(&m), Some(1.0));

    exp.wait_cycles(CLUSTER, 2, WAIT).await;
    let (_, m) = exp.consistent_metrics(CLUSTER).await;
    assert_close("far, cycle 2", lag_s(&m, "far"), age_s(ts(150)), 1.0);
    assert_close("near, cycle 2", lag_s(&m, "near"), age_s(ts(10)), 1.0);
    assert_eq!(deferred(&m), Some(1.0), "nothing deferred in cycle 2");

    let cycles = cycles_of(&stub.requests());
    let offsets = |i: usize| -> Vec<Vec<i64>> {
        fetches(&cycles[i])
            .iter()
            .map(|r| fetch_targets(r).into_iter().map(|(_, _, o, _)| o).collect())
            .collect()
    };
    assert_eq!(
        offsets(0),
        vec![vec![10]],
        "cycle 1: one Fetch, from the lowest offset"
    );
    assert_eq!(offsets(1), vec![vec![150]], "cycle 2: the deferred sample");
    exp.shutdown().await;
}

// 5. Vanishing series --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_groups_and_topics_vanish_and_uncommitted_partitions_never_appear() {
    let stub = StubCluster::start(&[1, 2]).await;
    stub.add_topic("keep", &[1, 2]);
    stub.add_topic("drop", &[2]);
    stub.set_watermarks("keep", 0, 0, 10);
    stub.set_watermarks("keep", 1, 0, 10);
    stub.set_watermarks("drop", 0, 0, 10);
    stub.add_group(
        StubGroup::consumer("stays")
            .offset("keep", 0, 10)
            .offset("keep", 1, -1)
            .offset("drop", 0, 10),
    );
    stub.add_group(StubGroup::consumer("goes").offset("keep", 0, 10));

    let exp = exporter_on(&stub, FAST, "").await;
    exp.wait_cycles(CLUSTER, 1, WAIT).await;
    let m = exp.metrics().await;
    assert!(m
        .value("kafka_consumergroup_group_state", &[("group", "goes")])
        .is_some());
    assert!(m
        .value(
            "kafka_consumergroup_group_offset",
            &gp("stays", "drop", "0")
        )
        .is_some());
    // Committed -1: the partition exists, the group has no series for it.
    assert_eq!(
        m.value(
            "kafka_partition_latest_offset",
            &[("topic", "keep"), ("partition", "1")]
        ),
        Some(10.0)
    );
    let uncommitted: Vec<_> = m
        .samples
        .iter()
        .filter(|s| {
            s.labels.get("group").map(String::as_str) == Some("stays")
                && s.labels.get("topic").map(String::as_str) == Some("keep")
                && s.labels.get("partition").map(String::as_str) == Some("1")
        })
        .collect();
    assert!(uncommitted.is_empty(), "{uncommitted:?}");

    stub.remove_group("goes");
    stub.remove_topic("drop");
    let m = next_full_cycle(&exp, CLUSTER).await;
    let left = families_with(&m, "group", "goes");
    assert!(left.is_empty(), "series of the deleted group: {left:?}");
    let left = families_with(&m, "topic", "drop");
    assert!(left.is_empty(), "series of the deleted topic: {left:?}");
    // The rest is intact.
    assert_eq!(
        m.value(
            "kafka_consumergroup_group_offset",
            &gp("stays", "keep", "0")
        ),
        Some(10.0)
    );
    assert_eq!(
        label_values(&m, "kafka_consumergroup_group_topic_sum_lag", "topic"),
        BTreeSet::from(["keep".to_string()])
    );
    exp.shutdown().await;
}

// 6. Filters -----------------------------------------------------------------------------

fn filter_setup(stub: &StubCluster, topics: &[&str], groups: &[&str]) {
    for t in topics {
        stub.add_topic(t, &[1]);
        stub.set_watermarks(t, 0, 0, 10);
    }
    for g in groups {
        let mut group = StubGroup::consumer(g);
        for t in topics {
            group = group.offset(t, 0, 5);
        }
        stub.add_group(group);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_are_unanchored_regexes() {
    let stub = StubCluster::start(&[1]).await;
    filter_setup(
        &stub,
        &["orders", "pre-orders", "orders-audit", "payments"],
        &["app-a", "myapp-b", "app-tmp-1", "other"],
    );
    let filters = "group_whitelist = [\"app\"]\ngroup_blacklist = [\"-tmp\"]\n\
                   topic_whitelist = [\"orders\"]\ntopic_blacklist = [\"audit$\"]";
    let exp = exporter_on(&stub, FAST, filters).await;
    exp.wait_cycles(CLUSTER, 1, WAIT).await;
    let m = exp.metrics().await;

    let groups = BTreeSet::from(["app-a".to_string(), "myapp-b".to_string()]);
    let topics = BTreeSet::from(["orders".to_string(), "pre-orders".to_string()]);
    assert_eq!(
        label_values(&m, "kafka_consumergroup_group_state", "group"),
        groups
    );
    assert_eq!(
        label_values(&m, "kafka_consumergroup_group_offset", "group"),
        groups
    );
    assert_eq!(
        label_values(&m, "kafka_partition_latest_offset", "topic"),
        topics
    );
    assert_eq!(
        label_values(&m, "kafka_consumergroup_group_offset", "topic"),
        topics
    );
    assert_eq!(
        label_values(&m, "kafka_consumergroup_group_topic_sum_lag", "topic"),
        topics
    );
    // Filtered-out groups and topics are not even asked about.
    for r in stub.requests() {
        for g in ["app-tmp-1", "other"] {
            assert!(
                !(r.api != ApiKey::ListGroups && r.names_group(g)),
                "{:?} names {g}",
                r.api
            );
        }
        for t in ["orders-audit", "payments"] {
            assert!(
                !r.names_partition(t, 0),
                "{:?} v{} names {t}",
                r.api,
                r.version
            );
        }
    }
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_topics_are_excluded_by_default_only() {
    let stub = StubCluster::start(&[1]).await;
    filter_setup(&stub, &["__consumer_offsets", "orders"], &["app"]);
    // Default topic_blacklist ("__.*", src/config/schema.rs): the internal topic is not
    // watched.
    let exp = exporter_on(&stub, FAST, "").await;
    exp.wait_cycles(CLUSTER, 1, WAIT).await;
    let m = exp.metrics().await;
    let only_orders = BTreeSet::from(["orders".to_string()]);
    assert_eq!(
        label_values(&m, "kafka_partition_latest_offset", "topic"),
        only_orders
    );
    assert_eq!(
        label_values(&m, "kafka_consumergroup_group_offset", "topic"),
        only_orders
    );
    exp.shutdown().await;

    // An explicit empty blacklist replaces the default.
    let exp = exporter_on(&stub, FAST, "topic_blacklist = []").await;
    exp.wait_cycles(CLUSTER, 1, WAIT).await;
    let m = exp.metrics().await;
    let both = BTreeSet::from(["__consumer_offsets".to_string(), "orders".to_string()]);
    assert_eq!(
        label_values(&m, "kafka_partition_latest_offset", "topic"),
        both
    );
    exp.shutdown().await;
}

// 7. Isolation of clusters ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_dead_cluster_never_delays_a_healthy_one() {
    let healthy = StubCluster::start(&[1, 2]).await;
    filter_setup(&healthy, &["orders"], &["app"]);
    // Accepts connections, never answers anything.
    let hanging = StubCluster::start_with(&[1], |_, _| Reply::Hang).await;
    // Every node stopped: connections are refused.
    let dead = StubCluster::start(&[1]).await;
    let dead_bootstrap = dead.bootstrap();
    dead.stop_node(1).await;

    let toml = format!(
        "[exporter]\nhttp_host = \"127.0.0.1\"\nhttp_port = 0\npoll_interval = \"500ms\"\n\
         granularity = \"partition\"\n\
         [exporter.performance]\nkafka_timeout = \"2s\"\noffset_fetch_timeout = \"2s\"\n\n\
         [[clusters]]\nname = \"healthy\"\nbootstrap_servers = \"{}\"\n\
         [clusters.labels]\nenv = \"a\"\n\n\
         [[clusters]]\nname = \"hanging\"\nbootstrap_servers = \"{}\"\n\
         [clusters.labels]\nenv = \"b\"\ndc = \"x\"\n\n\
         [[clusters]]\nname = \"dead\"\nbootstrap_servers = \"{}\"\n",
        healthy.bootstrap(),
        hanging.bootstrap(),
        dead_bootstrap
    );
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("healthy", 1, WAIT).await;
    let n0 = exp.cycles_ok("healthy");
    let started = Instant::now();
    // Scrapes stay fast while the hanging cluster's requests are pending.
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(2500) {
        let r = exp.get("/metrics").await;
        assert_eq!(r.status, 200);
        slowest = slowest.max(r.latency);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n1 = exp.cycles_ok("healthy");
    assert!(
        n1 - n0 >= 3,
        "healthy cluster: {} cycles in 2.5 s with a 500ms poll interval",
        n1 - n0
    );
    assert!(
        slowest < Duration::from_millis(500),
        "slowest scrape {slowest:?}"
    );
    assert_eq!(exp.cycles_ok("hanging"), 0);
    assert!(
        hanging.count(ApiKey::ApiVersions) >= 1,
        "the hanging cluster was contacted"
    );
    exp.wait_failures("dead", 1, WAIT).await;
    exp.wait_failures("hanging", 1, WAIT).await;
    assert_eq!(exp.cycles_ok("dead"), 0);

    let m = exp.metrics().await;
    let up = |c: &str| m.value("tidemark_cluster_up", &[("cluster_name", c)]);
    assert_eq!(up("healthy"), Some(1.0));
    assert_eq!(up("hanging"), Some(0.0));
    assert_eq!(up("dead"), Some(0.0));
    assert_eq!(m.value("kafka_lag_exporter_up", &[]), Some(0.0));
    assert_eq!(
        m.value(
            "kafka_consumergroup_group_offset",
            &gp("app", "orders", "0")
        ),
        Some(5.0)
    );

    // Custom labels only on their own cluster's series.
    let mut seen = BTreeSet::new();
    for s in &m.samples {
        let Some(cluster) = s.labels.get("cluster_name") else {
            assert!(
                !s.labels.contains_key("env") && !s.labels.contains_key("dc"),
                "{s:?}"
            );
            continue;
        };
        seen.insert(cluster.clone());
        let env = s.labels.get("env").map(String::as_str);
        let dc = s.labels.get("dc").map(String::as_str);
        match cluster.as_str() {
            "healthy" => assert_eq!((env, dc), (Some("a"), None), "{s:?}"),
            "hanging" => assert_eq!((env, dc), (Some("b"), Some("x")), "{s:?}"),
            "dead" => assert_eq!((env, dc), (None, None), "{s:?}"),
            other => panic!("unknown cluster {other}: {s:?}"),
        }
    }
    assert_eq!(seen.len(), 3, "series of every cluster: {seen:?}");
    exp.shutdown().await;
}

// 8. Partial failures --------------------------------------------------------------------

/// A group whose OffsetFetch fails keeps its last values, marked stale, and the cycle says
/// it was partial; a partition whose ListOffsets fails keeps its last watermarks. Nothing
/// vanishes while `up` reads 1, and everything is fresh again once the errors are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_group_or_partition_keeps_its_last_values_marked_stale() {
    let stub = StubCluster::start(&[1, 2]).await;
    stub.add_topic("t", &[1, 2]);
    stub.set_watermarks("t", 0, 0, 10);
    stub.set_watermarks("t", 1, 0, 10);
    for g in ["good", "bad"] {
        stub.add_group(StubGroup::consumer(g).offset("t", 0, 4).offset("t", 1, 6));
    }
    let exp = exporter_on(&stub, FAST, "").await;
    exp.wait_cycles(CLUSTER, 1, WAIT).await;
    let m = exp.metrics().await;
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &gp("bad", "t", "0")),
        Some(6.0)
    );
    let cluster = [("cluster_name", CLUSTER)];
    let stale = |m: &Metrics, g: &str| {
        m.value(
            "tidemark_consumergroup_stale",
            &[("cluster_name", CLUSTER), ("group", g)],
        )
    };
    assert_eq!(stale(&m, "bad"), Some(0.0));

    // One group's committed offsets fail; both groups commit further meanwhile.
    stub.fail_always(
        ApiKey::OffsetFetch,
        Target::group("bad"),
        code::GROUP_AUTHORIZATION_FAILED,
    );
    stub.commit("good", "t", 0, 8);
    stub.commit("bad", "t", 0, 9);
    let m = next_full_cycle(&exp, CLUSTER).await;
    // Its series stay with the values last read, marked stale; never zeros.
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &gp("bad", "t", "0")),
        Some(6.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_offset", &gp("bad", "t", "1")),
        Some(6.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_sum_lag", &[("group", "bad")]),
        Some(10.0)
    );
    assert_eq!(stale(&m, "bad"), Some(1.0));
    assert_eq!(stale(&m, "good"), Some(0.0));
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &gp("good", "t", "0")),
        Some(2.0),
        "the other group is fresh"
    );
    assert_eq!(
        m.value("tidemark_cluster_stale_groups", &cluster),
        Some(1.0)
    );
    assert_eq!(m.value("tidemark_cluster_up", &cluster), Some(0.0));
    assert_eq!(m.value("tidemark_cluster_partial", &cluster), Some(1.0));
    assert_eq!(m.value("kafka_lag_exporter_up", &[]), Some(0.0));
    assert!(
        m.value(
            "tidemark_collection_errors_total",
            &[("cluster_name", CLUSTER), ("item", "group_offsets")]
        )
        .is_some_and(|n| n >= 1.0),
        "the failure is counted"
    );
    assert_eq!(
        exp.cycles_failed(CLUSTER),
        0,
        "item errors do not fail the cycle"
    );
    let page = exp.get("/").await.body;
    assert!(
        page.contains("partial") && page.contains("group bad"),
        "the status page names what failed:\n{page}"
    );

    // Fresh once the error is gone.
    stub.clear_faults();
    let m = next_full_cycle(&exp, CLUSTER).await;
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &gp("bad", "t", "0")),
        Some(1.0)
    );
    assert_eq!(stale(&m, "bad"), Some(0.0));
    assert_eq!(m.value("tidemark_cluster_up", &cluster), Some(1.0));
    assert_eq!(m.value("tidemark_cluster_partial", &cluster), Some(0.0));

    // One partition's ListOffsets fails: it keeps its last watermarks, marked.
    stub.fail_always(
        ApiKey::ListOffsets,
        Target::partition("t", 1),
        code::TOPIC_AUTHORIZATION_FAILED,
    );
    stub.set_watermarks("t", 1, 0, 12);
    let m = next_full_cycle(&exp, CLUSTER).await;
    let partitions = label_values(&m, "kafka_partition_latest_offset", "partition");
    assert_eq!(
        partitions,
        BTreeSet::from(["0".to_string(), "1".to_string()])
    );
    assert_eq!(
        m.value(
            "kafka_partition_latest_offset",
            &[("topic", "t"), ("partition", "1")]
        ),
        Some(10.0),
        "the last watermark read"
    );
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &gp("good", "t", "1")),
        Some(4.0)
    );
    assert_eq!(
        m.value("tidemark_cluster_stale_partitions", &cluster),
        Some(1.0)
    );
    assert_eq!(m.value("tidemark_cluster_up", &cluster), Some(0.0));
    assert_eq!(exp.cycles_failed(CLUSTER), 0);
    exp.shutdown().await;
}

/// klag-exporter's `staleness_threshold`: a cluster whose broker is gone keeps its last
/// values (with `up` 0) for the threshold, then its series leave /metrics, so Prometheus
/// sees a gap rather than a frozen snapshot; they come back, exact, with the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_gone_past_the_staleness_threshold_leaves_metrics_and_comes_back() {
    let stub = StubCluster::start(&[1]).await;
    stub.add_topic("orders", &[1]);
    stub.set_watermarks("orders", 0, 0, 10);
    stub.add_group(
        StubGroup::consumer("g")
            .coordinator(1)
            .offset("orders", 0, 4),
    );
    let threshold = Duration::from_secs(2);
    let exp = exporter_on(
        &stub,
        "poll_interval = \"200ms\"\ngranularity = \"partition\"\nstaleness_threshold = \"2s\"\n\
         [exporter.performance]\nkafka_timeout = \"300ms\"\noffset_fetch_timeout = \"300ms\"",
        "",
    )
    .await;
    let lag = |m: &Metrics| m.value("kafka_consumergroup_group_lag", &gp("g", "orders", "0"));
    let up = |m: &Metrics| m.value("tidemark_cluster_up", &[("cluster_name", CLUSTER)]);
    let m = next_full_cycle(&exp, CLUSTER).await;
    assert_eq!(
        (lag(&m), up(&m)),
        (Some(6.0), Some(1.0)),
        "before the broker goes"
    );

    let ok_before = exp.cycles_ok(CLUSTER);
    stub.stop_node(1).await;
    let stopped = Instant::now();
    // Frozen while within the threshold, then gone; never another value.
    let gone_after = loop {
        let m = exp.metrics().await;
        match lag(&m) {
            Some(v) => {
                assert_eq!(v, 6.0, "a value the broker never had");
                if exp.cycles_ok(CLUSTER) == ok_before && exp.cycles_failed(CLUSTER) > 0 {
                    assert_eq!(
                        up(&m),
                        Some(0.0),
                        "failing cycles say so while values are kept"
                    );
                }
            }
            None => {
                assert_eq!(up(&m), Some(0.0), "a cluster past the threshold is down");
                assert!(
                    m.find("kafka_partition_latest_offset", &[]).is_empty(),
                    "every series of the cluster leaves, not only the lag"
                );
                break stopped.elapsed();
            }
        }
        assert!(
            stopped.elapsed() < WAIT,
            "series still served {WAIT:?} after the broker went"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "series left /metrics {gone_after:?} after the broker stopped (threshold {threshold:?})"
    );
    // The threshold counts from the last success, at most one poll before the stop.
    assert!(
        gone_after + Duration::from_millis(250) >= threshold,
        "series dropped after {gone_after:?}, before the {threshold:?} threshold"
    );

    stub.restart_node(1).await;
    let restarted = Instant::now();
    let back = loop {
        let m = exp.metrics().await;
        if let Some(v) = lag(&m) {
            assert_eq!(
                (v, up(&m)),
                (6.0, Some(1.0)),
                "back with the broker's values"
            );
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < WAIT,
            "series not back {WAIT:?} after the broker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("series back {back:?} after the broker restarted");
    exp.shutdown().await;
}
