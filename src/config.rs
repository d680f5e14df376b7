//! Configuration: klag-exporter's TOML format, read unchanged.
//!
//! [`load`] reads a file, substitutes `${VAR}` references from the environment (see
//! the rules in the Decisions below), parses TOML, applies defaults and validates everything,
//! so the rest of tidemark only ever sees a complete, valid [`Config`].
//!
//! # Decisions
//! - **Errors** name the file, the key path (`clusters[1].group_whitelist[0]`) and what
//!   was expected: `config.toml: exporter.poll_interval: "30 parsecs" is not a duration,
//!   expected e.g. "30s", "500ms", "2m"`. Substitution errors name the line instead of a
//!   key; TOML syntax errors keep the parser's line and column (of the file as written).
//!   Values of secret keys never appear in errors.
//! - **Unknown keys are not errors.** klag-exporter has settings tidemark does not
//!   (rate-based sampling, MSK IAM, …); a klag config must load
//!   unchanged. Every unrecognised key is collected in [`Config::unknown_keys`] and
//!   reported in one warning line ([`Config::warnings`]). The cost: a misspelt key warns
//!   instead of failing, so read that warning.
//! - **Environment substitution** (`${VAR}`, `${VAR:-default}`, `${?VAR}`, `$${` for a
//!   literal `${`) runs on the file text before parsing, as in klag-exporter, so
//!   `http_port = ${PORT:-8000}` works. Unlike klag-exporter an unset `${VAR}` is an error,
//!   comments are never substituted, and values inside double-quoted strings are escaped
//!   (a password with `"` or `\` arrives intact). Details in `env.rs`.
//! - **Leniency where klag-exporter would reject nothing useful**: a missing `[exporter]`
//!   section means all defaults; `bootstrap_servers` may be a string or an array; a
//!   filter list may be a single string; numbers and booleans may be given as strings
//!   (handy after substitution); unquoted dotted keys in `consumer_properties`
//!   (`security.protocol = "SSL"`) are read as the dotted name.
//! - **Filters** are matched with [`regex::Regex::is_match`] exactly as written, i.e.
//!   unanchored (klag-exporter semantics): `"prod"` allows `"preprod-x"`; write `"^prod-"`
//!   to anchor.

mod bytesize;
mod client;
mod duration;
mod env;
mod locate;
mod push;
mod render;
mod schema;
mod security;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use regex::Regex;

use crate::kafka::tls::Verification;
use crate::kafka::Security;

pub use bytesize::{format_byte_size, parse_byte_size};
pub use client::{is_secret_key, ClientProperties, SecurityProtocol};
pub use duration::{format_duration, parse_duration};
pub use push::{
    parse_url, OtelConfig, OtlpProtocol, PushAuth, PushTls, PushUrl, RemoteWriteConfig,
};

/// Label names tidemark itself puts on series; `[clusters.labels]` may not use them.
pub const RESERVED_LABELS: &[&str] = &[
    "cluster_name",
    "group",
    "topic",
    "partition",
    "member_host",
    "consumer_id",
    "client_id",
    "compaction_detected",
    "data_loss_detected",
    // tidemark's operational families.
    "broker",
    "api",
    "reason",
    "item",
    // Prometheus' own: histogram buckets.
    "le",
];

/// Smallest `max_response_memory`: below it, large but ordinary answers (Metadata of a big
/// cluster) could never be read.
pub const MIN_RESPONSE_MEMORY: u64 = 1 << 20;

pub use crate::secret::REDACTED;

/// A complete, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub exporter: ExporterConfig,
    /// At least one; names are unique.
    pub clusters: Vec<ClusterSettings>,
    /// The file it was read from (as given to [`load`] / [`parse`]).
    pub source: String,
    /// Key paths present in the file that tidemark does not use, e.g.
    /// `exporter.timestamp_sampling.mode`, `clusters[0].aws_msk_iam`. For one warning line.
    pub unknown_keys: Vec<String>,
    /// The line (in the file as written) of every key path, for `file:line` in strict-mode
    /// errors.
    pub key_lines: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterConfig {
    /// Time between collection cycles (`poll_interval`, default 30s, never zero).
    pub poll_interval: Duration,
    /// How long values that could not be read again (a broker down, an answer that could not
    /// be decoded) keep being served, marked stale, before their series disappear
    /// (klag-exporter's `staleness_threshold`; default 3 × `poll_interval`).
    pub staleness_threshold: Duration,
    pub http_port: u16,
    pub http_host: String,
    pub granularity: Granularity,
    /// Bytes of Kafka responses held in memory at once, by every connection of every
    /// cluster together (`max_response_memory`, tidemark's own key; at least
    /// [`MIN_RESPONSE_MEMORY`]). See [`crate::kafka::ResponseBudget`].
    pub max_response_memory: u64,
    pub timestamp_sampling: TimestampSampling,
    pub otel: OtelConfig,
    /// `[exporter.remote_write]`; None when the table is absent.
    pub remote_write: Option<RemoteWriteConfig>,
    pub performance: Performance,
    pub leadership: LeadershipConfig,
    pub status: StatusConfig,
}

