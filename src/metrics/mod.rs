//! The metric families of `metrics.md`, encoded with prometheus-client.
//!
//! Each finished cycle replaces its cluster's [`ClusterView`] whole, and the exposition is
//! rendered once, right then: a scrape only clones the last rendered text, so it never does
//! work proportional to Kafka calls and never waits on Kafka. Series of groups, topics or
//! partitions that vanished are gone at the next render because nothing is carried over.

mod families;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;

use crate::config::Granularity;
use crate::lag::LagReport;

/// What the exporter currently knows about one cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// The cluster's configured name (`cluster_name` label).
    pub name: String,
    /// `[clusters.labels]`, added to every series of this cluster.
    pub labels: Vec<(String, String)>,
    /// The last successful report (kept when a later cycle fails).
    pub report: Option<Arc<LagReport>>,
    /// Whether the last cycle succeeded.
    pub up: bool,
    /// Duration of the last cycle, successful or not.
    pub cycle_duration: Option<Duration>,
    /// Time to read committed offsets and watermarks in the last successful cycle.
    pub poll_time: Option<Duration>,
    /// Cumulative group partitions seen on compacted topics, summed over cycles.
    pub compaction_detected_total: u64,
    /// Cumulative group partitions seen with data loss, summed over cycles.
    pub data_loss_total: u64,
}

/// Render the exposition (OpenMetrics text) for all clusters.
pub fn render(clusters: &[ClusterView], granularity: Granularity) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families::Exposition {
        clusters: clusters.to_vec(),
        granularity,
    }));
    let mut out = String::with_capacity(4096);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The content type of [`render`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`to_prometheus_text`]'s output.
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
mod tests;
