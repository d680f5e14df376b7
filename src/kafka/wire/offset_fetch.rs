//! OffsetFetch response body, versions 1..=8 (flexible from 6, multi-group from 8).

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "OffsetFetch";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetFetchResponse {
    /// From v8 the `groups` array; below v8 exactly one entry with group id `""`, the
    /// top-level error code (0 in v1, which has none) and the top-level topics.
    pub groups: Vec<OffsetFetchGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetFetchGroup {
    pub group_id: String,
    pub error_code: i16,
    pub topics: Vec<OffsetFetchTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetFetchTopic {
    pub name: String,
    pub partitions: Vec<OffsetFetchPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetFetchPartition {
    pub partition: i32,
    /// -1 when the group has no committed offset for the partition.
    pub committed_offset: i64,
    pub error_code: i16,
}

impl OffsetFetchResponse {
    pub const MIN_VERSION: i16 = 1;
    pub const MAX_VERSION: i16 = 8;

    /// Decodes the body of an OffsetFetch response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 6;
        let mut r = Reader::for_api(buf, API, version);
        if version >= 3 {
            r.i32("throttle_time_ms")?;
        }
        let groups = if version <= 7 {
            let topics = decode_topics(&mut r, version)?;
            let error_code = if version >= 2 {
                r.i16("error_code")?
            } else {
                0
            };
            vec![OffsetFetchGroup {
                group_id: String::new(),
                error_code,
                topics,
            }]
        } else {
            r.array("groups", flex, |r| {
                let group_id = r.string_v("group_id", flex)?;
                let topics = decode_topics(r, version)?;
                let error_code = r.i16("error_code")?;
                r.tagged_fields(flex)?;
                Ok(OffsetFetchGroup {
                    group_id,
                    error_code,
                    topics,
                })
            })?
        };
        r.tagged_fields(flex)?;
        Ok(Self { groups })
    }
}

fn decode_topics(r: &mut Reader, version: i16) -> Result<Vec<OffsetFetchTopic>, DecodeError> {
    let flex = version >= 6;
    r.array("topics", flex, |r| {
        let name = r.string_v("name", flex)?;
        let partitions = r.array("partitions", flex, |r| {
            let partition = r.i32("partition_index")?;
            let committed_offset = r.i64("committed_offset")?;
            if version >= 5 {
                r.i32("committed_leader_epoch")?;
            }
            r.nullable_string_v("metadata", flex)?;
            let error_code = r.i16("error_code")?;
            r.tagged_fields(flex)?;
            Ok(OffsetFetchPartition {
                partition,
                committed_offset,
                error_code,
            })
        })?;
        r.tagged_fields(flex)?;
        Ok(OffsetFetchTopic { name, partitions })
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::offset_fetch_response as kp;
    use kafka_protocol::messages::{GroupId, TopicName};

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    fn topics(g: i16) -> Vec<OffsetFetchTopic> {
        let part = |p: i32| OffsetFetchPartition {
            partition: p,
            committed_offset: if p == 1 {
                -1
            } else {
                1_000_000_007 * (i64::from(p) + i64::from(g))
            },
            error_code: (p as i16) * 3,
        };
        let topic = |t: i16| OffsetFetchTopic {
            name: format!("g{g}-topic-{t}"),
            partitions: (0..3).map(part).collect(),
        };
        (0..2).map(topic).collect()
    }

    fn case(v: i16) -> (kp::OffsetFetchResponse, OffsetFetchResponse) {
        let km = kp::OffsetFetchResponse::default()
            .with_throttle_time_ms(8)
            .with_unknown_tagged_fields(unknown_tags());
        if v <= 7 {
            let kt = topics(0).into_iter().map(|t| {
                let kparts = t.partitions.iter().map(|p| {
                    kp::OffsetFetchResponsePartition::default()
                        .with_partition_index(p.partition)
                        .with_committed_offset(p.committed_offset)
                        .with_committed_leader_epoch(4)
                        .with_metadata((p.partition == 0).then(|| s("meta")))
                        .with_error_code(p.error_code)
                        .with_unknown_tagged_fields(unknown_tags())
                });
                kp::OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s(&t.name)))
                    .with_partitions(kparts.collect())
                    .with_unknown_tagged_fields(unknown_tags())
            });
            let error_code = if v >= 2 { 14 } else { 0 };
            let km = km.with_topics(kt.collect()).with_error_code(error_code);
            let group = OffsetFetchGroup {
                group_id: String::new(),
                error_code,
                topics: topics(0),
            };
            return (
                km,
                OffsetFetchResponse {
                    groups: vec![group],
                },
            );
        }
        let groups: Vec<_> = (0..2)
            .map(|g| OffsetFetchGroup {
                group_id: format!("group-{g}"),
                error_code: 15 + g,
                topics: topics(g),
            })
            .collect();
        let kgroups = groups.iter().map(|g| {
            let kt = g.topics.iter().map(|t| {
                let kparts = t.partitions.iter().map(|p| {
                    kp::OffsetFetchResponsePartitions::default()
                        .with_partition_index(p.partition)
                        .with_committed_offset(p.committed_offset)
                        .with_committed_leader_epoch(4)
                        .with_metadata(None)
                        .with_error_code(p.error_code)
                        .with_unknown_tagged_fields(unknown_tags())
                });
                kp::OffsetFetchResponseTopics::default()
                    .with_name(TopicName(s(&t.name)))
                    .with_partitions(kparts.collect())
                    .with_unknown_tagged_fields(unknown_tags())
            });
            kp::OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(s(&g.group_id)))
                .with_topics(kt.collect())
                .with_error_code(g.error_code)
                .with_unknown_tagged_fields(unknown_tags())
        });
        (
            km.with_groups(kgroups.collect()),
            OffsetFetchResponse { groups },
        )
    }

    #[test]
    fn every_version_round_trips() {
        for v in 1..=8 {
            let (km, want) = case(v);
            let got = decode_all(&enc(&km, v), |b| OffsetFetchResponse::decode(b, v));
            assert_eq!(got, want, "v{v}");
        }
    }

    #[test]
    fn hostile_counts_and_versions() {
        let b = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert_count_err(OffsetFetchResponse::decode(b, 1), "topics");
        let b = Bytes::from_static(&[0, 0, 0, 0, 2, 2, b'g', 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        assert_count_err(OffsetFetchResponse::decode(b, 8), "groups[0].topics");
        assert_bad_version(OffsetFetchResponse::decode, 0, "1..=8");
        assert_bad_version(OffsetFetchResponse::decode, 9, "1..=8");
    }
}
