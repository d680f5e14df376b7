use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;

use super::*;
use crate::kafka::conn::REQUEST_DURATION_BUCKETS;
use crate::lag::{
    self, ClusterSnapshot, GroupPartition, GroupSnapshot, GroupState, Member, Sample,
};
use crate::model::{PartitionWatermarks, TopicPartition, Watermarks};

const NOW: i64 = 1_700_000_100_000;

pub(crate) fn view() -> ClusterView {
    let tp = |p| TopicPartition::new("orders", p);
    let snapshot = ClusterSnapshot {
        cluster: "prod".into(),
        watermarks: PartitionWatermarks::from([
            (tp(0), Watermarks { low: 0, high: 100 }),
            (tp(1), Watermarks { low: 50, high: 80 }),
        ]),
        groups: vec![GroupSnapshot {
            group: Arc::from("billing"),
            group_type: Default::default(),
            state: GroupState::Stable,
            offsets_known: true,
            partitions: vec![
                GroupPartition {
                    tp: tp(0),
                    committed: 90,
                    member: Some(Arc::new(Member {
                        host: "/10.0.0.7".into(),
                        consumer_id: "consumer-1-abc".into(),
                        client_id: "consumer-1".into(),
                    })),
                    sample: Sample::At {
                        timestamp_ms: NOW - 12_500,
                        later: false,
                    },
                },
                GroupPartition {
                    tp: tp(1),
                    committed: 40,
                    member: None,
                    sample: Sample::None,
                },
            ],
        }],
        compacted_topics: BTreeSet::new(),
        poll_time: Duration::from_millis(42),
        carried_watermarks: Default::default(),
    };
    let report = lag::compute(&snapshot, NOW);
    ClusterView {
        name: "prod".into(),
        labels: vec![("env".into(), "production".into())],
        compaction_detected_total: report.compaction_partitions,
        data_loss_total: report.data_loss_partitions,
        report: Some(Arc::new(report)),
        up: true,
        partial: false,
        brokers: vec![(1, true)],
        cycle_duration: Some(Duration::from_millis(250)),
        poll_time: Some(Duration::from_millis(42)),
        cycle_histogram: {
            let mut h = CycleHistogram::default();
            h.observe(Duration::from_millis(250));
            h.observe(Duration::from_millis(40));
            h
        },
        client: ClientStats {
            requests: vec![
                (-1, ApiKey::Metadata, 1, 0),
                (1, ApiKey::ListGroups, 12, 0),
                (1, ApiKey::Fetch, 3, 1),
            ],
            request_durations: vec![(1, ApiKey::ListGroups, list_groups_durations())],
            bytes_received: vec![(-1, 900), (1, 123_456)],
            timestamp_cache_hits: 7,
            timestamp_cache_misses: 2,
            timestamp_samples_fetched: 2,
            timestamp_samples_failed: vec![("corrupt", 1)],
            collection_errors: vec![("committed_partition", 3)],
            timestamp_fetch_bytes: 20_480,
            timestamp_samples_deferred: 5,
            authorization_failures: vec![("topic", "Read", 4)],
        },
        ha: None,
    }
}

