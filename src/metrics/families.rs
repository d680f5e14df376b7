//! Encoding of every family with prometheus-client, straight from the reports (no
//! intermediate metric objects). `render` writes the per-partition and per-group-partition
//! families with `direct` instead; their encoding here is the reference it is tested against.
//!
//! Values that are integers are encoded as `i64` gauges; the float ones are rewritten into
//! the exposition's number format on the way out (`text::Normalized`).

use std::borrow::Cow;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::{ClientStats, ClusterView, CYCLE_BUCKETS};
use crate::config::Granularity;
use crate::lag::{GroupLag, GroupPartitionLag, LagReport, PartitionOffsets, Row, TopicLag};

type Labels<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// Which families an [`Exposition`] encodes, in the exposition's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// Every family (the reference the tests compare `render` with).
    All,
    /// The families after `direct`'s and before the first counter: group aggregates and
    /// per-cluster gauges. Both text formats write them alike.
    Gauges,
    /// The counter families and what follows them: the part whose `# HELP` / `# TYPE`
    /// lines differ between Prometheus text and OpenMetrics.
    Tail,
}

#[derive(Debug)]
pub(super) struct Exposition {
    pub clusters: Vec<ClusterView>,
    /// Every cluster with coordination (served or not), for the `tidemark_ha_*` families.
    pub ha: Vec<ClusterView>,
    /// The push exporters' counters (`exports.rs`), after every other family.
    pub exports: Vec<super::ExportCounters>,
    pub granularity: Granularity,
    pub part: Part,
}

pub(super) fn base(c: &ClusterView) -> Labels<'_> {
    let mut l: Labels<'_> = Vec::with_capacity(8 + c.labels.len());
    l.push(("cluster_name", Cow::Borrowed(c.name.as_str())));
    for (k, v) in &c.labels {
        l.push((k.as_str(), Cow::Borrowed(v.as_str())));
    }
    l
}

pub(super) fn gauge(
    enc: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    v: impl EncodeGaugeValue,
) -> std::fmt::Result {
    ConstGauge::new(v).encode(enc.encode_family(labels)?)
}

// Per-series label sets are tuples of borrowed slices on the stack (prometheus-client
// encodes `(A, B)` as A's labels then B's): no allocation per series.

type Pair<'a> = (&'static str, &'a str);

/// topic, partition.
fn partition_labels(p: &PartitionOffsets) -> ([Pair<'_>; 1], [(&'static str, i32); 1]) {
    ([("topic", &*p.tp.topic)], [("partition", p.tp.partition)])
}

/// group, topic, partition, member_host, consumer_id, client_id.
pub(super) fn member_labels<'a>(
    r: &Row<'a>,
) -> ([Pair<'a>; 2], [(&'static str, i32); 1], [Pair<'a>; 3]) {
    let (host, consumer, client) = match &r.row.member {
        Some(m) => (
            m.host.as_str(),
            m.consumer_id.as_str(),
            m.client_id.as_str(),
        ),
        None => ("", "", ""),
    };
    (
        [("group", &**r.group_name()), ("topic", &*r.tp.topic)],
        [("partition", r.tp.partition)],
        [
            ("member_host", host),
            ("consumer_id", consumer),
            ("client_id", client),
        ],
    )
}

