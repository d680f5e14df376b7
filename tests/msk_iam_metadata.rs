//! AWS_MSK_IAM with credentials from the metadata endpoints, each played by a local HTTP
//! server: the container credentials endpoint (EKS Pod Identity: a full URI on loopback and
//! an authorization token file that rotates) and the instance metadata service (IMDSv2:
//! a session token from `PUT /latest/api/token`, then the role and its credentials with
//! that token). The servers check the authorization header and the IMDS token and count
//! requests; the SASL front verifies every login's signature with Python botocore for the
//! served secret. Credentials are fetched once across several logins (re-authentication
//! every 1.5 s) and again when the served `Expiration` is near; an IMDS that refuses the
//! token is reported with the provider, the URL and the status.
//!
//! One test (the providers are chosen by process environment variables), in phases.

use tidemark_testkit as common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use common::sasl_front::SaslFront;
use common::sigv4::{self, msk_iam_cluster, msk_iam_exporter, msk_iam_front, signed_login};
use common::workload::lagging_group;
use common::{unique_name, RunningExporter};

const WAIT: Duration = Duration::from_secs(90);
const SECRET: &str = "served/Secret+Key/never-shown-24680";
const CONTAINER_KEY: &str = "ASIACONTAINERKEY";
const IMDS_KEY: &str = "ASIAINSTANCEKEY";
const ROLE: &str = "tidemark-role";
/// Lifetime of the first credentials served: a refresh falls due after 80% of it.
const SHORT_LIFE: u64 = 10;

/// One request as a test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    imds_token: Option<String>,
    ttl: Option<String>,
}

type Handler = Arc<dyn Fn(&Seen, usize) -> (u16, String) + Send + Sync>;

/// A local HTTP server answering with `handler(request, how many came before)`.
async fn server(handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (log, handler) = (log.clone(), handler.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let header =
                        |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
                    let s = Seen {
                        method: req.method().to_string(),
                        path: req.uri().to_string(),
                        authorization: header("authorization"),
                        imds_token: header("x-aws-ec2-metadata-token"),
                        ttl: header("x-aws-ec2-metadata-token-ttl-seconds"),
                    };
                    let mut log = log.lock().unwrap();
                    let (status, body) = handler(&s, log.len());
                    log.push(s);
                    let response = hyper::Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from(body)))
                        .unwrap();
                    async move { Ok::<_, hyper::Error>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (url, seen)
}

/// `secs` from now as an ISO 8601 UTC timestamp (from `date`, not from tidemark).
fn expiration(secs: u64) -> String {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs;
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{at}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The credentials JSON, session token `token`, short-lived for the first fetch.
fn credentials(key: &str, token: &str, fetch: usize) -> String {
    let life = if fetch == 0 { SHORT_LIFE } else { 86_400 };
    serde_json::json!({
        "Code": "Success",
        "AccessKeyId": key,
        "SecretAccessKey": SECRET,
        "Token": token,
        "Expiration": expiration(life),
    })
    .to_string()
}

/// The session token and key id of every login since `from`, checking each succeeded.
fn logins_since(front: &SaslFront, from: usize) -> Vec<(String, String)> {
    front.logins()[from..]
        .iter()
        .map(|l| {
            let signed = signed_login(l);
            let token = signed.session_token.expect("x-amz-security-token");
            (signed.key_id, token)
        })
        .collect()
}

fn exporter_toml(name: &str, front: &str) -> String {
    msk_iam_exporter(&msk_iam_cluster(name, front, Some("eu-west-1")))
}

/// Run an exporter until the first credentials have been refreshed and a few more logins
/// made; check the lag it reports.
async fn run_past_refresh(
    name: &str,
    front: &SaslFront,
    lag: Option<f64>,
    labels: &[(&str, &str)],
) {
    let exp = RunningExporter::start(&exporter_toml(name, &front.address)).await;
    exp.wait_cycles(name, 2, WAIT).await;
    // Past 80% of the first credentials' lifetime, then a few more re-authentications.
    tokio::time::sleep(Duration::from_secs(SHORT_LIFE + 3)).await;
    let n = exp.cycles_ok(name);
    exp.wait_cycles(name, n + 2, WAIT).await;
    assert_eq!(exp.cycles_failed(name), 0, "{:?}", exp.last_error(name));
    let mut labels = labels.to_vec();
    labels.insert(0, ("cluster_name", name));
    let m = exp.metrics().await;
    assert_eq!(m.value("kafka_consumergroup_group_lag", &labels), lag);
    assert!(!exp.get("/").await.body.contains(SECRET));
    exp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_and_instance_metadata_credentials_sign_logins_botocore_accepts() {
    tokio::task::spawn_blocking(sigv4::install).await.unwrap();
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ] {
        std::env::remove_var(k);
    }
    let (front, _broker, mut workload) = SaslFront::with_broker(msk_iam_front(SECRET)).await;
    let (topic, group) = lagging_group(&mut workload, "meta", 3, 60_000, &[1]).await;
    let lag = workload.ledger().lag(&group, &topic, 0).map(|l| l as f64);
    assert!(lag.is_some());
    let labels = [
        ("group", group.as_str()),
        ("topic", topic.as_str()),
        ("partition", "0"),
    ];

    let dir = pod_identity(&front, lag, &labels).await;
    instance_metadata(&front, lag, &labels).await;
    refused(&front).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Phase 1: EKS Pod Identity. The agent accepts the token the file holds at the time (the
/// test rotates it after the first fetch); returns the directory of the token file.
async fn pod_identity(
    front: &SaslFront,
    lag: Option<f64>,
    labels: &[(&str, &str)],
) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique_name("tidemark-podid"));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "pod-identity-token-1\n").unwrap();
    let expected = Arc::new(Mutex::new("pod-identity-token-1".to_owned()));
    let want = expected.clone();
    let (agent, agent_seen) = server(Arc::new(move |s: &Seen, n| {
        if s.method != "GET" || s.path != "/v1/credentials" {
            return (404, "not found".into());
        }
        if s.authorization.as_deref() != Some(want.lock().unwrap().as_str()) {
            return (401, "bad token".into());
        }
        (
            200,
            credentials(CONTAINER_KEY, &format!("container-{}", n + 1), n),
        )
    }))
    .await;
    std::env::set_var(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("{agent}/v1/credentials"),
    );
    std::env::set_var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file);
    std::env::set_var("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-this-one");
    let rotate = {
        let (seen, file, expected) = (agent_seen.clone(), token_file.clone(), expected.clone());
        tokio::spawn(async move {
            while seen.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            std::fs::write(&file, "pod-identity-token-2").unwrap();
            *expected.lock().unwrap() = "pod-identity-token-2".into();
        })
    };
    run_past_refresh("podid", front, lag, labels).await;
    rotate.await.unwrap();
    let seen = agent_seen.lock().unwrap().clone();
    let auth: Vec<_> = seen.iter().map(|s| s.authorization.as_deref()).collect();
    // Fetched once, then once more when the first credentials fell due.
    assert_eq!(
        auth,
        [Some("pod-identity-token-1"), Some("pod-identity-token-2")]
    );
    let logins = logins_since(front, 0);
    assert!(logins.len() >= 6, "{} logins", logins.len());
    assert!(logins.iter().all(|(k, _)| k == CONTAINER_KEY));
    let tokens: Vec<&str> = logins.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(tokens.first(), Some(&"container-1"));
    assert_eq!(tokens.last(), Some(&"container-2"));
    assert!(tokens.windows(2).all(|w| w[0] <= w[1]), "{tokens:?}");

    dir
}

