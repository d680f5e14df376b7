//! `/metrics` at ~100k series (or the 2,000 × 50,000 synthetic case): the render into
//! gzip (encode time p50/p99 over `--renders` renders, per gzip level), the compressed and
//! uncompressed sizes, the process's peak RSS, and scrape latency of the HTTP endpoint with
//! and without gzip.
//!
//! ```text
//! cargo bench --bench metrics_render
//! cargo bench --bench metrics_render -- --groups 300 --topics 100 --renders 60 --scrapes 200
//! # The synthetic 2,000 groups × 50,000 partitions (~700k series):
//! cargo bench --bench metrics_render -- --groups 2000 --topics 1000 --renders 10 --scrapes 20
//! # Compare gzip levels (sizes and encode time; the exporter uses metrics::GZIP_LEVEL):
//! cargo bench --bench metrics_render -- --groups 2000 --topics 1000 --renders 5 --levels 1,2,3,6
//! # Also time the uncompressed OpenMetrics render (`metrics::render`, after RSS is read):
//! cargo bench --bench metrics_render -- --uncompressed
//! # The push exporters' cost per export: inflate + parse the stored exposition (the walk
//! # alone), and walk + encode into remote write and OTLP request bodies:
//! cargo bench --bench metrics_render -- --groups 2000 --topics 1000 --renders 3 --push 5
//! # Endpoints while renders run back to back:
//! cargo bench --bench metrics_render -- --groups 2000 --topics 1000 --during-render 20
//! ```
//!
//! Peak RSS: `VmHWM` of this process (server and client: the client counts and checksums
//! each body as it arrives, never holding one), reset through `/proc/self/clear_refs` once
//! the report is built, so "peak during renders and scrapes" is what rendering, storing and
//! serving the exposition add to the report the exporter holds anyway; the whole process's
//! `VmHWM` is printed too.
//!
//! `--during-render SECONDS`: one thread publishes (renders) the report back to back while
//! `/health`, `/ready` and `/` are requested in turn over fresh connections; their latency
//! is reported against the same requests with no render running.
//!
//! The report: `--topics` topics × 50 partitions (2 partition series each), `--groups`
//! groups each consuming one topic with 3 members (6 group × partition series per
//! partition at partition granularity, plus 5 aggregates per group and one per group
//! topic). The defaults give 101,800 series.

use tidemark_testkit as common;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::exporter;
use common::snapshot as synthetic;
use support::{median, percentile, rss_kib, Args};
use tidemark::config::Granularity;
use tidemark::kafka::TopicPartition;
use tidemark::lag::{self, ClusterSnapshot, Member};
use tidemark::metrics::{self, ClusterView, Format};
use tidemark::state::{CycleOutcome, ExporterState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NOW: i64 = 1_750_000_000_000;
const PARTITIONS_PER_TOPIC: i32 = 50;

fn snapshot(topics: usize, groups: usize) -> ClusterSnapshot {
    let names: Vec<Arc<str>> = (0..topics)
        .map(|t| Arc::from(format!("prod.payments-{t:04}.ledger-events.v2")))
        .collect();
    let watermarks = synthetic::watermarks(names.iter().cloned(), PARTITIONS_PER_TOPIC);
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
                    let committed = synthetic::committed(g, p);
                    let ts = NOW - (synthetic::high(p) - committed) * 10;
                    let member = Some(members[p as usize % 3].clone());
                    synthetic::partition(tp, committed, ts, member)
                })
                .collect();
            synthetic::stable_group(&format!("payments-{g:04}-ledger-consumer"), partitions)
        })
        .collect();
    synthetic::cluster(watermarks, groups, Duration::from_millis(120))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
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

/// One `/metrics` request over a fresh connection, its body counted and checksummed as it
/// arrives (inflated first when gzip), never held.
struct Scrape {
    status: u16,
    gzip: bool,
    /// Body bytes received (compressed when gzip), and the Content-Length announced.
    body_len: u64,
    content_length: Option<u64>,
    /// CRC-32 and length of the text, when checked.
    text: Option<(u32, u64)>,
    /// From connect to the last byte.
    latency: Duration,
}

