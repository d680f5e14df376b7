//! The compact window against the one it replaced: a reference that keeps every point in
//! full (a map of `VecDeque<Point>`, the former storage, same rules) must give the same
//! points, statuses, rates and estimates cycle after cycle on random histories; and the
//! memory both take at 100,000 group partitions.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::lag::{GroupLag, GroupState, PartitionOffsets};

type Key = (Arc<str>, TopicPartition);

/// The former storage: every point in full in a `VecDeque` per map entry.
struct Reference {
    rules: StatusRules,
    cycles: VecDeque<i64>,
    first_cycle: u32,
    windows: HashMap<Key, VecDeque<Point>>,
}

impl Reference {
    fn new(rules: StatusRules) -> Self {
        let rules = StatusWindow::new(rules).rules;
        Reference {
            rules,
            cycles: VecDeque::new(),
            first_cycle: 0,
            windows: HashMap::new(),
        }
    }

    fn observe(&mut self, report: &LagReport, at_ms: i64) -> StatusReport {
        if self.cycles.len() == self.rules.points {
            self.cycles.pop_front();
            self.first_cycle = self.first_cycle.wrapping_add(1);
        }
        self.cycles.push_back(at_ms);
        let cycle = self.first_cycle.wrapping_add(self.cycles.len() as u32 - 1);
        let mut seen = HashSet::new();
        let mut out = StatusReport::default();
        for row in report.rows() {
            let key = (row.group_name().clone(), row.tp.clone());
            if !row.group.stale {
                self.push(&key, &row, row.offsets.high, cycle);
            }
            let Some(points) = self.windows.get(&key) else {
                continue;
            };
            // Contiguous since its last push.
            let p = self.evaluate(&row, points.as_slices().0);
            seen.insert(key);
            match out.groups.last_mut() {
                Some(g) if g.group == *row.group_name() => fold(g, &p),
                _ => out.groups.push(GroupStatus {
                    group: row.group_name().clone(),
                    status: p.status,
                    consume_rate: p.consume_rate,
                    catchup_seconds: p.catchup_seconds,
                }),
            }
            out.partitions.push(p);
        }
        self.windows.retain(|k, _| seen.contains(k));
        out
    }

    fn push(&mut self, key: &Key, row: &GroupPartitionLag, high: i64, cycle: u32) {
        let point = Point {
            committed: row.committed,
            high,
            cycle,
            lag_zero: row.lag() == 0,
        };
        let (points, first) = (self.rules.points, self.first_cycle);
        let window = self
            .windows
            .entry(key.clone())
            .or_insert_with(|| VecDeque::with_capacity(points));
        while window
            .front()
            .is_some_and(|p| p.cycle.wrapping_sub(first) as usize >= points)
        {
            window.pop_front();
        }
        if window.back().is_some_and(|last| point.high < last.high) {
            window.clear();
        }
        if window.len() == points {
            window.pop_front();
        }
        window.push_back(point);
        window.make_contiguous();
    }

    fn evaluate(&self, row: &Row<'_>, points: &[Point]) -> PartitionStatus {
        let at = |c: u32| {
            self.cycles
                .get(c.wrapping_sub(self.first_cycle) as usize)
                .copied()
        };
        let (consume_rate, catchup_seconds) = match (points.first(), points.last()) {
            (Some(f), Some(l)) if points.len() >= 2 => match (at(f.cycle), at(l.cycle)) {
                (Some(t0), Some(t1)) if t1 > t0 => {
                    let (r, c) = rate_and_catchup(f, l, t1 - t0);
                    (Some(r), Some(c))
                }
                _ => (None, None),
            },
            _ => (None, None),
        };
        PartitionStatus {
            group: row.group_name().clone(),
            tp: row.tp.clone(),
            status: partition_status(points, &self.rules, row.lag_seconds()),
            consume_rate,
            catchup_seconds,
        }
    }

    fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(Key, VecDeque<Point>)>() + 1;
        self.windows.capacity() * entry
            + self
                .windows
                .values()
                .map(|w| w.capacity() * std::mem::size_of::<Point>())
                .sum::<usize>()
    }
}

/// xorshift64*: reproducible histories without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn group_lag(group: &str, stale: bool) -> GroupLag {
    GroupLag {
        group: Arc::from(group),
        group_type: Default::default(),
        state: GroupState::Stable,
        offsets_known: true,
        max_lag: 0,
        max_lag_seconds: None,
        sum_lag: 0,
        topics: BTreeMap::new(),
        read_at_ms: 0,
        stale,
        rows: 0,
    }
}