/// Phase 2: IMDSv2 (no container endpoint configured).
async fn instance_metadata(front: &SaslFront, lag: Option<f64>, labels: &[(&str, &str)]) {
    for k in [
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    ] {
        std::env::remove_var(k);
    }
    let issued = Arc::new(Mutex::new(Vec::<String>::new()));
    let tokens_issued = issued.clone();
    let (imds, imds_seen) = server(Arc::new(move |s: &Seen, _| {
        let mut issued = tokens_issued.lock().unwrap();
        if s.method == "PUT" && s.path == "/latest/api/token" {
            if s.ttl.as_deref() != Some("21600") {
                return (400, "missing ttl".into());
            }
            let token = format!("imds-session-{}", issued.len() + 1);
            issued.push(token.clone());
            return (200, token);
        }
        if s.method != "GET" || !s.imds_token.as_ref().is_some_and(|t| issued.contains(t)) {
            return (401, String::new());
        }
        let fetch = issued.len() - 1;
        match s
            .path
            .strip_prefix("/latest/meta-data/iam/security-credentials/")
        {
            Some("") => (200, format!("{ROLE}\n")),
            Some(ROLE) => (
                200,
                credentials(IMDS_KEY, &format!("imds-{}", fetch + 1), fetch),
            ),
            _ => (404, String::new()),
        }
    }))
    .await;
    std::env::set_var("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds);
    let before = front.logins().len();
    run_past_refresh("imds", front, lag, labels).await;
    let seen = imds_seen.lock().unwrap().clone();
    let calls: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {} {:?}", s.method, s.path, s.imds_token))
        .collect();
    let round = |n: u32| {
        let t = Some(format!("imds-session-{n}"));
        [
            format!("PUT /latest/api/token {:?}", None::<String>),
            format!("GET /latest/meta-data/iam/security-credentials/ {t:?}"),
            format!("GET /latest/meta-data/iam/security-credentials/{ROLE} {t:?}"),
        ]
    };
    assert_eq!(calls, [round(1), round(2)].concat());
    let logins = logins_since(front, before);
    assert!(logins.len() >= 6, "{} logins", logins.len());
    assert!(logins.iter().all(|(k, _)| k == IMDS_KEY));
    assert_eq!(logins.first().map(|l| l.1.as_str()), Some("imds-1"));
    assert_eq!(logins.last().map(|l| l.1.as_str()), Some("imds-2"));
}

/// Phase 3: an IMDS that refuses the session token request: the error names the provider,
/// the URL and the status, and the cycle fails without a login.
async fn refused(front: &SaslFront) {
    let (refusing, _) = server(Arc::new(|_: &Seen, _| (403, "Forbidden".into()))).await;
    std::env::set_var("AWS_EC2_METADATA_SERVICE_ENDPOINT", &refusing);
    let before = front.logins().len();
    let exp = RunningExporter::start(&exporter_toml("refused", &front.address)).await;
    exp.wait_failures("refused", 1, WAIT).await;
    let e = exp.last_error("refused").unwrap();
    let want = format!("instance metadata service {refusing}/latest/api/token answered HTTP 403");
    assert!(e.contains(&want), "{e}");
    let m = exp.metrics().await;
    assert_eq!(
        m.value("tidemark_cluster_up", &[("cluster_name", "refused")]),
        Some(0.0)
    );
    exp.shutdown().await;
    assert_eq!(front.logins().len(), before);
}
