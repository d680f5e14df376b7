//! What one partition's fetched bytes answer, and how much to fetch next.

use kafka_protocol::messages::ApiKey;

use super::{PartitionWork, Target, TimestampResult, MAX_PARTITION_FETCH_BYTES};
use crate::kafka::admin::broker_error;
use crate::kafka::error::{is_routing_code, KafkaError, KafkaErrorKind, Result};
use crate::kafka::records::{self, AbortedTxn, Lookup};
use crate::kafka::wire::fetch::FetchPartition as FetchedPartition;

/// Error code OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// What one partition's part of a Fetch response settled.
#[derive(Debug)]
pub(super) enum Resolution {
    /// Answers for the targets these bytes covered, and the work left, if any.
    Answered {
        answers: Vec<(i64, Result<TimestampResult>)>,
        left: Option<PartitionWork>,
    },
    /// The broker refused the partition for good: every target gets the error.
    Failed(PartitionWork, KafkaError),
    /// The broker no longer leads it (a routing error): again after a metadata refresh.
    Moved(PartitionWork, KafkaError),
}

/// Resolve the targets of one partition from its fetched bytes (`starved`: the response
/// ran out of room before this partition's own cap).
pub(super) fn resolve(
    node: i32,
    mut w: PartitionWork,
    p: &FetchedPartition,
    starved: bool,
) -> Resolution {
    let fetch_offset = w.lowest();
    if !starved {
        w.attempts = w.attempts.saturating_add(1);
    }
    if p.error_code == OFFSET_OUT_OF_RANGE && p.log_start_offset > fetch_offset {
        // Deleted by retention: the first record still there answers for these targets.
        for t in &mut w.targets {
            t.from = t.from.max(p.log_start_offset);
        }
        return Resolution::Answered {
            answers: Vec::new(),
            left: Some(w),
        };
    }
    if p.error_code != 0 {
        let context = format!("fetch of {} at offset {fetch_offset}", w.tp);
        let e = broker_error(node, ApiKey::Fetch, p.error_code, context, None);
        return if is_routing_code(p.error_code) {
            Resolution::Moved(w, e)
        } else {
            Resolution::Failed(w, e)
        };
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
    for mut t in std::mem::take(&mut w.targets) {
        let mut step = lookup(node, &w, p, &aborted, &t, fetch_offset, starved);
        if let Step::Advance(next) = step {
            t.from = next;
            step = Step::NextRound(None);
        }
        match step {
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
    Resolution::Answered {
        answers: resolved,
        left: (!w.targets.is_empty()).then_some(w),
    }
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
        Step::Answer(_) | Step::Advance(_) => current,
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
    /// Nothing a consumer reads lies before this offset: fetch again from there.
    Advance(i64),
}

fn lookup(
    node: i32,
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
    match records::record_at(
        &p.records,
        t.from,
        aborted,
        MAX_PARTITION_FETCH_BYTES as usize,
    ) {
        Ok(Lookup::Found(rec)) => Step::Answer(Ok(TimestampResult::Found(rec))),
        Ok(Lookup::Untimed { offset }) => Step::Answer(Ok(TimestampResult::Untimed { offset })),
        Ok(Lookup::Missing {
            next_offset: Some(next),
            ..
        }) if next > t.from && next >= p.high_watermark => {
            // Everything from the target to the high watermark was skipped: markers only.
            Step::Answer(Ok(TimestampResult::MarkersOnly))
        }
        Ok(Lookup::Missing {
            next_offset: Some(next),
            truncated: false,
            ..
        }) if next > t.from => {
            // Markers only up to `next`, and the bytes end there: read on from `next`.
            Step::Advance(next)
        }
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
                    Step::Answer(Err(KafkaErrorKind::Unresolved(format!(
                        "record at offset {} of {}: not within the first {} KiB of its batch (the fetch cap)",
                        t.target,
                        w.tp,
                        MAX_PARTITION_FETCH_BYTES / 1024
                    )).into()))
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
        // A damaged batch is read once more in the next round (the damage may have been on
        // the way); after that the sample fails for this cycle and is never cached.
        Err(source) if source.is_corruption() && w.attempts < 2 => Step::NextRound(None),
        Err(source) => Step::Answer(Err(KafkaErrorKind::Records {
            broker: format!("node {node}"),
            topic: w.tp.topic.to_string(),
            partition: w.tp.partition,
            source: std::sync::Arc::new(source),
        }
        .into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kafka::admin::timestamps::Target;
    use crate::kafka::cluster::TopicPartition;

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

    struct Round {
        resolved: Vec<(i64, Result<TimestampResult>)>,
        left: Option<PartitionWork>,
    }

    fn round(resolution: Resolution) -> Round {
        match resolution {
            Resolution::Answered { answers, left } => Round {
                resolved: answers,
                left,
            },
            Resolution::Failed(_, e) | Resolution::Moved(_, e) => panic!("{e}"),
        }
    }

    #[test]
    fn nothing_below_the_high_watermark_is_the_end_of_the_log_only_when_seen_twice_unstarved() {
        // With room left: asked once more, then believed.
        let r = round(resolve(
            1,
            work(&[10], 1024),
            &empty_below_high_watermark(),
            false,
        ));
        assert!(r.resolved.is_empty());
        let left = r.left.expect("fetched again");
        assert_eq!((left.max_bytes, left.attempts), (1024, 1));
        let r = round(resolve(1, left, &empty_below_high_watermark(), false));
        assert_eq!(r.resolved.len(), 1);
        assert!(matches!(r.resolved[0].1, Ok(TimestampResult::EndOfLog)));
        assert!(r.left.is_none());
        // After partitions that used the response's bytes up: ask again, same size, and
        // the fetch does not count against the partition's attempts.
        let r = round(resolve(
            1,
            work(&[10], 1024),
            &empty_below_high_watermark(),
            true,
        ));
        assert!(r.resolved.is_empty());
        let left = r.left.expect("fetched again");
        assert_eq!((left.max_bytes, left.attempts), (1024, 0));
    }
}
