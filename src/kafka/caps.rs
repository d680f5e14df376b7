//! The largest response a request may get, from what it asked: one function,
//! [`response_cap`], over the [`Asked`] shape of each request.
//!
//! A response over its cap fails that request before anything is allocated for it (the
//! reader discards its body). The caps are generous — they stop a broken or hostile broker
//! from sending a ListGroups or OffsetFetch answer of 96 MiB, not a large cluster from
//! answering — and never above the connection's frame cap. The [global
//! budget](super::budget) bounds what all responses hold together.

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ConsumerGroupDescribeRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, DescribeShareGroupOffsetsRequest, FetchRequest, FindCoordinatorRequest,
    ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetFetchRequest,
    SaslAuthenticateRequest, SaslHandshakeRequest, ShareGroupDescribeRequest,
};

use super::codec::DEFAULT_MAX_FRAME_BYTES;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// Every cap is at least this: headers, error messages, tagged fields and small answers
/// never come near it, so a cap only bites on what scales with the cluster.
pub const FLOOR: usize = 4 * MIB;

/// ListGroups names nothing, so its answer is bounded by the groups on one broker: 16 MiB
/// is ~160,000 listings of 100 bytes (group id, protocol type, state, type).
pub const LIST_GROUPS_CAP: usize = 16 * MIB;

/// Metadata of all topics: ~40 bytes per partition at replication factor 3, so 64 MiB
/// holds well over a million partitions.
pub const METADATA_ALL_CAP: usize = 64 * MIB;

/// Metadata of named topics, per topic: ~6,000 partitions at replication factor 3.
pub const PER_METADATA_TOPIC: usize = 256 * KIB;

/// DescribeGroups, per group: members with their client id, host, subscription and
/// assignment. 1 MiB is ~1,000 members with a 1 KiB assignment each.
pub const PER_DESCRIBED_GROUP: usize = MIB;

/// OffsetFetch (all topics), per group: ~20 bytes per committed partition, so 2 MiB is
/// ~100,000 partitions committed by one group.
pub const PER_OFFSET_FETCH_GROUP: usize = 2 * MIB;

/// FindCoordinator v4+, per key: the key echoed back plus the coordinator's host, port and
/// error message.
pub const PER_COORDINATOR_KEY: usize = KIB;

/// ListOffsets, per partition (index, error, timestamp, offset, leader epoch, tags).
pub const PER_LISTED_PARTITION: usize = 64;

/// DescribeConfigs, per resource: every config of a topic (a few dozen) with its value.
pub const PER_CONFIG_RESOURCE: usize = 64 * KIB;

/// Fetch, per partition: the partition header (watermarks, log start offset, aborted
/// transactions — none at read-uncommitted —, preferred replica, tags) around the records.
pub const PER_FETCHED_PARTITION: usize = 256;

/// Fetch, past the record bytes asked: the broker returns the first batch whole even when it
/// is larger than the limit (KIP-74), up to a topic's `max.message.bytes` (1 MiB by
/// default); 8 MiB allows for topics that raised it.
pub const FETCH_SLACK: usize = 8 * MIB;

/// Per topic (or resource) named: its header around the name echoed back.
const PER_TOPIC: usize = 64;

/// What a request asks for, as far as it bounds the size of its answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    /// Groups named (DescribeGroups, OffsetFetch) or coordinator keys (FindCoordinator).
    pub groups: usize,
    /// Topics (or config resources) named; 0 with `all_topics` for "every topic".
    pub topics: usize,
    /// Metadata of every topic (topics: null).
    pub all_topics: bool,
    /// Partitions named.
    pub partitions: usize,
    /// Bytes of the names (topics, groups, keys) the answer echoes back.
    pub name_bytes: usize,
    /// Record bytes the request allows (Fetch: `max_bytes`, or the partitions' limits
    /// summed when that is less).
    pub record_bytes: usize,
}

/// The largest response `api` may get for a request of shape `asked`: at least [`FLOOR`],
/// at most the default frame cap (a connection also applies its own frame cap).
pub fn response_cap(api: ApiKey, asked: &Asked) -> usize {
    let n = |count: usize, each: usize| count.saturating_mul(each);
    let names = asked.name_bytes.saturating_add(n(asked.topics, PER_TOPIC));
    let scaled = match api {
        // The coordination group (`crate::ha`): a few members, each with a few bytes of
        // metadata or assignment.
        ApiKey::ApiVersions
        | ApiKey::SaslHandshake
        | ApiKey::SaslAuthenticate
        | ApiKey::JoinGroup
        | ApiKey::SyncGroup
        | ApiKey::Heartbeat
        | ApiKey::LeaveGroup => 0,
        ApiKey::ListGroups => LIST_GROUPS_CAP,
        ApiKey::Metadata if asked.all_topics => METADATA_ALL_CAP,
        ApiKey::Metadata => n(asked.topics, PER_METADATA_TOPIC),
        ApiKey::FindCoordinator => n(asked.groups, PER_COORDINATOR_KEY),
        ApiKey::DescribeGroups | ApiKey::ConsumerGroupDescribe | ApiKey::ShareGroupDescribe => {
            n(asked.groups, PER_DESCRIBED_GROUP)
        }
        ApiKey::OffsetFetch | ApiKey::DescribeShareGroupOffsets => {
            n(asked.groups, PER_OFFSET_FETCH_GROUP)
        }
        ApiKey::ListOffsets => n(asked.partitions, PER_LISTED_PARTITION),
        ApiKey::DescribeConfigs => n(asked.topics, PER_CONFIG_RESOURCE),
        ApiKey::Fetch => asked
            .record_bytes
            .saturating_add(n(asked.partitions, PER_FETCHED_PARTITION))
            .saturating_add(FETCH_SLACK),
        // An API tidemark does not send: only the frame cap.
        _ => DEFAULT_MAX_FRAME_BYTES,
    };
    FLOOR
        .saturating_add(scaled)
        .saturating_add(names)
        .min(DEFAULT_MAX_FRAME_BYTES)
}

