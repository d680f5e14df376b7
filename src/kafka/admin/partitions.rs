//! Partitions: low/high watermarks (ListOffsets) and topic configs (DescribeConfigs).

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::ApiKey;

use super::{broker_error, Outcome};
use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::{KafkaErrorKind, Result};
use crate::kafka::requests::{self, EARLIEST, LATEST};
pub use crate::model::Watermarks;

impl Cluster {
    /// Low and high watermarks: one ListOffsets per leader for each end, sent concurrently.
    pub async fn watermarks(
        &self,
        partitions: &[TopicPartition],
    ) -> HashMap<TopicPartition, Result<Watermarks>> {
        self.watermarks_of(partitions.to_vec())
            .await
            .into_iter()
            .collect()
    }

    /// [`Cluster::watermarks`] of a list the caller no longer needs (no copy of it is held
    /// while the answers arrive), as a list sorted by partition: at tens of thousands of
    /// partitions a map of the answers was the largest allocation of the round.
    pub async fn watermarks_of(
        &self,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, Result<Watermarks>)> {
        let mut answers = self
            .per_leader(
                partitions,
                |tp| tp,
                |node, batch| async move {
                    let (low, high) = futures_util::future::join(
                        self.list_offsets(node, &batch, EARLIEST),
                        self.list_offsets(node, &batch, LATEST),
                    )
                    .await;
                    let (low, high) = (low?, high?);
                    let error = |code: i16, which: &str, tp: &TopicPartition| {
                        let e = broker_error(
                            node,
                            ApiKey::ListOffsets,
                            code,
                            format!("{which} offset of {tp}"),
                            None,
                        );
                        Outcome::failed(code, e)
                    };
                    // A partition the latest offsets do not answer has no outcome (the routing
                    // loop reports it unanswered).
                    Ok(batch
                        .iter()
                        .cloned()
                        .zip(low)
                        .zip(high)
                        .filter(|(_, high)| high.answered)
                        .map(|((tp, low), high)| {
                            let outcome = if !low.answered {
                                Outcome::Done(Err(KafkaErrorKind::UnknownInMetadata(format!(
                                    "earliest offset of {tp} in the ListOffsets response"
                                ))
                                .into()))
                            } else if low.code == 0 && high.code == 0 {
                                Outcome::Done(Ok(Watermarks {
                                    low: low.offset,
                                    high: high.offset,
                                }))
                            } else if low.code != 0 {
                                error(low.code, "earliest", &tp)
                            } else {
                                error(high.code, "latest", &tp)
                            };
                            (tp, outcome)
                        })
                        .collect())
                },
            )
            .await;
        answers.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        answers
    }

    /// One ListOffsets to `node`: the answer for each partition of `partitions`, at its
    /// position. 16 bytes an answer: at tens of thousands of partitions per leader, both
    /// ends in flight to every broker at once were the cycle's largest moment as
    /// (partition, error code, offset) lists.
    async fn list_offsets(
        &self,
        node: i32,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<Vec<OffsetAnswer>> {
        let req = requests::list_offsets(partitions, timestamp);
        let (r, _) = self.send_to(node, |_| req).await?;
        let mut out = vec![OffsetAnswer::default(); partitions.len()];
        let positions = Positions::new(partitions);
        for t in r.topics {
            for p in t.partitions {
                let Some(slot) = positions
                    .find(t.name.as_str(), p.partition)
                    .and_then(|i| out.get_mut(i))
                else {
                    // Not asked for: ignored.
                    continue;
                };
                *slot = OffsetAnswer {
                    answered: true,
                    code: p.error_code,
                    offset: p.offset,
                };
            }
        }
        Ok(out)
    }

    /// Topic configs (all keys, or only `keys`): one DescribeConfigs for all topics.
    pub async fn topic_configs(
        &self,
        topics: &[String],
        keys: Option<&[&str]>,
    ) -> Result<HashMap<String, Result<BTreeMap<String, String>>>> {
        let node = self.any_node().await?;
        let req = requests::describe_topic_configs(topics, keys);
        let (r, _) = self.send_to(node, |_| req).await?;
        let mut out = HashMap::new();
        for res in r.results {
            let value = if res.error_code == 0 {
                Ok(res
                    .configs
                    .into_iter()
                    .filter_map(|c| Some((c.name, c.value?)))
                    .collect())
            } else {
                Err(broker_error(
                    node,
                    ApiKey::DescribeConfigs,
                    res.error_code,
                    format!("configs of topic {}", res.resource_name),
                    res.error_message,
                ))
            };
            out.insert(res.resource_name, value);
        }
        Ok(out)
    }
}

/// One partition's answer in a ListOffsets response.
#[derive(Clone, Copy, Debug, Default)]
struct OffsetAnswer {
    answered: bool,
    code: i16,
    offset: i64,
}

/// Where each partition of a request's list is, to place the answers: the list is usually
/// sorted already (it comes from the metadata, sorted); otherwise an order is kept aside.
struct Positions<'a> {
    partitions: &'a [TopicPartition],
    /// Positions in sorted order, when `partitions` is not sorted.
    order: Option<Vec<usize>>,
}

impl<'a> Positions<'a> {
    fn new(partitions: &'a [TopicPartition]) -> Self {
        let order = (!partitions.is_sorted()).then(|| {
            let mut order: Vec<usize> = (0..partitions.len()).collect();
            order.sort_by(|a, b| partitions.get(*a).cmp(&partitions.get(*b)));
            order
        });
        Positions { partitions, order }
    }

    /// The position of `topic`/`partition` in the list.
    fn find(&self, topic: &str, partition: i32) -> Option<usize> {
        let key = |tp: &TopicPartition| (&*tp.topic, tp.partition).cmp(&(topic, partition));
        match &self.order {
            None => self.partitions.binary_search_by(key).ok(),
            Some(order) => {
                let i = order
                    .binary_search_by(|i| {
                        self.partitions
                            .get(*i)
                            .map_or(std::cmp::Ordering::Less, key)
                    })
                    .ok()?;
                order.get(i).copied()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_find_their_partition_sorted_or_not() {
        let tp = |t: &str, p: i32| TopicPartition::new(t, p);
        for list in [
            vec![tp("a", 0), tp("a", 1), tp("b", 0)],
            vec![tp("b", 0), tp("a", 1), tp("a", 0)],
        ] {
            let positions = Positions::new(&list);
            for (i, want) in list.iter().enumerate() {
                assert_eq!(positions.find(&want.topic, want.partition), Some(i));
            }
            assert_eq!(positions.find("a", 2), None);
            assert_eq!(positions.find("c", 0), None);
        }
    }
}