/// 12 ListGroups: 3 within 1 ms, 8 within 0.1 s, 1 over 30 s; 40.5 s in all.
fn list_groups_durations() -> RequestDurations {
    let mut d = RequestDurations::default();
    d.counts[0] = 3;
    d.counts[6] = 8;
    d.counts[REQUEST_DURATION_BUCKETS.len()] = 1;
    d.sum_nanos = 40_500_000_000;
    d
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn partition_granularity_exposes_every_family_with_exact_labels() {
    let text = render(&[view()], Granularity::Partition);
    let l = lines(&text);
    let has = |needle: &str| assert!(l.contains(&needle), "missing line {needle:?} in\n{text}");
    has(
        r#"kafka_partition_latest_offset{cluster_name="prod",env="production",topic="orders",partition="0"} 100"#,
    );
    has(
        r#"kafka_partition_earliest_offset{cluster_name="prod",env="production",topic="orders",partition="1"} 50"#,
    );
    let member = r#"cluster_name="prod",env="production",group="billing",topic="orders",partition="0",member_host="/10.0.0.7",consumer_id="consumer-1-abc",client_id="consumer-1""#;
    has(&format!("kafka_consumergroup_group_offset{{{member}}} 90"));
    has(&format!("kafka_consumergroup_group_lag{{{member}}} 10"));
    has(&format!(
        r#"kafka_consumergroup_group_lag_seconds{{{member},compaction_detected="false",data_loss_detected="false"}} 12.5"#
    ));
    has(&format!(
        "kafka_consumergroup_group_lag_retention_ratio{{{member}}} 10"
    ));
    let lost = r#"cluster_name="prod",env="production",group="billing",topic="orders",partition="1",member_host="",consumer_id="",client_id="""#;
    // Data loss: high − committed, the deleted records included.
    has(&format!("kafka_consumergroup_group_lag{{{lost}}} 40"));
    has(&format!(
        "kafka_consumergroup_group_messages_lost{{{lost}}} 10"
    ));
    has(&format!(
        "kafka_consumergroup_group_retention_margin{{{lost}}} -10"
    ));
    // No sample under data loss: no time lag (0 would read as caught up).
    assert!(!text.contains(&format!("kafka_consumergroup_group_lag_seconds{{{lost}")));
    has(
        r#"kafka_consumergroup_group_max_lag{cluster_name="prod",env="production",group="billing"} 40"#,
    );
    has(
        r#"kafka_consumergroup_group_max_lag_seconds{cluster_name="prod",env="production",group="billing"} 12.5"#,
    );
    has(
        r#"kafka_consumergroup_group_sum_lag{cluster_name="prod",env="production",group="billing"} 50"#,
    );
    has(
        r#"kafka_consumergroup_group_topic_sum_lag{cluster_name="prod",env="production",group="billing",topic="orders"} 50"#,
    );
    has(r#"tidemark_consumergroup_stale{cluster_name="prod",env="production",group="billing"} 0"#);
    has(r#"tidemark_cluster_partial{cluster_name="prod",env="production"} 0"#);
    has(r#"tidemark_broker_up{cluster_name="prod",env="production",broker="1"} 1"#);
    has(
        r#"tidemark_timestamp_samples_failed_total{cluster_name="prod",env="production",reason="corrupt"} 1"#,
    );
    has(
        r#"tidemark_collection_errors_total{cluster_name="prod",env="production",item="committed_partition"} 3"#,
    );
    has(
        r#"tidemark_authorization_failures_total{cluster_name="prod",env="production",resource_type="topic",operation="Read"} 4"#,
    );
    has(
        r#"kafka_consumergroup_group_state{cluster_name="prod",env="production",group="billing",group_type="classic"} 3"#,
    );
    has(r#"kafka_consumergroup_poll_time_ms{cluster_name="prod",env="production"} 42"#);
    has(r#"tidemark_poll_time_seconds{cluster_name="prod",env="production"} 0.042"#);
    has(r#"kafka_lag_exporter_scrape_duration_seconds{cluster_name="prod",env="production"} 0.25"#);
    has(r#"kafka_lag_exporter_data_loss_partitions_total{cluster_name="prod",env="production"} 1"#);
    has(r#"kafka_lag_exporter_compaction_detected_total{cluster_name="prod",env="production"} 0"#);
    has("# TYPE kafka_lag_exporter_data_loss_partitions counter");
    has("kafka_lag_exporter_up 1");
    assert_eq!(l.last(), Some(&"# EOF"));
}

#[test]
fn topic_granularity_drops_group_partition_families() {
    let text = render(&[view()], Granularity::Topic);
    for family in [
        "kafka_consumergroup_group_offset",
        "kafka_consumergroup_group_lag{",
        "kafka_consumergroup_group_lag_seconds",
        "kafka_consumergroup_group_messages_lost",
        "kafka_consumergroup_group_retention_margin",
        "kafka_consumergroup_group_lag_retention_ratio",
    ] {
        assert!(
            !text.contains(family),
            "{family} present at topic granularity"
        );
    }
    assert!(text.contains("kafka_consumergroup_group_max_lag{"));
    assert!(text.contains("kafka_consumergroup_group_topic_sum_lag{"));
    assert!(text.contains("kafka_partition_latest_offset{"));
}

#[test]
fn a_down_cluster_keeps_its_last_report_and_turns_up_off() {
    let mut down = view();
    down.name = "dr".into();
    down.up = false;
    let text = render(&[view(), down], Granularity::Partition);
    assert!(
        text.contains(r#"tidemark_cluster_up{cluster_name="dr",env="production"} 0"#),
        "{text}"
    );
    assert!(text.contains(r#"tidemark_cluster_up{cluster_name="prod",env="production"} 1"#));
    assert!(text.contains("kafka_lag_exporter_up 0"));
    assert!(text.contains(r#"kafka_partition_latest_offset{cluster_name="dr","#));
    // Each family is described once, whatever the number of clusters.
    assert_eq!(
        text.matches("# TYPE kafka_partition_latest_offset gauge")
            .count(),
        1
    );
}

#[test]
fn no_cluster_yet_means_not_up_and_no_series() {
    let text = render(&[], Granularity::Partition);
    assert!(text.contains("kafka_lag_exporter_up 0"));
    assert!(!text.contains("cluster_name="));
}

/// Writes a sample exposition for `promtool check metrics` (run by the integration tests).
#[test]
fn sample_exposition_is_written_for_promtool() {
    let text = to_prometheus_text(&render(&[view()], Granularity::Partition));
    let path = std::env::temp_dir().join("tidemark-sample-metrics.txt");
    std::fs::write(&path, text).unwrap();
}

#[test]
fn prometheus_text_names_counters_with_total_and_drops_eof() {
    let text = to_prometheus_text(&render(&[view()], Granularity::Partition));
    assert!(text.contains("# TYPE kafka_lag_exporter_data_loss_partitions_total counter\n"));
    assert!(text.contains("# HELP kafka_lag_exporter_data_loss_partitions_total Group partitions"));
    assert!(text.contains("# TYPE kafka_partition_latest_offset gauge\n"));
    assert!(!text.contains("# EOF"));
    assert!(text.ends_with('\n'));
    // Samples are untouched.
    let om = render(&[view()], Granularity::Partition);
    let samples = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(samples(&om), samples(&text));
}

#[test]
fn operational_counters_and_the_cycle_histogram_are_exposed() {
    let text = to_prometheus_text(&render(&[view()], Granularity::Topic));
    let l = lines(&text);
    let has = |needle: &str| assert!(l.contains(&needle), "missing line {needle:?} in\n{text}");
    let c = r#"cluster_name="prod",env="production""#;
    has("# TYPE tidemark_kafka_requests_total counter");
    has(&format!(
        r#"tidemark_kafka_requests_total{{{c},broker="1",api="ListGroups"}} 12"#
    ));
    has(&format!(
        r#"tidemark_kafka_requests_total{{{c},broker="bootstrap",api="Metadata"}} 1"#
    ));
    has(&format!(
        r#"tidemark_kafka_request_errors_total{{{c},broker="1",api="Fetch"}} 1"#
    ));
    has(&format!(
        r#"tidemark_kafka_response_bytes_total{{{c},broker="1"}} 123456"#
    ));
    has(&format!("tidemark_timestamp_cache_hits_total{{{c}}} 7"));
    has(&format!("tidemark_timestamp_cache_misses_total{{{c}}} 2"));
    has(&format!(
        "tidemark_timestamp_samples_fetched_total{{{c}}} 2"
    ));
    has(&format!(
        "tidemark_timestamp_fetch_bytes_total{{{c}}} 20480"
    ));
    has(&format!(
        "tidemark_timestamp_samples_deferred_total{{{c}}} 5"
    ));
    has("# TYPE tidemark_cycle_duration_seconds histogram");
    has(&format!("tidemark_cycle_duration_seconds_count{{{c}}} 2"));
    has(&format!("tidemark_cycle_duration_seconds_sum{{{c}}} 0.29"));
    has(&format!(
        r#"tidemark_cycle_duration_seconds_bucket{{le="0.025",{c}}} 0"#
    ));
    has(&format!(
        r#"tidemark_cycle_duration_seconds_bucket{{le="0.05",{c}}} 1"#
    ));
    has(&format!(
        r#"tidemark_cycle_duration_seconds_bucket{{le="0.25",{c}}} 2"#
    ));
    has(&format!(
        r#"tidemark_cycle_duration_seconds_bucket{{le="+Inf",{c}}} 2"#
    ));
}

/// A view of a few thousand series with labels that need escaping: several stored chunks.
pub(crate) fn large_view() -> ClusterView {
    let mut v = view();
    let base = v.report.as_deref().cloned().unwrap_or_default();
    // 40 groups with every 40th of 6,000 rows, each row on a partition of its own.
    let mut partitions = Vec::new();
    let mut group_partitions = Vec::new();
    let mut groups = Vec::new();
    for g in 0..40 {
        let mut group = base.groups[0].clone();
        group.group = Arc::from(format!("group \"{g}\"\\λ"));
        group.rows = 0;
        for i in (g..6000).step_by(40) {
            let index = partitions.len() as u32;
            let mut offsets = base.partitions[i % base.partitions.len()].clone();
            offsets.tp = TopicPartition::new(format!("topic-{}", i % 17), i as i32);
            partitions.push(offsets);
            let mut row = base.group_partitions[i % base.group_partitions.len()].moved_to(index);
            row.committed += i as i64 * 104_729;
            row.set_lag_seconds(row.lag_seconds().map(|s| s * i as f64 / 7.0));
            row.high += i as i64 % 11;
            group_partitions.push(row);
            group.rows += 1;
        }
        groups.push(group);
    }
    let report = lag::LagReport {
        partitions,
        group_partitions,
        groups,
        ..base
    };
    v.report = Some(Arc::new(report));
    v
}

#[test]
fn the_compressed_exposition_holds_the_text_rendered_uncompressed() {
    use std::io::Read;
    let mut down = view();
    down.name = "dr".into();
    down.up = false;
    let cases = [vec![], vec![view()], vec![large_view(), down]];
    for views in &cases {
        for granularity in [Granularity::Partition, Granularity::Topic] {
            let openmetrics = render(views, granularity);
            let prometheus = to_prometheus_text(&openmetrics);
            let c =
                Arc::new(render_compressed(views, &[], granularity, GZIP_LEVEL).expect("rendered"));
            for (format, want) in [
                (Format::OpenMetrics, &openmetrics),
                (Format::Prometheus, &prometheus),
            ] {
                let text = c.to_text(format).expect("inflated");
                assert!(
                    text == want.as_bytes(),
                    "{format:?} {granularity:?}: inflated text differs"
                );
                let gz: Vec<u8> = c.gzip(format).flat_map(|b| b.to_vec()).collect();
                assert_eq!(gz.len(), c.gzip_len(format));
                let mut unzipped = Vec::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_end(&mut unzipped)
                    .expect("one valid gzip member");
                assert!(
                    unzipped == want.as_bytes(),
                    "{format:?} {granularity:?}: gzip body differs"
                );
            }
            let samples = openmetrics
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .count();
            assert_eq!(c.series(), samples);
        }
    }
    // The large view is mostly one shared deflate stream.
    let c =
        render_compressed(&cases[2], &[], Granularity::Partition, GZIP_LEVEL).expect("rendered");
    assert!(
        c.gzip_len(Format::Prometheus) * 8 < c.prometheus_len(),
        "{c:?}"
    );
}

#[test]
fn request_durations_are_a_cumulative_histogram_per_broker_and_api() {
    let text = to_prometheus_text(&render(&[view()], Granularity::Topic));
    let l = lines(&text);
    let has = |needle: &str| assert!(l.contains(&needle), "missing line {needle:?} in\n{text}");
    let name = "tidemark_kafka_request_duration_seconds";
    let series = r#"cluster_name="prod",env="production",broker="1",api="ListGroups""#;
    has(&format!("# TYPE {name} histogram"));
    has(&format!("{name}_count{{{series}}} 12"));
    has(&format!("{name}_sum{{{series}}} 40.5"));
    // Every bound in order, each counting the requests at or below it, +Inf last.
    let buckets: Vec<(String, u64)> = l
        .iter()
        .filter_map(|line| line.strip_prefix(&format!("{name}_bucket{{le=\"")))
        .filter_map(|rest| rest.split_once(&format!("\",{series}}} ")))
        .map(|(le, n)| (le.to_string(), n.parse().unwrap()))
        .collect();
    let bounds: Vec<f64> = buckets
        .iter()
        .map(|(le, _)| match le.as_str() {
            "+Inf" => f64::INFINITY,
            n => n.parse().unwrap(),
        })
        .collect();
    let mut want = REQUEST_DURATION_BUCKETS.to_vec();
    want.push(f64::INFINITY);
    assert_eq!(bounds, want, "{text}");
    let cumulative: Vec<u64> = buckets.iter().map(|(_, n)| *n).collect();
    let mut expected = vec![3; 6];
    expected.extend([11; 8]);
    expected.push(12);
    assert_eq!(cumulative, expected);
    // Only APIs that were used have series: ListGroups, not Fetch (its durations were
    // not given) nor anything never sent.
    let apis: BTreeSet<&str> = l
        .iter()
        .filter(|line| line.starts_with(&format!("{name}_count{{")))
        .filter_map(|line| line.split("api=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(apis, BTreeSet::from(["ListGroups"]));
}

/// `lag_series` counts what a render writes for a report: the difference between a view
/// with the report and one with an empty report, at both granularities, with rows without
/// time lag, a group whose offsets are unknown, and share groups.
#[test]
fn lag_series_counts_what_the_render_writes() {
    let mut v = view();
    let mut report = v.report.as_deref().cloned().unwrap_or_default();
    let mut unknown = report.groups[0].clone();
    unknown.group = Arc::from("unknown-offsets");
    unknown.offsets_known = false;
    report.groups.push(unknown);
    let mut share = report.groups[0].clone();
    share.group = Arc::from("share");
    share.group_type = crate::model::GroupType::Share;
    report.share_groups.push(share.clone());
    share.group = Arc::from("share-unknown");
    share.offsets_known = false;
    report.share_groups.push(share);
    report.share_group_partitions = report.group_partitions.clone();
    assert!(report
        .group_partitions
        .iter()
        .any(|r| r.lag_seconds().is_none()));
    let report = Arc::new(report);
    for granularity in [Granularity::Partition, Granularity::Topic] {
        let series = |v: &ClusterView| {
            render_compressed(std::slice::from_ref(v), &[], granularity, GZIP_LEVEL)
                .expect("rendered")
                .series()
        };
        v.report = Some(report.clone());
        let with = series(&v);
        v.report = Some(Arc::default());
        let empty = series(&v);
        assert_eq!(
            lag_series(&report, granularity),
            with - empty,
            "{granularity:?}"
        );
    }
}
