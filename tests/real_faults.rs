//! Issue 16 on the real broker (Tansu in a container): transactional data, a frozen broker,
//! a killed and restarted broker, and a proxy corrupting Fetch responses. Every series is
//! compared with what the workload wrote (its ledger, see `common::truth`), never with
//! what tidemark read.
//!
//! The exporter polls every second with a 2 s Kafka timeout, so "within two cycles" is
//! a few seconds; recovery times are printed (`--nocapture`).

use tidemark_testkit as common;

use std::time::{Duration, Instant};

use common::corrupt_proxy::CorruptProxy;
use common::exporter::{config, Metrics};
use common::truth::{self, Presence, Window};
use common::workload::{now_ms, scrambled, small_workload};
use common::{Broker, Codec, Ledger, RunningExporter, Workload};

const CLUSTER: &str = "faults";
const POLL: Duration = Duration::from_secs(1);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound for anything that should take a cycle or two, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);
const SCRAPE_EVERY: Duration = Duration::from_millis(100);

fn exporter_config(bootstrap: &str) -> String {
    config(
        CLUSTER,
        bootstrap,
        &format!(
            "poll_interval = \"{}s\"\ngranularity = \"partition\"\n\n[exporter.performance]\nkafka_timeout = \"{}s\"\noffset_fetch_timeout = \"{}s\"",
            POLL.as_secs(),
            KAFKA_TIMEOUT.as_secs(),
            KAFKA_TIMEOUT.as_secs()
        ),
        "",
    )
}

/// Tidemark's log on the test output when `RUST_LOG` is set (e.g. `tidemark=debug`).
/// A broker with the small workload, and an exporter already showing its exact values.
async fn settled(what: &str) -> (Broker, Workload, RunningExporter, i64) {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    small_workload(&mut w, "orders", &[5, 7, 9], "g", &[2, 4, 6], 0).await;
    let start_ms = now_ms();
    init_logs();
    let exporter = RunningExporter::start(&exporter_config(&broker.bootstrap)).await;
    wait_exact(&exporter, w.ledger(), start_ms, what).await;
    (broker, w, exporter, start_ms)
}

fn init_logs() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Cycles run so far, failed or not.
fn cycles(e: &RunningExporter) -> u64 {
    e.cycles_ok(CLUSTER) + e.cycles_failed(CLUSTER)
}

fn cluster_up(m: &Metrics) -> Option<f64> {
    m.value("tidemark_cluster_up", &[("cluster_name", CLUSTER)])
}

