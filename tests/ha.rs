//! High availability through the monitored Kafka cluster (`[exporter.leadership]`): three
//! tidemark processes (the real binary) share two clusters (two real brokers); the union of
//! their `/metrics` must hold every series of the workload exactly once, before and across
//! the SIGKILL of a cluster's owner and the SIGTERM of another replica.
//!
//! Every scrape round reads all live replicas and counts, per expected series, how many
//! replicas serve it: 0 is a gap, 2 or more a duplicate. Duplicates are never allowed; gaps
//! only until the start-up converged, and within session timeout + one poll interval after
//! a replica is killed.

use tidemark_testkit as common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::free_port;
use common::exporter::{config, get, Metrics};
use common::stub::StubGroup;
use common::workload::small_workload;
use common::{Broker, RunningExporter, StubCluster, Workload};

const POLL: Duration = Duration::from_secs(6);
const SESSION: Duration = Duration::from_secs(6);
/// The acceptance window: a replica's work is served again within this after it dies.
const WINDOW: Duration = Duration::from_secs(SESSION.as_secs() + POLL.as_secs());
const ROUND: Duration = Duration::from_millis(250);
/// The two tests run one after the other: each times failovers, and five replicas and four
/// brokers at once on a small machine would stretch what they measure.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Start-up: the test broker takes ~5 s per first join, then the group is resharded once.
const CONVERGE: Duration = Duration::from_secs(90);

/// (cluster, topic, records per partition, groups with their lag per partition)
type Cluster = (
    &'static str,
    &'static str,
    &'static [i64],
    &'static [(&'static str, &'static [i64])],
);

/// East has more groups than `shard_groups_above` (3): its groups are shared out; west has
/// fewer: its owner reads it whole.
const CLUSTERS: [Cluster; 2] = [
    (
        "east",
        "orders",
        &[12, 9, 15],
        &[
            ("e-billing", &[1, 2, 3]),
            ("e-search", &[0, 4, 1]),
            ("e-audit", &[5, 0, 0]),
            ("e-mail", &[2, 2, 2]),
            ("e-fraud", &[7, 1, 9]),
            ("e-stats", &[0, 0, 6]),
        ],
    ),
    (
        "west",
        "payments",
        &[20, 11],
        &[("w-ledger", &[3, 8]), ("w-notify", &[0, 5])],
    ),
];

struct Replica {
    name: String,
    address: SocketAddr,
    child: Option<Child>,
    dir: TempDir,
}

impl Replica {
    /// The coordination lines of its log (what happened when, for the test output).
    fn coordination_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.0.join("stderr.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("coordination"))
            .map(str::to_owned)
            .collect()
    }
}

