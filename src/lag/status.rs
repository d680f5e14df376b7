//! Consumer status, consumption rate and catch-up estimate: pure functions over a sliding
//! window of the last N cycles of each group partition (the rules are in docs/metrics.md).
//!
//! The window lives in the collector's per-cluster state and is fed with each successful
//! cycle's [`LagReport`]; it never reaches back into Kafka. Memory: the cycle times are kept
//! once per cluster, and a group partition's points are stored as small deltas in one
//! arena (see `status_track.rs`): about 32 + 5 × (N − 1) bytes — see
//! `memory_at_100k_group_partitions` in the tests for the measured figures.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::report::{GroupPartitionLag, LagReport, Row};
use crate::model::TopicPartition;
use track::{Matcher, Point, Track};

#[path = "status_track.rs"]
mod track;

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
    /// Points kept per group partition (at least 2, at most 2000).
    pub points: usize,
    /// Time lag (seconds) above which a partition with lag is ERR.
    pub error_lag_seconds: f64,
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
    /// One track per group partition with a window, in the last report's order; their
    /// deltas follow each other in `arena` in the same order.
    tracks: Vec<Track>,
    arena: Vec<u8>,
    /// Keys of the track hashes: random, so no group name can be chosen to collide.
    hasher: RandomState,
}

impl StatusWindow {
    pub fn new(rules: StatusRules) -> Self {
        let rules = StatusRules {
            points: rules.points.clamp(2, track::MAX_POINTS),
            ..rules
        };
        StatusWindow {
            rules,
            cycles: VecDeque::with_capacity(rules.points),
            first_cycle: 0,
            tracks: Vec::new(),
            arena: Vec::new(),
            hasher: RandomState::new(),
        }
    }

    /// Group partitions with a window.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Bytes the windows hold on the heap (capacities, allocator overhead aside).
    pub fn heap_bytes(&self) -> usize {
        self.tracks.capacity() * std::mem::size_of::<Track>()
            + self.arena.capacity()
            + self.cycles.capacity() * std::mem::size_of::<i64>()
    }

    /// Add a cycle's report read at `at_ms` and evaluate every group of it. Stale groups
    /// (values carried from an earlier cycle) add no point: a repeated value would look like
    /// a committed offset that does not move. Group partitions absent from the report (group
    /// deleted, partition no longer assigned a commit) lose their window.
    pub fn observe(&mut self, report: &LagReport, at_ms: i64) -> StatusReport {
        let cycle = self.next_cycle(at_ms);
        let old_tracks = std::mem::take(&mut self.tracks);
        let old_arena = std::mem::take(&mut self.arena);
        let mut matcher = Matcher::new(&old_tracks, &old_arena);
        let mut tracks = Vec::with_capacity(report.group_partitions.len());
        // Each window loses about as many bytes at its front as it gains at its end.
        let mut arena = Vec::with_capacity(old_arena.len() + report.group_partitions.len() * 8);
        let mut points = Vec::with_capacity(self.rules.points);
        let mut out = StatusReport::default();
        let mut groups: Vec<GroupStatus> = Vec::new();
        for row in report.rows() {
            let key = self
                .hasher
                .hash_one((&**row.group_name(), &*row.tp.topic, row.tp.partition));
            points.clear();
            if let Some((t, bytes)) = matcher.find(key) {
                t.decode(bytes, &mut points);
            }
            // A stale group's offsets are not this cycle's: no point to add.
            if !row.group.stale {
                self.push(&mut points, &row, row.offsets.high, cycle);
            }
            let Some(t) = Track::encode(key, &points, &mut arena) else {
                continue;
            };
            tracks.push(t);
            let p = self.evaluate(&row, &points);
            match groups.last_mut() {
                Some(g) if g.group == *row.group_name() => fold(g, &p),
                _ => groups.push(GroupStatus {
                    group: row.group_name().clone(),
                    status: p.status,
                    consume_rate: p.consume_rate,
                    catchup_seconds: p.catchup_seconds,
                }),
            }
            out.partitions.push(p);
        }
        // Last cycle's windows go first, so the shrinking copy does not add to the peak; the
        // slack of the reservation would be a fifth of the window's memory.
        drop(matcher);
        drop(old_tracks);
        drop(old_arena);
        arena.shrink_to_fit();
        tracks.shrink_to_fit();
        // Group partitions absent from the report (group deleted, partition no longer
        // committed) got no track: their windows are gone.
        self.tracks = tracks;
        self.arena = arena;
        out.groups = groups;
        out
    }

    /// The points of one group partition's window, oldest first.
    #[cfg(test)]
    fn window_of(&self, group: &str, tp: &TopicPartition) -> Vec<Point> {
        let key = self.hasher.hash_one((group, &*tp.topic, tp.partition));
        let mut out = Vec::new();
        if let Some((t, bytes)) = Matcher::new(&self.tracks, &self.arena).find(key) {
            t.decode(bytes, &mut out);
        }
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

    /// Add this cycle's point to a window's points (oldest first).
    fn push(&self, window: &mut Vec<Point>, row: &GroupPartitionLag, high: i64, cycle: u32) {
        let point = Point {
            committed: row.committed,
            high,
            cycle,
            lag_zero: row.lag() == 0,
        };
        let points = self.rules.points;
        let first = self.first_cycle;
        // Points of cycles that left the cluster's ring are older than the window.
        let old = window
            .iter()
            .take_while(|p| p.cycle.wrapping_sub(first) as usize >= points)
            .count();
        window.drain(..old);
        if let Some(last) = window.last() {
            // The high watermark went backwards: the topic was deleted and re-created, and
            // nothing before says anything about the new one.
            if point.high < last.high {
                window.clear();
            }
        }
        if window.len() >= points {
            window.drain(..=window.len() - points);
        }
        window.push(point);
    }

    fn evaluate(&self, row: &Row<'_>, points: &[Point]) -> PartitionStatus {
        let rules = &self.rules;
        let status = partition_status(points, rules, row.lag_seconds());
        let (consume_rate, catchup_seconds) = match (points.first(), points.last()) {
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
            group: row.group_name().clone(),
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
fn partition_status(points: &[Point], rules: &StatusRules, time_lag: Option<f64>) -> Status {
    let Some(last) = points.last() else {
        return Status::Ok;
    };
    let pairs = || points.iter().zip(points.iter().skip(1));
    if pairs().any(|(a, b)| b.committed < a.committed) {
        return Status::Rewind;
    }
    let full = points.len() >= rules.points;
    let first = points.first().unwrap_or(last);
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

#[cfg(test)]
#[path = "status_window_tests.rs"]
mod window_tests;
