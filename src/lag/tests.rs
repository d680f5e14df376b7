use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::model::{PartitionWatermarks, RecordAt, TimestampType, TopicPartition, Watermarks};

const NOW: i64 = 1_700_000_100_000;

fn tp(topic: &str, p: i32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

fn at(offset: i64, ts: i64) -> Option<RecordAt> {
    Some(RecordAt {
        offset,
        timestamp_ms: ts,
        timestamp_type: TimestampType::CreateTime,
        verified: true,
    })
}

fn snapshot(
    watermarks: &[(&str, i32, i64, i64)],
    groups: Vec<(&str, GroupState, Vec<GroupPartition>)>,
) -> ClusterSnapshot {
    ClusterSnapshot {
        cluster: "c1".into(),
        watermarks: watermarks
            .iter()
            .map(|(t, p, low, high)| {
                (
                    tp(t, *p),
                    Watermarks {
                        low: *low,
                        high: *high,
                    },
                )
            })
            .collect::<PartitionWatermarks>(),
        groups: groups
            .into_iter()
            .map(|(g, state, partitions)| GroupSnapshot {
                group: Arc::from(g),
                group_type: Default::default(),
                state,
                offsets_known: true,
                partitions,
            })
            .collect(),
        compacted_topics: BTreeSet::new(),
        poll_time: std::time::Duration::from_millis(5),
        carried_watermarks: Default::default(),
    }
}

fn gp(t: &str, p: i32, committed: i64, record: Option<RecordAt>) -> GroupPartition {
    GroupPartition {
        tp: tp(t, p),
        committed,
        member: None,
        sample: record.map_or(Sample::None, |r| Sample::of(r, committed)),
    }
}

#[test]
fn offset_and_time_lag_per_partition() {
    let s = snapshot(
        &[("t", 0, 0, 100), ("t", 1, 0, 200), ("u", 0, 0, 50)],
        vec![(
            "g",
            GroupState::Stable,
            vec![
                gp("t", 0, 90, at(90, NOW - 100_000)),
                gp("t", 1, 150, at(150, NOW - 2_500)),
                gp("u", 0, 50, None),
            ],
        )],
    );
    let r = compute(&s, NOW);
    let rows: Vec<(i64, Option<f64>)> = r
        .group_partitions
        .iter()
        .map(|x| (x.lag(), x.lag_seconds()))
        .collect();
    assert_eq!(
        rows,
        vec![(10, Some(100.0)), (50, Some(2.5)), (0, Some(0.0))]
    );
    let g = &r.groups[0];
    assert_eq!((g.max_lag, g.sum_lag), (50, 60));
    assert_eq!(g.max_lag_seconds, Some(100.0));
    assert_eq!(g.state.code(), 3);
    let t = g.topics[&Arc::<str>::from("t")];
    assert_eq!(
        (t.sum_lag, t.max_lag, t.max_lag_seconds),
        (60, 50, Some(100.0))
    );
    assert_eq!(g.topics[&Arc::<str>::from("u")].sum_lag, 0);
    assert_eq!(r.partitions.len(), 3);
}

#[test]
fn lag_seconds_absent_without_a_sample_and_never_negative() {
    let s = snapshot(
        &[("t", 0, 0, 10), ("t", 1, 0, 10)],
        vec![(
            "g",
            GroupState::Empty,
            vec![gp("t", 0, 5, None), gp("t", 1, 5, at(5, NOW + 3_000))],
        )],
    );
    let r = compute(&s, NOW);
    assert_eq!(r.group_partitions[0].lag_seconds(), None);
    // A producer clock ahead of ours gives 0, not a negative age.
    assert_eq!(r.group_partitions[1].lag_seconds(), Some(0.0));
    assert_eq!(r.groups[0].max_lag_seconds, Some(0.0));
}

#[test]
fn group_without_any_time_lag_has_no_max_lag_seconds() {
    let s = snapshot(
        &[("t", 0, 0, 10)],
        vec![("g", GroupState::Stable, vec![gp("t", 0, 5, None)])],
    );
    assert_eq!(compute(&s, NOW).groups[0].max_lag_seconds, None);
}

#[test]
fn data_loss_keeps_the_full_lag_and_reports_the_gap() {
    // Retention moved the low watermark to 100; the group is still at 40.
    let s = snapshot(
        &[("t", 0, 100, 500)],
        vec![(
            "g",
            GroupState::Stable,
            vec![gp("t", 0, 40, at(100, NOW - 7_000))],
        )],
    );
    let r = compute(&s, NOW);
    let row = &r.group_partitions[0];
    assert!(row.data_loss());
    // high − committed: the 60 deleted records still count (klag-exporter's rule).
    assert_eq!(row.lag(), 460);
    assert_eq!(row.messages_lost(), 60);
    assert_eq!(row.retention_margin(), -60);
    assert_eq!(row.retention_ratio(), 460.0 / 400.0 * 100.0);
    assert_eq!(
        row.lag_seconds(),
        Some(7.0),
        "age of the first record still there"
    );
    assert_eq!(r.data_loss_partitions, 1);
    assert_eq!((r.groups[0].max_lag, r.groups[0].sum_lag), (460, 460));
    // Without a sample there is no time lag: 0 s would read as "caught up".
    let s = snapshot(
        &[("t", 0, 100, 500)],
        vec![("g", GroupState::Stable, vec![gp("t", 0, 40, None)])],
    );
    let r = compute(&s, NOW);
    assert_eq!(r.group_partitions[0].lag_seconds(), None);
    assert_eq!(r.group_partitions[0].lag(), 460);
}

#[test]
fn only_transaction_markers_left_is_caught_up() {
    // Committed at the last commit marker's offset (9), high watermark 10.
    let mut caught_up = gp("t", 0, 9, None);
    caught_up.sample = Sample::MarkersOnly;
    let s = snapshot(
        &[("t", 0, 0, 10)],
        vec![
            ("a", GroupState::Empty, vec![caught_up]),
            (
                "b",
                GroupState::Empty,
                vec![gp("t", 0, 4, at(4, NOW - 3_000))],
            ),
        ],
    );
    let r = compute(&s, NOW);
    let a = &r.group_partitions[0];
    assert_eq!((a.lag(), a.lag_seconds()), (0, Some(0.0)));
    assert!(!a.data_loss() && !a.compaction_detected);
    let b = &r.group_partitions[1];
    assert_eq!((b.lag(), b.lag_seconds()), (6, Some(3.0)));
    assert_eq!(r.groups[0].max_lag_seconds, Some(0.0));
}

#[test]
fn retention_ratio_and_margin() {
    // The README example: offsets 1000..2000, group at 1200 → 80 %.
    let s = snapshot(
        &[("t", 0, 1000, 2000)],
        vec![(
            "g",
            GroupState::Stable,
            vec![gp("t", 0, 1200, at(1200, NOW))],
        )],
    );
    let row = &compute(&s, NOW).group_partitions[0];
    assert_eq!(row.retention_ratio(), 80.0);
    assert_eq!(row.retention_margin(), 200);
    assert_eq!(row.messages_lost(), 0);
    assert!(!row.data_loss());
    // Empty partition: ratio 0.
    let s = snapshot(
        &[("t", 0, 7, 7)],
        vec![("g", GroupState::Stable, vec![gp("t", 0, 7, None)])],
    );
    assert_eq!(compute(&s, NOW).group_partitions[0].retention_ratio(), 0.0);
}

#[test]
fn committed_beyond_high_watermark_is_zero_lag() {
    let s = snapshot(
        &[("t", 0, 0, 10)],
        vec![("g", GroupState::Stable, vec![gp("t", 0, 12, None)])],
    );
    let row = &compute(&s, NOW).group_partitions[0];
    assert_eq!((row.lag(), row.lag_seconds()), (0, Some(0.0)));
}

#[test]
fn compaction_flag_follows_the_topic_policy() {
    let mut s = snapshot(
        &[("compacted", 0, 0, 10), ("plain", 0, 0, 10)],
        vec![(
            "g",
            GroupState::Stable,
            vec![
                gp("compacted", 0, 3, at(5, NOW - 1_000)),
                gp("plain", 0, 3, at(3, NOW - 1_000)),
            ],
        )],
    );
    s.compacted_topics.insert(Arc::from("compacted"));
    let r = compute(&s, NOW);
    // Offset 3 was compacted away: record 5 answered.
    assert!(r.group_partitions[0].compaction_detected);
    assert!(
        !r.group_partitions[1].compaction_detected,
        "not a compacted topic"
    );
    assert_eq!(r.compaction_partitions, 1);
    // On a compacted topic whose committed record still exists, nothing is flagged.
    let s = snapshot(
        &[("compacted", 0, 0, 10), ("compacted", 1, 0, 10)],
        vec![(
            "g",
            GroupState::Stable,
            vec![
                gp("compacted", 0, 3, at(3, NOW)),
                gp("compacted", 1, 10, None),
            ],
        )],
    );
    let mut s = s;
    s.compacted_topics.insert(Arc::from("compacted"));
    let r = compute(&s, NOW);
    assert!(r.group_partitions.iter().all(|p| !p.compaction_detected));
    assert_eq!(r.compaction_partitions, 0);
}

#[test]
fn partitions_missing_from_watermarks_are_skipped() {
    let s = snapshot(
        &[("t", 0, 0, 10)],
        vec![(
            "g",
            GroupState::Stable,
            vec![gp("gone", 0, 3, None), gp("t", 0, 4, None)],
        )],
    );
    let r = compute(&s, NOW);
    assert_eq!(r.group_partitions.len(), 1);
    assert_eq!(r.groups[0].sum_lag, 6);
}

#[test]
fn group_states_parse() {
    for (text, code) in [
        ("Unknown", 0),
        ("PreparingRebalance", 1),
        ("CompletingRebalance", 2),
        ("Stable", 3),
        ("Dead", 4),
        ("Empty", 5),
        ("Assigning", 6),
        ("Reconciling", 7),
        ("", 0),
        ("Whatever", 0),
    ] {
        assert_eq!(GroupState::parse(text).code(), code, "{text}");
    }
}

#[test]
fn a_group_without_offsets_keeps_its_state_but_no_aggregates() {
    let mut s = snapshot(&[("t", 0, 0, 10)], vec![("g", GroupState::Stable, vec![])]);
    s.groups[0].offsets_known = false;
    let r = compute(&s, NOW);
    assert!(!r.groups[0].offsets_known);
    assert_eq!(r.groups[0].state, GroupState::Stable);
}

#[test]
fn without_rows_the_aggregates_and_counts_are_the_same() {
    let s = snapshot(
        &[("t", 0, 100, 500), ("t", 1, 0, 50), ("u", 0, 0, 10)],
        vec![
            (
                "g",
                GroupState::Stable,
                vec![
                    gp("t", 0, 40, at(100, NOW - 7_000)),
                    gp("t", 1, 20, at(20, NOW - 3_000)),
                    gp("u", 0, 10, None),
                ],
            ),
            ("h", GroupState::Empty, vec![gp("t", 1, 45, None)]),
        ],
    );
    let full = compute(&s, NOW);
    let lean = compute_for(s.clone(), NOW, false, None);
    assert!(lean.group_partitions.is_empty());
    assert_eq!(full.group_partitions.len(), 4);
    let mut dropped = full.clone();
    dropped.drop_rows();
    assert_eq!(lean.groups, dropped.groups, "the same, with no rows");
    assert_eq!(lean.rows().count(), 0);
    assert_eq!(lean.partitions, full.partitions);
    assert_eq!(
        (lean.data_loss_partitions, lean.compaction_partitions),
        (full.data_loss_partitions, full.compaction_partitions)
    );
    assert_eq!(lean.data_loss_partitions, 1);
}

#[test]
fn carried_rows_point_at_their_partitions_in_the_new_report() {
    let first = compute(
        &snapshot(
            &[("t", 0, 0, 10), ("t", 1, 0, 20), ("x", 0, 0, 5)],
            vec![(
                "a",
                GroupState::Stable,
                vec![
                    gp("t", 0, 4, at(4, NOW - 2_000)),
                    gp("t", 1, 15, at(15, NOW - 1_000)),
                    gp("x", 0, 1, at(1, NOW - 3_000)),
                ],
            )],
        ),
        NOW,
    );
    // Next cycle: a new topic sorts first (every index moves), `x` was deleted, and `a`
    // could not be read.
    let mut next = snapshot(
        &[("s", 0, 0, 1), ("t", 0, 0, 12), ("t", 1, 0, 22)],
        vec![("a", GroupState::Unknown, vec![])],
    );
    next.groups[0].offsets_known = false;
    let carry = Carry {
        previous: &first,
        oldest_ms: NOW,
    };
    let r = compute_for(next, NOW + 5_000, true, Some(carry));
    let rows: Vec<_> = r
        .rows()
        .map(|row| {
            (
                row.tp.to_string(),
                row.committed,
                row.lag(),
                row.lag_seconds(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("t/0".to_string(), 4, 6, Some(2.0)),
            ("t/1".to_string(), 15, 5, Some(1.0)),
        ],
        "the last values, on the same partitions; none for the deleted topic"
    );
    assert_eq!(r.groups[0].rows, 2);
    assert!(r.groups[0].stale);
}

#[test]
fn unread_groups_carry_their_last_values_until_the_threshold() {
    let first = compute(
        &snapshot(
            &[("t", 0, 0, 10)],
            vec![
                (
                    "a",
                    GroupState::Stable,
                    vec![gp("t", 0, 4, at(4, NOW - 2_000))],
                ),
                (
                    "b",
                    GroupState::Stable,
                    vec![gp("t", 0, 7, at(7, NOW - 1_000))],
                ),
            ],
        ),
        NOW,
    );
    // Next cycle: `a` could not be read, `b` moved on.
    let mut next = snapshot(
        &[("t", 0, 0, 12)],
        vec![
            ("a", GroupState::Unknown, vec![]),
            ("b", GroupState::Stable, vec![gp("t", 0, 12, None)]),
        ],
    );
    next.groups[0].offsets_known = false;
    let later = NOW + 5_000;
    let carry = Carry {
        previous: &first,
        oldest_ms: NOW,
    };
    let r = compute_for(next.clone(), later, true, Some(carry));
    assert_eq!(r.stale_groups, 1);
    let a = &r.groups[0];
    assert!(a.stale && a.offsets_known);
    assert_eq!(
        (a.max_lag, a.read_at_ms, a.state),
        (6, NOW, GroupState::Stable)
    );
    assert_eq!(
        a.max_lag_seconds,
        Some(2.0),
        "the values of the cycle that read them"
    );
    let rows: Vec<_> = r.rows().map(|p| (&**p.group_name(), p.lag())).collect();
    assert_eq!(rows, [("a", 6), ("b", 0)]);
    assert!(!r.groups[1].stale);
    // Past the threshold: nothing carried, the group shows only its state.
    let carry = Carry {
        previous: &first,
        oldest_ms: NOW + 1,
    };
    let r = compute_for(next.clone(), later, true, Some(carry));
    assert_eq!(r.stale_groups, 0);
    assert!(!r.groups[0].offsets_known && !r.groups[0].stale);
    assert_eq!(r.group_partitions.len(), 1);
}

#[test]
fn rows_on_partitions_with_carried_watermarks_are_carried_whole() {
    let first = compute(
        &snapshot(
            &[("t", 0, 0, 10), ("t", 1, 0, 10)],
            vec![(
                "g",
                GroupState::Stable,
                vec![gp("t", 0, 4, at(4, NOW - 2_000)), gp("t", 1, 5, None)],
            )],
        ),
        NOW,
    );
    // t/1's leader is down: its watermarks are the old ones, while the group committed 9
    // there. 10 − 9 = 1 would understate the lag the last cycle saw; the row is carried.
    let mut next = snapshot(
        &[("t", 0, 0, 12), ("t", 1, 0, 10)],
        vec![(
            "g",
            GroupState::Stable,
            vec![gp("t", 0, 12, None), gp("t", 1, 9, None)],
        )],
    );
    next.carried_watermarks.insert(tp("t", 1), NOW);
    let carry = Carry {
        previous: &first,
        oldest_ms: NOW,
    };
    let r = compute_for(next.clone(), NOW + 1_000, true, Some(carry));
    let rows: Vec<_> = r
        .rows()
        .map(|p| (p.tp.partition, p.committed, p.lag()))
        .collect();
    assert_eq!(rows, [(0, 12, 0), (1, 5, 5)]);
    assert!(r.groups[0].stale);
    assert_eq!((r.groups[0].max_lag, r.groups[0].sum_lag), (5, 5));
    assert_eq!((r.stale_groups, r.stale_partitions), (1, 1));
}

#[test]
fn share_groups_are_reported_apart_and_carried_like_any_group() {
    let mut s = snapshot(
        &[("t", 0, 0, 100)],
        vec![
            (
                "classic",
                GroupState::Stable,
                vec![gp("t", 0, 90, at(90, NOW - 4_000))],
            ),
            (
                "shared",
                GroupState::Stable,
                vec![gp("t", 0, 40, at(40, NOW - 9_000))],
            ),
            ("after", GroupState::Empty, vec![gp("t", 0, 100, None)]),
        ],
    );
    s.groups[1].group_type = crate::model::GroupType::Share;
    let r = compute(&s, NOW);
    let names = |gs: &[GroupLag]| gs.iter().map(|g| g.group.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&r.groups), ["classic", "after"]);
    assert_eq!(names(&r.share_groups), ["shared"]);
    assert_eq!(r.share_group_partitions.len(), 1);
    assert_eq!(r.share_group_partitions[0].lag(), 60);
    assert_eq!(r.share_group_partitions[0].lag_seconds(), Some(9.0));
    assert!(r.rows().all(|row| &**row.group_name() != "shared"));
    assert!(r.share_rows().all(|row| &**row.group_name() == "shared"));
    assert_eq!(r.group_type_counts().get("share"), Some(&1));

    // Offsets unknown next cycle: the share group carries its last values, still apart.
    s.groups[1].offsets_known = false;
    s.groups[1].partitions.clear();
    let carry = Carry {
        previous: &r,
        oldest_ms: NOW - 60_000,
    };
    let next = compute_for(s.clone(), NOW + 1_000, true, Some(carry));
    assert_eq!(names(&next.share_groups), ["shared"]);
    assert!(next.share_groups[0].stale);
    assert_eq!(next.share_groups[0].max_lag, 60);
    assert_eq!(next.share_group_partitions.len(), 1);
    assert_eq!(names(&next.groups), ["classic", "after"]);
}

#[test]
fn a_group_partition_row_stays_small() {
    // One per group partition, held twice while the next report is computed: at 100,000
    // group partitions every 8 bytes are 1.6 MB of the cycle's peak.
    assert!(std::mem::size_of::<GroupPartitionLag>() <= 48);
}

#[test]
fn a_snapshot_row_stays_small() {
    // One per group partition, held through the watermarks phase (the cycle's peak): at
    // 100,000 group partitions every 8 bytes are 0.8 MB of it.
    assert!(std::mem::size_of::<GroupPartition>() <= 56);
    assert!(std::mem::size_of::<Sample>() <= 16);
}
