//! From a report to what `tidemark lag` shows: values, members, filter, worst-first order.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;

use super::*;
use crate::kafka::records::{RecordAt, TimestampType};
use crate::kafka::{GroupType, TopicPartition, Watermarks};
use crate::lag::{
    self, ClusterSnapshot, GroupPartition, GroupSnapshot, GroupState, Member, Sample,
};

const NOW: i64 = 1_700_000_100_000;

fn at(ts_age_ms: i64) -> Option<RecordAt> {
    Some(RecordAt {
        offset: 0,
        timestamp_ms: NOW - ts_age_ms,
        timestamp_type: TimestampType::CreateTime,
        verified: true,
    })
}

/// (topic, partition, committed, record age in ms or None)
type Part = (&'static str, i32, i64, Option<i64>);

fn group(name: &str, parts: &[Part]) -> GroupSnapshot {
    GroupSnapshot {
        group: Arc::from(name),
        group_type: GroupType::Classic,
        state: GroupState::Stable,
        offsets_known: true,
        partitions: parts
            .iter()
            .map(|&(t, p, committed, age)| GroupPartition {
                tp: TopicPartition::new(t, p),
                committed,
                member: None,
                sample: age
                    .and_then(at)
                    .map_or(Sample::None, |r| Sample::of(r, committed)),
            })
            .collect(),
    }
}

/// Every partition of `t` 0..4 with high watermark 100 + partition.
fn report(groups: Vec<GroupSnapshot>) -> crate::lag::LagReport {
    let watermarks: BTreeMap<TopicPartition, Watermarks> = ["a", "b"]
        .iter()
        .flat_map(|t| {
            (0..4).map(move |p| {
                (
                    TopicPartition::new(*t, p),
                    Watermarks {
                        low: 0,
                        high: 100 + i64::from(p),
                    },
                )
            })
        })
        .collect();
    let snapshot = ClusterSnapshot {
        cluster: "c".into(),
        watermarks: watermarks.into(),
        groups,
        ..Default::default()
    };
    lag::compute(&snapshot, NOW)
}

fn names(view: &ClusterView) -> Vec<&str> {
    view.groups.iter().map(|g| g.group.as_str()).collect()
}

#[test]
fn values_come_from_the_report_with_the_high_watermark_of_each_partition() {
    let r = report(vec![group(
        "g",
        &[("a", 1, 90, Some(12_345)), ("a", 0, 100, None)],
    )]);
    let view = ClusterView::from_report("c", &r, true, None);
    assert_eq!(view.name, "c");
    assert!(view.complete && view.error.is_none());
    let g = &view.groups[0];
    assert_eq!(
        (g.group.as_str(), g.group_type.as_str(), g.state.as_str()),
        ("g", "classic", "Stable")
    );
    assert_eq!(
        (g.max_lag, g.max_lag_seconds, g.stale),
        (Some(11), Some(12.345), false)
    );
    assert_eq!(
        g.partitions,
        vec![
            PartitionView {
                topic: "a".into(),
                partition: 1,
                committed: 90,
                high_watermark: Some(101),
                lag: 11,
                lag_seconds: Some(12.345),
                member_client_id: None,
                member_host: None,
            },
            PartitionView {
                topic: "a".into(),
                partition: 0,
                committed: 100,
                high_watermark: Some(100),
                lag: 0,
                lag_seconds: Some(0.0),
                member_client_id: None,
                member_host: None,
            },
        ]
    );
}

#[test]
fn members_are_shown_when_known_and_empty_labels_are_unknown() {
    let mut g = group(
        "g",
        &[
            ("a", 0, 90, Some(1_000)),
            ("a", 1, 90, Some(1_000)),
            ("a", 2, 90, Some(1_000)),
        ],
    );
    g.partitions[0].member = Some(Arc::new(Member {
        host: "/10.0.0.7".into(),
        consumer_id: "c-1-uuid".into(),
        client_id: "c-1".into(),
    }));
    // What the test broker reports: a member id, nothing else.
    g.partitions[1].member = Some(Arc::new(Member {
        consumer_id: "m".into(),
        ..Member::default()
    }));
    let view = ClusterView::from_report("c", &report(vec![g]), true, None);
    let members: Vec<(Option<&str>, Option<&str>)> = view.groups[0]
        .partitions
        .iter()
        .map(|p| (p.member_client_id.as_deref(), p.member_host.as_deref()))
        .collect();
    // Sorted by lag: p2 (lag 12), p1 (11), p0 (10).
    assert_eq!(
        members,
        vec![(None, None), (None, None), (Some("c-1"), Some("/10.0.0.7"))]
    );
}

#[test]
fn groups_are_sorted_by_max_time_lag_then_max_lag_then_name() {
    let r = report(vec![
        group("caught-up", &[("a", 0, 100, None)]),
        group("young-but-big", &[("a", 0, 10, Some(5_000))]),
        group("old", &[("a", 0, 99, Some(600_000))]),
        group("same-age-less-lag", &[("b", 0, 50, Some(5_000))]),
        group("no-time-lag", &[("b", 1, 0, None)]),
        group("b-tie", &[("b", 0, 50, Some(5_000))]),
        group("no-partitions", &[]),
    ]);
    let view = ClusterView::from_report("c", &r, true, None);
    assert_eq!(
        names(&view),
        [
            "old",
            "young-but-big",
            "b-tie",
            "same-age-less-lag",
            "no-time-lag",
            "caught-up",
            "no-partitions"
        ]
    );
}

#[test]
fn rows_are_sorted_worst_first_unknown_time_lag_after_known_caught_up_last() {
    let r = report(vec![group(
        "g",
        &[
            ("a", 0, 100, None),        // caught up
            ("a", 1, 1, None),          // lag 100, time lag unknown
            ("a", 2, 100, Some(9_000)), // lag 2, 9 s
            ("b", 3, 90, Some(60_000)), // lag 13, 60 s
            ("b", 2, 90, Some(9_000)),  // lag 12, 9 s
            ("a", 3, 90, Some(60_000)), // lag 13, 60 s: same as b-3, topic breaks the tie
        ],
    )]);
    let view = ClusterView::from_report("c", &r, true, None);
    let order: Vec<(&str, i32)> = view.groups[0]
        .partitions
        .iter()
        .map(|p| (p.topic.as_str(), p.partition))
        .collect();
    assert_eq!(
        order,
        [("a", 3), ("b", 3), ("b", 2), ("a", 2), ("a", 1), ("a", 0)]
    );
}

#[test]
fn the_group_filter_is_an_unanchored_regex_on_the_group_name() {
    let r = report(vec![
        group("orders-consumer", &[("a", 0, 1, Some(1))]),
        group("payments", &[("a", 0, 1, Some(1))]),
        group("pre-orders", &[("a", 0, 1, Some(1))]),
    ]);
    let unanchored = Regex::new("orders").expect("regex");
    let view = ClusterView::from_report("c", &r, true, Some(&unanchored));
    let mut shown = names(&view);
    shown.sort();
    assert_eq!(shown, ["orders-consumer", "pre-orders"]);
    let anchored = Regex::new("^orders").expect("regex");
    assert_eq!(
        names(&ClusterView::from_report("c", &r, true, Some(&anchored))),
        ["orders-consumer"]
    );
}

#[test]
fn a_group_whose_offsets_were_not_read_has_no_lag_and_comes_last() {
    let mut unread = group("unread", &[]);
    unread.offsets_known = false;
    unread.state = GroupState::Empty;
    let r = report(vec![unread, group("caught-up", &[("a", 0, 100, None)])]);
    let view = ClusterView::from_report("c", &r, false, None);
    assert!(!view.complete);
    assert_eq!(names(&view), ["caught-up", "unread"]);
    let g = &view.groups[1];
    assert_eq!(
        (g.max_lag, g.max_lag_seconds, g.state.as_str()),
        (None, None, "Empty")
    );
    assert!(g.partitions.is_empty());
}

#[test]
fn share_groups_are_shown_with_their_type() {
    let mut share = group("sg", &[("a", 0, 97, Some(3_000))]);
    share.group_type = GroupType::Share;
    let view = ClusterView::from_report("c", &report(vec![share]), true, None);
    let g = &view.groups[0];
    assert_eq!((g.group_type.as_str(), g.max_lag), ("share", Some(3)));
    assert_eq!(g.partitions.len(), 1);
}

#[test]
fn a_failed_cluster_has_its_error_and_no_groups() {
    let view = ClusterView::failed("c", "no broker answered".into());
    assert_eq!(view.error.as_deref(), Some("no broker answered"));
    assert!(!view.complete && view.groups.is_empty());
}
