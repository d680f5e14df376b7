//! Fetch response body, versions 4..=12 (flexible from 12; topics by name in all of them).

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "Fetch";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResponse {
    /// Top-level error code, from v7 (0 below).
    pub error_code: i16,
    pub topics: Vec<FetchTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchTopic {
    pub name: String,
    pub partitions: Vec<FetchPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchPartition {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// -1 below v5.
    pub log_start_offset: i64,
    /// Empty when null on the wire.
    pub aborted: Vec<AbortedTransaction>,
    /// Record batches, a slice of the response buffer (zero copy); empty when null.
    pub records: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
}

impl FetchResponse {
    pub const MIN_VERSION: i16 = 4;
    pub const MAX_VERSION: i16 = 12;

    /// Decodes the body of a Fetch response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 12;
        let mut r = Reader::for_api(buf, API, version);
        r.i32("throttle_time_ms")?;
        let mut error_code = 0;
        if version >= 7 {
            error_code = r.i16("error_code")?;
            r.i32("session_id")?;
        }
        let topics = r.array("responses", flex, |r| {
            let name = r.string_v("topic", flex)?;
            let partitions = r.array("partitions", flex, |r| decode_partition(r, version))?;
            r.tagged_fields(flex)?;
            Ok(FetchTopic { name, partitions })
        })?;
        // v12+: node_endpoints (tag 0, v16+) would be a tagged field: skipped.
        r.tagged_fields(flex)?;
        Ok(Self { error_code, topics })
    }
}

fn decode_partition(r: &mut Reader, version: i16) -> Result<FetchPartition, DecodeError> {
    let flex = version >= 12;
    let partition = r.i32("partition_index")?;
    let error_code = r.i16("error_code")?;
    let high_watermark = r.i64("high_watermark")?;
    let last_stable_offset = r.i64("last_stable_offset")?;
    let log_start_offset = if version >= 5 {
        r.i64("log_start_offset")?
    } else {
        -1
    };
    let aborted = r
        .nullable_array("aborted_transactions", flex, |r| {
            let t = AbortedTransaction {
                producer_id: r.i64("producer_id")?,
                first_offset: r.i64("first_offset")?,
            };
            r.tagged_fields(flex)?;
            Ok(t)
        })?
        .unwrap_or_default();
    if version >= 11 {
        r.i32("preferred_read_replica")?;
    }
    let records = r.nullable_bytes_v("records", flex)?.unwrap_or_default();
    // v12+: diverging_epoch (tag 0), current_leader (1), snapshot_id (2) are tagged: skipped.
    r.tagged_fields(flex)?;
    Ok(FetchPartition {
        partition,
        error_code,
        high_watermark,
        last_stable_offset,
        log_start_offset,
        aborted,
        records,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response as kp;
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    fn part(v: i16, p: i32) -> FetchPartition {
        FetchPartition {
            partition: p,
            error_code: (p % 2) as i16,
            high_watermark: 5_000_000_000 + i64::from(p),
            last_stable_offset: 4_000_000_000,
            log_start_offset: if v >= 5 { 17 } else { -1 },
            aborted: (0..if p == 1 { 2 } else { 0 })
                .map(|i| AbortedTransaction {
                    producer_id: 900 + i,
                    first_offset: 30 * i,
                })
                .collect(),
            // p == 2: null records and null aborted_transactions on the wire.
            records: if p == 2 {
                Bytes::new()
            } else {
                Bytes::from(vec![p as u8; 61])
            },
        }
    }

    fn kpart(v: i16, p: &FetchPartition) -> kp::PartitionData {
        let aborted = p.aborted.iter().map(|a| {
            kp::AbortedTransaction::default()
                .with_producer_id(ProducerId(a.producer_id))
                .with_first_offset(a.first_offset)
                .with_unknown_tagged_fields(unknown_tags())
        });
        let mut k = kp::PartitionData::default()
            .with_partition_index(p.partition)
            .with_error_code(p.error_code)
            .with_high_watermark(p.high_watermark)
            .with_last_stable_offset(p.last_stable_offset)
            .with_log_start_offset(p.log_start_offset)
            .with_aborted_transactions((p.partition != 2).then(|| aborted.collect()))
            .with_records((p.partition != 2).then(|| p.records.clone()))
            .with_unknown_tagged_fields(unknown_tags());
        if v >= 11 {
            k = k.with_preferred_read_replica(BrokerId(2));
        }
        if v >= 12 {
            // Known tagged fields (tags 0..=2) that we skip.
            k = k
                .with_current_leader(
                    kp::LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(3))
                        .with_leader_epoch(8),
                )
                .with_diverging_epoch(
                    kp::EpochEndOffset::default()
                        .with_epoch(2)
                        .with_end_offset(99),
                );
        }
        k
    }

    fn case(v: i16) -> (kp::FetchResponse, FetchResponse) {
        let error_code = if v >= 7 { 71 } else { 0 };
        let topics: Vec<_> = (0..2)
            .map(|t| FetchTopic {
                name: format!("topic-{t}"),
                partitions: (0..3).map(|p| part(v, p)).collect(),
            })
            .collect();
        let kt = topics.iter().map(|t| {
            kp::FetchableTopicResponse::default()
                .with_topic(TopicName(s(&t.name)))
                .with_partitions(t.partitions.iter().map(|p| kpart(v, p)).collect())
                .with_unknown_tagged_fields(unknown_tags())
        });
        let mut km = kp::FetchResponse::default()
            .with_throttle_time_ms(2)
            .with_responses(kt.collect())
            .with_unknown_tagged_fields(unknown_tags());
        if v >= 7 {
            km = km.with_error_code(error_code).with_session_id(123_456);
        }
        (km, FetchResponse { error_code, topics })
    }

    #[test]
    fn every_version_round_trips() {
        for v in 4..=12 {
            let (km, want) = case(v);
            let got = decode_all(&enc(&km, v), |b| FetchResponse::decode(b, v));
            assert_eq!(got, want, "v{v}");
        }
    }

    #[test]
    fn records_are_zero_copy() {
        let (km, _) = case(12);
        let full = enc(&km, 12);
        let got = FetchResponse::decode(full.clone(), 12).expect("decode");
        let records = &got.topics[0].partitions[1].records;
        let range = full.as_ptr_range();
        assert!(range.contains(&records.as_ptr()), "records were copied");
    }

    #[test]
    fn hostile_counts_and_versions() {
        // v4: throttle, one topic "t", one partition with fixed fields, aborted count i32::MAX.
        let mut b = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1];
        b.extend_from_slice(&[0; 4 + 2 + 8 + 8]);
        b.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0, 0]);
        assert_count_err(
            FetchResponse::decode(Bytes::from(b), 4),
            "responses[0].partitions[0].aborted_transactions",
        );
        let b = Bytes::from_static(&[
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0,
        ]);
        assert_count_err(FetchResponse::decode(b, 12), "responses");
        assert_bad_version(FetchResponse::decode, 3, "4..=12");
        assert_bad_version(FetchResponse::decode, 13, "4..=12");
    }
}
