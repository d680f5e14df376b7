use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::*;

const CERT: &[u8] = include_bytes!("testdata/cert.pem");
const KEY_PKCS8: &[u8] = include_bytes!("testdata/key-pkcs8.pem");
const KEY_SEC1: &[u8] = include_bytes!("testdata/key-sec1.pem");
const KEY_ENCRYPTED: &[u8] = include_bytes!("testdata/key-pkcs8-encrypted.pem");
const KEY_LEGACY: &[u8] = include_bytes!("testdata/key-legacy-encrypted.pem");
const KEY_PASSWORD: &str = "tidemark-test";

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let cert = params.signed_by(&key, issuer).unwrap();
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (vec![cert.der().clone()], der)
}

/// A one-shot TLS echo server: answers one read with the same bytes.
async fn echo_server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<CertificateDer<'static>>,
) -> String {
    let provider = crypto_provider().unwrap();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 16];
                    if let Ok(n) = tls.read(&mut buf).await {
                        let _ = tls.write_all(&buf[..n]).await;
                        let _ = tls.flush().await;
                    }
                }
            });
        }
    });
    address
}

/// Handshake and one echo round trip (in TLS 1.3 a rejected client certificate only shows
/// when reading).
async fn round_trip(tls: &Tls, address: &str) -> Result<(), String> {
    let tcp = TcpStream::connect(address).await.unwrap();
    let mut stream = tls.connect(address, tcp).await.map_err(|e| e.to_string())?;
    stream.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| format!("read: {e}"))?;
    assert_eq!(&buf, b"ping");
    Ok(())
}

fn trust(ca: &CertifiedIssuer<'static, KeyPair>) -> TrustAnchors {
    TrustAnchors::Certificates(vec![ca.der().clone()])
}

#[tokio::test]
async fn verifies_the_chain_and_the_host() {
    let ca1 = ca("tidemark test CA");
    let (chain, key) = leaf(&ca1, &["127.0.0.1", "localhost"]);
    let address = echo_server(chain, key, None).await;

    let ok = Tls::new(TlsSettings {
        trust: trust(&ca1),
        ..Default::default()
    })
    .unwrap();
    round_trip(&ok, &address).await.unwrap();
    // By name too (SNI "localhost", DNS SAN).
    let port = address.rsplit_once(':').unwrap().1;
    round_trip(&ok, &format!("localhost:{port}")).await.unwrap();

    let other = Tls::new(TlsSettings {
        trust: trust(&ca("someone else")),
        ..Default::default()
    })
    .unwrap();
    let e = round_trip(&other, &address).await.unwrap_err();
    assert!(
        e.contains("UnknownIssuer") && e.contains("ssl.ca.location"),
        "{e}"
    );

    // The Mozilla roots do not know a private CA.
    let mozilla = Tls::new(TlsSettings::default()).unwrap();
    let e = round_trip(&mozilla, &address).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");

    // Anything goes without verification.
    let insecure = Tls::new(TlsSettings {
        verification: Verification::None,
        ..Default::default()
    })
    .unwrap();
    round_trip(&insecure, &address).await.unwrap();
}

