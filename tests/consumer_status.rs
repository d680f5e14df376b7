//! Consumer status, consumption rate and catch-up estimate (issue 13 items 1-2) from the real
//! exporter against the scripted stub cluster, whose offsets a driver task moves at rates
//! the test chooses:
//! - "drain" consumes 200 records/s from a fixed backlog: its catch-up estimate is within
//!   20% of the real time to zero (its lag at the scrape over the applied rate);
//! - "stall" sits at lag 5 on a topic nobody writes to: STALL;
//! - "stop" commits nothing while records arrive: STOP;
//! - "grow" falls behind (3 produced per tick, 1 consumed): WARN, then catches up: OK.
//!
//! 200 ms cycles and a 2 s window, so it runs in seconds.

use tidemark_testkit as common;

use common::workload::now_ms;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::exporter::{config, Metrics, RunningExporter};
use common::stub::{StubCluster, StubGroup};

const CLUSTER: &str = "stub";
const WAIT: Duration = Duration::from_secs(20);
const TICK: Duration = Duration::from_millis(50);
/// Records "drain" consumes per tick: 200 records/s.
const DRAIN_PER_TICK: i64 = 10;
const DRAIN_RATE: f64 = DRAIN_PER_TICK as f64 / 0.05;
const BACKLOG: i64 = 4000;

const LINES: &str = "poll_interval = \"200ms\"\ngranularity = \"partition\"\n\
[exporter.status]\nenabled = true\nwindow = \"2s\"\nerror_time_lag = \"1h\"\n\
[exporter.performance]\nkafka_timeout = \"2s\"\noffset_fetch_timeout = \"2s\"";

fn group(g: &str) -> [(&str, &str); 1] {
    [("group", g)]
}

/// Scrape until `ok` holds for the scrape, or fail after WAIT with the last scrape.
async fn until(exp: &RunningExporter, what: &str, ok: impl Fn(&Metrics) -> bool) -> Metrics {
    let start = Instant::now();
    loop {
        let m = exp.metrics().await;
        if ok(&m) {
            return m;
        }
        assert!(
            start.elapsed() < WAIT,
            "{what}: not reached in {WAIT:?}; status {:?}",
            m.find("tidemark_consumergroup_status", &[])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn status(m: &Metrics, g: &str) -> Option<f64> {
    m.value("tidemark_consumergroup_status", &group(g))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_and_catch_up_follow_the_scripted_consumers() {
    let stub = StubCluster::start(&[1]).await;
    let now = now_ms();
    for t in ["d", "s", "p", "g"] {
        stub.add_topic(t, &[1]);
    }
    stub.append_records("d", 0, &vec![now; BACKLOG as usize]);
    stub.append_records("s", 0, &[now - 600_000; 10]);
    stub.append_records("p", 0, &[now; 10]);
    stub.append_records("g", 0, &[now; 10]);
    stub.add_group(StubGroup::consumer("drain").offset("d", 0, 0));
    stub.add_group(StubGroup::consumer("stall").offset("s", 0, 5));
    stub.add_group(StubGroup::consumer("stop").offset("p", 0, 5));
    stub.add_group(StubGroup::consumer("grow").offset("g", 0, 5));

    // The driver: the rates the assertions compare against.
    let catching_up = Arc::new(AtomicBool::new(false));
    let driver = {
        let stub = stub.handle();
        let catching_up = catching_up.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            loop {
                tick.tick().await;
                let ts = now_ms();
                stub.update_group("drain", |g| {
                    if let Some(o) = g.offsets.get_mut(&("d".to_owned(), 0)) {
                        *o = (*o + DRAIN_PER_TICK).min(BACKLOG);
                    }
                });
                stub.append_records("p", 0, &[ts]);
                let up = catching_up.load(Ordering::SeqCst);
                if !up {
                    stub.append_records("g", 0, &[ts; 3]);
                }
                let high = stub.partition("g", 0).map_or(0, |p| p.high);
                stub.update_group("grow", |g| {
                    if let Some(o) = g.offsets.get_mut(&("g".to_owned(), 0)) {
                        *o = (*o + if up { 5 } else { 1 }).min(high);
                    }
                });
            }
        })
    };

    let exp = RunningExporter::start(&config(CLUSTER, &stub.bootstrap(), LINES, "")).await;

    let m = until(&exp, "grow WARN, stall STALL, stop STOP", |m| {
        status(m, "grow") == Some(1.0)
            && status(m, "stall") == Some(4.0)
            && status(m, "stop") == Some(3.0)
    })
    .await;
    let stall = [("group", "stall"), ("topic", "s"), ("partition", "0")];
    assert_eq!(
        m.value("tidemark_consumergroup_partition_status", &stall),
        Some(4.0)
    );
    assert_eq!(
        m.value("tidemark_consumergroup_catchup_seconds", &group("stall")),
        Some(f64::INFINITY)
    );
    assert_eq!(
        m.value("tidemark_consumergroup_consume_rate", &group("stop")),
        Some(0.0)
    );

    // The drain estimate against the real time to zero at the applied rate, from the
    // committed offset of the same scrape.
    let offset = m
        .value(
            "kafka_consumergroup_group_offset",
            &[("group", "drain"), ("topic", "d"), ("partition", "0")],
        )
        .expect("drain's committed offset");
    let truth = (BACKLOG as f64 - offset) / DRAIN_RATE;
    assert!(
        truth > 2.0,
        "the backlog drained too early for the check: {truth}"
    );
    let estimate = m
        .value("tidemark_consumergroup_catchup_seconds", &group("drain"))
        .expect("drain's catch-up estimate");
    assert!(
        (estimate - truth).abs() <= 0.2 * truth,
        "catch-up estimate {estimate} s, real time to zero {truth} s"
    );
    let rate = m
        .value("tidemark_consumergroup_consume_rate", &group("drain"))
        .expect("drain's consume rate");
    assert!(
        (rate - DRAIN_RATE).abs() <= 0.2 * DRAIN_RATE,
        "consume rate {rate}/s, applied {DRAIN_RATE}/s"
    );
    assert_eq!(status(&m, "drain"), Some(0.0));

    // Production stops and "grow" consumes faster: its lag falls, WARN gives way to OK.
    catching_up.store(true, Ordering::SeqCst);
    until(&exp, "grow OK as it catches up", |m| {
        status(m, "grow") == Some(0.0)
    })
    .await;

    driver.abort();
    exp.shutdown().await;
}
