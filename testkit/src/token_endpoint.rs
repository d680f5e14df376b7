//! A local OAuth 2.0 token endpoint over HTTPS (certificate from the test CA of
//! [`super::pki::Pki`]) for the client credentials grant, the way an OIDC identity provider
//! answers it:
//!
//! * `POST /oauth2/token` with `Authorization: Basic base64(id:secret)`, a form body
//!   `grant_type=client_credentials` and the expected `scope`; anything else is refused
//!   with RFC 6749 §5.2 errors (`invalid_client` 401, `invalid_request` / `invalid_scope`
//!   400) and recorded;
//! * each token is new, lives `expires_in` seconds and is kept in a registry that the
//!   SASL front consults ([`TokenEndpoint::checker`]): a token is valid when it was
//!   issued here and has not expired;
//! * [`TokenEndpoint::set_down`] makes it close every connection without an answer, as an
//!   endpoint that is down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::pki::Pki;

/// What the endpoint accepts and how long its tokens live.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub expires_in: u64,
}

/// One request to the endpoint.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub at: Instant,
    /// `Ok(token)` when a token was issued, `Err(error)` with the OAuth error otherwise.
    pub outcome: Result<String, String>,
}

#[derive(Default)]
struct State {
    issued: Mutex<HashMap<String, Instant>>,
    requests: Mutex<Vec<TokenRequest>>,
    /// Connections refused while down.
    refused: AtomicU64,
    down: AtomicBool,
    next: AtomicU64,
}

/// A running token endpoint; stops when dropped.
pub struct TokenEndpoint {
    /// `https://127.0.0.1:<port>/oauth2/token`.
    pub url: String,
    state: Arc<State>,
    task: AbortHandle,
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_config(pki: &Pki) -> Arc<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.path("server.crt"))
        .expect("server.crt")
        .collect::<Result<_, _>>()
        .expect("server certificate");
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).expect("server.key");
    let provider = tidemark::kafka::tls::crypto_provider().expect("crypto provider");
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate and key");
    Arc::new(config)
}

impl TokenEndpoint {
    pub async fn start(pki: &Pki, config: EndpointConfig) -> TokenEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let acceptor = TlsAcceptor::from(tls_config(pki));
        let state = Arc::new(State::default());
        let s = state.clone();
        let config = Arc::new(config);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                if s.down.load(Ordering::SeqCst) {
                    s.refused.fetch_add(1, Ordering::SeqCst);
                    drop(tcp);
                    continue;
                }
                let (acceptor, s, config) = (acceptor.clone(), s.clone(), config.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req| {
                        let (s, config) = (s.clone(), config.clone());
                        async move { Ok::<_, hyper::Error>(answer(req, &s, &config).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        })
        .abort_handle();
        TokenEndpoint {
            url: format!("https://127.0.0.1:{port}/oauth2/token"),
            state,
            task,
        }
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Connections closed unanswered while down.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// A check for the SASL front: the time left of a token issued here, or why it is
    /// not valid.
    pub fn checker(&self) -> impl Fn(&str) -> Result<Duration, String> + Send + Sync + 'static {
        let state = self.state.clone();
        move |token: &str| match state.issued.lock().unwrap().get(token) {
            None => Err("unknown token".into()),
            Some(expiry) => expiry
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or_else(|| "expired token".into()),
        }
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

fn error(status: StatusCode, code: &str, description: &str) -> Response<Full<Bytes>> {
    json(
        status,
        format!(r#"{{"error":"{code}","error_description":"{description}"}}"#),
    )
}

/// Checks the request as an identity provider does, issues a token or an OAuth error.
async fn answer(
    req: Request<hyper::body::Incoming>,
    state: &State,
    config: &EndpointConfig,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let want_auth = format!(
        "Basic {}",
        B64.encode(format!("{}:{}", config.client_id, config.client_secret))
    );
    let mut form = "grant_type=client_credentials".to_owned();
    if let Some(scope) = &config.scope {
        form.push_str(&format!("&scope={scope}"));
    }
    let response = if parts.method != hyper::Method::POST || parts.uri.path() != "/oauth2/token" {
        Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
        ))
    } else if header("authorization") != want_auth {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        ))
    } else if header("content-type") != "application/x-www-form-urlencoded" {
        Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "not a form",
        ))
    } else if body.as_ref() != form.as_bytes() {
        Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "unexpected grant or scope",
        ))
    } else {
        Ok(())
    };
    let at = Instant::now();
    let outcome = match response {
        Err(resp) => {
            let status = resp.status();
            state.requests.lock().unwrap().push(TokenRequest {
                at,
                outcome: Err(status.to_string()),
            });
            return resp;
        }
        Ok(()) => {
            let n = state.next.fetch_add(1, Ordering::SeqCst);
            let token = format!(
                "eyJ0aWRlbWFyayI6MX0.tok-{n}-{}.sig",
                at.elapsed().as_nanos()
            );
            state
                .issued
                .lock()
                .unwrap()
                .insert(token.clone(), at + Duration::from_secs(config.expires_in));
            token
        }
    };
    state.requests.lock().unwrap().push(TokenRequest {
        at,
        outcome: Ok(outcome.clone()),
    });
    json(
        StatusCode::OK,
        format!(
            r#"{{"access_token":"{outcome}","token_type":"Bearer","expires_in":{}}}"#,
            config.expires_in
        ),
    )
}
