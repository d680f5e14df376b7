//! Broker faults on the scripted three-broker stub (issue 16, Build item 7): a rolling
//! restart, a broker removed for good, one replaced by a new node id at a new address, a
//! broker that accepts TCP but never answers, one 10× slower than the others, coordinators
//! and leaders moving, an undecodable OffsetFetch answer, and data loss.
//!
//! Every test runs the real exporter against brokers 1, 2 and 3, each leading one topic
//! (`t1`..`t3`, two partitions) and coordinating one group (`g1`..`g3`, committed on its
//! broker's topic), plus `x1`: coordinated by broker 1, committed on `t3` (broker 3's).
//! Before every check the test moves the truth — appends records to every partition and
//! commits further on every group partition — so a value carried from an earlier cycle
//! can never pass for a fresh one. Each check compares what `/metrics` serves with the
//! values the test wrote (the behaviour contract of issue 16, /work/contract-16.md):
//!
//! * Every cycle the test sees is checked. A cycle that may have read the truth before
//!   the last change (it completed, or started, before the change) is a *transition*
//!   cycle: each series must be present with a value of the current, the previous or
//!   the carried truth. Every later cycle is *strict*: exact values, exact health
//!   signals.
//! * What a down or failing broker alone can answer carries the values of the truth when
//!   the fault began, marked stale; everything else is exact.
//!
//! Violations are collected (not asserted one by one) so a failing run lists everything
//! the exporter got wrong, cycle by cycle, and every test prints what was served during
//! and after its fault and the measured recovery times (`--nocapture`).

use tidemark_testkit as common;

use common::workload::now_ms;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::exporter::{Metrics, RunningExporter};
use common::stub::{Reply, StubCluster, StubGroup};
use kafka_protocol::messages::ApiKey;

const CLUSTER: &str = "faults";

/// The request timeout tidemark is given (`kafka_timeout`), in seconds.
const KAFKA_TIMEOUT_S: f64 = 1.0;

/// Longest wait for one more cycle: a cycle with a hanging broker takes about the request
/// timeout; several would mean the exporter is stuck.
const CYCLE_WAIT: Duration = Duration::from_secs(10);

/// Records are 10 s apart, so a time lag carried from a step ago is off by 20 s or more.
const RECORD_SPACING_MS: i64 = 10_000;

/// Tolerance on `lag_seconds`: the scrape happens up to a cycle after the read.
const LAG_SECONDS_TOLERANCE: f64 = 3.0;

const OFFSET: &str = "kafka_consumergroup_group_offset";
const LAG: &str = "kafka_consumergroup_group_lag";
const LAG_SECONDS: &str = "kafka_consumergroup_group_lag_seconds";
const LATEST: &str = "kafka_partition_latest_offset";

/// (group, topic, partition)
type Gp = (String, String, i32);
/// (topic, partition)
type Tp = (String, i32);

/// The ground truth the test wrote into the stub.
#[derive(Clone, Debug, Default)]
struct Truth {
    high: BTreeMap<Tp, i64>,
    committed: BTreeMap<Gp, i64>,
    coordinator: BTreeMap<String, i32>,
    leader: BTreeMap<Tp, i32>,
    /// Brokers listed in Metadata.
    nodes: BTreeSet<i32>,
}

impl Truth {
    fn lag(&self, gp: &Gp) -> i64 {
        let high = self.high[&(gp.1.clone(), gp.2)];
        (high - self.committed[gp]).max(0)
    }
}

/// What the test made fail.
#[derive(Clone, Debug, Default)]
struct Faults {
    /// Brokers that answer nothing (stopped, hanging): what they alone serve is carried.
    down: BTreeSet<i32>,
    /// Coordinators whose OffsetFetch answers cannot be decoded.
    bad_offset_fetch: BTreeSet<i32>,
}

impl Faults {
    fn any(&self) -> bool {
        !self.down.is_empty() || !self.bad_offset_fetch.is_empty()
    }

    /// Whether a group coordinated by `node` cannot have its committed offsets read.
    fn unread_group(&self, node: i32) -> bool {
        self.down.contains(&node) || self.bad_offset_fetch.contains(&node)
    }
}

/// What one cycle's exposition got wrong.
#[derive(Default)]
struct Findings {
    /// Offsets, lags, watermarks, time lags.
    values: Vec<String>,
    /// Stale marks, up, partial, broker_up, stale counts, cycle duration.
    signals: Vec<String>,
}

