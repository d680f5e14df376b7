//! A scripted Kafka cluster for tests: several in-process brokers (one tokio TCP listener
//! per node id on 127.0.0.1) that speak the Kafka protocol with `kafka-protocol`'s
//! `broker` feature (request decoding, response encoding).
//!
//! Every node answers from one shared [`model`](Stub) of the cluster — topics with
//! partition leaders, watermarks and records, topic configs, groups with coordinators,
//! members and committed offsets — the way a real broker would:
//!
//! * ApiVersions advertises, per API, kafka-protocol's version range (override with
//!   [`Stub::set_versions`] / [`Stub::remove_api`]); a request above the advertised
//!   ApiVersions range is answered UNSUPPORTED_VERSION in a v0 body (KIP-511).
//! * Metadata lists every node and every topic of the model.
//! * ListOffsets and Fetch answer NOT_LEADER_OR_FOLLOWER on a node that does not lead
//!   the partition, UNKNOWN_TOPIC_OR_PARTITION for one not in the model; Fetch answers
//!   OFFSET_OUT_OF_RANGE (with the log start offset) outside `low..=high`.
//! * FindCoordinator names the group's coordinator (default: the first node);
//!   DescribeGroups and OffsetFetch answer NOT_COORDINATOR on any other node;
//!   ListGroups on a node lists the groups it coordinates.
//! * DescribeConfigs answers a topic's configs (all, or the keys asked for).
//! * ListGroups v5 names each group's type ([`StubGroup::group_type`]);
//!   ConsumerGroupDescribe describes the groups of type `consumer` (members' current
//!   assignments from [`StubMember::owns`]) and answers GROUP_ID_NOT_FOUND for any other;
//!   ShareGroupDescribe and DescribeShareGroupOffsets do the same for `share` groups, whose
//!   `offsets` are their share-partition start offsets.
//!
//! So moving a leader ([`Stub::set_leader`]) or a coordinator ([`Stub::set_coordinator`])
//! makes the old node answer with the routing error on its own. Per-item error codes are
//! injected with [`Stub::fail`] / [`Stub::fail_always`]; anything else (garbage bytes,
//! closing the connection, never answering, a hand-built response) is scripted with a
//! [`Handler`] that sees each decoded request and returns a [`Reply`] —
//! [`Reply::Default`] falls back to the model. Every request is recorded
//! ([`Stub::requests`]) with its node, connection, API, version and decoded body.
//!
//! Broker faults and topology changes, per node:
//!
//! * [`Stub::stop_node`] (connects refused, connections dropped, still in Metadata) and
//!   [`Stub::restart_node`] (listening again on the same address): a rolling restart.
//! * [`Stub::remove_node`] (stopped and gone from Metadata for good),
//!   [`Stub::retire_node`] (gone from Metadata but still serving, so a test can check
//!   that clients close their connections: [`Stub::open_connections`]) and
//!   [`Stub::add_node`] (a new node id on a new port): a broker decommissioned or
//!   replaced.
//! * [`Stub::set_node_delay`] (every reply of the node waits first: a slow broker) and
//!   [`Stub::hang_node`] (accepts and reads, never answers, not even ApiVersions);
//!   [`Stub::drop_connections`] closes a node's open connections.
//!
//! ```ignore
//! let stub = StubCluster::start(&[1, 2]).await;
//! stub.add_topic("orders", &[1, 2]);
//! stub.set_watermarks("orders", 0, 0, 10);
//! stub.add_group(StubGroup::consumer("g").coordinator(2).offset("orders", 0, 4));
//! stub.fail(ApiKey::OffsetFetch, Target::group("g"), code::COORDINATOR_LOAD_IN_PROGRESS, 2);
//! // ... connect a client to stub.bootstrap() ...
//! assert_eq!(stub.count_on(2, ApiKey::OffsetFetch), 3);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as Kip848Assignment, DescribedGroup as Kip848Group, Member as Kip848Member,
    TopicPartitions as Kip848Partitions,
};
use kafka_protocol::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition as AssignedPartitions,
};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as ShareOffsetsGroup,
    DescribeShareGroupOffsetsResponsePartition as ShareOffsetsPartition,
    DescribeShareGroupOffsetsResponseTopic as ShareOffsetsTopic,
};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::share_group_describe_response::{
    Assignment as ShareAssignment, DescribedGroup as ShareGroup, Member as ShareMember,
    TopicPartitions as SharePartitions,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetFetchRequest,
    OffsetFetchResponse, RequestHeader, ResponseHeader, ShareGroupDescribeRequest,
    ShareGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Largest request frame a stub node accepts; a larger size prefix closes the connection.
pub const MAX_REQUEST_FRAME: usize = 16 * 1024 * 1024;

/// The APIs the stub decodes and answers from its model.
pub const SUPPORTED_APIS: [ApiKey; 12] = [
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::ListGroups,
    ApiKey::FindCoordinator,
    ApiKey::DescribeGroups,
    ApiKey::OffsetFetch,
    ApiKey::ListOffsets,
    ApiKey::Fetch,
    ApiKey::DescribeConfigs,
    ApiKey::ConsumerGroupDescribe,
    ApiKey::ShareGroupDescribe,
    ApiKey::DescribeShareGroupOffsets,
];

/// Kafka error codes the tests script.
pub mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
}

/// ListOffsets timestamp asking for the log start offset.
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp asking for the high watermark.
pub const LATEST: i64 = -1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

// ---------------------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------------------

/// A decoded request body.
#[derive(Clone, Debug)]
pub enum Request {
    ApiVersions(ApiVersionsRequest),
    Metadata(MetadataRequest),
    ListGroups(ListGroupsRequest),
    FindCoordinator(FindCoordinatorRequest),
    DescribeGroups(DescribeGroupsRequest),
    OffsetFetch(OffsetFetchRequest),
    ListOffsets(ListOffsetsRequest),
    Fetch(FetchRequest),
    DescribeConfigs(DescribeConfigsRequest),
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
    ShareGroupDescribe(ShareGroupDescribeRequest),
    DescribeShareGroupOffsets(DescribeShareGroupOffsetsRequest),
    /// Any other API: the body, undecoded. The model cannot answer it ([`Reply::Default`]
    /// closes the connection); a handler can.
    Other(Bytes),
}

impl Request {
    fn decode(api: ApiKey, mut body: Bytes, version: i16) -> anyhow::Result<Request> {
        let b = &mut body;
        Ok(match api {
            ApiKey::ApiVersions => Request::ApiVersions(Decodable::decode(b, version)?),
            ApiKey::Metadata => Request::Metadata(Decodable::decode(b, version)?),
            ApiKey::ListGroups => Request::ListGroups(Decodable::decode(b, version)?),
            ApiKey::FindCoordinator => Request::FindCoordinator(Decodable::decode(b, version)?),
            ApiKey::DescribeGroups => Request::DescribeGroups(Decodable::decode(b, version)?),
            ApiKey::OffsetFetch => Request::OffsetFetch(Decodable::decode(b, version)?),
            ApiKey::ListOffsets => Request::ListOffsets(Decodable::decode(b, version)?),
            ApiKey::Fetch => Request::Fetch(Decodable::decode(b, version)?),
            ApiKey::DescribeConfigs => Request::DescribeConfigs(Decodable::decode(b, version)?),
            ApiKey::ConsumerGroupDescribe => {
                Request::ConsumerGroupDescribe(Decodable::decode(b, version)?)
            }
            ApiKey::ShareGroupDescribe => {
                Request::ShareGroupDescribe(Decodable::decode(b, version)?)
            }
            ApiKey::DescribeShareGroupOffsets => {
                Request::DescribeShareGroupOffsets(Decodable::decode(b, version)?)
            }
            _ => Request::Other(body),
        })
    }
}

/// A response body the stub can encode (see [`Reply::Respond`]).
#[derive(Clone, Debug)]
pub enum Response {
    ApiVersions(ApiVersionsResponse),
    Metadata(MetadataResponse),
    ListGroups(ListGroupsResponse),
    FindCoordinator(FindCoordinatorResponse),
    DescribeGroups(DescribeGroupsResponse),
    OffsetFetch(OffsetFetchResponse),
    ListOffsets(ListOffsetsResponse),
    Fetch(FetchResponse),
    DescribeConfigs(DescribeConfigsResponse),
    ConsumerGroupDescribe(ConsumerGroupDescribeResponse),
    ShareGroupDescribe(ShareGroupDescribeResponse),
    DescribeShareGroupOffsets(DescribeShareGroupOffsetsResponse),
}

