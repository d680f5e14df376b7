//! Errors of the Kafka wire client.
//!
//! Every variant names what failed (broker, API, version, topic/group) so that a log line
//! is enough to act on. Nothing here ever carries payload bytes or secrets.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

/// Result alias for the wire client.
pub type Result<T, E = KafkaError> = std::result::Result<T, E>;

/// An error talking to a Kafka cluster: one pointer wide, so the `Result`s held per
/// partition (50,000 of them in a cycle's watermark map) stay small; errors are rare, so
/// the allocation on failure is cheap. Display, `source()` and Debug are the kind's.
#[derive(Clone, thiserror::Error)]
#[error(transparent)]
pub struct KafkaError(Box<KafkaErrorKind>);

impl KafkaError {
    /// What failed.
    pub fn kind(&self) -> &KafkaErrorKind {
        &self.0
    }

    /// What failed, to amend in place (without boxing it again).
    pub(crate) fn kind_mut(&mut self) -> &mut KafkaErrorKind {
        &mut self.0
    }

    /// What failed, by value (to move its fields out).
    pub fn into_kind(self) -> KafkaErrorKind {
        *self.0
    }
}

impl From<KafkaErrorKind> for KafkaError {
    fn from(kind: KafkaErrorKind) -> Self {
        KafkaError(Box::new(kind))
    }
}

impl std::fmt::Debug for KafkaError {
    // The kind's, so that logs and test messages read as before the boxing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

/// What failed talking to a Kafka cluster. Cheap to clone (sources are shared), so one
/// failed batch request can be reported on each of its items.
#[derive(Clone, Debug, thiserror::Error)]
pub enum KafkaErrorKind {
    /// TCP connect, read or write failed.
    #[error("I/O error talking to broker {broker}: {source}")]
    Io {
        broker: String,
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The connection was closed (by the broker, or after an earlier failure).
    #[error("connection to broker {broker} is closed{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    ConnectionClosed {
        broker: String,
        reason: Option<String>,
    },

    /// A request got no response within its timeout.
    #[error("{api:?} request to broker {broker} timed out after {after:?}")]
    Timeout {
        broker: String,
        api: ApiKey,
        after: Duration,
    },

    /// Connecting (TCP + ApiVersions + auth) took longer than the timeout.
    #[error(
        "{phase} with broker {broker} timed out after {after:?} while connecting{}",
        phase_hint(phase)
    )]
    ConnectTimeout {
        broker: String,
        after: Duration,
        /// The step that did not finish: "TCP connect", "TLS handshake", "ApiVersions",
        /// "SASL".
        phase: &'static str,
    },

    /// A broker's advertised address could not be dialled, although a bootstrap server
    /// at another address answered.
    #[error("{cause}; broker {node} is advertised as {address} while bootstrap server {bootstrap} answers: if this lasts, the brokers' advertised.listeners name an address that is not reachable from where tidemark runs")]
    Advertised {
        node: i32,
        address: String,
        bootstrap: String,
        cause: KafkaError,
    },

    #[error("{phase} with broker {broker} failed: {source}")]
    Connect {
        broker: String,
        phase: &'static str,
        #[source]
        source: Arc<std::io::Error>,
    },

    /// A request could not be encoded (a bug or an out-of-range value).
    #[error("cannot encode {api:?} v{version} request: {message}")]
    Encode {
        api: ApiKey,
        version: i16,
        message: String,
    },

    /// A response (or part of it) could not be decoded.
    #[error("cannot decode {api:?} v{version} response from broker {broker}: {message}")]
    Decode {
        broker: String,
        api: ApiKey,
        version: i16,
        message: String,
    },

    /// A response larger than its request can get (see [`crate::kafka::caps`]): it failed
    /// that request and was discarded unread.
    #[error("{api:?} response from broker {broker} is {size} bytes, over the {cap}-byte cap for what was asked: refused unread")]
    ResponseTooLarge {
        broker: String,
        api: ApiKey,
        size: usize,
        cap: usize,
    },

    /// A response that found no room in the process's response memory budget (see
    /// [`crate::kafka::budget`]): it failed that request and was discarded unread.
    #[error("{api:?} response from broker {broker} is {size} bytes and {}: refused unread", budget_reason(*budget, *waited))]
    OverMemoryBudget {
        broker: String,
        api: ApiKey,
        size: usize,
        /// The whole budget, in bytes.
        budget: usize,
        /// How long it waited for room; `None`: larger than the whole budget, so it did not.
        waited: Option<Duration>,
    },

    /// No version of `api` is supported by both tidemark and the broker.
    #[error(
        "broker {broker} and tidemark share no version of {api:?}: tidemark speaks {ours_min}..={ours_max}, broker {}",
        match theirs { Some((a, b)) => format!("speaks {a}..={b}"), None => "does not support it at all".to_string() }
    )]
    NoCommonVersion {
        broker: String,
        api: ApiKey,
        ours_min: i16,
        ours_max: i16,
        theirs: Option<(i16, i16)>,
    },

    /// The broker answered with an error code.
    #[error("{api:?} failed on broker {broker} for {context}: {} (error code {code}){}{}",
        error_name(*code),
        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(),
        acl_hint(*api, *code))]
    Broker {
        broker: String,
        api: ApiKey,
        code: i16,
        context: String,
        message: Option<String>,
    },

    /// The TLS handshake failed (certificate verification, protocol, alert).
    #[error("TLS handshake with broker {broker} failed: {message}")]
    Tls { broker: String, message: String },

    /// SASL authentication failed. `reason` carries the broker's message; never a secret.
    #[error("SASL {mechanism} authentication to broker {broker} failed: {reason}")]
    Authentication {
        broker: String,
        mechanism: &'static str,
        reason: String,
    },

    /// None of the bootstrap servers could be reached.
    #[error("no bootstrap server answered: {}", attempts.join("; "))]
    Bootstrap { attempts: Vec<String> },

    /// A configuration value for the client is invalid.
    #[error("broker {node} is not asked again in this cycle: it failed earlier ({cause})")]
    BrokerDown { node: i32, cause: String },

    #[error("invalid client configuration: {0}")]
    Config(String),

    /// Metadata does not know a node, topic or partition we need.
    #[error("cluster metadata has no {0}")]
    UnknownInMetadata(String),

    /// An item could not be resolved (e.g. a record beyond the fetch cap).
    #[error("{0}")]
    Unresolved(String),

    /// Record bytes could not be decoded.
    #[error("records of {topic}/{partition} from broker {broker}: {source}")]
    Records {
        broker: String,
        topic: String,
        partition: i32,
        #[source]
        source: Arc<crate::kafka::records::RecordsError>,
    },
}