/// A request's [`Asked`] shape.
pub trait Shape {
    fn asked(&self) -> Asked;
}

fn count<T>(v: &[T]) -> usize {
    v.len()
}

macro_rules! asks_nothing {
    ($($req:ty),*) => {
        $(impl Shape for $req {
            fn asked(&self) -> Asked {
                Asked::default()
            }
        })*
    };
}

asks_nothing!(
    ApiVersionsRequest,
    ListGroupsRequest,
    SaslHandshakeRequest,
    SaslAuthenticateRequest,
    kafka_protocol::messages::JoinGroupRequest,
    kafka_protocol::messages::SyncGroupRequest,
    kafka_protocol::messages::HeartbeatRequest,
    kafka_protocol::messages::LeaveGroupRequest
);

impl Shape for MetadataRequest {
    fn asked(&self) -> Asked {
        match &self.topics {
            None => Asked {
                all_topics: true,
                ..Asked::default()
            },
            Some(topics) => Asked {
                topics: count(topics),
                name_bytes: topics
                    .iter()
                    .map(|t| t.name.as_ref().map_or(0, |n| n.0.len()))
                    .sum(),
                ..Asked::default()
            },
        }
    }
}

impl Shape for FindCoordinatorRequest {
    fn asked(&self) -> Asked {
        // v0..=3 name one key (`key`), v4+ many (`coordinator_keys`).
        let keys = count(&self.coordinator_keys).max(1);
        let name_bytes =
            self.key.len() + self.coordinator_keys.iter().map(|k| k.len()).sum::<usize>();
        Asked {
            groups: keys,
            name_bytes,
            ..Asked::default()
        }
    }
}

impl Shape for DescribeGroupsRequest {
    fn asked(&self) -> Asked {
        Asked {
            groups: count(&self.groups),
            name_bytes: self.groups.iter().map(|g| g.0.len()).sum(),
            ..Asked::default()
        }
    }
}

/// Describes of KIP-848 consumer groups and KIP-932 share groups: sized like DescribeGroups.
macro_rules! describes_groups {
    ($($req:ty),*) => {
        $(impl Shape for $req {
            fn asked(&self) -> Asked {
                Asked {
                    groups: count(&self.group_ids),
                    name_bytes: self.group_ids.iter().map(|g| g.0.len()).sum(),
                    ..Asked::default()
                }
            }
        })*
    };
}

describes_groups!(ConsumerGroupDescribeRequest, ShareGroupDescribeRequest);

impl Shape for DescribeShareGroupOffsetsRequest {
    fn asked(&self) -> Asked {
        Asked {
            groups: count(&self.groups),
            name_bytes: self.groups.iter().map(|g| g.group_id.0.len()).sum(),
            ..Asked::default()
        }
    }
}

impl Shape for OffsetFetchRequest {
    fn asked(&self) -> Asked {
        // v8+ name groups in `groups`; v2..=7 one group in `group_id`.
        let groups = count(&self.groups).max(1);
        let name_bytes = self.group_id.0.len()
            + self
                .groups
                .iter()
                .map(|g| g.group_id.0.len())
                .sum::<usize>();
        Asked {
            groups,
            name_bytes,
            ..Asked::default()
        }
    }
}

impl Shape for ListOffsetsRequest {
    fn asked(&self) -> Asked {
        Asked {
            topics: count(&self.topics),
            partitions: self.topics.iter().map(|t| t.partitions.len()).sum(),
            name_bytes: self.topics.iter().map(|t| t.name.0.len()).sum(),
            ..Asked::default()
        }
    }
}

impl Shape for DescribeConfigsRequest {
    fn asked(&self) -> Asked {
        Asked {
            topics: count(&self.resources),
            name_bytes: self.resources.iter().map(|r| r.resource_name.len()).sum(),
            ..Asked::default()
        }
    }
}

