//! What ships beside the binary, checked against the library and promtool:
//!
//! * `docker/prometheus/alerts.yml` passes `promtool check rules` and its unit tests
//!   (`alerts.test.yml`), and names only metrics tidemark exports (plus Prometheus' `up`);
//! * every query of `docker/grafana/tidemark-dashboard.json` (panels and template variables)
//!   names only metrics tidemark exports, and parses as PromQL (promtool);
//! * `docker/prometheus/prometheus.yml` passes `promtool check config`.
//!
//! "Metrics tidemark exports" is read from the library: [`tidemark::metrics::render`] over a
//! report that has every kind of series, never from a list written here.
//!
//! And one test of a release artifact, run by `docker/release-check.sh` (ignored otherwise):
//! a static binary (optionally under a runner such as `qemu-aarch64-static`) or the container
//! image, started with the image's own `docker/config.toml` against the test broker, must
//! serve exact offsets, lag and time lag on `/metrics`.

use tidemark_testkit as common;

use common::workload::now_ms;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::exporter::{get, Metrics};
use common::promtool::ensure_promtool;
use common::{unique_name, Broker, Codec, Workload};
use tidemark::config::Granularity;
use tidemark::kafka::{TopicPartition, Watermarks};
use tidemark::lag::{
    self, ClusterSnapshot, GroupPartition, GroupSnapshot, GroupState, Member, PartitionWatermarks,
    Sample,
};
use tidemark::metrics::{self, ClusterView};

fn repo(path: &str) -> PathBuf {
    common::repo_root().join(path)
}

fn read(path: &str) -> String {
    let p = repo(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------------------
// The metric names tidemark exports, from the library
// ---------------------------------------------------------------------------------------

/// A report with every kind of series: a sampled time lag, a caught-up partition, data
/// loss, a compacted topic, member labels.
fn full_view() -> ClusterView {
    const NOW: i64 = 1_700_000_000_000;
    let tp = |t: &str, p| TopicPartition::new(t, p);
    let member = Arc::new(Member {
        host: "/10.0.0.1".into(),
        consumer_id: "c-1".into(),
        client_id: "c".into(),
    });
    let snapshot = ClusterSnapshot {
        cluster: "c".into(),
        watermarks: PartitionWatermarks::from([
            (tp("t", 0), Watermarks { low: 0, high: 10 }),
            (tp("t", 1), Watermarks { low: 5, high: 10 }),
            (tp("k", 0), Watermarks { low: 0, high: 10 }),
        ]),
        groups: vec![GroupSnapshot {
            group: Arc::from("g"),
            group_type: Default::default(),
            state: GroupState::Stable,
            offsets_known: true,
            partitions: vec![
                GroupPartition {
                    tp: tp("t", 0),
                    committed: 4,
                    member: Some(member),
                    sample: Sample::At {
                        timestamp_ms: NOW - 5_000,
                        later: false,
                    },
                },
                GroupPartition {
                    tp: tp("t", 1),
                    committed: 2,
                    member: None,
                    sample: Sample::At {
                        timestamp_ms: NOW - 9_000,
                        later: true,
                    },
                },
                GroupPartition {
                    tp: tp("k", 0),
                    committed: 3,
                    member: None,
                    sample: Sample::At {
                        timestamp_ms: NOW - 1_000,
                        later: true,
                    },
                },
            ],
        }],
        compacted_topics: BTreeSet::from([Arc::from("k")]),
        poll_time: Duration::from_millis(3),
        carried_watermarks: Default::default(),
    };
    let report = lag::compute(&snapshot, NOW);
    ClusterView {
        name: "c".into(),
        labels: vec![("env".into(), "test".into())],
        compaction_detected_total: report.compaction_partitions,
        data_loss_total: report.data_loss_partitions,
        report: Some(Arc::new(report)),
        up: true,
        cycle_duration: Some(Duration::from_millis(20)),
        poll_time: Some(Duration::from_millis(3)),
        ..ClusterView::default()
    }
}

/// The series names a query can select in tidemark's exposition (both formats, partition
/// granularity): every sample's name, and for every declared family the names its type
/// gives it (`_total` for a counter; `_bucket`, `_sum`, `_count` for a histogram), so a
/// family the sample report leaves empty still counts.
fn exported_metrics() -> BTreeSet<String> {
    let openmetrics = metrics::render(&[full_view()], Granularity::Partition);
    let prometheus = metrics::to_prometheus_text(&openmetrics);
    let mut names = BTreeSet::new();
    for text in [&openmetrics, &prometheus] {
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split(' ');
                let (Some(family), Some(kind)) = (words.next(), words.next()) else {
                    continue;
                };
                let family = family.strip_suffix("_total").unwrap_or(family);
                let suffixes: &[&str] = match kind {
                    "counter" => &["_total"],
                    "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
                    "summary" => &["", "_sum", "_count"],
                    _ => &[""],
                };
                for suffix in suffixes {
                    names.insert(format!("{family}{suffix}"));
                }
            } else if !line.starts_with('#') {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                names.insert(line[..end].to_owned());
            }
        }
    }
    names
}

