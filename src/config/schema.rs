//! From a parsed TOML table to a validated [`Config`]: types, defaults, checks, key paths.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::time::Duration;

use regex::Regex;
use toml::{Table, Value};

use super::bytesize::{format_byte_size, parse_byte_size};
use super::client::{self, PropertyError};
use super::duration::parse_duration;
use super::security;
use super::{
    ClusterSettings, Config, ConfigError, ExporterConfig, Granularity, Performance, StatusConfig,
    TimestampSampling, MIN_RESPONSE_MEMORY, RESERVED_LABELS,
};

mod leadership;
mod push;

const DURATION_EXAMPLES: &str = "e.g. \"30s\", \"500ms\", \"2m\"";
const BYTE_SIZE_EXAMPLES: &str = "e.g. \"128MiB\", \"512KiB\", \"1GiB\"";

pub(super) fn build(mut root: Table, file: &str) -> Result<Config, ConfigError> {
    let mut walker = Walker {
        file,
        unknown: Vec::new(),
    };
    let exporter = match root.remove("exporter") {
        Some(v) => {
            let t = walker.table(v, "exporter")?;
            walker.exporter(t)?
        }
        None => ExporterConfig::default(),
    };
    let clusters = walker.clusters(root.remove("clusters"))?;
    walker.leftover(root, "");
    walker.unknown.sort();
    Ok(Config {
        exporter,
        clusters,
        source: file.to_owned(),
        unknown_keys: walker.unknown,
        key_lines: Default::default(),
    })
}

/// `parent.key`, quoting keys that are not bare TOML keys.
pub(super) fn child(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// A short description of a value for error messages.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => format!("the date-time {d}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

pub(super) struct Walker<'a> {
    file: &'a str,
    unknown: Vec<String>,
}

