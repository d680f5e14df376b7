//! OAUTHBEARER tokens from an OIDC / OAuth 2.0 token endpoint with the client credentials
//! grant (RFC 6749 §4.4), as librdkafka's `sasl.oauthbearer.method=oidc` gets them:
//! `POST` of `grant_type=client_credentials[&scope=...]` with HTTP basic authentication
//! of the client id and secret.
//!
//! The token's lifetime is the answer's `expires_in`, else the `exp` claim of a JWT
//! access token, else [`DEFAULT_LIFETIME`]. Tokens are cached per cluster and refreshed
//! at 80% of their lifetime ([`super::refresh`]). An error names the endpoint, the HTTP
//! status and the endpoint's own `error` / `error_description` (RFC 6749 §5.2); the
//! client secret and the tokens never appear in errors, logs or `Debug` output.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use bytes::Bytes;
use hyper::Method;

use super::http::{self, Call, Url};
use super::refresh::{Cached, Fetched};
use super::{check_token, Secret};
use crate::kafka::tls::Tls;

/// Lifetime assumed for a token whose answer gives none (no `expires_in`, not a JWT with
/// `exp`): short, so that an unknown expiry costs a fetch every 4 minutes rather than
/// failed logins.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Every request to the token endpoint, connecting included, ends within this.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom tokens are fetched.
#[derive(Clone)]
pub struct OidcSettings {
    /// `sasl.oauthbearer.token.endpoint.url`.
    pub endpoint: Url,
    /// `sasl.oauthbearer.client.id`.
    pub client_id: String,
    /// `sasl.oauthbearer.client.secret`.
    pub client_secret: Secret,
    /// `sasl.oauthbearer.scope`.
    pub scope: Option<String>,
    /// Verifies an `https://` endpoint (`https.ca.location`, default: the Mozilla roots).
    pub tls: Tls,
}

impl fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSettings")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A token endpoint client with its cached token, shared by a cluster's connections.
#[derive(Debug)]
pub struct Oidc {
    settings: OidcSettings,
    cache: Cached<Secret>,
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Oidc {
        Oidc {
            settings,
            cache: Cached::default(),
        }
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The token to log in with: cached, or fetched now. After the first call the token
    /// is also renewed in the background before it expires.
    pub async fn token(self: &Arc<Self>) -> Result<Secret, String> {
        let token = self.current().await;
        let renew = |o: Arc<Oidc>| async move {
            if let Err(e) = o.current().await {
                let endpoint = &o.settings.endpoint;
                tracing::warn!(%endpoint, "cannot renew the OAUTHBEARER token: {e}");
            }
        };
        self.cache
            .keep_fresh(Arc::downgrade(self), |o| &o.cache, renew);
        token
    }

    async fn current(&self) -> Result<Secret, String> {
        self.cache.get("OAUTHBEARER token", || self.fetch()).await
    }

    async fn fetch(&self) -> Result<Fetched<Secret>, String> {
        let s = &self.settings;
        let call = Call {
            method: Method::POST,
            url: &s.endpoint,
            headers: vec![
                (
                    "authorization",
                    basic_auth(&s.client_id, s.client_secret.expose()),
                ),
                ("content-type", "application/x-www-form-urlencoded".into()),
                ("accept", "application/json".into()),
            ],
            body: Bytes::from(request_body(s.scope.as_deref())),
        };
        let what = format!("token endpoint {}", s.endpoint);
        let response = http::send(call, &s.tls, TIMEOUT)
            .await
            .map_err(|e| format!("cannot get an OAUTHBEARER token: {e}"))?;
        parse_response(
            &what,
            response.status.as_u16(),
            &response.body,
            SystemTime::now(),
        )
    }
}

/// `Authorization: Basic` of `id:secret`, as librdkafka sends it (not form-encoded).
pub fn basic_auth(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        Base64::encode_string(format!("{id}:{secret}").as_bytes())
    )
}

