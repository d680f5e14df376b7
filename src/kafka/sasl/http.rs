//! A small, bounded HTTP/1.1 client for the credential endpoints of SASL logins (an OIDC
//! token endpoint, AWS STS, the container and instance metadata endpoints): one request per
//! connection, the whole exchange within a timeout, the response body capped, HTTPS
//! verified with the configured roots through the Kafka client's rustls setup.
//!
//! Request bodies and headers may hold secrets: nothing of them ever reaches an error or a
//! log line. Errors name the URL (without any user info) and what went wrong.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::kafka::tls::Tls;

/// Largest response body read; credential answers are a few KiB.
pub const MAX_BODY: usize = 256 * 1024;

/// An `http://` or `https://` URL, checked at start.
#[derive(Clone, PartialEq, Eq)]
pub struct Url {
    tls: bool,
    /// "host:port" to dial.
    address: String,
    /// The `Host` header.
    authority: String,
    /// Path and query.
    path: String,
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

impl Url {
    /// Parse an absolute `http://` or `https://` URL. User info is refused (credentials
    /// do not belong in a URL that is shown in errors).
    pub fn parse(text: &str) -> Result<Url, String> {
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{text:?} is not an http:// or https:// URL")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{text:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "{text:?} holds user info; credentials go in their own keys"
            ));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let address = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        Ok(Url {
            tls,
            address,
            authority: authority.as_str().to_owned(),
            path,
        })
    }

    pub fn is_https(&self) -> bool {
        self.tls
    }

    /// The host name, without port.
    pub fn host(&self) -> &str {
        crate::kafka::tls::host_of(&self.address)
    }

    /// The same origin with another path and query.
    pub fn with_path(&self, path: &str) -> Url {
        Url {
            path: path.to_owned(),
            ..self.clone()
        }
    }
}

/// Why a request failed. Never holds a request header or body.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url}: {reason}")]
    Exchange { url: String, reason: String },
    #[error("{url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("{url} sent a response larger than {MAX_BODY} bytes")]
    TooLarge { url: String },
}

/// A response: the status and the body.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Response {
    /// The body as one line of text for an error message: lossy, control characters
    /// replaced, bounded.
    pub fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let line: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        line.trim().to_owned()
    }
}

/// One request.
pub struct Call<'a> {
    pub method: Method,
    pub url: &'a Url,
    /// Header names and values; values may be secrets.
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Send `call` over a new connection; `tls` is required for `https://`.
pub async fn send(call: Call<'_>, tls: &Tls, timeout: Duration) -> Result<Response, HttpError> {
    let url = call.url.to_string();
    match tokio::time::timeout(timeout, exchange(call, tls)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout {
            url,
            after: timeout,
        }),
    }
}

async fn exchange(call: Call<'_>, tls: &Tls) -> Result<Response, HttpError> {
    let url = call.url;
    let connect = |reason: String| HttpError::Connect {
        url: url.to_string(),
        reason,
    };
    let tcp = TcpStream::connect(&url.address)
        .await
        .map_err(|e| connect(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let mut request = Request::builder()
        .method(call.method)
        .uri(&url.path)
        .header(hyper::header::HOST, &url.authority)
        .header(hyper::header::USER_AGENT, USER_AGENT);
    for (name, value) in call.headers {
        request = request.header(name, value);
    }
    // The builder's error would only come from a header value; it is not shown.
    let request = request
        .body(Full::new(call.body))
        .map_err(|_| HttpError::Exchange {
            url: url.to_string(),
            reason: "a request header holds characters HTTP does not allow".into(),
        })?;
    if url.tls {
        let stream = tls
            .with_alpn(&[b"http/1.1"])
            .connect_https(&url.address, tcp)
            .await
            .map_err(connect)?;
        round_trip(stream, request, url).await
    } else {
        round_trip(tcp, request, url).await
    }
}

/// What tidemark calls itself on credential endpoints.
pub const USER_AGENT: &str = concat!("tidemark/", env!("CARGO_PKG_VERSION"));

async fn round_trip<T>(
    io: T,
    request: Request<Full<Bytes>>,
    url: &Url,
) -> Result<Response, HttpError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: hyper::Error| HttpError::Exchange {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let (mut sender, connection) = http1::handshake(TokioIo::new(io)).await.map_err(failed)?;
    // Ends when the exchange is over and the sender dropped.
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let response = sender.send_request(request).await.map_err(failed)?;
        let (parts, mut body) = response.into_parts();
        let mut kept = BytesMut::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(failed)?.into_data() {
                if kept.len().saturating_add(data.len()) > MAX_BODY {
                    return Err(HttpError::TooLarge {
                        url: url.to_string(),
                    });
                }
                kept.extend_from_slice(&data);
            }
        }
        Ok(Response {
            status: parts.status,
            body: kept.freeze(),
        })
    }
    .await;
    driver.abort();
    result
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 appendix B).
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports() {
        let u = Url::parse("https://idp.example.com/oauth2/token?x=1").unwrap();
        assert!(u.is_https());
        assert_eq!(u.address, "idp.example.com:443");
        assert_eq!(u.host(), "idp.example.com");
        assert_eq!(u.path, "/oauth2/token?x=1");
        assert_eq!(u.to_string(), "https://idp.example.com/oauth2/token?x=1");
        let u = Url::parse("http://169.254.169.254").unwrap();
        assert_eq!(u.address, "169.254.169.254:80");
        assert_eq!(u.path, "/");
        let u = Url::parse("http://[fd00:ec2::254]:8080/latest").unwrap();
        assert_eq!(u.address, "[fd00:ec2::254]:8080");
        assert_eq!(
            u.with_path("/a?b").to_string(),
            "http://[fd00:ec2::254]:8080/a?b"
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in ["ftp://x/", "idp.example.com/token", "", "https://"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        let e = Url::parse("https://user:pw@idp/token").unwrap_err();
        assert!(e.contains("user info"), "{e}");
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a b&c=d/é~"), "a+b%26c%3Dd%2F%C3%A9%7E");
        assert_eq!(form_encode("api://x.y_z-*"), "api%3A%2F%2Fx.y_z-*");
    }
}
