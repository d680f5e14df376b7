//! The metric families of `metrics.md`, encoded with prometheus-client, except the
//! per-partition and per-group-partition families (nearly every series at scale), which
//! `direct` writes straight into the text, byte for byte as prometheus-client would.
//!
//! Each finished cycle replaces its cluster's [`ClusterView`] whole, and the exposition is
//! rendered once, right then: a scrape only clones the last rendered text, so it never does
//! work proportional to Kafka calls and never waits on Kafka. Series of groups, topics or
//! partitions that vanished are gone at the next render because nothing is carried over.

mod direct;
mod families;
mod group_types;
mod share_groups;

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus_client::registry::Registry;

use crate::config::Granularity;
use crate::kafka::conn::RequestDurations;
use crate::lag::LagReport;

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
}

/// Render the exposition (OpenMetrics text) for all clusters.
pub fn render(clusters: &[ClusterView], granularity: Granularity) -> String {
    render_sized(clusters, granularity, 4096)
}

/// A rough size of the exposition of `clusters` (for sizing the first render's buffer).
pub fn estimate_size(clusters: &[ClusterView], granularity: Granularity) -> usize {
    clusters
        .iter()
        .filter_map(|c| c.report.as_deref())
        .map(|r| {
            // Generous per-series sizes: the buffer is shrunk to fit afterwards, while an
            // estimate too small would double it.
            let rows = if granularity == Granularity::Partition {
                r.group_partitions.len() * 6 * 400
            } else {
                0
            };
            r.partitions.len() * 2 * 160 + r.groups.len() * 8 * 160 + rows
        })
        .sum()
}

/// [`render`] into a buffer of `size_hint` bytes (the last render's size avoids growing
/// a large buffer by doubling).
pub fn render_sized(
    clusters: &[ClusterView],
    granularity: Granularity,
    size_hint: usize,
) -> String {
    let mut out = String::with_capacity(size_hint);
    // The per-partition and per-group-partition families come first in the exposition.
    direct::encode(&mut out, clusters, granularity);
    encode_with_prometheus_client(&mut out, clusters, granularity, false);
    // Give back what the size hint overestimated (a large buffer is resized in place).
    out.shrink_to_fit();
    out
}

/// Append the exposition's families, the per-partition and per-group-partition ones only if
/// `series_families`, encoded by prometheus-client, then `# EOF`.
fn encode_with_prometheus_client(
    out: &mut String,
    clusters: &[ClusterView],
    granularity: Granularity,
    series_families: bool,
) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families::Exposition {
        clusters: clusters.to_vec(),
        granularity,
        series_families,
    }));
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(out, &registry);
}

/// The content type of [`render`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`to_prometheus_text`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The classic Prometheus text (0.0.4) of [`render`]'s OpenMetrics text, as chunks that
/// share `openmetrics`' bytes: only the `# HELP` / `# TYPE` lines of counter families
/// differ (see [`to_prometheus_text`]), so both formats are kept for the price of one.
/// Their concatenation equals `to_prometheus_text(openmetrics)`.
pub fn prometheus_chunks(openmetrics: &bytes::Bytes) -> Vec<bytes::Bytes> {
    let Ok(text) = std::str::from_utf8(openmetrics) else {
        return vec![bytes::Bytes::from(to_prometheus_text(
            &String::from_utf8_lossy(openmetrics),
        ))];
    };
    // Only comment lines change. Lines are found with `str::find('\n')` (memchr), and a
    // family's `# HELP` line is followed by its `# TYPE` line, which says whether it is a
    // counter: one pass.
    let line_at = |at: usize| -> (usize, &str) {
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
        (end, &text[at..end])
    };
    let mut chunks = Vec::new();
    let mut run = 0;
    let mut at = 0;
    while at < text.len() {
        let (end, line) = line_at(at);
        if !line.starts_with('#') {
            at = end;
            continue;
        }
        let body = line.strip_suffix('\n').unwrap_or(line);
        let replacement = if body == "# EOF" {
            Some(String::new())
        } else if let Some(rest) = body.strip_prefix("# HELP ") {
            let (_, next) = line_at(end);
            let name = rest.split(' ').next().unwrap_or(rest);
            let is_counter = next.starts_with("# TYPE ")
                && next.trim_end().ends_with(" counter")
                && next["# TYPE ".len()..].split(' ').next() == Some(name);
            is_counter.then(|| format!("# HELP {name}_total{}\n", &rest[name.len()..]))
        } else if let Some(rest) = body.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or(rest);
            rest.ends_with(" counter")
                .then(|| format!("# TYPE {name}_total{}\n", &rest[name.len()..]))
        } else {
            None
        };
        if let Some(new) = replacement {
            if run < at {
                chunks.push(openmetrics.slice(run..at));
            }
            if !new.is_empty() {
                chunks.push(bytes::Bytes::from(new));
            }
            run = end;
        }
        at = end;
    }
    if run < text.len() {
        chunks.push(openmetrics.slice(run..));
    }
    chunks
}

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
mod tests;
