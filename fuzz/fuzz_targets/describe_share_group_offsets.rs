//! Fuzzes `tidemark::kafka::wire::describe_share_group_offsets::DescribeShareGroupOffsetsResponse::decode` on arbitrary response bodies.
//!
//! Input: `[version selector: u8][body...]`. The body is decoded first at
//! `MIN_VERSION + selector % (MAX_VERSION - MIN_VERSION + 1)`, then at every other supported
//! version (the decoders are bounded and cheap, so this costs little and widens coverage).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidemark::kafka::wire::describe_share_group_offsets::DescribeShareGroupOffsetsResponse as Response;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (min, max) = (Response::MIN_VERSION, Response::MAX_VERSION);
    let first = min + i16::from(selector) % (max - min + 1);
    let body = Bytes::copy_from_slice(rest);
    let r = Response::decode(body.clone(), first);
    let _ = r.is_ok();
    for version in (min..=max).filter(|v| *v != first) {
        let r = Response::decode(body.clone(), version);
        let _ = r.is_ok();
    }
});
