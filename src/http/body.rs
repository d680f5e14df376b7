//! Response bodies: shared byte chunks (the stored gzip exposition, small answers), or the
//! exposition's text inflated chunk by chunk as hyper asks for it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::metrics::TextStream;

/// A response body. Its exact length is always known (`Content-Length`).
#[derive(Default)]
pub struct Body {
    kind: Kind,
}

enum Kind {
    /// Sent as they are, without copying.
    Chunks(VecDeque<Bytes>),
    /// Inflated 64 KiB at a time: no uncompressed copy of the exposition is ever held.
    Text(TextStream),
}

impl Default for Kind {
    fn default() -> Self {
        Kind::Chunks(VecDeque::new())
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Chunks(c) => f.debug_struct("Body").field("chunks", &c.len()).finish(),
            Kind::Text(t) => f
                .debug_struct("Body")
                .field("text_remaining", &t.remaining())
                .finish(),
        }
    }
}

impl Body {
    pub(super) fn new(chunks: impl IntoIterator<Item = Bytes>) -> Body {
        Body {
            kind: Kind::Chunks(chunks.into_iter().filter(|c| !c.is_empty()).collect()),
        }
    }

    pub(super) fn text(stream: TextStream) -> Body {
        Body {
            kind: Kind::Text(stream),
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
        let next = match &mut self.kind {
            Kind::Chunks(chunks) => chunks.pop_front(),
            Kind::Text(stream) => match stream.next() {
                Some(Ok(chunk)) => Some(chunk),
                Some(Err(e)) => {
                    // Never expected. Ending short of Content-Length makes hyper close the
                    // connection, so the client sees a truncated response, not wrong text.
                    tracing::error!(error = %e, "/metrics response cut short");
                    self.kind = Kind::default();
                    None
                }
                None => None,
            },
        };
        Poll::Ready(next.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Chunks(chunks) => chunks.is_empty(),
            Kind::Text(stream) => stream.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Chunks(chunks) => {
                SizeHint::with_exact(chunks.iter().map(|c| c.len() as u64).sum())
            }
            Kind::Text(stream) => SizeHint::with_exact(stream.remaining()),
        }
    }
}