/// Counts and checksums what is written into it.
#[derive(Default)]
struct Digest {
    crc: crc32fast::Hasher,
    len: u64,
}

impl std::io::Write for Digest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.crc.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn scrape(address: SocketAddr, accept: Option<&str>, gzip: bool, check: bool) -> Scrape {
    use std::io::Write as _;
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let mut request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(a) = accept {
        request.push_str(&format!("Accept: {a}\r\n"));
    }
    if gzip {
        request.push_str("Accept-Encoding: gzip\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let body_start = loop {
        let n = stream.read(&mut buf).await.expect("read head");
        assert!(n > 0, "connection closed in the head");
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head_text = String::from_utf8_lossy(&head[..body_start]).into_owned();
    let header = |name: &str| {
        head_text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let status = head_text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let encoded = header("content-encoding").is_some_and(|e| e == "gzip");
    let content_length = header("content-length").and_then(|v| v.parse().ok());
    let mut plain = Digest::default();
    let mut inflate = flate2::write::GzDecoder::new(Digest::default());
    let mut body_len = 0u64;
    let mut consume = |bytes: &[u8]| {
        body_len += bytes.len() as u64;
        if check {
            if encoded {
                inflate.write_all(bytes).expect("a valid gzip body");
            } else {
                plain.write_all(bytes).expect("digest");
            }
        }
    };
    consume(&head[body_start..]);
    loop {
        let n = stream.read(&mut buf).await.expect("read body");
        if n == 0 {
            break;
        }
        consume(&buf[..n]);
    }
    let latency = started.elapsed();
    let text = check.then(|| {
        let digest = if encoded {
            inflate.finish().expect("a complete gzip body")
        } else {
            plain
        };
        (digest.crc.finalize(), digest.len)
    });
    Scrape {
        status,
        gzip: encoded,
        body_len,
        content_length,
        text,
        latency,
    }
}

/// Reset this process's `VmHWM` to its current RSS (Linux: `clear_refs` 5).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn main() {
    let args = Args::parse();
    let topics: usize = args.num("topics", 100);
    let groups: usize = args.num("groups", 300);
    let renders: usize = args.num::<usize>("renders", 60).max(1);
    let scrapes: usize = args.num("scrapes", 200);
    let granularity = match args.get("granularity") {
        Some("topic") => Granularity::Topic,
        _ => Granularity::Partition,
    };
    let levels: Vec<u32> = args.get("levels").map_or(vec![metrics::GZIP_LEVEL], |l| {
        l.split(',')
            .map(|v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("--levels {l}: not a list of levels"))
            })
            .collect()
    });

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
    let (rss_setup, hwm_setup) = rss_kib();
    let peak_reset = reset_peak_rss();

    let mut out = String::new();
    let mut series = 0;
    for &level in &levels {
        series = encode(&views, granularity, level, renders, &mut out);
    }
    let state = ExporterState::new(
        &[(
            "prod".into(),
            vec![("environment".into(), "production".into())],
        )],
        granularity,
    );
    out.push_str(&stats(
        &format!("publish (level {}, swap)", metrics::GZIP_LEVEL),
        &publish(&state, &report, renders),
    ));
    out.push('\n');
    scrapes_report(&state, scrapes, &mut out);

    out.insert_str(
        0,
        &format!(
            "== /metrics: {series} series ({} group partitions, {} partitions, {} groups), granularity {}\n",
            report.group_partitions.len(),
            report.partitions.len(),
            report.groups.len(),
            granularity.as_str()
        ),
    );
    memory_report(rss_setup, hwm_setup, peak_reset, &mut out);
    let pushes: usize = args.num("push", 0);
    if pushes > 0 {
        push_report(&state, pushes, &mut out);
    }
    if args.flag("uncompressed") {
        uncompressed_report(&views, granularity, renders, &mut out);
    }
    println!("{out}");
}

