//! The cluster handle: bootstrap, metadata, one connection per broker, routing, retries.
//!
//! Connections are dialled lazily per node id and redialled when their transport fails.
//! Routing errors (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR, ...) are handled by the
//! operations in [`super::admin`]: they refresh metadata or coordinators through this handle
//! and retry only the items that failed, with [`Cluster::backoff`] between attempts.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kafka_protocol::messages::MetadataRequest;

use super::conn::{ApiCounters, ApiRequest, Connection, ConnectionConfig, ResponseStream};
use super::error::{KafkaError, KafkaErrorKind, Result};
use super::requests;
use super::wire::metadata::MetadataResponse;
use super::wire::stream::StreamReader;
use super::wire::DecodeError;
pub use crate::model::TopicPartition;

mod health;

use health::Health;

/// Node id under which the counters of bootstrap connections are kept.
pub const BOOTSTRAP_NODE: i32 = -1;

/// How the wire client reaches a cluster and how hard it tries: built from a `[[clusters]]`
/// entry (`config::ClusterSettings`, what the user wrote) by `collect::client_config`.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// "host:port" entries, tried in order until one answers Metadata.
    pub bootstrap_servers: Vec<String>,
    /// Settings of every broker connection.
    pub connection: ConnectionConfig,
    /// Retries after a routing error (stale leader / coordinator) before giving up on an item.
    pub max_retries: u32,
    /// First retry delay; doubles per attempt up to `max_backoff`.
    pub retry_backoff: Duration,
    /// Upper bound of the retry delay.
    pub max_backoff: Duration,
}

/// The former name of [`ClientConfig`], kept for code written against it.
pub type ClusterConfig = ClientConfig;

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: Vec::new(),
            connection: ConnectionConfig::default(),
            max_retries: 3,
            retry_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// A broker as advertised in metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// "host:port", with IPv6 literals bracketed.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A partition's leadership as of the last metadata refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub leader: i32,
    pub leader_epoch: i32,
    pub error_code: i16,
}

/// A topic as of the last metadata refresh.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic id (Metadata v10+; all zeros from older brokers).
    pub topic_id: [u8; 16],
    pub internal: bool,
    pub error_code: i16,
    pub partitions: BTreeMap<i32, PartitionInfo>,
}

/// An immutable snapshot of cluster metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<Arc<str>, TopicInfo>,
}

impl Metadata {
    /// Build from a Metadata response; topics without a name are skipped.
    pub fn from_response(r: MetadataResponse) -> Metadata {
        let brokers = r
            .brokers
            .into_iter()
            .map(|b| {
                let info = BrokerInfo {
                    node_id: b.node_id,
                    host: b.host,
                    port: b.port,
                    rack: b.rack,
                };
                (b.node_id, info)
            })
            .collect();
        let topics = r
            .topics
            .into_iter()
            .filter_map(|t| {
                let name: Arc<str> = Arc::from(t.name?);
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let info = PartitionInfo {
                            leader: p.leader_id,
                            leader_epoch: p.leader_epoch,
                            error_code: p.error_code,
                        };
                        (p.partition, info)
                    })
                    .collect();
                let info = TopicInfo {
                    topic_id: t.topic_id,
                    internal: t.is_internal,
                    error_code: t.error_code,
                    partitions,
                };
                Some((name, info))
            })
            .collect();
        Metadata {
            cluster_id: r.cluster_id,
            controller_id: r.controller_id,
            brokers,
            topics,
        }
    }

    /// The leader of a partition, if it has one.
    pub fn leader(&self, tp: &TopicPartition) -> Option<i32> {
        let p = self.topics.get(&tp.topic)?.partitions.get(&tp.partition)?;
        (p.leader >= 0).then_some(p.leader)
    }

    /// The shared name of a topic, so callers can build cheap [`TopicPartition`]s.
    pub fn topic_name(&self, topic: &str) -> Option<Arc<str>> {
        self.topics.get_key_value(topic).map(|(k, _)| k.clone())
    }

    /// Every partition of every topic, in order.
    pub fn partitions(&self) -> impl Iterator<Item = TopicPartition> + '_ {
        self.topics.iter().flat_map(|(name, t)| {
            t.partitions
                .keys()
                .map(move |p| TopicPartition::new(name.clone(), *p))
        })
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

