//! TLS end to end: the real exporter → a real TLS terminator (HAProxy, testkit/src/tls_proxy.rs)
//! → the real broker, which advertises the terminator's address so every connection is TLS.
//! Certificates are made at test time (testkit/src/pki.rs).
//!
//! * the right CA: lag equal to the workload's (bootstrap by name, brokers by IP);
//! * an unknown CA, or the default Mozilla roots for a private CA: a clear verification error;
//! * mTLS with `verify required`: succeeds with the client certificate (plain or encrypted
//!   key), fails without it;
//! * `enable.ssl.certificate.verification=false`: connects, and the config warns;
//! * SASL_SSL: the terminator in front of the SASL front in front of the broker.
//!
//! Run with `--features ring` too: the same tests pass with the `ring` crypto provider.

use tidemark_testkit as common;

use std::time::Duration;

use common::broker::reserve_port;
use common::exporter::{cluster_with_properties, config_of_clusters};
use common::pki::{Pki, CLIENT_KEY_PASSWORD};
use common::sasl_front::{FrontConfig, SaslFront};
use common::tls_proxy::{ClientAuth, TlsTerminator};
use common::workload::lagging_group;
use common::{Broker, RunningExporter, Workload};

const WAIT: Duration = Duration::from_secs(60);

/// The broker, its terminator, and a workload: one topic, 2 partitions of 4 records, one
/// group committed at 1 and 3.
struct Setup {
    pki: Pki,
    terminator: TlsTerminator,
    workload: Workload,
    topic: String,
    group: String,
    _front: Option<SaslFront>,
    _broker: Broker,
}

async fn fill(workload: &mut Workload) -> (String, String) {
    lagging_group(workload, "tls", 4, 30_000, &[1, 3]).await
}

async fn setup(client_auth: ClientAuth) -> Setup {
    let pki = Pki::new();
    // Held until the terminator binds it: the broker starting meanwhile takes seconds, and
    // another test's container could otherwise be given the same port.
    let reserved = reserve_port().expect("a free port");
    let broker = Broker::start_advertising(reserved.port).await;
    let port = reserved.release();
    let terminator = TlsTerminator::start(port, &broker.bootstrap, &pki, client_auth).await;
    let mut workload = Workload::connect(&broker.bootstrap).await;
    workload.route(&broker.advertised, &broker.bootstrap);
    let (topic, group) = fill(&mut workload).await;
    Setup {
        pki,
        terminator,
        workload,
        topic,
        group,
        _front: None,
        _broker: broker,
    }
}

fn cluster(name: &str, bootstrap: &str, props: &[(&str, &str)]) -> String {
    cluster_with_properties(name, bootstrap, props)
}

fn exporter_toml(clusters: &[String]) -> String {
    config_of_clusters("500ms", clusters)
}

/// The lag the workload's ledger gives, served by `exp` for `cluster`.
async fn assert_lag(exp: &RunningExporter, s: &Setup, cluster: &str) {
    exp.assert_ledger_lag(s.workload.ledger(), cluster, &s.group, &s.topic)
        .await;
}

