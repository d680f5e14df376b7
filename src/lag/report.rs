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

/// One group on one partition. The values the metrics expose are derived from the offsets
/// the row was computed against (see the formulas in [`crate::lag`]), so a row holds
/// three offsets instead of five values: a report at partition granularity holds one row
/// per group partition, twice while the next report is computed (88 bytes a row, was 112).
#[derive(Clone, Debug)]
pub struct GroupPartitionLag {
    pub group: Arc<str>,
    pub tp: TopicPartition,
    pub member: Option<Arc<Member>>,
    pub committed: i64,
    /// Watermarks the row was computed against (the last read ones when carried).
    pub low: i64,
    pub high: i64,
    /// Seconds; NaN when the timestamp could not be sampled (see [`Self::lag_seconds`]).
    lag_seconds: f64,
    /// Only transaction markers lie between the committed offset and `high`.
    markers_only: bool,
    pub compaction_detected: bool,
}

impl PartialEq for GroupPartitionLag {
    fn eq(&self, other: &Self) -> bool {
        // By value, with "no time lag" equal to itself (the NaN that stands for it is not).
        self.group == other.group
            && self.tp == other.tp
            && self.member == other.member
            && (self.committed, self.low, self.high) == (other.committed, other.low, other.high)
            && self.lag_seconds() == other.lag_seconds()
            && (self.markers_only, self.compaction_detected)
                == (other.markers_only, other.compaction_detected)
    }
}

impl GroupPartitionLag {
    /// A row from the group's committed offset, the partition's watermarks, whether only
    /// transaction markers are left to read, and the time lag when it could be sampled.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        group: Arc<str>,
        tp: TopicPartition,
        member: Option<Arc<Member>>,
        committed: i64,
        (low, high): (i64, i64),
        markers_only: bool,
        lag_seconds: Option<f64>,
        compaction_detected: bool,
    ) -> Self {
        GroupPartitionLag {
            group,
            tp,
            member,
            committed,
            low,
            high,
            // Time lags are differences of millisecond clocks: never NaN themselves.
            lag_seconds: lag_seconds.unwrap_or(f64::NAN),
            markers_only,
            compaction_detected,
        }
    }

    /// Sets the time lag (tests that vary it).
    #[cfg(test)]
    pub(crate) fn set_lag_seconds(&mut self, seconds: Option<f64>) {
        self.lag_seconds = seconds.unwrap_or(f64::NAN);
    }

    /// Offset lag: max(high − committed, 0); 0 when only transaction markers are left.
    pub fn lag(&self) -> i64 {
        if self.markers_only {
            0
        } else {
            self.high.saturating_sub(self.committed).max(0)
        }
    }

    /// Age of the record at the committed offset; None when it could not be sampled (no
    /// series then).
    pub fn lag_seconds(&self) -> Option<f64> {
        (!self.lag_seconds.is_nan()).then_some(self.lag_seconds)
    }

    /// Records deleted by retention before the group read them: max(low − committed, 0).
    pub fn messages_lost(&self) -> i64 {
        self.low.saturating_sub(self.committed).max(0)
    }

    /// committed − low (negative: data loss).
    pub fn retention_margin(&self) -> i64 {
        self.committed.saturating_sub(self.low)
    }

    /// (high − committed) / (high − low) × 100, 0 when the log is empty.
    pub fn retention_ratio(&self) -> f64 {
        let window = self.high.saturating_sub(self.low);
        if window > 0 {
            self.high.saturating_sub(self.committed) as f64 / window as f64 * 100.0
        } else {
            0.0
        }
    }

    /// The committed offset is below the log start: records were lost.
    pub fn data_loss(&self) -> bool {
        self.committed < self.low
    }
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
