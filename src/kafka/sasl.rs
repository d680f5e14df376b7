//! SASL authentication of a broker connection: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and
//! OAUTHBEARER, with the mechanisms of `rsasl`, and Amazon MSK's AWS_MSK_IAM ([`aws`]).
//!
//! The exchange ([`Exchange`]) is sans-io: it turns server messages into client messages.
//! [`authenticate`] drives it over a connection the Kafka way (KIP-152): after ApiVersions,
//! SaslHandshake v1 names the mechanism, then each client message goes in a
//! SaslAuthenticate request and each answer's `auth_bytes` is the next server message.
//!
//! - SCRAM: the server's final message is verified (its signature proves it knows the
//!   password); a server-final `e=...` or a wrong signature is a failed login even when
//!   the broker's error code says success.
//! - OAUTHBEARER: a static token, a token file read again at every authentication (a
//!   rotated token is picked up by the next connection), or tokens from an OIDC token
//!   endpoint ([`oidc`]), cached per cluster and refreshed before they expire
//!   ([`refresh`]); SASL extensions ([`Extensions`]) go with the token.
//! - Re-authentication (KIP-368): SaslAuthenticate v1+ reports the session lifetime; the
//!   caller closes and redials the connection before it runs out (see
//!   [`super::conn::Connection::is_usable`]).
//!
//! Secrets ([`Secret`]) never appear in `Debug` output, logs or errors.

// Network bytes and text (server messages, token endpoint, STS and metadata answers): the
// lint wall of `kafka::records`, for this module and every submodule below; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::oauthbearer::properties::OAuthBearerErrored;
use rsasl::prelude::{Mechname, MessageSent, SASLClient, SASLConfig, Session, SessionError, State};
use rsasl::property::{OAuthBearerKV, OAuthBearerToken};

use super::conn::Connection;
use super::error::{error_name, KafkaErrorKind, Result};
use super::requests;

pub mod aws;
pub mod http;
pub mod oidc;
pub mod refresh;
mod token;

pub use crate::secret::Secret;
pub use token::{check_token, Extensions, TokenFile, TokenSource};

/// A SASL mechanism tidemark speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
    /// Amazon MSK's IAM mechanism (a SigV4-signed JSON payload).
    AwsMskIam,
}

impl Mechanism {
    pub const ALL: [Mechanism; 5] = [
        Self::Plain,
        Self::ScramSha256,
        Self::ScramSha512,
        Self::OAuthBearer,
        Self::AwsMskIam,
    ];

    /// The IANA / Kafka name, e.g. `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
            Self::AwsMskIam => "AWS_MSK_IAM",
        }
    }

    /// By name, ignoring case.
    pub fn parse(name: &str) -> Option<Mechanism> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }

    fn is_scram(self) -> bool {
        matches!(self, Self::ScramSha256 | Self::ScramSha512)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The credentials of a SASL login.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// PLAIN and SCRAM: `sasl.username` / `sasl.password`.
    Password { username: String, password: Secret },
    /// OAUTHBEARER: where the token comes from, and the extensions sent with it.
    Token(TokenSource, Extensions),
    /// AWS_MSK_IAM: AWS credentials and the region to sign for.
    Aws(Arc<aws::AwsIam>),
}

impl Credentials {
    /// How the login is made, for a log line (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Self::Password { username, .. } => format!("as {username:?}"),
            Self::Token(source, extensions) if extensions.is_empty() => {
                format!("with {}", source.describe())
            }
            Self::Token(source, extensions) => {
                let keys: Vec<&str> = extensions.pairs().iter().map(|(k, _)| k.as_str()).collect();
                format!(
                    "with {} and extensions {}",
                    source.describe(),
                    keys.join(", ")
                )
            }
            Self::Aws(iam) => format!("with {}", iam.describe()),
        }
    }
}