impl Walker<'_> {
    fn invalid(&self, key: &str, problem: impl Display, expected: impl Display) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.to_owned(),
            problem: problem.to_string(),
            expected: expected.to_string(),
        }
    }

    fn leftover(&mut self, table: Table, path: &str) {
        self.unknown
            .extend(table.keys().map(|key| child(path, key)));
    }

    fn table(&self, value: Value, path: &str) -> Result<Table, ConfigError> {
        match value {
            Value::Table(t) => Ok(t),
            other => Err(self.invalid(
                path,
                format!("{} is not a table", describe(&other)),
                format!("a [{path}] section or an inline table {{ … }}"),
            )),
        }
    }

    /// Removes `key` from `table` and converts it, or returns `default` when absent.
    fn get<T>(
        &self,
        table: &mut Table,
        parent: &str,
        key: &str,
        default: T,
        convert: impl FnOnce(&Self, Value, &str) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        match table.remove(key) {
            Some(value) => convert(self, value, &child(parent, key)),
            None => Ok(default),
        }
    }

    /// Removes the sub-table `key` from `table` and reads it with `read`, or returns
    /// `default` when absent.
    fn section<T>(
        &mut self,
        table: &mut Table,
        parent: &str,
        key: &str,
        default: T,
        read: impl FnOnce(&mut Self, Table, &str) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        match table.remove(key) {
            Some(value) => {
                let path = child(parent, key);
                let t = self.table(value, &path)?;
                read(self, t, &path)
            }
            None => Ok(default),
        }
    }

    fn string(&self, value: Value, path: &str) -> Result<String, ConfigError> {
        match value {
            Value::String(s) => Ok(s),
            other => Err(self.invalid(
                path,
                format!("{} is not a string", describe(&other)),
                "a quoted string",
            )),
        }
    }

    fn non_empty_string(&self, value: Value, path: &str) -> Result<String, ConfigError> {
        let s = self.string(value, path)?;
        if s.trim().is_empty() {
            return Err(self.invalid(path, "is empty", "a non-empty string"));
        }
        Ok(s)
    }

    /// What the listener can bind with `http_port`: an IP address or a host name (resolved
    /// when binding, as klag-exporter's `host:port` is). Checked here so that `host:port`
    /// or a mistyped address fails `--check-config`, not the start.
    fn http_host(&self, value: Value, path: &str) -> Result<String, ConfigError> {
        let s = self.non_empty_string(value, path)?;
        let host = s.trim();
        if is_ip_or_host_name(host) {
            return Ok(host.to_owned());
        }
        Err(self.invalid(
            path,
            format!("{s:?} is not an IP address or host name"),
            "an IPv4 or IPv6 address (\"0.0.0.0\", \"::\", \"127.0.0.1\") or a host name (\"localhost\"), without a port (that is http_port)",
        ))
    }

    fn boolean(&self, value: Value, path: &str) -> Result<bool, ConfigError> {
        match &value {
            Value::Boolean(b) => return Ok(*b),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => return Ok(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => return Ok(false),
            _ => {}
        }
        Err(self.invalid(
            path,
            format!("{} is not a boolean", describe(&value)),
            "true or false",
        ))
    }

    /// An integer in `min..=max` (a string holding one is accepted too).
    fn integer(&self, value: Value, path: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
        let n = match &value {
            Value::Integer(n) => Some(*n),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        let expected = format!("a whole number from {min} to {max}");
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            Some(n) => Err(self.invalid(path, format!("{n} is out of range"), expected)),
            None => Err(self.invalid(
                path,
                format!("{} is not a whole number", describe(&value)),
                expected,
            )),
        }
    }

    fn count(&self, value: Value, path: &str) -> Result<usize, ConfigError> {
        let n = self.integer(value, path, 0, i64::from(u32::MAX))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn duration(&self, value: Value, path: &str) -> Result<Duration, ConfigError> {
        match &value {
            Value::String(s) => parse_duration(s).ok_or_else(|| {
                self.invalid(path, format!("{s:?} is not a duration"), DURATION_EXAMPLES)
            }),
            Value::Integer(_) | Value::Float(_) => Err(self.invalid(
                path,
                format!("{} is a number without a unit", describe(&value)),
                format!("a quoted duration with a unit, {DURATION_EXAMPLES}"),
            )),
            other => Err(self.invalid(
                path,
                format!("{} is not a duration", describe(other)),
                DURATION_EXAMPLES,
            )),
        }
    }

    fn positive_duration(&self, value: Value, path: &str) -> Result<Duration, ConfigError> {
        let text = describe(&value);
        let d = self.duration(value, path)?;
        if d.is_zero() {
            return Err(self.invalid(
                path,
                format!("{text} is zero"),
                format!("a duration greater than zero, {DURATION_EXAMPLES}"),
            ));
        }
        Ok(d)
    }

    /// A byte size: a quoted number with a unit, or a bare whole number of bytes.
    fn byte_size(&self, value: Value, path: &str) -> Result<u64, ConfigError> {
        match &value {
            Value::String(s) => parse_byte_size(s).ok_or_else(|| {
                self.invalid(
                    path,
                    format!("{s:?} is not a byte size"),
                    format!("a whole number with a unit, {BYTE_SIZE_EXAMPLES}"),
                )
            }),
            Value::Integer(n) => u64::try_from(*n).map_err(|_| {
                self.invalid(
                    path,
                    format!("{n} is negative"),
                    format!("a byte size, {BYTE_SIZE_EXAMPLES}"),
                )
            }),
            other => Err(self.invalid(
                path,
                format!("{} is not a byte size", describe(other)),
                BYTE_SIZE_EXAMPLES,
            )),
        }
    }

    fn response_memory(&self, value: Value, path: &str) -> Result<u64, ConfigError> {
        let text = describe(&value);
        let bytes = self.byte_size(value, path)?;
        if bytes < MIN_RESPONSE_MEMORY {
            return Err(self.invalid(
                path,
                format!("{text} is too small"),
                format!(
                    "at least {} (the largest ordinary answers, Metadata of a big cluster, must fit)",
                    format_byte_size(MIN_RESPONSE_MEMORY)
                ),
            ));
        }
        Ok(bytes)
    }

    fn exporter(&mut self, mut t: Table) -> Result<ExporterConfig, ConfigError> {
        let p = "exporter";
        let d = ExporterConfig::default();
        let poll_interval = self.get(
            &mut t,
            p,
            "poll_interval",
            d.poll_interval,
            Self::positive_duration,
        )?;
        let staleness_threshold = self.get(
            &mut t,
            p,
            "staleness_threshold",
            poll_interval.saturating_mul(3),
            Self::positive_duration,
        )?;
        let http_port = self.get(&mut t, p, "http_port", d.http_port, |w, v, path| {
            let n = w.integer(v, path, 0, i64::from(u16::MAX))?;
            Ok(u16::try_from(n).unwrap_or_default())
        })?;
        let http_host = self.get(&mut t, p, "http_host", d.http_host, Self::http_host)?;
        let granularity = self.get(&mut t, p, "granularity", d.granularity, |w, v, path| {
            let s = w.string(v, path)?;
            match s.trim().to_ascii_lowercase().as_str() {
                "topic" => Ok(Granularity::Topic),
                "partition" => Ok(Granularity::Partition),
                _ => Err(w.invalid(
                    path,
                    format!("{s:?} is not a granularity"),
                    "\"topic\" or \"partition\"",
                )),
            }
        })?;
        let max_response_memory = self.get(
            &mut t,
            p,
            "max_response_memory",
            d.max_response_memory,
            Self::response_memory,
        )?;
        let timestamp_sampling = self.section(
            &mut t,
            p,
            "timestamp_sampling",
            d.timestamp_sampling,
            Self::timestamp_sampling,
        )?;
        let otel = self.section(&mut t, p, "otel", d.otel, Self::otel)?;
        let remote_write = match t.remove("remote_write") {
            Some(v) => {
                let path = child(p, "remote_write");
                let table = self.table(v, &path)?;
                Some(self.remote_write(table, &path, poll_interval)?)
            }
            None => None,
        };
        let performance =
            self.section(&mut t, p, "performance", d.performance, Self::performance)?;
        let leadership = self.section(&mut t, p, "leadership", d.leadership, Self::leadership)?;
        let status = self.section(&mut t, p, "status", d.status, Self::status)?;
        self.leftover(t, p);
        Ok(ExporterConfig {
            poll_interval,
            staleness_threshold,
            http_port,
            http_host,
            granularity,
            max_response_memory,
            timestamp_sampling,
            otel,
            remote_write,
            performance,
            leadership,
            status,
        })
    }

    fn status(&mut self, mut t: Table, p: &str) -> Result<StatusConfig, ConfigError> {
        let d = StatusConfig::default();
        let status = StatusConfig {
            enabled: self.get(&mut t, p, "enabled", d.enabled, Self::boolean)?,
            window: self.get(&mut t, p, "window", d.window, Self::positive_duration)?,
            error_time_lag: self.get(
                &mut t,
                p,
                "error_time_lag",
                d.error_time_lag,
                Self::positive_duration,
            )?,
        };
        self.leftover(t, p);
        Ok(status)
    }

    fn timestamp_sampling(
        &mut self,
        mut t: Table,
        p: &str,
    ) -> Result<TimestampSampling, ConfigError> {
        let d = TimestampSampling::default();
        let enabled = self.get(&mut t, p, "enabled", d.enabled, Self::boolean)?;
        let cache_ttl = self.get(&mut t, p, "cache_ttl", d.cache_ttl, Self::duration)?;
        let key = "max_concurrent_fetches";
        let max_concurrent_fetches =
            self.get(&mut t, p, key, d.max_concurrent_fetches, Self::count)?;
        if enabled && max_concurrent_fetches == 0 {
            return Err(self.invalid(
                &child(p, key),
                "0 would never fetch a timestamp",
                "at least 1 while timestamp sampling is enabled",
            ));
        }
        let key = "fetch_requests_per_broker";
        let fetch_requests_per_broker = self.get(
            &mut t,
            p,
            key,
            d.fetch_requests_per_broker as usize,
            Self::count,
        )?;
        if fetch_requests_per_broker == 0 {
            return Err(self.invalid(
                &child(p, key),
                "0 would never fetch a timestamp",
                "at least 1 (use `enabled = false` to fetch none)",
            ));
        }
        self.leftover(t, p);
        Ok(TimestampSampling {
            enabled,
            cache_ttl,
            max_concurrent_fetches,
            fetch_requests_per_broker: u32::try_from(fetch_requests_per_broker).unwrap_or(u32::MAX),
        })
    }

    fn performance(&mut self, mut t: Table, p: &str) -> Result<Performance, ConfigError> {
        let d = Performance::default();
        let at_least_one = |w: &Self, v: Value, path: &str| -> Result<usize, ConfigError> {
            let n = w.integer(v, path, 1, i64::from(u32::MAX))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        };
        let performance = Performance {
            kafka_timeout: self.get(
                &mut t,
                p,
                "kafka_timeout",
                d.kafka_timeout,
                Self::positive_duration,
            )?,
            offset_fetch_timeout: self.get(
                &mut t,
                p,
                "offset_fetch_timeout",
                d.offset_fetch_timeout,
                Self::positive_duration,
            )?,
            max_concurrent_groups: self.get(
                &mut t,
                p,
                "max_concurrent_groups",
                d.max_concurrent_groups,
                at_least_one,
            )?,
            max_concurrent_watermarks: self.get(
                &mut t,
                p,
                "max_concurrent_watermarks",
                d.max_concurrent_watermarks,
                at_least_one,
            )?,
        };
        self.leftover(t, p);
        Ok(performance)
    }

    fn clusters(&mut self, value: Option<Value>) -> Result<Vec<ClusterSettings>, ConfigError> {
        let expected = "at least one [[clusters]] section with name and bootstrap_servers";
        let entries = match value {
            None => return Err(self.invalid("clusters", "no cluster is configured", expected)),
            Some(Value::Array(entries)) if entries.is_empty() => {
                return Err(self.invalid("clusters", "the list is empty", expected))
            }
            Some(Value::Array(entries)) => entries,
            Some(other) => {
                return Err(self.invalid(
                    "clusters",
                    format!("{} is not a list of clusters", describe(&other)),
                    "[[clusters]] sections (double brackets)",
                ))
            }
        };
        let mut clusters: Vec<ClusterSettings> = Vec::with_capacity(entries.len());
        let mut names = HashSet::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let path = index("clusters", i);
            let t = self.table(entry, &path)?;
            let cluster = self.cluster(t, &path)?;
            if !names.insert(cluster.name.clone()) {
                return Err(self.invalid(
                    &child(&path, "name"),
                    format!("{:?} is already the name of another cluster", cluster.name),
                    "a name unique among [[clusters]]",
                ));
            }
            clusters.push(cluster);
        }
        Ok(clusters)
    }

    fn cluster(&mut self, mut t: Table, p: &str) -> Result<ClusterSettings, ConfigError> {
        let name = match t.remove("name") {
            Some(v) => self.non_empty_string(v, &child(p, "name"))?,
            None => {
                return Err(self.invalid(
                    &child(p, "name"),
                    "is missing",
                    "the cluster's name, e.g. name = \"production\"",
                ))
            }
        };
        let bootstrap_servers = match t.remove("bootstrap_servers") {
            Some(v) => self.bootstrap_servers(v, &child(p, "bootstrap_servers"))?,
            None => {
                return Err(self.invalid(
                    &child(p, "bootstrap_servers"),
                    "is missing",
                    "a comma-separated host:port list, e.g. \"kafka1:9092,kafka2:9092\"",
                ))
            }
        };
        // Absent lists take their defaults; present ones are used as written (an empty
        // whitelist allows nothing, as in klag-exporter).
        let all = || vec![super::match_all()];
        let group_whitelist = self.get(&mut t, p, "group_whitelist", all(), Self::regexes)?;
        let group_blacklist = self.get(&mut t, p, "group_blacklist", Vec::new(), Self::regexes)?;
        let topic_whitelist = self.get(&mut t, p, "topic_whitelist", all(), Self::regexes)?;
        // klag-exporter's default: internal topics (`__consumer_offsets`, ...) are not watched.
        let internal = || vec![super::internal_topics()];
        let topic_blacklist = self.get(&mut t, p, "topic_blacklist", internal(), Self::regexes)?;

        let props_path = child(p, "consumer_properties");
        let mut consumer_properties = BTreeMap::new();
        if let Some(v) = t.remove("consumer_properties") {
            let table = self.table(v, &props_path)?;
            self.flatten_properties(table, "", &props_path, &mut consumer_properties)?;
        }
        let client = client::classify(&consumer_properties).map_err(
            |PropertyError {
                 key,
                 problem,
                 expected,
             }| self.invalid(&child(&props_path, &key), problem, expected),
        )?;
        let security = security::build(&consumer_properties, client.security_protocol).map_err(
            |PropertyError {
                 key,
                 problem,
                 expected,
             }| self.invalid(&child(&props_path, &key), problem, expected),
        )?;

        let labels = match t.remove("labels") {
            Some(v) => {
                let path = child(p, "labels");
                let table = self.table(v, &path)?;
                self.labels(table, &path)?
            }
            None => BTreeMap::new(),
        };
        self.leftover(t, p);
        Ok(ClusterSettings {
            name,
            bootstrap_servers,
            group_whitelist,
            group_blacklist,
            topic_whitelist,
            topic_blacklist,
            consumer_properties,
            labels,
            client,
            security,
        })
    }

    /// `"a:1,b:2"` or `["a:1", "b:2"]` → `["a:1", "b:2"]`, each checked.
    fn bootstrap_servers(&self, value: Value, path: &str) -> Result<Vec<String>, ConfigError> {
        let expected = "a comma-separated host:port list, e.g. \"kafka1:9092,kafka2:9092\"";
        // (entry, its key path)
        let entries: Vec<(String, String)> = match value {
            Value::String(s) => s
                .split(',')
                .map(str::trim)
                // Tolerate a trailing or doubled comma, as librdkafka does.
                .filter(|e| !e.is_empty())
                .map(|e| (e.to_owned(), path.to_owned()))
                .collect(),
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_path = index(path, i);
                    self.string(item, &item_path)
                        .map(|s| (s.trim().to_owned(), item_path))
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(self.invalid(
                    path,
                    format!("{} is not a server list", describe(&other)),
                    expected,
                ))
            }
        };
        if entries.is_empty() {
            return Err(self.invalid(path, "is empty", expected));
        }
        entries
            .into_iter()
            .map(|(entry, entry_path)| {
                host_port(&entry).ok_or_else(|| {
                    self.invalid(
                        &entry_path,
                        format!("{entry:?} is not host:port"),
                        "host:port with a port from 1 to 65535, e.g. \"kafka1:9092\" or \"[::1]:9092\"",
                    )
                })
            })
            .collect()
    }

    fn regexes(&self, value: Value, path: &str) -> Result<Vec<Regex>, ConfigError> {
        let items = match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (v, index(path, i)))
                .collect(),
            // A single pattern where a list is expected.
            Value::String(s) => vec![(Value::String(s), path.to_owned())],
            other => {
                return Err(self.invalid(
                    path,
                    format!("{} is not a list of regexes", describe(&other)),
                    "a list of quoted regexes, e.g. [\"^prod-\", \"^staging-\"]",
                ))
            }
        };
        items
            .into_iter()
            .map(|(v, item_path)| {
                let pattern = self.string(v, &item_path)?;
                Regex::new(&pattern).map_err(|e| {
                    self.invalid(
                        &item_path,
                        format!("{pattern:?} is not a valid regex: {e}"),
                        "a regex in Rust regex syntax (no look-around or backreferences)",
                    )
                })
            })
            .collect()
    }

    /// Flattens nested tables (from unquoted dotted keys such as
    /// `security.protocol = "SSL"`) into dotted names; scalar values become strings.
    fn flatten_properties(
        &self,
        table: Table,
        prefix: &str,
        path: &str,
        out: &mut BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Table(inner) => self.flatten_properties(inner, &name, path, out)?,
                value => {
                    let key_path = child(path, &name);
                    let value = self.scalar(value, &key_path)?;
                    if out.insert(name, value).is_some() {
                        return Err(self.invalid(
                            &key_path,
                            "is given twice (once quoted, once as dotted keys)",
                            "each property once",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A string, number or boolean as a string. Never quotes the value in an error (it
    /// may be a secret).
    fn scalar(&self, value: Value, path: &str) -> Result<String, ConfigError> {
        match value {
            Value::String(s) => Ok(s),
            Value::Integer(n) => Ok(n.to_string()),
            Value::Float(f) => Ok(f.to_string()),
            Value::Boolean(b) => Ok(b.to_string()),
            Value::Datetime(d) => Ok(d.to_string()),
            Value::Array(_) => {
                Err(self.invalid(path, "is an array", "a string, number or boolean"))
            }
            Value::Table(_) => Err(self.invalid(path, "is a table", "a string, number or boolean")),
        }
    }

    fn labels(&self, table: Table, path: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut labels = BTreeMap::new();
        for (name, value) in table {
            let label_path = child(path, &name);
            let valid = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(self.invalid(
                    &label_path,
                    format!("label name {name:?} is not a valid Prometheus label name"),
                    "a name matching [a-zA-Z_][a-zA-Z0-9_]*",
                ));
            }
            if name.starts_with("__") {
                return Err(self.invalid(
                    &label_path,
                    format!("label name {name:?} starts with __, which Prometheus reserves"),
                    "a name not starting with __",
                ));
            }
            if RESERVED_LABELS.contains(&name.as_str()) {
                return Err(self.invalid(
                    &label_path,
                    format!("label name {name:?} is one of tidemark's own labels"),
                    format!("a name other than {}", RESERVED_LABELS.join(", ")),
                ));
            }
            if matches!(value, Value::Array(_) | Value::Table(_)) {
                return Err(self.invalid(
                    &label_path,
                    format!("{} is not a label value", describe(&value)),
                    "a string (numbers and booleans are accepted too)",
                ));
            }
            let value = self.scalar(value, &label_path)?;
            labels.insert(name, value);
        }
        Ok(labels)
    }
}

/// Checks and normalises one bootstrap entry: an optional `PROTOCOL://` prefix is
/// dropped; the host must be non-empty and the port 1..=65535. IPv6 hosts are bracketed.
fn host_port(entry: &str) -> Option<String> {
    let entry = entry.split_once("://").map_or(entry, |(_, rest)| rest);
    let (host, port) = entry.rsplit_once(':')?;
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner.strip_suffix(']').is_some_and(|ip| !ip.is_empty())
    } else {
        !host.is_empty() && !host.contains([':', '/', ' ', '[', ']'])
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p > 0);
    (host_ok && port_ok).then(|| format!("{host}:{port}"))
}

/// An IPv4 or IPv6 address (bracketed or not), or a host name by RFC 1123 (labels of
/// letters, digits and hyphens, not starting or ending with a hyphen).
pub(crate) fn is_ip_or_host_name(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    // Digits and dots only was meant as an IPv4 address, and is not one (e.g. 256.0.0.1).
    if name.is_empty() || name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return false;
    }
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths() {
        assert_eq!(child("", "exporter"), "exporter");
        assert_eq!(child("exporter", "poll_interval"), "exporter.poll_interval");
        assert_eq!(
            child("clusters[0].consumer_properties", "sasl.password"),
            "clusters[0].consumer_properties.\"sasl.password\""
        );
        assert_eq!(
            index("clusters[1].group_whitelist", 0),
            "clusters[1].group_whitelist[0]"
        );
    }

    #[test]
    fn host_port_forms() {
        for (entry, want) in [
            ("kafka:9092", Some("kafka:9092")),
            ("10.0.0.1:9092", Some("10.0.0.1:9092")),
            ("[::1]:9092", Some("[::1]:9092")),
            ("SASL_SSL://broker:9093", Some("broker:9093")),
            ("kafka", None),
            ("kafka:", None),
            (":9092", None),
            ("kafka:0", None),
            ("kafka:65536", None),
            ("kafka:+1", None),
            ("kafka:port", None),
            ("::1:9092", None),
            ("[]:9092", None),
            ("a b:9092", None),
        ] {
            assert_eq!(host_port(entry).as_deref(), want, "{entry:?}");
        }
    }

    #[test]
    fn http_host_is_an_address_or_a_host_name() {
        for good in [
            "0.0.0.0",
            "127.0.0.1",
            "::",
            "::1",
            "[::1]",
            "fe80::1",
            "localhost",
            "tidemark.monitoring.svc.cluster.local",
            "host-1.example.com.",
            "10-0-0-1.internal",
        ] {
            assert!(is_ip_or_host_name(good), "{good:?} refused");
        }
        for bad in [
            "0.0.0.0:8000",
            "localhost:8000",
            "http://0.0.0.0",
            "256.0.0.1",
            "1.2.3",
            "0.0.0.0.0",
            "my host",
            "-host",
            "host-.example",
            "a..b",
            "[127.0.0.1]",
            "[::1",
            ".",
            "ex\u{e4}mple.com",
        ] {
            assert!(!is_ip_or_host_name(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_invalid_http_host_is_a_config_error_naming_the_key() {
        let toml = "[exporter]\nhttp_host = \"0.0.0.0:8000\"\n[[clusters]]\nname = \"a\"\nbootstrap_servers = \"k:9092\"\n";
        let env = |_: &str| None;
        let e = crate::config::parse(toml, "config.toml", &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("config.toml: exporter.http_host: \"0.0.0.0:8000\" is not an IP address or host name, expected"),
            "{e}"
        );
    }
}
