//! TLS for broker connections: rustls over tokio, crypto from a pure-Rust provider.
//!
//! - **Crypto provider**: `rustls-graviola` (pure Rust) by default; the `ring` cargo feature
//!   switches to `ring` (and wins when both are enabled). graviola needs a modern CPU
//!   (x86_64: adx, aes, avx, avx2, bmi1, pclmulqdq; aarch64: aes, sha2, pmull, neon) and
//!   panics on first use without it, so [`crypto_provider`] checks those features first
//!   and fails with an error that names the `ring` feature instead.
//! - **Server verification** is on by default: the chain must lead to a trust anchor (the
//!   Mozilla roots from `webpki-roots`, or the CA certificates given) and the certificate
//!   must be valid for the broker's host (IP SAN for an address, DNS SAN for a name).
//!   [`Verification::NoHostname`] checks the chain only (librdkafka's
//!   `ssl.endpoint.identification.algorithm=none`); [`Verification::None`] accepts any
//!   certificate (`enable.ssl.certificate.verification=false`) but still checks the
//!   handshake signatures, so the peer must hold the key of the certificate it shows.
//! - **SNI**: the broker's host name from its address; none for an IP address (RFC 6066).
//! - **Client certificate** (mTLS): a chain and its private key (PKCS#8, PKCS#1 or SEC1
//!   PEM; an encrypted PKCS#8 key is decrypted in pure Rust with its password).
//!
//! Everything that can fail on bad input (PEM, keys, a key that does not match its
//! certificate, an unsupported CPU) fails in [`Tls::new`], i.e. at start, never on a
//! connection.

use std::fmt;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use super::error::{KafkaError, KafkaErrorKind};

#[cfg(not(any(feature = "ring", feature = "graviola")))]
compile_error!(
    "tidemark needs a TLS crypto provider: enable the `graviola` (default) or `ring` feature"
);

/// A TLS setup problem found at start (bad PEM, wrong key password, unsupported CPU).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// graviola cannot run on this CPU.
    #[error(
        "this CPU lacks {} which tidemark's pure-Rust TLS crypto (graviola) needs; \
         use a build with the `ring` cargo feature (cargo build --features ring) on this machine",
        missing.join(", ")
    )]
    UnsupportedCpu { missing: Vec<&'static str> },
    /// Certificates, keys or settings that cannot be used.
    #[error("{0}")]
    Invalid(String),
}

/// How the broker's certificate is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verification {
    /// Chain to a trusted root and valid for the broker's host (the default).
    #[default]
    Full,
    /// Chain to a trusted root; the host name is not checked.
    NoHostname,
    /// Nothing is checked but the handshake signatures: insecure, for tests only.
    None,
}

/// Which certificate authorities are trusted.
#[derive(Clone, Default)]
pub enum TrustAnchors {
    /// The Mozilla root program (`webpki-roots`), compiled in.
    #[default]
    MozillaRoots,
    /// Exactly these CA certificates (from `ssl.ca.location` / `ssl.ca.pem`).
    Certificates(Vec<CertificateDer<'static>>),
}

/// A client certificate chain and its private key, for mutual TLS.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field(
                "chain",
                &format_args!("{} certificate(s)", self.chain.len()),
            )
            .field("key", &crate::secret::REDACTED)
            .finish()
    }
}

/// What [`Tls::new`] builds a client configuration from.
#[derive(Debug, Default)]
pub struct TlsSettings {
    pub trust: TrustAnchors,
    pub identity: Option<ClientIdentity>,
    pub verification: Verification,
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MozillaRoots => f.write_str("MozillaRoots"),
            Self::Certificates(c) => write!(f, "Certificates({} certificate(s))", c.len()),
        }
    }
}