/// `[exporter.status]`: consumer status, consumption rate and catch-up estimate, evaluated
/// over a sliding window of the last cycles (tidemark's own keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusConfig {
    pub enabled: bool,
    /// Span of the window; it holds `window / poll_interval + 1` cycles (at least 2).
    pub window: Duration,
    /// Time lag above which a partition with lag is ERR.
    pub error_time_lag: Duration,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            window: Duration::from_secs(600),
            error_time_lag: Duration::from_secs(600),
        }
    }
}

impl StatusConfig {
    /// Most cycles a window holds, whatever the ratio of window to poll interval.
    pub const MAX_POINTS: usize = 1000;

    /// The rules of the status evaluation at `poll_interval`.
    pub fn rules(&self, poll_interval: Duration) -> crate::lag::StatusRules {
        let steps = self.window.as_millis() / poll_interval.as_millis().max(1);
        crate::lag::StatusRules {
            points: usize::try_from(steps.saturating_add(1))
                .unwrap_or(usize::MAX)
                .clamp(2, Self::MAX_POINTS),
            error_lag_seconds: self.error_time_lag.as_secs_f64(),
        }
    }
}

/// `[exporter.leadership]`: replicas share the work through a coordination group in each
/// monitored cluster (see [`crate::ha`]). klag-exporter's keys: `lease_name` is the group
/// id, `lease_duration_secs` the session timeout, `grace_period_secs` the heartbeat
/// interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadershipConfig {
    pub enabled: bool,
    pub provider: LeadershipProvider,
    /// The coordination group's id.
    pub lease_name: String,
    /// Accepted for klag-exporter configs; a Kafka group has no namespace.
    pub lease_namespace: Option<String>,
    /// This replica's stable name; default `POD_NAME`, `HOSTNAME`, the host name.
    pub identity: Option<String>,
    /// Session timeout: a replica silent this long is replaced.
    pub lease_duration: Duration,
    /// Heartbeat interval, less than `lease_duration`.
    pub grace_period: Duration,
    /// Consumer groups are shared out one by one on a cluster with more than this many
    /// (tidemark's own key); below, the cluster's owner reads them all.
    pub shard_groups_above: u32,
}

/// Where the election happens: always the Kafka cluster (`kubernetes` is accepted and
/// mapped onto it, with a warning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LeadershipProvider {
    #[default]
    Kafka,
    Kubernetes,
}

impl LeadershipProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Kubernetes => "kubernetes",
        }
    }
}

impl Default for LeadershipConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            provider: LeadershipProvider::Kafka,
            lease_name: "tidemark".to_owned(),
            lease_namespace: None,
            identity: None,
            lease_duration: Duration::from_secs(15),
            grace_period: Duration::from_secs(5),
            shard_groups_above: 1000,
        }
    }
}

