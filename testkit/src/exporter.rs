//! Running the real exporter in-process and reading its endpoints.
//!
//! [`RunningExporter::start`] parses a TOML config with tidemark's own parser (use
//! `http_host = "127.0.0.1"` and `http_port = 0` for an ephemeral port) and starts the same
//! [`tidemark::exporter::Exporter`] the binary runs. [`get`] is a minimal HTTP/1.1 client
//! (no extra dependency) and [`Metrics`] parses the Prometheus text exposition.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tidemark::config;
use tidemark::exporter::Exporter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An exporter running in this process.
pub struct RunningExporter {
    exporter: Option<Exporter>,
    pub address: SocketAddr,
}

impl RunningExporter {
    /// Parse `toml` (environment variables from the process) and start the exporter.
    pub async fn start(toml: &str) -> RunningExporter {
        let env = |name: &str| std::env::var(name).ok();
        let config =
            config::parse(toml, "test.toml", &env).unwrap_or_else(|e| panic!("test config: {e}"));
        let exporter = Exporter::start(config).await.expect("exporter starts");
        let address = exporter.address();
        RunningExporter {
            exporter: Some(exporter),
            address,
        }
    }

    /// Asserts that `cluster` is up and serves, for partitions 0 and 1 of `topic`, the offset
    /// lag of `group` that `ledger` (what the test wrote) gives.
    pub async fn assert_ledger_lag(
        &self,
        ledger: &super::Ledger,
        cluster: &str,
        group: &str,
        topic: &str,
    ) {
        let m = self.metrics().await;
        for p in 0..2 {
            let ps = p.to_string();
            let labels = [
                ("cluster_name", cluster),
                ("group", group),
                ("topic", topic),
                ("partition", ps.as_str()),
            ];
            let want = ledger.lag(group, topic, p).map(|l| l as f64);
            assert!(want.is_some());
            assert_eq!(
                m.value("kafka_consumergroup_group_lag", &labels),
                want,
                "{cluster} partition {p}"
            );
        }
        assert_eq!(
            m.value("tidemark_cluster_up", &[("cluster_name", cluster)]),
            Some(1.0)
        );
    }

    /// The exposition together with the number of successful cycles of `cluster` it
    /// reflects (cycles are counted and rendered under one lock, so equal counts before and
    /// after the scrape mean the scrape shows exactly that many cycles).
    pub async fn consistent_metrics(&self, cluster: &str) -> (u64, Metrics) {
        loop {
            let before = self.cycles_ok(cluster);
            let m = self.metrics().await;
            if self.cycles_ok(cluster) == before {
                return (before, m);
            }
        }
    }

    /// Successful cycles of `cluster` so far.
    pub fn cycles_ok(&self, cluster: &str) -> u64 {
        self.exporter
            .as_ref()
            .and_then(|e| e.state().status().get(cluster).map(|s| s.cycles_ok))
            .unwrap_or(0)
    }

    /// The error of `cluster`'s last failed cycle, as the status page shows it.
    pub fn last_error(&self, cluster: &str) -> Option<String> {
        self.exporter
            .as_ref()
            .and_then(|e| e.state().status().get(cluster)?.last_error.clone())
    }

    /// Failed cycles of `cluster` so far.
    pub fn cycles_failed(&self, cluster: &str) -> u64 {
        self.exporter
            .as_ref()
            .and_then(|e| e.state().status().get(cluster).map(|s| s.cycles_failed))
            .unwrap_or(0)
    }

