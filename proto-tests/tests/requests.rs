//! Requests → golden bytes.
//!
//! For every request tidemark sends and every version it may send it at
//! (`ApiRequest::MIN_VERSION..=MAX_VERSION`), the frame tidemark encodes (size prefix, request
//! header, body) must equal `golden/requests/<name>_v<N>.hex`, written by the independent
//! Python encoder `golden/generate.py` from the Kafka protocol spec for the same fixed input.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use bytes::BytesMut;
use kafka_protocol::messages::{
    ApiVersionsRequest, ConsumerGroupDescribeRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, DescribeShareGroupOffsetsRequest, FetchRequest, FindCoordinatorRequest,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest,
    MetadataRequest, OffsetFetchRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
    ShareGroupDescribeRequest, SyncGroupRequest,
};
use proto_tests::Golden;
use tidemark::kafka::codec::encode_request;
use tidemark::kafka::conn::ApiRequest;
use tidemark::kafka::requests::{self, FetchAt, EARLIEST, LATEST};
use tidemark::kafka::TopicPartition;

// The fixed input; golden/generate.py uses exactly the same values.
const CORRELATION_ID: i32 = 0x0102_0304;
const CLIENT_ID: &str = "tidemark";
const CONFIG_TOPICS: [&str; 2] = ["orders", "payments"];
const CONFIG_KEYS: [&str; 2] = ["cleanup.policy", "retention.ms"];
const FETCH_RESPONSE_MAX_BYTES: i32 = 16 * 1024 * 1024;
const SASL_MECHANISM: &str = "SCRAM-SHA-512";
const SASL_AUTH_BYTES: &[u8] = b"n,,n=tidemark,r=fyko+d2lbbFgONRv9qkxdawL";
const LIST_GROUPS_TYPES: [&str; 2] = ["consumer", "share"];
/// ListGroups' type filter exists from v5.
const LIST_GROUPS_TYPES_MIN_VERSION: i16 = 5;

/// A plain group, and one with a 2-byte UTF-8 character that is longer than 127 bytes.
fn groups() -> Vec<String> {
    vec![
        "payments-consumer".to_string(),
        format!("analytics-\u{fc}-{}", "x".repeat(120)),
    ]
}

/// The group of the single-group requests (FindCoordinator v0-3, OffsetFetch v2-7).
fn single_group() -> String {
    groups().swap_remove(1)
}

/// Unsorted and interleaved on purpose: tidemark groups by topic.
fn list_offsets_partitions() -> Vec<TopicPartition> {
    [
        ("payments", 2),
        ("orders", 0),
        ("payments", 0),
        ("orders", 1),
    ]
    .into_iter()
    .map(|(t, p)| TopicPartition::new(t, p))
    .collect()
}

fn fetch_at() -> Vec<FetchAt> {
    [
        ("payments", 2, 1_234_567_890_123, 262_144),
        ("orders", 0, 42, 65_536),
        ("payments", 0, 0, 1_048_576),
    ]
    .into_iter()
    .map(|(t, p, offset, max_bytes)| FetchAt {
        tp: TopicPartition::new(t, p),
        offset,
        max_bytes,
    })
    .collect()
}

/// Encodes `build(v)` at every version tidemark may send `R` at and compares each frame with
/// its golden file; reports every differing version at once.
fn check_all<R: ApiRequest>(stem: &str, build: impl Fn(i16) -> R) {
    check_versions(stem, R::MIN_VERSION..=R::MAX_VERSION, build);
}

/// [`check_all`] for the `versions` of `R` a request is sent at (a subset of `R`'s range).
fn check_versions<R: ApiRequest>(
    stem: &str,
    versions: RangeInclusive<i16>,
    build: impl Fn(i16) -> R,
) {
    let mut failures = Vec::new();
    for v in versions.clone() {
        let what = format!("{:?} v{v} ({stem})", R::API);
        let mut out = BytesMut::new();
        if let Err(e) = encode_request(&mut out, R::API, v, CORRELATION_ID, CLIENT_ID, &build(v)) {
            failures.push(format!("{what}: tidemark cannot encode it: {e}"));
            continue;
        }
        let golden = match Golden::load(&golden_file(stem, v)) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{what}: {e}"));
                continue;
            }
        };
        if let Err(diff) = golden.compare(&what, &out) {
            failures.push(diff);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} versions of {stem} differ from the independent encoding:\n\n{}",
        failures.len(),
        versions.len(),
        failures.join("\n")
    );
}

