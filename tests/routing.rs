//! Routing, retries and version negotiation of tidemark's wire client, against the
//! scripted stub cluster (`common::stub`): stale leaders and coordinators, errors that
//! clear and errors that never do, old brokers, brokers without a needed API, and
//! responses the decoder rejects. Each test builds its own stub cluster; backoffs are
//! 10 ms so the whole file runs in well under a second of sleeping.

use tidemark_testkit as common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::stub::{
    code, consumer_assignment, Reply, StubGroup, StubMember, Target, EARLIEST, LATEST,
};
use common::StubCluster;
use kafka_protocol::messages::ApiKey;
use tidemark::kafka::records::TimestampType;
use tidemark::kafka::{
    ClientConfig, Cluster, ConnectionConfig, KafkaError, KafkaErrorKind, TimestampQuery,
    TimestampResult, TopicPartition, Watermarks,
};

const BACKOFF: Duration = Duration::from_millis(10);

async fn connect(stub: &StubCluster, max_retries: u32) -> Cluster {
    let config = ClientConfig {
        bootstrap_servers: vec![stub.bootstrap()],
        connection: ConnectionConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            ..ConnectionConfig::default()
        },
        max_retries,
        retry_backoff: BACKOFF,
        max_backoff: Duration::from_millis(500),
    };
    match Cluster::connect(config).await {
        Ok(c) => c,
        Err(e) => panic!("connecting to the stub cluster: {e}"),
    }
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn names(groups: &[&str]) -> Vec<String> {
    groups.iter().map(|g| g.to_string()).collect()
}

/// tidemark's own count of `api` requests sent to `node`.
fn sent(cluster: &Cluster, node: i32, api: ApiKey) -> u64 {
    cluster.counters().get(&node).map_or(0, |c| c.requests(api))
}

fn ok<T: Clone + std::fmt::Debug>(what: &str, r: &Result<T, KafkaError>) -> T {
    match r {
        Ok(v) => v.clone(),
        Err(e) => panic!("{what}: {e}"),
    }
}

fn err<'a, T: std::fmt::Debug>(what: &str, r: &'a Result<T, KafkaError>) -> &'a KafkaError {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// Committed offsets as tidemark reports them, for comparing with the model.
fn offsets(pairs: &[(&str, i32, i64)]) -> BTreeMap<TopicPartition, i64> {
    pairs.iter().map(|(t, p, o)| (tp(t, *p), *o)).collect()
}

/// Watermarks of `orders/p` in the tests below: distinct per partition.
fn marks(p: i32) -> Watermarks {
    Watermarks {
        low: 10 * i64::from(p),
        high: 100 + i64::from(p),
    }
}

fn add_orders(stub: &StubCluster, leaders: &[i32]) -> Vec<TopicPartition> {
    stub.add_topic("orders", leaders);
    (0..leaders.len() as i32)
        .map(|p| {
            stub.set_watermarks("orders", p, marks(p).low, marks(p).high);
            tp("orders", p)
        })
        .collect()
}

// 1 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn not_leader_on_list_offsets_retries_that_partition_at_the_new_leader() {
    let stub = StubCluster::start(&[1, 2]).await;
    let partitions = add_orders(&stub, &[1, 1, 2, 2]);
    let cluster = connect(&stub, 3).await;
    assert_eq!(cluster.metadata().leader(&tp("orders", 0)), Some(1));

    // The leader of orders/0 moves after tidemark read metadata: node 1 now answers
    // NOT_LEADER_OR_FOLLOWER for it, a metadata refresh names node 2.
    stub.set_leader("orders", 0, 2);
    stub.clear_requests();
    let wm = cluster.watermarks(&partitions).await;

    assert_eq!(wm.len(), 4);
    for p in 0..4 {
        assert_eq!(
            ok("watermarks", &wm[&tp("orders", p)]),
            marks(p),
            "orders/{p}"
        );
    }
    let log = stub.requests();
    let moved: Vec<_> = log
        .iter()
        .filter(|r| r.api == ApiKey::ListOffsets && r.names_partition("orders", 0))
        .collect();
    let at = |node: i32| -> BTreeSet<i64> {
        moved
            .iter()
            .filter(|r| r.node == node)
            .filter_map(|r| r.list_offsets_timestamp())
            .collect()
    };
    assert_eq!(
        moved.len(),
        4,
        "orders/0: earliest + latest, twice: {moved:#?}"
    );
    assert_eq!(at(1), BTreeSet::from([EARLIEST, LATEST]));
    assert_eq!(at(2), BTreeSet::from([EARLIEST, LATEST]));
    let first_retry = moved
        .iter()
        .find(|r| r.node == 2)
        .map_or(u64::MAX, |r| r.seq);
    let last_stale = moved
        .iter()
        .filter(|r| r.node == 1)
        .map(|r| r.seq)
        .max()
        .unwrap_or(0);
    assert!(
        last_stale < first_retry,
        "retried only after node 1 answered"
    );
    // Metadata was refreshed between the stale answer and the retry.
    assert!(
        log.iter()
            .any(|r| r.api == ApiKey::Metadata && r.seq > last_stale && r.seq < first_retry),
        "no Metadata request between the stale answer and the retry: {log:#?}"
    );
    assert_eq!(cluster.metadata().leader(&tp("orders", 0)), Some(2));
    // The other partitions were asked once (earliest + latest) and never again.
    for p in 1..4 {
        let n = log
            .iter()
            .filter(|r| r.api == ApiKey::ListOffsets && r.names_partition("orders", p))
            .count();
        assert_eq!(n, 2, "orders/{p} was re-requested");
    }
    // tidemark's counters agree: node 1 got one batch (x2), node 2 its own + the retry.
    assert_eq!(sent(&cluster, 1, ApiKey::ListOffsets), 2);
    assert_eq!(sent(&cluster, 2, ApiKey::ListOffsets), 4);
}

