#!/usr/bin/env python3
"""Optional third opinion on the golden request frames: kafka-python's encoder.

generate.py writes golden/requests/*.hex with a hand-written encoder. This script encodes the
same fixed input (imported from generate.py: the input only, not the encoder) with
kafka-python 3's protocol classes, which are driven by Apache Kafka's JSON message schemas,
and checks that every golden file holds the same bytes.

    python3.11 -m venv /tmp/tidemark-kp-venv
    /tmp/tidemark-kp-venv/bin/pip install kafka-python==3.0.12
    /tmp/tidemark-kp-venv/bin/python proto-tests/golden/crosscheck_kafka_python.py \
        [--kafka-schemas KAFKA/clients/src/main/resources/common/message]

kafka-python 3.0.12 ships no schema for ConsumerGroupDescribe, ShareGroupDescribe and
DescribeShareGroupOffsets; with --kafka-schemas (the message directory of an Apache Kafka 4.1+
checkout) its generic encoder runs over Apache Kafka's own JSON schemas for them, otherwise
they are reported as not checked.

Exits 1 on any difference. Not needed to run the Rust tests.
"""

import argparse
import shutil
import sys
import tempfile
import types
from pathlib import Path

sys.dont_write_bytecode = True  # leave no __pycache__ in the repository
sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate as g  # noqa: E402  (fixed input and version table only)

from kafka.protocol.admin.configs import DescribeConfigsRequest  # noqa: E402
from kafka.protocol.admin.groups import DescribeGroupsRequest, ListGroupsRequest  # noqa: E402
from kafka.protocol.consumer.fetch import FetchRequest  # noqa: E402
from kafka.protocol.consumer.group import OffsetFetchRequest  # noqa: E402
from kafka.protocol.consumer.offsets import ListOffsetsRequest  # noqa: E402
from kafka.protocol.metadata.api_versions import ApiVersionsRequest  # noqa: E402
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest  # noqa: E402
from kafka.protocol.metadata.metadata import MetadataRequest  # noqa: E402
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest  # noqa: E402
from kafka.protocol.api_message import ApiMessage  # noqa: E402

# Requests whose schemas kafka-python 3.0.12 lacks: loaded from --kafka-schemas.
KAFKA_SCHEMA_REQUESTS = [
    "ConsumerGroupDescribeRequest", "ShareGroupDescribeRequest", "DescribeShareGroupOffsetsRequest",
]


def load_kafka_schemas(message_dir):
    """kafka-python message classes for KAFKA_SCHEMA_REQUESTS, built from Apache Kafka's JSON
    schemas: the files are copied into a temporary package that kafka-python loads them from."""
    root = Path(tempfile.mkdtemp(prefix="tidemark-kafka-schemas-"))
    pkg = root / "tidemark_kafka_schemas"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in KAFKA_SCHEMA_REQUESTS:
        shutil.copy(Path(message_dir) / f"{name}.json", pkg / f"{name}.json")
    sys.path.insert(0, str(root))
    return {name: types.new_class(name, (ApiMessage,), {"load_json": pkg.name})
            for name in KAFKA_SCHEMA_REQUESTS}


def api_versions(v, software_version):
    if v >= 3:
        return ApiVersionsRequest(client_software_name="tidemark",
                                  client_software_version=software_version)
    return ApiVersionsRequest()


def metadata(v):
    kw = {"topics": None}
    if v >= 4:
        kw["allow_auto_topic_creation"] = False
    if 8 <= v <= 10:
        kw["include_cluster_authorized_operations"] = False
    if v >= 8:
        kw["include_topic_authorized_operations"] = False
    return MetadataRequest(**kw)


def list_groups(v):
    return ListGroupsRequest(states_filter=[], types_filter=[])


def find_coordinator(v):
    if v >= 4:
        return FindCoordinatorRequest(key_type=0, coordinator_keys=list(g.GROUPS))
    return FindCoordinatorRequest(key=g.SINGLE_GROUP, key_type=0)


def describe_groups(v):
    return DescribeGroupsRequest(groups=list(g.GROUPS), include_authorized_operations=False)


def offset_fetch(v):
    if v >= 8:
        groups = [OffsetFetchRequest.OffsetFetchRequestGroup(group_id=grp, topics=None)
                  for grp in g.GROUPS]
        return OffsetFetchRequest(groups=groups, require_stable=False)
    return OffsetFetchRequest(group_id=g.SINGLE_GROUP, topics=None, require_stable=False)


def list_offsets(timestamp):
    def build(v):
        T = ListOffsetsRequest.ListOffsetsTopic
        P = T.ListOffsetsPartition
        topics = [T(name=topic, partitions=[
            P(partition_index=p, current_leader_epoch=-1, timestamp=timestamp) for _, p in parts
        ]) for topic, parts in g.by_topic(g.LIST_OFFSETS_PARTITIONS)]
        return ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=topics)
    return build


