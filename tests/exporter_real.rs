//! The real exporter, in-process, against the real broker (Tansu): every series it serves is
//! compared with what the workload wrote (its ledger) or with what the broker reports to a
//! raw connection — never with tidemark's own reads.
//!
//! * the seed test stack (klag-exporter's demo topics and groups, plus a caught-up group, an
//!   idle producer, every codec and a partially committed group), one cycle, every series
//!   exact, at partition and at topic granularity;
//! * live group members (JoinGroup/SyncGroup/heartbeats): group state and member labels;
//! * broker outage and restart: endpoints keep answering fast, `up` follows, series recover;
//! * `promtool check metrics` and the OpenMetrics variant;
//! * klag-exporter's README configuration, unchanged but for the test-specific keys;
//! * shutdown while a cycle hangs on a frozen broker.

use tidemark_testkit as common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::exporter::{config, Metrics, Sample, GROUP_PARTITION_FAMILIES};
use common::members::{decode_assignment, describe_group, wait_for_state};
use common::promtool::ensure_promtool;
use common::truth::Window;
use common::workload::{fill, now_ms, scrambled, small_workload};
use common::{Broker, Codec, Connection, GroupMember, Ledger, RunningExporter, Workload};
use kafka_protocol::messages::{ApiKey, ListGroupsRequest, ListGroupsResponse};

const CLUSTER: &str = "test-cluster";
const CYCLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The compressed topics of the seed stack: (topic, codec of partition 0, of partition 1).
const COMPRESSED: [(&str, Codec, Codec); 4] = [
    ("gzip-topic", Codec::Gzip, Codec::Gzip),
    ("snappy-topic", Codec::Snappy, Codec::SnappyRaw),
    ("lz4-topic", Codec::Lz4, Codec::Lz4),
    ("zstd-topic", Codec::Zstd, Codec::Zstd),
];
/// A topic the `^__.*` blacklist hides.
const INTERNAL_TOPIC: &str = "__tidemark-internal";

/// klag-exporter's test stack, made deterministic, plus the cases its guide does not show.
///
/// | topic | partitions | records per partition |
/// |---|---|---|
/// | test-topic | 6 | 10 + 4p, batches of 4 |
/// | high-volume-topic | 3 | 50, batches of 10 (lz4, zstd, gzip, none in turn) |
/// | idle-topic | 2 | 4, produced 1 h ago |
/// | gzip/snappy/lz4/zstd-topic | 2 | 19: three 6-record compressed batches + 1 |
/// | empty-topic | 1 | none |
/// | __tidemark-internal | 1 | 3 (blacklisted) |
///
/// Groups: `test-consumer-group` (test-topic, lag 1, 3, 6, 10, 0, 15),
/// `high-volume-consumer` (lag 40, 7, 22), `caught-up-group` (lag 0 on test-topic,
/// high-volume-topic and the empty topic), `idle-consumer` (records 1 h old),
/// `compressed-consumer` (committed inside compressed batches), `partial-group` (a few
/// partitions only, one on the blacklisted topic).
async fn seed_stack(w: &mut Workload) {
    let anchor = now_ms() - 30_000;
    w.create_topic("test-topic", 6).await;
    w.create_topic("high-volume-topic", 3).await;
    w.create_topic("idle-topic", 2).await;
    for (topic, _, _) in COMPRESSED {
        w.create_topic(topic, 2).await;
    }
    w.create_topic("empty-topic", 1).await;
    w.create_topic(INTERNAL_TOPIC, 1).await;

    for p in 0..6 {
        let n = 10 + 4 * i64::from(p);
        fill(
            w,
            "test-topic",
            p,
            n,
            4,
            &[Codec::None],
            scrambled(anchor, p.into()),
        )
        .await;
    }
    let hv_codecs = [Codec::Lz4, Codec::Zstd, Codec::Gzip, Codec::None];
    for p in 0..3 {
        let ts = scrambled(anchor - 1_000, 11 * i64::from(p));
        fill(w, "high-volume-topic", p, 50, 10, &hv_codecs, ts).await;
    }
    // The idle producer stopped an hour ago: record o of 4 is 1 h + (3 − o) × 10 s old.
    let hour_ago = now_ms() - 3_600_000;
    for p in 0..2 {
        fill(w, "idle-topic", p, 4, 1, &[Codec::None], |o| {
            hour_ago - (3 - o) * 10_000
        })
        .await;
    }
    for (i, (topic, c0, c1)) in COMPRESSED.iter().enumerate() {
        for (p, codec) in [(0, *c0), (1, *c1)] {
            let ts = scrambled(anchor - 2_000, 5 * i as i64 + 3 * i64::from(p));
            fill(w, topic, p, 19, 6, &[codec], ts).await;
        }
    }
    fill(w, INTERNAL_TOPIC, 0, 3, 1, &[Codec::None], |o| anchor - o).await;

    let high = |w: &Workload, t: &str, p: i32| w.ledger().high_watermark(t, p);
    let lags = [1, 3, 6, 10, 0, 15];
    let offsets: Vec<(&str, i32, i64)> = (0..6)
        .map(|p| ("test-topic", p, high(w, "test-topic", p) - lags[p as usize]))
        .collect();
    w.commit_offsets("test-consumer-group", &offsets).await;

    let lags = [40, 7, 22];
    let offsets: Vec<(&str, i32, i64)> = (0..3)
        .map(|p| {
            let h = high(w, "high-volume-topic", p);
            ("high-volume-topic", p, h - lags[p as usize])
        })
        .collect();
    w.commit_offsets("high-volume-consumer", &offsets).await;

    let mut offsets: Vec<(&str, i32, i64)> = (0..6)
        .map(|p| ("test-topic", p, high(w, "test-topic", p)))
        .collect();
    offsets.extend((0..3).map(|p| ("high-volume-topic", p, high(w, "high-volume-topic", p))));
    offsets.push(("empty-topic", 0, 0));
    w.commit_offsets("caught-up-group", &offsets).await;

    w.commit_offsets(
        "idle-consumer",
        &[("idle-topic", 0, 3), ("idle-topic", 1, 1)],
    )
    .await;

    let offsets: Vec<(&str, i32, i64)> = COMPRESSED
        .iter()
        .flat_map(|(t, _, _)| [(*t, 0, 3), (*t, 1, 10)])
        .collect();
    w.commit_offsets("compressed-consumer", &offsets).await;

    w.commit_offsets(
        "partial-group",
        &[
            ("test-topic", 1, 5),
            ("test-topic", 4, 0),
            ("high-volume-topic", 2, 49),
            (INTERNAL_TOPIC, 0, 1),
        ],
    )
    .await;
}

fn seed_topic_allowed(topic: &str) -> bool {
    !topic.starts_with("__")
}

