//! Per-API request, error, duration and byte counters of one broker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;

use super::durations::{self, RequestDurations};

/// Per-API request, error, duration and byte counters of one broker; they survive
/// reconnects.
pub struct ApiCounters {
    requests: [AtomicU64; 128],
    errors: [AtomicU64; 128],
    durations: [durations::DurationBuckets; 128],
    pub(super) bytes_received: AtomicU64,
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
    pub(super) fn count_request(&self, api: ApiKey) {
        self.requests[Self::slot(api)].fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn count_error(&self, api: ApiKey) {
        self.errors[Self::slot(api)].fetch_add(1, Ordering::Relaxed);
    }
    /// A request of `api` got its complete response `elapsed` after it was queued.
    pub(super) fn observe_duration(&self, api: ApiKey, elapsed: Duration) {
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
