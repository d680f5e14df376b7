//! HTTP endpoints: `/metrics`, `/health`, `/ready`, `/leader`, `/`.
//!
//! Handlers read what collectors published ([`ExporterState`]) and never await Kafka, so
//! they answer in microseconds even while every cluster is unreachable, and never wait on
//! a render (see [`crate::state`]). The server itself, with its limits and timeouts, is in
//! `server.rs`.

use std::fmt::Write as _;

use std::time::UNIX_EPOCH;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Method, Request, Response, StatusCode};

use crate::state::{ClusterStatus, ExporterState};

mod body;
mod negotiate;
mod server;

pub use body::Body;
pub use server::{serve, serve_with, spawn_dedicated, ServerLimits};

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response<Body> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Route one request.
pub fn handle(req: &Request<Incoming>, state: &ExporterState) -> Response<Body> {
    route(req.method(), req.uri().path(), req.headers(), state)
}

fn route(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    state: &ExporterState,
) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n",
        );
    }
    match path {
        "/metrics" => metrics(headers, state),
        "/health" => respond(StatusCode::OK, "text/plain; charset=utf-8", "OK\n"),
        "/ready" => {
            if state.ready() {
                respond(StatusCode::OK, "text/plain; charset=utf-8", "ready\n")
            } else if state.owning().is_some_and(|o| o.is_empty()) {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    "standby: another replica owns every cluster's work ([exporter.leadership])\n",
                )
            } else {
                let waiting: Vec<String> = state
                    .status()
                    .into_iter()
                    .filter(|(_, s)| s.cycles_ok == 0)
                    .map(|(name, _)| name)
                    .collect();
                let body = format!(
                    "not ready: no successful cycle yet for {}\n",
                    waiting.join(", ")
                );
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    body,
                )
            }
        }
        "/leader" => respond(StatusCode::OK, "application/json", state.leader_json()),
        "/" => respond(StatusCode::OK, "text/html; charset=utf-8", info_page(state)),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}

/// The exposition as stored (gzip) when the client accepts gzip, else its text inflated
/// as it is sent.
fn metrics(headers: &HeaderMap, state: &ExporterState) -> Response<Body> {
    let rendered = state.rendered();
    let format = negotiate::format(headers);
    let gzip = negotiate::accepts_gzip(headers);
    let body = if gzip {
        Body::new(rendered.gzip(format))
    } else {
        Body::text(rendered.text(format))
    };
    let mut response = respond(StatusCode::OK, format.content_type(), body);
    let h = response.headers_mut();
    if gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn info_page(state: &ExporterState) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tidemark</title></head><body>",
    );
    let _ = write!(html, "<h1>tidemark {}</h1>", env!("CARGO_PKG_VERSION"));
    html.push_str("<p>Kafka consumer-group lag exporter. <a href=\"/metrics\">/metrics</a> · <a href=\"/health\">/health</a> · <a href=\"/ready\">/ready</a> · <a href=\"/leader\">/leader</a></p>");
    html.push_str("<table border=\"1\" cellpadding=\"4\"><tr><th>cluster</th><th>last cycle (UTC)</th><th>duration</th><th>result</th><th>cycles ok / failed</th><th>groups seen / monitored / filtered out</th><th>topics seen / monitored / filtered out</th><th>partitions</th><th>series</th><th>groups by type</th><th>last success (UTC)</th><th>last error</th></tr>");
    for (name, s) in state.status() {
        cluster_row(&mut html, &name, &s);
    }
    html.push_str("</table></body></html>\n");
    html
}

/// "YYYY-MM-DD HH:MM:SS", or "never".
fn utc(t: Option<std::time::SystemTime>) -> String {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or_else(|| "never".to_string(), |d| format_utc(d.as_secs()))
}

/// One cluster's row of the status page.
fn cluster_row(html: &mut String, name: &str, s: &ClusterStatus) {
    let duration = s
        .last_cycle_duration
        .map_or_else(|| "-".to_string(), |d| format!("{:.3} s", d.as_secs_f64()));
    let result = match (&s.last_error, s.last_cycle_at) {
        (Some(e), _) => format!("failed: {}", escape(e)),
        (None, Some(_)) if s.partial || !s.denied.is_empty() => partial_result(s),
        (None, Some(_)) => "ok".to_string(),
        (None, None) => "pending".to_string(),
    };
    let types = if s.group_types.is_empty() {
        "-".to_string()
    } else {
        let counts: Vec<String> = s
            .group_types
            .iter()
            .map(|(t, n)| format!("{} {n}", escape(t)))
            .collect();
        counts.join(", ")
    };
    let [groups, topics, partitions, series] = coverage_cells(s);
    let last_error = s.last_failure.as_ref().map_or_else(
        || "none".to_string(),
        |(at, e)| format!("{}: {}", utc(Some(*at)), escape(e)),
    );
    let _ = write!(
        html,
        "<tr><td>{}</td><td>{}</td><td>{duration}</td><td>{result}</td><td>{} / {}</td><td>{groups}</td><td>{topics}</td><td>{partitions}</td><td>{series}</td><td>{types}</td><td>{}</td><td>{last_error}</td></tr>",
        escape(name),
        utc(s.last_cycle_at),
        s.cycles_ok,
        s.cycles_failed,
        utc(s.last_success_wall),
    );
}

