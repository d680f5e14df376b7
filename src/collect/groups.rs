//! The groups of a cycle's snapshot, built from the OffsetFetch (and, for share groups,
//! DescribeShareGroupOffsets) answers, then given their states and member labels from the
//! descriptions of each group type (which may arrive later: see `cycle`).

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::ApiKey;

use crate::kafka::{
    Cluster, GroupDescription, GroupListing, GroupOffsets, GroupType, Result, TopicPartition,
};
use crate::lag::{GroupPartition, GroupSnapshot, GroupState, Member};

use super::carry::EarlierRows;
use super::issues::CycleIssues;

/// What a group's DescribeGroups answer keeps: its state and who owns which partition.
pub(super) type Described = (GroupState, Owners);

/// Partition owners sorted by partition, one per partition: a sorted list rather than a
/// map, as the descriptions of every group are held at the cycle's largest moment.
pub(super) type Owners = Vec<(TopicPartition, Arc<Member>)>;

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
            out.insert(g.group_id.clone(), Ok((state, Vec::new())));
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
                    record: None,
                    markers_only: false,
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
                earlier
                    .map(|e| e.described(&g.group))
                    .unwrap_or((GroupState::Unknown, Vec::new()))
            }
        };
        g.state = state;
        for gp in &mut g.partitions {
            gp.member = owners
                .binary_search_by(|(tp, _)| tp.cmp(&gp.tp))
                .ok()
                .and_then(|i| owners.get(i))
                .map(|(_, m)| m.clone());
        }
    }
}

/// Which member owns each partition, from DescribeGroups assignments.
fn owners(d: &GroupDescription) -> Owners {
    let mut owners = Vec::with_capacity(d.members.iter().map(|m| m.assignment.len()).sum());
    for m in &d.members {
        let member = Arc::new(Member {
            host: m.client_host.clone(),
            consumer_id: m.member_id.clone(),
            client_id: m.client_id.clone(),
        });
        owners.extend(m.assignment.iter().map(|tp| (tp.clone(), member.clone())));
    }
    // A share partition may have several owners: the first (by member id) is kept, which
    // the stable sort leaves first.
    owners.sort_by(|a, b| a.0.cmp(&b.0));
    owners.dedup_by(|later, first| later.0 == first.0);
    owners
}