    /// Wait until `cluster` has completed `n` successful cycles (panics after `timeout`).
    pub async fn wait_cycles(&self, cluster: &str, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.cycles_ok(cluster) < n {
            assert!(
                Instant::now() < deadline,
                "cluster {cluster}: {} successful cycles after {timeout:?}, wanted {n} ({} failed)",
                self.cycles_ok(cluster),
                self.cycles_failed(cluster)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until `cluster` has failed `n` cycles (panics after `timeout`).
    pub async fn wait_failures(&self, cluster: &str, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.cycles_failed(cluster) < n {
            assert!(
                Instant::now() < deadline,
                "cluster {cluster}: fewer than {n} failed cycles after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GET `path` from the exporter.
    pub async fn get(&self, path: &str) -> Response {
        get(self.address, path).await
    }

    /// GET `path` with an `Accept` header (e.g. `application/openmetrics-text`).
    pub async fn get_with_accept(&self, path: &str, accept: &str) -> Response {
        get_with_accept(self.address, path, Some(accept)).await
    }

    /// GET /metrics (Prometheus text) and parse it.
    pub async fn metrics(&self) -> Metrics {
        let r = self.get("/metrics").await;
        assert_eq!(r.status, 200, "/metrics answered {}: {}", r.status, r.body);
        Metrics::parse(&r.body)
    }

    /// Stop the exporter the way SIGTERM does.
    pub async fn shutdown(mut self) {
        if let Some(e) = self.exporter.take() {
            e.shutdown(Duration::from_millis(1500)).await;
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    /// Time from connect to the last byte.
    pub latency: Duration,
}

/// GET `path` from `address` over a fresh connection (`Connection: close`).
pub async fn get(address: SocketAddr, path: &str) -> Response {
    get_with_accept(address, path, None).await
}

/// [`get`] with an optional `Accept` request header.
pub async fn get_with_accept(address: SocketAddr, path: &str, accept: Option<&str>) -> Response {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("connect to {address}: {e}"));
    let accept = accept.map_or_else(String::new, |a| format!("Accept: {a}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n{accept}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let latency = started.elapsed();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Response {
        status,
        content_type,
        body: body.to_string(),
        latency,
    }
}

/// One sample of the exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed Prometheus text exposition.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parse the text format (label values may contain escaped quotes).
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Metrics { samples }
    }

    /// Samples of `name` whose labels include every `(key, value)` of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The single sample of `name` matching `labels`; panics if there are several.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.find(name, labels);
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches {} series: {found:?}",
            found.len()
        );
        found.first().map(|s| s.value)
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let key = key.trim_start_matches(',').trim().to_string();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(key, value);
        rest = &after[end..];
    }
    labels
}

/// `[exporter]` lines of the stub-cluster tests: fast cycles, partition granularity, short
/// Kafka timeouts (see [`config()`]).
pub const FAST: &str = "poll_interval = \"200ms\"\ngranularity = \"partition\"\n\
[exporter.performance]\nkafka_timeout = \"2s\"\noffset_fetch_timeout = \"2s\"";

/// The group × partition families (served at `granularity = "partition"` only).
pub const GROUP_PARTITION_FAMILIES: [&str; 6] = [
    "kafka_consumergroup_group_offset",
    "kafka_consumergroup_group_lag",
    "kafka_consumergroup_group_lag_seconds",
    "kafka_consumergroup_group_messages_lost",
    "kafka_consumergroup_group_retention_margin",
    "kafka_consumergroup_group_lag_retention_ratio",
];

/// Reads the head of an HTTP/1.1 response from `stream`: its status code (panics without
/// one) and its headers, names in lower case.
pub async fn read_head(
    stream: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> (u16, BTreeMap<String, String>) {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    stream.read_line(&mut line).await.expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"));
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await.expect("header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    (status, headers)
}

/// tidemark's HTTP server for `state` on an ephemeral port of 127.0.0.1, in a task: its
/// address, and the sender that stops it (it serves until that is dropped or sent `true`).
pub async fn serve_state(
    state: std::sync::Arc<tidemark::state::ExporterState>,
) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(tidemark::http::serve(listener, state, stopped));
    (address, stop)
}

/// One `[[clusters]]` table: `name` at `bootstrap` with these consumer properties.
pub fn cluster_with_properties(name: &str, bootstrap: &str, props: &[(&str, &str)]) -> String {
    let mut t = format!(
        "[[clusters]]\nname = \"{name}\"\nbootstrap_servers = \"{bootstrap}\"\n[clusters.consumer_properties]\n"
    );
    for (k, v) in props {
        t.push_str(&format!("{k:?} = {v:?}\n"));
    }
    t
}

/// A config of these `[[clusters]]` tables: ephemeral port, polls every `poll`, partition
/// granularity.
pub fn config_of_clusters(poll: &str, clusters: &[String]) -> String {
    format!(
        "[exporter]\nhttp_host = \"127.0.0.1\"\nhttp_port = 0\npoll_interval = \"{poll}\"\ngranularity = \"partition\"\n\n{}",
        clusters.join("\n")
    )
}

/// A config for one cluster at `bootstrap`, ephemeral HTTP port, the given extra
/// `[exporter]` lines and `[[clusters]]` lines.
pub fn config(cluster: &str, bootstrap: &str, exporter_lines: &str, cluster_lines: &str) -> String {
    format!(
        "[exporter]\nhttp_host = \"127.0.0.1\"\nhttp_port = 0\n{exporter_lines}\n\n[[clusters]]\nname = \"{cluster}\"\nbootstrap_servers = \"{bootstrap}\"\n{cluster_lines}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes() {
        let m = Metrics::parse("# HELP x y\nx{a=\"1\",b=\"q\\\"uote\",c=\"\"} 2.5\nup 1\n");
        assert_eq!(m.value("x", &[("a", "1"), ("c", "")]), Some(2.5));
        assert_eq!(m.find("x", &[])[0].labels["b"], "q\"uote");
        assert_eq!(m.value("up", &[]), Some(1.0));
    }
}
