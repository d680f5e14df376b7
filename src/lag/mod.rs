//! The lag math: pure functions from a [`ClusterSnapshot`] and `now` to a [`LagReport`].
//!
//! No I/O and no clock: the collector passes the time in, tests pass any time they like.
//! Formulas (the metric contract, klag-exporter compatible):
//!
//! - offset lag = max(high − committed, 0), also under data loss: the deleted records still
//!   count, as klag-exporter reports it (a group that fell off the retention cliff is the
//!   worst case there is, and alerts on lag must not go quiet then); `messages_lost` says how
//!   many of them can never be read;
//! - offset lag = 0 when the Fetch showed that only transaction markers lie between the
//!   committed offset and the high watermark: the group has nothing left to consume;
//! - time lag = now − timestamp of the record at the committed offset, 0 when lag is 0;
//! - messages lost = max(low − committed, 0); retention margin = committed − low;
//! - lag retention ratio = (high − committed) / (high − low) × 100 when high > low, else 0;
//! - data loss = committed < low;
//! - compaction = the topic's cleanup.policy contains "compact" and the record sampled for
//!   the committed offset is a later one (the committed record was compacted away).

mod report;
mod snapshot;
pub mod status;

pub use crate::model::PartitionWatermarks;
pub use report::{GroupLag, GroupPartitionLag, LagReport, PartitionOffsets, Row, Rows, TopicLag};
pub use snapshot::{ClusterSnapshot, GroupPartition, GroupSnapshot, GroupState, Member, Sample};
pub use status::{GroupStatus, PartitionStatus, Status, StatusReport, StatusRules, StatusWindow};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::model::{GroupType, TopicPartition};

/// What an earlier report lends to groups whose committed offsets could not be read in this
/// cycle: their last values, marked stale, as long as they were read at or after
/// `oldest_ms` (the staleness threshold); older ones are dropped.
#[derive(Clone, Copy, Debug)]
pub struct Carry<'a> {
    pub previous: &'a LagReport,
    pub oldest_ms: i64,
}

/// Compute the lag report of one cluster snapshot at `now_ms` (Unix milliseconds).
pub fn compute(snapshot: &ClusterSnapshot, now_ms: i64) -> LagReport {
    let inputs = Inputs {
        cluster: &snapshot.cluster,
        partitions: partition_offsets(&snapshot.watermarks, &snapshot.carried_watermarks, now_ms),
        compacted_topics: &snapshot.compacted_topics,
        carried_watermarks: &snapshot.carried_watermarks,
    };
    compute_from(inputs, &snapshot.groups, now_ms, true, None)
}

/// [`compute`], consuming the snapshot: each group's partitions are freed as soon as its
/// rows are computed, and the watermarks map once the partition list is built, so the
/// snapshot and the report it turns into are not both held whole (at 100,000 group
/// partitions, ~10 MB less at the cycle's peak). With `rows` false the per-partition rows
/// (`group_partitions`) are folded into the aggregates and counts but not kept — what
/// `granularity = "topic"` exposes. Groups whose offsets are unknown take their values from
/// `carry` when it has recent ones.
pub fn compute_for(
    snapshot: ClusterSnapshot,
    now_ms: i64,
    rows: bool,
    carry: Option<Carry<'_>>,
) -> LagReport {
    let ClusterSnapshot {
        cluster,
        watermarks,
        groups,
        compacted_topics,
        carried_watermarks,
        ..
    } = snapshot;
    let partitions = partition_offsets(&watermarks, &carried_watermarks, now_ms);
    drop(watermarks);
    let inputs = Inputs {
        cluster: &cluster,
        partitions,
        compacted_topics: &compacted_topics,
        carried_watermarks: &carried_watermarks,
    };
    compute_from(inputs, groups, now_ms, rows, carry)
}

/// What the rows of every group are computed against.
struct Inputs<'a> {
    cluster: &'a str,
    /// Sorted by topic partition (from the watermarks map).
    partitions: Vec<PartitionOffsets>,
    compacted_topics: &'a BTreeSet<Arc<str>>,
    carried_watermarks: &'a BTreeMap<TopicPartition, i64>,
}

impl Inputs<'_> {
    /// The index of `tp` in `partitions` and its watermarks.
    fn watermarks(&self, tp: &TopicPartition) -> Option<(u32, &PartitionOffsets)> {
        let i = self.partitions.binary_search_by(|p| p.tp.cmp(tp)).ok()?;
        Some((u32::try_from(i).ok()?, self.partitions.get(i)?))
    }
}

