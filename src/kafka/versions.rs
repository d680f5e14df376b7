//! The one table of the requests tidemark sends and the versions it sends them at.
//!
//! Each decoder in [`super::wire`] states the versions it reads (`MIN_VERSION`,
//! `MAX_VERSION`, next to the field layouts that depend on them). A request is sent at those
//! versions, unless its row below narrows them (`sent MIN..=MAX`) and says why; a narrowed
//! range must lie inside the decoder's, which a compile-time assertion checks per row. So
//! a decoder that learns a version makes tidemark send it (the request goldens of
//! `proto-tests` then ask for it), and no version is sent whose response cannot be decoded.

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ConsumerGroupDescribeRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, DescribeShareGroupOffsetsRequest, FetchRequest, FindCoordinatorRequest,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest,
    MetadataRequest, OffsetFetchRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
    ShareGroupDescribeRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::Encodable;

use super::caps::Shape;
use super::wire::{self, DecodeError};

/// A request tidemark sends: its API, the versions tidemark speaks, its response decoder,
/// and (through [`Shape`]) what bounds the size of its response.
pub trait ApiRequest: Encodable + Shape + Send + Sync {
    const API: ApiKey;
    /// The API's name, for errors.
    const NAME: &'static str;
    /// Lowest version tidemark sends (its decoder reads it).
    const MIN_VERSION: i16;
    /// Highest version tidemark sends (its decoder reads it).
    const MAX_VERSION: i16;
    type Response: Send;
    fn decode_response(body: Bytes, version: i16) -> Result<Self::Response, DecodeError>;
}

/// One row of [`REQUEST_VERSIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestVersions {
    pub api: ApiKey,
    /// The versions sent.
    pub sent: (i16, i16),
    /// The versions the response decoder reads (a superset of `sent`).
    pub decoded: (i16, i16),
}

/// The first of its arguments: a row's narrowed bound, else the decoder's.
macro_rules! first {
    ($a:expr $(, $rest:expr)*) => {
        $a
    };
}

macro_rules! api_requests {
    ($(
        $req:ty : $api:ident => $resp:ty $(, sent $min:literal ..= $max:literal)? ;
    )*) => {
        $(
            impl ApiRequest for $req {
                const API: ApiKey = ApiKey::$api;
                const NAME: &'static str = stringify!($api);
                const MIN_VERSION: i16 = first!($($min,)? <$resp>::MIN_VERSION);
                const MAX_VERSION: i16 = first!($($max,)? <$resp>::MAX_VERSION);
                type Response = $resp;
                fn decode_response(body: Bytes, version: i16) -> Result<$resp, DecodeError> {
                    <$resp>::decode(body, version)
                }
            }
            const _: () = assert!(
                <$resp>::MIN_VERSION <= <$req as ApiRequest>::MIN_VERSION
                    && <$req as ApiRequest>::MIN_VERSION <= <$req as ApiRequest>::MAX_VERSION
                    && <$req as ApiRequest>::MAX_VERSION <= <$resp>::MAX_VERSION,
                concat!(stringify!($api), ": versions sent outside what its decoder reads"),
            );
        )*

        /// Every request tidemark sends, the versions it sends and those its decoder reads.
        pub const REQUEST_VERSIONS: &[RequestVersions] = &[$(
            RequestVersions {
                api: ApiKey::$api,
                sent: (<$req as ApiRequest>::MIN_VERSION, <$req as ApiRequest>::MAX_VERSION),
                decoded: (<$resp>::MIN_VERSION, <$resp>::MAX_VERSION),
            },
        )*];

        /// Decodes `body` with the response decoder of `api`'s request, `None` for an API
        /// tidemark does not send.
        #[cfg(test)]
        fn decode_any(api: ApiKey, body: Bytes, version: i16) -> Option<Result<(), DecodeError>> {
            $(
                if api == ApiKey::$api {
                    return Some(<$req as ApiRequest>::decode_response(body, version).map(drop));
                }
            )*
            None
        }
    };
}

api_requests! {
    ApiVersionsRequest: ApiVersions => wire::api_versions::ApiVersionsResponse;
    MetadataRequest: Metadata => wire::metadata::MetadataResponse;
    // v5 adds the group type (KIP-848); with an empty type filter every version lists every
    // group type (see `requests::list_groups`).
    ListGroupsRequest: ListGroups => wire::list_groups::ListGroupsResponse;
    // v5 (KIP-890) only adds an error code of transaction coordinators: nothing for groups,
    // so tidemark stays at the v4 it is tested with against brokers.
    FindCoordinatorRequest: FindCoordinator => wire::find_coordinator::FindCoordinatorResponse,
        sent 0..=4;
    DescribeGroupsRequest: DescribeGroups => wire::describe_groups::DescribeGroupsResponse;
    // From v2: "all topics" (null) is not expressible in v1.
    OffsetFetchRequest: OffsetFetch => wire::offset_fetch::OffsetFetchResponse, sent 2..=8;
    ListOffsetsRequest: ListOffsets => wire::list_offsets::ListOffsetsResponse;
    // The decoder stops at v12 because v13+ addresses topics by id only.
    FetchRequest: Fetch => wire::fetch::FetchResponse;
    DescribeConfigsRequest: DescribeConfigs => wire::describe_configs::DescribeConfigsResponse;
    // v1 only: SaslHandshake v0 would be followed by raw SASL frames.
    SaslHandshakeRequest: SaslHandshake => wire::sasl::SaslHandshakeResponse, sent 1..=1;
    SaslAuthenticateRequest: SaslAuthenticate => wire::sasl::SaslAuthenticateResponse;
    // The Kafka 4.x group APIs, at every version both kafka-protocol 0.18 and the decoders
    // know. ShareGroupDescribe v0 was Kafka 4.0's early access, removed in 4.1;
    // DescribeShareGroupOffsets v1 (Kafka 4.2) is unknown to kafka-protocol 0.18. There is
    // no StreamsGroupDescribe in kafka-protocol 0.18.
    ConsumerGroupDescribeRequest: ConsumerGroupDescribe
        => wire::consumer_group_describe::ConsumerGroupDescribeResponse;
    ShareGroupDescribeRequest: ShareGroupDescribe
        => wire::share_group_describe::ShareGroupDescribeResponse;
    DescribeShareGroupOffsetsRequest: DescribeShareGroupOffsets
        => wire::describe_share_group_offsets::DescribeShareGroupOffsetsResponse;
    // The coordination group of `crate::ha`. JoinGroup from v2 (throttle time, rebalance
    // timeout), the others from v1 (throttle time); LeaveGroup below v3 names one member,
    // from v3 a batch.
    JoinGroupRequest: JoinGroup => wire::membership::JoinGroupResponse, sent 2..=9;
    SyncGroupRequest: SyncGroup => wire::membership::SyncGroupResponse, sent 1..=5;
    HeartbeatRequest: Heartbeat => wire::membership::HeartbeatResponse, sent 1..=4;
    LeaveGroupRequest: LeaveGroup => wire::membership::LeaveGroupResponse, sent 1..=5;
}

#[cfg(test)]
mod tests;
