//! Fuzzes the sans-io response framing of `tidemark::kafka::codec`: `take_frame` fed the input
//! in arbitrary chunks (as a socket would deliver it), then `correlation_id` and
//! `response_body` on every complete frame.
//!
//! Input: `[api/version selector: u8][max selector: u8][chunking seed: u8][stream bytes...]`.
//!
//! * The api/version selector picks one (ApiKey, version) pair from `APIS`, which covers both
//!   response header versions (v0, and v1 with tagged fields) and ApiVersions' special case
//!   (always header v0).
//! * The max selector picks the frame size cap: tiny caps (0..=63), 16 KiB, 1 MiB and
//!   tidemark's default (`DEFAULT_MAX_FRAME_BYTES`, 100 MiB). `take_frame` may reserve up to
//!   the cap for an announced frame (by design); 100 MiB stays under `-malloc_limit_mb=512`.
//! * The chunking seed drives a small generator of chunk lengths (1..=64 bytes, plus an
//!   occasional "everything left" chunk).
//!
//! A `FrameSizeError` ends the stream (the connection closes), as in `conn`.
#![no_main]

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use libfuzzer_sys::fuzz_target;
use tidemark::kafka::codec::{correlation_id, response_body, take_frame, DEFAULT_MAX_FRAME_BYTES};

const APIS: &[(ApiKey, i16)] = &[
    (ApiKey::ApiVersions, 0),
    (ApiKey::ApiVersions, 3),
    (ApiKey::Metadata, 1),
    (ApiKey::Metadata, 8),
    (ApiKey::Metadata, 9),
    (ApiKey::Metadata, 12),
    (ApiKey::ListGroups, 2),
    (ApiKey::ListGroups, 3),
    (ApiKey::FindCoordinator, 2),
    (ApiKey::FindCoordinator, 4),
    (ApiKey::DescribeGroups, 4),
    (ApiKey::DescribeGroups, 5),
    (ApiKey::OffsetFetch, 5),
    (ApiKey::OffsetFetch, 8),
    (ApiKey::ListOffsets, 5),
    (ApiKey::ListOffsets, 6),
    (ApiKey::Fetch, 4),
    (ApiKey::Fetch, 11),
    (ApiKey::Fetch, 12),
    (ApiKey::DescribeConfigs, 3),
    (ApiKey::DescribeConfigs, 4),
    (ApiKey::SaslHandshake, 1),
    (ApiKey::SaslAuthenticate, 1),
    (ApiKey::SaslAuthenticate, 2),
];

fuzz_target!(|data: &[u8]| {
    let [api_sel, max_sel, seed, stream @ ..] = data else {
        return;
    };
    let (api, version) = APIS[usize::from(*api_sel) % APIS.len()];
    let max = match max_sel % 4 {
        0 => usize::from(*max_sel >> 2), // 0..=63
        1 => 16 * 1024,
        2 => 1024 * 1024,
        _ => DEFAULT_MAX_FRAME_BYTES,
    };
    let mut state = u32::from(*seed) | 0x100;
    let mut buf = BytesMut::new();
    let mut rest = stream;
    let mut frames = 0usize;
    'feed: while !rest.is_empty() {
        // xorshift32: deterministic chunk lengths derived from the seed.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = if state % 16 == 0 {
            rest.len()
        } else {
            (state as usize % 64 + 1).min(rest.len())
        };
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            match take_frame(&mut buf, max) {
                Ok(Some(frame)) => {
                    frames += 1;
                    let _ = correlation_id(&frame).is_ok();
                    let body = response_body(frame, api, version);
                    let _ = body.map(|b| b.len()).is_ok();
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = e.size;
                    break 'feed;
                }
            }
        }
    }
    let _ = frames;
});