fn golden_file(stem: &str, version: i16) -> String {
    format!("golden/requests/{stem}_v{version}.hex")
}

#[test]
fn api_versions() {
    check_all("api_versions", |_| requests::api_versions());
}

#[test]
fn metadata_all_topics() {
    check_all("metadata", requests::metadata_all);
}

#[test]
fn list_groups() {
    check_all("list_groups", |_| requests::list_groups());
}

#[test]
fn list_groups_by_type_v5() {
    check_versions(
        "list_groups_types",
        LIST_GROUPS_TYPES_MIN_VERSION..=ListGroupsRequest::MAX_VERSION,
        |_| requests::list_groups_v5(&LIST_GROUPS_TYPES),
    );
}

#[test]
fn consumer_group_describe() {
    check_all("consumer_group_describe", |_| {
        requests::consumer_group_describe(&groups())
    });
}

#[test]
fn share_group_describe() {
    check_all("share_group_describe", |_| {
        requests::share_group_describe(&groups())
    });
}

#[test]
fn describe_share_group_offsets_all_partitions() {
    check_all("describe_share_group_offsets", |_| {
        requests::describe_share_group_offsets(&groups())
    });
}

#[test]
fn find_coordinator_batched_v4_and_single_below() {
    check_all("find_coordinator", |v| {
        if v >= 4 {
            requests::find_coordinators(&groups())
        } else {
            requests::find_coordinator(&single_group())
        }
    });
}

#[test]
fn describe_groups() {
    check_all("describe_groups", |_| requests::describe_groups(&groups()));
}

#[test]
fn offset_fetch_multi_group_v8_and_single_below() {
    check_all("offset_fetch", |v| {
        if v >= 8 {
            requests::offset_fetch_groups(&groups())
        } else {
            requests::offset_fetch_group(&single_group())
        }
    });
}

#[test]
fn list_offsets_earliest() {
    check_all("list_offsets_earliest", |_| {
        requests::list_offsets(&list_offsets_partitions(), EARLIEST)
    });
}

#[test]
fn list_offsets_latest() {
    check_all("list_offsets_latest", |_| {
        requests::list_offsets(&list_offsets_partitions(), LATEST)
    });
}

fn config_topics() -> Vec<String> {
    CONFIG_TOPICS.iter().map(|t| t.to_string()).collect()
}

#[test]
fn describe_configs_some_keys() {
    check_all("describe_configs", |_| {
        requests::describe_topic_configs(&config_topics(), Some(&CONFIG_KEYS))
    });
}

#[test]
fn describe_configs_all_keys() {
    check_all("describe_configs_all", |_| {
        requests::describe_topic_configs(&config_topics(), None)
    });
}

#[test]
fn fetch() {
    check_all("fetch", |_| {
        requests::fetch(&fetch_at(), FETCH_RESPONSE_MAX_BYTES)
    });
}

#[test]
fn sasl_handshake() {
    check_all("sasl_handshake", |_| {
        requests::sasl_handshake(SASL_MECHANISM)
    });
}

#[test]
fn sasl_authenticate() {
    check_all("sasl_authenticate", |_| {
        requests::sasl_authenticate(bytes::Bytes::from_static(SASL_AUTH_BYTES))
    });
}

// The coordination group of high availability (golden/generate.py's HA_* values).
const HA_GROUP: &str = "tidemark-ha";
const HA_MEMBER: &str = "tidemark-3f9c-member";
const HA_METADATA: &[u8] = b"member-metadata";
const HA_GENERATION: i32 = 7;
const HA_PROTOCOL: (&str, &str) = ("tidemark", "tidemark-v1");

