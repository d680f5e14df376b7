//! One broker connection: transport, ApiVersions negotiation, pipelined requests.
//!
//! A connection owns two tasks. The writer task takes encoded frames from a channel and
//! writes them whole, so a caller that is cancelled mid-request can never leave half a frame
//! on the socket. The reader task splits response frames (size-capped, see
//! [`codec::take_frame`](super::codec::take_frame)) and hands each to the request waiting
//! on its correlation id. Response bodies are decoded in the caller's task, never in the
//! reader.
//!
//! Every request has a timeout. When the transport fails, every waiting request fails with
//! the reason and the connection is marked closed; the cluster handle redials.
//!
//! Memory: a request is registered with the largest response it may get
//! ([`caps::response_cap`](super::caps::response_cap)); a larger response fails it and is
//! discarded unread. A response read whole first reserves its size in the process-wide
//! [`ResponseBudget`](super::budget::ResponseBudget), waiting at most until the request's
//! deadline; see `read` for streamed ones.
//!
//! One responsibility per file: `config` (security and settings), `counters` and
//! `durations` (per-API counters), `dial` (connecting), `negotiate` (ApiVersions),
//! `request` (sending a request and awaiting its answer) and `read` (the reader task); this
//! file holds the connection's state and its writer task.

use std::collections::HashMap;
use std::sync::atomic::AtomicI32;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::error::{KafkaError, KafkaErrorKind, Result};
pub use super::versions::ApiRequest;

mod config;
mod counters;
mod dial;
mod durations;
mod negotiate;
mod read;
mod request;

pub use config::{ConnectionConfig, Security};
pub use counters::ApiCounters;
pub use durations::{RequestDurations, REQUEST_DURATION_BUCKETS};
pub use negotiate::negotiate;
pub use read::ResponseStream;

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
}

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

#[cfg(test)]
mod tests;
