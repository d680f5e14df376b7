//! The wire client against the real broker: every value it reads must equal what the
//! workload wrote (expected values come from the workload, never from a read by tidemark).

use tidemark_testkit as common;

use std::collections::{BTreeMap, HashMap};

use common::{Broker, Codec, Workload};
use tidemark::kafka::records::TimestampType;
use tidemark::kafka::{
    ClientConfig, Cluster, GroupType, TimestampQuery, TimestampResult, TopicPartition,
};

const BASE_TS: i64 = 1_700_000_000_000;
const CODECS: [Codec; 5] = [
    Codec::None,
    Codec::Gzip,
    Codec::Snappy,
    Codec::Lz4,
    Codec::Zstd,
];

/// What the workload wrote: per partition, the timestamp of every offset.
#[derive(Default)]
struct Ledger {
    timestamps: BTreeMap<(String, i32), Vec<i64>>,
    commits: BTreeMap<String, BTreeMap<(String, i32), i64>>,
}

impl Ledger {
    fn high(&self, topic: &str, partition: i32) -> i64 {
        self.timestamps[&(topic.to_string(), partition)].len() as i64
    }
}

/// A group of the workload: its name, where it commits given the high watermark, and the
/// topics it consumes.
type GroupPlan = (&'static str, fn(i64) -> i64, &'static [&'static str]);

/// 2 topics, 9 partitions, all five codecs, multi-record batches (each partition ends with
/// a one-record batch: the test broker's ListOffsets LATEST is only right for those).
async fn workload(w: &mut Workload) -> Ledger {
    let mut ledger = Ledger::default();
    let topics = [("orders", 6), ("payments", 3)];
    for (topic, partitions) in topics {
        w.create_topic(topic, partitions).await;
    }
    let mut n = 0usize;
    for (topic, partitions) in topics {
        for p in 0..partitions {
            let mut stamps = Vec::new();
            // Three batches of 1..=4 records with varied, non-monotonic timestamps...
            for batch in 0..3 {
                let codec = CODECS[(n + batch) % CODECS.len()];
                let len = 1 + (n + batch) % 4;
                let records: Vec<(i64, Vec<u8>)> = (0..len)
                    .map(|i| {
                        let ts = BASE_TS + (n as i64) * 100_000 + (batch as i64) * 10_000
                            - (i as i64 % 2) * 3_000
                            + i as i64 * 1_000;
                        (ts, vec![b'x'; 20 + i * 7])
                    })
                    .collect();
                let base = w.produce(topic, p, codec, &records).await;
                assert_eq!(base, stamps.len() as i64, "workload offsets are dense");
                stamps.extend(records.iter().map(|(ts, _)| *ts));
            }
            // ...then one single-record batch.
            let ts = BASE_TS + (n as i64) * 100_000 + 50_000;
            let base = w
                .produce(
                    topic,
                    p,
                    CODECS[n % CODECS.len()],
                    &[(ts, b"last".to_vec())],
                )
                .await;
            assert_eq!(base, stamps.len() as i64);
            stamps.push(ts);
            ledger.timestamps.insert((topic.to_string(), p), stamps);
            n += 1;
        }
    }
    // Four groups: one at the start, one in the middle of batches, one caught up, one on a
    // single topic only.
    let groups: [GroupPlan; 4] = [
        ("g-start", |_| 0, &["orders", "payments"]),
        ("g-middle", |h| h / 2, &["orders", "payments"]),
        ("g-caught-up", |h| h, &["orders", "payments"]),
        ("g-orders-only", |h| (h - 2).max(0), &["orders"]),
    ];
    for (group, at, only) in groups {
        let mut commits = BTreeMap::new();
        for ((topic, p), stamps) in &ledger.timestamps {
            if !only.contains(&topic.as_str()) {
                continue;
            }
            let offset = at(stamps.len() as i64);
            w.commit(group, topic, *p, offset).await;
            commits.insert((topic.clone(), *p), offset);
        }
        ledger.commits.insert(group.to_string(), commits);
    }
    ledger
}

async fn cluster(broker: &Broker) -> Cluster {
    Cluster::connect(ClientConfig {
        bootstrap_servers: vec![broker.bootstrap.clone()],
        ..ClientConfig::default()
    })
    .await
    .expect("tidemark connects to the test broker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reads_exactly_what_the_workload_wrote() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    let ledger = workload(&mut w).await;
    let cluster = cluster(&broker).await;
    let meta = cluster.refresh_metadata().await.unwrap();

    // Topics and partitions.
    for (topic, partitions) in [("orders", 6), ("payments", 3)] {
        let t = meta
            .topics
            .get(topic)
            .unwrap_or_else(|| panic!("metadata lacks {topic}"));
        assert_eq!(t.partitions.len(), partitions, "{topic}");
    }

    // Groups.
    let listed: Vec<String> = cluster
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    let expected: Vec<String> = ledger.commits.keys().cloned().collect();
    assert_eq!(listed, expected);

    // Committed offsets.
    let offsets = cluster.committed_offsets(&expected).await;
    for (group, commits) in &ledger.commits {
        let got = offsets[group]
            .as_ref()
            .unwrap_or_else(|e| panic!("{group}: {e}"));
        let got: BTreeMap<(String, i32), i64> = got
            .offsets
            .iter()
            .map(|(tp, o)| ((tp.topic.to_string(), tp.partition), *o))
            .collect();
        assert_eq!(&got, commits, "committed offsets of {group}");
    }

    // Watermarks.
    let partitions: Vec<TopicPartition> = meta
        .partitions()
        .filter(|tp| !tp.topic.starts_with("__"))
        .collect();
    let marks = cluster.watermarks(&partitions).await;
    assert_eq!(marks.len(), 9);
    for tp in &partitions {
        let m = marks[tp].as_ref().unwrap_or_else(|e| panic!("{tp}: {e}"));
        assert_eq!(m.low, 0, "{tp} low watermark");
        assert_eq!(
            m.high,
            ledger.high(&tp.topic, tp.partition),
            "{tp} high watermark"
        );
    }

    // Timestamps at every committed offset below the high watermark, and at every offset
    // of two partitions (mid-batch targets in every codec).
    let mut targets: Vec<(TopicPartition, i64)> = Vec::new();
    for commits in ledger.commits.values() {
        for ((topic, p), offset) in commits {
            if *offset < ledger.high(topic, *p) {
                targets.push((TopicPartition::new(topic.as_str(), *p), *offset));
            }
        }
    }
    for (topic, p) in [("orders", 1), ("payments", 2)] {
        for offset in 0..ledger.high(topic, p) {
            targets.push((TopicPartition::new(topic, p), offset));
        }
    }
    let answers = cluster
        .record_timestamps(&targets, TimestampQuery::default())
        .await;
    for (tp, offset) in &targets {
        let expected = ledger.timestamps[&(tp.topic.to_string(), tp.partition)][*offset as usize];
        match answers[&(tp.clone(), *offset)].as_ref() {
            Ok(TimestampResult::Found(rec)) => {
                assert_eq!(rec.offset, *offset, "{tp}@{offset}: exact record");
                assert_eq!(rec.timestamp_ms, expected, "{tp}@{offset}: timestamp");
                assert_eq!(rec.timestamp_type, TimestampType::CreateTime);
            }
            other => panic!("{tp}@{offset}: {other:?}"),
        }
    }

    // At the high watermark there is no record.
    let end = TopicPartition::new("orders", 0);
    let high = ledger.high("orders", 0);
    let answers = cluster
        .record_timestamps(&[(end.clone(), high)], TimestampQuery::default())
        .await;
    assert!(matches!(
        answers[&(end, high)],
        Ok(TimestampResult::EndOfLog)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_groups_reports_state_of_groups_without_members() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    w.create_topic("t", 1).await;
    w.produce("t", 0, Codec::None, &[(BASE_TS, b"a".to_vec())])
        .await;
    w.commit("lonely", "t", 0, 1).await;
    let cluster = cluster(&broker).await;
    let described = cluster.describe_groups(&["lonely".to_string()]).await;
    let g = described["lonely"].as_ref().unwrap();
    assert_eq!(g.group_id, "lonely");
    assert!(g.members.is_empty());
    assert!(!g.state.is_empty(), "state reported");
}

/// Collecting groups, offsets, watermarks and timestamps for 50 groups costs at most 8
/// requests per broker, and the count does not grow with the number of groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_for_50_groups_costs_at_most_8_requests_per_broker() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    w.create_topic("busy", 4).await;
    let mut high = HashMap::new();
    for p in 0..4 {
        for i in 0..10 {
            w.produce(
                "busy",
                p,
                CODECS[i % 5],
                &[(BASE_TS + i as i64, vec![1; 30])],
            )
            .await;
        }
        high.insert(p, 10i64);
    }
    let groups: Vec<String> = (0..50).map(|i| format!("group-{i:02}")).collect();
    for (i, g) in groups.iter().enumerate() {
        for p in 0..4 {
            w.commit(g, "busy", p, (i % 10) as i64).await;
        }
    }
    let cluster = cluster(&broker).await;

    let cycle = || async {
        let before = totals(&cluster);
        let listings = cluster.list_groups().await.unwrap();
        let listed: Vec<String> = listings.iter().map(|g| g.group_id.clone()).collect();
        assert_eq!(listed.len(), 50);
        // Described by type, as the collector does: the test broker's groups are classic
        // (it advertises ConsumerGroupDescribe but has no KIP-848 groups), so this costs
        // the one DescribeGroups per coordinator and nothing more.
        let typed: Vec<(String, GroupType)> = listings
            .iter()
            .map(|g| (g.group_id.clone(), g.group_type.clone()))
            .collect();
        assert!(
            typed.iter().all(|(_, t)| *t == GroupType::Classic),
            "{typed:?}"
        );
        let described = cluster.describe_typed_groups(&typed).await;
        assert_eq!(described.len(), 50);
        assert!(described.values().all(|d| d.is_ok()));
        let offsets = cluster.committed_offsets(&listed).await;
        let meta = cluster.refresh_metadata().await.unwrap();
        let partitions: Vec<TopicPartition> = meta
            .partitions()
            .filter(|tp| &*tp.topic == "busy")
            .collect();
        let marks = cluster.watermarks(&partitions).await;
        let mut targets = Vec::new();
        for o in offsets.values() {
            for (tp, offset) in &o.as_ref().unwrap().offsets {
                if *offset < marks[tp].as_ref().unwrap().high {
                    targets.push((tp.clone(), *offset));
                }
            }
        }
        let answers = cluster
            .record_timestamps(&targets, TimestampQuery::default())
            .await;
        for ((tp, offset), a) in &answers {
            match a {
                Ok(TimestampResult::Found(r)) => {
                    assert_eq!(r.timestamp_ms, BASE_TS + offset, "{tp}@{offset}")
                }
                other => panic!("{tp}@{offset}: {other:?}"),
            }
        }
        let after = totals(&cluster);
        after
            .iter()
            .map(|(node, n)| (*node, n - before.get(node).copied().unwrap_or(0)))
            .collect::<BTreeMap<i32, u64>>()
    };
    let first = cycle().await;
    let second = cycle().await;
    for (label, counts) in [("first", &first), ("second", &second)] {
        println!("{label} cycle requests per broker: {counts:?}");
        for (node, n) in counts {
            assert!(*n <= 8, "{label} cycle sent {n} requests to node {node}");
        }
    }
}

fn totals(cluster: &Cluster) -> BTreeMap<i32, u64> {
    cluster
        .counters()
        .iter()
        .map(|(node, c)| (*node, c.total_requests()))
        .collect()
}
