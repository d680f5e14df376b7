//! The output of the lag math: every value the metrics expose, per cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::snapshot::{GroupState, Member};
use crate::model::{GroupType, TopicPartition};

/// Lag of every monitored group and partition of one cluster.
#[derive(Clone, Debug, Default)]
pub struct LagReport {
    pub cluster: String,
    pub partitions: Vec<PartitionOffsets>,
    pub group_partitions: Vec<GroupPartitionLag>,
    pub groups: Vec<GroupLag>,
    /// Share groups (KIP-932), apart: their lag is measured from the share-partition start
    /// offset (in `committed`), and they have families of their own.
    pub share_group_partitions: Vec<GroupPartitionLag>,
    pub share_groups: Vec<GroupLag>,
    /// Group partitions whose time lag came from a later record on a compacted topic.
    pub compaction_partitions: u64,
    /// Group partitions whose committed offset is below the low watermark.
    pub data_loss_partitions: u64,
    /// Groups with values carried over from an earlier cycle.
    pub stale_groups: u64,
    /// Partitions whose watermarks were carried over from an earlier cycle.
    pub stale_partitions: u64,
    /// Consumer status, rate and catch-up estimate (`[exporter.status]`), from the
    /// collector's window; empty when disabled.
    pub status: super::StatusReport,
}

impl LagReport {
    /// How many groups of each type the report has (for the status page), by label value.
    pub fn group_type_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for g in self.groups.iter().chain(&self.share_groups) {
            *counts.entry(g.group_type.as_str().to_owned()).or_default() += 1;
        }
        counts
    }
}

/// A group's aggregates over the partitions of one topic.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TopicLag {
    pub sum_lag: i64,
    pub max_lag: i64,
    /// Max over the topic's partitions that have a time lag; None when none has one.
    pub max_lag_seconds: Option<f64>,
}

/// Watermarks of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub tp: TopicPartition,
    pub low: i64,
    pub high: i64,
    /// When these watermarks were read (Unix ms): earlier than the cycle when carried over.
    pub read_at_ms: i64,
}

/// One group on one partition.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupPartitionLag {
    pub group: Arc<str>,
    pub tp: TopicPartition,
    pub member: Option<Arc<Member>>,
    pub committed: i64,
    pub lag: i64,
    /// None when the timestamp could not be sampled (no series then).
    pub lag_seconds: Option<f64>,
    pub messages_lost: i64,
    pub retention_margin: i64,
    pub retention_ratio: f64,
    pub compaction_detected: bool,
    pub data_loss: bool,
}

/// A group's aggregates.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupLag {
    pub group: Arc<str>,
    pub group_type: GroupType,
    pub state: GroupState,
    /// False when the group's committed offsets were unknown this cycle: only its state is
    /// meaningful, the aggregates are not exposed.
    pub offsets_known: bool,
    pub max_lag: i64,
    /// Max over the partitions that have a time lag; None when none has one.
    pub max_lag_seconds: Option<f64>,
    pub sum_lag: i64,
    /// Per topic: the group's lag summed, its largest lag and time lag.
    pub topics: BTreeMap<Arc<str>, TopicLag>,
    /// When the committed offsets behind these values were read (Unix ms).
    pub read_at_ms: i64,
    /// Some of the group's values could not be read this cycle and are the last ones read:
    /// all of them when its offsets could not be read (aggregates and rows as of
    /// `read_at_ms`), or the rows of partitions whose watermarks could not be read.
    pub stale: bool,
}
