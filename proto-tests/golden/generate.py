#!/usr/bin/env python3
"""Golden request frames for tidemark, from an encoder that is NOT tidemark.

Every request tidemark sends is built by a pure function in src/kafka/requests.rs and framed
by kafka::codec::encode_request. This script encodes the same requests, for the same fixed
input, at every version tidemark may send, with nothing but `struct` and the field lists of
the Kafka protocol (https://kafka.apache.org/protocol and the message JSON schemas under
clients/src/main/resources/common/message/ in apache/kafka). It shares no code with
tidemark or with the kafka-protocol crate tidemark uses to encode.

Output: golden/requests/<name>_v<N>.hex, one full frame each (4-byte size prefix, request
header, body). The files are text: `#` starts a comment, every other line holds the hex bytes
of one field followed by `# <field path> = <value>`. The Rust test (tests/requests.rs) strips
comments and whitespace, decodes the hex, and compares with what tidemark encodes.

    python3 proto-tests/golden/generate.py          # rewrite golden/requests/
    python3 proto-tests/golden/generate.py --check  # exit 1 if any file would change

Standard library only; Python 3.8+.
"""

import argparse
import re
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "requests"
REPO = HERE.parent.parent

# ---------------------------------------------------------------------------------------------
# Fixed input. The Rust test (proto-tests/tests/requests.rs) uses exactly the same values.
# ---------------------------------------------------------------------------------------------

CORRELATION_ID = 0x01020304
CLIENT_ID = "tidemark"
# Two groups: a plain one, and one whose name has a 2-byte UTF-8 character (lengths count
# bytes, not characters) and is longer than 127 bytes (compact lengths need a 2-byte varint).
GROUPS = ["payments-consumer", "analytics-\u00fc-" + "x" * 120]
# The single-group requests (FindCoordinator v0-3, OffsetFetch v2-7) use the long one.
SINGLE_GROUP = GROUPS[1]
# ListOffsets input, deliberately unsorted and interleaved: tidemark groups partitions by
# topic (topics in name order, partitions in input order).
LIST_OFFSETS_PARTITIONS = [("payments", 2), ("orders", 0), ("payments", 0), ("orders", 1)]
EARLIEST = -2
LATEST = -1
# The coordination group of tidemark's high availability (src/ha): JoinGroup, SyncGroup,
# Heartbeat, LeaveGroup for one member.
HA_GROUP = "tidemark-ha"
HA_MEMBER = "tidemark-3f9c-member"
HA_SESSION_MS = 15000
HA_REBALANCE_MS = 15000
HA_PROTOCOL_TYPE = "tidemark"
HA_PROTOCOL_NAME = "tidemark-v1"
HA_METADATA = b"member-metadata"
HA_GENERATION = 7
HA_ASSIGNMENT = b"assignment-bytes"
CONFIG_TOPICS = ["orders", "payments"]
CONFIG_KEYS = ["cleanup.policy", "retention.ms"]
TOPIC_RESOURCE = 2
# Fetch input: (topic, partition, fetch_offset, partition_max_bytes), grouped like ListOffsets.
FETCH_AT = [
    ("payments", 2, 1234567890123, 262144),
    ("orders", 0, 42, 65536),
    ("payments", 0, 0, 1048576),
]
FETCH_RESPONSE_MAX_BYTES = 16 * 1024 * 1024
# tidemark's Fetch is sessionless and read_uncommitted, waits at most 100 ms and answers as soon
# as any data is there (src/kafka/requests.rs: FETCH_MAX_WAIT_MS, min_bytes 1).
FETCH_MAX_WAIT_MS = 100
FETCH_MIN_BYTES = 1
# SASL input: the mechanism named in SaslHandshake, and one client message (a SCRAM
# client-first message with the RFC 5802 example nonce) carried by SaslAuthenticate.
SASL_MECHANISM = "SCRAM-SHA-512"
SASL_AUTH_BYTES = b"n,,n=tidemark,r=fyko+d2lbbFgONRv9qkxdawL"
# ListGroups v5+ type filter of requests::list_groups_v5 (the unfiltered list_groups() sends
# an empty one).
LIST_GROUPS_TYPES = ["consumer", "share"]