/// The seed stack's config: one long cycle, custom label, internal topics blacklisted.
fn seed_config(bootstrap: &str, granularity: &str) -> String {
    config(
        CLUSTER,
        bootstrap,
        &format!("poll_interval = \"60s\"\ngranularity = \"{granularity}\""),
        "topic_blacklist = [\"^__.*\"]\n\n[clusters.labels]\nenvironment = \"test\"",
    )
}

// ---------------------------------------------------------------------------------------
// Expected values, from the ledger
// ---------------------------------------------------------------------------------------

/// One expected group × partition row.
#[derive(Clone, Debug)]
struct Row {
    group: String,
    topic: String,
    partition: i32,
    committed: i64,
    high: i64,
    lag: i64,
    /// Inclusive range of the time lag; (0, 0) when lag is 0.
    lag_seconds: (f64, f64),
    /// (member_host, consumer_id, client_id).
    member: (String, String, String),
}

/// What the exposition must say about one cluster.
struct Expected<'a> {
    ledger: &'a Ledger,
    cluster: &'a str,
    /// `[clusters.labels]`.
    custom: Vec<(&'a str, &'a str)>,
    partition_granularity: bool,
    window: Window,
    topic_allowed: fn(&str) -> bool,
    /// Member labels per (group, topic, partition), as the broker reports them; missing
    /// rows get empty strings.
    members: BTreeMap<(String, String, i32), (String, String, String)>,
    /// Expected `kafka_consumergroup_group_state` per group (from a raw DescribeGroups).
    states: BTreeMap<String, f64>,
    /// Groups that exist but committed nothing: state only, no group × partition series.
    groups_without_commits: Vec<String>,
    /// Whether the last cycle succeeded (`tidemark_cluster_up`, `kafka_lag_exporter_up`).
    up: bool,
}

