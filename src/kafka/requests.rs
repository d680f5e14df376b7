//! Every request tidemark sends, built by pure functions.
//!
//! The operations in [`super::admin`] call these, and `proto-tests` encodes them at every
//! version tidemark speaks and compares the bytes with golden files, so what is tested is
//! exactly what goes on the wire.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, ConsumerGroupDescribeRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, DescribeShareGroupOffsetsRequest, FetchRequest, FindCoordinatorRequest,
    GroupId, ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetFetchRequest,
    SaslAuthenticateRequest, SaslHandshakeRequest, ShareGroupDescribeRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::TopicPartition;

/// ListOffsets timestamp asking for the log start offset (low watermark).
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp asking for the high watermark.
pub const LATEST: i64 = -1;
/// DescribeConfigs resource type of a topic.
pub const TOPIC_RESOURCE: i8 = 2;

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// ApiVersions, announcing tidemark and its version (v3+ fields).
pub fn api_versions() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("tidemark"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")))
}

/// SaslHandshake v1: the SASL mechanism the client wants (then SaslAuthenticate follows).
pub fn sasl_handshake(mechanism: &str) -> SaslHandshakeRequest {
    SaslHandshakeRequest::default().with_mechanism(str(mechanism))
}

/// SaslAuthenticate carrying one client message of the SASL exchange. The bytes may hold a
/// secret (PLAIN's password, an OAUTHBEARER token): never log the request.
pub fn sasl_authenticate(auth_bytes: Bytes) -> SaslAuthenticateRequest {
    SaslAuthenticateRequest::default().with_auth_bytes(auth_bytes)
}

/// Metadata for all topics, never creating any.
pub fn metadata_all(version: i16) -> MetadataRequest {
    let req = MetadataRequest::default().with_topics(None);
    if version >= 4 {
        req.with_allow_auto_topic_creation(false)
    } else {
        req
    }
}

/// ListGroups for all groups (no state or type filter), at any version.
///
/// At v5 the empty type filter lists groups of every type, each with its `group_type`; below
/// v5 the request has no type filter and the broker still lists every type (share and
/// streams groups included, their protocol types `share` and `streams`), only without
/// `group_type`. Source, Apache Kafka trunk at 4.2.0-SNAPSHOT (October 2025):
/// `GroupMetadataManager.listGroups` keeps a group when `typesFilter` is empty or contains its
/// type, and neither `KafkaApis.handleListGroupsRequest` nor `GroupCoordinatorService.listGroups`
/// looks at the request version.
pub fn list_groups() -> ListGroupsRequest {
    ListGroupsRequest::default()
}

/// ListGroups v5+ for the groups of `types` only (`classic`, `consumer`, `share`, `streams`;
/// the broker compares case-insensitively, and a type it does not know matches no group). An
/// empty `types` lists every type, like [`list_groups`]. kafka-protocol refuses to encode a
/// non-empty filter below v5, where the field does not exist.
pub fn list_groups_v5(types: &[&str]) -> ListGroupsRequest {
    ListGroupsRequest::default().with_types_filter(types.iter().map(|t| str(t)).collect())
}

/// FindCoordinator v4+: many group keys at once.
pub fn find_coordinators(groups: &[String]) -> FindCoordinatorRequest {
    FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(groups.iter().map(|g| str(g)).collect())
}

/// FindCoordinator v0..=3: one group key.
pub fn find_coordinator(group: &str) -> FindCoordinatorRequest {
    FindCoordinatorRequest::default()
        .with_key(str(group))
        .with_key_type(0)
}

/// DescribeGroups for many groups.
pub fn describe_groups(groups: &[String]) -> DescribeGroupsRequest {
    DescribeGroupsRequest::default()
        .with_groups(groups.iter().map(|g| GroupId(str(g))).collect())
        .with_include_authorized_operations(false)
}

/// ConsumerGroupDescribe (KIP-848 consumer groups) for many groups of one coordinator.
pub fn consumer_group_describe(groups: &[String]) -> ConsumerGroupDescribeRequest {
    ConsumerGroupDescribeRequest::default()
        .with_group_ids(groups.iter().map(|g| GroupId(str(g))).collect())
        .with_include_authorized_operations(false)
}

/// ShareGroupDescribe (KIP-932 share groups) for many groups of one coordinator.
pub fn share_group_describe(groups: &[String]) -> ShareGroupDescribeRequest {
    ShareGroupDescribeRequest::default()
        .with_group_ids(groups.iter().map(|g| GroupId(str(g))).collect())
        .with_include_authorized_operations(false)
}

/// DescribeShareGroupOffsets for every share partition of many groups of one coordinator:
/// `topics` null means all topic-partitions of the group (an empty array would mean none;
/// Apache Kafka's `KafkaApis.handleDescribeShareGroupOffsetsRequest` treats the two apart).
pub fn describe_share_group_offsets(groups: &[String]) -> DescribeShareGroupOffsetsRequest {
    let groups = groups.iter().map(|g| {
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(str(g)))
            .with_topics(None)
    });
    DescribeShareGroupOffsetsRequest::default().with_groups(groups.collect())
}

/// OffsetFetch v8+: all committed partitions of many groups.
pub fn offset_fetch_groups(groups: &[String]) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_groups(
            groups
                .iter()
                .map(|g| {
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(str(g)))
                        .with_topics(None)
                })
                .collect(),
        )
        .with_require_stable(false)
}

