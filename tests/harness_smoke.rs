//! Smoke test of the integration-test harness itself: a real broker comes up, the
//! workload writes topics, batches in every codec and group commits, and raw
//! requests (not the workload's own bookkeeping, not tidemark) confirm the broker
//! stored exactly that.

use tidemark_testkit as common;

use common::workload::now_ms;

use std::time::Instant;

use common::codec::{batch_headers, decode_batches, fix_crc};
use common::{unique_name, Broker, Codec, Connection, Ledger, Workload};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, GroupId, OffsetFetchRequest, OffsetFetchResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::TimestampType;

const BASE_TS: i64 = 1_700_000_000_000;

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Fetch from offset 0 (v ≤ 12: topics by name): (high watermark, raw records).
async fn fetch(conn: &mut Connection, topic: &str, partition: i32) -> (i64, bytes::Bytes) {
    let version = conn.version(ApiKey::Fetch, 12).expect("Fetch version");
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        // Tansu quirk: max_wait_ms 0 answers with no partitions at all.
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(8 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(name(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(4 * 1024 * 1024)])]);
    let resp: FetchResponse = conn
        .request(ApiKey::Fetch, version, &req)
        .await
        .expect("Fetch request");
    assert_eq!(resp.error_code, 0, "Fetch top-level error");
    let p = resp
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .expect("Fetch answered the partition");
    assert_eq!(p.error_code, 0, "Fetch error for {topic}-{partition}");
    (p.high_watermark, p.records.clone().unwrap_or_default())
}

/// OffsetFetch for one group, all given partitions: committed offset per partition.
async fn offset_fetch(
    conn: &mut Connection,
    group: &str,
    partitions: &[(&str, i32)],
) -> Vec<((String, i32), i64)> {
    let version = conn
        .version(ApiKey::OffsetFetch, 8)
        .expect("OffsetFetch version");
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in partitions {
        match topics.iter_mut().find(|(n, _)| n == t) {
            Some((_, ps)) => ps.push(*p),
            None => topics.push((t, vec![*p])),
        }
    }
    let mut out = Vec::new();
    if version >= 8 {
        let req =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(name(group)))
                .with_topics(Some(
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(TopicName(name(t)))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect(),
                ))]);
        let resp: OffsetFetchResponse = conn
            .request(ApiKey::OffsetFetch, version, &req)
            .await
            .expect("OffsetFetch request");
        let g = resp
            .groups
            .iter()
            .find(|g| g.group_id.0.as_str() == group)
            .expect("OffsetFetch answered the group");
        assert_eq!(g.error_code, 0, "OffsetFetch group error for {group}");
        for t in &g.topics {
            for p in &t.partitions {
                assert_eq!(p.error_code, 0, "OffsetFetch partition error");
                out.push((
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                ));
            }
        }
    } else {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(name(group)))
            .with_topics(Some(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(name(t)))
                            .with_partition_indexes(ps.clone())
                    })
                    .collect(),
            ));
        let resp: OffsetFetchResponse = conn
            .request(ApiKey::OffsetFetch, version, &req)
            .await
            .expect("OffsetFetch request");
        assert_eq!(resp.error_code, 0, "OffsetFetch error for {group}");
        for t in &resp.topics {
            for p in &t.partitions {
                assert_eq!(p.error_code, 0, "OffsetFetch partition error");
                out.push((
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                ));
            }
        }
    }
    out.sort();
    out
}