/// RSS with the report built, and the peak since (see the module comment).
fn memory_report(rss_setup: u64, hwm_setup: u64, peak_reset: bool, out: &mut String) {
    let (rss_end, hwm_end) = rss_kib();
    out.push_str(&format!(
        "RSS with the report built: {:.1} MiB (peak so far {:.1} MiB)\n",
        rss_setup as f64 / 1024.0,
        hwm_setup as f64 / 1024.0
    ));
    if peak_reset {
        out.push_str(&format!(
            "peak RSS during renders and scrapes (VmHWM, reset after setup): {:.1} MiB, {:+.1} MiB over the report; RSS at the end {:.1} MiB\n",
            hwm_end as f64 / 1024.0,
            (hwm_end as f64 - rss_setup as f64) / 1024.0,
            rss_end as f64 / 1024.0
        ));
    } else {
        out.push_str(&format!(
            "peak RSS of the process (VmHWM; /proc/self/clear_refs not writable): {:.1} MiB; RSS at the end {:.1} MiB\n",
            hwm_end as f64 / 1024.0,
            rss_end as f64 / 1024.0
        ));
    }
}

/// `--push N`: N exports of the served exposition per protocol, timed, with their
/// request sizes and what they add to the peak RSS.
fn push_report(state: &Arc<ExporterState>, pushes: usize, out: &mut String) {
    use tidemark::export::samples::{Family, Sample, SampleSink, Walk};
    use tidemark::export::{encode_all, Protocol};
    struct Count(u64);
    impl SampleSink for Count {
        fn sample(&mut self, _: &Family, _: &Sample<'_>) -> bool {
            self.0 += 1;
            false
        }
    }
    let exposition = state.rendered();
    let peak_reset = reset_peak_rss();
    let walk: Vec<f64> = (0..pushes)
        .map(|_| {
            let started = Instant::now();
            let mut count = Count(0);
            while Walk::new(&exposition).feed(&mut count).expect("walk") {}
            assert_eq!(count.0 as usize, exposition.series());
            ms(started.elapsed())
        })
        .collect();
    out.push_str(&stats("push: walk (inflate + parse) only", &walk));
    out.push('\n');
    for (name, protocol, gzip) in [
        ("remote write", Protocol::RemoteWrite, false),
        ("OTLP", Protocol::OtlpGrpc, false),
        ("OTLP gzip", Protocol::OtlpGrpc, true),
    ] {
        let (mut requests, mut bytes, mut largest) = (0u64, 0u64, 0usize);
        let times: Vec<f64> = (0..pushes)
            .map(|_| {
                (requests, bytes, largest) = (0, 0, 0);
                let started = Instant::now();
                let samples = encode_all(&exposition, protocol, gzip, &mut |c| {
                    requests += 1;
                    bytes += c.body.len() as u64;
                    largest = largest.max(c.body.len());
                })
                .expect("encoded");
                assert_eq!(samples as usize, exposition.series());
                ms(started.elapsed())
            })
            .collect();
        out.push_str(&stats(&format!("push: walk + encode, {name}"), &times));
        out.push_str(&format!(
            "\n  {name}: {requests} requests, {:.1} MiB in all, largest {:.2} MiB\n",
            mib(bytes),
            mib(largest as u64)
        ));
    }
    if peak_reset {
        out.push_str(&format!(
            "peak RSS during the pushes: {:.1} MiB (process, VmHWM reset before them)\n",
            rss_kib().1 as f64 / 1024.0
        ));
    }
}

/// The uncompressed OpenMetrics render (`metrics::render`), for comparison; run last, as it
/// holds the whole text.
fn uncompressed_report(
    views: &[ClusterView],
    granularity: Granularity,
    renders: usize,
    out: &mut String,
) {
    let mut took = Vec::new();
    for _ in 0..renders {
        let t = Instant::now();
        std::hint::black_box(metrics::render(views, granularity));
        took.push(ms(t.elapsed()));
    }
    out.push_str(&stats(
        "uncompressed render (metrics::render, OpenMetrics)",
        &took,
    ));
    out.push('\n');
    out.push_str(&format!(
        "process peak RSS after the uncompressed renders: {:.1} MiB\n",
        rss_kib().1 as f64 / 1024.0
    ));
}