fn labels<'a>(pairs: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "absent".to_string(), |v| format!("{v}"))
}

fn expect_eq(out: &mut Vec<String>, what: &str, got: Option<f64>, want: f64) {
    if got != Some(want) {
        out.push(format!("{what}: got {}, want {want}", show(got)));
    }
}

fn expect_absent(out: &mut Vec<String>, what: &str, got: Option<f64>) {
    if got.is_some() {
        out.push(format!("{what}: got {}, want no series", show(got)));
    }
}

fn expect_one_of(out: &mut Vec<String>, what: &str, got: Option<f64>, allowed: &BTreeSet<i64>) {
    if !got.is_some_and(|g| allowed.iter().any(|a| *a as f64 == g)) {
        out.push(format!(
            "{what}: got {}, want one of {allowed:?}",
            show(got)
        ));
    }
}

/// One test's exporter on its stub, the truth, and what was found so far.
struct Run {
    name: &'static str,
    stub: StubCluster,
    exp: RunningExporter,
    /// CreateTime of the record at offset 0 of every partition.
    base_ms: i64,
    truth: Truth,
    /// The truth before the last change.
    prev: Truth,
    /// The truth when the current (or last) fault began: what carried series show.
    carried: Option<Truth>,
    faults: Faults,
    /// Every node id the cluster ever had.
    known_nodes: BTreeSet<i32>,
    /// Longest a strict cycle may take, in seconds (`None`: unchecked).
    max_cycle_s: Option<f64>,
    /// Cycle count of the last cycle checked.
    seen: u64,
    started: Instant,
    /// Wrong values (offsets, lags, watermarks, time lags, connections, durations).
    violations: Vec<String>,
    /// Wrong or missing health signals (stale marks, up, partial, broker_up, counts).
    signal_violations: Vec<String>,
    /// Closing-note lines: recovery times and the like.
    notes: Vec<String>,
}