/// A directory removed on drop (the config file lives there).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_replica(i: usize, brokers: &[&Broker]) -> Replica {
    let name = format!("replica-{i}");
    let port = free_port().expect("a free port");
    let dir = std::env::temp_dir().join(common::unique_name("tidemark-ha"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut toml = format!(
        "[exporter]\nhttp_host = \"127.0.0.1\"\nhttp_port = {port}\npoll_interval = \"{}s\"\ngranularity = \"partition\"\n\n[exporter.timestamp_sampling]\nenabled = false\n\n[exporter.leadership]\nenabled = true\nlease_name = \"tidemark-ha-test\"\nidentity = \"{name}\"\nlease_duration_secs = {}\ngrace_period_secs = 1\nshard_groups_above = 3\n",
        POLL.as_secs(),
        SESSION.as_secs()
    );
    for ((cluster, ..), broker) in CLUSTERS.iter().zip(brokers) {
        toml.push_str(&format!(
            "\n[[clusters]]\nname = \"{cluster}\"\nbootstrap_servers = \"{}\"\n",
            broker.bootstrap
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, toml).expect("config written");
    let log = std::fs::File::create(dir.join("stderr.log")).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("-c")
        .arg(&path)
        .args(["-l", "info"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("tidemark starts");
    Replica {
        name,
        address: SocketAddr::from(([127, 0, 0, 1], port)),
        child: Some(child),
        dir: TempDir(dir),
    }
}

/// Every series the workload implies: (family, labels) → value.
fn truth() -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    let key = |family: &str, labels: &[(&str, &str)]| {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        (family.to_owned(), labels)
    };
    for (cluster, topic, counts, groups) in CLUSTERS {
        for (p, n) in counts.iter().enumerate() {
            let p = p.to_string();
            let labels = [
                ("cluster_name", cluster),
                ("topic", topic),
                ("partition", &p),
            ];
            out.insert(key("kafka_partition_latest_offset", &labels), *n as f64);
        }
        for (group, lags) in groups {
            let max = lags.iter().max().copied().unwrap_or(0);
            let g = [("cluster_name", cluster), ("group", *group)];
            out.insert(key("kafka_consumergroup_group_max_lag", &g), max as f64);
            for (p, lag) in lags.iter().enumerate() {
                let p = p.to_string();
                let labels = [
                    ("cluster_name", cluster),
                    ("group", *group),
                    ("topic", topic),
                    ("partition", &p),
                ];
                out.insert(key("kafka_consumergroup_group_lag", &labels), *lag as f64);
            }
        }
    }
    out
}

const FAMILIES: [&str; 3] = [
    "kafka_partition_latest_offset",
    "kafka_consumergroup_group_max_lag",
    "kafka_consumergroup_group_lag",
];

/// One scrape round over `replicas`.
#[derive(Debug, Default)]
struct Round {
    gaps: usize,
    /// Gaps per cluster.
    cluster_gaps: BTreeMap<String, usize>,
    duplicates: usize,
    /// Series of the families that are not in the truth, or with another value.
    wrong: Vec<String>,
}

async fn round(
    replicas: &[Replica],
    truth: &BTreeMap<(String, BTreeMap<String, String>), f64>,
) -> Round {
    let mut seen: BTreeMap<(String, BTreeMap<String, String>), usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for r in replicas.iter().filter(|r| r.child.is_some()) {
        // A replica still starting serves nothing yet (its series count as gaps).
        if tokio::net::TcpStream::connect(r.address).await.is_err() {
            continue;
        }
        let response = get(r.address, "/metrics").await;
        if response.status != 200 {
            continue;
        }
        let metrics = Metrics::parse(&response.body);
        for s in metrics
            .samples
            .iter()
            .filter(|s| FAMILIES.contains(&s.name.as_str()))
        {
            // Only the labels the truth names (member labels are empty strings here).
            let labels: BTreeMap<String, String> = s
                .labels
                .iter()
                .filter(|(k, _)| {
                    ["cluster_name", "group", "topic", "partition"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let key = (s.name.clone(), labels);
            match truth.get(&key) {
                Some(v) if *v == s.value => *seen.entry(key).or_default() += 1,
                _ => wrong.push(format!(
                    "{} on {}: {} {:?} = {}",
                    r.name, r.address, s.name, s.labels, s.value
                )),
            }
        }
    }
    let mut cluster_gaps = BTreeMap::new();
    for (_, labels) in truth.keys().filter(|k| !seen.contains_key(*k)) {
        let cluster = labels.get("cluster_name").cloned().unwrap_or_default();
        *cluster_gaps.entry(cluster).or_default() += 1;
    }
    Round {
        cluster_gaps,
        gaps: truth.keys().filter(|k| !seen.contains_key(*k)).count(),
        duplicates: seen.values().map(|n| n.saturating_sub(1)).sum(),
        wrong,
    }
}

/// Scrape rounds until every series is served exactly once, or `limit`. Returns when that
/// happened and every round's (elapsed, gaps, duplicates).
async fn until_complete(
    replicas: &[Replica],
    truth: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    limit: Duration,
) -> (Option<Duration>, Vec<(Duration, usize, usize)>) {
    let start = Instant::now();
    let mut rounds = Vec::new();
    while start.elapsed() < limit {
        let r = round(replicas, truth).await;
        rounds.push((start.elapsed(), r.gaps, r.duplicates));
        assert!(
            r.wrong.is_empty(),
            "series with wrong labels or values: {:#?}",
            r.wrong
        );
        assert_eq!(
            r.duplicates,
            0,
            "duplicates after {:?}: {rounds:?}",
            start.elapsed()
        );
        if r.gaps == 0 {
            return (Some(start.elapsed()), rounds);
        }
        tokio::time::sleep(ROUND).await;
    }
    (None, rounds)
}

/// `n` more rounds that must all be complete.
async fn steady(
    replicas: &[Replica],
    truth: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    n: usize,
) {
    for i in 0..n {
        let r = round(replicas, truth).await;
        assert!(
            r.gaps == 0 && r.duplicates == 0 && r.wrong.is_empty(),
            "round {i} of a steady state: {r:?}"
        );
        tokio::time::sleep(ROUND).await;
    }
}

/// Each live replica's `/leader` role for `cluster`, and `/ready` agreeing with it.
async fn roles(replicas: &[Replica], cluster: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in replicas.iter().filter(|r| r.child.is_some()) {
        let leader = get(r.address, "/leader").await;
        assert_eq!(leader.status, 200);
        let body = leader.body;
        assert!(
            body.contains(&format!("\"identity\":\"{}\"", r.name)),
            "{body}"
        );
        let is_leader = body.contains("\"is_leader\":true");
        let ready = get(r.address, "/ready").await.status;
        assert_eq!(
            ready == 200,
            is_leader,
            "{}: /ready {ready} and /leader {body}",
            r.name
        );
        let role = ["owner", "groups", "standby"]
            .into_iter()
            .find(|role| body.contains(&format!("\"{cluster}\":\"{role}\"")))
            .unwrap_or("missing");
        out.insert(r.name.clone(), role.to_owned());
    }
    out
}

fn print_rounds(what: &str, rounds: &[(Duration, usize, usize)]) {
    let shown: Vec<String> = rounds
        .iter()
        .map(|(t, gaps, dups)| format!("{:.2}s:{gaps}/{dups}", t.as_secs_f64()))
        .collect();
    println!(
        "{what}: {} rounds (elapsed: gaps/duplicates) {}",
        rounds.len(),
        shown.join(" ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_two_clusters_exactly_once_across_failover() {
    let _serial = SERIAL.lock().await;
    let east = Broker::start().await;
    let west = Broker::start().await;
    for ((_, topic, counts, groups), broker) in CLUSTERS.iter().zip([&east, &west]) {
        let mut w = Workload::connect(&broker.bootstrap).await;
        for (i, (group, lags)) in groups.iter().enumerate() {
            if i == 0 {
                small_workload(&mut w, topic, counts, group, lags, 3).await;
            } else {
                let offsets: Vec<(&str, i32, i64)> = lags
                    .iter()
                    .enumerate()
                    .map(|(p, lag)| (*topic, p as i32, counts[p] - lag))
                    .collect();
                w.commit_offsets(group, &offsets).await;
            }
        }
    }
    let truth = truth();
    let mut replicas: Vec<Replica> = (0..3).map(|i| start_replica(i, &[&east, &west])).collect();

    let (converged, rounds) = until_complete(&replicas, &truth, CONVERGE).await;
    print_rounds("start-up", &rounds);
    let converged = converged.unwrap_or_else(|| panic!("never complete within {CONVERGE:?}"));
    println!("start-up: every series exactly once after {converged:?}");
    steady(&replicas, &truth, 8).await;
    for r in &replicas {
        let text = get(r.address, "/metrics").await.body;
        assert!(
            text.contains("tidemark_ha_member{cluster_name=\"east\"} 1"),
            "{text}"
        );
    }
    let west_roles = roles(&replicas, "west").await;
    let east_roles = roles(&replicas, "east").await;
    println!("roles: west {west_roles:?}, east {east_roles:?}");
    assert_eq!(
        west_roles.values().filter(|r| *r == "owner").count(),
        1,
        "{west_roles:?}"
    );
    assert!(
        east_roles.values().all(|r| r != "standby"),
        "east's groups are shared by all three: {east_roles:?}"
    );

    // SIGKILL west's owner: no LeaveGroup, the coordinators notice after the session
    // timeout.
    let victim = west_roles
        .iter()
        .find(|(_, r)| *r == "owner")
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    let i = replicas.iter().position(|r| r.name == victim).unwrap_or(0);
    let killed = Instant::now();
    if let Some(mut child) = replicas[i].child.take() {
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
    let (restored, rounds) =
        until_complete(&replicas, &truth, WINDOW + Duration::from_secs(20)).await;
    print_rounds(&format!("after SIGKILL of {victim}"), &rounds);
    let restored = restored.map(|_| killed.elapsed());
    println!(
        "SIGKILL: max gaps in a round {}, duplicates 0, every series served again after {restored:?} (window {WINDOW:?})",
        rounds.iter().map(|r| r.1).max().unwrap_or(0)
    );
    for r in replicas.iter().filter(|r| r.child.is_some()) {
        println!("{} log:\n  {}", r.name, r.coordination_log().join("\n  "));
    }
    let restored = restored.unwrap_or_else(|| panic!("not restored: {rounds:?}"));
    assert!(
        restored <= WINDOW,
        "restored after {restored:?}, beyond {WINDOW:?}"
    );
    steady(&replicas, &truth, 8).await;
    let after = roles(&replicas, "west").await;
    assert_eq!(
        after.values().filter(|r| *r == "owner").count(),
        1,
        "{after:?}"
    );

    // SIGTERM another replica: it leaves the groups, the last one takes over without
    // waiting for a session timeout.
    let j = replicas.iter().position(|r| r.child.is_some()).unwrap_or(0);
    let pid = replicas[j]
        .child
        .as_ref()
        .map(Child::id)
        .unwrap_or_default();
    let termed = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    if let Some(mut child) = replicas[j].child.take() {
        let _ = child.wait();
    }
    let (restored, rounds) =
        until_complete(&replicas, &truth, WINDOW + Duration::from_secs(20)).await;
    print_rounds(&format!("after SIGTERM of {}", replicas[j].name), &rounds);
    let restored = restored.map(|_| termed.elapsed());
    println!("SIGTERM: every series served again after {restored:?}");
    let restored = restored.unwrap_or_else(|| panic!("not restored: {rounds:?}"));
    assert!(
        restored <= WINDOW,
        "restored after {restored:?}, beyond {WINDOW:?}"
    );
    steady(&replicas, &truth, 4).await;
    let last = roles(&replicas, "east").await;
    assert_eq!(
        last.values().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"owner".to_owned()])
    );
}

/// The series of `cluster` in the truth.
fn count_of(truth: &BTreeMap<(String, BTreeMap<String, String>), f64>, cluster: &str) -> usize {
    truth
        .keys()
        .filter(|(_, labels)| labels.get("cluster_name").map(String::as_str) == Some(cluster))
        .count()
}

/// A cluster whose coordinator (its only broker) freezes for longer than the session
/// timeout: every replica gives its work there up (a gap, never a duplicate or a frozen
/// snapshot of it), the other cluster is served throughout, and the frozen one comes back
/// exactly once when its broker does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_frozen_past_the_session_timeout_fences_every_replica() {
    let _serial = SERIAL.lock().await;
    let east = Broker::start().await;
    let west = Broker::start().await;
    for ((_, topic, counts, groups), broker) in CLUSTERS.iter().zip([&east, &west]) {
        let mut w = Workload::connect(&broker.bootstrap).await;
        for (i, (group, lags)) in groups.iter().enumerate() {
            if i == 0 {
                small_workload(&mut w, topic, counts, group, lags, 3).await;
            } else {
                let offsets: Vec<(&str, i32, i64)> = lags
                    .iter()
                    .enumerate()
                    .map(|(p, lag)| (*topic, p as i32, counts[p] - lag))
                    .collect();
                w.commit_offsets(group, &offsets).await;
            }
        }
    }
    let truth = truth();
    let east_series = count_of(&truth, "east");
    let replicas: Vec<Replica> = (0..2).map(|i| start_replica(i, &[&east, &west])).collect();
    let (converged, rounds) = until_complete(&replicas, &truth, CONVERGE).await;
    print_rounds("start-up", &rounds);
    assert!(converged.is_some(), "never complete within {CONVERGE:?}");

    east.pause().await;
    let paused = Instant::now();
    let mut fenced_after = None;
    let mut rounds = Vec::new();
    // Twice the session timeout: long enough for every replica to give east up.
    while paused.elapsed() < SESSION * 2 {
        let r = round(&replicas, &truth).await;
        let gaps = |c: &str| r.cluster_gaps.get(c).copied().unwrap_or(0);
        rounds.push((paused.elapsed(), gaps("east"), r.duplicates));
        assert_eq!(r.duplicates, 0, "duplicates: {rounds:?}");
        assert!(r.wrong.is_empty(), "{r:?}");
        // West never waits on east.
        assert_eq!(
            gaps("west"),
            0,
            "west has gaps while east is frozen: {rounds:?}"
        );
        if gaps("east") == east_series && fenced_after.is_none() {
            fenced_after = Some(paused.elapsed());
        }
        if fenced_after.is_some() {
            assert_eq!(
                gaps("east"),
                east_series,
                "east served again while frozen: {rounds:?}"
            );
        }
        tokio::time::sleep(ROUND).await;
    }
    print_rounds("east frozen (elapsed: east gaps/duplicates)", &rounds);
    println!(
        "east frozen: no replica serves it after {fenced_after:?} (session timeout {SESSION:?})"
    );
    assert!(
        fenced_after.is_some(),
        "a replica kept serving east: {rounds:?}"
    );

    east.unpause().await;
    let (restored, rounds) = until_complete(&replicas, &truth, CONVERGE).await;
    print_rounds("east back", &rounds);
    println!("east back: every series exactly once after {restored:?}");
    assert!(restored.is_some(), "east never came back: {rounds:?}");
    steady(&replicas, &truth, 4).await;
}

/// The coordination group (protocol type `tidemark`) is nobody's consumer group: even a
/// broker that lists it with committed offsets (the stub here; the test broker keeps
/// none for it) gets it in no family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordination_group_is_never_reported() {
    let stub = StubCluster::start(&[1]).await;
    stub.add_topic("orders", &[1]);
    stub.set_watermarks("orders", 0, 0, 10);
    let mut coordination = StubGroup::consumer("tidemark").offset("orders", 0, 4);
    coordination.protocol_type = "tidemark".to_owned();
    coordination.protocol = "tidemark-v1".to_owned();
    stub.add_group(coordination);
    stub.add_group(StubGroup::consumer("billing").offset("orders", 0, 7));
    let exp = RunningExporter::start(&config(
        "c",
        &stub.bootstrap(),
        "poll_interval = \"1s\"\ngranularity = \"partition\"",
        "",
    ))
    .await;
    exp.wait_cycles("c", 1, CONVERGE).await;
    let m = exp.metrics().await;
    let lag = [
        ("group", "billing"),
        ("topic", "orders"),
        ("partition", "0"),
    ];
    assert_eq!(m.value("kafka_consumergroup_group_lag", &lag), Some(3.0));
    let reported: Vec<&common::exporter::Sample> = m
        .samples
        .iter()
        .filter(|s| s.labels.get("group").map(String::as_str) == Some("tidemark"))
        .collect();
    assert!(reported.is_empty(), "{reported:#?}");
    exp.shutdown().await;
}