// 2 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn not_coordinator_forgets_the_coordinator_and_asks_again_for_that_group_only() {
    let stub = StubCluster::start(&[1, 2]).await;
    add_orders(&stub, &[1, 2]);
    stub.add_group(
        StubGroup::consumer("g-a")
            .coordinator(1)
            .offset("orders", 0, 5)
            .offset("orders", 1, 7),
    );
    stub.add_group(
        StubGroup::consumer("g-b")
            .coordinator(1)
            .offset("orders", 0, 11),
    );
    stub.add_group(
        StubGroup::consumer("g-c")
            .coordinator(1)
            .offset("orders", 1, 13),
    );
    let groups = names(&["g-a", "g-b", "g-c"]);
    let cluster = connect(&stub, 3).await;
    let before = cluster.committed_offsets(&groups).await;
    for g in &groups {
        ok("first round", &before[g]);
    }
    assert_eq!(stub.count(ApiKey::FindCoordinator), 1);

    // g-b moves to node 2; tidemark's cache still says node 1, which now answers
    // NOT_COORDINATOR for it.
    stub.set_coordinator("g-b", 2);
    stub.clear_requests();
    let after = cluster.committed_offsets(&groups).await;

    let want = [
        ("g-a", offsets(&[("orders", 0, 5), ("orders", 1, 7)])),
        ("g-b", offsets(&[("orders", 0, 11)])),
        ("g-c", offsets(&[("orders", 1, 13)])),
    ];
    for (g, offsets) in want {
        let got = ok(g, &after[g]);
        assert_eq!(got.offsets, offsets, "{g}");
        assert!(got.partition_errors.is_empty(), "{g}: {got:?}");
    }
    let lookups = stub.requests_of(ApiKey::FindCoordinator);
    assert_eq!(lookups.len(), 1, "one new FindCoordinator: {lookups:#?}");
    assert_eq!(lookups[0].groups(), names(&["g-b"]));
    let fetches = stub.requests_of(ApiKey::OffsetFetch);
    assert_eq!(fetches.len(), 2, "{fetches:#?}");
    let sorted = |r: &common::stub::Received| r.groups().into_iter().collect::<BTreeSet<_>>();
    assert_eq!(fetches[0].node, 1);
    assert_eq!(sorted(&fetches[0]), groups.iter().cloned().collect());
    assert_eq!(fetches[1].node, 2);
    assert_eq!(fetches[1].groups(), names(&["g-b"]));
    // The new coordinator is cached: no further lookup.
    let cached = cluster.find_coordinators(&names(&["g-b"])).await;
    assert_eq!(ok("g-b coordinator", &cached["g-b"]), 2);
    assert_eq!(stub.count(ApiKey::FindCoordinator), 1);
}

// 3 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn coordinator_load_in_progress_twice_then_success_with_backoff() {
    let stub = StubCluster::start(&[1]).await;
    add_orders(&stub, &[1]);
    stub.add_group(StubGroup::consumer("g-load").offset("orders", 0, 3));
    stub.add_group(StubGroup::consumer("g-ok").offset("orders", 0, 4));
    stub.fail(
        ApiKey::OffsetFetch,
        Target::group("g-load"),
        code::COORDINATOR_LOAD_IN_PROGRESS,
        2,
    );
    let cluster = connect(&stub, 3).await;

    let start = Instant::now();
    let got = cluster.committed_offsets(&names(&["g-load", "g-ok"])).await;
    let elapsed = start.elapsed();

    assert_eq!(
        ok("g-load", &got["g-load"]).offsets,
        offsets(&[("orders", 0, 3)])
    );
    assert_eq!(
        ok("g-ok", &got["g-ok"]).offsets,
        offsets(&[("orders", 0, 4)])
    );
    // Backoff before retry 1 and retry 2: 10 ms + 20 ms.
    let backoff_sum = BACKOFF + BACKOFF * 2;
    assert!(
        elapsed >= backoff_sum,
        "{elapsed:?} < {backoff_sum:?}: retried without backing off"
    );
    let fetches = stub.requests_of(ApiKey::OffsetFetch);
    let naming = |g: &str| fetches.iter().filter(|r| r.names_group(g)).count();
    assert_eq!(naming("g-load"), 3, "{fetches:#?}");
    assert_eq!(naming("g-ok"), 1, "{fetches:#?}");
}

