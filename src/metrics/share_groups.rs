//! The share-group (KIP-932) families, named like the consumer-group ones: lag from the
//! share-partition start offset, time lag of the record there, their maxima, and the state.
//! Share groups never appear in the `kafka_consumergroup_*` families.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::families::{base, flag, gauge, member_labels, Exposition};
use crate::config::Granularity;
use crate::lag::GroupLag;

impl Exposition {
    /// `kafka_sharegroup_*`: per share partition (partition granularity only), then per group.
    pub(super) fn share_group_families(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        if self.granularity == Granularity::Partition {
            let mut enc = encoder.encode_descriptor(
                "kafka_sharegroup_group_lag",
                "Records of the share partition from its start offset to the high watermark.",
                None,
                MetricType::Gauge,
            )?;
            for (c, r) in self.reports() {
                let b = base(c);
                for row in r.share_rows() {
                    let (gt, n, m) = member_labels(&row);
                    gauge(
                        &mut enc,
                        &(&b[..], (&gt[..], (&n[..], &m[..]))),
                        row.lag() as f64,
                    )?;
                }
            }
            let mut enc = encoder.encode_descriptor(
                "kafka_sharegroup_group_lag_seconds",
                "Age of the record at the share-partition start offset (0 when caught up).",
                None,
                MetricType::Gauge,
            )?;
            for (c, r) in self.reports() {
                let b = base(c);
                for row in r.share_rows() {
                    if let Some(secs) = row.lag_seconds() {
                        let (gt, n, m) = member_labels(&row);
                        let flags = [
                            ("compaction_detected", flag(row.compaction_detected)),
                            ("data_loss_detected", flag(row.data_loss())),
                        ];
                        let labels = (&b[..], (&gt[..], (&n[..], (&m[..], &flags[..]))));
                        gauge(&mut enc, &labels, secs)?;
                    }
                }
            }
        }
        self.share_group_family(
            encoder,
            "kafka_sharegroup_group_max_lag",
            "Largest offset lag over the share group's partitions.",
            |g| g.offsets_known.then_some(g.max_lag as f64),
        )?;
        self.share_group_family(
            encoder,
            "kafka_sharegroup_group_max_lag_seconds",
            "Largest time lag over the share group's partitions that have one.",
            |g| g.max_lag_seconds.filter(|_| g.offsets_known),
        )?;
        self.share_group_family(
            encoder,
            "kafka_sharegroup_group_state",
            "Share group state: 0 Unknown, 3 Stable, 4 Dead, 5 Empty.",
            |g| Some(g.state.code() as f64),
        )
    }

    fn share_group_family(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: fn(&GroupLag) -> Option<f64>,
    ) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (c, r) in self.reports() {
            let b = base(c);
            for g in &r.share_groups {
                if let Some(v) = value(g) {
                    gauge(&mut enc, &(&b[..], &[("group", &*g.group)][..]), v)?;
                }
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

    fn view() -> ClusterView {
        let snapshot = ClusterSnapshot {
            cluster: "c".into(),
            watermarks: PartitionWatermarks::from([(
                TopicPartition::new("t", 0),
                Watermarks { low: 0, high: 10 },
            )]),
            groups: vec![GroupSnapshot {
                group: Arc::from("s"),
                group_type: GroupType::Share,
                state: GroupState::Empty,
                offsets_known: true,
                partitions: vec![GroupPartition {
                    tp: TopicPartition::new("t", 0),
                    committed: 3,
                    member: None,
                    sample: Sample::None,
                }],
            }],
            compacted_topics: BTreeSet::new(),
            poll_time: Default::default(),
            carried_watermarks: Default::default(),
        };
        ClusterView {
            name: "c".into(),
            report: Some(Arc::new(lag::compute(&snapshot, 1_000))),
            ..ClusterView::default()
        }
    }

    #[test]
    fn share_series_per_granularity_and_never_in_consumer_families() {
        let text = render(&[view()], Granularity::Partition);
        for want in [
            r#"kafka_sharegroup_group_lag{cluster_name="c",group="s",topic="t",partition="0",member_host="",consumer_id="",client_id=""} 7"#,
            r#"kafka_sharegroup_group_max_lag{cluster_name="c",group="s"} 7"#,
            r#"kafka_sharegroup_group_state{cluster_name="c",group="s"} 5"#,
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want} in\n{text}");
        }
        // Not sampled: no time lag series.
        assert!(
            !text.contains("kafka_sharegroup_group_lag_seconds{"),
            "{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("kafka_consumergroup_") && l.contains("group=\"s\"")),
            "{text}"
        );
        let text = render(&[view()], Granularity::Topic);
        assert!(!text.contains("kafka_sharegroup_group_lag{"), "{text}");
        assert!(text
            .lines()
            .any(|l| l == r#"kafka_sharegroup_group_max_lag{cluster_name="c",group="s"} 7"#));
    }
}
