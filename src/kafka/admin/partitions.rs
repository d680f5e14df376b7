//! Partitions: low/high watermarks (ListOffsets) and topic configs (DescribeConfigs).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::ApiKey;

use super::{broker_error, Outcome};
use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::{KafkaError, Result};
use crate::kafka::requests::{self, EARLIEST, LATEST};

/// The first offset still in the log and the high watermark of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    pub low: i64,
    pub high: i64,
}

impl Cluster {
    /// Low and high watermarks: one ListOffsets per leader for each end, sent concurrently.
    pub async fn watermarks(
        &self,
        partitions: &[TopicPartition],
    ) -> HashMap<TopicPartition, Result<Watermarks>> {
        self.per_leader(
            partitions.to_vec(),
            |tp| tp,
            |node, batch| async move {
                let (low, high) = futures_util::future::join(
                    self.list_offsets(node, &batch, EARLIEST),
                    self.list_offsets(node, &batch, LATEST),
                )
                .await;
                let (mut low, high) = (low?, high?);
                Ok(high
                    .into_iter()
                    .map(|(tp, high)| {
                        let outcome = match (low.remove(&tp), high) {
                            (Some(Outcome::Done(Ok(low))), Outcome::Done(Ok(high))) => {
                                Outcome::Done(Ok(Watermarks { low, high }))
                            }
                            (Some(Outcome::Retry(e)), _) | (_, Outcome::Retry(e)) => {
                                Outcome::Retry(e)
                            }
                            (Some(Outcome::Done(Err(e))), _) | (_, Outcome::Done(Err(e))) => {
                                Outcome::Done(Err(e))
                            }
                            (None, _) => Outcome::Done(Err(KafkaError::UnknownInMetadata(
                                format!("earliest offset of {tp} in the ListOffsets response"),
                            ))),
                        };
                        (tp, outcome)
                    })
                    .collect())
            },
        )
        .await
    }

    async fn list_offsets(
        &self,
        node: i32,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<HashMap<TopicPartition, Outcome<i64>>> {
        let req = requests::list_offsets(partitions, timestamp);
        let (r, _) = self.send_to(node, |_| req).await?;
        let which = if timestamp == EARLIEST {
            "earliest"
        } else {
            "latest"
        };
        let mut out = HashMap::new();
        for t in r.topics {
            let topic: Arc<str> = Arc::from(t.name);
            for p in t.partitions {
                let tp = TopicPartition::new(topic.clone(), p.partition);
                let outcome = Outcome::from_code(
                    p.error_code,
                    || {
                        broker_error(
                            node,
                            ApiKey::ListOffsets,
                            p.error_code,
                            format!("{which} offset of {tp}"),
                            None,
                        )
                    },
                    || Ok(p.offset),
                );
                out.insert(tp, outcome);
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