// 4 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn routing_error_that_never_clears_on_list_offsets_gives_up_after_max_retries() {
    let max_retries = 2;
    let stub = StubCluster::start(&[1, 2]).await;
    let partitions = add_orders(&stub, &[1, 2, 1]);
    stub.fail_always(
        ApiKey::ListOffsets,
        Target::partition("orders", 1),
        code::NOT_LEADER_OR_FOLLOWER,
    );
    let cluster = connect(&stub, max_retries).await;
    stub.clear_requests();

    let wm = cluster.watermarks(&partitions).await;

    let e = err("orders/1", &wm[&tp("orders", 1)]);
    assert!(
        matches!(
            e.kind(),
            KafkaErrorKind::Broker {
                code: 6,
                api: ApiKey::ListOffsets,
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("NOT_LEADER_OR_FOLLOWER") && text.contains("error code 6"),
        "{text}"
    );
    for p in [0, 2] {
        assert_eq!(
            ok("watermarks", &wm[&tp("orders", p)]),
            marks(p),
            "orders/{p}"
        );
    }
    let list_offsets = stub.requests_of(ApiKey::ListOffsets);
    let attempts = list_offsets
        .iter()
        .filter(|r| r.names_partition("orders", 1))
        .filter(|r| r.list_offsets_timestamp() == Some(EARLIEST))
        .count();
    assert_eq!(attempts, max_retries as usize + 1);
    for p in [0, 2] {
        let n = list_offsets
            .iter()
            .filter(|r| r.names_partition("orders", p))
            .count();
        assert_eq!(n, 2, "orders/{p} was retried");
    }
    assert_eq!(stub.count(ApiKey::Metadata), max_retries as usize);
}

#[tokio::test]
async fn routing_error_that_never_clears_on_offset_fetch_gives_up_after_max_retries() {
    let max_retries = 2;
    let stub = StubCluster::start(&[1]).await;
    add_orders(&stub, &[1]);
    stub.add_group(StubGroup::consumer("g-stuck").offset("orders", 0, 1));
    stub.add_group(StubGroup::consumer("g-ok").offset("orders", 0, 2));
    stub.fail_always(
        ApiKey::OffsetFetch,
        Target::group("g-stuck"),
        code::COORDINATOR_NOT_AVAILABLE,
    );
    let cluster = connect(&stub, max_retries).await;

    let got = cluster
        .committed_offsets(&names(&["g-stuck", "g-ok"]))
        .await;

    let e = err("g-stuck", &got["g-stuck"]);
    assert!(
        matches!(
            e.kind(),
            KafkaErrorKind::Broker {
                code: 15,
                api: ApiKey::OffsetFetch,
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("COORDINATOR_NOT_AVAILABLE") && text.contains("error code 15"),
        "{text}"
    );
    assert_eq!(
        ok("g-ok", &got["g-ok"]).offsets,
        offsets(&[("orders", 0, 2)])
    );
    let fetches = stub.requests_of(ApiKey::OffsetFetch);
    let naming = |g: &str| fetches.iter().filter(|r| r.names_group(g)).count();
    assert_eq!(naming("g-stuck"), max_retries as usize + 1);
    assert_eq!(naming("g-ok"), 1);
}

// 5 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn non_routing_partition_error_fails_that_partition_at_once() {
    let stub = StubCluster::start(&[1, 2]).await;
    let partitions = add_orders(&stub, &[1, 2, 2]);
    stub.fail_always(
        ApiKey::ListOffsets,
        Target::partition("orders", 2),
        code::UNKNOWN_TOPIC_OR_PARTITION,
    );
    let cluster = connect(&stub, 3).await;
    stub.clear_requests();

    let wm = cluster.watermarks(&partitions).await;

    let e = err("orders/2", &wm[&tp("orders", 2)]);
    assert!(
        matches!(e.kind(), KafkaErrorKind::Broker { code: 3, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("UNKNOWN_TOPIC_OR_PARTITION") && text.contains("error code 3"),
        "{text}"
    );
    for p in [0, 1] {
        assert_eq!(
            ok("watermarks", &wm[&tp("orders", p)]),
            marks(p),
            "orders/{p}"
        );
    }
    let asked = stub
        .requests_of(ApiKey::ListOffsets)
        .iter()
        .filter(|r| r.names_partition("orders", 2))
        .count();
    assert_eq!(asked, 2, "earliest + latest once, no retry");
    assert_eq!(stub.count(ApiKey::Metadata), 0, "no metadata refresh");
}

#[tokio::test]
async fn non_routing_group_error_fails_that_group_at_once() {
    let stub = StubCluster::start(&[1]).await;
    add_orders(&stub, &[1]);
    stub.add_group(StubGroup::consumer("g-denied").offset("orders", 0, 1));
    stub.add_group(StubGroup::consumer("g-ok").offset("orders", 0, 2));
    for api in [ApiKey::OffsetFetch, ApiKey::DescribeGroups] {
        stub.fail_always(
            api,
            Target::group("g-denied"),
            code::GROUP_AUTHORIZATION_FAILED,
        );
    }
    let cluster = connect(&stub, 3).await;
    let groups = names(&["g-denied", "g-ok"]);

    let offsets_got = cluster.committed_offsets(&groups).await;
    let described = cluster.describe_groups(&groups).await;

    for (api, e) in [
        (
            ApiKey::OffsetFetch,
            err("offsets", &offsets_got["g-denied"]),
        ),
        (
            ApiKey::DescribeGroups,
            err("describe", &described["g-denied"]),
        ),
    ] {
        assert!(
            matches!(e.kind(), KafkaErrorKind::Broker { code: 30, api: a, .. } if *a == api),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("GROUP_AUTHORIZATION_FAILED") && text.contains("g-denied"),
            "{text}"
        );
    }
    assert_eq!(
        ok("g-ok", &offsets_got["g-ok"]).offsets,
        offsets(&[("orders", 0, 2)])
    );
    assert_eq!(ok("g-ok", &described["g-ok"]).state, "Stable");
    assert_eq!(stub.count(ApiKey::OffsetFetch), 1, "no retry");
    assert_eq!(stub.count(ApiKey::DescribeGroups), 1, "no retry");
    assert_eq!(stub.count(ApiKey::FindCoordinator), 1, "coordinator kept");
}

// 6 ---------------------------------------------------------------------------------------

/// `n` groups, alternating between coordinators 1 and 2, each with one commit.
fn add_groups(stub: &StubCluster, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let id = format!("g-{i:02}");
            let node = 1 + (i % 2) as i32;
            stub.add_group(StubGroup::consumer(&id).coordinator(node).offset(
                "orders",
                (i % 2) as i32,
                10 * i as i64,
            ));
            id
        })
        .collect()
}

fn check_group_offsets(
    groups: &[String],
    got: &std::collections::HashMap<String, Result<tidemark::kafka::GroupOffsets, KafkaError>>,
) {
    assert_eq!(got.len(), groups.len());
    for (i, g) in groups.iter().enumerate() {
        let want = offsets(&[("orders", (i % 2) as i32, 10 * i as i64)]);
        assert_eq!(ok(g, &got[g]).offsets, want, "{g}");
    }
}

#[tokio::test]
async fn find_coordinator_v3_broker_gets_one_request_per_group() {
    let stub = StubCluster::start(&[1, 2]).await;
    add_orders(&stub, &[1, 2]);
    stub.set_versions(ApiKey::FindCoordinator, 0, 3);
    let groups = add_groups(&stub, 5);
    let cluster = connect(&stub, 3).await;

    let coordinators = cluster.find_coordinators(&groups).await;
    for (i, g) in groups.iter().enumerate() {
        assert_eq!(ok(g, &coordinators[g]), 1 + (i % 2) as i32, "{g}");
    }
    let lookups = stub.requests_of(ApiKey::FindCoordinator);
    assert_eq!(lookups.len(), groups.len(), "{lookups:#?}");
    assert!(lookups
        .iter()
        .all(|r| r.version == 3 && r.groups().len() == 1));
    let asked: BTreeSet<String> = lookups.iter().flat_map(|r| r.groups()).collect();
    assert_eq!(asked, groups.iter().cloned().collect());

    let got = cluster.committed_offsets(&groups).await;
    check_group_offsets(&groups, &got);
    assert_eq!(stub.count(ApiKey::FindCoordinator), groups.len(), "cached");
}

#[tokio::test]
async fn offset_fetch_v7_broker_gets_one_request_per_group() {
    let stub = StubCluster::start(&[1, 2]).await;
    add_orders(&stub, &[1, 2]);
    stub.set_versions(ApiKey::OffsetFetch, 1, 7);
    let groups = add_groups(&stub, 5);
    let cluster = connect(&stub, 3).await;

    let got = cluster.committed_offsets(&groups).await;

    check_group_offsets(&groups, &got);
    let fetches = stub.requests_of(ApiKey::OffsetFetch);
    assert_eq!(fetches.len(), groups.len(), "{fetches:#?}");
    for r in &fetches {
        assert_eq!(r.version, 7);
        let asked = r.groups();
        let [g] = &asked[..] else {
            panic!("one group per request below v8: {r:?}")
        };
        let i: usize = g[2..].parse().unwrap_or(usize::MAX);
        assert_eq!(r.node, 1 + (i % 2) as i32, "{g} went to its coordinator");
    }
    assert_eq!(sent(&cluster, 1, ApiKey::OffsetFetch), 3);
    assert_eq!(sent(&cluster, 2, ApiKey::OffsetFetch), 2);
}

#[tokio::test]
async fn batched_versions_send_one_request_per_coordinator_for_20_groups() {
    let stub = StubCluster::start(&[1, 2]).await;
    add_orders(&stub, &[1, 2]);
    let groups = add_groups(&stub, 20);
    let cluster = connect(&stub, 3).await;

    let got = cluster.committed_offsets(&groups).await;
    check_group_offsets(&groups, &got);
    let described = cluster.describe_groups(&groups).await;
    for g in &groups {
        assert_eq!(ok(g, &described[g]).group_id, *g);
    }

    let lookups = stub.requests_of(ApiKey::FindCoordinator);
    assert_eq!(lookups.len(), 1, "{lookups:#?}");
    assert_eq!(lookups[0].version, 4);
    assert_eq!(lookups[0].groups().len(), 20);
    for api in [ApiKey::OffsetFetch, ApiKey::DescribeGroups] {
        let sent_to: Vec<(i32, usize)> = stub
            .requests_of(api)
            .iter()
            .map(|r| (r.node, r.groups().len()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(sent_to, vec![(1, 10), (2, 10)], "{api:?}");
        assert_eq!(sent(&cluster, 1, api), 1, "{api:?}");
        assert_eq!(sent(&cluster, 2, api), 1, "{api:?}");
    }
    assert!(stub
        .requests_of(ApiKey::OffsetFetch)
        .iter()
        .all(|r| r.version == 8));
}

// 7 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn broker_without_fetch_fails_record_timestamps_naming_the_versions() {
    let stub = StubCluster::start(&[1]).await;
    stub.add_topic("orders", &[1]);
    stub.append_records("orders", 0, &[1_000, 2_000]);
    stub.remove_api(ApiKey::Fetch);
    let cluster = connect(&stub, 3).await;

    let target = (tp("orders", 0), 1);
    let got = cluster
        .record_timestamps(std::slice::from_ref(&target), TimestampQuery::default())
        .await;

    let e = err("record timestamp", &got[&target]);
    let text = e.to_string();
    assert!(
        text.contains("Fetch") && text.contains("4..=12") && text.contains("does not support"),
        "{text}"
    );
    assert!(
        matches!(
            e.kind(),
            KafkaErrorKind::NoCommonVersion {
                api: ApiKey::Fetch,
                theirs: None,
                ..
            }
        ),
        "the error should stay a NoCommonVersion, got {e:?}"
    );
    assert_eq!(stub.count(ApiKey::Fetch), 0);
    // The cluster handle is still usable.
    let wm = cluster.watermarks(&[tp("orders", 0)]).await;
    assert_eq!(
        ok("watermarks", &wm[&tp("orders", 0)]),
        Watermarks { low: 0, high: 2 }
    );
}

#[tokio::test]
async fn broker_with_only_offset_fetch_v9_fails_naming_both_ranges() {
    let stub = StubCluster::start(&[1]).await;
    add_orders(&stub, &[1]);
    stub.add_group(StubGroup::consumer("g").offset("orders", 0, 1));
    stub.set_versions(ApiKey::OffsetFetch, 9, 10);
    let cluster = connect(&stub, 3).await;

    let got = cluster.committed_offsets(&names(&["g"])).await;

    let e = err("g", &got["g"]);
    let text = e.to_string();
    assert!(
        text.contains("OffsetFetch") && text.contains("2..=8") && text.contains("9..=10"),
        "{text}"
    );
    assert!(
        matches!(
            e.kind(),
            KafkaErrorKind::NoCommonVersion {
                api: ApiKey::OffsetFetch,
                theirs: Some((9, 10)),
                ..
            }
        ),
        "the error should stay a NoCommonVersion, got {e:?}"
    );
    assert_eq!(stub.count(ApiKey::OffsetFetch), 0);
    // Other operations still work.
    let described = cluster.describe_groups(&names(&["g"])).await;
    assert_eq!(ok("g", &described["g"]).state, "Stable");
}

#[tokio::test]
async fn broker_without_api_versions_v3_is_negotiated_down() {
    let stub = StubCluster::start(&[1]).await;
    add_orders(&stub, &[1]);
    stub.set_versions(ApiKey::ApiVersions, 0, 2);
    let cluster = connect(&stub, 3).await;

    let wm = cluster.watermarks(&[tp("orders", 0)]).await;

    assert_eq!(ok("watermarks", &wm[&tp("orders", 0)]), marks(0));
    // v3 answered UNSUPPORTED_VERSION in a v0 body, then v2 on the same connection.
    let asked: Vec<(u64, i16)> = stub
        .requests_of(ApiKey::ApiVersions)
        .iter()
        .map(|r| (r.conn, r.version))
        .collect();
    assert_eq!(
        asked.len(),
        4,
        "bootstrap + node 1, each v3 then v2: {asked:?}"
    );
    for pair in asked.chunks(2) {
        assert_eq!((pair[0].1, pair[1].1), (3, 2), "{asked:?}");
        assert_eq!(pair[0].0, pair[1].0, "same connection: {asked:?}");
    }
}

// 8 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn undecodable_list_groups_is_a_decode_error_and_the_cluster_recovers() {
    let stub = StubCluster::start(&[1]).await;
    stub.add_group(StubGroup::consumer("g-1"));
    let garbage_sent = Arc::new(AtomicUsize::new(0));
    let counter = garbage_sent.clone();
    stub.set_handler(move |r, _| {
        if r.api == ApiKey::ListGroups && counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Body(Bytes::from_static(
                b"\xde\xad\xbe\xef this is not ListGroups",
            ))
        } else {
            Reply::Default
        }
    });
    let cluster = connect(&stub, 3).await;

    let e = match cluster.list_groups().await {
        Ok(groups) => panic!("garbage decoded as {groups:?}"),
        Err(e) => e,
    };
    assert!(
        matches!(
            e.kind(),
            KafkaErrorKind::Decode {
                api: ApiKey::ListGroups,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("ListGroups"), "{e}");
    assert_eq!(garbage_sent.load(Ordering::SeqCst), 1);

    let groups = match cluster.list_groups().await {
        Ok(g) => g,
        Err(e) => panic!("second ListGroups: {e}"),
    };
    let ids: Vec<_> = groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(ids, ["g-1"]);
    assert_eq!(stub.count(ApiKey::ListGroups), 2);
}

#[tokio::test]
async fn undecodable_list_offsets_fails_the_partitions_of_that_leader_with_a_decode_error() {
    let stub = StubCluster::start(&[1, 2]).await;
    let partitions = add_orders(&stub, &[1, 2]);
    stub.set_handler(|r, _| {
        if r.api == ApiKey::ListOffsets && r.node == 2 {
            Reply::Body(Bytes::from_static(b"\xde\xad\xbe\xef not ListOffsets"))
        } else {
            Reply::Default
        }
    });
    let cluster = connect(&stub, 3).await;

    let wm = cluster.watermarks(&partitions).await;

    assert_eq!(ok("orders/0", &wm[&tp("orders", 0)]), marks(0));
    let e = err("orders/1", &wm[&tp("orders", 1)]);
    assert!(e.to_string().contains("ListOffsets"), "{e}");
    assert!(
        matches!(
            e.kind(),
            KafkaErrorKind::Decode {
                api: ApiKey::ListOffsets,
                ..
            }
        ),
        "the error should stay a Decode error, got {e:?}"
    );
    assert!(!e.is_transport(), "{e:?}");
}

#[tokio::test]
async fn dead_leader_fails_its_partitions_without_redialling_and_spares_the_others() {
    let max_retries = 2;
    let stub = StubCluster::start(&[1, 2]).await;
    let partitions = add_orders(&stub, &[1, 2, 1]);
    let cluster = connect(&stub, max_retries).await;
    stub.stop_node(2).await;
    stub.clear_requests();

    let wm = cluster.watermarks(&partitions).await;

    for p in [0, 2] {
        assert_eq!(
            ok("watermarks", &wm[&tp("orders", p)]),
            marks(p),
            "orders/{p}"
        );
    }
    let e = err("orders/1", &wm[&tp("orders", 1)]);
    let text = e.to_string();
    assert!(
        text.contains(&stub.addr(2).to_string()),
        "names the dead broker: {text}"
    );
    // One retry after a metadata refresh (from node 1) in case the leader moved; the dead
    // broker itself is not dialled again in this cycle.
    assert!(
        matches!(e.kind(), KafkaErrorKind::BrokerDown { node: 2, .. }),
        "{e:?}"
    );
    assert_eq!(stub.count(ApiKey::Metadata), 1);
    assert_eq!(
        stub.count_on(1, ApiKey::ListOffsets),
        2,
        "node 1's partitions once"
    );
    // The next cycle dials it again.
    cluster.begin_cycle();
    let wm = cluster.watermarks(&partitions).await;
    assert!(wm[&tp("orders", 1)].is_err());
    assert_eq!(stub.count(ApiKey::Metadata), 2);
}

// 9 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn describe_groups_decodes_consumer_assignments() {
    let stub = StubCluster::start(&[1]).await;
    add_orders(&stub, &[1, 1, 1]);
    let corrupt = Bytes::from_static(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 0]);
    stub.add_group(
        StubGroup::consumer("g-assign")
            .member(
                StubMember::new("m-0", "client-0", "/10.0.0.10").assignment(consumer_assignment(
                    0,
                    &[("orders", &[0, 1])],
                    None,
                )),
            )
            .member(StubMember::new("m-1", "client-1", "/10.0.0.11").assignment(
                consumer_assignment(1, &[("payments", &[2])], Some(b"sticky")),
            ))
            .member(
                StubMember::new("m-3", "client-3", "/10.0.0.13")
                    .instance_id("static-3")
                    .assignment(consumer_assignment(
                        3,
                        &[("orders", &[2]), ("payments", &[0, 1])],
                        None,
                    )),
            )
            .member(StubMember::new("m-new", "client-new", "/10.0.0.14"))
            .member(StubMember::new("m-bad", "client-bad", "/10.0.0.15").assignment(corrupt)),
    );
    let cluster = connect(&stub, 3).await;

    let got = cluster.describe_groups(&names(&["g-assign"])).await;

    let g = ok("g-assign", &got["g-assign"]);
    assert_eq!(
        (
            g.state.as_str(),
            g.protocol_type.as_str(),
            g.protocol.as_str()
        ),
        ("Stable", "consumer", "range")
    );
    let by_id: BTreeMap<&str, _> = g
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m))
        .collect();
    assert_eq!(by_id.len(), 5);
    // (member, client id, client host, group instance id, assignment)
    type Member<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Vec<TopicPartition>,
    );
    let want: [Member; 4] = [
        (
            "m-0",
            "client-0",
            "/10.0.0.10",
            None,
            vec![tp("orders", 0), tp("orders", 1)],
        ),
        (
            "m-1",
            "client-1",
            "/10.0.0.11",
            None,
            vec![tp("payments", 2)],
        ),
        (
            "m-3",
            "client-3",
            "/10.0.0.13",
            Some("static-3"),
            vec![tp("orders", 2), tp("payments", 0), tp("payments", 1)],
        ),
        ("m-new", "client-new", "/10.0.0.14", None, vec![]),
    ];
    for (id, client, host, instance, assignment) in want {
        let m = by_id[id];
        assert_eq!(m.client_id, client, "{id}");
        assert_eq!(m.client_host, host, "{id}");
        assert_eq!(m.group_instance_id.as_deref(), instance, "{id}");
        assert_eq!(m.assignment, assignment, "{id}");
        assert_eq!(m.assignment_error, None, "{id}");
    }
    let bad = by_id["m-bad"];
    assert_eq!(
        (bad.client_id.as_str(), bad.client_host.as_str()),
        ("client-bad", "/10.0.0.15")
    );
    assert!(bad.assignment.is_empty());
    let why = bad.assignment_error.as_deref().unwrap_or_default();
    assert!(why.contains("assigned_partitions"), "{why:?}");
}

