//! Timestamps of records at given offsets: one Fetch per leader per round.
//!
//! Several groups often sit at different offsets of one partition, and a Fetch can name a
//! partition only once. Each round therefore fetches every partition from its lowest
//! unresolved offset and resolves, from the same bytes, every target they cover; targets
//! beyond them wait for the next round. Only timestamps are decoded
//! ([`crate::kafka::records`]).
//!
//! Responses are decoded while they arrive ([`crate::kafka::wire::fetch::decode_stream`]):
//! each partition's records are resolved and dropped as soon as they are in, and its
//! answers go straight to the caller, so a round holds one partition's bytes per broker,
//! not the response. Resolving is CPU work (record walks, decompression): all but small
//! uncompressed buffers are resolved on the blocking pool, in jobs of up to 1 MiB of
//! records, at most one core less than the machine has at once (`pool`), never on a worker
//! that serves HTTP. A round's request to a leader names as many of its partitions as
//! their `partition_max_bytes` fit in one response (`max_bytes`, 50 MiB); should the broker
//! still run out of room (its own limit may be lower), the partitions it left empty or cut
//! go again next round.
//!
//! `partition_max_bytes` starts at [`TimestampQuery::initial_partition_bytes`] (4 KiB). A
//! target whose record did not arrive grows its partition to what the cut batch says it
//! needs (or ×4 when it cannot tell), never past [`MAX_PARTITION_FETCH_BYTES`].
//!
//! [`TimestampQuery::requests_per_leader`] caps the requests to each leader (the exporter's
//! per-cycle budget); targets past it are answered [`TimestampResult::Deferred`].

// Network bytes: the lint wall of `kafka::records` (Fetch answers turned into timestamps),
// for this module and every submodule below; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::{KafkaError, KafkaErrorKind, Result};
use crate::kafka::records::RecordAt;

mod pool;
mod resolve;
mod round;

use round::{RoundFailure, RoundOutput};

/// The product promise: never ask a broker for more than this per partition.
pub const MAX_PARTITION_FETCH_BYTES: i32 = 256 * 1024;

/// Tuning of [`Cluster::record_timestamps`].
#[derive(Clone, Copy, Debug)]
pub struct TimestampQuery {
    /// First `partition_max_bytes`; grows to what a cut batch needs (or ×4 when that is not
    /// known), up to [`MAX_PARTITION_FETCH_BYTES`].
    pub initial_partition_bytes: i32,
    /// Cap of one Fetch response (`max_bytes`), and of the `partition_max_bytes` summed over
    /// one request: a leader's partitions beyond it wait for the next round. Responses are
    /// decoded as they arrive, so this bounds bytes on the wire per request, not memory.
    pub response_max_bytes: i32,
    /// Fetches of one partition (with room in the response) before its unresolved targets
    /// are given up.
    pub max_attempts: u32,
    /// Fetch requests to one leader in this call, at most (`None`: as many as it takes).
    /// Targets not resolved within them are answered [`TimestampResult::Deferred`].
    pub requests_per_leader: Option<u32>,
}

impl Default for TimestampQuery {
    fn default() -> Self {
        Self {
            initial_partition_bytes: 4 * 1024,
            // Below Kafka's default broker limit (`fetch.max.bytes`, 55 MiB), which would
            // otherwise cut responses short of what was asked for.
            response_max_bytes: 50 * 1024 * 1024,
            max_attempts: 8,
            requests_per_leader: None,
        }
    }
}

/// What was found for one (partition, offset) target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampResult {
    /// The record at the target, or the first one after it (`record.offset > target`) when
    /// the target no longer exists (deleted by retention or compacted away).
    Found(RecordAt),
    /// No record at or after the target: it is at or past the end of the log.
    EndOfLog,
    /// Only control records (transaction markers) or aborted records lie between the
    /// target and the high watermark: a consumer at the target has nothing to read.
    MarkersOnly,
    /// The record at the target (or the first after it) carries no timestamp (a magic 0
    /// message, or a timestamp of −1): there is no time lag to report.
    Untimed { offset: i64 },
    /// Not fetched: its leader's request budget ([`TimestampQuery::requests_per_leader`])
    /// ran out first.
    Deferred,
}

#[derive(Clone, Debug)]
pub(super) struct Target {
    /// Offset the caller asked about.
    pub(super) target: i64,
    /// Offset to look for (moved to the log start after OFFSET_OUT_OF_RANGE).
    pub(super) from: i64,
}

/// One partition's targets still to resolve.
#[derive(Clone, Debug)]
pub(super) struct PartitionWork {
    /// Position of the partition's first target in the caller's list: rounds take
    /// partitions in this order.
    pub(super) order: usize,
    pub(super) tp: TopicPartition,
    pub(super) targets: Vec<Target>,
    pub(super) max_bytes: i32,
    /// Fetches that had room for this partition (starved ones do not count), and failed
    /// ones.
    pub(super) attempts: u32,
}

impl PartitionWork {
    /// Where the next fetch of this partition starts.
    pub(super) fn lowest(&self) -> i64 {
        self.targets.iter().map(|t| t.from).min().unwrap_or(0)
    }
}

