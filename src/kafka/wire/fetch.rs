//! Fetch response body, versions 4..=12 (flexible from 12; topics by name in all of them).
//!
//! [`decode_stream`] reads it while it arrives and hands each partition over as soon as its
//! records are in, keeping at most a given number of record bytes per partition, so a
//! response naming ten thousand partitions costs one partition's bytes of memory.
//! [`FetchResponse::decode`] is the same decoder over a body held whole.

use bytes::Bytes;

use super::stream::{now_or_never, StreamReader};
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
    /// Record batches (the first bytes of them when the decoder was told to keep fewer than
    /// arrived); empty when null. Zero copy when the bytes arrived in one piece.
    pub records: Bytes,
    /// Size of the records on the wire (`records.len()` unless some were not kept).
    pub records_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// What [`decode_stream`] hands over, in wire order.
#[derive(Debug)]
pub enum Item<'a> {
    /// A topic starts; its partitions follow.
    Topic(&'a str),
    /// A partition of the last topic.
    Partition(FetchPartition),
}

impl FetchResponse {
    pub const MIN_VERSION: i16 = 4;
    pub const MAX_VERSION: i16 = 12;

    /// Decodes the body of a Fetch response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let mut r = StreamReader::from_bytes(buf, API, version);
        let mut topics: Vec<FetchTopic> = Vec::new();
        let decoded = now_or_never(decode_stream(
            &mut r,
            version,
            usize::MAX,
            |item| match item {
                Item::Topic(name) => topics.push(FetchTopic {
                    name: name.to_owned(),
                    partitions: Vec::new(),
                }),
                Item::Partition(p) => {
                    if let Some(t) = topics.last_mut() {
                        t.partitions.push(p);
                    }
                }
            },
        ));
        // An in-memory reader never waits: the decode is always finished here.
        let error_code = decoded.unwrap_or(Ok(0))?;
        Ok(Self { error_code, topics })
    }
}

/// Receives what [`decode_stream_to`] decodes, in wire order.
pub trait FetchSink {
    fn topic(&mut self, name: &str);
    /// One partition; the decoder reads on only once the future is done, so a sink may
    /// hand the CPU work of the partition to another thread without holding more than one
    /// partition's bytes (or as many as it chooses).
    fn partition(&mut self, p: FetchPartition) -> impl std::future::Future<Output = ()> + Send;
}

/// A closure as a [`FetchSink`].
struct Each<F>(F);

impl<F: FnMut(Item<'_>)> FetchSink for Each<F> {
    fn topic(&mut self, name: &str) {
        (self.0)(Item::Topic(name));
    }

    fn partition(&mut self, p: FetchPartition) -> impl std::future::Future<Output = ()> + Send {
        (self.0)(Item::Partition(p));
        std::future::ready(())
    }
}

