//! A bounded, panic-free pull decoder over a response body that arrives in chunks.
//!
//! The streaming twin of [`Reader`](super::Reader), for responses too large to hold whole
//! (a Fetch at ten thousand partitions): the connection's reader task forwards the body as
//! it comes off the socket through a small bounded channel, and the decoder consumes it
//! field by field, so the memory a response costs is the channel plus whatever the decoder
//! chooses to keep — not the response size.
//!
//! The same rules as [`Reader`](super::Reader) hold: every length and count is checked
//! against the body bytes still to come (the frame size is known up front) before anything
//! is allocated, owned buffers grow only as bytes actually arrive, and every error names the
//! field path, the byte position and what was wrong. A source that ends early (connection
//! closed, deadline passed) shows up as a truncation error, and [`StreamReader::interrupted`]
//! says why, so the caller can report a transport failure rather than a malformed response.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::primitives::{compact_length, length, Prefix, Uvarint};
use super::reader::malformed;
use super::{DecodeError, Problem};

type Res<T> = Result<T, DecodeError>;

/// An owned buffer for a field split over chunks starts at most this large and grows as
/// bytes arrive.
const PREALLOC_BYTES: usize = 64 * 1024;

/// Why the body stopped arriving before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// The connection closed (or its reader task stopped).
    Closed,
    /// The request's deadline passed.
    TimedOut,
}

enum Source {
    /// Chunks already in memory: whole-buffer decoding, tests, fuzzing.
    Memory(VecDeque<Bytes>),
    /// Chunks forwarded by a connection's reader task.
    Channel {
        rx: mpsc::Receiver<Bytes>,
        deadline: Instant,
    },
}

/// Pull decoder over one response body.
pub struct StreamReader {
    source: Source,
    /// Received, not yet consumed.
    cur: Bytes,
    /// Body bytes not yet consumed, received or not.
    left: usize,
    consumed: usize,
    api: &'static str,
    version: i16,
    path: Vec<(&'static str, usize)>,
    interrupted: Option<Interruption>,
}

impl StreamReader {
    /// A reader over a body held in memory whole.
    pub fn from_bytes(body: Bytes, api: &'static str, version: i16) -> Self {
        Self::from_chunks([body], api, version)
    }

    /// A reader over a body held in memory as `chunks` (in order).
    pub fn from_chunks(
        chunks: impl IntoIterator<Item = Bytes>,
        api: &'static str,
        version: i16,
    ) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().collect();
        let left = chunks.iter().map(Bytes::len).sum();
        Self::new(Source::Memory(chunks), left, api, version)
    }

    /// A reader over a body of `len` bytes arriving on `rx`, which must be complete by
    /// `deadline`.
    pub(crate) fn from_channel(
        rx: mpsc::Receiver<Bytes>,
        len: usize,
        deadline: Instant,
        api: &'static str,
        version: i16,
    ) -> Self {
        Self::new(Source::Channel { rx, deadline }, len, api, version)
    }

    fn new(source: Source, left: usize, api: &'static str, version: i16) -> Self {
        Self {
            source,
            cur: Bytes::new(),
            left,
            consumed: 0,
            api,
            version,
            path: Vec::new(),
            interrupted: None,
        }
    }

    /// Bytes consumed since the start (or the last `StreamReader::restart_position`).
    pub fn position(&self) -> usize {
        self.consumed
    }

    /// Body bytes not consumed yet, whether they have arrived or not.
    pub fn remaining(&self) -> usize {
        self.left
    }

    /// Counts positions from here on (the body starts after the response header).
    pub(crate) fn restart_position(&mut self) {
        self.consumed = 0;
    }

    /// Why the body stopped arriving early, if it did.
    pub fn interrupted(&self) -> Option<Interruption> {
        self.interrupted
    }

    /// Errors of the fields read until [`StreamReader::leave`] are under `field[index]`.
    pub fn enter(&mut self, field: &'static str, index: usize) {
        self.path.push((field, index));
    }

    /// Leaves the array element entered last.
    pub fn leave(&mut self) {
        self.path.pop();
    }

    /// An error for `field` (under the current array path) starting at byte `position`.
    pub fn error(&self, field: &'static str, position: usize, problem: Problem) -> DecodeError {
        malformed(self.api, self.version, &self.path, field, position, problem)
    }