/// OffsetFetch v2..=7: all committed partitions of one group.
pub fn offset_fetch_group(group: &str) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_topics(None)
        .with_require_stable(false)
}

/// ListOffsets for `partitions` at `timestamp` ([`EARLIEST`] or [`LATEST`]).
pub fn list_offsets(partitions: &[TopicPartition], timestamp: i64) -> ListOffsetsRequest {
    let mut by_topic: BTreeMap<&Arc<str>, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, parts)| {
            let partitions = parts
                .into_iter()
                .map(|p| {
                    ListOffsetsPartition::default()
                        .with_partition_index(p)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(timestamp)
                })
                .collect();
            ListOffsetsTopic::default()
                .with_name(TopicName(str(topic)))
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(0)
        .with_topics(topics)
}

/// DescribeConfigs of topics: all keys, or only `keys`.
pub fn describe_topic_configs(topics: &[String], keys: Option<&[&str]>) -> DescribeConfigsRequest {
    let resources = topics
        .iter()
        .map(|t| {
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(str(t))
                .with_configuration_keys(keys.map(|k| k.iter().map(|k| str(k)).collect()))
        })
        .collect();
    DescribeConfigsRequest::default()
        .with_resources(resources)
        .with_include_synonyms(false)
        .with_include_documentation(false)
}

/// One partition of a timestamp Fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchAt {
    pub tp: TopicPartition,
    pub offset: i64,
    pub max_bytes: i32,
}

/// Longest a Fetch may wait on the broker for data. tidemark only fetches partitions that
/// have records past the target, so the broker answers at once in practice.
pub const FETCH_MAX_WAIT_MS: i32 = 100;

/// A sessionless Fetch (read uncommitted) of `partitions`, answered as soon as any data is
/// there (`min_bytes` 1, the shape of a standard consumer fetch).
pub fn fetch(partitions: &[FetchAt], response_max_bytes: i32) -> FetchRequest {
    let mut by_topic: BTreeMap<&Arc<str>, Vec<&FetchAt>> = BTreeMap::new();
    for f in partitions {
        by_topic.entry(&f.tp.topic).or_default().push(f);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, parts)| {
            let partitions = parts
                .into_iter()
                .map(|f| {
                    FetchPartition::default()
                        .with_partition(f.tp.partition)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(f.offset)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(f.max_bytes)
                })
                .collect();
            FetchTopic::default()
                .with_topic(TopicName(str(topic)))
                .with_partitions(partitions)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(FETCH_MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// JoinGroup for tidemark's coordination group (`crate::ha`): one protocol of its own
/// protocol type. `member_id` is empty on the first join (v4+ then answers
/// MEMBER_ID_REQUIRED with the id to join again with).
pub fn join_group(
    version: i16,
    join: &JoinGroupParams<'_>,
) -> kafka_protocol::messages::JoinGroupRequest {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    let protocol = JoinGroupRequestProtocol::default()
        .with_name(str(join.protocol_name))
        .with_metadata(join.metadata.clone());
    let req = kafka_protocol::messages::JoinGroupRequest::default()
        .with_group_id(GroupId(str(join.group)))
        .with_session_timeout_ms(join.session_timeout_ms)
        .with_member_id(str(join.member_id))
        .with_protocol_type(str(join.protocol_type))
        .with_protocols(vec![protocol]);
    if version >= 1 {
        req.with_rebalance_timeout_ms(join.rebalance_timeout_ms)
    } else {
        req
    }
}

/// What [`join_group`] sends.
#[derive(Clone, Debug)]
pub struct JoinGroupParams<'a> {
    pub group: &'a str,
    pub member_id: &'a str,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: &'a str,
    pub protocol_name: &'a str,
    pub metadata: Bytes,
}

/// SyncGroup: the leader sends every member's assignment, the others none.
pub fn sync_group(
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    protocol: (&str, &str),
    assignments: &[(String, Bytes)],
) -> kafka_protocol::messages::SyncGroupRequest {
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    let assignments = assignments
        .iter()
        .map(|(member, bytes)| {
            SyncGroupRequestAssignment::default()
                .with_member_id(str(member))
                .with_assignment(bytes.clone())
        })
        .collect();
    let req = kafka_protocol::messages::SyncGroupRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_generation_id(generation)
        .with_member_id(str(member_id))
        .with_assignments(assignments);
    if version >= 5 {
        req.with_protocol_type(Some(str(protocol.0)))
            .with_protocol_name(Some(str(protocol.1)))
    } else {
        req
    }
}

/// Heartbeat of a member of generation `generation`.
pub fn heartbeat(
    group: &str,
    generation: i32,
    member_id: &str,
) -> kafka_protocol::messages::HeartbeatRequest {
    kafka_protocol::messages::HeartbeatRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_generation_id(generation)
        .with_member_id(str(member_id))
}

/// LeaveGroup for one member (v3+ in the batched form).
pub fn leave_group(
    version: i16,
    group: &str,
    member_id: &str,
) -> kafka_protocol::messages::LeaveGroupRequest {
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    let req =
        kafka_protocol::messages::LeaveGroupRequest::default().with_group_id(GroupId(str(group)));
    if version >= 3 {
        req.with_members(vec![
            MemberIdentity::default().with_member_id(str(member_id))
        ])
    } else {
        req.with_member_id(str(member_id))
    }
}
