//! Timestamps of records at given offsets: one Fetch per leader per round.
//!
//! Several groups often sit at different offsets of one partition, and a Fetch can name a
//! partition only once. Each round therefore fetches every partition from its lowest
//! unresolved offset and resolves, from the same bytes, every target they cover; targets
//! beyond them wait for the next round. Only timestamps are decoded
//! ([`crate::kafka::records`]).
//!
//! Responses are decoded while they arrive ([`crate::kafka::wire::fetch::decode_stream`]):
//! each partition's records are resolved and dropped as soon as they are in, so a round
//! holds one partition's bytes per broker, not the response. A round's request to a leader
//! names as many of its partitions as their `partition_max_bytes` fit in one response
//! (`max_bytes`, 50 MiB); should the broker still run out of room (its own limit may be
//! lower), the partitions it left empty or cut go again next round.
//!
//! `partition_max_bytes` starts at [`TimestampQuery::initial_partition_bytes`] and grows
//! (×4) only for partitions whose target batch did not fit, never past
//! [`MAX_PARTITION_FETCH_BYTES`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::ApiKey;

use super::{broker_error, Outcome};
use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::{KafkaError, Result};
use crate::kafka::records::{self, AbortedTxn, Lookup, RecordAt};
use crate::kafka::requests::{self, FetchAt};
use crate::kafka::wire::fetch::{self, FetchPartition as FetchedPartition, Item};

/// The product promise: never ask a broker for more than this per partition.
pub const MAX_PARTITION_FETCH_BYTES: i32 = 256 * 1024;

/// Error code OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;

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
    /// Not fetched: its leader's request budget ([`TimestampQuery::requests_per_leader`])
    /// ran out first.
    Deferred,
}

#[derive(Clone, Debug)]
struct Target {
    /// Offset the caller asked about.
    target: i64,
    /// Offset to look for (moved to the log start after OFFSET_OUT_OF_RANGE).
    from: i64,
}

#[derive(Clone, Debug)]
struct PartitionWork {
    /// Position of the partition's first target in the caller's list: rounds take
    /// partitions in this order.
    order: usize,
    tp: TopicPartition,
    targets: Vec<Target>,
    max_bytes: i32,
    /// Fetches that had room for this partition (starved ones do not count).
    attempts: u32,
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

/// What one round achieved for one partition.
#[derive(Debug)]
struct RoundResult {
    resolved: Vec<(i64, Result<TimestampResult>)>,
    /// Work left for the next round, if any.
    left: Option<PartitionWork>,
    /// Record bytes this round received for the partition.
    record_bytes: u64,
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
            .record_timestamps_each(targets, query, |tp, offset, answer| {
                answers.insert((tp.clone(), offset), answer);
            })
            .await;
        (answers, stats)
    }