impl Expected<'_> {
    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (group, topic, partition, committed) in self.ledger.commits() {
            if !(self.topic_allowed)(topic) {
                continue;
            }
            let high = self.ledger.high_watermark(topic, partition);
            let lag = (high - committed).max(0);
            let lag_seconds = if lag == 0 {
                (0.0, 0.0)
            } else {
                let ts = self
                    .ledger
                    .timestamp_at(topic, partition, committed)
                    .unwrap_or_else(|| {
                        panic!("ledger has no record at {topic}-{partition}@{committed}")
                    });
                self.window.age_range(ts)
            };
            let member = self
                .members
                .get(&(group.to_owned(), topic.to_owned(), partition))
                .cloned()
                .unwrap_or_default();
            rows.push(Row {
                group: group.to_owned(),
                topic: topic.to_owned(),
                partition,
                committed,
                high,
                lag,
                lag_seconds,
                member,
            });
        }
        rows
    }

    fn base_labels(&self) -> Vec<(&str, &str)> {
        let mut labels = vec![("cluster_name", self.cluster)];
        labels.extend(self.custom.iter().copied());
        labels
    }

    /// Every discrepancy between `m` and what the ledger says, one line each.
    fn check(&self, m: &Metrics) -> Vec<String> {
        let mut bad = Vec::new();
        let rows = self.rows();
        let base = self.base_labels();
        let with = |extra: &[(&'static str, String)]| -> Vec<(String, String)> {
            base.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .chain(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
                .collect()
        };

        // Partition offsets: every partition of every monitored topic.
        let mut partitions = 0;
        for (topic, count) in self.ledger.topics() {
            if !(self.topic_allowed)(topic) {
                continue;
            }
            for p in 0..count {
                partitions += 1;
                let labels = with(&[("topic", topic.to_owned()), ("partition", p.to_string())]);
                let high = self.ledger.high_watermark(topic, p) as f64;
                self.exact(
                    m,
                    "kafka_partition_latest_offset",
                    &labels,
                    &[],
                    high,
                    &mut bad,
                );
                self.exact(
                    m,
                    "kafka_partition_earliest_offset",
                    &labels,
                    &[],
                    0.0,
                    &mut bad,
                );
            }
        }
        for family in [
            "kafka_partition_latest_offset",
            "kafka_partition_earliest_offset",
        ] {
            count(m, family, partitions, &mut bad);
        }

        // Group × partition.
        if self.partition_granularity {
            for r in &rows {
                let labels = with(&[
                    ("group", r.group.clone()),
                    ("topic", r.topic.clone()),
                    ("partition", r.partition.to_string()),
                    ("member_host", r.member.0.clone()),
                    ("consumer_id", r.member.1.clone()),
                    ("client_id", r.member.2.clone()),
                ]);
                let c = r.committed as f64;
                let h = r.high as f64;
                let ratio = if r.high > 0 { (h - c) / h * 100.0 } else { 0.0 };
                let f = "kafka_consumergroup_group_";
                self.exact(m, &format!("{f}offset"), &labels, &[], c, &mut bad);
                self.exact(m, &format!("{f}lag"), &labels, &[], r.lag as f64, &mut bad);
                self.exact(m, &format!("{f}messages_lost"), &labels, &[], 0.0, &mut bad);
                self.exact(
                    m,
                    &format!("{f}retention_margin"),
                    &labels,
                    &[],
                    c,
                    &mut bad,
                );
                self.exact(
                    m,
                    &format!("{f}lag_retention_ratio"),
                    &labels,
                    &[],
                    ratio,
                    &mut bad,
                );
                let flags = [
                    ("compaction_detected", "false"),
                    ("data_loss_detected", "false"),
                ];
                let name = format!("{f}lag_seconds");
                match self.one(m, &name, &labels, &flags, &mut bad) {
                    Some(v) if r.lag == 0 && v != 0.0 => {
                        bad.push(format!("{name} {labels:?} = {v}, want 0 (lag is 0)"))
                    }
                    Some(v) if !(r.lag_seconds.0..=r.lag_seconds.1).contains(&v) => {
                        bad.push(format!(
                            "{name} {labels:?} = {v}, want within [{:.3}, {:.3}] (record at offset {} of {}-{})",
                            r.lag_seconds.0, r.lag_seconds.1, r.committed, r.topic, r.partition
                        ))
                    }
                    _ => {}
                }
            }
            for family in GROUP_PARTITION_FAMILIES {
                count(m, family, rows.len(), &mut bad);
            }
        } else {
            for family in GROUP_PARTITION_FAMILIES {
                let n = m.find(family, &[]).len();
                if n > 0 {
                    bad.push(format!(
                        "{family}: {n} series at topic granularity, want none"
                    ));
                }
            }
        }

        // Group aggregates.
        let mut groups: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
        for r in &rows {
            groups.entry(r.group.as_str()).or_default().push(r);
        }
        let mut topic_sums = 0;
        for (group, rs) in &groups {
            let labels = with(&[("group", (*group).to_owned())]);
            let max_lag = rs.iter().map(|r| r.lag).max().unwrap_or(0) as f64;
            let sum_lag = rs.iter().map(|r| r.lag).sum::<i64>() as f64;
            let f = "kafka_consumergroup_group_";
            self.exact(m, &format!("{f}max_lag"), &labels, &[], max_lag, &mut bad);
            self.exact(m, &format!("{f}sum_lag"), &labels, &[], sum_lag, &mut bad);
            let lo = rs.iter().map(|r| r.lag_seconds.0).fold(0.0, f64::max);
            let hi = rs.iter().map(|r| r.lag_seconds.1).fold(0.0, f64::max);
            let name = format!("{f}max_lag_seconds");
            if let Some(v) = self.one(m, &name, &labels, &[], &mut bad) {
                if !(lo..=hi).contains(&v) {
                    bad.push(format!(
                        "{name} {labels:?} = {v}, want within [{lo:.3}, {hi:.3}]"
                    ));
                }
            }
            let mut by_topic: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
            for r in rs {
                by_topic.entry(r.topic.as_str()).or_default().push(r);
            }
            for (topic, rows) in by_topic {
                topic_sums += 1;
                let labels = with(&[("group", (*group).to_owned()), ("topic", topic.to_owned())]);
                let sum: i64 = rows.iter().map(|r| r.lag).sum();
                let max = rows.iter().map(|r| r.lag).max().unwrap_or(0);
                self.exact(
                    m,
                    &format!("{f}topic_sum_lag"),
                    &labels,
                    &[],
                    sum as f64,
                    &mut bad,
                );
                self.exact(
                    m,
                    &format!("{f}topic_max_lag"),
                    &labels,
                    &[],
                    max as f64,
                    &mut bad,
                );
                let lo = rows.iter().map(|r| r.lag_seconds.0).fold(0.0, f64::max);
                let hi = rows.iter().map(|r| r.lag_seconds.1).fold(0.0, f64::max);
                let name = format!("{f}topic_max_lag_seconds");
                if let Some(v) = self.one(m, &name, &labels, &[], &mut bad) {
                    if !(lo..=hi).contains(&v) {
                        bad.push(format!(
                            "{name} {labels:?} = {v}, want within [{lo:.3}, {hi:.3}]"
                        ));
                    }
                }
            }
        }
        for family in [
            "kafka_consumergroup_group_max_lag",
            "kafka_consumergroup_group_sum_lag",
            "kafka_consumergroup_group_max_lag_seconds",
        ] {
            count(m, family, groups.len(), &mut bad);
        }
        for family in [
            "kafka_consumergroup_group_topic_sum_lag",
            "kafka_consumergroup_group_topic_max_lag",
            "kafka_consumergroup_group_topic_max_lag_seconds",
        ] {
            count(m, family, topic_sums, &mut bad);
        }

        // Groups without commits: no group × partition series, no per-topic sums, and
        // whatever aggregates are shown say "no lag".
        for group in &self.groups_without_commits {
            for s in m
                .samples
                .iter()
                .filter(|s| s.labels.get("group") == Some(group))
            {
                let allowed = [
                    "kafka_consumergroup_group_state",
                    "kafka_consumergroup_group_max_lag",
                    "kafka_consumergroup_group_sum_lag",
                ];
                if !allowed.contains(&s.name.as_str()) {
                    bad.push(format!("group {group} committed nothing but has {s:?}"));
                } else if s.name != "kafka_consumergroup_group_state" && s.value != 0.0 {
                    bad.push(format!("group {group} committed nothing: {s:?}, want 0"));
                }
            }
        }

        // Group state, as the broker reports it.
        // The test broker has classic groups only (it has no KIP-848 heartbeat).
        for (group, state) in &self.states {
            let labels = with(&[
                ("group", group.clone()),
                ("group_type", "classic".to_owned()),
            ]);
            let name = "kafka_consumergroup_group_state";
            self.exact(m, name, &labels, &[], *state, &mut bad);
        }
        count(
            m,
            "kafka_consumergroup_group_state",
            self.states.len(),
            &mut bad,
        );

        // Nothing about blacklisted topics.
        for s in &m.samples {
            if let Some(topic) = s.labels.get("topic") {
                if !(self.topic_allowed)(topic) {
                    bad.push(format!("series for a filtered topic: {s:?}"));
                }
            }
        }

        // Operational families.
        let cluster = with(&[]);
        let up = if self.up { 1.0 } else { 0.0 };
        self.exact(m, "tidemark_cluster_up", &cluster, &[], up, &mut bad);
        for name in [
            "kafka_lag_exporter_compaction_detected_total",
            "kafka_lag_exporter_data_loss_partitions_total",
        ] {
            self.exact(m, name, &cluster, &[], 0.0, &mut bad);
        }
        for name in [
            "kafka_consumergroup_poll_time_ms",
            "tidemark_poll_time_seconds",
            "kafka_lag_exporter_scrape_duration_seconds",
        ] {
            match self.one(m, name, &cluster, &[], &mut bad) {
                Some(v) if !(v >= 0.0 && v.is_finite()) => bad.push(format!("{name} = {v}")),
                _ => {}
            }
        }
        match m.find("kafka_lag_exporter_up", &[]).as_slice() {
            [s] if s.labels.is_empty() && s.value == up => {}
            other => bad.push(format!(
                "kafka_lag_exporter_up: want one unlabelled series = {up}, got {other:?}"
            )),
        }
        bad
    }

    /// The value of the one series of `name` with exactly `labels` + `flags` as its label
    /// set; records a line in `bad` when it is missing or its label set differs.
    fn one(
        &self,
        m: &Metrics,
        name: &str,
        labels: &[(String, String)],
        flags: &[(&str, &str)],
        bad: &mut Vec<String>,
    ) -> Option<f64> {
        let mut want: BTreeMap<String, String> = labels.iter().cloned().collect();
        want.extend(
            flags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        // Look the series up by its identifying labels, then compare the whole set.
        let keys: Vec<(&str, &str)> = labels
            .iter()
            .filter(|(k, _)| ["group", "topic", "partition", "cluster_name"].contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match m.find(name, &keys).as_slice() {
            [] => {
                bad.push(format!("missing: {name} {want:?}"));
                None
            }
            [s] => {
                if s.labels != want {
                    bad.push(format!(
                        "{name}: label set {:?}, want exactly {want:?}",
                        s.labels
                    ));
                }
                Some(s.value)
            }
            many => {
                bad.push(format!("{name} {want:?}: {} series {many:?}", many.len()));
                None
            }
        }
    }

    fn exact(
        &self,
        m: &Metrics,
        name: &str,
        labels: &[(String, String)],
        flags: &[(&str, &str)],
        want: f64,
        bad: &mut Vec<String>,
    ) {
        if let Some(v) = self.one(m, name, labels, flags, bad) {
            if (v - want).abs() > 1e-9 * want.abs().max(1.0) {
                bad.push(format!("{name} {labels:?} = {v}, want {want}"));
            }
        }
    }
}

fn count(m: &Metrics, family: &str, want: usize, bad: &mut Vec<String>) {
    let n = m.find(family, &[]).len();
    if n != want {
        bad.push(format!("{family}: {n} series, want {want}"));
    }
}

fn assert_clean(what: &str, bad: &[String], body: &str) {
    assert!(
        bad.is_empty(),
        "{what}: {} discrepancies:\n  {}\n--- exposition ---\n{body}",
        bad.len(),
        bad.join("\n  ")
    );
}

/// `kafka_consumergroup_group_state` for a DescribeGroups state string (metrics.md).
fn state_code(state: &str) -> f64 {
    match state {
        "PreparingRebalance" => 1.0,
        "CompletingRebalance" => 2.0,
        "Stable" => 3.0,
        "Dead" => 4.0,
        "Empty" => 5.0,
        "Assigning" => 6.0,
        "Reconciling" => 7.0,
        _ => 0.0,
    }
}

/// The group state of every group in the ledger, from raw DescribeGroups.
async fn raw_states(bootstrap: &str, ledger: &Ledger) -> BTreeMap<String, f64> {
    let groups: BTreeSet<&str> = ledger.commits().map(|(g, _, _, _)| g).collect();
    let mut conn = Connection::connect(bootstrap)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut states = BTreeMap::new();
    for g in groups {
        let d = describe_group(&mut conn, g)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        states.insert(g.to_owned(), state_code(d.group_state.as_str()));
    }
    states
}

/// Every group the broker lists (raw ListGroups).
async fn list_groups(conn: &mut Connection) -> BTreeSet<String> {
    let version = conn
        .version(ApiKey::ListGroups, 4)
        .unwrap_or_else(|e| panic!("{e}"));
    let resp: ListGroupsResponse = conn
        .request(ApiKey::ListGroups, version, &ListGroupsRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.error_code, 0, "ListGroups error");
    resp.groups
        .iter()
        .map(|g| g.group_id.0.as_str().to_owned())
        .collect()
}

/// Starts the exporter and waits for its first cycle; the window that cycle ran in is
/// [start, scrape].
async fn first_cycle(toml: &str) -> (RunningExporter, i64) {
    let start_ms = now_ms();
    let exporter = RunningExporter::start(toml).await;
    exporter.wait_cycles(CLUSTER, 1, CYCLE_TIMEOUT).await;
    (exporter, start_ms)
}

// ---------------------------------------------------------------------------------------
// 1. The seed test stack
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_stack_one_cycle_every_series_exact() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    seed_stack(&mut w).await;
    let states = raw_states(&broker.bootstrap, w.ledger()).await;

    let (exporter, start_ms) = first_cycle(&seed_config(&broker.bootstrap, "partition")).await;
    let response = exporter.get("/metrics").await;
    let end_ms = now_ms();
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .content_type
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        response.content_type
    );
    let m = Metrics::parse(&response.body);
    assert_eq!(exporter.cycles_ok(CLUSTER), 1, "one cycle only");

    let expected = Expected {
        ledger: w.ledger(),
        cluster: CLUSTER,
        custom: vec![("environment", "test")],
        partition_granularity: true,
        window: Window { start_ms, end_ms },
        topic_allowed: seed_topic_allowed,
        members: BTreeMap::new(),
        states,
        groups_without_commits: Vec::new(),
        up: true,
    };
    let bad = expected.check(&m);
    assert_clean("seed stack, partition granularity", &bad, &response.body);

    // The spot checks a reader of the seed guide would make.
    let committed_partitions = w
        .ledger()
        .commits()
        .filter(|(_, t, _, _)| seed_topic_allowed(t))
        .count();
    assert_eq!(committed_partitions, 6 + 3 + 10 + 2 + 8 + 3);
    assert_eq!(
        m.find("kafka_consumergroup_group_lag", &[]).len(),
        committed_partitions
    );
    let idle = m
        .value(
            "kafka_consumergroup_group_lag_seconds",
            &[("group", "idle-consumer"), ("partition", "0")],
        )
        .expect("idle-consumer time lag");
    let produced_hour_ago = w
        .ledger()
        .timestamp_at("idle-topic", 0, 3)
        .expect("idle record");
    let hour_ago_then = (end_ms - produced_hour_ago - 3_600_000) as f64 / 1000.0;
    assert!(
        (3599.0..=3601.0 + hour_ago_then).contains(&idle),
        "records produced 1 h ago: time lag {idle}"
    );
    for (key, label) in [
        ("topic", "empty-topic"),
        ("group", "partial-group"),
        ("group", "caught-up-group"),
    ] {
        assert!(
            !m.find("kafka_consumergroup_group_lag", &[(key, label)])
                .is_empty(),
            "{key}={label} has lag series"
        );
    }
    assert!(
        m.find(
            "kafka_consumergroup_group_lag",
            &[
                ("group", "partial-group"),
                ("topic", "test-topic"),
                ("partition", "0")
            ]
        )
        .is_empty(),
        "no series where partial-group never committed"
    );
    exporter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_stack_topic_granularity_keeps_aggregates_only() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    seed_stack(&mut w).await;
    let states = raw_states(&broker.bootstrap, w.ledger()).await;

    let (exporter, start_ms) = first_cycle(&seed_config(&broker.bootstrap, "topic")).await;
    let response = exporter.get("/metrics").await;
    let end_ms = now_ms();
    assert_eq!(response.status, 200);
    let m = Metrics::parse(&response.body);
    let expected = Expected {
        ledger: w.ledger(),
        cluster: CLUSTER,
        custom: vec![("environment", "test")],
        partition_granularity: false,
        window: Window { start_ms, end_ms },
        topic_allowed: seed_topic_allowed,
        members: BTreeMap::new(),
        states,
        groups_without_commits: Vec::new(),
        up: true,
    };
    let bad = expected.check(&m);
    assert_clean("seed stack, topic granularity", &bad, &response.body);
    for family in GROUP_PARTITION_FAMILIES {
        assert!(
            !response
                .body
                .lines()
                .any(|l| l.starts_with(&format!("# TYPE {family} "))),
            "{family} is declared at topic granularity"
        );
    }
    exporter.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 2. Live members
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_members_make_groups_stable_with_broker_reported_labels() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    let anchor = now_ms() - 20_000;
    w.create_topic("events", 4).await;
    for p in 0..4 {
        fill(
            &mut w,
            "events",
            p,
            6 + i64::from(p),
            2,
            &[Codec::None],
            scrambled(anchor, p.into()),
        )
        .await;
    }
    let (busy, idle) = ("live-consumers", "live-no-commits");
    let busy_coordinator = w.coordinator(busy).await.unwrap_or_else(|e| panic!("{e}"));
    let idle_coordinator = w.coordinator(idle).await.unwrap_or_else(|e| panic!("{e}"));
    let joined = Instant::now();
    let (mut member, idle_member) = tokio::join!(
        GroupMember::join(&busy_coordinator, busy, &[("events", 4)]),
        GroupMember::join(&idle_coordinator, idle, &[("events", 4)]),
    );
    println!("two members joined in {:?}", joined.elapsed());
    let all: BTreeMap<String, Vec<i32>> = [("events".to_owned(), vec![0, 1, 2, 3])].into();
    assert_eq!(member.assignment, all, "a lone member gets every partition");
    assert_eq!(idle_member.assignment, all);

    // The member commits on three of its four partitions (none on events-3).
    let high = |p| w.ledger().high_watermark("events", p);
    let offsets = [
        ("events", 0, high(0) - 4),
        ("events", 1, high(1)),
        ("events", 2, 1),
    ];
    member.commit(w.ledger_mut(), &offsets).await;

    let mut raw = Connection::connect(&broker.bootstrap)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for g in [busy, idle] {
        wait_for_state(&mut raw, g, "Stable", Duration::from_secs(30)).await;
    }
    // Both members are alive: each has had a heartbeat accepted.
    let deadline = Instant::now() + Duration::from_secs(10);
    while member.heartbeats().ok == 0 || idle_member.heartbeats().ok == 0 {
        assert!(
            Instant::now() < deadline,
            "no accepted heartbeat: {:?} {:?}",
            member.heartbeats(),
            idle_member.heartbeats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One cycle, taken while both groups are Stable.
    let toml = config(
        CLUSTER,
        &broker.bootstrap,
        "poll_interval = \"60s\"\ngranularity = \"partition\"",
        "",
    );
    let (exporter, start_ms) = first_cycle(&toml).await;
    let response = exporter.get("/metrics").await;
    let end_ms = now_ms();
    assert_eq!(response.status, 200);
    let m = Metrics::parse(&response.body);

    // What the broker itself says about the members (read after the scrape).
    let mut members = BTreeMap::new();
    let mut states = BTreeMap::new();
    for g in [busy, idle] {
        let d = describe_group(&mut raw, g)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.group_state.as_str(), "Stable", "{g} still Stable");
        assert_eq!(d.members.len(), 1, "{g}: one member {d:?}");
        println!(
            "broker describes {g}: state {:?}, member_id {:?}, client_id {:?}, client_host {:?}, assignment {} bytes, metadata {} bytes",
            d.group_state.as_str(),
            d.members[0].member_id.as_str(),
            d.members[0].client_id.as_str(),
            d.members[0].client_host.as_str(),
            d.members[0].member_assignment.len(),
            d.members[0].member_metadata.len()
        );
        states.insert(g.to_owned(), state_code(d.group_state.as_str()));
        for mem in &d.members {
            let assigned =
                decode_assignment(&mem.member_assignment).unwrap_or_else(|e| panic!("{e}"));
            for (topic, ps) in assigned {
                for p in ps {
                    members.insert(
                        (g.to_owned(), topic.clone(), p),
                        (
                            mem.client_host.as_str().to_owned(),
                            mem.member_id.as_str().to_owned(),
                            mem.client_id.as_str().to_owned(),
                        ),
                    );
                }
            }
        }
    }
    assert_eq!(states[busy], 3.0);
    assert_eq!(
        m.value("kafka_consumergroup_group_state", &[("group", busy)]),
        Some(3.0),
        "a group with a live member is Stable"
    );
    // An exporter discovers groups with ListGroups. Apache Kafka lists a group that has
    // members but no commits; Tansu lists only groups with committed offsets. Expect
    // what this broker lists: the idle group's state if it is listed, nothing otherwise.
    let listed = list_groups(&mut raw).await;
    println!("broker lists groups {listed:?}");
    assert!(listed.contains(busy), "{busy} is listed: {listed:?}");
    if listed.contains(idle) {
        assert_eq!(
            m.value("kafka_consumergroup_group_state", &[("group", idle)]),
            Some(3.0),
            "a listed group with a live member is Stable"
        );
    } else {
        states.remove(idle);
        assert!(
            m.samples
                .iter()
                .all(|s| s.labels.get("group").map(String::as_str) != Some(idle)),
            "{idle} is not listed by the broker, so it has no series"
        );
    }
    let expected = Expected {
        ledger: w.ledger(),
        cluster: CLUSTER,
        custom: Vec::new(),
        partition_granularity: true,
        window: Window { start_ms, end_ms },
        topic_allowed: |_| true,
        members,
        states,
        groups_without_commits: vec![idle.to_owned()],
        up: true,
    };
    let bad = expected.check(&m);
    assert_clean("live members", &bad, &response.body);
    assert!(
        m.find(
            "kafka_consumergroup_group_offset",
            &[("group", busy), ("partition", "3")]
        )
        .is_empty(),
        "no series for the partition the member never committed"
    );
    for (name, mem) in [(busy, &member), (idle, &idle_member)] {
        let hb = mem.heartbeats();
        assert!(hb.ok > 0 && hb.errors == 0, "{name} heartbeats: {hb:?}");
    }
    exporter.shutdown().await;
    drop(idle_member);
    member.leave().await.unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------------------------------
// 3. Broker down and back
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_and_back_serves_fast_then_recovers() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    small_workload(
        &mut w,
        "orders",
        &[5, 7, 9],
        "before-restart",
        &[2, 4, 6],
        0,
    )
    .await;
    let toml = config(
        CLUSTER,
        &broker.bootstrap,
        "poll_interval = \"1s\"\ngranularity = \"partition\"",
        "",
    );
    let start_ms = now_ms();
    let exporter = RunningExporter::start(&toml).await;
    exporter.wait_cycles(CLUSTER, 1, CYCLE_TIMEOUT).await;
    let first = exporter.metrics().await;
    assert_eq!(first.value("kafka_lag_exporter_up", &[]), Some(1.0));
    for p in 0..3 {
        let ps = p.to_string();
        let labels = [("group", "before-restart"), ("partition", ps.as_str())];
        assert_eq!(
            first.value("kafka_consumergroup_group_lag", &labels),
            w.ledger()
                .lag("before-restart", "orders", p)
                .map(|l| l as f64)
        );
    }

    let states_before = raw_states(&broker.bootstrap, w.ledger()).await;

    // Down: SIGKILL, connections reset, the port refuses.
    let failed = exporter.cycles_failed(CLUSTER);
    broker.stop().await;
    exporter
        .wait_failures(CLUSTER, failed + 1, CYCLE_TIMEOUT)
        .await;
    let mut health_ms = Vec::new();
    let mut metrics_ms = Vec::new();
    let mut down = None;
    for _ in 0..5 {
        let h = exporter.get("/health").await;
        assert_eq!((h.status, h.body.as_str()), (200, "OK\n"));
        health_ms.push(h.latency);
        let r = exporter.get("/metrics").await;
        assert_eq!(r.status, 200);
        metrics_ms.push(r.latency);
        down = Some(r);
    }
    println!("while the broker is down: /health latencies {health_ms:?}, /metrics latencies {metrics_ms:?}");
    for l in health_ms.iter().chain(&metrics_ms) {
        assert!(
            *l < Duration::from_millis(50),
            "endpoint took {l:?} while the broker is down"
        );
    }
    let ready = exporter.get("/ready").await;
    assert_eq!(
        ready.status, 200,
        "ready stays: a cycle succeeded before: {}",
        ready.body
    );
    let down = down.expect("scraped");
    let m = Metrics::parse(&down.body);
    assert_eq!(
        m.value("kafka_lag_exporter_up", &[]),
        Some(0.0),
        "{}",
        down.body
    );
    assert_eq!(
        m.value("tidemark_cluster_up", &[("cluster_name", CLUSTER)]),
        Some(0.0)
    );
    // The last good series are still served, unchanged.
    let last_good = Expected {
        ledger: w.ledger(),
        cluster: CLUSTER,
        custom: Vec::new(),
        partition_granularity: true,
        window: Window {
            start_ms,
            end_ms: now_ms(),
        },
        topic_allowed: |_| true,
        members: BTreeMap::new(),
        states: states_before,
        groups_without_commits: Vec::new(),
        up: false,
    };
    let bad = last_good.check(&m);
    assert_clean("last good series while down", &bad, &down.body);

    // Back, empty: a new workload with different numbers, the old group is gone.
    broker.start_again().await;
    // Same topic and partly the same committed offsets as before, but other records with
    // other timestamps (salt 30): a value from before the restart cannot pass for a new one.
    let old_ledger = w.ledger().clone();
    let mut w = Workload::connect(&broker.bootstrap).await;
    small_workload(
        &mut w,
        "orders",
        &[4, 8, 3],
        "after-restart",
        &[1, 0, 3],
        30,
    )
    .await;
    small_workload(&mut w, "payments", &[6], "after-restart-payments", &[5], 30).await;
    // Cycle n+1 may have started before the workload was complete; n+2 cannot, so the
    // report served after it was computed after `start_ms`.
    let start_ms = now_ms();
    let n = exporter.cycles_ok(CLUSTER);
    let resumed = Instant::now();
    exporter.wait_cycles(CLUSTER, n + 2, CYCLE_TIMEOUT).await;
    println!(
        "two good cycles {:?} after the restarted broker was set up",
        resumed.elapsed()
    );
    let response = exporter.get("/metrics").await;
    let end_ms = now_ms();
    let m = Metrics::parse(&response.body);
    let states = raw_states(&broker.bootstrap, w.ledger()).await;
    let expected = Expected {
        ledger: w.ledger(),
        cluster: CLUSTER,
        custom: Vec::new(),
        partition_granularity: true,
        window: Window { start_ms, end_ms },
        topic_allowed: |_| true,
        members: BTreeMap::new(),
        states,
        groups_without_commits: Vec::new(),
        up: true,
    };
    // orders-0@3 existed before and after the restart with different records: the
    // exporter must serve the new record's age, not a cached one from the old log.
    let mut bad = expected.check(&m);
    // Name the likely cause when a time lag matches the record that was at the same
    // offset before the restart.
    for r in expected.rows() {
        let Some(old_ts) = old_ledger.timestamp_at(&r.topic, r.partition, r.committed) else {
            continue;
        };
        let ps = r.partition.to_string();
        let labels = [
            ("group", r.group.as_str()),
            ("topic", r.topic.as_str()),
            ("partition", ps.as_str()),
        ];
        let Some(v) = m.value("kafka_consumergroup_group_lag_seconds", &labels) else {
            continue;
        };
        let (lo, hi) = Window { start_ms, end_ms }.age_range(old_ts);
        if r.lag > 0 && (lo..=hi).contains(&v) && !(r.lag_seconds.0..=r.lag_seconds.1).contains(&v)
        {
            bad.push(format!(
                "  -> {}-{}@{} time lag {v} is the age of the record at that offset BEFORE the restart (timestamp {old_ts}); the record there now has timestamp {} (a stale cached timestamp?)",
                r.topic,
                r.partition,
                r.committed,
                w.ledger().timestamp_at(&r.topic, r.partition, r.committed).unwrap_or(-1)
            ));
        }
    }
    assert_clean("after the broker came back", &bad, &response.body);
    assert!(
        m.find(
            "kafka_consumergroup_group_lag",
            &[("group", "before-restart")]
        )
        .is_empty(),
        "the old group's series are gone"
    );
    exporter.shutdown().await;
}

/// Deletes a topic with a raw DeleteTopics request.
async fn delete_topic(w: &mut Workload, topic: &str) {
    use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let conn = w.connection().await.unwrap_or_else(|e| panic!("{e}"));
    let version = conn
        .version(ApiKey::DeleteTopics, 5)
        .unwrap_or_else(|e| panic!("{e}"));
    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_string(topic.to_owned()))])
        .with_timeout_ms(10_000);
    let resp: DeleteTopicsResponse = conn
        .request(ApiKey::DeleteTopics, version, &req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for r in &resp.responses {
        assert_eq!(r.error_code, 0, "deleting {topic}: {r:?}");
    }
}

