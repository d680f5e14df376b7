//! The groups of a cycle's snapshot, built from the OffsetFetch (and, for share groups,
//! DescribeShareGroupOffsets) answers, then given their states and member labels from the
//! descriptions of each group type (which may arrive later: see `cycle`).

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::ApiKey;

use crate::kafka::{
    Cluster, GroupDescription, GroupListing, GroupOffsets, GroupType, Result, TopicPartition,
};
use crate::lag::{GroupPartition, GroupSnapshot, GroupState, Member, Sample};

use super::carry::EarlierRows;
use super::issues::CycleIssues;

/// What a group's DescribeGroups answer keeps: its state and who owns which partition.
pub(super) type Described = (GroupState, Owners);

/// Which member owns each partition of a group. Compact, as the descriptions of every
/// group are held at the cycle's largest moment: 8 bytes a partition (a list of
/// `(TopicPartition, Arc<Member>)` took 32).
#[derive(Debug, Default)]
pub(super) struct Owners {
    members: Vec<Arc<Member>>,
    /// Topics sorted by name, each with where its partitions start in `partitions`.
    topics: Vec<(Arc<str>, u32)>,
    /// (partition, index into `members`), sorted by partition within each topic's range.
    partitions: Vec<(i32, u32)>,
}

impl Owners {
    /// From (partition, owner) pairs; a partition named twice keeps its first owner.
    pub(super) fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a TopicPartition, &'a Arc<Member>)>,
    ) -> Owners {
        let mut owners = Owners::default();
        let mut list: Vec<(&TopicPartition, u32)> = Vec::new();
        for (tp, member) in pairs {
            let index = match owners.members.last() {
                Some(last) if Arc::ptr_eq(last, member) => owners.members.len() - 1,
                _ => {
                    owners.members.push(member.clone());
                    owners.members.len() - 1
                }
            };
            list.push((tp, u32::try_from(index).unwrap_or(u32::MAX)));
        }
        // A share partition may have several owners: the first is kept, which the stable
        // sort leaves first.
        list.sort_by(|a, b| a.0.cmp(b.0));
        list.dedup_by(|later, first| later.0 == first.0);
        owners.partitions.reserve_exact(list.len());
        for (tp, member) in list {
            if owners.topics.last().is_none_or(|(t, _)| *t != tp.topic) {
                let start = u32::try_from(owners.partitions.len()).unwrap_or(u32::MAX);
                owners.topics.push((tp.topic.clone(), start));
            }
            owners.partitions.push((tp.partition, member));
        }
        owners.topics.shrink_to_fit();
        owners.members.shrink_to_fit();
        owners
    }

    /// The member that owns `tp`.
    pub(super) fn owner(&self, tp: &TopicPartition) -> Option<&Arc<Member>> {
        let t = self
            .topics
            .binary_search_by(|(topic, _)| (**topic).cmp(&*tp.topic))
            .ok()?;
        let start = self.topics.get(t)?.1 as usize;
        let end = self
            .topics
            .get(t + 1)
            .map_or(self.partitions.len(), |(_, s)| *s as usize);
        let range = self.partitions.get(start..end)?;
        let i = range
            .binary_search_by_key(&tp.partition, |(p, _)| *p)
            .ok()?;
        self.members.get(range.get(i)?.1 as usize)
    }
}

/// The state and partition owners of a description.
pub(super) fn described(d: &GroupDescription) -> Described {
    (GroupState::parse(&d.state), owners(d))
}

/// The state and partition owners of every group that has them: described by type
/// (ConsumerGroupDescribe for KIP-848 groups, DescribeGroups for classic ones); streams
/// groups have their listed state and no members (kafka-protocol 0.18 has no
/// StreamsGroupDescribe). A group left out is undescribed (see [`apply_descriptions`]).
pub(super) async fn describe(
    cluster: &Cluster,
    listed: &[GroupListing],
) -> HashMap<String, Result<Described>> {
    let typed: Vec<(String, GroupType)> = listed
        .iter()
        .map(|g| (g.group_id.clone(), g.group_type.clone()))
        .collect();
    let mut out: HashMap<String, Result<Described>> = cluster
        .describe_typed_groups(&typed)
        .await
        .into_iter()
        .map(|(group, d)| (group, d.map(|d| described(&d))))
        .collect();
    for g in listed {
        if g.group_type == GroupType::Streams {
            let state = g
                .state
                .as_deref()
                .map_or(GroupState::Unknown, GroupState::parse);
            out.insert(g.group_id.clone(), Ok((state, Owners::default())));
        }
    }
    out
}

