//! Kafka 4.x group types against the scripted stub: classic and KIP-848 consumer groups
//! side by side, a group converting between them, a broker without the new APIs, and a
//! streams group.
//!
//! Every expected value comes from what the test scripted into the stub's model.

use tidemark_testkit as common;

use common::workload::now_ms;

use std::time::Duration;

use common::exporter::{config, Metrics, RunningExporter, FAST};
use common::stub::{code, consumer_assignment, StubCluster, StubGroup, StubMember, Target};
use kafka_protocol::messages::ApiKey;

const CLUSTER: &str = "stub";
const WAIT: Duration = Duration::from_secs(15);

async fn exporter_on(stub: &StubCluster) -> RunningExporter {
    RunningExporter::start(&config(CLUSTER, &stub.bootstrap(), FAST, "")).await
}

/// Wait for a cycle that started after now, and scrape.
async fn next_full_cycle(exp: &RunningExporter) -> Metrics {
    let n = exp.cycles_ok(CLUSTER);
    exp.wait_cycles(CLUSTER, n + 2, WAIT).await;
    exp.metrics().await
}

fn state(m: &Metrics, group: &str) -> Option<(f64, String)> {
    let found = m.find("kafka_consumergroup_group_state", &[("group", group)]);
    assert!(found.len() <= 1, "{group}: {found:?}");
    found.first().map(|s| {
        (
            s.value,
            s.labels.get("group_type").cloned().unwrap_or_default(),
        )
    })
}

/// (member_host, consumer_id, client_id) of a group partition's lag series, and its value.
fn lag_row(m: &Metrics, group: &str, partition: &str) -> (f64, [String; 3]) {
    let found = m.find(
        "kafka_consumergroup_group_lag",
        &[
            ("group", group),
            ("topic", "orders"),
            ("partition", partition),
        ],
    );
    assert_eq!(found.len(), 1, "{group} orders/{partition}: {found:?}");
    let l = &found[0].labels;
    assert!(
        !l.contains_key("group_type"),
        "lag series are not typed: {l:?}"
    );
    (
        found[0].value,
        [
            l["member_host"].clone(),
            l["consumer_id"].clone(),
            l["client_id"].clone(),
        ],
    )
}

fn member(host: &str, consumer: &str, client: &str) -> [String; 3] {
    [host.to_owned(), consumer.to_owned(), client.to_owned()]
}

