//! AWS credentials from the metadata endpoints, the last two links of the standard chain:
//!
//! - the **container credentials endpoint** (ECS task roles, EKS Pod Identity):
//!   `AWS_CONTAINER_CREDENTIALS_FULL_URI` (`http://` only to a loopback or link-local host,
//!   or EKS's `fd00:ec2::23`, as the AWS SDKs require; `https://` anywhere) or
//!   `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (appended to `http://169.254.170.2`), with
//!   the `Authorization` header from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read at every
//!   fetch: Pod Identity rotates it) or `AWS_CONTAINER_AUTHORIZATION_TOKEN`;
//! - the **instance metadata service** (IMDSv2 only): a session token from
//!   `PUT /latest/api/token`, then the role name and the role's credentials from
//!   `/latest/meta-data/iam/security-credentials/`, at `http://169.254.169.254` or
//!   `AWS_EC2_METADATA_SERVICE_ENDPOINT`; off with `AWS_EC2_METADATA_DISABLED=true`. Each
//!   request ends within [`IMDS_TIMEOUT`]: off EC2 it must not stall a cycle.
//!
//! Both answer the same JSON (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`),
//! cached and renewed before `Expiration` ([`crate::kafka::sasl::refresh`]). Errors name the
//! provider, the URL and the HTTP status; never a token or a key.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::Method;

use super::web_identity::parse_timestamp;
use super::AwsCredentials;
use crate::kafka::sasl::http::{self, Call, Url};
use crate::kafka::sasl::refresh::{Cached, Fetched};
use crate::kafka::sasl::Secret;
use crate::kafka::tls::Tls;

/// The environment, as a lookup (tests pass their own).
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// Every container endpoint request, connecting included, ends within this.
const CONTAINER_TIMEOUT: Duration = Duration::from_secs(5);
/// Every IMDS request ends within this (the AWS SDKs use 1 s to connect, 1 s to read).
pub const IMDS_TIMEOUT: Duration = Duration::from_secs(2);
/// The ECS container endpoint that `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` is relative to.
pub const ECS_HOST: &str = "http://169.254.170.2";
/// The instance metadata endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// Lifetime asked for an IMDSv2 session token (what the AWS SDKs ask).
pub const IMDS_TOKEN_TTL: &str = "21600";
const CONTAINER: &str = "container credentials endpoint";
const IMDS: &str = "instance metadata service";

