//! DescribeGroups response body, versions 0..=5 (flexible from 5).

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "DescribeGroups";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribeGroupsResponse {
    pub groups: Vec<DescribedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribedGroup {
    pub error_code: i16,
    pub group_id: String,
    /// `group_state` on the wire.
    pub state: String,
    pub protocol_type: String,
    /// `protocol_data` on the wire: the assignor name for consumer groups.
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMember {
    pub member_id: String,
    /// Present from v4 (`None` below).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// `member_assignment` on the wire: a slice of the response buffer (zero copy).
    pub assignment: Bytes,
}

impl DescribeGroupsResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 5;

    /// Decodes the body of a DescribeGroups response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 5;
        let mut r = Reader::for_api(buf, API, version);
        if version >= 1 {
            r.i32("throttle_time_ms")?;
        }
        let groups = r.array("groups", flex, |r| {
            let error_code = r.i16("error_code")?;
            let group_id = r.string_v("group_id", flex)?;
            let state = r.string_v("group_state", flex)?;
            let protocol_type = r.string_v("protocol_type", flex)?;
            let protocol = r.string_v("protocol_data", flex)?;
            let members = r.array("members", flex, |r| decode_member(r, version))?;
            if version >= 3 {
                r.i32("authorized_operations")?;
            }
            r.tagged_fields(flex)?;
            Ok(DescribedGroup {
                error_code,
                group_id,
                state,
                protocol_type,
                protocol,
                members,
            })
        })?;
        r.tagged_fields(flex)?;
        Ok(Self { groups })
    }
}

fn decode_member(r: &mut Reader, version: i16) -> Result<GroupMember, DecodeError> {
    let flex = version >= 5;
    let member_id = r.string_v("member_id", flex)?;
    let group_instance_id = if version >= 4 {
        r.nullable_string_v("group_instance_id", flex)?
    } else {
        None
    };
    let client_id = r.string_v("client_id", flex)?;
    let client_host = r.string_v("client_host", flex)?;
    r.bytes_v("member_metadata", flex)?;
    let assignment = r.bytes_v("member_assignment", flex)?;
    r.tagged_fields(flex)?;
    Ok(GroupMember {
        member_id,
        group_instance_id,
        client_id,
        client_host,
        assignment,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::describe_groups_response as kp;
    use kafka_protocol::messages::GroupId;

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    fn member(v: i16, g: usize, m: usize) -> GroupMember {
        GroupMember {
            member_id: format!("m-{g}-{m}"),
            group_instance_id: (v >= 4 && m == 0).then(|| format!("static-{g}")),
            client_id: format!("client-{m}"),
            client_host: format!("/10.0.0.{m}"),
            assignment: Bytes::from(vec![0, 3, m as u8, g as u8]),
        }
    }

    fn case(v: i16) -> (kp::DescribeGroupsResponse, DescribeGroupsResponse) {
        let groups: Vec<_> = (0..2)
            .map(|g| DescribedGroup {
                error_code: g as i16,
                group_id: format!("group-{g}"),
                state: "Stable".into(),
                protocol_type: "consumer".into(),
                protocol: "range".into(),
                members: (0..3).map(|m| member(v, g, m)).collect(),
            })
            .collect();
        let kgroups = groups.iter().map(|g| {
            let kmembers = g.members.iter().map(|m| {
                kp::DescribedGroupMember::default()
                    .with_member_id(s(&m.member_id))
                    .with_group_instance_id(m.group_instance_id.as_deref().map(s))
                    .with_client_id(s(&m.client_id))
                    .with_client_host(s(&m.client_host))
                    .with_member_metadata(Bytes::from_static(b"metadata"))
                    .with_member_assignment(m.assignment.clone())
                    .with_unknown_tagged_fields(unknown_tags())
            });
            let kg = kp::DescribedGroup::default()
                .with_error_code(g.error_code)
                .with_group_id(GroupId(s(&g.group_id)))
                .with_group_state(s(&g.state))
                .with_protocol_type(s(&g.protocol_type))
                .with_protocol_data(s(&g.protocol))
                .with_members(kmembers.collect())
                .with_unknown_tagged_fields(unknown_tags());
            if v >= 3 {
                kg.with_authorized_operations(0x0f0f)
            } else {
                kg
            }
        });
        let km = kp::DescribeGroupsResponse::default()
            .with_throttle_time_ms(9)
            .with_groups(kgroups.collect())
            .with_unknown_tagged_fields(unknown_tags());
        (km, DescribeGroupsResponse { groups })
    }

    #[test]
    fn every_version_round_trips() {
        for v in 0..=5 {
            let (km, want) = case(v);
            let got = decode_all(&enc(&km, v), |b| DescribeGroupsResponse::decode(b, v));
            assert_eq!(got, want, "v{v}");
        }
    }

    #[test]
    fn hostile_counts_and_versions() {
        // v0: one group with empty strings, then members count i32::MAX.
        let b = Bytes::from_static(&[
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 9,
        ]);
        assert_count_err(DescribeGroupsResponse::decode(b, 0), "groups[0].members");
        let b = Bytes::from_static(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        assert_count_err(DescribeGroupsResponse::decode(b, 5), "groups");
        assert_bad_version(DescribeGroupsResponse::decode, -1, "0..=5");
        assert_bad_version(DescribeGroupsResponse::decode, 6, "0..=5");
    }
}
