//! `tidemark_ha_*`: this replica's part in each cluster's coordination group
//! (`[exporter.leadership]`), served for every cluster, owned or not.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::families::{base, gauge, Exposition};
use super::HaView;

/// Name, help, value of each family.
type HaFamily = (&'static str, &'static str, fn(&HaView) -> i64);

const FAMILIES: [HaFamily; 4] = [
    (
        "tidemark_ha_member",
        "1 while this replica is a member of the current generation of the cluster's coordination group, with its assignment; 0 while it joins, rebalances or cannot reach the coordinator (it then serves nothing of the cluster).",
        |h| i64::from(h.member),
    ),
    (
        "tidemark_ha_generation",
        "Generation of the cluster's coordination group this replica last joined (-1 before the first).",
        |h| h.generation,
    ),
    (
        "tidemark_ha_cluster_owner",
        "1 when this replica owns the cluster: it serves the partition families (and every consumer group unless they are sharded).",
        |h| i64::from(h.cluster_owner),
    ),
    (
        "tidemark_ha_owned_groups",
        "Consumer and share groups of the cluster this replica serves.",
        |h| i64::try_from(h.owned_groups).unwrap_or(i64::MAX),
    ),
];

impl Exposition {
    pub(super) fn ha_families(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        if self.ha.is_empty() {
            return Ok(());
        }
        for (name, help, value) in FAMILIES {
            let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for c in &self.ha {
                if let Some(h) = &c.ha {
                    gauge(&mut enc, &base(c), value(h))?;
                }
            }
        }
        Ok(())
    }
}
