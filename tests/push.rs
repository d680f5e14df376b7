//! The push exporters against real receivers (issue 12 items 1 and 2):
//!
//! * OTLP: a real OTLP/gRPC receiver (grpcio + opentelemetry-proto, `common::receivers`)
//!   gets, at every export, exactly the samples `/metrics` served at that moment; when it
//!   goes away and comes back only the exports in between are lost, failures and dropped
//!   samples are counted, and memory does not grow.
//! * Remote write: a real Prometheus (Debian's, `--web.enable-remote-write-receiver`)
//!   answers PromQL with the lag the scripted cluster was set up with, and follows it
//!   when the group commits.
//!
//! Ground truth comes from the stub's setup ([`LAYOUT`]), never from what tidemark read.

use tidemark_testkit as common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::exporter::{config, RunningExporter};
use common::receivers::{OtlpReceiver, Point, Prometheus};
use common::stub::{StubCluster, StubGroup};

const CLUSTER: &str = "stub";
const WAIT: Duration = Duration::from_secs(30);

/// orders/p: (low, high, committed offset of group `payments`).
const LAYOUT: [(i64, i64, i64); 3] = [(0, 1_000, 400), (10, 2_500, 2_500), (0, 77, 3)];

fn lag(p: usize) -> f64 {
    (LAYOUT[p].1 - LAYOUT[p].2) as f64
}

async fn stub() -> StubCluster {
    let stub = StubCluster::start(&[1, 2]).await;
    stub.add_topic("orders", &[1, 2, 1]);
    let mut group = StubGroup::consumer("payments");
    for (p, (low, high, committed)) in LAYOUT.iter().enumerate() {
        stub.set_watermarks("orders", p as i32, *low, *high);
        group = group.offset("orders", p as i32, *committed);
    }
    stub.add_group(group);
    stub
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A sample's identity as its exposition line writes it: `name{k="v",…}`.
fn key(name: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// Every sample of one exposition or export, by its line identity; values by their bits
/// (NaN equals NaN).
type Samples = BTreeMap<String, u64>;

fn exposition_samples(text: &str) -> Samples {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line");
            let value: f64 = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().expect("a value"),
            };
            (series.to_owned(), value.to_bits())
        })
        .collect()
}