macro_rules! response_from_types {
    ($($variant:ident => $ty:ty),*) => {$(
        impl From<$ty> for Response {
            fn from(r: $ty) -> Response {
                Response::$variant(r)
            }
        }
    )*};
}
response_from_types!(
    ApiVersions => ApiVersionsResponse,
    Metadata => MetadataResponse,
    ListGroups => ListGroupsResponse,
    FindCoordinator => FindCoordinatorResponse,
    DescribeGroups => DescribeGroupsResponse,
    OffsetFetch => OffsetFetchResponse,
    ListOffsets => ListOffsetsResponse,
    Fetch => FetchResponse,
    DescribeConfigs => DescribeConfigsResponse,
    ConsumerGroupDescribe => ConsumerGroupDescribeResponse,
    ShareGroupDescribe => ShareGroupDescribeResponse,
    DescribeShareGroupOffsets => DescribeShareGroupOffsetsResponse
);

impl Response {
    /// Encodes the body at `version`. An ApiVersions UNSUPPORTED_VERSION answer is always
    /// encoded as v0, whatever the request's version (KIP-511).
    pub fn encode(&self, version: i16) -> anyhow::Result<Bytes> {
        let mut buf = BytesMut::new();
        match self {
            Response::ApiVersions(r) => {
                let v = if r.error_code == code::UNSUPPORTED_VERSION {
                    0
                } else {
                    version
                };
                r.encode(&mut buf, v)?
            }
            Response::Metadata(r) => r.encode(&mut buf, version)?,
            Response::ListGroups(r) => r.encode(&mut buf, version)?,
            Response::FindCoordinator(r) => r.encode(&mut buf, version)?,
            Response::DescribeGroups(r) => r.encode(&mut buf, version)?,
            Response::OffsetFetch(r) => r.encode(&mut buf, version)?,
            Response::ListOffsets(r) => r.encode(&mut buf, version)?,
            Response::Fetch(r) => r.encode(&mut buf, version)?,
            Response::DescribeConfigs(r) => r.encode(&mut buf, version)?,
            Response::ConsumerGroupDescribe(r) => r.encode(&mut buf, version)?,
            Response::ShareGroupDescribe(r) => r.encode(&mut buf, version)?,
            Response::DescribeShareGroupOffsets(r) => r.encode(&mut buf, version)?,
        }
        Ok(buf.freeze())
    }
}

/// One request as a stub node received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// Order of arrival over the whole stub cluster (0-based).
    pub seq: u64,
    /// Node id of the broker that received it.
    pub node: i32,
    /// Connection it came on (unique over the stub cluster): a redial shows as a new id.
    pub conn: u64,
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub request: Request,
}

impl Received {
    /// The group ids this request names (FindCoordinator keys, DescribeGroups,
    /// ConsumerGroupDescribe, OffsetFetch), in request order.
    pub fn groups(&self) -> Vec<String> {
        match &self.request {
            Request::FindCoordinator(r) if self.version >= 4 => r
                .coordinator_keys
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            Request::FindCoordinator(r) => vec![r.key.as_str().to_owned()],
            Request::DescribeGroups(r) => {
                r.groups.iter().map(|g| g.0.as_str().to_owned()).collect()
            }
            Request::OffsetFetch(r) if self.version >= 8 => r
                .groups
                .iter()
                .map(|g| g.group_id.0.as_str().to_owned())
                .collect(),
            Request::OffsetFetch(r) => vec![r.group_id.0.as_str().to_owned()],
            Request::ConsumerGroupDescribe(r) => r
                .group_ids
                .iter()
                .map(|g| g.0.as_str().to_owned())
                .collect(),
            Request::ShareGroupDescribe(r) => r
                .group_ids
                .iter()
                .map(|g| g.0.as_str().to_owned())
                .collect(),
            Request::DescribeShareGroupOffsets(r) => r
                .groups
                .iter()
                .map(|g| g.group_id.0.as_str().to_owned())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The (topic, partition)s this request names (ListOffsets, Fetch), in request order.
    pub fn partitions(&self) -> Vec<(String, i32)> {
        match &self.request {
            Request::ListOffsets(r) => r
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.name.0.as_str().to_owned(), p.partition_index))
                })
                .collect(),
            Request::Fetch(r) => r
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.topic.0.as_str().to_owned(), p.partition))
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether this request names `topic`/`partition`.
    pub fn names_partition(&self, topic: &str, partition: i32) -> bool {
        self.partitions()
            .iter()
            .any(|(t, p)| t == topic && *p == partition)
    }

    /// Whether this request names `group`.
    pub fn names_group(&self, group: &str) -> bool {
        self.groups().iter().any(|g| g == group)
    }

    /// The timestamp of a ListOffsets request ([`EARLIEST`], [`LATEST`], ...): the one of
    /// its first partition.
    pub fn list_offsets_timestamp(&self) -> Option<i64> {
        match &self.request {
            Request::ListOffsets(r) => r
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .map(|p| p.timestamp),
            _ => None,
        }
    }
}

/// What a [`Handler`] wants done with a request.
#[derive(Debug)]
pub enum Reply {
    /// Answer from the model (as without a handler), faults included.
    Default,
    /// Answer with this body, encoded at the request's version.
    Respond(Response),
    /// Answer with the right response header followed by these bytes as the body.
    Body(Bytes),
    /// Write these bytes as the whole frame after the size prefix (header included).
    Frame(Bytes),
    /// A frame announcing this many bytes after the size prefix: the right response header,
    /// then zeros up to the size, streamed a chunk at a time (never held in memory, so a
    /// test can flood a client with frames of ~100 MiB from many nodes at once).
    Filler(usize),
    /// Close the connection without answering.
    Close,
    /// Never answer; keep reading (the client's request times out).
    Hang,
    /// Wait, then do the inner reply. Later requests on the connection wait too.
    Delay(Duration, Box<Reply>),
}

/// Scripts the stub: sees every decoded request (and the stub, to read or change the
/// model) and decides the [`Reply`]. Called on the connection's task: keep it quick.
pub type Handler = Arc<dyn Fn(&Received, &Stub) -> Reply + Send + Sync>;

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

/// One partition of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StubPartition {
    pub leader: i32,
    pub leader_epoch: i32,
    /// Log start offset (low watermark).
    pub low: i64,
    /// High watermark.
    pub high: i64,
    /// Records still in the log: offset → CreateTime timestamp (ms). Gaps are records
    /// compacted away; Fetch serves each record as its own v2 batch.
    pub records: BTreeMap<i64, i64>,
}

impl StubPartition {
    fn new(leader: i32) -> Self {
        Self {
            leader,
            leader_epoch: 0,
            low: 0,
            high: 0,
            records: BTreeMap::new(),
        }
    }
}

/// One topic of the model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StubTopic {
    pub partitions: BTreeMap<i32, StubPartition>,
    /// Topic configs as DescribeConfigs reports them, e.g. `cleanup.policy` → `compact`.
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

/// One member of a group of the model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StubMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    /// `member_assignment` bytes, e.g. from [`consumer_assignment`].
    pub assignment: Bytes,
    /// The current assignment ConsumerGroupDescribe reports (KIP-848 groups), by topic.
    pub owned: Vec<(String, Vec<i32>)>,
}

impl StubMember {
    pub fn new(member_id: &str, client_id: &str, client_host: &str) -> Self {
        Self {
            member_id: member_id.to_owned(),
            client_id: client_id.to_owned(),
            client_host: client_host.to_owned(),
            ..Self::default()
        }
    }

    pub fn assignment(mut self, bytes: Bytes) -> Self {
        self.assignment = bytes;
        self
    }

    pub fn instance_id(mut self, id: &str) -> Self {
        self.group_instance_id = Some(id.to_owned());
        self
    }

    /// Partitions of `topic` assigned to the member in a KIP-848 group.
    pub fn owns(mut self, topic: &str, partitions: &[i32]) -> Self {
        self.owned.push((topic.to_owned(), partitions.to_vec()));
        self
    }
}

/// One consumer group of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StubGroup {
    pub group_id: String,
    /// `None`: the first node of the stub cluster.
    pub coordinator: Option<i32>,
    pub state: String,
    /// ListGroups v5's `group_type`: `classic` (default), `consumer` (KIP-848), `share`,
    /// `streams`. ConsumerGroupDescribe describes `consumer` groups only.
    pub group_type: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<StubMember>,
    /// Committed offsets by (topic, partition); for a share group, the share-partition
    /// start offsets DescribeShareGroupOffsets reports (-1: not initialised).
    pub offsets: BTreeMap<(String, i32), i64>,
}