/// Topic "orders": 2 partitions (node 1, node 2), high watermark 100 on both. A classic
/// group "billing" (coordinator 1) and a KIP-848 group "shipping" (coordinator 2).
fn two_groups(stub: &StubCluster) {
    stub.add_topic("orders", &[1, 2]);
    for p in 0..2 {
        stub.set_watermarks("orders", p, 0, 100);
    }
    stub.add_group(
        StubGroup::consumer("billing")
            .coordinator(1)
            .member(
                StubMember::new("billing-1", "billing-app", "/10.0.0.1")
                    .assignment(consumer_assignment(1, &[("orders", &[0, 1])], None)),
            )
            .offset("orders", 0, 90)
            .offset("orders", 1, 60),
    );
    stub.add_group(
        StubGroup::kip848("shipping")
            .coordinator(2)
            .state("Reconciling")
            .member(StubMember::new("ship-a", "ship-app", "/10.0.0.7").owns("orders", &[1]))
            .member(StubMember::new("ship-b", "ship-app", "/10.0.0.8").owns("orders", &[0]))
            .offset("orders", 0, 70)
            .offset("orders", 1, 100),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_and_kip848_groups_side_by_side() {
    let stub = StubCluster::start(&[1, 2]).await;
    two_groups(&stub);
    let exp = exporter_on(&stub).await;
    let m = next_full_cycle(&exp).await;

    assert_eq!(state(&m, "billing"), Some((3.0, "classic".into())));
    assert_eq!(state(&m, "shipping"), Some((7.0, "consumer".into())));
    assert_eq!(
        lag_row(&m, "billing", "0"),
        (10.0, member("/10.0.0.1", "billing-1", "billing-app"))
    );
    assert_eq!(
        lag_row(&m, "billing", "1"),
        (40.0, member("/10.0.0.1", "billing-1", "billing-app"))
    );
    assert_eq!(
        lag_row(&m, "shipping", "0"),
        (30.0, member("/10.0.0.8", "ship-b", "ship-app"))
    );
    assert_eq!(
        lag_row(&m, "shipping", "1"),
        (0.0, member("/10.0.0.7", "ship-a", "ship-app"))
    );
    assert_eq!(
        m.value(
            "kafka_consumergroup_group_max_lag",
            &[("group", "shipping")]
        ),
        Some(30.0)
    );
    assert_eq!(m.value("tidemark_cluster_up", &[]), Some(1.0));
    exp.shutdown().await;

    // KIP-848 groups go to ConsumerGroupDescribe on their coordinator only, classic ones to
    // DescribeGroups: neither names the other's group.
    let cgd = stub.requests_of(ApiKey::ConsumerGroupDescribe);
    assert!(!cgd.is_empty());
    for r in &cgd {
        assert_eq!((r.node, r.groups()), (2, vec!["shipping".to_owned()]));
    }
    for r in stub.requests_of(ApiKey::DescribeGroups) {
        assert_eq!((r.node, r.groups()), (1, vec!["billing".to_owned()]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_converting_from_classic_to_consumer_between_cycles() {
    let stub = StubCluster::start(&[1]).await;
    stub.add_topic("orders", &[1]);
    stub.set_watermarks("orders", 0, 0, 50);
    stub.add_group(
        StubGroup::consumer("moving")
            .member(
                StubMember::new("old-1", "legacy-app", "/10.0.0.1")
                    .assignment(consumer_assignment(0, &[("orders", &[0])], None)),
            )
            .offset("orders", 0, 20),
    );
    let exp = exporter_on(&stub).await;
    let m = next_full_cycle(&exp).await;
    assert_eq!(state(&m, "moving"), Some((3.0, "classic".into())));
    assert_eq!(
        lag_row(&m, "moving", "0"),
        (30.0, member("/10.0.0.1", "old-1", "legacy-app"))
    );

    stub.update_group("moving", |g| {
        g.group_type = "consumer".into();
        g.state = "Assigning".into();
        g.members = vec![StubMember::new("new-1", "modern-app", "/10.0.0.2").owns("orders", &[0])];
        g.offsets.insert(("orders".into(), 0), 45);
    });
    let m = next_full_cycle(&exp).await;
    assert_eq!(state(&m, "moving"), Some((6.0, "consumer".into())));
    assert_eq!(
        lag_row(&m, "moving", "0"),
        (5.0, member("/10.0.0.2", "new-1", "modern-app"))
    );
    assert_eq!(m.value("tidemark_cluster_up", &[]), Some(1.0));
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_the_new_apis_reads_every_group_the_classic_way() {
    let stub = StubCluster::start(&[1, 2]).await;
    stub.remove_api(ApiKey::ConsumerGroupDescribe);
    // ListGroups v4: no group type, so every group is read as classic.
    stub.set_versions(ApiKey::ListGroups, 0, 4);
    two_groups(&stub);
    let exp = exporter_on(&stub).await;
    let m = next_full_cycle(&exp).await;
    assert_eq!(state(&m, "billing"), Some((3.0, "classic".into())));
    // DescribeGroups reports the model's state for it.
    assert_eq!(state(&m, "shipping"), Some((7.0, "classic".into())));
    assert_eq!(lag_row(&m, "shipping", "0").0, 30.0);
    assert_eq!(lag_row(&m, "billing", "1").0, 40.0);
    assert_eq!(m.value("tidemark_cluster_up", &[]), Some(1.0));
    exp.shutdown().await;
    assert_eq!(stub.count(ApiKey::ConsumerGroupDescribe), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_groups_on_a_broker_without_consumer_group_describe() {
    // ListGroups v5 names the types, but the broker lacks API 69: DescribeGroups for all.
    let stub = StubCluster::start(&[1, 2]).await;
    stub.remove_api(ApiKey::ConsumerGroupDescribe);
    two_groups(&stub);
    let exp = exporter_on(&stub).await;
    let m = next_full_cycle(&exp).await;
    assert_eq!(state(&m, "shipping"), Some((7.0, "consumer".into())));
    assert_eq!(state(&m, "billing"), Some((3.0, "classic".into())));
    assert_eq!(lag_row(&m, "shipping", "0").0, 30.0);
    assert_eq!(m.value("tidemark_cluster_up", &[]), Some(1.0));
    exp.shutdown().await;
    assert_eq!(stub.count(ApiKey::ConsumerGroupDescribe), 0);
    assert!(stub
        .requests_of(ApiKey::DescribeGroups)
        .iter()
        .any(|r| r.names_group("shipping")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_groups_fall_back_to_describe_groups() {
    // "billing" is listed as a consumer group, but ConsumerGroupDescribe answers
    // GROUP_ID_NOT_FOUND for it (as for a group that turned classic after it was listed).
    let stub = StubCluster::start(&[1, 2]).await;
    two_groups(&stub);
    stub.update_group("billing", |g| g.group_type = "consumer".into());
    stub.fail_always(
        ApiKey::ConsumerGroupDescribe,
        Target::group("billing"),
        code::GROUP_ID_NOT_FOUND,
    );
    let exp = exporter_on(&stub).await;
    let m = next_full_cycle(&exp).await;
    assert_eq!(state(&m, "billing"), Some((3.0, "consumer".into())));
    assert_eq!(
        lag_row(&m, "billing", "0"),
        (10.0, member("/10.0.0.1", "billing-1", "billing-app"))
    );
    assert_eq!(state(&m, "shipping"), Some((7.0, "consumer".into())));
    assert_eq!(m.value("tidemark_cluster_up", &[]), Some(1.0));
    exp.shutdown().await;
    // "billing" was asked with ConsumerGroupDescribe, then DescribeGroups, each cycle.
    assert!(stub
        .requests_of(ApiKey::DescribeGroups)
        .iter()
        .all(|r| r.groups() == vec!["billing".to_owned()]));
    assert!(stub
        .requests_of(ApiKey::ConsumerGroupDescribe)
        .iter()
        .any(|r| r.names_group("billing")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streams_group_has_its_listed_state_and_committed_lag() {
    let stub = StubCluster::start(&[1]).await;
    stub.add_topic("orders", &[1]);
    stub.set_watermarks("orders", 0, 0, 40);
    stub.add_group(
        StubGroup::consumer("flows")
            .group_type("streams")
            .state("Stable")
            .offset("orders", 0, 25),
    );
    let exp = exporter_on(&stub).await;
    let m = next_full_cycle(&exp).await;
    assert_eq!(state(&m, "flows"), Some((3.0, "streams".into())));
    assert_eq!(lag_row(&m, "flows", "0"), (15.0, member("", "", "")));
    assert_eq!(m.value("tidemark_cluster_up", &[]), Some(1.0));
    exp.shutdown().await;
    assert_eq!(stub.count(ApiKey::DescribeGroups), 0);
    assert_eq!(stub.count(ApiKey::ConsumerGroupDescribe), 0);
}

/// 30 groups of each kind over 3 coordinators cost one request per coordinator, API and
/// cycle (ConsumerGroupDescribe, DescribeGroups, ShareGroupDescribe,
/// DescribeShareGroupOffsets, OffsetFetch), whatever their number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptions_cost_one_request_per_coordinator_and_api_per_cycle() {
    let stub = StubCluster::start(&[1, 2, 3]).await;
    stub.add_topic("orders", &[1, 2, 3]);
    for p in 0..3 {
        stub.set_watermarks("orders", p, 0, 10);
    }
    for i in 0..30 {
        let node = 1 + i % 3;
        stub.add_group(
            StubGroup::consumer(&format!("classic-{i:02}"))
                .coordinator(node)
                .offset("orders", 0, 5),
        );
        stub.add_group(
            StubGroup::kip848(&format!("kip848-{i:02}"))
                .coordinator(node)
                .member(StubMember::new("m", "c", "/h").owns("orders", &[1]))
                .offset("orders", 1, 5),
        );
        stub.add_group(
            StubGroup::share(&format!("share-{i:02}"))
                .coordinator(node)
                .member(StubMember::new("m", "c", "/h").owns("orders", &[2]))
                .offset("orders", 2, 5),
        );
    }
    let exp = exporter_on(&stub).await;
    exp.wait_cycles(CLUSTER, 4, WAIT).await;
    exp.shutdown().await;
    for node in 1..=3 {
        // One ListGroups per broker opens each cycle (none is left half-done: the exporter
        // stopped after whole cycles or in one, which sends each request at most once).
        let cycles = stub.count_on(node, ApiKey::ListGroups);
        assert!(cycles >= 4, "node {node}: {cycles} cycles");
        for api in [
            ApiKey::ConsumerGroupDescribe,
            ApiKey::DescribeGroups,
            ApiKey::ShareGroupDescribe,
            ApiKey::DescribeShareGroupOffsets,
            ApiKey::OffsetFetch,
        ] {
            let n = stub.count_on(node, api);
            assert!(
                n <= cycles && n + 1 >= cycles,
                "node {node}: {n} {api:?} in {cycles} cycles"
            );
        }
    }
}

/// A share group next to a classic group on topic "jobs": node 1 leads jobs/0, node 2
/// jobs/1, 20 records each, one a second from 15 minutes ago.
fn share_setup(stub: &StubCluster, ts: impl Fn(i64) -> i64) {
    stub.add_topic("jobs", &[1, 2]);
    for p in 0..2 {
        stub.append_records("jobs", p, &(0..20).map(&ts).collect::<Vec<_>>());
    }
    stub.add_group(
        StubGroup::share("workers")
            .coordinator(2)
            // Both members share jobs/0; the lower member id labels it.
            .member(StubMember::new("w-2", "worker-b", "/10.0.1.2").owns("jobs", &[0]))
            .member(StubMember::new("w-1", "worker-a", "/10.0.1.1").owns("jobs", &[0, 1]))
            .offset("jobs", 0, 5)
            // Not initialised: no series.
            .offset("jobs", 1, -1),
    );
    stub.add_group(StubGroup::consumer("classic").offset("jobs", 1, 12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_group_has_lag_from_its_start_offsets_and_families_of_its_own() {
    let stub = StubCluster::start(&[1, 2]).await;
    let base = now_ms() - 900_000;
    let ts = move |o: i64| base + o * 1000;
    share_setup(&stub, ts);
    let exp = exporter_on(&stub).await;
    let m = next_full_cycle(&exp).await;

    let row = [("group", "workers"), ("topic", "jobs"), ("partition", "0")];
    let lag = m.find("kafka_sharegroup_group_lag", &row);
    assert_eq!(lag.len(), 1, "{lag:?}");
    assert_eq!(lag[0].value, 15.0, "high 20 − start 5");
    assert_eq!(lag[0].labels["member_host"], "/10.0.1.1");
    assert_eq!(lag[0].labels["consumer_id"], "w-1");
    assert_eq!(lag[0].labels["client_id"], "worker-a");
    let secs = m.find("kafka_sharegroup_group_lag_seconds", &row);
    assert_eq!(secs.len(), 1, "{secs:?}");
    let want = (now_ms() - ts(5)) as f64 / 1000.0;
    assert!(
        secs[0].value <= want && secs[0].value > want - 10.0,
        "time lag {} of the record at the start offset, want just under {want}",
        secs[0].value
    );
    assert_eq!(secs[0].labels["data_loss_detected"], "false");
    // The uninitialised share partition has no series.
    assert!(m
        .find(
            "kafka_sharegroup_group_lag",
            &[("group", "workers"), ("partition", "1")]
        )
        .is_empty());
    assert_eq!(
        m.value("kafka_sharegroup_group_max_lag", &[("group", "workers")]),
        Some(15.0)
    );
    assert_eq!(
        m.value("kafka_sharegroup_group_state", &[("group", "workers")]),
        Some(3.0)
    );
    // Never in the consumer-group families; the classic group is as always.
    assert!(!m
        .samples
        .iter()
        .any(|s| s.name.starts_with("kafka_consumergroup_")
            && s.labels.get("group").map(String::as_str) == Some("workers")));
    assert_eq!(
        m.value(
            "kafka_consumergroup_group_lag",
            &[("group", "classic"), ("partition", "1")]
        ),
        Some(8.0)
    );
    assert_eq!(m.value("tidemark_cluster_up", &[]), Some(1.0));
    exp.shutdown().await;

    for api in [ApiKey::OffsetFetch, ApiKey::DescribeGroups] {
        assert!(
            !stub
                .requests_of(api)
                .iter()
                .any(|r| r.names_group("workers")),
            "{api:?} names the share group"
        );
    }
    for api in [
        ApiKey::ShareGroupDescribe,
        ApiKey::DescribeShareGroupOffsets,
    ] {
        let sent = stub.requests_of(api);
        assert!(!sent.is_empty(), "{api:?} sent");
        for r in sent {
            assert_eq!(
                (r.node, r.groups()),
                (2, vec!["workers".to_owned()]),
                "{api:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_group_on_a_broker_with_only_share_group_describe_v0() {
    // Kafka 4.0 advertises ShareGroupDescribe v0 only: no state, no error, lag as always.
    let stub = StubCluster::start(&[1, 2]).await;
    stub.set_versions(ApiKey::ShareGroupDescribe, 0, 0);
    let base = now_ms() - 900_000;
    share_setup(&stub, move |o| base + o * 1000);
    let exp = exporter_on(&stub).await;
    let m = next_full_cycle(&exp).await;
    assert_eq!(
        m.value("kafka_sharegroup_group_state", &[("group", "workers")]),
        Some(0.0)
    );
    assert_eq!(
        m.value("kafka_sharegroup_group_max_lag", &[("group", "workers")]),
        Some(15.0)
    );
    assert_eq!(m.value("tidemark_cluster_up", &[]), Some(1.0));
    exp.shutdown().await;
    assert_eq!(stub.count(ApiKey::ShareGroupDescribe), 0);
}