fn partition_offsets(
    watermarks: &PartitionWatermarks,
    carried: &BTreeMap<TopicPartition, i64>,
    now_ms: i64,
) -> Vec<PartitionOffsets> {
    watermarks
        .iter()
        .map(|(tp, w)| PartitionOffsets {
            tp: tp.clone(),
            low: w.low,
            high: w.high,
            read_at_ms: carried.get(tp).copied().unwrap_or(now_ms),
        })
        .collect()
}

/// The rows and aggregates of one kind of group (share groups are kept apart).
#[derive(Default)]
struct Built {
    groups: Vec<GroupLag>,
    rows: Vec<GroupPartitionLag>,
}

/// The report of `groups` (borrowed, or owned and dropped one by one as they are done).
fn compute_from<G: std::borrow::Borrow<GroupSnapshot>>(
    inputs: Inputs<'_>,
    groups_in: impl IntoIterator<Item = G>,
    now_ms: i64,
    rows: bool,
    carry: Option<Carry<'_>>,
) -> LagReport {
    let groups_in: Vec<G> = groups_in.into_iter().collect();
    let earlier = carry.map(|c| ReportIndex::new(c.previous, c.oldest_ms));
    let capacity = |share: bool| {
        let n: usize = (groups_in.iter().map(|g| g.borrow()))
            .filter(|g| (g.group_type == GroupType::Share) == share)
            .map(|g| g.partitions.len())
            .sum();
        if rows {
            n
        } else {
            0
        }
    };
    let mut plain = Built {
        rows: Vec::with_capacity(capacity(false)),
        ..Built::default()
    };
    let mut share = Built {
        rows: Vec::with_capacity(capacity(true)),
        ..Built::default()
    };
    let mut compaction_partitions = 0u64;
    let mut data_loss_partitions = 0u64;
    for group in groups_in {
        let group = group.borrow();
        let out = if group.group_type == GroupType::Share {
            &mut share
        } else {
            &mut plain
        };
        let first_row = out.rows.len();
        let carried = (!group.offsets_known)
            .then(|| earlier.as_ref().and_then(|e| e.group(&group.group)))
            .flatten();
        let mut agg = if let Some((agg, carried_rows)) = carried {
            let mut agg = agg.clone();
            agg.stale = true;
            agg.group_type = group.group_type.clone();
            if group.state != GroupState::Unknown {
                agg.state = group.state;
            }
            if rows {
                // Re-pointed into this report's partitions; a partition gone from them
                // (its topic deleted) has no row any more.
                out.rows.extend(carried_rows.filter_map(|r| {
                    let (i, _) = inputs.watermarks(r.tp)?;
                    Some(r.row.moved_to(i))
                }));
            }
            agg
        } else {
            let mut agg = GroupLag {
                group: group.group.clone(),
                group_type: group.group_type.clone(),
                state: group.state,
                offsets_known: group.offsets_known,
                max_lag: 0,
                max_lag_seconds: None,
                sum_lag: 0,
                topics: BTreeMap::new(),
                read_at_ms: now_ms,
                stale: false,
                rows: 0,
            };
            for gp in &group.partitions {
                // A partition no longer in metadata (deleted topic) has no watermarks: skip it.
                let Some((i, w)) = inputs.watermarks(&gp.tp) else {
                    continue;
                };
                let row = if inputs.carried_watermarks.contains_key(&gp.tp) {
                    // Its leader could not answer: fresh committed offsets against old
                    // watermarks would understate the lag (down to a false 0), so the row
                    // the last cycle computed is carried whole, and the group is marked
                    // stale.
                    agg.stale = true;
                    let Some(row) = earlier.as_ref().and_then(|e| e.row(&group.group, &gp.tp))
                    else {
                        continue;
                    };
                    row.row.moved_to(i)
                } else {
                    let row = partition_lag(inputs.compacted_topics, i, gp, w, now_ms);
                    compaction_partitions += u64::from(row.compaction_detected);
                    data_loss_partitions += u64::from(row.data_loss());
                    row
                };
                agg.add(&gp.tp.topic, &row);
                if rows {
                    out.rows.push(row);
                }
            }
            agg
        };
        agg.rows = u32::try_from(out.rows.len() - first_row).unwrap_or(u32::MAX);
        out.groups.push(agg);
    }
    let stale_groups = (plain.groups.iter().chain(&share.groups))
        .filter(|g| g.stale)
        .count() as u64;
    LagReport {
        cluster: inputs.cluster.to_owned(),
        partitions: inputs.partitions,
        partition_series: true,
        group_partitions: plain.rows,
        groups: plain.groups,
        share_group_partitions: share.rows,
        share_groups: share.groups,
        compaction_partitions,
        data_loss_partitions,
        stale_groups,
        stale_partitions: inputs.carried_watermarks.len() as u64,
        status: StatusReport::default(),
    }
}

