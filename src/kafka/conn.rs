//! One broker connection: transport, ApiVersions negotiation, pipelined requests.
//!
//! A connection owns two tasks. The writer task takes encoded frames from a channel and
//! writes them whole, so a caller that is cancelled mid-request can never leave half a frame
//! on the socket. The reader task splits response frames (size-capped, see
//! [`codec::take_frame`]) and hands each to the request waiting on its correlation id.
//! Response bodies are decoded in the caller's task, never in the reader.
//!
//! Every request has a timeout. When the transport fails, every waiting request fails with
//! the reason and the connection is marked closed; the cluster handle redials.
//!
//! Memory: a request is registered with the largest response it may get
//! ([`caps::response_cap`]); a larger response fails it and is discarded unread. A response
//! read whole first reserves its size in the process-wide [`ResponseBudget`], waiting at
//! most until the request's deadline; see `read` for streamed ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::budget::ResponseBudget;
use super::caps;
use super::codec::{self, DEFAULT_MAX_FRAME_BYTES};
use super::error::{KafkaError, KafkaErrorKind, Result};
use super::sasl::{self, Sasl};
use super::tls::Tls;
pub use super::versions::ApiRequest;
use super::wire;

/// How a connection reaches its broker: Kafka's `security.protocol`, with what each needs.
#[derive(Clone, Debug, Default)]
pub enum Security {
    /// Plain TCP.
    #[default]
    Plaintext,
    /// TLS.
    Ssl(Tls),
    /// SASL over plain TCP.
    SaslPlaintext(Sasl),
    /// SASL over TLS.
    SaslSsl(Tls, Sasl),
}

impl Security {
    /// The TLS settings, when connections use TLS.
    pub fn tls(&self) -> Option<&Tls> {
        match self {
            Self::Ssl(tls) | Self::SaslSsl(tls, _) => Some(tls),
            _ => None,
        }
    }

    /// The SASL settings, when connections authenticate.
    pub fn sasl(&self) -> Option<&Sasl> {
        match self {
            Self::SaslPlaintext(sasl) | Self::SaslSsl(_, sasl) => Some(sasl),
            _ => None,
        }
    }

    /// Kafka's name: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub fn protocol_name(&self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl(_) => "SSL",
            Self::SaslPlaintext(_) => "SASL_PLAINTEXT",
            Self::SaslSsl(..) => "SASL_SSL",
        }
    }
}

/// A session of this lifetime is redialled after this fraction of it (Kafka's Java client
/// re-authenticates between 85% and 95%).
const REDIAL_AT_FRACTION: f64 = 0.85;

/// Settings shared by every connection of a cluster.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Sent as `client_id` in every request header.
    pub client_id: String,
    /// TCP connect + ApiVersions (+ authentication) must finish within this.
    pub connect_timeout: Duration,
    /// Every request must be answered within this.
    pub request_timeout: Duration,
    /// Response frames larger than this are refused (the connection is closed).
    pub max_frame_bytes: usize,
    /// Response bytes held in memory, shared with every other connection given a clone.
    pub budget: ResponseBudget,
    /// Transport security.
    pub security: Security,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            client_id: "tidemark".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            budget: ResponseBudget::default(),
            security: Security::Plaintext,
        }
    }
}

/// Per-API request, error, duration and byte counters of one broker; they survive
/// reconnects.
pub struct ApiCounters {
    requests: [AtomicU64; 128],
    errors: [AtomicU64; 128],
    durations: [durations::DurationBuckets; 128],
    bytes_received: AtomicU64,
}

impl Default for ApiCounters {
    fn default() -> Self {
        Self {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            durations: std::array::from_fn(|_| durations::DurationBuckets::default()),
            bytes_received: AtomicU64::new(0),
        }
    }
}