/// A handle on one Kafka cluster. Share it behind an `Arc`.
pub struct Cluster {
    config: ClientConfig,
    conn_config: Arc<ConnectionConfig>,
    metadata: RwLock<Arc<Metadata>>,
    slots: Mutex<HashMap<i32, Slot>>,
    counters: Mutex<BTreeMap<i32, Arc<ApiCounters>>>,
    pub(crate) coordinators: Mutex<HashMap<String, i32>>,
    /// What went wrong with each broker since [`Cluster::begin_cycle`].
    health: Mutex<Health>,
    /// Turns of "any broker" requests (Metadata, batched FindCoordinator, DescribeConfigs),
    /// so that they spread over the brokers instead of all landing on the first.
    turn: AtomicUsize,
    /// The bootstrap server that last answered Metadata: when it works and an advertised
    /// address does not, errors say so.
    bootstrapped_via: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Try the bootstrap servers in order until one answers Metadata.
    pub async fn connect(config: ClientConfig) -> Result<Cluster> {
        if config.bootstrap_servers.is_empty() {
            return Err(KafkaErrorKind::Config("bootstrap_servers is empty".to_string()).into());
        }
        let cluster = Cluster {
            conn_config: Arc::new(config.connection.clone()),
            config,
            metadata: RwLock::new(Arc::new(Metadata::default())),
            slots: Mutex::new(HashMap::new()),
            counters: Mutex::new(BTreeMap::new()),
            coordinators: Mutex::new(HashMap::new()),
            health: Mutex::new(Health::default()),
            turn: AtomicUsize::new(0),
            bootstrapped_via: std::sync::Mutex::new(None),
        };
        cluster.bootstrap().await?;
        Ok(cluster)
    }

