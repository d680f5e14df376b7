//! Timestamps of records at given offsets: one Fetch per leader per round.
//!
//! Several groups often sit at different offsets of one partition, and a Fetch can name a
//! partition only once. Each round therefore fetches every partition from its lowest
//! unresolved offset and resolves, from the same bytes, every target they cover; targets
//! beyond them wait for the next round. Only timestamps are decoded
//! ([`crate::kafka::records`]); the record bytes are dropped when the round ends.
//!
//! `partition_max_bytes` starts at [`TimestampQuery::initial_partition_bytes`] and grows
//! (×4) only for partitions whose target batch did not fit, never past
//! [`MAX_PARTITION_FETCH_BYTES`].

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::ApiKey;

use super::{broker_error, Outcome};
use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::{KafkaError, Result};
use crate::kafka::records::{self, AbortedTxn, Lookup, RecordAt};
use crate::kafka::requests::{self, FetchAt};
use crate::kafka::wire::fetch::FetchPartition as FetchedPartition;

/// The product promise: never ask a broker for more than this per partition.
pub const MAX_PARTITION_FETCH_BYTES: i32 = 256 * 1024;

/// Error code OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// Tuning of [`Cluster::record_timestamps`].
#[derive(Clone, Copy, Debug)]
pub struct TimestampQuery {
    /// First `partition_max_bytes`; grows ×4 per retry up to [`MAX_PARTITION_FETCH_BYTES`].
    pub initial_partition_bytes: i32,
    /// Cap of one Fetch response (`max_bytes`).
    pub response_max_bytes: i32,
    /// Fetch rounds before unresolved targets are given up.
    pub max_rounds: u32,
}