impl ApiCounters {
    fn slot(api: ApiKey) -> usize {
        (api as i16).clamp(0, 127) as usize
    }
    fn count_request(&self, api: ApiKey) {
        self.requests[Self::slot(api)].fetch_add(1, Ordering::Relaxed);
    }
    fn count_error(&self, api: ApiKey) {
        self.errors[Self::slot(api)].fetch_add(1, Ordering::Relaxed);
    }
    /// A request of `api` got its complete response `elapsed` after it was queued.
    fn observe_duration(&self, api: ApiKey, elapsed: Duration) {
        self.durations[Self::slot(api)].observe(elapsed);
    }
    /// Requests sent for `api` so far.
    pub fn requests(&self, api: ApiKey) -> u64 {
        self.requests[Self::slot(api)].load(Ordering::Relaxed)
    }
    /// Requests for `api` that failed (timeout, transport, undecodable response).
    pub fn errors(&self, api: ApiKey) -> u64 {
        self.errors[Self::slot(api)].load(Ordering::Relaxed)
    }
    /// Durations of the requests for `api` that got a complete response: from the request
    /// being queued to the connection's writer (encoded, its response awaited) to the
    /// whole response frame routed to it, or, for a streamed response, to its decoder
    /// being done with it. Requests without a complete response (timeout, transport
    /// failure) are not in it; an undecodable one is.
    pub fn durations(&self, api: ApiKey) -> RequestDurations {
        self.durations[Self::slot(api)].snapshot()
    }
    /// Requests sent for every API, excluding ApiVersions (connection setup).
    pub fn total_requests(&self) -> u64 {
        ApiKey::iter()
            .filter(|k| *k != ApiKey::ApiVersions)
            .map(|k| self.requests(k))
            .sum()
    }
    /// Response bytes received.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }
}

/// Anything a connection can run over (TCP or TLS).
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

struct Shared {
    broker: Arc<str>,
    state: Mutex<State>,
    next_id: AtomicI32,
}

#[derive(Default)]
struct State {
    waiting: HashMap<i32, read::Pending>,
    closed: Option<String>,
    /// The response (correlation id, size) the reader is waiting for budget room for.
    budget_wait: Option<(i32, usize)>,
}

impl Shared {
    fn close(&self, reason: String) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed.is_none() {
            tracing::debug!(broker = %self.broker, %reason, "connection closed");
            state.closed = Some(reason);
        }
        // Dropping the senders wakes every waiter with an error.
        state.waiting.clear();
    }

    fn closed_error(&self) -> KafkaError {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        KafkaErrorKind::ConnectionClosed {
            broker: self.broker.to_string(),
            reason: state.closed.clone(),
        }
        .into()
    }
}

/// A connection to one broker. Cheap to share behind an `Arc`; requests pipeline.
pub struct Connection {
    shared: Arc<Shared>,
    outbound: mpsc::Sender<Bytes>,
    versions: HashMap<i16, (i16, i16)>,
    config: Arc<ConnectionConfig>,
    counters: Arc<ApiCounters>,
    tasks: [JoinHandle<()>; 2],
    /// When the SASL session nears its end: the connection is then replaced.
    redial_at: Option<Instant>,
}

/// The steps of [`Connection::connect`], as errors name them.
const CONNECT_PHASES: [&str; 4] = ["TCP connect", "TLS handshake", "ApiVersions", "SASL"];

