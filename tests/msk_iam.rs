//! AWS_MSK_IAM end to end: the scripted SASL front verifies every login's SigV4 signature
//! with an independent implementation (Python botocore, testkit/src/sigv4_verify.py) and
//! relays to the real broker; the exporter's lag is compared with the workload's ledger.
//!
//! One test (the credentials are process environment variables): session credentials from
//! the environment log in, with re-authentication every session; a signature made with
//! another secret (tampered) and an expired signature are refused, each reported with the
//! broker's reason and `up` 0; a cluster whose region cannot be known says to set
//! `aws.region`; the secret is never shown.

use tidemark_testkit as common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::sasl_front::{FrontConfig, SaslFront, TokenCheck};
use common::sigv4::{self, msk_iam_cluster, msk_iam_exporter, msk_iam_front, signed_login};
use common::workload::lagging_group;
use common::RunningExporter;

const WAIT: Duration = Duration::from_secs(90);
const KEY_ID: &str = "AKIDTIDEMARKTEST";
const SECRET: &str = "tIdEmArK/sEcReT+kEy/never-shown-0123456";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE+/=session";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verified_by_botocore_tampered_and_expired_refused() {
    tokio::task::spawn_blocking(sigv4::install).await.unwrap();
    std::env::set_var("AWS_ACCESS_KEY_ID", KEY_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
    std::env::set_var("AWS_SESSION_TOKEN", SESSION_TOKEN);

    let (front, _broker, mut workload) = SaslFront::with_broker(FrontConfig {
        mechanisms: vec!["AWS_MSK_IAM".into(), "OAUTHBEARER".into()],
        token_check: Some(TokenCheck(std::sync::Arc::new(check_msk_token))),
        ..msk_iam_front(SECRET)
    })
    .await;
    let (topic, group) = lagging_group(&mut workload, "msk", 4, 60_000, &[1]).await;

    let cluster = |name: &str, region: Option<&str>| msk_iam_cluster(name, &front.address, region);
    let oauth = format!(
        "{}\"sasl.oauthbearer.method\" = \"aws_msk_iam\"\n",
        cluster("msk-oauth", Some("eu-west-1")).replace("\"AWS_MSK_IAM\"", "\"OAUTHBEARER\"")
    );
    let toml = msk_iam_exporter(&format!(
        "{}{}{oauth}",
        cluster("msk", Some("eu-west-1")),
        cluster("noregion", None)
    ));
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("msk", 2, WAIT).await;
    exp.wait_failures("noregion", 1, WAIT).await;
    exp.wait_cycles("msk-oauth", 2, WAIT).await;

    // Logged in with signatures botocore accepts; lag as written.
    let labels = [
        ("cluster_name", "msk"),
        ("group", group.as_str()),
        ("topic", topic.as_str()),
        ("partition", "0"),
    ];
    let want = workload.ledger().lag(&group, &topic, 0).map(|l| l as f64);
    assert!(want.is_some());
    assert_eq!(
        exp.metrics()
            .await
            .value("kafka_consumergroup_group_lag", &labels),
        want
    );
    let mut oauth_labels = labels;
    oauth_labels[0].1 = "msk-oauth";
    let m = exp.metrics().await;
    assert_eq!(
        m.value("kafka_consumergroup_group_lag", &oauth_labels),
        want
    );
    let (oauth, logins): (Vec<_>, Vec<_>) = front
        .logins()
        .into_iter()
        .partition(|l| l.mechanism == "OAUTHBEARER");
    assert!(
        !oauth.is_empty() && oauth.iter().all(|l| l.outcome.is_ok()),
        "{oauth:?}"
    );
    assert!(!logins.is_empty());
    for l in &logins {
        assert_eq!(l.mechanism, "AWS_MSK_IAM");
        let signed = signed_login(l);
        assert_eq!(signed.payload["host"], "127.0.0.1");
        assert_eq!(signed.session_token.as_deref(), Some(SESSION_TOKEN));
        assert_eq!(signed.key_id, KEY_ID);
    }
    let e = exp.last_error("noregion").unwrap();
    assert!(
        e.contains("\"127.0.0.1\" is not an MSK broker host name with a region: set aws.region"),
        "{e}"
    );

    // Signatures made with another secret than the broker knows: refused at the next
    // re-authentication, with the broker's reason.
    for (secret, offset, reason) in [
        ("another-secret", 0, "signature does not match"),
        (SECRET, 3600, "signature expired"),
    ] {
        front.reconfigure(|c| {
            c.aws_secret = secret.into();
            c.aws_clock_offset = offset;
        });
        let failed = exp.cycles_failed("msk");
        exp.wait_failures("msk", failed + 1, WAIT).await;
        let e = exp.last_error("msk").unwrap();
        assert!(
            e.contains("SASL AWS_MSK_IAM authentication to broker") && e.contains(reason),
            "{e}"
        );
        let m = exp.metrics().await;
        assert_eq!(
            m.value("tidemark_cluster_up", &[("cluster_name", "msk")]),
            Some(0.0)
        );
        assert!(!e.contains(SECRET));
    }
    // Back to a broker that agrees: recovered.
    front.reconfigure(|c| {
        c.aws_secret = SECRET.into();
        c.aws_clock_offset = 0;
    });
    let ok = exp.cycles_ok("msk");
    exp.wait_cycles("msk", ok + 2, WAIT).await;
    assert!(!exp.get("/").await.body.contains(SECRET));
    front.assert_no_violations();
    exp.shutdown().await;
}

/// The front's check of an MSK IAM OAUTHBEARER token: the base64url presigned URL, turned
/// into the fields of an AWS_MSK_IAM payload and verified by botocore.
fn check_msk_token(token: &str) -> Result<Duration, String> {
    let url = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|e| format!("not base64url: {e}"))?;
    let url = String::from_utf8(url).map_err(|e| e.to_string())?;
    let rest = url.strip_prefix("https://").ok_or("not an https URL")?;
    let (host, query) = rest.split_once("/?").ok_or("no query")?;
    if host != "kafka.eu-west-1.amazonaws.com" {
        return Err(format!("host {host}"));
    }
    let mut payload = serde_json::Map::new();
    payload.insert("version".into(), "2020_10_22".into());
    payload.insert("host".into(), host.into());
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').ok_or("bad query")?;
        let key = match k {
            "Action" => "action".to_owned(),
            "User-Agent" => continue,
            k => k.to_ascii_lowercase(),
        };
        payload.insert(key, percent_decode(v).into());
    }
    let json = serde_json::Value::Object(payload).to_string();
    sigv4::verify(json.as_bytes(), SECRET, 0)?;
    Ok(Duration::from_secs(900))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