fn var(env: Env<'_>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the environment names a container credentials endpoint.
pub fn container_configured(env: Env<'_>) -> bool {
    var(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
        || var(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
}

/// Whether the instance metadata service may be asked.
pub fn imds_enabled(env: Env<'_>) -> bool {
    !var(env, "AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The container endpoint's URL from the environment, with the SDKs' rules.
pub fn container_url(env: Env<'_>) -> Result<Url, String> {
    if let Some(relative) = var(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        let sep = if relative.starts_with('/') { "" } else { "/" };
        return Url::parse(&format!("{ECS_HOST}{sep}{relative}"))
            .map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: {e}"));
    }
    let full = var(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .ok_or("neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor _FULL_URI is set")?;
    let url = Url::parse(&full).map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_FULL_URI: {e}"))?;
    if !url.is_https() && !http_allowed(url.host()) {
        return Err(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI {url}: plain http:// is allowed only to a \
             loopback or link-local address (or EKS's 169.254.170.23, fd00:ec2::23); use https://"
        ));
    }
    Ok(url)
}

/// Whether plain HTTP may carry credentials to `host`: a loopback or link-local address,
/// `localhost`, or the EKS Pod Identity agent's IPv6 address.
pub fn http_allowed(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => {
            let eks: std::net::Ipv6Addr = [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23].into();
            ip.is_loopback() || (ip.segments()[0] & 0xffc0) == 0xfe80 || ip == eks
        }
        Err(_) => false,
    }
}

/// The `Authorization` value: the token file (read now) before the variable.
fn container_authorization(env: Env<'_>) -> Result<Option<String>, String> {
    if let Some(file) = var(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        let token = std::fs::read_to_string(&file).map_err(|e| {
            format!("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {file}: {e}")
        })?;
        return Ok(Some(token.trim().to_owned()));
    }
    Ok(var(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN"))
}

/// The container endpoint and the instance metadata service of a cluster, each with its
/// cached credentials.
#[derive(Debug)]
pub struct Metadata {
    tls: Tls,
    container: Cached<AwsCredentials>,
    imds: Cached<AwsCredentials>,
}

impl Metadata {
    pub fn new(tls: Tls) -> Metadata {
        Metadata {
            tls,
            container: Cached::default(),
            imds: Cached::default(),
        }
    }

    /// Credentials from the container endpoint, fetched when due.
    pub async fn container(&self, env: Env<'_>) -> Result<AwsCredentials, String> {
        self.container
            .get("AWS container credentials", || self.fetch_container(env))
            .await
    }

    /// Credentials from the instance metadata service, fetched when due.
    pub async fn instance(&self, env: Env<'_>) -> Result<AwsCredentials, String> {
        self.imds
            .get("AWS instance metadata credentials", || self.fetch_imds(env))
            .await
    }

    async fn fetch_container(&self, env: Env<'_>) -> Result<Fetched<AwsCredentials>, String> {
        let url = container_url(env).map_err(|e| format!("{CONTAINER}: {e}"))?;
        let mut headers = vec![("accept", "application/json".to_owned())];
        if let Some(token) =
            container_authorization(env).map_err(|e| format!("{CONTAINER}: {e}"))?
        {
            headers.push(("authorization", token));
        }
        let call = Call {
            method: Method::GET,
            url: &url,
            headers,
            body: Bytes::new(),
        };
        let what = format!("{CONTAINER} {url}");
        let response = http::send(call, &self.tls, CONTAINER_TIMEOUT)
            .await
            .map_err(|e| format!("{CONTAINER}: {e}"))?;
        let body = ok_body(&what, &response)?;
        parse_credentials(&what, body, SystemTime::now())
    }

    async fn fetch_imds(&self, env: Env<'_>) -> Result<Fetched<AwsCredentials>, String> {
        let endpoint = var(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .unwrap_or_else(|| IMDS_ENDPOINT.to_owned());
        let base = Url::parse(&endpoint)
            .map_err(|e| format!("{IMDS}: AWS_EC2_METADATA_SERVICE_ENDPOINT: {e}"))?;
        let token_url = base.with_path("/latest/api/token");
        let token = self
            .imds_call(
                Method::PUT,
                &token_url,
                (
                    "x-aws-ec2-metadata-token-ttl-seconds",
                    IMDS_TOKEN_TTL.into(),
                ),
            )
            .await?;
        let token = String::from_utf8_lossy(&token).trim().to_owned();
        let header = ("x-aws-ec2-metadata-token", token);
        let roles_url = base.with_path("/latest/meta-data/iam/security-credentials/");
        let roles = self
            .imds_call(Method::GET, &roles_url, header.clone())
            .await?;
        let role = String::from_utf8_lossy(&roles)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                format!("{IMDS} {roles_url}: no IAM role is attached to the instance")
            })?;
        if !role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
        {
            return Err(format!(
                "{IMDS} {roles_url}: {role:?} is not an IAM role name"
            ));
        }
        let creds_url = roles_url.with_path(&format!(
            "/latest/meta-data/iam/security-credentials/{role}"
        ));
        let body = self.imds_call(Method::GET, &creds_url, header).await?;
        parse_credentials(&format!("{IMDS} {creds_url}"), &body, SystemTime::now())
    }

    /// One IMDS request with one header: the body of a 2xx answer.
    async fn imds_call(
        &self,
        method: Method,
        url: &Url,
        header: (&'static str, String),
    ) -> Result<Bytes, String> {
        let call = Call {
            method,
            url,
            headers: vec![header],
            body: Bytes::new(),
        };
        let response = http::send(call, &self.tls, IMDS_TIMEOUT)
            .await
            .map_err(|e| format!("{IMDS}: {e}"))?;
        ok_body(&format!("{IMDS} {url}"), &response).map(Bytes::copy_from_slice)
    }
}

/// The body of a 2xx answer, else an error with the status (not the body: an endpoint
/// could echo what it was sent).
fn ok_body<'a>(what: &str, response: &'a http::Response) -> Result<&'a [u8], String> {
    let status = response.status;
    if status.is_success() {
        Ok(&response.body)
    } else {
        Err(format!("{what} answered HTTP {}", status.as_u16()))
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    code: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

/// Credentials and their lifetime from the JSON both endpoints answer.
pub fn parse_credentials(
    what: &str,
    body: &[u8],
    now: SystemTime,
) -> Result<Fetched<AwsCredentials>, String> {
    // serde_json's error names a position, never the text.
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| format!("{what} answered something that is not credentials JSON: {e}"))?;
    if let Some(code) = answer.code.as_deref().filter(|c| *c != "Success") {
        return Err(format!("{what} answered Code {code:?}"));
    }
    let field = |v: Option<String>, name: &str| {
        v.map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{what} answered without {name}"))
    };
    let access_key_id = field(answer.access_key_id, "AccessKeyId")?;
    let secret = field(answer.secret_access_key, "SecretAccessKey")?;
    let token = answer.token.filter(|t| !t.trim().is_empty());
    let lifetime = match answer.expiration {
        Some(text) => {
            let at = parse_timestamp(&text)
                .ok_or_else(|| format!("{what} answered Expiration {text:?}, not a timestamp"))?;
            Some(
                at.duration_since(now)
                    .ok()
                    .filter(|l| !l.is_zero())
                    .unwrap_or(Duration::from_secs(1)),
            )
        }
        None => None,
    };
    Ok(Fetched {
        value: AwsCredentials {
            access_key_id,
            secret_access_key: Secret::new(secret.as_str()),
            session_token: token.map(|t| Secret::new(t.trim())),
        },
        lifetime,
    })
}

#[cfg(test)]
mod tests;
