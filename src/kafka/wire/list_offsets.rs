//! ListOffsets response body, versions 1..=7 (flexible from 6).

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "ListOffsets";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOffsetsResponse {
    pub topics: Vec<ListOffsetsTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOffsetsTopic {
    pub name: String,
    pub partitions: Vec<ListOffsetsPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOffsetsPartition {
    pub partition: i32,
    pub error_code: i16,
    pub timestamp: i64,
    pub offset: i64,
}

impl ListOffsetsResponse {
    pub const MIN_VERSION: i16 = 1;
    pub const MAX_VERSION: i16 = 7;

    /// Decodes the body of a ListOffsets response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 6;
        let mut r = Reader::for_api(buf, API, version);
        if version >= 2 {
            r.i32("throttle_time_ms")?;
        }
        let topics = r.array("topics", flex, |r| {
            let name = r.string_v("name", flex)?;
            let partitions = r.array("partitions", flex, |r| {
                let p = ListOffsetsPartition {
                    partition: r.i32("partition_index")?,
                    error_code: r.i16("error_code")?,
                    timestamp: r.i64("timestamp")?,
                    offset: r.i64("offset")?,
                };
                if version >= 4 {
                    r.i32("leader_epoch")?;
                }
                r.tagged_fields(flex)?;
                Ok(p)
            })?;
            r.tagged_fields(flex)?;
            Ok(ListOffsetsTopic { name, partitions })
        })?;
        r.tagged_fields(flex)?;
        Ok(Self { topics })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::list_offsets_response as kp;
    use kafka_protocol::messages::TopicName;

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    fn case(v: i16) -> (kp::ListOffsetsResponse, ListOffsetsResponse) {
        let part = |p: i32| ListOffsetsPartition {
            partition: p,
            error_code: (p * 2) as i16,
            timestamp: 1_700_000_000_000 + i64::from(p),
            offset: 42_000_000_000 * i64::from(p + 1),
        };
        let topics: Vec<_> = (0..2)
            .map(|t| ListOffsetsTopic {
                name: format!("topic-{t}"),
                partitions: (0..3).map(part).collect(),
            })
            .collect();
        let kt = topics.iter().map(|t| {
            let kparts = t.partitions.iter().map(|p| {
                let kpart = kp::ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition)
                    .with_error_code(p.error_code)
                    .with_timestamp(p.timestamp)
                    .with_offset(p.offset)
                    .with_unknown_tagged_fields(unknown_tags());
                if v >= 4 {
                    kpart.with_leader_epoch(12)
                } else {
                    kpart
                }
            });
            kp::ListOffsetsTopicResponse::default()
                .with_name(TopicName(s(&t.name)))
                .with_partitions(kparts.collect())
                .with_unknown_tagged_fields(unknown_tags())
        });
        let km = kp::ListOffsetsResponse::default()
            .with_throttle_time_ms(6)
            .with_topics(kt.collect())
            .with_unknown_tagged_fields(unknown_tags());
        (km, ListOffsetsResponse { topics })
    }

    #[test]
    fn every_version_round_trips() {
        for v in 1..=7 {
            let (km, want) = case(v);
            let got = decode_all(&enc(&km, v), |b| ListOffsetsResponse::decode(b, v));
            assert_eq!(got, want, "v{v}");
        }
    }

    #[test]
    fn hostile_counts_and_versions() {
        // v1: one topic "t", then partitions count i32::MAX.
        let b = Bytes::from_static(&[0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff, 0]);
        assert_count_err(ListOffsetsResponse::decode(b, 1), "topics[0].partitions");
        let b = Bytes::from_static(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        assert_count_err(ListOffsetsResponse::decode(b, 6), "topics");
        assert_bad_version(ListOffsetsResponse::decode, 0, "1..=7");
        assert_bad_version(ListOffsetsResponse::decode, 8, "1..=7");
    }
}
