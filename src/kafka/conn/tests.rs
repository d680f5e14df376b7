//! Connection tests over an in-memory duplex stream acting as the broker.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    ApiVersionsResponse, FetchRequest, GroupId, ListGroupsRequest, ListGroupsResponse,
    OffsetFetchRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

fn config(timeout_ms: u64) -> Arc<ConnectionConfig> {
    Arc::new(ConnectionConfig {
        request_timeout: Duration::from_millis(timeout_ms),
        max_frame_bytes: 1024 * 1024,
        ..ConnectionConfig::default()
    })
}

/// Read one request frame: (api key, version, correlation id).
async fn read_request(s: &mut DuplexStream) -> Option<(i16, i16, i32)> {
    let size = s.read_i32().await.ok()?;
    let mut buf = vec![0u8; size as usize];
    s.read_exact(&mut buf).await.ok()?;
    let mut b = &buf[..];
    Some((b.get_i16(), b.get_i16(), b.get_i32()))
}

/// Write a response frame with a v0 header.
async fn write_response<T: Encodable>(s: &mut DuplexStream, id: i32, version: i16, body: &T) {
    let mut out = BytesMut::new();
    let size = 4 + body.compute_size(version).unwrap();
    out.put_i32(size as i32);
    out.put_i32(id);
    body.encode(&mut out, version).unwrap();
    s.write_all(&out).await.unwrap();
}

fn groups_response(name: &str) -> ListGroupsResponse {
    ListGroupsResponse::default().with_groups(vec![ListedGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(name.to_string())))
        .with_protocol_type(StrBytes::from_static_str("consumer"))])
}

#[tokio::test]
async fn pipelined_responses_reach_their_callers_in_any_order() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let conn = Connection::start("fake:9092", client, config(5_000), Arc::default());
    let server_task = tokio::spawn(async move {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(read_request(&mut server).await.unwrap());
        }
        // Answer in reverse order; each response names its own correlation id.
        for (_, _, id) in ids.iter().rev() {
            write_response(&mut server, *id, 0, &groups_response(&format!("g{id}"))).await;
        }
        server
    });
    let req = ListGroupsRequest::default();
    let (a, b, c) = tokio::join!(
        conn.send_version(&req, 0),
        conn.send_version(&req, 0),
        conn.send_version(&req, 0)
    );
    let names: Vec<String> = [a, b, c]
        .into_iter()
        .map(|r| r.unwrap().groups[0].group_id.clone())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["g1", "g2", "g3"]);
    let _server = server_task.await.unwrap();
}

#[tokio::test]
async fn unanswered_request_times_out_naming_api_and_broker() {
    let (client, _server) = tokio::io::duplex(64 * 1024);
    let conn = Connection::start("fake:9092", client, config(50), Arc::default());
    let err = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), KafkaErrorKind::Timeout { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("ListGroups") && text.contains("fake:9092"),
        "{text}"
    );
}

#[tokio::test]
async fn broker_hang_up_fails_waiting_requests_and_later_ones() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let conn = Connection::start("fake:9092", client, config(5_000), Arc::default());
    let hang_up = tokio::spawn(async move {
        read_request(&mut server).await.unwrap();
        drop(server);
    });
    let err = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    hang_up.await.unwrap();
    assert!(conn.is_closed());
    let again = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(again.kind(), KafkaErrorKind::ConnectionClosed { .. }),
        "{again}"
    );
}

#[tokio::test]
async fn oversized_frame_closes_the_connection_with_the_size_in_the_reason() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let conn = Connection::start("fake:9092", client, config(5_000), Arc::default());
    let task = tokio::spawn(async move {
        read_request(&mut server).await.unwrap();
        server.write_i32(200 * 1024 * 1024).await.unwrap();
        server
    });
    let err = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("209715200"), "{err}");
    let _server = task.await.unwrap();
}

#[tokio::test]
async fn garbage_body_is_a_decode_error_and_the_connection_survives() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let conn = Connection::start("fake:9092", client, config(5_000), Arc::default());
    let task = tokio::spawn(async move {
        let (_, _, id) = read_request(&mut server).await.unwrap();
        // ListGroups v0 body claiming i32::MAX groups in 2 bytes.
        let mut out = BytesMut::new();
        out.put_i32(4 + 2 + 4);
        out.put_i32(id);
        out.put_i16(0);
        out.put_i32(i32::MAX);
        server.write_all(&out).await.unwrap();
        let (_, _, id) = read_request(&mut server).await.unwrap();
        write_response(&mut server, id, 0, &groups_response("ok")).await;
        server
    });
    let err = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), KafkaErrorKind::Decode { .. }), "{err}");
    let ok = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap();
    assert_eq!(ok.groups[0].group_id, "ok");
    let _server = task.await.unwrap();
}

