//! A scripted SASL front for a real broker: it authenticates each client connection the
//! way a Kafka broker does (KIP-152: ApiVersions, SaslHandshake, SaslAuthenticate), with
//! its own server-side mechanisms — the independent SCRAM server of [`super::scram`], and
//! exact-message checks for PLAIN and OAUTHBEARER — then relays every other request, frame
//! by frame, to the broker behind it.
//!
//! The broker must advertise the front's address ([`super::Broker::start_advertising`]) so
//! that every connection a client opens from Metadata / FindCoordinator answers comes back
//! through the front.
//!
//! Like a broker it:
//! * answers ApiVersions before authentication (the broker's answer, with SaslHandshake
//!   and SaslAuthenticate added);
//! * closes the connection on any other request before authentication, after a failed
//!   login, and on the first request after the session lifetime it granted (KIP-368);
//! * reports `session_lifetime_ms` in SaslAuthenticate v1+.
//!
//! Everything is recorded for assertions: each login with the exact client messages,
//! requests made before authentication, requests on expired sessions, requests relayed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use super::scram::{ScramHash, ScramServer};

mod frames;
use frames::{parse_oauthbearer, read_frame, response, with_sasl_apis, write_frame};

/// SASL_AUTHENTICATION_FAILED.
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
/// UNSUPPORTED_SASL_MECHANISM.
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// ILLEGAL_SASL_STATE.
pub const ILLEGAL_SASL_STATE: i16 = 34;

/// A deliberate misbehaviour of the SCRAM server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answer a valid client-final with this server-final error (`e=<value>`) and error
    /// code 0, as a non-Kafka or broken server could.
    ServerFinalError(String),
    /// Answer a valid client-final with a wrong server signature (an impostor that cannot
    /// prove it knows the password), error code 0.
    WrongServerSignature,
}

/// Decides whether an OAUTHBEARER token is valid: `Ok(time left)` or why not. The session
/// lifetime granted is then at most the time left, as a Kafka broker grants it (KIP-368).
#[derive(Clone)]
pub struct TokenCheck(pub Arc<CheckFn>);

/// `Ok(time left)` of a token, or why it is not valid.
pub type CheckFn = dyn Fn(&str) -> Result<Duration, String> + Send + Sync;

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck")
    }
}

/// What the front accepts.
#[derive(Clone, Debug)]
pub struct FrontConfig {
    /// Mechanisms offered in SaslHandshake.
    pub mechanisms: Vec<String>,
    /// The one user of PLAIN and SCRAM.
    pub username: String,
    pub password: String,
    /// OAUTHBEARER tokens accepted.
    pub tokens: Vec<String>,
    /// OAUTHBEARER: checks tokens instead of `tokens` when set.
    pub token_check: Option<TokenCheck>,
    /// AWS_MSK_IAM: the secret access key the payload's signature is verified with
    /// (by botocore, [`super::sigv4`]), and the verifier's clock offset in seconds.
    pub aws_secret: String,
    pub aws_clock_offset: i64,
    /// SCRAM salt and iteration count.
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// Reported in SaslAuthenticate v1+ (0 = no re-authentication).
    pub session_lifetime_ms: i64,
    pub fault: Fault,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self {
            mechanisms: ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
                .map(String::from)
                .to_vec(),
            username: "tidemark-user".into(),
            password: "s3cret-Pa55".into(),
            tokens: Vec::new(),
            token_check: None,
            aws_secret: String::new(),
            aws_clock_offset: 0,
            salt: b"tidemark-salt-16".to_vec(),
            iterations: 4096,
            session_lifetime_ms: 0,
            fault: Fault::None,
        }
    }
}

/// One login attempt.
#[derive(Clone, Debug)]
pub struct Login {
    /// Connection id (unique per front).
    pub conn: u64,
    pub mechanism: String,
    pub handshake_version: i16,
    pub authenticate_version: i16,
    /// Every SaslAuthenticate payload the client sent, in order.
    pub client_messages: Vec<Vec<u8>>,
    /// OAUTHBEARER: the extensions (key/value pairs besides `auth`) of the first message.
    pub extensions: Vec<(String, String)>,
    /// `Ok` when the front accepted the login; `Err` with the reason otherwise.
    pub outcome: Result<(), String>,
}

#[derive(Default)]
struct Record {
    logins: Mutex<Vec<Login>>,
    /// "conn N: <API> before authentication" and the like.
    violations: Mutex<Vec<String>>,
    expired: AtomicU64,
    relayed: AtomicU64,
    connections: AtomicU64,
}