/// The form body of a client credentials request.
pub fn request_body(scope: Option<&str>) -> String {
    let mut body = "grant_type=client_credentials".to_owned();
    if let Some(scope) = scope {
        body.push_str("&scope=");
        body.push_str(&http::form_encode(scope));
    }
    body
}

/// The token and its lifetime from the endpoint's answer, or an error naming `what` (the
/// endpoint), the status and the endpoint's explanation.
pub fn parse_response(
    what: &str,
    status: u16,
    body: &[u8],
    now: SystemTime,
) -> Result<Fetched<Secret>, String> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        let text = |k: &str| {
            json.as_ref()
                .and_then(|j| j.get(k))
                .and_then(|v| v.as_str())
                .map(printable)
        };
        let why = match (text("error"), text("error_description")) {
            (Some(e), Some(d)) => format!("{e} ({d})"),
            (Some(e), None) => e,
            (None, Some(d)) => d,
            (None, None) => printable(&String::from_utf8_lossy(body)),
        };
        let hint = if status == 401 || why.starts_with("invalid_client") {
            "; check sasl.oauthbearer.client.id and sasl.oauthbearer.client.secret"
        } else {
            ""
        };
        return Err(format!("{what} answered HTTP {status}: {why}{hint}"));
    }
    let json = json.ok_or_else(|| format!("{what} answered HTTP {status} without JSON"))?;
    let token = json
        .get("access_token")
        .and_then(|t| t.as_str())
        .ok_or_else(|| format!("{what} answered without an access_token"))?;
    let token = check_token(token)
        .map_err(|problem| format!("{what} answered an unusable access_token: {problem}"))?;
    let lifetime = match json.get("expires_in") {
        // Some endpoints send the number as a string.
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    format!("{what} answered expires_in {v}, not a number of seconds")
                })?,
        ),
        None => jwt_lifetime(token.expose(), now),
    };
    match lifetime {
        Some(l) if l.is_zero() => Err(format!("{what} answered an already expired token")),
        l => Ok(Fetched {
            value: token,
            lifetime: Some(l.unwrap_or(DEFAULT_LIFETIME)),
        }),
    }
}

/// The time left until a JWT's `exp` claim (zero once past, [`Duration::MAX`] when beyond
/// what a `Duration` holds), `None` when the token is not a JWT with one.
pub fn jwt_lifetime(token: &str, now: SystemTime) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = Base64UrlUnpadded::decode_vec(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    // `from_secs_f64` panics past `Duration::MAX`: an `exp` of 1e300 must not.
    Some(Duration::try_from_secs_f64((exp - now).max(0.0)).unwrap_or(Duration::MAX))
}

