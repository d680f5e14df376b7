//! The HTTP server over real sockets: slow and idle clients, the connection cap, keep-alive
//! latency (TCP_NODELAY) and request-size limits.
//!
//! The server runs in-process on 127.0.0.1:0 with small timeouts ([`ServerLimits`]), serving
//! an exposition of a few MiB rendered from a report built directly (no broker).
//! `cargo test --test http -- --nocapture` prints the keep-alive and fresh-connection
//! latencies (docs/benchmarks.md).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark::http::{serve_with, ServerLimits};
use tidemark::state::ExporterState;
use tidemark_testkit::exporter::read_head;
use tidemark_testkit::snapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

const NOW: i64 = 1_750_000_000_000;

/// A state serving `groups` groups × 50 partitions (partition granularity).
fn state(groups: usize) -> Arc<ExporterState> {
    let topics: Vec<Arc<str>> = (0..10)
        .map(|t| Arc::from(format!("prod.orders-{t:03}.events")))
        .collect();
    let watermarks = snapshot::watermarks(topics.iter().cloned(), 50);
    let groups = snapshot::lagging_groups(
        groups,
        50,
        |g| format!("orders-{g:04}-consumer"),
        |g| topics[g % topics.len()].clone(),
        |g, p| NOW - (snapshot::high(p) - snapshot::committed(g, p)) * 10,
    );
    snapshot::published(watermarks, groups, Duration::from_millis(120), NOW)
}

struct Server {
    address: SocketAddr,
    state: Arc<ExporterState>,
    _stop: watch::Sender<bool>,
}

async fn start(state: Arc<ExporterState>, limits: ServerLimits) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(serve_with(listener, state.clone(), stopped, limits));
    Server {
        address,
        state,
        _stop: stop,
    }
}

/// Raise the soft fd limit to `want` (or the hard limit); returns what it is now.
fn raise_fd_limit(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit read and write a struct we own.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 0;
        }
        if l.rlim_cur < want {
            l.rlim_cur = want.min(l.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        }
        l.rlim_cur
    }
}

/// One response read off a keep-alive connection.
struct Response {
    status: u16,
    body_len: usize,
}

/// A minimal HTTP/1.1 keep-alive client.
struct Client {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Client {
    async fn connect(address: SocketAddr) -> Client {
        let stream = TcpStream::connect(address).await.expect("connect");
        Client {
            stream: BufReader::new(stream),
            host: address.to_string(),
        }
    }

    async fn get(&mut self, path: &str) -> Response {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("send");
        self.read_response().await
    }

