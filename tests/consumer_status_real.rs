//! Consumer status, consumption rate and catch-up estimate (issue 13 acceptance) from the
//! real exporter, in-process, against the real broker (Tansu), with the demo workload's
//! groups (testkit/src/demo_workload.rs) played at rates the test chooses and on a 3 s window
//! (500 ms cycles, 7 points), so the whole file runs in about half a minute:
//!
//! - `test-consumer-group` (the demo's trailing group, 3 partitions) reads 4 records/s per
//!   partition while 10/s arrive: WARN (and a catch-up of `+Inf`); then production stops
//!   and it reads 12/s: OK while it still has lag, i.e. before the driver sees it at 0;
//! - `idle-consumer` is parked before a record whose CreateTime is ten minutes old, on a
//!   topic nobody writes to: ERR (time lag above the default `error_time_lag`) while the
//!   window fills, then STALL, with rate 0 and catch-up `+Inf`;
//! - `stopped-consumer` keeps up with 10 records/s (OK on a full window), then commits
//!   nothing while records keep arriving: STOP, rate 0;
//! - `draining-consumer` works off a 700-record backlog at 80 records/s while 30/s arrive
//!   (net 50/s): its consumption rate is within 20% of 80/s, and its catch-up estimate,
//!   read right after a cycle, within 20% of the time the driver then really takes until
//!   its commit reaches the high watermark (a consume-rate-only estimate is 37% short).
//!
//! Every expected value comes from the driver: the rates it applies and the instants it
//! saw on the broker, never from what tidemark read.
//!
//! `the_demo_workload_as_shipped` (ignored: about 80 s) runs the demo workload itself on a
//! 5 s poll and a 30 s window: its slow group goes OK → WARN → STOP (its 30 s stall) → OK
//! while it still has lag, the idle consumer ERR → STALL, the steady group stays OK.

use tidemark_testkit as common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::exporter::{config, Metrics};
use common::workload::{fill, now_ms};
use common::{Broker, Codec, RunningExporter, Workload};
use tokio::task::JoinHandle;

const CLUSTER: &str = "real";
/// 500 ms cycles, a 3 s window: 3 / 0.5 + 1 = 7 points.
const LINES: &str = "poll_interval = \"500ms\"\ngranularity = \"partition\"\n\
[exporter.status]\nenabled = true\nwindow = \"3s\"";
const POINTS: u64 = 7;
/// Longest wait for any one status.
const WAIT: Duration = Duration::from_secs(30);

const OK: f64 = 0.0;
const WARN: f64 = 1.0;
const ERR: f64 = 2.0;
const STOP: f64 = 3.0;
const STALL: f64 = 4.0;

const TRAILING: &str = "test-consumer-group";
const TRAILING_TOPIC: &str = "test-topic";
const TRAILING_PARTITIONS: i32 = 3;
/// Per partition, records/s: produced, read while trailing, read while catching up.
const TRAILING_PRODUCE: f64 = 10.0;
const TRAILING_READ: f64 = 4.0;
const TRAILING_CATCH_UP: f64 = 12.0;

const IDLE: &str = "idle-consumer";
const IDLE_TOPIC: &str = "idle-topic";
const IDLE_RECORD_AGE_MS: i64 = 600_000;

const STOPPED: &str = "stopped-consumer";
const STOPPED_TOPIC: &str = "orders";
const STOPPED_PRODUCE: f64 = 10.0;

const DRAINING: &str = "draining-consumer";
const DRAINING_TOPIC: &str = "backlog";
const BACKLOG: i64 = 700;
const DRAIN_PRODUCE: f64 = 30.0;
const DRAIN_READ: f64 = 80.0;

