//! Bounded, panic-free decoders for the Kafka responses tidemark reads.
//!
//! `kafka-protocol` 0.18 still encodes our requests, but its decoders pre-allocate arrays with
//! the count read off the wire, so a few hostile bytes abort the process. Every decoder here
//! works on the response *body* (header already removed), checks each length and count
//! against the bytes left before allocating, skips the fields tidemark does not use (tagged
//! fields included), and reports errors as [`DecodeError`] naming the API, version, field path
//! and byte position. Layouts mirror the Kafka message JSON schemas field by field.

// Network bytes: the lint wall of `kafka::records` (no panics, no unchecked indexing or
// arithmetic), for every decoder below; tests may unwrap.
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

pub mod api_versions;
pub mod assignment;
pub mod consumer_group_describe;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_share_group_offsets;
pub mod fetch;
pub mod find_coordinator;
pub mod list_groups;
pub mod list_offsets;
pub mod membership;
pub mod metadata;
pub mod offset_fetch;
pub(crate) mod primitives;
pub mod reader;
pub mod sasl;
pub mod share_group_describe;
pub mod stream;

pub use reader::Reader;

/// Why a response could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The caller asked for a version this decoder does not implement.
    #[error("{api} v{version}: unsupported version, this decoder supports versions {min}..={max}")]
    UnsupportedVersion {
        api: &'static str,
        version: i16,
        min: i16,
        max: i16,
    },
    /// The bytes do not match the schema of the version.
    #[error("{api} v{version}: field {field} at byte {position}: {problem}")]
    Malformed {
        api: &'static str,
        version: i16,
        /// Field path, e.g. `topics[3].partitions[0].high_watermark`.
        field: String,
        /// Offset from the start of the body where the field starts.
        position: usize,
        problem: Problem,
    },
}

/// What was wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("need {needed} bytes, {remaining} left")]
    Truncated { needed: usize, remaining: usize },
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("null, but the field is not nullable in this version")]
    UnexpectedNull,
    #[error("array count {count} is larger than the {remaining} bytes left")]
    CountTooLarge { count: u64, remaining: usize },
    #[error("tagged field count {count} is larger than the {remaining} bytes left")]
    TagCountTooLarge { count: u64, remaining: usize },
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    #[error("unsigned varint is longer than 5 bytes or exceeds u32")]
    VarintOverflow,
}

/// Returns an error unless `min <= version <= max`.
pub fn check_version(
    api: &'static str,
    version: i16,
    min: i16,
    max: i16,
) -> Result<(), DecodeError> {
    if (min..=max).contains(&version) {
        return Ok(());
    }
    Err(DecodeError::UnsupportedVersion {
        api,
        version,
        min,
        max,
    })
}

/// Helpers shared by the decoders' tests: encode with kafka-protocol, check every prefix.
#[cfg(test)]
pub(crate) mod test_util {
    use std::collections::BTreeMap;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::DecodeError;

    /// Encodes `msg` at `version` with kafka-protocol.
    pub fn enc<M: Encodable>(msg: &M, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        match msg.encode(&mut buf, version) {
            Ok(()) => buf.freeze(),
            Err(e) => panic!("kafka-protocol cannot encode v{version}: {e}"),
        }
    }

    pub fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    /// Unknown tagged fields to sprinkle over flexible versions (ignored by non-flexible ones).
    pub fn unknown_tags() -> BTreeMap<i32, Bytes> {
        BTreeMap::from([
            (7, Bytes::from_static(b"x")),
            (90, Bytes::from_static(b"tidemark")),
        ])
    }

    /// Decodes `full`; asserts every strict prefix is an `Err`, and that overwriting any one
    /// byte with a few nasty values never panics (the result may be `Ok` or `Err`).
    pub fn decode_all<T>(full: &Bytes, decode: impl Fn(Bytes) -> Result<T, DecodeError>) -> T {
        for len in 0..full.len() {
            assert!(
                decode(full.slice(..len)).is_err(),
                "prefix of {len}/{} bytes decoded",
                full.len()
            );
        }
        for i in 0..full.len() {
            for nasty in [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff] {
                let mut m = full.to_vec();
                if let Some(b) = m.get_mut(i) {
                    *b = nasty;
                }
                let _ = decode(Bytes::from(m));
            }
        }
        match decode(full.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// Asserts `decode` rejects `version` with an error naming `range` (e.g. `"1..=12"`).
    pub fn assert_bad_version<T: std::fmt::Debug>(
        decode: impl Fn(Bytes, i16) -> Result<T, DecodeError>,
        version: i16,
        range: &str,
    ) {
        let err = decode(Bytes::new(), version).expect_err("version accepted");
        let text = err.to_string();
        assert!(text.contains(range), "{text}");
        assert!(
            matches!(err, DecodeError::UnsupportedVersion { .. }),
            "{text}"
        );
    }

    /// Asserts decoding `bytes` fails with an array-count error naming `field`.
    pub fn assert_count_err<T: std::fmt::Debug>(res: Result<T, DecodeError>, field: &str) {
        let text = res.expect_err("hostile count accepted").to_string();
        assert!(text.contains("count") && text.contains(field), "{text}");
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// Random short inputs through every decoder at every version: errors are fine, panics
    /// and aborts are not.
    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let len = usize::try_from(next() % 48).unwrap_or(0);
            // Bias towards 0x00 / 0xff / small values so lengths and counts hit edge cases.
            let raw: Vec<u8> = (0..len)
                .map(|_| match next() % 4 {
                    0 => 0,
                    1 => 0xff,
                    2 => (next() % 4) as u8,
                    _ => next() as u8,
                })
                .collect();
            let b = Bytes::from(raw);
            for v in -1..=13 {
                let _ = api_versions::ApiVersionsResponse::decode(b.clone(), v);
                let _ = metadata::MetadataResponse::decode(b.clone(), v);
                let _ = list_groups::ListGroupsResponse::decode(b.clone(), v);
                let _ = find_coordinator::FindCoordinatorResponse::decode(b.clone(), v);
                let _ = describe_groups::DescribeGroupsResponse::decode(b.clone(), v);
                let _ = offset_fetch::OffsetFetchResponse::decode(b.clone(), v);
                let _ = list_offsets::ListOffsetsResponse::decode(b.clone(), v);
                let _ = fetch::FetchResponse::decode(b.clone(), v);
                let _ = describe_configs::DescribeConfigsResponse::decode(b.clone(), v);
                let _ = sasl::SaslHandshakeResponse::decode(b.clone(), v);
                let _ = sasl::SaslAuthenticateResponse::decode(b.clone(), v);
                let _ =
                    consumer_group_describe::ConsumerGroupDescribeResponse::decode(b.clone(), v);
                let _ = share_group_describe::ShareGroupDescribeResponse::decode(b.clone(), v);
                let _ = describe_share_group_offsets::DescribeShareGroupOffsetsResponse::decode(
                    b.clone(),
                    v,
                );
            }
            let _ = assignment::ConsumerAssignment::decode(b);
        }
    }
}
