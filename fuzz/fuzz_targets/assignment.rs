//! Fuzzes `tidemark::kafka::wire::assignment::ConsumerAssignment::decode`: the
//! ConsumerProtocol assignment bytes inside a DescribeGroups member (written by whatever client
//! runs in the group, so fully untrusted).
//!
//! Input: the assignment bytes as they are (they carry their own version, an i16, so there is
//! no version selector).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidemark::kafka::wire::assignment::ConsumerAssignment;

fuzz_target!(|data: &[u8]| {
    let r = ConsumerAssignment::decode(Bytes::copy_from_slice(data));
    let _ = r.is_ok();
});
