//! `/metrics` at ~100k series: encode time (p50/p99 over `--renders` renders), response
//! size, and scrape latency of the HTTP endpoint serving the cached bytes.
//!
//! ```text
//! cargo bench --bench metrics_render
//! cargo bench --bench metrics_render -- --groups 300 --topics 100 --renders 60 --scrapes 200
//! # Endpoints while renders run back to back (~700k series):
//! cargo bench --bench metrics_render -- --groups 2000 --topics 1000 --during-render 20
//! ```
//!
//! `--during-render SECONDS`: one thread publishes (renders) the report back to back while
//! `/health`, `/ready` and `/` are requested in turn over fresh connections; their latency
//! is reported against the same requests with no render running.
//!
//! The report: `--topics` topics × 50 partitions (2 partition series each), `--groups`
//! groups each consuming one topic with 3 members (6 group × partition series per
//! partition at partition granularity, plus 5 aggregates per group and one per group
//! topic). The defaults give 101,800 series.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::exporter;
use support::{median, percentile, Args};
use tidemark::config::Granularity;
use tidemark::kafka::records::{RecordAt, TimestampType};
use tidemark::kafka::{TopicPartition, Watermarks};
use tidemark::lag::{self, ClusterSnapshot, GroupPartition, GroupSnapshot, GroupState, Member};
use tidemark::metrics::{self, ClusterView};
use tidemark::state::{CycleOutcome, ExporterState};

const NOW: i64 = 1_750_000_000_000;
const PARTITIONS_PER_TOPIC: i32 = 50;