#[test]
fn the_exported_names_come_from_the_exposition() {
    let names = exported_metrics();
    // A smoke check that the sample report renders families of each kind, and the
    // compatibility names dashboards use (never a substitute for the list itself).
    for name in [
        "kafka_partition_latest_offset",
        "kafka_consumergroup_group_lag_seconds",
        "kafka_consumergroup_group_max_lag_seconds",
        "kafka_lag_exporter_up",
        "kafka_lag_exporter_data_loss_partitions_total",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    assert!(names.len() >= 20, "too few names: {names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("kafka_") || n.starts_with("tidemark_")),
        "{names:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Metric names in PromQL
// ---------------------------------------------------------------------------------------

/// PromQL words that are not metric names when they stand outside `{}` and `[]`.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names a PromQL expression selects. Skips strings, label matchers (`{...}`),
/// ranges (`[...]`), numbers and durations, Grafana variables (`$x`, `${x}`), function
/// calls, keywords and the label lists of `by`/`without`/`on`/`ignoring`/`group_*`.
/// Grafana's `label_values(selector, label)` yields the selector's metric.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    // Skip the parenthesized list that follows a grouping keyword.
    let mut skip_list = false;
    // Inside label_values( ... ): its last argument is a label, not a metric.
    let mut label_values_depth: Option<usize> = None;
    let mut depth = 0usize;
    let is_ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                // Matchers may hold strings with braces; skip strings inside.
                i += 1;
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' || chars[i] == '\'' {
                        let q = chars[i];
                        i += 1;
                        while i < chars.len() && chars[i] != q {
                            if chars[i] == '\\' {
                                i += 1;
                            }
                            i += 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                i += 1;
                if i < chars.len() && chars[i] == '{' {
                    while i < chars.len() && chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                }
            }
            '(' => {
                depth += 1;
                if skip_list {
                    skip_list = false;
                    let mut d = 1;
                    i += 1;
                    while i < chars.len() && d > 0 {
                        match chars[i] {
                            '(' => d += 1,
                            ')' => d -= 1,
                            _ => {}
                        }
                        i += 1;
                    }
                    depth -= 1;
                } else {
                    i += 1;
                }
            }
            ')' => {
                if label_values_depth == Some(depth) {
                    label_values_depth = None;
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            ',' if label_values_depth == Some(depth) => {
                // label_values(selector, label): drop the label argument.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                // A number or a duration (5m, 1h30m, 1e3, 0x1f).
                while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let call = chars.get(j) == Some(&'(');
                let lower = word.to_ascii_lowercase();
                if matches!(
                    lower.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    skip_list = call;
                } else if word == "label_values" && call {
                    label_values_depth = Some(depth + 1);
                } else if call || KEYWORDS.contains(&lower.as_str()) {
                    // A function or an aggregation/operator keyword.
                } else {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn the_promql_name_extractor_finds_metrics_and_nothing_else() {
    let cases: &[(&str, &[&str])] = &[
        ("up", &["up"]),
        (r#"up{job="tidemark"} == 0"#, &["up"]),
        (
            r#"sum by (cluster_name, group) (rate(kafka_x{a=~"$c", b="}{"}[$__rate_interval])) > bool 3e2"#,
            &["kafka_x"],
        ),
        (
            "max without (partition) (a) / on (group) group_left (topic) b offset 5m",
            &["a", "b"],
        ),
        (
            r#"label_values(kafka_y{cluster_name=~"$cluster"}, group)"#,
            &["kafka_y"],
        ),
        ("count(x) and y unless z or w", &["x", "y", "z", "w"]),
        (
            "histogram_quantile(0.9, sum(rate(h_bucket[5m])) by (le))",
            &["h_bucket"],
        ),
        ("${ds}", &[]),
    ];
    for (expr, want) in cases {
        assert_eq!(metric_names(expr), *want, "in {expr}");
    }
}

// ---------------------------------------------------------------------------------------
// The dashboard
// ---------------------------------------------------------------------------------------

const DASHBOARD: &str = "docker/grafana/tidemark-dashboard.json";

/// Every query of the dashboard: (where, PromQL).
fn dashboard_queries() -> Vec<(String, String)> {
    let json: serde_json::Value = serde_json::from_str(&read(DASHBOARD))
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"));
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) => {
                let title = map
                    .get("title")
                    .or_else(|| map.get("name"))
                    .and_then(|t| t.as_str())
                    .unwrap_or("");
                let here = if title.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}/{title}")
                };
                if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                    out.push((here.clone(), expr.to_owned()));
                }
                // Template variables of type "query": `query` is a string or {query: ...}.
                if map.get("type").and_then(|t| t.as_str()) == Some("query") {
                    let q = map.get("query").and_then(|q| {
                        q.as_str()
                            .or_else(|| q.get("query").and_then(|q| q.as_str()))
                    });
                    if let Some(q) = q {
                        out.push((format!("{here} (variable)"), q.to_owned()));
                    }
                }
                for (k, v) in map {
                    walk(v, &format!("{here}.{k}"), out);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, path, out);
                }
            }
            _ => {}
        }
    }
    walk(&json, "", &mut out);
    out.sort();
    out.dedup();
    out
}

#[test]
fn dashboard_queries_name_only_metrics_tidemark_exports() {
    let exported = exported_metrics();
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 15,
        "expected a query per panel and variable, found {}: {queries:#?}",
        queries.len()
    );
    let mut bad = Vec::new();
    let mut used = BTreeSet::new();
    for (at, expr) in &queries {
        let names = metric_names(expr);
        if names.is_empty() {
            bad.push(format!("{at}: names no metric: {expr}"));
        }
        for name in names {
            if !exported.contains(&name) {
                bad.push(format!("{at}: {name} is not exported by tidemark: {expr}"));
            }
            used.insert(name);
        }
    }
    assert!(
        bad.is_empty(),
        "{DASHBOARD}:\n{}\nexported: {exported:?}",
        bad.join("\n")
    );
    println!("{} queries use {used:?}", queries.len());
}

/// Grafana's variables replaced by values that keep the query valid PromQL.
fn as_plain_promql(expr: &str) -> String {
    let mut q = expr.to_owned();
    for (var, value) in [
        ("$__rate_interval", "1m"),
        ("${__rate_interval}", "1m"),
        ("$__interval", "1m"),
        ("$__range", "1h"),
    ] {
        q = q.replace(var, value);
    }
    // label_values(selector, label) -> selector
    if let Some(inner) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        q = inner
            .rsplit_once(',')
            .map_or(inner, |(sel, _)| sel)
            .to_owned();
    }
    q
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let promtool = ensure_promtool().unwrap_or_else(|e| panic!("promtool is needed: {e}"));
    let out = Command::new(&promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", promtool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn dashboard_queries_parse_as_promql() {
    // promtool has no "parse this expression"; it parses every rule of a rules file.
    let dir = std::env::temp_dir().join(unique_name("tidemark-dashboard-rules"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in dashboard_queries().iter().enumerate() {
        let q = serde_json::to_string(&as_plain_promql(expr)).expect("json string");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {q}\n"
        ));
    }
    std::fs::write(dir.join("rules.yml"), &rules).expect("write rules");
    let (ok, out) = promtool(&["check", "rules", "rules.yml"], &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "promtool rejects a dashboard query:\n{out}\n{rules}");
}

// ---------------------------------------------------------------------------------------
// Prometheus: alert rules and configuration
// ---------------------------------------------------------------------------------------

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = repo("docker/prometheus");
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"], &dir);
    assert!(ok, "promtool check rules alerts.yml:\n{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts.test.yml"], &dir);
    assert!(ok, "promtool test rules alerts.test.yml:\n{out}");
}

