//! The push exporters' settings: `[exporter.otel]` (klag-exporter's keys plus a few of
//! tidemark's) and `[exporter.remote_write]`. Secrets are [`Secret`]s: `Debug` redacts
//! them and `--check-config` prints them redacted.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::kafka::sasl::Secret;
use crate::kafka::tls::Tls;

/// TLS of a push endpoint: the Kafka client's `ssl.*` keys, as written, and the client
/// configuration built from them at start.
#[derive(Clone)]
pub struct PushTls {
    /// The keys as written (for `--check-config`; secret values redacted there).
    pub properties: BTreeMap<String, String>,
    pub tls: Tls,
}

impl PartialEq for PushTls {
    fn eq(&self, other: &Self) -> bool {
        self.properties == other.properties
    }
}

impl Eq for PushTls {}

impl fmt::Debug for PushTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushTls").field("tls", &self.tls).finish()
    }
}

/// How OTLP is carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// gRPC `MetricsService/Export` over HTTP/2 (klag-exporter's, the default).
    #[default]
    Grpc,
    /// HTTP/1.1 POST of the protobuf body to `<endpoint>/v1/metrics`.
    HttpProtobuf,
}

impl OtlpProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

/// `[exporter.otel]`.
#[derive(Clone, PartialEq, Eq)]
pub struct OtelConfig {
    pub enabled: bool,
    /// `http://` or `https://` URL of the OTLP receiver.
    pub endpoint: String,
    pub export_interval: Duration,
    /// Bound on one request, connecting included (tidemark's key).
    pub timeout: Duration,
    pub protocol: OtlpProtocol,
    /// Requests gzip-compressed (`compression = "gzip"`, the default) or not (`"none"`).
    pub gzip: bool,
    /// Extra request headers (values may be secrets: never logged).
    pub headers: Vec<(String, Secret)>,
    /// TLS for an `https://` endpoint.
    pub tls: Option<PushTls>,
}

impl Default for OtelConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: "http://localhost:4317".to_owned(),
            export_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            protocol: OtlpProtocol::Grpc,
            gzip: true,
            headers: Vec::new(),
            tls: None,
        }
    }
}

impl fmt::Debug for OtelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelConfig")
            .field("enabled", &self.enabled)
            .field("endpoint", &super::redact_url_userinfo(&self.endpoint))
            .field("export_interval", &self.export_interval)
            .field("timeout", &self.timeout)
            .field("protocol", &self.protocol)
            .field("gzip", &self.gzip)
            .field("headers", &self.headers)
            .field("tls", &self.tls)
            .finish()
    }
}

/// `[exporter.remote_write]`: Prometheus remote write 1.0.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteWriteConfig {
    pub enabled: bool,
    /// `http://` or `https://` URL, e.g. `http://prometheus:9090/api/v1/write`.
    pub url: String,
    /// Time between pushes.
    pub interval: Duration,
    /// Bound on one request, connecting included.
    pub timeout: Duration,
    /// Extra request headers (values may be secrets: never logged).
    pub headers: Vec<(String, Secret)>,
    pub auth: PushAuth,
    /// TLS for an `https://` URL.
    pub tls: Option<PushTls>,
}

impl fmt::Debug for RemoteWriteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWriteConfig")
            .field("enabled", &self.enabled)
            .field("url", &super::redact_url_userinfo(&self.url))
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("headers", &self.headers)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .finish()
    }
}

/// How a push request authenticates (at most one way).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PushAuth {
    #[default]
    None,
    Basic {
        username: String,
        password: Secret,
    },
    Bearer(Secret),
    /// A file holding the token, read again before every push (a rotated token is used
    /// from the next push on).
    BearerFile(PathBuf),
}

/// A push endpoint's URL, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushUrl {
    /// `https://`.
    pub tls: bool,
    /// The host, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// `host:port` as written in the URL (for the `Host` header and `:authority`).
    pub authority: String,
    /// Path and query, at least `/`.
    pub path: String,
}

