//! [`Config::to_redacted_toml`]: the resolved config as TOML, secrets redacted.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Serialize;

use super::bytesize::format_byte_size;
use super::duration::format_duration;
use super::{
    is_secret_key, redact_url_userinfo, Config, PushAuth, PushTls, RemoteWriteConfig, REDACTED,
};
use crate::kafka::sasl::Secret;

#[derive(Serialize)]
struct Root {
    exporter: Exporter,
    clusters: Vec<Cluster>,
}

#[derive(Serialize)]
struct Exporter {
    poll_interval: String,
    staleness_threshold: String,
    http_port: u16,
    http_host: String,
    granularity: &'static str,
    max_response_memory: String,
    timestamp_sampling: TimestampSampling,
    otel: Otel,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_write: Option<RemoteWrite>,
    performance: Performance,
    leadership: Leadership,
    status: Status,
}

#[derive(Serialize)]
struct Status {
    enabled: bool,
    window: String,
    error_time_lag: String,
}

#[derive(Serialize)]
struct Leadership {
    enabled: bool,
    provider: &'static str,
    lease_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
    lease_duration_secs: u64,
    grace_period_secs: u64,
    shard_groups_above: u32,
}

#[derive(Serialize)]
struct TimestampSampling {
    enabled: bool,
    cache_ttl: String,
    max_concurrent_fetches: u64,
    fetch_requests_per_broker: u32,
}

#[derive(Serialize)]
struct Otel {
    enabled: bool,
    endpoint: String,
    export_interval: String,
    timeout: String,
    protocol: &'static str,
    compression: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tls: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RemoteWrite {
    enabled: bool,
    url: String,
    interval: String,
    timeout: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bearer_token: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bearer_token_file: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tls: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct BasicAuth {
    username: String,
    password: &'static str,
}

/// Header values may be credentials (`Authorization`): all are shown redacted.
fn headers(headers: &[(String, Secret)]) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, _)| (k.clone(), REDACTED.to_owned()))
        .collect()
}

fn tls(tls: Option<&PushTls>) -> BTreeMap<String, String> {
    tls.map(|t| {
        t.properties
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_key(k) { REDACTED } else { v };
                (k.clone(), v.to_owned())
            })
            .collect()
    })
    .unwrap_or_default()
}

fn remote_write(r: &RemoteWriteConfig) -> RemoteWrite {
    let (basic_auth, bearer_token, bearer_token_file) = match &r.auth {
        PushAuth::None => (None, None, None),
        PushAuth::Basic { username, .. } => (
            Some(BasicAuth {
                username: username.clone(),
                password: REDACTED,
            }),
            None,
            None,
        ),
        PushAuth::Bearer(_) => (None, Some(REDACTED), None),
        PushAuth::BearerFile(path) => (None, None, Some(path.display().to_string())),
    };
    RemoteWrite {
        enabled: r.enabled,
        url: redact_url_userinfo(&r.url),
        interval: format_duration(r.interval),
        timeout: format_duration(r.timeout),
        headers: headers(&r.headers),
        basic_auth,
        bearer_token,
        bearer_token_file,
        tls: tls(r.tls.as_ref()),
    }
}

#[derive(Serialize)]
struct Performance {
    kafka_timeout: String,
    offset_fetch_timeout: String,
    max_concurrent_groups: u64,
    max_concurrent_watermarks: u64,
}

#[derive(Serialize)]
struct Cluster {
    name: String,
    bootstrap_servers: String,
    group_whitelist: Vec<String>,
    group_blacklist: Vec<String>,
    topic_whitelist: Vec<String>,
    topic_blacklist: Vec<String>,
    consumer_properties: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

fn patterns(regexes: &[Regex]) -> Vec<String> {
    regexes.iter().map(|r| r.as_str().to_owned()).collect()
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// One comment line: control characters (a newline in a file name) are escaped.
fn comment(text: &str) -> String {
    let clean: String = text.chars().flat_map(char::escape_debug).collect();
    format!("# {clean}\n")
}

pub(super) fn to_redacted_toml(config: &Config) -> String {
    let e = &config.exporter;
    let root = Root {
        exporter: Exporter {
            poll_interval: format_duration(e.poll_interval),
            staleness_threshold: format_duration(e.staleness()),
            http_port: e.http_port,
            http_host: e.http_host.clone(),
            granularity: e.granularity.as_str(),
            max_response_memory: format_byte_size(e.max_response_memory),
            timestamp_sampling: TimestampSampling {
                enabled: e.timestamp_sampling.enabled,
                cache_ttl: format_duration(e.timestamp_sampling.cache_ttl),
                max_concurrent_fetches: count(e.timestamp_sampling.max_concurrent_fetches),
                fetch_requests_per_broker: e.timestamp_sampling.fetch_requests_per_broker,
            },
            otel: Otel {
                enabled: e.otel.enabled,
                endpoint: redact_url_userinfo(&e.otel.endpoint),
                export_interval: format_duration(e.otel.export_interval),
                timeout: format_duration(e.otel.timeout),
                protocol: e.otel.protocol.as_str(),
                compression: if e.otel.gzip { "gzip" } else { "none" },
                headers: headers(&e.otel.headers),
                tls: tls(e.otel.tls.as_ref()),
            },
            remote_write: e.remote_write.as_ref().map(remote_write),
            performance: Performance {
                kafka_timeout: format_duration(e.performance.kafka_timeout),
                offset_fetch_timeout: format_duration(e.performance.offset_fetch_timeout),
                max_concurrent_groups: count(e.performance.max_concurrent_groups),
                max_concurrent_watermarks: count(e.performance.max_concurrent_watermarks),
            },
            leadership: Leadership {
                enabled: e.leadership.enabled,
                provider: e.leadership.provider.as_str(),
                lease_name: e.leadership.lease_name.clone(),
                lease_namespace: e.leadership.lease_namespace.clone(),
                identity: e.leadership.identity.clone(),
                lease_duration_secs: e.leadership.lease_duration.as_secs(),
                grace_period_secs: e.leadership.grace_period.as_secs(),
                shard_groups_above: e.leadership.shard_groups_above,
            },
            status: Status {
                enabled: e.status.enabled,
                window: format_duration(e.status.window),
                error_time_lag: format_duration(e.status.error_time_lag),
            },
        },
        clusters: config
            .clusters
            .iter()
            .map(|c| Cluster {
                name: c.name.clone(),
                bootstrap_servers: c.bootstrap_servers.join(","),
                group_whitelist: patterns(&c.group_whitelist),
                group_blacklist: patterns(&c.group_blacklist),
                topic_whitelist: patterns(&c.topic_whitelist),
                topic_blacklist: patterns(&c.topic_blacklist),
                consumer_properties: c
                    .consumer_properties
                    .iter()
                    .map(|(k, v)| {
                        let v = if is_secret_key(k) { REDACTED } else { v };
                        (k.clone(), v.to_owned())
                    })
                    .collect(),
                labels: c.labels.clone(),
            })
            .collect(),
    };
    let mut out = comment(&format!(
        "tidemark configuration resolved from {} (defaults filled in, secrets redacted)",
        config.source
    ));
    if !config.unknown_keys.is_empty() {
        out.push_str(&comment(&format!(
            "ignored unknown keys: {}",
            config.unknown_keys.join(", ")
        )));
    }
    out.push('\n');
    match toml::to_string_pretty(&root) {
        // Escape `${` so that reading the output back substitutes nothing.
        Ok(body) => out.push_str(&body.replace("${", "$${")),
        Err(e) => out.push_str(&comment(&format!("cannot render the configuration: {e}"))),
    }
    out
}