/// A running SASL front. Dropping it stops accepting (open connections end with the test).
pub struct SaslFront {
    /// `127.0.0.1:<port>`, what the broker must advertise.
    pub address: String,
    pub port: u16,
    config: Arc<Mutex<FrontConfig>>,
    record: Arc<Record>,
    task: AbortHandle,
}

impl Drop for SaslFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SaslFront {
    /// Bind a port now; relay to `upstream` once [`SaslFront::serve`] is called (the
    /// broker is started in between, advertising [`SaslFront::port`]).
    pub async fn bind() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SASL front");
        let port = listener.local_addr().expect("local address").port();
        (listener, port)
    }

    /// Start serving on `listener`, relaying authenticated connections to `upstream`.
    pub fn serve(listener: TcpListener, upstream: &str, config: FrontConfig) -> SaslFront {
        let port = listener.local_addr().expect("local address").port();
        let config = Arc::new(Mutex::new(config));
        let record = Arc::new(Record::default());
        let upstream = upstream.to_owned();
        let (c, r) = (config.clone(), record.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let id = r.connections.fetch_add(1, Ordering::Relaxed);
                let cfg = c.lock().unwrap().clone();
                tokio::spawn(serve(stream, id, upstream.clone(), cfg, r.clone()));
            }
        })
        .abort_handle();
        SaslFront {
            address: format!("127.0.0.1:{port}"),
            port,
            config,
            record,
            task,
        }
    }

    /// A broker behind a new front with `config` (the broker advertises the front's port),
    /// and a workload connected to the broker directly, past the front.
    pub async fn with_broker(config: FrontConfig) -> (SaslFront, crate::Broker, crate::Workload) {
        let (listener, port) = SaslFront::bind().await;
        let broker = crate::Broker::start_advertising(port).await;
        let front = SaslFront::serve(listener, &broker.bootstrap, config);
        let mut workload = crate::Workload::connect(&broker.bootstrap).await;
        workload.route(&broker.advertised, &broker.bootstrap);
        (front, broker, workload)
    }

    /// Change what new connections accept (e.g. rotate the accepted tokens).
    pub fn reconfigure(&self, change: impl FnOnce(&mut FrontConfig)) {
        change(&mut self.config.lock().unwrap());
    }

    pub fn logins(&self) -> Vec<Login> {
        self.record.logins.lock().unwrap().clone()
    }

    /// Requests the client should never have sent (before or after a failed login).
    pub fn violations(&self) -> Vec<String> {
        self.record.violations.lock().unwrap().clone()
    }

    /// Asserts that the client sent no request it should not have (see
    /// [`SaslFront::violations`]), listing them if it did.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(violations.is_empty(), "{violations:?}");
    }

    /// Requests that arrived on a session past its lifetime (the connection was closed).
    pub fn expired_requests(&self) -> u64 {
        self.record.expired.load(Ordering::Relaxed)
    }

    /// Requests relayed to the broker after authentication.
    pub fn relayed(&self) -> u64 {
        self.record.relayed.load(Ordering::Relaxed)
    }

    pub fn connections(&self) -> u64 {
        self.record.connections.load(Ordering::Relaxed)
    }
}

struct Conn {
    id: u64,
    config: FrontConfig,
    record: Arc<Record>,
    upstream_addr: String,
    upstream: Option<TcpStream>,
    mechanism: Option<(String, i16)>,
    login: Option<Login>,
    scram: Option<ScramServer>,
    /// OAUTHBEARER: the front sent an error report and waits for %x01.
    oauth_error_sent: bool,
    authenticated_until: Option<Option<Instant>>,
    /// The session lifetime of this login when shorter than the configured one (the time
    /// left of its token).
    granted_ms: Option<i64>,
    close_after_reply: bool,
}

impl Conn {
    fn violation(&self, what: String) {
        self.record
            .violations
            .lock()
            .unwrap()
            .push(format!("conn {}: {what}", self.id));
    }

    async fn upstream(&mut self) -> Option<&mut TcpStream> {
        if self.upstream.is_none() {
            let s = TcpStream::connect(&self.upstream_addr).await.ok()?;
            let _ = s.set_nodelay(true);
            self.upstream = Some(s);
        }
        self.upstream.as_mut()
    }

    /// Relay one request frame and its response.
    async fn relay(&mut self, frame: &[u8]) -> Option<Bytes> {
        let up = self.upstream().await?;
        if !write_frame(up, frame).await {
            return None;
        }
        read_frame(up).await
    }

    fn finish_login(&mut self, outcome: Result<(), String>) {
        if let Some(mut login) = self.login.take() {
            login.outcome = outcome;
            self.record.logins.lock().unwrap().push(login);
        }
    }
}