/// Level of detail of the consumer-group lag series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// Per-topic aggregates only.
    Topic,
    /// Per-partition series as well.
    #[default]
    Partition,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Topic => "topic",
            Self::Partition => "partition",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampSampling {
    pub enabled: bool,
    /// klag-exporter's cache TTL. tidemark's timestamp cache is keyed by
    /// (topic, partition, offset) — a record's timestamp never changes — so this is only
    /// the longest time an entry no group points at is kept.
    pub cache_ttl: Duration,
    /// At least 1 when `enabled`.
    pub max_concurrent_fetches: usize,
    /// Fetch requests per broker per cycle for time-lag samples (tidemark's own key); at
    /// least 1. Samples beyond them wait for the next cycle.
    pub fetch_requests_per_broker: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Performance {
    /// Per-request timeout for metadata, group and watermark requests (never zero).
    pub kafka_timeout: Duration,
    /// Timeout for committed-offset requests (never zero).
    pub offset_fetch_timeout: Duration,
    /// At least 1.
    pub max_concurrent_groups: usize,
    /// At least 1.
    pub max_concurrent_watermarks: usize,
}

/// One `[[clusters]]` entry.
#[derive(Clone)]
pub struct ClusterSettings {
    /// Non-empty, unique; the `cluster_name` label.
    pub name: String,
    /// `host:port` entries (a `PROTOCOL://` prefix is stripped), at least one.
    pub bootstrap_servers: Vec<String>,
    pub group_whitelist: Vec<Regex>,
    pub group_blacklist: Vec<Regex>,
    pub topic_whitelist: Vec<Regex>,
    pub topic_blacklist: Vec<Regex>,
    /// Every property as written (values as strings), secrets included: never log it
    /// directly; `Debug` redacts.
    pub consumer_properties: BTreeMap<String, String>,
    /// Extra labels on every series of this cluster; names validated. Clusters may have
    /// different label names.
    pub labels: BTreeMap<String, String>,
    /// What tidemark reads from `consumer_properties`.
    pub client: ClientProperties,
    /// TLS and SASL, built from `consumer_properties` with every file read and checked.
    pub security: Security,
}

impl ClusterSettings {
    /// A cluster with every optional setting at its default (for tests and tools).
    pub fn new(name: impl Into<String>, bootstrap_servers: Vec<String>) -> Self {
        Self {
            name: name.into(),
            bootstrap_servers,
            group_whitelist: vec![match_all()],
            group_blacklist: Vec::new(),
            topic_whitelist: vec![match_all()],
            topic_blacklist: Vec::new(),
            consumer_properties: BTreeMap::new(),
            labels: BTreeMap::new(),
            client: ClientProperties::default(),
            security: Security::Plaintext,
        }
    }

    /// Whether a consumer group is monitored: it matches at least one whitelist regex and
    /// no blacklist regex. Regexes are unanchored (`is_match`), as in klag-exporter.
    pub fn group_allowed(&self, group: &str) -> bool {
        allowed(&self.group_whitelist, &self.group_blacklist, group)
    }

    /// Whether a topic is monitored; same rules as [`Self::group_allowed`].
    pub fn topic_allowed(&self, topic: &str) -> bool {
        allowed(&self.topic_whitelist, &self.topic_blacklist, topic)
    }
}

fn allowed(whitelist: &[Regex], blacklist: &[Regex], name: &str) -> bool {
    whitelist.iter().any(|r| r.is_match(name)) && !blacklist.iter().any(|r| r.is_match(name))
}

fn match_all() -> Regex {
    Regex::new(".*").expect("\".*\" is a valid regex")
}

/// Kafka's internal topics (`__consumer_offsets`, `__transaction_state`).
fn internal_topics() -> Regex {
    Regex::new("__.*").expect("\"__.*\" is a valid regex")
}

impl ExporterConfig {
    /// [`ExporterConfig::staleness_threshold`] with its default applied.
    pub fn staleness(&self) -> Duration {
        self.staleness_threshold
    }
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(30),
            staleness_threshold: Duration::from_secs(90),
            http_port: 8000,
            http_host: "0.0.0.0".to_owned(),
            // klag-exporter's default (its sample configs set "partition" explicitly).
            granularity: Granularity::Topic,
            max_response_memory: crate::kafka::DEFAULT_RESPONSE_MEMORY as u64,
            timestamp_sampling: TimestampSampling::default(),
            otel: OtelConfig::default(),
            remote_write: None,
            performance: Performance::default(),
            leadership: LeadershipConfig::default(),
            status: StatusConfig::default(),
        }
    }
}

impl Default for TimestampSampling {
    fn default() -> Self {
        Self {
            enabled: true,
            cache_ttl: Duration::from_secs(60),
            max_concurrent_fetches: 5,
            fetch_requests_per_broker: 2,
        }
    }
}

impl Default for Performance {
    fn default() -> Self {
        Self {
            kafka_timeout: Duration::from_secs(30),
            offset_fetch_timeout: Duration::from_secs(10),
            max_concurrent_groups: 10,
            max_concurrent_watermarks: 50,
        }
    }
}

