//! A push exporter's task: the interval, the one pending export, sends, retries, counts
//! and log lines.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::{
    body_text, parse_url, Backoff, Chunk, Client, Export, ExportError, ExportStats, ExporterState,
    Protocol, PushAuth, Pusher, Response, SendError, Settings, OTLP_GRPC_PATH,
};

/// First retry delay after a failed request; doubles up to the interval (at most 30 s).
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// What one step of an export came to.
enum Advance {
    /// A chunk was delivered; more may follow.
    Sent(Box<Export>),
    /// Every sample was delivered (or dropped as refused).
    Finished(Box<Export>),
    Failed(Box<Export>, ExportError),
    /// The encoding task died (a bug): the export is given up.
    Lost(String),
}

impl Pusher {
    /// None (logged) when the settings cannot be used; the config has checked them, so
    /// this is not expected.
    pub(super) fn new(s: &Settings<'_>, state: &Arc<ExporterState>) -> Option<Pusher> {
        let url = match parse_url(s.url) {
            Ok(url) => url,
            Err(problem) => {
                tracing::error!(
                    exporter = s.name,
                    "the endpoint URL {problem}: push export is off"
                );
                return None;
            }
        };
        let tls = s.tls.map(|t| t.tls.clone());
        if url.tls && tls.is_none() {
            tracing::error!(
                exporter = s.name,
                "an https:// endpoint without TLS settings: push export is off"
            );
            return None;
        }
        let mut headers = Vec::with_capacity(s.headers.len() + 1);
        for (name, value) in s.headers {
            let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.expose()),
            ) else {
                tracing::error!(exporter = s.name, header = %name, "a header that cannot be sent: push export is off");
                return None;
            };
            value.set_sensitive(true);
            headers.push((name, value));
        }
        let mut token_file = None;
        let authorization = match s.auth {
            PushAuth::None => None,
            PushAuth::Basic { username, password } => Some(format!(
                "Basic {}",
                base64(format!("{username}:{}", password.expose()).as_bytes())
            )),
            PushAuth::Bearer(token) => Some(format!("Bearer {}", token.expose().trim())),
            PushAuth::BearerFile(path) => {
                token_file = Some(path.clone());
                None
            }
        };
        if let Some(value) = authorization {
            match sensitive(&value) {
                Some(v) => headers.push((header::AUTHORIZATION, v)),
                None => {
                    tracing::error!(exporter = s.name, "the credentials hold a character a header cannot carry: push export is off");
                    return None;
                }
            }
        }
        let stats = Arc::new(ExportStats::new(s.name));
        state.add_export_stats(stats.clone());
        let scheme = if url.tls { "https" } else { "http" };
        let path = url.path.split('?').next().unwrap_or("/");
        Some(Pusher {
            name: s.name,
            endpoint: format!("{scheme}://{}{path}", url.authority),
            protocol: s.protocol,
            gzip: s.gzip,
            client: Client::new(
                url.clone(),
                tls,
                s.protocol == Protocol::OtlpGrpc,
                s.timeout,
            ),
            url,
            interval: s.interval,
            headers,
            token_file,
            state: state.clone(),
            stats,
        })
    }

    /// Export every `interval` until `stopped`.
    pub(super) async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        tracing::info!(exporter = self.name, endpoint = %self.endpoint, interval = ?self.interval, "push exporter started");
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut backoff = Backoff::new(FIRST_RETRY, self.interval.min(Duration::from_secs(30)));
        let mut failures: u64 = 0;
        let mut pending: Option<Box<Export>> = None;
        loop {
            let export = match pending.take() {
                Some(export) => export,
                None => {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    Export::new(&self.state, self.protocol, self.gzip)
                }
            };
            match self.advance(export).await {
                Advance::Sent(export) => {
                    if failures > 0 {
                        tracing::info!(exporter = self.name, endpoint = %self.endpoint, failed_requests = failures, "push export delivered again");
                    }
                    failures = 0;
                    backoff.reset();
                    pending = Some(export);
                }
                Advance::Finished(export) => {
                    let ms = export.at.duration_since(UNIX_EPOCH).unwrap_or_default();
                    self.stats
                        .export_done(u64::try_from(ms.as_millis()).unwrap_or(u64::MAX));
                }
                Advance::Lost(why) => {
                    tracing::error!(exporter = self.name, error = %why, "an export was given up");
                }
                Advance::Failed(mut export, error) => {
                    failures += 1;
                    if !matches!(error, ExportError::Walk(_)) {
                        self.stats.request_failed();
                    }
                    if !error.retryable() {
                        self.refused(&mut export, &error);
                        if !matches!(error, ExportError::Walk(_)) {
                            pending = Some(export);
                        }
                        continue;
                    }
                    let delay = backoff.next_delay();
                    self.log_failure(&error, failures, delay);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => pending = Some(export),
                        _ = ticker.tick() => {
                            // A newer exposition replaces the unsent rest of this one.
                            self.stats.dropped(export.total.saturating_sub(export.done));
                            pending = Some(Export::new(&self.state, self.protocol, self.gzip));
                        }
                        _ = stopped.changed() => return,
                    }
                }
            }
        }
    }

    /// Drop what `error` makes unsendable: the refused chunk, or the whole export when the
    /// exposition cannot be read.
    fn refused(&self, export: &mut Export, error: &ExportError) {
        let dropped = match error {
            ExportError::Walk(_) => export.total.saturating_sub(export.done),
            _ => export.chunk.take().map_or(0, |c| c.samples),
        };
        export.done += dropped;
        self.stats.dropped(dropped);
        tracing::warn!(exporter = self.name, endpoint = %self.endpoint, error = %error, dropped_samples = dropped, "push request refused; its samples are dropped (sending them again would be refused again)");
    }

    fn log_failure(&self, error: &ExportError, failures: u64, retry_in: Duration) {
        // The first failure of a run at warn, the rest at debug: an endpoint that is down
        // for an hour is one warning, not thousands.
        if failures == 1 {
            tracing::warn!(exporter = self.name, endpoint = %self.endpoint, error = %error, ?retry_in, "push request failed; retrying (later exports replace this one while it fails)");
        } else {
            tracing::debug!(exporter = self.name, endpoint = %self.endpoint, error = %error, ?retry_in, failures, "push request failed again");
        }
    }

    /// Encode the next chunk (on the blocking pool) and send it.
    async fn advance(&mut self, export: Box<Export>) -> Advance {
        let filled = tokio::task::spawn_blocking(move || {
            let mut export = export;
            let result = export.fill();
            (export, result)
        })
        .await;
        let mut export = match filled {
            Ok((export, Ok(()))) => export,
            Ok((export, Err(e))) => return Advance::Failed(export, e),
            Err(e) => return Advance::Lost(e.to_string()),
        };
        let Some(chunk) = export.chunk.as_ref() else {
            return Advance::Finished(export);
        };
        match self.send(chunk).await {
            Ok(()) => {
                let samples = chunk.samples;
                export.chunk = None;
                export.done += samples;
                self.stats.request_ok(samples);
                Advance::Sent(export)
            }
            Err(e) => Advance::Failed(export, e),
        }
    }

    async fn send(&mut self, chunk: &Chunk) -> Result<(), ExportError> {
        let token = match &self.token_file {
            Some(path) => {
                let token =
                    std::fs::read_to_string(path).map_err(|error| ExportError::TokenFile {
                        path: path.display().to_string(),
                        error,
                    })?;
                let value = sensitive(&format!("Bearer {}", token.trim()));
                Some(value.ok_or_else(|| ExportError::TokenFile {
                    path: path.display().to_string(),
                    error: std::io::Error::other(
                        "the token holds a character a header cannot carry",
                    ),
                })?)
            }
            None => None,
        };
        let request = self.request(chunk.body.clone(), token)?;
        let response = self.client.send(request).await?;
        self.check(response)?;
        Ok(())
    }

    fn request(
        &self,
        body: Bytes,
        token: Option<HeaderValue>,
    ) -> Result<Request<Full<Bytes>>, SendError> {
        let path = match self.protocol {
            Protocol::RemoteWrite => None,
            Protocol::OtlpGrpc => Some(OTLP_GRPC_PATH.to_owned()),
            Protocol::OtlpHttp => Some(otlp_http_path(&self.url.path)),
        };
        let mut b = self.client.request(path.as_deref());
        b = match self.protocol {
            Protocol::RemoteWrite => b
                .header(header::CONTENT_ENCODING, "snappy")
                .header(header::CONTENT_TYPE, "application/x-protobuf")
                .header("x-prometheus-remote-write-version", "0.1.0"),
            Protocol::OtlpGrpc => b
                .header(header::CONTENT_TYPE, "application/grpc")
                .header(header::TE, "trailers"),
            Protocol::OtlpHttp => b.header(header::CONTENT_TYPE, "application/x-protobuf"),
        };
        if self.gzip {
            b = match self.protocol {
                Protocol::OtlpGrpc => b.header("grpc-encoding", "gzip"),
                _ => b.header(header::CONTENT_ENCODING, "gzip"),
            };
        }
        b = b.header(
            header::USER_AGENT,
            concat!("tidemark/", env!("CARGO_PKG_VERSION")),
        );
        for (name, value) in &self.headers {
            b = b.header(name, value);
        }
        if let Some(token) = token {
            b = b.header(header::AUTHORIZATION, token);
        }
        b.body(Full::new(body))
            .map_err(|e| SendError::Request(e.to_string()))
    }

    fn check(&self, r: Response) -> Result<(), SendError> {
        if self.protocol != Protocol::OtlpGrpc {
            return if r.status.is_success() {
                Ok(())
            } else {
                Err(SendError::Status {
                    status: r.status,
                    body: body_text(&r.body),
                })
            };
        }
        grpc_status(&r)
    }
}

