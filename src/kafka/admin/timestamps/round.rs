//! One Fetch to one leader, its response resolved partition by partition while it arrives.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::ApiKey;

use super::pool;
use super::resolve::{resolve, Resolution};
use super::{
    lock, PartitionWork, Sink, TimestampQuery, TimestampResult, MAX_PARTITION_FETCH_BYTES,
};
use crate::kafka::admin::broker_error;
use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::KafkaErrorKind;
use crate::kafka::error::{KafkaError, Result};
use crate::kafka::requests::{self, FetchAt};
use crate::kafka::wire::fetch::{self, FetchPartition, FetchSink};

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
        F: FnMut(&TopicPartition, i64, Result<TimestampResult>) + Send,
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
        let pending: HashMap<TopicPartition, PartitionWork> =
            items.into_iter().map(|w| (w.tp.clone(), w)).collect();
        let topics: HashSet<Arc<str>> = pending.keys().map(|tp| tp.topic.clone()).collect();
        let mut round = RoundSink {
            node,
            sink,
            pending,
            topics,
            topic: None,
            used: 0,
            out: RoundOutput::default(),
            job: Vec::new(),
            job_bytes: 0,
        };
        let limit = MAX_PARTITION_FETCH_BYTES as usize;
        let decoded = fetch::decode_stream_to(stream.reader(), version, limit, &mut round).await;
        // What is still queued was read correctly: resolved whatever the rest of the
        // response holds, as partitions resolved on the way are.
        round.flush().await;
        let RoundSink {
            pending, mut out, ..
        } = round;
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
            w.attempts = w.attempts.saturating_add(1);
            out.left.push(w);
        }
        Ok(out)
    }
}

/// Resolves a round's partitions as the response arrives: small uncompressed ones on the
/// spot, the others in jobs on the decoding pool ([`pool`]).
struct RoundSink<'a, F> {
    node: i32,
    sink: &'a Mutex<Sink<F>>,
    /// Partitions asked for and not in the response yet.
    pending: HashMap<TopicPartition, PartitionWork>,
    topics: HashSet<Arc<str>>,
    /// The topic of the partitions now arriving (`None`: one we did not ask for).
    topic: Option<Arc<str>>,
    /// Record bytes of the partitions before this one in the response.
    used: usize,
    out: RoundOutput,
    /// Partitions waiting for the pool, each with whether it was starved, and their bytes.
    job: Vec<(PartitionWork, FetchPartition, bool)>,
    job_bytes: usize,
}

impl<F> FetchSink for RoundSink<'_, F>
where
    F: FnMut(&TopicPartition, i64, Result<TimestampResult>) + Send,
{
    fn topic(&mut self, name: &str) {
        // Reuse our shared name; a topic we did not ask for is ignored.
        self.topic = self.topics.get(name).cloned();
    }

    async fn partition(&mut self, p: FetchPartition) {
        let Some(name) = &self.topic else { return };
        let tp = TopicPartition::new(name.clone(), p.partition);
        let Some(w) = self.pending.remove(&tp) else {
            return;
        };
        // A broker fills partitions in request order until `max_bytes` is used up, giving
        // the first non-empty one its first batch whatever its size. One that comes after
        // others' bytes with fewer than its own cap may have been cut by the response
        // limit, not by its log ("starved"): it goes again.
        let starved = self.used > 0 && p.records_size < w.max_bytes as usize;
        self.used = self.used.saturating_add(p.records_size);
        lock(self.sink).received(w.order, p.records_size);
        if pool::inline(&p.records) {
            let order = w.order;
            let resolution = resolve(self.node, w, &p, starved);
            self.settle(order, &tp, resolution);
            return;
        }
        self.job_bytes = self.job_bytes.saturating_add(p.records.len());
        self.job.push((w, p, starved));
        if self.job_bytes >= pool::JOB_MAX_BYTES || self.job.len() >= pool::JOB_MAX_PARTITIONS {
            self.flush().await;
        }
    }
}

impl<F> RoundSink<'_, F>
where
    F: FnMut(&TopicPartition, i64, Result<TimestampResult>),
{
    /// Resolves the queued partitions on the decoding pool.
    async fn flush(&mut self) {
        let job = std::mem::take(&mut self.job);
        self.job_bytes = 0;
        if job.is_empty() {
            return;
        }
        // What each partition was, should the job not come back.
        let works: Vec<PartitionWork> = job.iter().map(|(w, _, _)| w.clone()).collect();
        let node = self.node;
        let done = pool::run(move || {
            job.into_iter()
                .map(|(w, p, starved)| {
                    let key = (w.order, w.tp.clone());
                    // The records are dropped here, on the pool, as soon as they are used.
                    (key, resolve(node, w, &p, starved))
                })
                .collect::<Vec<_>>()
        })
        .await;
        match done {
            Ok(resolved) => {
                for ((order, tp), resolution) in resolved {
                    self.settle(order, &tp, resolution);
                }
            }
            Err(e) => {
                let mut sink = lock(self.sink);
                for w in &works {
                    sink.settle(w, || {
                        Err(KafkaErrorKind::Unresolved(format!(
                            "records of {} not decoded: {e}",
                            w.tp
                        ))
                        .into())
                    });
                }
            }
        }
    }

    /// Hands a partition's answers to the caller and keeps what is left of it.
    fn settle(&mut self, order: usize, tp: &TopicPartition, resolution: Resolution) {
        let mut sink = lock(self.sink);
        match resolution {
            Resolution::Answered { answers, left } => {
                for (target, answer) in answers {
                    sink.answer(order, tp, target, answer);
                }
                self.out.left.extend(left);
            }
            Resolution::Failed(w, e) => sink.settle(&w, || Err(e.clone())),
            Resolution::Moved(mut w, e) => {
                w.attempts = w.attempts.saturating_add(1);
                self.out.moved.push((w, e));
            }
        }
    }
}
