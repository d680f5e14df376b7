//! The workload client: creates topics, produces record batches with chosen
//! CreateTime timestamps and codecs, and commits group offsets as a simple
//! (non-member) consumer. Everything it wrote successfully is in its [`Ledger`].
//!
//! Produce goes to the partition leader (from Metadata), commits to the group
//! coordinator (from FindCoordinator). A connection that fails is dropped and
//! reopened by the next call, so a workload survives a broker restart.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, CreateTopicsRequest,
    CreateTopicsResponse, EndTxnRequest, EndTxnResponse, FetchRequest, FetchResponse,
    FindCoordinatorResponse, GroupId, InitProducerIdRequest, InitProducerIdResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, ProduceRequest,
    ProduceResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::codec::{self, Codec};
use super::ledger::{Ledger, Marker, ProducedRecord};
use super::wire::Connection;
use super::{HarnessError, Result};

/// Highest versions the workload uses (the next ones switch to topic ids).
const PRODUCE_MAX: i16 = 9;
const METADATA_MAX: i16 = 12;
const CREATE_TOPICS_MAX: i16 = 7;
const FIND_COORDINATOR_MAX: i16 = 4;
const OFFSET_COMMIT_MAX: i16 = 8;
const FETCH_MAX: i16 = 12;
/// v4+ of AddPartitionsToTxn is the broker-to-broker batched form.
const ADD_PARTITIONS_TO_TXN_MAX: i16 = 3;
const INIT_PRODUCER_ID_MAX: i16 = 5;
const END_TXN_MAX: i16 = 4;

/// A Kafka client for setting up test scenarios, independent of tidemark.
#[derive(Debug)]
pub struct Workload {
    bootstrap: String,
    /// Open connections by "host:port".
    conns: HashMap<String, Connection>,
    /// Leader address per (topic, partition), from Metadata.
    leaders: HashMap<(String, i32), String>,
    /// Advertised address → address actually dialled (see [`Workload::route`]).
    routes: HashMap<String, String>,
    ledger: Ledger,
}

impl Workload {
    /// Connects to the bootstrap broker ("host:port").
    pub async fn try_connect(bootstrap: &str) -> Result<Workload> {
        let conn = Connection::connect(bootstrap).await?;
        let mut conns = HashMap::new();
        conns.insert(bootstrap.to_owned(), conn);
        Ok(Workload {
            bootstrap: bootstrap.to_owned(),
            conns,
            leaders: HashMap::new(),
            routes: HashMap::new(),
            ledger: Ledger::default(),
        })
    }