impl GroupLag {
    /// Fold one partition's row (of `topic`) into the group's aggregates.
    fn add(&mut self, topic: &Arc<str>, row: &GroupPartitionLag) {
        let lag = row.lag();
        self.max_lag = self.max_lag.max(lag);
        self.sum_lag = self.sum_lag.saturating_add(lag);
        let topic = self.topics.entry(topic.clone()).or_default();
        topic.sum_lag = topic.sum_lag.saturating_add(lag);
        topic.max_lag = topic.max_lag.max(lag);
        if let Some(s) = row.lag_seconds() {
            let max = |m: Option<f64>| Some(m.map_or(s, |m| m.max(s)));
            self.max_lag_seconds = max(self.max_lag_seconds);
            topic.max_lag_seconds = max(topic.max_lag_seconds);
        }
    }
}

/// An earlier report, indexed by group: the groups read at or after a time, each with its
/// rows.
pub struct ReportIndex<'a> {
    partitions: &'a [PartitionOffsets],
    groups: HashMap<&'a str, (&'a GroupLag, &'a [GroupPartitionLag])>,
}

impl<'a> ReportIndex<'a> {
    /// The groups of `report` whose offsets were read at or after `oldest_ms`.
    pub fn new(report: &'a LagReport, oldest_ms: i64) -> Self {
        let mut groups = HashMap::with_capacity(report.groups.len() + report.share_groups.len());
        for (aggs, rows) in [
            (&report.groups, &report.group_partitions),
            (&report.share_groups, &report.share_group_partitions),
        ] {
            let mut at = 0usize;
            for g in aggs {
                let end = at.saturating_add(g.rows as usize);
                let own = rows.get(at..end).unwrap_or_default();
                at = end;
                if g.offsets_known && g.read_at_ms >= oldest_ms {
                    groups.insert(&*g.group, (g, own));
                }
            }
        }
        ReportIndex {
            partitions: &report.partitions,
            groups,
        }
    }

    /// A group's aggregates and rows.
    pub fn group(
        &self,
        name: &str,
    ) -> Option<(&'a GroupLag, impl Iterator<Item = Row<'a>> + use<'a>)> {
        let (agg, rows) = self.groups.get(name).copied()?;
        let partitions = self.partitions;
        let rows = rows.iter().filter_map(move |row| {
            let offsets = partitions.get(row.partition as usize)?;
            Some(Row {
                group: agg,
                tp: &offsets.tp,
                offsets,
                row,
            })
        });
        Some((agg, rows))
    }

    /// A group's row for one partition.
    pub fn row(&self, group: &str, tp: &TopicPartition) -> Option<Row<'a>> {
        self.group(group)?.1.find(|r| r.tp == tp)
    }
}

fn partition_lag(
    compacted_topics: &BTreeSet<Arc<str>>,
    partition: u32,
    gp: &GroupPartition,
    w: &PartitionOffsets,
    now_ms: i64,
) -> GroupPartitionLag {
    let committed = gp.committed;
    let markers_only = gp.sample == Sample::MarkersOnly;
    let lag = if markers_only {
        0
    } else {
        w.high.saturating_sub(committed).max(0)
    };
    let lag_seconds = match gp.sample {
        _ if lag == 0 => Some(0.0),
        Sample::At { timestamp_ms, .. } => {
            Some((now_ms.saturating_sub(timestamp_ms) as f64 / 1000.0).max(0.0))
        }
        Sample::None | Sample::MarkersOnly => None,
    };
    let later = matches!(gp.sample, Sample::At { later: true, .. });
    GroupPartitionLag::new(
        partition,
        gp.member.clone(),
        committed,
        (w.low, w.high),
        markers_only,
        lag_seconds,
        // The record at the committed offset is gone and a later one answered, on a topic
        // that compacts: its age understates the time lag.
        later && compacted_topics.contains(&gp.tp.topic),
    )
}

#[cfg(test)]
mod tests;
