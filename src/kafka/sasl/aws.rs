//! AWS MSK IAM authentication: the SigV4-signed `kafka-cluster:Connect` request that
//! Amazon MSK accepts, as the `AWS_MSK_IAM` SASL mechanism's JSON payload (what the Java
//! `aws-msk-iam-auth` library sends) and as an OAUTHBEARER token (the base64url presigned
//! URL of `aws-msk-iam-sasl-signer`).
//!
//! SigV4 is computed here with `sha2` and `hmac` (no AWS SDK): a presigned `GET /` with
//! the query `Action=kafka-cluster%3AConnect`, signed header `host`, the hash of an empty
//! payload, service `kafka-cluster`, valid [`EXPIRES`] seconds. The unit tests pin every
//! signature to Python botocore's `SigV4QueryAuth` for the same inputs.
//!
//! Credentials never appear in `Debug` output, logs or errors.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::Secret;

/// Seconds a signature is valid (what the AWS libraries use).
pub const EXPIRES: u32 = 900;
/// The AWS_MSK_IAM payload version.
pub const PAYLOAD_VERSION: &str = "2020_10_22";
const SERVICE: &str = "kafka-cluster";
const ACTION: &str = "kafka-cluster:Connect";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// SHA-256 of the empty payload.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// AWS credentials: long-term (access key) or temporary (with a session token).
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key id identifies the principal and is not secret; the rest is.
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token.as_ref().map(|_| "..."))
            .finish()
    }
}

pub mod metadata;
pub mod web_identity;

pub use metadata::Metadata;
pub use web_identity::WebIdentity;

/// MSK IAM settings of a cluster: the region to sign for (`aws.region`; else the region in
/// the broker's host name) and where credentials come from, in the standard chain's order:
/// the environment's keys, a web identity token ([`WebIdentity`]), the container
/// credentials endpoint, the instance metadata service ([`Metadata`]).
#[derive(Debug)]
pub struct AwsIam {
    pub region: Option<String>,
    web_identity: WebIdentity,
    metadata: Metadata,
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl AwsIam {
    /// `tls` verifies the STS endpoint.
    pub fn new(region: Option<String>, tls: crate::kafka::tls::Tls) -> AwsIam {
        AwsIam {
            region,
            web_identity: WebIdentity::new(tls.clone()),
            metadata: Metadata::new(tls),
        }
    }

    /// How the login is made, for a log line.
    pub fn describe(&self) -> String {
        let region = match &self.region {
            Some(r) => format!("region {r}"),
            None => "the region of the broker's host name".into(),
        };
        format!(
            "AWS credentials (environment, web identity, container endpoint or instance \
             metadata), signed for {region}"
        )
    }

    /// The region to sign a login to `host` for.
    pub fn region_for<'a>(&'a self, host: &'a str) -> Result<&'a str, String> {
        match &self.region {
            Some(r) => Ok(r),
            None => region_from_host(host).ok_or_else(|| {
                format!("{host:?} is not an MSK broker host name with a region: set aws.region")
            }),
        }
    }

    /// The current credentials: the environment's keys, else from the web identity token
    /// (STS in `region`), else from the container endpoint, else from the instance metadata
    /// service.
    pub async fn credentials(&self, region: &str) -> Result<AwsCredentials, String> {
        self.credentials_in(&process_env, region).await
    }

    /// [`AwsIam::credentials`] in the environment `env`.
    pub async fn credentials_in(
        &self,
        env: metadata::Env<'_>,
        region: &str,
    ) -> Result<AwsCredentials, String> {
        match Provider::of(env) {
            Provider::Environment => from_environment(env),
            Provider::WebIdentity => self.web_identity.credentials(env, region).await,
            Provider::Container => self.metadata.container(env).await,
            Provider::Instance => self.metadata.instance(env).await,
            Provider::None => from_environment(env),
        }
    }

    /// An MSK IAM OAUTHBEARER token signed at `now` (needs `aws.region`: a token is not
    /// made for one broker).
    pub async fn oauth_token(&self, now: SystemTime) -> Result<Secret, String> {
        let region = self
            .region
            .as_deref()
            .ok_or("an MSK IAM token needs aws.region")?;
        let creds = self.credentials(region).await?;
        Ok(msk_iam_token(&creds, region, super::http::USER_AGENT, now))
    }

    /// The AWS_MSK_IAM client message for broker `host`, signed at `now`.
    pub async fn payload(&self, host: &str, now: SystemTime) -> Result<Vec<u8>, String> {
        let region = self.region_for(host)?;
        let creds = self.credentials(region).await?;
        Ok(msk_iam_payload(
            &creds,
            host,
            region,
            super::http::USER_AGENT,
            now,
        ))
    }
}

/// The link of the credentials chain the environment selects (the first one configured,
/// as in the AWS SDKs: a configured link that fails does not fall through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Environment,
    WebIdentity,
    Container,
    Instance,
    /// Nothing configured and the instance metadata service disabled.
    None,
}

impl Provider {
    pub fn of(env: metadata::Env<'_>) -> Provider {
        if env("AWS_ACCESS_KEY_ID").is_some() {
            Provider::Environment
        } else if WebIdentity::configured(env) {
            Provider::WebIdentity
        } else if metadata::container_configured(env) {
            Provider::Container
        } else if metadata::imds_enabled(env) {
            Provider::Instance
        } else {
            Provider::None
        }
    }
}

/// Credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`.
pub fn from_environment(env: impl Fn(&str) -> Option<String>) -> Result<AwsCredentials, String> {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(AwsCredentials {
            access_key_id: id.trim().to_owned(),
            secret_access_key: Secret::new(secret.trim()),
            session_token: get("AWS_SESSION_TOKEN").map(|t| Secret::new(t.trim())),
        }),
        (Some(_), None) => Err("AWS_ACCESS_KEY_ID is set without AWS_SECRET_ACCESS_KEY".into()),
        _ => Err(
            "no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both \
                  set, no web identity token or container endpoint is configured, and the \
                  instance metadata service is disabled (AWS_EC2_METADATA_DISABLED)"
                .into(),
        ),
    }
}

/// The signed parameters of one `kafka-cluster:Connect` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `20201022T010203Z`.
    pub amz_date: String,
    /// `AKID/20201022/<region>/kafka-cluster/aws4_request`.
    pub credential: String,
    pub signature: String,
    /// The query string of the presigned URL, without the signature (botocore's order).
    query: String,
}

/// SigV4-presign `GET https://<host>/?Action=kafka-cluster%3AConnect` at `now`.
pub fn presign(creds: &AwsCredentials, host: &str, region: &str, now: SystemTime) -> Signed {
    let amz_date = amz_date(now);
    // `YYYYMMDD` of `YYYYMMDDTHHMMSSZ`.
    let day = amz_date.get(..8).unwrap_or(&amz_date);
    let scope = format!("{day}/{region}/{SERVICE}/aws4_request");
    let credential = format!("{}/{scope}", creds.access_key_id);
    let mut params: Vec<(&str, String)> = vec![
        ("Action", ACTION.to_owned()),
        ("X-Amz-Algorithm", ALGORITHM.to_owned()),
        ("X-Amz-Credential", credential.clone()),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", EXPIRES.to_string()),
        ("X-Amz-SignedHeaders", "host".to_owned()),
    ];
    if let Some(token) = &creds.session_token {
        params.push(("X-Amz-Security-Token", token.expose().to_owned()));
    }
    let query = |params: &[(&str, String)]| {
        params
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let url_query = query(&params);
    // The canonical query is sorted by key (botocore's URL order differs only there).
    params.sort_by(|a, b| a.0.cmp(b.0));
    let canonical = format!(
        "GET\n/\n{}\nhost:{host}\n\nhost\n{EMPTY_SHA256}",
        query(&params)
    );
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", creds.secret_access_key.expose()).as_bytes(),
        day.as_bytes(),
    );
    for part in [region, SERVICE, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    Signed {
        amz_date,
        credential,
        signature,
        query: url_query,
    }
}

/// The AWS_MSK_IAM client message for broker `host` (the JSON of `aws-msk-iam-auth`).
pub fn msk_iam_payload(
    creds: &AwsCredentials,
    host: &str,
    region: &str,
    user_agent: &str,
    now: SystemTime,
) -> Vec<u8> {
    let signed = presign(creds, host, region, now);
    let mut payload = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        payload.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
    };
    put("version", PAYLOAD_VERSION);
    put("host", host);
    put("user-agent", user_agent);
    put("action", ACTION);
    put("x-amz-algorithm", ALGORITHM);
    put("x-amz-credential", &signed.credential);
    put("x-amz-date", &signed.amz_date);
    put("x-amz-signedheaders", "host");
    put("x-amz-expires", &EXPIRES.to_string());
    put("x-amz-signature", &signed.signature);
    if let Some(token) = &creds.session_token {
        put("x-amz-security-token", token.expose());
    }
    serde_json::Value::Object(payload).to_string().into_bytes()
}

/// The OAUTHBEARER token of `aws-msk-iam-sasl-signer`: the presigned URL for
/// `kafka.<region>.amazonaws.com` with a `User-Agent` parameter, base64url without padding.
pub fn msk_iam_token(
    creds: &AwsCredentials,
    region: &str,
    user_agent: &str,
    now: SystemTime,
) -> Secret {
    let host = format!("kafka.{region}.amazonaws.com");
    let signed = presign(creds, &host, region, now);
    let url = format!(
        "https://{host}/?{}&X-Amz-Signature={}&User-Agent={}",
        signed.query,
        signed.signature,
        uri_encode(user_agent)
    );
    Secret::new(Base64UrlUnpadded::encode_string(url.as_bytes()))
}

/// The region of an MSK broker from its host name (`b-1.x.y.c2.kafka.<region>.amazonaws.com`,
/// also `.amazonaws.com.cn`), if it is one.
pub fn region_from_host(host: &str) -> Option<&str> {
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    let at = labels.iter().rposition(|l| *l == "amazonaws")?;
    let region = *labels.get(at.checked_sub(1)?)?;
    let service = *labels.get(at.checked_sub(2)?)?;
    (service.starts_with("kafka") && !region.is_empty()).then_some(region)
}

/// SigV4's URI encoding: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`.
fn uri_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYYMMDDTHHMMSSZ` (UTC) of `now`.
pub fn amz_date(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Gregorian date of a day number since 1970-01-01 (H. Hinnant's algorithm). Days from a
/// `SystemTime` (under 2^47) keep every step far from overflow; saturating all the same.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = doe
        .saturating_sub(doe.div_euclid(1460))
        .saturating_add(doe.div_euclid(36_524))
        .saturating_sub(doe.div_euclid(146_096))
        .div_euclid(365);
    let doy = doe.saturating_sub(
        yoe.saturating_mul(365)
            .saturating_add(yoe.div_euclid(4))
            .saturating_sub(yoe.div_euclid(100)),
    );
    let mp = doy.saturating_mul(5).saturating_add(2).div_euclid(153);
    let d = doy
        .saturating_sub(mp.saturating_mul(153).saturating_add(2).div_euclid(5))
        .saturating_add(1);
    let m = if mp < 10 {
        mp.saturating_add(3)
    } else {
        mp.saturating_sub(9)
    };
    let y = yoe
        .saturating_add(era.saturating_mul(400))
        .saturating_add(i64::from(m <= 2));
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests;
