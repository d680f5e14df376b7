//! Connection mistakes a new user makes, over real sockets: each failure names the likely
//! cause, in the cycle's error (logged, and shown on the `/` page).
//!
//! The TLS mismatches (plaintext to a TLS listener and the reverse) are in tests/tls.rs,
//! through the real TLS terminator.

use tidemark_testkit as common;

use std::time::Duration;

use common::sasl_front::{FrontConfig, SaslFront};
use common::stub::{StubCluster, StubGroup};
use common::{Broker, RunningExporter};

const WAIT: Duration = Duration::from_secs(30);

fn exporter_toml(name: &str, bootstrap: &str) -> String {
    format!(
        "[exporter]\nhttp_host = \"127.0.0.1\"\nhttp_port = 0\npoll_interval = \"300ms\"\n\n\
         [[clusters]]\nname = \"{name}\"\nbootstrap_servers = \"{bootstrap}\"\n"
    )
}

/// The bootstrap address is an HTTP server (here: another tidemark's endpoints): the error
/// says so instead of "frame announces 1213486160 bytes" alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_server_on_the_bootstrap_port_is_named() {
    let http = RunningExporter::start(&exporter_toml("elsewhere", "127.0.0.1:9")).await;
    let exp = RunningExporter::start(&exporter_toml("http", &http.address.to_string())).await;
    exp.wait_failures("http", 1, WAIT).await;
    let error = exp.last_error("http").expect("an error");
    assert!(
        error.contains("HTTP response") && error.contains("not a Kafka listener"),
        "{error}"
    );
    let page = exp.get("/").await.body;
    assert!(page.contains("not a Kafka listener"), "{page}");
    exp.shutdown().await;
    http.shutdown().await;
}

/// Bootstrap answers but a broker's advertised address cannot be dialled: the error names
/// the advertised address, the bootstrap server that works, and advertised.listeners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advertised_address_that_cannot_be_dialled_is_named() {
    let stub = StubCluster::start(&[1, 2]).await;
    stub.add_topic("orders", &[2]);
    stub.add_group(
        StubGroup::consumer("g")
            .coordinator(1)
            .offset("orders", 0, 1),
    );
    let unreachable = stub.addr(2).to_string();
    stub.stop_node(2).await;
    let exp = RunningExporter::start(&exporter_toml("adv", &stub.bootstrap())).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let page = loop {
        let page = exp.get("/").await.body;
        if page.contains("advertised.listeners") {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no advertised-address hint on the status page:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        page.contains(&format!("broker 2 is advertised as {unreachable}"))
            && page.contains(&format!("bootstrap server {} answers", stub.bootstrap())),
        "{page}"
    );
    exp.shutdown().await;
}

/// The listener requires SASL and the config has none (security.protocol PLAINTEXT): like
/// Kafka, the scripted SASL front answers ApiVersions, then closes the connection at the
/// first other request. The error names the listener's requirement and the keys to set,
/// in the cycle's error and on the status page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_requires_sasl_is_named() {
    let stub = StubCluster::start(&[1]).await;
    let (listener, _) = SaslFront::bind().await;
    let front = SaslFront::serve(listener, &stub.bootstrap(), FrontConfig::default());
    let exp = RunningExporter::start(&exporter_toml("sasl", &front.address)).await;
    exp.wait_failures("sasl", 1, WAIT).await;
    let error = exp.last_error("sasl").expect("an error");
    assert!(
        error.contains("the broker answered ApiVersions, then closed the connection at the first Metadata request")
            && error.contains("the listener most likely requires SASL authentication and security.protocol is PLAINTEXT")
            && error.contains("set security.protocol to SASL_PLAINTEXT and sasl.mechanism"),
        "{error}"
    );
    // The front did what a SASL listener does: Metadata arrived unauthenticated.
    let violations = front.violations();
    assert!(
        violations
            .iter()
            .any(|v| v.ends_with("Metadata before authentication")),
        "{violations:?}"
    );
    let page = exp.get("/").await.body;
    assert!(
        page.contains("the listener most likely requires SASL authentication"),
        "{page}"
    );
    exp.shutdown().await;
}

/// The same with the real broker: Tansu with `--authentication` answers ApiVersions, then
/// closes the connection at Metadata, as Kafka does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_broker_requiring_sasl_is_named() {
    let broker = Broker::start_requiring_sasl().await;
    let exp = RunningExporter::start(&exporter_toml("real-sasl", &broker.bootstrap)).await;
    exp.wait_failures("real-sasl", 1, WAIT).await;
    let error = exp.last_error("real-sasl").expect("an error");
    assert!(
        error.contains("the broker answered ApiVersions, then closed the connection at the first Metadata request")
            && error.contains("set security.protocol to SASL_PLAINTEXT and sasl.mechanism"),
        "{error}"
    );
    exp.shutdown().await;
}
