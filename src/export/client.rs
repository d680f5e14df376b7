//! The push exporters' HTTP client: one connection to one endpoint (HTTP/1.1, or HTTP/2
//! for gRPC: prior knowledge on `http://`, ALPN `h2` on `https://`), kept between
//! requests and dialled again after any failure. TLS is the Kafka client's rustls setup.
//! Every request, connecting included, is bounded by the exporter's timeout.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::HeaderMap;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::PushUrl;
use crate::kafka::tls::Tls;

/// Bytes of a response body kept (for the error message); the rest is read and dropped.
const BODY_KEPT: usize = 1024;

/// Why a push request failed. Never holds a header value (they may be credentials).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("answered HTTP {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("answered gRPC status {code}: {message}")]
    Grpc { code: u32, message: String },
    #[error("cannot build the request: {0}")]
    Request(String),
    #[error("cannot compress the request: {0}")]
    Compress(#[from] snap::Error),
    #[error("cannot gzip the request: {0}")]
    Gzip(std::io::Error),
}

impl SendError {
    /// Whether sending the same request again may succeed. A request the receiver refused
    /// as such (HTTP 4xx but 408 and 429; gRPC INVALID_ARGUMENT, UNAUTHENTICATED, ...)
    /// would be refused again: it is dropped instead (remote write 1.0 says the same).
    pub fn retryable(&self) -> bool {
        match self {
            SendError::Status { status, .. } => {
                !status.is_client_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            // CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE,
            // UNAVAILABLE, DATA_LOSS: the OTLP specification's retryable codes.
            SendError::Grpc { code, .. } => matches!(code, 1 | 4 | 8 | 10 | 11 | 14 | 15),
            SendError::Request(_) | SendError::Compress(_) | SendError::Gzip(_) => false,
            _ => true,
        }
    }
}

/// A response: status, headers, trailers (gRPC's status is there) and the start of the body.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub trailers: Option<HeaderMap>,
    pub body: Bytes,
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    fn usable(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }
}

/// A client of one endpoint.
pub struct Client {
    url: PushUrl,
    tls: Option<Tls>,
    http2: bool,
    timeout: Duration,
    sender: Option<Sender>,
}

impl Client {
    /// `tls` is required for an `https://` URL (the config always provides it).
    pub fn new(url: PushUrl, tls: Option<Tls>, http2: bool, timeout: Duration) -> Self {
        let tls = tls.map(|t| {
            if http2 {
                t.with_alpn(&[b"h2"])
            } else {
                t.with_alpn(&[b"http/1.1"])
            }
        });
        Client {
            url,
            tls,
            http2,
            timeout,
            sender: None,
        }
    }

    /// A request to the endpoint's path (or `path` instead), with the URI form the
    /// protocol wants and, for HTTP/1.1, the `Host` header.
    pub fn request(&self, path: Option<&str>) -> hyper::http::request::Builder {
        let path = path.unwrap_or(&self.url.path);
        let builder = Request::post(if self.http2 {
            let scheme = if self.url.tls { "https" } else { "http" };
            format!("{scheme}://{}{path}", self.url.authority)
        } else {
            path.to_owned()
        });
        if self.http2 {
            builder
        } else {
            builder.header(hyper::header::HOST, &self.url.authority)
        }
    }

    /// Send `request` and read its response, within the timeout.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Response, SendError> {
        match tokio::time::timeout(self.timeout, self.send_inner(request)).await {
            Ok(result) => result,
            Err(_) => {
                self.sender = None;
                Err(SendError::Timeout(self.timeout))
            }
        }
    }

    async fn send_inner(&mut self, request: Request<Full<Bytes>>) -> Result<Response, SendError> {
        let mut sender = match self.sender.take() {
            Some(s) if s.usable() => s,
            _ => self.connect().await?,
        };
        let response = match &mut sender {
            Sender::H1(s) => s.send_request(request).await?,
            Sender::H2(s) => s.send_request(request).await?,
        };
        let (parts, mut body) = response.into_parts();
        let mut kept = BytesMut::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            match frame.into_data() {
                Ok(data) => {
                    let room = BODY_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        // Kept only after a whole exchange: a connection cut mid-answer is dialled again.
        self.sender = Some(sender);
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            trailers,
            body: kept.freeze(),
        })
    }

    async fn connect(&self) -> Result<Sender, SendError> {
        let address = self.url.address();
        let tcp = TcpStream::connect(&address)
            .await
            .map_err(SendError::Connect)?;
        // Requests are written whole; Nagle would only delay the last segment.
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some(tls) => {
                let stream = tls
                    .connect(&address, tcp)
                    .await
                    .map_err(|e| SendError::Tls(e.to_string()))?;
                handshake(stream, self.http2).await
            }
            None => handshake(tcp, self.http2).await,
        }
    }
}

async fn handshake<T>(io: T, http2: bool) -> Result<Sender, SendError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    if http2 {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
        // The connection ends when the sender is dropped or the peer closes it.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Sender::H2(sender))
    } else {
        let (sender, connection) = http1::handshake(io).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Sender::H1(sender))
    }
}

/// The body of an error response as text for a log line: lossy, one line, bounded.
pub fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    line.trim().to_owned()
}