    /// [`Cluster::record_timestamps_with_stats`], handing each answer to `answer(partition,
    /// offset, result)` as soon as its round ends instead of collecting them.
    ///
    /// Rounds take partitions in the order of their first target in `targets`, so when
    /// [`TimestampQuery::requests_per_leader`] cuts the work short, the targets listed first
    /// are the ones fetched.
    pub async fn record_timestamps_each(
        &self,
        targets: &[(TopicPartition, i64)],
        query: TimestampQuery,
        mut answer: impl FnMut(&TopicPartition, i64, Result<TimestampResult>),
    ) -> FetchStats {
        let mut work = plan_work(targets, &query);
        let requests: std::sync::Mutex<HashMap<i32, u32>> = Default::default();
        let sent = |node: i32| {
            requests
                .lock()
                .map_or(0, |r| r.get(&node).copied().unwrap_or(0))
        };
        let mut fetched: HashMap<TopicPartition, PartitionFetch> = HashMap::new();
        let max_attempts = query.max_attempts.max(1);
        let budget = i64::from(query.response_max_bytes.max(1));
        let spent = |leader: Option<i32>| matches!((leader, query.requests_per_leader), (Some(node), Some(max)) if sent(node) >= max);
        while !work.is_empty() {
            // This round: per leader, partitions in order while their caps fit one
            // response (each leader gets at least one); the others wait for the next round.
            // A response of `max_bytes` could not hold more anyway, and this bounds what a
            // round keeps per partition (its work, its request entry, its outcome).
            let meta = self.metadata();
            let mut planned: HashMap<Option<i32>, i64> = HashMap::new();
            let mut batch: Vec<PartitionWork> = Vec::new();
            let mut waiting: Vec<PartitionWork> = Vec::new();
            let mut deferred: Vec<PartitionWork> = Vec::new();
            for w in std::mem::take(&mut work) {
                let leader = meta.leader(&w.tp);
                if spent(leader) {
                    deferred.push(w);
                    continue;
                }
                let used = planned.entry(leader).or_insert(0);
                let cost = i64::from(w.max_bytes);
                if *used == 0 || *used + cost <= budget {
                    *used += cost;
                    batch.push(w);
                } else {
                    waiting.push(w);
                }
            }
            drop(meta);
            for w in deferred {
                for t in &w.targets {
                    answer(&w.tp, t.target, Ok(TimestampResult::Deferred));
                }
            }
            work = waiting;
            let targets_of: HashMap<TopicPartition, Vec<i64>> = batch
                .iter()
                .map(|w| (w.tp.clone(), w.targets.iter().map(|t| t.target).collect()))
                .collect();
            let outcomes = self
                .per_leader(batch, work_key, |node, items| {
                    if let Ok(mut r) = requests.lock() {
                        *r.entry(node).or_insert(0) += 1;
                    }
                    self.fetch_round(node, items, query)
                })
                .await;
            for (tp, outcome) in outcomes {
                match outcome {
                    Ok(round) => {
                        let stats = fetched.entry(tp.clone()).or_default();
                        stats.record_bytes += round.record_bytes;
                        for (target, result) in round.resolved {
                            if matches!(result, Ok(TimestampResult::Found(_))) {
                                stats.samples += 1;
                            }
                            answer(&tp, target, result);
                        }
                        match round.left {
                            Some(left) if left.attempts >= max_attempts => {
                                for t in left.targets {
                                    let e = KafkaError::Unresolved(format!(
                                        "record at offset {} of {tp} not reached within {max_attempts} fetches",
                                        t.target
                                    ));
                                    answer(&tp, t.target, Err(e));
                                }
                            }
                            Some(left) => work.push(left),
                            None => {}
                        }
                    }
                    Err(e) => {
                        for target in targets_of.get(&tp).into_iter().flatten() {
                            answer(&tp, *target, Err(e.clone()));
                        }
                    }
                }
            }
            work.sort_unstable_by_key(|w| w.order);
        }
        let requests = requests
            .into_inner()
            .map_or(0, |r| r.values().map(|n| u64::from(*n)).sum());
        FetchStats {
            requests,
            partitions: fetched.into_values().collect(),
        }
    }

    /// One Fetch to `node` for `items`, each from its lowest unresolved offset, resolved
    /// partition by partition while the response arrives.
    async fn fetch_round(
        &self,
        node: i32,
        items: Vec<PartitionWork>,
        query: TimestampQuery,
    ) -> Result<Vec<(TopicPartition, Outcome<RoundResult>)>> {
        let at: Vec<FetchAt> = items
            .iter()
            .map(|w| FetchAt {
                tp: w.tp.clone(),
                offset: lowest(&w.targets),
                max_bytes: w.max_bytes,
            })
            .collect();
        let req = requests::fetch(&at, query.response_max_bytes);
        drop(at);
        let mut stream = self.stream_to(node, |_| req).await?;
        let version = stream.version();
        let mut pending: HashMap<TopicPartition, PartitionWork> =
            items.into_iter().map(|w| (w.tp.clone(), w)).collect();
        let mut outcomes = Vec::with_capacity(pending.len());
        let topics: HashSet<Arc<str>> = pending.keys().map(|tp| tp.topic.clone()).collect();
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
                outcomes.push((tp, resolve(node, w, p, starved)));
            }
        })
        .await;
        let error_code = self.finish_stream(stream, decoded).await?;
        if error_code != 0 {
            return Err(broker_error(node, ApiKey::Fetch, error_code, "fetch", None));
        }
        // Left out of the response: next round.
        for (tp, mut w) in pending {
            w.attempts += 1;
            let round = RoundResult {
                resolved: Vec::new(),
                left: Some(w),
                record_bytes: 0,
            };
            outcomes.push((tp, Outcome::Done(Ok(round))));
        }
        Ok(outcomes)
    }
}

