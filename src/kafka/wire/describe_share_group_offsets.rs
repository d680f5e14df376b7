//! DescribeShareGroupOffsets (API 90, KIP-932) response body, version 0 (flexible).
//!
//! Per share group, per topic, per partition: the share-partition start offset, the record
//! a share group's lag and time lag are measured from (lag = high watermark − start offset).
//! v1 (Kafka 4.2, KIP-1226) adds a `lag` field after `leader_epoch`; kafka-protocol 0.18 does
//! not know v1, so it is neither sent nor decoded. Topic ids are read and dropped.

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "DescribeShareGroupOffsets";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribeShareGroupOffsetsResponse {
    pub groups: Vec<ShareGroupOffsets>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareGroupOffsets {
    pub group_id: String,
    pub topics: Vec<ShareTopicOffsets>,
    /// Group-level error; when set, `topics` is normally empty.
    pub error_code: i16,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareTopicOffsets {
    pub name: String,
    pub partitions: Vec<SharePartitionOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SharePartitionOffset {
    pub partition: i32,
    /// The share-partition start offset; -1 when the broker has none for the partition.
    pub start_offset: i64,
    pub leader_epoch: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl DescribeShareGroupOffsetsResponse {
    pub const MIN_VERSION: i16 = 0;
    pub const MAX_VERSION: i16 = 0;

    /// Decodes the body of a DescribeShareGroupOffsets response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let mut r = Reader::for_api(buf, API, version);
        r.i32("throttle_time_ms")?;
        let groups = r.array("groups", true, |r| {
            let group_id = r.compact_string("group_id")?;
            let topics = r.array("topics", true, decode_topic)?;
            let error_code = r.i16("error_code")?;
            let error_message = r.compact_nullable_string("error_message")?;
            r.skip_tagged_fields()?;
            Ok(ShareGroupOffsets {
                group_id,
                topics,
                error_code,
                error_message,
            })
        })?;
        r.skip_tagged_fields()?;
        Ok(Self { groups })
    }
}

fn decode_topic(r: &mut Reader) -> Result<ShareTopicOffsets, DecodeError> {
    let name = r.compact_string("topic_name")?;
    r.uuid("topic_id")?;
    let partitions = r.array("partitions", true, |r| {
        let p = SharePartitionOffset {
            partition: r.i32("partition_index")?,
            start_offset: r.i64("start_offset")?,
            leader_epoch: r.i32("leader_epoch")?,
            error_code: r.i16("error_code")?,
            error_message: r.compact_nullable_string("error_message")?,
        };
        r.skip_tagged_fields()?;
        Ok(p)
    })?;
    r.skip_tagged_fields()?;
    Ok(ShareTopicOffsets { name, partitions })
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::describe_share_group_offsets_response as kp;
    use kafka_protocol::messages::{GroupId, TopicName};
    use kafka_protocol::protocol::Decodable;

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    const TOPIC_ID: [u8; 16] = [0x5e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xee];

    /// A kafka-protocol topic whose id is `TOPIC_ID` (its Uuid type is not re-exported, so
    /// the value is decoded from bytes: empty name, the id, no partitions, no tags).
    fn kp_topic_with_id() -> kp::DescribeShareGroupOffsetsResponseTopic {
        let mut b = BytesMut::new();
        b.put_u8(1);
        b.put_slice(&TOPIC_ID);
        b.put_slice(&[1, 0]);
        match kp::DescribeShareGroupOffsetsResponseTopic::decode(&mut b.freeze(), 0) {
            Ok(t) => t,
            Err(e) => panic!("kafka-protocol cannot decode a topic: {e}"),
        }
    }

    fn partition(g: usize, t: usize, p: usize) -> SharePartitionOffset {
        let failed = p == 2;
        SharePartitionOffset {
            partition: p as i32,
            start_offset: if p == 1 {
                -1
            } else {
                1_000_000_007 * (g + t + p) as i64
            },
            leader_epoch: if failed { -1 } else { 4 + p as i32 },
            error_code: if failed { 6 } else { 0 },
            error_message: failed.then(|| "NOT_LEADER_OR_FOLLOWER".into()),
        }
    }

    fn case() -> (
        kp::DescribeShareGroupOffsetsResponse,
        DescribeShareGroupOffsetsResponse,
    ) {
        let (mut kgroups, mut groups) = (vec![], vec![]);
        for g in 0..3 {
            // Group 1 answers a group error and no topics.
            let failed = g == 1;
            let topics: Vec<_> = (0..if failed { 0 } else { 2 })
                .map(|t| ShareTopicOffsets {
                    name: format!("queue-{g}-{t}"),
                    partitions: (0..3).map(|p| partition(g, t, p)).collect(),
                })
                .collect();
            let ktopics = topics.iter().map(|t| {
                let kparts = t.partitions.iter().map(|p| {
                    kp::DescribeShareGroupOffsetsResponsePartition::default()
                        .with_partition_index(p.partition)
                        .with_start_offset(p.start_offset)
                        .with_leader_epoch(p.leader_epoch)
                        .with_error_code(p.error_code)
                        .with_error_message(p.error_message.as_deref().map(s))
                        .with_unknown_tagged_fields(unknown_tags())
                });
                kp_topic_with_id()
                    .with_topic_name(TopicName(s(&t.name)))
                    .with_partitions(kparts.collect())
                    .with_unknown_tagged_fields(unknown_tags())
            });
            let want = ShareGroupOffsets {
                group_id: format!("sg-{g}"),
                topics: topics.clone(),
                error_code: if failed { 16 } else { 0 },
                error_message: failed.then(|| "This is not the correct coordinator.".into()),
            };
            kgroups.push(
                kp::DescribeShareGroupOffsetsResponseGroup::default()
                    .with_group_id(GroupId(s(&want.group_id)))
                    .with_topics(ktopics.collect())
                    .with_error_code(want.error_code)
                    .with_error_message(want.error_message.as_deref().map(s))
                    .with_unknown_tagged_fields(unknown_tags()),
            );
            groups.push(want);
        }
        let km = kp::DescribeShareGroupOffsetsResponse::default()
            .with_throttle_time_ms(2)
            .with_groups(kgroups)
            .with_unknown_tagged_fields(unknown_tags());
        (km, DescribeShareGroupOffsetsResponse { groups })
    }

    #[test]
    fn every_version_round_trips() {
        let (km, want) = case();
        let got = decode_all(&enc(&km, 0), |b| {
            DescribeShareGroupOffsetsResponse::decode(b, 0)
        });
        assert_eq!(got, want);
    }

    /// Compact count 2^31-1 (uvarint of N+1 = 2^31).
    const HUGE: [u8; 5] = [0x80, 0x80, 0x80, 0x80, 0x08];

    #[test]
    fn hostile_counts_and_versions() {
        let d = |b: Vec<u8>| DescribeShareGroupOffsetsResponse::decode(Bytes::from(b), 0);
        let mut b = vec![0, 0, 0, 0];
        b.extend(HUGE);
        b.push(9);
        assert_count_err(d(b), "groups");

        let mut b = vec![0, 0, 0, 0, 2, 3, b'g', b'1'];
        b.extend(HUGE);
        b.extend([0, 0, 0]);
        assert_count_err(d(b), "groups[0].topics");

        let mut b = vec![0, 0, 0, 0, 2, 3, b'g', b'1', 2, 2, b't'];
        b.extend(TOPIC_ID);
        b.extend(HUGE);
        b.extend([0; 8]);
        assert_count_err(d(b), "groups[0].topics[0].partitions");

        assert_bad_version(DescribeShareGroupOffsetsResponse::decode, -1, "0..=0");
        assert_bad_version(DescribeShareGroupOffsetsResponse::decode, 1, "0..=0");
    }
}