/// Why a plaintext connection closed before answering ApiVersions, with what that usually
/// means (a hint already given by the reader, e.g. a TLS record seen, is kept as it is).
fn closed_before_first_answer(reason: Option<String>) -> String {
    const HINT: &str = "the broker closed the connection before answering its first request \
        (ApiVersions): a TLS listener does that to a plaintext client (set security.protocol \
        to SSL or SASL_SSL), or the port is not a Kafka listener";
    match reason {
        Some(r) if r.contains("TLS record") || r.contains("HTTP") => r,
        Some(r) => format!("{r}; {HINT}"),
        None => HINT.to_string(),
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.shared.broker)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Connection {
    /// Dial `broker` ("host:port"), negotiate API versions, authenticate when configured.
    pub async fn connect(
        broker: &str,
        config: Arc<ConnectionConfig>,
        counters: Arc<ApiCounters>,
    ) -> Result<Connection> {
        let after = config.connect_timeout;
        // Which step the dial is in, read when it times out: "timed out" alone sends an
        // operator to the network when the broker answered TCP and then went silent.
        let phase = std::sync::atomic::AtomicUsize::new(0);
        let step = |i: usize| phase.store(i, std::sync::atomic::Ordering::Relaxed);
        let dial = async {
            let tcp =
                TcpStream::connect(broker)
                    .await
                    .map_err(|source| KafkaErrorKind::Connect {
                        broker: broker.to_string(),
                        phase: CONNECT_PHASES[0],
                        source: Arc::new(source),
                    })?;
            // Best effort: latency matters more than packet count for small requests.
            let _ = tcp.set_nodelay(true);
            step(1);
            let stream: Box<dyn TransportBox> = match config.security.tls() {
                Some(tls) => Box::new(tls.connect(broker, tcp).await?),
                None => Box::new(tcp),
            };
            step(2);
            let mut conn = Connection::start(broker, stream, config.clone(), counters);
            conn.negotiate_versions().await?;
            if let Some(sasl) = config.security.sasl() {
                step(3);
                let lifetime = sasl::authenticate(&conn, sasl).await?;
                conn.redial_at = lifetime.map(|l| Instant::now() + l.mul_f64(REDIAL_AT_FRACTION));
            }
            Ok::<_, KafkaError>(conn)
        };
        let timed_out = || {
            KafkaErrorKind::ConnectTimeout {
                broker: broker.to_string(),
                after,
                phase: CONNECT_PHASES
                    .get(phase.load(std::sync::atomic::Ordering::Relaxed))
                    .copied()
                    .unwrap_or("connect"),
            }
            .into()
        };
        let tls = config.security.tls().is_some();
        match tokio::time::timeout(after, dial).await {
            // The first requests' own timeout may fire before the dial's: the same failure.
            Ok(Err(e)) if matches!(e.kind(), KafkaErrorKind::Timeout { .. }) => Err(timed_out()),
            Err(_) => Err(timed_out()),
            Ok(Err(mut e)) if !tls && phase.load(std::sync::atomic::Ordering::Relaxed) == 2 => {
                if let KafkaErrorKind::ConnectionClosed { reason, .. } = e.kind_mut() {
                    *reason = Some(closed_before_first_answer(reason.take()));
                }
                Err(e)
            }
            Ok(result) => result,
        }
    }

    /// Start the reader and writer tasks over an established stream (no negotiation).
    pub fn start<S: Transport>(
        broker: &str,
        stream: S,
        config: Arc<ConnectionConfig>,
        counters: Arc<ApiCounters>,
    ) -> Connection {
        let shared = Arc::new(Shared {
            broker: Arc::from(broker),
            state: Mutex::new(State::default()),
            next_id: AtomicI32::new(1),
        });
        let (read_half, write_half) = tokio::io::split(stream);
        let (outbound, frames) = mpsc::channel(64);
        let writer = tokio::spawn(write_loop(write_half, frames, shared.clone()));
        let reader = tokio::spawn(read::read_loop(
            read_half,
            shared.clone(),
            config.clone(),
            counters.clone(),
        ));
        Connection {
            shared,
            outbound,
            versions: HashMap::new(),
            config,
            counters,
            tasks: [writer, reader],
            redial_at: None,
        }
    }

    /// "host:port" of the broker.
    pub fn broker(&self) -> &str {
        &self.shared.broker
    }

    /// Whether the transport has failed; a closed connection never recovers.
    pub fn is_closed(&self) -> bool {
        let state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.closed.is_some()
    }

    /// Whether new requests should use this connection: it is open and its SASL session
    /// is not about to expire. Re-authentication (KIP-368) is done by redialling: once
    /// 85% of the session lifetime the broker reported has passed, the cluster handle
    /// dials a fresh, freshly authenticated connection for new requests, while requests
    /// already in flight finish on this one. A redial per broker per session lifetime
    /// (an hour is typical) costs nothing next to re-authenticating in place, which would
    /// have to pause this connection's pipelining and interleave SASL frames.
    pub fn is_usable(&self) -> bool {
        !self.is_closed() && self.redial_at.is_none_or(|at| Instant::now() < at)
    }

    /// When the connection stops being [usable](Self::is_usable) because its SASL session
    /// nears its end (`None`: never).
    pub fn redial_at(&self) -> Option<Instant> {
        self.redial_at
    }

    /// The broker's advertised version range for `api`, if it supports it.
    pub fn broker_versions(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.versions.get(&(api as i16)).copied()
    }

    /// The highest version of `R` both sides speak.
    pub fn version_for<R: ApiRequest>(&self) -> Result<i16> {
        negotiate(
            &self.shared.broker,
            R::API,
            (R::MIN_VERSION, R::MAX_VERSION),
            self.broker_versions(R::API),
        )
    }

    /// Send `req` at the negotiated version and decode the response.
    pub async fn send<R: ApiRequest>(&self, req: &R) -> Result<(R::Response, i16)> {
        let version = self.version_for::<R>()?;
        Ok((self.send_version(req, version).await?, version))
    }

    /// Send `req` at an explicit version and decode the response.
    pub async fn send_version<R: ApiRequest>(&self, req: &R, version: i16) -> Result<R::Response> {
        self.decode::<R>(self.round_trip(version, req).await?, version)
    }

    /// [`Connection::send_version`] that drops `req` as soon as it is encoded: a request
    /// naming tens of thousands of partitions is not held while its answer is awaited.
    pub async fn send_owned<R: ApiRequest>(&self, req: R, version: i16) -> Result<R::Response> {
        let (id, answer) = self.dispatch(version, &req).await?;
        drop(req);
        self.decode::<R>(self.await_body(R::API, version, id, answer).await?, version)
    }

    fn decode<R: ApiRequest>(&self, body: Bytes, version: i16) -> Result<R::Response> {
        R::decode_response(body, version).map_err(|e| {
            self.counters.count_error(R::API);
            KafkaErrorKind::Decode {
                broker: self.shared.broker.to_string(),
                api: R::API,
                version,
                message: e.to_string(),
            }
            .into()
        })
    }

    /// Encode, send, and wait for the response body of one request.
    async fn round_trip<R: ApiRequest>(&self, version: i16, body: &R) -> Result<Bytes> {
        let (id, answer) = self.dispatch(version, body).await?;
        self.await_body(R::API, version, id, answer).await
    }

    /// Encode and send one request: its id and where its answer will arrive.
    async fn dispatch<R: ApiRequest>(
        &self,
        version: i16,
        body: &R,
    ) -> Result<(i32, oneshot::Receiver<Result<Bytes>>)> {
        let (tx, rx) = oneshot::channel();
        let id = self
            .send_request(version, body, read::Waiter::Whole(tx))
            .await?;
        Ok((id, rx))
    }

    /// Wait for the response body of request `id`.
    async fn await_body(
        &self,
        api: ApiKey,
        version: i16,
        id: i32,
        rx: oneshot::Receiver<Result<Bytes>>,
    ) -> Result<Bytes> {
        let sent = Instant::now();
        let answer = tokio::time::timeout(self.config.request_timeout, rx).await;
        if let Ok(Ok(Ok(_))) = &answer {
            self.counters.observe_duration(api, sent.elapsed());
        }
        match answer {
            Ok(Ok(Ok(frame))) => codec::response_body(frame, api, version).map_err(|e| {
                self.counters.count_error(api);
                KafkaErrorKind::Decode {
                    broker: self.shared.broker.to_string(),
                    api,
                    version,
                    message: e.to_string(),
                }
                .into()
            }),
            Ok(Ok(Err(refused))) => {
                self.counters.count_error(api);
                Err(refused)
            }
            Ok(Err(_)) => {
                self.counters.count_error(api);
                Err(self.shared.closed_error())
            }
            Err(_) => {
                let waiting_for_budget = self.forget(id);
                self.counters.count_error(api);
                let broker = self.shared.broker.to_string();
                let after = self.config.request_timeout;
                // The response arrived but found no room in the budget before the deadline.
                Err(match waiting_for_budget {
                    Some(size) => KafkaErrorKind::OverMemoryBudget {
                        broker,
                        api,
                        size,
                        budget: self.config.budget.total(),
                        waited: Some(after),
                    }
                    .into(),
                    None => KafkaErrorKind::Timeout { broker, api, after }.into(),
                })
            }
        }
    }

    /// Send `req` at `version` and return its response body as a [`ResponseStream`], to be
    /// decoded while it arrives: the reader task forwards it in chunks through a small
    /// bounded channel, so the memory it costs does not depend on its size. The request
    /// timeout covers the whole body.
    pub async fn start_stream<R: ApiRequest>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<ResponseStream> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        let (len_tx, len_rx) = oneshot::channel();
        let (chunks_tx, chunks_rx) = mpsc::channel(read::STREAM_CHUNKS);
        let waiter = read::Waiter::Stream {
            len: len_tx,
            chunks: chunks_tx,
        };
        let id = self.send_request(version, req, waiter).await?;
        let sent = tokio::time::Instant::now();
        let registration = read::Registration {
            shared: self.shared.clone(),
            id,
        };
        let len = match tokio::time::timeout_at(deadline, len_rx).await {
            Ok(Ok(Ok(len))) => len,
            Ok(Ok(Err(refused))) => {
                self.counters.count_error(R::API);
                return Err(refused);
            }
            Ok(Err(_)) => {
                self.counters.count_error(R::API);
                return Err(self.shared.closed_error());
            }
            Err(_) => {
                self.counters.count_error(R::API);
                return Err(KafkaErrorKind::Timeout {
                    broker: self.shared.broker.to_string(),
                    api: R::API,
                    after: self.config.request_timeout,
                }
                .into());
            }
        };
        let reader =
            wire::stream::StreamReader::from_channel(chunks_rx, len, deadline, R::NAME, version);
        let mut stream = ResponseStream {
            reader,
            registration,
            api: R::API,
            version,
            counters: self.counters.clone(),
            timeout: self.config.request_timeout,
            sent,
        };
        let header_tags = R::API.response_header_version(version) >= 1;
        if let Err(e) = stream.reader.tagged_fields(header_tags).await {
            return Err(stream.failure(e));
        }
        stream.reader.restart_position();
        Ok(stream)
    }

    /// Encode `body`, register `waiter` for its response (with the largest response it may
    /// get, and its deadline) and queue the frame; returns the correlation id.
    async fn send_request<R: ApiRequest>(
        &self,
        version: i16,
        body: &R,
        waiter: read::Waiter,
    ) -> Result<i32> {
        let api = R::API;
        let pending = read::Pending {
            waiter,
            api,
            cap: caps::response_cap(api, &body.asked()).min(self.config.max_frame_bytes),
            deadline: tokio::time::Instant::now() + self.config.request_timeout,
        };
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = BytesMut::new();
        codec::encode_request(&mut frame, api, version, id, &self.config.client_id, body).map_err(
            |message| KafkaErrorKind::Encode {
                api,
                version,
                message,
            },
        )?;
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.closed.is_some() {
                drop(state);
                return Err(self.shared.closed_error());
            }
            state.waiting.insert(id, pending);
        }
        self.counters.count_request(api);
        if self.outbound.send(frame.freeze()).await.is_err() {
            self.forget(id);
            self.counters.count_error(api);
            return Err(self.shared.closed_error());
        }
        Ok(id)
    }

    /// Unregisters request `id`; returns the size of its response when the reader is
    /// waiting for budget room for it.
    fn forget(&self, id: i32) -> Option<usize> {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.waiting.remove(&id);
        state
            .budget_wait
            .and_then(|(waiting, size)| (waiting == id).then_some(size))
    }

    /// ApiVersions: try v3; a broker that does not speak it answers with a v0 body that
    /// lists its own range, and we retry at the best common version.
    async fn negotiate_versions(&mut self) -> Result<()> {
        let req = super::requests::api_versions();
        let ours = (
            ApiVersionsRequest::MIN_VERSION,
            ApiVersionsRequest::MAX_VERSION,
        );
        let body = self.round_trip(ours.1, &req).await?;
        let response = match wire::api_versions::ApiVersionsResponse::decode(body.clone(), ours.1) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                let v0 = wire::api_versions::ApiVersionsResponse::decode(body, 0).map_err(|e| {
                    KafkaErrorKind::Decode {
                        broker: self.shared.broker.to_string(),
                        api: ApiKey::ApiVersions,
                        version: 0,
                        message: e.to_string(),
                    }
                })?;
                let theirs = v0
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map(|k| (k.min_version, k.max_version));
                let version = negotiate(&self.shared.broker, ApiKey::ApiVersions, ours, theirs)?;
                let r = self.send_version(&req, version).await?;
                if r.error_code != 0 {
                    return Err(KafkaErrorKind::Broker {
                        broker: self.shared.broker.to_string(),
                        api: ApiKey::ApiVersions,
                        code: r.error_code,
                        context: format!("ApiVersions v{version}"),
                        message: None,
                    }
                    .into());
                }
                r
            }
        };
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }
}

/// The highest version in both ranges, or an error naming both.
pub fn negotiate(
    broker: &str,
    api: ApiKey,
    ours: (i16, i16),
    theirs: Option<(i16, i16)>,
) -> Result<i16> {
    match theirs {
        Some((min, max)) if min <= ours.1 && ours.0 <= max => Ok(ours.1.min(max)),
        _ => Err(KafkaErrorKind::NoCommonVersion {
            broker: broker.to_string(),
            api,
            ours_min: ours.0,
            ours_max: ours.1,
            theirs,
        }
        .into()),
    }
}

/// Object-safe alias used for the boxed stream.
trait TransportBox: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> TransportBox for T {}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut frames: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
) {
    while let Some(frame) = frames.recv().await {
        if let Err(e) = writer.write_all(&frame).await {
            shared.close(format!("write failed: {e}"));
            return;
        }
    }
}

mod durations;
mod read;

pub use durations::{RequestDurations, REQUEST_DURATION_BUCKETS};
pub use read::ResponseStream;

#[cfg(test)]
mod tests;