def tidemark_version():
    """tidemark announces its crate version in ApiVersions v3+ (client_software_version)."""
    text = (REPO / "Cargo.toml").read_text()
    package = text.split("[package]", 1)[1].split("\n[", 1)[0]
    m = re.search(r'^version\s*=\s*"([^"]+)"', package, re.M)
    if not m:
        sys.exit("cannot find [package] version in Cargo.toml")
    return m.group(1)


# ---------------------------------------------------------------------------------------------
# Versions tidemark may send (MIN_VERSION..=MAX_VERSION of the ApiRequest impls in
# src/kafka/versions.rs), API keys, and the first flexible version of each request (from the
# "flexibleVersions" of the Apache Kafka JSON schemas).
# ---------------------------------------------------------------------------------------------

APIS = {
    #  name              key  versions         first flexible
    "ApiVersions":      (18, range(0, 4), 3),
    "Metadata":         (3, range(1, 13), 9),
    "ListGroups":       (16, range(0, 6), 3),
    "FindCoordinator":  (10, range(0, 5), 3),
    "DescribeGroups":   (15, range(0, 6), 5),
    "OffsetFetch":      (9, range(2, 9), 6),
    "ListOffsets":      (2, range(1, 8), 6),
    "DescribeConfigs":  (32, range(1, 5), 4),
    "Fetch":            (1, range(4, 13), 12),
    # SaslHandshake v0 is followed by raw SASL frames; tidemark sends v1 only. Never flexible.
    "SaslHandshake":    (17, range(1, 2), None),
    "SaslAuthenticate": (36, range(0, 3), 2),
    # The Kafka 4.x group APIs: flexible in every version. ShareGroupDescribe starts at v1
    # (v0 was Kafka 4.0's early access, removed in 4.1).
    "ConsumerGroupDescribe":     (69, range(0, 2), 0),
    "ShareGroupDescribe":        (77, range(1, 2), 0),
    "DescribeShareGroupOffsets": (90, range(0, 1), 0),
    # High availability's coordination group; JoinGroup from v2, LeaveGroup batched from v3.
    "JoinGroup":                 (11, range(2, 10), 6),
    "SyncGroup":                 (14, range(1, 6), 4),
    "Heartbeat":                 (12, range(1, 5), 4),
    "LeaveGroup":                (13, range(1, 6), 4),
}
# TypesFilter exists from ListGroups v5: list_groups_v5 is sent at v5 and above only.
LIST_GROUPS_TYPES_VERSIONS = range(5, APIS["ListGroups"][1].stop)


# ---------------------------------------------------------------------------------------------
# Primitive types (https://kafka.apache.org/protocol#protocol_types)
# ---------------------------------------------------------------------------------------------


