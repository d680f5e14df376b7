//! What `tidemark lag` shows: a cluster's [`LagReport`] reduced to groups and their
//! partitions, filtered and sorted worst first. The same values feed the table and the
//! JSON document; the field names below are the JSON schema (docs/operations.md).

use std::cmp::Ordering;
use std::collections::HashMap;

use regex::Regex;
use serde::Serialize;

use crate::lag::{GroupLag, LagReport, Row};

/// The whole output: every cluster read.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Document {
    pub clusters: Vec<ClusterView>,
}

/// One cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterView {
    pub name: String,
    /// Why the cluster could not be read (no groups then); `None` when it was.
    pub error: Option<String>,
    /// False when some brokers or items could not be read: what they hold is missing, or
    /// carried from an earlier read and marked `stale`.
    pub complete: bool,
    pub groups: Vec<GroupView>,
}

/// One group, with its partitions worst first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupView {
    pub group: String,
    pub group_type: String,
    pub state: String,
    /// Some values are the last ones read, not this read's (`--watch` only).
    pub stale: bool,
    /// `None` when the group's committed offsets could not be read.
    pub max_lag: Option<i64>,
    /// `None` when no partition has a known time lag.
    pub max_lag_seconds: Option<f64>,
    pub partitions: Vec<PartitionView>,
}

/// One partition of one group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PartitionView {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub high_watermark: Option<i64>,
    pub lag: i64,
    /// The exact time lag; 0 when lag is 0, `None` when the record could not be read.
    pub lag_seconds: Option<f64>,
    /// The member the partition is assigned to; `None` when unassigned or not reported.
    pub member_client_id: Option<String>,
    pub member_host: Option<String>,
}

impl ClusterView {
    /// A cluster that could not be read.
    pub fn failed(name: &str, error: String) -> Self {
        ClusterView {
            name: name.to_owned(),
            error: Some(error),
            complete: false,
            groups: Vec::new(),
        }
    }

    /// The groups of `report` (share groups included) whose names `filter` matches
    /// (unanchored, like the config's filters), sorted worst first (see [`group_order`]).
    pub fn from_report(
        name: &str,
        report: &LagReport,
        complete: bool,
        filter: Option<&Regex>,
    ) -> Self {
        let mut rows: HashMap<&str, Vec<PartitionView>> = HashMap::new();
        for row in report.rows().chain(report.share_rows()) {
            rows.entry(&**row.group_name())
                .or_default()
                .push(partition_view(&row));
        }
        let mut groups: Vec<GroupView> = report
            .groups
            .iter()
            .chain(&report.share_groups)
            .filter(|g| filter.is_none_or(|f| f.is_match(&g.group)))
            .map(|g| group_view(g, rows.remove(&*g.group).unwrap_or_default()))
            .collect();
        groups.sort_by(group_order);
        ClusterView {
            name: name.to_owned(),
            error: None,
            complete,
            groups,
        }
    }
}

fn group_view(g: &GroupLag, mut partitions: Vec<PartitionView>) -> GroupView {
    partitions.sort_by(row_order);
    let known = g.offsets_known;
    GroupView {
        group: g.group.to_string(),
        group_type: g.group_type.as_str().to_owned(),
        state: g.state.as_str().to_owned(),
        stale: g.stale,
        max_lag: known.then_some(g.max_lag),
        max_lag_seconds: if known { g.max_lag_seconds } else { None },
        partitions: if known { partitions } else { Vec::new() },
    }
}

fn partition_view(row: &Row<'_>) -> PartitionView {
    let member = row.member.as_deref();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    PartitionView {
        topic: row.tp.topic.to_string(),
        partition: row.tp.partition,
        committed: row.committed,
        high_watermark: Some(row.offsets.high),
        lag: row.lag(),
        lag_seconds: row.lag_seconds(),
        member_client_id: member.and_then(|m| non_empty(&m.client_id)),
        member_host: member.and_then(|m| non_empty(&m.host)),
    }
}

/// Worst first, by (lag, time lag, name):
/// 1. anything behind (lag > 0) before anything caught up or unknown;
/// 2. larger time lag first; an unknown time lag after every known one;
/// 3. larger lag first;
/// 4. then by name, so the order is stable.
fn worst_first(lag: (Option<i64>, Option<f64>), other: (Option<i64>, Option<f64>)) -> Ordering {
    let behind = |l: Option<i64>| l.is_some_and(|l| l > 0);
    let by_seconds = match (lag.1, other.1) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    behind(other.0)
        .cmp(&behind(lag.0))
        .then(by_seconds)
        .then(other.0.cmp(&lag.0))
}

/// The order of groups: `worst_first` by max lag and max time lag, then by name.
pub fn group_order(a: &GroupView, b: &GroupView) -> Ordering {
    worst_first(
        (a.max_lag, a.max_lag_seconds),
        (b.max_lag, b.max_lag_seconds),
    )
    .then_with(|| a.group.cmp(&b.group))
}

/// The order of a group's partitions: `worst_first`, then by topic and partition.
pub fn row_order(a: &PartitionView, b: &PartitionView) -> Ordering {
    worst_first((Some(a.lag), a.lag_seconds), (Some(b.lag), b.lag_seconds))
        .then_with(|| a.topic.cmp(&b.topic))
        .then(a.partition.cmp(&b.partition))
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