fn work_key(w: &PartitionWork) -> &TopicPartition {
    &w.tp
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
            work.push(PartitionWork {
                order: work.len(),
                tp: tp.clone(),
                targets: Vec::new(),
                max_bytes: initial,
                attempts: 0,
            });
            work.len() - 1
        });
        let w = &mut work[at];
        if !w.targets.iter().any(|t| t.target == *offset) {
            w.targets.push(Target {
                target: *offset,
                from: *offset,
            });
        }
    }
    work
}

fn lowest(targets: &[Target]) -> i64 {
    targets.iter().map(|t| t.from).min().unwrap_or(0)
}

/// Resolve the targets of one partition from its fetched bytes.
fn resolve(
    node: i32,
    mut w: PartitionWork,
    p: FetchedPartition,
    starved: bool,
) -> Outcome<RoundResult> {
    let fetch_offset = lowest(&w.targets);
    let record_bytes = p.records_size as u64;
    if !starved {
        w.attempts += 1;
    }
    if p.error_code == OFFSET_OUT_OF_RANGE && p.log_start_offset > fetch_offset {
        // Deleted by retention: the first record still there answers for these targets.
        for t in &mut w.targets {
            t.from = t.from.max(p.log_start_offset);
        }
        return Outcome::Done(Ok(RoundResult {
            resolved: Vec::new(),
            left: Some(w),
            record_bytes,
        }));
    }
    if p.error_code != 0 {
        let context = format!("fetch of {} at offset {fetch_offset}", w.tp);
        let e = broker_error(node, ApiKey::Fetch, p.error_code, context, None);
        return Outcome::failed(p.error_code, e);
    }
    let aborted: Vec<AbortedTxn> = p
        .aborted
        .iter()
        .map(|a| AbortedTxn {
            producer_id: a.producer_id,
            first_offset: a.first_offset,
        })
        .collect();
    let mut resolved = Vec::new();
    let mut left = Vec::new();
    // The step of the lowest target left: the next fetch starts at its batch.
    let mut first: Option<(i64, Step)> = None;
    for t in std::mem::take(&mut w.targets) {
        match lookup(&w, &p, &aborted, &t, fetch_offset, starved) {
            Step::Answer(a) => resolved.push((t.target, a)),
            step => {
                if first.as_ref().is_none_or(|(from, _)| t.from < *from) {
                    first = Some((t.from, step));
                }
                left.push(t);
            }
        }
    }
    if let Some((_, step)) = first {
        w.max_bytes = next_max_bytes(w.max_bytes, &step);
    }
    w.targets = left;
    let left = (!w.targets.is_empty()).then_some(w);
    Outcome::Done(Ok(RoundResult {
        resolved,
        left,
        record_bytes,
    }))
}

/// `partition_max_bytes` for the next fetch of a partition, after `step` for its lowest
/// target: what its cut batch needs when that is known, ×4 when it is not.
fn next_max_bytes(current: i32, step: &Step) -> i32 {
    let needed = |n: Option<usize>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let next = match *step {
        Step::Grow(n) => needed(n)
            .filter(|n| *n > current)
            .unwrap_or_else(|| current.saturating_mul(4)),
        Step::NextRound(n) => needed(n).map_or(current, |n| n.max(current)),
        Step::Answer(_) => current,
    };
    next.min(MAX_PARTITION_FETCH_BYTES)
}

enum Step {
    Answer(Result<TimestampResult>),
    /// The target's batch was cut by `partition_max_bytes` before its record: fetch again
    /// with more, as many bytes as the batch needs when known.
    Grow(Option<usize>),
    /// Not covered by these bytes: fetch again from it (its batch needs this many bytes, when
    /// it was seen cut after others).
    NextRound(Option<usize>),
}

