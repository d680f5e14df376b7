//! `consumer_properties` → [`Security`]: the TLS and SASL settings of a cluster.
//!
//! Every file (CA, certificate, key, token) is read and checked here, at start: a missing
//! or unparsable file is a config error naming the key and the path. The keys are
//! librdkafka's (as klag-exporter users write them), plus two of tidemark's own for a
//! static OAUTHBEARER token, which librdkafka only feeds through a callback:
//!
//! | key | meaning |
//! |---|---|
//! | `security.protocol` | PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL |
//! | `sasl.mechanism` / `sasl.mechanisms` | PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, AWS_MSK_IAM |
//! | `sasl.username`, `sasl.password` | PLAIN and SCRAM credentials |
//! | `sasl.oauthbearer.token` | a static OAUTHBEARER token |
//! | `sasl.oauthbearer.token.file` | a file holding the token, re-read at each login |
//! | `sasl.oauthbearer.method` | `default` (the two keys above), `oidc` or `aws_msk_iam` |
//! | `sasl.oauthbearer.token.endpoint.url` | OIDC: the token endpoint |
//! | `sasl.oauthbearer.client.id`, `.client.secret` | OIDC: the client credentials |
//! | `sasl.oauthbearer.scope` | OIDC: the scope asked for (optional) |
//! | `sasl.oauthbearer.extensions` | `k=v,k=v` SASL extensions sent with the token |
//! | `https.ca.location` / `https.ca.pem` | CA certificates of the token endpoint |
//! | `aws.region` | MSK IAM: the region signed for (default: from the broker's host) |
//! | `ssl.ca.location` | CA certificates: a PEM file, a directory of them, or `probe` |
//! | `ssl.ca.pem` | CA certificates as PEM text |
//! | `ssl.certificate.location` / `.pem` | client certificate chain (mTLS) |
//! | `ssl.key.location` / `.pem` | its private key (PKCS#8, PKCS#1, SEC1, encrypted PKCS#8) |
//! | `ssl.key.password` | password of an encrypted key |
//! | `enable.ssl.certificate.verification` | `false` accepts any certificate (insecure) |
//! | `ssl.endpoint.identification.algorithm` | `https` (default) or `none` (no host check) |

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::client::{PropertyError, SecurityProtocol};
use crate::kafka::sasl::aws::AwsIam;
use crate::kafka::sasl::http::Url;
use crate::kafka::sasl::oidc::{Oidc, OidcSettings};
use crate::kafka::sasl::{
    self, Credentials, Extensions, Mechanism, Sasl, Secret, TokenFile, TokenSource,
};
use crate::kafka::tls::{self, ClientIdentity, Tls, TlsSettings, TrustAnchors, Verification};
use crate::kafka::Security;

/// Where `ssl.ca.location = "probe"` looks, in order (librdkafka's list, abridged).
const PROBE_PATHS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/openssl/cert.pem",
];

fn err(key: &str, problem: impl Into<String>, expected: impl Into<String>) -> PropertyError {
    PropertyError {
        key: key.to_owned(),
        problem: problem.into(),
        expected: expected.into(),
    }
}

struct Props<'a>(&'a BTreeMap<String, String>);

impl Props<'_> {
    /// A non-empty value (an empty string counts as unset, as in librdkafka).
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(|v| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    fn read(&self, key: &str, path: &str, expected: &str) -> Result<Vec<u8>, PropertyError> {
        std::fs::read(path).map_err(|e| err(key, format!("cannot read {path:?}: {e}"), expected))
    }

    /// PEM text from `<base>.location` (a file) or `<base>.pem` (inline), and where it came from.
    fn pem(
        &self,
        base: &str,
        expected: &str,
    ) -> Result<Option<(Vec<u8>, String, String)>, PropertyError> {
        let location = format!("{base}.location");
        let inline = format!("{base}.pem");
        match (self.get(&location), self.get(&inline)) {
            (Some(_), Some(_)) => Err(err(
                &inline,
                format!("is set together with {location}"),
                format!("only one of {location} and {inline}"),
            )),
            (Some(path), None) => {
                let bytes = self.read(&location, path, expected)?;
                Ok(Some((bytes, location, format!("{path:?}"))))
            }
            (None, Some(text)) => Ok(Some((
                text.as_bytes().to_vec(),
                inline,
                "the inline PEM".into(),
            ))),
            (None, None) => Ok(None),
        }
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, PropertyError> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v == "true" || v == "1" => Ok(true),
            Some(v) if v == "false" || v == "0" => Ok(false),
            Some(v) => Err(err(key, format!("{v:?} is not a boolean"), "true or false")),
        }
    }
}

