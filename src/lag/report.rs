//! The output of the lag math: every value the metrics expose, per cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::snapshot::{GroupState, Member};
use crate::model::{GroupType, TopicPartition};

/// Lag of every monitored group and partition of one cluster.
///
/// Rows name their partition by its index in `partitions` and belong to their group by
/// position: `group_partitions` holds the rows of `groups` in order, `groups[i].rows` of
/// them each (the same for the share groups). Read them with [`LagReport::rows`] and
/// [`LagReport::share_rows`]. At partition granularity a report holds one row per group
/// partition, and two reports are alive while the next one is computed.
#[derive(Clone, Debug)]
pub struct LagReport {
    pub cluster: String,
    /// Every monitored partition, sorted by topic partition: what rows point into.
    pub partitions: Vec<PartitionOffsets>,
    /// False when the partition series are another replica's to export
    /// (`[exporter.leadership]`): `partitions` is still the table rows point into.
    pub partition_series: bool,
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

impl Default for LagReport {
    fn default() -> Self {
        LagReport {
            cluster: String::new(),
            partitions: Vec::new(),
            partition_series: true,
            group_partitions: Vec::new(),
            groups: Vec::new(),
            share_group_partitions: Vec::new(),
            share_groups: Vec::new(),
            compaction_partitions: 0,
            data_loss_partitions: 0,
            stale_groups: 0,
            stale_partitions: 0,
            status: super::StatusReport::default(),
        }
    }
}

impl LagReport {
    /// Every row of the (non-share) groups, with its group and partition.
    pub fn rows(&self) -> Rows<'_> {
        Rows::new(&self.groups, &self.group_partitions, &self.partitions)
    }

    /// Every row of the share groups.
    pub fn share_rows(&self) -> Rows<'_> {
        Rows::new(
            &self.share_groups,
            &self.share_group_partitions,
            &self.partitions,
        )
    }

    /// The index rows use for `tp`.
    pub fn partition_index(&self, tp: &TopicPartition) -> Option<u32> {
        let i = self.partitions.binary_search_by(|p| p.tp.cmp(tp)).ok()?;
        u32::try_from(i).ok()
    }

    /// Drops the per-partition rows, keeping the aggregates (`granularity = "topic"`).
    pub fn drop_rows(&mut self) {
        self.group_partitions = Vec::new();
        self.share_group_partitions = Vec::new();
        for g in self.groups.iter_mut().chain(&mut self.share_groups) {
            g.rows = 0;
        }
    }

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

/// A row with its group and partition, as [`LagReport::rows`] yields it; dereferences to
/// the row's values.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub group: &'a GroupLag,
    pub tp: &'a TopicPartition,
    /// The partition's watermarks in this report (the row's own `low` and `high` are those
    /// it was computed against, older when it was carried).
    pub offsets: &'a PartitionOffsets,
    pub row: &'a GroupPartitionLag,
}

impl<'a> Row<'a> {
    /// The group's name.
    pub fn group_name(&self) -> &'a Arc<str> {
        &self.group.group
    }
}

impl std::ops::Deref for Row<'_> {
    type Target = GroupPartitionLag;
    fn deref(&self) -> &GroupPartitionLag {
        self.row
    }
}

/// The rows of a report's groups in order (see [`LagReport`]).
#[derive(Clone, Debug)]
pub struct Rows<'a> {
    groups: std::slice::Iter<'a, GroupLag>,
    /// The current group and how many of its rows are left.
    current: Option<(&'a GroupLag, u32)>,
    rows: std::slice::Iter<'a, GroupPartitionLag>,
    partitions: &'a [PartitionOffsets],
}

impl<'a> Rows<'a> {
    fn new(
        groups: &'a [GroupLag],
        rows: &'a [GroupPartitionLag],
        partitions: &'a [PartitionOffsets],
    ) -> Self {
        Rows {
            groups: groups.iter(),
            current: None,
            rows: rows.iter(),
            partitions,
        }
    }
}

impl<'a> Iterator for Rows<'a> {
    type Item = Row<'a>;

    fn next(&mut self) -> Option<Row<'a>> {
        loop {
            match &mut self.current {
                Some((group, left)) if *left > 0 => {
                    *left -= 1;
                    let group = *group;
                    let row = self.rows.next()?;
                    // A row points into its own report's partitions (built so by
                    // `lag::compute`); one that does not is skipped, never a panic.
                    let Some(p) = self.partitions.get(row.partition as usize) else {
                        continue;
                    };
                    return Some(Row {
                        group,
                        tp: &p.tp,
                        offsets: p,
                        row,
                    });
                }
                _ => {
                    let group = self.groups.next()?;
                    self.current = Some((group, group.rows));
                }
            }
        }
    }
}

/// One group on one partition. The values the metrics expose are derived from the offsets
/// the row was computed against (see the formulas in [`crate::lag`]), so a row holds
/// three offsets instead of five values; its group and partition are where the report
/// keeps it (see [`LagReport`]): 48 bytes a row (was 112 with five values, then 88 with
/// its own group and topic partition).
#[derive(Clone, Debug)]
pub struct GroupPartitionLag {
    /// Index of the partition in the report's `partitions`.
    pub partition: u32,
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
        self.partition == other.partition
            && self.member == other.member
            && (self.committed, self.low, self.high) == (other.committed, other.low, other.high)
            && self.lag_seconds() == other.lag_seconds()
            && (self.markers_only, self.compaction_detected)
                == (other.markers_only, other.compaction_detected)
    }
}

impl GroupPartitionLag {
    /// A row of the partition at index `partition` of its report, from the group's
    /// committed offset, the partition's watermarks, whether only transaction markers are
    /// left to read, and the time lag when it could be sampled.
    pub fn new(
        partition: u32,
        member: Option<Arc<Member>>,
        committed: i64,
        (low, high): (i64, i64),
        markers_only: bool,
        lag_seconds: Option<f64>,
        compaction_detected: bool,
    ) -> Self {
        GroupPartitionLag {
            partition,
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

    /// The same row at index `partition` of another report's partitions (a row carried
    /// into the next report).
    pub fn moved_to(&self, partition: u32) -> Self {
        GroupPartitionLag {
            partition,
            ..self.clone()
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
    /// How many rows of the report's row list are the group's (they follow those of the
    /// groups before it).
    pub rows: u32,
    /// Some of the group's values could not be read this cycle and are the last ones read:
    /// all of them when its offsets could not be read (aggregates and rows as of
    /// `read_at_ms`), or the rows of partitions whose watermarks could not be read.
    pub stale: bool,
}