#[tokio::test]
async fn hostname_check_can_be_turned_off_but_not_the_chain() {
    let ca1 = ca("tidemark test CA");
    let (chain, key) = leaf(&ca1, &["kafka.example.com"]);
    let address = echo_server(chain, key, None).await;
    let full = Tls::new(TlsSettings {
        trust: trust(&ca1),
        ..Default::default()
    })
    .unwrap();
    let e = round_trip(&full, &address).await.unwrap_err();
    assert!(
        e.contains("not valid for name") && e.contains("identification"),
        "{e}"
    );
    let no_host = Tls::new(TlsSettings {
        trust: trust(&ca1),
        verification: Verification::NoHostname,
        ..Default::default()
    })
    .unwrap();
    round_trip(&no_host, &address).await.unwrap();
    let no_host_wrong_ca = Tls::new(TlsSettings {
        trust: trust(&ca("someone else")),
        verification: Verification::NoHostname,
        ..Default::default()
    })
    .unwrap();
    let e = round_trip(&no_host_wrong_ca, &address).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn client_certificate_for_mutual_tls() {
    let ca1 = ca("tidemark test CA");
    let (chain, key) = leaf(&ca1, &["127.0.0.1"]);
    let address = echo_server(chain, key, Some(ca1.der().clone())).await;
    let (client_chain, client_key) = leaf(&ca1, &["tidemark-client"]);
    let with_cert = Tls::new(TlsSettings {
        trust: trust(&ca1),
        identity: Some(ClientIdentity {
            chain: client_chain,
            key: client_key,
        }),
        ..Default::default()
    })
    .unwrap();
    assert!(with_cert.has_client_certificate());
    round_trip(&with_cert, &address).await.unwrap();

    let without = Tls::new(TlsSettings {
        trust: trust(&ca1),
        ..Default::default()
    })
    .unwrap();
    let e = round_trip(&without, &address).await.unwrap_err();
    assert!(
        e.contains("CertificateRequired") || e.contains("alert"),
        "{e}"
    );
}

#[test]
fn key_that_does_not_match_the_certificate_fails_at_start() {
    let ca1 = ca("tidemark test CA");
    let (chain, _) = leaf(&ca1, &["a"]);
    let (_, other_key) = leaf(&ca1, &["b"]);
    let e = Tls::new(TlsSettings {
        identity: Some(ClientIdentity {
            chain,
            key: other_key,
        }),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("cannot be used together"), "{e}");
}

#[test]
fn pem_certificates() {
    assert_eq!(parse_certificates(CERT).unwrap().len(), 1);
    let two = [CERT, CERT].concat();
    assert_eq!(parse_certificates(&two).unwrap().len(), 2);
    let e = parse_certificates(KEY_PKCS8).unwrap_err();
    assert!(e.contains("no certificate"), "{e}");
    let e = parse_certificates(b"hello").unwrap_err();
    assert!(e.contains("no certificate"), "{e}");
    let e = parse_certificates(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(e.contains("not valid PEM"), "{e}");
}

#[test]
fn pem_private_keys_in_every_format() {
    let plain = parse_private_key(KEY_PKCS8, None).unwrap();
    assert!(matches!(plain, PrivateKeyDer::Pkcs8(_)));
    // A password on an unencrypted key is ignored, as librdkafka does.
    assert_eq!(parse_private_key(KEY_PKCS8, Some("x")).unwrap(), plain);
    assert!(matches!(
        parse_private_key(KEY_SEC1, None).unwrap(),
        PrivateKeyDer::Sec1(_)
    ));
    // OpenSSL's encrypted PKCS#8 decrypts to the very same key.
    let decrypted = parse_private_key(KEY_ENCRYPTED, Some(KEY_PASSWORD)).unwrap();
    assert_eq!(decrypted.secret_der(), plain.secret_der());
    // A key file that also holds the certificate works.
    let bundle = [CERT, KEY_ENCRYPTED].concat();
    assert_eq!(
        parse_private_key(&bundle, Some(KEY_PASSWORD))
            .unwrap()
            .secret_der(),
        plain.secret_der()
    );
    // And the decrypted key signs for its certificate.
    Tls::new(TlsSettings {
        identity: Some(ClientIdentity {
            chain: parse_certificates(CERT).unwrap(),
            key: decrypted,
        }),
        ..Default::default()
    })
    .unwrap();
}

#[test]
fn private_key_errors_are_clear() {
    let e = parse_private_key(KEY_ENCRYPTED, None).unwrap_err();
    assert!(e.contains("ssl.key.password is not set"), "{e}");
    let e = parse_private_key(KEY_ENCRYPTED, Some("wrong")).unwrap_err();
    assert!(e.contains("wrong ssl.key.password"), "{e}");
    let e = parse_private_key(KEY_LEGACY, Some("x")).unwrap_err();
    assert!(
        e.contains("legacy OpenSSL") && e.contains("openssl pkcs8"),
        "{e}"
    );
    let e = parse_private_key(CERT, None).unwrap_err();
    assert!(e.contains("no private key"), "{e}");
    let e =
        parse_private_key(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n", Some("x")).unwrap_err();
    assert!(e.contains("no END line"), "{e}");
    let e = parse_private_key(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        Some("x"),
    )
    .unwrap_err();
    assert!(e.contains("not an encrypted PKCS#8 key"), "{e}");
}

#[test]
fn debug_never_shows_the_key() {
    let identity = ClientIdentity {
        chain: parse_certificates(CERT).unwrap(),
        key: parse_private_key(KEY_PKCS8, None).unwrap(),
    };
    let shown = format!("{identity:?}");
    assert!(
        shown.contains("redacted") && shown.contains("1 certificate"),
        "{shown}"
    );
    let settings = TlsSettings {
        identity: Some(identity),
        ..Default::default()
    };
    let tls = Tls::new(settings).unwrap();
    assert_eq!(
        format!("{tls:?}"),
        "Tls { verification: Full, client_certificate: true, .. }"
    );
}

#[test]
fn host_of_addresses() {
    assert_eq!(host_of("kafka-1:9093"), "kafka-1");
    assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
    assert_eq!(host_of("[::1]:9093"), "::1");
    assert_eq!(host_of("kafka-1"), "kafka-1");
    assert_eq!(host_of("::1"), "::1");
}

#[test]
fn unsupported_cpu_names_the_ring_feature() {
    let e = TlsError::UnsupportedCpu {
        missing: vec!["adx", "avx2"],
    };
    let s = e.to_string();
    assert!(
        s.contains("adx, avx2") && s.contains("--features ring"),
        "{s}"
    );
    // Whatever this machine is, asking never panics.
    let _ = missing_cpu_features();
    let _ = crypto_provider();
}