impl PushUrl {
    /// `host:port` for dialling and TLS (IPv6 bracketed).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parse an `http://` or `https://` URL. The error says what is wrong, never repeating a
/// password written into the URL.
pub fn parse_url(url: &str) -> Result<PushUrl, String> {
    let url = url.trim();
    let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err("is not an http:// or https:// URL".to_owned());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let path = path.split('#').next().unwrap_or("/").to_owned();
    if authority.contains('@') {
        return Err(
            "holds credentials: set them with basic_auth, bearer_token or headers instead"
                .to_owned(),
        );
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("has an unclosed [ in its host")?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("has text after its IPv6 host".to_owned()),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("has the invalid port {p:?}"))?,
    };
    if host.is_empty() || !super::schema::is_ip_or_host_name(host) {
        return Err(format!("has the invalid host {host:?}"));
    }
    Ok(PushUrl {
        tls,
        host: host.to_owned(),
        port,
        authority: authority.to_owned(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Config};
    use crate::kafka::tls::Verification;

    const CLUSTER: &str = "[[clusters]]\nname = \"c\"\nbootstrap_servers = \"k:9092\"\n";

    fn load(exporter: &str) -> Result<Config, String> {
        let text = format!("[exporter]\npoll_interval = \"15s\"\n{exporter}\n{CLUSTER}");
        parse(&text, "config.toml", &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn remote_write_keys_and_their_defaults() {
        let c = load(
            "[exporter.remote_write]\nurl = \"http://prom:9090/api/v1/write\"\n\
             headers = { \"X-Scope-OrgID\" = \"team-a\" }\n\
             basic_auth = { username = \"u\", password = \"hunter2\" }\n",
        )
        .expect("valid");
        let rw = c.exporter.remote_write.clone().expect("remote_write");
        assert!(rw.enabled);
        assert_eq!(rw.interval, Duration::from_secs(15), "poll_interval");
        assert_eq!(rw.timeout, Duration::from_secs(30));
        assert_eq!(rw.headers[0].0, "X-Scope-OrgID");
        assert_eq!(rw.headers[0].1.expose(), "team-a");
        assert!(matches!(&rw.auth, PushAuth::Basic { username, password }
            if username == "u" && password.expose() == "hunter2"));
        assert!(rw.tls.is_none());
        let shown = format!("{rw:?}{}", c.to_redacted_toml());
        assert!(
            !shown.contains("hunter2") && !shown.contains("team-a"),
            "{shown}"
        );
        // --check-config's output is a config again, with the same keys.
        let again = parse(&c.to_redacted_toml(), "again.toml", &|_| None).expect("reparsed");
        let rw2 = again.exporter.remote_write.expect("remote_write");
        assert_eq!((rw2.url, rw2.interval), (rw.url, rw.interval));
    }

    #[test]
    fn https_endpoints_verify_by_default() {
        let c = load(
            "[exporter.remote_write]\nurl = \"https://prom/w\"\nbearer_token = \"tok\"\n\
             [exporter.otel]\nenabled = true\nendpoint = \"https://collector:4317\"\n\
             protocol = \"http/protobuf\"\n\
             tls = { \"ssl.endpoint.identification.algorithm\" = \"none\" }\n",
        )
        .expect("valid");
        let rw = c.exporter.remote_write.expect("remote_write");
        let tls = rw.tls.expect("tls");
        assert_eq!(tls.tls.verification(), Verification::Full);
        assert!(matches!(rw.auth, PushAuth::Bearer(_)));
        let otel = c.exporter.otel;
        assert_eq!(otel.protocol, OtlpProtocol::HttpProtobuf);
        let tls = otel.tls.expect("tls");
        assert_eq!(tls.tls.verification(), Verification::NoHostname);
    }

    #[test]
    fn mistakes_are_config_errors_naming_the_key() {
        for (exporter, key, problem) in [
            ("[exporter.remote_write]\ninterval = \"5s\"", "exporter.remote_write.url", "missing"),
            (
                "[exporter.remote_write]\nurl = \"prom:9090\"",
                "exporter.remote_write.url",
                "not an http",
            ),
            (
                "[exporter.remote_write]\nurl = \"http://p/\"\nbearer_token = \"t\"\n\
                 basic_auth = { username = \"u\", password = \"p\" }",
                "exporter.remote_write.bearer_token",
                "together with basic_auth",
            ),
            (
                "[exporter.remote_write]\nurl = \"http://p/\"\nbasic_auth = { username = \"u\" }",
                "exporter.remote_write.basic_auth",
                "both username and password",
            ),
            (
                "[exporter.remote_write]\nurl = \"http://p/\"\nheaders = { \"Content-Type\" = \"x\" }",
                "exporter.remote_write.headers.Content-Type",
                "set by tidemark",
            ),
            (
                "[exporter.remote_write]\nurl = \"http://p/\"\ntls = { \"ssl.ca.location\" = \"/x\" }",
                "exporter.remote_write.tls",
                "URL is http://",
            ),
            (
                "[exporter.remote_write]\nurl = \"https://p/\"\ntls = { \"ssl.ca.location\" = \"/nonexistent/ca.pem\" }",
                "exporter.remote_write.tls.\"ssl.ca.location\"",
                "cannot read",
            ),
            (
                "[exporter.remote_write]\nurl = \"http://p/\"\nbearer_token_file = \"/nonexistent/token\"",
                "exporter.remote_write.bearer_token_file",
                "cannot read",
            ),
            (
                "[exporter.otel]\nenabled = true\nendpoint = \"collector:4317\"",
                "exporter.otel.endpoint",
                "not an http",
            ),
            (
                "[exporter.otel]\nenabled = true\nprotocol = \"http/json\"",
                "exporter.otel.protocol",
                "not supported",
            ),
            (
                "[exporter.otel]\nexport_interval = \"0s\"",
                "exporter.otel.export_interval",
                "zero",
            ),
        ] {
            let e = load(exporter).expect_err(exporter);
            assert!(e.contains(&format!("{key}: ")), "{key} in {e}");
            assert!(e.contains(problem), "{problem} in {e}");
        }
        // A disabled exporter's endpoint is not checked (klag-exporter files carry them).
        assert!(load("[exporter.otel]\nenabled = false\nendpoint = \"collector:4317\"").is_ok());
    }

    #[test]
    fn urls() {
        let u = parse_url("https://prom.example:9443/api/v1/write?x=1").expect("valid");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "prom.example", 9443, "/api/v1/write?x=1")
        );
        assert_eq!(u.authority, "prom.example:9443");
        let u = parse_url("http://localhost:4317").expect("valid");
        assert_eq!((u.tls, u.port, u.path.as_str()), (false, 4317, "/"));
        let u = parse_url("http://[::1]/w").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.port, u.address()),
            ("::1", 80, "[::1]:80".into())
        );
        for bad in [
            "localhost:4317",
            "ftp://x/",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://[::1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let e = parse_url("https://user:hunter2@h/").expect_err("credentials");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