#[test]
fn join_group() {
    check_all("join_group", |v| {
        let params = requests::JoinGroupParams {
            group: HA_GROUP,
            member_id: HA_MEMBER,
            session_timeout_ms: 15000,
            rebalance_timeout_ms: 15000,
            protocol_type: HA_PROTOCOL.0,
            protocol_name: HA_PROTOCOL.1,
            metadata: bytes::Bytes::from_static(HA_METADATA),
        };
        requests::join_group(v, &params)
    });
}

#[test]
fn sync_group() {
    let assignments = [(
        HA_MEMBER.to_owned(),
        bytes::Bytes::from_static(b"assignment-bytes"),
    )];
    check_all("sync_group", |v| {
        requests::sync_group(
            v,
            HA_GROUP,
            HA_GENERATION,
            HA_MEMBER,
            HA_PROTOCOL,
            &assignments,
        )
    });
}

#[test]
fn heartbeat() {
    check_all("heartbeat", |_| {
        requests::heartbeat(HA_GROUP, HA_GENERATION, HA_MEMBER)
    });
}

#[test]
fn leave_group() {
    check_all("leave_group", |v| {
        requests::leave_group(v, HA_GROUP, HA_MEMBER)
    });
}

/// The golden set is exactly one file per (request, version tidemark may send): a version
/// range widened in src/kafka/versions.rs without regenerating fails here, and so does a golden
/// file for a version tidemark no longer sends.
#[test]
fn goldens_cover_exactly_the_versions_tidemark_sends() {
    fn add<R: ApiRequest>(want: &mut BTreeSet<String>, stems: &[&str]) {
        for stem in stems {
            for v in R::MIN_VERSION..=R::MAX_VERSION {
                want.insert(format!("{stem}_v{v}.hex"));
            }
        }
    }
    let mut want = BTreeSet::new();
    add::<ApiVersionsRequest>(&mut want, &["api_versions"]);
    add::<MetadataRequest>(&mut want, &["metadata"]);
    add::<ListGroupsRequest>(&mut want, &["list_groups"]);
    add::<FindCoordinatorRequest>(&mut want, &["find_coordinator"]);
    add::<DescribeGroupsRequest>(&mut want, &["describe_groups"]);
    add::<OffsetFetchRequest>(&mut want, &["offset_fetch"]);
    add::<ListOffsetsRequest>(&mut want, &["list_offsets_earliest", "list_offsets_latest"]);
    add::<DescribeConfigsRequest>(&mut want, &["describe_configs", "describe_configs_all"]);
    add::<FetchRequest>(&mut want, &["fetch"]);
    add::<SaslHandshakeRequest>(&mut want, &["sasl_handshake"]);
    add::<SaslAuthenticateRequest>(&mut want, &["sasl_authenticate"]);
    add::<ConsumerGroupDescribeRequest>(&mut want, &["consumer_group_describe"]);
    add::<ShareGroupDescribeRequest>(&mut want, &["share_group_describe"]);
    add::<DescribeShareGroupOffsetsRequest>(&mut want, &["describe_share_group_offsets"]);
    add::<JoinGroupRequest>(&mut want, &["join_group"]);
    add::<SyncGroupRequest>(&mut want, &["sync_group"]);
    add::<HeartbeatRequest>(&mut want, &["heartbeat"]);
    add::<LeaveGroupRequest>(&mut want, &["leave_group"]);
    for v in LIST_GROUPS_TYPES_MIN_VERSION..=ListGroupsRequest::MAX_VERSION {
        want.insert(format!("list_groups_types_v{v}.hex"));
    }

    let dir = proto_tests::path("golden/requests");
    let have: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".hex"))
        .collect();
    let missing: Vec<_> = want.difference(&have).collect();
    let extra: Vec<_> = have.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "golden/requests/ does not match the versions tidemark sends \
         (update APIS in golden/generate.py and rerun it):\n  missing: {missing:?}\n  extra: {extra:?}"
    );
}
