//! HTTP endpoints: `/metrics`, `/health`, `/ready`, `/leader`, `/`.
//!
//! Handlers read what collectors published ([`ExporterState`]) and never await Kafka, so
//! they answer in microseconds even while every cluster is unreachable, and never wait on
//! a render (see [`crate::state`]). The server itself, with its limits and timeouts, is in
//! `server.rs`.

use std::convert::Infallible;
use std::fmt::Write as _;

use std::time::UNIX_EPOCH;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::metrics::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use crate::state::ExporterState;

mod server;

pub use server::{serve, serve_with, spawn_dedicated, ServerLimits};

/// A response body made of shared byte chunks: `/metrics` sends the text rendered at the
/// end of the last cycle without copying it.
#[derive(Debug, Default)]
pub struct Body {
    chunks: VecDeque<Bytes>,
}

impl Body {
    fn new(chunks: impl IntoIterator<Item = Bytes>) -> Body {
        Body {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::new([b])
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::from(Bytes::from(s))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::from(Bytes::from_static(s.as_bytes()))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
    }
}

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
    route(
        req.method(),
        req.uri().path(),
        req.headers().get(ACCEPT),
        state,
    )
}

fn route(
    method: &Method,
    path: &str,
    accept: Option<&HeaderValue>,
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
        "/metrics" => {
            let rendered = state.rendered();
            let openmetrics = accept
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            if openmetrics {
                respond(
                    StatusCode::OK,
                    OPENMETRICS_CONTENT_TYPE,
                    rendered.openmetrics.clone(),
                )
            } else {
                respond(
                    StatusCode::OK,
                    PROMETHEUS_CONTENT_TYPE,
                    Body::new(rendered.prometheus.iter().cloned()),
                )
            }
        }
        "/health" => respond(StatusCode::OK, "text/plain; charset=utf-8", "OK\n"),
        "/ready" => {
            if state.ready() {
                respond(StatusCode::OK, "text/plain; charset=utf-8", "ready\n")
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
        "/leader" => respond(StatusCode::OK, "application/json", r#"{"is_leader":true}"#),
        "/" => respond(StatusCode::OK, "text/html; charset=utf-8", info_page(state)),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
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
    html.push_str("<table border=\"1\" cellpadding=\"4\"><tr><th>cluster</th><th>last cycle (UTC)</th><th>duration</th><th>result</th><th>cycles ok / failed</th><th>groups by type</th></tr>");
    for (name, s) in state.status() {
        let at = s
            .last_cycle_at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(|| "never".to_string(), |d| format_utc(d.as_secs()));
        let duration = s
            .last_cycle_duration
            .map_or_else(|| "-".to_string(), |d| format!("{:.3} s", d.as_secs_f64()));
        let result = match (&s.last_error, s.last_cycle_at) {
            (Some(e), _) => format!("failed: {}", escape(e)),
            (None, Some(_)) if s.partial => partial_result(&s),
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
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{at}</td><td>{duration}</td><td>{result}</td><td>{} / {}</td><td>{types}</td></tr>",
            escape(&name),
            s.cycles_ok,
            s.cycles_failed
        );
    }
    html.push_str("</table></body></html>\n");
    html
}

/// What failed in a partial cycle: each failing broker and the item errors.
fn partial_result(s: &crate::state::ClusterStatus) -> String {
    let mut out = String::from("partial (what failed keeps its last values):<ul>");
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
mod tests {
    use super::*;
    use crate::config::Granularity;
    use crate::state::CycleOutcome;
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
        let (code, text) = body(route(&Method::GET, "/ready", None, &s));
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(text.contains("a, b"), "{text}");
        let ok = CycleOutcome::Success {
            report: Arc::default(),
            poll_time: Duration::ZERO,
            health: crate::state::CycleHealth::complete([1]),
        };
        s.publish("a", ok.clone(), Duration::from_millis(3));
        assert_eq!(
            body(route(&Method::GET, "/ready", None, &s)).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        s.publish("b", ok, Duration::from_millis(3));
        assert_eq!(
            body(route(&Method::GET, "/ready", None, &s)).0,
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
            body(route(&Method::GET, "/ready", None, &s)).0,
            StatusCode::OK
        );
    }

    #[test]
    fn metrics_negotiates_the_format() {
        let s = state();
        let om =
            HeaderValue::from_static("application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
        let r = route(&Method::GET, "/metrics", Some(&om), &s);
        assert_eq!(r.headers()[CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
        assert!(body(r).1.ends_with("# EOF\n"));
        let r = route(&Method::GET, "/metrics", None, &s);
        assert_eq!(r.headers()[CONTENT_TYPE], PROMETHEUS_CONTENT_TYPE);
        assert!(body(r).1.contains("kafka_lag_exporter_up 0"));
    }

    #[test]
    fn other_endpoints() {
        let s = state();
        assert_eq!(
            body(route(&Method::GET, "/health", None, &s)),
            (StatusCode::OK, "OK\n".into())
        );
        assert_eq!(
            body(route(&Method::GET, "/leader", None, &s)).1,
            r#"{"is_leader":true}"#
        );
        assert_eq!(
            body(route(&Method::GET, "/nope", None, &s)).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            body(route(&Method::POST, "/metrics", None, &s)).0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        s.publish(
            "a",
            CycleOutcome::Failure {
                error: "<boom>".into(),
            },
            Duration::from_millis(1500),
        );
        let (code, html) = body(route(&Method::GET, "/", None, &s));
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
                    .map(|path| body(route(&Method::GET, path, None, &s)))
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
        let (_, html) = body(route(&Method::GET, "/", None, &s));
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
            topic_sum_lag: Default::default(),
            read_at_ms: 0,
            stale: false,
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
        let (_, html) = body(route(&Method::GET, "/", None, &s));
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
