//! Consumer groups: listing, coordinators, descriptions, committed offsets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, OffsetFetchRequest};

use super::{broker_error, Outcome, Routed};
use crate::kafka::cluster::{Cluster, TopicPartition};
use crate::kafka::error::{is_routing_code, KafkaError, KafkaErrorKind, Result};
use crate::kafka::{requests, wire};
pub use crate::model::GroupType;

/// A group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Only brokers answering ListGroups v4+ report a state here.
    pub state: Option<String>,
    /// How the group is read: from ListGroups v5's `group_type`, else from the protocol type.
    pub group_type: GroupType,
}

/// A group as DescribeGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// One member of a group and the partitions assigned to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Decoded from the ConsumerProtocol assignment (empty for other protocol types).
    pub assignment: Vec<TopicPartition>,
    /// Why the assignment bytes could not be decoded, if they could not.
    pub assignment_error: Option<String>,
}

/// A group's committed offsets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupOffsets {
    /// Committed offset per partition, as the coordinator returned it (-1 = no commit).
    pub offsets: BTreeMap<TopicPartition, i64>,
    /// Partitions the coordinator answered with an error code.
    pub partition_errors: BTreeMap<TopicPartition, i16>,
}

/// What ListGroups found on the brokers of the current metadata.
#[derive(Debug, Default)]
pub struct GroupList {
    /// Every group listed, by id, with the broker that listed it (its coordinator).
    pub groups: Vec<(GroupListing, i32)>,
    /// Brokers that could not answer, with why: their groups are not in `groups`.
    pub failed: BTreeMap<i32, KafkaError>,
}

