//! Request durations of one API on one broker, as a histogram of lock-free atomic buckets:
//! observed on the request's own task, read by the metrics after a cycle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the request-duration buckets: from a metadata request to a
/// broker next door (about a millisecond) to the default request timeout (30 s).
pub const REQUEST_DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of [`REQUEST_DURATION_BUCKETS`], then the one above the last bound.
const SLOTS: usize = REQUEST_DURATION_BUCKETS.len() + 1;

/// The live histogram. Each bucket counts on its own (not cumulatively), so an observation
/// is two relaxed additions and a snapshot never sees a `+Inf` count below another bucket's.
pub(super) struct DurationBuckets {
    counts: [AtomicU64; SLOTS],
    sum_nanos: AtomicU64,
}

impl Default for DurationBuckets {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl DurationBuckets {
    pub(super) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = REQUEST_DURATION_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(REQUEST_DURATION_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> RequestDurations {
        RequestDurations {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

/// Request durations of one API on one broker, as read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestDurations {
    /// Requests per bucket of [`REQUEST_DURATION_BUCKETS`] (not cumulative), then the
    /// requests above the last bound.
    pub counts: [u64; SLOTS],
    /// Sum of every duration, in nanoseconds (584 years before it wraps).
    pub sum_nanos: u64,
}

impl RequestDurations {
    /// Requests observed.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of every duration, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        Duration::from_nanos(self.sum_nanos).as_secs_f64()
    }

    /// (upper bound, requests in that bucket alone) for every bucket, `+Inf` last: what
    /// prometheus-client's histogram encoding takes (it accumulates them itself).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        REQUEST_DURATION_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_duration_falls_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let h = DurationBuckets::default();
        // On a bound: that bucket (Prometheus' `le`); just above: the next.
        h.observe(ms(1));
        h.observe(Duration::from_micros(1_001));
        h.observe(Duration::ZERO);
        h.observe(ms(30_000));
        h.observe(ms(30_001));
        h.observe(ms(120_000));
        h.observe(ms(250));
        let s = h.snapshot();
        let mut want = [0u64; SLOTS];
        want[0] = 2; // 0 and 1 ms
        want[1] = 1; // 1.001 ms ≤ 2.5 ms
        want[7] = 1; // 250 ms
        want[13] = 1; // 30 s
        want[14] = 2; // above 30 s
        assert_eq!(s.counts, want);
        assert_eq!(s.count(), 7);
        let sum_ms = 1 + 30_000 + 30_001 + 120_000 + 250;
        assert_eq!(s.sum_nanos, sum_ms * 1_000_000 + 1_001_000);
        assert!((s.sum_seconds() - 180.253_001).abs() < 1e-9);
    }

    #[test]
    fn buckets_pair_every_bound_with_its_own_count_and_end_with_infinity() {
        let h = DurationBuckets::default();
        h.observe(ms(3));
        h.observe(ms(3));
        h.observe(ms(40_000));
        let b = h.snapshot().buckets();
        assert_eq!(b.len(), REQUEST_DURATION_BUCKETS.len() + 1);
        assert_eq!(b[2], (0.005, 2));
        assert_eq!(b[REQUEST_DURATION_BUCKETS.len()], (f64::INFINITY, 1));
        assert_eq!(b.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }

    #[test]
    fn bounds_increase_strictly() {
        assert!(REQUEST_DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}

/// Where a connection observes durations: at a complete response, never at a failure.
#[cfg(test)]
mod connection_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::{ApiKey, ListGroupsRequest, ListGroupsResponse};
    use kafka_protocol::protocol::Encodable;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use crate::kafka::conn::{ApiCounters, Connection, ConnectionConfig};

    /// Server-side wait before each answer: a lower bound of every observed duration.
    const SERVER_WAIT: Duration = Duration::from_millis(20);

    fn start(timeout: Duration) -> (Connection, DuplexStream, Arc<ApiCounters>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let counters = Arc::new(ApiCounters::default());
        let config = Arc::new(ConnectionConfig {
            request_timeout: timeout,
            ..ConnectionConfig::default()
        });
        let conn = Connection::start("fake:9092", client, config, counters.clone());
        (conn, server, counters)
    }

    /// Reads one request frame and returns its correlation id.
    async fn read_request_id(s: &mut DuplexStream) -> i32 {
        let size = s.read_i32().await.unwrap();
        let mut buf = vec![0u8; size as usize];
        s.read_exact(&mut buf).await.unwrap();
        i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]])
    }

    /// A ListGroups v0 response frame (v0 header) for `id`.
    fn response_frame(id: i32) -> BytesMut {
        let body = ListGroupsResponse::default();
        let mut out = BytesMut::new();
        out.put_i32(4 + body.compute_size(0).unwrap() as i32);
        out.put_i32(id);
        body.encode(&mut out, 0).unwrap();
        out
    }

    #[tokio::test]
    async fn an_answered_request_is_observed_an_unanswered_one_is_not() {
        let (conn, mut server, counters) = start(Duration::from_millis(300));
        let broker = tokio::spawn(async move {
            let id = read_request_id(&mut server).await;
            tokio::time::sleep(SERVER_WAIT).await;
            server.write_all(&response_frame(id)).await.unwrap();
            // The second request is read and never answered.
            read_request_id(&mut server).await;
            server
        });
        let req = ListGroupsRequest::default();
        conn.send_version(&req, 0).await.unwrap();
        conn.send_version(&req, 0).await.unwrap_err();
        let _server = broker.await.unwrap();

        let d = counters.durations(ApiKey::ListGroups);
        assert_eq!(counters.requests(ApiKey::ListGroups), 2);
        assert_eq!(counters.errors(ApiKey::ListGroups), 1);
        assert_eq!(d.count(), 1, "{d:?}");
        assert!(d.sum_seconds() >= SERVER_WAIT.as_secs_f64(), "{d:?}");
        // Connection setup was not part of this test: no other API has durations.
        assert_eq!(counters.durations(ApiKey::ApiVersions).count(), 0);
    }

    #[tokio::test]
    async fn a_streamed_response_is_observed_when_finished_not_when_cut_short() {
        let (conn, mut server, counters) = start(Duration::from_secs(5));
        let broker = tokio::spawn(async move {
            let id = read_request_id(&mut server).await;
            tokio::time::sleep(SERVER_WAIT).await;
            server.write_all(&response_frame(id)).await.unwrap();
            // The second response stops halfway: the broker hangs up.
            let id = read_request_id(&mut server).await;
            let frame = response_frame(id);
            server.write_all(&frame[..frame.len() - 2]).await.unwrap();
        });
        let req = ListGroupsRequest::default();
        let mut whole = conn.start_stream(&req, 0).await.unwrap();
        let left = whole.reader().remaining();
        let read = whole.reader().skip("body", left).await;
        whole.finish(read).unwrap();
        let after_first = counters.durations(ApiKey::ListGroups);

        let mut cut = conn.start_stream(&req, 0).await.unwrap();
        let left = cut.reader().remaining();
        let read = cut.reader().skip("body", left).await;
        cut.finish(read).unwrap_err();
        broker.await.unwrap();

        assert_eq!(after_first.count(), 1, "{after_first:?}");
        assert!(after_first.sum_seconds() >= SERVER_WAIT.as_secs_f64());
        assert_eq!(counters.durations(ApiKey::ListGroups), after_first);
        assert_eq!(counters.errors(ApiKey::ListGroups), 1);
    }
}