class Frame:
    """Collects (bytes, label) pieces; one piece becomes one line of the golden file."""

    def __init__(self):
        self.pieces = []

    def put(self, data, label):
        self.pieces.append((bytes(data), label))

    def int8(self, label, v):
        self.put(struct.pack(">b", v), f"{label} = {v}")

    def int16(self, label, v):
        self.put(struct.pack(">h", v), f"{label} = {v}")

    def int32(self, label, v):
        self.put(struct.pack(">i", v), f"{label} = {v}")

    def int64(self, label, v):
        self.put(struct.pack(">q", v), f"{label} = {v}")

    def boolean(self, label, v):
        self.put(b"\x01" if v else b"\x00", f"{label} = {'true' if v else 'false'}")

    @staticmethod
    def uvarint(n):
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out.append(b | 0x80)
            else:
                out.append(b)
                return bytes(out)

    def string(self, label, s, compact):
        """STRING (int16 length) or COMPACT_STRING (uvarint length + 1); None = null."""
        if s is None:
            prefix = self.uvarint(0) if compact else struct.pack(">h", -1)
            self.put(prefix, f"{label} = null")
            return
        data = s.encode("utf-8")
        prefix = self.uvarint(len(data) + 1) if compact else struct.pack(">h", len(data))
        if len(data) <= 16:
            self.put(prefix + data, f'{label} = "{s}"')
            return
        # Long strings: the length on its own line, then the UTF-8 bytes 24 per line.
        kind = f"compact length {len(data)} + 1" if compact else f"length {len(data)}"
        self.put(prefix, f"{label} {kind}")
        for i in range(0, len(data), 24):
            chunk = data[i:i + 24]
            self.put(chunk, f'{label} bytes {i}..{i + len(chunk)} "{chunk.decode("utf-8", "replace")}"')

    def bytes_field(self, label, data, compact):
        """BYTES (int32 length) or COMPACT_BYTES (uvarint length + 1), then the raw bytes."""
        prefix = self.uvarint(len(data) + 1) if compact else struct.pack(">i", len(data))
        kind = f"compact length {len(data)} + 1" if compact else f"length {len(data)}"
        self.put(prefix, f"{label} {kind}")
        for i in range(0, len(data), 24):
            chunk = data[i:i + 24]
            self.put(chunk, f'{label} bytes {i}..{i + len(chunk)} "{chunk.decode("ascii", "replace")}"')

    def array(self, label, n, compact):
        """ARRAY (int32 count, -1 = null) or COMPACT_ARRAY (uvarint count + 1, 0 = null)."""
        if n is None:
            self.put(self.uvarint(0) if compact else struct.pack(">i", -1), f"{label} = null")
        else:
            data = self.uvarint(n + 1) if compact else struct.pack(">i", n)
            self.put(data, f"{label} count = {n}")

    def tags(self, label):
        """An empty tagged-field section (flexible versions only)."""
        self.put(self.uvarint(0), f"{label}tagged_fields count = 0")

    def body_bytes(self):
        return b"".join(d for d, _ in self.pieces)


# ---------------------------------------------------------------------------------------------
# Request header. v1: api_key, api_version, correlation_id, client_id (nullable STRING).
# v2 (requests at a flexible version): v1 + tagged fields; client_id stays a non-compact
# STRING (KIP-482).
# ---------------------------------------------------------------------------------------------


def header(f, api, version):
    key = APIS[api][0]
    f.int16(f"header.request_api_key ({api})", key)
    f.int16("header.request_api_version", version)
    f.int32("header.correlation_id", CORRELATION_ID)
    f.string("header.client_id", CLIENT_ID, compact=False)
    if flexible(api, version):
        f.tags("header.")


def flexible(api, version):
    first = APIS[api][2]
    return first is not None and version >= first


# ---------------------------------------------------------------------------------------------
# Request bodies, field by field from the Apache Kafka message schemas.
# ---------------------------------------------------------------------------------------------


def api_versions(f, v, software_version):
    # ApiVersionsRequest: v0-2 empty; v3+ ClientSoftwareName, ClientSoftwareVersion.
    flex = flexible("ApiVersions", v)
    if v >= 3:
        f.string("client_software_name", "tidemark", flex)
        f.string("client_software_version", software_version, flex)
    if flex:
        f.tags("")


def metadata(f, v):
    # MetadataRequest: Topics (nullable 1+; null = all topics), AllowAutoTopicCreation 4+,
    # IncludeClusterAuthorizedOperations 8-10, IncludeTopicAuthorizedOperations 8+.
    flex = flexible("Metadata", v)
    f.array("topics", None, flex)
    if v >= 4:
        f.boolean("allow_auto_topic_creation", False)
    if 8 <= v <= 10:
        f.boolean("include_cluster_authorized_operations", False)
    if v >= 8:
        f.boolean("include_topic_authorized_operations", False)
    if flex:
        f.tags("")


