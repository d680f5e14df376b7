//! Duration and member formatting, and the table's layout.

use super::*;
use crate::oneshot::view::{ClusterView, Document, GroupView, PartitionView};

#[test]
fn durations_read_like_people_write_them() {
    let cases: [(Option<f64>, &str); 17] = [
        (None, "-"),
        (Some(f64::NAN), "-"),
        (Some(0.0), "0s"),
        (Some(-3.0), "0s"),
        (Some(0.04), "0.0s"),
        (Some(0.46), "0.4s"),
        (Some(3.25), "3.2s"),
        (Some(9.99), "9.9s"),
        (Some(10.0), "10s"),
        (Some(59.999), "59s"),
        (Some(60.0), "1m00s"),
        (Some(252.9), "4m12s"),
        (Some(3_599.0), "59m59s"),
        (Some(3_600.0), "1h00m00s"),
        (Some(7_392.0), "2h03m12s"),
        (Some(86_400.0), "1d00h00m"),
        (Some(273_900.5), "3d04h05m"),
    ];
    for (seconds, want) in cases {
        assert_eq!(format_seconds(seconds), want, "{seconds:?}");
    }
}

#[test]
fn members_show_client_id_at_host() {
    assert_eq!(
        format_member(Some("c-1"), Some("/10.0.0.7")),
        "c-1@10.0.0.7"
    );
    assert_eq!(format_member(Some("c-1"), Some("host-a")), "c-1@host-a");
    assert_eq!(format_member(Some("c-1"), None), "c-1");
    assert_eq!(format_member(None, Some("/10.0.0.7")), "10.0.0.7");
    assert_eq!(format_member(None, None), "-");
}

fn row(
    topic: &str,
    partition: i32,
    committed: i64,
    high: i64,
    seconds: Option<f64>,
) -> PartitionView {
    PartitionView {
        topic: topic.into(),
        partition,
        committed,
        high_watermark: Some(high),
        lag: high - committed,
        lag_seconds: seconds,
        member_client_id: None,
        member_host: None,
    }
}

fn group(
    name: &str,
    max_lag: Option<i64>,
    seconds: Option<f64>,
    partitions: Vec<PartitionView>,
) -> GroupView {
    GroupView {
        group: name.into(),
        group_type: "classic".into(),
        state: "Stable".into(),
        stale: false,
        max_lag,
        max_lag_seconds: seconds,
        partitions,
    }
}

#[test]
fn a_table_per_group_with_aligned_columns() {
    let mut first = row("orders", 5, 20, 35, Some(252.0));
    first.member_client_id = Some("orders-1".into());
    first.member_host = Some("/10.0.0.7".into());
    let doc = Document {
        clusters: vec![ClusterView {
            name: "prod".into(),
            error: None,
            complete: true,
            groups: vec![
                group(
                    "orders-consumer",
                    Some(15),
                    Some(252.0),
                    vec![
                        first,
                        row("orders-archive", 12, 1_234_567, 1_234_567, Some(0.0)),
                    ],
                ),
                group("idle", Some(0), None, vec![]),
            ],
        }],
    };
    let want = "\
cluster prod: 2 groups

group orders-consumer (classic, Stable): max lag 15, max time lag 4m12s
  TOPIC           PARTITION  COMMITTED  HIGH WATERMARK  LAG  TIME LAG  MEMBER
  orders                  5         20              35   15     4m12s  orders-1@10.0.0.7
  orders-archive         12    1234567         1234567    0        0s  -

group idle (classic, Stable): max lag 0, max time lag -
  no committed offsets on the topics shown
";
    assert_eq!(render(&doc), want);
}

#[test]
fn failed_partial_stale_and_unread_are_said_in_words() {
    let mut stale = group(
        "stale-group",
        Some(3),
        Some(1.5),
        vec![row("t", 0, 7, 10, Some(1.5))],
    );
    stale.stale = true;
    let mut unread = group("unread", None, None, vec![]);
    unread.state = "Empty".into();
    let doc = Document {
        clusters: vec![
            ClusterView::failed("down", "no bootstrap server answered".into()),
            ClusterView {
                name: "partial".into(),
                error: None,
                complete: false,
                groups: vec![stale, unread],
            },
        ],
    };
    let text = render(&doc);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "cluster down: could not be read: no bootstrap server answered"
    );
    assert_eq!(lines[1], "");
    assert!(
        lines[2].starts_with("cluster partial: 2 groups (read in part"),
        "{text}"
    );
    assert!(text.contains("group stale-group (classic, Stable): max lag 3, max time lag 1.5s (stale: some values are from an earlier read)\n"), "{text}");
    assert!(
        text.contains("group unread (classic, Empty): committed offsets could not be read\n"),
        "{text}"
    );
}

#[test]
fn an_unknown_high_watermark_or_time_lag_is_a_dash() {
    let mut r = row("t", 0, 7, 10, None);
    r.high_watermark = None;
    let doc = Document {
        clusters: vec![ClusterView {
            name: "c".into(),
            error: None,
            complete: true,
            groups: vec![group("g", Some(3), None, vec![r])],
        }],
    };
    let text = render(&doc);
    let last = text.lines().last().expect("a row");
    let cells: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(cells, ["t", "0", "7", "-", "3", "-", "-"]);
}
