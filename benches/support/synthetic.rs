//! A lean synthetic Kafka cluster for benchmarks: several node ids, one TCP listener each,
//! answering every API a collection cycle sends from formulas instead of stored data.
//!
//! `testkit/src/stub.rs` keeps a model of every record (one timestamp per offset) and
//! builds every response through `kafka-protocol` structs; a cluster of 50,000 partitions
//! with realistic offsets (a million records each) cannot be held that way. Here nothing
//! per record is stored: the log of a partition is `[low, high)` in batches of
//! `records_per_batch` records aligned on multiples of it, record `o` was written at
//! `t0 + o × 10 ms`, and every batch is built from one precomputed record template (100-byte
//! values, CreateTime, uncompressed) by writing its 61-byte header. Offsets come from
//! hashes of (group, partition), so every response is computed on demand in one pass,
//! encoded by hand (flexible versions only: the responder advertises exactly one version
//! per API, the newest tidemark speaks). The static parts — Metadata, DescribeGroups
//! entries (members with real ConsumerProtocol assignments) — are encoded once.
//!
//! Fetch behaves like Kafka's `ReplicaManager`: reads start at the batch holding the fetch
//! offset, partitions are filled in request order until the response's `max_bytes` is used
//! up (later partitions come back empty), the first partition that returns data gets at
//! least one whole batch, any other is cut at its `partition_max_bytes` — possibly inside a
//! batch — and an offset below the log start answers OFFSET_OUT_OF_RANGE. Batch CRCs are
//! right (tidemark verifies them): the records' CRC is computed once per record count and
//! combined with the header's, so the responder's own CPU stays small.
//!
//! [`Model::advance`] starts the next generation: every high watermark grows by
//! `advance_per_cycle` records, and the committed offsets of `churn_pct` percent of the
//! group partitions follow (the others stay put, their lag grows).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest, ListOffsetsRequest,
    OffsetFetchRequest, RequestHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The one version advertised and answered per API (tidemark's highest).
pub const VERSIONS: [(ApiKey, i16); 9] = [
    (ApiKey::ApiVersions, 3),
    (ApiKey::Metadata, 12),
    (ApiKey::ListGroups, 4),
    (ApiKey::FindCoordinator, 4),
    (ApiKey::DescribeGroups, 5),
    (ApiKey::OffsetFetch, 8),
    (ApiKey::ListOffsets, 7),
    (ApiKey::Fetch, 12),
    (ApiKey::DescribeConfigs, 4),
];

const EARLIEST: i64 = -2;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const NOT_COORDINATOR: i16 = 16;
const RECORD_INTERVAL_MS: i64 = 10;
const HEADER_LEN: usize = 61;

/// The shape of the synthetic cluster.
#[derive(Clone, Debug)]
pub struct Shape {
    pub brokers: usize,
    pub topics: usize,
    pub partitions_per_topic: usize,
    pub groups: usize,
    /// Topics each group consumes (all their partitions).
    pub topics_per_group: usize,
    pub members_per_group: usize,
    pub records_per_batch: i64,
    pub value_bytes: usize,
    /// Records appended to every partition per generation.
    pub advance_per_cycle: i64,
    /// Percent of group partitions whose committed offset follows the high watermark.
    pub churn_pct: u64,
}

impl Shape {
    pub fn partitions(&self) -> usize {
        self.topics * self.partitions_per_topic
    }

    pub fn group_partitions(&self) -> usize {
        self.groups * self.topics_per_group.min(self.topics) * self.partitions_per_topic
    }
}

fn hash(a: u64, b: u64) -> u64 {
    // splitmix64 of the pair: deterministic, well spread.
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The cluster: names, leaders, coordinators, offsets, records.
pub struct Model {
    pub shape: Shape,
    pub nodes: Vec<(i32, SocketAddr)>,
    topic_names: Vec<String>,
    group_names: Vec<String>,
    group_index: std::collections::HashMap<String, usize>,
    topic_index: std::collections::HashMap<String, usize>,
    generation: AtomicU64,
    t0_ms: i64,
    /// Records of a full batch (template) and where each record ends in it.
    template: Vec<u8>,
    record_ends: Vec<usize>,
    /// CRC-32C of the template's first `n + 1` records, by `n`.
    record_crcs: Vec<u32>,
    metadata: Bytes,
    describe_entries: Vec<Bytes>,
    pub served_bytes: AtomicU64,
}

impl Model {
    pub fn topic(&self, t: usize) -> &str {
        &self.topic_names[t]
    }

    pub fn group(&self, g: usize) -> &str {
        &self.group_names[g]
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Next generation: logs grow, moving groups follow.
    pub fn advance(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn node_of_index(&self, i: usize) -> i32 {
        self.nodes[i % self.nodes.len()].0
    }

    /// Leader of partition `p` of topic `t`.
    pub fn leader(&self, t: usize, p: usize) -> i32 {
        self.node_of_index(t + p)
    }

    pub fn coordinator(&self, g: usize) -> i32 {
        self.node_of_index(g)
    }

    fn partition_id(&self, t: usize, p: usize) -> u64 {
        (t * self.shape.partitions_per_topic + p) as u64
    }

    pub fn low(&self, t: usize, p: usize) -> i64 {
        1_000 + (hash(self.partition_id(t, p), 1) % 1_000) as i64
    }

    pub fn high(&self, t: usize, p: usize) -> i64 {
        1_000_000
            + (hash(self.partition_id(t, p), 2) % 100_000) as i64
            + self.generation() as i64 * self.shape.advance_per_cycle
    }

    /// Topics group `g` consumes.
    pub fn group_topics(&self, g: usize) -> impl Iterator<Item = usize> + '_ {
        let n = self.shape.topics_per_group.min(self.shape.topics);
        (0..n).map(move |k| (g * n + k) % self.shape.topics)
    }

    /// Offset lag of group `g` on (t, p) in generation 0: heavy-tailed, never 0.
    fn base_lag(&self, g: usize, t: usize, p: usize) -> i64 {
        let h = hash(g as u64, self.partition_id(t, p));
        let bucket = h % 1000;
        let spread = (h >> 10) as i64;
        if bucket < 600 {
            1 + spread % 20
        } else if bucket < 900 {
            20 + spread % 500
        } else if bucket < 990 {
            500 + spread % 20_000
        } else {
            20_000 + spread % 200_000
        }
    }

    fn moves(&self, g: usize, t: usize, p: usize) -> bool {
        hash(g as u64 ^ 0x5555, self.partition_id(t, p)) % 100 < self.shape.churn_pct
    }

    pub fn committed(&self, g: usize, t: usize, p: usize) -> i64 {
        let lag = self.base_lag(g, t, p);
        let high = self.high(t, p);
        if self.moves(g, t, p) {
            high - lag
        } else {
            high - self.generation() as i64 * self.shape.advance_per_cycle - lag
        }
    }

    pub fn timestamp(&self, offset: i64) -> i64 {
        self.t0_ms + offset * RECORD_INTERVAL_MS
    }

    /// Bytes of the batch starting at `base` with `count` records (header + records).
    fn batch_len(&self, count: usize) -> usize {
        HEADER_LEN + self.record_ends[count - 1]
    }

    /// Append batch `[base, base + count)` to `out`, cut to `limit` bytes.
    fn put_batch(&self, out: &mut BytesMut, base: i64, count: usize, limit: usize) {
        let records_len = self.record_ends[count - 1];
        let mut header = [0u8; HEADER_LEN];
        header[0..8].copy_from_slice(&base.to_be_bytes());
        header[8..12].copy_from_slice(&((HEADER_LEN - 12 + records_len) as i32).to_be_bytes());
        // partitionLeaderEpoch 0, magic 2, crc (below), attributes 0.
        header[16] = 2;
        header[23..27].copy_from_slice(&(count as i32 - 1).to_be_bytes());
        let first_ts = self.timestamp(base);
        header[27..35].copy_from_slice(&first_ts.to_be_bytes());
        let max_ts = first_ts + (count as i64 - 1) * RECORD_INTERVAL_MS;
        header[35..43].copy_from_slice(&max_ts.to_be_bytes());
        header[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        header[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        header[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        header[57..61].copy_from_slice(&(count as i32).to_be_bytes());
        let crc = crc32c::crc32c_combine(
            crc32c::crc32c(&header[21..]),
            self.record_crcs[count - 1],
            records_len,
        );
        header[17..21].copy_from_slice(&crc.to_be_bytes());
        let total = HEADER_LEN + records_len;
        let take = total.min(limit);
        if take <= HEADER_LEN {
            out.put_slice(&header[..take]);
        } else {
            out.put_slice(&header);
            out.put_slice(&self.template[..take - HEADER_LEN]);
        }
    }

    /// The records a Kafka broker returns for a fetch at `offset` of a log `[low, high)`
    /// with `limit` bytes (`min_one`: at least one whole batch).
    fn read_log(&self, out: &mut BytesMut, offset: i64, high: i64, limit: usize, min_one: bool) {
        let b = self.shape.records_per_batch;
        let mut base = offset - offset.rem_euclid(b);
        let mut used = 0usize;
        let mut first = true;
        while base < high {
            let count = (high - base).min(b) as usize;
            let len = self.batch_len(count);
            let room = limit.saturating_sub(used);
            if first && min_one && len > room {
                self.put_batch(out, base, count, usize::MAX);
                return;
            }
            if room == 0 {
                return;
            }
            self.put_batch(out, base, count, room);
            if len >= room {
                return;
            }
            used += len;
            base += b;
            first = false;
        }
    }
}

/// Build the model and start one listener per node.
pub async fn start(shape: Shape) -> Arc<Model> {
    let mut listeners = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..shape.brokers {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        nodes.push((i as i32 + 1, l.local_addr().expect("addr")));
        listeners.push(l);
    }
    let topic_names: Vec<String> = (0..shape.topics)
        .map(|t| format!("prod.payments-{t:04}.ledger-events.v2"))
        .collect();
    let group_names: Vec<String> = (0..shape.groups)
        .map(|g| format!("payments-{g:04}-ledger-consumer"))
        .collect();
    // One record: length, attributes, timestampDelta, offsetDelta, key (null), value,
    // headers (none). Deltas grow by record, so the template is one full batch.
    let mut template = Vec::new();
    let mut record_ends = Vec::new();
    for i in 0..shape.records_per_batch {
        let mut body = Vec::new();
        body.push(0u8);
        put_varint(&mut body, i * RECORD_INTERVAL_MS);
        put_varint(&mut body, i);
        put_varint(&mut body, -1);
        put_varint(&mut body, shape.value_bytes as i64);
        body.extend((0..shape.value_bytes).map(|k| b'a' + ((i as usize + k) % 26) as u8));
        put_varint(&mut body, 0);
        put_varint(&mut template, body.len() as i64);
        template.extend_from_slice(&body);
        record_ends.push(template.len());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    // The newest records (offset ~1.1M) are about a minute old.
    let t0_ms = now - 1_101_000 * RECORD_INTERVAL_MS - 60_000;
    let mut model = Model {
        group_index: group_names
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect(),
        topic_index: topic_names
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect(),
        shape,
        nodes,
        topic_names,
        group_names,
        generation: AtomicU64::new(0),
        t0_ms,
        record_crcs: record_ends
            .iter()
            .map(|end| crc32c::crc32c(&template[..*end]))
            .collect(),
        template,
        record_ends,
        metadata: Bytes::new(),
        describe_entries: Vec::new(),
        served_bytes: AtomicU64::new(0),
    };
    model.metadata = encode_metadata(&model);
    model.describe_entries = (0..model.shape.groups)
        .map(|g| describe_entry(&model, g))
        .collect();
    let model = Arc::new(model);
    for (i, listener) in listeners.into_iter().enumerate() {
        let model = model.clone();
        let node = model.nodes[i].0;
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(model.clone(), node, stream));
            }
        });
    }
    model
}

impl Model {
    pub fn bootstrap(&self) -> String {
        self.nodes[0].1.to_string()
    }
}

async fn serve(model: Arc<Model>, node: i32, mut stream: TcpStream) {
    loop {
        let mut prefix = [0u8; 4];
        if stream.read_exact(&mut prefix).await.is_err() {
            return;
        }
        let len = i32::from_be_bytes(prefix);
        if !(0..=64 << 20).contains(&len) {
            return;
        }
        let mut frame = vec![0u8; len as usize];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let response = {
            let model = model.clone();
            // Encoding big responses is CPU work: keep it off the I/O workers' hot path.
            tokio::task::spawn_blocking(move || answer(&model, node, Bytes::from(frame)))
                .await
                .ok()
                .flatten()
        };
        let Some(response) = response else {
            return;
        };
        model
            .served_bytes
            .fetch_add(response.len() as u64, Ordering::Relaxed);
        if stream.write_all(&response).await.is_err() {
            return;
        }
    }
}

/// The whole response frame (size, header, body) for one request frame.
fn answer(model: &Model, node: i32, mut frame: Bytes) -> Option<Bytes> {
    if frame.len() < 4 {
        return None;
    }
    let api = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).ok()?;
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version)).ok()?;
    let body = match api {
        ApiKey::ApiVersions => api_versions(version),
        _ if VERSIONS.iter().any(|(a, v)| *a == api && *v == version) => match api {
            ApiKey::Metadata => model.metadata.clone(),
            ApiKey::ListGroups => list_groups(model, node),
            ApiKey::FindCoordinator => find_coordinator(
                model,
                &FindCoordinatorRequest::decode(&mut frame, version).ok()?,
            ),
            ApiKey::DescribeGroups => describe_groups(
                model,
                node,
                &DescribeGroupsRequest::decode(&mut frame, version).ok()?,
            ),
            ApiKey::OffsetFetch => offset_fetch(
                model,
                node,
                &OffsetFetchRequest::decode(&mut frame, version).ok()?,
            ),
            ApiKey::ListOffsets => list_offsets(
                model,
                node,
                &ListOffsetsRequest::decode(&mut frame, version).ok()?,
            ),
            ApiKey::Fetch => fetch(
                model,
                node,
                &FetchRequest::decode(&mut frame, version).ok()?,
            ),
            ApiKey::DescribeConfigs => describe_configs(
                &DescribeConfigsRequest::decode(&mut frame, version).ok()?,
                version,
            ),
            _ => return None,
        },
        _ => return None,
    };
    let header_version = api.response_header_version(version);
    let mut out = BytesMut::with_capacity(body.len() + 16);
    out.put_i32(0);
    out.put_i32(header.correlation_id);
    if header_version >= 1 {
        put_uvarint(&mut out, 0);
    }
    out.put_slice(&body);
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Some(out.freeze())
}