/// A topic deleted and created again reuses offsets from 0 with other records: the time
/// lag must come from the record at the committed offset NOW, not from what was at that
/// offset before. Both states are set up between two cycles, so no cycle sees the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_topic_gets_fresh_timestamps() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    small_workload(&mut w, "orders", &[6], "g", &[2], 0).await;
    let toml = config(
        CLUSTER,
        &broker.bootstrap,
        "poll_interval = \"5s\"\ngranularity = \"partition\"",
        "",
    );
    let (exporter, start_ms) = first_cycle(&toml).await;
    let response = exporter.get("/metrics").await;
    let end_ms = now_ms();
    let states = raw_states(&broker.bootstrap, w.ledger()).await;
    let before = Expected {
        ledger: w.ledger(),
        cluster: CLUSTER,
        custom: Vec::new(),
        partition_granularity: true,
        window: Window { start_ms, end_ms },
        topic_allowed: |_| true,
        members: BTreeMap::new(),
        states: states.clone(),
        groups_without_commits: Vec::new(),
        up: true,
    };
    let bad = before.check(&Metrics::parse(&response.body));
    assert_clean("before the topic is recreated", &bad, &response.body);

    // Between cycle 1 and cycle 2: delete, recreate with other timestamps, commit the
    // same offset again.
    delete_topic(&mut w, "orders").await;
    let old_ledger = w.ledger().clone();
    let mut w = Workload::connect(&broker.bootstrap).await;
    small_workload(&mut w, "orders", &[6], "g", &[2], 30).await;
    let start_ms = now_ms();
    assert_eq!(
        exporter.cycles_ok(CLUSTER),
        1,
        "the topic was recreated within one poll interval"
    );
    let old = old_ledger.timestamp_at("orders", 0, 4).expect("old record");
    let new = w.ledger().timestamp_at("orders", 0, 4).expect("new record");
    assert!(
        (old - new).abs() >= 100_000,
        "the two records' timestamps differ clearly"
    );
    exporter.wait_cycles(CLUSTER, 2, CYCLE_TIMEOUT).await;
    let response = exporter.get("/metrics").await;
    let end_ms = now_ms();
    let after = Expected {
        ledger: w.ledger(),
        cluster: CLUSTER,
        custom: Vec::new(),
        partition_granularity: true,
        window: Window { start_ms, end_ms },
        topic_allowed: |_| true,
        members: BTreeMap::new(),
        states,
        groups_without_commits: Vec::new(),
        up: true,
    };
    let mut bad = after.check(&Metrics::parse(&response.body));
    let m = Metrics::parse(&response.body);
    if let Some(v) = m.value("kafka_consumergroup_group_lag_seconds", &[("group", "g")]) {
        let (lo, hi) = Window { start_ms, end_ms }.age_range(old);
        if (lo..=hi).contains(&v) {
            bad.push(format!(
                "  -> orders-0@4 time lag {v} is the age of the DELETED record (timestamp {old}); the record there now has timestamp {new}"
            ));
        }
    }
    assert_clean("after the topic was recreated", &bad, &response.body);
    exporter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_started_while_the_broker_is_down_is_live_not_ready() {
    // A port nobody listens on: bind, read it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let toml = config(
        CLUSTER,
        &format!("127.0.0.1:{port}"),
        "poll_interval = \"1s\"",
        "",
    );
    let exporter = RunningExporter::start(&toml).await;
    exporter.wait_failures(CLUSTER, 1, CYCLE_TIMEOUT).await;
    let ready = exporter.get("/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.contains(CLUSTER),
        "/ready names the cluster: {}",
        ready.body
    );
    let health = exporter.get("/health").await;
    assert_eq!(health.status, 200);
    let m = exporter.metrics().await;
    assert_eq!(m.value("kafka_lag_exporter_up", &[]), Some(0.0));
    assert_eq!(
        m.value("tidemark_cluster_up", &[("cluster_name", CLUSTER)]),
        Some(0.0)
    );
    assert!(m.find("kafka_partition_latest_offset", &[]).is_empty());
    exporter.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 4. promtool and OpenMetrics