def list_groups(f, v, types=()):
    # ListGroupsRequest: v0-3 no fields; StatesFilter 4+ (empty = any state); TypesFilter 5+
    # (empty = any type).
    flex = flexible("ListGroups", v)
    if v >= 4:
        f.array("states_filter", 0, flex)
    if v >= 5:
        f.array("types_filter", len(types), flex)
        for i, t in enumerate(types):
            f.string(f"types_filter[{i}]", t, flex)
    if flex:
        f.tags("")


def group_describe(api):
    # ConsumerGroupDescribeRequest (v0-1, the same fields) and ShareGroupDescribeRequest (v1):
    # GroupIds []string, IncludeAuthorizedOperations bool; flexible.
    def encode(f, v):
        flex = flexible(api, v)
        f.array("group_ids", len(GROUPS), flex)
        for i, g in enumerate(GROUPS):
            f.string(f"group_ids[{i}]", g, flex)
        f.boolean("include_authorized_operations", False)
        if flex:
            f.tags("")
    return encode


def describe_share_group_offsets(f, v):
    # DescribeShareGroupOffsetsRequest: Groups [GroupId, Topics (nullable; null = all
    # topic-partitions) [TopicName, Partitions []int32]]; flexible.
    flex = flexible("DescribeShareGroupOffsets", v)
    f.array("groups", len(GROUPS), flex)
    for i, g in enumerate(GROUPS):
        f.string(f"groups[{i}].group_id", g, flex)
        f.array(f"groups[{i}].topics", None, flex)
        if flex:
            f.tags(f"groups[{i}].")
    if flex:
        f.tags("")


def find_coordinator(f, v):
    # FindCoordinatorRequest: Key 0-3, KeyType 1+ (0 = group), CoordinatorKeys 4+.
    flex = flexible("FindCoordinator", v)
    if v <= 3:
        f.string("key", SINGLE_GROUP, flex)
    if v >= 1:
        f.int8("key_type (group)", 0)
    if v >= 4:
        f.array("coordinator_keys", len(GROUPS), flex)
        for i, g in enumerate(GROUPS):
            f.string(f"coordinator_keys[{i}]", g, flex)
    if flex:
        f.tags("")


def join_group(f, v):
    # JoinGroupRequest: GroupId, SessionTimeoutMs, RebalanceTimeoutMs 1+, MemberId,
    # GroupInstanceId 5+ (nullable), ProtocolType, Protocols [Name, Metadata], Reason 8+
    # (nullable).
    flex = flexible("JoinGroup", v)
    f.string("group_id", HA_GROUP, flex)
    f.int32("session_timeout_ms", HA_SESSION_MS)
    if v >= 1:
        f.int32("rebalance_timeout_ms", HA_REBALANCE_MS)
    f.string("member_id", HA_MEMBER, flex)
    if v >= 5:
        f.string("group_instance_id", None, flex)
    f.string("protocol_type", HA_PROTOCOL_TYPE, flex)
    f.array("protocols", 1, flex)
    f.string("protocols[0].name", HA_PROTOCOL_NAME, flex)
    f.bytes_field("protocols[0].metadata", HA_METADATA, flex)
    if flex:
        f.tags("protocols[0].")
    if v >= 8:
        f.string("reason", None, flex)
    if flex:
        f.tags("")