/// Groups and topics ("seen / monitored / filtered out", with a warning when the filters
/// keep nothing), partitions and series of the last published cycle; "-" before one.
fn coverage_cells(s: &ClusterStatus) -> [String; 4] {
    if s.cycles_ok == 0 {
        return std::array::from_fn(|_| "-".to_string());
    }
    let c = &s.coverage;
    let cell = |seen: usize, monitored: usize, unmatched: bool, what: &str| {
        let mut cell = format!("{seen} / {monitored} / {}", seen.saturating_sub(monitored));
        if unmatched {
            let _ = write!(
                cell,
                "<br><b>the {what} filters match nothing</b> ({what}_whitelist / {what}_blacklist)"
            );
        }
        cell
    };
    [
        cell(
            c.groups_seen,
            c.groups_monitored,
            c.groups_unmatched(),
            "group",
        ),
        cell(
            c.topics_seen,
            c.topics_monitored,
            c.topics_unmatched(),
            "topic",
        ),
        s.partitions.to_string(),
        s.series.to_string(),
    ]
}

/// What failed in a partial cycle: each failing broker, the missing ACLs and the item
/// errors.
fn partial_result(s: &ClusterStatus) -> String {
    // Only a missing DescribeConfigs leaves a cycle complete: its compaction flag is unset.
    let mut out = String::from(if s.partial {
        "partial (what failed keeps its last values):<ul>"
    } else {
        "ok, but:<ul>"
    });
    for d in &s.denied {
        let _ = write!(out, "<li>not authorized: {}</li>", escape(d));
    }
    for (node, e) in &s.broker_errors {
        let _ = write!(out, "<li>broker {node}: {}</li>", escape(e));
    }
    for e in &s.item_errors {
        let _ = write!(out, "<li>{}</li>", escape(e));
    }
    out.push_str("</ul>");
    out
}