/// The gRPC status of an answer: from the trailers, or the headers of a trailers-only
/// answer.
fn grpc_status(r: &Response) -> Result<(), SendError> {
    if r.status != StatusCode::OK {
        return Err(SendError::Status {
            status: r.status,
            body: body_text(&r.body),
        });
    }
    let field = |name: &str| {
        r.trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| r.headers.get(name))
    };
    let Some(code) = field("grpc-status") else {
        return Err(SendError::Status {
            status: r.status,
            body: "the answer carries no grpc-status".to_owned(),
        });
    };
    match code
        .to_str()
        .ok()
        .and_then(|c| c.trim().parse::<u32>().ok())
    {
        Some(0) => Ok(()),
        Some(code) => Err(SendError::Grpc {
            code,
            message: field("grpc-message")
                .map(|m| body_text(m.as_bytes()))
                .unwrap_or_default(),
        }),
        None => Err(SendError::Grpc {
            code: 2,
            message: "an unreadable grpc-status".to_owned(),
        }),
    }
}

/// OTLP/HTTP's path: the endpoint's, with `/v1/metrics` appended unless it is there.
fn otlp_http_path(path: &str) -> String {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut out = if path.ends_with("/v1/metrics") {
        path.to_owned()
    } else {
        format!("{}/v1/metrics", path.trim_end_matches('/'))
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A header value that HPACK never indexes and `Debug` never shows.
fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// Standard base64 with padding (RFC 4648), for basic auth.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for group in input.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn otlp_http_paths() {
        assert_eq!(otlp_http_path("/"), "/v1/metrics");
        assert_eq!(otlp_http_path("/otlp/"), "/otlp/v1/metrics");
        assert_eq!(otlp_http_path("/v1/metrics"), "/v1/metrics");
        assert_eq!(otlp_http_path("/x?k=1"), "/x/v1/metrics?k=1");
    }

    fn response(trailers: Option<(&str, &str)>, headers: Option<(&str, &str)>) -> Response {
        let map = |kv: Option<(&str, &str)>| {
            let mut m = hyper::HeaderMap::new();
            if let Some((k, v)) = kv {
                m.insert(
                    HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    HeaderValue::from_str(v).expect("value"),
                );
            }
            m
        };
        Response {
            status: StatusCode::OK,
            headers: map(headers),
            trailers: trailers.map(|t| map(Some(t))),
            body: Bytes::new(),
        }
    }

    #[test]
    fn grpc_status_from_trailers_or_a_trailers_only_answer() {
        assert!(grpc_status(&response(Some(("grpc-status", "0")), None)).is_ok());
        assert!(grpc_status(&response(None, Some(("grpc-status", "0")))).is_ok());
        let e = grpc_status(&response(Some(("grpc-status", "14")), None)).expect_err("14");
        assert!(e.retryable(), "{e}");
        let e = grpc_status(&response(Some(("grpc-status", "3")), None)).expect_err("3");
        assert!(!e.retryable(), "{e}");
        let e = grpc_status(&response(None, None)).expect_err("none");
        assert!(e.retryable(), "{e}");
    }

    #[test]
    fn client_errors_are_not_retried_but_throttling_and_server_errors_are() {
        let status = |code: u16| SendError::Status {
            status: StatusCode::from_u16(code).expect("status"),
            body: String::new(),
        };
        assert!(!status(400).retryable());
        assert!(!status(401).retryable());
        assert!(status(429).retryable());
        assert!(status(408).retryable());
        assert!(status(500).retryable());
        assert!(status(503).retryable());
    }
}