def sync_group(f, v):
    # SyncGroupRequest: GroupId, GenerationId, MemberId, GroupInstanceId 3+ (nullable),
    # ProtocolType 5+ (nullable), ProtocolName 5+ (nullable), Assignments [MemberId,
    # Assignment].
    flex = flexible("SyncGroup", v)
    f.string("group_id", HA_GROUP, flex)
    f.int32("generation_id", HA_GENERATION)
    f.string("member_id", HA_MEMBER, flex)
    if v >= 3:
        f.string("group_instance_id", None, flex)
    if v >= 5:
        f.string("protocol_type", HA_PROTOCOL_TYPE, flex)
        f.string("protocol_name", HA_PROTOCOL_NAME, flex)
    f.array("assignments", 1, flex)
    f.string("assignments[0].member_id", HA_MEMBER, flex)
    f.bytes_field("assignments[0].assignment", HA_ASSIGNMENT, flex)
    if flex:
        f.tags("assignments[0].")
        f.tags("")


def heartbeat(f, v):
    # HeartbeatRequest: GroupId, GenerationId, MemberId, GroupInstanceId 3+ (nullable).
    flex = flexible("Heartbeat", v)
    f.string("group_id", HA_GROUP, flex)
    f.int32("generation_id", HA_GENERATION)
    f.string("member_id", HA_MEMBER, flex)
    if v >= 3:
        f.string("group_instance_id", None, flex)
    if flex:
        f.tags("")


def leave_group(f, v):
    # LeaveGroupRequest: GroupId, MemberId 0-2, Members 3+ [MemberId, GroupInstanceId
    # (nullable), Reason 5+ (nullable)].
    flex = flexible("LeaveGroup", v)
    f.string("group_id", HA_GROUP, flex)
    if v <= 2:
        f.string("member_id", HA_MEMBER, flex)
    else:
        f.array("members", 1, flex)
        f.string("members[0].member_id", HA_MEMBER, flex)
        f.string("members[0].group_instance_id", None, flex)
        if v >= 5:
            f.string("members[0].reason", None, flex)
        if flex:
            f.tags("members[0].")
    if flex:
        f.tags("")


def describe_groups(f, v):
    # DescribeGroupsRequest: Groups []string, IncludeAuthorizedOperations 3+.
    flex = flexible("DescribeGroups", v)
    f.array("groups", len(GROUPS), flex)
    for i, g in enumerate(GROUPS):
        f.string(f"groups[{i}]", g, flex)
    if v >= 3:
        f.boolean("include_authorized_operations", False)
    if flex:
        f.tags("")


def offset_fetch(f, v):
    # OffsetFetchRequest: GroupId 0-7, Topics 0-7 (nullable 2-7; null = all topics),
    # Groups 8+ [groupId, Topics (nullable)], RequireStable 7+.
    flex = flexible("OffsetFetch", v)
    if v <= 7:
        f.string("group_id", SINGLE_GROUP, flex)
        f.array("topics", None, flex)
    else:
        f.array("groups", len(GROUPS), flex)
        for i, g in enumerate(GROUPS):
            f.string(f"groups[{i}].group_id", g, flex)
            f.array(f"groups[{i}].topics", None, flex)
            f.tags(f"groups[{i}].")
    if v >= 7:
        f.boolean("require_stable", False)
    if flex:
        f.tags("")


def by_topic(items):
    """Group (topic, ...) tuples by topic: topics in name order, items in input order."""
    grouped = {}
    for item in items:
        grouped.setdefault(item[0], []).append(item)
    return sorted(grouped.items())


def list_offsets(f, v, timestamp):
    # ListOffsetsRequest: ReplicaId, IsolationLevel 2+, Topics [Name, Partitions
    # [PartitionIndex, CurrentLeaderEpoch 4+, Timestamp]] (v0's MaxNumOffsets is gone at v1).
    flex = flexible("ListOffsets", v)
    f.int32("replica_id", -1)
    if v >= 2:
        f.int8("isolation_level (read_uncommitted)", 0)
    topics = by_topic(LIST_OFFSETS_PARTITIONS)
    f.array("topics", len(topics), flex)
    for ti, (topic, parts) in enumerate(topics):
        f.string(f"topics[{ti}].name", topic, flex)
        f.array(f"topics[{ti}].partitions", len(parts), flex)
        for pi, (_, partition) in enumerate(parts):
            p = f"topics[{ti}].partitions[{pi}]"
            f.int32(f"{p}.partition_index", partition)
            if v >= 4:
                f.int32(f"{p}.current_leader_epoch", -1)
            f.int64(f"{p}.timestamp", timestamp)
            if flex:
                f.tags(f"{p}.")
        if flex:
            f.tags(f"topics[{ti}].")
    if flex:
        f.tags("")


