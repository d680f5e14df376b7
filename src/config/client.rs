//! `[clusters.consumer_properties]`: librdkafka-style client settings.
//!
//! klag-exporter hands these to librdkafka. tidemark speaks the wire protocol itself, so
//! it reads the few that matter to it into [`ClientProperties`] and sorts the rest:
//! - used now: `security.protocol`, `client.id`, `request.timeout.ms`, `socket.timeout.ms`;
//! - TLS and SASL settings ([`SECURITY`], read by `security.rs` into the cluster's
//!   `Security`); when `security.protocol` does not use them they are listed in
//!   `unused_security`;
//! - settings only a consuming client cares about (`group.id`, `fetch.*`, …): `ignored`;
//! - everything else, Kerberos/GSSAPI included: `unsupported`, for the caller to warn about.
//!
//! Every key, whatever its class, stays in `consumer_properties` untouched.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The Kafka listener security protocol (`security.protocol`), PLAINTEXT by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// The librdkafka / Kafka spelling: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Plaintext,
            Self::Ssl,
            Self::SaslPlaintext,
            Self::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What tidemark takes from a cluster's `consumer_properties`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientProperties {
    pub security_protocol: SecurityProtocol,
    /// `client.id`; `None` when absent or empty.
    pub client_id: Option<String>,
    /// `request.timeout.ms` / `socket.timeout.ms`; the smaller when both are set.
    pub request_timeout: Option<Duration>,
    /// Keys that only matter to a consuming client (sorted); harmless to drop.
    pub ignored: Vec<String>,
    /// Keys tidemark does not support (sorted); the caller should warn about them.
    pub unsupported: Vec<String>,
    /// TLS (`ssl.*`) or SASL (`sasl.*`) keys that `security.protocol` does not use (sorted).
    pub unused_security: Vec<String>,
}

/// A property with a value tidemark cannot use.
#[derive(Debug)]
pub(super) struct PropertyError {
    pub key: String,
    pub problem: String,
    pub expected: String,
}

/// The TLS and SASL keys tidemark maps (see `security.rs`).
pub const SECURITY: &[&str] = &[
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.oauthbearer.token",
    "sasl.oauthbearer.token.file",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.extensions",
    "https.ca.location",
    "https.ca.pem",
    "aws.region",
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.certificate.pem",
    "ssl.key.location",
    "ssl.key.pem",
    "ssl.key.password",
    "enable.ssl.certificate.verification",
    "ssl.endpoint.identification.algorithm",
];

const IGNORED: &[&str] = &[
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "auto.offset.reset",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.partition.fetch.bytes",
    "isolation.level",
    "partition.assignment.strategy",
    "enable.partition.eof",
    "check.crcs",
    "statistics.interval.ms",
    "api.version.request",
    "api.version.request.timeout.ms",
    "api.version.fallback.ms",
    "broker.version.fallback",
    "metadata.max.age.ms",
    "topic.metadata.refresh.interval.ms",
    "topic.metadata.refresh.fast.interval.ms",
    "topic.metadata.refresh.sparse",
    "socket.keepalive.enable",
    "socket.nagle.disable",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "coordinator.query.interval.ms",
    "allow.auto.create.topics",
    "log_level",
    "log.connection.close",
    "debug",
];
const IGNORED_PREFIXES: &[&str] = &["fetch.", "max.poll.", "reconnect.backoff", "queued."];

/// Substrings that mark a property as secret (matched case-insensitively).
const SECRET_MARKERS: &[&str] = &[
    "password",
    "secret",
    "token",
    "sasl.oauthbearer.config",
    "key.password",
    "ssl.key.pem",
    "jaas",
];

/// Whether a property's value must never be shown (Debug, rendered config, logs). A path
/// (`*.location`, `*.file`, e.g. `sasl.oauthbearer.token.file`) is not a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key.ends_with(".location") || key.ends_with(".file") {
        return false;
    }
    SECRET_MARKERS.iter().any(|m| key.contains(m))
}

fn in_class(key: &str, exact: &[&str], prefixes: &[&str]) -> bool {
    exact.contains(&key) || prefixes.iter().any(|p| key.starts_with(p))
}

fn timeout_ms(key: &str, value: &str) -> Result<Duration, PropertyError> {
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(PropertyError {
            key: key.to_owned(),
            problem: format!("{value:?} is not a timeout in milliseconds"),
            expected: "a whole number of milliseconds greater than 0, e.g. \"30000\"".to_owned(),
        }),
    }
}

