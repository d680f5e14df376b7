//! Cluster snapshots made up in memory, for tests and benches of what comes after a
//! collection cycle (lag math, exposition, HTTP) that need no broker: partition `p` of
//! every topic has the high watermark [`high`]`(p)`, group `g` is committed [`committed`]`(g,
//! p)` on it, and every committed record was found.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tidemark::config::Granularity;
use tidemark::kafka::{TopicPartition, Watermarks};
use tidemark::lag::{
    self, ClusterSnapshot, GroupPartition, GroupSnapshot, GroupState, Member, PartitionWatermarks,
    Sample,
};
use tidemark::state::{CycleHealth, CycleOutcome, ExporterState};

/// The cluster name of these snapshots.
pub const CLUSTER: &str = "prod";

/// High watermark of partition `p` (the low watermark is half of it).
pub fn high(p: i32) -> i64 {
    1_000_000 + i64::from(p) * 7_919
}

/// Committed offset of group `g` on partition `p`: 1 to 5,000 records behind [`high`].
pub fn committed(g: usize, p: i32) -> i64 {
    high(p) - 1 - (g as i64 * 31 + i64::from(p) * 7) % 5_000
}

/// The watermarks of partitions `0..partitions` of every topic.
pub fn watermarks(
    topics: impl IntoIterator<Item = Arc<str>>,
    partitions: i32,
) -> PartitionWatermarks {
    let mut out = Vec::new();
    for topic in topics {
        for p in 0..partitions {
            out.push((
                TopicPartition::new(topic.clone(), p),
                Watermarks {
                    low: high(p) / 2,
                    high: high(p),
                },
            ));
        }
    }
    out.into_iter().collect()
}

/// A group partition committed at `committed`, whose record there was found (verified,
/// CreateTime `timestamp_ms`).
pub fn partition(
    tp: TopicPartition,
    committed: i64,
    timestamp_ms: i64,
    member: Option<Arc<Member>>,
) -> GroupPartition {
    GroupPartition {
        tp,
        committed,
        member,
        sample: Sample::At {
            timestamp_ms,
            later: false,
        },
    }
}

/// A stable classic group whose offsets were read.
pub fn stable_group(name: &str, partitions: Vec<GroupPartition>) -> GroupSnapshot {
    GroupSnapshot {
        group: Arc::from(name),
        group_type: Default::default(),
        state: GroupState::Stable,
        offsets_known: true,
        partitions,
    }
}

/// Groups `0..groups` without members, group `g` named `name(g)` and committed at
/// [`committed`]`(g, p)` on partitions `0..partitions` of `topic(g)`, its record there
/// timestamped `timestamp_ms(g, p)`.
pub fn lagging_groups(
    groups: usize,
    partitions: i32,
    name: impl Fn(usize) -> String,
    topic: impl Fn(usize) -> Arc<str>,
    timestamp_ms: impl Fn(usize, i32) -> i64,
) -> Vec<GroupSnapshot> {
    (0..groups)
        .map(|g| {
            let partitions = (0..partitions)
                .map(|p| {
                    let tp = TopicPartition::new(topic(g), p);
                    partition(tp, committed(g, p), timestamp_ms(g, p), None)
                })
                .collect();
            stable_group(&name(g), partitions)
        })
        .collect()
}

/// A snapshot of cluster [`CLUSTER`], polled in `poll_time`.
pub fn cluster(
    watermarks: PartitionWatermarks,
    groups: Vec<GroupSnapshot>,
    poll_time: Duration,
) -> ClusterSnapshot {
    ClusterSnapshot {
        cluster: CLUSTER.into(),
        watermarks,
        groups,
        compacted_topics: BTreeSet::new(),
        poll_time,
        carried_watermarks: Default::default(),
    }
}

/// An exporter state of the one cluster [`CLUSTER`] (partition granularity) after a
/// successful cycle (complete, 800 ms ago) that saw these watermarks and groups in
/// `poll_time`, its lag computed at `now_ms`.
pub fn published(
    watermarks: PartitionWatermarks,
    groups: Vec<GroupSnapshot>,
    poll_time: Duration,
    now_ms: i64,
) -> Arc<ExporterState> {
    let snapshot = &cluster(watermarks, groups, poll_time);
    let state = ExporterState::new(&[(CLUSTER.into(), vec![])], Granularity::Partition);
    state.publish(
        CLUSTER,
        CycleOutcome::Success {
            report: Arc::new(lag::compute(snapshot, now_ms)),
            poll_time: snapshot.poll_time,
            health: CycleHealth::complete([1]),
        },
        Duration::from_millis(800),
    );
    state
}
