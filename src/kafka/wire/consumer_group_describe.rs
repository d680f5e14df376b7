//! ConsumerGroupDescribe (API 69, KIP-848) response body, versions 0..=1 (flexible in all).
//!
//! Describes groups of type `consumer` (the KIP-848 protocol), which classic DescribeGroups
//! does not. v1 adds `member_type` (KIP-1099). Kept: what an exporter shows (state, members
//! with client id, host, epoch and *current* assignment); group epochs, rack ids,
//! subscriptions, target assignments and authorized operations are read and dropped.

use bytes::Bytes;

use super::assignment::AssignedTopic;
use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "ConsumerGroupDescribe";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupDescribeResponse {
    pub groups: Vec<DescribedConsumerGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribedConsumerGroup {
    /// GROUP_ID_NOT_FOUND (69) also answers a group that exists but is not a consumer group.
    pub error_code: i16,
    pub error_message: Option<String>,
    pub group_id: String,
    /// `group_state`: Empty, Assigning, Reconciling, Stable, Dead, …
    pub state: String,
    pub assignor_name: String,
    pub members: Vec<ConsumerGroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    /// The current assignment (`assignment`, not `target_assignment`), by topic name.
    pub assignment: Vec<AssignedTopic>,
    /// v1+: -1 unknown, 0 a classic member (of a group being converted), 1 a consumer member.
    /// `None` below v1.
    pub member_type: Option<i8>,
}

impl ConsumerGroupDescribeResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 1;

    /// Decodes the body of a ConsumerGroupDescribe response of `version`.
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
            let assignor_name = r.compact_string("assignor_name")?;
            let members = r.array("members", true, |r| decode_member(r, version))?;
            r.i32("authorized_operations")?;
            r.skip_tagged_fields()?;
            Ok(DescribedConsumerGroup {
                error_code,
                error_message,
                group_id,
                state,
                assignor_name,
                members,
            })
        })?;
        r.skip_tagged_fields()?;
        Ok(Self { groups })
    }
}

fn decode_member(r: &mut Reader, version: i16) -> Result<ConsumerGroupMember, DecodeError> {
    let member_id = r.compact_string("member_id")?;
    let instance_id = r.compact_nullable_string("instance_id")?;
    r.compact_nullable_string("rack_id")?;
    let member_epoch = r.i32("member_epoch")?;
    let client_id = r.compact_string("client_id")?;
    let client_host = r.compact_string("client_host")?;
    r.array("subscribed_topic_names", true, |r| {
        r.compact_string("name").map(drop)
    })?;
    r.compact_nullable_string("subscribed_topic_regex")?;
    let assignment = decode_assignment(r, "assignment.topic_partitions")?;
    decode_assignment(r, "target_assignment.topic_partitions")?;
    let member_type = if version >= 1 {
        Some(r.i8("member_type")?)
    } else {
        None
    };
    r.skip_tagged_fields()?;
    Ok(ConsumerGroupMember {
        member_id,
        instance_id,
        member_epoch,
        client_id,
        client_host,
        assignment,
        member_type,
    })
}

/// The `Assignment` common struct of the KIP-848 describe responses (ConsumerGroupDescribe
/// and ShareGroupDescribe share its layout): `topic_partitions: [{topic_id: uuid,
/// topic_name: string, partitions: [int32]}]`, flexible. `field` names the array on error
/// paths (e.g. `assignment.topic_partitions`). The topic id is dropped.
pub(super) fn decode_assignment(
    r: &mut Reader,
    field: &'static str,
) -> Result<Vec<AssignedTopic>, DecodeError> {
    let topics = r.array(field, true, |r| {
        r.uuid("topic_id")?;
        let topic = r.compact_string("topic_name")?;
        let partitions = r.array("partitions", true, |r| r.i32("partition"))?;
        r.skip_tagged_fields()?;
        Ok(AssignedTopic { topic, partitions })
    })?;
    r.skip_tagged_fields()?;
    Ok(topics)
}

/// kafka-protocol values for the tests of both KIP-848 describe decoders.
#[cfg(test)]
pub(super) mod test_support {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::Decodable;

    /// A non-nil topic id, so a decoder that skips the wrong number of bytes fails.
    pub const TOPIC_ID: [u8; 16] = [0xa7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff];