/// The cluster's [`Security`], with every file read and checked.
pub(super) fn build(
    props: &BTreeMap<String, String>,
    protocol: SecurityProtocol,
) -> Result<Security, PropertyError> {
    let p = Props(props);
    let tls = if protocol.uses_tls() {
        Some(tls_settings(&p)?)
    } else {
        None
    };
    let sasl = if protocol.uses_sasl() {
        Some(sasl_settings(&p)?)
    } else {
        None
    };
    Ok(match (tls, sasl) {
        (None, None) => Security::Plaintext,
        (Some(tls), None) => Security::Ssl(tls),
        (None, Some(sasl)) => Security::SaslPlaintext(sasl),
        (Some(tls), Some(sasl)) => Security::SaslSsl(tls, sasl),
    })
}

/// The `ssl.*` keys a push endpoint's `tls` table takes (the Kafka client's).
pub(super) const PUSH_TLS_KEYS: &[&str] = &[
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.certificate.pem",
    "ssl.key.location",
    "ssl.key.pem",
    "ssl.key.password",
    "enable.ssl.certificate.verification",
    "ssl.endpoint.identification.algorithm",
];

/// TLS of a push endpoint, from the same keys and with the same checks as a cluster's.
pub(super) fn push_tls(props: &BTreeMap<String, String>) -> Result<Tls, PropertyError> {
    tls_settings(&Props(props))
}

fn tls_settings(p: &Props) -> Result<Tls, PropertyError> {
    let verify = p.flag("enable.ssl.certificate.verification", true)?;
    let hostname = match p.get("ssl.endpoint.identification.algorithm") {
        None => true,
        Some(v) if v.trim().eq_ignore_ascii_case("https") => true,
        Some(v) if v.trim().eq_ignore_ascii_case("none") => false,
        Some(v) => {
            return Err(err(
                "ssl.endpoint.identification.algorithm",
                format!("{v:?} is not supported"),
                "https (check the broker's host name, the default) or none",
            ))
        }
    };
    let verification = match (verify, hostname) {
        (false, _) => Verification::None,
        (true, false) => Verification::NoHostname,
        (true, true) => Verification::Full,
    };
    let trust = trust_anchors(p, "ssl.ca")?;
    let identity = client_identity(p)?;
    Tls::new(TlsSettings {
        trust,
        identity,
        verification,
    })
    .map_err(|e| match e {
        tls::TlsError::UnsupportedCpu { .. } => err(
            "security.protocol",
            format!("TLS is not available on this machine: {e}"),
            "a CPU with those features, or a tidemark built with `--features ring`",
        ),
        tls::TlsError::Invalid(problem) => err(
            if p.get("ssl.certificate.location").is_some() {
                "ssl.certificate.location"
            } else {
                "security.protocol"
            },
            problem,
            "a usable TLS setup",
        ),
    })
}

/// CA certificates from `<base>.location` / `<base>.pem` (`ssl.ca` for brokers, `https.ca`
/// for token and credential endpoints); the Mozilla roots when neither is set.
fn trust_anchors(p: &Props, base: &str) -> Result<TrustAnchors, PropertyError> {
    const EXPECTED: &str = "a PEM file of CA certificates, a directory of them, or \"probe\"";
    let (location_key, pem_key) = (format!("{base}.location"), format!("{base}.pem"));
    if let Some(location) = p.get(&location_key) {
        if p.get(&pem_key).is_some() {
            return Err(err(
                &pem_key,
                format!("is set together with {location_key}"),
                format!("only one of {location_key} and {pem_key}"),
            ));
        }
        let key = location_key.as_str();
        if location.trim() == "probe" {
            let found = PROBE_PATHS.iter().find(|path| Path::new(path).is_file());
            let Some(path) = found else {
                return Err(err(
                    key,
                    format!("\"probe\" found no CA bundle (looked in {})", PROBE_PATHS.join(", ")),
                    "a PEM file of CA certificates (the default, no ssl.ca.location, trusts the Mozilla roots built into tidemark)",
                ));
            };
            let bytes = p.read(key, path, EXPECTED)?;
            let certs = tls::parse_certificates(&bytes).map_err(|problem| {
                err(
                    key,
                    format!("\"probe\" found {path:?}: {problem}"),
                    EXPECTED,
                )
            })?;
            return Ok(TrustAnchors::Certificates(certs));
        }
        if Path::new(location).is_dir() {
            return ca_directory(key, location);
        }
        let bytes = p.read(key, location, EXPECTED)?;
        let certs = tls::parse_certificates(&bytes)
            .map_err(|problem| err(key, format!("{location:?}: {problem}"), EXPECTED))?;
        return Ok(TrustAnchors::Certificates(certs));
    }
    if let Some(text) = p.get(&pem_key) {
        let certs = tls::parse_certificates(text.as_bytes())
            .map_err(|problem| err(&pem_key, problem, "PEM CA certificates"))?;
        return Ok(TrustAnchors::Certificates(certs));
    }
    Ok(TrustAnchors::MozillaRoots)
}