impl StubGroup {
    /// A Stable consumer group using the range assignor, no members, no commits.
    pub fn consumer(group_id: &str) -> Self {
        Self {
            group_id: group_id.to_owned(),
            coordinator: None,
            state: "Stable".to_owned(),
            group_type: "classic".to_owned(),
            protocol_type: "consumer".to_owned(),
            protocol: "range".to_owned(),
            members: Vec::new(),
            offsets: BTreeMap::new(),
        }
    }

    /// A Stable share group (type and protocol type `share`); its `offsets` are start offsets.
    pub fn share(group_id: &str) -> Self {
        let mut g = Self::consumer(group_id);
        g.group_type = "share".to_owned();
        g.protocol_type = "share".to_owned();
        g.protocol = String::new();
        g
    }

    /// A Stable KIP-848 consumer group (type `consumer`, the `uniform` assignor).
    pub fn kip848(group_id: &str) -> Self {
        let mut g = Self::consumer(group_id);
        g.group_type = "consumer".to_owned();
        g.protocol = "uniform".to_owned();
        g
    }

    pub fn coordinator(mut self, node: i32) -> Self {
        self.coordinator = Some(node);
        self
    }

    pub fn group_type(mut self, group_type: &str) -> Self {
        self.group_type = group_type.to_owned();
        self
    }

    pub fn state(mut self, state: &str) -> Self {
        self.state = state.to_owned();
        self
    }

    pub fn offset(mut self, topic: &str, partition: i32, offset: i64) -> Self {
        self.offsets.insert((topic.to_owned(), partition), offset);
        self
    }

    pub fn member(mut self, member: StubMember) -> Self {
        self.members.push(member);
        self
    }
}

/// ConsumerProtocol assignment bytes: `version` (i16), then kafka-protocol's encoding of
/// the assigned partitions and `user_data` (the layout of versions 0..=3; a higher
/// `version` is written with the v3 layout, as newer versions only append fields).
pub fn consumer_assignment(
    version: i16,
    topics: &[(&str, &[i32])],
    user_data: Option<&[u8]>,
) -> Bytes {
    let assigned = topics
        .iter()
        .map(|(t, ps)| {
            AssignedPartitions::default()
                .with_topic(TopicName(s(t)))
                .with_partitions(ps.to_vec())
        })
        .collect();
    let msg = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(assigned)
        .with_user_data(user_data.map(Bytes::copy_from_slice));
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    if let Err(e) = msg.encode(&mut buf, version.clamp(0, 3)) {
        panic!("encoding a ConsumerProtocol assignment v{version}: {e}");
    }
    buf.freeze()
}

/// What an injected fault applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every item of the API, and its request-level error (ListGroups).
    Any,
    /// A group (FindCoordinator key, DescribeGroups, OffsetFetch).
    Group(String),
    /// A topic (Metadata, DescribeConfigs) and all of its partitions.
    Topic(String),
    /// One partition (ListOffsets, Fetch, Metadata, OffsetFetch partition-level).
    Partition(String, i32),
}

impl Target {
    pub fn group(g: &str) -> Self {
        Target::Group(g.to_owned())
    }
    pub fn topic(t: &str) -> Self {
        Target::Topic(t.to_owned())
    }
    pub fn partition(t: &str, p: i32) -> Self {
        Target::Partition(t.to_owned(), p)
    }

    fn matches(&self, item: &Item<'_>) -> bool {
        match (self, item) {
            (Target::Any, _) => true,
            (Target::Group(g), Item::Group(i)) => g == i,
            (Target::Topic(t), Item::Topic(i)) => t == i,
            (Target::Topic(t), Item::Partition(i, _)) => t == i,
            (Target::Partition(t, p), Item::Partition(i, q)) => t == i && p == q,
            _ => false,
        }
    }
}

/// An error code the model answers for matching items instead of the real answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub api: ApiKey,
    pub target: Target,
    pub code: i16,
    /// Only on this node (`None`: any node).
    pub node: Option<i32>,
    /// How many more items it applies to (`None`: forever). Each matching item of each
    /// request uses one: ListOffsets' earliest and latest requests use one each.
    pub remaining: Option<u32>,
}