/// SASL settings of a cluster.
#[derive(Clone, Debug)]
pub struct Sasl {
    pub mechanism: Mechanism,
    pub credentials: Credentials,
}

/// Largest SCRAM iteration count accepted from a server (Kafka allows at most 16384): a
/// hostile count would otherwise pin a worker thread in PBKDF2.
pub const MAX_SCRAM_ITERATIONS: u32 = 100_000;

/// What the caller must do after a step of the exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this message and step again with the server's answer.
    Send(Vec<u8>),
    /// Send this last message; authentication is complete when the server accepts it.
    SendLast(Vec<u8>),
    /// Authentication is complete on the client side (e.g. the SCRAM server signature is
    /// verified); nothing more to send.
    Done,
}

/// What runs the mechanism: rsasl, or tidemark's own AWS_MSK_IAM (one signed message,
/// then the server's answer).
enum Engine {
    Rsasl(Box<Session>),
    MskIam(Option<Vec<u8>>),
}

/// One SASL exchange, sans-io.
pub struct Exchange {
    mechanism: Mechanism,
    engine: Engine,
    /// OAUTHBEARER: the server's error, when it sent one (RFC 7628 §3.2.2).
    server_error: Arc<Mutex<Option<String>>>,
    steps: u32,
    /// A step failed or finished the exchange: rsasl's SCRAM panics when stepped again.
    ended: bool,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("mechanism", &self.mechanism)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// Supplies the OAUTHBEARER token to rsasl and records a server error report.
struct TokenCallback {
    token: Secret,
    extensions: Extensions,
    server_error: Arc<Mutex<Option<String>>>,
}

impl SessionCallback for TokenCallback {
    fn callback(
        &self,
        _session: &SessionData,
        _context: &Context,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        if let Some(error) = request.get_action::<OAuthBearerErrored>() {
            let mut text = format!("status {:?}", error.status);
            if let Some(scope) = error.scope {
                text.push_str(&format!(", scope {scope:?}"));
            }
            *self.server_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
            return Ok(());
        }
        if request.is::<OAuthBearerKV>() {
            let pairs: Vec<(&str, &str)> = self
                .extensions
                .pairs()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            request.satisfy::<OAuthBearerKV>(&pairs)?;
            return Ok(());
        }
        request.satisfy::<OAuthBearerToken>(self.token.expose())?;
        Ok(())
    }
}

impl Exchange {
    /// Start an exchange for `sasl` with credentials at hand (a password, a static token,
    /// a token file read now); [`Exchange::begin`] also fetches tokens.
    pub fn start(sasl: &Sasl) -> Result<Exchange, String> {
        let token = match &sasl.credentials {
            Credentials::Token(source, _) => Some(source.token_now()?),
            Credentials::Password { .. } => None,
            Credentials::Aws(_) => return Err("AWS_MSK_IAM needs the broker's host".into()),
        };
        Self::with_token(sasl, token)
    }

    /// Start an exchange for `sasl` with broker `host`, fetching a token or credentials
    /// first when the source needs it.
    pub async fn begin(sasl: &Sasl, host: &str) -> Result<Exchange, String> {
        let token = match &sasl.credentials {
            Credentials::Token(source, _) => Some(source.token().await?),
            Credentials::Password { .. } => None,
            Credentials::Aws(iam) => {
                let payload = iam.payload(host, std::time::SystemTime::now()).await?;
                return Ok(Exchange {
                    mechanism: sasl.mechanism,
                    engine: Engine::MskIam(Some(payload)),
                    server_error: Arc::default(),
                    steps: 0,
                    ended: false,
                });
            }
        };
        Self::with_token(sasl, token)
    }

