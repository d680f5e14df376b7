//! The HTTP/1.1 server: accepting, per-connection limits and timeouts.
//!
//! Every connection is in one phase, with the instant it entered it:
//!
//! - `New`: accepted, no complete request yet — must send its headers within
//!   [`ServerLimits::header_read_timeout`] of the accept;
//! - `Idle`: keep-alive between requests, no byte of the next one yet — closed after
//!   [`ServerLimits::idle_timeout`];
//! - `Headers`: bytes of the next request arrived — its headers must be complete within
//!   `header_read_timeout` of the first byte;
//! - `Busy`: a response is being produced and handed to hyper — bounded by
//!   [`ServerLimits::response_timeout`] (a client that does not read cannot pin a connection
//!   and an old exposition forever).
//!
//! hyper's own `header_read_timeout` is not used: in hyper 1 it also runs while a keep-alive
//! connection waits for its next request, so it cannot tell a slow client from Prometheus
//! waiting for its next scrape. A watchdog per connection enforces the deadlines instead.
//!
//! At most [`ServerLimits::max_connections`] connections are open. A connection accepted
//! beyond that closes the one that has waited longest without a request in progress (idle,
//! or still sending headers), so a flood of idle or slow connections can never keep a
//! kubelet's `/health` out; only when every connection is busy producing a response is the
//! new one closed at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::{handle, Body};
use crate::state::ExporterState;

/// Limits of the HTTP server. The defaults are what `tidemark` runs with.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Time for a client to send a request's headers, from the accept or from the first
    /// byte of a later request on a keep-alive connection. Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request. Default 90 s:
    /// longer than Prometheus' default scrape interval (1 m), so a scraper keeps one
    /// connection; the connection cap below never lets idle connections crowd others out.
    pub idle_timeout: Duration,
    /// Time to hand a response to the socket (a client that stops reading). Default 60 s.
    pub response_timeout: Duration,
    /// Connections open at once. Default 256.
    pub max_connections: usize,
    /// Size of a request's start line and headers. Default 16 KiB (larger: 431).
    pub max_header_bytes: usize,
    /// Number of request headers. Default 64 (more: 431).
    pub max_headers: usize,
    /// Called with every accepted socket once it is set up (tests check TCP_NODELAY on the
    /// server's side of the connection with it).
    #[doc(hidden)]
    pub on_accept: Option<fn(&TcpStream)>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            response_timeout: Duration::from_secs(60),
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            on_accept: None,
        }
    }
}

/// Serve with the default [`ServerLimits`] until `shutdown` turns true: then stop accepting
/// and return.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ExporterState>,
    shutdown: watch::Receiver<bool>,
) {
    serve_with(listener, state, shutdown, ServerLimits::default()).await;
}

/// Worker threads of the HTTP server's own runtime: endpoints are cheap, two let a slow
/// response body and a health probe progress at once.
const HTTP_WORKERS: usize = 2;

/// Run [`serve_with`] on a runtime of its own, on threads no collection work is ever
/// scheduled on: a collector busy decoding or a render in progress can then delay an
/// endpoint only as much as the OS scheduler lets it, never by occupying the workers the
/// endpoint's task waits for. The returned handle (of the calling runtime) completes once
/// the server stopped after `shutdown` turned true.
pub fn spawn_dedicated(
    listener: TcpListener,
    state: Arc<ExporterState>,
    shutdown: watch::Receiver<bool>,
    limits: ServerLimits,
) -> io::Result<tokio::task::JoinHandle<()>> {
    // A tokio listener belongs to the reactor it was made in: move the socket over.
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HTTP_WORKERS)
        .thread_name("tidemark-http")
        .enable_all()
        .build()?;
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("tidemark-http-main".into())
        .spawn(move || {
            let served = runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                serve_with(listener, state, shutdown, limits).await;
                io::Result::Ok(())
            });
            if let Err(e) = served {
                tracing::error!(error = %e, "the HTTP server could not start");
            }
            // Open connections end with the runtime; a response in progress is cut.
            runtime.shutdown_timeout(Duration::from_millis(100));
            let _ = done.send(());
        })?;
    Ok(tokio::spawn(async move {
        let _ = finished.await;
    }))
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    listener: TcpListener,
    state: Arc<ExporterState>,
    mut shutdown: watch::Receiver<bool>,
    limits: ServerLimits,
) {
    let limits = Arc::new(limits);
    let registry = Arc::new(Registry::default());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without it a response written in more than one segment waits for the client's
        // delayed ACK (~40 ms on Linux) on keep-alive connections.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY on an HTTP connection failed");
        }
        if let Some(hook) = limits.on_accept {
            hook(&stream);
        }
        let Some(conn) = registry.admit(limits.max_connections) else {
            tracing::debug!(
                max_connections = limits.max_connections,
                "every HTTP connection is busy with a response: a new one is closed"
            );
            continue;
        };
        tokio::spawn(connection(
            stream,
            conn,
            registry.clone(),
            state.clone(),
            limits.clone(),
        ));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    New,
    Idle,
    Headers,
    Busy,
}