type Answers = HashMap<(TopicPartition, i64), Result<TimestampResult>>;

/// What a [`Cluster::record_timestamps_with_stats`] call fetched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Fetch requests sent (at most one per leader per round).
    pub requests: u64,
    /// Every partition fetched, in no particular order.
    pub partitions: Vec<PartitionFetch>,
}

/// What was fetched for one partition, over every round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionFetch {
    /// Record bytes received.
    pub record_bytes: u64,
    /// Targets answered with a record from these bytes (the time-lag samples).
    pub samples: u64,
}

impl FetchStats {
    /// Time-lag samples answered.
    pub fn samples(&self) -> u64 {
        self.partitions.iter().map(|p| p.samples).sum()
    }

    /// Record bytes received.
    pub fn record_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.record_bytes).sum()
    }
}

/// Where the concurrent requests of one call hand their answers over, as they decode.
struct Sink<F> {
    answer: F,
    /// By [`PartitionWork::order`].
    fetched: Vec<PartitionFetch>,
}

impl<F: FnMut(&TopicPartition, i64, Result<TimestampResult>)> Sink<F> {
    /// The answer for `target` of the partition planned `order`-th.
    fn answer(
        &mut self,
        order: usize,
        tp: &TopicPartition,
        target: i64,
        result: Result<TimestampResult>,
    ) {
        if matches!(result, Ok(TimestampResult::Found(_))) {
            if let Some(f) = self.fetched.get_mut(order) {
                f.samples = f.samples.saturating_add(1);
            }
        }
        (self.answer)(tp, target, result);
    }

    fn received(&mut self, order: usize, record_bytes: usize) {
        if let Some(f) = self.fetched.get_mut(order) {
            f.record_bytes = f.record_bytes.saturating_add(record_bytes as u64);
        }
    }

