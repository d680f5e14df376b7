//! Consumer status, consumption rate and catch-up estimate: pure functions over a sliding
//! window of the last N cycles of each group partition (the rules are in docs/metrics.md).
//!
//! The window lives in the collector's per-cluster state and is fed with each successful
//! cycle's [`LagReport`]; it never reaches back into Kafka. Memory: the cycle times are kept
//! once per cluster, so a group partition holds N points of 24 bytes (committed, high
//! watermark, cycle number, time lag with a lag-is-zero flag) plus its map entry — see
//! `bytes_per_partition` in the tests for the measured figure.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::report::{GroupPartitionLag, LagReport};
use crate::model::TopicPartition;

/// Status of a group partition or a group; the value is the gauge's code, and a group takes
/// the highest code of its partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Ok = 0,
    Warn = 1,
    Err = 2,
    Stop = 3,
    Stall = 4,
    Rewind = 5,
}

impl Status {
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// How statuses are evaluated (`[exporter.status]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatusRules {
    /// Points kept per group partition (at least 2).
    pub points: usize,
    /// Time lag (seconds) above which a partition with lag is ERR.
    pub error_lag_seconds: f64,
}

/// One cycle's values of a group partition: 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Point {
    committed: i64,
    high: i64,
    /// The cluster cycle it was read in (its time is in [`StatusWindow::cycles`]).
    cycle: u32,
    /// Time lag in ms, saturated at 2^31 − 1 (24 days); the top bit says the offset lag was
    /// 0 (caught up, or only transaction markers left), which `high − committed` cannot.
    time_lag: u32,
}

const LAG_ZERO: u32 = 1 << 31;

impl Point {
    fn lag(&self) -> i64 {
        if self.time_lag & LAG_ZERO != 0 {
            0
        } else {
            self.high.saturating_sub(self.committed).max(0)
        }
    }
}

/// Status, rate and estimate of one group partition.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionStatus {
    pub group: Arc<str>,
    pub tp: TopicPartition,
    pub status: Status,
    /// Records/s consumed over the window; None with fewer than 2 points.
    pub consume_rate: Option<f64>,
    /// Seconds to lag 0 at the window's net rate; None with fewer than 2 points.
    pub catchup_seconds: Option<f64>,
}

/// A group's worst status, summed rate and slowest catch-up.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupStatus {
    pub group: Arc<str>,
    pub status: Status,
    pub consume_rate: Option<f64>,
    pub catchup_seconds: Option<f64>,
}

/// The statuses of one cluster after a cycle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusReport {
    pub groups: Vec<GroupStatus>,
    /// Kept only when the report has per-partition rows (granularity `partition`).
    pub partitions: Vec<PartitionStatus>,
}

/// The sliding windows of every group partition of one cluster.
#[derive(Debug)]
pub struct StatusWindow {
    rules: StatusRules,
    /// Unix ms of the last cycles, the newest last; `first_cycle` is the number of the front.
    cycles: VecDeque<i64>,
    first_cycle: u32,
    windows: HashMap<(Arc<str>, TopicPartition), VecDeque<Point>>,
}

impl StatusWindow {
    pub fn new(rules: StatusRules) -> Self {
        let rules = StatusRules {
            points: rules.points.max(2),
            ..rules
        };
        StatusWindow {
            rules,
            cycles: VecDeque::with_capacity(rules.points),
            first_cycle: 0,
            windows: HashMap::new(),
        }
    }

    /// Group partitions with a window.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Add a cycle's report read at `at_ms` and evaluate every group of it. Stale groups
    /// (values carried from an earlier cycle) add no point: a repeated value would look like
    /// a committed offset that does not move. Group partitions absent from the report (group
    /// deleted, partition no longer assigned a commit) lose their window.
    pub fn observe(&mut self, report: &LagReport, at_ms: i64) -> StatusReport {
        let cycle = self.next_cycle(at_ms);
        let mut seen: HashSet<(Arc<str>, TopicPartition)> =
            HashSet::with_capacity(report.group_partitions.len());
        let stale: HashSet<&str> = report
            .groups
            .iter()
            .filter(|g| g.stale)
            .map(|g| &*g.group)
            .collect();
        let highs: HashMap<&TopicPartition, i64> =
            report.partitions.iter().map(|p| (&p.tp, p.high)).collect();
        let mut out = StatusReport::default();
        let mut groups: Vec<GroupStatus> = Vec::new();
        for row in &report.group_partitions {
            let key = (row.group.clone(), row.tp.clone());
            // Without this cycle's watermark (partition gone) there is no point to add.
            match highs.get(&row.tp) {
                Some(&high) if !stale.contains(&*row.group) => self.push(&key, row, high, cycle),
                _ => {}
            }
            let Some(points) = self.windows.get(&key) else {
                continue;
            };
            let p = self.evaluate(row, points);
            match groups.last_mut() {
                Some(g) if g.group == row.group => fold(g, &p),
                _ => groups.push(GroupStatus {
                    group: row.group.clone(),
                    status: p.status,
                    consume_rate: p.consume_rate,
                    catchup_seconds: p.catchup_seconds,
                }),
            }
            seen.insert(key);
            out.partitions.push(p);
        }
        self.windows.retain(|k, _| seen.contains(k));
        out.groups = groups;
        out
    }