// The stub's own Fetch path, which the data-loss and compaction scenarios build on ------

#[tokio::test]
async fn stub_fetch_serves_record_timestamps_retention_and_compaction() {
    let stub = StubCluster::start(&[1, 2]).await;
    stub.add_topic("orders", &[1, 2]);
    let stamps: Vec<i64> = (0..10).map(|i| 1_700_000_000_000 + i * 1_000).collect();
    for p in 0..2 {
        stub.append_records("orders", p, &stamps);
    }
    // orders/0: offsets below 4 deleted by retention; orders/1: offsets 5 and 6 compacted.
    stub.delete_records_before("orders", 0, 4);
    stub.compact_away("orders", 1, &[5, 6]);
    let cluster = connect(&stub, 3).await;

    let targets = [
        (tp("orders", 0), 2),
        (tp("orders", 0), 7),
        (tp("orders", 1), 3),
        (tp("orders", 1), 5),
        (tp("orders", 1), 10),
    ];
    let got = cluster
        .record_timestamps(&targets, TimestampQuery::default())
        .await;

    let found = |t: &(TopicPartition, i64)| match ok("timestamp", &got[t]) {
        TimestampResult::Found(r) => {
            assert_eq!(r.timestamp_type, TimestampType::CreateTime);
            (r.offset, r.timestamp_ms)
        }
        other => panic!("{t:?}: {other:?}"),
    };
    assert_eq!(
        found(&targets[0]),
        (4, stamps[4]),
        "data loss: first record left"
    );
    assert_eq!(found(&targets[1]), (7, stamps[7]));
    assert_eq!(found(&targets[2]), (3, stamps[3]));
    assert_eq!(found(&targets[3]), (7, stamps[7]), "compacted: next record");
    assert_eq!(ok("end", &got[&targets[4]]), TimestampResult::EndOfLog);
    let wm = cluster.watermarks(&[tp("orders", 0)]).await;
    assert_eq!(
        ok("wm", &wm[&tp("orders", 0)]),
        Watermarks { low: 4, high: 10 }
    );
    // One Fetch per leader per round.
    assert!(stub.count_on(1, ApiKey::Fetch) >= 1 && stub.count_on(2, ApiKey::Fetch) >= 1);
}

