//! `[exporter.leadership]`: klag-exporter's keys, mapped onto tidemark's coordination group
//! in the monitored Kafka cluster (see `crate::ha`).

use std::time::Duration;

use toml::Table;

use super::Walker;
use crate::config::{ConfigError, LeadershipConfig, LeadershipProvider};

impl Walker<'_> {
    pub(super) fn leadership(
        &mut self,
        mut t: Table,
        p: &str,
    ) -> Result<LeadershipConfig, ConfigError> {
        let d = LeadershipConfig::default();
        let enabled = self.get(&mut t, p, "enabled", d.enabled, Self::boolean)?;
        let provider = self.get(&mut t, p, "provider", d.provider, |w, v, path| {
            let s = w.string(v, path)?;
            match s.trim().to_ascii_lowercase().as_str() {
                "kafka" => Ok(LeadershipProvider::Kafka),
                "kubernetes" => Ok(LeadershipProvider::Kubernetes),
                _ => Err(w.invalid(
                    path,
                    format!("{s:?} is not a leadership provider"),
                    "\"kafka\" or \"kubernetes\" (both elect through the Kafka cluster)",
                )),
            }
        })?;
        let lease_name = self.get(
            &mut t,
            p,
            "lease_name",
            d.lease_name,
            Self::non_empty_string,
        )?;
        let lease_namespace = self.get(&mut t, p, "lease_namespace", None, |w, v, path| {
            w.string(v, path).map(Some)
        })?;
        let identity = self.get(&mut t, p, "identity", None, |w, v, path| {
            w.non_empty_string(v, path).map(Some)
        })?;
        let secs = |w: &Self, v, path: &str| -> Result<Duration, ConfigError> {
            let n = w.integer(v, path, 1, 3600)?;
            Ok(Duration::from_secs(u64::try_from(n).unwrap_or(1)))
        };
        let lease_duration = self.get(&mut t, p, "lease_duration_secs", d.lease_duration, secs)?;
        let grace_period = self.get(&mut t, p, "grace_period_secs", d.grace_period, secs)?;
        if grace_period >= lease_duration {
            return Err(self.invalid(
                &super::child(p, "grace_period_secs"),
                format!(
                    "{} is not less than lease_duration_secs ({})",
                    grace_period.as_secs(),
                    lease_duration.as_secs()
                ),
                "a heartbeat interval shorter than the session timeout (a third of it is usual)",
            ));
        }
        let shard_groups_above = self.get(
            &mut t,
            p,
            "shard_groups_above",
            d.shard_groups_above,
            |w, v, path| {
                let n = w.integer(v, path, 0, i64::from(u32::MAX))?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            },
        )?;
        self.leftover(t, p);
        Ok(LeadershipConfig {
            enabled,
            provider,
            lease_name,
            lease_namespace,
            identity,
            lease_duration,
            grace_period,
            shard_groups_above,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, LeadershipProvider};

    fn load(leadership: &str) -> Result<crate::config::Config, String> {
        let toml = format!(
            "[exporter.leadership]\n{leadership}\n[[clusters]]\nname = \"a\"\nbootstrap_servers = \"k:9092\"\n"
        );
        parse(&toml, "c.toml", &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn klag_exporter_keys_are_all_known() {
        let c = load(
            "enabled = true\nprovider = \"kubernetes\"\nlease_name = \"lag-ha\"\nlease_namespace = \"monitoring\"\nidentity = \"pod-1\"\nlease_duration_secs = 20\ngrace_period_secs = 4\nshard_groups_above = 50",
        )
        .expect("valid");
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
        let l = &c.exporter.leadership;
        assert!(l.enabled);
        assert_eq!(l.provider, LeadershipProvider::Kubernetes);
        assert_eq!(l.lease_name, "lag-ha");
        assert_eq!(l.identity.as_deref(), Some("pod-1"));
        assert_eq!(l.lease_duration.as_secs(), 20);
        assert_eq!(l.grace_period.as_secs(), 4);
        assert_eq!(l.shard_groups_above, 50);
        assert!(c
            .warnings()
            .iter()
            .any(|w| w.contains("provider = \"kubernetes\"") && w.contains("no Lease")));
        // The resolved config reads back the same.
        let again = crate::config::parse(&c.to_redacted_toml(), "again.toml", &|_| None)
            .expect("round trip");
        assert_eq!(again.exporter.leadership, c.exporter.leadership);
    }

    #[test]
    fn defaults_and_errors() {
        let c = load("").expect("valid");
        let l = &c.exporter.leadership;
        assert!(!l.enabled);
        assert_eq!(l.lease_name, "tidemark");
        assert_eq!(
            (l.lease_duration.as_secs(), l.grace_period.as_secs()),
            (15, 5)
        );
        let e = load("lease_duration_secs = 5\ngrace_period_secs = 5").unwrap_err();
        assert!(
            e.starts_with("c.toml: exporter.leadership.grace_period_secs: 5 is not less than lease_duration_secs (5)"),
            "{e}"
        );
        let e = load("provider = \"etcd\"").unwrap_err();
        assert!(e.contains("exporter.leadership.provider"), "{e}");
        let e = load("lease_name = \"\"").unwrap_err();
        assert!(
            e.contains("exporter.leadership.lease_name: is empty"),
            "{e}"
        );
    }
}