/// Scrapes until every series equals the ledger's truth (time lags computed within
/// [`window_start`, scrape]) with `tidemark_cluster_up` 1. Fails when they still differ
/// once two whole cycles ran after this call began. Returns the time it took and the
/// exact scrape.
async fn wait_exact(
    e: &RunningExporter,
    ledger: &Ledger,
    window_start: i64,
    what: &str,
) -> (Duration, Metrics) {
    try_wait_exact(e, ledger, window_start, what)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// [`wait_exact`], returning the failure instead of panicking.
async fn try_wait_exact(
    e: &RunningExporter,
    ledger: &Ledger,
    window_start: i64,
    what: &str,
) -> Result<(Duration, Metrics), String> {
    let began = Instant::now();
    let n0 = cycles(e);
    loop {
        // Read the count before scraping: a scrape after the second full cycle is final.
        let done = cycles(e) >= n0 + 2;
        let r = e.get("/metrics").await;
        let m = Metrics::parse(&r.body);
        let window = Window {
            start_ms: window_start,
            end_ms: now_ms(),
        };
        let mut bad = truth::check(
            &m,
            ledger,
            window,
            CLUSTER,
            Presence::Required,
            Presence::Required,
        );
        if cluster_up(&m) != Some(1.0) {
            bad.push(format!(
                "tidemark_cluster_up = {:?}, want 1",
                cluster_up(&m)
            ));
        }
        if bad.is_empty() {
            return Ok((began.elapsed(), m));
        }
        if done || began.elapsed() >= PATIENCE {
            return Err(format!(
                "{what}: series still differ from the workload's truth after two whole cycles ({:?}, {} cycles):\n  {}\n--- exposition ---\n{}",
                began.elapsed(),
                cycles(e) - n0,
                bad.join("\n  "),
                r.body
            ));
        }
        tokio::time::sleep(SCRAPE_EVERY).await;
    }
}

/// The group × partition and watermark series of interest, for printing.
fn lag_lines(m: &Metrics) -> String {
    let mut out = Vec::new();
    for s in &m.samples {
        if matches!(
            s.name.as_str(),
            "kafka_consumergroup_group_lag" | "kafka_consumergroup_group_lag_seconds"
        ) {
            out.push(format!(
                "{} {}/{}-{} = {}",
                s.name,
                s.labels.get("group").map_or("", String::as_str),
                s.labels.get("topic").map_or("", String::as_str),
                s.labels.get("partition").map_or("", String::as_str),
                s.value
            ));
        }
    }
    out.join("\n  ")
}

// ---------------------------------------------------------------------------------------
// 1. Transactions
// ---------------------------------------------------------------------------------------

/// Produces `n` single-record batches in `txn` to the end of a partition, timestamps from
/// `ts(offset)`. One record per batch: Tansu's ListOffsets LATEST is right only then.
async fn txn_records(
    w: &mut Workload,
    txn: &mut common::workload::Transaction,
    topic: &str,
    partition: i32,
    n: i64,
    ts: &impl Fn(i64) -> i64,
) {
    for _ in 0..n {
        let offset = w.ledger().high_watermark(topic, partition);
        let value = format!("{topic}-{partition}-{offset}").into_bytes();
        let base = w
            .produce_txn(txn, topic, partition, &[(ts(offset), value)])
            .await;
        assert_eq!(base, offset, "{topic}-{partition}: offsets are dense");
    }
}

/// High watermark the broker reports in a Fetch (READ_UNCOMMITTED), raw.
async fn broker_high_watermark(bootstrap: &str, topic: &str, partition: i32) -> i64 {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut conn = common::Connection::connect(bootstrap)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let version = conn
        .version(ApiKey::Fetch, 12)
        .unwrap_or_else(|e| panic!("{e}"));
    let req = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1024)])]);
    let resp: FetchResponse = conn
        .request(ApiKey::Fetch, version, &req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| p.high_watermark)
        .expect("Fetch answers the partition")
}