pub(super) fn classify(
    props: &BTreeMap<String, String>,
) -> Result<ClientProperties, PropertyError> {
    let mut client = ClientProperties::default();
    for (key, value) in props {
        match key.as_str() {
            "security.protocol" => {
                client.security_protocol =
                    SecurityProtocol::parse(value).ok_or_else(|| PropertyError {
                        key: key.clone(),
                        problem: format!("{value:?} is not a security protocol"),
                        expected: "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL".to_owned(),
                    })?;
            }
            "client.id" => client.client_id = Some(value.clone()).filter(|v| !v.is_empty()),
            "request.timeout.ms" | "socket.timeout.ms" => {
                let timeout = timeout_ms(key, value)?;
                client.request_timeout =
                    Some(client.request_timeout.map_or(timeout, |t| t.min(timeout)));
            }
            "sasl.mechanism" | "sasl.mechanisms" if value.trim().eq_ignore_ascii_case("GSSAPI") => {
                client.unsupported.push(key.clone());
            }
            k if k.starts_with("sasl.kerberos.") => client.unsupported.push(key.clone()),
            k if SECURITY.contains(&k) => {}
            k if in_class(k, IGNORED, IGNORED_PREFIXES) => client.ignored.push(key.clone()),
            _ => client.unsupported.push(key.clone()),
        }
    }
    let protocol = client.security_protocol;
    client.unused_security = props
        .keys()
        .filter(|k| SECURITY.contains(&k.as_str()))
        .filter(|k| !client.unsupported.contains(k))
        .filter(|k| {
            let tls_key = k.starts_with("ssl.") || k.starts_with("enable.ssl.");
            if tls_key {
                !protocol.uses_tls()
            } else {
                !protocol.uses_sasl()
            }
        })
        .cloned()
        .collect();
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = classify(&BTreeMap::new()).unwrap();
        assert_eq!(c, ClientProperties::default());
        assert_eq!(c.security_protocol, SecurityProtocol::Plaintext);
    }

    #[test]
    fn security_protocol_any_case() {
        for (text, want) in [
            ("PLAINTEXT", SecurityProtocol::Plaintext),
            ("ssl", SecurityProtocol::Ssl),
            ("Sasl_Plaintext", SecurityProtocol::SaslPlaintext),
            ("sasl_ssl", SecurityProtocol::SaslSsl),
        ] {
            let c = classify(&props(&[("security.protocol", text)])).unwrap();
            assert_eq!(c.security_protocol, want);
        }
        let err = classify(&props(&[("security.protocol", "SASL")])).unwrap_err();
        assert_eq!(err.key, "security.protocol");
        assert!(err.problem.contains("\"SASL\""));
        assert!(err.expected.contains("SASL_SSL"));
        assert!(SecurityProtocol::SaslSsl.uses_tls() && SecurityProtocol::SaslSsl.uses_sasl());
        assert!(!SecurityProtocol::Plaintext.uses_tls());
    }

    #[test]
    fn client_id_and_timeouts() {
        let c = classify(&props(&[
            ("client.id", "tm"),
            ("request.timeout.ms", "15000"),
        ]))
        .unwrap();
        assert_eq!(c.client_id.as_deref(), Some("tm"));
        assert_eq!(c.request_timeout, Some(Duration::from_secs(15)));
        let c = classify(&props(&[
            ("socket.timeout.ms", "5000"),
            ("request.timeout.ms", "15000"),
        ]))
        .unwrap();
        assert_eq!(c.request_timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            classify(&props(&[("client.id", "")])).unwrap().client_id,
            None
        );
        for bad in ["abc", "-1", "0", "1.5", ""] {
            let err = classify(&props(&[("socket.timeout.ms", bad)])).unwrap_err();
            assert_eq!(err.key, "socket.timeout.ms");
        }
    }

    #[test]
    fn classes() {
        let c = classify(&props(&[
            ("group.id", "g"),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
            ("session.timeout.ms", "6000"),
            ("fetch.min.bytes", "1"),
            ("max.poll.interval.ms", "1"),
            ("reconnect.backoff.max.ms", "1"),
            ("queued.min.messages", "1"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
            ("ssl.ca.location", "/ca.pem"),
            ("sasl.oauthbearer.token.endpoint.url", "https://idp"),
            ("enable.ssl.certificate.verification", "true"),
            ("sasl.kerberos.service.name", "kafka"),
            ("compression.type", "lz4"),
            ("bootstrap.servers", "x:1"),
            ("sasl.oauthbearer.method", "oidc"),
            ("ssl.keystore.location", "/ks.p12"),
        ]))
        .unwrap();
        assert_eq!(
            c.ignored,
            [
                "auto.offset.reset",
                "enable.auto.commit",
                "fetch.min.bytes",
                "group.id",
                "max.poll.interval.ms",
                "queued.min.messages",
                "reconnect.backoff.max.ms",
                "session.timeout.ms"
            ]
        );
        assert_eq!(
            c.unsupported,
            [
                "bootstrap.servers",
                "compression.type",
                "sasl.kerberos.service.name",
                "ssl.keystore.location"
            ]
        );
        // PLAINTEXT uses none of the security keys that are set.
        assert_eq!(
            c.unused_security,
            [
                "enable.ssl.certificate.verification",
                "sasl.mechanism",
                "sasl.oauthbearer.method",
                "sasl.oauthbearer.token.endpoint.url",
                "sasl.password",
                "sasl.username",
                "ssl.ca.location"
            ]
        );
        let c = classify(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
            ("ssl.ca.location", "/ca.pem"),
            ("sasl.oauthbearer.method", "default"),
        ]))
        .unwrap();
        assert!(c.unsupported.is_empty(), "{:?}", c.unsupported);
        assert_eq!(c.unused_security, ["ssl.ca.location"]);
        let c = classify(&props(&[("sasl.mechanisms", "gssapi")])).unwrap();
        assert_eq!(c.unsupported, ["sasl.mechanisms"]);
    }

    #[test]
    fn secret_keys() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.token",
            "SASL.PASSWORD",
            "ssl.key.pem",
            "sasl.jaas.config",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "sasl.username",
            "ssl.ca.location",
            "ssl.key.location",
            "sasl.oauthbearer.token.file",
            "security.protocol",
            "client.id",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