/// Every certificate of every PEM file in `dir` (files without certificates are skipped).
fn ca_directory(key: &str, dir: &str) -> Result<TrustAnchors, PropertyError> {
    const EXPECTED: &str = "a directory holding PEM CA certificate files";
    let entries = std::fs::read_dir(dir)
        .map_err(|e| err(key, format!("cannot list {dir:?}: {e}"), EXPECTED))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut certs = Vec::new();
    for path in paths {
        if let Ok(bytes) = std::fs::read(&path) {
            certs.extend(tls::parse_certificates(&bytes).unwrap_or_default());
        }
    }
    if certs.is_empty() {
        return Err(err(
            key,
            format!("directory {dir:?} holds no PEM certificate"),
            EXPECTED,
        ));
    }
    Ok(TrustAnchors::Certificates(certs))
}

fn client_identity(p: &Props) -> Result<Option<ClientIdentity>, PropertyError> {
    let cert = p.pem(
        "ssl.certificate",
        "a PEM file with the client certificate (chain)",
    )?;
    let key = p.pem("ssl.key", "a PEM file with the client's private key")?;
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some((_, cert_key, _)), None) => {
            return Err(err(
                &cert_key,
                "is set but ssl.key.location is not",
                "both a client certificate and its private key (ssl.key.location)",
            ))
        }
        (None, Some((_, key_key, _))) => {
            return Err(err(
                &key_key,
                "is set but ssl.certificate.location is not",
                "both a client certificate (ssl.certificate.location) and its private key",
            ))
        }
        (Some(c), Some(k)) => (c, k),
    };
    let (bytes, cert_key, source) = cert;
    let chain = tls::parse_certificates(&bytes).map_err(|problem| {
        err(
            &cert_key,
            format!("{source}: {problem}"),
            "a PEM client certificate",
        )
    })?;
    let (bytes, key_key, source) = key;
    let password = p.get("ssl.key.password");
    let key = tls::parse_private_key(&bytes, password).map_err(|problem| {
        err(
            &key_key,
            format!("{source}: {problem}"),
            "a PEM private key (PKCS#8, PKCS#1, SEC1, or encrypted PKCS#8 with ssl.key.password)",
        )
    })?;
    Ok(Some(ClientIdentity { chain, key }))
}

fn sasl_settings(p: &Props) -> Result<Sasl, PropertyError> {
    const EXPECTED: &str = "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, AWS_MSK_IAM";
    let (key, name) = match (p.get("sasl.mechanism"), p.get("sasl.mechanisms")) {
        (Some(a), Some(b)) if !a.trim().eq_ignore_ascii_case(b.trim()) => {
            return Err(err(
                "sasl.mechanisms",
                format!("{b:?} differs from sasl.mechanism {a:?}"),
                "one mechanism, in either key",
            ))
        }
        (Some(a), _) => ("sasl.mechanism", a),
        (None, Some(b)) => ("sasl.mechanisms", b),
        (None, None) => {
            return Err(err(
                "sasl.mechanism",
                "is missing (librdkafka's default, GSSAPI, is not supported)",
                EXPECTED,
            ))
        }
    };
    let mechanism = match Mechanism::parse(name) {
        Some(m) => m,
        None if name.trim().eq_ignore_ascii_case("GSSAPI") => {
            return Err(err(
                key,
                "GSSAPI (Kerberos) is not supported by tidemark",
                EXPECTED,
            ))
        }
        None => {
            return Err(err(
                key,
                format!("{name:?} is not a supported SASL mechanism"),
                EXPECTED,
            ))
        }
    };
    let credentials = match mechanism {
        Mechanism::OAuthBearer => Credentials::Token(token_source(p)?, extensions(p)?),
        Mechanism::AwsMskIam => Credentials::Aws(Arc::new(AwsIam::new(
            p.get("aws.region").map(|r| r.trim().to_owned()),
            https_tls(p)?,
        ))),
        _ => {
            let username = p.get("sasl.username").ok_or_else(|| {
                err(
                    "sasl.username",
                    format!("is missing (needed for {mechanism})"),
                    "the SASL user name",
                )
            })?;
            let password = p.0.get("sasl.password").ok_or_else(|| {
                err(
                    "sasl.password",
                    format!("is missing (needed for {mechanism})"),
                    "the SASL password",
                )
            })?;
            Credentials::Password {
                username: username.to_owned(),
                password: Secret::new(password.clone()),
            }
        }
    };
    Ok(Sasl {
        mechanism,
        credentials,
    })
}