/// The offsets every group's lag is measured from: committed offsets (OffsetFetch), and
/// for share groups, which commit nothing, the share-partition start offsets
/// (DescribeShareGroupOffsets), read alongside.
pub(super) async fn read_offsets(
    cluster: &Cluster,
    groups: &[GroupListing],
) -> HashMap<String, Result<GroupOffsets>> {
    let (share, others): (Vec<&GroupListing>, Vec<&GroupListing>) = groups
        .iter()
        .partition(|g| g.group_type == GroupType::Share);
    let names: Vec<String> = others.iter().map(|g| g.group_id.clone()).collect();
    let share: Vec<String> = share.iter().map(|g| g.group_id.clone()).collect();
    let (mut offsets, starts) = tokio::join!(cluster.committed_offsets(&names), async {
        if share.is_empty() {
            HashMap::new()
        } else {
            cluster.share_start_offsets(&share).await
        }
    });
    offsets.extend(starts);
    offsets
}

/// The groups of the snapshot from their committed offsets, in the order of `groups`
/// (state unknown and no member labels until [`apply_descriptions`]), each group's answer
/// dropped as it is used.
pub(super) fn assemble(
    cluster: &str,
    groups: &[GroupListing],
    mut offsets: HashMap<String, Result<GroupOffsets>>,
    issues: &mut CycleIssues,
) -> Vec<GroupSnapshot> {
    let mut snapshot_groups = Vec::with_capacity(groups.len());
    for listing in groups {
        let group = &listing.group_id;
        let committed = match offsets.remove(group) {
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => {
                issues.groups_without_offsets += 1;
                // An authorization failure is logged once per group, with its fix, at the
                // end of the cycle (`denied`).
                if !issues.denied.note(&e, group) {
                    tracing::warn!(cluster, %group, error = %e, "no committed offsets; the group keeps its last values");
                }
                issues.note(|| format!("group {group}: committed offsets: {e}"));
                None
            }
            None => {
                issues.groups_without_offsets += 1;
                None
            }
        };
        if let Some(c) = &committed {
            for (tp, code) in &c.partition_errors {
                issues.committed_partitions_failed += 1;
                if !issues
                    .denied
                    .note_code(ApiKey::OffsetFetch, *code, &tp.topic)
                {
                    tracing::warn!(cluster, %group, partition = %tp, code, "committed offset answered with an error");
                }
                issues.note(|| {
                    format!(
                        "group {group}, partition {tp}: committed offset: {}",
                        crate::kafka::error::error_name(*code)
                    )
                });
            }
        }
        // Sized exactly: grown by pushes, the rows of 100,000 group partitions took a
        // quarter more memory than they need at the cycle's largest moment.
        let mut partitions = Vec::with_capacity(committed.as_ref().map_or(0, |c| {
            c.offsets.values().filter(|offset| **offset >= 0).count()
        }));
        partitions.extend(
            committed
                .iter()
                .flat_map(|c| c.offsets.iter())
                .filter(|(_, offset)| **offset >= 0)
                .map(|(tp, offset)| GroupPartition {
                    tp: tp.clone(),
                    committed: *offset,
                    member: None,
                    sample: Sample::None,
                }),
        );
        snapshot_groups.push(GroupSnapshot {
            group: Arc::from(group.as_str()),
            group_type: listing.group_type.clone(),
            state: GroupState::Unknown,
            offsets_known: committed.is_some(),
            partitions,
        });
    }
    snapshot_groups
}

/// Sets the state and member labels of every group from its description. A group not
/// described keeps those of the last report: without them every series of the group would
/// change identity for one cycle.
pub(super) fn apply_descriptions(
    cluster: &str,
    groups: &mut [GroupSnapshot],
    mut described: HashMap<String, Result<Described>>,
    earlier: Option<&EarlierRows<'_>>,
    issues: &mut CycleIssues,
) {
    for g in groups {
        let (state, owners) = match described.remove(&*g.group) {
            Some(Ok(d)) => d,
            other => {
                if let Some(Err(e)) = &other {
                    if !issues.denied.note(e, &g.group) {
                        tracing::warn!(cluster, group = %g.group, error = %e, "describe failed; member labels and state kept from the last cycle");
                    }
                    issues.note(|| format!("group {}: describe: {e}", g.group));
                }
                issues.groups_undescribed += 1;
                earlier.map(|e| e.described(&g.group)).unwrap_or_default()
            }
        };
        g.state = state;
        for gp in &mut g.partitions {
            gp.member = owners.owner(&gp.tp).cloned();
        }
    }
}

/// Which member owns each partition, from DescribeGroups assignments.
fn owners(d: &GroupDescription) -> Owners {
    let members: Vec<Arc<Member>> = d
        .members
        .iter()
        .map(|m| {
            Arc::new(Member {
                host: m.client_host.clone(),
                consumer_id: m.member_id.clone(),
                client_id: m.client_id.clone(),
            })
        })
        .collect();
    Owners::from_pairs(
        d.members
            .iter()
            .zip(&members)
            .flat_map(|(m, member)| m.assignment.iter().map(move |tp| (tp, member))),
    )
}
