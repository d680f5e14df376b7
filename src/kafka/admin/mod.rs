//! Batched cluster operations: every request goes once per broker, never per group or
//! per partition.
//!
//! | operation | requests per cycle |
//! |---|---|
//! | [`Cluster::list_groups`] | one ListGroups per broker |
//! | [`Cluster::find_coordinators`] | one FindCoordinator (v4+, batched) for uncached groups |
//! | [`Cluster::describe_groups`] | one DescribeGroups per coordinator |
//! | [`Cluster::describe_consumer_groups`] | one ConsumerGroupDescribe per coordinator (KIP-848 groups) |
//! | [`Cluster::describe_share_groups`] | one ShareGroupDescribe per coordinator (share groups) |
//! | [`Cluster::share_start_offsets`] | one DescribeShareGroupOffsets per coordinator |
//! | [`Cluster::committed_offsets`] | one OffsetFetch per coordinator (v8+, multi-group) |
//! | [`Cluster::watermarks`] | two ListOffsets (earliest, latest) per leader |
//! | [`Cluster::topic_configs`] | one DescribeConfigs |
//! | [`Cluster::record_timestamps`] | one Fetch per leader per round |
//!
//! Items whose routing went stale (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR, ...) are
//! retried alone after a metadata / coordinator refresh, with backoff. Each item gets its
//! own `Result`: one bad partition or group never discards the others.

mod consumer_groups;
mod groups;
mod membership;
mod partitions;
mod share_groups;
mod timestamps;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::ApiKey;

pub use groups::{
    GroupDescription, GroupList, GroupListing, GroupOffsets, GroupType, MemberDescription,
};
pub use partitions::Watermarks;
pub use timestamps::{
    FetchStats, PartitionFetch, TimestampQuery, TimestampResult, MAX_PARTITION_FETCH_BYTES,
};

use super::cluster::{Cluster, TopicPartition};
use super::error::{is_routing_code, KafkaError, KafkaErrorKind, Result};

/// What one batched request said about one item (a group or a partition).
pub(crate) enum Outcome<T> {
    /// Final answer for this item.
    Done(Result<T>),
    /// Routing was stale: refresh and try this item again.
    Retry(KafkaError),
}

/// Every group of `batch` answered "not described by this API" (`Ok(None)`): another API
/// describes them.
pub(crate) fn not_described<T>(batch: &[String]) -> Vec<(String, Outcome<Option<T>>)> {
    batch
        .iter()
        .map(|g| (g.clone(), Outcome::Done(Ok(None))))
        .collect()
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
    KafkaErrorKind::Broker {
        broker: format!("node {node}"),
        api,
        code,
        context: context.into(),
        message,
    }
    .into()
}

impl Cluster {
    /// Run `op` until it answers or fails for good: transport failures and stale routing
    /// are tried again with backoff, at most `max_retries` times. A broker already found
    /// down this cycle fails at once ([`KafkaErrorKind::BrokerDown`] is final).
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

    /// Run `op` once per leader for the partitions it leads, retrying stale items after a
    /// metadata refresh.
    ///
    /// `op(node, items)` returns an outcome per item key; an `Err` fails every item of that
    /// batch (transport failures are retried like stale routing).
    pub(crate) async fn per_leader<I, T, F, Fut>(
        &self,
        items: Vec<I>,
        key: impl Fn(&I) -> &TopicPartition,
        op: F,
    ) -> Vec<(TopicPartition, Result<T>)>
    where
        I: Clone,
        F: Fn(i32, Arc<[I]>) -> Fut,
        Fut: Future<Output = Result<Vec<(TopicPartition, Outcome<T>)>>>,
    {
        let route = |pending: Vec<I>| {
            let meta = self.metadata();
            let mut routed = Routed::default();
            for item in pending {
                match meta.leader(key(&item)) {
                    Some(node) => routed.by_node.entry(node).or_default().push(item),
                    None => {
                        let e = KafkaErrorKind::UnknownInMetadata(format!(
                            "leader for partition {}",
                            key(&item)
                        ))
                        .into();
                        routed.retry.push((item, e));
                    }
                }
            }
            std::future::ready(routed)
        };
        let refresh = |_: Vec<I>| async {
            if let Err(e) = self.refresh_metadata().await {
                tracing::warn!(error = %e, "metadata refresh before retry failed");
            }
        };
        self.per_broker(items, &key, route, refresh, op).await
    }

    /// Run `op` once per group coordinator for the groups it coordinates, retrying stale
    /// groups after forgetting their cached coordinator.
    pub(crate) async fn per_coordinator<T, F, Fut>(
        &self,
        groups: &[String],
        op: F,
    ) -> HashMap<String, Result<T>>
    where
        F: Fn(i32, Arc<[String]>) -> Fut,
        Fut: Future<Output = Result<Vec<(String, Outcome<T>)>>>,
    {
        let route = |pending: Vec<String>| async move {
            let mut routed = Routed::default();
            // A cached coordinator found down this cycle may have handed its groups to
            // another broker: look those groups up once more before giving up on them.
            let mut relook = Vec::new();
            for (group, coordinator) in self.find_coordinators(&pending).await {
                match coordinator {
                    Ok(node) if self.is_down(node) => relook.push(group),
                    Ok(node) => routed.by_node.entry(node).or_default().push(group),
                    Err(e) => routed.failed.push((group, e)),
                }
            }
            if !relook.is_empty() {
                for group in &relook {
                    self.forget_coordinator(group);
                }
                for (group, coordinator) in self.find_coordinators(&relook).await {
                    match coordinator.and_then(|node| self.check_up(node).map(|()| node)) {
                        Ok(node) => routed.by_node.entry(node).or_default().push(group),
                        Err(e) => routed.failed.push((group, e)),
                    }
                }
            }
            routed
        };
        let forget = |stale: Vec<String>| {
            for group in &stale {
                self.forget_coordinator(group);
            }
            std::future::ready(())
        };
        self.per_broker(groups.to_vec(), |g: &String| g, route, forget, op)
            .await
            .into_iter()
            .collect()
    }