#[test]
fn alert_rules_name_only_exported_metrics_and_cover_the_four_conditions() {
    let exported = exported_metrics();
    let text = read("docker/prometheus/alerts.yml");
    let mut used = BTreeSet::new();
    let mut bad = Vec::new();
    for expr in text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(str::trim)
    {
        for name in metric_names(expr) {
            if name != "up" && !exported.contains(&name) {
                bad.push(format!("{name} is not exported by tidemark: {expr}"));
            }
            used.insert(name);
        }
    }
    assert!(bad.is_empty(), "alerts.yml:\n{}", bad.join("\n"));
    for needed in [
        "kafka_consumergroup_group_max_lag_seconds",
        "kafka_consumergroup_group_messages_lost",
        "kafka_consumergroup_group_lag_retention_ratio",
        "up",
        "kafka_lag_exporter_up",
    ] {
        assert!(
            used.contains(needed),
            "no alert uses {needed} (used: {used:?})"
        );
    }
}

#[test]
fn the_demo_prometheus_config_passes_promtool() {
    let (ok, out) = promtool(
        &["check", "config", "prometheus.yml"],
        &repo("docker/prometheus"),
    );
    assert!(ok, "promtool check config prometheus.yml:\n{out}");
}

// ---------------------------------------------------------------------------------------
// A release artifact against the real broker
// ---------------------------------------------------------------------------------------