    /// Dial `actual` whenever metadata names `advertised`: for a broker that advertises a
    /// proxy in front of it (TLS terminator, SASL front) the workload goes around it.
    pub fn route(&mut self, advertised: &str, actual: &str) {
        self.routes.insert(advertised.to_owned(), actual.to_owned());
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Everything produced and committed so far.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Mutable ledger, e.g. to [`Ledger::clear`] it after a broker restart.
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// The connection to the bootstrap broker (opened if needed), for raw requests.
    pub async fn connection(&mut self) -> Result<&mut Connection> {
        let addr = self.bootstrap.clone();
        self.conn(&addr).await
    }

    /// Creates a topic with `partitions` partitions, replication factor 1.
    pub async fn try_create_topic(&mut self, name: &str, partitions: i32) -> Result<()> {
        self.try_create_topic_with_configs(name, partitions, &[])
            .await
    }

    /// Creates a topic with topic configs, e.g. `[("retention.ms", "60000")]`.
    /// Tansu stores configs (DescribeConfigs returns them) but does not apply
    /// `message.timestamp.type=LogAppendTime`: use
    /// [`Workload::produce_log_append_time`] for LogAppendTime batches.
    pub async fn try_create_topic_with_configs(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(v)))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000);
        let addr = self.bootstrap.clone();
        let resp: CreateTopicsResponse = self
            .call(&addr, ApiKey::CreateTopics, CREATE_TOPICS_MAX, &req)
            .await?;
        let result = resp
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .ok_or_else(|| {
                HarnessError::protocol(format!("CreateTopics: no result for topic {name}"))
            })?;
        HarnessError::check_msg(result.error_code, result.error_message.as_ref(), || {
            format!("creating topic {name}")
        })?;
        self.ledger.add_topic(name, partitions);
        Ok(())
    }

    /// Produces `records` — (CreateTime timestamp ms, value) — as ONE batch
    /// compressed with `codec`, acks=all. Returns the base offset; record i gets
    /// offset base + i. Ledger entries at or above the base offset are replaced
    /// (they cannot exist any more, e.g. after a broker restart).
    ///
    /// Tansu quirk: its ListOffsets LATEST is off for multi-record batches; tests
    /// that read watermarks with ListOffsets should produce one record per call.
    pub async fn try_produce(
        &mut self,
        topic: &str,
        partition: i32,
        codec: Codec,
        records: &[(i64, Vec<u8>)],
    ) -> Result<i64> {
        self.produce_batch(topic, partition, codec, records, false, None)
            .await
    }

    /// Like [`Workload::try_produce`], but the batch is written as a Kafka broker
    /// writes a LogAppendTime batch (attributes bit 3, maxTimestamp = now, CRC
    /// fixed), so readers must report the batch's maxTimestamp for every record.
    ///
    /// Tansu ignores the topic config `message.timestamp.type` but honours this
    /// bit: it overwrites baseTimestamp and maxTimestamp with its own clock,
    /// leaves the CRC stale, and answers `log_append_time_ms = -1`. So the ledger
    /// takes the append time from the response when the broker gives one, and
    /// otherwise reads the stored batch back (Fetch) and takes its maxTimestamp.
    pub async fn try_produce_log_append_time(
        &mut self,
        topic: &str,
        partition: i32,
        codec: Codec,
        records: &[(i64, Vec<u8>)],
    ) -> Result<i64> {
        self.produce_batch(topic, partition, codec, records, true, None)
            .await
    }

    async fn produce_batch(
        &mut self,
        topic: &str,
        partition: i32,
        codec: Codec,
        records: &[(i64, Vec<u8>)],
        log_append_time: bool,
        txn: Option<(&str, codec::TxnProducerFields)>,
    ) -> Result<i64> {
        let mut batch = match txn {
            Some((_, fields)) => codec::encode_txn_batch(codec, records, fields)?,
            None => codec::encode_batch(codec, records)?,
        };
        if log_append_time {
            let mut bytes = batch.to_vec();
            codec::set_log_append_time(&mut bytes, now_ms())?;
            batch = bytes.into();
        }
        let req = ProduceRequest::default()
            .with_transactional_id(txn.map(|(id, _)| TransactionalId(str_bytes(id))))
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let leader = self.leader(topic, partition).await?;
        let resp: ProduceResponse = self
            .call(&leader, ApiKey::Produce, PRODUCE_MAX, &req)
            .await?;
        let part = resp
            .responses
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == partition)
            .ok_or_else(|| {
                HarnessError::protocol(format!("Produce: no result for {topic}-{partition}"))
            })?;
        if part.error_code != 0 {
            self.leaders.remove(&(topic.to_owned(), partition));
        }
        HarnessError::check_msg(part.error_code, part.error_message.as_ref(), || {
            format!("producing to {topic}-{partition}")
        })?;
        let base = part.base_offset;
        let response_append_time = part.log_append_time_ms;
        let log_append_time = if response_append_time >= 0 {
            Some(response_append_time)
        } else if log_append_time {
            Some(self.stored_max_timestamp(topic, partition, base).await?)
        } else {
            None
        };
        self.ledger.add_batch(
            topic,
            partition,
            records
                .iter()
                .enumerate()
                .map(|(i, (ts, value))| ProducedRecord {
                    offset: base + i as i64,
                    timestamp_ms: *ts,
                    log_append_time_ms: log_append_time,
                    codec,
                    value: value.clone(),
                    batch_base_offset: base,
                }),
        );
        Ok(base)
    }

    /// maxTimestamp of the stored batch that starts at `base_offset`.
    async fn stored_max_timestamp(
        &mut self,
        topic: &str,
        partition: i32,
        base_offset: i64,
    ) -> Result<i64> {
        let records = self.try_fetch(topic, partition, base_offset).await?;
        codec::batch_headers(&records)
            .into_iter()
            .find(|h| h.base_offset == base_offset)
            .map(|h| h.max_timestamp)
            .ok_or_else(|| {
                HarnessError::protocol(format!(
                    "Fetch: no batch at {topic}-{partition}@{base_offset}"
                ))
            })
    }

    /// The record bytes a READ_UNCOMMITTED Fetch from `offset` returns (up to 1 MiB).
    pub async fn try_fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<bytes::Bytes> {
        let req = FetchRequest::default()
            // Tansu answers max_wait_ms = 0 with no partitions at all.
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(1024 * 1024)
            .with_isolation_level(0)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1024 * 1024)])]);
        let leader = self.leader(topic, partition).await?;
        let resp: FetchResponse = self.call(&leader, ApiKey::Fetch, FETCH_MAX, &req).await?;
        HarnessError::check(resp.error_code, || {
            format!("Fetch from {topic}-{partition}")
        })?;
        let part = resp
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                HarnessError::protocol(format!("Fetch: no result for {topic}-{partition}"))
            })?;
        HarnessError::check(part.error_code, || {
            format!("Fetch from {topic}-{partition}")
        })?;
        Ok(part.records.clone().unwrap_or_default())
    }

    /// Starts a transactional producer: FindCoordinator (key type 1) for
    /// `transactional_id`, then InitProducerId there. Begin a transaction by producing
    /// with [`Workload::try_produce_txn`]; end it with [`Workload::try_end_txn`].
    pub async fn try_init_transactions(&mut self, transactional_id: &str) -> Result<Transaction> {
        let coordinator = self.coordinator_of(transactional_id, 1).await?;
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(str_bytes(transactional_id))))
            .with_transaction_timeout_ms(600_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let resp: InitProducerIdResponse = self
            .call(
                &coordinator,
                ApiKey::InitProducerId,
                INIT_PRODUCER_ID_MAX,
                &req,
            )
            .await?;
        HarnessError::check(resp.error_code, || {
            format!("InitProducerId for {transactional_id}")
        })?;
        Ok(Transaction {
            transactional_id: transactional_id.to_owned(),
            coordinator,
            producer_id: resp.producer_id.0,
            producer_epoch: resp.producer_epoch,
            sequences: HashMap::new(),
            open: BTreeMap::new(),
        })
    }

    /// Produces `records` as one transactional batch in `txn`'s current transaction,
    /// adding the partition to it first (AddPartitionsToTxn) when it is new to it.
    /// Returns the base offset; the ledger records them as data records.
    pub async fn try_produce_txn(
        &mut self,
        txn: &mut Transaction,
        topic: &str,
        partition: i32,
        records: &[(i64, Vec<u8>)],
    ) -> Result<i64> {
        let key = (topic.to_owned(), partition);
        if !txn.open.contains_key(&key) {
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(str_bytes(
                    &txn.transactional_id,
                )))
                .with_v3_and_below_producer_id(ProducerId(txn.producer_id))
                .with_v3_and_below_producer_epoch(txn.producer_epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![partition])]);
            let coordinator = txn.coordinator.clone();
            let resp: AddPartitionsToTxnResponse = self
                .call(
                    &coordinator,
                    ApiKey::AddPartitionsToTxn,
                    ADD_PARTITIONS_TO_TXN_MAX,
                    &req,
                )
                .await?;
            HarnessError::check(resp.error_code, || {
                format!("AddPartitionsToTxn {topic}-{partition}")
            })?;
            for r in resp
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| t.results_by_partition.iter())
            {
                HarnessError::check(r.partition_error_code, || {
                    format!("AddPartitionsToTxn {topic}-{partition}")
                })?;
            }
            txn.open.insert(key.clone(), Vec::new());
        }
        let sequence = txn.sequences.entry(key.clone()).or_insert(0);
        let fields = codec::TxnProducerFields {
            producer_id: txn.producer_id,
            producer_epoch: txn.producer_epoch,
            base_sequence: *sequence,
        };
        let base = self
            .produce_batch(
                topic,
                partition,
                Codec::None,
                records,
                false,
                Some((txn.transactional_id.as_str(), fields)),
            )
            .await?;
        *txn.sequences.get_mut(&key).expect("inserted above") += records.len() as i32;
        txn.open
            .get_mut(&key)
            .expect("inserted above")
            .extend((0..records.len() as i64).map(|i| base + i));
        Ok(base)
    }

    /// Ends `txn`'s current transaction (EndTxn, `commit` or abort), then checks with a
    /// Fetch that the broker wrote the marker — a control batch — at the end of every
    /// partition of the transaction, and records it (and, on abort, which records were
    /// aborted) in the ledger. Returns the markers as (topic, partition, marker).
    pub async fn try_end_txn(
        &mut self,
        txn: &mut Transaction,
        commit: bool,
    ) -> Result<Vec<(String, i32, Marker)>> {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes(&txn.transactional_id)))
            .with_producer_id(ProducerId(txn.producer_id))
            .with_producer_epoch(txn.producer_epoch)
            .with_committed(commit);
        let coordinator = txn.coordinator.clone();
        let resp: EndTxnResponse = self
            .call(&coordinator, ApiKey::EndTxn, END_TXN_MAX, &req)
            .await?;
        HarnessError::check(resp.error_code, || {
            format!("EndTxn {} (commit {commit})", txn.transactional_id)
        })?;
        let mut markers = Vec::new();
        for ((topic, partition), offsets) in std::mem::take(&mut txn.open) {
            // Only this workload writes: the marker goes right after everything before it.
            let expected = self.ledger.high_watermark(&topic, partition);
            let marker = self.find_marker(&topic, partition, expected).await?;
            if marker.commit != commit {
                return Err(HarnessError::protocol(format!(
                    "{topic}-{partition}@{expected}: a {} marker, expected {}",
                    if marker.commit { "COMMIT" } else { "ABORT" },
                    if commit { "COMMIT" } else { "ABORT" }
                )));
            }
            self.ledger.add_marker(&topic, partition, marker);
            if !commit {
                self.ledger.add_aborted(&topic, partition, &offsets);
            }
            markers.push((topic, partition, marker));
        }
        Ok(markers)
    }

    /// The control batch at `offset`, read back with a Fetch (retried briefly: a broker
    /// may write markers after answering EndTxn).
    async fn find_marker(&mut self, topic: &str, partition: i32, offset: i64) -> Result<Marker> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let bytes = self.try_fetch(topic, partition, offset).await?;
            let headers = codec::batch_headers(&bytes);
            if let Some(h) = headers.iter().find(|h| h.base_offset == offset) {
                if h.attributes & 0x20 == 0 {
                    return Err(HarnessError::protocol(format!(
                        "{topic}-{partition}@{offset}: a data batch where the transaction marker should be ({h:?})"
                    )));
                }
                if !h.crc_ok {
                    return Err(HarnessError::protocol(format!(
                        "{topic}-{partition}@{offset}: control batch with a bad CRC"
                    )));
                }
                // The control record's key: version (i16), type (i16: 0 abort, 1 commit).
                let sets = codec::decode_batches(&bytes)?;
                let key = sets
                    .iter()
                    .flat_map(|s| s.records.iter())
                    .find(|r| r.offset == offset && r.control)
                    .and_then(|r| r.key.clone())
                    .ok_or_else(|| {
                        HarnessError::protocol(format!(
                            "{topic}-{partition}@{offset}: control batch without a control record key"
                        ))
                    })?;
                let kind = key
                    .get(2..4)
                    .map(|b| i16::from_be_bytes([b[0], b[1]]))
                    .ok_or_else(|| {
                        HarnessError::protocol(format!(
                            "{topic}-{partition}@{offset}: short control key {key:?}"
                        ))
                    })?;
                return Ok(Marker {
                    offset,
                    commit: kind == 1,
                });
            }
            if std::time::Instant::now() >= deadline {
                return Err(HarnessError::protocol(format!(
                    "{topic}-{partition}: no transaction marker at offset {offset} (batches from there: {headers:?})"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Commits `offset` (the next record the group will read) for one partition.
    pub async fn try_commit(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<()> {
        self.try_commit_offsets(group, &[(topic, partition, offset)])
            .await
    }

    /// Commits several (topic, partition, offset) in one OffsetCommit, as a simple
    /// consumer (generation -1, empty member id: no group membership), sent to
    /// the group's coordinator.
    pub async fn try_commit_offsets(
        &mut self,
        group: &str,
        offsets: &[(&str, i32, i64)],
    ) -> Result<()> {
        let req = offset_commit_request(group, -1, "", offsets);
        let coordinator = self.coordinator(group).await?;
        let resp: OffsetCommitResponse = self
            .call(&coordinator, ApiKey::OffsetCommit, OFFSET_COMMIT_MAX, &req)
            .await?;
        record_commits(&resp, group, offsets, "", &mut self.ledger)
    }

    /// Address ("host:port") of the coordinator of `group`.
    pub async fn coordinator(&mut self, group: &str) -> Result<String> {
        self.coordinator_of(group, 0).await
    }

    /// Address of the coordinator of `key`: key_type 0 a group, 1 a transactional id.
    async fn coordinator_of(&mut self, group: &str, key_type: i8) -> Result<String> {
        let addr = self.bootstrap.clone();
        let version = self
            .conn(&addr)
            .await?
            .version(ApiKey::FindCoordinator, FIND_COORDINATOR_MAX)?;
        let req = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![str_bytes(group)])
        } else {
            FindCoordinatorRequest::default().with_key(str_bytes(group))
        }
        .with_key_type(key_type);
        let resp: FindCoordinatorResponse = self
            .call(&addr, ApiKey::FindCoordinator, FIND_COORDINATOR_MAX, &req)
            .await?;
        let context = || format!("FindCoordinator for key {group} (type {key_type})");
        let (host, port) = if version >= 4 {
            let c = resp
                .coordinators
                .iter()
                .find(|c| c.key.as_str() == group)
                .ok_or_else(|| HarnessError::protocol(format!("{}: no answer", context())))?;
            HarnessError::check_msg(c.error_code, c.error_message.as_ref(), context)?;
            (c.host.as_str().to_owned(), c.port)
        } else {
            HarnessError::check_msg(resp.error_code, resp.error_message.as_ref(), context)?;
            (resp.host.as_str().to_owned(), resp.port)
        };
        Ok(format!("{host}:{port}"))
    }

    /// Address ("host:port") of the leader of a partition (cached).
    pub async fn leader(&mut self, topic: &str, partition: i32) -> Result<String> {
        let key = (topic.to_owned(), partition);
        if let Some(addr) = self.leaders.get(&key) {
            return Ok(addr.clone());
        }
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(false);
        let addr = self.bootstrap.clone();
        let resp: MetadataResponse = self
            .call(&addr, ApiKey::Metadata, METADATA_MAX, &req)
            .await?;
        let t = resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .ok_or_else(|| HarnessError::protocol(format!("Metadata: no topic {topic}")))?;
        HarnessError::check(t.error_code, || format!("Metadata for topic {topic}"))?;
        for p in &t.partitions {
            if let Some(b) = resp.brokers.iter().find(|b| b.node_id == p.leader_id) {
                let addr = format!("{}:{}", b.host.as_str(), b.port);
                self.leaders
                    .insert((topic.to_owned(), p.partition_index), addr);
            }
        }
        self.leaders.get(&key).cloned().ok_or_else(|| {
            HarnessError::protocol(format!("Metadata: no leader for {topic}-{partition}"))
        })
    }

    async fn conn(&mut self, addr: &str) -> Result<&mut Connection> {
        if !self.conns.contains_key(addr) {
            let target = self.routes.get(addr).map_or(addr, String::as_str);
            let conn = Connection::connect(target).await?;
            self.conns.insert(addr.to_owned(), conn);
        }
        self.conns
            .get_mut(addr)
            .ok_or_else(|| HarnessError::protocol(format!("connection to {addr} vanished")))
    }

    /// One request to `addr` at the best common version ≤ `max`; a connection that
    /// fails below the Kafka level is dropped so the next call reconnects.
    async fn call<Req, Resp>(
        &mut self,
        addr: &str,
        key: ApiKey,
        max: i16,
        req: &Req,
    ) -> Result<Resp>
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        let conn = self.conn(addr).await?;
        let version = conn.version(key, max)?;
        let result = conn.request(key, version, req).await;
        if matches!(
            result,
            Err(HarnessError::Io { .. }
                | HarnessError::Timeout { .. }
                | HarnessError::Protocol { .. })
        ) {
            self.conns.remove(addr);
            self.leaders.clear();
        }
        result
    }
}

/// A transactional producer (see [`Workload::try_init_transactions`]).
#[derive(Debug)]
pub struct Transaction {
    pub transactional_id: String,
    /// Address of the transaction coordinator.
    pub coordinator: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Next sequence number per partition.
    sequences: HashMap<(String, i32), i32>,
    /// Partitions of the open transaction, with the offsets written to each.
    open: BTreeMap<(String, i32), Vec<i64>>,
}

/// The shorthands tests use: the same operations, panicking with the full
/// error (what was attempted, Kafka error code and name) instead of returning it.
/// Use the `try_` forms to test failures.
impl Workload {
    /// Connects to the bootstrap broker ("host:port"); panics if it cannot.
    pub async fn connect(bootstrap: &str) -> Workload {
        must(Self::try_connect(bootstrap).await)
    }

    /// [`Workload::try_create_topic`], panicking on failure.
    pub async fn create_topic(&mut self, name: &str, partitions: i32) {
        must(self.try_create_topic(name, partitions).await)
    }

    /// [`Workload::try_create_topic_with_configs`], panicking on failure.
    pub async fn create_topic_with_configs(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) {
        must(
            self.try_create_topic_with_configs(name, partitions, configs)
                .await,
        )
    }

    /// [`Workload::try_produce`], panicking on failure: one batch, returns its
    /// base offset (record i is at base + i).
    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        codec: Codec,
        records: &[(i64, Vec<u8>)],
    ) -> i64 {
        must(self.try_produce(topic, partition, codec, records).await)
    }

    /// [`Workload::try_produce_log_append_time`], panicking on failure.
    pub async fn produce_log_append_time(
        &mut self,
        topic: &str,
        partition: i32,
        codec: Codec,
        records: &[(i64, Vec<u8>)],
    ) -> i64 {
        must(
            self.try_produce_log_append_time(topic, partition, codec, records)
                .await,
        )
    }

    /// [`Workload::try_init_transactions`], panicking on failure.
    pub async fn init_transactions(&mut self, transactional_id: &str) -> Transaction {
        must(self.try_init_transactions(transactional_id).await)
    }

    /// [`Workload::try_produce_txn`], panicking on failure.
    pub async fn produce_txn(
        &mut self,
        txn: &mut Transaction,
        topic: &str,
        partition: i32,
        records: &[(i64, Vec<u8>)],
    ) -> i64 {
        must(self.try_produce_txn(txn, topic, partition, records).await)
    }

    /// [`Workload::try_end_txn`], panicking on failure.
    pub async fn end_txn(
        &mut self,
        txn: &mut Transaction,
        commit: bool,
    ) -> Vec<(String, i32, Marker)> {
        must(self.try_end_txn(txn, commit).await)
    }

    /// [`Workload::try_commit`], panicking on failure.
    pub async fn commit(&mut self, group: &str, topic: &str, partition: i32, offset: i64) {
        must(self.try_commit(group, topic, partition, offset).await)
    }

    /// [`Workload::try_commit_offsets`], panicking on failure.
    pub async fn commit_offsets(&mut self, group: &str, offsets: &[(&str, i32, i64)]) {
        must(self.try_commit_offsets(group, offsets).await)
    }
}