// ---------------------------------------------------------------------------------------

const ACCEPTED_FINDING: &str =
    "kafka_consumergroup_poll_time_ms metric names should not contain abbreviated units";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_exposition_and_openmetrics_is_served() {
    let promtool = tokio::task::spawn_blocking(ensure_promtool)
        .await
        .expect("promtool check task")
        .unwrap_or_else(|e| panic!("promtool is needed: {e}"));
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    seed_stack(&mut w).await;
    let (exporter, _) = first_cycle(&seed_config(&broker.bootstrap, "partition")).await;
    let text = exporter.get("/metrics").await;
    assert_eq!(text.status, 200);
    assert!(
        text.body.contains("kafka_consumergroup_group_lag_seconds{"),
        "the body has group series"
    );

    let body = text.body.clone();
    let (status, output) = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", promtool.display()));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("feeding promtool");
        let out = child.wait_with_output().expect("promtool output");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    })
    .await
    .expect("promtool task");
    println!("promtool check metrics exited {status:?}:\n{output}");
    let unexpected: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != ACCEPTED_FINDING)
        .collect();
    assert!(
        unexpected.is_empty(),
        "promtool findings besides the accepted one:\n{}\n--- exposition ---\n{}",
        unexpected.join("\n"),
        text.body
    );
    // 0 = clean, 3 = lint findings (only the accepted one, checked above).
    assert!(
        matches!(status, Some(0 | 3)),
        "promtool exit {status:?}: {output}"
    );

    // OpenMetrics when asked: same samples, counters typed as such, # EOF at the end.
    let om = exporter
        .get_with_accept("/metrics", "application/openmetrics-text; version=1.0.0")
        .await;
    assert_eq!(om.status, 200);
    assert!(
        om.content_type.starts_with("application/openmetrics-text"),
        "content type {:?}",
        om.content_type
    );
    assert!(om.body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    for counter in [
        "kafka_lag_exporter_compaction_detected",
        "kafka_lag_exporter_data_loss_partitions",
    ] {
        assert!(
            om.body.contains(&format!("# TYPE {counter} counter\n")),
            "{counter} is a counter in OpenMetrics"
        );
        assert!(
            text.body
                .contains(&format!("# TYPE {counter}_total counter\n")),
            "{counter}_total is a counter in the text format"
        );
    }
    let key = |s: &Sample| format!("{} {:?} {}", s.name, s.labels, s.value);
    let om_samples: BTreeSet<String> = Metrics::parse(&om.body).samples.iter().map(key).collect();
    let text_samples: BTreeSet<String> =
        Metrics::parse(&text.body).samples.iter().map(key).collect();
    assert_eq!(
        om_samples, text_samples,
        "both formats carry the same samples"
    );
    exporter.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 5. klag-exporter's README configuration
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn klag_exporter_readme_config_runs_unchanged() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    small_workload(&mut w, "orders", &[6, 9], "billing", &[2, 5], 0).await;

    let pid = std::process::id();
    let client_var = format!("TIDEMARK_EXPORTER_REAL_{pid}_CLIENT_ID");
    let session_var = format!("TIDEMARK_EXPORTER_REAL_{pid}_SESSION_TIMEOUT");
    std::env::set_var(&client_var, "klag-compat-check");
    std::env::set_var(&session_var, "45000");
    // The README's example, key for key and value for value, reordered; the only
    // differences: the HTTP listener is ephemeral, bootstrap is the test broker, and the
    // SASL consumer properties are a plaintext cluster's usual librdkafka keys.
    let toml = format!(
        r#"# klag-exporter README example (test edits: listener, bootstrap, consumer properties)
[exporter]
granularity = "partition"  # or "topic"
poll_interval = "30s"
http_host = "127.0.0.1"
http_port = 0

[exporter.otel]
export_interval = "60s"
endpoint = "http://localhost:4317"
enabled = false

[exporter.timestamp_sampling]
max_concurrent_fetches = 10
cache_ttl = "60s"
enabled = true

# Optional tuning block of the README, left commented out as there:
# [exporter.performance]
# max_concurrent_watermarks = 50
# max_concurrent_groups = 10
# offset_fetch_timeout = "10s"
# kafka_timeout = "30s"

[[clusters]]
name = "production"
bootstrap_servers = "{bootstrap}"
topic_blacklist = ["__.*"]  # internal topics stay out
topic_whitelist = [".*"]
group_blacklist = []
group_whitelist = [".*"]

[clusters.labels]
datacenter = "us-east-1"
environment = "production"

[clusters.consumer_properties]
"enable.auto.commit" = "false"
"auto.offset.reset" = "earliest"
"session.timeout.ms" = "${{{session_var}}}"
"client.id" = "${{{client_var}}}"
"security.protocol" = "PLAINTEXT"
"#,
        bootstrap = broker.bootstrap,
    );
    let start_ms = now_ms();
    let exporter = RunningExporter::start(&toml).await;
    exporter.wait_cycles("production", 1, CYCLE_TIMEOUT).await;
    let response = exporter.get("/metrics").await;
    let end_ms = now_ms();
    assert_eq!(response.status, 200);
    assert_eq!(exporter.get("/ready").await.status, 200);
    let m = Metrics::parse(&response.body);
    let states = raw_states(&broker.bootstrap, w.ledger()).await;
    let expected = Expected {
        ledger: w.ledger(),
        cluster: "production",
        custom: vec![("datacenter", "us-east-1"), ("environment", "production")],
        partition_granularity: true,
        window: Window { start_ms, end_ms },
        topic_allowed: |t| !t.starts_with("__"),
        members: BTreeMap::new(),
        states,
        groups_without_commits: Vec::new(),
        up: true,
    };
    let bad = expected.check(&m);
    assert_clean("klag-exporter README config", &bad, &response.body);
    exporter.shutdown().await;
    std::env::remove_var(&client_var);
    std::env::remove_var(&session_var);
}

