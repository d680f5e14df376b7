//! Batched cluster operations: every request goes once per broker, never per group or
//! per partition.
//!
//! | operation | requests per cycle |
//! |---|---|
//! | [`Cluster::list_groups`] | one ListGroups per broker |
//! | [`Cluster::find_coordinators`] | one FindCoordinator (v4+, batched) for uncached groups |
//! | [`Cluster::describe_groups`] | one DescribeGroups per coordinator |
//! | [`Cluster::committed_offsets`] | one OffsetFetch per coordinator (v8+, multi-group) |
//! | [`Cluster::watermarks`] | two ListOffsets (earliest, latest) per leader |
//! | [`Cluster::topic_configs`] | one DescribeConfigs |
//! | [`Cluster::record_timestamps`] | one Fetch per leader per round |
//!
//! Items whose routing went stale (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR, ...) are
//! retried alone after a metadata / coordinator refresh, with backoff. Each item gets its
//! own `Result`: one bad partition or group never discards the others.

mod groups;
mod partitions;
mod timestamps;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use kafka_protocol::messages::ApiKey;

pub use groups::{GroupDescription, GroupList, GroupListing, GroupOffsets, MemberDescription};
pub use partitions::Watermarks;
pub use timestamps::{
    FetchStats, PartitionFetch, TimestampQuery, TimestampResult, MAX_PARTITION_FETCH_BYTES,
};

use super::cluster::{Cluster, TopicPartition};
use super::error::{is_routing_code, KafkaError, Result};

/// What one batched request said about one item (a group or a partition).
pub(crate) enum Outcome<T> {
    /// Final answer for this item.
    Done(Result<T>),
    /// Routing was stale: refresh and try this item again.
    Retry(KafkaError),
}

impl<T> Outcome<T> {
    /// Classify a per-item error code: 0 → `ok()`, routing codes → retry, others → error.
    pub(crate) fn from_code(
        code: i16,
        error: impl FnOnce() -> KafkaError,
        ok: impl FnOnce() -> Result<T>,
    ) -> Outcome<T> {
        if code == 0 {
            Outcome::Done(ok())
        } else {
            Outcome::failed(code, error())
        }
    }

    /// A non-zero error code: retry after a refresh when it is a routing code, else final.
    pub(crate) fn failed(code: i16, error: KafkaError) -> Outcome<T> {
        if is_routing_code(code) {
            Outcome::Retry(error)
        } else {
            Outcome::Done(Err(error))
        }
    }
}

/// A broker error for `context`.
pub(crate) fn broker_error(
    node: i32,
    api: ApiKey,
    code: i16,
    context: impl Into<String>,
    message: Option<String>,
) -> KafkaError {
    KafkaError::Broker {
        broker: format!("node {node}"),
        api,
        code,
        context: context.into(),
        message,
    }
}

