//! The reader side of a connection: splitting response frames and handing each to the
//! request waiting on its correlation id, whole or as a stream of chunks.

// Network bytes: the lint wall of `kafka::records`; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{ApiCounters, ConnectionConfig, Shared};
use crate::kafka::budget::{Refusal, Reservation, ResponseBudget};
use crate::kafka::codec;
use crate::kafka::error::{KafkaError, KafkaErrorKind, Result};
use crate::kafka::wire::stream::{Interruption, StreamReader};
use crate::kafka::wire::DecodeError;

/// Initial (and idle) size of a connection's read buffer, and the largest chunk of a
/// streamed body.
const READ_BUFFER: usize = 64 * 1024;

/// Chunks of a streamed body in flight between the reader task and the decoder: with
/// [`READ_BUFFER`], at most 512 KiB per connection.
///
/// These are not counted in the [response budget](crate::kafka::budget), by choice: what
/// they hold is bounded by tidemark's own constants per connection, whatever a broker
/// sends (a Fetch body of any size costs the same 512 KiB), like the socket buffers the
/// kernel keeps per connection (typically larger). Budgeting them would let large whole
/// responses stall Fetch streams mid-body for nothing the budget protects against.
pub(super) const STREAM_CHUNKS: usize = 8;

/// How a request wants its response.
pub(super) enum Waiter {
    /// The whole frame, once it is in (or why it was refused).
    Whole(oneshot::Sender<Result<Bytes>>),
    /// The body's length (after the correlation id) as soon as the frame starts (or why it
    /// was refused), then the body in chunks.
    Stream {
        len: oneshot::Sender<Result<usize>>,
        chunks: mpsc::Sender<Bytes>,
    },
}

impl Waiter {
    /// Fails the request with `e` (the caller may be gone already).
    fn fail(self, e: KafkaError) {
        match self {
            Waiter::Whole(tx) => drop(tx.send(Err(e))),
            Waiter::Stream { len, .. } => drop(len.send(Err(e))),
        }
    }
}

/// A request waiting for its response.
pub(super) struct Pending {
    pub(super) waiter: Waiter,
    pub(super) api: ApiKey,
    /// The largest response it may get ([`crate::kafka::caps`]).
    pub(super) cap: usize,
    /// When its caller stops waiting: the reader waits for budget room until then.
    pub(super) deadline: Instant,
}

/// A request registered for its response; unregistered when dropped, so a cancelled or
/// failed caller leaves nothing behind (a late response is then skipped).
pub(super) struct Registration {
    pub(super) shared: Arc<Shared>,
    pub(super) id: i32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.waiting.remove(&self.id);
    }
}

/// A response being received, from [`super::Connection::start_stream`]: decode its body
/// from [`ResponseStream::reader`], then hand the result to [`ResponseStream::finish`].
pub struct ResponseStream {
    pub(super) reader: StreamReader,
    pub(super) registration: Registration,
    pub(super) api: ApiKey,
    pub(super) version: i16,
    pub(super) counters: Arc<ApiCounters>,
    pub(super) timeout: Duration,
    /// When the request was queued to the writer.
    pub(super) sent: Instant,
}

impl ResponseStream {
    /// The response body, from its first byte.
    pub fn reader(&mut self) -> &mut StreamReader {
        &mut self.reader
    }

    /// The version the request was sent at.
    pub fn version(&self) -> i16 {
        self.version
    }

    /// Ends the response: a decode error becomes the transport failure or timeout that cut
    /// the body short, or a decode error naming the broker, API and version. Whatever the
    /// decoder left unread is skipped by the reader task.
    pub fn finish<T>(self, decoded: std::result::Result<T, DecodeError>) -> Result<T> {
        // A body cut short by the transport or the deadline never completed.
        if self.reader.interrupted().is_none() {
            self.counters
                .observe_duration(self.api, self.sent.elapsed());
        }
        decoded.map_err(|e| self.failure(e))
    }

    pub(super) fn failure(&self, e: DecodeError) -> KafkaError {
        self.counters.count_error(self.api);
        let shared = &self.registration.shared;
        match self.reader.interrupted() {
            Some(Interruption::Closed) => shared.closed_error(),
            Some(Interruption::TimedOut) => KafkaErrorKind::Timeout {
                broker: shared.broker.to_string(),
                api: self.api,
                after: self.timeout,
            }
            .into(),
            None => KafkaErrorKind::Decode {
                broker: shared.broker.to_string(),
                api: self.api,
                version: self.version,
                message: e.to_string(),
            }
            .into(),
        }
    }
}

/// What the reader does with the body of a frame.
enum Body {
    /// Read it and drop it: nobody wants it, or it was refused.
    Discard,
    /// Forward it in chunks to a streamed response.
    Stream(mpsc::Sender<Bytes>),
    /// Read it whole into the room reserved for it, and hand it over.
    Whole(oneshot::Sender<Result<Bytes>>, Reservation),
}