impl Cluster {
    /// Every group on every broker (one ListGroups per broker, concurrently).
    ///
    /// Fails when any broker fails: a partial list would make groups vanish. The collector
    /// uses [`Cluster::list_groups_partial`], which says which brokers failed.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let list = self.list_groups_partial().await;
        if let Some((_, e)) = list.failed.into_iter().next() {
            return Err(e);
        }
        Ok(list.groups.into_iter().map(|(g, _)| g).collect())
    }

    /// Every group on the brokers that answer; the ones that do not are reported, each with
    /// its error, so the caller can tell "not listed" from "not asked".
    pub async fn list_groups_partial(&self) -> GroupList {
        let nodes: Vec<i32> = self.metadata().brokers.keys().copied().collect();
        let calls = nodes.into_iter().map(|node| async move {
            let result = self
                .with_retries(|| async {
                    let (r, _) = self.send_to(node, |_| requests::list_groups()).await?;
                    if r.error_code == 0 {
                        Ok(r.groups)
                    } else {
                        Err(broker_error(
                            node,
                            ApiKey::ListGroups,
                            r.error_code,
                            "listing groups",
                            None,
                        ))
                    }
                })
                .await;
            (node, result)
        });
        let mut seen: HashMap<String, (GroupListing, i32)> = HashMap::new();
        let mut failed = BTreeMap::new();
        for (node, result) in futures_util::future::join_all(calls).await {
            match result {
                Ok(groups) => {
                    for g in groups {
                        seen.entry(g.group_id.clone()).or_insert((
                            GroupListing {
                                group_type: GroupType::from_listing(
                                    g.group_type.as_deref(),
                                    &g.protocol_type,
                                ),
                                group_id: g.group_id,
                                protocol_type: g.protocol_type,
                                state: g.state,
                            },
                            node,
                        ));
                    }
                }
                Err(e) => {
                    failed.insert(node, e);
                }
            }
        }
        let mut groups: Vec<(GroupListing, i32)> = seen.into_values().collect();
        groups.sort_by(|a, b| a.0.group_id.cmp(&b.0.group_id));
        GroupList { groups, failed }
    }

    /// Forget a cached coordinator (after NOT_COORDINATOR and friends).
    pub fn forget_coordinator(&self, group: &str) {
        self.coordinators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group);
    }

    /// The coordinator node of each group. Cached; uncached groups are looked up with one
    /// batched FindCoordinator (v4+) or, on older brokers, one request per group.
    pub async fn find_coordinators(&self, groups: &[String]) -> HashMap<String, Result<i32>> {
        let mut results = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.coordinators.lock().unwrap_or_else(|p| p.into_inner());
            for g in groups {
                match cache.get(g) {
                    Some(node) => {
                        results.insert(g.clone(), Ok(*node));
                    }
                    None => missing.push(g.clone()),
                }
            }
        }
        if !missing.is_empty() {
            // Any broker answers FindCoordinator: all of them go to the next one in turn.
            let route = |pending: Vec<String>| async move {
                let mut routed = Routed::default();
                match self.any_node().await {
                    Ok(node) => {
                        routed.by_node.insert(node, pending);
                    }
                    Err(e) => routed.retry = pending.into_iter().map(|g| (g, e.clone())).collect(),
                }
                routed
            };
            let nothing = |_: Vec<String>| std::future::ready(());
            let found = self
                .per_broker(
                    missing,
                    |g: &String| g,
                    route,
                    nothing,
                    |node, batch| self.lookup_coordinators(node, batch),
                )
                .await;
            let mut cache = self.coordinators.lock().unwrap_or_else(|p| p.into_inner());
            for (group, result) in found {
                if let Ok(node) = &result {
                    cache.insert(group.clone(), *node);
                }
                results.insert(group, result);
            }
        }
        // A coordinator we have never heard of needs fresh metadata before it can be dialled.
        let meta = self.metadata();
        if results
            .values()
            .any(|r| matches!(r, Ok(n) if !meta.brokers.contains_key(n)))
        {
            if let Err(e) = self.refresh_metadata().await {
                tracing::warn!(error = %e, "metadata refresh for new coordinators failed");
            }
        }
        results
    }

    /// Ask `node` for the coordinators of `groups`: one batched request (v4+), or one per
    /// group on older brokers.
    async fn lookup_coordinators(
        &self,
        node: i32,
        groups: Arc<[String]>,
    ) -> Result<Vec<(String, Outcome<i32>)>> {
        let version = self.version_for::<FindCoordinatorRequest>(node).await?;
        let classify = |key: &str, c: wire::find_coordinator::Coordinator| {
            Outcome::from_code(
                c.error_code,
                || {
                    broker_error(
                        node,
                        ApiKey::FindCoordinator,
                        c.error_code,
                        format!("group {key}"),
                        c.error_message.clone(),
                    )
                },
                || Ok(c.node_id),
            )
        };
        if version >= 4 {
            let req = requests::find_coordinators(&groups);
            let (r, _) = self.send_to(node, |_| req).await?;
            let mut by_key: HashMap<String, wire::find_coordinator::Coordinator> = r
                .coordinators
                .into_iter()
                .map(|c| (c.key.clone(), c))
                .collect();
            Ok(groups
                .iter()
                .cloned()
                .filter_map(|g| {
                    let c = by_key.remove(&g)?;
                    let outcome = classify(&g, c);
                    Some((g, outcome))
                })
                .collect())
        } else {
            let calls = groups.iter().cloned().map(|g| async move {
                let req = requests::find_coordinator(&g);
                let outcome = match self.send_to(node, |_| req).await {
                    Ok((mut r, _)) if !r.coordinators.is_empty() => {
                        classify(&g, r.coordinators.swap_remove(0))
                    }
                    Ok(_) => Outcome::Done(Err(KafkaErrorKind::UnknownInMetadata(format!(
                        "coordinator for group {g} in the FindCoordinator response"
                    ))
                    .into())),
                    Err(e) if e.is_transport() => Outcome::Retry(e),
                    Err(e) => Outcome::Done(Err(e)),
                };
                (g, outcome)
            });
            Ok(futures_util::future::join_all(calls).await)
        }
    }

    /// Describe groups: one DescribeGroups per coordinator with all of its groups.
    pub async fn describe_groups(
        &self,
        groups: &[String],
    ) -> HashMap<String, Result<GroupDescription>> {
        self.per_coordinator(groups, |node, batch| async move {
            let (r, _) = self
                .send_to(node, |_| requests::describe_groups(&batch))
                .await?;
            Ok(r.groups
                .into_iter()
                .map(|g| {
                    let group_id = g.group_id.clone();
                    let code = g.error_code;
                    let outcome = Outcome::from_code(
                        code,
                        || {
                            broker_error(
                                node,
                                ApiKey::DescribeGroups,
                                code,
                                format!("group {group_id}"),
                                None,
                            )
                        },
                        || Ok(describe(g)),
                    );
                    (group_id, outcome)
                })
                .collect())
        })
        .await
    }

    /// Committed offsets of many groups: one OffsetFetch per coordinator (v8+), or one per
    /// group on older brokers.
    pub async fn committed_offsets(
        &self,
        groups: &[String],
    ) -> HashMap<String, Result<GroupOffsets>> {
        self.per_coordinator(groups, |node, batch| async move {
            let version = self.version_for::<OffsetFetchRequest>(node).await?;
            if version >= 8 {
                let req = requests::offset_fetch_groups(&batch);
                let (r, _) = self.send_to(node, |_| req).await?;
                Ok(r.groups
                    .into_iter()
                    .map(|g| (g.group_id.clone(), self.group_offsets(node, g)))
                    .collect())
            } else {
                let calls = batch.iter().cloned().map(|g| async move {
                    let req = requests::offset_fetch_group(&g);
                    match self.send_to(node, |_| req).await {
                        Ok((mut r, _)) if !r.groups.is_empty() => {
                            let mut only = r.groups.swap_remove(0);
                            only.group_id = g.clone();
                            (g, self.group_offsets(node, only))
                        }
                        Ok(_) => {
                            let e = KafkaErrorKind::UnknownInMetadata(format!(
                                "group {g} in the OffsetFetch response"
                            ))
                            .into();
                            (g, Outcome::Done(Err(e)))
                        }
                        Err(e) => (g, Outcome::Retry(e)),
                    }
                });
                Ok(futures_util::future::join_all(calls).await)
            }
        })
        .await
    }

    fn group_offsets(
        &self,
        node: i32,
        g: wire::offset_fetch::OffsetFetchGroup,
    ) -> Outcome<GroupOffsets> {
        let group_id = g.group_id.clone();
        let meta = self.metadata();
        Outcome::from_code(
            g.error_code,
            || {
                broker_error(
                    node,
                    ApiKey::OffsetFetch,
                    g.error_code,
                    format!("group {group_id}"),
                    None,
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
                            if is_routing_code(p.error_code) {
                                tracing::debug!(group = %group_id, partition = %tp, code = p.error_code, "partition-level OffsetFetch error");
                            }
                            out.partition_errors.insert(tp, p.error_code);
                        } else {
                            out.offsets.insert(tp, p.committed_offset);
                        }
                    }
                }
                Ok(out)
            },
        )
    }
}