impl Cluster {
    /// Run `op` until it answers or fails for good: transport failures and stale routing
    /// are tried again with backoff, at most `max_retries` times. A broker already found
    /// down this cycle fails at once ([`KafkaError::BrokerDown`] is final).
    pub(crate) async fn with_retries<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e)
                    if (e.is_transport() || e.is_retriable_routing())
                        && attempt < self.config().max_retries =>
                {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Run `op` once per leader for the partitions it leads, retrying stale items.
    ///
    /// `op(node, items)` returns an outcome per item key; an `Err` fails every item of that
    /// batch (transport failures are retried like stale routing).
    pub(crate) async fn per_leader<I, T, F, Fut>(
        &self,
        items: Vec<I>,
        key: impl Fn(&I) -> &TopicPartition,
        op: F,
    ) -> HashMap<TopicPartition, Result<T>>
    where
        I: Clone,
        F: Fn(i32, Vec<I>) -> Fut,
        Fut: Future<Output = Result<Vec<(TopicPartition, Outcome<T>)>>>,
    {
        let mut results = HashMap::with_capacity(items.len());
        let mut pending = items;
        let mut attempt = 0;
        while !pending.is_empty() {
            let meta = self.metadata();
            let mut by_node: BTreeMap<i32, Vec<I>> = BTreeMap::new();
            let mut retry: Vec<(I, KafkaError)> = Vec::new();
            for item in pending.drain(..) {
                match meta.leader(key(&item)) {
                    Some(node) => by_node.entry(node).or_default().push(item),
                    None => {
                        let e = KafkaError::UnknownInMetadata(format!(
                            "leader for partition {}",
                            key(&item)
                        ));
                        retry.push((item, e));
                    }
                }
            }
            let batches = by_node.into_iter().map(|(node, batch)| {
                let fut = op(node, batch.clone());
                async move { (batch, fut.await) }
            });
            for (batch, outcome) in futures_util::future::join_all(batches).await {
                match outcome {
                    Ok(answers) => {
                        // Answers go straight into `results` (no map of them per leader: at
                        // tens of thousands of partitions it was the largest allocation of a
                        // ListOffsets round); only the ones to retry are kept aside.
                        let asked: HashSet<&TopicPartition> = batch.iter().map(&key).collect();
                        let mut moved: HashMap<TopicPartition, KafkaError> = HashMap::new();
                        for (tp, outcome) in answers {
                            if !asked.contains(&tp) {
                                continue;
                            }
                            match outcome {
                                Outcome::Done(r) => {
                                    results.insert(tp, r);
                                }
                                Outcome::Retry(e) => {
                                    moved.insert(tp, e);
                                }
                            }
                        }
                        drop(asked);
                        for item in batch {
                            if let Some(e) = moved.remove(key(&item)) {
                                retry.push((item, e));
                            } else if !results.contains_key(key(&item)) {
                                let e = KafkaError::UnknownInMetadata(format!(
                                    "answer for partition {} in the broker's response",
                                    key(&item)
                                ));
                                results.insert(key(&item).clone(), Err(e));
                            }
                        }
                    }
                    Err(e) if e.is_transport() || e.is_retriable_routing() => {
                        retry.extend(batch.into_iter().map(|i| (i, e.clone())));
                    }
                    Err(e) => {
                        for item in batch {
                            results.insert(key(&item).clone(), Err(e.clone()));
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            if attempt >= self.config().max_retries {
                for (item, e) in retry {
                    results.insert(key(&item).clone(), Err(e));
                }
                break;
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
            if let Err(e) = self.refresh_metadata().await {
                tracing::warn!(error = %e, "metadata refresh before retry failed");
            }
            pending = retry.into_iter().map(|(i, _)| i).collect();
        }
        results
    }

    /// Run `op` once per group coordinator for the groups it coordinates, retrying stale
    /// groups after forgetting their cached coordinator.
    pub(crate) async fn per_coordinator<T, F, Fut>(
        &self,
        groups: &[String],
        op: F,
    ) -> HashMap<String, Result<T>>
    where
        F: Fn(i32, Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<(String, Outcome<T>)>>>,
    {
        let mut results = HashMap::new();
        let mut pending: Vec<String> = groups.to_vec();
        let mut attempt = 0;
        while !pending.is_empty() {
            let mut by_node: BTreeMap<i32, Vec<String>> = BTreeMap::new();
            for (group, coordinator) in self.find_coordinators(&pending).await {
                match coordinator {
                    Ok(node) => by_node.entry(node).or_default().push(group),
                    Err(e) => {
                        results.insert(group, Err(e));
                    }
                }
            }
            pending.clear();
            let mut retry: Vec<(String, KafkaError)> = Vec::new();
            let batches = by_node.into_iter().map(|(node, batch)| {
                let fut = op(node, batch.clone());
                async move { (batch, fut.await) }
            });
            for (batch, outcome) in futures_util::future::join_all(batches).await {
                match outcome {
                    Ok(answers) => {
                        let mut answers: HashMap<String, Outcome<T>> =
                            answers.into_iter().collect();
                        for group in batch {
                            match answers.remove(&group) {
                                Some(Outcome::Done(r)) => {
                                    results.insert(group, r);
                                }
                                Some(Outcome::Retry(e)) => retry.push((group, e)),
                                None => {
                                    let e = KafkaError::UnknownInMetadata(format!(
                                        "answer for group {group} in the coordinator's response"
                                    ));
                                    results.insert(group, Err(e));
                                }
                            }
                        }
                    }
                    Err(e) if e.is_transport() || e.is_retriable_routing() => {
                        retry.extend(batch.into_iter().map(|g| (g, e.clone())));
                    }
                    Err(e) => {
                        for group in batch {
                            results.insert(group, Err(e.clone()));
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            for (group, _) in &retry {
                self.forget_coordinator(group);
            }
            if attempt >= self.config().max_retries {
                for (group, e) in retry {
                    results.insert(group, Err(e));
                }
                break;
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
            pending = retry.into_iter().map(|(g, _)| g).collect();
        }
        results
    }
}
