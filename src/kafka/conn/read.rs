//! The reader side of a connection: splitting response frames and handing each to the
//! request waiting on its correlation id, whole or as a stream of chunks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};

use super::{ApiCounters, Shared};
use crate::kafka::codec;
use crate::kafka::error::{KafkaError, Result};
use crate::kafka::wire::stream::{Interruption, StreamReader};
use crate::kafka::wire::DecodeError;

/// Initial (and idle) size of a connection's read buffer, and the largest chunk of a
/// streamed body.
const READ_BUFFER: usize = 64 * 1024;

/// Chunks of a streamed body in flight between the reader task and the decoder: with
/// [`READ_BUFFER`], at most 512 KiB per connection.
pub(super) const STREAM_CHUNKS: usize = 8;

/// How a request wants its response.
pub(super) enum Waiter {
    /// The whole frame, once it is in.
    Whole(oneshot::Sender<Bytes>),
    /// The body's length (after the correlation id) as soon as the frame starts, then the
    /// body in chunks.
    Stream {
        len: oneshot::Sender<usize>,
        chunks: mpsc::Sender<Bytes>,
    },
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
            Some(Interruption::TimedOut) => KafkaError::Timeout {
                broker: shared.broker.to_string(),
                api: self.api,
                after: self.timeout,
            },
            None => KafkaError::Decode {
                broker: shared.broker.to_string(),
                api: self.api,
                version: self.version,
                message: e.to_string(),
            },
        }
    }
}

/// Splits response frames off the socket and routes them until the transport fails.
pub(super) async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    shared: Arc<Shared>,
    max_frame: usize,
    counters: Arc<ApiCounters>,
) {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    loop {
        // A streamed response is routed as soon as its size and correlation id are in.
        if let Some((size, id)) = frame_head(&buf) {
            if let Some((len, chunks)) = take_stream_waiter(&shared, id) {
                let body = match usize::try_from(size) {
                    Ok(n) if (4..=max_frame).contains(&n) => n - 4,
                    _ => {
                        let e = codec::FrameSizeError {
                            size: i64::from(size),
                            max: max_frame,
                        };
                        shared.close(e.to_string());
                        return;
                    }
                };
                buf.advance(8);
                counters
                    .bytes_received
                    .fetch_add(body as u64 + 8, Ordering::Relaxed);
                // The caller may be gone (cancelled): the body is then read and dropped.
                let _ = len.send(body);
                if let Err(reason) = forward_body(&mut reader, &mut buf, body, chunks).await {
                    shared.close(reason);
                    return;
                }
                continue;
            }
        }
        match codec::take_frame(&mut buf, max_frame) {
            Ok(Some(frame)) => {
                // A large response grew the buffer to its size; the rest of that allocation
                // would stay held by `buf` (and so stay resident) after the frame is dropped.
                if buf.is_empty() && buf.capacity() > READ_BUFFER {
                    buf = BytesMut::with_capacity(READ_BUFFER);
                }
                counters
                    .bytes_received
                    .fetch_add(frame.len() as u64 + 4, Ordering::Relaxed);
                let Ok(id) = codec::correlation_id(&frame) else {
                    shared.close("response frame shorter than its header".to_string());
                    return;
                };
                let waiter = {
                    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                    state.waiting.remove(&id)
                };
                match waiter {
                    // The receiver may be gone (caller cancelled); nothing to do then.
                    Some(Waiter::Whole(tx)) => drop(tx.send(frame)),
                    // Only registered as a stream after this frame was routed: impossible,
                    // ids are never reused.
                    Some(Waiter::Stream { .. }) => {}
                    // Responses come in request order: an unknown id is a late answer to a
                    // request that already timed out.
                    None => tracing::debug!(broker = %shared.broker, id, "dropping late response"),
                }
            }
            Ok(None) => match reader.read_buf(&mut buf).await {
                Ok(0) => {
                    shared.close("broker closed the connection".to_string());
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    shared.close(format!("read failed: {e}"));
                    return;
                }
            },
            Err(e) => {
                shared.close(e.to_string());
                return;
            }
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

type StreamWaiter = (oneshot::Sender<usize>, mpsc::Sender<Bytes>);

/// Removes and returns the waiter of `id` if it wants its response streamed.
fn take_stream_waiter(shared: &Shared, id: i32) -> Option<StreamWaiter> {
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    if !matches!(state.waiting.get(&id), Some(Waiter::Stream { .. })) {
        return None;
    }
    match state.waiting.remove(&id) {
        Some(Waiter::Stream { len, chunks }) => Some((len, chunks)),
        _ => None,
    }
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
            left -= n;
            if let Some(tx) = &chunks {
                if tx.send(chunk).await.is_err() {
                    chunks = None;
                }
            }
        }
        if left == 0 {
            return Ok(());
        }
        // Chunks sent keep their part of the allocation alive; read into fresh room.
        if buf.capacity() - buf.len() < READ_BUFFER / 4 {
            buf.reserve(READ_BUFFER);
        }
        match reader.read_buf(buf).await {
            Ok(0) => return Err("broker closed the connection".to_string()),
            Ok(_) => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}