pub(super) fn flag(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

impl Exposition {
    pub(super) fn reports(&self) -> impl Iterator<Item = (&ClusterView, &LagReport)> {
        self.clusters
            .iter()
            .filter_map(|c| c.report.as_deref().map(|r| (c, r)))
    }

    /// One gauge family over every partition of every cluster.
    fn partition_family(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: fn(&PartitionOffsets) -> i64,
    ) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (c, r) in self.reports() {
            let b = base(c);
            if !r.partition_series {
                continue;
            }
            for p in &r.partitions {
                let (t, n) = partition_labels(p);
                gauge(&mut enc, &(&b[..], (&t[..], &n[..])), value(p))?;
            }
        }
        Ok(())
    }

    /// One gauge family over every group partition of every cluster.
    fn group_partition_family<V: EncodeGaugeValue>(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: fn(&GroupPartitionLag) -> V,
    ) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (c, r) in self.reports() {
            let b = base(c);
            for row in r.rows() {
                let (gt, n, m) = member_labels(&row);
                gauge(
                    &mut enc,
                    &(&b[..], (&gt[..], (&n[..], &m[..]))),
                    value(&row),
                )?;
            }
        }
        Ok(())
    }

    /// One gauge family over every group of every cluster.
    fn group_family<V: EncodeGaugeValue>(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: fn(&GroupLag) -> Option<V>,
    ) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (c, r) in self.reports() {
            let b = base(c);
            for g in &r.groups {
                if let Some(v) = value(g) {
                    gauge(&mut enc, &(&b[..], &[("group", &*g.group)][..]), v)?;
                }
            }
        }
        Ok(())
    }

    /// A gauge family with one series per group and topic.
    fn group_topic_family<V: EncodeGaugeValue>(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: fn(&TopicLag) -> Option<V>,
    ) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (c, r) in self.reports() {
            let b = base(c);
            for g in &r.groups {
                for (topic, t) in &g.topics {
                    if let Some(v) = value(t) {
                        let labels = [("group", &*g.group), ("topic", &**topic)];
                        gauge(&mut enc, &(&b[..], &labels[..]), v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A gauge family with one series per cluster.
    fn cluster_gauge<V: EncodeGaugeValue>(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: fn(&ClusterView) -> Option<V>,
    ) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for c in &self.clusters {
            if let Some(v) = value(c) {
                gauge(&mut enc, &base(c), v)?;
            }
        }
        Ok(())
    }

    /// A counter family (`_total`) with one series per cluster.
    fn cluster_counter(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: fn(&ClusterView) -> u64,
    ) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for c in &self.clusters {
            ConstCounter::new(value(c)).encode(enc.encode_family(&base(c))?)?;
        }
        Ok(())
    }
}

/// A counter family with one series per cluster: name, help, value.
type CounterFamily = (&'static str, &'static str, fn(&ClientStats) -> u64);

/// The `broker` label: the node id, or "bootstrap" for bootstrap connections.
fn broker_label(node: i32) -> Cow<'static, str> {
    if node < 0 {
        Cow::Borrowed("bootstrap")
    } else {
        Cow::Owned(node.to_string())
    }
}

impl Exposition {
    /// tidemark's own counters and cycle histogram.
    fn operational(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        {
            let mut enc = encoder.encode_descriptor(
                "tidemark_cycle_duration_seconds",
                "Duration of collection cycles, successful or not.",
                None,
                MetricType::Histogram,
            )?;
            for c in &self.clusters {
                let h = &c.cycle_histogram;
                let buckets: Vec<(f64, u64)> = CYCLE_BUCKETS
                    .iter()
                    .copied()
                    .chain(std::iter::once(f64::INFINITY))
                    .zip(h.counts.iter().copied())
                    .collect();
                enc.encode_family(&base(c))?
                    .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &buckets, None)?;
            }
        }
        let per_api = |encoder: &mut DescriptorEncoder<'_>,
                       name: &str,
                       help: &str,
                       value: fn(&(i32, kafka_protocol::messages::ApiKey, u64, u64)) -> u64|
         -> std::fmt::Result {
            let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in &self.clusters {
                for row in &c.client.requests {
                    let mut labels = base(c);
                    labels.push(("broker", broker_label(row.0)));
                    labels.push(("api", Cow::Owned(format!("{:?}", row.1))));
                    ConstCounter::new(value(row)).encode(enc.encode_family(&labels)?)?;
                }
            }
            Ok(())
        };
        per_api(
            encoder,
            "tidemark_kafka_requests",
            "Requests sent to Kafka brokers, by broker and API (connection setup included).",
            |r| r.2,
        )?;
        per_api(
            encoder,
            "tidemark_kafka_request_errors",
            "Requests to Kafka brokers that got no usable answer: timeout, transport failure or undecodable response.",
            |r| r.3,
        )?;
        self.request_durations(encoder)?;
        {
            let mut enc = encoder.encode_descriptor(
                "tidemark_kafka_response_bytes",
                "Response bytes received from Kafka brokers.",
                None,
                MetricType::Counter,
            )?;
            for c in &self.clusters {
                for (node, bytes) in &c.client.bytes_received {
                    let mut labels = base(c);
                    labels.push(("broker", broker_label(*node)));
                    ConstCounter::new(*bytes).encode(enc.encode_family(&labels)?)?;
                }
            }
        }
        let counters: [CounterFamily; 5] = [
            (
                "tidemark_timestamp_cache_hits",
                "Time-lag samples answered from the timestamp cache.",
                |s| s.timestamp_cache_hits,
            ),
            (
                "tidemark_timestamp_cache_misses",
                "Time-lag samples not in the timestamp cache (then fetched).",
                |s| s.timestamp_cache_misses,
            ),
            (
                "tidemark_timestamp_samples_fetched",
                "Time-lag samples read from Fetch responses.",
                |s| s.timestamp_samples_fetched,
            ),
            (
                "tidemark_timestamp_fetch_bytes",
                "Record bytes fetched to read time-lag samples.",
                |s| s.timestamp_fetch_bytes,
            ),
            (
                "tidemark_timestamp_samples_deferred",
                "Time-lag samples a cycle left for the next because its Fetch budget (timestamp_sampling.fetch_requests_per_broker) ran out; those group partitions have no time lag in that cycle.",
                |s| s.timestamp_samples_deferred,
            ),
        ];
        for (name, help, value) in counters {
            let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in &self.clusters {
                ConstCounter::new(value(&c.client)).encode(enc.encode_family(&base(c))?)?;
            }
        }
        // Counters with one label naming what was counted.
        type ByKind = fn(&ClientStats) -> &[(&'static str, u64)];
        let by_kind: [(&str, &str, &str, ByKind); 2] = [
            (
                "tidemark_timestamp_samples_failed",
                "Time-lag samples not obtained, by reason: corrupt (checksum mismatch; never cached, read again), undecodable, broker_error, unreachable, not_reached, no_timestamp (message format v0 or timestamp -1).",
                "reason",
                |s| &s.timestamp_samples_failed,
            ),
            (
                "tidemark_collection_errors",
                "What cycles could not read, by kind: broker (a broker failed a request), group_offsets, group_description, committed_partition (an OffsetFetch error code for one partition), watermarks, timestamp. Each cycle with such a failure is partial.",
                "item",
                |s| &s.collection_errors,
            ),
        ];
        for (name, help, label, rows) in by_kind {
            let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in &self.clusters {
                for (kind, n) in rows(&c.client) {
                    let mut labels = base(c);
                    labels.push((label, Cow::Borrowed(*kind)));
                    ConstCounter::new(*n).encode(enc.encode_family(&labels)?)?;
                }
            }
        }
        self.authorization_family(encoder)
    }
}

impl Exposition {
    /// `tidemark_kafka_request_duration_seconds`: labelled as `tidemark_kafka_requests`.
    fn request_durations(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(
            "tidemark_kafka_request_duration_seconds",
            "Time from a request to a Kafka broker being queued to its connection to its response being complete (a streamed Fetch response: decoded to its end), by broker and API. Requests without a complete response (timeout, transport failure) are not counted.",
            None,
            MetricType::Histogram,
        )?;
        for c in &self.clusters {
            for (node, api, d) in &c.client.request_durations {
                let mut labels = base(c);
                labels.push(("broker", broker_label(*node)));
                labels.push(("api", Cow::Owned(format!("{api:?}"))));
                enc.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    d.sum_seconds(),
                    d.count(),
                    &d.buckets(),
                    None,
                )?;
            }
        }
        Ok(())
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut encoder;
        if self.part == Part::All {
            self.encode_series_families(e)?;
        }
        if self.part != Part::Tail {
            self.encode_gauge_families(e)?;
        }
        if self.part != Part::Gauges {
            self.encode_tail_families(e)?;
        }
        Ok(())
    }
}

impl Exposition {
    /// The per-partition and per-group-partition families (`direct::encode` in `render`).
    fn encode_series_families(&self, e: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        self.partition_family(
            e,
            "kafka_partition_latest_offset",
            "High watermark of the partition.",
            |p| p.high,
        )?;
        self.partition_family(
            e,
            "kafka_partition_earliest_offset",
            "Low watermark (log start offset) of the partition.",
            |p| p.low,
        )?;

        if self.granularity == Granularity::Partition {
            self.group_partition_family(
                e,
                "kafka_consumergroup_group_offset",
                "Committed offset of the group on the partition.",
                |r| r.committed,
            )?;
            self.group_partition_family(
                e,
                "kafka_consumergroup_group_lag",
                "Offset lag: high watermark minus committed offset (records deleted unread included).",
                |r| r.lag(),
            )?;
            let mut enc = e.encode_descriptor(
                "kafka_consumergroup_group_lag_seconds",
                "Age of the record at the committed offset (0 when caught up).",
                None,
                MetricType::Gauge,
            )?;
            for (c, r) in self.reports() {
                let b = base(c);
                for row in r.rows() {
                    if let Some(secs) = row.lag_seconds() {
                        let (gt, n, m) = member_labels(&row);
                        let flags = [
                            ("compaction_detected", flag(row.compaction_detected)),
                            ("data_loss_detected", flag(row.data_loss())),
                        ];
                        let labels = (&b[..], (&gt[..], (&n[..], (&m[..], &flags[..]))));
                        gauge(&mut enc, &labels, secs)?;
                    }
                }
            }
            self.group_partition_family(
                e,
                "kafka_consumergroup_group_messages_lost",
                "Records deleted by retention before the group consumed them.",
                |r| r.messages_lost(),
            )?;
            self.group_partition_family(
                e,
                "kafka_consumergroup_group_retention_margin",
                "Committed offset minus low watermark (negative means data loss).",
                |r| r.retention_margin(),
            )?;
            self.group_partition_family(
                e,
                "kafka_consumergroup_group_lag_retention_ratio",
                "Offset lag as a percentage of the retained offset range.",
                |r| r.retention_ratio(),
            )?;
        }
        Ok(())
    }

    /// The families after the per-group-partition ones up to the first counter (group
    /// aggregates, per-cluster gauges): [`Part::Gauges`].
    fn encode_gauge_families(&self, e: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        self.group_family(
            e,
            "kafka_consumergroup_group_max_lag",
            "Largest offset lag over the group's partitions.",
            |g| g.offsets_known.then_some(g.max_lag),
        )?;
        self.group_family(
            e,
            "kafka_consumergroup_group_max_lag_seconds",
            "Largest time lag over the group's partitions that have one.",
            |g| g.max_lag_seconds.filter(|_| g.offsets_known),
        )?;
        self.group_family(
            e,
            "kafka_consumergroup_group_sum_lag",
            "Sum of offset lag over the group's partitions.",
            |g| g.offsets_known.then_some(g.sum_lag),
        )?;
        self.group_topic_family(
            e,
            "kafka_consumergroup_group_topic_sum_lag",
            "Sum of offset lag of the group per topic.",
            |t| Some(t.sum_lag),
        )?;
        self.group_topic_family(
            e,
            "kafka_consumergroup_group_topic_max_lag",
            "Largest offset lag of the group over the partitions of the topic.",
            |t| Some(t.max_lag),
        )?;
        self.group_topic_family(
            e,
            "kafka_consumergroup_group_topic_max_lag_seconds",
            "Largest time lag in seconds of the group over the partitions of the topic that have one.",
            |t| t.max_lag_seconds,
        )?;
        self.group_state_family(e)?;
        self.share_group_families(e)?;
        self.status_families(e)?;

        self.cluster_gauge(
            e,
            "kafka_consumergroup_poll_time_ms",
            "Milliseconds spent reading offsets and watermarks in the last cycle (legacy name).",
            // One rounding (ns → ms), not two: 5,977,897 ns is 5.977897, not 5.9778970000000005.
            |c| c.poll_time.map(|d| d.as_nanos() as f64 / 1e6),
        )?;
        self.cluster_gauge(
            e,
            "tidemark_poll_time_seconds",
            "Seconds spent reading offsets and watermarks in the last cycle.",
            |c| c.poll_time.map(|d| d.as_secs_f64()),
        )?;
        self.cluster_gauge(
            e,
            "kafka_lag_exporter_scrape_duration_seconds",
            "Duration of the last collection cycle.",
            |c| c.cycle_duration.map(|d| d.as_secs_f64()),
        )?;
        self.cluster_gauge(
            e,
            "tidemark_cluster_up",
            "1 when the last collection cycle of the cluster read everything (no broker and no item failed), else 0.",
            |c| Some(i64::from(c.up)),
        )?;
        self.cluster_gauge(
            e,
            "tidemark_cluster_partial",
            "1 when the last collection cycle published values but some brokers or items failed (their series carry earlier values or are missing), else 0.",
            |c| Some(i64::from(c.partial)),
        )?;
        self.cluster_gauge(
            e,
            "tidemark_cluster_stale_groups",
            "Groups with series that carry the values of an earlier cycle (see tidemark_consumergroup_stale).",
            |c| c.report.as_ref().map(|r| r.stale_groups),
        )?;
        self.cluster_gauge(
            e,
            "tidemark_cluster_stale_partitions",
            "Partitions whose watermarks could not be read in the last cycle and whose series carry the values of an earlier one.",
            |c| c.report.as_ref().map(|r| r.stale_partitions),
        )?;
        self.group_family(e, "tidemark_consumergroup_stale", "1 when some of the group's values could not be read in the last cycle (its committed offsets, or the watermarks of some of its partitions) and their series carry the values of an earlier one (for at most staleness_threshold), else 0.", |g| Some(i64::from(g.stale)))?;
        {
            let mut enc = e.encode_descriptor(
                "tidemark_broker_up",
                "1 when every request to the broker in the last cycle was answered, 0 when one failed (connect, TLS, ApiVersions, SASL, timeout, undecodable answer).",
                None,
                MetricType::Gauge,
            )?;
            for c in &self.clusters {
                for (node, up) in &c.brokers {
                    let mut labels = base(c);
                    labels.push(("broker", broker_label(*node)));
                    ConstGauge::new(i64::from(*up)).encode(enc.encode_family(&labels)?)?;
                }
            }
        }
        self.ha_families(e)
    }

    /// The counters and what follows them: [`Part::Tail`].
    fn encode_tail_families(&self, e: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        self.cluster_counter(
            e,
            "kafka_lag_exporter_compaction_detected",
            "Group partitions whose time lag came from a later record on a compacted topic, summed over collection cycles.",
            |c| c.compaction_detected_total,
        )?;
        self.cluster_counter(e, "kafka_lag_exporter_data_loss_partitions", "Group partitions whose committed offset was below the low watermark, summed over collection cycles.", |c| c.data_loss_total)?;

        self.operational(e)?;

        // A high-availability standby has no cycle of its own that could fail: 1, so an
        // alert on `kafka_lag_exporter_up == 0` does not fire for every standby.
        let any = !self.clusters.is_empty() || !self.ha.is_empty();
        let all_up = any && self.clusters.iter().all(|c| c.up);
        let enc = e.encode_descriptor(
            "kafka_lag_exporter_up",
            "1 when the last collection cycle of every cluster read everything (tidemark_cluster_up is 1 for all), else 0.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(if all_up { 1i64 } else { 0 }).encode(enc)?;
        super::exports::encode(&self.exports, e)
    }
}