// --- encoding helpers (flexible versions) -----------------------------------------------

fn put_uvarint(out: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn compact_str(out: &mut BytesMut, s: &str) {
    put_uvarint(out, s.len() as u64 + 1);
    out.put_slice(s.as_bytes());
}

fn compact_len(out: &mut BytesMut, n: usize) {
    put_uvarint(out, n as u64 + 1);
}

fn tags(out: &mut BytesMut) {
    out.put_u8(0);
}

fn encode<T: Encodable>(msg: &T, version: i16) -> Bytes {
    let mut out = BytesMut::new();
    msg.encode(&mut out, version).expect("encodable");
    out.freeze()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

// --- responses ---------------------------------------------------------------------------

fn api_versions(version: i16) -> Bytes {
    let keys = VERSIONS
        .iter()
        .map(|(k, v)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(0)
                .with_max_version(*v)
        })
        .collect();
    let r = ApiVersionsResponse::default().with_api_keys(keys);
    encode(&r, version.min(3))
}

fn encode_metadata(model: &Model) -> Bytes {
    let mut out = BytesMut::with_capacity(64 * model.shape.partitions() + 4096);
    out.put_i32(0); // throttle
    compact_len(&mut out, model.nodes.len());
    for (id, addr) in &model.nodes {
        out.put_i32(*id);
        compact_str(&mut out, &addr.ip().to_string());
        out.put_i32(i32::from(addr.port()));
        put_uvarint(&mut out, 0); // rack: null
        tags(&mut out);
    }
    compact_str(&mut out, "synthetic-cluster-id-0000000000");
    out.put_i32(model.nodes[0].0);
    compact_len(&mut out, model.shape.topics);
    let replicas: Vec<i32> = model.nodes.iter().map(|(n, _)| *n).collect();
    for t in 0..model.shape.topics {
        out.put_i16(0);
        compact_str(&mut out, model.topic(t));
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&hash(t as u64, 99).to_be_bytes());
        id[8..].copy_from_slice(&(t as u64 + 1).to_be_bytes());
        out.put_slice(&id);
        out.put_u8(0); // is_internal
        compact_len(&mut out, model.shape.partitions_per_topic);
        for p in 0..model.shape.partitions_per_topic {
            let leader = model.leader(t, p);
            out.put_i16(0);
            out.put_i32(p as i32);
            out.put_i32(leader);
            out.put_i32(7); // leader epoch
            let n = replicas.len().min(3);
            for _ in 0..2 {
                // replicas, isr: the leader first.
                compact_len(&mut out, n);
                out.put_i32(leader);
                for r in replicas.iter().filter(|r| **r != leader).take(n - 1) {
                    out.put_i32(*r);
                }
            }
            compact_len(&mut out, 0); // offline
            tags(&mut out);
        }
        out.put_i32(i32::MIN); // topic_authorized_operations
        tags(&mut out);
    }
    tags(&mut out);
    out.freeze()
}

