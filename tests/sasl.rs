//! SASL: tidemark's SCRAM client (rsasl) against RFC test vectors and an independent SCRAM
//! server, then whole logins over TCP through a scripted SASL front (testkit/src/sasl_front.rs)
//! relaying to the real broker, with the exporter's lag compared to the workload's ledger.
//!
//! * RFC 7677's SCRAM-SHA-256 example pins the independent server; a SCRAM-SHA-512 vector
//!   computed with Python's hashlib (PBKDF2/HMAC from OpenSSL) pins its SHA-512 side;
//! * SCRAM-SHA-256 and SCRAM-SHA-512 logins give the workload's lag; a wrong password fails
//!   with the broker's message and `up` 0 while the endpoints keep answering; a server-final
//!   `e=...` or a wrong server signature is never a success (nothing is sent after it);
//! * PLAIN and OAUTHBEARER (static token, token file rotation, rejected token) with the exact
//!   client messages checked by the front;
//! * re-authentication (KIP-368): connections are redialled before the session lifetime the
//!   front grants runs out, and no request ever reaches an expired session.

use tidemark_testkit as common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::exporter::{cluster_with_properties, config_of_clusters, get};
use common::sasl_front::{Fault, FrontConfig, SaslFront};
use common::scram::{ScramHash, ScramServer};
use common::workload::lagging_group;
use common::{unique_name, Broker, RunningExporter, Workload};
use tidemark::kafka::sasl::{Credentials, Exchange, Mechanism, Sasl, Secret, Step};

const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// SCRAM without a network
// ---------------------------------------------------------------------------------------

/// RFC 7677 §3 (SCRAM-SHA-256), user "user", password "pencil".
const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

/// The same exchange with SHA-512, computed with Python's hashlib.pbkdf2_hmac and hmac.
const SHA512_PROOF: &str =
    "gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==";
const SHA512_SERVER_SIGNATURE: &str =
    "ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==";

fn rfc_server(hash: ScramHash) -> ScramServer {
    let salt = B64.decode(RFC_SALT).unwrap();
    ScramServer::new(hash, "user", "pencil", &salt, 4096, RFC_SERVER_NONCE)
}

#[test]
fn independent_scram_server_reproduces_rfc7677() {
    let mut server = rfc_server(ScramHash::Sha256);
    assert_eq!(
        server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap(),
        RFC_SERVER_FIRST
    );
    assert_eq!(
        server.client_final(RFC_CLIENT_FINAL.as_bytes()).unwrap(),
        RFC_SERVER_FINAL
    );
    // A wrong proof is refused.
    let mut server = rfc_server(ScramHash::Sha256);
    server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
    let bad = RFC_CLIENT_FINAL.replace("p=dHz", "p=eHz");
    assert_eq!(
        server.client_final(bad.as_bytes()).unwrap_err(),
        "invalid proof"
    );
}

#[test]
fn independent_scram_server_sha512_matches_python_hashlib() {
    let mut server = rfc_server(ScramHash::Sha512);
    assert_eq!(
        server.client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap(),
        RFC_SERVER_FIRST
    );
    let client_final = format!("c=biws,r={RFC_CLIENT_NONCE}{RFC_SERVER_NONCE},p={SHA512_PROOF}");
    assert_eq!(
        server.client_final(client_final.as_bytes()).unwrap(),
        format!("v={SHA512_SERVER_SIGNATURE}")
    );
}

fn scram(mechanism: Mechanism, user: &str, password: &str) -> Sasl {
    Sasl {
        mechanism,
        credentials: Credentials::Password {
            username: user.into(),
            password: Secret::new(password),
        },
    }
}

fn message(step: Step) -> Vec<u8> {
    match step {
        Step::Send(m) | Step::SendLast(m) => m,
        Step::Done => panic!("expected a message"),
    }
}

/// tidemark's client against the independent server: the server accepts the proof, the
/// client accepts the server's signature. Returns the client's final step result for
/// `tamper`ed server-final messages.
fn exchange(
    hash: ScramHash,
    mechanism: Mechanism,
    tamper: impl Fn(String) -> String,
) -> Result<Step, String> {
    let mut client = Exchange::start(&scram(mechanism, "user", "pencil")).unwrap();
    let mut server = rfc_server(hash);
    let first = message(client.step(None).unwrap());
    assert!(first.starts_with(b"n,,n=user,r="), "{first:?}");
    let server_first = server.client_first(&first).unwrap();
    let last = message(client.step(Some(server_first.as_bytes())).unwrap());
    let server_final = server
        .client_final(&last)
        .unwrap_or_else(|e| panic!("the independent server refused tidemark's proof: {e}"));
    client.step(Some(tamper(server_final).as_bytes()))
}