// ---------------------------------------------------------------------------------------
// 6. Shutdown while a cycle is stuck
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_while_a_cycle_hangs() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    small_workload(&mut w, "orders", &[3], "g", &[1], 0).await;
    let toml = config(CLUSTER, &broker.bootstrap, "poll_interval = \"1s\"", "");
    let exporter = RunningExporter::start(&toml).await;
    exporter.wait_cycles(CLUSTER, 1, CYCLE_TIMEOUT).await;

    broker.pause().await;
    // With a 1 s interval the next cycle starts within a second and then hangs on the
    // frozen broker (requests time out only after kafka_timeout, 30 s by default).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (ok, failed) = (exporter.cycles_ok(CLUSTER), exporter.cycles_failed(CLUSTER));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        (exporter.cycles_ok(CLUSTER), exporter.cycles_failed(CLUSTER)),
        (ok, failed),
        "a cycle is in flight and stuck"
    );
    let started = Instant::now();
    exporter.shutdown().await;
    let took = started.elapsed();
    println!("shutdown with a stuck cycle took {took:?}");
    broker.unpause().await;
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
}

// ---------------------------------------------------------------------------------------
// Kafka 4.x group APIs on a broker that advertises them but runs classic groups only
// ---------------------------------------------------------------------------------------

/// Requests of each (broker, API) counted by the exporter, and its cycles, from one scrape.
fn request_counts(m: &Metrics) -> (BTreeMap<(String, String), f64>, f64) {
    let counts = m
        .find("tidemark_kafka_requests_total", &[])
        .into_iter()
        .map(|s| {
            (
                (s.labels["broker"].clone(), s.labels["api"].clone()),
                s.value,
            )
        })
        .collect();
    let cycles = m
        .value("tidemark_cycle_duration_seconds_count", &[])
        .expect("cycle count");
    (counts, cycles)
}