/// Splits response frames off the socket and routes them until the transport fails.
///
/// A frame's size and correlation id are read first; its body is only read once the
/// request it answers has admitted it ([`admit`]): within its cap, and, when read whole,
/// with room reserved in the budget. A refused body is read and dropped in small chunks, so
/// the connection stays in step for the responses after it.
pub(super) async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    shared: Arc<Shared>,
    config: Arc<ConnectionConfig>,
    counters: Arc<ApiCounters>,
) {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut answered = Answered::default();
    loop {
        if let Err(reason) = frame_size(&buf, config.max_frame_bytes) {
            shared.close(reason);
            return;
        }
        let Some((size, id)) = frame_head(&buf) else {
            if let Err(reason) = fill(&mut reader, &mut buf).await {
                shared.close(answered.explain_close(reason, &shared, &config));
                return;
            }
            continue;
        };
        // Checked by `frame_size`: 4..=max_frame_bytes.
        let size = usize::try_from(size).unwrap_or_default();
        buf.advance(8);
        counters
            .bytes_received
            .fetch_add((size as u64).saturating_add(4), Ordering::Relaxed);
        let pending = {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.waiting.remove(&id)
        };
        let body = match pending {
            Some(pending) => {
                answered.saw(pending.api);
                admit(pending, id, size, &shared, &config.budget).await
            }
            // Responses come in request order: an unknown id is a late answer to a request
            // that already timed out (or was cancelled).
            None => {
                tracing::debug!(broker = %shared.broker, id, "dropping late response");
                Body::Discard
            }
        };
        let left = size.saturating_sub(4);
        let done = match body {
            Body::Discard => discard(&mut reader, &mut buf, left).await,
            Body::Stream(chunks) => forward_body(&mut reader, &mut buf, left, chunks).await,
            Body::Whole(tx, room) => read_whole(&mut reader, &mut buf, id, size, room)
                .await
                // The receiver may be gone (caller cancelled); nothing to do then.
                .map(|frame| drop(tx.send(Ok(frame)))),
        };
        if let Err(reason) = done {
            shared.close(reason);
            return;
        }
    }
}

/// Which responses a connection has had, to explain why a broker closed it.
#[derive(Default)]
struct Answered {
    api_versions: bool,
    other: bool,
}

impl Answered {
    fn saw(&mut self, api: ApiKey) {
        match api {
            ApiKey::ApiVersions => self.api_versions = true,
            _ => self.other = true,
        }
    }

    /// `reason` for a transport that ended, with the likely cause when it is a listener
    /// that requires SASL: Kafka answers ApiVersions before authentication, then closes
    /// the connection on any other request (`SaslServerAuthenticator`: "Unexpected Kafka
    /// request of type ... during SASL handshake"), without an answer or error code.
    fn explain_close(&self, reason: String, shared: &Shared, config: &ConnectionConfig) -> String {
        if !self.api_versions || self.other || config.security.sasl().is_some() {
            return reason;
        }
        let first = {
            let state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state
                .waiting
                .values()
                .map(|p| p.api)
                .find(|api| *api != ApiKey::ApiVersions)
        };
        match first {
            Some(api) => format!(
                "{reason}: {}",
                sasl_required_hint(api, config.security.protocol_name())
            ),
            None => reason,
        }
    }
}

/// What a connection closed right after ApiVersions most likely means, and the fix.
pub(super) fn sasl_required_hint(api: ApiKey, protocol: &str) -> String {
    let sasl = if protocol == "SSL" {
        "SASL_SSL"
    } else {
        "SASL_PLAINTEXT"
    };
    format!(
        "the broker answered ApiVersions, then closed the connection at the first {api:?} \
         request without answering: the listener most likely requires SASL authentication and \
         security.protocol is {protocol}; set security.protocol to {sasl} and sasl.mechanism \
         (with sasl.username and sasl.password) in consumer_properties"
    )
}

/// Whether the frame at the front of `buf` (once its size is in) may be read at all: a
/// size outside `4..=max` (no room for a correlation id, negative, or past the frame cap)
/// closes the connection, as nothing after it could be trusted to start a frame.
fn frame_size(buf: &[u8], max: usize) -> std::result::Result<(), String> {
    let Some(&[a, b, c, d]) = buf.get(..4) else {
        return Ok(());
    };
    let size = i32::from_be_bytes([a, b, c, d]);
    let too_large = || {
        let e = codec::FrameSizeError {
            size: i64::from(size),
            max,
        };
        match codec::foreign_protocol([a, b, c, d]) {
            Some(hint) => format!("{e}: {hint}"),
            None => e.to_string(),
        }
    };
    match usize::try_from(size) {
        Ok(n) if n > max => Err(too_large()),
        Ok(n) if n >= 4 => Ok(()),
        Ok(_) => Err("response frame shorter than its header".to_string()),
        Err(_) => Err(too_large()),
    }
}