/// Decodes a Fetch response body of `version` from `r`, handing every topic and partition
/// to `each` in wire order; of each partition's records at most `records_limit` bytes are
/// kept (the rest is skipped). Returns the top-level error code.
///
/// Partitions handed over before an error were read correctly, but the response as a whole
/// is malformed: callers should drop what they got from it.
pub async fn decode_stream(
    r: &mut StreamReader,
    version: i16,
    records_limit: usize,
    each: impl FnMut(Item<'_>),
) -> Result<i16, DecodeError> {
    decode_stream_to(r, version, records_limit, &mut Each(each)).await
}

/// [`decode_stream`] into a [`FetchSink`], awaiting it after each partition.
pub async fn decode_stream_to(
    r: &mut StreamReader,
    version: i16,
    records_limit: usize,
    sink: &mut impl FetchSink,
) -> Result<i16, DecodeError> {
    check_version(
        API,
        version,
        FetchResponse::MIN_VERSION,
        FetchResponse::MAX_VERSION,
    )?;
    let flex = version >= 12;
    r.i32("throttle_time_ms").await?;
    let mut error_code = 0;
    if version >= 7 {
        error_code = r.i16("error_code").await?;
        r.i32("session_id").await?;
    }
    let pos = r.position();
    let Some(topics) = r.array_len_v("responses", flex).await? else {
        return Err(r.error("responses", pos, super::Problem::UnexpectedNull));
    };
    for t in 0..topics {
        r.enter("responses", t);
        let name = r.string_v("topic", flex).await?;
        sink.topic(&name);
        let pos = r.position();
        let Some(partitions) = r.array_len_v("partitions", flex).await? else {
            return Err(r.error("partitions", pos, super::Problem::UnexpectedNull));
        };
        for p in 0..partitions {
            r.enter("partitions", p);
            let partition = decode_partition(r, version, records_limit).await?;
            sink.partition(partition).await;
            r.leave();
        }
        r.tagged_fields(flex).await?;
        r.leave();
    }
    // v12+: node_endpoints (tag 0, v16+) would be a tagged field: skipped.
    r.tagged_fields(flex).await?;
    Ok(error_code)
}

async fn decode_partition(
    r: &mut StreamReader,
    version: i16,
    records_limit: usize,
) -> Result<FetchPartition, DecodeError> {
    let flex = version >= 12;
    let partition = r.i32("partition_index").await?;
    let error_code = r.i16("error_code").await?;
    let high_watermark = r.i64("high_watermark").await?;
    let last_stable_offset = r.i64("last_stable_offset").await?;
    let log_start_offset = if version >= 5 {
        r.i64("log_start_offset").await?
    } else {
        -1
    };
    let mut aborted = Vec::new();
    let count = r.array_len_v("aborted_transactions", flex).await?;
    for i in 0..count.unwrap_or(0) {
        r.enter("aborted_transactions", i);
        let t = AbortedTransaction {
            producer_id: r.i64("producer_id").await?,
            first_offset: r.i64("first_offset").await?,
        };
        r.tagged_fields(flex).await?;
        r.leave();
        aborted.push(t);
    }
    if version >= 11 {
        r.i32("preferred_read_replica").await?;
    }
    let (records, records_size) = r
        .nullable_bytes_prefix_v("records", flex, records_limit)
        .await?;
    // v12+: diverging_epoch (tag 0), current_leader (1), snapshot_id (2) are tagged: skipped.
    r.tagged_fields(flex).await?;
    Ok(FetchPartition {
        partition,
        error_code,
        high_watermark,
        last_stable_offset,
        log_start_offset,
        aborted,
        records,
        records_size,
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
            records_size: if p == 2 { 0 } else { 61 },
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
    fn chunked_bodies_decode_alike_and_records_can_be_capped() {
        use super::super::stream::StreamReader;
        for v in 4..=12 {
            let (km, want) = case(v);
            let body = enc(&km, v);
            // What a decoder keeping 10 record bytes per partition must hand over.
            let mut expected = Vec::new();
            for t in &want.topics {
                expected.push((t.name.clone(), None));
                for p in &t.partitions {
                    let mut p = p.clone();
                    p.records.truncate(10);
                    expected.push((String::new(), Some(p)));
                }
            }
            for size in [1, 7, 64, body.len()] {
                let chunks = body.chunks(size).map(Bytes::copy_from_slice);
                let mut r = StreamReader::from_chunks(chunks, API, v);
                let mut got = Vec::new();
                let code = now_or_never(decode_stream(&mut r, v, 10, |item| match item {
                    Item::Topic(n) => got.push((n.to_owned(), None)),
                    Item::Partition(p) => got.push((String::new(), Some(p))),
                }))
                .expect("in-memory decoding never waits");
                assert_eq!(code, Ok(want.error_code), "v{v}, chunks of {size}");
                assert_eq!(got, expected, "v{v}, chunks of {size}");
                assert_eq!(r.remaining(), 0);
            }
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