/// A row of the partition at `index` of its report.
fn row(index: usize, committed: i64, lag: i64) -> GroupPartitionLag {
    // Lag as given: high at committed + lag (the window takes its high from the partitions).
    GroupPartitionLag::new(
        index as u32,
        None,
        committed,
        (0, committed.saturating_add(lag)),
        false,
        Some(if lag == 0 { 0.0 } else { lag as f64 / 7.0 }),
        false,
    )
}

/// One random history: 4 groups on 2 topics of 3 partitions, consumers that keep up,
/// trail, stop, rewind, jump by 2^40; topics re-created, watermarks missing, stale and
/// deleted groups, only transaction markers left, rows in a changed order.
fn random_history(seed: u64, cycles: usize, check: &mut dyn FnMut(&LagReport, i64)) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let tps: Vec<TopicPartition> = (0..6)
        .map(|i| TopicPartition::new(if i < 3 { "a" } else { "b" }, i % 3))
        .collect();
    let groups: Vec<Arc<str>> = (0..4).map(|g| Arc::from(format!("g{g}"))).collect();
    let mut high = vec![100_i64; tps.len()];
    let mut committed = vec![vec![50_i64; tps.len()]; groups.len()];
    let mut at = 1_700_000_000_000_i64;
    for _ in 0..cycles {
        at += 10_000 + rng.below(2_000) as i64;
        for h in &mut high {
            *h = match rng.below(100) {
                0..=2 => rng.below(20) as i64,
                3 => *h + (1 << 40),
                4..=40 => *h,
                _ => *h + rng.below(300) as i64,
            };
        }
        let mut report = LagReport::default();
        for (i, tp) in tps.iter().enumerate() {
            if !rng.chance(5) {
                report.partitions.push(PartitionOffsets {
                    tp: tp.clone(),
                    low: 0,
                    high: high[i],
                    read_at_ms: at,
                });
            }
        }
        let mut order: Vec<usize> = (0..groups.len()).collect();
        if rng.chance(20) {
            order.rotate_left(1 + rng.below(3) as usize);
        }
        for g in order {
            if rng.chance(8) {
                continue;
            }
            report.groups.push(group_lag(&groups[g], rng.chance(10)));
            for (i, tp) in tps.iter().enumerate() {
                let c = &mut committed[g][i];
                *c = match rng.below(100) {
                    0..=3 => (*c - rng.below(100) as i64).max(0),
                    4..=30 => *c,
                    31 => *c + (1 << 40),
                    _ => (*c + rng.below(400) as i64).min(high[i]),
                };
                if rng.chance(5) {
                    continue;
                }
                let markers_only = rng.chance(5);
                let lag = if markers_only {
                    0
                } else {
                    (high[i] - *c).max(0)
                };
                // A row points at its partition in the report: without watermarks, none.
                if let Some(index) = report.partitions.iter().position(|p| p.tp == *tp) {
                    report.group_partitions.push(row(index, *c, lag));
                    if let Some(last) = report.groups.last_mut() {
                        last.rows += 1;
                    }
                }
            }
        }
        check(&report, at);
    }
}

#[test]
fn same_points_and_statuses_as_full_points_on_random_histories() {
    let mut seen = HashSet::new();
    let mut rated = 0;
    for seed in 0..120 {
        let rules = StatusRules {
            points: [2, 3, 4, 7, 21][seed as usize % 5],
            error_lag_seconds: 30.0,
        };
        let mut compact = StatusWindow::new(rules);
        let mut reference = Reference::new(rules);
        let mut cycle = 0;
        random_history(seed, 60, &mut |report, at| {
            cycle += 1;
            let got = compact.observe(report, at);
            let want = reference.observe(report, at);
            seen.extend(want.partitions.iter().map(|p| p.status));
            rated += want
                .groups
                .iter()
                .filter(|g| g.catchup_seconds.is_some_and(f64::is_finite))
                .count();
            assert_eq!(got, want, "seed {seed}, cycle {cycle}");
            assert_eq!(compact.len(), reference.windows.len(), "seed {seed}");
            for ((group, tp), points) in &reference.windows {
                let want: Vec<Point> = points.iter().copied().collect();
                let got = compact.window_of(group, tp);
                assert_eq!(got, want, "seed {seed}, cycle {cycle}, {group} {tp:?}");
            }
        });
    }
    // The histories reach every status and finite estimates, or they prove little.
    assert_eq!(seen.len(), 6, "statuses seen: {seen:?}");
    assert!(rated > 1000, "finite catch-up estimates: {rated}");
}

