//! Recorded sequences of (committed, high watermark) per cycle, and the status, rate and
//! catch-up estimate each must give.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::lag::{GroupLag, GroupState, PartitionOffsets};

const T0: i64 = 1_700_000_000_000;
/// Poll interval of the sequences.
const STEP: i64 = 10_000;
const RULES: StatusRules = StatusRules {
    points: 4,
    error_lag_seconds: 600.0,
};

/// One group partition of a cycle: committed, high, only transaction markers left.
#[derive(Clone, Copy)]
struct Row {
    committed: i64,
    high: i64,
    markers_only: bool,
    time_lag: f64,
}

fn row(committed: i64, high: i64) -> Row {
    Row {
        committed,
        high,
        markers_only: false,
        time_lag: if high > committed { 5.0 } else { 0.0 },
    }
}

/// A report of group "g" on topic "t" with `rows` as partitions 0, 1, …
fn report(rows: &[Row], stale: bool) -> LagReport {
    let tp = |p: usize| TopicPartition::new("t", p as i32);
    LagReport {
        cluster: "c".into(),
        partitions: rows
            .iter()
            .enumerate()
            .map(|(i, r)| PartitionOffsets {
                tp: tp(i),
                low: 0,
                high: r.high,
                read_at_ms: T0,
            })
            .collect(),
        group_partitions: rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let lag = if r.markers_only {
                    0
                } else {
                    (r.high - r.committed).max(0)
                };
                GroupPartitionLag::new(
                    i as u32,
                    None,
                    r.committed,
                    (0, r.high),
                    r.markers_only,
                    Some(if lag == 0 { 0.0 } else { r.time_lag }),
                    false,
                )
            })
            .collect(),
        groups: vec![GroupLag {
            group: Arc::from("g"),
            group_type: Default::default(),
            state: GroupState::Stable,
            offsets_known: true,
            max_lag: 0,
            max_lag_seconds: None,
            sum_lag: 0,
            topics: BTreeMap::new(),
            read_at_ms: T0,
            stale,
            rows: rows.len() as u32,
        }],
        ..LagReport::default()
    }
}

/// Feed one single-partition cycle per row, STEP apart; the last cycle's result.
fn run(window: &mut StatusWindow, seq: &[Row]) -> StatusReport {
    let mut last = StatusReport::default();
    for (i, r) in seq.iter().enumerate() {
        last = window.observe(&report(&[*r], false), T0 + i as i64 * STEP);
    }
    last
}

fn status_of(seq: &[Row]) -> Status {
    run(&mut StatusWindow::new(RULES), seq).groups[0].status
}

fn rows(pairs: &[(i64, i64)]) -> Vec<Row> {
    pairs.iter().map(|&(c, h)| row(c, h)).collect()
}

#[test]
fn ok_when_consuming_steadily() {
    let seq = rows(&[(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)]);
    assert_eq!(status_of(&seq), Status::Ok);
}

#[test]
fn warn_when_lag_grows_across_the_whole_window_then_ok_as_it_catches_up() {
    let mut w = StatusWindow::new(RULES);
    // Consumes 10 per cycle while 30 arrive: lag 10, 30, 50, 70.
    let growing = rows(&[(0, 10), (10, 40), (20, 70), (30, 100)]);
    assert_eq!(run(&mut w, &growing).groups[0].status, Status::Warn);
    // Production stops; the lag falls, and the window no longer grows throughout.
    let at = T0 + 4 * STEP;
    let r = w.observe(&report(&[row(60, 100)], false), at);
    assert_eq!(r.groups[0].status, Status::Ok);
}

#[test]
fn warn_needs_a_full_window() {
    let seq = rows(&[(0, 10), (10, 40), (20, 70)]);
    assert_eq!(status_of(&seq), Status::Ok);
}

#[test]
fn err_when_time_lag_is_above_the_threshold() {
    let mut seq = rows(&[(0, 10), (10, 20)]);
    seq[1].time_lag = 601.0;
    assert_eq!(status_of(&seq), Status::Err);
    seq[1].time_lag = 600.0;
    assert_eq!(status_of(&seq), Status::Ok);
}

#[test]
fn stop_when_records_arrive_and_nothing_is_committed_for_the_window() {
    let seq = rows(&[(5, 10), (5, 20), (5, 30), (5, 40)]);
    assert_eq!(status_of(&seq), Status::Stop);
    // One cycle short of the window: not yet.
    assert_eq!(status_of(&seq[..3]), Status::Ok);
}

#[test]
fn stop_after_a_window_of_zero_lag() {
    // Burrow #290: a caught-up group stops, then records arrive. A window that started at
    // lag 0 must not hide it: lag is read fresh each cycle, and STOP does not look for a 0.
    let seq = rows(&[(100, 100), (100, 100), (100, 110), (100, 120)]);
    assert_eq!(status_of(&seq), Status::Stop);
}

#[test]
fn stall_when_parked_with_lag_and_no_new_records() {
    let seq = rows(&[(5, 10), (5, 10), (5, 10), (5, 10)]);
    assert_eq!(status_of(&seq), Status::Stall);
}

#[test]
fn rewind_when_committed_moves_backwards() {
    let seq = rows(&[(50, 100), (60, 100), (20, 100)]);
    assert_eq!(status_of(&seq), Status::Rewind);
    // Out of the window again: OK.
    let mut more = seq.clone();
    more.extend(rows(&[(30, 100), (40, 100), (50, 100), (60, 100)]));
    assert_eq!(status_of(&more), Status::Ok);
}