/// Kafka's name for an error code: "NOT_COORDINATOR", or "UNKNOWN(code)".
/// What a connection step that timed out says about the broker.
fn phase_hint(phase: &str) -> &'static str {
    match phase {
        "TCP connect" => " (no TCP connection: the host or port is unreachable or filtered)",
        "TLS handshake" => " (the TCP connection was accepted; is the listener TLS, and is security.protocol right?)",
        "ApiVersions" => " (the TCP connection was accepted but the broker never answered its first request: the broker is hung or overloaded, or the port is not a Kafka listener)",
        "SASL" => " (the broker did not finish authentication)",
        _ => "",
    }
}

/// An ACL tidemark's principal lacks, from an `*_AUTHORIZATION_FAILED` answer: the
/// operation and the resource type, as `kafka-acls --operation OP --topic|--group|...`
/// take them. Both are from small fixed sets, so they can be metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    /// `Read`, `Describe` or `DescribeConfigs`.
    pub operation: &'static str,
    /// `topic`, `group`, `cluster`, `transactional_id` or `delegation_token`.
    pub resource_type: &'static str,
}

impl Acl {
    /// The `kafka-acls` option naming a resource of this type.
    pub fn kafka_acls_option(&self) -> &'static str {
        match self.resource_type {
            "topic" => "--topic",
            "group" => "--group",
            "cluster" => "--cluster",
            "transactional_id" => "--transactional-id",
            _ => "--delegation-token",
        }
    }
}

/// The ACL an authorization failure (`code`) in an answer to `api` asks for; `None` for
/// every other code.
pub fn missing_acl(api: ApiKey, code: i16) -> Option<Acl> {
    let (operation, resource_type) = match (ResponseError::try_from_code(code)?, api) {
        (ResponseError::TopicAuthorizationFailed, ApiKey::Fetch) => ("Read", "topic"),
        (ResponseError::TopicAuthorizationFailed, ApiKey::DescribeConfigs) => {
            ("DescribeConfigs", "topic")
        }
        (ResponseError::TopicAuthorizationFailed, _) => ("Describe", "topic"),
        (ResponseError::GroupAuthorizationFailed, _) => ("Describe", "group"),
        (ResponseError::ClusterAuthorizationFailed, _) => ("Describe", "cluster"),
        (ResponseError::TransactionalIdAuthorizationFailed, _) => ("Describe", "transactional_id"),
        (ResponseError::DelegationTokenAuthorizationFailed, _) => ("Describe", "delegation_token"),
        _ => return None,
    };
    Some(Acl {
        operation,
        resource_type,
    })
}

/// For an authorization failure: the ACL that would fix it (operation on resource type),
/// as `kafka-acls --add --operation OP --topic|--group|--cluster` takes it.
pub fn acl_hint(api: ApiKey, code: i16) -> String {
    match missing_acl(api, code) {
        Some(acl) => format!(
            " (the ACL that fixes it: {} on the {} for tidemark's principal; see docs/operations.md)",
            acl.operation,
            acl.resource_type.replace('_', " ")
        ),
        None => String::new(),
    }
}

