//! What this replica owns, with `[exporter.leadership]` (see [`crate::ha`]): a cluster's
//! served report is its last published report filtered by the ownership, re-filtered at
//! once when the ownership changes, so work given up leaves `/metrics` before any other
//! replica can be assigned it, and work kept through a rebalance is served on without a
//! gap.

use std::sync::Arc;

use super::ExporterState;
use crate::ha::Ownership;
use crate::lag::LagReport;
use crate::metrics::{ClusterView, HaView};

/// Fill `view.ha` for `own`, with the groups of `report` (already filtered).
pub(super) fn describe(view: &mut ClusterView, own: &Ownership, report: &LagReport) {
    view.ha = Some(HaView {
        member: own.assignment.is_some(),
        generation: i64::from(own.generation),
        cluster_owner: own.cluster(),
        owned_groups: (report.groups.len() + report.share_groups.len()) as u64,
        serving: own.any(),
    });
}

impl ExporterState {
    /// Take part in coordination as `identity` (for `/leader`); from now on a cluster is
    /// served only as far as [`ExporterState::set_ownership`] says.
    pub fn set_identity(&self, identity: &str) {
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = Some(identity.to_owned());
        let mut inner = self.lock();
        let names: Vec<String> = inner.views.keys().cloned().collect();
        for name in names {
            inner.ownership.entry(name.clone()).or_default();
            if let Some(view) = inner.views.get_mut(&name) {
                view.report = None;
                describe(view, &Ownership::default(), &LagReport::default());
            }
        }
        inner.generation += 1;
        drop(inner);
        self.render();
    }

    /// What this replica owns of `cluster` now: the served report is re-filtered and the
    /// exposition rendered again before this returns.
    pub fn set_ownership(&self, cluster: &str, own: Ownership) {
        {
            let mut inner = self.lock();
            // The last report is served again at once only while it is younger than the
            // staleness threshold; an older one waits for the cycle the assignment starts.
            let staleness = *self.staleness.lock().unwrap_or_else(|p| p.into_inner());
            let last = inner.status.get(cluster).and_then(|s| s.last_success_at);
            let fresh = match (staleness, last) {
                (Some(limit), Some(at)) => at.elapsed() <= limit,
                (None, _) => true,
                (Some(_), None) => false,
            };
            let filtered = inner
                .raw
                .get(cluster)
                .filter(|_| fresh)
                .map(|r| Arc::new(own.filter(r)));
            let Some(view) = inner.views.get_mut(cluster) else {
                return;
            };
            let report = filtered.filter(|_| own.any());
            describe(
                view,
                &own,
                report.as_deref().unwrap_or(&LagReport::default()),
            );
            view.report = report;
            inner.ownership.insert(cluster.to_owned(), own);
            inner.generation += 1;
        }
        self.render();
    }

    /// With coordination: the clusters this replica owns work of. `None` without.
    pub fn owning(&self) -> Option<Vec<String>> {
        let inner = self.lock();
        if inner.ownership.is_empty() {
            return None;
        }
        Some(
            inner
                .ownership
                .iter()
                .filter(|(_, o)| o.any())
                .map(|(c, _)| c.clone())
                .collect(),
        )
    }

    /// `/leader`'s answer, klag-exporter's `{"is_leader": ...}`: true when this replica
    /// collects anything; with coordination also its identity and, per cluster, `owner`,
    /// `groups` (a share of the groups) or `standby`.
    pub fn leader_json(&self) -> String {
        let identity = self
            .identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(identity) = identity else {
            return r#"{"is_leader":true}"#.to_owned();
        };
        let inner = self.lock();
        let roles: Vec<String> = inner
            .ownership
            .iter()
            .map(|(c, o)| {
                let role = if o.cluster() {
                    "owner"
                } else if o.any() {
                    "groups"
                } else {
                    "standby"
                };
                format!("{}:\"{role}\"", json_string(c))
            })
            .collect();
        let leader = inner.ownership.values().any(Ownership::any);
        format!(
            "{{\"is_leader\":{leader},\"identity\":{},\"clusters\":{{{}}}}}",
            json_string(&identity),
            roles.join(",")
        )
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Granularity;
    use crate::ha::Assignment;
    use crate::kafka::TopicPartition;
    use crate::lag::PartitionOffsets;
    use crate::metrics::Format;
    use crate::state::{CycleHealth, CycleOutcome};

    fn text(s: &ExporterState) -> String {
        String::from_utf8(s.rendered().to_text(Format::Prometheus).expect("inflated"))
            .expect("UTF-8")
    }

    #[test]
    fn ownership_decides_what_is_served_ready_and_leader() {
        let s = ExporterState::new(&[("a".to_string(), Vec::new())], Granularity::Partition);
        s.set_identity("pod-\"1\"");
        assert!(!s.ready(), "a standby is not ready");
        assert_eq!(
            s.leader_json(),
            r#"{"is_leader":false,"identity":"pod-\"1\"","clusters":{"a":"standby"}}"#
        );
        let report = LagReport {
            cluster: "a".into(),
            partitions: vec![PartitionOffsets {
                tp: TopicPartition::new("t", 0),
                low: 0,
                high: 7,
                read_at_ms: 0,
            }],
            ..LagReport::default()
        };
        let series =
            "kafka_partition_latest_offset{cluster_name=\"a\",topic=\"t\",partition=\"0\"} 7";
        // A cycle published while not owning (started before a revoke) is not served.
        let publish = || {
            s.publish(
                "a",
                CycleOutcome::Success {
                    report: Arc::new(report.clone()),
                    poll_time: Duration::ZERO,
                    health: CycleHealth::complete([1]),
                },
                Duration::ZERO,
            )
        };
        publish();
        assert!(!text(&s).contains(series));
        assert!(!text(&s).contains("tidemark_cluster_up{"), "{}", text(&s));
        assert!(
            text(&s).contains("tidemark_ha_member{cluster_name=\"a\"} 0"),
            "{}",
            text(&s)
        );
        let owner = Ownership {
            member_id: "m1".into(),
            assignment: Some(Assignment {
                owner: "m1".into(),
                sharded: false,
                members: vec![("p".into(), "m1".into())],
            }),
            generation: 3,
        };
        // Assigned: what was published is served at once.
        s.set_ownership("a", owner.clone());
        assert!(text(&s).contains(series), "{}", text(&s));
        assert!(text(&s).contains("tidemark_ha_generation{cluster_name=\"a\"} 3"));
        assert!(text(&s).contains("tidemark_ha_cluster_owner{cluster_name=\"a\"} 1"));
        assert!(s.ready());
        assert!(s.leader_json().starts_with(r#"{"is_leader":true,"#));
        // Revoked: gone before set_ownership returns.
        s.set_ownership("a", Ownership::default());
        assert!(!text(&s).contains(series));
        assert!(!s.ready());
        publish();
        assert!(!text(&s).contains(series));
        // Assigned again: the last cycle is served at once while it is fresh, ...
        s.set_staleness(Duration::from_millis(200));
        s.set_ownership("a", owner.clone());
        assert!(text(&s).contains(series));
        // ... but not once it is older than the staleness threshold.
        s.set_ownership("a", Ownership::default());
        std::thread::sleep(Duration::from_millis(250));
        s.set_ownership("a", owner);
        assert!(!text(&s).contains(series), "{}", text(&s));
    }
}