#[tokio::test]
async fn stub_describe_configs_serves_topic_configs() {
    let stub = StubCluster::start(&[1]).await;
    stub.add_topic("orders", &[1]);
    stub.add_topic("audit", &[1]);
    stub.set_topic_config("orders", "cleanup.policy", "delete");
    stub.set_topic_config("orders", "retention.ms", "604800000");
    stub.set_topic_config("audit", "cleanup.policy", "compact");
    let cluster = connect(&stub, 3).await;

    let topics = names(&["orders", "audit", "missing"]);
    let got = match cluster
        .topic_configs(&topics, Some(&["cleanup.policy"]))
        .await
    {
        Ok(c) => c,
        Err(e) => panic!("topic_configs: {e}"),
    };

    let policy = |t: &str| ok(t, &got[t]);
    assert_eq!(
        policy("orders"),
        BTreeMap::from([("cleanup.policy".to_string(), "delete".to_string())])
    );
    assert_eq!(
        policy("audit"),
        BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())])
    );
    let e = err("missing", &got["missing"]);
    assert!(e.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"), "{e}");
    assert_eq!(stub.count(ApiKey::DescribeConfigs), 1);
}

/// `topic` with `partitions` partitions led alternately by nodes 1 and 2, each holding
/// `records` records one second apart; returns their timestamps by offset.
fn alternating_topic(stub: &StubCluster, topic: &str, partitions: i32, records: i64) -> Vec<i64> {
    let leaders: Vec<i32> = (0..partitions).map(|p| 1 + p % 2).collect();
    stub.add_topic(topic, &leaders);
    let stamps: Vec<i64> = (0..records)
        .map(|i| 1_700_000_000_000 + i * 1_000)
        .collect();
    for p in 0..partitions {
        stub.append_records(topic, p, &stamps);
    }
    stamps
}