    fn short(&self, field: &'static str, position: usize, needed: usize) -> DecodeError {
        let remaining = self.left;
        self.error(field, position, Problem::Truncated { needed, remaining })
    }

    /// Makes `cur` non-empty; `false` when the body is consumed or stopped arriving.
    async fn more(&mut self) -> bool {
        while self.cur.is_empty() {
            if self.left == 0 || self.interrupted.is_some() {
                return false;
            }
            let next = match &mut self.source {
                Source::Memory(chunks) => chunks.pop_front().ok_or(Interruption::Closed),
                Source::Channel { rx, deadline } => {
                    match tokio::time::timeout_at(*deadline, rx.recv()).await {
                        Ok(Some(chunk)) => Ok(chunk),
                        Ok(None) => Err(Interruption::Closed),
                        Err(_) => Err(Interruption::TimedOut),
                    }
                }
            };
            match next {
                Ok(mut chunk) => {
                    // Never read past the body, whatever the source hands over.
                    chunk.truncate(self.left);
                    self.cur = chunk;
                }
                Err(why) => {
                    self.interrupted = Some(why);
                    return false;
                }
            }
        }
        true
    }

    /// Consumes up to `n` bytes of `cur`.
    fn advance(&mut self, n: usize) -> Bytes {
        let n = n.min(self.cur.len());
        self.left = self.left.saturating_sub(n);
        self.consumed = self.consumed.saturating_add(n);
        self.cur.split_to(n)
    }

    async fn fixed<const N: usize>(&mut self, field: &'static str) -> Res<[u8; N]> {
        let pos = self.consumed;
        if N > self.left {
            return Err(self.short(field, pos, N));
        }
        let mut out = [0u8; N];
        let mut filled = 0;
        while filled < N {
            if !self.more().await {
                return Err(self.short(field, pos, N.saturating_sub(filled)));
            }
            let part = self.advance(N.saturating_sub(filled));
            let end = filled.saturating_add(part.len());
            if let Some(dst) = out.get_mut(filled..end) {
                dst.copy_from_slice(&part);
            }
            filled = end;
        }
        Ok(out)
    }

    pub async fn i8(&mut self, field: &'static str) -> Res<i8> {
        self.fixed::<1>(field).await.map(i8::from_be_bytes)
    }

    pub async fn i16(&mut self, field: &'static str) -> Res<i16> {
        self.fixed::<2>(field).await.map(i16::from_be_bytes)
    }

    pub async fn i32(&mut self, field: &'static str) -> Res<i32> {
        self.fixed::<4>(field).await.map(i32::from_be_bytes)
    }

    pub async fn i64(&mut self, field: &'static str) -> Res<i64> {
        self.fixed::<8>(field).await.map(i64::from_be_bytes)
    }

    /// Unsigned varint (protobuf style), at most 5 bytes, value within u32.
    pub async fn uvarint(&mut self, field: &'static str) -> Res<u32> {
        let pos = self.consumed;
        let mut varint = Uvarint::default();
        loop {
            let [b] = self
                .fixed::<1>(field)
                .await
                .map_err(|_| self.short(field, pos, 1))?;
            match varint.push(b) {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(problem) => return Err(self.error(field, pos, problem)),
            }
        }
    }

    /// Reads a length prefix: `None` for null, an error for other negative lengths.
    async fn len(&mut self, field: &'static str, pos: usize, prefix: Prefix) -> Res<Option<usize>> {
        let n = match prefix {
            Prefix::I16 => i64::from(self.i16(field).await?),
            Prefix::I32 => i64::from(self.i32(field).await?),
            Prefix::Compact => compact_length(self.uvarint(field).await?),
        };
        length(n).map_err(|problem| self.error(field, pos, problem))
    }

