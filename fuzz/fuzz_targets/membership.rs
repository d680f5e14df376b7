//! Fuzzes the coordination group's decoders (`[exporter.leadership]`) on arbitrary bytes:
//! `tidemark::kafka::wire::membership`'s JoinGroup, SyncGroup, Heartbeat and LeaveGroup
//! responses at every version, and `tidemark::ha::assign`'s member metadata and assignment.
//!
//! Input: `[body...]`, decoded by each of them in turn (all bounded and cheap).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidemark::ha::assign::{decode_metadata, Assignment};
use tidemark::kafka::wire::membership::{
    HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, SyncGroupResponse,
};

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    for v in JoinGroupResponse::MIN_VERSION..=JoinGroupResponse::MAX_VERSION {
        let _ = JoinGroupResponse::decode(body.clone(), v).is_ok();
    }
    for v in SyncGroupResponse::MIN_VERSION..=SyncGroupResponse::MAX_VERSION {
        let _ = SyncGroupResponse::decode(body.clone(), v).is_ok();
    }
    for v in HeartbeatResponse::MIN_VERSION..=HeartbeatResponse::MAX_VERSION {
        let _ = HeartbeatResponse::decode(body.clone(), v).is_ok();
    }
    for v in LeaveGroupResponse::MIN_VERSION..=LeaveGroupResponse::MAX_VERSION {
        let _ = LeaveGroupResponse::decode(body.clone(), v).is_ok();
    }
    let _ = decode_metadata("m", body.clone());
    if let Some(a) = Assignment::decode(body) {
        // What decodes re-encodes to bytes that decode to the same assignment.
        assert_eq!(Assignment::decode(a.encode()), Some(a));
    }
});