fn list_groups(model: &Model, node: i32) -> Bytes {
    let mine: Vec<usize> = (0..model.shape.groups)
        .filter(|g| model.coordinator(*g) == node)
        .collect();
    let mut out = BytesMut::new();
    out.put_i32(0);
    out.put_i16(0);
    compact_len(&mut out, mine.len());
    for g in mine {
        compact_str(&mut out, model.group(g));
        compact_str(&mut out, "consumer");
        compact_str(&mut out, "Stable");
        tags(&mut out);
    }
    tags(&mut out);
    out.freeze()
}

fn find_coordinator(model: &Model, req: &FindCoordinatorRequest) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(0);
    compact_len(&mut out, req.coordinator_keys.len());
    for key in &req.coordinator_keys {
        compact_str(&mut out, key.as_str());
        match model.group_index.get(key.as_str()) {
            Some(g) => {
                let node = model.coordinator(*g);
                let addr = model
                    .nodes
                    .iter()
                    .find(|(n, _)| *n == node)
                    .map(|(_, a)| *a);
                let addr = addr.expect("coordinator is a node");
                out.put_i32(node);
                compact_str(&mut out, &addr.ip().to_string());
                out.put_i32(i32::from(addr.port()));
                out.put_i16(0);
                put_uvarint(&mut out, 0);
            }
            None => {
                out.put_i32(-1);
                compact_str(&mut out, "");
                out.put_i32(-1);
                out.put_i16(15); // COORDINATOR_NOT_AVAILABLE
                put_uvarint(&mut out, 0);
            }
        }
        tags(&mut out);
    }
    tags(&mut out);
    out.freeze()
}