/// An item of a request, as faults see it.
enum Item<'a> {
    Whole,
    Group(&'a str),
    Topic(&'a str),
    Partition(&'a str, i32),
}

#[derive(Default)]
struct Faults(Vec<Fault>);

impl Faults {
    /// The code of the first live fault matching `item`, using it up.
    fn take(&mut self, node: i32, api: ApiKey, item: Item<'_>) -> Option<i16> {
        let fault = self.0.iter_mut().find(|f| {
            f.api == api
                && f.node.is_none_or(|n| n == node)
                && f.remaining != Some(0)
                && f.target.matches(&item)
        })?;
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        Some(fault.code)
    }
}

struct Model {
    nodes: Vec<(i32, SocketAddr)>,
    versions: BTreeMap<i16, (i16, i16)>,
    topics: BTreeMap<String, StubTopic>,
    groups: BTreeMap<String, StubGroup>,
    faults: Faults,
    /// The broker's own cap of a Fetch response (Kafka's `fetch.max.bytes`), if any.
    fetch_max_bytes: Option<usize>,
}

fn port_of(nodes: &[(i32, SocketAddr)], node: i32) -> i32 {
    nodes
        .iter()
        .find(|(n, _)| *n == node)
        .map(|(_, a)| i32::from(a.port()))
        .unwrap_or(-1)
}

fn coordinator_of(groups: &BTreeMap<String, StubGroup>, first: i32, group: &str) -> i32 {
    groups
        .get(group)
        .and_then(|g| g.coordinator)
        .unwrap_or(first)
}

impl Model {
    fn first_node(&self) -> i32 {
        self.nodes.first().map(|(n, _)| *n).unwrap_or(-1)
    }

    /// The error `node` answers for group `id` in `api`: an injected fault, else
    /// NOT_COORDINATOR when it is not the group's coordinator.
    fn group_fault(&mut self, node: i32, api: ApiKey, id: &str) -> Option<i16> {
        let first = self.first_node();
        self.faults.take(node, api, Item::Group(id)).or_else(|| {
            (coordinator_of(&self.groups, first, id) != node).then_some(code::NOT_COORDINATOR)
        })
    }

    fn answer(&mut self, node: i32, version: i16, req: &Request) -> Option<Response> {
        Some(match req {
            Request::ApiVersions(_) => self.api_versions(version).into(),
            Request::Metadata(r) => self.metadata(node, r).into(),
            Request::ListGroups(r) => self.list_groups(node, r).into(),
            Request::FindCoordinator(r) => self.find_coordinator(node, version, r).into(),
            Request::DescribeGroups(r) => self.describe_groups(node, version, r).into(),
            Request::OffsetFetch(r) => self.offset_fetch(node, version, r).into(),
            Request::ListOffsets(r) => self.list_offsets(node, version, r).into(),
            Request::Fetch(r) => self.fetch(node, r).into(),
            Request::DescribeConfigs(r) => self.describe_configs(node, r).into(),
            Request::ConsumerGroupDescribe(r) => self.consumer_group_describe(node, r).into(),
            Request::ShareGroupDescribe(r) => self.share_group_describe(node, r).into(),
            Request::DescribeShareGroupOffsets(r) => self.share_group_offsets(node, r).into(),
            Request::Other(_) => return None,
        })
    }

    fn api_versions(&mut self, version: i16) -> ApiVersionsResponse {
        let supported = self
            .versions
            .get(&(ApiKey::ApiVersions as i16))
            .is_some_and(|(min, max)| (*min..=*max).contains(&version));
        let keys = self
            .versions
            .iter()
            .map(|(k, (min, max))| {
                ApiVersion::default()
                    .with_api_key(*k)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect();
        ApiVersionsResponse::default()
            .with_error_code(if supported {
                code::NONE
            } else {
                code::UNSUPPORTED_VERSION
            })
            .with_api_keys(keys)
    }

    fn metadata(&mut self, node: i32, req: &MetadataRequest) -> MetadataResponse {
        let brokers = self
            .nodes
            .iter()
            .map(|(id, addr)| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(*id))
                    .with_host(s(&addr.ip().to_string()))
                    .with_port(i32::from(addr.port()))
            })
            .collect();
        let names: Vec<String> = match &req.topics {
            None => self.topics.keys().cloned().collect(),
            Some(ts) => ts
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_owned()))
                .collect(),
        };
        let mut topics = Vec::new();
        for name in names {
            let base = MetadataResponseTopic::default().with_name(Some(TopicName(s(&name))));
            let faulted = self.faults.take(node, ApiKey::Metadata, Item::Topic(&name));
            let topic = match (faulted, self.topics.get(&name)) {
                (Some(code), _) => base.with_error_code(code),
                (None, None) => base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
                (None, Some(t)) => {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|(p, part)| {
                            let faulted = self.faults.take(
                                node,
                                ApiKey::Metadata,
                                Item::Partition(&name, *p),
                            );
                            let leader = if faulted.is_some() { -1 } else { part.leader };
                            MetadataResponsePartition::default()
                                .with_error_code(faulted.unwrap_or(code::NONE))
                                .with_partition_index(*p)
                                .with_leader_id(BrokerId(leader))
                                .with_leader_epoch(part.leader_epoch)
                                .with_replica_nodes(vec![BrokerId(part.leader)])
                                .with_isr_nodes(vec![BrokerId(part.leader)])
                        })
                        .collect();
                    base.with_is_internal(t.internal)
                        .with_partitions(partitions)
                }
            };
            topics.push(topic);
        }
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(s("stub-cluster")))
            .with_controller_id(BrokerId(self.first_node()))
            .with_topics(topics)
    }

    fn list_groups(&mut self, node: i32, req: &ListGroupsRequest) -> ListGroupsResponse {
        if let Some(code) = self.faults.take(node, ApiKey::ListGroups, Item::Whole) {
            return ListGroupsResponse::default().with_error_code(code);
        }
        let first = self.first_node();
        let groups = self
            .groups
            .values()
            .filter(|g| coordinator_of(&self.groups, first, &g.group_id) == node)
            .filter(|g| {
                req.states_filter.is_empty()
                    || req.states_filter.iter().any(|f| f.as_str() == g.state)
            })
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(s(&g.group_id)))
                    .with_protocol_type(s(&g.protocol_type))
                    .with_group_state(s(&g.state))
                    .with_group_type(s(&g.group_type))
            })
            .collect();
        ListGroupsResponse::default().with_groups(groups)
    }

    fn find_coordinator(
        &mut self,
        node: i32,
        version: i16,
        req: &FindCoordinatorRequest,
    ) -> FindCoordinatorResponse {
        let keys: Vec<String> = if version >= 4 {
            req.coordinator_keys
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect()
        } else {
            vec![req.key.as_str().to_owned()]
        };
        let first = self.first_node();
        let mut coordinators: Vec<Coordinator> = keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(s(key));
                match self
                    .faults
                    .take(node, ApiKey::FindCoordinator, Item::Group(key))
                {
                    Some(code) => c
                        .with_error_code(code)
                        .with_error_message(Some(s("injected by the stub")))
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                    None => {
                        let id = coordinator_of(&self.groups, first, key);
                        c.with_node_id(BrokerId(id))
                            .with_host(s("127.0.0.1"))
                            .with_port(port_of(&self.nodes, id))
                    }
                }
            })
            .collect();
        if version >= 4 {
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        let c = coordinators.swap_remove(0);
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(if version >= 1 { c.error_message } else { None })
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    }

    fn describe_groups(
        &mut self,
        node: i32,
        version: i16,
        req: &DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let groups = req
            .groups
            .iter()
            .map(|gid| {
                let id = gid.0.as_str();
                let base = DescribedGroup::default().with_group_id(gid.clone());
                let code = self.group_fault(node, ApiKey::DescribeGroups, id);
                if let Some(code) = code {
                    return base.with_error_code(code);
                }
                let Some(g) = self.groups.get(id) else {
                    return base.with_group_state(s("Dead"));
                };
                let members = g
                    .members
                    .iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(s(&m.member_id))
                            .with_group_instance_id(if version >= 4 {
                                m.group_instance_id.as_deref().map(s)
                            } else {
                                None
                            })
                            .with_client_id(s(&m.client_id))
                            .with_client_host(s(&m.client_host))
                            .with_member_metadata(m.metadata.clone())
                            .with_member_assignment(m.assignment.clone())
                    })
                    .collect();
                base.with_group_state(s(&g.state))
                    .with_protocol_type(s(&g.protocol_type))
                    .with_protocol_data(s(&g.protocol))
                    .with_members(members)
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// ConsumerGroupDescribe: KIP-848 groups only; GROUP_ID_NOT_FOUND for any other group
    /// (as Apache Kafka answers a classic group), NOT_COORDINATOR off its coordinator.
    fn consumer_group_describe(
        &mut self,
        node: i32,
        req: &ConsumerGroupDescribeRequest,
    ) -> ConsumerGroupDescribeResponse {
        let groups = req
            .group_ids
            .iter()
            .map(|gid| {
                let id = gid.0.as_str();
                let base = Kip848Group::default().with_group_id(gid.clone());
                let code = self.group_fault(node, ApiKey::ConsumerGroupDescribe, id);
                if let Some(code) = code {
                    return base.with_error_code(code);
                }
                let Some(g) = self.groups.get(id).filter(|g| g.group_type == "consumer") else {
                    return base
                        .with_error_code(code::GROUP_ID_NOT_FOUND)
                        .with_error_message(Some(s("not a consumer group")));
                };
                let members = g.members.iter().map(|m| {
                    let owned = m.owned.iter().map(|(t, ps)| {
                        Kip848Partitions::default()
                            .with_topic_name(TopicName(s(t)))
                            .with_partitions(ps.clone())
                    });
                    let assignment =
                        Kip848Assignment::default().with_topic_partitions(owned.collect());
                    Kip848Member::default()
                        .with_member_id(s(&m.member_id))
                        .with_instance_id(m.group_instance_id.as_deref().map(s))
                        .with_member_epoch(1)
                        .with_client_id(s(&m.client_id))
                        .with_client_host(s(&m.client_host))
                        .with_assignment(assignment.clone())
                        .with_target_assignment(assignment)
                        .with_member_type(1)
                });
                base.with_group_state(s(&g.state))
                    .with_group_epoch(1)
                    .with_assignment_epoch(1)
                    .with_assignor_name(s(&g.protocol))
                    .with_members(members.collect())
            })
            .collect();
        ConsumerGroupDescribeResponse::default().with_groups(groups)
    }

    /// ShareGroupDescribe: share groups only (GROUP_ID_NOT_FOUND for any other group),
    /// members' assignments from [`StubMember::owns`].
    fn share_group_describe(
        &mut self,
        node: i32,
        req: &ShareGroupDescribeRequest,
    ) -> ShareGroupDescribeResponse {
        let groups = req
            .group_ids
            .iter()
            .map(|gid| {
                let id = gid.0.as_str();
                let base = ShareGroup::default().with_group_id(gid.clone());
                let code = self.group_fault(node, ApiKey::ShareGroupDescribe, id);
                if let Some(code) = code {
                    return base.with_error_code(code);
                }
                let Some(g) = self.groups.get(id).filter(|g| g.group_type == "share") else {
                    return base.with_error_code(code::GROUP_ID_NOT_FOUND);
                };
                let members = g.members.iter().map(|m| {
                    let owned = m.owned.iter().map(|(t, ps)| {
                        SharePartitions::default()
                            .with_topic_name(TopicName(s(t)))
                            .with_partitions(ps.clone())
                    });
                    ShareMember::default()
                        .with_member_id(s(&m.member_id))
                        .with_member_epoch(1)
                        .with_client_id(s(&m.client_id))
                        .with_client_host(s(&m.client_host))
                        .with_assignment(
                            ShareAssignment::default().with_topic_partitions(owned.collect()),
                        )
                });
                base.with_group_state(s(&g.state))
                    .with_group_epoch(1)
                    .with_assignment_epoch(1)
                    .with_assignor_name(s("simple"))
                    .with_members(members.collect())
            })
            .collect();
        ShareGroupDescribeResponse::default().with_groups(groups)
    }

    /// DescribeShareGroupOffsets: every start offset of each share group asked for.
    fn share_group_offsets(
        &mut self,
        node: i32,
        req: &DescribeShareGroupOffsetsRequest,
    ) -> DescribeShareGroupOffsetsResponse {
        let groups = req
            .groups
            .iter()
            .map(|rg| {
                let id = rg.group_id.0.as_str();
                let base = ShareOffsetsGroup::default().with_group_id(rg.group_id.clone());
                let code = self.group_fault(node, ApiKey::DescribeShareGroupOffsets, id);
                if let Some(code) = code {
                    return base.with_error_code(code);
                }
                let Some(g) = self.groups.get(id).filter(|g| g.group_type == "share") else {
                    return base.with_error_code(code::GROUP_ID_NOT_FOUND);
                };
                let mut by_topic: BTreeMap<&str, Vec<ShareOffsetsPartition>> = BTreeMap::new();
                for ((t, p), start) in &g.offsets {
                    by_topic.entry(t).or_default().push(
                        ShareOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_start_offset(*start)
                            .with_leader_epoch(0),
                    );
                }
                let topics = by_topic.into_iter().map(|(t, ps)| {
                    ShareOffsetsTopic::default()
                        .with_topic_name(TopicName(s(t)))
                        .with_partitions(ps)
                });
                base.with_topics(topics.collect())
            })
            .collect();
        DescribeShareGroupOffsetsResponse::default().with_groups(groups)
    }

    fn offset_fetch(
        &mut self,
        node: i32,
        version: i16,
        req: &OffsetFetchRequest,
    ) -> OffsetFetchResponse {
        type Wanted = Option<Vec<(String, Vec<i32>)>>;
        /// (group, error code, topic → [(partition, committed offset, error code)])
        type GroupAnswer = (String, i16, BTreeMap<String, Vec<(i32, i64, i16)>>);
        let wanted: Vec<(String, Wanted)> = if version >= 8 {
            req.groups
                .iter()
                .map(|g| {
                    let topics = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.as_str().to_owned(), t.partition_indexes.clone()))
                            .collect()
                    });
                    (g.group_id.0.as_str().to_owned(), topics)
                })
                .collect()
        } else {
            let topics = req.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.as_str().to_owned(), t.partition_indexes.clone()))
                    .collect()
            });
            vec![(req.group_id.0.as_str().to_owned(), topics)]
        };
        let mut answers: Vec<GroupAnswer> = Vec::new();
        for (group, topics) in wanted {
            let code = self.group_fault(node, ApiKey::OffsetFetch, &group);
            let mut by_topic: BTreeMap<String, Vec<(i32, i64, i16)>> = BTreeMap::new();
            if code.is_none() {
                let committed = self
                    .groups
                    .get(&group)
                    .map(|g| g.offsets.clone())
                    .unwrap_or_default();
                let asked: Vec<(String, i32)> = match topics {
                    None => committed.keys().cloned().collect(),
                    Some(ts) => ts
                        .into_iter()
                        .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                        .collect(),
                };
                for (t, p) in asked {
                    let entry =
                        match self
                            .faults
                            .take(node, ApiKey::OffsetFetch, Item::Partition(&t, p))
                        {
                            Some(code) => (p, -1, code),
                            None => (p, committed.get(&(t.clone(), p)).copied().unwrap_or(-1), 0),
                        };
                    by_topic.entry(t).or_default().push(entry);
                }
            }
            answers.push((group, code.unwrap_or(code::NONE), by_topic));
        }
        if version >= 8 {
            let groups = answers
                .into_iter()
                .map(|(group, code, topics)| {
                    let topics = topics
                        .into_iter()
                        .map(|(t, ps)| {
                            let partitions = ps
                                .into_iter()
                                .map(|(p, offset, code)| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(-1)
                                        .with_metadata(Some(s("")))
                                        .with_error_code(code)
                                })
                                .collect();
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(s(&t)))
                                .with_partitions(partitions)
                        })
                        .collect();
                    OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(s(&group)))
                        .with_error_code(code)
                        .with_topics(topics)
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let Some((_, code, topics)) = answers.pop() else {
            return OffsetFetchResponse::default();
        };
        let topics = topics
            .into_iter()
            .map(|(t, ps)| {
                let partitions = ps
                    .into_iter()
                    .map(|(p, offset, code)| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(-1)
                            .with_metadata(Some(s("")))
                            .with_error_code(code)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s(&t)))
                    .with_partitions(partitions)
            })
            .collect();
        OffsetFetchResponse::default()
            .with_error_code(code)
            .with_topics(topics)
    }

    /// The code a partition-addressed request (ListOffsets, Fetch) gets on `node`.
    fn partition_code(&mut self, node: i32, api: ApiKey, topic: &str, p: i32) -> Option<i16> {
        if let Some(code) = self.faults.take(node, api, Item::Partition(topic, p)) {
            return Some(code);
        }
        match self.topics.get(topic).and_then(|t| t.partitions.get(&p)) {
            None => Some(code::UNKNOWN_TOPIC_OR_PARTITION),
            Some(part) if part.leader != node => Some(code::NOT_LEADER_OR_FOLLOWER),
            Some(_) => None,
        }
    }

    fn partition(&self, topic: &str, p: i32) -> Option<&StubPartition> {
        self.topics.get(topic)?.partitions.get(&p)
    }

    fn list_offsets(
        &mut self,
        node: i32,
        version: i16,
        req: &ListOffsetsRequest,
    ) -> ListOffsetsResponse {
        let mut topics = Vec::new();
        for t in &req.topics {
            let name = t.name.0.as_str();
            let mut partitions = Vec::new();
            for p in &t.partitions {
                let base = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1);
                let answer =
                    match self.partition_code(node, ApiKey::ListOffsets, name, p.partition_index) {
                        Some(code) => base.with_error_code(code),
                        None => {
                            let part = self.partition(name, p.partition_index);
                            let part = part.cloned().unwrap_or_else(|| StubPartition::new(node));
                            let (offset, timestamp) = match p.timestamp {
                                EARLIEST => (part.low, -1),
                                LATEST => (part.high, -1),
                                // MAX_TIMESTAMP: the record with the largest timestamp.
                                -3 => part
                                    .records
                                    .iter()
                                    .filter(|(o, _)| (part.low..part.high).contains(*o))
                                    .max_by_key(|(o, ts)| (**ts, -**o))
                                    .map(|(o, ts)| (*o, *ts))
                                    .unwrap_or((-1, -1)),
                                at => part
                                    .records
                                    .iter()
                                    .filter(|(o, _)| (part.low..part.high).contains(*o))
                                    .find(|(_, ts)| **ts >= at)
                                    .map(|(o, ts)| (*o, *ts))
                                    .unwrap_or((-1, -1)),
                            };
                            let r = base.with_offset(offset).with_timestamp(timestamp);
                            if version >= 4 {
                                r.with_leader_epoch(part.leader_epoch)
                            } else {
                                r
                            }
                        }
                    };
                partitions.push(answer);
            }
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        ListOffsetsResponse::default().with_topics(topics)
    }

    fn fetch(&mut self, node: i32, req: &FetchRequest) -> FetchResponse {
        let mut budget = usize::try_from(req.max_bytes)
            .unwrap_or(0)
            .min(self.fetch_max_bytes.unwrap_or(usize::MAX));
        let mut any_data = false;
        let mut responses = Vec::new();
        for t in &req.topics {
            let name = t.topic.0.as_str();
            let mut partitions = Vec::new();
            for p in &t.partitions {
                let base = PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1)
                    .with_records(Some(Bytes::new()));
                if let Some(code) = self.partition_code(node, ApiKey::Fetch, name, p.partition) {
                    partitions.push(base.with_error_code(code));
                    continue;
                }
                let Some(part) = self.partition(name, p.partition) else {
                    continue;
                };
                let base = base
                    .with_high_watermark(part.high)
                    .with_last_stable_offset(part.high)
                    .with_log_start_offset(part.low);
                if p.fetch_offset < part.low || p.fetch_offset > part.high {
                    partitions.push(base.with_error_code(code::OFFSET_OUT_OF_RANGE));
                    continue;
                }
                let batches: Vec<Bytes> = part
                    .records
                    .range(p.fetch_offset..part.high)
                    .map(|(offset, ts)| record_batch(*offset, *ts))
                    .collect();
                let limit = usize::try_from(p.partition_max_bytes)
                    .unwrap_or(0)
                    .min(budget);
                let mut bytes = BytesMut::new();
                for b in &batches {
                    bytes.extend_from_slice(b);
                }
                // Like a broker: the first batch whole even when larger than the limit
                // (KIP-74) if nothing was returned yet, else a byte slice of the log that
                // may end inside a batch.
                let first = batches.first().map_or(0, Bytes::len);
                let len = if any_data {
                    bytes.len().min(limit)
                } else {
                    bytes.len().min(limit.max(first))
                };
                bytes.truncate(len);
                any_data |= len > 0;
                budget = budget.saturating_sub(len);
                partitions.push(base.with_records(Some(bytes.freeze())));
            }
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_partitions(partitions),
            );
        }
        FetchResponse::default().with_responses(responses)
    }

    fn describe_configs(
        &mut self,
        node: i32,
        req: &DescribeConfigsRequest,
    ) -> DescribeConfigsResponse {
        const TOPIC: i8 = 2;
        let results = req
            .resources
            .iter()
            .map(|res| {
                let name = res.resource_name.as_str();
                let base = DescribeConfigsResult::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                if res.resource_type != TOPIC {
                    return base;
                }
                if let Some(code) =
                    self.faults
                        .take(node, ApiKey::DescribeConfigs, Item::Topic(name))
                {
                    return base
                        .with_error_code(code)
                        .with_error_message(Some(s("injected by the stub")));
                }
                let Some(topic) = self.topics.get(name) else {
                    return base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                };
                let configs = topic
                    .configs
                    .iter()
                    .filter(|(k, _)| {
                        res.configuration_keys
                            .as_ref()
                            .is_none_or(|keys| keys.iter().any(|want| want.as_str() == *k))
                    })
                    .map(|(k, v)| {
                        DescribeConfigsResourceResult::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                            // DYNAMIC_TOPIC_CONFIG
                            .with_config_source(1)
                    })
                    .collect();
                base.with_configs(configs)
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }
}

/// One record (10-byte value) at `offset` with CreateTime `timestamp`, as its own v2 batch.
fn record_batch(offset: i64, timestamp: i64) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp,
        key: None,
        value: Some(Bytes::from_static(b"stub-value")),
        headers: IndexMap::new(),
    };
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    let mut buf = BytesMut::new();
    if let Err(e) = RecordBatchEncoder::encode(&mut buf, [&record], &options) {
        panic!("encoding a record batch at offset {offset}: {e}");
    }
    buf.freeze()
}