    /// Takes `n` bytes, keeping the first `keep` of them (zero copy when they arrived in one
    /// chunk) and skipping the rest.
    async fn take_at(
        &mut self,
        field: &'static str,
        pos: usize,
        n: usize,
        keep: usize,
    ) -> Res<Bytes> {
        if n > self.left {
            return Err(self.short(field, pos, n));
        }
        let keep = keep.min(n);
        let kept = if self.cur.len() >= keep {
            self.advance(keep)
        } else {
            let mut out = BytesMut::with_capacity(keep.min(PREALLOC_BYTES));
            while out.len() < keep {
                if !self.more().await {
                    return Err(self.short(field, pos, n));
                }
                let part = self.advance(keep.saturating_sub(out.len()));
                out.extend_from_slice(&part);
            }
            out.freeze()
        };
        let mut skip = n.saturating_sub(keep);
        while skip > 0 {
            if !self.more().await {
                return Err(self.short(field, pos, n));
            }
            skip = skip.saturating_sub(self.advance(skip).len());
        }
        Ok(kept)
    }

    /// Skips `n` bytes.
    pub async fn skip(&mut self, field: &'static str, n: usize) -> Res<()> {
        let pos = self.consumed;
        self.take_at(field, pos, n, 0).await.map(drop)
    }

    /// Length-prefixed bytes keeping at most `keep` of them, `None` for null.
    async fn blob(
        &mut self,
        field: &'static str,
        prefix: Prefix,
        keep: usize,
    ) -> Res<Option<Bytes>> {
        let pos = self.consumed;
        match self.len(field, pos, prefix).await? {
            None => Ok(None),
            Some(n) => self.take_at(field, pos, n, keep).await.map(Some),
        }
    }

    /// A string (compact when `flexible`) that must not be null.
    pub async fn string_v(&mut self, field: &'static str, flexible: bool) -> Res<String> {
        let pos = self.consumed;
        let raw = self
            .blob(field, Prefix::pick(flexible, Prefix::I16), usize::MAX)
            .await?
            .ok_or_else(|| self.error(field, pos, Problem::UnexpectedNull))?;
        match std::str::from_utf8(&raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.error(field, pos, Problem::InvalidUtf8)),
        }
    }

    /// Nullable bytes (compact when `flexible`), of which at most the first `keep` are kept
    /// and the rest skipped; also returns the full length. Null is `(empty, 0)`.
    pub async fn nullable_bytes_prefix_v(
        &mut self,
        field: &'static str,
        flexible: bool,
        keep: usize,
    ) -> Res<(Bytes, usize)> {
        let pos = self.consumed;
        match self
            .len(field, pos, Prefix::pick(flexible, Prefix::I32))
            .await?
        {
            None => Ok((Bytes::new(), 0)),
            Some(n) => Ok((self.take_at(field, pos, n, keep).await?, n)),
        }
    }

    /// Array count (compact when `flexible`): `None` for null; a count larger than the body
    /// bytes still to come (every element takes at least one) is an error.
    pub async fn array_len_v(&mut self, field: &'static str, flexible: bool) -> Res<Option<usize>> {
        let pos = self.consumed;
        let Some(n) = self
            .len(field, pos, Prefix::pick(flexible, Prefix::I32))
            .await?
        else {
            return Ok(None);
        };
        let remaining = self.left;
        if n > remaining {
            let count = u64::try_from(n).unwrap_or(u64::MAX);
            return Err(self.error(field, pos, Problem::CountTooLarge { count, remaining }));
        }
        Ok(Some(n))
    }

    /// Skips a tagged-field section when `flexible`: count, then per field tag, size and
    /// `size` bytes.
    pub async fn tagged_fields(&mut self, flexible: bool) -> Res<()> {
        const FIELD: &str = "_tagged_fields";
        if !flexible {
            return Ok(());
        }
        let pos = self.consumed;
        let count = u64::from(self.uvarint(FIELD).await?);
        let remaining = self.left;
        // Each tagged field takes at least two bytes (tag and size).
        if count.saturating_mul(2) > u64::try_from(remaining).unwrap_or(u64::MAX) {
            return Err(self.error(FIELD, pos, Problem::TagCountTooLarge { count, remaining }));
        }
        for _ in 0..count {
            self.uvarint(FIELD).await?;
            let size = self.uvarint(FIELD).await?;
            self.skip(FIELD, usize::try_from(size).unwrap_or(usize::MAX))
                .await?;
        }
        Ok(())
    }
}

/// Runs a decode over an in-memory [`StreamReader`] to completion. Such a reader never waits,
/// so the future is ready at its first poll; `None` only if it was not (a channel source).
pub fn now_or_never<T>(fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests;
