//! Sans-io framing: request encoding, frame splitting with a size cap, response headers.
//!
//! Nothing here touches a socket or a clock, so every function is unit-tested on bytes.
//! Requests are encoded with `kafka-protocol`; response bodies are decoded by
//! [`crate::kafka::wire`] (bounded decoders), this module only strips the header.

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

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::wire::primitives::Uvarint;

/// Default cap on a response frame: larger frames are refused before any allocation.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// A frame announced a size outside `0..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame announces {size} bytes, outside the allowed 0..={max}")]
pub struct FrameSizeError {
    pub size: i64,
    pub max: usize,
}

/// What the first four bytes a "broker" sent say about the protocol it speaks, when that is
/// plainly not Kafka: read as a frame size they announce an absurd length, and saying only
/// that sends an operator looking in the wrong place.
pub fn foreign_protocol(prefix: [u8; 4]) -> Option<&'static str> {
    match prefix {
        [b'H', b'T', b'T', b'P'] => Some(
            "the bytes are an HTTP response: this port is an HTTP server (a REST proxy, a UI, \
             a metrics endpoint?), not a Kafka listener",
        ),
        // A TLS record header: content type (alert 21, handshake 22), then version 3.x.
        [0x15 | 0x16, 0x03, 0x00..=0x04, _] => Some(
            "the bytes are a TLS record: this listener expects TLS, set security.protocol to \
             SSL (or SASL_SSL)",
        ),
        _ => None,
    }
}