fn lookup(
    w: &PartitionWork,
    p: &FetchedPartition,
    aborted: &[AbortedTxn],
    t: &Target,
    fetch_offset: i64,
    starved: bool,
) -> Step {
    if t.from >= p.high_watermark {
        return Step::Answer(Ok(TimestampResult::EndOfLog));
    }
    match records::record_at(&p.records, t.from, aborted) {
        Ok(Lookup::Found(rec)) => Step::Answer(Ok(TimestampResult::Found(rec))),
        Ok(Lookup::Missing {
            truncated,
            next_offset,
            needed,
        }) => {
            let at_front = t.from == fetch_offset;
            let nothing_complete = next_offset.is_none_or(|n| n <= t.from);
            if starved && at_front && (p.records.is_empty() || truncated) {
                // Cut by the response cap, not by its own: same size again next round.
                Step::NextRound(None)
            } else if truncated && nothing_complete && at_front {
                if w.max_bytes >= MAX_PARTITION_FETCH_BYTES {
                    Step::Answer(Err(KafkaError::Unresolved(format!(
                        "record at offset {} of {}: not within the first {} KiB of its batch (the fetch cap)",
                        t.target,
                        w.tp,
                        MAX_PARTITION_FETCH_BYTES / 1024
                    ))))
                } else {
                    Step::Grow(needed)
                }
            } else if p.records.is_empty() && at_front && w.attempts < 2 {
                // Below the high watermark yet nothing came back, with room to spare: ask
                // once more (the test broker does this under load) before believing it.
                Step::NextRound(None)
            } else if p.records.is_empty() && at_front {
                // Again nothing visible below the high watermark.
                Step::Answer(Ok(TimestampResult::EndOfLog))
            } else {
                Step::NextRound(needed)
            }
        }
        Err(source) => Step::Answer(Err(KafkaError::Records {
            topic: w.tp.topic.to_string(),
            partition: w.tp.partition,
            source: std::sync::Arc::new(source),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(targets: &[i64], max_bytes: i32) -> PartitionWork {
        PartitionWork {
            order: 0,
            tp: TopicPartition::new("t", 0),
            targets: targets
                .iter()
                .map(|t| Target {
                    target: *t,
                    from: *t,
                })
                .collect(),
            max_bytes,
            attempts: 0,
        }
    }

    fn empty_below_high_watermark() -> FetchedPartition {
        FetchedPartition {
            partition: 0,
            high_watermark: 100,
            last_stable_offset: 100,
            log_start_offset: 0,
            ..FetchedPartition::default()
        }
    }

    fn round(outcome: Outcome<RoundResult>) -> RoundResult {
        match outcome {
            Outcome::Done(Ok(r)) => r,
            Outcome::Done(Err(e)) | Outcome::Retry(e) => panic!("{e}"),
        }
    }

    #[test]
    fn nothing_below_the_high_watermark_is_the_end_of_the_log_only_when_seen_twice_unstarved() {
        // With room left: asked once more, then believed.
        let r = round(resolve(
            1,
            work(&[10], 1024),
            empty_below_high_watermark(),
            false,
        ));
        assert!(r.resolved.is_empty());
        let left = r.left.expect("fetched again");
        assert_eq!((left.max_bytes, left.attempts), (1024, 1));
        let r = round(resolve(1, left, empty_below_high_watermark(), false));
        assert_eq!(r.resolved.len(), 1);
        assert!(matches!(r.resolved[0].1, Ok(TimestampResult::EndOfLog)));
        assert!(r.left.is_none());
        // After partitions that used the response's bytes up: ask again, same size, and
        // the fetch does not count against the partition's attempts.
        let r = round(resolve(
            1,
            work(&[10], 1024),
            empty_below_high_watermark(),
            true,
        ));
        assert!(r.resolved.is_empty());
        let left = r.left.expect("fetched again");
        assert_eq!((left.max_bytes, left.attempts), (1024, 0));
    }
}