/// The exporter's status page (it shows each cluster's last error).
async fn status_page(exp: &RunningExporter) -> String {
    let page = exp.get("/").await;
    assert_eq!(page.status, 200);
    page.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_tls_gives_the_workload_lag_and_a_wrong_ca_fails_clearly() {
    let s = setup(ClientAuth::None).await;
    let port = s.terminator.port;
    let ca = s.pki.path("ca.pem");
    let other = s.pki.path("other-ca.pem");
    let toml = exporter_toml(&[
        // By name: SNI "localhost" and the DNS SAN; the brokers then by IP (IP SAN).
        cluster(
            "right-ca",
            &format!("localhost:{port}"),
            &[("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
        ),
        cluster(
            "unknown-ca",
            &s.terminator.address(),
            &[("security.protocol", "SSL"), ("ssl.ca.location", &other)],
        ),
        cluster(
            "mozilla-roots",
            &s.terminator.address(),
            &[("security.protocol", "ssl")],
        ),
    ]);
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("right-ca", 2, WAIT).await;
    exp.wait_failures("unknown-ca", 1, WAIT).await;
    exp.wait_failures("mozilla-roots", 1, WAIT).await;
    assert_lag(&exp, &s, "right-ca").await;
    assert_eq!(exp.cycles_failed("right-ca"), 0);
    assert_eq!(
        exp.cycles_ok("unknown-ca") + exp.cycles_ok("mozilla-roots"),
        0
    );
    let m = exp.metrics().await;
    for c in ["unknown-ca", "mozilla-roots"] {
        assert_eq!(
            m.value("tidemark_cluster_up", &[("cluster_name", c)]),
            Some(0.0)
        );
    }
    let page = status_page(&exp).await;
    assert!(
        page.contains("TLS handshake with broker")
            && page.contains("UnknownIssuer")
            && page.contains("ssl.ca.location"),
        "{page}"
    );
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let s = setup(ClientAuth::Required).await;
    let ca = s.pki.path("ca.pem");
    let crt = s.pki.path("client.crt");
    let key = s.pki.path("client.key");
    let encrypted = s.pki.path("client-encrypted.key");
    let address = s.terminator.address();
    let toml = exporter_toml(&[
        cluster(
            "with-cert",
            &address,
            &[
                ("security.protocol", "SSL"),
                ("ssl.ca.location", &ca),
                ("ssl.certificate.location", &crt),
                ("ssl.key.location", &key),
            ],
        ),
        cluster(
            "encrypted-key",
            &address,
            &[
                ("security.protocol", "SSL"),
                ("ssl.ca.location", &ca),
                ("ssl.certificate.location", &crt),
                ("ssl.key.location", &encrypted),
                ("ssl.key.password", CLIENT_KEY_PASSWORD),
            ],
        ),
        cluster(
            "without-cert",
            &address,
            &[("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
        ),
    ]);
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("with-cert", 1, WAIT).await;
    exp.wait_cycles("encrypted-key", 1, WAIT).await;
    exp.wait_failures("without-cert", 1, WAIT).await;
    assert_lag(&exp, &s, "with-cert").await;
    assert_lag(&exp, &s, "encrypted-key").await;
    assert_eq!(exp.cycles_ok("without-cert"), 0);
    let page = status_page(&exp).await;
    assert!(!page.contains(CLIENT_KEY_PASSWORD));
    // TLS 1.3: the handshake completes on the client side; the server's alert ends the
    // first request.
    assert!(
        page.contains("CertificateRequired")
            || page.contains("HandshakeFailure")
            || page.contains("alert"),
        "{page}"
    );
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_can_be_switched_off_with_a_warning() {
    let s = setup(ClientAuth::None).await;
    let toml = exporter_toml(&[cluster(
        "insecure",
        &s.terminator.address(),
        &[
            ("security.protocol", "SSL"),
            ("enable.ssl.certificate.verification", "false"),
        ],
    )]);
    let config = tidemark::config::parse(&toml, "test.toml", &|_| None).unwrap();
    assert!(
        config.warnings().iter().any(|w| w.contains("NOT verified")),
        "{:?}",
        config.warnings()
    );
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("insecure", 1, WAIT).await;
    assert_lag(&exp, &s, "insecure").await;
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_through_the_terminator_and_the_sasl_front() {
    let pki = Pki::new();
    let (listener, front_port) = SaslFront::bind().await;
    let reserved = reserve_port().expect("a free port");
    let broker = Broker::start_advertising(reserved.port).await;
    let port = reserved.release();
    let terminator = TlsTerminator::start(
        port,
        &format!("127.0.0.1:{front_port}"),
        &pki,
        ClientAuth::None,
    )
    .await;
    let front_config = FrontConfig::default();
    let front = SaslFront::serve(listener, &broker.bootstrap, front_config.clone());
    let mut workload = Workload::connect(&broker.bootstrap).await;
    workload.route(&broker.advertised, &broker.bootstrap);
    let (topic, group) = fill(&mut workload).await;
    let s = Setup {
        pki,
        terminator,
        workload,
        topic,
        group,
        _front: None,
        _broker: broker,
    };
    let ca = s.pki.path("ca.pem");
    let toml = exporter_toml(&[cluster(
        "sasl-ssl",
        &s.terminator.address(),
        &[
            ("security.protocol", "SASL_SSL"),
            ("ssl.ca.location", &ca),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", &front_config.username),
            ("sasl.password", &front_config.password),
        ],
    )]);
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("sasl-ssl", 2, WAIT).await;
    assert_lag(&exp, &s, "sasl-ssl").await;
    let logins = front.logins();
    assert!(!logins.is_empty());
    assert!(logins
        .iter()
        .all(|l| l.outcome.is_ok() && l.mechanism == "SCRAM-SHA-512"));
    front.assert_no_violations();
    assert!(front.relayed() > 0);
    exp.shutdown().await;
}

#[test]
fn crypto_provider_of_this_build() {
    let name = tidemark::kafka::tls::crypto_provider_name();
    eprintln!("TLS crypto provider: {name}");
    assert_eq!(
        name,
        if cfg!(feature = "ring") {
            "ring"
        } else {
            "graviola"
        }
    );
    tidemark::kafka::tls::crypto_provider().expect("this machine runs the provider");
}

/// A plaintext client on the TLS listener, and a TLS client on the broker's plaintext port:
/// each error says which side of `security.protocol` is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_protocol_mismatch_is_named_in_the_error() {
    let s = setup(ClientAuth::None).await;
    let ca = s.pki.path("ca.pem");
    let toml = exporter_toml(&[
        cluster("plain-to-tls", &s.terminator.address(), &[]),
        cluster(
            "tls-to-plain",
            &s._broker.bootstrap,
            &[("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
        ),
    ]);
    let exp = RunningExporter::start(&toml).await;
    exp.wait_failures("plain-to-tls", 1, WAIT).await;
    exp.wait_failures("tls-to-plain", 1, WAIT).await;
    let plain = exp.last_error("plain-to-tls").expect("an error");
    assert!(
        plain.contains("set security.protocol to SSL (or SASL_SSL)")
            || plain.contains("set security.protocol to SSL or SASL_SSL"),
        "{plain}"
    );
    let tls = exp.last_error("tls-to-plain").expect("an error");
    assert!(
        tls.contains("is this a plaintext listener?")
            || tls.contains("is the listener TLS, and is security.protocol right?"),
        "{tls}"
    );
    exp.shutdown().await;
}