/// The `partition_max_bytes` of a leader's partitions add up to more than one response
/// holds. Each round asks a leader for what fits its `max_bytes` and the rest wait; and when
/// the broker's own limit (`fetch.max.bytes`) is lower than what was asked, it sends the
/// partitions past it back empty or cut, like Kafka: those are no answer ("end of log"
/// would be wrong), they go again next round. Every target is found either way.
#[tokio::test]
async fn partitions_past_the_response_cap_go_again_and_every_target_is_found() {
    for (asked, broker_limit, expected) in [
        // 3 × 1 KiB per request: three partitions per leader and round.
        (3 * 1024, None, [3, 3, 3, 3]),
        // All six asked for, the broker stops at 3 KiB: three answered, three go again.
        (6 * 1024, Some(3 * 1024), [6, 6, 3, 3]),
    ] {
        let stub = StubCluster::start(&[1, 2]).await;
        if let Some(limit) = broker_limit {
            stub.set_fetch_max_bytes(limit);
        }
        let stamps = alternating_topic(&stub, "wide", 12, 100);
        let cluster = connect(&stub, 3).await;
        let query = TimestampQuery {
            initial_partition_bytes: 1024,
            response_max_bytes: asked,
            ..TimestampQuery::default()
        };
        let targets: Vec<(TopicPartition, i64)> =
            (0..12).map(|p| (tp("wide", p), 40 + p as i64)).collect();
        let (got, stats) = cluster.record_timestamps_with_stats(&targets, query).await;
        for (t, offset) in &targets {
            match ok("timestamp", &got[&(t.clone(), *offset)]) {
                TimestampResult::Found(r) => {
                    assert_eq!(
                        (r.offset, r.timestamp_ms),
                        (*offset, stamps[*offset as usize]),
                        "{t}"
                    );
                }
                other => panic!("{t}@{offset}: {other:?}"),
            }
        }
        assert_eq!(stats.samples(), 12);
        let fetches = stub.requests_of(ApiKey::Fetch);
        assert_eq!(fetches.len() as u64, stats.requests);
        let named: Vec<usize> = fetches
            .iter()
            .map(|r| match &r.request {
                common::stub::Request::Fetch(f) => {
                    f.topics.iter().map(|t| t.partitions.len()).sum()
                }
                _ => panic!("not a Fetch: {:?}", r.api),
            })
            .collect();
        assert_eq!(named, expected, "partitions named per Fetch, asked {asked}");
    }
}