fn snapshot(topics: usize, groups: usize) -> ClusterSnapshot {
    let names: Vec<Arc<str>> = (0..topics)
        .map(|t| Arc::from(format!("prod.payments-{t:04}.ledger-events.v2")))
        .collect();
    let mut watermarks = BTreeMap::new();
    for name in &names {
        for p in 0..PARTITIONS_PER_TOPIC {
            let high = 1_000_000 + i64::from(p) * 7_919;
            watermarks.insert(
                TopicPartition::new(name.clone(), p),
                Watermarks {
                    low: high / 2,
                    high,
                },
            );
        }
    }
    let groups = (0..groups)
        .map(|g| {
            let topic = names[g % topics].clone();
            let members: Vec<Arc<Member>> = (0..3)
                .map(|m| {
                    Arc::new(Member {
                        host: format!("/10.{}.{}.{}", g % 200, m * 7, g % 250),
                        consumer_id: format!(
                            "consumer-payments-{g:04}-{m}-3f2a9c1e-7b4d-4e8a-9f1c-{g:06}{m:06}"
                        ),
                        client_id: format!("consumer-payments-{g:04}-{m}"),
                    })
                })
                .collect();
            let partitions = (0..PARTITIONS_PER_TOPIC)
                .map(|p| {
                    let tp = TopicPartition::new(topic.clone(), p);
                    let high = watermarks[&tp].high;
                    let committed = high - 1 - ((g as i64 * 31 + i64::from(p) * 7) % 5_000);
                    GroupPartition {
                        tp,
                        committed,
                        member: Some(members[p as usize % 3].clone()),
                        record: Some(RecordAt {
                            offset: committed,
                            timestamp_ms: NOW - (high - committed) * 10,
                            timestamp_type: TimestampType::CreateTime,
                            verified: true,
                        }),
                        markers_only: false,
                    }
                })
                .collect();
            GroupSnapshot {
                group: Arc::from(format!("payments-{g:04}-ledger-consumer")),
                group_type: Default::default(),
                state: GroupState::Stable,
                offsets_known: true,
                partitions,
            }
        })
        .collect();
    ClusterSnapshot {
        cluster: "prod".into(),
        watermarks,
        groups,
        compacted_topics: BTreeSet::new(),
        poll_time: Duration::from_millis(120),
        carried_watermarks: Default::default(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(label: &str, samples: &[f64]) -> String {
    format!(
        "{label:<44} p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms   (n = {})",
        median(samples),
        percentile(samples, 99.0),
        percentile(samples, 100.0),
        samples.len()
    )
}

fn main() {
    let args = Args::parse();
    let topics: usize = args.num("topics", 100);
    let groups: usize = args.num("groups", 300);
    let renders: usize = args.num("renders", 60);
    let scrapes: usize = args.num("scrapes", 200);
    let granularity = match args.get("granularity") {
        Some("topic") => Granularity::Topic,
        _ => Granularity::Partition,
    };

    if let Some(seconds) = args.get("during-render") {
        let seconds: u64 = seconds.parse().unwrap_or(20);
        during_render(topics, groups, granularity, Duration::from_secs(seconds));
        return;
    }
    let snap = snapshot(topics, groups);
    let report = Arc::new(lag::compute(&snap, NOW));
    drop(snap);
    let view = ClusterView {
        name: "prod".into(),
        labels: vec![("environment".into(), "production".into())],
        report: Some(report.clone()),
        up: true,
        cycle_duration: Some(Duration::from_millis(800)),
        poll_time: Some(Duration::from_millis(120)),
        ..ClusterView::default()
    };
    let views = vec![view];

    // Warm up once, then measure.
    let om = metrics::render(&views, granularity);
    let prom = metrics::to_prometheus_text(&om);
    let series = prom
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let mut encode = Vec::new();
    let mut chunking = Vec::new();
    let size_hint = om.len() + om.len() / 16 + 4096;
    for _ in 0..renders {
        // As ExporterState::publish does: a buffer sized after the last render.
        let t = Instant::now();
        let om = metrics::render_sized(&views, granularity, size_hint);
        encode.push(ms(t.elapsed()));
        let om = bytes::Bytes::from(om);
        let t = Instant::now();
        let chunks = metrics::prometheus_chunks(&om);
        chunking.push(ms(t.elapsed()));
        std::hint::black_box(chunks);
    }
    // What a cycle does: ExporterState::publish renders both formats and swaps them in.
    let state = ExporterState::new(
        &[(
            "prod".into(),
            vec![("environment".into(), "production".into())],
        )],
        granularity,
    );
    let mut publish = Vec::new();
    for _ in 0..renders {
        let outcome = CycleOutcome::Success {
            report: report.clone(),
            poll_time: Duration::from_millis(120),
            health: tidemark::state::CycleHealth::complete([1]),
        };
        let t = Instant::now();
        state.publish("prod", outcome, Duration::from_millis(800));
        publish.push(ms(t.elapsed()));
    }

    // Scrapes: the HTTP server of the exporter, serving what publish rendered.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (latency_prom, latency_om, latency_health, body_len) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(tidemark::http::serve(listener, state.clone(), stopped));
        let mut prom = Vec::new();
        let mut om = Vec::new();
        let mut health = Vec::new();
        let mut body_len = 0;
        for _ in 0..scrapes {
            health.push(ms(exporter::get(address, "/health").await.latency));
        }
        for i in 0..scrapes {
            let r = if i % 2 == 0 {
                exporter::get(address, "/metrics").await
            } else {
                exporter::get_with_accept(address, "/metrics", Some("application/openmetrics-text"))
                    .await
            };
            assert_eq!(r.status, 200);
            if i % 2 == 0 {
                body_len = r.body.len();
                prom.push(ms(r.latency));
            } else {
                om.push(ms(r.latency));
            }
        }
        (prom, om, health, body_len)
    });

    let rendered = state.rendered();
    let mut out = String::new();
    out.push_str(&format!(
        "== /metrics: {series} series ({} group partitions, {} partitions, {} groups), granularity {}\n",
        report.group_partitions.len(),
        report.partitions.len(),
        report.groups.len(),
        granularity.as_str()
    ));
    out.push_str(&format!(
        "response size: Prometheus text {:.2} MiB, OpenMetrics {:.2} MiB (served body {} bytes)\n",
        rendered.prometheus_len() as f64 / 1048576.0,
        rendered.openmetrics.len() as f64 / 1048576.0,
        body_len
    ));
    out.push_str(&stats(
        "encode (metrics::render_sized, OpenMetrics)",
        &encode,
    ));
    out.push('\n');
    out.push_str(&stats(
        "Prometheus text chunks (prometheus_chunks)",
        &chunking,
    ));
    out.push('\n');
    out.push_str(&stats("publish (both formats, once per cycle)", &publish));
    out.push('\n');
    out.push_str(&stats("scrape /metrics, Prometheus text", &latency_prom));
    out.push('\n');
    out.push_str(&stats("scrape /metrics, OpenMetrics", &latency_om));
    out.push('\n');
    out.push_str(&stats(
        "scrape /health (no body: connection cost)",
        &latency_health,
    ));
    out.push('\n');
    println!("{out}");
}

/// Latency of the small endpoints with and without a render running (see the module doc).
fn during_render(topics: usize, groups: usize, granularity: Granularity, run: Duration) {
    let snap = snapshot(topics, groups);
    let report = Arc::new(lag::compute(&snap, NOW));
    drop(snap);
    let state = ExporterState::new(&[("prod".into(), vec![])], granularity);
    let outcome = move || CycleOutcome::Success {
        report: report.clone(),
        poll_time: Duration::from_millis(120),
        health: tidemark::state::CycleHealth::complete([1]),
    };
    state.publish("prod", outcome(), Duration::from_millis(800));
    let rendered = state.rendered();
    let series = rendered
        .prometheus_text()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .count();
    drop(rendered);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let paths = ["/health", "/ready", "/"];
    let measure = |address, until: Instant| {
        runtime.block_on(async move {
            let mut by_path = vec![Vec::new(); paths.len()];
            let mut i = 0;
            while Instant::now() < until {
                let r = exporter::get(address, paths[i % paths.len()]).await;
                assert_eq!(r.status, 200);
                by_path[i % paths.len()].push(ms(r.latency));
                i += 1;
            }
            by_path
        })
    };
    let address = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        std::mem::forget(stop);
        tokio::spawn(tidemark::http::serve(listener, state.clone(), stopped));
        address
    });
    let quiet = measure(address, Instant::now() + run / 4);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renderer = {
        let (state, stop) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut took = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                state.publish("prod", outcome(), Duration::from_millis(800));
                took.push(ms(t.elapsed()));
            }
            took
        })
    };
    let busy = measure(address, Instant::now() + run);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let renders = renderer.join().expect("renderer");
    println!(
        "== endpoints during renders: {series} series, granularity {}, {} renders back to back (publish {})",
        granularity.as_str(),
        renders.len(),
        stats("", &renders).trim_start()
    );
    for (i, path) in paths.iter().enumerate() {
        println!(
            "{}",
            stats(&format!("{path} (fresh connection), no render"), &quiet[i])
        );
        println!(
            "{}",
            stats(
                &format!("{path} (fresh connection), during renders"),
                &busy[i]
            )
        );
    }
}
