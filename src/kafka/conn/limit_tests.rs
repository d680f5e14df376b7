//! Response limits: a response over its request's cap, or without room in the memory
//! budget, fails that request alone; the connection stays in step for the next one.

use kafka_protocol::messages::FetchRequest;

use super::*;
use crate::kafka::budget::ResponseBudget;
use crate::kafka::caps::{self, Shape};
use crate::kafka::codec::DEFAULT_MAX_FRAME_BYTES;

fn limited(
    timeout_ms: u64,
    max_frame_bytes: usize,
    budget: &ResponseBudget,
) -> Arc<ConnectionConfig> {
    Arc::new(ConnectionConfig {
        request_timeout: Duration::from_millis(timeout_ms),
        max_frame_bytes,
        budget: budget.clone(),
        ..ConnectionConfig::default()
    })
}

/// Writes a frame announcing `size` bytes: the correlation id, then zeros streamed a chunk
/// at a time (never held whole, as a hostile broker would not either).
async fn write_filler(s: &mut DuplexStream, id: i32, size: usize) {
    s.write_i32(size as i32).await.unwrap();
    s.write_i32(id).await.unwrap();
    let chunk = [0u8; 64 * 1024];
    let mut left = size - 4;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).await.unwrap();
        left -= n;
    }
}

#[tokio::test]
async fn a_response_over_its_cap_fails_that_request_and_the_next_one_succeeds() {
    let budget = ResponseBudget::new(256 << 20);
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let config = limited(10_000, DEFAULT_MAX_FRAME_BYTES, &budget);
    let conn = Connection::start("fake:9092", client, config, Arc::default());
    let cap = caps::response_cap(ApiKey::ListGroups, &caps::Asked::default());
    let size = cap + 1;
    let task = tokio::spawn(async move {
        let (_, _, id) = read_request(&mut server).await.unwrap();
        write_filler(&mut server, id, size).await;
        let (_, _, id) = read_request(&mut server).await.unwrap();
        write_response(&mut server, id, 0, &groups_response("next")).await;
        server
    });
    let err = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), KafkaErrorKind::ResponseTooLarge { size: s, cap: c, .. } if *s == size && *c == cap),
        "{err:?}"
    );
    let text = err.to_string();
    for part in [
        "ListGroups",
        "fake:9092",
        &size.to_string(),
        &cap.to_string(),
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert!(!err.is_transport(), "the connection is not at fault");
    assert_eq!(conn.counters.errors(ApiKey::ListGroups), 1);
    // The refused body was discarded unread, so the next response is read in step.
    let next = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap();
    assert_eq!(next.groups[0].group_id, "next");
    assert!(!conn.is_closed());
    assert_eq!(budget.available(), budget.total(), "nothing stays reserved");
    let _server = task.await.unwrap();
}

#[tokio::test]
async fn a_streamed_response_over_its_cap_fails_before_its_body_is_read() {
    let budget = ResponseBudget::default();
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let config = limited(10_000, DEFAULT_MAX_FRAME_BYTES, &budget);
    let conn = Connection::start("fake:9092", client, config, Arc::default());
    // A Fetch asking for no record bytes may get its slack, no more.
    let req = FetchRequest::default();
    let cap = caps::response_cap(ApiKey::Fetch, &req.asked());
    let task = tokio::spawn(async move {
        let (_, _, id) = read_request(&mut server).await.unwrap();
        write_filler(&mut server, id, cap + 1).await;
        let (_, _, id) = read_request(&mut server).await.unwrap();
        write_response(&mut server, id, 0, &groups_response("next")).await;
        server
    });
    let err = conn.start_stream(&req, 11).await.err().expect("refused");
    assert!(
        matches!(
            err.kind(),
            KafkaErrorKind::ResponseTooLarge {
                api: ApiKey::Fetch,
                ..
            }
        ),
        "{err:?}"
    );
    let next = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap();
    assert_eq!(next.groups[0].group_id, "next");
    let _server = task.await.unwrap();
}

#[tokio::test]
async fn a_response_larger_than_the_whole_budget_fails_at_once() {
    let budget = ResponseBudget::new(1000);
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    // A request timeout far beyond the test: the refusal cannot come from waiting.
    let config = limited(3_600_000, 1 << 20, &budget);
    let conn = Connection::start("fake:9092", client, config, Arc::default());
    let task = tokio::spawn(async move {
        let (_, _, id) = read_request(&mut server).await.unwrap();
        write_filler(&mut server, id, 1001).await;
        let (_, _, id) = read_request(&mut server).await.unwrap();
        write_response(&mut server, id, 0, &groups_response("fits")).await;
        server
    });
    let err = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            KafkaErrorKind::OverMemoryBudget {
                size: 1001,
                budget: 1000,
                waited: None,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    for part in [
        "ListGroups",
        "fake:9092",
        "1001",
        "1000",
        "max_response_memory",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    let fits = conn
        .send_version(&ListGroupsRequest::default(), 0)
        .await
        .unwrap();
    assert_eq!(fits.groups[0].group_id, "fits");
    assert_eq!(budget.available(), 1000);
    let _server = task.await.unwrap();
}

#[tokio::test]
async fn a_response_waits_for_budget_room_until_its_deadline_and_gets_it_once_freed() {
    let budget = ResponseBudget::new(1000);
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let config = limited(300, 1 << 20, &budget);
    let conn = Connection::start("fake:9092", client, config, Arc::default());
    let task = tokio::spawn(async move {
        for _ in 0..3 {
            let (_, _, id) = read_request(&mut server).await.unwrap();
            write_filler(&mut server, id, 800).await;
        }
        server
    });
    // The first response is held (its bytes are kept): 800 of 1000 bytes reserved.
    let held = conn
        .round_trip(0, &ListGroupsRequest::default())
        .await
        .unwrap();
    assert_eq!(budget.available(), 200);
    // The second finds no room before its deadline: it fails alone, named.
    let err = conn
        .round_trip(0, &ListGroupsRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            KafkaErrorKind::OverMemoryBudget {
                size: 800,
                budget: 1000,
                waited: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no room"), "{err}");
    // Once the held bytes are dropped, the next response gets its room.
    drop(held);
    let third = conn
        .round_trip(0, &ListGroupsRequest::default())
        .await
        .unwrap();
    assert_eq!(third.len(), 800 - 4, "the body, after the correlation id");
    assert_eq!(budget.available(), 200);
    drop(third);
    assert_eq!(budget.available(), 1000);
    let _server = task.await.unwrap();
}
