//! ListGroups response body, versions 0..=5 (flexible from 3).
//!
//! v5 (KIP-848) names each group's type: `classic`, `consumer` (KIP-848), `share` (KIP-932)
//! or `streams` (KIP-1071), as Apache Kafka's `Group.GroupType` writes them. Streams groups
//! are found here and their committed offsets read with OffsetFetch like any group's; they
//! are not described, because kafka-protocol 0.18 has no StreamsGroupDescribe (API 89).

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "ListGroups";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListGroupsResponse {
    pub error_code: i16,
    pub groups: Vec<ListedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    /// `group_state`, present from v4 (`None` below).
    pub state: Option<String>,
    /// `group_type`, present from v5 (`None` below): `classic`, `consumer`, `share`,
    /// `streams`, or a type newer than tidemark.
    pub group_type: Option<String>,
}

impl ListGroupsResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 5;

    /// Decodes the body of a ListGroups response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 3;
        let mut r = Reader::for_api(buf, API, version);
        if version >= 1 {
            r.i32("throttle_time_ms")?;
        }
        let error_code = r.i16("error_code")?;
        let groups = r.array("groups", flex, |r| {
            let group_id = r.string_v("group_id", flex)?;
            let protocol_type = r.string_v("protocol_type", flex)?;
            let state = if version >= 4 {
                Some(r.string_v("group_state", flex)?)
            } else {
                None
            };
            let group_type = if version >= 5 {
                Some(r.string_v("group_type", flex)?)
            } else {
                None
            };
            r.tagged_fields(flex)?;
            Ok(ListedGroup {
                group_id,
                protocol_type,
                state,
                group_type,
            })
        })?;
        r.tagged_fields(flex)?;
        Ok(Self { error_code, groups })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::list_groups_response as kp;
    use kafka_protocol::messages::GroupId;

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    fn case(v: i16) -> (kp::ListGroupsResponse, ListGroupsResponse) {
        let groups: Vec<_> = (0..3)
            .map(|i| ListedGroup {
                group_id: format!("group-{i}"),
                protocol_type: if i == 2 {
                    String::new()
                } else {
                    "consumer".into()
                },
                state: (v >= 4).then(|| ["Stable", "Empty", "Dead"][i].to_owned()),
                group_type: (v >= 5).then(|| ["classic", "consumer", "share"][i].to_owned()),
            })
            .collect();
        let kgroups = groups.iter().map(|g| {
            kp::ListedGroup::default()
                .with_group_id(GroupId(s(&g.group_id)))
                .with_protocol_type(s(&g.protocol_type))
                .with_group_state(s(g.state.as_deref().unwrap_or_default()))
                .with_group_type(s(g.group_type.as_deref().unwrap_or("classic")))
                .with_unknown_tagged_fields(unknown_tags())
        });
        let km = kp::ListGroupsResponse::default()
            .with_throttle_time_ms(3)
            .with_error_code(16)
            .with_groups(kgroups.collect())
            .with_unknown_tagged_fields(unknown_tags());
        (
            km,
            ListGroupsResponse {
                error_code: 16,
                groups,
            },
        )
    }

    #[test]
    fn every_version_round_trips() {
        for v in 0..=5 {
            let (km, want) = case(v);
            let got = decode_all(&enc(&km, v), |b| ListGroupsResponse::decode(b, v));
            assert_eq!(got, want, "v{v}");
        }
    }

    #[test]
    fn hostile_counts_and_versions() {
        let b = Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1]);
        assert_count_err(ListGroupsResponse::decode(b, 0), "groups");
        let b = Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        assert_count_err(ListGroupsResponse::decode(b, 3), "groups");
        assert_bad_version(ListGroupsResponse::decode, -1, "0..=5");
        assert_bad_version(ListGroupsResponse::decode, 6, "0..=5");
    }
}
