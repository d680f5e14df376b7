//! The metric families of `metrics.md`, encoded with prometheus-client, except the
//! per-partition and per-group-partition families (nearly every series at scale), which
//! `direct` writes straight into the text, byte for byte as prometheus-client would.
//!
//! Each finished cycle replaces its cluster's [`ClusterView`] whole, and the exposition is
//! rendered once, right then, straight into a gzip stream ([`render_compressed`]; only the
//! compressed bytes are kept): a scrape sends those bytes, or inflates them as it sends,
//! so it never does work proportional to Kafka calls and never waits on Kafka. Series of
//! groups, topics or partitions that vanished are gone at the next render because nothing
//! is carried over.
//!
//! Sample values that are integers print as integers, floats in their shortest exact form
//! (`text::push_f64`).

mod authorization;
mod compressed;
mod direct;
mod exports;
mod families;
mod group_types;
mod ha;
mod share_groups;
mod status;
mod text;

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus_client::registry::Registry;

use crate::config::Granularity;
use crate::kafka::conn::RequestDurations;
use crate::lag::LagReport;
use families::Part;
use text::{Normalized, TextBuf};

use compressed::Deflater;
pub use compressed::{Compressed, CompressedError, Format, TextStream};
pub use exports::{ExportCounters, ExportStats};

/// Upper bounds (seconds) of the `tidemark_cycle_duration_seconds` buckets.
pub const CYCLE_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Durations of every collection cycle of a cluster, as a histogram.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CycleHistogram {
    /// Cycles per bucket of [`CYCLE_BUCKETS`], then the cycles above the last bound.
    pub counts: [u64; CYCLE_BUCKETS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl CycleHistogram {
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = CYCLE_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(CYCLE_BUCKETS.len());
        self.counts[i] += 1;
        self.sum_seconds += secs;
        self.count += 1;
    }
}

/// The client's own counters for one cluster (cumulative since start).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// (broker node id, -1 for bootstrap connections; API; requests; errors), only APIs
    /// that were used.
    pub requests: Vec<(i32, ApiKey, u64, u64)>,
    /// (broker node id as in `requests`, API, durations of its answered requests), for
    /// the same APIs as `requests`.
    pub request_durations: Vec<(i32, ApiKey, RequestDurations)>,
    /// (broker node id, response bytes received).
    pub bytes_received: Vec<(i32, u64)>,
    pub timestamp_cache_hits: u64,
    pub timestamp_cache_misses: u64,
    /// Time-lag samples read from Fetch responses, and the record bytes fetched for them.
    pub timestamp_samples_fetched: u64,
    pub timestamp_fetch_bytes: u64,
    /// Samples left for a later cycle by the Fetch budget, summed over cycles.
    pub timestamp_samples_deferred: u64,
    /// Samples not obtained, by reason, summed over cycles.
    pub timestamp_samples_failed: Vec<(&'static str, u64)>,
    /// Items cycles could not read, by kind, summed over cycles.
    pub collection_errors: Vec<(&'static str, u64)>,
    /// (resource type, operation, denials): resources an `*_AUTHORIZATION_FAILED` answer
    /// denied, once per cycle and resource, summed over cycles.
    pub authorization_failures: Vec<(&'static str, &'static str, u64)>,
}

/// A replica's part in a cluster's coordination group (`[exporter.leadership]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HaView {
    /// A member of the current generation, with its assignment.
    pub member: bool,
    pub generation: i64,
    /// Owns the cluster (its partition families).
    pub cluster_owner: bool,
    /// Consumer and share groups served.
    pub owned_groups: u64,
    /// Collects and serves anything of the cluster; when false, no series of the cluster
    /// but the `tidemark_ha_*` ones is served.
    pub serving: bool,
}

/// What the exporter currently knows about one cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// The cluster's configured name (`cluster_name` label).
    pub name: String,
    /// `[clusters.labels]`, added to every series of this cluster.
    pub labels: Vec<(String, String)>,
    /// The last successful report (kept when a later cycle fails).
    pub report: Option<Arc<LagReport>>,
    /// Whether the last cycle read everything (no broker and no item failed).
    pub up: bool,
    /// Whether the last cycle published, but with failures (some values carried over or
    /// missing).
    pub partial: bool,
    /// Brokers of the last cycle's metadata: (node id, every request answered).
    pub brokers: Vec<(i32, bool)>,
    /// Duration of the last cycle, successful or not.
    pub cycle_duration: Option<Duration>,
    /// Time to read committed offsets and watermarks in the last successful cycle.
    pub poll_time: Option<Duration>,
    /// Cumulative group partitions seen on compacted topics, summed over cycles.
    pub compaction_detected_total: u64,
    /// Cumulative group partitions seen with data loss, summed over cycles.
    pub data_loss_total: u64,
    /// Durations of every cycle, successful or not.
    pub cycle_histogram: CycleHistogram,
    /// The client's request, byte and cache counters.
    pub client: ClientStats,
    /// With `[exporter.leadership]`: what this replica owns of the cluster.
    pub ha: Option<HaView>,
}

impl ClusterView {
    /// Whether the cluster's series are served (not a standby of it).
    pub fn served(&self) -> bool {
        self.ha.is_none_or(|h| h.serving)
    }
}

/// The views whose series are served (see [`ClusterView::served`]).
fn served(clusters: &[ClusterView]) -> Vec<ClusterView> {
    clusters.iter().filter(|c| c.served()).cloned().collect()
}

/// The gzip level the exposition is stored at (docs/benchmarks.md, "Compressed exposition").
pub const GZIP_LEVEL: u32 = 1;