/// Wall-clock now, ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Scenario helpers shared by the real-broker test binaries
// ---------------------------------------------------------------------------------------

/// Distinct timestamps 10 s apart, in scrambled order (offset → anchor − k × 10 s with
/// k = (7·offset + salt) mod 61): a reader that returns a neighbouring record, the batch's
/// base or max timestamp is off by at least 10 s. Valid for offsets < 61.
pub fn scrambled(anchor: i64, salt: i64) -> impl Fn(i64) -> i64 {
    move |offset| anchor - ((offset * 7 + salt) % 61) * 10_000
}

/// Produces `n` records to a partition: batches of `batch` records (codecs in turn), then
/// one single-record batch (the broker's ListOffsets LATEST is right only after those).
pub async fn fill(
    w: &mut Workload,
    topic: &str,
    partition: i32,
    n: i64,
    batch: i64,
    codecs: &[Codec],
    ts: impl Fn(i64) -> i64,
) {
    assert!(n >= 1 && batch >= 1);
    let value = |o: i64| format!("{topic}-{partition}-{o}").into_bytes();
    let mut offset = 0;
    let mut i = 0;
    while offset < n - 1 {
        let len = batch.min(n - 1 - offset);
        let records: Vec<(i64, Vec<u8>)> =
            (offset..offset + len).map(|o| (ts(o), value(o))).collect();
        let base = w
            .produce(topic, partition, codecs[i % codecs.len()], &records)
            .await;
        assert_eq!(base, offset, "{topic}-{partition}: offsets are dense");
        offset += len;
        i += 1;
    }
    let last = n - 1;
    let base = w
        .produce(
            topic,
            partition,
            codecs[i % codecs.len()],
            &[(ts(last), value(last))],
        )
        .await;
    assert_eq!(base, last, "{topic}-{partition}: offsets are dense");
}