def describe_configs(f, v, keys):
    # DescribeConfigsRequest: Resources [ResourceType, ResourceName, ConfigurationKeys
    # (nullable; null = all)], IncludeSynonyms 1+, IncludeDocumentation 3+.
    flex = flexible("DescribeConfigs", v)
    f.array("resources", len(CONFIG_TOPICS), flex)
    for i, topic in enumerate(CONFIG_TOPICS):
        r = f"resources[{i}]"
        f.int8(f"{r}.resource_type (topic)", TOPIC_RESOURCE)
        f.string(f"{r}.resource_name", topic, flex)
        if keys is None:
            f.array(f"{r}.configuration_keys", None, flex)
        else:
            f.array(f"{r}.configuration_keys", len(keys), flex)
            for k, key in enumerate(keys):
                f.string(f"{r}.configuration_keys[{k}]", key, flex)
        if flex:
            f.tags(f"{r}.")
    if v >= 1:
        f.boolean("include_synonyms", False)
    if v >= 3:
        f.boolean("include_documentation", False)
    if flex:
        f.tags("")


def fetch(f, v):
    # FetchRequest: ClusterId (tagged 12+, null: not written), ReplicaId 0-14, MaxWaitMs,
    # MinBytes, MaxBytes 3+, IsolationLevel 4+, SessionId 7+, SessionEpoch 7+,
    # Topics [Topic 0-12, Partitions [Partition, CurrentLeaderEpoch 9+, FetchOffset,
    # LastFetchedEpoch 12+, LogStartOffset 5+, PartitionMaxBytes]], ForgottenTopicsData 7+,
    # RackId 11+.
    flex = flexible("Fetch", v)
    f.int32("replica_id", -1)
    f.int32("max_wait_ms", FETCH_MAX_WAIT_MS)
    f.int32("min_bytes", FETCH_MIN_BYTES)
    f.int32("max_bytes", FETCH_RESPONSE_MAX_BYTES)
    f.int8("isolation_level (read_uncommitted)", 0)
    if v >= 7:
        f.int32("session_id (sessionless)", 0)
        f.int32("session_epoch (FINAL_EPOCH)", -1)
    topics = by_topic(FETCH_AT)
    f.array("topics", len(topics), flex)
    for ti, (topic, parts) in enumerate(topics):
        f.string(f"topics[{ti}].topic", topic, flex)
        f.array(f"topics[{ti}].partitions", len(parts), flex)
        for pi, (_, partition, offset, max_bytes) in enumerate(parts):
            p = f"topics[{ti}].partitions[{pi}]"
            f.int32(f"{p}.partition", partition)
            if v >= 9:
                f.int32(f"{p}.current_leader_epoch", -1)
            f.int64(f"{p}.fetch_offset", offset)
            if v >= 12:
                f.int32(f"{p}.last_fetched_epoch", -1)
            if v >= 5:
                f.int64(f"{p}.log_start_offset", -1)
            f.int32(f"{p}.partition_max_bytes", max_bytes)
            if flex:
                f.tags(f"{p}.")
        if flex:
            f.tags(f"topics[{ti}].")
    if v >= 7:
        f.array("forgotten_topics_data", 0, flex)
    if v >= 11:
        f.string("rack_id", "", flex)
    if flex:
        f.tags("")


def sasl_handshake(f, v):
    # SaslHandshakeRequest: Mechanism (v0-1, never flexible).
    f.string("mechanism", SASL_MECHANISM, False)