def describe_configs(keys):
    def build(v):
        R = DescribeConfigsRequest.DescribeConfigsResource
        resources = [R(resource_type=g.TOPIC_RESOURCE, resource_name=t,
                       configuration_keys=None if keys is None else list(keys))
                     for t in g.CONFIG_TOPICS]
        return DescribeConfigsRequest(resources=resources, include_synonyms=False,
                                      include_documentation=False)
    return build


def fetch(v):
    T = FetchRequest.FetchTopic
    P = T.FetchPartition
    topics = [T(topic=topic, partitions=[
        P(partition=p, current_leader_epoch=-1, fetch_offset=o, last_fetched_epoch=-1,
          log_start_offset=-1, partition_max_bytes=m) for _, p, o, m in parts
    ]) for topic, parts in g.by_topic(g.FETCH_AT)]
    return FetchRequest(replica_id=-1, max_wait_ms=g.FETCH_MAX_WAIT_MS,
                        min_bytes=g.FETCH_MIN_BYTES, max_bytes=g.FETCH_RESPONSE_MAX_BYTES,
                        isolation_level=0, session_id=0, session_epoch=-1, topics=topics,
                        forgotten_topics_data=[], rack_id="")


def sasl_handshake(v):
    return SaslHandshakeRequest(mechanism=g.SASL_MECHANISM)


def sasl_authenticate(v):
    return SaslAuthenticateRequest(auth_bytes=g.SASL_AUTH_BYTES)


def group_describe(cls):
    def build(v):
        return cls(group_ids=list(g.GROUPS), include_authorized_operations=False)
    return build


def describe_share_group_offsets(cls):
    def build(v):
        groups = [cls.DescribeShareGroupOffsetsRequestGroup(group_id=grp, topics=None)
                  for grp in g.GROUPS]
        return cls(groups=groups)
    return build


def golden_bytes(path):
    digits = "".join(line.split("#", 1)[0].strip().replace(" ", "")
                     for line in path.read_text().splitlines())
    return bytes.fromhex(digits)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kafka-schemas", metavar="DIR",
                    help="Apache Kafka's clients/src/main/resources/common/message directory")
    args = ap.parse_args()
    software_version = g.tidemark_version()
    builders = {
        "api_versions": ("ApiVersions", lambda v: api_versions(v, software_version)),
        "metadata": ("Metadata", metadata),
        "list_groups": ("ListGroups", list_groups),
        "list_groups_types": ("ListGroups", lambda v: ListGroupsRequest(
            states_filter=[], types_filter=list(g.LIST_GROUPS_TYPES))),
        "find_coordinator": ("FindCoordinator", find_coordinator),
        "describe_groups": ("DescribeGroups", describe_groups),
        "offset_fetch": ("OffsetFetch", offset_fetch),
        "list_offsets_earliest": ("ListOffsets", list_offsets(g.EARLIEST)),
        "list_offsets_latest": ("ListOffsets", list_offsets(g.LATEST)),
        "describe_configs": ("DescribeConfigs", describe_configs(g.CONFIG_KEYS)),
        "describe_configs_all": ("DescribeConfigs", describe_configs(None)),
        "fetch": ("Fetch", fetch),
        "sasl_handshake": ("SaslHandshake", sasl_handshake),
        "sasl_authenticate": ("SaslAuthenticate", sasl_authenticate),
    }
    versions = {"list_groups_types": g.LIST_GROUPS_TYPES_VERSIONS}
    unchecked = ["consumer_group_describe", "share_group_describe", "describe_share_group_offsets"]
    if args.kafka_schemas:
        k = load_kafka_schemas(args.kafka_schemas)
        builders.update({
            "consumer_group_describe": ("ConsumerGroupDescribe",
                                        group_describe(k["ConsumerGroupDescribeRequest"])),
            "share_group_describe": ("ShareGroupDescribe",
                                     group_describe(k["ShareGroupDescribeRequest"])),
            "describe_share_group_offsets": ("DescribeShareGroupOffsets", describe_share_group_offsets(
                k["DescribeShareGroupOffsetsRequest"])),
        })
        unchecked = []
    checked, bad = 0, []
    for stem, (api, build) in builders.items():
        for v in versions.get(stem, g.APIS[api][1]):
            req = build(v)
            req.with_header(correlation_id=g.CORRELATION_ID, client_id=g.CLIENT_ID)
            theirs = bytes(req.encode(version=v, header=True, framed=True))
            path = g.OUT / f"{stem}_v{v}.hex"
            ours = golden_bytes(path)
            checked += 1
            if theirs != ours:
                first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                             min(len(ours), len(theirs)))
                bad.append(f"{path.name}: differs at byte {first} "
                           f"(golden {len(ours)} B, kafka-python {len(theirs)} B)\n"
                           f"  golden       {ours.hex()}\n  kafka-python {theirs.hex()}")
    for b in bad:
        print(b)
    print(f"kafka-python agrees with {checked - len(bad)} of {checked} golden frames")
    if unchecked:
        print(f"not checked (no schema in kafka-python; pass --kafka-schemas): {unchecked}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