/// Text from the endpoint, safe for one log line.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHAT: &str = "token endpoint https://idp/token";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn request_as_librdkafka_sends_it() {
        // base64("client-1:s3cr:et") computed with Python's base64.b64encode.
        assert_eq!(
            basic_auth("client-1", "s3cr:et"),
            "Basic Y2xpZW50LTE6czNjcjpldA=="
        );
        assert_eq!(request_body(None), "grant_type=client_credentials");
        assert_eq!(
            request_body(Some("kafka api://x/.default")),
            "grant_type=client_credentials&scope=kafka+api%3A%2F%2Fx%2F.default"
        );
    }

    #[test]
    fn expires_in_gives_the_lifetime() {
        let body = br#"{"access_token":"abc.def.ghi","token_type":"Bearer","expires_in":3600}"#;
        let f = parse_response(WHAT, 200, body, at(0)).unwrap();
        assert_eq!(f.value.expose(), "abc.def.ghi");
        assert_eq!(f.lifetime, Some(Duration::from_secs(3600)));
        let body = br#"{"access_token":"t","expires_in":"120"}"#;
        let f = parse_response(WHAT, 200, body, at(0)).unwrap();
        assert_eq!(f.lifetime, Some(Duration::from_secs(120)));
        let body = br#"{"access_token":"t","expires_in":"soon"}"#;
        let e = parse_response(WHAT, 200, body, at(0)).unwrap_err();
        assert!(e.contains("expires_in \"soon\""), "{e}");
        let body = br#"{"access_token":"t","expires_in":0}"#;
        assert!(parse_response(WHAT, 200, body, at(0))
            .unwrap_err()
            .contains("already expired"));
    }

    #[test]
    fn without_expires_in_the_jwt_exp_or_the_default() {
        // {"alg":"none"}.{"sub":"tidemark","exp":1000} (base64url, unpadded).
        let jwt = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0aWRlbWFyayIsImV4cCI6MTAwMH0.";
        let body = format!(r#"{{"access_token":"{jwt}"}}"#);
        let f = parse_response(WHAT, 200, body.as_bytes(), at(400)).unwrap();
        assert_eq!(f.lifetime, Some(Duration::from_secs(600)));
        assert_eq!(jwt_lifetime(jwt, at(2000)), Some(Duration::ZERO));
        let f = parse_response(WHAT, 200, br#"{"access_token":"opaque"}"#, at(0)).unwrap();
        assert_eq!(f.lifetime, Some(DEFAULT_LIFETIME));
        assert_eq!(jwt_lifetime("a.!!!.c", at(0)), None);
        // {"exp":1e300}: used to panic in Duration::from_secs_f64.
        let far = "eyJhbGciOiJub25lIn0.eyJleHAiOjFlMzAwfQ.";
        assert_eq!(jwt_lifetime(far, at(0)), Some(Duration::MAX));
        let body = format!(r#"{{"access_token":"{far}"}}"#);
        let f = parse_response(WHAT, 200, body.as_bytes(), at(0)).unwrap();
        assert_eq!(f.lifetime, Some(Duration::MAX));
    }

    #[test]
    fn errors_name_the_endpoint_status_and_reason() {
        let body = br#"{"error":"invalid_client","error_description":"Bad client secret"}"#;
        let e = parse_response(WHAT, 401, body, at(0)).unwrap_err();
        assert_eq!(
            e,
            "token endpoint https://idp/token answered HTTP 401: invalid_client (Bad client \
             secret); check sasl.oauthbearer.client.id and sasl.oauthbearer.client.secret"
        );
        let e = parse_response(WHAT, 400, br#"{"error":"invalid_scope"}"#, at(0)).unwrap_err();
        assert_eq!(
            e,
            "token endpoint https://idp/token answered HTTP 400: invalid_scope"
        );
        let e = parse_response(WHAT, 503, b"upstream\nconnect error", at(0)).unwrap_err();
        assert_eq!(
            e,
            "token endpoint https://idp/token answered HTTP 503: upstream connect error"
        );
        let e = parse_response(WHAT, 200, b"<html>", at(0)).unwrap_err();
        assert!(e.contains("without JSON"), "{e}");
        let e = parse_response(WHAT, 200, br#"{"token":"x"}"#, at(0)).unwrap_err();
        assert!(e.contains("without an access_token"), "{e}");
        let e = parse_response(WHAT, 200, br#"{"access_token":"a b"}"#, at(0)).unwrap_err();
        assert!(e.contains("unusable") && !e.contains("a b"), "{e}");
    }

    #[test]
    fn the_secret_is_redacted_in_debug() {
        let settings = OidcSettings {
            endpoint: Url::parse("https://idp/token").unwrap(),
            client_id: "cid".into(),
            client_secret: Secret::new("very-secret"),
            scope: None,
            tls: crate::kafka::tls::Tls::new(Default::default()).unwrap(),
        };
        let shown = format!("{:?}", Oidc::new(settings));
        assert!(
            shown.contains("cid") && !shown.contains("very-secret"),
            "{shown}"
        );
    }
}