async fn serve(
    mut client: TcpStream,
    id: u64,
    upstream: String,
    config: FrontConfig,
    record: Arc<Record>,
) {
    let _ = client.set_nodelay(true);
    let mut conn = Conn {
        id,
        config,
        record,
        upstream_addr: upstream,
        upstream: None,
        mechanism: None,
        login: None,
        scram: None,
        oauth_error_sent: false,
        authenticated_until: None,
        granted_ms: None,
        close_after_reply: false,
    };
    while let Some(frame) = read_frame(&mut client).await {
        let reply = handle(&mut conn, frame).await;
        match reply {
            Some(out) => {
                if !write_frame(&mut client, &out).await || conn.close_after_reply {
                    break;
                }
            }
            None => break,
        }
    }
    // A login still open when the connection ends did not complete.
    conn.finish_login(Err("connection closed mid-exchange".into()));
}

/// The reply frame to one request, `None` to close the connection.
async fn handle(conn: &mut Conn, frame: Bytes) -> Option<Bytes> {
    let mut peek = frame.clone();
    if peek.remaining() < 4 {
        return None;
    }
    let api_key = peek.get_i16();
    let version = peek.get_i16();
    let api = ApiKey::try_from(api_key).ok()?;
    if let Some(until) = conn.authenticated_until {
        if until.is_some_and(|t| Instant::now() >= t) {
            conn.record.expired.fetch_add(1, Ordering::Relaxed);
            conn.violation(format!("{api:?} on an expired session"));
            return None;
        }
        conn.record.relayed.fetch_add(1, Ordering::Relaxed);
        return conn.relay(&frame).await;
    }
    let mut body = frame.clone();
    let header = RequestHeader::decode(&mut body, api.request_header_version(version)).ok()?;
    match api {
        ApiKey::ApiVersions => {
            let answer = conn.relay(&frame).await?;
            Some(with_sasl_apis(answer, version))
        }
        ApiKey::SaslHandshake => {
            let req = SaslHandshakeRequest::decode(&mut body, version).ok()?;
            let mechanism = req.mechanism.as_str().to_owned();
            let offered = conn.config.mechanisms.contains(&mechanism);
            let resp = SaslHandshakeResponse::default()
                .with_error_code(if offered {
                    0
                } else {
                    UNSUPPORTED_SASL_MECHANISM
                })
                .with_mechanisms(
                    conn.config
                        .mechanisms
                        .iter()
                        .map(|m| StrBytes::from_string(m.clone()))
                        .collect(),
                );
            if offered {
                conn.mechanism = Some((mechanism.clone(), version));
                conn.login = Some(Login {
                    conn: conn.id,
                    mechanism,
                    handshake_version: version,
                    authenticate_version: -1,
                    client_messages: Vec::new(),
                    extensions: Vec::new(),
                    outcome: Err("not finished".into()),
                });
            }
            Some(response(api, &header, &resp))
        }
        ApiKey::SaslAuthenticate => {
            let req = SaslAuthenticateRequest::decode(&mut body, version).ok()?;
            let Some((mechanism, _)) = conn.mechanism.clone() else {
                conn.violation("SaslAuthenticate before SaslHandshake".into());
                return None;
            };
            if let Some(login) = conn.login.as_mut() {
                login.authenticate_version = version;
                login.client_messages.push(req.auth_bytes.to_vec());
            }
            let step = authenticate_step(conn, &mechanism, &req.auth_bytes);
            let mut resp = SaslAuthenticateResponse::default();
            match step {
                StepOutcome::Continue(challenge) => {
                    resp = resp.with_auth_bytes(Bytes::from(challenge));
                    Some(response(api, &header, &resp))
                }
                StepOutcome::Accepted(final_message) => {
                    conn.finish_login(Ok(()));
                    let configured = conn.config.session_lifetime_ms;
                    let lifetime = match conn.granted_ms {
                        Some(left) if configured > 0 => left.min(configured),
                        Some(left) => left,
                        None => configured,
                    };
                    conn.authenticated_until = Some(
                        (lifetime > 0)
                            .then(|| Instant::now() + Duration::from_millis(lifetime as u64)),
                    );
                    resp = resp
                        .with_auth_bytes(Bytes::from(final_message))
                        .with_session_lifetime_ms(lifetime);
                    Some(response(api, &header, &resp))
                }
                StepOutcome::Fooled(final_message) => {
                    // The client must reject this; anything it sends next is a violation.
                    conn.finish_login(Err("fault injected in the server-final message".into()));
                    conn.mechanism = Some(("FAULTED".into(), 0));
                    resp = resp.with_auth_bytes(Bytes::from(final_message));
                    Some(response(api, &header, &resp))
                }
                StepOutcome::Failed(reason) => {
                    // MSK names the IAM failure; the other mechanisms answer as Kafka does.
                    let detail = if mechanism == "AWS_MSK_IAM" {
                        format!(": {reason}")
                    } else {
                        String::new()
                    };
                    conn.finish_login(Err(reason));
                    resp = resp
                        .with_error_code(SASL_AUTHENTICATION_FAILED)
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}{detail}"
                        ))));
                    // Kafka answers, then closes the connection.
                    conn.mechanism = Some(("FAILED".into(), 0));
                    conn.close_after_reply = true;
                    Some(response(api, &header, &resp))
                }
            }
        }
        other => {
            conn.violation(format!("{other:?} before authentication"));
            None
        }
    }
}