    /// A kafka-protocol `TopicPartitions` (type `T`, from either response module) whose topic
    /// id is [`TOPIC_ID`]: kafka-protocol does not re-export its Uuid type, so the value is
    /// decoded from bytes (id, empty name, empty partitions, no tags).
    pub fn topic_with_id<T: Decodable>(version: i16) -> T {
        let mut b = BytesMut::new();
        b.put_slice(&TOPIC_ID);
        b.put_slice(&[1, 1, 0]);
        match T::decode(&mut b.freeze(), version) {
            Ok(t) => t,
            Err(e) => panic!("kafka-protocol cannot decode a TopicPartitions: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::consumer_group_describe_response as kp;
    use kafka_protocol::messages::{GroupId, TopicName};

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::test_support::{topic_with_id, TOPIC_ID};
    use super::*;

    fn topics(g: usize, m: usize, target: bool) -> Vec<AssignedTopic> {
        let n = if target { 1 } else { m };
        (0..n)
            .map(|t| AssignedTopic {
                topic: format!("{}topic-{g}-{t}", if target { "target-" } else { "" }),
                partitions: (0..=t as i32).map(|p| p * 7 + m as i32).collect(),
            })
            .collect()
    }

    fn kp_assignment(v: i16, topics: &[AssignedTopic]) -> kp::Assignment {
        let kt = topics.iter().map(|t| {
            topic_with_id::<kp::TopicPartitions>(v)
                .with_topic_name(TopicName(s(&t.topic)))
                .with_partitions(t.partitions.clone())
                .with_unknown_tagged_fields(unknown_tags())
        });
        kp::Assignment::default()
            .with_topic_partitions(kt.collect())
            .with_unknown_tagged_fields(unknown_tags())
    }

    fn member(v: i16, g: usize, m: usize) -> (kp::Member, ConsumerGroupMember) {
        let want = ConsumerGroupMember {
            member_id: format!("m-{g}-{m}"),
            instance_id: (m == 1).then(|| format!("static-{g}")),
            member_epoch: 10 * g as i32 + m as i32 - 1,
            client_id: format!("client-{m}"),
            client_host: format!("/10.0.{g}.{m}"),
            assignment: topics(g, m, false),
            member_type: (v >= 1).then_some(m as i8 - 1),
        };
        let km = kp::Member::default()
            .with_member_id(s(&want.member_id))
            .with_instance_id(want.instance_id.as_deref().map(s))
            .with_rack_id((m == 0).then(|| s("rack-a")))
            .with_member_epoch(want.member_epoch)
            .with_client_id(s(&want.client_id))
            .with_client_host(s(&want.client_host))
            .with_subscribed_topic_names(vec![TopicName(s("orders")), TopicName(s("pay"))])
            .with_subscribed_topic_regex((m == 2).then(|| s("^ord.*")))
            .with_assignment(kp_assignment(v, &want.assignment))
            .with_target_assignment(kp_assignment(v, &topics(g, m, true)))
            .with_unknown_tagged_fields(unknown_tags());
        let km = if v >= 1 {
            km.with_member_type(m as i8 - 1)
        } else {
            km
        };
        (km, want)
    }

    fn case(
        v: i16,
    ) -> (
        kp::ConsumerGroupDescribeResponse,
        ConsumerGroupDescribeResponse,
    ) {
        let states = ["Stable", "Reconciling", "Empty"];
        let (mut kgroups, mut groups) = (vec![], vec![]);
        for (g, state) in states.iter().enumerate() {
            // The last group is an error answer: no members, a message.
            let failed = g == 2;
            let (kmembers, members): (Vec<_>, Vec<_>) = (0..if failed { 0 } else { 3 })
                .map(|m| member(v, g, m))
                .unzip();
            let want = DescribedConsumerGroup {
                error_code: if failed { 69 } else { 0 },
                error_message: failed.then(|| "Group g-2 is not a consumer group.".into()),
                group_id: format!("g-{g}"),
                state: if failed { "" } else { state }.to_string(),
                assignor_name: "uniform".into(),
                members,
            };
            kgroups.push(
                kp::DescribedGroup::default()
                    .with_error_code(want.error_code)
                    .with_error_message(want.error_message.as_deref().map(s))
                    .with_group_id(GroupId(s(&want.group_id)))
                    .with_group_state(s(&want.state))
                    .with_group_epoch(40 + g as i32)
                    .with_assignment_epoch(39)
                    .with_assignor_name(s(&want.assignor_name))
                    .with_members(kmembers)
                    .with_authorized_operations(i32::MIN)
                    .with_unknown_tagged_fields(unknown_tags()),
            );
            groups.push(want);
        }
        let km = kp::ConsumerGroupDescribeResponse::default()
            .with_throttle_time_ms(12)
            .with_groups(kgroups)
            .with_unknown_tagged_fields(unknown_tags());
        (km, ConsumerGroupDescribeResponse { groups })
    }

    #[test]
    fn every_version_round_trips() {
        for v in 0..=1 {
            let (km, want) = case(v);
            let got = decode_all(&enc(&km, v), |b| {
                ConsumerGroupDescribeResponse::decode(b, v)
            });
            assert_eq!(got, want, "v{v}");
        }
    }

    /// Compact count 2^31-1 (uvarint of N+1 = 2^31).
    const HUGE: [u8; 5] = [0x80, 0x80, 0x80, 0x80, 0x08];

    /// A v0 body up to a member's assignment: one group, one member with empty strings.
    fn up_to_assignment() -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0, 2, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2];
        // member_id, instance_id, rack_id, epoch, client_id, host, no topics, no regex
        b.extend([1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0]);
        b
    }

    #[test]
    fn hostile_counts_and_versions() {
        let mut b = vec![0, 0, 0, 0];
        b.extend(HUGE);
        b.push(9);
        let d = |b: Vec<u8>| ConsumerGroupDescribeResponse::decode(Bytes::from(b), 0);
        assert_count_err(d(b), "groups");

        let mut b = vec![0, 0, 0, 0, 2, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1];
        b.extend(HUGE);
        b.push(9);
        assert_count_err(d(b), "groups[0].members");

        let mut b = up_to_assignment();
        b.extend(HUGE);
        assert_count_err(d(b), "groups[0].members[0].assignment.topic_partitions");

        let mut b = up_to_assignment();
        b.push(2);
        b.extend(TOPIC_ID);
        b.push(1);
        b.extend(HUGE);
        b.extend([0, 0, 0, 0]);
        assert_count_err(
            d(b),
            "groups[0].members[0].assignment.topic_partitions[0].partitions",
        );

        assert_bad_version(ConsumerGroupDescribeResponse::decode, -1, "0..=1");
        assert_bad_version(ConsumerGroupDescribeResponse::decode, 2, "0..=1");
    }
}