/// Scrape `/metrics` every 40 ms for `span`: every distinct exposition served meanwhile.
async fn scrape_for(exp: &RunningExporter, span: Duration) -> (u64, Vec<Samples>, u64, Types) {
    let from = now_ns();
    let mut seen: Vec<Samples> = Vec::new();
    let mut all_types = Types::new();
    let deadline = Instant::now() + span;
    while Instant::now() < deadline {
        let r = exp.get("/metrics").await;
        assert_eq!(r.status, 200);
        let s = exposition_samples(&r.body);
        all_types.extend(types(&r.body));
        if seen.last() != Some(&s) {
            seen.push(s);
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    (from, seen, now_ns(), all_types)
}

/// The exports in `requests`, by their time (one export is one or more requests).
fn exports(requests: &[Vec<Point>]) -> BTreeMap<u64, Vec<Point>> {
    let mut by_time: BTreeMap<u64, Vec<Point>> = BTreeMap::new();
    for p in requests.iter().flatten() {
        by_time.entry(p.time_unix_nano).or_default().push(p.clone());
    }
    by_time
}

/// Family types from `# TYPE` lines.
type Types = BTreeMap<String, String>;

fn types(text: &str) -> Types {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// The type of the family of sample `name`.
fn type_of<'a>(types: &'a Types, name: &str) -> &'a str {
    let candidates = [
        Some(name),
        name.strip_suffix("_total"),
        name.strip_suffix("_bucket"),
        name.strip_suffix("_sum"),
        name.strip_suffix("_count"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|n| types.get(n))
        .map_or("untyped", String::as_str)
}

fn check_point_shape(p: &Point, types: &Types) {
    assert_eq!(
        (p.service_name.as_str(), p.scope.as_str()),
        ("tidemark", "tidemark")
    );
    if type_of(types, &p.name) != "gauge" {
        assert_eq!(p.kind, "sum", "{}", p.name);
        assert!(p.monotonic, "{}", p.name);
        assert_eq!(p.temporality, 2, "cumulative: {}", p.name);
        assert!(p.start_time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano);
    } else {
        assert_eq!(p.kind, "gauge", "{}", p.name);
    }
}

/// Each export timed within `[from, to]` (with a margin) equals one exposition scraped.
fn assert_exports_match(
    exports: &BTreeMap<u64, Vec<Point>>,
    (from, scraped, to, types): &(u64, Vec<Samples>, u64, Types),
) -> usize {
    let (from, to) = (*from, *to);
    let margin = 150_000_000;
    let mut checked = 0;
    for (time, points) in exports.range(from + margin..to.saturating_sub(margin)) {
        let mut got = Samples::new();
        for p in points {
            check_point_shape(p, types);
            let previous = got.insert(key(&p.name, &p.attributes), p.value.to_bits());
            assert!(previous.is_none(), "{} twice in one export", p.name);
        }
        let matching = scraped.iter().find(|s| **s == got);
        if matching.is_none() {
            let closest = scraped
                .iter()
                .min_by_key(|s| s.len().abs_diff(got.len()))
                .cloned()
                .unwrap_or_default();
            let only_pushed: Vec<_> = got
                .iter()
                .filter(|(k, v)| closest.get(*k) != Some(v))
                .take(5)
                .collect();
            let only_served: Vec<_> = closest
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(v))
                .take(5)
                .collect();
            panic!(
                "the export at {time} ({} samples) equals no exposition served ({} seen); \
                 pushed, not served: {only_pushed:?}; served, not pushed: {only_served:?}",
                got.len(),
                scraped.len()
            );
        }
        for (p, _) in LAYOUT.iter().enumerate() {
            let k = format!(
                "kafka_consumergroup_group_lag{{cluster_name=\"{CLUSTER}\",group=\"payments\",topic=\"orders\",partition=\"{p}\",member_host=\"\",consumer_id=\"\",client_id=\"\"}}"
            );
            assert_eq!(got.get(&k).map(|v| f64::from_bits(*v)), Some(lag(p)), "{k}");
        }
        checked += 1;
    }
    checked
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn counter(exp: &RunningExporter, series: &str) -> f64 {
    let r = exp.get("/metrics").await;
    exposition_samples(&r.body)
        .get(series)
        .map_or(0.0, |v| f64::from_bits(*v))
}

/// Wait until `series` on /metrics is above zero.
async fn wait_positive(exp: &RunningExporter, series: &str) {
    let deadline = Instant::now() + WAIT;
    while counter(exp, series).await <= 0.0 {
        assert!(Instant::now() < deadline, "{series} stayed 0");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until Prometheus answers `want` as the lag of `payments` on orders/0..3.
async fn wait_lags(prometheus: &Prometheus, want: [f64; 3]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got: BTreeMap<String, f64> = prometheus
            .query("kafka_consumergroup_group_lag{group=\"payments\",topic=\"orders\"}")
            .await
            .into_iter()
            .map(|(labels, v)| {
                assert_eq!(labels["cluster_name"], CLUSTER);
                // Empty member labels are left out, as a scrape would store them.
                assert!(!labels.contains_key("member_host"), "{labels:?}");
                (
                    labels["partition"].as_str().unwrap_or_default().to_owned(),
                    v,
                )
            })
            .collect();
        let want: BTreeMap<String, f64> = (0..3).map(|p| (p.to_string(), want[p])).collect();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has {got:?}, want {want:?}\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_pushes_what_metrics_serves_and_survives_a_receiver_outage() {
    let stub = stub().await;
    let receiver = OtlpReceiver::start(None, None);
    let port = receiver.port;
    let exp = RunningExporter::start(&config(
        CLUSTER,
        &stub.bootstrap(),
        &format!(
            "poll_interval = \"1s\"\ngranularity = \"partition\"\n\
             [exporter.otel]\nenabled = true\nendpoint = \"{}\"\nexport_interval = \"300ms\"\ntimeout = \"2s\"",
            receiver.endpoint()
        ),
        "",
    ))
    .await;
    exp.wait_cycles(CLUSTER, 1, WAIT).await;

    let scraped = scrape_for(&exp, Duration::from_secs(4)).await;
    let checked = assert_exports_match(&exports(&receiver.requests()), &scraped);
    assert!(checked >= 8, "{checked} exports in 4 s at 300 ms");

    // The receiver goes away: exports fail, are counted, and the pending one is replaced.
    drop(receiver);
    let rss_before = rss_kib();
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_positive(
        &exp,
        "tidemark_export_requests_total{exporter=\"otlp\",result=\"failure\"}",
    )
    .await;
    wait_positive(
        &exp,
        "tidemark_export_samples_dropped_total{exporter=\"otlp\"}",
    )
    .await;
    let rss_after = rss_kib();
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB while the receiver was down"
    );

    // It comes back on the same port: exports resume within an interval and a backoff.
    let back_at = now_ns();
    let receiver = OtlpReceiver::start(Some(port), None);
    let scraped = scrape_for(&exp, Duration::from_secs(3)).await;
    let received = exports(&receiver.requests());
    let first = received
        .keys()
        .next()
        .copied()
        .expect("exports after the outage");
    assert!(
        first < back_at + 1_500_000_000,
        "first export {} ms after the receiver came back",
        (first.saturating_sub(back_at)) / 1_000_000
    );
    let checked = assert_exports_match(&received, &scraped);
    assert!(checked >= 5, "{checked} exports after the outage");
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_gives_prometheus_the_lag_the_cluster_was_set_up_with() {
    let prometheus = Prometheus::start().await;
    let stub = stub().await;
    let exp = RunningExporter::start(&config(
        CLUSTER,
        &stub.bootstrap(),
        &format!(
            "poll_interval = \"1s\"\ngranularity = \"partition\"\n\
             [exporter.remote_write]\nurl = \"{}\"\ninterval = \"500ms\"\n\
             headers = {{ \"X-Scope-OrgID\" = \"team-a\" }}",
            prometheus.write_url()
        ),
        "",
    ))
    .await;

    wait_lags(&prometheus, [lag(0), lag(1), lag(2)]).await;
    let max = prometheus
        .query("kafka_consumergroup_group_max_lag{group=\"payments\"}")
        .await;
    assert_eq!(max.len(), 1);
    assert_eq!(max[0].1, lag(0).max(lag(1)).max(lag(2)));
    let watermarks: BTreeSet<(String, u64)> = prometheus
        .query("kafka_partition_latest_offset{topic=\"orders\"}")
        .await
        .into_iter()
        .map(|(l, v)| {
            (
                l["partition"].as_str().unwrap_or_default().to_owned(),
                v as u64,
            )
        })
        .collect();
    let want: BTreeSet<(String, u64)> = LAYOUT
        .iter()
        .enumerate()
        .map(|(p, l)| (p.to_string(), l.1 as u64))
        .collect();
    assert_eq!(watermarks, want);

    // The group catches up on partition 0: Prometheus follows.
    stub.commit("payments", "orders", 0, LAYOUT[0].1 - 1);
    wait_lags(&prometheus, [1.0, lag(1), lag(2)]).await;

    // Its own sends are counted, and pushed like every other family.
    let deadline = Instant::now() + WAIT;
    loop {
        let ok = prometheus
            .query("tidemark_export_requests_total{exporter=\"remote_write\",result=\"success\"}")
            .await;
        if ok.first().is_some_and(|(_, v)| *v > 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no tidemark_export_requests_total in Prometheus"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    exp.shutdown().await;
}

/// One request as a scripted endpoint read it.
#[derive(Debug)]
struct Received {
    head: Vec<String>,
    body: Vec<u8>,
}

/// An HTTP/1.1 endpoint on 127.0.0.1 answering each request with the next status of
/// `statuses` (the last one from then on), recording every request; keeps connections open.
async fn scripted_endpoint(
    statuses: Vec<u16>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Received>::new()));
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (seen, statuses) = (seen.clone(), statuses.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 65536];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head: Vec<String> = String::from_utf8_lossy(&buf[..head_end])
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect();
                    let length: usize = head
                        .iter()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[head_end..head_end + length].to_vec();
                    buf.drain(..head_end + length);
                    let n = {
                        let mut seen = seen.lock().expect("log");
                        seen.push(Received { head, body });
                        seen.len()
                    };
                    let status = statuses[(n - 1).min(statuses.len() - 1)];
                    let answer =
                        format!("HTTP/1.1 {status} Scripted\r\ncontent-length: 4\r\n\r\nbusy");
                    if conn.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_sends_its_headers_and_credentials_and_retries_a_failed_request() {
    let stub = stub().await;
    let (port, log) = scripted_endpoint(vec![503, 204]).await;
    let exp = RunningExporter::start(&config(
        CLUSTER,
        &stub.bootstrap(),
        &format!(
            "poll_interval = \"500ms\"\n\
             [exporter.remote_write]\nurl = \"http://127.0.0.1:{port}/receive?tenant=a\"\n\
             interval = \"1h\"\nheaders = {{ \"X-Scope-OrgID\" = \"team-a\" }}\n\
             basic_auth = {{ username = \"u\", password = \"hunter2\" }}"
        ),
        "",
    ))
    .await;
    // The first export (at start) fails with 503 and is sent again after the backoff.
    wait_positive(
        &exp,
        "tidemark_export_requests_total{exporter=\"remote_write\",result=\"success\"}",
    )
    .await;
    let failures = counter(
        &exp,
        "tidemark_export_requests_total{exporter=\"remote_write\",result=\"failure\"}",
    )
    .await;
    assert_eq!(failures, 1.0);
    let log: Vec<Received> = std::mem::take(&mut *log.lock().expect("log"));
    assert_eq!(
        log.len(),
        2,
        "one failed request, one retry, nothing else in an hour"
    );
    assert_eq!(log[0].body, log[1].body, "the retry sends the same request");
    let head = &log[1].head;
    assert_eq!(head[0], "POST /receive?tenant=a HTTP/1.1");
    let header = |name: &str| {
        head.iter()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {name} in {head:?}"))
    };
    assert_eq!(header("content-encoding"), "snappy");
    assert_eq!(header("content-type"), "application/x-protobuf");
    assert_eq!(header("x-prometheus-remote-write-version"), "0.1.0");
    // base64("u:hunter2")
    assert_eq!(header("authorization"), "Basic dTpodW50ZXIy");
    assert_eq!(header("x-scope-orgid"), "team-a");
    assert_eq!(header("host"), format!("127.0.0.1:{port}"));
    assert!(header("user-agent").starts_with("tidemark/"));
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&log[1].body)
        .expect("a snappy block");
    // A WriteRequest of TimeSeries: field 1, length-delimited, holding `__name__` labels.
    assert_eq!(raw[0], 0x0a);
    assert!(raw.windows(8).any(|w| w == b"__name__"));
    exp.shutdown().await;
}