/// ConsumerProtocol assignment v0 of `partitions` of `topics`.
fn assignment(topics: &[(&str, Vec<i32>)]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(topics.len() as i32);
    for (t, ps) in topics {
        out.put_i16(t.len() as i16);
        out.put_slice(t.as_bytes());
        out.put_i32(ps.len() as i32);
        for p in ps {
            out.put_i32(*p);
        }
    }
    out.put_i32(-1); // user data
    out.freeze()
}

/// ConsumerProtocol subscription v0 of `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(topics.len() as i32);
    for t in topics {
        out.put_i16(t.len() as i16);
        out.put_slice(t.as_bytes());
    }
    out.put_i32(-1);
    out.freeze()
}

/// The DescribeGroups v5 entry of group `g`: Stable, members with real assignments.
fn describe_entry(model: &Model, g: usize) -> Bytes {
    let topics: Vec<usize> = model.group_topics(g).collect();
    let names: Vec<&str> = topics.iter().map(|t| model.topic(*t)).collect();
    let m = model.shape.members_per_group.max(1);
    let members = (0..m)
        .map(|k| {
            let owned: Vec<(&str, Vec<i32>)> = names
                .iter()
                .map(|t| {
                    let ps = (0..model.shape.partitions_per_topic as i32)
                        .filter(|p| *p as usize % m == k)
                        .collect();
                    (*t, ps)
                })
                .collect();
            let h = hash(g as u64, k as u64);
            DescribedGroupMember::default()
                .with_member_id(s(&format!(
                    "consumer-payments-{g:04}-{k}-{:08x}-{:04x}-{:04x}-{:012x}",
                    h >> 32,
                    (h >> 16) & 0xffff,
                    h & 0xffff,
                    hash(h, 7) & 0xffff_ffff_ffff
                )))
                .with_client_id(s(&format!("consumer-payments-{g:04}-{k}")))
                .with_client_host(s(&format!(
                    "/10.{}.{}.{}",
                    h % 200,
                    (h >> 8) % 250,
                    (h >> 16) % 250
                )))
                .with_member_metadata(subscription(&names))
                .with_member_assignment(assignment(&owned))
        })
        .collect();
    let group = DescribedGroup::default()
        .with_group_id(kafka_protocol::messages::GroupId(s(model.group(g))))
        .with_group_state(s("Stable"))
        .with_protocol_type(s("consumer"))
        .with_protocol_data(s("range"))
        .with_members(members)
        .with_authorized_operations(i32::MIN);
    encode(&group, 5)
}