#[test]
fn tidemark_scram_against_the_independent_server() {
    for (hash, mechanism) in [
        (ScramHash::Sha256, Mechanism::ScramSha256),
        (ScramHash::Sha512, Mechanism::ScramSha512),
    ] {
        assert_eq!(
            exchange(hash, mechanism, |v| v),
            Ok(Step::Done),
            "{mechanism}"
        );
        // A signature computed with another hash, a flipped byte, an error: all failures.
        let e = exchange(hash, mechanism, |v| {
            let mut sig = B64.decode(&v[2..]).unwrap();
            sig[0] ^= 1;
            format!("v={}", B64.encode(sig))
        })
        .unwrap_err();
        assert!(e.contains("signature is wrong"), "{mechanism}: {e}");
        let e = exchange(hash, mechanism, |_| "e=invalid-proof".into()).unwrap_err();
        assert!(
            e.contains("e=invalid-proof") || e.contains("invalid"),
            "{mechanism}: {e}"
        );
        let e = exchange(hash, mechanism, |_| "e=other-error".into()).unwrap_err();
        assert!(e.contains("rejected"), "{mechanism}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// Over TCP: broker + SASL front + the exporter
// ---------------------------------------------------------------------------------------

/// A broker behind a SASL front, with one topic (2 partitions, 5 records each) and one
/// group committed at 2 and 4.
struct Setup {
    front: SaslFront,
    workload: Workload,
    topic: String,
    group: String,
    _broker: Broker,
}

async fn setup(config: FrontConfig) -> Setup {
    let (front, broker, mut workload) = SaslFront::with_broker(config).await;
    let (topic, group) = lagging_group(&mut workload, "sasl", 5, 60_000, &[2, 4]).await;
    Setup {
        front,
        workload,
        topic,
        group,
        _broker: broker,
    }
}

/// One `[[clusters]]` table through the front with these consumer properties.
fn cluster(name: &str, bootstrap: &str, props: &[(&str, &str)]) -> String {
    cluster_with_properties(name, bootstrap, props)
}

fn exporter_toml(poll: &str, clusters: &[String]) -> String {
    config_of_clusters(poll, clusters)
}

/// The exporter's lag for every partition equals the ledger's.
/// The lag the workload's ledger gives, served by `exp` for `cluster`.
async fn assert_lag(exp: &RunningExporter, s: &Setup, cluster: &str) {
    exp.assert_ledger_lag(s.workload.ledger(), cluster, &s.group, &s.topic)
        .await;
}

fn scram_props<'a>(mechanism: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", mechanism),
        ("sasl.username", "tidemark-user"),
        ("sasl.password", password),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha256_and_sha512_logins_give_the_workload_lag() {
    let s = setup(FrontConfig::default()).await;
    let password = FrontConfig::default().password;
    let toml = exporter_toml(
        "1s",
        &[
            cluster(
                "sha256",
                &s.front.address,
                &scram_props("SCRAM-SHA-256", &password),
            ),
            cluster(
                "sha512",
                &s.front.address,
                &scram_props("SCRAM-SHA-512", &password),
            ),
        ],
    );
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("sha256", 2, WAIT).await;
    exp.wait_cycles("sha512", 2, WAIT).await;
    assert_lag(&exp, &s, "sha256").await;
    assert_lag(&exp, &s, "sha512").await;
    assert_eq!(exp.cycles_failed("sha256") + exp.cycles_failed("sha512"), 0);

    let logins = s.front.logins();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let mine: Vec<_> = logins.iter().filter(|l| l.mechanism == mechanism).collect();
        assert!(!mine.is_empty(), "no {mechanism} login");
        for l in mine {
            assert_eq!(l.outcome, Ok(()), "{l:?}");
            assert_eq!(l.handshake_version, 1);
            assert_eq!(l.authenticate_version, 2, "the highest both speak");
            assert_eq!(l.client_messages.len(), 2, "client-first and client-final");
            let first = String::from_utf8(l.client_messages[0].clone()).unwrap();
            assert!(first.starts_with("n,,n=tidemark-user,r="), "{first}");
            let last = String::from_utf8(l.client_messages[1].clone()).unwrap();
            assert!(
                last.starts_with("c=biws,r=") && last.contains(",p="),
                "{last}"
            );
        }
    }
    s.front.assert_no_violations();
    assert!(s.front.relayed() > 0);
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_clearly_while_the_endpoints_keep_answering() {
    let s = setup(FrontConfig::default()).await;
    let wrong = "Wr0ng-pa55word-xyz";
    let toml = exporter_toml(
        "500ms",
        &[cluster(
            "wrong",
            &s.front.address,
            &scram_props("SCRAM-SHA-512", wrong),
        )],
    );
    let exp = RunningExporter::start(&toml).await;
    exp.wait_failures("wrong", 2, WAIT).await;
    assert_eq!(exp.cycles_ok("wrong"), 0);
    let m = exp.metrics().await;
    assert_eq!(m.value("kafka_lag_exporter_up", &[]), Some(0.0));
    assert_eq!(
        m.value("tidemark_cluster_up", &[("cluster_name", "wrong")]),
        Some(0.0)
    );
    assert!(m.find("kafka_consumergroup_group_lag", &[]).is_empty());
    assert_eq!(exp.get("/health").await.status, 200);
    let page = exp.get("/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("SASL SCRAM-SHA-512 authentication to broker")
            && page
                .body
                .contains("Authentication failed during authentication due to invalid credentials")
            && page.body.contains("SASL_AUTHENTICATION_FAILED"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(wrong), "the password is shown");
    let logins = s.front.logins();
    assert!(logins.iter().all(|l| l.outcome.is_err()), "{logins:?}");
    s.front.assert_no_violations();
    assert_eq!(s.front.relayed(), 0);
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_final_error_or_wrong_signature_is_never_a_success() {
    for fault in [
        Fault::ServerFinalError("other-error".into()),
        Fault::WrongServerSignature,
    ] {
        let s = setup(FrontConfig {
            fault: fault.clone(),
            ..FrontConfig::default()
        })
        .await;
        let password = FrontConfig::default().password;
        let toml = exporter_toml(
            "500ms",
            &[cluster(
                "faulty",
                &s.front.address,
                &scram_props("SCRAM-SHA-256", &password),
            )],
        );
        let exp = RunningExporter::start(&toml).await;
        exp.wait_failures("faulty", 2, WAIT).await;
        assert_eq!(exp.cycles_ok("faulty"), 0, "{fault:?}");
        // The front accepted the proof each time, yet nothing followed the login.
        assert!(s.front.logins().len() >= 2);
        assert_eq!(
            s.front.relayed(),
            0,
            "{fault:?}: requests after a rejected server-final"
        );
        s.front.assert_no_violations();
        let page = exp.get("/").await.body;
        let want = match fault {
            Fault::ServerFinalError(_) => "e=other-error",
            _ => "signature is wrong",
        };
        assert!(page.contains(want), "{fault:?}: {page}");
        exp.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_sends_exactly_the_user_and_password() {
    let s = setup(FrontConfig::default()).await;
    let cfg = FrontConfig::default();
    let toml = exporter_toml(
        "1s",
        &[cluster(
            "plain",
            &s.front.address,
            &[
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanisms", "PLAIN"),
                ("sasl.username", &cfg.username),
                ("sasl.password", &cfg.password),
            ],
        )],
    );
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("plain", 1, WAIT).await;
    assert_lag(&exp, &s, "plain").await;
    let logins = s.front.logins();
    assert!(!logins.is_empty());
    for l in logins {
        assert_eq!(l.mechanism, "PLAIN");
        assert_eq!(
            l.client_messages,
            [format!("\0{}\0{}", cfg.username, cfg.password).into_bytes()]
        );
        assert_eq!(l.outcome, Ok(()));
    }
    exp.shutdown().await;
}

fn oauth_props<'a>(key: &'a str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
        (key, value),
    ]
}

fn bearer(token: &str) -> Vec<u8> {
    format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_static_token_and_a_rejected_token() {
    let good = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0aWRlbWFyayJ9.";
    let s = setup(FrontConfig {
        tokens: vec![good.into()],
        ..FrontConfig::default()
    })
    .await;
    let toml = exporter_toml(
        "500ms",
        &[
            cluster(
                "oauth",
                &s.front.address,
                &oauth_props("sasl.oauthbearer.token", good),
            ),
            cluster(
                "revoked",
                &s.front.address,
                &oauth_props("sasl.oauthbearer.token", "revoked-token"),
            ),
        ],
    );
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("oauth", 1, WAIT).await;
    exp.wait_failures("revoked", 1, WAIT).await;
    assert_lag(&exp, &s, "oauth").await;
    assert_eq!(exp.cycles_ok("revoked"), 0);
    let logins = s.front.logins();
    let ok: Vec<_> = logins.iter().filter(|l| l.outcome.is_ok()).collect();
    assert!(!ok.is_empty());
    for l in ok {
        assert_eq!(l.client_messages, [bearer(good)]);
    }
    // The rejected token: the front's error report is acknowledged with %x01 (RFC 7628).
    let rejected = logins
        .iter()
        .find(|l| l.outcome.is_err())
        .expect("a rejected login");
    assert_eq!(rejected.client_messages, [bearer("revoked-token"), vec![1]]);
    let page = exp.get("/").await.body;
    assert!(
        page.contains("SASL OAUTHBEARER authentication to broker")
            && page.contains("invalid_token"),
        "{page}"
    );
    assert!(!page.contains("revoked-token"));
    s.front.assert_no_violations();
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_redials_before_the_session_expires_and_picks_up_a_rotated_token_file() {
    let (first, second) = ("token-one.a.b", "token-two.c.d");
    let s = setup(FrontConfig {
        tokens: vec![first.into(), second.into()],
        session_lifetime_ms: 1500,
        ..FrontConfig::default()
    })
    .await;
    let dir = std::env::temp_dir().join(unique_name("tidemark-token"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, format!("{first}\n")).unwrap();
    let path = file.display().to_string();
    let toml = exporter_toml(
        "200ms",
        &[cluster(
            "reauth",
            &s.front.address,
            &oauth_props("sasl.oauthbearer.token.file", &path),
        )],
    );
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("reauth", 1, WAIT).await;
    let started = Instant::now();
    // Run across several session lifetimes; rotate the token half way.
    while started.elapsed() < Duration::from_millis(2500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rotated_at = s.front.logins().len();
    std::fs::write(&file, second).unwrap();
    while started.elapsed() < Duration::from_millis(6000) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = exp.cycles_ok("reauth");
    exp.wait_cycles("reauth", n + 1, WAIT).await;
    assert_lag(&exp, &s, "reauth").await;
    assert_eq!(
        exp.cycles_failed("reauth"),
        0,
        "no cycle failed across re-authentications"
    );
    assert_eq!(
        s.front.expired_requests(),
        0,
        "a request reached an expired session: {:?}",
        s.front.violations()
    );
    let logins = s.front.logins();
    assert!(logins.iter().all(|l| l.outcome.is_ok()), "{logins:?}");
    assert!(
        logins.len() >= 4,
        "6 s of 200 ms cycles with a 1.5 s session lifetime: {} logins",
        logins.len()
    );
    // Each login is a new connection, and logins after the rotation use the new token.
    let conns: std::collections::BTreeSet<u64> = logins.iter().map(|l| l.conn).collect();
    assert_eq!(conns.len(), logins.len());
    let after: Vec<_> = logins[rotated_at..].iter().collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().any(|l| l.client_messages == [bearer(second)]),
        "no login with the rotated token"
    );
    assert!(logins[..rotated_at]
        .iter()
        .all(|l| l.client_messages == [bearer(first)]));
    let last = logins.last().unwrap();
    assert_eq!(last.client_messages, [bearer(second)]);
    s.front.assert_no_violations();
    exp.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unoffered_mechanism_names_what_the_broker_offers() {
    let s = setup(FrontConfig {
        mechanisms: vec!["SCRAM-SHA-512".into()],
        ..FrontConfig::default()
    })
    .await;
    let password = FrontConfig::default().password;
    let toml = exporter_toml(
        "500ms",
        &[cluster(
            "x",
            &s.front.address,
            &scram_props("SCRAM-SHA-256", &password),
        )],
    );
    let exp = RunningExporter::start(&toml).await;
    exp.wait_failures("x", 1, WAIT).await;
    let page = get(exp.address, "/").await.body;
    assert!(
        page.contains("does not offer SCRAM-SHA-256") && page.contains("it offers: SCRAM-SHA-512"),
        "{page}"
    );
    exp.shutdown().await;
}