// ---------------------------------------------------------------------------------------
// The cluster and its handle
// ---------------------------------------------------------------------------------------

struct Inner {
    model: Mutex<Model>,
    log: Mutex<Vec<Received>>,
    handler: Mutex<Option<Handler>>,
    next_seq: AtomicU64,
    next_conn: AtomicU64,
    /// Accept loops, by node id.
    listeners: Mutex<Vec<(i32, AbortHandle)>>,
    /// Connection tasks, by node id.
    tasks: Mutex<Vec<(i32, AbortHandle)>>,
    /// Every node ever started, removed ones included: a restart binds the same address.
    addrs: Mutex<BTreeMap<i32, SocketAddr>>,
    /// Open client connections by node (a connection counts until its task ends).
    open: Mutex<BTreeMap<i32, usize>>,
    /// Per-node delay before every reply.
    delays: Mutex<BTreeMap<i32, Duration>>,
    /// Nodes that read requests but never answer.
    hung: Mutex<BTreeSet<i32>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A cheap, cloneable handle on a running stub cluster: its model, faults, handler and
/// request log. Handlers receive one.
#[derive(Clone)]
pub struct Stub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Stub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stub")
            .field("nodes", &lock(&self.inner.model).nodes)
            .finish_non_exhaustive()
    }
}