/// The test broker advertises ConsumerGroupDescribe (API 69) but its groups are classic:
/// tidemark must read them as before — no request of the new group APIs, no request
/// errors, no collection errors, and requests per cycle per broker within the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_groups_on_a_broker_with_the_new_group_apis_cost_no_extra_requests() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    seed_stack(&mut w).await;
    // Live members make some groups Stable, so DescribeGroups has members to report.
    let coordinator = w
        .coordinator("live-classic")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut member = GroupMember::join(&coordinator, "live-classic", &[("test-topic", 6)]).await;
    member
        .commit(
            w.ledger_mut(),
            &[("test-topic", 0, 3), ("test-topic", 1, 5)],
        )
        .await;
    let toml = config(
        CLUSTER,
        &broker.bootstrap,
        "poll_interval = \"1s\"",
        "topic_blacklist = [\"^__.*\"]",
    );
    let exporter = RunningExporter::start(&toml).await;
    exporter.wait_cycles(CLUSTER, 2, CYCLE_TIMEOUT).await;
    let first = Metrics::parse(&exporter.get("/metrics").await.body);
    let from = exporter.cycles_ok(CLUSTER);
    exporter.wait_cycles(CLUSTER, from + 3, CYCLE_TIMEOUT).await;
    let body = exporter.get("/metrics").await.body;
    let last = Metrics::parse(&body);
    let (before, cycles_before) = request_counts(&first);
    let (after, cycles_after) = request_counts(&last);
    let cycles = cycles_after - cycles_before;
    assert!(cycles >= 3.0, "{cycles} cycles between the scrapes");

    let mut per_broker: BTreeMap<&str, f64> = BTreeMap::new();
    let mut table = String::new();
    for ((node, api), n) in &after {
        let sent = n - before
            .get(&(node.clone(), api.clone()))
            .copied()
            .unwrap_or(0.0);
        table.push_str(&format!("{node} {api}: {sent} in {cycles} cycles\n"));
        if node != "bootstrap" {
            *per_broker.entry(node).or_default() += sent;
        }
        assert!(
            !matches!(
                api.as_str(),
                "ConsumerGroupDescribe" | "ShareGroupDescribe" | "DescribeShareGroupOffsets"
            ) || sent == 0.0,
            "classic groups need none of the new group APIs:\n{table}"
        );
    }
    println!("requests between the scrapes:\n{table}");
    for (node, sent) in &per_broker {
        assert!(
            sent / cycles <= 8.0,
            "broker {node}: {} requests per cycle (budget 8):\n{table}",
            sent / cycles
        );
    }
    // Counted over the same cycles: the first cycle's DescribeConfigs is refused by the
    // test broker (docs/testing.md), which is not what this test is about.
    for family in [
        "tidemark_kafka_request_errors_total",
        "tidemark_collection_errors_total",
    ] {
        let total = |m: &Metrics| m.find(family, &[]).iter().map(|s| s.value).sum::<f64>();
        assert_eq!(total(&last) - total(&first), 0.0, "{family}:\n{body}");
    }
    let state = last
        .find(
            "kafka_consumergroup_group_state",
            &[("group", "live-classic")],
        )
        .into_iter()
        .next()
        .map(|s| (s.value, s.labels["group_type"].clone()));
    assert_eq!(
        state,
        Some((state_code("Stable"), "classic".to_string())),
        "{body}"
    );
    drop(member);
    exporter.shutdown().await;
}