fn describe_groups(model: &Model, node: i32, req: &DescribeGroupsRequest) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(0);
    compact_len(&mut out, req.groups.len());
    for name in &req.groups {
        match model.group_index.get(name.as_str()) {
            Some(g) if model.coordinator(*g) == node => {
                out.put_slice(&model.describe_entries[*g]);
            }
            _ => {
                let code = if model.group_index.contains_key(name.as_str()) {
                    NOT_COORDINATOR
                } else {
                    0
                };
                let dead = DescribedGroup::default()
                    .with_error_code(code)
                    .with_group_id(name.clone())
                    .with_group_state(s("Dead"));
                out.put_slice(&encode(&dead, 5));
            }
        }
    }
    tags(&mut out);
    out.freeze()
}

fn offset_fetch(model: &Model, node: i32, req: &OffsetFetchRequest) -> Bytes {
    let mut out = BytesMut::with_capacity(
        req.groups.len()
            * (64 + 24 * model.shape.partitions_per_topic * model.shape.topics_per_group),
    );
    out.put_i32(0);
    compact_len(&mut out, req.groups.len());
    for group in &req.groups {
        compact_str(&mut out, group.group_id.as_str());
        match model.group_index.get(group.group_id.as_str()) {
            Some(g) if model.coordinator(*g) == node => {
                let g = *g;
                let topics: Vec<usize> = model.group_topics(g).collect();
                compact_len(&mut out, topics.len());
                for t in topics {
                    compact_str(&mut out, model.topic(t));
                    compact_len(&mut out, model.shape.partitions_per_topic);
                    for p in 0..model.shape.partitions_per_topic {
                        out.put_i32(p as i32);
                        out.put_i64(model.committed(g, t, p));
                        out.put_i32(7);
                        compact_str(&mut out, "");
                        out.put_i16(0);
                        tags(&mut out);
                    }
                    tags(&mut out);
                }
                out.put_i16(0);
            }
            Some(_) => {
                compact_len(&mut out, 0);
                out.put_i16(NOT_COORDINATOR);
            }
            None => {
                compact_len(&mut out, 0);
                out.put_i16(0);
            }
        }
        tags(&mut out);
    }
    tags(&mut out);
    out.freeze()
}