def sasl_authenticate(f, v):
    # SaslAuthenticateRequest: AuthBytes (bytes; compact from v2, flexible from v2).
    flex = flexible("SaslAuthenticate", v)
    f.bytes_field("auth_bytes", SASL_AUTH_BYTES, flex)
    if flex:
        f.tags("")


# ---------------------------------------------------------------------------------------------
# Golden files
# ---------------------------------------------------------------------------------------------


def describe_input(name, software_version):
    groups = ", ".join(f'"{g[:24]}..."' if len(g) > 24 else f'"{g}"' for g in GROUPS)
    single = f'"{SINGLE_GROUP[:24]}..." ({len(SINGLE_GROUP.encode())} bytes)'
    return {
        "api_versions": f'api_versions() (client_software_name "tidemark", '
        f'client_software_version "{software_version}" from Cargo.toml)',
        "metadata": "metadata_all(version): all topics (null), no auto-creation",
        "list_groups": "list_groups(): no state or type filter",
        "list_groups_types": f"list_groups_v5({LIST_GROUPS_TYPES})",
        "consumer_group_describe": f"consumer_group_describe([{groups}])",
        "share_group_describe": f"share_group_describe([{groups}])",
        "describe_share_group_offsets": f"describe_share_group_offsets([{groups}]): "
        "all topic-partitions (null)",
        "find_coordinator": f"v0-3: find_coordinator({single}); v4+: find_coordinators([{groups}])",
        "describe_groups": f"describe_groups([{groups}])",
        "offset_fetch": f"v2-7: offset_fetch_group({single}); v8+: offset_fetch_groups([{groups}])",
        "list_offsets_earliest": f"list_offsets({LIST_OFFSETS_PARTITIONS}, EARLIEST = -2)",
        "list_offsets_latest": f"list_offsets({LIST_OFFSETS_PARTITIONS}, LATEST = -1)",
        "describe_configs": f"describe_topic_configs({CONFIG_TOPICS}, Some({CONFIG_KEYS}))",
        "describe_configs_all": f"describe_topic_configs({CONFIG_TOPICS}, None)",
        "fetch": "fetch([" + ", ".join(
            f"{t}-{p} @ {o} max {m}" for t, p, o, m in FETCH_AT
        ) + f"], response_max_bytes = {FETCH_RESPONSE_MAX_BYTES}); "
        f"max_wait_ms {FETCH_MAX_WAIT_MS}, min_bytes {FETCH_MIN_BYTES}",
        "sasl_handshake": f'sasl_handshake("{SASL_MECHANISM}")',
        "sasl_authenticate": f"sasl_authenticate({SASL_AUTH_BYTES!r})",
        "join_group": f'join_group("{HA_GROUP}", member "{HA_MEMBER}", session and rebalance '
        f'{HA_SESSION_MS} ms, protocol {HA_PROTOCOL_TYPE}/{HA_PROTOCOL_NAME}, metadata {HA_METADATA!r})',
        "sync_group": f'sync_group("{HA_GROUP}", generation {HA_GENERATION}, "{HA_MEMBER}", '
        f'[("{HA_MEMBER}", {HA_ASSIGNMENT!r})])',
        "heartbeat": f'heartbeat("{HA_GROUP}", generation {HA_GENERATION}, "{HA_MEMBER}")',
        "leave_group": f'leave_group("{HA_GROUP}", "{HA_MEMBER}")',
    }[name]