/// A started artifact, stopped when dropped.
enum Running {
    Process(Child),
    Container(String),
}

impl Drop for Running {
    fn drop(&mut self) {
        match self {
            Running::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::Container(name) => {
                let _ = Command::new("docker")
                    .args(["rm", "-f", name.as_str()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl Running {
    /// stdout + stderr so far (containers only; a process inherits the test's).
    fn logs(&self) -> String {
        match self {
            Running::Process(_) => String::new(),
            Running::Container(name) => Command::new("docker")
                .args(["logs", name.as_str()])
                .output()
                .map(|o| {
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .unwrap_or_default(),
        }
    }
}

/// What to run: `TIDEMARK_RELEASE_IMAGE` (a docker image, run with host networking), or
/// `TIDEMARK_RELEASE_BINARY` (a path) under `TIDEMARK_RELEASE_RUNNER` when set
/// (e.g. `qemu-aarch64-static`). Both use the image's configuration, docker/config.toml.
fn start_artifact(env: &[(&str, String)]) -> (Running, String) {
    if let Ok(image) = std::env::var("TIDEMARK_RELEASE_IMAGE") {
        let name = unique_name("tidemark-release");
        let mut cmd = Command::new("docker");
        cmd.args(["run", "-d", "--name", &name, "--network", "host"]);
        for (k, v) in env {
            cmd.args(["-e", &format!("{k}={v}")]);
        }
        let out = cmd.arg(&image).output().expect("docker run");
        assert!(
            out.status.success(),
            "docker run {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return (Running::Container(name), format!("image {image}"));
    }
    let binary = std::env::var("TIDEMARK_RELEASE_BINARY").expect(
        "set TIDEMARK_RELEASE_BINARY (and optionally TIDEMARK_RELEASE_RUNNER) or TIDEMARK_RELEASE_IMAGE; docker/release-check.sh does",
    );
    let runner = std::env::var("TIDEMARK_RELEASE_RUNNER")
        .ok()
        .filter(|r| !r.is_empty());
    let mut cmd = match &runner {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(&binary);
            c
        }
        None => Command::new(&binary),
    };
    // The version first: the binary starts at all.
    let version = cmd
        .try_clone_args()
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("running {binary} --version: {e}"));
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    assert_eq!(
        version,
        format!("tidemark {}", env!("CARGO_PKG_VERSION")),
        "{binary} --version"
    );
    cmd.arg("-c").arg(repo("docker/config.toml"));
    cmd.arg("-l").arg("warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
    let what = match runner {
        Some(r) => format!("{r} {binary}"),
        None => binary,
    };
    (Running::Process(child), what)
}

trait CloneArgs {
    fn try_clone_args(&self) -> Command;
}

impl CloneArgs for Command {
    /// A new command with the same program and arguments (no environment changes).
    fn try_clone_args(&self) -> Command {
        let mut c = Command::new(self.get_program());
        c.args(self.get_args());
        c
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by docker/release-check.sh with TIDEMARK_RELEASE_BINARY or TIDEMARK_RELEASE_IMAGE"]
async fn release_artifact_serves_exact_metrics() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    let topic = unique_name("release");
    let group = "release-group";
    w.create_topic(&topic, 3).await;
    // Records 10 s apart, ending 60 s ago; one record per batch (the test broker's
    // ListOffsets LATEST is exact only then).
    let anchor = now_ms() - 60_000;
    let ts = |p: i64, offset: i64| anchor - (6 - offset) * 10_000 - p * 1_000;
    for p in 0..3 {
        for offset in 0..6 {
            w.produce(
                &topic,
                p as i32,
                Codec::None,
                &[(ts(p, offset), b"r".to_vec())],
            )
            .await;
        }
    }
    // p0: 4 behind; p1: caught up; p2: never committed (no series).
    w.commit_offsets(group, &[(&topic, 0, 2), (&topic, 1, 6)])
        .await;
    let seeded = now_ms();

    let port = common::broker::free_port().expect("free port");
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap.clone()),
        ("KAFKA_CLUSTER_NAME", "release".to_owned()),
        ("TIDEMARK_HTTP_PORT", port.to_string()),
        ("TIDEMARK_POLL_INTERVAL", "2s".to_owned()),
    ];
    let (mut running, what) = start_artifact(&env);
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    // Under emulation the first cycle is slower: allow a minute.
    loop {
        if let Running::Process(child) = &mut running {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{what} exited with {status} before it was ready");
            }
        }
        if tokio::net::TcpStream::connect(address).await.is_ok()
            && get(address, "/ready").await.status == 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} not ready on {address} within 60 s\n{}",
            running.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready_after = started.elapsed();
    let response = get(address, "/metrics").await;
    let scraped = now_ms();
    assert_eq!(response.status, 200, "{what} /metrics: {}", response.body);
    let m = Metrics::parse(&response.body);
    let t = topic.as_str();
    let at = |p: &'static str| [("cluster_name", "release"), ("topic", t), ("partition", p)];
    let g = |p: &'static str| {
        [
            ("cluster_name", "release"),
            ("group", group),
            ("topic", t),
            ("partition", p),
        ]
    };
    let mut bad = Vec::new();
    let mut expect = |name: &str, labels: &[(&str, &str)], want: Option<f64>| {
        let got = m.value(name, labels);
        if got != want {
            bad.push(format!("{name} {labels:?}: got {got:?}, want {want:?}"));
        }
    };
    for p in ["0", "1", "2"] {
        expect("kafka_partition_latest_offset", &at(p), Some(6.0));
        expect("kafka_partition_earliest_offset", &at(p), Some(0.0));
    }
    expect("kafka_consumergroup_group_offset", &g("0"), Some(2.0));
    expect("kafka_consumergroup_group_offset", &g("1"), Some(6.0));
    expect("kafka_consumergroup_group_offset", &g("2"), None);
    expect("kafka_consumergroup_group_lag", &g("0"), Some(4.0));
    expect("kafka_consumergroup_group_lag", &g("1"), Some(0.0));
    expect("kafka_consumergroup_group_lag", &g("2"), None);
    expect("kafka_consumergroup_group_lag_seconds", &g("1"), Some(0.0));
    expect(
        "kafka_consumergroup_group_messages_lost",
        &g("0"),
        Some(0.0),
    );
    let grp = [("cluster_name", "release"), ("group", group)];
    expect("kafka_consumergroup_group_max_lag", &grp, Some(4.0));
    expect("kafka_consumergroup_group_sum_lag", &grp, Some(4.0));
    expect("kafka_lag_exporter_up", &[], Some(1.0));
    // Time lag of p0: now − timestamp of the record at offset 2, "now" being the cycle's.
    let record = ts(0, 2);
    let (lo, hi) = (
        (seeded - record) as f64 / 1000.0 - 0.5,
        (scraped - record) as f64 / 1000.0 + 0.5,
    );
    match m.value("kafka_consumergroup_group_lag_seconds", &g("0")) {
        Some(v) if v >= lo && v <= hi => {}
        other => bad.push(format!(
            "kafka_consumergroup_group_lag_seconds p0: got {other:?}, want within [{lo}, {hi}]"
        )),
    }
    assert!(
        bad.is_empty(),
        "{what}:\n{}\n--- /metrics ---\n{}\n{}",
        bad.join("\n"),
        response.body,
        running.logs()
    );
    println!(
        "{what}: ready after {:.1} s, /metrics exact ({} samples)",
        ready_after.as_secs_f64(),
        m.samples.len()
    );
    drop(running);
}