/// What the test tells the driver, and the instants the driver saw.
#[derive(Debug, Default)]
struct Shared {
    /// From then on `test-consumer-group` reads faster and nothing more is produced for it.
    catch_up_from: Option<Instant>,
    /// `stopped-consumer` commits nothing any more.
    stopped: bool,
    /// When the driver's commit of `draining-consumer` first reached the high watermark.
    drained_at: Option<Instant>,
    /// When `test-consumer-group` was first at the high watermark on every partition, after
    /// it started catching up.
    caught_up_at: Option<Instant>,
}

type SharedState = Arc<Mutex<Shared>>;

fn shared(s: &SharedState) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records due after `secs` at `rate` per second.
fn due(rate: f64, secs: f64) -> i64 {
    (rate * secs).floor() as i64
}

/// Topics, the backlog, the ten-minute-old record, and every group's first commit.
async fn setup(w: &mut Workload) {
    w.create_topic(TRAILING_TOPIC, TRAILING_PARTITIONS).await;
    w.create_topic(IDLE_TOPIC, 1).await;
    w.create_topic(STOPPED_TOPIC, 1).await;
    w.create_topic(DRAINING_TOPIC, 1).await;
    let now = now_ms();
    for p in 0..TRAILING_PARTITIONS {
        fill(w, TRAILING_TOPIC, p, 5, 1, &[Codec::None], |_| now).await;
    }
    let offsets: Vec<(&str, i32, i64)> = (0..TRAILING_PARTITIONS)
        .map(|p| (TRAILING_TOPIC, p, 2))
        .collect();
    w.commit_offsets(TRAILING, &offsets).await;
    // The demo's idle topic: one gzip record "written ten minutes ago", parked before.
    let old = w
        .produce(
            IDLE_TOPIC,
            0,
            Codec::Gzip,
            &[(now - IDLE_RECORD_AGE_MS, b"ten minutes old".to_vec())],
        )
        .await;
    w.commit(IDLE, IDLE_TOPIC, 0, old).await;
    fill(w, STOPPED_TOPIC, 0, 1, 1, &[Codec::None], |_| now).await;
    w.commit(STOPPED, STOPPED_TOPIC, 0, 1).await;
    fill(w, DRAINING_TOPIC, 0, BACKLOG, 100, &[Codec::Zstd], |o| {
        now - 60_000 + o
    })
    .await;
    w.commit(DRAINING, DRAINING_TOPIC, 0, 0).await;
}

/// Produces one-record batches (the broker's ListOffsets LATEST is exact only after those)
/// until the partition's high watermark is `high`.
async fn produce_to(w: &mut Workload, topic: &str, partition: i32, high: i64) {
    while w.ledger().high_watermark(topic, partition) < high {
        w.produce(topic, partition, Codec::None, &[(now_ms(), b"r".to_vec())])
            .await;
    }
}

/// Commits `offset` unless it is what the group committed last.
async fn commit_if_moved(w: &mut Workload, group: &str, topic: &str, partition: i32, offset: i64) {
    if w.ledger().committed(group, topic, partition) != Some(offset) {
        w.commit(group, topic, partition, offset).await;
    }
}