    fn next_cycle(&mut self, at_ms: i64) -> u32 {
        if self.cycles.len() == self.rules.points {
            self.cycles.pop_front();
            self.first_cycle = self.first_cycle.wrapping_add(1);
        }
        self.cycles.push_back(at_ms);
        self.first_cycle
            .wrapping_add(self.cycles.len() as u32)
            .wrapping_sub(1)
    }

    fn at(&self, cycle: u32) -> Option<i64> {
        let i = cycle.wrapping_sub(self.first_cycle) as usize;
        self.cycles.get(i).copied()
    }

    fn push(
        &mut self,
        key: &(Arc<str>, TopicPartition),
        row: &GroupPartitionLag,
        high: i64,
        cycle: u32,
    ) {
        let ms = row
            .lag_seconds()
            .map_or(0.0, |s| (s * 1000.0).clamp(0.0, f64::from(LAG_ZERO - 1)));
        let point = Point {
            committed: row.committed,
            high,
            cycle,
            time_lag: ms as u32 | if row.lag() == 0 { LAG_ZERO } else { 0 },
        };
        let points = self.rules.points;
        let first = self.first_cycle;
        let window = self
            .windows
            .entry(key.clone())
            .or_insert_with(|| VecDeque::with_capacity(points));
        // Points of cycles that left the cluster's ring are older than the window.
        while window
            .front()
            .is_some_and(|p| p.cycle.wrapping_sub(first) as usize >= points)
        {
            window.pop_front();
        }
        if let Some(last) = window.back() {
            // The high watermark went backwards: the topic was deleted and re-created, and
            // nothing before says anything about the new one.
            if point.high < last.high {
                window.clear();
            }
        }
        if window.len() == points {
            window.pop_front();
        }
        window.push_back(point);
    }

    fn evaluate(&self, row: &GroupPartitionLag, points: &VecDeque<Point>) -> PartitionStatus {
        let rules = &self.rules;
        let status = partition_status(points, rules, row.lag_seconds());
        let (consume_rate, catchup_seconds) = match (points.front(), points.back()) {
            (Some(first), Some(last)) if points.len() >= 2 => {
                match (self.at(first.cycle), self.at(last.cycle)) {
                    (Some(t0), Some(t1)) if t1 > t0 => {
                        let (rate, catchup) = rate_and_catchup(first, last, t1 - t0);
                        (Some(rate), Some(catchup))
                    }
                    _ => (None, None),
                }
            }
            _ => (None, None),
        };
        PartitionStatus {
            group: row.group.clone(),
            tp: row.tp.clone(),
            status,
            consume_rate,
            catchup_seconds,
        }
    }
}

/// Fold a partition into its group: the worst status, rates summed, the slowest catch-up
/// (the group is caught up when its last partition is).
fn fold(g: &mut GroupStatus, p: &PartitionStatus) {
    g.status = g.status.max(p.status);
    g.consume_rate = match (g.consume_rate, p.consume_rate) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    g.catchup_seconds = match (g.catchup_seconds, p.catchup_seconds) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
}

/// Records/s consumed between two points `span_ms` apart, and seconds to lag 0 at the net
/// rate (lag drained per second): 0 when caught up, +Inf when the lag does not shrink.
fn rate_and_catchup(first: &Point, last: &Point, span_ms: i64) -> (f64, f64) {
    let secs = span_ms as f64 / 1000.0;
    let consumed = last.committed.saturating_sub(first.committed).max(0) as f64;
    let lag = last.lag();
    let catchup = if lag == 0 {
        0.0
    } else {
        let drained = first.lag().saturating_sub(lag) as f64 / secs;
        if drained > 0.0 {
            lag as f64 / drained
        } else {
            f64::INFINITY
        }
    };
    (consumed / secs, catchup)
}

/// The rules of docs/metrics.md, first match wins: REWIND, STOP, STALL, ERR, WARN, OK.
fn partition_status(
    points: &VecDeque<Point>,
    rules: &StatusRules,
    time_lag: Option<f64>,
) -> Status {
    let Some(last) = points.back() else {
        return Status::Ok;
    };
    let pairs = || points.iter().zip(points.iter().skip(1));
    if pairs().any(|(a, b)| b.committed < a.committed) {
        return Status::Rewind;
    }
    let full = points.len() >= rules.points;
    let first = points.front().unwrap_or(last);
    let frozen = points.iter().all(|p| p.committed == last.committed);
    if full && frozen && last.lag() > 0 {
        // Records arrived while the group committed nothing: it stopped consuming. With no
        // new records it is parked in front of old ones.
        if last.high > first.high {
            return Status::Stop;
        }
        if points.iter().all(|p| p.lag() > 0) {
            return Status::Stall;
        }
    }
    if last.lag() > 0 && time_lag.is_some_and(|s| s > rules.error_lag_seconds) {
        return Status::Err;
    }
    // Any point at lag 0 means the group caught up within the window (Burrow's rule).
    let growing = pairs().all(|(a, b)| b.lag() >= a.lag())
        && points.iter().all(|p| p.lag() > 0)
        && last.lag() > first.lag();
    if full && growing {
        return Status::Warn;
    }
    Status::Ok
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
