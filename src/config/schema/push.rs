//! `[exporter.otel]` and `[exporter.remote_write]`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::Table;

use super::super::client::PropertyError;
use super::super::push::{parse_url, OtlpProtocol, PushAuth, PushTls, PushUrl};
use super::super::security::{push_tls, PUSH_TLS_KEYS};
use super::super::{ConfigError, OtelConfig, RemoteWriteConfig};
use super::{child, Walker};
use crate::kafka::sasl::Secret;

/// Headers tidemark sets itself on push requests; a `headers` table may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "te",
    "x-prometheus-remote-write-version",
    "transfer-encoding",
    "connection",
];

impl Walker<'_> {
    pub(super) fn otel(&mut self, mut t: Table, p: &str) -> Result<OtelConfig, ConfigError> {
        let d = OtelConfig::default();
        let enabled = self.get(&mut t, p, "enabled", d.enabled, Self::boolean)?;
        let endpoint = self.get(&mut t, p, "endpoint", d.endpoint, Self::string)?;
        let export_interval = self.get(
            &mut t,
            p,
            "export_interval",
            d.export_interval,
            Self::positive_duration,
        )?;
        let timeout = self.get(&mut t, p, "timeout", d.timeout, Self::positive_duration)?;
        let protocol = self.get(&mut t, p, "protocol", d.protocol, |w, v, path| {
            let s = w.string(v, path)?;
            match s.trim().to_ascii_lowercase().as_str() {
                "grpc" => Ok(OtlpProtocol::Grpc),
                "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
                _ => Err(w.invalid(
                    path,
                    format!("{s:?} is not supported"),
                    "\"grpc\" (the default) or \"http/protobuf\"",
                )),
            }
        })?;
        let gzip = self.get(&mut t, p, "compression", d.gzip, |w, v, path| {
            let s = w.string(v, path)?;
            match s.trim().to_ascii_lowercase().as_str() {
                "gzip" => Ok(true),
                "none" => Ok(false),
                _ => Err(w.invalid(
                    path,
                    format!("{s:?} is not supported"),
                    "\"gzip\" (the default) or \"none\"",
                )),
            }
        })?;
        let headers = self.headers(&mut t, p)?;
        // Only an enabled exporter's URL must be usable: a klag-exporter file may carry a
        // placeholder it never used.
        let url = if enabled {
            Some(self.url(&endpoint, &child(p, "endpoint"))?)
        } else {
            None
        };
        let tls = self.push_tls(&mut t, p, url.as_ref())?;
        self.leftover(t, p);
        Ok(OtelConfig {
            enabled,
            endpoint,
            export_interval,
            timeout,
            protocol,
            gzip,
            headers,
            tls,
        })
    }

    pub(super) fn remote_write(
        &mut self,
        mut t: Table,
        p: &str,
        poll_interval: Duration,
    ) -> Result<RemoteWriteConfig, ConfigError> {
        let enabled = self.get(&mut t, p, "enabled", true, Self::boolean)?;
        let Some(url) = t.remove("url") else {
            return Err(self.invalid(
                &child(p, "url"),
                "is missing",
                "the remote write URL, e.g. \"http://prometheus:9090/api/v1/write\"",
            ));
        };
        let url_path = child(p, "url");
        let url = self.non_empty_string(url, &url_path)?;
        let parsed = self.url(&url, &url_path)?;
        let interval = self.get(
            &mut t,
            p,
            "interval",
            poll_interval,
            Self::positive_duration,
        )?;
        let timeout = self.get(
            &mut t,
            p,
            "timeout",
            Duration::from_secs(30),
            Self::positive_duration,
        )?;
        let headers = self.headers(&mut t, p)?;
        let auth = self.auth(&mut t, p)?;
        let tls = self.push_tls(&mut t, p, Some(&parsed))?;
        self.leftover(t, p);
        Ok(RemoteWriteConfig {
            enabled,
            url,
            interval,
            timeout,
            headers,
            auth,
            tls,
        })
    }

    fn url(&self, url: &str, path: &str) -> Result<PushUrl, ConfigError> {
        parse_url(url).map_err(|problem| {
            self.invalid(
                path,
                format!("the URL {problem}"),
                "an http:// or https:// URL with a host, e.g. \"http://localhost:4317\"",
            )
        })
    }

    /// `headers = { "X-Scope-OrgID" = "team-a" }`: values are kept as secrets (an
    /// `Authorization` header is one).
    fn headers(&mut self, t: &mut Table, p: &str) -> Result<Vec<(String, Secret)>, ConfigError> {
        let Some(value) = t.remove("headers") else {
            return Ok(Vec::new());
        };
        let path = child(p, "headers");
        let table = self.table(value, &path)?;
        let mut headers = Vec::with_capacity(table.len());
        for (name, value) in table {
            let key_path = child(&path, &name);
            let lower = name.to_ascii_lowercase();
            if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(self.invalid(&key_path, "is not a valid header name", "a token"));
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with(':') {
                return Err(self.invalid(
                    &key_path,
                    "is set by tidemark itself",
                    "another header name",
                ));
            }
            let value = self.scalar(value, &key_path)?;
            if hyper::header::HeaderValue::from_str(&value).is_err() {
                // Never the value itself: it may be a credential.
                return Err(self.invalid(
                    &key_path,
                    "holds a character a header cannot carry",
                    "visible ASCII text without line breaks",
                ));
            }
            headers.push((name, Secret::new(value)));
        }
        Ok(headers)
    }

    /// `basic_auth = { username, password }`, `bearer_token` or `bearer_token_file`: one.
    fn auth(&mut self, t: &mut Table, p: &str) -> Result<PushAuth, ConfigError> {
        let mut found = Vec::new();
        if let Some(value) = t.remove("basic_auth") {
            let path = child(p, "basic_auth");
            let mut table = self.table(value, &path)?;
            let username = self.get(&mut table, &path, "username", None, |w, v, k| {
                w.non_empty_string(v, k).map(Some)
            })?;
            let password = self.get(&mut table, &path, "password", None, |w, v, k| {
                w.scalar(v, k).map(Some)
            })?;
            self.leftover(table, &path);
            let (Some(username), Some(password)) = (username, password) else {
                return Err(self.invalid(
                    &path,
                    "needs both username and password",
                    "basic_auth = { username = \"…\", password = \"…\" }",
                ));
            };
            found.push((
                "basic_auth",
                PushAuth::Basic {
                    username,
                    password: Secret::new(password),
                },
            ));
        }
        if let Some(value) = t.remove("bearer_token") {
            let token = self.scalar(value, &child(p, "bearer_token"))?;
            found.push(("bearer_token", PushAuth::Bearer(Secret::new(token))));
        }
        if let Some(value) = t.remove("bearer_token_file") {
            let path = child(p, "bearer_token_file");
            let file = self.non_empty_string(value, &path)?;
            if let Err(e) = std::fs::read_to_string(&file) {
                return Err(self.invalid(
                    &path,
                    format!("cannot read {file:?}: {e}"),
                    "a readable file holding the token",
                ));
            }
            found.push((
                "bearer_token_file",
                PushAuth::BearerFile(PathBuf::from(file)),
            ));
        }
        match found.len() {
            0 => Ok(PushAuth::None),
            1 => Ok(found.remove(0).1),
            _ => Err(self.invalid(
                &child(p, found[1].0),
                format!("is set together with {}", found[0].0),
                "one of basic_auth, bearer_token and bearer_token_file",
            )),
        }
    }

    /// The `tls` table (the Kafka client's `ssl.*` keys); TLS with the defaults for an
    /// `https://` URL without one.
    fn push_tls(
        &mut self,
        t: &mut Table,
        p: &str,
        url: Option<&PushUrl>,
    ) -> Result<Option<PushTls>, ConfigError> {
        let path = child(p, "tls");
        let mut properties = BTreeMap::new();
        if let Some(value) = t.remove("tls") {
            let table = self.table(value, &path)?;
            let mut all = BTreeMap::new();
            self.flatten_properties(table, "", &path, &mut all)?;
            for (key, value) in all {
                if PUSH_TLS_KEYS.contains(&key.as_str()) {
                    properties.insert(key, value);
                } else {
                    self.unknown.push(child(&path, &key));
                }
            }
        }
        let Some(url) = url else {
            return Ok(None);
        };
        if !url.tls {
            if !properties.is_empty() {
                return Err(self.invalid(
                    &path,
                    "is set but the URL is http://",
                    "an https:// URL, or no tls table",
                ));
            }
            return Ok(None);
        }
        let tls = push_tls(&properties).map_err(
            |PropertyError {
                 key,
                 problem,
                 expected,
             }| self.invalid(&child(&path, &key), problem, expected),
        )?;
        Ok(Some(PushTls { properties, tls }))
    }
}