/// A response header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed response header: {0}")]
pub struct HeaderError(pub &'static str);

/// Encode one request frame (size prefix, header, body) and append it to `out`.
///
/// The header version follows from `api` and `version` as the protocol defines it.
pub fn encode_request<T: Encodable>(
    out: &mut BytesMut,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> Result<(), String> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let header_version = api.request_header_version(version);
    let len = header
        .compute_size(header_version)
        .and_then(|h| body.compute_size(version).map(|b| h.saturating_add(b)))
        .map_err(|e| e.to_string())?;
    let size = i32::try_from(len).map_err(|_| format!("request of {len} bytes is too large"))?;
    let start = out.len();
    // `len` fits an i32, so adding the size prefix cannot saturate.
    let total = len.saturating_add(4);
    out.reserve(total);
    out.put_i32(size);
    header
        .encode(out, header_version)
        .and_then(|()| body.encode(out, version))
        .map_err(|e| {
            out.truncate(start);
            e.to_string()
        })?;
    debug_assert_eq!(out.len().saturating_sub(start), total);
    Ok(())
}

/// Split one complete frame (without its 4-byte size prefix) off the front of `buf`.
///
/// Returns `Ok(None)` while the frame is incomplete. A size outside `0..=max` is an error
/// reported as soon as the 4 size bytes are in, before anything is reserved for the body.
pub fn take_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameSizeError> {
    let Some(&[a, b, c, d]) = buf.get(..4) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([a, b, c, d]);
    let len = match usize::try_from(size) {
        Ok(len) if len <= max => len,
        _ => {
            return Err(FrameSizeError {
                size: i64::from(size),
                max,
            })
        }
    };
    // `len` came from an i32, so adding the size prefix cannot saturate.
    let total = len.saturating_add(4);
    if buf.len() < total {
        // Reserve for the rest of this frame only: bounded by `max` above.
        buf.reserve(total.saturating_sub(buf.len()));
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// The correlation id at the start of a response frame.
pub fn correlation_id(frame: &[u8]) -> Result<i32, HeaderError> {
    match frame.get(..4) {
        Some(&[a, b, c, d]) => Ok(i32::from_be_bytes([a, b, c, d])),
        _ => Err(HeaderError("frame shorter than a correlation id")),
    }
}

/// Strip the response header (v0: correlation id; v1: plus tagged fields) and return the body.
pub fn response_body(mut frame: Bytes, api: ApiKey, version: i16) -> Result<Bytes, HeaderError> {
    if frame.len() < 4 {
        return Err(HeaderError("frame shorter than a correlation id"));
    }
    frame.advance(4);
    if api.response_header_version(version) >= 1 {
        let count = read_uvarint(&mut frame)?;
        for _ in 0..count {
            let _tag = read_uvarint(&mut frame)?;
            let size = read_uvarint(&mut frame)? as usize;
            if frame.len() < size {
                return Err(HeaderError("tagged field runs past the end of the frame"));
            }
            frame.advance(size);
        }
    }
    Ok(frame)
}

fn read_uvarint(buf: &mut Bytes) -> Result<u32, HeaderError> {
    Uvarint::read(
        || {
            buf.try_get_u8()
                .map_err(|_| HeaderError("truncated varint in header tagged fields"))
        },
        || HeaderError("varint longer than 5 bytes or past u32 in header tagged fields"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_protocols_are_recognized_by_their_first_bytes() {
        assert!(foreign_protocol(*b"HTTP").is_some_and(|h| h.contains("HTTP server")));
        // A TLS alert (what a TLS listener answers plaintext with) and a handshake record.
        assert!(foreign_protocol([0x15, 0x03, 0x03, 0x00]).is_some_and(|h| h.contains("SSL")));
        assert!(foreign_protocol([0x16, 0x03, 0x01, 0x02]).is_some_and(|h| h.contains("SSL")));
        // Kafka frame sizes, large or small, are not mistaken for either.
        for size in [0_i32, 4, 1 << 20, 100 << 20, i32::MAX] {
            assert_eq!(foreign_protocol(size.to_be_bytes()), None, "{size}");
        }
    }
    use kafka_protocol::messages::{ApiVersionsRequest, ListGroupsRequest};

    #[test]
    fn encodes_api_versions_v3_exactly() {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("t"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        let mut out = BytesMut::new();
        encode_request(&mut out, ApiKey::ApiVersions, 3, 7, "c", &req).unwrap();
        let expected: &[u8] = &[
            0, 0, 0, 17, // size
            0, 18, 0, 3, 0, 0, 0, 7, // api key 18, v3, correlation 7
            0, 1, b'c', // client id (nullable string, never compact)
            0,    // header tagged fields
            2, b't', 2, b'1', // compact strings
            0,    // body tagged fields
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn frames_split_and_wait_for_more() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1, 2][..]);
        assert_eq!(take_frame(&mut buf, 10).unwrap(), None);
        buf.extend_from_slice(&[3, 0, 0, 0, 1, 9]);
        assert_eq!(take_frame(&mut buf, 10).unwrap().unwrap(), &[1u8, 2, 3][..]);
        assert_eq!(take_frame(&mut buf, 10).unwrap().unwrap(), &[9u8][..]);
        assert!(buf.is_empty());
        assert_eq!(take_frame(&mut buf, 10).unwrap(), None);
    }

    #[test]
    fn oversized_and_negative_frames_are_refused_before_allocation() {
        let mut buf = BytesMut::from(&[0x7fu8, 0xff, 0xff, 0xff][..]);
        let err = take_frame(&mut buf, 100).unwrap_err();
        assert_eq!(
            err,
            FrameSizeError {
                size: i32::MAX as i64,
                max: 100
            }
        );
        assert!(
            buf.capacity() < 1024,
            "nothing reserved for a refused frame"
        );
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xfe][..]);
        assert_eq!(take_frame(&mut buf, 100).unwrap_err().size, -2);
    }

    #[test]
    fn strips_v0_and_v1_headers() {
        let frame = Bytes::from_static(&[0, 0, 0, 9, 0xAA]);
        assert_eq!(correlation_id(&frame).unwrap(), 9);
        // ListGroups v0 → header v0.
        let body = response_body(frame, ApiKey::ListGroups, 0).unwrap();
        assert_eq!(&body[..], &[0xAA]);
        // ListGroups v3 → header v1 with one tagged field (tag 1, 2 bytes).
        let frame = Bytes::from_static(&[0, 0, 0, 9, 1, 1, 2, 7, 7, 0xBB]);
        let body = response_body(frame, ApiKey::ListGroups, 3).unwrap();
        assert_eq!(&body[..], &[0xBB]);
        // ApiVersions keeps header v0 even when flexible.
        let frame = Bytes::from_static(&[0, 0, 0, 9, 0xCC]);
        let body = response_body(frame, ApiKey::ApiVersions, 3).unwrap();
        assert_eq!(&body[..], &[0xCC]);
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert!(correlation_id(&[0, 1]).is_err());
        assert!(response_body(Bytes::from_static(&[0, 0]), ApiKey::ListGroups, 0).is_err());
        let frame = Bytes::from_static(&[0, 0, 0, 9, 1, 1, 200]);
        assert!(response_body(frame, ApiKey::ListGroups, 3).is_err());
        let frame = Bytes::from_static(&[0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(response_body(frame, ApiKey::ListGroups, 3).is_err());
    }

    #[test]
    fn header_varints_are_checked_at_their_boundaries() {
        let strip = |header: &[u8]| {
            let mut frame = vec![0, 0, 0, 9];
            frame.extend_from_slice(header);
            frame.push(0xEE);
            response_body(Bytes::from(frame), ApiKey::ListGroups, 3)
        };
        // One tagged field whose tag is u32::MAX (5 bytes, the largest valid), size 0.
        let body = strip(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]).unwrap();
        assert_eq!(&body[..], &[0xEE]);
        // A tag of 2^28 (the first value needing 5 bytes), size 1 (one byte skipped).
        let body = strip(&[1, 0x80, 0x80, 0x80, 0x80, 0x01, 1, 0xAB]).unwrap();
        assert_eq!(&body[..], &[0xEE]);
        // Past u32 in the fifth byte: refused, not wrapped to a small count.
        let err = strip(&[0xff, 0xff, 0xff, 0xff, 0x10]).unwrap_err();
        assert!(err.0.contains("past u32"), "{err}");
        // 0x80 0x80 0x80 0x80 0x10 would read as count 0 if the top bits were dropped.
        let err = strip(&[0x80, 0x80, 0x80, 0x80, 0x10]).unwrap_err();
        assert!(err.0.contains("past u32"), "{err}");
        let err = strip(&[0x80, 0x80]).unwrap_err();
        assert!(err.0.contains("truncated"), "{err}");
    }

    #[test]
    fn request_encoding_uses_header_v1_for_old_versions() {
        let mut out = BytesMut::new();
        encode_request(
            &mut out,
            ApiKey::ListGroups,
            0,
            1,
            "x",
            &ListGroupsRequest::default(),
        )
        .unwrap();
        // size 11 = header (2+2+4+2+1) + empty body
        assert_eq!(
            &out[..],
            &[0, 0, 0, 11, 0, 16, 0, 0, 0, 0, 0, 1, 0, 1, b'x']
        );
    }
}
