//! What one collection cycle saw: immutable input of the lag math.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::model::{GroupType, PartitionWatermarks, RecordAt, TopicPartition};

/// Everything one cycle collected from one cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    /// The cluster's configured name.
    pub cluster: String,
    /// Watermarks of every monitored partition (topic filters applied).
    pub watermarks: PartitionWatermarks,
    /// Every monitored group with its committed offsets.
    pub groups: Vec<GroupSnapshot>,
    /// Topics whose cleanup.policy contains "compact".
    pub compacted_topics: BTreeSet<Arc<str>>,
    /// Time spent reading committed offsets and watermarks.
    pub poll_time: Duration,
    /// Partitions whose watermarks (in `watermarks`) were carried over from an earlier cycle
    /// because their leader could not answer, with the time they were read (Unix ms).
    pub carried_watermarks: BTreeMap<TopicPartition, i64>,
}

/// One consumer group.
#[derive(Clone, Debug)]
pub struct GroupSnapshot {
    pub group: Arc<str>,
    /// As ListGroups named it (labels the state series only).
    pub group_type: GroupType,
    pub state: GroupState,
    /// False when the committed offsets could not be read this cycle: the values of the last
    /// cycle that read them are carried over when recent enough (see [`crate::lag::compute`]);
    /// otherwise the group's state is still reported, its lag is not (zeros would read as
    /// "caught up").
    pub offsets_known: bool,
    /// Partitions with a committed offset (never -1), monitored topics only.
    pub partitions: Vec<GroupPartition>,
}

/// A group's position on one partition.
#[derive(Clone, Debug)]
pub struct GroupPartition {
    pub tp: TopicPartition,
    pub committed: i64,
    /// The member the partition is assigned to, if any.
    pub member: Option<Arc<Member>>,
    /// What time-lag sampling found at the committed offset.
    pub sample: Sample,
}

/// What time-lag sampling found at a group partition's committed offset: 16 bytes, of
/// the 56 a snapshot row takes (the record read, 24 bytes, and a flag took 32 of 72).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Sample {
    /// Nothing: not lagging, not fetched this cycle, or the record has no timestamp.
    #[default]
    None,
    /// The timestamp of the record at the committed offset or, when that one is gone
    /// (compacted, deleted), of the first record after it (`later`).
    At { timestamp_ms: i64, later: bool },
    /// The Fetch showed only transaction markers (control records) from the committed
    /// offset up to the high watermark: nothing is left for the group to consume.
    MarkersOnly,
}

impl Sample {
    /// The sample of `record`, found for a group committed at `committed`.
    pub fn of(record: RecordAt, committed: i64) -> Sample {
        Sample::At {
            timestamp_ms: record.timestamp_ms,
            later: record.offset > committed,
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Sample::None)
    }
}

/// The labels of a group member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub host: String,
    pub consumer_id: String,
    pub client_id: String,
}

/// Consumer group state as the metric encodes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupState {
    #[default]
    Unknown = 0,
    PreparingRebalance = 1,
    CompletingRebalance = 2,
    Stable = 3,
    Dead = 4,
    Empty = 5,
    Assigning = 6,
    Reconciling = 7,
}

impl GroupState {
    /// Parse the state string of DescribeGroups (classic and KIP-848 groups).
    pub fn parse(state: &str) -> GroupState {
        match state {
            "PreparingRebalance" => GroupState::PreparingRebalance,
            "CompletingRebalance" | "AwaitingSync" => GroupState::CompletingRebalance,
            "Stable" => GroupState::Stable,
            "Dead" => GroupState::Dead,
            "Empty" => GroupState::Empty,
            "Assigning" => GroupState::Assigning,
            "Reconciling" => GroupState::Reconciling,
            _ => GroupState::Unknown,
        }
    }

    /// The state's name as Kafka spells it (`Unknown` when it could not be read).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Unknown => "Unknown",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
            GroupState::Empty => "Empty",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
        }
    }

    /// The metric value.
    pub fn code(self) -> i64 {
        self as i64
    }
}
