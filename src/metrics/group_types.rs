//! The families that tell Kafka 4.x group types apart: the group state, labelled with the
//! group type. The lag families carry no `group_type` label, so classic groups keep their
//! series (and dashboards) unchanged.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::families::{base, gauge, Exposition};

impl Exposition {
    /// `kafka_consumergroup_group_state`: one series per group, with its `group_type`.
    pub(super) fn group_state_family(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(
            "kafka_consumergroup_group_state",
            "Group state: 0 Unknown, 1 PreparingRebalance, 2 CompletingRebalance, 3 Stable, 4 Dead, 5 Empty, 6 Assigning, 7 Reconciling.",
            None,
            MetricType::Gauge,
        )?;
        for (c, r) in self.reports() {
            let b = base(c);
            for g in &r.groups {
                let labels = [("group", &*g.group), ("group_type", g.group_type.as_str())];
                gauge(&mut enc, &(&b[..], &labels[..]), g.state.code() as f64)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use crate::config::Granularity;
    use crate::lag::{self, ClusterSnapshot, GroupPartition, GroupSnapshot, GroupState, Sample};
    use crate::metrics::{render, ClusterView};
    use crate::model::{GroupType, PartitionWatermarks, TopicPartition, Watermarks};

    fn group(name: &str, group_type: GroupType, state: GroupState) -> GroupSnapshot {
        GroupSnapshot {
            group: Arc::from(name),
            group_type,
            state,
            offsets_known: true,
            partitions: vec![GroupPartition {
                tp: TopicPartition::new("t", 0),
                committed: 4,
                member: None,
                sample: Sample::None,
            }],
        }
    }

    #[test]
    fn state_carries_the_group_type_and_lag_families_do_not() {
        let snapshot = ClusterSnapshot {
            cluster: "c".into(),
            watermarks: PartitionWatermarks::from([(
                TopicPartition::new("t", 0),
                Watermarks { low: 0, high: 10 },
            )]),
            groups: vec![
                group("old", GroupType::Classic, GroupState::Stable),
                group("new", GroupType::Consumer, GroupState::Reconciling),
                group("flow", GroupType::Streams, GroupState::Empty),
            ],
            compacted_topics: BTreeSet::new(),
            poll_time: Default::default(),
            carried_watermarks: Default::default(),
        };
        let view = ClusterView {
            name: "c".into(),
            report: Some(Arc::new(lag::compute(&snapshot, 1_000))),
            ..ClusterView::default()
        };
        let text = render(&[view], Granularity::Partition);
        for want in [
            r#"kafka_consumergroup_group_state{cluster_name="c",group="old",group_type="classic"} 3"#,
            r#"kafka_consumergroup_group_state{cluster_name="c",group="new",group_type="consumer"} 7"#,
            r#"kafka_consumergroup_group_state{cluster_name="c",group="flow",group_type="streams"} 5"#,
            r#"kafka_consumergroup_group_max_lag{cluster_name="c",group="new"} 6"#,
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want} in\n{text}");
        }
        let typed: Vec<&str> = text.lines().filter(|l| l.contains("group_type=")).collect();
        assert_eq!(typed.len(), 3, "only the state series are typed: {typed:?}");
    }
}