fn split_topic(model: &Model, name: &str) -> Option<usize> {
    model.topic_index.get(name).copied()
}

fn list_offsets(model: &Model, node: i32, req: &ListOffsetsRequest) -> Bytes {
    let mut out = BytesMut::with_capacity(
        64 + 40 * req.topics.iter().map(|t| t.partitions.len()).sum::<usize>(),
    );
    out.put_i32(0);
    compact_len(&mut out, req.topics.len());
    for topic in &req.topics {
        compact_str(&mut out, topic.name.as_str());
        compact_len(&mut out, topic.partitions.len());
        let t = split_topic(model, topic.name.as_str());
        for part in &topic.partitions {
            let p = part.partition_index;
            out.put_i32(p);
            match t {
                Some(t) if model.leader(t, p as usize) == node => {
                    let offset = if part.timestamp == EARLIEST {
                        model.low(t, p as usize)
                    } else {
                        model.high(t, p as usize)
                    };
                    out.put_i16(0);
                    out.put_i64(-1);
                    out.put_i64(offset);
                    out.put_i32(7);
                }
                _ => {
                    out.put_i16(NOT_LEADER_OR_FOLLOWER);
                    out.put_i64(-1);
                    out.put_i64(-1);
                    out.put_i32(-1);
                }
            }
            tags(&mut out);
        }
        tags(&mut out);
    }
    tags(&mut out);
    out.freeze()
}