/// A running stub cluster. Dropping it stops every node and closes every connection.
#[derive(Debug)]
pub struct StubCluster {
    stub: Stub,
}

impl std::ops::Deref for StubCluster {
    type Target = Stub;
    fn deref(&self) -> &Stub {
        &self.stub
    }
}

impl Drop for StubCluster {
    fn drop(&mut self) {
        for (_, task) in lock(&self.stub.inner.listeners).drain(..) {
            task.abort();
        }
        for (_, task) in lock(&self.stub.inner.tasks).drain(..) {
            task.abort();
        }
    }
}

/// A listener for `node` on a free 127.0.0.1 port. Panics if none can be bound.
async fn bind_node(node: i32) -> (SocketAddr, TcpListener) {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("stub node {node}: binding 127.0.0.1:0: {e}"),
    };
    match listener.local_addr() {
        Ok(a) => (a, listener),
        Err(e) => panic!("stub node {node}: local address: {e}"),
    }
}

impl StubCluster {
    /// Starts one broker per node id, each on its own 127.0.0.1 port, with an empty model
    /// and no handler. Panics if a port cannot be bound.
    pub async fn start(nodes: &[i32]) -> StubCluster {
        assert!(!nodes.is_empty(), "a stub cluster needs at least one node");
        let mut listeners = Vec::new();
        for &node in nodes {
            let (addr, listener) = bind_node(node).await;
            listeners.push((node, addr, listener));
        }
        let versions = SUPPORTED_APIS
            .iter()
            .map(|k| {
                let v = k.valid_versions();
                (*k as i16, (v.min, v.max))
            })
            .collect();
        let model = Model {
            nodes: listeners.iter().map(|(n, a, _)| (*n, *a)).collect(),
            versions,
            topics: BTreeMap::new(),
            groups: BTreeMap::new(),
            faults: Faults::default(),
            fetch_max_bytes: None,
        };
        let stub = Stub {
            inner: Arc::new(Inner {
                model: Mutex::new(model),
                log: Mutex::new(Vec::new()),
                handler: Mutex::new(None),
                next_seq: AtomicU64::new(0),
                next_conn: AtomicU64::new(0),
                listeners: Mutex::new(Vec::new()),
                tasks: Mutex::new(Vec::new()),
                addrs: Mutex::new(listeners.iter().map(|(n, a, _)| (*n, *a)).collect()),
                open: Mutex::new(BTreeMap::new()),
                delays: Mutex::new(BTreeMap::new()),
                hung: Mutex::new(BTreeSet::new()),
            }),
        };
        for (node, _, listener) in listeners {
            stub.listen(node, listener);
        }
        StubCluster { stub }
    }

    /// [`StubCluster::start`] with a handler already set.
    pub async fn start_with(
        nodes: &[i32],
        handler: impl Fn(&Received, &Stub) -> Reply + Send + Sync + 'static,
    ) -> StubCluster {
        let cluster = Self::start(nodes).await;
        cluster.set_handler(handler);
        cluster
    }

    /// The handle (also reachable through `Deref`).
    pub fn handle(&self) -> Stub {
        self.stub.clone()
    }
}

