//! Push exporters: OTLP metrics (`[exporter.otel]`) and Prometheus remote write
//! (`[exporter.remote_write]`), one task each, at the end of the data path
//! (state → push): each reads the exposition `/metrics` serves and never touches Kafka,
//! the collectors or the HTTP server.
//!
//! - **Source**: every `interval`, the exposition served at that moment, stamped with
//!   that moment (as a scrape would be). Its samples are read back from the stored text
//!   ([`samples::Walk`]), so the values pushed are those of `/metrics` for the same cycle,
//!   for every family.
//! - **Bounded memory**: samples are encoded into requests of at most ~2 MB
//!   (`CHUNK_BYTES`), each sent before the next is encoded; encoding runs on the blocking
//!   pool. Only one export is ever pending: when the receiver is down, the next interval's
//!   export replaces the unsent one (its samples counted in
//!   `tidemark_export_samples_dropped_total`).
//! - **Retries**: a failed request is sent again after an exponential backoff with
//!   jitter, until it succeeds or a newer export replaces it. A request the receiver
//!   refused as such (HTTP 4xx, a non-retryable gRPC status) is dropped and the export
//!   goes on with the next.

mod client;
mod otlp;
mod pb;
mod remote_write;
pub mod samples;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::config::{parse_url, ExporterConfig, OtlpProtocol, PushAuth, PushTls, PushUrl};
use crate::metrics::ExportStats;
use crate::state::ExporterState;
pub use client::SendError;
use client::{body_text, Client, Response};
use samples::{SampleSink, Walk, WalkError};

/// The gRPC method of OTLP metrics.
const OTLP_GRPC_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// When tidemark started: the start time of its cumulative sums.
static START: OnceLock<SystemTime> = OnceLock::new();

/// One request body and the samples in it.
#[derive(Debug)]
pub struct Chunk {
    pub body: Bytes,
    pub samples: u64,
}

/// Why an export could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Walk(#[from] WalkError),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("bearer_token_file {path}: {error}")]
    TokenFile { path: String, error: std::io::Error },
}

impl ExportError {
    fn retryable(&self) -> bool {
        match self {
            ExportError::Send(e) => e.retryable(),
            ExportError::TokenFile { .. } => true,
            ExportError::Walk(_) => false,
        }
    }
}

/// What a push exporter speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    RemoteWrite,
    OtlpGrpc,
    OtlpHttp,
}

/// The encoder of a protocol.
enum Encoder {
    RemoteWrite(remote_write::Encoder),
    Otlp(otlp::Encoder),
    /// OTLP gzip-compressed (the encoder writes the bare message; framing comes after).
    OtlpGzip {
        encoder: otlp::Encoder,
        grpc: bool,
    },
}

impl SampleSink for Encoder {
    fn sample(&mut self, family: &samples::Family, sample: &samples::Sample<'_>) -> bool {
        match self {
            Encoder::RemoteWrite(e) => e.sample(family, sample),
            Encoder::Otlp(e) | Encoder::OtlpGzip { encoder: e, .. } => e.sample(family, sample),
        }
    }
}

impl Encoder {
    fn new(protocol: Protocol, at: SystemTime, gzip: bool) -> Self {
        let since = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let start = *START.get_or_init(SystemTime::now);
        match protocol {
            Protocol::RemoteWrite => {
                let ms = i64::try_from(since(at).as_millis()).unwrap_or(i64::MAX);
                Encoder::RemoteWrite(remote_write::Encoder::new(ms, remote_write::CHUNK_BYTES))
            }
            Protocol::OtlpGrpc | Protocol::OtlpHttp => {
                let ns = |t| u64::try_from(since(t).as_nanos()).unwrap_or(u64::MAX);
                let grpc = protocol == Protocol::OtlpGrpc;
                let encoder =
                    otlp::Encoder::new(ns(at), ns(start), otlp::CHUNK_BYTES, grpc && !gzip);
                if gzip {
                    Encoder::OtlpGzip { encoder, grpc }
                } else {
                    Encoder::Otlp(encoder)
                }
            }
        }
    }

    fn take(&mut self) -> Result<Chunk, SendError> {
        match self {
            Encoder::RemoteWrite(e) => Ok(e.take()?),
            Encoder::Otlp(e) => Ok(e.take()),
            Encoder::OtlpGzip { encoder, grpc } => gzip_chunk(encoder.take(), *grpc),
        }
    }
}

/// `chunk` gzip-compressed (level 1: a fraction of the encoding's CPU for most of the
/// gain), behind gRPC's prefix with its compressed flag set when `grpc`.
fn gzip_chunk(chunk: Chunk, grpc: bool) -> Result<Chunk, SendError> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(chunk.body.len() / 4 + 64);
    if grpc {
        out.extend_from_slice(&[1, 0, 0, 0, 0]);
    }
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    gz.write_all(&chunk.body).map_err(SendError::Gzip)?;
    let mut out = gz.finish().map_err(SendError::Gzip)?;
    if grpc {
        let len = u32::try_from(out.len() - 5).unwrap_or(u32::MAX);
        out[1..5].copy_from_slice(&len.to_be_bytes());
    }
    Ok(Chunk {
        body: Bytes::from(out),
        samples: chunk.samples,
    })
}

