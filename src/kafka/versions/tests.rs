use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, ConsumerGroupDescribeResponse, DescribeConfigsResponse,
    DescribeGroupsResponse, DescribeShareGroupOffsetsResponse, FetchResponse,
    FindCoordinatorResponse, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse,
    ListGroupsResponse, ListOffsetsResponse, MetadataResponse, OffsetFetchResponse,
    SaslAuthenticateResponse, SaslHandshakeResponse, ShareGroupDescribeResponse, SyncGroupResponse,
};

use super::*;
use crate::kafka::wire::test_util::enc;

/// kafka-protocol's encoding of an empty response of `api` at `version` (its own encoder,
/// independent of tidemark's decoders).
fn empty_response(api: ApiKey, version: i16) -> Bytes {
    match api {
        ApiKey::ApiVersions => enc(&ApiVersionsResponse::default(), version),
        ApiKey::Metadata => enc(&MetadataResponse::default(), version),
        ApiKey::ListGroups => enc(&ListGroupsResponse::default(), version),
        ApiKey::FindCoordinator => enc(&FindCoordinatorResponse::default(), version),
        ApiKey::DescribeGroups => enc(&DescribeGroupsResponse::default(), version),
        ApiKey::OffsetFetch => enc(&OffsetFetchResponse::default(), version),
        ApiKey::ListOffsets => enc(&ListOffsetsResponse::default(), version),
        ApiKey::Fetch => enc(&FetchResponse::default(), version),
        ApiKey::DescribeConfigs => enc(&DescribeConfigsResponse::default(), version),
        ApiKey::SaslHandshake => enc(&SaslHandshakeResponse::default(), version),
        ApiKey::SaslAuthenticate => enc(&SaslAuthenticateResponse::default(), version),
        ApiKey::ConsumerGroupDescribe => enc(&ConsumerGroupDescribeResponse::default(), version),
        ApiKey::ShareGroupDescribe => enc(&ShareGroupDescribeResponse::default(), version),
        ApiKey::DescribeShareGroupOffsets => {
            enc(&DescribeShareGroupOffsetsResponse::default(), version)
        }
        ApiKey::JoinGroup => enc(&JoinGroupResponse::default(), version),
        ApiKey::SyncGroup => enc(&SyncGroupResponse::default(), version),
        ApiKey::Heartbeat => enc(&HeartbeatResponse::default(), version),
        ApiKey::LeaveGroup => enc(&LeaveGroupResponse::default(), version),
        other => panic!("no response type listed for {other:?}: add it here"),
    }
}

fn within(inner: (i16, i16), outer: (i16, i16)) -> bool {
    outer.0 <= inner.0 && inner.0 <= inner.1 && inner.1 <= outer.1
}

#[test]
fn every_api_has_one_row() {
    let mut apis: Vec<i16> = REQUEST_VERSIONS.iter().map(|r| r.api as i16).collect();
    apis.sort_unstable();
    apis.dedup();
    assert_eq!(apis.len(), REQUEST_VERSIONS.len(), "an API listed twice");
    assert_eq!(REQUEST_VERSIONS.len(), 18);
}

/// What is sent is decoded, and kafka-protocol can encode it.
#[test]
fn sent_versions_are_decoded_and_encodable() {
    for row in REQUEST_VERSIONS {
        assert!(within(row.sent, row.decoded), "{row:?}");
        let encodable = row.api.valid_versions();
        assert!(
            within(row.sent, (encodable.min, encodable.max)),
            "{row:?}: kafka-protocol encodes {}..={}",
            encodable.min,
            encodable.max
        );
    }
}

/// The decoded range of a row is the decoder's real one: an empty response kafka-protocol
/// encodes at each version in it decodes, and the versions just outside it are refused.
#[test]
fn decoded_versions_are_the_decoders_own() {
    for row in REQUEST_VERSIONS {
        let (min, max) = row.decoded;
        for v in min..=max {
            let body = empty_response(row.api, v);
            let decoded = decode_any(row.api, body, v).expect("api in the table");
            assert_eq!(decoded, Ok(()), "{:?} v{v}", row.api);
        }
        for v in [min - 1, max + 1] {
            let refused = decode_any(row.api, Bytes::new(), v).expect("api in the table");
            assert!(
                matches!(refused, Err(DecodeError::UnsupportedVersion { .. })),
                "{:?} v{v}: {refused:?}",
                row.api
            );
        }
    }
}

/// The trait constants the connection negotiates with are the table's.
#[test]
fn the_trait_constants_are_the_table() {
    fn row<R: ApiRequest>() -> (ApiKey, (i16, i16)) {
        (R::API, (R::MIN_VERSION, R::MAX_VERSION))
    }
    for (api, sent) in [
        row::<ListGroupsRequest>(),
        row::<FindCoordinatorRequest>(),
        row::<OffsetFetchRequest>(),
        row::<FetchRequest>(),
        row::<JoinGroupRequest>(),
    ] {
        let found = REQUEST_VERSIONS.iter().find(|r| r.api == api);
        assert_eq!(found.map(|r| r.sent), Some(sent), "{api:?}");
    }
    // The narrowed rows keep their stated ranges; the others send all their decoder reads.
    assert_eq!(
        <FindCoordinatorRequest as ApiRequest>::MAX_VERSION,
        4,
        "FindCoordinator v5 is not sent"
    );
    assert_eq!(
        (
            <ListGroupsRequest as ApiRequest>::MIN_VERSION,
            <ListGroupsRequest as ApiRequest>::MAX_VERSION
        ),
        (
            wire::list_groups::ListGroupsResponse::MIN_VERSION,
            wire::list_groups::ListGroupsResponse::MAX_VERSION
        )
    );
}