/// Topic `txn`, three partitions, written by one transactional producer:
///
/// | partition | offsets (C commit marker, A abort marker, a aborted record, o open txn) |
/// |---|---|
/// | 0 | 0 1 2 C3 · 4 5 6 C7 · 8 9 10 C11 — high 12 |
/// | 1 | a0 a1 A2 · 3 4 C5 · a6 A7 — high 8 |
/// | 2 | 0 1 C2 · o3 o4 (never ended) — high 5 |
///
/// Groups and what the contract makes correct (Fetch is READ_UNCOMMITTED, so aborted and
/// open-transaction records are records a consumer receives, markers are not):
/// * `caught-up` at 0@11 and 1@7 (the last marker): lag 0, time lag 0;
/// * `midway` at 0@5 (a data record): lag 7, age of record 5;
/// * `at-marker` at 0@3, 1@2 (the abort marker), 2@2: lag high − committed, age of the
///   next record (0@4, 1@3, 2@3);
/// * `behind-aborted` at 1@0: lag 8, age of aborted record 0; `before-aborted-tail` at 1@5:
///   lag 3, age of aborted record 6;
/// * `behind-open` at 2@3: lag 2, age of open-transaction record 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_markers_lag_per_contract() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    let topic = "txn";
    w.create_topic(topic, 3).await;
    let anchor = now_ms() - 20_000;
    let ts = [
        scrambled(anchor, 0),
        scrambled(anchor, 20),
        scrambled(anchor, 40),
    ];
    let mut t = w.init_transactions("tidemark-test-txn").await;
    // txn 1: commit (0: 0-2, 2: 0-1)
    txn_records(&mut w, &mut t, topic, 0, 3, &ts[0]).await;
    txn_records(&mut w, &mut t, topic, 2, 2, &ts[2]).await;
    let markers = w.end_txn(&mut t, true).await;
    println!("txn 1 committed: markers {markers:?}");
    // txn 2: abort (1: 0-1)
    txn_records(&mut w, &mut t, topic, 1, 2, &ts[1]).await;
    let markers = w.end_txn(&mut t, false).await;
    println!("txn 2 aborted: markers {markers:?}");
    // txn 3: commit (0: 4-6, 1: 3-4)
    txn_records(&mut w, &mut t, topic, 0, 3, &ts[0]).await;
    txn_records(&mut w, &mut t, topic, 1, 2, &ts[1]).await;
    let markers = w.end_txn(&mut t, true).await;
    println!("txn 3 committed: markers {markers:?}");
    // txn 4: abort (1: 6)
    txn_records(&mut w, &mut t, topic, 1, 1, &ts[1]).await;
    w.end_txn(&mut t, false).await;
    // txn 5: commit (0: 8-10)
    txn_records(&mut w, &mut t, topic, 0, 3, &ts[0]).await;
    w.end_txn(&mut t, true).await;
    // txn 6: left open (2: 3-4)
    txn_records(&mut w, &mut t, topic, 2, 2, &ts[2]).await;

    // The layout the doc comment describes, as the broker holds it.
    let ledger = w.ledger().clone();
    let kinds = |p: i32| -> String {
        (0..ledger.high_watermark(topic, p))
            .map(|o| match ledger.marker_at(topic, p, o) {
                Some(m) if m.commit => format!("C{o}"),
                Some(_) => format!("A{o}"),
                None if ledger.is_aborted(topic, p, o) => format!("a{o}"),
                None => o.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(kinds(0), "0 1 2 C3 4 5 6 C7 8 9 10 C11");
    assert_eq!(kinds(1), "a0 a1 A2 3 4 C5 a6 A7");
    assert_eq!(kinds(2), "0 1 C2 3 4");
    for (p, high) in [(0, 12), (1, 8), (2, 5)] {
        assert_eq!(
            broker_high_watermark(&broker.bootstrap, topic, p).await,
            high,
            "{topic}-{p}: the broker's high watermark counts the markers"
        );
    }

    w.commit_offsets("caught-up", &[(topic, 0, 11), (topic, 1, 7)])
        .await;
    w.commit("midway", topic, 0, 5).await;
    w.commit_offsets("at-marker", &[(topic, 0, 3), (topic, 1, 2), (topic, 2, 2)])
        .await;
    w.commit("behind-aborted", topic, 1, 0).await;
    w.commit("before-aborted-tail", topic, 1, 5).await;
    w.commit("behind-open", topic, 2, 3).await;
    let expected: Vec<(&str, i32, i64, Option<i64>)> = vec![
        ("caught-up", 0, 0, None),
        ("caught-up", 1, 0, None),
        ("midway", 0, 7, Some(5)),
        ("at-marker", 0, 9, Some(4)),
        ("at-marker", 1, 6, Some(3)),
        ("at-marker", 2, 3, Some(3)),
        ("behind-aborted", 1, 8, Some(0)),
        ("before-aborted-tail", 1, 3, Some(6)),
        ("behind-open", 2, 2, Some(3)),
    ];
    // The ledger's truth is the table above (guards the harness's own semantics).
    let rows = truth::rows(
        w.ledger(),
        Window {
            start_ms: 0,
            end_ms: 0,
        },
    );
    for (group, p, lag, sampled) in &expected {
        let r = rows
            .iter()
            .find(|r| r.group == *group && r.partition == *p)
            .expect("row");
        assert_eq!((r.lag, r.sampled_offset), (*lag, *sampled), "{group} {p}");
    }

    let start_ms = now_ms();
    init_logs();
    let exporter = RunningExporter::start(&exporter_config(&broker.bootstrap)).await;
    let (took, m) = wait_exact(&exporter, w.ledger(), start_ms, "transactional topic").await;
    println!(
        "transactional topic: exact after {took:?}\n  {}",
        lag_lines(&m)
    );
    exporter.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 2. docker pause
// ---------------------------------------------------------------------------------------

/// Frozen for 2 × the request timeout, then thawed: meanwhile `up` goes to 0 and nothing
/// served is wrong; afterwards the series follow new writes within two cycles, without a
/// restart of tidemark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_broker_up_goes_0_nothing_wrong_then_recovers() {
    let (broker, mut w, exporter, _) = settled("before the pause").await;

    // The values carried through the pause come from cycles that started after this.
    let carried_from = now_ms();
    let n = exporter.cycles_ok(CLUSTER);
    exporter.wait_cycles(CLUSTER, n + 2, PATIENCE).await;

    broker.pause().await;
    let paused = Instant::now();
    // Failures are collected so one run also measures the recovery.
    let mut problems = Vec::new();
    let mut down_after = None;
    let mut scrapes = 0;
    // Observe 2 × the request timeout; if up is still 1 then, keep observing (still
    // frozen) to report when it does go to 0.
    while paused.elapsed() < 2 * KAFKA_TIMEOUT
        || (down_after.is_none() && paused.elapsed() < 10 * KAFKA_TIMEOUT)
    {
        let r = exporter.get("/metrics").await;
        let m = Metrics::parse(&r.body);
        scrapes += 1;
        let window = Window {
            start_ms: carried_from,
            end_ms: now_ms(),
        };
        let bad = truth::check(
            &m,
            w.ledger(),
            window,
            CLUSTER,
            Presence::Optional,
            Presence::Optional,
        );
        if !bad.is_empty() && problems.is_empty() {
            problems.push(format!(
                "{:?} into the pause: wrong values served:\n  {}\n--- exposition ---\n{}",
                paused.elapsed(),
                bad.join("\n  "),
                r.body
            ));
        }
        match (cluster_up(&m), down_after) {
            (Some(0.0), None) => down_after = Some(paused.elapsed()),
            (Some(v), Some(at)) if v != 0.0 => problems.push(format!(
                "tidemark_cluster_up back to {v} after {:?} while the broker is still paused (it was 0 after {at:?})",
                paused.elapsed()
            )),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = exporter.get("/metrics").await;
    let m = Metrics::parse(&r.body);
    let stale = m.value(
        "tidemark_consumergroup_stale",
        &[("cluster_name", CLUSTER), ("group", "g")],
    );
    println!(
        "paused {:?}: {scrapes} scrapes; tidemark_cluster_up 0 after {down_after:?}; kafka_lag_exporter_up {:?}; tidemark_consumergroup_stale(g) {stale:?}; {} group series left; cycles ok {} failed {}",
        paused.elapsed(),
        m.value("kafka_lag_exporter_up", &[]),
        m.find("kafka_consumergroup_group_lag", &[]).len(),
        exporter.cycles_ok(CLUSTER),
        exporter.cycles_failed(CLUSTER)
    );
    // A cycle that starts after the pause (within one poll interval) fails after one
    // request timeout; 1 s of slack for a loaded machine.
    let bound = POLL + KAFKA_TIMEOUT + Duration::from_secs(1);
    match down_after {
        Some(at) if at <= bound => {}
        other => problems.push(format!(
            "tidemark_cluster_up still 1 {bound:?} into the pause (poll {POLL:?} + request timeout {KAFKA_TIMEOUT:?} + 1 s); it went to 0 after {other:?}"
        )),
    }
    if m.value("kafka_lag_exporter_up", &[]) != Some(0.0) {
        problems.push(format!(
            "kafka_lag_exporter_up {:?} at the end of the pause, want 0",
            m.value("kafka_lag_exporter_up", &[])
        ));
    }

    broker.unpause().await;
    let unpaused = Instant::now();
    let unpaused_ms = now_ms();
    // New writes right after the thaw, so exact values can only come from fresh reads.
    let anchor = now_ms() - 5_000;
    for p in 0..3 {
        let offset = w.ledger().high_watermark("orders", p);
        let base = w
            .produce(
                "orders",
                p,
                Codec::None,
                &[(anchor - i64::from(p) * 1_000, b"after-pause".to_vec())],
            )
            .await;
        assert_eq!(base, offset);
    }
    let offsets: Vec<(&str, i32, i64)> = [1, 0, 3]
        .iter()
        .enumerate()
        .map(|(p, lag)| {
            let high = w.ledger().high_watermark("orders", p as i32);
            ("orders", p as i32, high - lag)
        })
        .collect();
    w.commit_offsets("g", &offsets).await;
    let written = unpaused.elapsed();
    match try_wait_exact(&exporter, w.ledger(), unpaused_ms, "after the unpause").await {
        Ok((took, _)) => println!(
            "RECOVERY docker unpause: exact {:?} after the unpause (workload writes took {written:?}; {took:?} after they finished)",
            unpaused.elapsed()
        ),
        Err(e) => problems.push(e),
    }
    exporter.shutdown().await;
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

// ---------------------------------------------------------------------------------------
// 3. docker kill and restart
// ---------------------------------------------------------------------------------------

/// Killed (SIGKILL), started again on the same port with empty storage, the workload run
/// again with the same names but other record counts and timestamps: within two cycles of
/// the re-run the series equal the new truth, and stay so (no timestamp cached from the
/// old log shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_broker_new_truth_within_two_cycles() {
    let (broker, w, exporter, _) = settled("before the kill").await;
    let old = w.ledger().clone();

    let carried_from = now_ms();
    let n = exporter.cycles_ok(CLUSTER);
    exporter.wait_cycles(CLUSTER, n + 2, PATIENCE).await;
    broker.stop().await;
    let killed = Instant::now();
    // Down: nothing wrong is served, and up goes to 0.
    loop {
        let r = exporter.get("/metrics").await;
        let m = Metrics::parse(&r.body);
        let window = Window {
            start_ms: carried_from,
            end_ms: now_ms(),
        };
        let bad = truth::check(
            &m,
            &old,
            window,
            CLUSTER,
            Presence::Optional,
            Presence::Optional,
        );
        assert!(
            bad.is_empty(),
            "broker down: wrong values served:\n  {}\n{}",
            bad.join("\n  "),
            r.body
        );
        if cluster_up(&m) == Some(0.0) {
            println!("killed: tidemark_cluster_up 0 after {:?}", killed.elapsed());
            break;
        }
        assert!(
            killed.elapsed() < PATIENCE,
            "tidemark_cluster_up still {:?} {:?} after the broker was killed",
            cluster_up(&m),
            killed.elapsed()
        );
        tokio::time::sleep(SCRAPE_EVERY).await;
    }

    broker.start_again().await;
    let restarted = Instant::now();
    let rerun_ms = now_ms();
    let mut w = Workload::connect(&broker.bootstrap).await;
    // Same names; partition 0 shrinks, 1 grows, 2 shrinks; orders-0@3 and orders-1@3 are
    // committed again, so a timestamp cached from the old log would show there.
    small_workload(&mut w, "orders", &[4, 8, 3], "g", &[1, 5, 3], 30).await;
    let rerun = restarted.elapsed();
    for p in [0, 1] {
        let (o, n) = (
            old.timestamp_at("orders", p, 3).expect("old record"),
            w.ledger().timestamp_at("orders", p, 3).expect("new record"),
        );
        assert!(
            (o - n).abs() >= 10_000,
            "orders-{p}@3: old and new timestamps differ clearly"
        );
    }
    let (took, _) = wait_exact(&exporter, w.ledger(), rerun_ms, "after the restart").await;
    println!(
        "RECOVERY docker kill + start: exact {:?} after the broker answered again ({rerun:?} of it re-running the workload, {took:?} after that)",
        restarted.elapsed()
    );
    // And it stays exact: no old value comes back.
    let n = cycles(&exporter);
    while cycles(&exporter) < n + 3 {
        let r = exporter.get("/metrics").await;
        let m = Metrics::parse(&r.body);
        let window = Window {
            start_ms: rerun_ms,
            end_ms: now_ms(),
        };
        let bad = truth::check(
            &m,
            w.ledger(),
            window,
            CLUSTER,
            Presence::Required,
            Presence::Required,
        );
        assert!(
            bad.is_empty(),
            "after recovery, a scrape differs from the new truth:\n  {}\n{}",
            bad.join("\n  "),
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    exporter.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 4. A proxy corrupting Fetch responses
// ---------------------------------------------------------------------------------------

fn corrupt_failures(m: &Metrics) -> Option<f64> {
    m.value(
        "tidemark_timestamp_samples_failed_total",
        &[("cluster_name", CLUSTER), ("reason", "corrupt")],
    )
}

/// Every Fetch response through the proxy has one bit of every batch's baseTimestamp
/// flipped (CRC untouched) for several cycles: no scrape shows a wrong time lag, the
/// corrupt samples are counted; once the corruption stops, exact within two cycles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_fetch_responses_never_show_wrong_time_lag() {
    let (listener, proxy_port) = CorruptProxy::bind().await;
    let broker = Broker::start_advertising(proxy_port).await;
    let proxy = CorruptProxy::start(listener, &broker.bootstrap);
    let mut w = Workload::connect(&broker.bootstrap).await;
    // The workload goes around the proxy.
    w.route(&broker.advertised, &broker.bootstrap);
    small_workload(&mut w, "orders", &[5, 7, 9], "g", &[2, 4, 6], 0).await;
    small_workload(&mut w, "payments", &[6], "h", &[3], 10).await;

    proxy.set_corrupt(true);
    let start_ms = now_ms();
    init_logs();
    let exporter = RunningExporter::start(&exporter_config(&proxy.address())).await;
    exporter.wait_cycles(CLUSTER, 1, PATIENCE).await;
    let on = Instant::now();
    // Failures are collected so one run also shows what happens after the corruption.
    let mut problems = Vec::new();
    let mut wrong_scrapes = 0;
    let mut scrapes = 0;
    let mut first_count = None;
    let mut last = None;
    let mut with_time_lag = 0;
    while on.elapsed() < 4 * POLL {
        let r = exporter.get("/metrics").await;
        let m = Metrics::parse(&r.body);
        scrapes += 1;
        let window = Window {
            start_ms,
            end_ms: now_ms(),
        };
        // Offsets do not come from Fetch record bytes: they stay exact and present.
        let bad = truth::check(
            &m,
            w.ledger(),
            window,
            CLUSTER,
            Presence::Required,
            Presence::Optional,
        );
        if !bad.is_empty() {
            wrong_scrapes += 1;
            if problems.is_empty() {
                problems.push(format!(
                    "corruption on, scrape {scrapes} ({:?}; proxy corrupted {} batches in {} responses): wrong or missing values:\n  {}\n--- exposition ---\n{}",
                    on.elapsed(),
                    proxy.corrupted_batches(),
                    proxy.corrupted_responses(),
                    bad.join("\n  "),
                    r.body
                ));
            }
        }
        with_time_lag += m
            .find("kafka_consumergroup_group_lag_seconds", &[])
            .iter()
            .filter(|s| s.value > 0.0)
            .count();
        first_count = first_count.or(Some(corrupt_failures(&m)));
        last = Some((m, r.body));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (last, last_body) = last.expect("scraped");
    let first_count = first_count.flatten();
    let last_count = corrupt_failures(&last);
    println!(
        "corruption on {:?}: {scrapes} scrapes, {wrong_scrapes} with wrong values; proxy corrupted {} batches in {} of {} Fetch responses; non-zero lag_seconds series seen {with_time_lag} times; tidemark_timestamp_samples_failed_total{{reason=\"corrupt\"}} {first_count:?} -> {last_count:?}",
        on.elapsed(),
        proxy.corrupted_batches(),
        proxy.corrupted_responses(),
        proxy.fetch_responses()
    );
    println!(
        "  {}",
        last_body
            .lines()
            .filter(|l| l.starts_with("tidemark_timestamp"))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    assert!(
        proxy.corrupted_batches() > 0,
        "the proxy corrupted nothing: the test proves nothing"
    );
    match (first_count, last_count) {
        (Some(a), Some(b)) if a >= 1.0 && b > a => {}
        other => problems.push(format!(
            "tidemark_timestamp_samples_failed_total{{reason=\"corrupt\"}} (first, last scrape) = {other:?}: want ≥ 1 and growing while every sample is corrupt (re-read each cycle, never cached); the last scrape's sampling series:\n{}",
            last_body
                .lines()
                .filter(|l| l.starts_with("tidemark_timestamp"))
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }

    proxy.set_corrupt(false);
    let off = Instant::now();
    let window_start = now_ms() - POLL.as_millis() as i64;
    match try_wait_exact(
        &exporter,
        w.ledger(),
        window_start,
        "after the corruption stopped",
    )
    .await
    {
        Ok((took, _)) => println!(
            "RECOVERY corruption off: exact after {:?} ({took:?})",
            off.elapsed()
        ),
        Err(e) => problems.push(e),
    }
    exporter.shutdown().await;
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
