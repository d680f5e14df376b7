//! KIP-932 share groups: ShareGroupDescribe (state, members and their assignments) and
//! DescribeShareGroupOffsets (the share-partition start offset of every partition, the
//! record a share group's lag is measured from). One request per coordinator each; share
//! groups are never sent OffsetFetch or DescribeGroups.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, ShareGroupDescribeRequest};

use super::groups::{GroupDescription, GroupOffsets, MemberDescription};
use super::{broker_error, not_described, Outcome};
use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::Result;
use crate::kafka::{requests, wire};

impl Cluster {
    /// ShareGroupDescribe v1, one request per coordinator. `Ok(None)` for every group of a
    /// coordinator that does not speak v1 (Kafka 4.0 advertises only the early-access v0).
    pub async fn describe_share_groups(
        &self,
        groups: &[String],
    ) -> HashMap<String, Result<Option<GroupDescription>>> {
        self.per_coordinator(groups, |node, batch| async move {
            if !self.speaks::<ShareGroupDescribeRequest>(node).await? {
                return Ok(not_described(&batch));
            }
            let (r, _) = self
                .send_to(node, |_| requests::share_group_describe(&batch))
                .await?;
            Ok(r.groups
                .into_iter()
                .map(|g| {
                    let group_id = g.group_id.clone();
                    let code = g.error_code;
                    let message = g.error_message.clone();
                    let outcome = Outcome::from_code(
                        code,
                        || {
                            broker_error(
                                node,
                                ApiKey::ShareGroupDescribe,
                                code,
                                format!("group {group_id}"),
                                message,
                            )
                        },
                        || Ok(Some(describe_share_group(g))),
                    );
                    (group_id, outcome)
                })
                .collect())
        })
        .await
    }

    /// The share-partition start offsets of share groups, one DescribeShareGroupOffsets per
    /// coordinator, as [`GroupOffsets`] (-1: not initialised, no lag).
    pub async fn share_start_offsets(
        &self,
        groups: &[String],
    ) -> HashMap<String, Result<GroupOffsets>> {
        self.per_coordinator(groups, |node, batch| async move {
            let (r, _) = self
                .send_to(node, |_| requests::describe_share_group_offsets(&batch))
                .await?;
            Ok(r.groups
                .into_iter()
                .map(|g| (g.group_id.clone(), self.start_offsets(node, g)))
                .collect())
        })
        .await
    }

    fn start_offsets(
        &self,
        node: i32,
        g: wire::describe_share_group_offsets::ShareGroupOffsets,
    ) -> Outcome<GroupOffsets> {
        let group_id = g.group_id.clone();
        let message = g.error_message.clone();
        let meta = self.metadata();
        Outcome::from_code(
            g.error_code,
            || {
                broker_error(
                    node,
                    ApiKey::DescribeShareGroupOffsets,
                    g.error_code,
                    format!("group {group_id}"),
                    message,
                )
            },
            || {
                let mut out = GroupOffsets::default();
                for t in g.topics {
                    let topic = meta
                        .topic_name(&t.name)
                        .unwrap_or_else(|| t.name.as_str().into());
                    for p in t.partitions {
                        let tp = TopicPartition::new(topic.clone(), p.partition);
                        if p.error_code != 0 {
                            out.partition_errors.insert(tp, p.error_code);
                        } else {
                            out.offsets.insert(tp, p.start_offset);
                        }
                    }
                }
                Ok(out)
            },
        )
    }
}

/// A share group in the shape DescribeGroups gives. A share partition may be assigned to
/// several members: they are sorted by member id, so the first owner is the same every cycle.
fn describe_share_group(g: wire::share_group_describe::DescribedShareGroup) -> GroupDescription {
    let mut members: Vec<MemberDescription> = g
        .members
        .into_iter()
        .map(|m| MemberDescription {
            member_id: m.member_id,
            group_instance_id: None,
            client_id: m.client_id,
            client_host: m.client_host,
            assignment: m
                .assignment
                .into_iter()
                .flat_map(|t| {
                    let topic: Arc<str> = t.topic.into();
                    t.partitions
                        .into_iter()
                        .map(move |p| TopicPartition::new(topic.clone(), p))
                })
                .collect(),
            assignment_error: None,
        })
        .collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    GroupDescription {
        group_id: g.group_id,
        state: g.state,
        protocol_type: "share".to_string(),
        protocol: String::new(),
        members,
    }
}
