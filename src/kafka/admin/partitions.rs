//! Partitions: low/high watermarks (ListOffsets) and topic configs (DescribeConfigs).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

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
        self.watermarks_of(partitions.to_vec()).await
    }

    /// [`Cluster::watermarks`] of a list the caller no longer needs (no copy of it is held
    /// while the answers arrive).
    pub async fn watermarks_of(
        &self,
        partitions: Vec<TopicPartition>,
    ) -> HashMap<TopicPartition, Result<Watermarks>> {
        self.per_leader(
            partitions,
            |tp| tp,
            |node, batch| async move {
                let (low, high) = futures_util::future::join(
                    self.list_offsets(node, &batch, EARLIEST),
                    self.list_offsets(node, &batch, LATEST),
                )
                .await;
                let (mut low, mut high) = (low?, high?);
                // Answers are (partition, error code, offset), kept small and paired by
                // sorting both lists: at tens of thousands of partitions per leader an
                // error per entry, or a map of them, would triple them.
                low.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                high.sort_unstable_by(|a, b| a.0.cmp(&b.0));
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
                let mut lows = low.into_iter().peekable();
                Ok(high
                    .into_iter()
                    .map(|(tp, high_code, high)| {
                        while lows.next_if(|l| l.0 < tp).is_some() {}
                        let outcome = match lows.next_if(|l| l.0 == tp) {
                            None => Outcome::Done(Err(KafkaErrorKind::UnknownInMetadata(format!(
                                "earliest offset of {tp} in the ListOffsets response"
                            ))
                            .into())),
                            Some((_, 0, low)) if high_code == 0 => {
                                Outcome::Done(Ok(Watermarks { low, high }))
                            }
                            Some((_, low_code, _)) if low_code != 0 => {
                                error(low_code, "earliest", &tp)
                            }
                            Some(_) => error(high_code, "latest", &tp),
                        };
                        (tp, outcome)
                    })
                    .collect())
            },
        )
        .await
    }

    /// One ListOffsets to `node`: (partition, error code, offset) per partition answered.
    async fn list_offsets(
        &self,
        node: i32,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<Vec<(TopicPartition, i16, i64)>> {
        let req = requests::list_offsets(partitions, timestamp);
        let (r, _) = self.send_to(node, |_| req).await?;
        let mut out = Vec::with_capacity(partitions.len());
        // Topic names shared with the request's partitions where they match.
        let names: HashMap<&str, &Arc<str>> = partitions
            .iter()
            .map(|tp| (&*tp.topic, &tp.topic))
            .collect();
        for t in r.topics {
            let topic: Arc<str> = match names.get(t.name.as_str()) {
                Some(name) => Arc::clone(name),
                None => Arc::from(t.name),
            };
            for p in t.partitions {
                let tp = TopicPartition::new(topic.clone(), p.partition);
                out.push((tp, p.error_code, p.offset));
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