/// Why a response did not fit the memory budget.
fn budget_reason(budget: usize, waited: Option<Duration>) -> String {
    match waited {
        None => format!("larger than the whole response memory budget of {budget} bytes ([exporter] max_response_memory)"),
        Some(d) => format!("found no room within {d:?} in the response memory budget of {budget} bytes ([exporter] max_response_memory): other responses held it"),
    }
}

pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
        None => "UNKNOWN_ERROR_CODE".to_string(),
    }
}

impl KafkaError {
    /// The ACL this error says is missing: an `*_AUTHORIZATION_FAILED` answer.
    pub fn missing_acl(&self) -> Option<Acl> {
        match self.kind() {
            KafkaErrorKind::Broker { api, code, .. } => missing_acl(*api, *code),
            _ => None,
        }
    }

    /// Whether a broker error code means routing is stale: refresh metadata / coordinators and retry.
    pub fn is_retriable_routing(&self) -> bool {
        match self.kind() {
            KafkaErrorKind::Broker { code, .. } => is_routing_code(*code),
            _ => false,
        }
    }

    /// Whether the failure is of the transport (the connection should be dropped and redialled).
    pub fn is_transport(&self) -> bool {
        matches!(
            self.kind(),
            KafkaErrorKind::Io { .. }
                | KafkaErrorKind::Connect { .. }
                | KafkaErrorKind::Advertised { .. }
                | KafkaErrorKind::ConnectionClosed { .. }
                | KafkaErrorKind::Timeout { .. }
                | KafkaErrorKind::ConnectTimeout { .. }
        )
    }
}

/// Error codes after which metadata or coordinators are refreshed and the request retried.
pub fn is_routing_code(code: i16) -> bool {
    matches!(
        ResponseError::try_from_code(code),
        Some(
            ResponseError::NotLeaderOrFollower
                | ResponseError::NotCoordinator
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::LeaderNotAvailable
                | ResponseError::FencedLeaderEpoch
                | ResponseError::UnknownLeaderEpoch
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_failures_name_the_acl_that_fixes_them() {
        let e = |api, code| {
            KafkaError::from(KafkaErrorKind::Broker {
                broker: "k:9092".into(),
                api,
                code,
                context: "x".into(),
                message: None,
            })
            .to_string()
        };
        assert!(e(ApiKey::OffsetFetch, 30).contains("Describe on the group"));
        assert!(e(ApiKey::ListOffsets, 29).contains("Describe on the topic"));
        assert!(e(ApiKey::Fetch, 29).contains("Read on the topic"));
        assert!(e(ApiKey::DescribeConfigs, 29).contains("DescribeConfigs on the topic"));
        assert!(e(ApiKey::ListGroups, 31).contains("Describe on the cluster"));
        assert!(!e(ApiKey::Fetch, 6).contains("ACL"));
    }

    #[test]
    fn names_known_and_unknown_codes() {
        assert_eq!(error_name(16), "NOT_COORDINATOR");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-12345), "UNKNOWN(-12345)");
    }

    #[test]
    fn routing_codes() {
        assert!(is_routing_code(6)); // NOT_LEADER_OR_FOLLOWER
        assert!(is_routing_code(16)); // NOT_COORDINATOR
        assert!(is_routing_code(14)); // COORDINATOR_LOAD_IN_PROGRESS
        assert!(is_routing_code(5)); // LEADER_NOT_AVAILABLE
        assert!(!is_routing_code(3)); // UNKNOWN_TOPIC_OR_PARTITION
        assert!(!is_routing_code(0));
    }

    #[test]
    fn no_common_version_names_both_sides() {
        let e: KafkaError = KafkaErrorKind::NoCommonVersion {
            broker: "b1:9092".into(),
            api: ApiKey::OffsetFetch,
            ours_min: 1,
            ours_max: 8,
            theirs: Some((9, 10)),
        }
        .into();
        let s = e.to_string();
        assert!(
            s.contains("OffsetFetch") && s.contains("1..=8") && s.contains("9..=10"),
            "{s}"
        );
    }

    #[test]
    fn error_is_one_pointer_wide() {
        // The per-partition result maps hold one of these per partition: keep it a pointer.
        assert_eq!(
            std::mem::size_of::<KafkaError>(),
            std::mem::size_of::<usize>()
        );
        assert!(
            std::mem::size_of::<Result<crate::kafka::Watermarks, KafkaError>>() <= 24,
            "{}",
            std::mem::size_of::<Result<crate::kafka::Watermarks, KafkaError>>()
        );
    }

    #[test]
    fn boxing_keeps_display_debug_and_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let kind = KafkaErrorKind::Io {
            broker: "b1:9092".into(),
            source: Arc::new(io),
        };
        let e = KafkaError::from(kind.clone());
        assert_eq!(e.to_string(), kind.to_string());
        assert_eq!(format!("{e:?}"), format!("{kind:?}"));
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("reset"));
        assert!(e.is_transport());
    }
}
