//! AWS_MSK_IAM with web identity credentials (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` and
//! `AWS_ROLE_ARN` are exchanged at a local STS (`AWS_ENDPOINT_URL_STS`) that checks the
//! role and the token and issues session credentials; the SASL front verifies every login's
//! signature with Python botocore for those credentials. Credentials are fetched once and
//! shared across logins (re-authentication every 1.5 s). Its own test binary: the
//! credentials are process environment variables.

use tidemark_testkit as common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use common::sasl_front::SaslFront;
use common::sigv4::{self, msk_iam_cluster, msk_iam_exporter, msk_iam_front, signed_login};
use common::workload::lagging_group;
use common::{unique_name, RunningExporter};

const WAIT: Duration = Duration::from_secs(90);
const ROLE: &str = "arn:aws:iam::123456789012:role/tidemark";
const WEB_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.sig";
const STS_KEY_ID: &str = "ASIASTSISSUEDKEY";
const STS_SECRET: &str = "sts/Issued+Secret/never-shown-9876543210";
const STS_TOKEN: &str = "FwoGZXIvYXdzSTSISSUED+/=token";

/// A local STS answering AssumeRoleWithWebIdentity; records each request's body.
async fn sts() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let s = s.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let body = String::from_utf8_lossy(&body).into_owned();
                        s.lock().unwrap().push(body.clone());
                        let want = format!(
                            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=tidemark&WebIdentityToken={WEB_TOKEN}",
                            ROLE.replace(':', "%3A").replace('/', "%2F")
                        );
                        let (status, xml) = if body == want {
                            (200, format!("<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{STS_KEY_ID}</AccessKeyId><SecretAccessKey>{STS_SECRET}</SecretAccessKey><SessionToken>{STS_TOKEN}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"))
                        } else {
                            (400, "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>unexpected request</Message></Error></ErrorResponse>".to_owned())
                        };
                        Ok::<_, hyper::Error>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(xml)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_credentials_from_sts_sign_logins_botocore_accepts() {
    tokio::task::spawn_blocking(sigv4::install).await.unwrap();
    let (sts_url, sts_requests) = sts().await;
    let dir = std::env::temp_dir().join(unique_name("tidemark-irsa"));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{WEB_TOKEN}\n")).unwrap();
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file);
    std::env::set_var("AWS_ROLE_ARN", ROLE);
    std::env::set_var("AWS_ENDPOINT_URL_STS", &sts_url);

    let (front, _broker, mut workload) = SaslFront::with_broker(msk_iam_front(STS_SECRET)).await;
    let (topic, group) = lagging_group(&mut workload, "irsa", 3, 60_000, &[1]).await;

    let toml = msk_iam_exporter(&msk_iam_cluster("irsa", &front.address, Some("eu-west-1")));
    let exp = RunningExporter::start(&toml).await;
    exp.wait_cycles("irsa", 2, WAIT).await;
    // Across several re-authentications.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let n = exp.cycles_ok("irsa");
    exp.wait_cycles("irsa", n + 1, WAIT).await;
    assert_eq!(exp.cycles_failed("irsa"), 0, "{:?}", exp.last_error("irsa"));

    let labels = [
        ("cluster_name", "irsa"),
        ("group", group.as_str()),
        ("topic", topic.as_str()),
        ("partition", "0"),
    ];
    let want = workload.ledger().lag(&group, &topic, 0).map(|l| l as f64);
    assert!(want.is_some());
    let m = exp.metrics().await;
    assert_eq!(m.value("kafka_consumergroup_group_lag", &labels), want);

    let logins = front.logins();
    assert!(logins.len() >= 3, "{} logins", logins.len());
    for l in &logins {
        let signed = signed_login(l);
        assert_eq!(signed.session_token.as_deref(), Some(STS_TOKEN));
        assert_eq!(signed.key_id, STS_KEY_ID);
    }
    // Fetched once, shared by every login.
    assert_eq!(sts_requests.lock().unwrap().len(), 1);
    assert!(!exp.get("/").await.body.contains(STS_SECRET));
    exp.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