/// The export of one exposition, sent chunk by chunk.
struct Export {
    walk: Walk,
    encoder: Encoder,
    /// The chunk to send next (kept until the receiver took it).
    chunk: Option<Chunk>,
    more: bool,
    /// Samples of the exposition, and those delivered or dropped so far.
    total: u64,
    done: u64,
    at: SystemTime,
}

impl Export {
    fn new(state: &ExporterState, protocol: Protocol, gzip: bool) -> Box<Export> {
        let exposition = state.rendered();
        let at = SystemTime::now();
        Box::new(Export {
            walk: Walk::new(&exposition),
            encoder: Encoder::new(protocol, at, gzip),
            chunk: None,
            more: true,
            total: exposition.series() as u64,
            done: 0,
            at,
        })
    }

    /// Encode the next chunk unless one is waiting (CPU work: run on the blocking pool).
    fn fill(&mut self) -> Result<(), ExportError> {
        if self.chunk.is_some() || !self.more {
            return Ok(());
        }
        self.more = self.walk.feed(&mut self.encoder)?;
        let chunk = self.encoder.take()?;
        if chunk.samples > 0 {
            self.chunk = Some(chunk);
        }
        Ok(())
    }
}

/// Encode every sample of `exposition` into the request bodies `protocol` would push,
/// handing each to `each` (dropped after it); returns the samples encoded. What an export
/// costs without a receiver, for benchmarks (benches/metrics_render.rs `--push`).
pub fn encode_all(
    exposition: &Arc<crate::metrics::Compressed>,
    protocol: Protocol,
    gzip: bool,
    each: &mut dyn FnMut(&Chunk),
) -> Result<u64, ExportError> {
    let mut walk = Walk::new(exposition);
    let mut encoder = Encoder::new(protocol, SystemTime::now(), gzip);
    let mut samples = 0;
    loop {
        let more = walk.feed(&mut encoder)?;
        let chunk = encoder.take()?;
        samples += chunk.samples;
        if chunk.samples > 0 {
            each(&chunk);
        }
        if !more {
            return Ok(samples);
        }
    }
}

/// Start the enabled push exporters; their counters are rendered by `state` from now on.
pub fn spawn(
    config: &ExporterConfig,
    state: &Arc<ExporterState>,
    stopped: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    START.get_or_init(SystemTime::now);
    let mut pushers = Vec::new();
    let otel = &config.otel;
    if otel.enabled {
        let protocol = match otel.protocol {
            OtlpProtocol::Grpc => Protocol::OtlpGrpc,
            OtlpProtocol::HttpProtobuf => Protocol::OtlpHttp,
        };
        let settings = Settings {
            name: "otlp",
            url: &otel.endpoint,
            protocol,
            interval: otel.export_interval,
            timeout: otel.timeout,
            gzip: otel.gzip,
            headers: &otel.headers,
            auth: &PushAuth::None,
            tls: otel.tls.as_ref(),
        };
        pushers.extend(Pusher::new(&settings, state));
    }
    if let Some(rw) = config.remote_write.as_ref().filter(|r| r.enabled) {
        let settings = Settings {
            name: "remote_write",
            url: &rw.url,
            protocol: Protocol::RemoteWrite,
            interval: rw.interval,
            timeout: rw.timeout,
            gzip: false,
            headers: &rw.headers,
            auth: &rw.auth,
            tls: rw.tls.as_ref(),
        };
        pushers.extend(Pusher::new(&settings, state));
    }
    pushers
        .into_iter()
        .map(|p| tokio::spawn(p.run(stopped.clone())))
        .collect()
}

/// What [`Pusher::new`] is made from.
struct Settings<'a> {
    name: &'static str,
    url: &'a str,
    protocol: Protocol,
    interval: Duration,
    timeout: Duration,
    /// OTLP only (remote write is snappy by its protocol).
    gzip: bool,
    headers: &'a [(String, crate::kafka::sasl::Secret)],
    auth: &'a PushAuth,
    tls: Option<&'a PushTls>,
}

/// One push exporter's task.
struct Pusher {
    name: &'static str,
    /// The URL without its query (which may hold a key), for log lines.
    endpoint: String,
    protocol: Protocol,
    gzip: bool,
    url: PushUrl,
    client: Client,
    interval: Duration,
    /// Configured headers and the authorization header, marked sensitive.
    headers: Vec<(HeaderName, HeaderValue)>,
    token_file: Option<std::path::PathBuf>,
    state: Arc<ExporterState>,
    stats: Arc<ExportStats>,
}

mod run;