/// Why a config was rejected. Every variant's message starts with the file name.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the file: {error}, expected a readable TOML file")]
    Read { file: String, error: std::io::Error },
    #[error("{file}: line {line}: {problem}, expected {expected}")]
    Substitution {
        file: String,
        line: usize,
        problem: String,
        expected: String,
    },
    /// Line and column refer to the file as written (before substitution).
    #[error("{file}: line {line}, column {column}: TOML syntax error: {message}\n{snippet}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
        /// The offending line of the file as written, with a caret.
        snippet: String,
    },
    #[error("{file}: {key}: {problem}, expected {expected}")]
    Invalid {
        file: String,
        /// e.g. `clusters[1].group_whitelist[0]`.
        key: String,
        problem: String,
        expected: String,
    },
}

/// Reads and validates the config file at `path`, substituting from the process
/// environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        file: source.clone(),
        error,
    })?;
    parse(&text, &source, &|name| std::env::var(name).ok())
}

/// Validates config `text`; `source` names it in errors, `env` supplies variables.
pub fn parse(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let substituted = env::substitute(text, env).map_err(|e| ConfigError::Substitution {
        file: source.to_owned(),
        line: e.line,
        problem: e.problem,
        expected: e.expected,
    })?;
    let table: toml::Table = substituted
        .text
        .parse()
        .map_err(|e: toml::de::Error| syntax_error(source, text, &substituted, &e))?;
    let mut config = schema::build(table, source)?;
    config.key_lines = locate::key_lines(text, &substituted);
    Ok(config)
}

/// A configuration of one cluster given as values instead of a file (`tidemark lag
/// --bootstrap`): `name`, `bootstrap_servers` (`"host:port,..."`) and `consumer_properties`
/// as they would be written in a `[[clusters]]` section, checked by the same rules and
/// with the same defaults as a file; errors name `source` in place of a file.
pub fn single_cluster(
    source: &str,
    name: &str,
    bootstrap_servers: &str,
    consumer_properties: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    use toml::Value;
    let mut cluster = toml::Table::new();
    cluster.insert("name".into(), Value::String(name.to_owned()));
    cluster.insert(
        "bootstrap_servers".into(),
        Value::String(bootstrap_servers.to_owned()),
    );
    let properties: toml::Table = consumer_properties
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    cluster.insert("consumer_properties".into(), Value::Table(properties));
    let mut root = toml::Table::new();
    root.insert("clusters".into(), Value::Array(vec![Value::Table(cluster)]));
    schema::build(root, source)
}

fn syntax_error(
    file: &str,
    original: &str,
    substituted: &env::Substituted,
    error: &toml::de::Error,
) -> ConfigError {
    let message = error.message().trim().to_owned();
    let offset = error
        .span()
        .map(|s| substituted.original_offset(s.start).min(original.len()))
        .unwrap_or(0);
    let line = env::line_of(original, offset);
    let line_start = original[..offset].rfind('\n').map_or(0, |n| n + 1);
    let line_text = original[line_start..].lines().next().unwrap_or("");
    let before = &original[line_start..offset];
    let caret: String = before
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let gutter = " ".repeat(line.to_string().len());
    // The line is shown as written (no substituted values), unless it looks like it
    // holds a secret typed into the file itself.
    let snippet = if is_secret_key(line_text) {
        format!("{gutter} |\n{line} | (line not shown: it may hold a secret)")
    } else {
        format!("{gutter} |\n{line} | {line_text}\n{gutter} | {caret}^")
    };
    ConfigError::Syntax {
        file: file.to_owned(),
        line,
        column: before.chars().count() + 1,
        message,
        snippet,
    }
}

impl Config {
    /// What strict mode refuses: every key tidemark does not know and every
    /// consumer property it does not support, one line each, named with `file:line`.
    pub fn strict_problems(&self) -> Vec<String> {
        let at = |path: &str| match self.key_lines.get(path) {
            Some(line) => format!("{}:{line}", self.source),
            None => self.source.clone(),
        };
        let mut out: Vec<String> = self
            .unknown_keys
            .iter()
            .map(|key| format!("{}: {key}: unknown key", at(key)))
            .collect();
        for (i, cluster) in self.clusters.iter().enumerate() {
            for property in &cluster.client.unsupported {
                let path = format!("clusters[{i}].consumer_properties.{property:?}");
                out.push(format!(
                    "{}: {path}: consumer property tidemark does not support",
                    at(&path)
                ));
            }
        }
        out
    }

