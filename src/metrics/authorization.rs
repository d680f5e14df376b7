//! `tidemark_authorization_failures_total`: resources a missing ACL denied, by resource
//! type and operation. No resource name label: group ids and topics are unbounded, and the
//! log line and the status page name each resource.

use std::borrow::Cow;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use super::families::{base, Exposition};

impl Exposition {
    pub(super) fn authorization_family(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        let mut enc = encoder.encode_descriptor(
            "tidemark_authorization_failures",
            "Resources an *_AUTHORIZATION_FAILED answer denied, once per cycle and resource, by resource type (topic, group, cluster, transactional_id, delegation_token) and the operation tidemark's principal lacks (Describe, Read, DescribeConfigs).",
            None,
            MetricType::Counter,
        )?;
        for c in &self.clusters {
            for (resource_type, operation, n) in &c.client.authorization_failures {
                let mut labels = base(c);
                labels.push(("resource_type", Cow::Borrowed(*resource_type)));
                labels.push(("operation", Cow::Borrowed(*operation)));
                ConstCounter::new(*n).encode(enc.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Granularity;
    use crate::metrics::{render, to_prometheus_text, ClientStats, ClusterView};

    #[test]
    fn one_series_per_resource_type_and_operation() {
        let view = ClusterView {
            name: "prod".into(),
            client: ClientStats {
                authorization_failures: vec![("group", "Describe", 3), ("topic", "Read", 2)],
                ..ClientStats::default()
            },
            ..ClusterView::default()
        };
        let text = to_prometheus_text(&render(&[view], Granularity::Partition));
        assert!(
            text.contains("# TYPE tidemark_authorization_failures_total counter"),
            "{text}"
        );
        for want in [
            r#"tidemark_authorization_failures_total{cluster_name="prod",resource_type="group",operation="Describe"} 3"#,
            r#"tidemark_authorization_failures_total{cluster_name="prod",resource_type="topic",operation="Read"} 2"#,
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }
}
