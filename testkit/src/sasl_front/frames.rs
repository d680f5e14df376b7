//! Framing, encoding and message parsing of the SASL front (testkit/src/sasl_front.rs).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(super) async fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.ok()?;
    let size = usize::try_from(i32::from_be_bytes(size)).ok()?;
    if size > 64 * 1024 * 1024 {
        return None;
    }
    let mut frame = vec![0u8; size];
    stream.read_exact(&mut frame).await.ok()?;
    Some(Bytes::from(frame))
}

pub(super) async fn write_frame(stream: &mut TcpStream, frame: &[u8]) -> bool {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    out.extend_from_slice(frame);
    stream.write_all(&out).await.is_ok()
}

/// A response frame (without size prefix) for `header`'s request.
pub(super) fn response<T: Encodable>(api: ApiKey, header: &RequestHeader, body: &T) -> Bytes {
    let mut out = BytesMut::new();
    let version = header.request_api_version;
    ResponseHeader::default()
        .with_correlation_id(header.correlation_id)
        .encode(&mut out, api.response_header_version(version))
        .expect("encode response header");
    body.encode(&mut out, version)
        .expect("encode response body");
    out.freeze()
}

/// The broker's ApiVersions answer with SaslHandshake (0..=1) and SaslAuthenticate (0..=2)
/// listed (they are what the front speaks); unchanged when it cannot be decoded.
pub(super) fn with_sasl_apis(frame: Bytes, version: i16) -> Bytes {
    let mut body = frame.clone();
    if body.remaining() < 4 {
        return frame;
    }
    let correlation_id = body.get_i32();
    let Ok(mut resp) = ApiVersionsResponse::decode(&mut body, version) else {
        return frame;
    };
    if resp.error_code != 0 {
        return frame;
    }
    resp.api_keys.retain(|k| {
        k.api_key != ApiKey::SaslHandshake as i16 && k.api_key != ApiKey::SaslAuthenticate as i16
    });
    resp.api_keys.push(
        ApiVersion::default()
            .with_api_key(ApiKey::SaslHandshake as i16)
            .with_min_version(0)
            .with_max_version(1),
    );
    resp.api_keys.push(
        ApiVersion::default()
            .with_api_key(ApiKey::SaslAuthenticate as i16)
            .with_min_version(0)
            .with_max_version(2),
    );
    let mut out = BytesMut::new();
    out.put_i32(correlation_id);
    if resp.encode(&mut out, version).is_err() {
        return frame;
    }
    out.freeze()
}

/// The token and the extensions of an OAUTHBEARER client first message (RFC 7628 §3.1:
/// `n,[a=authzid],` then `%x01`-ended key=value pairs, then `%x01`), in any order.
pub(super) fn parse_oauthbearer(text: &str) -> Option<(String, Vec<(String, String)>)> {
    let rest = text.strip_prefix("n,")?;
    let (_authzid, rest) = rest.split_once(',')?;
    let body = rest.strip_prefix('\u{1}')?.strip_suffix("\u{1}\u{1}")?;
    let mut token = None;
    let mut extensions = Vec::new();
    for pair in body.split('\u{1}') {
        let (key, value) = pair.split_once('=')?;
        if key == "auth" {
            token = Some(value.strip_prefix("Bearer ")?.to_owned());
        } else {
            extensions.push((key.to_owned(), value.to_owned()));
        }
    }
    Some((token?, extensions))
}