/// Render the exposition of all clusters, compressed, in both formats ([`Compressed`]),
/// with no uncompressed copy of it held.
pub fn render_compressed(
    clusters: &[ClusterView],
    exports: &[ExportCounters],
    granularity: Granularity,
    level: u32,
) -> Result<Compressed, CompressedError> {
    let mut deflater = Deflater::new(level);
    let mut series = {
        let mut out = TextBuf::new(&mut deflater);
        encode_common(&mut out, clusters, granularity);
        out.finish()
    };
    let (openmetrics_tail, tail_series) = render_tail(clusters, exports, granularity);
    series += tail_series;
    let prometheus_tail = to_prometheus_text(&openmetrics_tail);
    deflater.finish(series, [prometheus_tail, openmetrics_tail])
}

/// Render the exposition (OpenMetrics text) for all clusters, uncompressed: for tools and
/// tests ([`render_compressed`] is what is served).
pub fn render(clusters: &[ClusterView], granularity: Granularity) -> String {
    render_with_exports(clusters, &[], granularity)
}

/// [`render`] with the push exporters' counters.
pub fn render_with_exports(
    clusters: &[ClusterView],
    exports: &[ExportCounters],
    granularity: Granularity,
) -> String {
    let mut text = String::new();
    {
        let mut out = TextBuf::new(&mut text);
        encode_common(&mut out, clusters, granularity);
        out.finish();
    }
    text.push_str(&render_tail(clusters, exports, granularity).0);
    text
}

/// The text both formats share: the per-partition and per-group-partition families
/// (`direct`), then the rest up to the first counter family.
fn encode_common(out: &mut TextBuf<'_>, clusters: &[ClusterView], granularity: Granularity) {
    direct::encode(out, &served(clusters), granularity);
    encode_with_prometheus_client(out, clusters, &[], granularity, Part::Gauges);
}

/// The OpenMetrics text from the first counter family on, `# EOF` included (small: a few
/// lines per cluster and broker), and its number of samples.
fn render_tail(
    clusters: &[ClusterView],
    exports: &[ExportCounters],
    granularity: Granularity,
) -> (String, usize) {
    let mut text = String::new();
    let series = {
        let mut out = TextBuf::new(&mut text);
        encode_with_prometheus_client(&mut out, clusters, exports, granularity, Part::Tail);
        out.line().push_str("# EOF\n");
        out.finish()
    };
    (text, series)
}

/// Append `part` of the families, encoded by prometheus-client, its values in the
/// exposition's number format.
fn encode_with_prometheus_client(
    out: &mut TextBuf<'_>,
    clusters: &[ClusterView],
    exports: &[ExportCounters],
    granularity: Granularity,
    part: Part,
) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families::Exposition {
        clusters: served(clusters),
        ha: clusters
            .iter()
            .filter(|c| c.ha.is_some())
            .cloned()
            .collect(),
        exports: exports.to_vec(),
        granularity,
        part,
    }));
    // Writing into a buffer cannot fail.
    let _ =
        prometheus_client::encoding::text::encode_registry(&mut Normalized::new(out), &registry);
}

/// The series a cluster's report adds to the exposition at `granularity`: those of the
/// partition, group-partition and group families (the cluster's few operational series
/// aside). Counted the way the encoders decide which series to write; `tests.rs` checks it
/// against a render.
pub fn lag_series(report: &LagReport, granularity: Granularity) -> usize {
    let with_time = |rows: &[crate::lag::GroupPartitionLag]| {
        rows.iter().filter(|r| r.lag_seconds().is_some()).count()
    };
    let mut n = if report.partition_series {
        2 * report.partitions.len()
    } else {
        0
    };
    if granularity == Granularity::Partition {
        // offset, lag, messages_lost, retention_margin, retention_ratio; lag_seconds
        n += 5 * report.group_partitions.len() + with_time(&report.group_partitions);
        // lag; lag_seconds
        n += report.share_group_partitions.len() + with_time(&report.share_group_partitions);
    }
    for g in &report.groups {
        // state and stale always; max_lag, sum_lag and max_lag_seconds with known offsets
        // per topic: sum and max lag, max time lag when one partition has one
        n += 2 + g
            .topics
            .values()
            .map(|t| 2 + usize::from(t.max_lag_seconds.is_some()))
            .sum::<usize>();
        if g.offsets_known {
            n += 2 + usize::from(g.max_lag_seconds.is_some());
        }
    }
    for g in &report.share_groups {
        // state always; max_lag and max_lag_seconds with known offsets
        n += 1;
        if g.offsets_known {
            n += 1 + usize::from(g.max_lag_seconds.is_some());
        }
    }
    n
}

/// The exposition's number format, for tests that rebuild sample lines.
#[cfg(test)]
pub(crate) fn push_f64_for_tests(out: &mut String, v: f64) {
    text::push_f64(out, v);
}

/// The content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of Prometheus text.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Convert [`render`]'s OpenMetrics text to the classic Prometheus text format (0.0.4):
/// counter families are named with their `_total` suffix in `# HELP` / `# TYPE`, and the
/// `# EOF` marker is dropped. Samples are unchanged.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let descriptor = line
            .strip_prefix("# HELP ")
            .map(|rest| ("# HELP ", rest))
            .or_else(|| line.strip_prefix("# TYPE ").map(|rest| ("# TYPE ", rest)));
        match descriptor {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(kind);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod direct_tests;
#[cfg(test)]
pub(crate) mod tests;