impl Default for TimestampQuery {
    fn default() -> Self {
        Self {
            initial_partition_bytes: 16 * 1024,
            response_max_bytes: 16 * 1024 * 1024,
            max_rounds: 8,
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
    tp: TopicPartition,
    targets: Vec<Target>,
    max_bytes: i32,
}

type Answers = HashMap<(TopicPartition, i64), Result<TimestampResult>>;

/// What one round achieved for one partition.
#[derive(Debug)]
struct RoundResult {
    resolved: Vec<(i64, Result<TimestampResult>)>,
    /// Work left for the next round, if any.
    left: Option<PartitionWork>,
}

impl Cluster {
    /// The timestamp of the record at each `(partition, offset)`.
    pub async fn record_timestamps(
        &self,
        targets: &[(TopicPartition, i64)],
        query: TimestampQuery,
    ) -> Answers {
        let initial = query
            .initial_partition_bytes
            .clamp(1, MAX_PARTITION_FETCH_BYTES);
        let mut work: BTreeMap<TopicPartition, PartitionWork> = BTreeMap::new();
        for (tp, offset) in targets {
            let w = work.entry(tp.clone()).or_insert_with(|| PartitionWork {
                tp: tp.clone(),
                targets: Vec::new(),
                max_bytes: initial,
            });
            if !w.targets.iter().any(|t| t.target == *offset) {
                w.targets.push(Target {
                    target: *offset,
                    from: *offset,
                });
            }
        }
        let mut answers: Answers = HashMap::new();
        for _round in 0..query.max_rounds.max(1) {
            if work.is_empty() {
                break;
            }
            let batch: Vec<PartitionWork> = std::mem::take(&mut work).into_values().collect();
            let targets_of: HashMap<TopicPartition, Vec<i64>> = batch
                .iter()
                .map(|w| (w.tp.clone(), w.targets.iter().map(|t| t.target).collect()))
                .collect();
            let outcomes = self
                .per_leader(batch, work_key, |node, items| {
                    self.fetch_round(node, items, query)
                })
                .await;
            for (tp, outcome) in outcomes {
                match outcome {
                    Ok(round) => {
                        for (target, answer) in round.resolved {
                            answers.insert((tp.clone(), target), answer);
                        }
                        if let Some(left) = round.left {
                            work.insert(tp, left);
                        }
                    }
                    Err(e) => {
                        for target in targets_of.get(&tp).into_iter().flatten() {
                            answers.insert((tp.clone(), *target), Err(e.clone()));
                        }
                    }
                }
            }
        }
        for (tp, w) in work {
            for t in w.targets {
                let e = KafkaError::Unresolved(format!(
                    "record at offset {} of {tp} not reached within {} fetch rounds",
                    t.target, query.max_rounds
                ));
                answers.insert((tp.clone(), t.target), Err(e));
            }
        }
        answers
    }

    /// One Fetch to `node` for `items`, each from its lowest unresolved offset.
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
        let (response, _) = self.send_to(node, |_| req).await?;
        if response.error_code != 0 {
            return Err(broker_error(
                node,
                ApiKey::Fetch,
                response.error_code,
                "fetch",
                None,
            ));
        }
        let names: HashMap<&str, &TopicPartition> =
            items.iter().map(|w| (&*w.tp.topic, &w.tp)).collect();
        let mut fetched: HashMap<TopicPartition, FetchedPartition> = HashMap::new();
        for t in response.topics {
            // Reuse our shared name; a topic we did not ask for is ignored.
            let Some(known) = names.get(t.name.as_str()) else {
                continue;
            };
            for p in t.partitions {
                fetched.insert(TopicPartition::new(known.topic.clone(), p.partition), p);
            }
        }
        Ok(items
            .into_iter()
            .map(|w| {
                let outcome = match fetched.remove(&w.tp) {
                    Some(p) => resolve(node, w.clone(), p),
                    // Left out of the response (its cap was reached): next round.
                    None => Outcome::Done(Ok(RoundResult {
                        resolved: Vec::new(),
                        left: Some(w.clone()),
                    })),
                };
                (w.tp, outcome)
            })
            .collect())
    }
}

fn work_key(w: &PartitionWork) -> &TopicPartition {
    &w.tp
}

fn lowest(targets: &[Target]) -> i64 {
    targets.iter().map(|t| t.from).min().unwrap_or(0)
}

/// Resolve the targets of one partition from its fetched bytes.
fn resolve(node: i32, mut w: PartitionWork, p: FetchedPartition) -> Outcome<RoundResult> {
    let fetch_offset = lowest(&w.targets);
    if p.error_code == OFFSET_OUT_OF_RANGE && p.log_start_offset > fetch_offset {
        // Deleted by retention: the first record still there answers for these targets.
        for t in &mut w.targets {
            t.from = t.from.max(p.log_start_offset);
        }
        return Outcome::Done(Ok(RoundResult {
            resolved: Vec::new(),
            left: Some(w),
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
    let mut grow = false;
    let mut resolved = Vec::new();
    let mut left = Vec::new();
    for t in std::mem::take(&mut w.targets) {
        match lookup(&w, &p, &aborted, &t, fetch_offset) {
            Step::Answer(a) => resolved.push((t.target, a)),
            Step::Grow => {
                grow = true;
                left.push(t);
            }
            Step::NextRound => left.push(t),
        }
    }
    if grow {
        w.max_bytes = w.max_bytes.saturating_mul(4).min(MAX_PARTITION_FETCH_BYTES);
    }
    w.targets = left;
    let left = (!w.targets.is_empty()).then_some(w);
    Outcome::Done(Ok(RoundResult { resolved, left }))
}

enum Step {
    Answer(Result<TimestampResult>),
    /// The target's batch was cut by `partition_max_bytes`: fetch again with more.
    Grow,
    /// Not covered by these bytes: fetch again from it.
    NextRound,
}

fn lookup(
    w: &PartitionWork,
    p: &FetchedPartition,
    aborted: &[AbortedTxn],
    t: &Target,
    fetch_offset: i64,
) -> Step {
    if t.from >= p.high_watermark {
        return Step::Answer(Ok(TimestampResult::EndOfLog));
    }
    match records::record_at(&p.records, t.from, aborted) {
        Ok(Lookup::Found(rec)) => Step::Answer(Ok(TimestampResult::Found(rec))),
        Ok(Lookup::Missing {
            truncated,
            next_offset,
        }) => {
            let at_front = t.from == fetch_offset;
            let nothing_complete = next_offset.is_none_or(|n| n <= t.from);
            if truncated && nothing_complete && at_front {
                if w.max_bytes >= MAX_PARTITION_FETCH_BYTES {
                    Step::Answer(Err(KafkaError::Unresolved(format!(
                        "record at offset {} of {}: its batch is larger than the {} KiB fetch cap",
                        t.target,
                        w.tp,
                        MAX_PARTITION_FETCH_BYTES / 1024
                    ))))
                } else {
                    Step::Grow
                }
            } else if p.records.is_empty() && at_front {
                // Below the high watermark yet nothing visible came back.
                Step::Answer(Ok(TimestampResult::EndOfLog))
            } else {
                Step::NextRound
            }
        }
        Err(source) => Step::Answer(Err(KafkaError::Records {
            topic: w.tp.topic.to_string(),
            partition: w.tp.partition,
            source: std::sync::Arc::new(source),
        })),
    }
}