/// Plays the four consumers every 50 ms: the counts due at each moment follow from the
/// rates and the time since `start`, so a late tick catches up instead of slowing a rate.
async fn drive(mut w: Workload, state: SharedState) {
    let start = Instant::now();
    let high0 = |w: &Workload, t: &str| w.ledger().high_watermark(t, 0);
    let trailing0: Vec<i64> = (0..TRAILING_PARTITIONS)
        .map(|p| w.ledger().high_watermark(TRAILING_TOPIC, p))
        .collect();
    let (stopped0, drain0) = (high0(&w, STOPPED_TOPIC), high0(&w, DRAINING_TOPIC));
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let (catch_up_from, stopped) = {
            let s = shared(&state);
            (s.catch_up_from, s.stopped)
        };
        let t = start.elapsed().as_secs_f64();

        // test-consumer-group: trails, then catches up once production stops.
        let until = catch_up_from.map_or(t, |c| c.duration_since(start).as_secs_f64());
        let mut offsets = Vec::new();
        for (p, h0) in (0..TRAILING_PARTITIONS).zip(&trailing0) {
            produce_to(&mut w, TRAILING_TOPIC, p, h0 + due(TRAILING_PRODUCE, until)).await;
            let read = due(TRAILING_READ, until) + due(TRAILING_CATCH_UP, t - until);
            let high = w.ledger().high_watermark(TRAILING_TOPIC, p);
            offsets.push((TRAILING_TOPIC, p, (2 + read).min(high)));
        }
        let moved = offsets
            .iter()
            .any(|&(tp, p, o)| w.ledger().committed(TRAILING, tp, p) != Some(o));
        if moved {
            w.commit_offsets(TRAILING, &offsets).await;
        }
        let at_high = offsets
            .iter()
            .all(|&(tp, p, o)| o == w.ledger().high_watermark(tp, p));
        if catch_up_from.is_some() && at_high {
            shared(&state).caught_up_at.get_or_insert_with(Instant::now);
        }

        // stopped-consumer: keeps up, until told to stop.
        produce_to(&mut w, STOPPED_TOPIC, 0, stopped0 + due(STOPPED_PRODUCE, t)).await;
        if !stopped {
            let high = high0(&w, STOPPED_TOPIC);
            commit_if_moved(&mut w, STOPPED, STOPPED_TOPIC, 0, high).await;
        }

        // draining-consumer: 80/s read from the backlog while 30/s arrive.
        produce_to(&mut w, DRAINING_TOPIC, 0, drain0 + due(DRAIN_PRODUCE, t)).await;
        let high = high0(&w, DRAINING_TOPIC);
        let offset = due(DRAIN_READ, t).min(high);
        commit_if_moved(&mut w, DRAINING, DRAINING_TOPIC, 0, offset).await;
        if offset == high {
            shared(&state).drained_at.get_or_insert_with(Instant::now);
        }
    }
}

fn status(m: &Metrics, group: &str) -> Option<f64> {
    m.value("tidemark_consumergroup_status", &[("group", group)])
}

fn group_value(m: &Metrics, name: &str, group: &str) -> Option<f64> {
    m.value(name, &[("group", group)])
}

/// The driver task, stopped when the test ends (also by a failed assertion, before the
/// broker goes and takes the driver's connections with it).
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Panics with the driver's own panic when it ended (a produce or commit failed).
async fn check_driver(driver: &mut Driver) {
    if driver.0.is_finished() {
        match (&mut driver.0).await {
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            other => panic!("the driver ended: {other:?}"),
        }
    }
}