/// One topic, records per partition `counts`, one group committed `lags` behind; `salt`
/// picks the timestamp pattern (see [`scrambled`]).
pub async fn small_workload(
    w: &mut Workload,
    topic: &str,
    counts: &[i64],
    group: &str,
    lags: &[i64],
    salt: i64,
) {
    let anchor = now_ms() - 15_000;
    w.create_topic(topic, counts.len() as i32).await;
    for (p, n) in counts.iter().enumerate() {
        fill(
            w,
            topic,
            p as i32,
            *n,
            3,
            &[Codec::None],
            scrambled(anchor, p as i64 + salt),
        )
        .await;
    }
    let offsets: Vec<(&str, i32, i64)> = lags
        .iter()
        .enumerate()
        .map(|(p, lag)| (topic, p as i32, counts[p] - lag))
        .collect();
    w.commit_offsets(group, &offsets).await;
}

/// The value of a `try_` call, or a panic with its full error (the plain methods).
fn must<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("workload: {e}"))
}

/// An OffsetCommit of `offsets` for `group` by `member_id` in `generation` (-1 and "" for a
/// simple consumer), one entry per topic.
pub(crate) fn offset_commit_request(
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[(&str, i32, i64)],
) -> OffsetCommitRequest {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (topic, partition, offset) in offsets {
        by_topic.entry(topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_metadata(Some(StrBytes::new())),
        );
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str_bytes(member_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        )
}

/// Checks the result of every offset of an OffsetCommit in `resp` and adds each to `ledger`;
/// an error says "`<committer>`committing ..." (`committer` is empty or ends in a space).
pub(crate) fn record_commits(
    resp: &OffsetCommitResponse,
    group: &str,
    offsets: &[(&str, i32, i64)],
    committer: &str,
    ledger: &mut Ledger,
) -> Result<()> {
    for (topic, partition, offset) in offsets {
        let code = resp
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == *topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == *partition)
            .map(|p| p.error_code)
            .ok_or_else(|| {
                HarnessError::protocol(format!(
                    "OffsetCommit: no result for {group} {topic}-{partition}"
                ))
            })?;
        HarnessError::check(code, || {
            format!("{committer}committing {offset} for {group} on {topic}-{partition}")
        })?;
        ledger.add_commit(group, topic, *partition, *offset);
    }
    Ok(())
}

/// A new topic (unique name from `<prefix>-topic`) of one partition per entry of `commits`,
/// `records` one-record batches in each, timestamped from `age_ms` ago 1 ms apart, and a new
/// group (`<prefix>-group`) committed at `commits[p]` on partition p. Returns (topic, group).
pub async fn lagging_group(
    w: &mut Workload,
    prefix: &str,
    records: i64,
    age_ms: i64,
    commits: &[i64],
) -> (String, String) {
    let topic = crate::unique_name(&format!("{prefix}-topic"));
    let group = crate::unique_name(&format!("{prefix}-group"));
    let partitions = i32::try_from(commits.len()).expect("partition count");
    w.create_topic(&topic, partitions).await;
    let ts = now_ms() - age_ms;
    for p in 0..partitions {
        for i in 0..records {
            w.produce(&topic, p, Codec::None, &[(ts + i, b"v".to_vec())])
                .await;
        }
    }
    let offsets: Vec<(&str, i32, i64)> = (0..partitions)
        .zip(commits)
        .map(|(p, &offset)| (topic.as_str(), p, offset))
        .collect();
    w.commit_offsets(&group, &offsets).await;
    (topic, group)
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}