    /// The configuration this handle was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The last metadata snapshot.
    pub fn metadata(&self) -> Arc<Metadata> {
        self.metadata
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Request counters per node id (bootstrap connections under [`BOOTSTRAP_NODE`]).
    pub fn counters(&self) -> BTreeMap<i32, Arc<ApiCounters>> {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn counters_for(&self, node: i32) -> Arc<ApiCounters> {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(node)
            .or_default()
            .clone()
    }

    fn slot(&self, node: i32) -> Slot {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(node)
            .or_default()
            .clone()
    }

    /// Delay before retry number `attempt` (0-based): exponential, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.config
            .retry_backoff
            .saturating_mul(factor)
            .min(self.config.max_backoff)
    }

    async fn bootstrap(&self) -> Result<()> {
        self.bootstrap_skipping(&[]).await
    }

    /// [`Cluster::bootstrap`], leaving out `skip`: addresses of brokers that already failed
    /// in this cycle, with their failure (dialling one again would cost another timeout for
    /// nothing; the failure is repeated so the cycle's error still says what went wrong).
    async fn bootstrap_skipping(&self, skip: &[(String, String)]) -> Result<()> {
        let mut attempts = Vec::new();
        for server in &self.config.bootstrap_servers {
            if let Some((_, why)) = skip.iter().find(|(address, _)| address == server) {
                attempts.push(format!("{server}: failed earlier in this cycle: {why}"));
                continue;
            }
            let counters = self.counters_for(BOOTSTRAP_NODE);
            let conn = match Connection::connect(server, self.conn_config.clone(), counters).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(%server, error = %e, "bootstrap server unreachable");
                    attempts.push(format!("{server}: {e}"));
                    continue;
                }
            };
            match fetch_metadata(&conn).await {
                Ok(meta) => {
                    // The bootstrap connection is dropped: brokers are addressed by node id
                    // from now on (the bootstrap address may be a load balancer).
                    self.store_metadata(meta);
                    *self
                        .bootstrapped_via
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(server.clone());
                    return Ok(());
                }
                Err(e) => attempts.push(format!("{server}: {e}")),
            }
        }
        Err(KafkaErrorKind::Bootstrap { attempts }.into())
    }

    fn store_metadata(&self, meta: Metadata) {
        *self.metadata.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(meta);
    }

    /// The known brokers, starting at the next one in turn.
    fn nodes_in_turn(&self) -> Vec<i32> {
        let down = self.down_nodes();
        let mut nodes: Vec<i32> = self
            .metadata()
            .brokers
            .keys()
            .copied()
            .filter(|n| !down.contains(n))
            .collect();
        if !nodes.is_empty() {
            let turn = self.turn.fetch_add(1, Ordering::Relaxed) % nodes.len();
            nodes.rotate_left(turn);
        }
        nodes
    }

    /// Refresh metadata from any reachable broker, taking turns (falling back to the
    /// bootstrap list).
    pub async fn refresh_metadata(&self) -> Result<Arc<Metadata>> {
        let nodes = self.nodes_in_turn();
        let mut last_error = None;
        for node in nodes {
            match self.connection(node).await {
                Ok(conn) => match fetch_metadata(&conn).await {
                    Ok(meta) => {
                        self.store_metadata(meta);
                        return Ok(self.metadata());
                    }
                    Err(e) => {
                        self.forget_if_broken(node, &conn, &e).await;
                        last_error = Some(e);
                    }
                },
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(e) = last_error {
            tracing::debug!(error = %e, "no known broker answered Metadata, trying bootstrap servers");
        }
        let meta = self.metadata();
        let failed: Vec<(String, String)> = self
            .down_failures()
            .into_iter()
            .filter_map(|(n, e)| Some((meta.brokers.get(&n).map(BrokerInfo::address)?, e)))
            .collect();
        self.bootstrap_skipping(&failed).await?;
        Ok(self.metadata())
    }

    /// The live connection to `node`, dialling it when needed.
    ///
    /// A broker that could not be reached in this cycle ([`Cluster::begin_cycle`]) is not
    /// dialled again until the next one: every later request to it fails at once with
    /// [`KafkaErrorKind::BrokerDown`], so a dead or hanging broker costs one timeout per cycle,
    /// not one per request.
    pub async fn connection(&self, node: i32) -> Result<Arc<Connection>> {
        self.check_up(node)?;
        let slot = self.slot(node);
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref() {
            if conn.is_usable() {
                return Ok(conn.clone());
            }
        }
        // Another request may have found it down while this one waited for the slot.
        self.check_up(node)?;
        let address = self
            .metadata()
            .brokers
            .get(&node)
            .map(BrokerInfo::address)
            .ok_or_else(|| {
                KafkaErrorKind::UnknownInMetadata(format!("broker with node id {node}"))
            })?;
        let conn =
            match Connection::connect(&address, self.conn_config.clone(), self.counters_for(node))
                .await
            {
                Ok(conn) => conn,
                Err(e) => {
                    let e = self.advertised_unreachable(node, &address, e);
                    self.mark_down(node, &e);
                    return Err(e);
                }
            };
        let conn = Arc::new(conn);
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// A TCP dial to an advertised address that failed while a bootstrap server (at another
    /// address) answered: the error then names both, the classic advertised.listeners
    /// mistake of Kafka in Docker or Kubernetes.
    fn advertised_unreachable(&self, node: i32, address: &str, e: KafkaError) -> KafkaError {
        let tcp = matches!(
            e.kind(),
            KafkaErrorKind::Connect { phase, .. } | KafkaErrorKind::ConnectTimeout { phase, .. }
                if *phase == "TCP connect"
        );
        let bootstrap = self
            .bootstrapped_via
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match bootstrap {
            Some(bootstrap) if tcp && bootstrap != address => KafkaErrorKind::Advertised {
                node,
                address: address.to_string(),
                bootstrap,
                cause: e,
            }
            .into(),
            _ => e,
        }
    }

    /// Any broker: the next one in turn with a live connection, else the first that dials.
    pub async fn any_node(&self) -> Result<i32> {
        let nodes = self.nodes_in_turn();
        for node in &nodes {
            let slot = self.slot(*node);
            let live = slot
                .try_lock()
                .map(|g| g.as_ref().is_some_and(|c| c.is_usable()))
                .unwrap_or(false);
            if live {
                return Ok(*node);
            }
        }
        let mut attempts = Vec::new();
        for node in nodes {
            match self.connection(node).await {
                Ok(_) => return Ok(node),
                Err(e) => attempts.push(format!("node {node}: {e}")),
            }
        }
        Err(KafkaErrorKind::Bootstrap { attempts }.into())
    }

    /// Send a request to `node`, building it for the negotiated version.
    ///
    /// A transport failure drops the connection (the next call redials) and is returned.
    pub async fn send_to<R: ApiRequest>(
        &self,
        node: i32,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(R::Response, i16)> {
        let conn = self.connection(node).await?;
        let version = conn.version_for::<R>()?;
        let req = build(version);
        match conn.send_owned(req, version).await {
            Ok(r) => Ok((r, version)),
            Err(e) => {
                self.forget_if_broken(node, &conn, &e).await;
                Err(e)
            }
        }
    }

    /// [`Cluster::send_to`] for a response decoded while it arrives (see
    /// [`Connection::start_stream`]): decode from [`NodeStream::reader`], then hand the
    /// result to [`Cluster::finish_stream`].
    pub async fn stream_to<R: ApiRequest>(
        &self,
        node: i32,
        build: impl FnOnce(i16) -> R,
    ) -> Result<NodeStream> {
        let conn = self.connection(node).await?;
        let version = conn.version_for::<R>()?;
        let req = build(version);
        match conn.start_stream(&req, version).await {
            Ok(stream) => Ok(NodeStream { node, conn, stream }),
            Err(e) => {
                self.forget_if_broken(node, &conn, &e).await;
                Err(e)
            }
        }
    }

    /// Ends a response from [`Cluster::stream_to`]; see [`ResponseStream::finish`].
    pub async fn finish_stream<T>(
        &self,
        stream: NodeStream,
        decoded: std::result::Result<T, DecodeError>,
    ) -> Result<T> {
        let NodeStream { node, conn, stream } = stream;
        let result = stream.finish(decoded);
        if let Err(e) = &result {
            self.forget_if_broken(node, &conn, e).await;
        }
        result
    }

    /// The version of `R` that `node` would be sent (dialling it if needed).
    pub async fn version_for<R: ApiRequest>(&self, node: i32) -> Result<i16> {
        self.connection(node).await?.version_for::<R>()
    }

    /// Whether `node` speaks any version of `R` that tidemark does (dialling it if needed).
    pub async fn speaks<R: ApiRequest>(&self, node: i32) -> Result<bool> {
        match self.version_for::<R>(node).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), KafkaErrorKind::NoCommonVersion { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn forget_if_broken(&self, node: i32, conn: &Arc<Connection>, e: &KafkaError) {
        self.note_failure(node, e);
        if !e.is_transport() {
            return;
        }
        let slot = self.slot(node);
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *guard = None;
        }
    }
}

async fn fetch_metadata(conn: &Connection) -> Result<Metadata> {
    let version = conn.version_for::<MetadataRequest>()?;
    let response = conn
        .send_version(&requests::metadata_all(version), version)
        .await?;
    Ok(Metadata::from_response(response))
}

/// A response being received from one broker; see [`Cluster::stream_to`].
pub struct NodeStream {
    node: i32,
    conn: Arc<Connection>,
    stream: ResponseStream,
}

impl NodeStream {
    /// The response body, from its first byte.
    pub fn reader(&mut self) -> &mut StreamReader {
        self.stream.reader()
    }

    /// The version the request was sent at.
    pub fn version(&self) -> i16 {
        self.stream.version()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_address_brackets_ipv6() {
        let b = BrokerInfo {
            node_id: 1,
            host: "::1".into(),
            port: 9092,
            rack: None,
        };
        assert_eq!(b.address(), "[::1]:9092");
        let b = BrokerInfo {
            host: "kafka-1".into(),
            ..b
        };
        assert_eq!(b.address(), "kafka-1:9092");
    }

    #[tokio::test]
    async fn empty_bootstrap_is_a_config_error() {
        let err = Cluster::connect(ClientConfig::default()).await.unwrap_err();
        assert!(err.to_string().contains("bootstrap_servers"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_bootstrap_names_every_server() {
        // Port 1 on loopback refuses connections.
        let config = ClientConfig {
            bootstrap_servers: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            ..Default::default()
        };
        let err = Cluster::connect(config).await.unwrap_err().to_string();
        assert!(
            err.contains("127.0.0.1:1") && err.contains("127.0.0.1:2"),
            "{err}"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let cluster = Cluster {
            config: ClientConfig::default(),
            conn_config: Arc::new(ConnectionConfig::default()),
            metadata: RwLock::new(Arc::new(Metadata::default())),
            slots: Mutex::new(HashMap::new()),
            counters: Mutex::new(BTreeMap::new()),
            coordinators: Mutex::new(HashMap::new()),
            health: Mutex::new(Health::default()),
            turn: AtomicUsize::new(0),
            bootstrapped_via: std::sync::Mutex::new(None),
        };
        assert_eq!(cluster.backoff(0), Duration::from_millis(100));
        assert_eq!(cluster.backoff(1), Duration::from_millis(200));
        assert_eq!(cluster.backoff(3), Duration::from_millis(800));
        assert_eq!(cluster.backoff(10), Duration::from_secs(2));
        assert_eq!(cluster.backoff(40), Duration::from_secs(2));
    }
}
