//! High availability and sharding through the monitored Kafka cluster itself
//! (`[exporter.leadership]`).
//!
//! Every replica joins a coordination group (`lease_name`) in each configured cluster,
//! with the protocol type `tidemark` (never `consumer`). The broker elects the group's
//! leader; the leader assigns the cluster to one member (its owner: partition families,
//! and every consumer group) by rendezvous hashing of the cluster's name over the members'
//! identities, and on a cluster with more than `shard_groups_above` groups shares the
//! groups out one by one the same way ([`assign`]). SyncGroup carries that decision.
//!
//! Ownership flows one way: from the member task of each cluster ([`run`]) into the
//! collector (what to read) and into [`crate::state`] (what `/metrics` serves, `/ready`,
//! `/leader`). A replica owns nothing of a cluster while it is not a member of its current
//! generation, and gives everything up before rejoining, so no series is ever served by
//! two replicas (see [`member`] for the rule and the fence).

pub mod assign;
pub mod member;
mod run;

pub use assign::{Assignment, PROTOCOL_TYPE};
pub use run::{run, MemberTask};

use crate::lag::{GroupLag, GroupPartitionLag, LagReport};

/// What this replica owns of one cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    /// This replica's member id in the cluster's coordination group.
    pub member_id: String,
    /// The generation's assignment; `None` while not a member (owns nothing).
    pub assignment: Option<Assignment>,
    pub generation: i32,
}

impl Ownership {
    /// Owns the cluster: its partition families (and every group unless sharded).
    pub fn cluster(&self) -> bool {
        self.assignment
            .as_ref()
            .is_some_and(|a| a.owner == self.member_id)
    }

    /// Collects anything of the cluster.
    pub fn any(&self) -> bool {
        self.assignment
            .as_ref()
            .is_some_and(|a| a.owner == self.member_id || a.sharded)
    }

    pub fn group(&self, group: &str) -> bool {
        self.assignment
            .as_ref()
            .is_some_and(|a| a.owns_group(&self.member_id, group))
    }

    /// The part of `report` this replica owns: its groups with their rows, and the
    /// partition series when it collects the cluster (the partition table stays whole: rows
    /// point into it).
    pub fn filter(&self, report: &LagReport) -> LagReport {
        let owned = |g: &str| self.group(g);
        let cluster = self.cluster();
        let (groups, group_partitions) =
            owned_rows(&report.groups, &report.group_partitions, &owned);
        let (share_groups, share_group_partitions) =
            owned_rows(&report.share_groups, &report.share_group_partitions, &owned);
        let status = crate::lag::StatusReport {
            groups: (report.status.groups.iter())
                .filter(|g| owned(&g.group))
                .cloned()
                .collect(),
            partitions: (report.status.partitions.iter())
                .filter(|p| owned(&p.group))
                .cloned()
                .collect(),
        };
        LagReport {
            status,
            cluster: report.cluster.clone(),
            partitions: report.partitions.clone(),
            partition_series: cluster && report.partition_series,
            group_partitions,
            share_group_partitions,
            stale_groups: groups
                .iter()
                .chain(&share_groups)
                .filter(|g| g.stale)
                .count() as u64,
            stale_partitions: if cluster { report.stale_partitions } else { 0 },
            groups,
            share_groups,
            compaction_partitions: report.compaction_partitions,
            data_loss_partitions: report.data_loss_partitions,
        }
    }
}

/// The owned groups of a report and their rows (each group's rows follow those of the
/// groups before it, see [`LagReport`]).
fn owned_rows(
    groups: &[GroupLag],
    rows: &[GroupPartitionLag],
    owned: &dyn Fn(&str) -> bool,
) -> (Vec<GroupLag>, Vec<GroupPartitionLag>) {
    let mut kept_groups = Vec::new();
    let mut kept_rows = Vec::new();
    let mut at = 0usize;
    for g in groups {
        let end = at.saturating_add(g.rows as usize);
        if owned(&g.group) {
            kept_groups.push(g.clone());
            kept_rows.extend_from_slice(rows.get(at..end).unwrap_or_default());
        }
        at = end;
    }
    (kept_groups, kept_rows)
}

/// This replica's name in every coordination group: `identity`, else the pod name
/// (`POD_NAME`), `HOSTNAME`, the kernel's host name, or `tidemark-<pid>`.
pub fn identity(configured: Option<&str>) -> String {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    configured
        .map(str::to_owned)
        .or_else(|| env("POD_NAME"))
        .or_else(|| env("HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| format!("tidemark-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kafka::TopicPartition;
    use crate::lag::PartitionOffsets;

    fn report() -> LagReport {
        let tp = TopicPartition::new("t", 0);
        let group = |g: &str| GroupLag {
            group: Arc::from(g),
            group_type: Default::default(),
            state: Default::default(),
            offsets_known: true,
            max_lag: 1,
            max_lag_seconds: None,
            sum_lag: 1,
            topics: Default::default(),
            read_at_ms: 0,
            stale: g == "b",
            rows: 1,
        };
        let row =
            |committed: i64| GroupPartitionLag::new(0, None, committed, (0, 2), false, None, false);
        LagReport {
            cluster: "c".into(),
            partitions: vec![PartitionOffsets {
                tp: tp.clone(),
                low: 0,
                high: 2,
                read_at_ms: 0,
            }],
            group_partitions: vec![row(1), row(0)],
            groups: vec![group("a"), group("b")],
            stale_groups: 1,
            ..LagReport::default()
        }
    }

    #[test]
    fn filter_keeps_what_is_owned() {
        let members = vec![
            ("p1".to_owned(), "m1".to_owned()),
            ("p2".to_owned(), "m2".to_owned()),
        ];
        let whole = Assignment {
            owner: "m1".into(),
            sharded: false,
            members: members.clone(),
        };
        let own = |member: &str, a: &Assignment| Ownership {
            member_id: member.into(),
            assignment: Some(a.clone()),
            generation: 1,
        };
        let r = report();
        let kept = own("m1", &whole).filter(&r);
        assert_eq!(
            (kept.partitions, kept.groups, kept.group_partitions),
            (
                r.partitions.clone(),
                r.groups.clone(),
                r.group_partitions.clone()
            )
        );
        let standby = own("m2", &whole).filter(&r);
        assert!(!own("m2", &whole).any());
        assert!(standby.groups.is_empty() && !standby.partition_series);
        assert_eq!(standby.rows().count(), 0);
        let sharded = Assignment {
            sharded: true,
            ..whole
        };
        let (a, b) = (
            own("m1", &sharded).filter(&r),
            own("m2", &sharded).filter(&r),
        );
        assert!(
            a.partition_series && !b.partition_series,
            "partitions go with the owner"
        );
        assert_eq!(a.groups.len() + b.groups.len(), 2, "every group once");
        assert_eq!(a.group_partitions.len() + b.group_partitions.len(), 2);
        // Each group keeps its own row.
        for kept in [&a, &b] {
            for row in kept.rows() {
                let committed = if &**row.group_name() == "a" { 1 } else { 0 };
                assert_eq!((row.committed, &*row.tp.topic), (committed, "t"));
            }
        }
        assert_eq!(a.stale_groups + b.stale_groups, 1);
        assert!(!Ownership::default().any());
    }
}