/// Every record the broker returns for the partition matches the ledger: same
/// offsets, CreateTime timestamps, values and batch codecs, and nothing more.
async fn assert_partition_matches(conn: &mut Connection, ledger: &Ledger, topic: &str, p: i32) {
    let (hw, bytes) = fetch(conn, topic, p).await;
    assert_eq!(
        hw,
        ledger.high_watermark(topic, p),
        "high watermark of {topic}-{p}"
    );
    let batches = decode_batches(&bytes).expect("fetched batches decode");
    let mut seen = 0;
    for batch in &batches {
        for r in &batch.records {
            let want = ledger
                .record_at(topic, p, r.offset)
                .unwrap_or_else(|| panic!("{topic}-{p}: unexpected offset {}", r.offset));
            // CreateTime deltas survive in LogAppendTime batches too (readers must
            // use the batch's maxTimestamp there, checked in the LogAppendTime test).
            assert_eq!(
                r.timestamp, want.timestamp_ms,
                "{topic}-{p}@{} timestamp",
                r.offset
            );
            assert_eq!(
                r.value.as_deref(),
                Some(want.value.as_slice()),
                "{topic}-{p}@{} value",
                r.offset
            );
            assert_eq!(
                batch.compression,
                want.codec.compression(),
                "{topic}-{p}@{} codec",
                r.offset
            );
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        ledger.records(topic, p).len(),
        "record count of {topic}-{p}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_stores_what_the_workload_wrote() {
    let started = Instant::now();
    let broker = Broker::start().await;
    eprintln!(
        "broker {} ready after {:?}",
        broker.bootstrap,
        started.elapsed()
    );

    let mut wl = Workload::connect(&broker.bootstrap).await;
    let a = unique_name("smoke-a");
    let b = unique_name("smoke-b");
    wl.create_topic(&a, 2).await;
    wl.create_topic(&b, 1).await;

    let mut ts = BASE_TS;
    for (i, codec) in Codec::ALL.into_iter().enumerate() {
        // a-0: one 3-record batch per codec; a-1: one single-record batch per codec.
        let records: Vec<(i64, Vec<u8>)> = (0..3)
            .map(|j| {
                ts += 1_000;
                (ts, format!("{codec:?} record {j}").into_bytes())
            })
            .collect();
        let base = wl.produce(&a, 0, codec, &records).await;
        assert_eq!(
            base,
            3 * i as i64,
            "base offset of the {codec:?} batch on a-0"
        );
        let base = wl
            .produce(
                &a,
                1,
                codec,
                &[(ts - 500, format!("{codec:?} single").into_bytes())],
            )
            .await;
        assert_eq!(base, i as i64, "base offset of the {codec:?} batch on a-1");
        // b-0: a batch over 64 KiB of records, so xerial snappy and lz4 span blocks;
        // timestamps not in offset order (the batch's base timestamp is the minimum).
        let big: Vec<(i64, Vec<u8>)> = (0..40)
            .map(|j| (ts - j * 10, vec![b'a' + (j % 26) as u8; 2_000 + j as usize]))
            .collect();
        wl.produce(&b, 0, codec, &big).await;
    }

    let (g1, g2) = (unique_name("smoke-g1"), unique_name("smoke-g2"));
    wl.commit(&g1, &a, 0, 4).await;
    wl.commit(&g1, &a, 1, 6).await;
    wl.commit(&g1, &b, 0, 100).await;
    wl.commit_offsets(&g2, &[(&a, 0, 0), (&b, 0, 17)]).await;
    wl.commit(&g2, &b, 0, 18).await;

    let ledger = wl.ledger().clone();
    assert_eq!(ledger.high_watermark(&a, 0), 18);
    assert_eq!(ledger.high_watermark(&a, 1), 6);
    assert_eq!(ledger.high_watermark(&b, 0), 240);
    assert_eq!(ledger.lag(&g1, &a, 0), Some(14));
    assert_eq!(ledger.lag(&g2, &b, 0), Some(222));
    assert_eq!(ledger.timestamp_at(&a, 0, 0), Some(BASE_TS + 1_000));

    // Verify with a fresh raw connection, not the workload's.
    let mut conn = Connection::connect(&broker.bootstrap)
        .await
        .expect("raw connection");
    for (t, p) in [(&a, 0), (&a, 1), (&b, 0)] {
        assert_partition_matches(&mut conn, &ledger, t, p).await;
    }
    let all = [(a.as_str(), 0), (a.as_str(), 1), (b.as_str(), 0)];
    let got = offset_fetch(&mut conn, &g1, &all).await;
    let want = vec![
        ((a.clone(), 0), 4),
        ((a.clone(), 1), 6),
        ((b.clone(), 0), 100),
    ];
    assert_eq!(got, want, "committed offsets of {g1}");
    let got = offset_fetch(&mut conn, &g2, &all).await;
    let want = vec![
        ((a.clone(), 0), 0),
        ((a.clone(), 1), -1),
        ((b.clone(), 0), 18),
    ];
    assert_eq!(got, want, "committed offsets of {g2}");
    eprintln!("smoke test done after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_restarts_on_the_same_address_with_empty_storage() {
    let broker = Broker::start().await;
    let mut wl = Workload::connect(&broker.bootstrap).await;
    let topic = unique_name("restart");
    wl.create_topic(&topic, 1).await;
    wl.produce(&topic, 0, Codec::None, &[(BASE_TS, b"before".to_vec())])
        .await;

    broker.stop().await;
    assert!(
        Connection::connect(&broker.bootstrap).await.is_err(),
        "a stopped broker must not answer"
    );
    let started = Instant::now();
    broker.start_again().await;
    eprintln!("broker restarted in {:?}", started.elapsed());

    // The workload reconnects by itself; memory storage lost the topic.
    let err = wl
        .try_produce(&topic, 0, Codec::None, &[(BASE_TS, b"after".to_vec())])
        .await
        .expect_err("the first call after a restart fails on the dead connection");
    eprintln!("first call after the restart: {err}");
    let err = wl
        .try_produce(&topic, 0, Codec::None, &[(BASE_TS, b"after".to_vec())])
        .await
        .expect_err("the topic is gone after a restart");
    assert_eq!(
        err.kafka_code(),
        Some(3),
        "UNKNOWN_TOPIC_OR_PARTITION: {err}"
    );
    eprintln!("produce to a wiped topic: {err}");
    wl.ledger_mut().clear();
    wl.create_topic(&topic, 1).await;
    let base = wl
        .produce(&topic, 0, Codec::Zstd, &[(BASE_TS, b"after".to_vec())])
        .await;
    assert_eq!(base, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_broker_times_out_and_keeps_its_data() {
    let broker = Broker::start().await;
    let mut wl = Workload::connect(&broker.bootstrap).await;
    let topic = unique_name("pause");
    wl.create_topic(&topic, 1).await;
    wl.produce(&topic, 0, Codec::Gzip, &[(BASE_TS, b"kept".to_vec())])
        .await;

    broker.pause().await;
    let slow =
        Connection::connect_with_timeout(&broker.bootstrap, std::time::Duration::from_secs(1))
            .await
            .expect_err("a paused broker does not answer ApiVersions");
    eprintln!("paused broker: {slow}");
    broker.unpause().await;

    let mut conn = Connection::connect(&broker.bootstrap)
        .await
        .expect("connects after unpause");
    assert_partition_matches(&mut conn, wl.ledger(), &topic, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn log_append_time_batches_carry_the_broker_append_time() {
    let broker = Broker::start().await;
    let mut wl = Workload::connect(&broker.bootstrap).await;
    let topic = unique_name("lat");
    // Tansu stores this config but never applies it: only the batch bit counts.
    wl.create_topic_with_configs(&topic, 1, &[("message.timestamp.type", "LogAppendTime")])
        .await;
    wl.produce(&topic, 0, Codec::None, &[(BASE_TS, b"create".to_vec())])
        .await;
    let before = now_ms();
    let records = vec![(BASE_TS + 1, b"x".to_vec()), (BASE_TS + 2, b"y".to_vec())];
    let base = wl
        .produce_log_append_time(&topic, 0, Codec::Lz4, &records)
        .await;
    let after = now_ms();
    assert_eq!(base, 1);
    let ledger = wl.ledger().clone();
    assert_eq!(ledger.timestamp_at(&topic, 0, 0), Some(BASE_TS));
    let append = ledger
        .timestamp_at(&topic, 0, 1)
        .expect("ledger has offset 1");
    assert!(
        (before - 1_000..=after + 1_000).contains(&append),
        "append time {append} is the broker's clock at produce time ({before}..{after})"
    );
    assert_eq!(ledger.timestamp_at(&topic, 0, 2), Some(append));

    let mut conn = Connection::connect(&broker.bootstrap)
        .await
        .expect("raw connection");
    let (hw, bytes) = fetch(&mut conn, &topic, 0).await;
    assert_eq!(hw, 3);
    let headers = batch_headers(&bytes);
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert!(!headers[0].is_log_append_time() && headers[0].crc_ok);
    assert!(headers[1].is_log_append_time(), "{:?}", headers[1]);
    assert_eq!(headers[1].max_timestamp, append);
    // Tansu stamps the batch with its clock but does not recompute the CRC; fix
    // it on a copy so the records themselves can be compared with the ledger.
    let mut copy = bytes.to_vec();
    fix_crc(&mut copy[headers[0].total_len..]);
    let batches = decode_batches(&copy.into()).expect("batches decode");
    assert_eq!(
        batches[1].records[0].timestamp_type,
        TimestampType::LogAppend
    );
    assert_eq!(batches[1].records[1].value.as_deref(), Some(&b"y"[..]));
    assert_eq!(batches[1].compression, Codec::Lz4.compression());
}
