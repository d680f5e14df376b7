//! OAUTHBEARER with OIDC client credentials (`sasl.oauthbearer.method = oidc`), end to end:
//! a local HTTPS token endpoint (certificate from a test CA, testkit/src/token_endpoint.rs)
//! issues short-lived tokens; the scripted SASL front (testkit/src/sasl_front.rs) accepts
//! only tokens that endpoint issued and that have not expired, grants sessions no longer
//! than the token's time left (as a Kafka broker does, KIP-368), and relays to the real
//! broker; the exporter's lag is compared with the workload's ledger.
//!
//! * tokens are fetched once per refresh for the whole cluster, renewed before they expire
//!   (no login ever presents an expired token), sent with the configured extensions;
//! * the endpoint down for longer than a token lives: the cluster goes `up` 0 with an
//!   error naming the endpoint, attempts back off, and it recovers when the endpoint is
//!   back;
//! * a wrong client secret, or an endpoint certificate from an untrusted CA, fail with an
//!   error naming the endpoint and the cause; the secret is never shown.

use tidemark_testkit as common;

use std::time::{Duration, Instant};

use common::pki::Pki;
use common::sasl_front::{FrontConfig, SaslFront, TokenCheck};
use common::token_endpoint::{EndpointConfig, TokenEndpoint};
use common::workload::lagging_group;
use common::{Broker, RunningExporter, Workload};

const WAIT: Duration = Duration::from_secs(60);
const CLIENT_ID: &str = "tidemark-oidc-client";
const CLIENT_SECRET: &str = "Oidc-S3cret-never-shown";
const SCOPE: &str = "kafka";

struct Setup {
    front: SaslFront,
    endpoint: TokenEndpoint,
    pki: Pki,
    workload: Workload,
    topic: String,
    group: String,
    _broker: Broker,
}

/// A broker behind a SASL front that checks tokens with a token endpoint issuing tokens of
/// `expires_in` seconds; one topic (2 partitions, 5 records each), one group at 2 and 4.
async fn setup(expires_in: u64) -> Setup {
    let pki = Pki::new();
    let endpoint = TokenEndpoint::start(
        &pki,
        EndpointConfig {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scope: Some(SCOPE.into()),
            expires_in,
        },
    )
    .await;
    let (front, broker, mut workload) = SaslFront::with_broker(FrontConfig {
        mechanisms: vec!["OAUTHBEARER".into()],
        token_check: Some(TokenCheck(std::sync::Arc::new(endpoint.checker()))),
        ..FrontConfig::default()
    })
    .await;
    let (topic, group) = lagging_group(&mut workload, "oidc", 5, 60_000, &[2, 4]).await;
    Setup {
        front,
        endpoint,
        pki,
        workload,
        topic,
        group,
        _broker: broker,
    }
}

/// The exporter config: one cluster per (name, extra properties) through the front.
fn toml(s: &Setup, poll: &str, clusters: &[(&str, Vec<(&str, String)>)]) -> String {
    let mut t = format!(
        "[exporter]\nhttp_host = \"127.0.0.1\"\nhttp_port = 0\npoll_interval = \"{poll}\"\ngranularity = \"partition\"\n"
    );
    for (name, extra) in clusters {
        t.push_str(&format!(
            "\n[[clusters]]\nname = \"{name}\"\nbootstrap_servers = \"{}\"\n[clusters.consumer_properties]\n",
            s.front.address
        ));
        let mut props: Vec<(&str, String)> = vec![
            ("security.protocol", "SASL_PLAINTEXT".into()),
            ("sasl.mechanism", "OAUTHBEARER".into()),
            ("sasl.oauthbearer.method", "oidc".into()),
            ("sasl.oauthbearer.client.id", CLIENT_ID.into()),
            ("sasl.oauthbearer.client.secret", CLIENT_SECRET.into()),
            (
                "sasl.oauthbearer.token.endpoint.url",
                s.endpoint.url.clone(),
            ),
            ("sasl.oauthbearer.scope", SCOPE.into()),
            ("https.ca.location", s.pki.path("ca.pem")),
        ];
        for (k, v) in extra {
            props.retain(|(key, _)| key != k);
            if !v.is_empty() {
                props.push((k, v.clone()));
            }
        }
        for (k, v) in props {
            t.push_str(&format!("{k:?} = {v:?}\n"));
        }
    }
    t
}

