//! One plain-TCP connection to one broker: length-prefixed frames, request header
//! versions from `kafka-protocol`, one request in flight at a time, a timeout on
//! every step, and the broker's ApiVersions ranges for version negotiation.
//!
//! Deliberately independent of tidemark's `kafka` module: it is the test's truth.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{HarnessError, Result};

/// Largest response frame accepted (a bad length prefix must not allocate GiBs).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Default time limit for connecting and for one request/response round trip.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const CLIENT_ID: &str = "tidemark-test-workload";

/// A connection to one broker. Not pipelined: `request` sends one frame and reads
/// exactly one response, checking the correlation id.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    stream: TcpStream,
    next_correlation_id: i32,
    timeout: Duration,
    /// api key -> (min, max) version as advertised by the broker.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `addr` ("host:port") and negotiates versions with ApiVersions.
    pub async fn connect(addr: &str) -> Result<Connection> {
        Self::connect_with_timeout(addr, DEFAULT_TIMEOUT).await
    }

    /// Like [`Connection::connect`], with `timeout` for the connect and every request.
    pub async fn connect_with_timeout(addr: &str, timeout: Duration) -> Result<Connection> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| HarnessError::Timeout {
                context: format!("connecting to {addr}"),
            })?
            .map_err(|e| HarnessError::io(format!("connecting to {addr}"), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| HarnessError::io(format!("setting TCP_NODELAY on {addr}"), e))?;
        let mut conn = Connection {
            addr: addr.to_owned(),
            stream,
            next_correlation_id: 1,
            timeout,
            versions: HashMap::new(),
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str("0.1.0"));
        let resp: ApiVersionsResponse = conn.request(ApiKey::ApiVersions, 3, &req).await?;
        HarnessError::check(resp.error_code, || format!("ApiVersions v3 to {addr}"))?;
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(conn)
    }

    /// The "host:port" this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The broker's advertised (min, max) versions of `key`, if it supports it.
    pub fn broker_versions(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.versions.get(&(key as i16)).copied()
    }

    /// The highest version of `key` that the broker, `kafka-protocol` and the
    /// caller (`preferred_max`) all support.
    pub fn version(&self, key: ApiKey, preferred_max: i16) -> Result<i16> {
        let (bmin, bmax) = self.broker_versions(key).ok_or_else(|| {
            HarnessError::protocol(format!("{} does not support {key:?}", self.addr))
        })?;
        let ours = key.valid_versions();
        let v = bmax.min(ours.max).min(preferred_max);
        if v < bmin || v < ours.min {
            return Err(HarnessError::protocol(format!(
                "no common version of {key:?}: broker {bmin}..={bmax}, kafka-protocol {}..={}, wanted <= {preferred_max}",
                ours.min, ours.max
            )));
        }
        Ok(v)
    }

    /// Sends `req` as `key` at `version` and decodes the response as `Resp`.
    pub async fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp> {
        let addr = self.addr.clone();
        let context = || format!("{key:?} v{version} to {addr}");
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);

        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0); // length, filled below
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| HarnessError::protocol(format!("{}: encoding header: {e}", context())))?;
        req.encode(&mut buf, version)
            .map_err(|e| HarnessError::protocol(format!("{}: encoding body: {e}", context())))?;
        let len = i32::try_from(buf.len() - 4)
            .map_err(|_| HarnessError::protocol(format!("{}: request too large", context())))?;
        buf[..4].copy_from_slice(&len.to_be_bytes());

        let timeout = self.timeout;
        let mut frame = match tokio::time::timeout(timeout, self.round_trip(&buf)).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return Err(HarnessError::io(context(), e)),
            Err(_) => return Err(HarnessError::Timeout { context: context() }),
        };

        let resp_header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .map_err(|e| HarnessError::protocol(format!("{}: decoding header: {e}", context())))?;
        if resp_header.correlation_id != correlation_id {
            return Err(HarnessError::protocol(format!(
                "{}: correlation id {} in response, expected {correlation_id}",
                context(),
                resp_header.correlation_id
            )));
        }
        let resp = Resp::decode(&mut frame, version)
            .map_err(|e| HarnessError::protocol(format!("{}: decoding body: {e}", context())))?;
        if frame.has_remaining() {
            return Err(HarnessError::protocol(format!(
                "{}: {} trailing bytes after the response",
                context(),
                frame.remaining()
            )));
        }
        Ok(resp)
    }

    async fn round_trip(&mut self, frame: &[u8]) -> std::io::Result<Bytes> {
        self.stream.write_all(frame).await?;
        self.stream.flush().await?;
        let len = self.stream.read_i32().await?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("response frame length {len} out of range 0..={MAX_FRAME}"),
                )
            })?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await?;
        Ok(Bytes::from(body))
    }
}