impl Run {
    /// Brokers 1..=3, topics t1..t3 (two partitions each, led by broker k), groups g1..g3
    /// (coordinated by broker k, committed on tk) and x1 (broker 1, committed on t3).
    async fn start(name: &'static str) -> Run {
        let stub = StubCluster::start(&[1, 2, 3]).await;
        let base_ms = now_ms() - 3_600_000;
        let mut truth = Truth {
            nodes: BTreeSet::from([1, 2, 3]),
            ..Truth::default()
        };
        for k in 1..=3 {
            let topic = format!("t{k}");
            stub.add_topic(&topic, &[k, k]);
            let group = format!("g{k}");
            let mut g = StubGroup::consumer(&group).coordinator(k);
            for p in 0..2 {
                let ts: Vec<i64> = (0..10).map(|o| base_ms + o * RECORD_SPACING_MS).collect();
                stub.append_records(&topic, p, &ts);
                truth.high.insert((topic.clone(), p), 10);
                truth.leader.insert((topic.clone(), p), k);
                let committed = 4 + i64::from(p);
                g = g.offset(&topic, p, committed);
                truth
                    .committed
                    .insert((group.clone(), topic.clone(), p), committed);
            }
            stub.add_group(g);
            truth.coordinator.insert(group, k);
        }
        let mut x = StubGroup::consumer("x1").coordinator(1);
        for p in 0..2 {
            let committed = 2 + i64::from(p);
            x = x.offset("t3", p, committed);
            truth
                .committed
                .insert(("x1".into(), "t3".into(), p), committed);
        }
        stub.add_group(x);
        truth.coordinator.insert("x1".into(), 1);

        // Every broker as bootstrap, as users configure it: the first may be the one down.
        let bootstrap = [1, 2, 3]
            .iter()
            .map(|n| format!("\"{}\"", stub.addr(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        let toml = format!(
            "[exporter]\nhttp_host = \"127.0.0.1\"\nhttp_port = 0\npoll_interval = \"300ms\"\n\
             granularity = \"partition\"\n\
             # Longer than any fault here: carried series must not expire during a test.\n\
             staleness_threshold = \"20s\"\n\
             [exporter.performance]\nkafka_timeout = \"{KAFKA_TIMEOUT_S}s\"\n\
             offset_fetch_timeout = \"{KAFKA_TIMEOUT_S}s\"\n\n\
             [[clusters]]\nname = \"{CLUSTER}\"\nbootstrap_servers = [{bootstrap}]\n"
        );
        let exp = RunningExporter::start(&toml).await;
        Run {
            name,
            stub,
            exp,
            base_ms,
            prev: truth.clone(),
            truth,
            carried: None,
            faults: Faults::default(),
            known_nodes: BTreeSet::from([1, 2, 3]),
            max_cycle_s: None,
            seen: 0,
            started: Instant::now(),
            violations: Vec::new(),
            signal_violations: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Cycles completed, successful or failed (a partial cycle may be either).
    fn cycles(&self) -> u64 {
        self.exp.cycles_ok(CLUSTER) + self.exp.cycles_failed(CLUSTER)
    }

    /// Waits for a cycle not checked yet and scrapes the exposition it published (the
    /// count is read before and after the scrape: equal counts, that cycle's exposition).
    async fn observe(&mut self) -> (u64, Metrics) {
        let deadline = Instant::now() + CYCLE_WAIT;
        loop {
            let before = self.cycles();
            if before > self.seen {
                let m = self.exp.metrics().await;
                if self.cycles() == before {
                    self.seen = before;
                    return (before, m);
                }
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no cycle completed within {CYCLE_WAIT:?} (after cycle {})",
                self.name,
                self.seen
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Moves the truth: three records more on every partition, two offsets further on
    /// every group partition (lag grows by one per step).
    fn advance(&mut self) {
        self.prev = self.truth.clone();
        for ((topic, p), high) in self.truth.high.iter_mut() {
            let ts: Vec<i64> = (*high..*high + 3)
                .map(|o| self.base_ms + o * RECORD_SPACING_MS)
                .collect();
            self.stub.append_records(topic, *p, &ts);
            *high += 3;
        }
        for ((group, topic, p), committed) in self.truth.committed.iter_mut() {
            *committed += 2;
            self.stub.commit(group, topic, *p, *committed);
        }
    }

    /// Moves the truth, then checks every cycle until `strict` cycles that began at
    /// least `settle` cycles after the change were checked. Returns the time from the
    /// change to the first cycle with exact values and to the first one with exact
    /// values and signals (`None`: not within this step).
    async fn step(
        &mut self,
        phase: &str,
        settle: u64,
        strict: u64,
    ) -> (Option<Duration>, Option<Duration>) {
        self.advance();
        let changed = Instant::now();
        // Read after the change: cycle n+1 completes after it, so n+2 starts after it.
        let n = self.cycles();
        let (mut values_exact, mut all_exact) = (None, None);
        let mut strict_seen = 0;
        while strict_seen < strict {
            let (c, m) = self.observe().await;
            let is_strict = c >= n + settle;
            let exact = self.check(&m, true);
            if values_exact.is_none() && exact.values.is_empty() {
                values_exact = Some(changed.elapsed());
            }
            if all_exact.is_none() && exact.values.is_empty() && exact.signals.is_empty() {
                all_exact = Some(changed.elapsed());
            }
            let found = if is_strict {
                exact
            } else {
                self.check(&m, false)
            };
            eprintln!(
                "[{} {phase}] cycle {c} {} +{:.2}s {} | {} value / {} signal violations{}",
                self.name,
                if is_strict { "strict" } else { "transition" },
                self.started.elapsed().as_secs_f64(),
                self.summary(&m),
                found.values.len(),
                found.signals.len(),
                found
                    .values
                    .iter()
                    .chain(&found.signals)
                    .take(3)
                    .fold(String::new(), |s, v| s + "\n      " + v)
            );
            let kind = if is_strict { "strict" } else { "transition" };
            for v in &found.values {
                self.violations
                    .push(format!("{phase}, cycle {c} ({kind}): {v}"));
            }
            for v in &found.signals {
                self.signal_violations
                    .push(format!("{phase}, cycle {c} ({kind}): {v}"));
            }
            if is_strict {
                strict_seen += 1;
            }
        }
        (values_exact, all_exact)
    }

    /// [`Run::step`] after a fault ended, recording the recovery times.
    async fn recover(&mut self, phase: &str, settle: u64, strict: u64) {
        let (values, all) = self.step(phase, settle, strict).await;
        let ms = |d: Option<Duration>| {
            d.map_or_else(
                || "not within the step".to_string(),
                |d| format!("{} ms", d.as_millis()),
            )
        };
        let note = format!(
            "{} {phase}: exact values after {}, exact values and signals after {}",
            self.name,
            ms(values),
            ms(all)
        );
        eprintln!("RECOVERY {note}");
        self.notes.push(note);
    }

    fn begin_fault(&mut self, faults: Faults) {
        self.carried = Some(self.truth.clone());
        self.faults = faults;
    }

    fn end_fault(&mut self) {
        self.faults = Faults::default();
    }

    /// Compares one exposition with the truth (`strict`) or with any truth a transition
    /// cycle may have read.
    fn check(&self, m: &Metrics, strict: bool) -> Findings {
        let mut f = Findings::default();
        let cur = &self.truth;
        let carried = self.carried.as_ref().unwrap_or(cur);
        let all: Vec<&Truth> = vec![cur, &self.prev, carried];
        let down = &self.faults.down;
        let cluster = ("cluster_name", CLUSTER.to_string());
        let now = now_ms();

        let mut stale_groups = 0;
        for (group, &coordinator) in &cur.coordinator {
            let unread = self.faults.unread_group(coordinator);
            // A row on a partition whose leader is down is carried whole (fresh committed
            // offsets against old watermarks would understate the lag): its group is stale.
            let on_down_leader = cur
                .committed
                .keys()
                .filter(|k| &k.0 == group)
                .any(|(_, t, p)| down.contains(&cur.leader[&(t.clone(), *p)]));
            let stale = unread || on_down_leader;
            stale_groups += usize::from(stale);
            if strict {
                let l = [cluster.clone(), ("group", group.clone())];
                expect_eq(
                    &mut f.signals,
                    &format!("tidemark_consumergroup_stale {group} (coordinator {coordinator})"),
                    m.value("tidemark_consumergroup_stale", &labels(&l)),
                    if stale { 1.0 } else { 0.0 },
                );
            }
            for gp in cur.committed.keys().filter(|k| &k.0 == group) {
                let (_, topic, p) = gp;
                let tp = (topic.clone(), *p);
                let leader = cur.leader[&tp];
                let l = [
                    ("group", group.clone()),
                    ("topic", topic.clone()),
                    ("partition", p.to_string()),
                ];
                let l = labels(&l);
                let what = format!("{group} {topic}/{p}");
                let offset = m.value(OFFSET, &l);
                let lag = m.value(LAG, &l);
                if !strict {
                    let offsets = all.iter().map(|t| t.committed[gp]).collect();
                    expect_one_of(&mut f.values, &format!("{what} offset"), offset, &offsets);
                    // A straddling cycle may pair any committed offset with any watermark.
                    let lags = all
                        .iter()
                        .flat_map(|h| all.iter().map(|c| (h.high[&tp] - c.committed[gp]).max(0)))
                        .collect();
                    expect_one_of(&mut f.values, &format!("{what} lag"), lag, &lags);
                    continue;
                }
                if unread || down.contains(&leader) {
                    // Every series of the group carries the last cycle that read it; a row on
                    // a partition whose leader is down is the last one computed.
                    let w = format!(
                        "{what} (coordinator {coordinator} or leader {leader} failing, carried)"
                    );
                    expect_eq(
                        &mut f.values,
                        &format!("{w} offset"),
                        offset,
                        carried.committed[gp] as f64,
                    );
                    expect_eq(
                        &mut f.values,
                        &format!("{w} lag"),
                        lag,
                        carried.lag(gp) as f64,
                    );
                    continue;
                }
                expect_eq(
                    &mut f.values,
                    &format!("{what} offset"),
                    offset,
                    cur.committed[gp] as f64,
                );
                expect_eq(
                    &mut f.values,
                    &format!("{what} lag"),
                    lag,
                    cur.lag(gp) as f64,
                );
                let ts = self.base_ms + cur.committed[gp] * RECORD_SPACING_MS;
                let want = (now - ts) as f64 / 1000.0;
                match m.value(LAG_SECONDS, &l) {
                    Some(got) if (got - want).abs() <= LAG_SECONDS_TOLERANCE => {}
                    got => f.values.push(format!(
                        "{what} lag_seconds: got {}, want {want:.1} ± {LAG_SECONDS_TOLERANCE}",
                        show(got)
                    )),
                }
            }
        }

        let mut stale_partitions = 0;
        for (tp, &high) in &cur.high {
            let leader = cur.leader[tp];
            let carried_here = down.contains(&leader);
            stale_partitions += usize::from(carried_here);
            let l = [("topic", tp.0.clone()), ("partition", tp.1.to_string())];
            let what = format!("{} {}/{} latest offset", LATEST, tp.0, tp.1);
            let got = m.value(LATEST, &labels(&l));
            if !strict {
                let highs = all.iter().map(|t| t.high[tp]).collect();
                expect_one_of(&mut f.values, &what, got, &highs);
            } else if carried_here {
                expect_eq(
                    &mut f.values,
                    &format!("{what} (leader {leader} down, carried)"),
                    got,
                    carried.high[tp] as f64,
                );
            } else {
                expect_eq(&mut f.values, &what, got, high as f64);
            }
        }

        if !strict {
            return f;
        }
        let c = [cluster];
        let c = labels(&c);
        if let Some(max) = self.max_cycle_s {
            let d = m.value("kafka_lag_exporter_scrape_duration_seconds", &c);
            if !d.is_some_and(|d| d <= max) {
                f.values.push(format!(
                    "cycle took {} s, want ≤ {max} s (about one request timeout)",
                    show(d)
                ));
            }
        }
        let healthy = !self.faults.any();
        let bit = |b: bool| if b { 1.0 } else { 0.0 };
        for node in &self.known_nodes {
            let l = [
                ("cluster_name", CLUSTER.to_string()),
                ("broker", node.to_string()),
            ];
            let got = m.value("tidemark_broker_up", &labels(&l));
            let what = format!("tidemark_broker_up{{broker=\"{node}\"}}");
            if cur.nodes.contains(node) {
                let failing = down.contains(node) || self.faults.bad_offset_fetch.contains(node);
                expect_eq(&mut f.signals, &what, got, bit(!failing));
            } else {
                expect_absent(&mut f.signals, &format!("{what} (not in metadata)"), got);
            }
        }
        expect_eq(
            &mut f.signals,
            "tidemark_cluster_up",
            m.value("tidemark_cluster_up", &c),
            bit(healthy),
        );
        expect_eq(
            &mut f.signals,
            "kafka_lag_exporter_up",
            m.value("kafka_lag_exporter_up", &[]),
            bit(healthy),
        );
        expect_eq(
            &mut f.signals,
            "tidemark_cluster_partial",
            m.value("tidemark_cluster_partial", &c),
            bit(!healthy),
        );
        expect_eq(
            &mut f.signals,
            "tidemark_cluster_stale_groups",
            m.value("tidemark_cluster_stale_groups", &c),
            stale_groups as f64,
        );
        expect_eq(
            &mut f.signals,
            "tidemark_cluster_stale_partitions",
            m.value("tidemark_cluster_stale_partitions", &c),
            stale_partitions as f64,
        );
        f
    }

    /// One line of what the exposition shows.
    fn summary(&self, m: &Metrics) -> String {
        let c = [("cluster_name", CLUSTER)];
        let v = |name: &str, l: &[(&str, &str)]| show(m.value(name, l));
        let mut s = format!(
            "up={} exporter_up={} partial={} stale_g={} stale_p={} dur={} brokers[",
            v("tidemark_cluster_up", &c),
            v("kafka_lag_exporter_up", &[]),
            v("tidemark_cluster_partial", &c),
            v("tidemark_cluster_stale_groups", &c),
            v("tidemark_cluster_stale_partitions", &c),
            m.value("kafka_lag_exporter_scrape_duration_seconds", &c)
                .map_or_else(|| "-".to_string(), |d| format!("{d:.2}s")),
        );
        for node in &self.known_nodes {
            let b = node.to_string();
            let _ = write!(s, " {node}:{}", v("tidemark_broker_up", &[("broker", &b)]));
        }
        s.push_str(" ]");
        for (group, topic, p) in self.truth.committed.keys() {
            let ps = p.to_string();
            let l = [
                ("group", group.as_str()),
                ("topic", topic.as_str()),
                ("partition", ps.as_str()),
            ];
            let _ = write!(
                s,
                " {group}:{topic}/{p} o={} l={} st={}",
                v(OFFSET, &l),
                v(LAG, &l),
                v("tidemark_consumergroup_stale", &[("group", group)]),
            );
        }
        s
    }

    // ----- changes that keep the truth in step with the stub ----------------------------

    fn set_coordinator(&mut self, group: &str, node: i32) {
        self.stub.set_coordinator(group, node);
        self.truth.coordinator.insert(group.to_string(), node);
    }

    fn set_leader(&mut self, topic: &str, partition: i32, node: i32) {
        self.stub.set_leader(topic, partition, node);
        self.truth
            .leader
            .insert((topic.to_string(), partition), node);
    }

    /// Prints the closing notes and fails with every violation found.
    async fn finish(self) {
        for n in &self.notes {
            eprintln!("NOTE {n}");
        }
        let name = self.name;
        self.exp.shutdown().await;
        let (values, signals) = (&self.violations, &self.signal_violations);
        if values.is_empty() && signals.is_empty() {
            return;
        }
        // Values first: they are what users see; signals only say how it is marked.
        let list = |v: &[String], n: usize| {
            v.iter()
                .take(n)
                .fold(String::new(), |s, x| s + "\n    " + x)
        };
        panic!(
            "{name}: violations of the issue-16 contract: {} value, {} signal\n  \
             values (first 30):{}\n  signals (first 20):{}",
            values.len(),
            signals.len(),
            list(values, 30),
            list(signals, 20)
        );
    }
}

// a. Rolling restart ---------------------------------------------------------------------

/// Brokers 3, 2, then 1 (the first bootstrap address) go down for three steps each and
/// come back on the same address. While one is down the others' groups and partitions
/// are exact and fresh in every cycle; the down broker's carry their last values, marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_keeps_the_healthy_brokers_exact_and_marks_the_down_ones() {
    let mut run = Run::start("rolling-restart").await;
    run.step("baseline", 2, 1).await;
    for node in [3, 2, 1] {
        run.stub.stop_node(node).await;
        run.begin_fault(Faults {
            down: BTreeSet::from([node]),
            ..Faults::default()
        });
        for i in 0..3 {
            run.step(&format!("broker {node} down, step {i}"), 2, 1)
                .await;
        }
        run.stub.restart_node(node).await;
        run.end_fault();
        // "Exact and fresh within two cycles" of its return: the third cycle that ends
        // after it must be right.
        run.recover(&format!("broker {node} back"), 3, 1).await;
        run.step(&format!("broker {node} back, again"), 2, 1).await;
    }
    run.finish().await;
}

/// As Kafka does while a broker is down: its leaderships and coordinators move to the
/// others. Then every series is exact and fresh, though the broker still counts as down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_with_leaders_and_coordinators_moving_off_the_down_broker() {
    let mut run = Run::start("restart-moving").await;
    run.step("baseline", 2, 1).await;
    run.stub.stop_node(3).await;
    run.begin_fault(Faults {
        down: BTreeSet::from([3]),
        ..Faults::default()
    });
    run.step("broker 3 down, still leading", 2, 1).await;
    run.set_leader("t3", 0, 1);
    run.set_leader("t3", 1, 2);
    run.set_coordinator("g3", 2);
    let since = run.stub.requests().len();
    run.recover("broker 3 down, leaders and coordinator moved off", 2, 1)
        .await;
    run.step("broker 3 down, moved off, again", 2, 1).await;
    // Where tidemark looked for g3 after its coordinator moved (for a failure's reader).
    let asked: Vec<String> = run.stub.requests()[since..]
        .iter()
        .filter(|r| r.names_group("g3") || r.api == ApiKey::ListGroups)
        .map(|r| format!("{:?}@{}", r.api, r.node))
        .collect();
    eprintln!("[restart-moving] requests naming g3, and ListGroups, after the move: {asked:?}");
    run.stub.restart_node(3).await;
    run.end_fault();
    run.recover("broker 3 back", 3, 1).await;
    // Preferred leader election moves them back.
    run.set_leader("t3", 0, 3);
    run.set_leader("t3", 1, 3);
    run.set_coordinator("g3", 3);
    run.step("leaders and coordinator back on 3", 2, 1).await;
    run.finish().await;
}

// b. Removed for good --------------------------------------------------------------------

/// Leaders and coordinators move off broker 3, then it leaves the metadata while still
/// running: within one cycle every series is exact, `up` 1, and tidemark's connection to
/// broker 3 is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_removed_from_metadata_is_dropped_and_its_connection_closed() {
    let mut run = Run::start("removed").await;
    run.step("baseline", 2, 1).await;
    assert!(
        run.stub.open_connections(3) >= 1,
        "precondition: tidemark holds a connection to broker 3"
    );
    run.set_leader("t3", 0, 1);
    run.set_leader("t3", 1, 2);
    run.set_coordinator("g3", 2);
    run.stub.retire_node(3);
    run.truth.nodes.remove(&3);
    run.recover("broker 3 removed", 2, 1).await;
    // The strict cycle above ended; the close must have happened in it (the stub sees
    // the end of the stream at once; allow it a moment to be scheduled).
    let deadline = Instant::now() + Duration::from_millis(300);
    while run.stub.open_connections(3) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let open = run.stub.open_connections(3);
    eprintln!(
        "[removed] open connections after the first strict cycle: broker 1 {}, 2 {}, 3 {open}",
        run.stub.open_connections(1),
        run.stub.open_connections(2)
    );
    if open > 0 {
        run.violations.push(format!(
            "broker 3 left the metadata: tidemark still has {open} connection(s) open to it"
        ));
    }
    run.step("broker 3 removed, again", 2, 2).await;
    run.finish().await;
}

// c. Replaced ----------------------------------------------------------------------------

/// Broker 3 is removed and broker 4, at a new address, takes over its leaderships and
/// groups: exact within one cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_replaced_by_a_new_node_id_at_a_new_address_is_used_within_one_cycle() {
    let mut run = Run::start("replaced").await;
    run.step("baseline", 2, 1).await;
    run.stub.remove_node(3).await;
    let addr = run.stub.add_node(4).await;
    run.known_nodes.insert(4);
    run.truth.nodes.remove(&3);
    run.truth.nodes.insert(4);
    run.set_leader("t3", 0, 4);
    run.set_leader("t3", 1, 4);
    run.set_coordinator("g3", 4);
    eprintln!("[replaced] broker 3 removed, broker 4 at {addr}");
    run.recover("broker 3 replaced by 4", 2, 1).await;
    run.step("broker 4 serving, again", 2, 1).await;
    let on_4 = run.stub.count_on(4, ApiKey::ListGroups);
    if on_4 == 0 {
        run.violations
            .push("broker 4 never received a ListGroups request".to_string());
    }
    run.finish().await;
}

// d. Hanging broker ----------------------------------------------------------------------

/// Broker 3 accepts TCP connections but never answers, not even ApiVersions. The healthy
/// brokers' series stay exact in every cycle; a cycle takes about one request timeout
/// (not one per request); the status page names ApiVersions as the phase that timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_never_answers_costs_one_timeout_and_is_named_by_its_phase() {
    let mut run = Run::start("hanging").await;
    run.step("baseline", 2, 1).await;
    run.stub.hang_node(3);
    // tidemark dials again and meets the hang at ApiVersions.
    run.stub.drop_connections(3).await;
    run.begin_fault(Faults {
        down: BTreeSet::from([3]),
        ..Faults::default()
    });
    // One timeout plus scheduling; two timeouts in a row would be ≥ 2 s.
    run.max_cycle_s = Some(KAFKA_TIMEOUT_S * 1.7);
    for i in 0..2 {
        run.step(&format!("broker 3 hanging, step {i}"), 2, 1).await;
    }
    run.max_cycle_s = None;
    let status = run.exp.get("/").await;
    eprintln!("[hanging] status page: {}", status.body);
    if !status.body.contains("ApiVersions") {
        run.violations
            .push("the status page does not name ApiVersions as the phase that timed out".into());
    }
    // The message the issue quotes: it sends an operator to the network, not the broker.
    if status.body.contains("connecting to broker") {
        run.violations.push(
            "the status page says \"connecting to broker ... timed out\" for a broker that \
             accepted TCP (the contract: \"ApiVersions timed out\", not \"connecting timed out\")"
                .into(),
        );
    }
    assert!(
        run.stub.count_on(3, ApiKey::ApiVersions) >= 2,
        "tidemark dialled broker 3 again and sent ApiVersions"
    );
    run.stub.unhang_node(3);
    run.end_fault();
    run.recover("broker 3 answering again", 3, 1).await;
    run.finish().await;
}

// e. Slow broker -------------------------------------------------------------------------

/// Broker 3 answers every request 10× slower than the others (50 ms against 5 ms, well
/// within the request timeout): every series exact, `up` 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_ten_times_slower_than_the_others_changes_nothing() {
    let mut run = Run::start("slow").await;
    run.stub.set_node_delay(1, Duration::from_millis(5));
    run.stub.set_node_delay(2, Duration::from_millis(5));
    run.stub.set_node_delay(3, Duration::from_millis(50));
    run.step("baseline, broker 3 slow", 2, 1).await;
    for i in 0..3 {
        run.step(&format!("broker 3 slow, step {i}"), 2, 1).await;
    }
    let m = run.exp.metrics().await;
    eprintln!(
        "[slow] last cycle took {} s",
        show(m.value(
            "kafka_lag_exporter_scrape_duration_seconds",
            &[("cluster_name", CLUSTER)]
        ))
    );
    run.finish().await;
}

// f. Coordinator and leader moves --------------------------------------------------------

/// Coordinators and leaders move between cycles: exact values in the next cycle, no
/// stale marks after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_and_leaders_moving_between_cycles_are_followed_at_once() {
    let mut run = Run::start("moves").await;
    run.step("baseline", 2, 1).await;
    run.set_coordinator("g1", 2);
    run.set_leader("t1", 0, 3);
    run.set_leader("t2", 1, 1);
    run.recover("g1 → 2, t1/0 → 3, t2/1 → 1", 2, 2).await;
    run.set_coordinator("g3", 1);
    run.set_coordinator("x1", 3);
    run.set_leader("t3", 0, 2);
    run.set_leader("t1", 0, 1);
    run.recover("g3 → 1, x1 → 3, t3/0 → 2, t1/0 → 1", 2, 2)
        .await;
    run.finish().await;
}

// g. Undecodable OffsetFetch -------------------------------------------------------------

/// Broker 3 answers OffsetFetch with bytes that do not decode: its group keeps its series
/// (stale 1) and `up` says 0 — never series removed while `up` reads 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_offset_fetch_keeps_the_series_marked_and_up_says_so() {
    let mut run = Run::start("undecodable").await;
    run.step("baseline", 2, 1).await;
    // 0xff: a varint (compact array length) whose continuation never ends.
    run.stub.set_handler(|r, _| {
        if r.node == 3 && r.api == ApiKey::OffsetFetch {
            Reply::Body(Bytes::from_static(&[0xff; 7]))
        } else {
            Reply::Default
        }
    });
    run.begin_fault(Faults {
        bad_offset_fetch: BTreeSet::from([3]),
        ..Faults::default()
    });
    for i in 0..3 {
        run.step(&format!("broker 3 OffsetFetch undecodable, step {i}"), 2, 1)
            .await;
    }
    run.stub.clear_handler();
    run.end_fault();
    run.recover("broker 3 OffsetFetch decodable again", 3, 1)
        .await;
    run.finish().await;
}