    /// Every target of `w` gets `result`.
    fn settle(&mut self, w: &PartitionWork, result: impl Fn() -> Result<TimestampResult>) {
        for t in &w.targets {
            (self.answer)(&w.tp, t.target, result());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cluster {
    /// The timestamp of the record at each `(partition, offset)`.
    pub async fn record_timestamps(
        &self,
        targets: &[(TopicPartition, i64)],
        query: TimestampQuery,
    ) -> Answers {
        self.record_timestamps_with_stats(targets, query).await.0
    }

    /// [`Cluster::record_timestamps`], with what it cost.
    pub async fn record_timestamps_with_stats(
        &self,
        targets: &[(TopicPartition, i64)],
        query: TimestampQuery,
    ) -> (Answers, FetchStats) {
        let mut answers: Answers = HashMap::with_capacity(targets.len());
        let stats = self
            .record_timestamps_each(targets.to_vec(), query, |tp, offset, answer| {
                answers.insert((tp.clone(), offset), answer);
            })
            .await;
        (answers, stats)
    }

    /// [`Cluster::record_timestamps_with_stats`], handing each answer to `answer(partition,
    /// offset, result)` as soon as it is decoded instead of collecting them.
    ///
    /// Rounds take partitions in the order of their first target in `targets`, so when
    /// [`TimestampQuery::requests_per_leader`] cuts the work short, the targets listed first
    /// are the ones fetched. A partition whose leader moved, or whose request failed in
    /// transport, goes again in the next round after a metadata refresh (with backoff); it
    /// counts as one of its [`TimestampQuery::max_attempts`].
    ///
    /// `targets` is taken by value: it is dropped once planned.
    pub async fn record_timestamps_each(
        &self,
        targets: Vec<(TopicPartition, i64)>,
        query: TimestampQuery,
        answer: impl FnMut(&TopicPartition, i64, Result<TimestampResult>) + Send,
    ) -> FetchStats {
        let mut work = plan_work(&targets, &query);
        drop(targets);
        let sink = Mutex::new(Sink {
            answer,
            fetched: vec![PartitionFetch::default(); work.len()],
        });
        let max_attempts = query.max_attempts.max(1);
        let room = i64::from(query.response_max_bytes.max(1));
        let mut sent: HashMap<i32, u32> = HashMap::new();
        // The error of each leader's last request, when it failed: what its partitions get
        // instead of `Deferred` once its budget is spent.
        let mut failed: HashMap<i32, KafkaError> = HashMap::new();
        let mut requests = 0u64;
        let mut stale_rounds = 0u32;
        while !work.is_empty() {
            // Partitions without a leader, on a moved leader or behind a failed connection
            // are tried again after a metadata refresh, at most `max_retries` times in a call
            // (as every other batched request); after that they fail with their error.
            let retries = if stale_rounds < self.config().max_retries {
                max_attempts
            } else {
                0
            };
            // This round: per leader, partitions in order while their caps fit one
            // response (each leader gets at least one); the others wait for the next round.
            // A response of `max_bytes` could not hold more anyway, and this bounds what a
            // round keeps per partition.
            let meta = self.metadata();
            let mut rounds: BTreeMap<i32, (i64, Vec<PartitionWork>)> = BTreeMap::new();
            let mut next: Vec<PartitionWork> = Vec::new();
            let mut stale = false;
            for mut w in std::mem::take(&mut work) {
                let Some(node) = meta.leader(&w.tp) else {
                    stale = true;
                    w.attempts = w.attempts.saturating_add(1);
                    let e =
                        KafkaErrorKind::UnknownInMetadata(format!("leader for partition {}", w.tp))
                            .into();
                    again_or_fail(w, Some(&e), retries, &mut next, &sink);
                    continue;
                };
                let spent = query
                    .requests_per_leader
                    .is_some_and(|max| sent.get(&node).copied().unwrap_or(0) >= max);
                if spent {
                    let mut sink = lock(&sink);
                    match failed.get(&node) {
                        Some(e) => sink.settle(&w, || Err(e.clone())),
                        None => sink.settle(&w, || Ok(TimestampResult::Deferred)),
                    }
                    continue;
                }
                let (used, items) = rounds.entry(node).or_default();
                let cost = i64::from(w.max_bytes);
                if items.is_empty() || used.saturating_add(cost) <= room {
                    *used = used.saturating_add(cost);
                    items.push(w);
                } else {
                    next.push(w);
                }
            }
            drop(meta);
            for node in rounds.keys() {
                let n = sent.entry(*node).or_insert(0);
                *n = n.saturating_add(1);
                requests = requests.saturating_add(1);
            }
            let sink_ref = &sink;
            let results = futures_util::future::join_all(rounds.into_iter().map(
                |(node, (_, items))| async move {
                    (node, self.fetch_round(node, items, query, sink_ref).await)
                },
            ))
            .await;
            for (node, result) in results {
                match result {
                    Ok(RoundOutput { left, moved }) => {
                        failed.remove(&node);
                        stale |= !moved.is_empty();
                        for (w, e) in moved {
                            again_or_fail(w, Some(&e), retries, &mut next, &sink);
                        }
                        for w in left {
                            again_or_fail(w, None, max_attempts, &mut next, &sink);
                        }
                    }
                    Err(RoundFailure { items, error }) => {
                        failed.insert(node, error.clone());
                        if error.is_transport() || error.is_retriable_routing() {
                            stale = true;
                            for mut w in items {
                                w.attempts = w.attempts.saturating_add(1);
                                again_or_fail(w, Some(&error), retries, &mut next, &sink);
                            }
                        } else {
                            let mut sink = lock(&sink);
                            for w in &items {
                                sink.settle(w, || Err(error.clone()));
                            }
                        }
                    }
                }
            }
            work = next;
            work.sort_unstable_by_key(|w| w.order);
            if stale && !work.is_empty() {
                tokio::time::sleep(self.backoff(stale_rounds)).await;
                stale_rounds = stale_rounds.saturating_add(1);
                if let Err(e) = self.refresh_metadata().await {
                    tracing::warn!(error = %e, "metadata refresh before the next Fetch round failed");
                }
            }
        }
        let sink = sink.into_inner().unwrap_or_else(|p| p.into_inner());
        FetchStats {
            requests,
            partitions: sink
                .fetched
                .into_iter()
                .filter(|f| f.record_bytes > 0 || f.samples > 0)
                .collect(),
        }
    }
}

/// `w` goes to the next round, unless it has had `max_attempts`: then each target gets
/// `error`, or (`None`) an error saying it was not reached within `max_attempts` fetches.
fn again_or_fail<F: FnMut(&TopicPartition, i64, Result<TimestampResult>)>(
    w: PartitionWork,
    error: Option<&KafkaError>,
    max_attempts: u32,
    next: &mut Vec<PartitionWork>,
    sink: &Mutex<Sink<F>>,
) {
    if w.attempts < max_attempts {
        next.push(w);
        return;
    }
    let mut sink = lock(sink);
    for t in &w.targets {
        let e = match error {
            Some(e) => e.clone(),
            None => KafkaErrorKind::Unresolved(format!(
                "record at offset {} of {}: not reached within {max_attempts} fetches",
                t.target, w.tp
            ))
            .into(),
        };
        (sink.answer)(&w.tp, t.target, Err(e));
    }
}

/// One entry per partition, in the order of its first target, with its distinct targets.
fn plan_work(targets: &[(TopicPartition, i64)], query: &TimestampQuery) -> Vec<PartitionWork> {
    let initial = query
        .initial_partition_bytes
        .clamp(1, MAX_PARTITION_FETCH_BYTES);
    let mut index: HashMap<&TopicPartition, usize> = HashMap::new();
    let mut work: Vec<PartitionWork> = Vec::new();
    for (tp, offset) in targets {
        let at = *index.entry(tp).or_insert_with(|| {
            let order = work.len();
            work.push(PartitionWork {
                order,
                tp: tp.clone(),
                targets: Vec::new(),
                max_bytes: initial,
                attempts: 0,
            });
            order
        });
        let Some(w) = work.get_mut(at) else { continue };
        if !w.targets.iter().any(|t| t.target == *offset) {
            w.targets.push(Target {
                target: *offset,
                from: *offset,
            });
        }
    }
    work
}