/// With a budget of one Fetch per leader, rounds take partitions in the order the targets
/// were listed (not sorted by name): each leader's first partitions that fit one response are
/// fetched, every other target is answered `Deferred`, and no leader gets a second request.
#[tokio::test]
async fn a_request_budget_fetches_the_targets_listed_first_and_defers_the_rest() {
    let stub = StubCluster::start(&[1, 2]).await;
    let stamps = alternating_topic(&stub, "wide", 12, 100);
    let cluster = connect(&stub, 3).await;
    let query = TimestampQuery {
        initial_partition_bytes: 1024,
        response_max_bytes: 3 * 1024,
        requests_per_leader: Some(1),
        ..TimestampQuery::default()
    };
    // Listed from partition 11 down to 0.
    let targets: Vec<(TopicPartition, i64)> = (0..12)
        .rev()
        .map(|p| (tp("wide", p), 40 + p as i64))
        .collect();
    let (got, stats) = cluster.record_timestamps_with_stats(&targets, query).await;
    let mut found = BTreeSet::new();
    for (t, offset) in &targets {
        match ok("timestamp", &got[&(t.clone(), *offset)]) {
            TimestampResult::Found(r) => {
                assert_eq!(r.timestamp_ms, stamps[*offset as usize], "{t}");
                found.insert(t.partition);
            }
            TimestampResult::Deferred => {}
            other => panic!("{t}@{offset}: {other:?}"),
        }
    }
    // Leader 2 has 11, 9, 7 first; leader 1 has 10, 8, 6.
    assert_eq!(found, BTreeSet::from([6, 7, 8, 9, 10, 11]));
    assert_eq!(got.len(), 12, "every target answered");
    assert_eq!(stats.requests, 2);
    let mut nodes: Vec<i32> = stub
        .requests_of(ApiKey::Fetch)
        .iter()
        .map(|r| r.node)
        .collect();
    nodes.sort_unstable();
    assert_eq!(nodes, vec![1, 2], "one Fetch per leader");
}