/// One group partition's values at a cycle, by profile.
fn profile_values(profile: &str, cycle: i64, i: i64) -> (i64, i64) {
    let base = 1_000_000_000 + i * 7;
    match profile {
        // Nothing produced, nothing consumed.
        "idle" => (base, base + 5),
        // 100 records/s at a 30 s poll, consumed as they come.
        "steady 3,000/cycle" => (base + cycle * 3_000, base + cycle * 3_000 + (i % 50)),
        // 10,000 records/s, the consumer a varying few thousand behind.
        "busy 300,000/cycle" => {
            let c = base + cycle * 300_000;
            (c, c + 2_000 + (cycle * 37 + i) % 3_000)
        }
        // Stopped while 100 records/s arrive.
        _ => (base, base + cycle * 3_000),
    }
}

/// The window at 100,000 group partitions (1,000 groups × 100 partitions) and the default
/// 21 points, after 25 cycles: heap bytes by capacity (allocator overhead aside) and the
/// time of an `observe` (in the build profile it runs in). Prints numbers, asserts none;
/// run with
/// `cargo test --lib lag::status::window_tests::memory -- --ignored --nocapture`.
#[test]
#[ignore]
fn memory_at_100k_group_partitions() {
    const GROUPS: usize = 1_000;
    const PER_GROUP: usize = 100;
    let rules = StatusRules {
        points: 21,
        error_lag_seconds: 600.0,
    };
    let tps: Vec<TopicPartition> = (0..PER_GROUP)
        .map(|i| TopicPartition::new(format!("topic-{}", i / 10), (i % 10) as i32))
        .collect();
    let groups: Vec<Arc<str>> = (0..GROUPS)
        .map(|g| Arc::from(format!("group-{g}")))
        .collect();
    let n = GROUPS * PER_GROUP;
    println!(
        "size_of Track {} B, Point {} B",
        std::mem::size_of::<Track>(),
        std::mem::size_of::<Point>()
    );
    for profile in [
        "idle",
        "steady 3,000/cycle",
        "busy 300,000/cycle",
        "stopped",
    ] {
        let mut compact = StatusWindow::new(rules);
        let mut reference = (profile == "steady 3,000/cycle").then(|| Reference::new(rules));
        let (mut compact_time, mut reference_time) = (Duration::ZERO, Duration::ZERO);
        for cycle in 0..25_i64 {
            let mut report = LagReport::default();
            for g in &groups {
                let mut group = group_lag(g, false);
                group.rows = tps.len() as u32;
                report.groups.push(group);
                for i in 0..tps.len() {
                    let (c, h) = profile_values(profile, cycle, i as i64);
                    report.group_partitions.push(row(i, c, h - c));
                }
            }
            // Per-partition watermarks: the highest any group sees (one per partition).
            for (i, tp) in tps.iter().enumerate() {
                let (_, h) = profile_values(profile, cycle, i as i64);
                report.partitions.push(PartitionOffsets {
                    tp: tp.clone(),
                    low: 0,
                    high: h,
                    read_at_ms: 0,
                });
            }
            let at = 1_700_000_000_000 + cycle * 30_000;
            let started = Instant::now();
            compact.observe(&report, at);
            compact_time += started.elapsed();
            if let Some(r) = reference.as_mut() {
                let started = Instant::now();
                r.observe(&report, at);
                reference_time += started.elapsed();
            }
        }
        println!(
            "{profile:>20}: compact {:>6.1} B per group partition ({} group partitions, arena {} B, tracks {} B), observe {:?} per cycle",
            compact.heap_bytes() as f64 / n as f64,
            compact.len(),
            compact.arena.capacity(),
            compact.tracks.capacity() * std::mem::size_of::<Track>(),
            compact_time / 25,
        );
        if let Some(r) = reference {
            println!(
                "{profile:>20}: full points {:>6.1} B per group partition (map {} entries), observe {:?} per cycle",
                r.heap_bytes() as f64 / n as f64,
                r.windows.len(),
                reference_time / 25,
            );
        }
    }
}