impl Stub {
    fn model(&self) -> MutexGuard<'_, Model> {
        lock(&self.inner.model)
    }

    // ----- topology ---------------------------------------------------------------------

    /// Node ids, in start order.
    pub fn nodes(&self) -> Vec<i32> {
        self.model().nodes.iter().map(|(n, _)| *n).collect()
    }

    /// The address of `node`. Panics for an unknown node.
    pub fn addr(&self, node: i32) -> SocketAddr {
        match self.model().nodes.iter().find(|(n, _)| *n == node) {
            Some((_, a)) => *a,
            None => panic!("the stub cluster has no node {node}"),
        }
    }

    /// `127.0.0.1:<port>` of the first node.
    pub fn bootstrap(&self) -> String {
        let first = self.nodes()[0];
        self.addr(first).to_string()
    }

    /// Stops `node` and returns once it is down: its listener is closed (connects are
    /// refused) and its open connections are dropped. Metadata keeps advertising it.
    pub async fn stop_node(&self, node: i32) {
        // Listener first: an accept in progress registers its connection before it ends.
        wait_finished(abort_node(&self.inner.listeners, node)).await;
        wait_finished(abort_node(&self.inner.tasks, node)).await;
    }

    /// Starts a stopped `node` again on the same address (a broker restart). Panics if the
    /// node was never started, is still listening, or left the metadata.
    pub async fn restart_node(&self, node: i32) {
        let addr = match lock(&self.inner.addrs).get(&node) {
            Some(a) => *a,
            None => panic!("the stub cluster never had node {node}"),
        };
        assert!(
            self.nodes().contains(&node),
            "node {node} left the metadata: add a node instead of restarting it"
        );
        // The port was ours a moment ago; another socket may hold it briefly (tokio sets
        // SO_REUSEADDR, so TIME_WAIT does not), hence a few tries.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    if tries == 1 {
                        eprintln!("stub node {node}: rebinding {addr}: {e}, retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("stub node {node}: rebinding {addr}: {e} (still running?)"),
            }
        };
        self.listen(node, listener);
    }

    /// Starts a new node `node` on a new 127.0.0.1 port and lists it in Metadata (last).
    /// Panics if the id was ever used in this cluster.
    pub async fn add_node(&self, node: i32) -> SocketAddr {
        assert!(
            !lock(&self.inner.addrs).contains_key(&node),
            "the stub cluster already had node {node}"
        );
        let (addr, listener) = bind_node(node).await;
        lock(&self.inner.addrs).insert(node, addr);
        self.model().nodes.push((node, addr));
        self.listen(node, listener);
        addr
    }

    /// Drops `node` from Metadata (and from FindCoordinator's ports) but keeps it serving
    /// the connections it has and accepting new ones, answering from the model: a broker
    /// decommissioned while still running, so a test can see whether clients close their
    /// connections to it ([`Stub::open_connections`]).
    pub fn retire_node(&self, node: i32) {
        self.model().nodes.retain(|(n, _)| *n != node);
    }

    /// Stops `node` and drops it from Metadata for good (a broker decommissioned).
    pub async fn remove_node(&self, node: i32) {
        self.retire_node(node);
        self.stop_node(node).await;
    }

    /// Closes every open connection of `node` (it keeps accepting new ones).
    pub async fn drop_connections(&self, node: i32) {
        wait_finished(abort_node(&self.inner.tasks, node)).await;
    }

    /// Client connections `node` has open now. A connection the client closed counts until
    /// the stub reads its end (at once, unless a reply of it is being delayed).
    pub fn open_connections(&self, node: i32) -> usize {
        lock(&self.inner.open).get(&node).copied().unwrap_or(0)
    }

    /// Every reply of `node` waits `delay` first (a slow broker); `Duration::ZERO` clears
    /// it. Requests on one connection are answered in order, so they queue behind it.
    pub fn set_node_delay(&self, node: i32, delay: Duration) {
        lock(&self.inner.delays).insert(node, delay);
    }

    /// `node` keeps accepting connections and reading requests (they are logged) but
    /// never answers any, not even ApiVersions, until [`Stub::unhang_node`]. Connections
    /// open now stay open: [`Stub::drop_connections`] makes clients dial again.
    pub fn hang_node(&self, node: i32) {
        lock(&self.inner.hung).insert(node);
    }

    /// Undoes [`Stub::hang_node`] for requests read from now on.
    pub fn unhang_node(&self, node: i32) {
        lock(&self.inner.hung).remove(&node);
    }

    fn listen(&self, node: i32, listener: TcpListener) {
        let task = tokio::spawn(accept_loop(self.clone(), node, listener));
        lock(&self.inner.listeners).push((node, task.abort_handle()));
    }

    // ----- versions ---------------------------------------------------------------------

    /// Advertise `min..=max` for `api` in ApiVersions (from the next connection on).
    pub fn set_versions(&self, api: ApiKey, min: i16, max: i16) {
        self.model().versions.insert(api as i16, (min, max));
    }

    /// Cap every Fetch response at `bytes`, whatever the request asks (Kafka's broker
    /// setting `fetch.max.bytes`).
    pub fn set_fetch_max_bytes(&self, bytes: usize) {
        self.model().fetch_max_bytes = Some(bytes);
    }

    /// Leave `api` out of ApiVersions (from the next connection on).
    pub fn remove_api(&self, api: ApiKey) {
        self.model().versions.remove(&(api as i16));
    }

    // ----- topics -----------------------------------------------------------------------

    /// Adds (or replaces) a topic with one partition per entry of `leaders`, partition `i`
    /// led by `leaders[i]`, empty (watermarks 0, 0).
    pub fn add_topic(&self, name: &str, leaders: &[i32]) {
        let partitions = leaders
            .iter()
            .enumerate()
            .map(|(i, l)| (i as i32, StubPartition::new(*l)))
            .collect();
        let topic = StubTopic {
            partitions,
            ..StubTopic::default()
        };
        self.model().topics.insert(name.to_owned(), topic);
    }

    /// Changes a partition in place. Panics if it is not in the model.
    pub fn update_partition(
        &self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut StubPartition),
    ) {
        let mut model = self.model();
        match model
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(&partition))
        {
            Some(p) => f(p),
            None => panic!("the stub model has no partition {topic}/{partition}"),
        }
    }

    /// A copy of a partition of the model.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<StubPartition> {
        self.model().partition(topic, partition).cloned()
    }

    /// Moves leadership (and bumps the leader epoch): the old leader starts answering
    /// NOT_LEADER_OR_FOLLOWER, Metadata shows the new one.
    pub fn set_leader(&self, topic: &str, partition: i32, node: i32) {
        self.update_partition(topic, partition, |p| {
            p.leader = node;
            p.leader_epoch += 1;
        });
    }

    pub fn set_watermarks(&self, topic: &str, partition: i32, low: i64, high: i64) {
        self.update_partition(topic, partition, |p| {
            p.low = low;
            p.high = high;
        });
    }

    /// Marks a topic internal in Metadata (`is_internal`), as Kafka does
    /// `__consumer_offsets`.
    pub fn set_internal(&self, topic: &str) {
        if let Some(t) = self.model().topics.get_mut(topic) {
            t.internal = true;
        }
    }

    /// Appends records with these CreateTime timestamps at the high watermark (which
    /// moves past them), like a producer would.
    pub fn append_records(&self, topic: &str, partition: i32, timestamps: &[i64]) {
        self.update_partition(topic, partition, |p| {
            for ts in timestamps {
                p.records.insert(p.high, *ts);
                p.high += 1;
            }
        });
    }

    /// Deletes records below `low` (retention): the log start offset moves to `low`.
    pub fn delete_records_before(&self, topic: &str, partition: i32, low: i64) {
        self.update_partition(topic, partition, |p| {
            p.records.retain(|o, _| *o >= low);
            p.low = p.low.max(low);
        });
    }

    /// Removes single records (compaction); watermarks stay.
    pub fn compact_away(&self, topic: &str, partition: i32, offsets: &[i64]) {
        self.update_partition(topic, partition, |p| {
            for o in offsets {
                p.records.remove(o);
            }
        });
    }

    pub fn set_topic_config(&self, topic: &str, key: &str, value: &str) {
        let mut model = self.model();
        match model.topics.get_mut(topic) {
            Some(t) => {
                t.configs.insert(key.to_owned(), value.to_owned());
            }
            None => panic!("the stub model has no topic {topic}"),
        }
    }

    // ----- groups -----------------------------------------------------------------------

    /// Adds (or replaces) a group.
    pub fn add_group(&self, group: StubGroup) {
        self.model().groups.insert(group.group_id.clone(), group);
    }

    /// Changes a group in place. Panics if it is not in the model.
    pub fn update_group(&self, group: &str, f: impl FnOnce(&mut StubGroup)) {
        let mut model = self.model();
        match model.groups.get_mut(group) {
            Some(g) => f(g),
            None => panic!("the stub model has no group {group}"),
        }
    }

    /// Moves a group's coordinator: the old one starts answering NOT_COORDINATOR,
    /// FindCoordinator names the new one.
    pub fn set_coordinator(&self, group: &str, node: i32) {
        self.update_group(group, |g| g.coordinator = Some(node));
    }

    pub fn commit(&self, group: &str, topic: &str, partition: i32, offset: i64) {
        self.update_group(group, |g| {
            g.offsets.insert((topic.to_owned(), partition), offset);
        });
    }

    // ----- faults -----------------------------------------------------------------------

    pub fn inject(&self, fault: Fault) {
        self.model().faults.0.push(fault);
    }

    /// Answer `code` for the next `times` items of `api` matching `target`.
    pub fn fail(&self, api: ApiKey, target: Target, code: i16, times: u32) {
        self.inject(Fault {
            api,
            target,
            code,
            node: None,
            remaining: Some(times),
        });
    }

    /// Answer `code` for every item of `api` matching `target`, forever.
    pub fn fail_always(&self, api: ApiKey, target: Target, code: i16) {
        self.inject(Fault {
            api,
            target,
            code,
            node: None,
            remaining: None,
        });
    }

    pub fn clear_faults(&self) {
        self.model().faults.0.clear();
    }

    // ----- handler ----------------------------------------------------------------------

    pub fn set_handler(&self, handler: impl Fn(&Received, &Stub) -> Reply + Send + Sync + 'static) {
        *lock(&self.inner.handler) = Some(Arc::new(handler));
    }

    pub fn clear_handler(&self) {
        *lock(&self.inner.handler) = None;
    }

    /// What the model answers to `r` (faults included, and used up); `None` for APIs the
    /// stub does not implement. For handlers that adjust the default answer.
    pub fn default_response(&self, r: &Received) -> Option<Response> {
        self.model().answer(r.node, r.version, &r.request)
    }

    // ----- request log ------------------------------------------------------------------

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.inner.log).clone()
    }

    /// The requests of one API, in order of arrival.
    pub fn requests_of(&self, api: ApiKey) -> Vec<Received> {
        lock(&self.inner.log)
            .iter()
            .filter(|r| r.api == api)
            .cloned()
            .collect()
    }

    pub fn count(&self, api: ApiKey) -> usize {
        lock(&self.inner.log)
            .iter()
            .filter(|r| r.api == api)
            .count()
    }

    pub fn count_on(&self, node: i32, api: ApiKey) -> usize {
        lock(&self.inner.log)
            .iter()
            .filter(|r| r.api == api && r.node == node)
            .count()
    }

    /// Forgets the requests received so far (e.g. those of connecting).
    pub fn clear_requests(&self) {
        lock(&self.inner.log).clear();
    }

    // ----- serving ----------------------------------------------------------------------

    /// Decodes a request frame (without its size prefix). `Err` says why not.
    fn decode_frame(&self, node: i32, conn: u64, mut frame: Bytes) -> Result<Received, String> {
        if frame.len() < 4 {
            return Err(format!("request frame of {} bytes", frame.len()));
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let api = ApiKey::try_from(key).map_err(|_| format!("unknown api key {key}"))?;
        let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
            .map_err(|e| format!("{api:?} v{version} request header: {e}"))?;
        let request = Request::decode(api, frame, version)
            .map_err(|e| format!("{api:?} v{version} request body: {e:#}"))?;
        Ok(Received {
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            node,
            conn,
            api,
            version,
            correlation_id: header.correlation_id,
            client_id: header.client_id.map(|c| c.as_str().to_owned()),
            request,
        })
    }

    /// The reply to `r`: the handler's, else the model's.
    fn reply(&self, r: &Received) -> Reply {
        let handler = lock(&self.inner.handler).clone();
        match handler {
            Some(h) => h(r, self),
            None => Reply::Default,
        }
    }

    /// The frame (size prefix included) for `reply`; `None` to close the connection,
    /// `Some(None)` to send nothing.
    async fn frame_for(&self, r: &Received, mut reply: Reply) -> Option<Option<Outgoing>> {
        while let Reply::Delay(d, inner) = reply {
            tokio::time::sleep(d).await;
            reply = *inner;
        }
        let what = || format!("stub node {}: {:?} v{}", r.node, r.api, r.version);
        let body = match reply {
            Reply::Default => match self.default_response(r) {
                Some(resp) => match resp.encode(r.version) {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("{}: cannot encode the default response: {e:#}", what());
                        return None;
                    }
                },
                None => {
                    eprintln!("{}: no default response, closing", what());
                    return None;
                }
            },
            Reply::Respond(resp) => match resp.encode(r.version) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("{}: cannot encode the scripted response: {e:#}", what());
                    return None;
                }
            },
            Reply::Body(b) => b,
            Reply::Frame(raw) => {
                let mut out = BytesMut::with_capacity(raw.len() + 4);
                out.put_i32(raw.len() as i32);
                out.extend_from_slice(&raw);
                return Some(Some(Outgoing::Whole(out.freeze())));
            }
            Reply::Filler(size) => {
                let mut head = BytesMut::with_capacity(16);
                head.put_i32(size as i32);
                let header = ResponseHeader::default().with_correlation_id(r.correlation_id);
                if let Err(e) = header.encode(&mut head, r.api.response_header_version(r.version)) {
                    eprintln!("{}: cannot encode the response header: {e:#}", what());
                    return None;
                }
                let zeros = (size + 4).saturating_sub(head.len());
                return Some(Some(Outgoing::Filler {
                    head: head.freeze(),
                    zeros,
                }));
            }
            Reply::Close => return None,
            Reply::Hang => return Some(None),
            Reply::Delay(..) => unreachable!("delays are unwrapped above"),
        };
        let mut out = BytesMut::with_capacity(body.len() + 16);
        out.put_i32(0);
        let header = ResponseHeader::default().with_correlation_id(r.correlation_id);
        if let Err(e) = header.encode(&mut out, r.api.response_header_version(r.version)) {
            eprintln!("{}: cannot encode the response header: {e:#}", what());
            return None;
        }
        out.extend_from_slice(&body);
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        Some(Some(Outgoing::Whole(out.freeze())))
    }
}