/// "YYYY-MM-DD HH:MM:SS" for seconds since the epoch (UTC, proleptic Gregorian).
fn format_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod page_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Granularity;
    use crate::metrics::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
    use crate::state::CycleOutcome;
    use hyper::header::{HeaderName, ACCEPT, ACCEPT_ENCODING};
    use std::sync::Arc;
    use std::time::Duration;

    fn state() -> Arc<ExporterState> {
        ExporterState::new(
            &[("a".to_string(), vec![]), ("b".to_string(), vec![])],
            Granularity::Partition,
        )
    }

    fn body(r: Response<Body>) -> (StatusCode, String) {
        use http_body_util::BodyExt;
        let status = r.status();
        let bytes = futures_util::FutureExt::now_or_never(r.into_body().collect())
            .and_then(Result::ok)
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[test]
    fn ready_only_after_every_cluster_succeeded_once() {
        let s = state();
        let (code, text) = body(route(&Method::GET, "/ready", &none(), &s));
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(text.contains("a, b"), "{text}");
        let ok = CycleOutcome::Success {
            report: Arc::default(),
            poll_time: Duration::ZERO,
            health: crate::state::CycleHealth::complete([1]),
        };
        s.publish("a", ok.clone(), Duration::from_millis(3));
        assert_eq!(
            body(route(&Method::GET, "/ready", &none(), &s)).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        s.publish("b", ok, Duration::from_millis(3));
        assert_eq!(
            body(route(&Method::GET, "/ready", &none(), &s)).0,
            StatusCode::OK
        );
        // A later failure does not make it unready: the last good report is still served.
        s.publish(
            "b",
            CycleOutcome::Failure {
                error: "down".into(),
            },
            Duration::ZERO,
        );
        assert_eq!(
            body(route(&Method::GET, "/ready", &none(), &s)).0,
            StatusCode::OK
        );
    }

    fn none() -> HeaderMap {
        HeaderMap::new()
    }

    fn headers(pairs: &[(HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name.clone(), HeaderValue::from_static(value));
        }
        h
    }

    fn raw_body(r: Response<Body>) -> Vec<u8> {
        use http_body_util::BodyExt;
        futures_util::FutureExt::now_or_never(r.into_body().collect())
            .and_then(Result::ok)
            .map(|c| c.to_bytes().to_vec())
            .unwrap_or_default()
    }

    fn gunzip(body: &[u8]) -> String {
        use std::io::Read;
        let mut out = String::new();
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut out)
            .expect("one valid gzip member of UTF-8 text");
        out
    }

    /// A state with a cluster of a few thousand series: more than one stored chunk.
    fn published() -> Arc<ExporterState> {
        use crate::kafka::TopicPartition;
        use crate::lag::{GroupLag, GroupPartitionLag, GroupState, LagReport, PartitionOffsets};
        let topic: Arc<str> = Arc::from("orders");
        let report = LagReport {
            cluster: "a".into(),
            partitions: (0..3000)
                .map(|p| PartitionOffsets {
                    tp: TopicPartition::new(topic.clone(), p),
                    low: i64::from(p),
                    high: 1_000_000 + i64::from(p) * 7919,
                    read_at_ms: 0,
                })
                .collect(),
            // Seven groups, each with every seventh partition.
            group_partitions: (0..7)
                .flat_map(|g| (g..3000).step_by(7))
                .map(|p| {
                    let committed = 1000 + i64::from(p);
                    GroupPartitionLag::new(
                        p as u32,
                        None,
                        committed,
                        (0, committed + i64::from(p % 13)),
                        false,
                        Some(f64::from(p) / 8.0),
                        false,
                    )
                })
                .collect(),
            groups: (0..7)
                .map(|g| GroupLag {
                    group: Arc::from(format!("g{g}")),
                    group_type: Default::default(),
                    state: GroupState::Stable,
                    offsets_known: true,
                    max_lag: 12,
                    max_lag_seconds: Some(374.875),
                    sum_lag: 18_000,
                    topics: Default::default(),
                    read_at_ms: 0,
                    stale: false,
                    rows: (g..3000).step_by(7).count() as u32,
                })
                .collect(),
            ..LagReport::default()
        };
        let s = state();
        let ok = CycleOutcome::Success {
            report: Arc::new(report),
            poll_time: Duration::from_nanos(5_977_897),
            health: crate::state::CycleHealth::complete([1]),
        };
        s.publish("a", ok, Duration::from_millis(1500));
        s
    }

    #[test]
    fn metrics_negotiates_the_format() {
        let s = published();
        let om = headers(&[(
            ACCEPT,
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )]);
        let r = route(&Method::GET, "/metrics", &om, &s);
        assert_eq!(r.headers()[CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
        assert!(r.headers().get(CONTENT_ENCODING).is_none());
        let text = body(r).1;
        assert!(text.ends_with("# EOF\n"), "{}", &text[text.len() - 200..]);
        assert!(text.contains("# TYPE kafka_lag_exporter_data_loss_partitions counter\n"));
        let r = route(&Method::GET, "/metrics", &none(), &s);
        assert_eq!(r.headers()[CONTENT_TYPE], PROMETHEUS_CONTENT_TYPE);
        let text = body(r).1;
        assert!(text.contains("kafka_lag_exporter_up 0"));
        assert!(text.contains("# TYPE kafka_lag_exporter_data_loss_partitions_total counter\n"));
        assert!(!text.contains("# EOF"));
    }

    /// Both formats, with and without gzip: the gzip body is one gzip member of exactly the
    /// text a client without gzip gets (`metrics::tests` compares that text with
    /// `metrics::render`'s).
    #[test]
    fn gzip_and_plain_responses_carry_the_same_text() {
        let s = published();
        let series = s.rendered().series();
        assert!(series > 9000, "{series} series");
        for (accept, om) in [(None, false), (Some("application/openmetrics-text"), true)] {
            let mut plain = Vec::new();
            if let Some(a) = accept {
                plain.push((ACCEPT, a));
            }
            let mut gz = plain.clone();
            gz.push((ACCEPT_ENCODING, "deflate, gzip;q=0.9"));
            let r = route(&Method::GET, "/metrics", &headers(&gz), &s);
            assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
            assert_eq!(r.headers()[VARY], "Accept, Accept-Encoding");
            let length = hyper::body::Body::size_hint(r.body()).exact();
            let compressed = raw_body(r);
            assert_eq!(length, Some(compressed.len() as u64));
            let unzipped = gunzip(&compressed);
            let r = route(&Method::GET, "/metrics", &headers(&plain), &s);
            assert!(r.headers().get(CONTENT_ENCODING).is_none());
            assert_eq!(r.headers()[VARY], "Accept, Accept-Encoding");
            let length = hyper::body::Body::size_hint(r.body()).exact();
            let text = body(r).1;
            assert_eq!(length, Some(text.len() as u64));
            assert_eq!(unzipped, text, "openmetrics: {om}");
            assert!(compressed.len() * 5 < text.len());
            assert_eq!(text.ends_with("# EOF\n"), om);
            assert!(
                text.contains("kafka_consumergroup_poll_time_ms{cluster_name=\"a\"} 5.977897\n")
            );
            assert!(text.contains(
                "kafka_consumergroup_group_max_lag{cluster_name=\"a\",group=\"g0\"} 12\n"
            ));
        }
        // gzip;q=0 means no.
        let r = route(
            &Method::GET,
            "/metrics",
            &headers(&[(ACCEPT_ENCODING, "gzip;q=0, *")]),
            &s,
        );
        assert!(r.headers().get(CONTENT_ENCODING).is_none());
    }

    #[test]
    fn other_endpoints() {
        let s = state();
        assert_eq!(
            body(route(&Method::GET, "/health", &none(), &s)),
            (StatusCode::OK, "OK\n".into())
        );
        assert_eq!(
            body(route(&Method::GET, "/leader", &none(), &s)).1,
            r#"{"is_leader":true}"#
        );
        assert_eq!(
            body(route(&Method::GET, "/nope", &none(), &s)).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            body(route(&Method::POST, "/metrics", &none(), &s)).0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        s.publish(
            "a",
            CycleOutcome::Failure {
                error: "<boom>".into(),
            },
            Duration::from_millis(1500),
        );
        let (code, html) = body(route(&Method::GET, "/", &none(), &s));
        assert_eq!(code, StatusCode::OK);
        assert!(
            html.contains("failed: &lt;boom&gt;")
                && html.contains("1.500 s")
                && html.contains("pending"),
            "{html}"
        );
    }

    #[test]
    fn endpoints_answer_while_a_render_runs() {
        let s = state();
        let (hook, entered, release) = crate::state::tests::latch();
        s.set_render_hook(Some(hook));
        let ok = CycleOutcome::Success {
            report: Arc::default(),
            poll_time: Duration::ZERO,
            health: crate::state::CycleHealth::complete([1]),
        };
        let publisher = {
            let s = s.clone();
            std::thread::spawn(move || s.publish("a", ok, Duration::from_millis(3)))
        };
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the render started");
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let s = s.clone();
            std::thread::spawn(move || {
                let answers: Vec<(StatusCode, String)> = ["/health", "/ready", "/", "/metrics"]
                    .into_iter()
                    .map(|path| body(route(&Method::GET, path, &none(), &s)))
                    .collect();
                let _ = tx.send(answers);
            });
        }
        let answers = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("endpoints answered while a render was held open");
        release.send(()).expect("release");
        publisher.join().expect("publisher");
        assert_eq!(answers[0], (StatusCode::OK, "OK\n".into()));
        // Every endpoint shows the state before the cycle until its exposition is served.
        assert_eq!(answers[1].0, StatusCode::SERVICE_UNAVAILABLE);
        assert!(answers[1].1.contains("for a, b"), "{}", answers[1].1);
        assert!(answers[2].1.contains("<td>0 / 0</td>"), "{}", answers[2].1);
        assert!(
            answers[3].1.contains("kafka_lag_exporter_up 0"),
            "{}",
            answers[3].1
        );
        let (_, html) = body(route(&Method::GET, "/", &none(), &s));
        assert!(html.contains("<td>1 / 0</td>"), "{html}");
    }

    #[test]
    fn status_page_counts_groups_by_type() {
        use crate::kafka::GroupType;
        use crate::lag::{GroupLag, LagReport};
        let s = state();
        let group = |name: &str, group_type: GroupType| GroupLag {
            group: name.into(),
            group_type,
            state: Default::default(),
            offsets_known: true,
            max_lag: 0,
            max_lag_seconds: None,
            sum_lag: 0,
            topics: Default::default(),
            read_at_ms: 0,
            stale: false,
            rows: 0,
        };
        let report = LagReport {
            groups: vec![
                group("a1", GroupType::Classic),
                group("a2", GroupType::Consumer),
                group("a3", GroupType::Classic),
                group("a4", GroupType::Streams),
            ],
            ..LagReport::default()
        };
        let ok = CycleOutcome::Success {
            report: Arc::new(report),
            poll_time: Duration::ZERO,
            health: crate::state::CycleHealth::complete([1]),
        };
        s.publish("a", ok, Duration::from_millis(3));
        let (_, html) = body(route(&Method::GET, "/", &none(), &s));
        assert!(
            html.contains("<td>classic 2, consumer 1, streams 1</td>"),
            "{html}"
        );
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
    }
}