fn describe(g: wire::describe_groups::DescribedGroup) -> GroupDescription {
    let consumer = g.protocol_type == "consumer" || g.protocol_type.is_empty();
    let members = g
        .members
        .into_iter()
        .map(|m| {
            let (assignment, assignment_error) = if consumer && !m.assignment.is_empty() {
                match wire::assignment::ConsumerAssignment::decode(m.assignment.clone()) {
                    Ok(a) => (
                        a.topics
                            .into_iter()
                            .flat_map(|t| {
                                let topic: std::sync::Arc<str> = t.topic.into();
                                t.partitions
                                    .into_iter()
                                    .map(move |p| TopicPartition::new(topic.clone(), p))
                            })
                            .collect(),
                        None,
                    ),
                    Err(e) => {
                        tracing::warn!(group = %g.group_id, member = %m.member_id, error = %e, "undecodable assignment");
                        (Vec::new(), Some(e.to_string()))
                    }
                }
            } else {
                (Vec::new(), None)
            };
            MemberDescription {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                assignment,
                assignment_error,
            }
        })
        .collect();
    GroupDescription {
        group_id: g.group_id,
        state: g.state,
        protocol_type: g.protocol_type,
        protocol: g.protocol,
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::GroupType;

    #[test]
    fn group_type_from_v5_field_or_protocol_type() {
        let cases = [
            (Some("classic"), "consumer", GroupType::Classic),
            (Some("consumer"), "consumer", GroupType::Consumer),
            (Some("Share"), "share", GroupType::Share),
            (Some("streams"), "streams", GroupType::Streams),
            (Some("future"), "x", GroupType::Other("future".into())),
            (None, "consumer", GroupType::Classic),
            (Some(""), "share", GroupType::Share),
            (None, "", GroupType::Classic),
            (None, "connect", GroupType::Classic),
            (None, "share", GroupType::Share),
            (None, "streams", GroupType::Streams),
        ];
        for (field, protocol, want) in cases {
            assert_eq!(
                GroupType::from_listing(field, protocol),
                want,
                "{field:?} {protocol}"
            );
        }
        assert_eq!(GroupType::Other("future".into()).as_str(), "future");
        assert_eq!(GroupType::Consumer.to_string(), "consumer");
    }
}