    /// The resolved configuration (after substitution and defaults) as TOML that
    /// [`parse`] reads back to the same config, with secret values replaced by
    /// [`REDACTED`].
    pub fn to_redacted_toml(&self) -> String {
        render::to_redacted_toml(self)
    }

    /// The one warning `provider = "kubernetes"` gets: tidemark elects through Kafka.
    pub fn leadership_warning(&self) -> Option<String> {
        let leadership = &self.exporter.leadership;
        (leadership.enabled && leadership.provider == LeadershipProvider::Kubernetes).then(|| {
            format!(
                "{}: exporter.leadership: provider = \"kubernetes\" elects through the Kafka \
                 cluster instead (a coordination group named by lease_name): the same \
                 active/standby behaviour, no Lease object and no Kubernetes RBAC needed",
                self.source
            )
        })
    }

    /// Warning lines for the caller to log once at startup: unknown keys (one line),
    /// unsupported consumer properties (one line per cluster).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.unknown_keys.is_empty() {
            out.push(format!(
                "{}: ignoring keys tidemark does not use (klag-exporter features it lacks, \
                 or typos): {}",
                self.source,
                self.unknown_keys.join(", ")
            ));
        }
        out.extend(self.leadership_warning());
        for cluster in &self.clusters {
            if !cluster.client.unsupported.is_empty() {
                out.push(format!(
                    "{}: cluster {:?}: consumer_properties not supported by tidemark, \
                     ignored: {}",
                    self.source,
                    cluster.name,
                    cluster.client.unsupported.join(", ")
                ));
            }
            if !cluster.client.unused_security.is_empty() {
                out.push(format!(
                    "{}: cluster {:?}: security.protocol is {}, so these consumer_properties \
                     have no effect: {}",
                    self.source,
                    cluster.name,
                    cluster.client.security_protocol,
                    cluster.client.unused_security.join(", ")
                ));
            }
            match cluster.security.tls().map(|t| t.verification()) {
                Some(Verification::None) => out.push(format!(
                    "{}: cluster {:?}: enable.ssl.certificate.verification = false: the \
                     brokers' TLS certificates are NOT verified, so anyone on the network path \
                     can impersonate them (and read SASL credentials); use it for tests only",
                    self.source, cluster.name
                )),
                Some(Verification::NoHostname) => out.push(format!(
                    "{}: cluster {:?}: ssl.endpoint.identification.algorithm = none: the \
                     brokers' certificates are not checked against their host names",
                    self.source, cluster.name
                )),
                _ => {}
            }
        }
        out
    }

    /// Logs [`Self::warnings`] with `tracing::warn!`, and the consumer-only properties
    /// that were dropped with `tracing::debug!`.
    pub fn log_warnings(&self) {
        for warning in self.warnings() {
            tracing::warn!("{warning}");
        }
        for cluster in &self.clusters {
            if !cluster.client.ignored.is_empty() {
                tracing::debug!(
                    cluster = %cluster.name,
                    "consumer-only properties ignored: {}",
                    cluster.client.ignored.join(", ")
                );
            }
        }
    }
}

/// A map shown with secret values replaced by [`REDACTED`].
struct RedactedMap<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let v = if is_secret_key(k) {
                    REDACTED
                } else {
                    v.as_str()
                };
                (k, v)
            }))
            .finish()
    }
}

impl fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("name", &self.name)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("group_whitelist", &self.group_whitelist)
            .field("group_blacklist", &self.group_blacklist)
            .field("topic_whitelist", &self.topic_whitelist)
            .field("topic_blacklist", &self.topic_blacklist)
            .field(
                "consumer_properties",
                &RedactedMap(&self.consumer_properties),
            )
            .field("labels", &self.labels)
            .field("client", &self.client)
            .field("security", &self.security)
            .finish()
    }
}

/// `scheme://user:pass@host/…` → `scheme://***redacted***@host/…`.
pub(crate) fn redact_url_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|n| n + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |n| scheme_end + n);
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{REDACTED}{}",
            &url[..scheme_end],
            &url[scheme_end + at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