/// One open connection, shared by its task, its I/O wrapper, its responses and the
/// registry.
struct Conn {
    id: u64,
    phase: Mutex<(Phase, Instant)>,
    /// Told to close by a newer connection when the cap is reached.
    evict: Notify,
}

impl Conn {
    fn phase(&self) -> (Phase, Instant) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = (phase, Instant::now());
    }

    /// Bytes arrived: an idle connection starts its header clock.
    fn on_read(&self) {
        let mut p = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        if p.0 == Phase::Idle {
            *p = (Phase::Headers, Instant::now());
        }
    }

    fn deadline(&self, limits: &ServerLimits) -> Instant {
        let (phase, since) = self.phase();
        since
            + match phase {
                Phase::New | Phase::Headers => limits.header_read_timeout,
                Phase::Idle => limits.idle_timeout,
                Phase::Busy => limits.response_timeout,
            }
    }
}

#[derive(Default)]
struct Registry {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Registry {
    /// Register a new connection, closing the longest-waiting one without a request in
    /// progress when `max` are open. None when every open connection is busy.
    fn admit(&self, max: usize) -> Option<Arc<Conn>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= max.max(1) {
            let victim = open
                .values()
                .filter_map(|c| {
                    let (phase, since) = c.phase();
                    (phase != Phase::Busy).then_some((since, c.id))
                })
                .min()?;
            if let Some(c) = open.remove(&victim.1) {
                c.evict.notify_one();
            }
        }
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            phase: Mutex::new((Phase::New, Instant::now())),
            evict: Notify::new(),
        });
        open.insert(conn.id, conn.clone());
        Some(conn)
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// Removes the connection from the registry however its task ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

async fn connection(
    stream: TcpStream,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    state: Arc<ExporterState>,
    limits: Arc<ServerLimits>,
) {
    let _registered = Registered {
        registry,
        id: conn.id,
    };
    let io = TokioIo::new(Tracked {
        stream,
        conn: conn.clone(),
    });
    let service_conn = conn.clone();
    let service = service_fn(move |req| {
        service_conn.set(Phase::Busy);
        let response = handle(&req, &state).map(|body| TrackedBody {
            body,
            done: Some(IdleOnDrop(service_conn.clone())),
        });
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let mut builder = http1::Builder::new();
    builder
        // Deadlines are the watchdog's (see the module comment).
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let mut evicted = false;
    loop {
        let deadline = conn.deadline(&limits);
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                // The phase may have moved on since the deadline was computed.
                if conn.deadline(&limits) <= Instant::now() {
                    tracing::debug!(phase = ?conn.phase().0, "HTTP connection timed out: closed");
                    return;
                }
            }
            () = conn.evict.notified(), if !evicted => {
                if conn.phase().0 != Phase::Busy {
                    tracing::debug!("HTTP connection closed to make room for a new one");
                    return;
                }
                // It started a request after it was chosen: let it finish, then close.
                evicted = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The socket, noting when bytes of a next request arrive.
struct Tracked {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.on_read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    // Forwarded so hyper keeps its vectored (queue) strategy: head and body in one
    // `writev`, body chunks never copied.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Marks the connection idle when hyper is done with the response body.
struct IdleOnDrop(Arc<Conn>);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.0.set(Phase::Idle);
    }
}

/// A response body that marks its connection idle once hyper has taken all of it.
struct TrackedBody {
    body: Body,
    done: Option<IdleOnDrop>,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.done = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_closes_the_longest_waiting_connection_without_a_request() {
        let r = Registry::default();
        let a = r.admit(2).expect("room");
        let b = r.admit(2).expect("room");
        // `a` is serving a response: `b` (waiting) makes room for `c`.
        a.set(Phase::Busy);
        let c = r.admit(2).expect("b evicted");
        let open: Vec<u64> = {
            let mut v: Vec<u64> = r
                .open
                .lock()
                .map(|o| o.keys().copied().collect())
                .unwrap_or_default();
            v.sort_unstable();
            v
        };
        assert_eq!(open, vec![a.id, c.id]);
        assert!(futures_util::FutureExt::now_or_never(b.evict.notified()).is_some());
        // Everything busy: a new connection is refused.
        c.set(Phase::Busy);
        assert!(r.admit(2).is_none());
        // A finished response makes its connection evictable again.
        a.set(Phase::Idle);
        assert!(r.admit(2).is_some());
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let limits = ServerLimits {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(100),
            response_timeout: Duration::from_secs(10),
            ..ServerLimits::default()
        };
        let r = Registry::default();
        let c = r.admit(1).expect("room");
        let (_, since) = c.phase();
        assert_eq!(c.deadline(&limits), since + Duration::from_secs(1));
        c.set(Phase::Busy);
        assert_eq!(c.deadline(&limits), c.phase().1 + Duration::from_secs(10));
        c.set(Phase::Idle);
        assert_eq!(c.deadline(&limits), c.phase().1 + Duration::from_secs(100));
        // Bytes of a next request: back on the header clock; more bytes do not reset it.
        c.on_read();
        let (phase, started) = c.phase();
        assert_eq!(phase, Phase::Headers);
        c.on_read();
        assert_eq!(c.phase(), (Phase::Headers, started));
        assert_eq!(c.deadline(&limits), started + Duration::from_secs(1));
    }
}
