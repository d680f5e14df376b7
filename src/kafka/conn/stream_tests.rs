//! Streamed responses: chunks between whole responses, cancellation, hang-ups, timeouts.

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use super::*;
use crate::kafka::wire::fetch::{decode_stream, Item};

/// A Fetch response of `partitions` partitions of topic "t", each with `records` bytes
/// (partition index in every byte).
fn fetch_response(partitions: i32, records: usize) -> FetchResponse {
    let parts = (0..partitions)
        .map(|p| {
            PartitionData::default()
                .with_partition_index(p)
                .with_high_watermark(1_000 + i64::from(p))
                .with_records(Some(Bytes::from(vec![p as u8; records])))
        })
        .collect();
    FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("t")))
        .with_partitions(parts)])
}

/// Encodes a response frame; flexible versions get the v1 header (empty tagged fields).
fn frame<T: Encodable>(id: i32, version: i16, flexible: bool, body: &T) -> BytesMut {
    let mut out = BytesMut::new();
    let header = if flexible { 5 } else { 4 };
    out.put_i32((header + body.compute_size(version).unwrap()) as i32);
    out.put_i32(id);
    if flexible {
        out.put_u8(0);
    }
    body.encode(&mut out, version).unwrap();
    out
}

/// Decodes a streamed Fetch response into (partition, high watermark, records length).
async fn decode(
    conn: &Connection,
    version: i16,
    keep: usize,
) -> Result<Vec<(i32, i64, usize, usize)>> {
    let mut stream = conn.start_stream(&FetchRequest::default(), version).await?;
    let mut got = Vec::new();
    let decoded = decode_stream(stream.reader(), version, keep, |item| {
        if let Item::Partition(p) = item {
            got.push((
                p.partition,
                p.high_watermark,
                p.records.len(),
                p.records_size,
            ));
        }
    })
    .await;
    stream.finish(decoded)?;
    Ok(got)
}

#[tokio::test]
async fn a_streamed_response_arrives_between_whole_ones_and_keeps_what_was_asked() {
    let (client, mut server) = tokio::io::duplex(16 * 1024);
    let conn = Connection::start("fake:9092", client, config(5_000), Arc::default());
    // 200 partitions × 4 KiB: a body ~50× the duplex buffer, so it cannot arrive at once.
    let big = fetch_response(200, 4096);
    let server_task = tokio::spawn(async move {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(read_request(&mut server).await.unwrap());
        }
        write_response(&mut server, ids[0].2, 0, &groups_response("before")).await;
        let f = frame(ids[1].2, 12, true, &big);
        server.write_all(&f).await.unwrap();
        write_response(&mut server, ids[2].2, 0, &groups_response("after")).await;
        server
    });
    let req = ListGroupsRequest::default();
    let (a, fetched, b) = tokio::join!(
        conn.send_version(&req, 0),
        decode(&conn, 12, 100),
        conn.send_version(&req, 0)
    );
    assert_eq!(a.unwrap().groups[0].group_id, "before");
    assert_eq!(b.unwrap().groups[0].group_id, "after");
    let fetched = fetched.unwrap();
    assert_eq!(fetched.len(), 200);
    for (i, (p, hw, kept, size)) in fetched.into_iter().enumerate() {
        assert_eq!((p, hw, kept, size), (i as i32, 1_000 + i as i64, 100, 4096));
    }
    let _server = server_task.await.unwrap();
}

#[tokio::test]
async fn a_stream_given_up_midway_leaves_the_connection_in_sync() {
    let (client, mut server) = tokio::io::duplex(16 * 1024);
    let conn = Connection::start("fake:9092", client, config(5_000), Arc::default());
    let server_task = tokio::spawn(async move {
        let (_, _, id) = read_request(&mut server).await.unwrap();
        let f = frame(id, 11, false, &fetch_response(100, 4096));
        server.write_all(&f).await.unwrap();
        let (_, _, id) = read_request(&mut server).await.unwrap();
        write_response(&mut server, id, 0, &groups_response("next")).await;
        server
    });
    let mut stream = conn
        .start_stream(&FetchRequest::default(), 11)
        .await
        .unwrap();
    assert_eq!(stream.reader().i32("throttle_time_ms").await, Ok(0));
    drop(stream);
    let next = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap();
    assert_eq!(next.groups[0].group_id, "next");
    let _server = server_task.await.unwrap();
}

#[tokio::test]
async fn a_hang_up_mid_body_is_a_closed_connection_not_a_decode_error() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let conn = Connection::start("fake:9092", client, config(5_000), Arc::default());
    let server_task = tokio::spawn(async move {
        let (_, _, id) = read_request(&mut server).await.unwrap();
        let f = frame(id, 11, false, &fetch_response(10, 1000));
        server.write_all(&f[..f.len() / 2]).await.unwrap();
    });
    let err = decode(&conn, 11, usize::MAX).await.unwrap_err();
    assert!(
        matches!(err.kind(), KafkaErrorKind::ConnectionClosed { .. }),
        "{err}"
    );
    assert!(err.is_transport());
    server_task.await.unwrap();
    assert!(conn.is_closed());
}

#[tokio::test]
async fn a_body_stalled_past_the_request_timeout_is_a_timeout() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let conn = Connection::start("fake:9092", client, config(200), Arc::default());
    let server_task = tokio::spawn(async move {
        let (_, _, id) = read_request(&mut server).await.unwrap();
        let f = frame(id, 11, false, &fetch_response(10, 1000));
        server.write_all(&f[..f.len() - 10]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        server
    });
    let err = decode(&conn, 11, usize::MAX).await.unwrap_err();
    assert!(
        matches!(err.kind(), KafkaErrorKind::Timeout { .. }),
        "{err}"
    );
    assert_eq!(conn.counters.errors(ApiKey::Fetch), 1);
    server_task.abort();
}

#[tokio::test]
async fn a_malformed_streamed_body_is_a_decode_error_naming_the_field() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let conn = Connection::start("fake:9092", client, config(5_000), Arc::default());
    let server_task = tokio::spawn(async move {
        let (_, _, id) = read_request(&mut server).await.unwrap();
        // Fetch v11 body: throttle, error code, session id, then i32::MAX topics.
        let mut out = BytesMut::new();
        out.put_i32(4 + 4 + 2 + 4 + 4);
        out.put_i32(id);
        out.put_i32(0);
        out.put_i16(0);
        out.put_i32(0);
        out.put_i32(i32::MAX);
        server.write_all(&out).await.unwrap();
        let (_, _, id) = read_request(&mut server).await.unwrap();
        write_response(&mut server, id, 0, &groups_response("ok")).await;
        server
    });
    let err = decode(&conn, 11, usize::MAX).await.unwrap_err();
    assert!(matches!(err.kind(), KafkaErrorKind::Decode { .. }), "{err}");
    assert!(err.to_string().contains("responses"), "{err}");
    let ok = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap();
    assert_eq!(ok.groups[0].group_id, "ok");
    let _server = server_task.await.unwrap();
}