#[test]
fn idle_topic_caught_up_is_ok_not_stop() {
    // Burrow #38: nothing produced, nothing committed, lag 0.
    let seq = rows(&[(100, 100); 6]);
    assert_eq!(status_of(&seq), Status::Ok);
    let r = run(&mut StatusWindow::new(RULES), &seq);
    assert_eq!(r.groups[0].catchup_seconds, Some(0.0));
    assert_eq!(r.groups[0].consume_rate, Some(0.0));
}

#[test]
fn parked_on_a_transaction_marker_is_ok() {
    // The committed offset sits before a commit marker that is never consumed; the high
    // watermark moves on as more markers arrive.
    let seq: Vec<Row> = (0..6)
        .map(|i| Row {
            markers_only: true,
            ..row(100, 101 + i)
        })
        .collect();
    assert_eq!(status_of(&seq), Status::Ok);
    let r = run(&mut StatusWindow::new(RULES), &seq);
    assert_eq!(r.groups[0].catchup_seconds, Some(0.0));
}

#[test]
fn a_rebalance_pause_shorter_than_the_window_is_ok() {
    // Commits pause for two cycles while the group rebalances, then resume.
    let seq = rows(&[(0, 30), (10, 40), (10, 50), (10, 60), (40, 70), (70, 80)]);
    assert_eq!(status_of(&seq), Status::Ok);
}

#[test]
fn group_deleted_and_recreated_starts_a_new_window() {
    let mut w = StatusWindow::new(RULES);
    run(&mut w, &rows(&[(90, 100), (95, 100)]));
    // The group is gone for a cycle (not in the report)…
    let empty = LagReport {
        cluster: "c".into(),
        ..LagReport::default()
    };
    let r = w.observe(&empty, T0 + 2 * STEP);
    assert!(r.groups.is_empty());
    assert!(w.is_empty());
    // … and comes back at the earliest offset: not a REWIND, and no rate from one point.
    let r = w.observe(&report(&[row(0, 100)], false), T0 + 3 * STEP);
    assert_eq!(r.groups[0].status, Status::Ok);
    assert_eq!(r.groups[0].consume_rate, None);
    assert_eq!(r.groups[0].catchup_seconds, None);
}

#[test]
fn high_watermark_reset_clears_the_window() {
    // The topic is deleted and re-created: both offsets start again from 0.
    let seq = rows(&[(900, 1000), (950, 1000), (0, 10), (0, 10)]);
    let r = run(&mut StatusWindow::new(RULES), &seq);
    assert_eq!(r.groups[0].status, Status::Ok);
    // The window holds the two points after the reset: lag 10 → 10 over one step.
    assert_eq!(r.groups[0].catchup_seconds, Some(f64::INFINITY));
}

#[test]
fn stale_cycles_add_no_point() {
    let mut w = StatusWindow::new(RULES);
    run(&mut w, &rows(&[(0, 100), (10, 100)]));
    // The same carried values three times must not read as a committed offset that stalls.
    for i in 2..5 {
        let r = w.observe(&report(&[row(10, 100)], true), T0 + i * STEP);
        assert_eq!(r.groups[0].status, Status::Ok);
    }
}

#[test]
fn rate_and_catch_up_math() {
    // 100 records/s consumed, 40/s produced: net drain 60/s; lag 1200 at the end.
    let seq: Vec<Row> = (0..4).map(|i| row(i * 1000, 3000 + i * 400)).collect();
    let r = run(&mut StatusWindow::new(RULES), &seq);
    let g = &r.groups[0];
    assert_eq!(g.consume_rate, Some(100.0));
    assert_eq!(g.catchup_seconds, Some(1200.0 / 60.0));
    // Falling behind: +Inf.
    let behind = rows(&[(0, 10), (10, 40)]);
    let r = run(&mut StatusWindow::new(RULES), &behind);
    assert_eq!(r.groups[0].catchup_seconds, Some(f64::INFINITY));
    assert_eq!(r.groups[0].consume_rate, Some(1.0));
    // One point: no series.
    let r = run(&mut StatusWindow::new(RULES), &behind[..1]);
    assert_eq!(r.groups[0].catchup_seconds, None);
}

#[test]
fn group_takes_the_worst_partition_sums_rates_and_the_slowest_catch_up() {
    let mut w = StatusWindow::new(RULES);
    let mut last = StatusReport::default();
    for i in 0..4 {
        // Partition 0 drains 10/step from lag 40; partition 1 is parked with lag 5.
        let rows = [row(i * 10, 40), row(5, 10)];
        last = w.observe(&report(&rows, false), T0 + i * STEP);
    }
    let g = &last.groups[0];
    assert_eq!(g.status, Status::Stall);
    assert_eq!(last.partitions[0].status, Status::Ok);
    assert_eq!(last.partitions[1].status, Status::Stall);
    assert_eq!(g.consume_rate, Some(1.0));
    assert_eq!(g.catchup_seconds, Some(f64::INFINITY));
    assert_eq!(last.partitions[0].catchup_seconds, Some(10.0));
}

#[test]
fn bytes_per_partition() {
    // A track is 32 bytes; a steady partition's later points 3 to 7 bytes each in the arena
    // (measured in window_tests::memory_at_100k_group_partitions).
    assert_eq!(std::mem::size_of::<Track>(), 32);
    let mut w = StatusWindow::new(RULES);
    run(
        &mut w,
        &rows(&[(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)]),
    );
    assert_eq!(w.len(), 1);
    // 4 points: the first in the track, 3 deltas of 3 bytes (cycle, committed, gap).
    assert_eq!(w.arena.len(), 9);
}