// h. Data loss ---------------------------------------------------------------------------

/// Committed below the low watermark: the lag still counts the deleted records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_loss_lag_is_high_minus_committed() {
    let stub = StubCluster::start(&[1, 2, 3]).await;
    let base = now_ms() - 3_600_000;
    stub.add_topic("t", &[2]);
    let ts: Vec<i64> = (0..100).map(|o| base + o * 1000).collect();
    stub.append_records("t", 0, &ts);
    stub.delete_records_before("t", 0, 50);
    stub.add_group(
        StubGroup::consumer("lost")
            .coordinator(3)
            .offset("t", 0, 20),
    );
    let toml = format!(
        "[exporter]\nhttp_host = \"127.0.0.1\"\nhttp_port = 0\npoll_interval = \"300ms\"\n\
         granularity = \"partition\"\n\n[[clusters]]\nname = \"{CLUSTER}\"\n\
         bootstrap_servers = \"{}\"\n",
        stub.bootstrap()
    );
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles(CLUSTER, 1, CYCLE_WAIT).await;
    let m = exp.metrics().await;
    let l = [("group", "lost"), ("topic", "t"), ("partition", "0")];
    let lag = m.value(LAG, &l);
    eprintln!(
        "[data-loss] high 100, low 50, committed 20: offset {}, lag {}, messages_lost {}",
        show(m.value(OFFSET, &l)),
        show(lag),
        show(m.value("kafka_consumergroup_group_messages_lost", &l))
    );
    exp.shutdown().await;
    assert_eq!(m.value(OFFSET, &l), Some(20.0));
    assert_eq!(lag, Some(80.0), "lag = high − committed under data loss");
}