/// `renders` renders into gzip at `level`: sizes and encode time into `out`; returns the
/// number of series.
fn encode(
    views: &[ClusterView],
    granularity: Granularity,
    level: u32,
    renders: usize,
    out: &mut String,
) -> usize {
    let mut took = Vec::new();
    let mut last = None;
    for _ in 0..renders {
        let t = Instant::now();
        let c = metrics::render_compressed(views, &[], granularity, level).expect("rendered");
        took.push(ms(t.elapsed()));
        last = Some(c);
    }
    let Some(c) = last else { return 0 };
    let (text, gzip) = (
        c.text_len(Format::Prometheus),
        c.gzip_len(Format::Prometheus) as u64,
    );
    let (om_text, om_gzip) = (
        c.text_len(Format::OpenMetrics),
        c.gzip_len(Format::OpenMetrics) as u64,
    );
    out.push_str(&format!(
        "gzip level {level}: Prometheus text {:.2} MiB -> {:.2} MiB gzip ({:.1}x; {text} -> {gzip} bytes), \
         OpenMetrics {om_text} -> {om_gzip} bytes (both stored in {} bytes)\n",
        mib(text),
        mib(gzip),
        text as f64 / gzip as f64,
        c.stored_len(),
    ));
    out.push_str(&stats(
        &format!("  encode (render_compressed, level {level})"),
        &took,
    ));
    out.push('\n');
    c.series()
}

/// What a cycle does: `ExporterState::publish` renders and swaps the exposition in.
fn publish(state: &ExporterState, report: &Arc<lag::LagReport>, renders: usize) -> Vec<f64> {
    let mut took = Vec::new();
    for _ in 0..renders {
        let outcome = CycleOutcome::Success {
            report: report.clone(),
            poll_time: Duration::from_millis(120),
            health: tidemark::state::CycleHealth::complete([1]),
        };
        let t = Instant::now();
        state.publish("prod", outcome, Duration::from_millis(800));
        took.push(ms(t.elapsed()));
    }
    took
}

/// Scrapes over fresh connections from the exporter's HTTP server: both formats, with and
/// without gzip (checked once to inflate to the same text), then `/health`.
fn scrapes_report(state: &Arc<ExporterState>, scrapes: usize, out: &mut String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rendered = state.rendered();
    let (rows, health) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(tidemark::http::serve(listener, state.clone(), stopped));
        let mut rows = Vec::new();
        for (format, accept) in [
            (Format::Prometheus, None),
            (Format::OpenMetrics, Some("application/openmetrics-text")),
        ] {
            let zipped = scrape(address, accept, true, true).await;
            let plain = scrape(address, accept, false, true).await;
            assert!(zipped.gzip && !plain.gzip);
            assert_eq!(
                zipped.text, plain.text,
                "{format:?}: gzip and plain texts differ"
            );
            assert_eq!(plain.text.map(|t| t.1), Some(rendered.text_len(format)));
            for gzip in [true, false] {
                let mut took = Vec::new();
                for _ in 0..scrapes {
                    let r = scrape(address, accept, gzip, false).await;
                    assert_eq!(r.status, 200);
                    assert_eq!(Some(r.body_len), r.content_length);
                    took.push(ms(r.latency));
                }
                rows.push((format, gzip, took));
            }
        }
        let mut health = Vec::new();
        for _ in 0..scrapes {
            health.push(ms(exporter::get(address, "/health").await.latency));
        }
        (rows, health)
    });
    for (format, gzip, took) in &rows {
        let body = if *gzip {
            rendered.gzip_len(*format) as u64
        } else {
            rendered.text_len(*format)
        };
        out.push_str(&stats(
            &format!(
                "scrape /metrics, {format:?}, {} ({:.2} MiB)",
                if *gzip { "gzip" } else { "plain" },
                mib(body)
            ),
            took,
        ));
        out.push('\n');
    }
    out.push_str(&stats("scrape /health (no body: connection cost)", &health));
    out.push('\n');
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
    let series = state.rendered().series();
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