/// A ready TLS client configuration, shared by every connection of a cluster.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    verification: Verification,
    client_certificate: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("verification", &self.verification)
            .field("client_certificate", &self.client_certificate)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Build the client configuration; every problem is reported here, at start.
    pub fn new(settings: TlsSettings) -> Result<Tls, TlsError> {
        let provider = crypto_provider()?;
        let verifier = verifier(&settings, &provider)?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid(format!("TLS protocol versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let client_certificate = settings.identity.is_some();
        let config = match settings.identity {
            Some(ClientIdentity { chain, key }) => {
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    TlsError::Invalid(format!(
                        "the client certificate and private key cannot be used together: {e}"
                    ))
                })?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Tls {
            config: Arc::new(config),
            verification: settings.verification,
            client_certificate,
        })
    }

    /// The same configuration offering `protocols` by ALPN (`h2` for gRPC).
    pub fn with_alpn(&self, protocols: &[&[u8]]) -> Tls {
        let mut config = (*self.config).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        Tls {
            config: Arc::new(config),
            ..self.clone()
        }
    }

    /// How the broker's certificate is checked.
    pub fn verification(&self) -> Verification {
        self.verification
    }

    /// Whether a client certificate is presented.
    pub fn has_client_certificate(&self) -> bool {
        self.client_certificate
    }

    /// Run the TLS handshake over `tcp` to `broker` ("host:port").
    pub async fn connect(
        &self,
        broker: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, KafkaError> {
        let host = host_of(broker);
        let name = ServerName::try_from(host.to_string()).map_err(|e| KafkaErrorKind::Tls {
            broker: broker.to_string(),
            message: format!("{host:?} is not a valid TLS server name: {e}"),
        })?;
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| {
                KafkaErrorKind::Tls {
                    broker: broker.to_string(),
                    message: handshake_message(&e),
                }
                .into()
            })
    }

    /// Run the TLS handshake over `tcp` to an HTTPS endpoint ("host:port"); the error says
    /// what went wrong in an HTTPS endpoint's terms (`https.ca.location`).
    pub async fn connect_https(
        &self,
        address: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, String> {
        let host = host_of(address);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
        let e = match TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
        {
            Ok(stream) => return Ok(stream),
            Err(e) => e,
        };
        let rustls_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let hint = match rustls_error {
            Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                " (its certificate does not chain to a trusted CA: set https.ca.location to \
                 the CA that signed it)"
            }
            Some(rustls::Error::InvalidCertificate(_)) => " (its certificate is not acceptable)",
            _ => "",
        };
        Err(format!("TLS handshake failed: {e}{hint}"))
    }
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
pub fn host_of(broker: &str) -> &str {
    if let Some(rest) = broker.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match broker.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => broker,
    }
}

fn handshake_message(e: &std::io::Error) -> String {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let hint = match rustls_error {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::UnknownIssuer => {
                " (the broker's certificate does not chain to a trusted CA: set ssl.ca.location \
                 to the CA that signed it)"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                " (the broker's certificate is not valid for the host name tidemark dialled: \
                 use the name in the certificate, or ssl.endpoint.identification.algorithm=none)"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                " (the broker's certificate has expired)"
            }
            _ => "",
        },
        _ if matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ) =>
        {
            " (the broker closed the connection during the TLS handshake: is this a plaintext \
             listener? security.protocol PLAINTEXT or SASL_PLAINTEXT talks to it)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

/// The crypto provider of this build, after checking the CPU can run it.
pub fn crypto_provider() -> Result<Arc<CryptoProvider>, TlsError> {
    #[cfg(feature = "ring")]
    {
        Ok(Arc::new(crypto::ring::default_provider()))
    }
    #[cfg(all(feature = "graviola", not(feature = "ring")))]
    {
        let missing = missing_cpu_features();
        if !missing.is_empty() {
            return Err(TlsError::UnsupportedCpu { missing });
        }
        Ok(Arc::new(rustls_graviola::default_provider()))
    }
}

/// Name of the crypto provider compiled in ("graviola" or "ring").
pub const fn crypto_provider_name() -> &'static str {
    if cfg!(feature = "ring") {
        "ring"
    } else {
        "graviola"
    }
}