fn versions(ranges: &[(i16, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        ranges
            .iter()
            .map(|(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(*k)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

#[tokio::test]
async fn negotiation_falls_back_when_the_broker_lacks_api_versions_v3() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let mut conn = Connection::start("fake:9092", client, config(5_000), Arc::default());
    let broker = tokio::spawn(async move {
        // First attempt (v3): answer UNSUPPORTED_VERSION in v0 format, listing ApiVersions 0..=2.
        let (key, version, id) = read_request(&mut server).await.unwrap();
        assert_eq!((key, version), (18, 3));
        let v0 = versions(&[(18, 0, 2), (16, 0, 2)]).with_error_code(35);
        write_response(&mut server, id, 0, &v0).await;
        let (key, version, id) = read_request(&mut server).await.unwrap();
        assert_eq!((key, version), (18, 2));
        write_response(
            &mut server,
            id,
            2,
            &versions(&[(18, 0, 2), (16, 0, 2), (9, 9, 10)]),
        )
        .await;
        server
    });
    conn.negotiate_versions().await.unwrap();
    assert_eq!(conn.broker_versions(ApiKey::ListGroups), Some((0, 2)));
    assert_eq!(conn.version_for::<ListGroupsRequest>().unwrap(), 2);
    // OffsetFetch 9..=10 on the broker vs 2..=8 here: an error naming both ranges.
    let err = conn
        .version_for::<OffsetFetchRequest>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("2..=8") && err.contains("9..=10"), "{err}");
    let err = conn.version_for::<FetchRequest>().unwrap_err().to_string();
    assert!(err.contains("does not support it"), "{err}");
    let _server = broker.await.unwrap();
}

/// A listener that requires SASL answers ApiVersions, then closes the connection at the
/// first other request (as Kafka's SaslServerAuthenticator does): the error says so. A
/// connection that had an answer to another request first gets no such hint.
#[tokio::test]
async fn a_close_right_after_api_versions_names_sasl() {
    for answer_first in [false, true] {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let mut conn = Connection::start("fake:9092", client, config(5_000), Arc::default());
        let broker = tokio::spawn(async move {
            let (_, version, id) = read_request(&mut server).await.unwrap();
            write_response(
                &mut server,
                id,
                version,
                &versions(&[(18, 0, 3), (16, 0, 5)]),
            )
            .await;
            if answer_first {
                let (_, version, id) = read_request(&mut server).await.unwrap();
                write_response(&mut server, id, version, &groups_response("g")).await;
            }
            // The next request is read, then the connection closed without an answer.
            read_request(&mut server).await.unwrap();
        });
        conn.negotiate_versions().await.unwrap();
        let req = ListGroupsRequest::default();
        if answer_first {
            conn.send_version(&req, 0).await.unwrap();
        }
        let err = conn.send_version(&req, 0).await.unwrap_err().to_string();
        broker.await.unwrap();
        let hinted = err.contains("requires SASL authentication")
            && err.contains("set security.protocol to SASL_PLAINTEXT and sasl.mechanism")
            && err.contains("first ListGroups request");
        assert_eq!(hinted, !answer_first, "{err}");
        assert!(err.contains("broker closed the connection"), "{err}");
    }
}

#[test]
fn negotiate_picks_the_highest_common_version() {
    assert_eq!(
        negotiate("b", ApiKey::Fetch, (4, 12), Some((0, 17))).unwrap(),
        12
    );
    assert_eq!(
        negotiate("b", ApiKey::Fetch, (4, 12), Some((4, 6))).unwrap(),
        6
    );
    assert!(negotiate("b", ApiKey::Fetch, (4, 12), Some((13, 17))).is_err());
    assert!(negotiate("b", ApiKey::Fetch, (4, 12), Some((0, 3))).is_err());
    assert!(negotiate("b", ApiKey::Fetch, (4, 12), None).is_err());
}

#[test]
fn counters_exclude_api_versions_from_totals() {
    let c = ApiCounters::default();
    c.count_request(ApiKey::ApiVersions);
    c.count_request(ApiKey::Fetch);
    c.count_request(ApiKey::Fetch);
    assert_eq!(c.requests(ApiKey::Fetch), 2);
    assert_eq!(c.total_requests(), 2);
}

#[path = "stream_tests.rs"]
mod stream_tests;

#[path = "limit_tests.rs"]
mod limit_tests;
