//! Descriptions of groups by type: KIP-848 consumer groups with ConsumerGroupDescribe
//! (API 69), every other described group with DescribeGroups; each one request per
//! coordinator, through the same routing as every batched request.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, ConsumerGroupDescribeRequest};

use super::groups::{GroupDescription, GroupType, MemberDescription};
use super::{broker_error, not_described, Outcome};
use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::Result;
use crate::kafka::{requests, wire};

/// ConsumerGroupDescribe's answer for a group that exists but is not a KIP-848 consumer
/// group (a classic group, or one converted back since it was listed).
const GROUP_ID_NOT_FOUND: i16 = 69;

impl Cluster {
    /// Describe `groups` by type: KIP-848 consumer groups with ConsumerGroupDescribe, and
    /// DescribeGroups for classic groups, for groups of types newer than tidemark, and for
    /// consumer groups ConsumerGroupDescribe could not describe (a broker without API 69, or
    /// GROUP_ID_NOT_FOUND: the group turned classic). Share groups with ShareGroupDescribe
    /// (state Unknown and no members from a coordinator that does not speak v1). Streams
    /// groups are not described (kafka-protocol 0.18 has no StreamsGroupDescribe).
    ///
    /// ConsumerGroupDescribe goes first so the fallbacks join the one DescribeGroups per
    /// coordinator: at most one request per coordinator and API.
    pub async fn describe_typed_groups(
        &self,
        groups: &[(String, GroupType)],
    ) -> HashMap<String, Result<GroupDescription>> {
        let mut classic = Vec::new();
        let mut consumer = Vec::new();
        let mut share = Vec::new();
        for (g, t) in groups {
            match t {
                GroupType::Consumer => consumer.push(g.clone()),
                GroupType::Share => share.push(g.clone()),
                GroupType::Streams => {}
                GroupType::Classic | GroupType::Other(_) => classic.push(g.clone()),
            }
        }
        let mut results = HashMap::with_capacity(groups.len());
        let (consumers, shares) = tokio::join!(
            async {
                if consumer.is_empty() {
                    HashMap::new()
                } else {
                    self.describe_consumer_groups(&consumer).await
                }
            },
            async {
                if share.is_empty() {
                    HashMap::new()
                } else {
                    self.describe_share_groups(&share).await
                }
            }
        );
        for (group, r) in shares {
            let d = r.map(|d| {
                d.unwrap_or_else(|| GroupDescription {
                    group_id: group.clone(),
                    state: String::new(),
                    protocol_type: "share".to_string(),
                    protocol: String::new(),
                    members: Vec::new(),
                })
            });
            results.insert(group, d);
        }
        for (group, r) in consumers {
            match r {
                Ok(Some(d)) => {
                    results.insert(group, Ok(d));
                }
                Ok(None) => classic.push(group),
                Err(e) => {
                    results.insert(group, Err(e));
                }
            }
        }
        if !classic.is_empty() {
            results.extend(self.describe_groups(&classic).await);
        }
        results
    }

    /// ConsumerGroupDescribe, one request per coordinator. `Ok(None)` for a group it cannot
    /// describe (the coordinator lacks API 69, or answers GROUP_ID_NOT_FOUND): DescribeGroups
    /// can.
    pub async fn describe_consumer_groups(
        &self,
        groups: &[String],
    ) -> HashMap<String, Result<Option<GroupDescription>>> {
        self.per_coordinator(groups, |node, batch| async move {
            if !self.speaks::<ConsumerGroupDescribeRequest>(node).await? {
                return Ok(not_described(&batch));
            }
            let (r, _) = self
                .send_to(node, |_| requests::consumer_group_describe(&batch))
                .await?;
            Ok(r.groups
                .into_iter()
                .map(|g| {
                    let group_id = g.group_id.clone();
                    let code = g.error_code;
                    let outcome = if code == GROUP_ID_NOT_FOUND {
                        Outcome::Done(Ok(None))
                    } else {
                        let message = g.error_message.clone();
                        Outcome::from_code(
                            code,
                            || {
                                broker_error(
                                    node,
                                    ApiKey::ConsumerGroupDescribe,
                                    code,
                                    format!("group {group_id}"),
                                    message,
                                )
                            },
                            || Ok(Some(describe_consumer_group(g))),
                        )
                    };
                    (group_id, outcome)
                })
                .collect())
        })
        .await
    }
}

/// A KIP-848 description in the shape DescribeGroups gives: the assignor as the protocol,
/// each member's current assignment by topic name.
fn describe_consumer_group(
    g: wire::consumer_group_describe::DescribedConsumerGroup,
) -> GroupDescription {
    let members = g
        .members
        .into_iter()
        .map(|m| MemberDescription {
            member_id: m.member_id,
            group_instance_id: m.instance_id,
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
    GroupDescription {
        group_id: g.group_id,
        state: g.state,
        protocol_type: "consumer".to_string(),
        protocol: g.assignor_name,
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::wire::assignment::AssignedTopic;
    use crate::kafka::wire::consumer_group_describe::{
        ConsumerGroupMember, DescribedConsumerGroup,
    };

    #[test]
    fn a_kip848_description_maps_to_members_and_partitions() {
        let g = DescribedConsumerGroup {
            group_id: "g".into(),
            state: "Reconciling".into(),
            assignor_name: "uniform".into(),
            members: vec![ConsumerGroupMember {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                member_epoch: 4,
                client_id: "c1".into(),
                client_host: "/10.0.0.1".into(),
                assignment: vec![AssignedTopic {
                    topic: "t".into(),
                    partitions: vec![0, 2],
                }],
                member_type: Some(1),
            }],
            ..DescribedConsumerGroup::default()
        };
        let d = describe_consumer_group(g);
        assert_eq!(d.state, "Reconciling");
        assert_eq!(d.protocol, "uniform");
        assert_eq!(d.members.len(), 1);
        let m = &d.members[0];
        assert_eq!(
            (m.client_id.as_str(), m.client_host.as_str()),
            ("c1", "/10.0.0.1")
        );
        assert_eq!(
            m.assignment,
            vec![TopicPartition::new("t", 0), TopicPartition::new("t", 2)]
        );
    }
}