/// CPU features graviola needs that this CPU lacks (empty when it can run).
pub fn missing_cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut missing = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! need {
            ($($f:tt),*) => {$(
                if !std::arch::is_x86_feature_detected!($f) {
                    missing.push($f);
                }
            )*};
        }
        need!("adx", "aes", "avx", "avx2", "bmi1", "pclmulqdq");
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! need {
            ($($f:tt),*) => {$(
                if !std::arch::is_aarch64_feature_detected!($f) {
                    missing.push($f);
                }
            )*};
        }
        need!("aes", "sha2", "pmull", "neon");
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    missing.push("an x86_64 or aarch64 CPU");
    missing
}

fn verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    if settings.verification == Verification::None {
        return Ok(Arc::new(AcceptAnyCertificate {
            provider: provider.clone(),
        }));
    }
    let mut roots = RootCertStore::empty();
    match &settings.trust {
        TrustAnchors::MozillaRoots => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        TrustAnchors::Certificates(certs) => {
            for (i, cert) in certs.iter().enumerate() {
                roots.add(cert.clone()).map_err(|e| {
                    TlsError::Invalid(format!("CA certificate #{} cannot be used: {e}", i + 1))
                })?;
            }
        }
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Invalid(format!("cannot build the certificate verifier: {e}")))?;
    Ok(match settings.verification {
        Verification::NoHostname => Arc::new(IgnoreHostname(webpki)),
        _ => webpki,
    })
}

/// The chain is checked, the host name is not.
#[derive(Debug)]
struct IgnoreHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `enable.ssl.certificate.verification=false`: any certificate; signatures still checked.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------
// PEM
// ---------------------------------------------------------------------------------------

/// Every certificate in PEM text; at least one.
pub fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(
            "no certificate in it (expected a \"-----BEGIN CERTIFICATE-----\" block)".into(),
        );
    }
    Ok(certs)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The private key in PEM text: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), or encrypted PKCS#8
/// (PBES2, e.g. `openssl pkcs8 -topk8 -v2 aes-256-cbc`) decrypted with `password`.
/// `password` is ignored for an unencrypted key (as librdkafka does).
pub fn parse_private_key(
    pem: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(pem);
    if let Some(start) = text.find(ENCRYPTED_BEGIN) {
        let end = text[start..]
            .find(ENCRYPTED_END)
            .map(|n| start + n + ENCRYPTED_END.len())
            .ok_or("the ENCRYPTED PRIVATE KEY block has no END line")?;
        let Some(password) = password else {
            return Err("the key is encrypted and ssl.key.password is not set".into());
        };
        return decrypt_pkcs8(&text[start..end], password);
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(
            "the key is encrypted in the legacy OpenSSL format (Proc-Type: 4,ENCRYPTED), which \
             tidemark cannot decrypt; convert it to encrypted PKCS#8 with \
             `openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.key -out new.key`"
                .into(),
        );
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => "no private key in it (expected a \
             \"-----BEGIN PRIVATE KEY-----\", \"RSA PRIVATE KEY\", \"EC PRIVATE KEY\" or \
             \"ENCRYPTED PRIVATE KEY\" block)"
            .to_string(),
        e => format!("not a valid PEM private key: {e}"),
    })
}

fn decrypt_pkcs8(block: &str, password: &str) -> Result<PrivateKeyDer<'static>, String> {
    use pkcs8::der::Decode;
    let (label, der) =
        pkcs8::der::pem::decode_vec(block.as_bytes()).map_err(|e| format!("not valid PEM: {e}"))?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(format!("unexpected PEM label {label:?}"));
    }
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der)
        .map_err(|e| format!("not an encrypted PKCS#8 key: {e}"))?;
    let doc = info.decrypt(password).map_err(|e| {
        format!("cannot decrypt the key (wrong ssl.key.password, or an unsupported cipher): {e}")
    })?;
    // The decrypted bytes must themselves be a PKCS#8 PrivateKeyInfo.
    pkcs8::PrivateKeyInfo::from_der(doc.as_bytes())
        .map_err(|e| format!("the decrypted key is not a PKCS#8 private key: {e}"))?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        doc.as_bytes().to_vec(),
    )))
}

#[cfg(test)]
mod tests;
