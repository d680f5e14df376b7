//! ShareGroupDescribe (API 77, KIP-932) response body, version 1 (flexible).
//!
//! v0 was the early-access version of Kafka 4.0 and was removed in 4.1; v1 is the first
//! stable one and the only one kafka-protocol 0.18 knows. Kept: state and members with
//! client id, host, epoch and assignment; group epochs, assignor, rack ids, subscriptions and
//! authorized operations are read and dropped. Share-group lag comes from
//! DescribeShareGroupOffsets, not from here.

use bytes::Bytes;

use super::assignment::AssignedTopic;
use super::consumer_group_describe::decode_assignment;
use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "ShareGroupDescribe";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareGroupDescribeResponse {
    pub groups: Vec<DescribedShareGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribedShareGroup {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub group_id: String,
    /// `group_state`: Empty, Stable, Dead, …
    pub state: String,
    pub members: Vec<ShareGroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareGroupMember {
    pub member_id: String,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    /// The share partitions assigned to the member, by topic name.
    pub assignment: Vec<AssignedTopic>,
}

impl ShareGroupDescribeResponse {
    pub const MIN_VERSION: i16 = 1;
    pub const MAX_VERSION: i16 = 1;

    /// Decodes the body of a ShareGroupDescribe response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let mut r = Reader::for_api(buf, API, version);
        r.i32("throttle_time_ms")?;
        let groups = r.array("groups", true, |r| {
            let error_code = r.i16("error_code")?;
            let error_message = r.compact_nullable_string("error_message")?;
            let group_id = r.compact_string("group_id")?;
            let state = r.compact_string("group_state")?;
            r.i32("group_epoch")?;
            r.i32("assignment_epoch")?;
            r.compact_string("assignor_name")?;
            let members = r.array("members", true, decode_member)?;
            r.i32("authorized_operations")?;
            r.skip_tagged_fields()?;
            Ok(DescribedShareGroup {
                error_code,
                error_message,
                group_id,
                state,
                members,
            })
        })?;
        r.skip_tagged_fields()?;
        Ok(Self { groups })
    }
}

fn decode_member(r: &mut Reader) -> Result<ShareGroupMember, DecodeError> {
    let member_id = r.compact_string("member_id")?;
    r.compact_nullable_string("rack_id")?;
    let member_epoch = r.i32("member_epoch")?;
    let client_id = r.compact_string("client_id")?;
    let client_host = r.compact_string("client_host")?;
    r.array("subscribed_topic_names", true, |r| {
        r.compact_string("name").map(drop)
    })?;
    let assignment = decode_assignment(r, "assignment.topic_partitions")?;
    r.skip_tagged_fields()?;
    Ok(ShareGroupMember {
        member_id,
        member_epoch,
        client_id,
        client_host,
        assignment,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::share_group_describe_response as kp;
    use kafka_protocol::messages::{GroupId, TopicName};

    use super::super::consumer_group_describe::test_support::{topic_with_id, TOPIC_ID};
    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    fn member(g: usize, m: usize) -> (kp::Member, ShareGroupMember) {
        let want = ShareGroupMember {
            member_id: format!("share-m-{g}-{m}"),
            member_epoch: 3 * m as i32 + g as i32,
            client_id: format!("share-client-{m}"),
            client_host: format!("/10.1.{g}.{m}"),
            assignment: (0..m)
                .map(|t| AssignedTopic {
                    topic: format!("queue-{t}"),
                    partitions: (0..=t as i32).rev().collect(),
                })
                .collect(),
        };
        let kt = want.assignment.iter().map(|t| {
            topic_with_id::<kp::TopicPartitions>(1)
                .with_topic_name(TopicName(s(&t.topic)))
                .with_partitions(t.partitions.clone())
                .with_unknown_tagged_fields(unknown_tags())
        });
        let km = kp::Member::default()
            .with_member_id(s(&want.member_id))
            .with_rack_id((m == 1).then(|| s("rack-b")))
            .with_member_epoch(want.member_epoch)
            .with_client_id(s(&want.client_id))
            .with_client_host(s(&want.client_host))
            .with_subscribed_topic_names(vec![TopicName(s("queue-0")), TopicName(s("queue-1"))])
            .with_assignment(
                kp::Assignment::default()
                    .with_topic_partitions(kt.collect())
                    .with_unknown_tagged_fields(unknown_tags()),
            )
            .with_unknown_tagged_fields(unknown_tags());
        (km, want)
    }

    fn case() -> (kp::ShareGroupDescribeResponse, ShareGroupDescribeResponse) {
        let (mut kgroups, mut groups) = (vec![], vec![]);
        for g in 0..3 {
            let failed = g == 1;
            let (kmembers, members): (Vec<_>, Vec<_>) = (0..if failed { 0 } else { 3 })
                .map(|m| member(g, m))
                .unzip();
            let want = DescribedShareGroup {
                error_code: if failed { 69 } else { 0 },
                error_message: failed.then(|| "Group sg-1 is not a share group.".into()),
                group_id: format!("sg-{g}"),
                state: ["Stable", "", "Empty"][g].into(),
                members,
            };
            kgroups.push(
                kp::DescribedGroup::default()
                    .with_error_code(want.error_code)
                    .with_error_message(want.error_message.as_deref().map(s))
                    .with_group_id(GroupId(s(&want.group_id)))
                    .with_group_state(s(&want.state))
                    .with_group_epoch(7)
                    .with_assignment_epoch(6)
                    .with_assignor_name(s("simple"))
                    .with_members(kmembers)
                    .with_authorized_operations(0x0f0f)
                    .with_unknown_tagged_fields(unknown_tags()),
            );
            groups.push(want);
        }
        let km = kp::ShareGroupDescribeResponse::default()
            .with_throttle_time_ms(5)
            .with_groups(kgroups)
            .with_unknown_tagged_fields(unknown_tags());
        (km, ShareGroupDescribeResponse { groups })
    }

    #[test]
    fn every_version_round_trips() {
        let (km, want) = case();
        let got = decode_all(&enc(&km, 1), |b| ShareGroupDescribeResponse::decode(b, 1));
        assert_eq!(got, want);
    }

    /// Compact count 2^31-1 (uvarint of N+1 = 2^31).
    const HUGE: [u8; 5] = [0x80, 0x80, 0x80, 0x80, 0x08];

    #[test]
    fn hostile_counts_and_versions() {
        let d = |b: Vec<u8>| ShareGroupDescribeResponse::decode(Bytes::from(b), 1);
        let mut b = vec![0, 0, 0, 0];
        b.extend(HUGE);
        b.push(9);
        assert_count_err(d(b), "groups");

        // One group with empty strings, epochs 1, then the members count.
        let group = [0, 0, 0, 0, 2, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1];
        let mut b = group.to_vec();
        b.extend(HUGE);
        b.push(9);
        assert_count_err(d(b), "groups[0].members");

        // One member: id, rack, epoch, client id, host, no subscriptions; one topic.
        let mut b = group.to_vec();
        b.extend([2, 1, 0, 0, 0, 0, 0, 1, 1, 1, 2]);
        b.extend(TOPIC_ID);
        b.push(1);
        b.extend(HUGE);
        b.extend([0, 0, 0]);
        assert_count_err(
            d(b),
            "groups[0].members[0].assignment.topic_partitions[0].partitions",
        );

        assert_bad_version(ShareGroupDescribeResponse::decode, 0, "1..=1");
        assert_bad_version(ShareGroupDescribeResponse::decode, 2, "1..=1");
    }
}