/// Requests any broker can answer (Metadata, batched FindCoordinator, DescribeConfigs) take
/// turns over the brokers, so a cycle's one-off requests do not all land on one of them.
#[tokio::test]
async fn any_broker_requests_take_turns() {
    let stub = StubCluster::start(&[1, 2, 3]).await;
    let cluster = connect(&stub, 3).await;
    let before = stub.requests_of(ApiKey::Metadata).len();
    for _ in 0..3 {
        cluster.refresh_metadata().await.expect("metadata");
    }
    let nodes: BTreeSet<i32> = stub.requests_of(ApiKey::Metadata)[before..]
        .iter()
        .map(|r| r.node)
        .collect();
    assert_eq!(
        nodes,
        BTreeSet::from([1, 2, 3]),
        "Metadata from each broker in turn"
    );
    let mut any = BTreeSet::new();
    for _ in 0..3 {
        any.insert(cluster.any_node().await.expect("a broker"));
    }
    assert_eq!(any, BTreeSet::from([1, 2, 3]));
}

/// A partition whose leader moved after the metadata was read: the old leader answers
/// NOT_LEADER_OR_FOLLOWER, the client refreshes metadata and asks the new leader in the next
/// round; the other leader's partition is answered in the first.
#[tokio::test]
async fn a_fetch_partition_whose_leader_moved_is_fetched_from_the_new_leader() {
    let stub = StubCluster::start(&[1, 2]).await;
    let stamps = alternating_topic(&stub, "t", 2, 20);
    let cluster = connect(&stub, 3).await;
    stub.set_leader("t", 0, 2);
    let targets = [(tp("t", 0), 5), (tp("t", 1), 7)];
    let got = cluster
        .record_timestamps(&targets, TimestampQuery::default())
        .await;
    for (t, offset) in &targets {
        match ok("timestamp", &got[&(t.clone(), *offset)]) {
            TimestampResult::Found(r) => {
                assert_eq!(
                    (r.offset, r.timestamp_ms),
                    (*offset, stamps[*offset as usize])
                )
            }
            other => panic!("{t}: {other:?}"),
        }
    }
    assert_eq!(stub.count_on(1, ApiKey::Fetch), 1, "the old leader, once");
    assert_eq!(
        stub.count_on(2, ApiKey::Fetch),
        2,
        "its own partition, then the moved one"
    );
}

/// A Fetch whose connection drops is sent again on a new connection; with a budget of one
/// request per leader, its partitions get the transport error instead (not `Deferred`), and
/// the other leader's are answered.
#[tokio::test]
async fn a_dropped_fetch_is_retried_or_fails_with_its_error_when_the_budget_is_spent() {
    for (budget, recovers) in [(None, true), (Some(1), false)] {
        let stub = StubCluster::start(&[1, 2]).await;
        alternating_topic(&stub, "t", 2, 20);
        let dropped = Arc::new(AtomicUsize::new(0));
        let counter = dropped.clone();
        stub.set_handler(move |r, _| {
            if r.api == ApiKey::Fetch && r.node == 1 && counter.fetch_add(1, Ordering::SeqCst) == 0
            {
                Reply::Close
            } else {
                Reply::Default
            }
        });
        let cluster = connect(&stub, 3).await;
        let query = TimestampQuery {
            requests_per_leader: budget,
            ..TimestampQuery::default()
        };
        let targets = [(tp("t", 0), 5), (tp("t", 1), 7)];
        let got = cluster.record_timestamps(&targets, query).await;
        assert!(
            matches!(ok("t/1", &got[&targets[1]]), TimestampResult::Found(r) if r.offset == 7),
            "{budget:?}"
        );
        if recovers {
            assert!(
                matches!(ok("t/0", &got[&targets[0]]), TimestampResult::Found(r) if r.offset == 5)
            );
            assert_eq!(stub.count_on(1, ApiKey::Fetch), 2);
        } else {
            let e = err("t/0", &got[&targets[0]]);
            assert!(e.is_transport(), "{e:?}");
            assert_eq!(stub.count_on(1, ApiKey::Fetch), 1);
        }
    }
}

/// A leader that drops every Fetch: its partitions are tried again after a metadata
/// refresh `max_retries` times, as every batched request is, then fail with the transport
/// error; the other leader's partition is answered.
#[tokio::test]
async fn a_fetch_leader_that_keeps_failing_is_given_up_after_max_retries() {
    let max_retries = 2;
    let stub = StubCluster::start(&[1, 2]).await;
    alternating_topic(&stub, "t", 2, 20);
    stub.set_handler(|r, _| {
        if r.api == ApiKey::Fetch && r.node == 1 {
            Reply::Close
        } else {
            Reply::Default
        }
    });
    let cluster = connect(&stub, max_retries).await;
    let targets = [(tp("t", 0), 5), (tp("t", 1), 7)];
    let got = cluster
        .record_timestamps(&targets, TimestampQuery::default())
        .await;
    assert!(matches!(ok("t/1", &got[&targets[1]]), TimestampResult::Found(r) if r.offset == 7));
    let e = err("t/0", &got[&targets[0]]);
    assert!(e.is_transport(), "{e:?}");
    assert_eq!(
        stub.count_on(1, ApiKey::Fetch),
        1 + max_retries as usize,
        "the first try and {max_retries} retries"
    );
}
