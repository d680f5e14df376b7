//! The consumer-status families (`[exporter.status]`): status per group and, at partition
//! granularity, per group partition; consumption rate and catch-up estimate per group.
//! Rate and estimate have no series until a group's window holds two cycles.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::families::{base, gauge, Exposition};
use crate::config::Granularity;
use crate::lag::GroupStatus;

impl Exposition {
    pub(super) fn status_families(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        self.status_group_family(
            encoder,
            "tidemark_consumergroup_status",
            "Consumer status over the window, worst of the group's partitions: 0 OK, 1 WARN, 2 ERR, 3 STOP, 4 STALL, 5 REWIND.",
            |g| Some(g.status.code() as f64),
        )?;
        self.status_group_family(
            encoder,
            "tidemark_consumergroup_consume_rate",
            "Records per second the group consumed over the status window, summed over its partitions.",
            |g| g.consume_rate,
        )?;
        self.status_group_family(
            encoder,
            "tidemark_consumergroup_catchup_seconds",
            "Estimated seconds until the group's slowest partition reaches lag 0 at the window's net rate (+Inf when the lag does not shrink, 0 when caught up).",
            |g| g.catchup_seconds,
        )?;
        if self.granularity != Granularity::Partition {
            return Ok(());
        }
        let mut enc = encoder.encode_descriptor(
            "tidemark_consumergroup_partition_status",
            "Consumer status of the group on the partition over the window: 0 OK, 1 WARN, 2 ERR, 3 STOP, 4 STALL, 5 REWIND.",
            None,
            MetricType::Gauge,
        )?;
        for (c, r) in self.reports() {
            let b = base(c);
            for p in &r.status.partitions {
                let labels = [("group", &*p.group), ("topic", &*p.tp.topic)];
                let n = [("partition", p.tp.partition)];
                gauge(&mut enc, &(&b[..], (&labels[..], &n[..])), p.status.code())?;
            }
        }
        Ok(())
    }

    fn status_group_family(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: fn(&GroupStatus) -> Option<f64>,
    ) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (c, r) in self.reports() {
            let b = base(c);
            for g in &r.status.groups {
                if let Some(v) = value(g) {
                    gauge(&mut enc, &(&b[..], &[("group", &*g.group)][..]), v)?;
                }
            }
        }
        Ok(())
    }
}