fn extensions(p: &Props) -> Result<Extensions, PropertyError> {
    const KEY: &str = "sasl.oauthbearer.extensions";
    Extensions::parse(p.get(KEY).unwrap_or_default()).map_err(|problem| {
        err(
            KEY,
            problem,
            "comma-separated key=value pairs, e.g. \"logicalCluster=lkc-abc12,identityPoolId=pool-Xy1\"",
        )
    })
}

fn token_source(p: &Props) -> Result<TokenSource, PropertyError> {
    const TOKEN: &str = "sasl.oauthbearer.token";
    const FILE: &str = "sasl.oauthbearer.token.file";
    const METHOD: &str = "sasl.oauthbearer.method";
    match p
        .get(METHOD)
        .map(|m| m.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("default") => {}
        Some("oidc") => {
            if let Some(key) = [TOKEN, FILE].into_iter().find(|k| p.get(k).is_some()) {
                return Err(err(
                    key,
                    "is set together with sasl.oauthbearer.method = oidc",
                    "either a token (method default) or OIDC client credentials",
                ));
            }
            return oidc(p).map(|o| TokenSource::Oidc(Arc::new(Oidc::new(o))));
        }
        Some("aws_msk_iam") => {
            let region = p.get("aws.region").ok_or_else(|| {
                err(
                    "aws.region",
                    "is missing (needed for sasl.oauthbearer.method = aws_msk_iam)",
                    "the AWS region of the MSK cluster, e.g. \"eu-west-1\"",
                )
            })?;
            return Ok(TokenSource::MskIam(Arc::new(AwsIam::new(
                Some(region.trim().to_owned()),
                https_tls(p)?,
            ))));
        }
        Some(other) => {
            return Err(err(
                METHOD,
                format!("{other:?} is not supported"),
                "default (a token or token file), oidc (client credentials) or aws_msk_iam",
            ))
        }
    }
    match (p.get(TOKEN), p.get(FILE)) {
        (Some(_), Some(_)) => Err(err(
            FILE,
            format!("is set together with {TOKEN}"),
            format!("only one of {TOKEN} and {FILE}"),
        )),
        (Some(token), None) => sasl::check_token(token.trim())
            .map(TokenSource::Static)
            .map_err(|problem| err(TOKEN, problem, "a bearer token (e.g. a JWT)")),
        (None, Some(path)) => TokenFile::open(path)
            .map(TokenSource::File)
            .map_err(|problem| err(FILE, problem, "a readable file holding one bearer token")),
        (None, None) => Err(err(
            TOKEN,
            "is missing: OAUTHBEARER needs sasl.oauthbearer.token or sasl.oauthbearer.token.file, \
             or sasl.oauthbearer.method = oidc",
            "a bearer token, or the path of a file holding one",
        )),
    }
}

/// `sasl.oauthbearer.method = oidc`: the token endpoint, the client and its TLS trust.
fn oidc(p: &Props) -> Result<OidcSettings, PropertyError> {
    let required = |key: &str, expected: &str| {
        p.get(key).map(|v| v.trim().to_owned()).ok_or_else(|| {
            err(
                key,
                "is missing (needed for sasl.oauthbearer.method = oidc)",
                expected,
            )
        })
    };
    const URL: &str = "sasl.oauthbearer.token.endpoint.url";
    let url = required(
        URL,
        "the token endpoint's URL, e.g. https://idp.example.com/oauth2/token",
    )?;
    let endpoint = Url::parse(&url)
        .map_err(|problem| err(URL, problem, "an https:// URL of the token endpoint"))?;
    let client_id = required("sasl.oauthbearer.client.id", "the OAuth client id")?;
    let client_secret = Secret::new(required(
        "sasl.oauthbearer.client.secret",
        "the OAuth client secret",
    )?);
    let tls = https_tls(p)?;
    Ok(OidcSettings {
        endpoint,
        client_id,
        client_secret,
        scope: p.get("sasl.oauthbearer.scope").map(|s| s.trim().to_owned()),
        tls,
    })
}

/// TLS of the HTTPS endpoints of SASL credentials (token endpoint, STS), verified with
/// `https.ca.location` / `https.ca.pem` or the Mozilla roots.
fn https_tls(p: &Props) -> Result<Tls, PropertyError> {
    Tls::new(TlsSettings {
        trust: trust_anchors(p, "https.ca")?,
        identity: None,
        verification: Verification::Full,
    })
    .map_err(|e| err("https.ca.location", e.to_string(), "a usable TLS setup"))
}

#[cfg(test)]
mod tests;
