//! Authorization failures of a cycle: every `*_AUTHORIZATION_FAILED` answer, once per
//! cycle and resource, logged with the `kafka-acls` command that grants the missing ACL,
//! and counted by resource type and operation (`tidemark_authorization_failures_total`).
//!
//! One resource is denied on many items (every partition of a topic, both ListOffsets
//! requests, the OffsetFetch and the DescribeGroups of a group): one line per resource
//! keeps the log readable, and the counter counts denied resources, not items.

use std::collections::BTreeMap;

use kafka_protocol::messages::ApiKey;

use crate::kafka::error::{missing_acl, Acl};
use crate::kafka::{KafkaError, KafkaErrorKind};

/// The resource name of the cluster in Kafka's ACLs.
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";

/// The denials of one cycle: (missing ACL, resource name) → the first API denied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Denials {
    seen: BTreeMap<(Acl, String), ApiKey>,
}

impl Denials {
    /// Notes `e` when it is an authorization failure on `resource`; true if it was (the
    /// caller then leaves the logging to [`Denials::log`]).
    pub fn note(&mut self, e: &KafkaError, resource: &str) -> bool {
        match e.kind() {
            KafkaErrorKind::Broker { api, code, .. } => self.note_code(*api, *code, resource),
            _ => false,
        }
    }

    /// [`Denials::note`] for an error code answered to `api`.
    pub fn note_code(&mut self, api: ApiKey, code: i16, resource: &str) -> bool {
        let Some(acl) = missing_acl(api, code) else {
            return false;
        };
        let resource = if acl.resource_type == "cluster" {
            CLUSTER_RESOURCE
        } else {
            resource
        };
        self.seen.entry((acl, resource.to_owned())).or_insert(api);
        true
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Denied resources per missing ACL (resource type and operation).
    pub fn counts(&self) -> BTreeMap<Acl, u64> {
        let mut counts = BTreeMap::new();
        for (acl, _) in self.seen.keys() {
            *counts.entry(*acl).or_default() += 1;
        }
        counts
    }

    /// One line per denied resource, for the status page.
    pub fn lines(&self, bootstrap: &str) -> Vec<String> {
        self.seen
            .iter()
            .map(|((acl, resource), api)| {
                format!(
                    "{api:?}: {} on {} {resource} is not allowed; grant it: {}",
                    acl.operation,
                    acl.resource_type,
                    kafka_acls(acl, resource, bootstrap)
                )
            })
            .collect()
    }

    /// One warning per denied resource.
    pub fn log(&self, cluster: &str, bootstrap: &str) {
        for ((acl, resource), api) in &self.seen {
            tracing::warn!(
                cluster,
                operation = acl.operation,
                resource_type = acl.resource_type,
                resource = %resource,
                api = ?api,
                fix = %kafka_acls(acl, resource, bootstrap),
                "authorization failed: tidemark's principal lacks this ACL; what needs it keeps its last values or has no series"
            );
        }
    }
}

/// The `kafka-acls` command that grants `acl` on `resource` (the principal to fill in).
pub fn kafka_acls(acl: &Acl, resource: &str, bootstrap: &str) -> String {
    let target = match acl.resource_type {
        "cluster" => "--cluster".to_string(),
        _ => format!("{} {}", acl.kafka_acls_option(), shell_quote(resource)),
    };
    format!(
        "kafka-acls.sh --bootstrap-server {bootstrap} --add --allow-principal 'User:<principal>' --operation {} {target}",
        acl.operation
    )
}

/// `s` in single quotes for a POSIX shell (group ids may hold any character).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(api: ApiKey, code: i16) -> KafkaError {
        KafkaErrorKind::Broker {
            broker: "k:9092".into(),
            api,
            code,
            context: "x".into(),
            message: None,
        }
        .into()
    }

    #[test]
    fn one_denial_per_resource_and_acl_whatever_the_items() {
        let mut d = Denials::default();
        // Both ListOffsets requests of two partitions of one topic, and a group denied in
        // OffsetFetch and DescribeGroups: two resources.
        for _ in 0..4 {
            assert!(d.note(&broker(ApiKey::ListOffsets, 29), "orders"));
        }
        assert!(d.note(&broker(ApiKey::OffsetFetch, 30), "g"));
        assert!(d.note(&broker(ApiKey::DescribeGroups, 30), "g"));
        // Read on the same topic is another ACL.
        assert!(d.note_code(ApiKey::Fetch, 29, "orders"));
        // Not authorization failures.
        assert!(!d.note(&broker(ApiKey::Fetch, 6), "orders"));
        assert!(!d.note(
            &KafkaErrorKind::Unresolved("beyond the fetch cap".into()).into(),
            "orders"
        ));
        let counts: Vec<(&str, &str, u64)> = d
            .counts()
            .into_iter()
            .map(|(a, n)| (a.resource_type, a.operation, n))
            .collect();
        assert_eq!(
            counts,
            [
                ("group", "Describe", 1),
                ("topic", "Describe", 1),
                ("topic", "Read", 1)
            ]
        );
        let lines = d.lines("k:9092");
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("OffsetFetch: Describe on group g ")
                && l.ends_with("--operation Describe --group 'g'")));
        assert!(lines
            .iter()
            .any(|l| l.contains("Read on topic orders") && l.ends_with("--topic 'orders'")));
    }

    #[test]
    fn cluster_denials_name_the_cluster_resource() {
        let mut d = Denials::default();
        assert!(d.note_code(ApiKey::ListGroups, 31, "broker 1"));
        assert!(d.note_code(ApiKey::ListGroups, 31, "broker 2"));
        let lines = d.lines("b:9092");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("Describe on cluster kafka-cluster"),
            "{lines:?}"
        );
        assert!(
            lines[0].ends_with("--operation Describe --cluster"),
            "{lines:?}"
        );
    }

    #[test]
    fn resource_names_are_shell_quoted() {
        let acl = missing_acl(ApiKey::OffsetFetch, 30).expect("an ACL");
        assert_eq!(
            kafka_acls(&acl, "it's", "b:9092"),
            "kafka-acls.sh --bootstrap-server b:9092 --add --allow-principal 'User:<principal>' --operation Describe --group 'it'\\''s'"
        );
    }
}