    /// The one routing-and-retry loop of every batched request: `route` sends each item to
    /// a broker, `op(node, items)` runs once per broker (concurrently) and classifies each
    /// item; items whose routing went stale, or whose broker failed in transport, go again
    /// after a backoff and `before_retry` (a metadata refresh, forgetting coordinators), at
    /// most `max_retries` times. Each item ends with its own `Result`, in no particular order.
    async fn per_broker<I, K, T, R, RFut, B, BFut, F, Fut>(
        &self,
        items: Vec<I>,
        key: impl Fn(&I) -> &K,
        route: R,
        before_retry: B,
        op: F,
    ) -> Vec<(K, Result<T>)>
    where
        I: Clone,
        K: Clone + Eq + std::hash::Hash,
        R: Fn(Vec<I>) -> RFut,
        RFut: Future<Output = Routed<I>>,
        B: Fn(Vec<I>) -> BFut,
        BFut: Future<Output = ()>,
        F: Fn(i32, Arc<[I]>) -> Fut,
        Fut: Future<Output = Result<Vec<(K, Outcome<T>)>>>,
    {
        // A list, not a map: at tens of thousands of partitions a map sized for every item
        // was the largest allocation of a ListOffsets round.
        let mut results = Vec::with_capacity(items.len());
        let mut pending = items;
        let mut attempt = 0;
        while !pending.is_empty() {
            let Routed {
                by_node,
                mut retry,
                failed,
            } = route(std::mem::take(&mut pending)).await;
            for (item, e) in failed {
                results.push((key(&item).clone(), Err(e)));
            }
            // Each broker's answers are filed as they arrive and dropped: held until the
            // slowest broker answered, the answers of every broker were the largest
            // allocation of a ListOffsets round. A batch is shared with its request, not
            // copied for the retries it may need.
            let mut batches: futures_util::stream::FuturesUnordered<_> = by_node
                .into_iter()
                .map(|(node, batch)| {
                    let batch: Arc<[I]> = batch.into();
                    let fut = op(node, Arc::clone(&batch));
                    async move { (batch, fut.await) }
                })
                .collect();
            while let Some((batch, outcome)) = futures_util::StreamExt::next(&mut batches).await {
                match outcome {
                    Ok(answers) => settle(&key, &batch, answers, &mut results, &mut retry),
                    Err(e) if e.is_transport() || e.is_retriable_routing() => {
                        retry.extend(batch.iter().map(|i| (i.clone(), e.clone())));
                    }
                    Err(e) => {
                        results
                            .extend(batch.iter().map(|item| (key(item).clone(), Err(e.clone()))));
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            if attempt >= self.config().max_retries {
                results.extend(
                    retry
                        .into_iter()
                        .map(|(item, e)| (key(&item).clone(), Err(e))),
                );
                break;
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
            pending = retry.into_iter().map(|(i, _)| i).collect();
            before_retry(pending.clone()).await;
        }
        results
    }
}

/// Items sent to one broker each, and the ones that could not be.
pub(crate) struct Routed<I> {
    pub(crate) by_node: BTreeMap<i32, Vec<I>>,
    /// No broker now, maybe one after a refresh.
    pub(crate) retry: Vec<(I, KafkaError)>,
    /// No broker, for good.
    pub(crate) failed: Vec<(I, KafkaError)>,
}

impl<I> Default for Routed<I> {
    fn default() -> Self {
        Routed {
            by_node: BTreeMap::new(),
            retry: Vec::new(),
            failed: Vec::new(),
        }
    }
}

/// File one broker's answers for `batch`: final ones into `results`, stale ones into
/// `retry`; an item the answer left out fails, an answer for an item not asked is ignored
/// (the last one counts when an item is answered twice).
fn settle<I: Clone, K, T>(
    key: &impl Fn(&I) -> &K,
    batch: &[I],
    answers: Vec<(K, Outcome<T>)>,
    results: &mut Vec<(K, Result<T>)>,
    retry: &mut Vec<(I, KafkaError)>,
) where
    K: Clone + Eq + std::hash::Hash,
{
    // Brokers answer in the order asked: then no map of the batch is needed.
    let in_order = answers.len() == batch.len()
        && answers
            .iter()
            .zip(batch)
            .all(|((k, _), item)| k == key(item));
    let fates: Vec<Option<Outcome<T>>> = if in_order {
        answers.into_iter().map(|(_, o)| Some(o)).collect()
    } else {
        let position: HashMap<&K, usize> = batch
            .iter()
            .enumerate()
            .map(|(i, item)| (key(item), i))
            .collect();
        let mut fates: Vec<Option<Outcome<T>>> =
            std::iter::repeat_with(|| None).take(batch.len()).collect();
        for (k, outcome) in answers {
            if let Some(fate) = position.get(&k).and_then(|&i| fates.get_mut(i)) {
                *fate = Some(outcome);
            }
        }
        fates
    };
    for (item, fate) in batch.iter().zip(fates) {
        match fate {
            Some(Outcome::Done(r)) => results.push((key(item).clone(), r)),
            Some(Outcome::Retry(e)) => retry.push((item.clone(), e)),
            None => {
                let e = KafkaErrorKind::UnknownInMetadata(
                    "an answer for every item asked in the broker's response".to_string(),
                )
                .into();
                results.push((key(item).clone(), Err(e)));
            }
        }
    }
}