/// Decides what happens to the body of a `size`-byte frame answering `pending`: over the
/// request's cap, or without budget room by its deadline, it fails the request and is
/// discarded; otherwise it goes to the caller.
async fn admit(
    pending: Pending,
    id: i32,
    size: usize,
    shared: &Shared,
    budget: &ResponseBudget,
) -> Body {
    let Pending {
        waiter,
        api,
        cap,
        deadline,
    } = pending;
    let broker = || shared.broker.to_string();
    if size > cap {
        waiter.fail(
            KafkaErrorKind::ResponseTooLarge {
                broker: broker(),
                api,
                size,
                cap,
            }
            .into(),
        );
        return Body::Discard;
    }
    let mut tx = match waiter {
        // Streamed bodies hold at most STREAM_CHUNKS chunks per connection: not budgeted.
        Waiter::Stream { len, chunks } => {
            // The caller may be gone (cancelled): the body is then read and dropped.
            let _ = len.send(Ok(size.saturating_sub(4)));
            return Body::Stream(chunks);
        }
        Waiter::Whole(tx) => tx,
    };
    set_budget_wait(shared, Some((id, size)));
    let began = Instant::now();
    let reserved = tokio::select! {
        r = budget.reserve(size, deadline) => Some(r),
        // The caller gave up (timeout, cancellation): stop waiting for room.
        () = tx.closed() => None,
    };
    // The wait is cleared only once the caller has its answer: a caller whose own timeout
    // fires meanwhile still sees it and reports the budget, not a silent broker.
    match reserved {
        Some(Ok(room)) => {
            set_budget_wait(shared, None);
            Body::Whole(tx, room)
        }
        Some(Err(refusal)) => {
            let waited = match refusal {
                Refusal::LargerThanBudget => None,
                Refusal::NoRoomInTime => Some(began.elapsed()),
            };
            let _ = tx.send(Err(KafkaErrorKind::OverMemoryBudget {
                broker: broker(),
                api,
                size,
                budget: budget.total(),
                waited,
            }
            .into()));
            set_budget_wait(shared, None);
            Body::Discard
        }
        None => {
            set_budget_wait(shared, None);
            Body::Discard
        }
    }
}
/// The size and correlation id at the front of `buf`, once both are in.
fn frame_head(buf: &[u8]) -> Option<(i32, i32)> {
    let head: [u8; 8] = buf.get(..8)?.try_into().ok()?;
    let [a, b, c, d, e, f, g, h] = head;
    Some((
        i32::from_be_bytes([a, b, c, d]),
        i32::from_be_bytes([e, f, g, h]),
    ))
}

/// Records which response the reader waits for budget room for (see
/// [`super::Connection::round_trip`]'s timeout).
fn set_budget_wait(shared: &Shared, wait: Option<(i32, usize)>) {
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    state.budget_wait = wait;
}

/// Reads more of the socket into `buf`, with room for at least a quarter of
/// [`READ_BUFFER`]. Bytes handed out of `buf` keep their part of its allocation alive, so
/// the room is reserved anew as needed.
async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> std::result::Result<(), String> {
    if buf.capacity().saturating_sub(buf.len()) < READ_BUFFER / 4 {
        buf.reserve(READ_BUFFER);
    }
    match reader.read_buf(buf).await {
        Ok(0) => Err("broker closed the connection".to_string()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read failed: {e}")),
    }
}

/// Reads the next `left` bytes of the socket (starting with what `buf` holds) and drops
/// them, a read buffer at a time: a refused body costs no memory.
async fn discard<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    mut left: usize,
) -> std::result::Result<(), String> {
    loop {
        let n = buf.len().min(left);
        buf.advance(n);
        left = left.saturating_sub(n);
        if left == 0 {
            return Ok(());
        }
        fill(reader, buf).await?;
    }
}

/// Reads the `size`-byte frame whose correlation id `id` was already taken off `buf` into
/// an allocation of exactly its size, and returns it holding its budget `room`.
async fn read_whole<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    id: i32,
    size: usize,
    room: Reservation,
) -> std::result::Result<Bytes, String> {
    let mut frame = BytesMut::with_capacity(size);
    // The frame handed over starts with its correlation id, as `codec::response_body` reads.
    frame.extend_from_slice(&id.to_be_bytes());
    let buffered = buf.len().min(size.saturating_sub(4));
    frame.extend_from_slice(buf.get(..buffered).unwrap_or_default());
    buf.advance(buffered);
    while frame.len() < size {
        let left = size.saturating_sub(frame.len()) as u64;
        match (&mut *reader).take(left).read_buf(&mut frame).await {
            Ok(0) => return Err("broker closed the connection".to_string()),
            Ok(_) => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    Ok(room.hold(frame))
}

/// Forwards the next `left` bytes of the socket (starting with what `buf` holds) as chunks;
/// once the receiver is gone the rest is read and dropped, so the next frame starts right.
async fn forward_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    mut left: usize,
    chunks: mpsc::Sender<Bytes>,
) -> std::result::Result<(), String> {
    let mut chunks = Some(chunks);
    loop {
        let n = buf.len().min(left);
        if n > 0 {
            let chunk = buf.split_to(n).freeze();
            left = left.saturating_sub(n);
            if let Some(tx) = &chunks {
                if tx.send(chunk).await.is_err() {
                    chunks = None;
                }
            }
        }
        if left == 0 {
            return Ok(());
        }
        fill(reader, buf).await?;
    }
}