/// Scrapes until `ok` holds (every 50 ms), or fails after WAIT with the statuses seen last.
async fn until(
    exp: &RunningExporter,
    driver: &mut Driver,
    what: &str,
    mut ok: impl FnMut(&Metrics) -> bool,
) -> Metrics {
    let start = Instant::now();
    loop {
        check_driver(driver).await;
        let m = exp.metrics().await;
        if ok(&m) {
            return m;
        }
        assert!(
            start.elapsed() < WAIT,
            "{what}: not reached in {WAIT:?}; statuses {:?}",
            m.find("tidemark_consumergroup_status", &[])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The scrape right after the next cycle, and when that cycle was seen to finish.
async fn after_next_cycle(exp: &RunningExporter) -> (Metrics, Instant) {
    let n = exp.cycles_ok(CLUSTER);
    let deadline = Instant::now() + WAIT;
    while exp.cycles_ok(CLUSTER) == n {
        assert!(Instant::now() < deadline, "no cycle in {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let at = Instant::now();
    (exp.metrics().await, at)
}

const CATCH_UP: &str = "tidemark_consumergroup_catchup_seconds";
const RATE: &str = "tidemark_consumergroup_consume_rate";

/// While the window fills, the idle consumer's only sign is its time lag: over 10 min.
async fn while_the_window_fills(exp: &RunningExporter, driver: &mut Driver) {
    let m = until(exp, driver, "first status", |m| status(m, IDLE).is_some()).await;
    assert!(
        exp.cycles_ok(CLUSTER) < POINTS,
        "the first scrape came after the window had filled"
    );
    assert_eq!(
        status(&m, IDLE),
        Some(ERR),
        "idle consumer, window not full"
    );
}

/// A full window: trailing WARN, idle STALL; the two that keep up are OK.
async fn on_a_full_window(exp: &RunningExporter, driver: &mut Driver) {
    let m = until(exp, driver, "trailing WARN and idle STALL", |m| {
        status(m, TRAILING) == Some(WARN) && status(m, IDLE) == Some(STALL)
    })
    .await;
    assert!(exp.cycles_ok(CLUSTER) >= POINTS);
    assert_eq!(
        status(&m, STOPPED),
        Some(OK),
        "stopped-consumer still keeps up"
    );
    assert_eq!(status(&m, DRAINING), Some(OK), "draining-consumer");
    let idle_partition = [("group", IDLE), ("topic", IDLE_TOPIC), ("partition", "0")];
    assert_eq!(
        m.value("tidemark_consumergroup_partition_status", &idle_partition),
        Some(STALL)
    );
    assert_eq!(group_value(&m, CATCH_UP, TRAILING), Some(f64::INFINITY));
    assert_eq!(group_value(&m, CATCH_UP, IDLE), Some(f64::INFINITY));
    assert_eq!(group_value(&m, RATE, IDLE), Some(0.0));
}

/// The trailing group catches up and the stopped consumer stops. Scraped every 50 ms: the
/// first OK of the trailing group must come while it still has lag (before the driver sees
/// it at the high watermark), and STOP a window later. Returns when the turn came and when
/// the trailing group was first OK.
async fn after_the_turn(
    exp: &RunningExporter,
    driver: &mut Driver,
    state: &SharedState,
) -> (Instant, Instant) {
    let turn = Instant::now();
    {
        let mut s = shared(state);
        s.catch_up_from = Some(turn);
        s.stopped = true;
    }
    let mut trailing_ok_at = None;
    let m = until(exp, driver, "trailing OK, then STOP", |m| {
        if trailing_ok_at.is_none() && status(m, TRAILING) == Some(OK) {
            trailing_ok_at = Some(Instant::now());
        }
        trailing_ok_at.is_some() && status(m, STOPPED) == Some(STOP)
    })
    .await;
    assert_eq!(group_value(&m, RATE, STOPPED), Some(0.0));
    assert_eq!(group_value(&m, CATCH_UP, STOPPED), Some(f64::INFINITY));
    let ok_at = trailing_ok_at.expect("trailing OK seen");
    let caught_up_at = shared(state).caught_up_at;
    assert!(
        caught_up_at.is_none_or(|c| ok_at < c),
        "test-consumer-group was OK only {:?} after it had caught up",
        caught_up_at.map(|c| ok_at.duration_since(c))
    );
    (turn, ok_at)
}

/// When the driver's commit of `draining-consumer` reached the high watermark.
async fn drained_at(driver: &mut Driver, state: &SharedState) -> Instant {
    let deadline = Instant::now() + WAIT;
    loop {
        check_driver(driver).await;
        if let Some(at) = shared(state).drained_at {
            return at;
        }
        assert!(Instant::now() < deadline, "the backlog was never drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_and_catch_up_follow_the_demo_consumers_on_the_real_broker() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    setup(&mut w).await;
    let state = SharedState::default();
    let mut driver = Driver(tokio::spawn(drive(w, state.clone())));
    let exp = RunningExporter::start(&config(CLUSTER, &broker.bootstrap, LINES, "")).await;

    while_the_window_fills(&exp, &mut driver).await;
    on_a_full_window(&exp, &mut driver).await;

    // The drain: the estimate right after a cycle against the time it then really takes.
    let (m, cycle_at) = after_next_cycle(&exp).await;
    let estimate = group_value(&m, CATCH_UP, DRAINING).expect("draining-consumer's catch-up");
    let consumed = group_value(&m, RATE, DRAINING).expect("draining-consumer's rate");
    assert!(
        (consumed - DRAIN_READ).abs() <= 0.2 * DRAIN_READ,
        "consumption rate {consumed}/s, the driver reads {DRAIN_READ}/s"
    );

    let (turn, ok_at) = after_the_turn(&exp, &mut driver, &state).await;

    let truth = drained_at(&mut driver, &state)
        .await
        .duration_since(cycle_at)
        .as_secs_f64();
    assert!(
        truth > 3.0,
        "drained too soon after the estimate: {truth} s"
    );
    assert!(
        (estimate - truth).abs() <= 0.2 * truth,
        "catch-up estimate {estimate} s, real time to zero {truth} s"
    );
    eprintln!(
        "draining-consumer: estimate {estimate:.2} s, real {truth:.2} s, rate {consumed:.1}/s; \
         test-consumer-group: OK {:?} and caught up {:?} after the turn",
        ok_at.duration_since(turn),
        shared(&state).caught_up_at.map(|c| c.duration_since(turn)),
    );
    drop(driver);
    exp.shutdown().await;
}

use tidemark_testkit::demo_workload as demo;

/// The demo workload itself (testkit/src/demo_workload.rs, as the demo stack runs it: 1 s ticks,
/// phases of 20–40 s) for 100 s, with a 5 s poll and a 30 s window: its slow group trails
/// (WARN), stalls, then catches up (OK while it still has lag); the idle consumer is STALL.
/// About 100 s, so not in the default run:
/// `cargo test --test consumer_status_real demo -- --ignored --nocapture`. Prints the
/// statuses each group went through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn the_demo_workload_as_shipped() {
    let broker = Broker::start().await;
    let mut rhythm = demo::Rhythm::prepare(&broker.bootstrap, "demo")
        .await
        .unwrap_or_else(|e| panic!("demo workload: {e}"));
    let run = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(100);
        rhythm.run(Some(deadline)).await
    });
    let lines = "poll_interval = \"5s\"\ngranularity = \"partition\"\n\
        [exporter.status]\nenabled = true\nwindow = \"30s\"";
    let exp = RunningExporter::start(&config(CLUSTER, &broker.bootstrap, lines, "")).await;
    let groups = [demo::SLOW_GROUP, demo::STEADY_GROUP, demo::IDLE_GROUP];
    let mut history: Vec<Vec<(u64, f64)>> = vec![Vec::new(); groups.len()];
    let (mut warned, mut ok_with_lag, mut idle_stall) = (false, false, false);
    let started = Instant::now();
    loop {
        let seen_all = warned && ok_with_lag && idle_stall;
        if seen_all || run.is_finished() {
            break;
        }
        let m = exp.metrics().await;
        for (g, h) in groups.iter().zip(&mut history) {
            if let Some(s) = status(&m, g) {
                if h.last().is_none_or(|&(_, last)| last != s) {
                    h.push((started.elapsed().as_secs(), s));
                }
            }
        }
        let slow = status(&m, demo::SLOW_GROUP);
        let slow_lag = group_value(&m, "kafka_consumergroup_group_sum_lag", demo::SLOW_GROUP);
        warned |= slow == Some(WARN);
        ok_with_lag |= warned && slow == Some(OK) && slow_lag.is_some_and(|l| l > 0.0);
        idle_stall |= status(&m, demo::IDLE_GROUP) == Some(STALL);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (g, h) in groups.iter().zip(&history) {
        eprintln!("{g}: (second, status) {h:?}");
    }
    run.abort();
    exp.shutdown().await;
    assert!(warned, "test-consumer-group never WARN: {:?}", history[0]);
    assert!(
        ok_with_lag,
        "test-consumer-group never OK with lag after WARN: {:?}",
        history[0]
    );
    assert!(idle_stall, "idle-consumer never STALL: {:?}", history[2]);
}