    fn with_token(sasl: &Sasl, token: Option<Secret>) -> Result<Exchange, String> {
        let server_error = Arc::new(Mutex::new(None));
        let config = match (&sasl.credentials, token) {
            (Credentials::Password { username, password }, _) => {
                SASLConfig::with_credentials(None, username.clone(), password.expose().to_string())
            }
            (Credentials::Token(_, extensions), Some(token)) => SASLConfig::builder()
                .with_defaults()
                .with_callback(TokenCallback {
                    token,
                    extensions: extensions.clone(),
                    server_error: server_error.clone(),
                }),
            (Credentials::Token(..), None) => return Err("no token".into()),
            (Credentials::Aws(_), _) => return Err("AWS_MSK_IAM needs the broker's host".into()),
        }
        .map_err(|e| format!("cannot set up {}: {e}", sasl.mechanism))?;
        let name = Mechname::parse(sasl.mechanism.name().as_bytes())
            .map_err(|e| format!("bad mechanism name: {e}"))?;
        let session = SASLClient::new(config)
            .start_suggested(&[name])
            .map_err(|e| format!("cannot start {}: {e}", sasl.mechanism))?;
        Ok(Exchange {
            mechanism: sasl.mechanism,
            engine: Engine::Rsasl(Box::new(session)),
            server_error,
            steps: 0,
            ended: false,
        })
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Feed the server's last message (`None` for the first step of these client-first
    /// mechanisms) and get what to do next. An error means the login failed.
    pub fn step(&mut self, server: Option<&[u8]>) -> Result<Step, String> {
        if self.ended {
            return Err(format!(
                "{} stepped after its exchange ended",
                self.mechanism
            ));
        }
        let step = self.step_once(server);
        self.ended = !matches!(step, Ok(Step::Send(_)));
        step
    }

    fn step_once(&mut self, server: Option<&[u8]>) -> Result<Step, String> {
        if self.mechanism.is_scram() {
            if let Some(message) = server {
                check_scram_message(self.steps, message)?;
            }
        }
        self.steps = self.steps.saturating_add(1);
        let session = match &mut self.engine {
            Engine::Rsasl(session) => session,
            // The payload first; the server's answer (JSON with a request id) ends it.
            Engine::MskIam(payload) => {
                return match (payload.take(), server) {
                    (Some(p), None) => Ok(Step::Send(p)),
                    (None, Some(_)) if self.steps == 2 => Ok(Step::Done),
                    _ => Err("AWS_MSK_IAM stepped out of order".into()),
                };
            }
        };
        let mut out = Vec::new();
        // rsasl is not trusted with hostile input: the checks above keep it off the slicing
        // that would panic. A panic that slips through is a failed login in tests and debug
        // builds; release builds abort on panic (`panic = "abort"`), so the checks are what
        // keeps the process up.
        let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            session.step(server, &mut out)
        }))
        .map_err(|_| format!("{} failed on a malformed server message", self.mechanism))?;
        let state = stepped.map_err(|e| describe(e, server))?;
        Ok(match state {
            State::Running => Step::Send(out),
            State::Finished(MessageSent::Yes) => {
                if self.mechanism == Mechanism::OAuthBearer && self.server_error().is_some() {
                    // RFC 7628 §3.2.3: answer a server error with a single %x01; the broker
                    // then fails the login with its own message.
                    Step::SendLast(vec![1])
                } else {
                    Step::SendLast(out)
                }
            }
            State::Finished(MessageSent::No) => Step::Done,
        })
    }

    /// The error the server reported inside the exchange (OAUTHBEARER), if any.
    pub fn server_error(&self) -> Option<String> {
        self.server_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A failed step, in words; a SCRAM server error is quoted as the server sent it.
fn describe(e: SessionError, server: Option<&[u8]>) -> String {
    if let SessionError::MutualAuthenticationFailed = e {
        return "the server's SCRAM signature is wrong: it did not prove it knows the \
                password (possible impostor)"
            .to_string();
    }
    if let Some(value) = server.and_then(|m| m.strip_prefix(b"e=")) {
        let value = value.split(|b| *b == b',').next().unwrap_or_default();
        let shown: String = String::from_utf8_lossy(value)
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        return format!("the server rejected the login: e={shown}");
    }
    e.to_string()
}

/// Check the shape of a SCRAM server message before rsasl parses it (rsasl slices
/// attributes without checking their length), and refuse absurd iteration counts.
/// `steps` is the number of client steps taken: 1 before server-first, 2 before
/// server-final.
fn check_scram_message(steps: u32, message: &[u8]) -> Result<(), String> {
    let mut attrs = message.split(|b| *b == b',');
    match steps {
        1 => {
            let first: Vec<&[u8]> = attrs.by_ref().take(3).collect();
            if first.len() < 3 || first.iter().any(|a| a.len() < 2) {
                return Err("malformed SCRAM server-first message".into());
            }
            if let Some(value) = first.iter().find_map(|a| a.strip_prefix(b"i=")) {
                let value = String::from_utf8_lossy(value);
                match value.parse::<u32>() {
                    Ok(n) if n <= MAX_SCRAM_ITERATIONS => {}
                    _ => {
                        return Err(format!(
                            "the server asks for {value} SCRAM iterations; tidemark accepts \
                             at most {MAX_SCRAM_ITERATIONS}"
                        ))
                    }
                }
            }
            Ok(())
        }
        2 if attrs.next().is_none_or(|a| a.len() < 2) => {
            Err("malformed SCRAM server-final message".into())
        }
        _ => Ok(()),
    }
}

/// Authenticate `conn` (ApiVersions already negotiated). Returns the session lifetime the
/// broker reported (`None` when it does not re-authenticate).
pub async fn authenticate(conn: &Connection, sasl: &Sasl) -> Result<Option<Duration>> {
    let broker = conn.broker().to_string();
    let mechanism = sasl.mechanism;
    let failed = |reason: String| {
        KafkaErrorKind::Authentication {
            broker: broker.clone(),
            mechanism: mechanism.name(),
            reason,
        }
        .into()
    };
    // Credentials first (a token fetch may take a while): the broker sees no handshake
    // that cannot be followed by a login.
    let host = super::tls::host_of(&broker);
    let mut exchange = Exchange::begin(sasl, host).await.map_err(&failed)?;
    let (handshake, _) = conn
        .send(&requests::sasl_handshake(mechanism.name()))
        .await?;
    if handshake.error_code != 0 {
        return Err(failed(format!(
            "the broker does not offer {mechanism} ({}); it offers: {}",
            error_name(handshake.error_code),
            if handshake.mechanisms.is_empty() {
                "nothing".to_string()
            } else {
                handshake.mechanisms.join(", ")
            }
        )));
    }
    let mut server: Option<Bytes> = None;
    let mut lifetime_ms = 0;
    loop {
        let (message, last) = match exchange.step(server.as_deref()).map_err(&failed)? {
            Step::Send(m) => (m, false),
            Step::SendLast(m) => (m, true),
            Step::Done => break,
        };
        let (response, _) = conn
            .send(&requests::sasl_authenticate(Bytes::from(message)))
            .await?;
        if response.error_code != 0 {
            let mut reason = format!(
                "{} (error code {})",
                error_name(response.error_code),
                response.error_code
            );
            if let Some(m) = response.error_message.filter(|m| !m.is_empty()) {
                reason = format!("{m} ({reason})");
            }
            if let Some(e) = exchange.server_error() {
                reason.push_str(&format!("; server said {e}"));
            }
            return Err(failed(reason));
        }
        lifetime_ms = response.session_lifetime_ms;
        if last {
            break;
        }
        server = Some(response.auth_bytes);
    }
    if let Some(e) = exchange.server_error() {
        return Err(failed(format!("the server reported {e}")));
    }
    Ok((lifetime_ms > 0).then(|| Duration::from_millis(lifetime_ms.unsigned_abs())))
}

#[cfg(test)]
mod tests;