impl Shape for FetchRequest {
    fn asked(&self) -> Asked {
        let partitions = self.topics.iter().map(|t| t.partitions.len()).sum();
        let per_partition: usize = self
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| usize::try_from(p.partition_max_bytes).unwrap_or(0))
            .sum();
        let max_bytes = usize::try_from(self.max_bytes).unwrap_or(0);
        Asked {
            topics: count(&self.topics),
            partitions,
            name_bytes: self.topics.iter().map(|t| t.topic.0.len()).sum(),
            record_bytes: max_bytes.min(per_partition),
            ..Asked::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::cluster::TopicPartition;
    use crate::kafka::requests::{self, FetchAt};

    fn cap<R: Shape>(api: ApiKey, req: &R) -> usize {
        response_cap(api, &req.asked())
    }

    fn groups(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("group-{i:04}")).collect()
    }

    #[test]
    fn answers_that_name_nothing_get_fixed_caps() {
        assert_eq!(cap(ApiKey::ApiVersions, &requests::api_versions()), FLOOR);
        assert_eq!(
            cap(ApiKey::ListGroups, &requests::list_groups()),
            FLOOR + LIST_GROUPS_CAP
        );
        assert_eq!(
            cap(ApiKey::Metadata, &requests::metadata_all(12)),
            FLOOR + METADATA_ALL_CAP
        );
        // A ListGroups answer of 96 MiB is far over its cap.
        assert!(cap(ApiKey::ListGroups, &requests::list_groups()) < 96 * MIB);
    }

    #[test]
    fn group_answers_scale_with_the_groups_asked() {
        let one = cap(ApiKey::OffsetFetch, &requests::offset_fetch_group("g"));
        assert_eq!(one, FLOOR + PER_OFFSET_FETCH_GROUP + 1);
        let ten = cap(
            ApiKey::OffsetFetch,
            &requests::offset_fetch_groups(&groups(10)),
        );
        assert_eq!(ten, FLOOR + 10 * PER_OFFSET_FETCH_GROUP + 10 * 10);
        let described = cap(
            ApiKey::DescribeGroups,
            &requests::describe_groups(&groups(3)),
        );
        assert_eq!(described, FLOOR + 3 * PER_DESCRIBED_GROUP + 30);
        let keys = cap(
            ApiKey::FindCoordinator,
            &requests::find_coordinators(&groups(100)),
        );
        assert_eq!(keys, FLOOR + 100 * PER_COORDINATOR_KEY + 1000);
        let single = cap(ApiKey::FindCoordinator, &requests::find_coordinator("abc"));
        assert_eq!(single, FLOOR + PER_COORDINATOR_KEY + 3);
        // Thousands of groups reach the frame cap, never past it.
        let many = cap(
            ApiKey::OffsetFetch,
            &requests::offset_fetch_groups(&groups(2000)),
        );
        assert_eq!(many, DEFAULT_MAX_FRAME_BYTES);
    }

    #[test]
    fn partition_answers_scale_with_the_partitions_asked() {
        let tps: Vec<TopicPartition> = (0..1000)
            .map(|p| TopicPartition::new("orders", p))
            .collect();
        let listed = cap(
            ApiKey::ListOffsets,
            &requests::list_offsets(&tps, requests::LATEST),
        );
        assert_eq!(listed, FLOOR + 1000 * PER_LISTED_PARTITION + 6 + PER_TOPIC);
        let configs = cap(
            ApiKey::DescribeConfigs,
            &requests::describe_topic_configs(&["orders".to_string()], None),
        );
        assert_eq!(configs, FLOOR + PER_CONFIG_RESOURCE + 6 + PER_TOPIC);
    }

    #[test]
    fn fetch_is_capped_by_the_record_bytes_it_asked_for() {
        let at = |p: i32, max_bytes: i32| FetchAt {
            tp: TopicPartition::new("t", p),
            offset: 0,
            max_bytes,
        };
        // Partition limits summed (3 × 4 KiB) below the response limit: they bound it.
        let small = requests::fetch(&[at(0, 4096), at(1, 4096), at(2, 4096)], 50 * MIB as i32);
        assert_eq!(
            cap(ApiKey::Fetch, &small),
            FLOOR + 3 * 4096 + 3 * PER_FETCHED_PARTITION + FETCH_SLACK + 1 + PER_TOPIC
        );
        // The response limit below the partition limits summed: it bounds it.
        let parts: Vec<FetchAt> = (0..100).map(|p| at(p, 256 * 1024)).collect();
        let limited = requests::fetch(&parts, MIB as i32);
        assert_eq!(
            cap(ApiKey::Fetch, &limited),
            FLOOR + MIB + 100 * PER_FETCHED_PARTITION + FETCH_SLACK + 1 + PER_TOPIC
        );
    }

    #[test]
    fn apis_tidemark_does_not_send_get_only_the_frame_cap() {
        assert_eq!(
            response_cap(ApiKey::Produce, &Asked::default()),
            DEFAULT_MAX_FRAME_BYTES
        );
    }
}