    async fn read_response(&mut self) -> Response {
        let (status, headers) = read_head(&mut self.stream).await;
        let length = headers
            .get("content-length")
            .map_or(0, |v| v.parse().expect("content-length"));
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.expect("body");
        Response {
            status,
            body_len: length,
        }
    }
}

/// GET over a fresh connection: (status, body length, time from connect to last byte).
async fn fresh_get(address: SocketAddr, path: &str) -> (u16, usize, Duration) {
    let t = Instant::now();
    let mut c = Client::connect(address).await;
    let r = c.get(path).await;
    (r.status, r.body_len, t.elapsed())
}

/// Wait until the server closes `stream` (EOF or reset); returns when, from `since`, or
/// None after `limit`.
async fn closed_within(mut stream: TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::from_std(since + limit);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

async fn scrape_latencies(address: SocketAddr, n: usize, len: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (status, body_len, took) = fresh_get(address, "/metrics").await;
        assert_eq!((status, body_len), (200, len));
        out.push(ms(took));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_neither_delay_a_scrape_nor_stay_open() {
    let header = Duration::from_secs(2);
    let idle = Duration::from_secs(3);
    let fd = raise_fd_limit(4096);
    // Each connection is two descriptors here (client and server end).
    let n = if fd >= 2 * 1000 + 200 { 1000 } else { 500 };
    eprintln!("fd limit {fd}: {n} idle connections");
    let server = start(
        state(100),
        ServerLimits {
            header_read_timeout: header,
            idle_timeout: idle,
            max_connections: n + 100,
            ..ServerLimits::default()
        },
    )
    .await;
    let address = server.address;
    let len = server.state.rendered().prometheus_len();
    let before = scrape_latencies(address, 20, len).await;

    // Half send nothing (header clock from the accept), half finish one request and stay
    // open (idle clock from the response).
    let opened = Instant::now();
    let mut waiting = Vec::new();
    for i in 0..n {
        if i % 2 == 0 {
            let s = TcpStream::connect(address).await.expect("connect");
            waiting.push((s, header, Instant::now()));
        } else {
            let mut c = Client::connect(address).await;
            assert_eq!(c.get("/health").await.status, 200);
            waiting.push((c.stream.into_inner(), idle, Instant::now()));
        }
    }
    let watchers: Vec<_> = waiting
        .into_iter()
        .map(|(s, timeout, since)| {
            tokio::spawn(async move {
                let closed = closed_within(s, since, timeout + Duration::from_secs(3)).await;
                (timeout, closed)
            })
        })
        .collect();
    // A slow-loris client: one header byte per second, never finishing.
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let mut s = TcpStream::connect(address).await.expect("connect");
        for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
            if s.write_all(&[*b]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("the slow client was never closed");
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = scrape_latencies(address, 20, len).await;
    assert!(
        opened.elapsed() < header,
        "the scrapes must run while every connection is still open (took {:?})",
        opened.elapsed()
    );
    let (b50, d50) = (percentile(&before, 50.0), percentile(&during, 50.0));
    eprintln!(
        "fresh /metrics ({len} bytes): p50 {b50:.2} ms before, {d50:.2} ms with {n} idle connections and a slow client (p99 {:.2} / {:.2} ms)",
        percentile(&before, 99.0),
        percentile(&during, 99.0)
    );
    // Generous: a shared 2-core machine; a scrape stuck behind the flood takes seconds.
    assert!(
        d50 < 3.0 * b50 + 25.0,
        "scrapes slowed by idle connections: p50 {b50:.2} ms → {d50:.2} ms"
    );

    for w in watchers {
        let (timeout, closed) = w.await.expect("watcher");
        let closed = closed.unwrap_or_else(|| {
            panic!("a connection with a {timeout:?} timeout is still open after {timeout:?} + 3 s")
        });
        assert!(
            closed + Duration::from_millis(100) >= timeout,
            "closed after {closed:?}, before its {timeout:?} timeout"
        );
    }
    let slow_closed = slow.await.expect("slow client");
    assert!(
        slow_closed >= header && slow_closed < header + Duration::from_secs(3),
        "the slow client was closed after {slow_closed:?} (header timeout {header:?})"
    );
    // Still serving.
    assert_eq!(fresh_get(address, "/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_new_connections_displace_idle_ones() {
    raise_fd_limit(1024);
    let cap = 16;
    let server = start(
        state(1),
        ServerLimits {
            max_connections: cap,
            ..ServerLimits::default()
        },
    )
    .await;
    let address = server.address;
    let since = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(address).await.expect("connect"));
    }
    // The kubelet's probe gets in although 100 idle connections arrived first.
    let (status, _, took) = fresh_get(address, "/health").await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(2), "/health took {took:?}");
    let closed = futures_util::future::join_all(
        idle.into_iter()
            .map(|s| closed_within(s, since, Duration::from_secs(2))),
    )
    .await;
    let open = closed.iter().filter(|c| c.is_none()).count();
    assert!(
        open <= cap,
        "{open} idle connections still open with max_connections {cap}"
    );
    // The newest stayed: the oldest were closed first.
    assert!(closed[..50].iter().all(Option::is_some));
}

static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
static ACCEPTED_NODELAY: AtomicUsize = AtomicUsize::new(0);

fn count_nodelay(stream: &TcpStream) {
    ACCEPTED.fetch_add(1, Ordering::SeqCst);
    if stream.nodelay().unwrap_or(false) {
        ACCEPTED_NODELAY.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_scrapes_do_not_wait_for_delayed_acks() {
    let server = start(
        state(100),
        ServerLimits {
            on_accept: Some(count_nodelay),
            ..ServerLimits::default()
        },
    )
    .await;
    let len = server.state.rendered().prometheus_len();
    let mut c = Client::connect(server.address).await;
    let mut took = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let r = c.get("/metrics").await;
        took.push(ms(t.elapsed()));
        assert_eq!((r.status, r.body_len), (200, len));
    }
    eprintln!(
        "keep-alive /metrics ({len} bytes): p50 {:.2} ms",
        percentile(&took, 50.0)
    );
    // Only this test's server counts.
    let (accepted, nodelay) = (
        ACCEPTED.load(Ordering::SeqCst),
        ACCEPTED_NODELAY.load(Ordering::SeqCst),
    );
    assert_eq!(
        (accepted, nodelay),
        (1, 1),
        "accepted sockets / with TCP_NODELAY"
    );
    // Nagle + delayed ACK hold a response's tail ~40 ms whenever it goes out in more than
    // one write (how often depends on sizes and segmenting; on this path rarely, see
    // docs/benchmarks.md): the median must stay far below that stall. Measured against
    // fresh connections at the same moment, so a loaded machine slows both alike.
    let fresh = percentile(&scrape_latencies(server.address, 50, len).await, 50.0);
    let p50 = percentile(&took, 50.0);
    assert!(
        p50 < 2.0 * fresh + 10.0,
        "keep-alive /metrics p50 {p50:.2} ms against {fresh:.2} ms on fresh connections: \
         TCP_NODELAY lost?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_versus_fresh_connections() {
    let server = start(state(100), ServerLimits::default()).await;
    let address = server.address;
    let len = server.state.rendered().prometheus_len();
    let fresh = scrape_latencies(address, 200, len).await;
    let mut c = Client::connect(address).await;
    let mut kept = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let r = c.get("/metrics").await;
        kept.push(ms(t.elapsed()));
        assert_eq!((r.status, r.body_len), (200, len));
    }
    eprintln!(
        "/metrics ({len} bytes), 200 requests: keep-alive p50 {:.2} ms p99 {:.2} ms; fresh connection p50 {:.2} ms p99 {:.2} ms",
        percentile(&kept, 50.0),
        percentile(&kept, 99.0),
        percentile(&fresh, 50.0),
        percentile(&fresh, 99.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_headers_are_refused() {
    let server = start(state(1), ServerLimits::default()).await;
    let mut c = Client::connect(server.address).await;
    let big = "a".repeat(20 * 1024);
    let request = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may close before reading all of it.
    let _ = c.stream.get_mut().write_all(request.as_bytes()).await;
    assert_eq!(c.read_response().await.status, 431);

    let mut c = Client::connect(server.address).await;
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let _ = c.stream.get_mut().write_all(request.as_bytes()).await;
    assert_eq!(c.read_response().await.status, 431);

    // Within the limits: answered.
    let mut c = Client::connect(server.address).await;
    assert_eq!(c.get("/health").await.status, 200);
}

/// The exporter's HTTP server runs on threads of its own: with every thread of the runtime
/// the collectors run on blocked (as CPU-bound collection work would), `/health` still
/// answers. Before, the server shared that runtime and could not answer until it was free.
#[tokio::test(flavor = "current_thread")]
async fn endpoints_answer_while_the_collector_runtime_is_blocked() {
    let toml = "[exporter]\nhttp_host = \"127.0.0.1\"\nhttp_port = 0\npoll_interval = \"1s\"\n\n\
                [[clusters]]\nname = \"nowhere\"\nbootstrap_servers = \"127.0.0.1:9\"\n";
    let env = |_: &str| None;
    let config = tidemark::config::parse(toml, "test.toml", &env).expect("config");
    let exporter = tidemark::exporter::Exporter::start(config)
        .await
        .expect("exporter starts");
    let address = exporter.address();
    let (tx, rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(address).expect("connect");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("response");
        let _ = tx.send(answer);
    });
    // Blocks the only thread of this test's runtime, where the collector task runs.
    std::thread::sleep(Duration::from_secs(3));
    let answer = rx
        .try_recv()
        .expect("/health answered while the collectors' runtime was blocked");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    client.join().expect("client");
    exporter.shutdown(Duration::from_secs(1)).await;
}