def requests(software_version):
    """(file stem, api, version, body encoder) for every golden file."""
    out = []

    def add(name, api, body, versions=None):
        for v in versions or APIS[api][1]:
            out.append((name, api, v, lambda f, v=v: body(f, v)))

    add("api_versions", "ApiVersions", lambda f, v: api_versions(f, v, software_version))
    add("metadata", "Metadata", metadata)
    add("list_groups", "ListGroups", list_groups)
    add("list_groups_types", "ListGroups", lambda f, v: list_groups(f, v, LIST_GROUPS_TYPES),
        LIST_GROUPS_TYPES_VERSIONS)
    add("find_coordinator", "FindCoordinator", find_coordinator)
    add("describe_groups", "DescribeGroups", describe_groups)
    add("offset_fetch", "OffsetFetch", offset_fetch)
    add("list_offsets_earliest", "ListOffsets", lambda f, v: list_offsets(f, v, EARLIEST))
    add("list_offsets_latest", "ListOffsets", lambda f, v: list_offsets(f, v, LATEST))
    add("describe_configs", "DescribeConfigs", lambda f, v: describe_configs(f, v, CONFIG_KEYS))
    add("describe_configs_all", "DescribeConfigs", lambda f, v: describe_configs(f, v, None))
    add("fetch", "Fetch", fetch)
    add("sasl_handshake", "SaslHandshake", sasl_handshake)
    add("sasl_authenticate", "SaslAuthenticate", sasl_authenticate)
    add("consumer_group_describe", "ConsumerGroupDescribe", group_describe("ConsumerGroupDescribe"))
    add("share_group_describe", "ShareGroupDescribe", group_describe("ShareGroupDescribe"))
    add("describe_share_group_offsets", "DescribeShareGroupOffsets", describe_share_group_offsets)
    add("join_group", "JoinGroup", join_group)
    add("sync_group", "SyncGroup", sync_group)
    add("heartbeat", "Heartbeat", heartbeat)
    add("leave_group", "LeaveGroup", leave_group)
    return out


def render(name, api, version, encode, software_version):
    f = Frame()
    header(f, api, version)
    encode(f)
    size = len(f.body_bytes())
    pieces = [(struct.pack(">i", size), f"size = {size}")] + f.pieces
    frame = b"".join(d for d, _ in pieces)
    assert len(frame) == 4 + size
    header_version = 2 if flexible(api, version) else 1
    fields = ", ".join(dict.fromkeys(
        re.sub(r"\[\d+\]", "[]", re.sub(r" .*", "", label)) for _, label in pieces[1:]
    ))
    lines = [
        f"# {api} v{version} request (api_key {APIS[api][0]}), request header v{header_version}, "
        f"{'flexible' if header_version == 2 else 'not flexible'}, {len(frame)} bytes",
        f"# input: {describe_input(name, software_version)}",
        f"# correlation_id {CORRELATION_ID} (0x{CORRELATION_ID:08x}), client_id \"{CLIENT_ID}\"",
        f"# fields: size, {fields}",
        "# generated by proto-tests/golden/generate.py from the Kafka protocol spec; do not edit",
    ]
    width = max(len(d.hex()) for d, _ in pieces)
    width = min(width, 48)
    for data, label in pieces:
        hx = data.hex()
        lines.append(f"{hx:<{width}}  # {label}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if any golden file is stale")
    args = ap.parse_args()

    software_version = tidemark_version()
    wanted = {}
    for name, api, version, encode in requests(software_version):
        wanted[f"{name}_v{version}.hex"] = render(name, api, version, encode, software_version)

    OUT.mkdir(exist_ok=True)
    existing = {p.name for p in OUT.glob("*.hex")}
    stale = sorted(n for n in wanted if not (OUT / n).exists()
                   or (OUT / n).read_text() != wanted[n])
    extra = sorted(existing - set(wanted))
    if args.check:
        for n in stale:
            print(f"stale or missing: golden/requests/{n}")
        for n in extra:
            print(f"not generated any more: golden/requests/{n}")
        sys.exit(1 if stale or extra else 0)
    for n in extra:
        (OUT / n).unlink()
    for n, text in wanted.items():
        (OUT / n).write_text(text)
    print(f"wrote {len(wanted)} golden frames to {OUT.relative_to(REPO)}/ "
          f"({len(stale)} changed, {len(extra)} removed)")


if __name__ == "__main__":
    main()