/// What a node writes for one reply.
enum Outgoing {
    /// A whole frame, size prefix included.
    Whole(Bytes),
    /// The size prefix and header, then this many zeros.
    Filler { head: Bytes, zeros: usize },
}

impl Outgoing {
    async fn write(&self, stream: &mut TcpStream) -> std::io::Result<()> {
        match self {
            Outgoing::Whole(frame) => stream.write_all(frame).await,
            Outgoing::Filler { head, zeros } => {
                static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
                stream.write_all(head).await?;
                let mut left = *zeros;
                while left > 0 {
                    let n = left.min(ZEROS.len());
                    stream.write_all(&ZEROS[..n]).await?;
                    left -= n;
                }
                Ok(())
            }
        }
    }
}

async fn accept_loop(stub: Stub, node: i32, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("stub node {node}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let conn = stub.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        // Counted from here: the guard is dropped with the task, however it ends.
        let open = OpenConnection::new(&stub, node);
        let task = tokio::spawn({
            let stub = stub.clone();
            async move {
                serve(stub, node, conn, stream).await;
                drop(open);
            }
        });
        let mut tasks = lock(&stub.inner.tasks);
        tasks.retain(|(_, t)| !t.is_finished());
        tasks.push((node, task.abort_handle()));
    }
}

/// Aborts the tasks of `node` in `tasks` and returns their handles.
fn abort_node(tasks: &Mutex<Vec<(i32, AbortHandle)>>, node: i32) -> Vec<AbortHandle> {
    let mut stopped = Vec::new();
    lock(tasks).retain(|(n, task)| {
        if *n == node {
            task.abort();
            stopped.push(task.clone());
        }
        *n != node
    });
    stopped
}

async fn wait_finished(tasks: Vec<AbortHandle>) {
    while !tasks.iter().all(AbortHandle::is_finished) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One open connection of a node in [`Inner::open`], for as long as it lives.
struct OpenConnection {
    stub: Stub,
    node: i32,
}

impl OpenConnection {
    fn new(stub: &Stub, node: i32) -> Self {
        *lock(&stub.inner.open).entry(node).or_default() += 1;
        Self {
            stub: stub.clone(),
            node,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.stub.inner.open).get_mut(&self.node) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Serves one connection: one request at a time, answered in order.
async fn serve(stub: Stub, node: i32, conn: u64, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    loop {
        let mut prefix = [0u8; 4];
        if stream.read_exact(&mut prefix).await.is_err() {
            return;
        }
        let size = i32::from_be_bytes(prefix);
        let Some(size) = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_REQUEST_FRAME)
        else {
            eprintln!("stub node {node}: request frame size {size}, closing");
            return;
        };
        let mut frame = vec![0u8; size];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let received = match stub.decode_frame(node, conn, Bytes::from(frame)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("stub node {node}: cannot decode a request ({e}), closing");
                return;
            }
        };
        lock(&stub.inner.log).push(received.clone());
        let hung = lock(&stub.inner.hung).contains(&node);
        let mut reply = if hung {
            Reply::Hang
        } else {
            stub.reply(&received)
        };
        let delay = lock(&stub.inner.delays).get(&node).copied();
        if let Some(d) = delay.filter(|d| !hung && !d.is_zero()) {
            reply = Reply::Delay(d, Box::new(reply));
        }
        match stub.frame_for(&received, reply).await {
            None => return,
            Some(None) => {}
            Some(Some(out)) => {
                if out.write(&mut stream).await.is_err() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Removing things from the model
// ---------------------------------------------------------------------------------------

impl Stub {
    /// Deletes a group: ListGroups stops listing it, DescribeGroups answers it as "Dead"
    /// and OffsetFetch with no commits.
    pub fn remove_group(&self, group: &str) {
        self.model().groups.remove(group);
    }

    /// Deletes a topic: Metadata stops listing it and partition requests for it answer
    /// UNKNOWN_TOPIC_OR_PARTITION. Offsets groups committed on it stay, as on a broker.
    pub fn remove_topic(&self, topic: &str) {
        self.model().topics.remove(topic);
    }
}
