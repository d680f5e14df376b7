//! The JSON document's shape, thresholds and exit statuses.

use super::*;
use crate::config::ExporterConfig;

fn doc() -> Document {
    Document {
        clusters: vec![ClusterView {
            name: "prod".into(),
            error: None,
            complete: true,
            groups: vec![
                GroupView {
                    group: "orders".into(),
                    group_type: "classic".into(),
                    state: "Stable".into(),
                    stale: false,
                    max_lag: Some(15),
                    max_lag_seconds: Some(252.5),
                    partitions: vec![
                        PartitionView {
                            topic: "t".into(),
                            partition: 5,
                            committed: 20,
                            high_watermark: Some(35),
                            lag: 15,
                            lag_seconds: Some(252.5),
                            member_client_id: Some("c-1".into()),
                            member_host: Some("/10.0.0.7".into()),
                        },
                        PartitionView {
                            topic: "t".into(),
                            partition: 1,
                            committed: 9,
                            high_watermark: Some(12),
                            lag: 3,
                            lag_seconds: None,
                            member_client_id: None,
                            member_host: None,
                        },
                    ],
                },
                GroupView {
                    group: "unread".into(),
                    group_type: "consumer".into(),
                    state: "Unknown".into(),
                    stale: false,
                    max_lag: None,
                    max_lag_seconds: None,
                    partitions: vec![],
                },
            ],
        }],
    }
}

#[test]
fn the_json_document_has_the_documented_shape() {
    let text = json(&doc(), false);
    let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let want = serde_json::json!({
        "clusters": [{
            "name": "prod",
            "error": null,
            "complete": true,
            "groups": [
                {
                    "group": "orders",
                    "group_type": "classic",
                    "state": "Stable",
                    "stale": false,
                    "max_lag": 15,
                    "max_lag_seconds": 252.5,
                    "partitions": [
                        {
                            "topic": "t", "partition": 5, "committed": 20,
                            "high_watermark": 35, "lag": 15, "lag_seconds": 252.5,
                            "member_client_id": "c-1", "member_host": "/10.0.0.7"
                        },
                        {
                            "topic": "t", "partition": 1, "committed": 9,
                            "high_watermark": 12, "lag": 3, "lag_seconds": null,
                            "member_client_id": null, "member_host": null
                        }
                    ]
                },
                {
                    "group": "unread", "group_type": "consumer", "state": "Unknown",
                    "stale": false, "max_lag": null, "max_lag_seconds": null, "partitions": []
                }
            ]
        }]
    });
    assert_eq!(value, want);
    // Keys in the documented order, not alphabetical.
    let keys = [
        "\"group\"",
        "\"group_type\"",
        "\"state\"",
        "\"stale\"",
        "\"max_lag\"",
        "\"max_lag_seconds\"",
        "\"partitions\"",
    ];
    let at: Vec<usize> = keys.iter().map(|k| text.find(k).expect("key")).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    // --watch: one document per line.
    let line = json(&doc(), true);
    assert!(!line.contains('\n'));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&line).expect("JSON"),
        want
    );
}

#[test]
fn thresholds_are_strict_and_unknown_time_lag_never_breaches() {
    let d = doc();
    let limits = |s: Option<f64>, n: Option<i64>| Limits {
        max_lag_seconds: s,
        max_lag: n,
    };
    assert_eq!(status(&d, Limits::default()), Status::Ok);
    assert_eq!(status(&d, limits(Some(252.4), None)), Status::Exceeded);
    assert_eq!(status(&d, limits(Some(252.5), None)), Status::Ok);
    assert_eq!(status(&d, limits(None, Some(14))), Status::Exceeded);
    assert_eq!(status(&d, limits(None, Some(15))), Status::Ok);
    // Partition 1 has lag 3 and no time lag: only --max-lag can catch it.
    assert_eq!(breaches(&d, limits(Some(0.0), None)).len(), 1);
    assert_eq!(
        breaches(&d, limits(None, Some(2))),
        [
            "cluster prod group orders t-5: lag 15, time lag 4m12s",
            "cluster prod group orders t-1: lag 3, time lag -"
        ]
    );
}

#[test]
fn an_unreadable_cluster_is_status_3_whatever_the_thresholds() {
    let mut d = doc();
    d.clusters
        .push(ClusterView::failed("down", "refused".into()));
    assert_eq!(status(&d, Limits::default()), Status::Unreadable);
    let over = Limits {
        max_lag: Some(0),
        ..Limits::default()
    };
    assert_eq!(status(&d, over), Status::Unreadable);
    assert_eq!(
        [Status::Ok, Status::Exceeded, Status::Unreadable].map(Status::code),
        [0, 1, 3]
    );
    assert_eq!(USAGE_ERROR, 2);
}

/// A cluster at a port nothing listens on (bound a moment ago, then closed).
fn dead_session() -> Session {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let settings = crate::config::ClusterSettings::new("dead", vec![format!("127.0.0.1:{port}")]);
    Session::new(
        vec![settings],
        &ExporterConfig::default(),
        Duration::from_secs(10),
    )
}

#[tokio::test]
async fn one_read_prints_once_and_says_the_cluster_could_not_be_read() {
    let mut session = dead_session();
    let mut out = Vec::new();
    let (doc, status) = run(
        &mut session,
        &Options::default(),
        &mut out,
        true,
        std::future::pending(),
    )
    .await
    .expect("written");
    assert_eq!(status, Status::Unreadable);
    assert_eq!(doc.clusters.len(), 1);
    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.starts_with("cluster dead: could not be read: "),
        "{text:?}"
    );
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(
        !text.contains('\u{1b}'),
        "no screen clearing without --watch"
    );
}

#[tokio::test]
async fn watch_clears_a_terminal_before_each_read_and_stops_when_told() {
    let options = Options {
        json: true,
        watch: Some(Duration::from_millis(200)),
        ..Options::default()
    };
    for terminal in [true, false] {
        let mut session = dead_session();
        let mut out = Vec::new();
        let stop = tokio::time::sleep(Duration::from_millis(700));
        let (_, status) = run(&mut session, &options, &mut out, terminal, stop)
            .await
            .expect("written");
        assert_eq!(status, Status::Unreadable);
        let text = String::from_utf8(out).expect("utf-8");
        let reads = text.matches("\"clusters\"").count();
        assert!(reads >= 2, "{text}");
        let clears = text.matches("\u{1b}[H\u{1b}[2J").count();
        assert_eq!(clears, if terminal { reads } else { 0 }, "{text:?}");
        // Without a terminal: one JSON document per line.
        if !terminal {
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line).expect("a document per line");
            }
        }
    }
}

#[tokio::test]
async fn stopped_before_any_read_is_unreadable() {
    let mut session = dead_session();
    let mut out = Vec::new();
    let (doc, status) = run(&mut session, &Options::default(), &mut out, false, async {})
        .await
        .expect("written");
    assert_eq!(status, Status::Unreadable);
    assert!(doc.clusters.is_empty() && out.is_empty());
}
