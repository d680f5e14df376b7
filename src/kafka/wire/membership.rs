//! JoinGroup (v0..=9), SyncGroup (v0..=5), Heartbeat (v0..=4) and LeaveGroup (v0..=5)
//! response bodies: what a member of tidemark's coordination group reads (see `crate::ha`).

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinGroupResponse {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata; empty unless this member is the leader.
    pub members: Vec<JoinGroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinGroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

impl JoinGroupResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 9;

    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        const API: &str = "JoinGroup";
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 6;
        let mut r = Reader::for_api(buf, API, version);
        if version >= 2 {
            r.i32("throttle_time_ms")?;
        }
        let error_code = r.i16("error_code")?;
        let generation_id = r.i32("generation_id")?;
        let protocol_type = if version >= 7 {
            r.nullable_string_v("protocol_type", flex)?
        } else {
            None
        };
        let protocol_name = if version >= 7 {
            r.nullable_string_v("protocol_name", flex)?
        } else {
            Some(r.string_v("protocol_name", flex)?)
        };
        let leader = r.string_v("leader", flex)?;
        if version >= 9 {
            r.bool("skip_assignment")?;
        }
        let member_id = r.string_v("member_id", flex)?;
        let members = r.array("members", flex, |r| {
            let member_id = r.string_v("member_id", flex)?;
            let group_instance_id = if version >= 5 {
                r.nullable_string_v("group_instance_id", flex)?
            } else {
                None
            };
            let metadata = r.bytes_v("metadata", flex)?;
            r.tagged_fields(flex)?;
            Ok(JoinGroupMember {
                member_id,
                group_instance_id,
                metadata,
            })
        })?;
        r.tagged_fields(flex)?;
        Ok(Self {
            error_code,
            generation_id,
            protocol_type,
            protocol_name,
            leader,
            member_id,
            members,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncGroupResponse {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 5;

    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        const API: &str = "SyncGroup";
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 4;
        let mut r = Reader::for_api(buf, API, version);
        if version >= 1 {
            r.i32("throttle_time_ms")?;
        }
        let error_code = r.i16("error_code")?;
        let protocol_type = if version >= 5 {
            let t = r.nullable_string_v("protocol_type", flex)?;
            r.nullable_string_v("protocol_name", flex)?;
            t
        } else {
            None
        };
        let assignment = r.bytes_v("assignment", flex)?;
        r.tagged_fields(flex)?;
        Ok(Self {
            error_code,
            protocol_type,
            assignment,
        })
    }
}

/// Heartbeat and LeaveGroup: only the (top-level) error code matters to tidemark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeartbeatResponse {
    pub error_code: i16,
}

impl HeartbeatResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 4;

    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        const API: &str = "Heartbeat";
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 4;
        let mut r = Reader::for_api(buf, API, version);
        if version >= 1 {
            r.i32("throttle_time_ms")?;
        }
        let error_code = r.i16("error_code")?;
        r.tagged_fields(flex)?;
        Ok(Self { error_code })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaveGroupResponse {
    /// The top-level error, else the first member's (v3+ answers per member).
    pub error_code: i16,
}

impl LeaveGroupResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 5;

    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        const API: &str = "LeaveGroup";
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 4;
        let mut r = Reader::for_api(buf, API, version);
        if version >= 1 {
            r.i32("throttle_time_ms")?;
        }
        let mut error_code = r.i16("error_code")?;
        if version >= 3 {
            let codes = r.array("members", flex, |r| {
                r.string_v("member_id", flex)?;
                r.nullable_string_v("group_instance_id", flex)?;
                let code = r.i16("error_code")?;
                r.tagged_fields(flex)?;
                Ok(code)
            })?;
            if error_code == 0 {
                error_code = codes.into_iter().find(|c| *c != 0).unwrap_or(0);
            }
        }
        r.tagged_fields(flex)?;
        Ok(Self { error_code })
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{
        heartbeat_response as hb, join_group_response as jg, leave_group_response as lg,
        sync_group_response as sg,
    };

    use super::super::test_util::{decode_all, enc, s, unknown_tags};
    use super::*;

    #[test]
    fn join_group_every_version() {
        for v in 0..=9 {
            let member = |i: u8| {
                jg::JoinGroupResponseMember::default()
                    .with_member_id(s(&format!("m{i}")))
                    .with_group_instance_id((v >= 5 && i == 1).then(|| s("pod-1")))
                    .with_metadata(Bytes::from(vec![i; 3]))
                    .with_unknown_tagged_fields(unknown_tags())
            };
            let km = jg::JoinGroupResponse::default()
                .with_throttle_time_ms(3)
                .with_error_code(0)
                .with_generation_id(7)
                .with_protocol_type((v >= 7).then(|| s("tidemark")))
                .with_protocol_name(Some(s("tidemark-v1")))
                .with_leader(s("m0"))
                .with_member_id(s("m1"))
                .with_members(vec![member(0), member(1)])
                .with_unknown_tagged_fields(unknown_tags());
            let got = decode_all(&enc(&km, v), |b| JoinGroupResponse::decode(b, v));
            assert_eq!(got.generation_id, 7, "v{v}");
            assert_eq!(got.leader, "m0");
            assert_eq!(got.member_id, "m1");
            assert_eq!(got.protocol_name.as_deref(), Some("tidemark-v1"));
            assert_eq!(got.protocol_type.is_some(), v >= 7);
            assert_eq!(got.members.len(), 2);
            assert_eq!(got.members[1].metadata, Bytes::from(vec![1u8; 3]));
            assert_eq!(got.members[1].group_instance_id.is_some(), v >= 5);
        }
    }

    #[test]
    fn sync_heartbeat_leave_every_version() {
        for v in 0..=5 {
            let km = sg::SyncGroupResponse::default()
                .with_error_code(27)
                .with_protocol_type((v >= 5).then(|| s("tidemark")))
                .with_protocol_name((v >= 5).then(|| s("tidemark-v1")))
                .with_assignment(Bytes::from_static(b"\x00\x01abc"))
                .with_unknown_tagged_fields(unknown_tags());
            let got = decode_all(&enc(&km, v), |b| SyncGroupResponse::decode(b, v));
            assert_eq!(got.error_code, 27);
            assert_eq!(got.assignment, Bytes::from_static(b"\x00\x01abc"));
            assert_eq!(got.protocol_type.is_some(), v >= 5);
        }
        for v in 0..=4 {
            let km = hb::HeartbeatResponse::default()
                .with_error_code(22)
                .with_unknown_tagged_fields(unknown_tags());
            let got = decode_all(&enc(&km, v), |b| HeartbeatResponse::decode(b, v));
            assert_eq!(got.error_code, 22);
        }
        for v in 0..=5 {
            let members = if v >= 3 {
                vec![
                    lg::MemberResponse::default().with_member_id(s("m0")),
                    lg::MemberResponse::default()
                        .with_member_id(s("m1"))
                        .with_error_code(25),
                ]
            } else {
                vec![]
            };
            let km = lg::LeaveGroupResponse::default()
                .with_members(members)
                .with_unknown_tagged_fields(unknown_tags());
            let got = decode_all(&enc(&km, v), |b| LeaveGroupResponse::decode(b, v));
            assert_eq!(got.error_code, if v >= 3 { 25 } else { 0 }, "v{v}");
        }
    }
}