fn fetch(model: &Model, node: i32, req: &FetchRequest) -> Bytes {
    let mut budget = usize::try_from(req.max_bytes).unwrap_or(0);
    let mut min_one = true;
    let mut out = BytesMut::with_capacity(budget.min(64 << 20) + 4096);
    out.put_i32(0); // throttle
    out.put_i16(0); // error
    out.put_i32(0); // session
    compact_len(&mut out, req.topics.len());
    let mut records = BytesMut::new();
    for topic in &req.topics {
        compact_str(&mut out, topic.topic.as_str());
        compact_len(&mut out, topic.partitions.len());
        let t = split_topic(model, topic.topic.as_str());
        for part in &topic.partitions {
            let p = part.partition;
            out.put_i32(p);
            let Some(t) = t.filter(|t| model.leader(*t, p as usize) == node) else {
                out.put_i16(NOT_LEADER_OR_FOLLOWER);
                out.put_i64(-1);
                out.put_i64(-1);
                out.put_i64(-1);
                put_uvarint(&mut out, 0); // aborted: null
                out.put_i32(-1);
                put_uvarint(&mut out, 0); // records: null
                tags(&mut out);
                continue;
            };
            let (low, high) = (model.low(t, p as usize), model.high(t, p as usize));
            let offset = part.fetch_offset;
            let code = if offset < low || offset > high {
                OFFSET_OUT_OF_RANGE
            } else {
                0
            };
            records.clear();
            if code == 0 && offset < high {
                let limit = usize::try_from(part.partition_max_bytes)
                    .unwrap_or(0)
                    .min(budget);
                model.read_log(&mut records, offset, high, limit, min_one);
                if !records.is_empty() {
                    min_one = false;
                    budget = budget.saturating_sub(records.len());
                }
            }
            out.put_i16(code);
            out.put_i64(high);
            out.put_i64(high);
            out.put_i64(low);
            put_uvarint(&mut out, 0); // aborted: null
            out.put_i32(-1); // preferred read replica
            compact_len(&mut out, records.len());
            out.put_slice(&records);
            tags(&mut out);
        }
        tags(&mut out);
    }
    tags(&mut out);
    out.freeze()
}

fn describe_configs(req: &DescribeConfigsRequest, version: i16) -> Bytes {
    let results = req
        .resources
        .iter()
        .map(|r| {
            DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_configs(vec![DescribeConfigsResourceResult::default()
                    .with_name(s("cleanup.policy"))
                    .with_value(Some(s("delete")))
                    .with_config_source(5)])
        })
        .collect();
    encode(
        &DescribeConfigsResponse::default().with_results(results),
        version,
    )
}