/// The exporter's lag for every partition equals the ledger's, and the cluster is up.
/// The lag the workload's ledger gives, served by `exp` for `cluster`.
async fn assert_lag(exp: &RunningExporter, s: &Setup, cluster: &str) {
    exp.assert_ledger_lag(s.workload.ledger(), cluster, &s.group, &s.topic)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_fetched_shared_and_refreshed_before_they_expire() {
    let expires_in = 3;
    let s = setup(expires_in).await;
    let config = toml(
        &s,
        "300ms",
        &[(
            "oidc",
            vec![(
                "sasl.oauthbearer.extensions",
                "logicalCluster=lkc-abc12,identityPoolId=pool-Xy1".into(),
            )],
        )],
    );
    let exp = RunningExporter::start(&config).await;
    exp.wait_cycles("oidc", 1, WAIT).await;
    let started = Instant::now();
    // Across three token lifetimes.
    tokio::time::sleep(Duration::from_secs(3 * expires_in)).await;
    let n = exp.cycles_ok("oidc");
    exp.wait_cycles("oidc", n + 1, WAIT).await;
    assert_lag(&exp, &s, "oidc").await;
    assert_eq!(exp.cycles_failed("oidc"), 0, "{:?}", exp.last_error("oidc"));

    let requests = s.endpoint.requests();
    assert!(
        requests.iter().all(|r| r.outcome.is_ok()),
        "the endpoint refused a request: {requests:?}"
    );
    // One token per refresh for the whole cluster: at least one renewal per lifetime, at
    // most one per 80% of it (plus the first).
    let elapsed = started.elapsed().as_secs_f64() + expires_in as f64;
    let most = (elapsed / (0.8 * expires_in as f64)).ceil() as usize + 1;
    assert!(
        requests.len() >= 3 && requests.len() <= most,
        "{} token requests in {elapsed:.1} s (expected 3..={most})",
        requests.len()
    );
    // Each token was renewed before it expired.
    for pair in requests.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap < Duration::from_secs(expires_in),
            "renewed {gap:?} after the previous token, which lived {expires_in} s"
        );
    }
    // Every login presented a valid token with the extensions; sessions were renewed in
    // time (none used after its token's expiry).
    let logins = s.front.logins();
    assert!(logins.len() >= 3, "{} logins", logins.len());
    for l in &logins {
        assert_eq!(l.outcome, Ok(()), "{l:?}");
        assert_eq!(
            l.extensions,
            [
                ("logicalCluster".to_owned(), "lkc-abc12".to_owned()),
                ("identityPoolId".to_owned(), "pool-Xy1".to_owned())
            ]
        );
    }
    let issued: Vec<String> = requests
        .iter()
        .filter_map(|r| r.outcome.clone().ok())
        .collect();
    let used: std::collections::BTreeSet<&str> = logins
        .iter()
        .filter_map(|l| {
            let first = std::str::from_utf8(l.client_messages.first()?).ok()?;
            issued
                .iter()
                .find(|t| first.contains(t.as_str()))
                .map(|t| t.as_str())
        })
        .collect();
    assert_eq!(used.len(), logins.len().min(used.len()));
    assert!(
        used.len() >= 3,
        "logins used {} distinct tokens",
        used.len()
    );
    assert_eq!(s.front.expired_requests(), 0, "{:?}", s.front.violations());
    s.front.assert_no_violations();
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_longer_than_a_token_lives_then_back() {
    let expires_in = 2;
    let s = setup(expires_in).await;
    let exp = RunningExporter::start(&toml(&s, "200ms", &[("oidc", vec![])])).await;
    exp.wait_cycles("oidc", 2, WAIT).await;
    assert_lag(&exp, &s, "oidc").await;

    s.endpoint.set_down(true);
    let down_at = Instant::now();
    let before = s.endpoint.requests().len();
    exp.wait_failures("oidc", 2, WAIT).await;
    let m = exp.metrics().await;
    assert_eq!(
        m.value("tidemark_cluster_up", &[("cluster_name", "oidc")]),
        Some(0.0)
    );
    assert_eq!(m.value("kafka_lag_exporter_up", &[]), Some(0.0));
    let page = exp.get("/").await.body;
    assert!(
        page.contains("SASL OAUTHBEARER authentication to broker")
            && page.contains(&format!(
                "cannot get an OAUTHBEARER token: cannot connect to {}: TLS handshake failed",
                s.endpoint.url
            )),
        "{page}"
    );
    // Stay down 8 s in all: with backoff (1 s doubling) at most ~4 attempts reach the
    // endpoint, where every 200 ms cycle would otherwise try.
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(down_at.elapsed())).await;
    let attempts = s.endpoint.refused();
    assert!(
        (2..=6).contains(&attempts),
        "{attempts} connections to the endpoint while it was down"
    );
    assert_eq!(s.endpoint.requests().len(), before);

    s.endpoint.set_down(false);
    let n = exp.cycles_ok("oidc");
    exp.wait_cycles("oidc", n + 2, WAIT).await;
    assert_lag(&exp, &s, "oidc").await;
    assert!(s.endpoint.requests().len() > before);
    // No login ever presented an expired token: the client never sent what it knew expired.
    let rejected: Vec<_> = s
        .front
        .logins()
        .into_iter()
        .filter(|l| l.outcome.is_err())
        .collect();
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(s.front.expired_requests(), 0, "{:?}", s.front.violations());
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_or_an_untrusted_endpoint_fails_clearly() {
    let s = setup(60).await;
    let wrong = "Wr0ng-oidc-secret-xyz";
    let config = toml(
        &s,
        "500ms",
        &[
            (
                "wrong",
                vec![("sasl.oauthbearer.client.secret", wrong.into())],
            ),
            (
                "untrusted",
                vec![("https.ca.location", s.pki.path("other-ca.pem"))],
            ),
            ("good", vec![]),
        ],
    );
    let exp = RunningExporter::start(&config).await;
    exp.wait_failures("wrong", 2, WAIT).await;
    exp.wait_failures("untrusted", 1, WAIT).await;
    exp.wait_cycles("good", 1, WAIT).await;
    assert_eq!(exp.cycles_ok("wrong") + exp.cycles_ok("untrusted"), 0);
    let m = exp.metrics().await;
    for c in ["wrong", "untrusted"] {
        assert_eq!(
            m.value("tidemark_cluster_up", &[("cluster_name", c)]),
            Some(0.0)
        );
    }
    assert_lag(&exp, &s, "good").await;
    let e = exp.last_error("wrong").unwrap();
    assert!(
        e.contains(&format!(
            "token endpoint {} answered HTTP 401: invalid_client (Client authentication failed); \
             check sasl.oauthbearer.client.id and sasl.oauthbearer.client.secret",
            s.endpoint.url
        )),
        "{e}"
    );
    let e = exp.last_error("untrusted").unwrap();
    assert!(
        e.contains(&format!(
            "cannot connect to {}: TLS handshake failed: invalid peer certificate: UnknownIssuer \
             (its certificate does not chain to a trusted CA: set https.ca.location",
            s.endpoint.url
        )),
        "{e}"
    );
    let page = exp.get("/").await.body;
    assert!(page.contains("invalid_client"), "{page}");
    assert!(!page.contains(wrong) && !page.contains(CLIENT_SECRET));
    // The wrong secret backs off too: a handful of requests, not one per cycle.
    let refused = s
        .endpoint
        .requests()
        .iter()
        .filter(|r| r.outcome.is_err())
        .count();
    assert!(
        (1..=4).contains(&refused),
        "{refused} refused token requests"
    );
    // Without a token no login is attempted.
    assert!(s.front.logins().iter().all(|l| l.outcome.is_ok()));
    exp.shutdown().await;
}