enum StepOutcome {
    Continue(Vec<u8>),
    Accepted(Vec<u8>),
    Fooled(Vec<u8>),
    Failed(String),
}

fn authenticate_step(conn: &mut Conn, mechanism: &str, message: &[u8]) -> StepOutcome {
    let cfg = conn.config.clone();
    match mechanism {
        "PLAIN" => {
            let want = format!("\0{}\0{}", cfg.username, cfg.password);
            if message == want.as_bytes() {
                StepOutcome::Accepted(Vec::new())
            } else {
                StepOutcome::Failed("PLAIN message does not match".into())
            }
        }
        "OAUTHBEARER" => {
            if conn.oauth_error_sent {
                return if message == [1] {
                    StepOutcome::Failed("invalid token (client acknowledged with %x01)".into())
                } else {
                    StepOutcome::Failed(format!(
                        "after an error report the client must send %x01, sent {message:?}"
                    ))
                };
            }
            let text = String::from_utf8_lossy(message);
            let Some((token, extensions)) = parse_oauthbearer(&text) else {
                return StepOutcome::Failed(format!("malformed OAUTHBEARER message {text:?}"));
            };
            if let Some(login) = conn.login.as_mut() {
                login.extensions = extensions;
            }
            let valid = match &cfg.token_check {
                Some(check) => match (check.0)(&token) {
                    Ok(left) => {
                        conn.granted_ms = Some(left.as_millis().max(1) as i64);
                        true
                    }
                    Err(_) => false,
                },
                None => cfg.tokens.contains(&token),
            };
            if valid {
                StepOutcome::Accepted(Vec::new())
            } else {
                // RFC 7628 §3.2.2: an error report; the client answers %x01.
                conn.oauth_error_sent = true;
                StepOutcome::Continue(br#"{"status":"invalid_token"}"#.to_vec())
            }
        }
        "AWS_MSK_IAM" => {
            match super::sigv4::verify(message, &cfg.aws_secret, cfg.aws_clock_offset) {
                Ok(()) => StepOutcome::Accepted(
                    br#"{"version":"2020_10_22","request-id":"front-1"}"#.to_vec(),
                ),
                Err(reason) => StepOutcome::Failed(reason),
            }
        }
        "FAILED" | "FAULTED" => {
            conn.violation("SaslAuthenticate after a failed login".into());
            StepOutcome::Failed("request after a failed login".into())
        }
        scram => {
            let Some(hash) = ScramHash::for_mechanism(scram) else {
                return StepOutcome::Failed(format!("unknown mechanism {scram}"));
            };
            match conn.scram.as_mut() {
                None => {
                    let mut server = ScramServer::new(
                        hash,
                        &cfg.username,
                        &cfg.password,
                        &cfg.salt,
                        cfg.iterations,
                        "front-nonce-7Gq2",
                    );
                    match server.client_first(message) {
                        Ok(server_first) => {
                            conn.scram = Some(server);
                            StepOutcome::Continue(server_first.into_bytes())
                        }
                        Err(e) => StepOutcome::Failed(e),
                    }
                }
                Some(server) => {
                    let result = server.client_final(message);
                    conn.scram = None;
                    match (result, &cfg.fault) {
                        (Err(e), _) => StepOutcome::Failed(e),
                        (Ok(v), Fault::None) => StepOutcome::Accepted(v.into_bytes()),
                        (Ok(_), Fault::ServerFinalError(e)) => {
                            StepOutcome::Fooled(format!("e={e}").into_bytes())
                        }
                        (Ok(v), Fault::WrongServerSignature) => {
                            // Flip the first signature character.
                            let mut bad = v.into_bytes();
                            bad[2] = if bad[2] == b'A' { b'B' } else { b'A' };
                            StepOutcome::Fooled(bad)
                        }
                    }
                }
            }
        }
    }
}
