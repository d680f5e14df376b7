//! SASL authentication of a broker connection: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and
//! OAUTHBEARER, with the mechanisms of `rsasl`.
//!
//! The exchange ([`Exchange`]) is sans-io: it turns server messages into client messages.
//! [`authenticate`] drives it over a connection the Kafka way (KIP-152): after ApiVersions,
//! SaslHandshake v1 names the mechanism, then each client message goes in a
//! SaslAuthenticate request and each answer's `auth_bytes` is the next server message.
//!
//! - SCRAM: the server's final message is verified (its signature proves it knows the
//!   password); a server-final `e=...` or a wrong signature is a failed login even when
//!   the broker's error code says success.
//! - OAUTHBEARER: a static token, or a token file read again at every authentication, so a
//!   rotated token is picked up by the next connection.
//! - Re-authentication (KIP-368): SaslAuthenticate v1+ reports the session lifetime; the
//!   caller closes and redials the connection before it runs out (see
//!   [`super::conn::Connection::is_usable`]).
//!
//! Secrets ([`Secret`]) never appear in `Debug` output, logs or errors.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::oauthbearer::properties::OAuthBearerErrored;
use rsasl::prelude::{Mechname, MessageSent, SASLClient, SASLConfig, Session, SessionError, State};
use rsasl::property::OAuthBearerToken;

use super::conn::Connection;
use super::error::{error_name, KafkaErrorKind, Result};
use super::requests;

pub use crate::secret::Secret;

/// A SASL mechanism tidemark speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Self::Plain,
        Self::ScramSha256,
        Self::ScramSha512,
        Self::OAuthBearer,
    ];

    /// The IANA / Kafka name, e.g. `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
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

/// Where an OAUTHBEARER token comes from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// `sasl.oauthbearer.token`.
    Static(Secret),
    /// `sasl.oauthbearer.token.file`, read at every authentication.
    File(TokenFile),
}

impl TokenSource {
    /// The token to send now.
    pub fn token(&self) -> Result<Secret, String> {
        match self {
            Self::Static(t) => Ok(t.clone()),
            Self::File(f) => f.read(),
        }
    }
}

/// A token file. The last token read is kept only to notice (and log) a rotation.
#[derive(Clone)]
pub struct TokenFile {
    path: PathBuf,
    last: Arc<Mutex<Option<Secret>>>,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .finish()
    }
}

impl TokenFile {
    /// Read and check the file now (at start); errors say what is wrong with it.
    pub fn open(path: impl Into<PathBuf>) -> Result<TokenFile, String> {
        let file = TokenFile {
            path: path.into(),
            last: Arc::default(),
        };
        file.read()?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token in the file now: its text without surrounding whitespace.
    pub fn read(&self) -> Result<Secret, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read token file {}: {e}", self.path.display()))?;
        let token = check_token(text.trim())
            .map_err(|problem| format!("token file {}: {problem}", self.path.display()))?;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref().is_some_and(|l| *l != token) {
            tracing::info!(file = %self.path.display(), "OAUTHBEARER token file changed; new connections use the new token");
        }
        *last = Some(token.clone());
        Ok(token)
    }
}

/// A token must be non-empty and free of the control characters that delimit the
/// OAUTHBEARER message (RFC 7628).
pub fn check_token(token: &str) -> Result<Secret, String> {
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err("the token contains spaces or control characters".into());
    }
    Ok(Secret::new(token))
}

/// The credentials of a SASL login.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// PLAIN and SCRAM: `sasl.username` / `sasl.password`.
    Password { username: String, password: Secret },
    /// OAUTHBEARER.
    Token(TokenSource),
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

/// One SASL exchange, sans-io.
pub struct Exchange {
    mechanism: Mechanism,
    session: Session,
    /// OAUTHBEARER: the server's error, when it sent one (RFC 7628 §3.2.2).
    server_error: Arc<Mutex<Option<String>>>,
    steps: u32,
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
        request.satisfy::<OAuthBearerToken>(self.token.expose())?;
        Ok(())
    }
}

impl Exchange {
    /// Start an exchange for `sasl` (reads the token file for OAUTHBEARER).
    pub fn start(sasl: &Sasl) -> Result<Exchange, String> {
        let server_error = Arc::new(Mutex::new(None));
        let config = match &sasl.credentials {
            Credentials::Password { username, password } => {
                SASLConfig::with_credentials(None, username.clone(), password.expose().to_string())
            }
            Credentials::Token(source) => {
                let token = source.token()?;
                SASLConfig::builder()
                    .with_defaults()
                    .with_callback(TokenCallback {
                        token,
                        server_error: server_error.clone(),
                    })
            }
        }
        .map_err(|e| format!("cannot set up {}: {e}", sasl.mechanism))?;
        let name = Mechname::parse(sasl.mechanism.name().as_bytes())
            .map_err(|e| format!("bad mechanism name: {e}"))?;
        let session = SASLClient::new(config)
            .start_suggested(&[name])
            .map_err(|e| format!("cannot start {}: {e}", sasl.mechanism))?;
        Ok(Exchange {
            mechanism: sasl.mechanism,
            session,
            server_error,
            steps: 0,
        })
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Feed the server's last message (`None` for the first step of these client-first
    /// mechanisms) and get what to do next. An error means the login failed.
    pub fn step(&mut self, server: Option<&[u8]>) -> Result<Step, String> {
        if self.mechanism.is_scram() {
            if let Some(message) = server {
                check_scram_message(self.steps, message)?;
            }
        }
        self.steps += 1;
        let mut out = Vec::new();
        let session = &mut self.session;
        // rsasl is not trusted with hostile input: the checks above keep it off the slicing
        // that would panic, and a panic that slips through is a failed login, not a crash.
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
    let mut exchange = Exchange::start(sasl).map_err(&failed)?;
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
