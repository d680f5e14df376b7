//! One Fetch to one leader, its response resolved partition by partition while it arrives.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::ApiKey;

use super::resolve::{resolve, Resolution};
use super::{
    lock, PartitionWork, Sink, TimestampQuery, TimestampResult, MAX_PARTITION_FETCH_BYTES,
};
use crate::kafka::admin::broker_error;
use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::{KafkaError, Result};
use crate::kafka::requests::{self, FetchAt};
use crate::kafka::wire::fetch::{self, Item};

/// What a round left to do with one leader's partitions (their answers went to the sink).
#[derive(Debug, Default)]
pub(super) struct RoundOutput {
    /// Partitions to fetch again: targets not covered yet, or not in the response.
    pub(super) left: Vec<PartitionWork>,
    /// Partitions this broker no longer leads, with its error: again after a metadata
    /// refresh.
    pub(super) moved: Vec<(PartitionWork, KafkaError)>,
}

/// A request that failed as a whole, with the partitions it had not answered.
#[derive(Debug)]
pub(super) struct RoundFailure {
    pub(super) items: Vec<PartitionWork>,
    pub(super) error: KafkaError,
}

impl Cluster {
    /// One Fetch to `node` for `items`, each from its lowest unresolved offset. Answers go to
    /// `sink` partition by partition while the response arrives.
    pub(super) async fn fetch_round<F>(
        &self,
        node: i32,
        items: Vec<PartitionWork>,
        query: TimestampQuery,
        sink: &Mutex<Sink<F>>,
    ) -> std::result::Result<RoundOutput, RoundFailure>
    where
        F: FnMut(&TopicPartition, i64, Result<TimestampResult>),
    {
        let at: Vec<FetchAt> = items
            .iter()
            .map(|w| FetchAt {
                tp: w.tp.clone(),
                offset: w.lowest(),
                max_bytes: w.max_bytes,
            })
            .collect();
        let req = requests::fetch(&at, query.response_max_bytes);
        drop(at);
        let mut stream = match self.stream_to(node, |_| req).await {
            Ok(stream) => stream,
            Err(error) => return Err(RoundFailure { items, error }),
        };
        let version = stream.version();
        let mut pending: HashMap<TopicPartition, PartitionWork> =
            items.into_iter().map(|w| (w.tp.clone(), w)).collect();
        let topics: HashSet<Arc<str>> = pending.keys().map(|tp| tp.topic.clone()).collect();
        let mut out = RoundOutput::default();
        let mut topic: Option<Arc<str>> = None;
        // Record bytes of the partitions before this one in the response.
        let mut used = 0usize;
        let limit = MAX_PARTITION_FETCH_BYTES as usize;
        let decoded = fetch::decode_stream(stream.reader(), version, limit, |item| match item {
            // Reuse our shared name; a topic we did not ask for is ignored.
            Item::Topic(name) => {
                topic = topics.get(name).cloned();
            }
            Item::Partition(p) => {
                let Some(name) = &topic else { return };
                let tp = TopicPartition::new(name.clone(), p.partition);
                let Some(w) = pending.remove(&tp) else { return };
                // A broker fills partitions in request order until `max_bytes` is used up,
                // giving the first non-empty one its first batch whatever its size. One that
                // comes after others' bytes with fewer than its own cap may have been cut
                // by the response limit, not by its log ("starved"): it goes again.
                let starved = used > 0 && p.records_size < w.max_bytes as usize;
                used = used.saturating_add(p.records_size);
                let order = w.order;
                let mut sink = lock(sink);
                sink.received(order, p.records_size);
                match resolve(node, w, &p, starved) {
                    Resolution::Answered { answers, left } => {
                        for (target, answer) in answers {
                            sink.answer(order, &tp, target, answer);
                        }
                        out.left.extend(left);
                    }
                    Resolution::Failed(w, e) => sink.settle(&w, || Err(e.clone())),
                    Resolution::Moved(mut w, e) => {
                        w.attempts += 1;
                        out.moved.push((w, e));
                    }
                }
            }
        })
        .await;
        let failure = |pending: HashMap<TopicPartition, PartitionWork>, out: RoundOutput, error| {
            let mut items: Vec<PartitionWork> = pending.into_values().collect();
            items.extend(out.left);
            items.extend(out.moved.into_iter().map(|(w, _)| w));
            RoundFailure { items, error }
        };
        match self.finish_stream(stream, decoded).await {
            Ok(0) => {}
            Ok(code) => {
                let e = broker_error(node, ApiKey::Fetch, code, "fetch", None);
                return Err(failure(pending, out, e));
            }
            Err(e) => return Err(failure(pending, out, e)),
        }
        // Left out of the response: next round.
        for (_, mut w) in pending {
            w.attempts += 1;
            out.left.push(w);
        }
        Ok(out)
    }
}
