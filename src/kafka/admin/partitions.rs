//! Partitions: low/high watermarks (ListOffsets) and topic configs (DescribeConfigs).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeConfigsRequest, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{broker_error, Outcome};
use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::{KafkaError, Result};

/// ListOffsets timestamp asking for the log start offset.
const EARLIEST: i64 = -2;
/// ListOffsets timestamp asking for the high watermark.
const LATEST: i64 = -1;
/// DescribeConfigs resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

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
        let mut by_topic: BTreeMap<&Arc<str>, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let topics = by_topic
            .into_iter()
            .map(|(topic, parts)| {
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )
            })
            .collect();
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(topics);
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
        let resources = topics
            .iter()
            .map(|t| {
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(StrBytes::from_string(t.clone()))
                    .with_configuration_keys(keys.map(|k| {
                        k.iter()
                            .map(|k| StrBytes::from_string(k.to_string()))
                            .collect()
                    }))
            })
            .collect();
        let req = DescribeConfigsRequest::default()
            .with_resources(resources)
            .with_include_synonyms(false)
            .with_include_documentation(false);
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
