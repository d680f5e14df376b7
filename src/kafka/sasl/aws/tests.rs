//! Every expected signature below was computed with Python botocore 1.44.8's
//! `SigV4QueryAuth(credentials, "kafka-cluster", region, expires=900)` on
//! `AWSRequest("GET", "https://<host>/", params={"Action": "kafka-cluster:Connect"})` at
//! 2020-10-22T01:02:03Z, with access key `AKIDEXAMPLE` and secret
//! `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY` (AWS's documentation example keys).

use std::time::{Duration, UNIX_EPOCH};

use super::*;

const BROKER: &str = "b-1.demo.abc123.c2.kafka.eu-west-1.amazonaws.com";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE+/=token";

fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_603_328_523)
}

fn creds(token: Option<&str>) -> AwsCredentials {
    AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: token.map(Secret::new),
    }
}

#[test]
fn dates_are_utc_sigv4_timestamps() {
    assert_eq!(amz_date(at()), "20201022T010203Z");
    assert_eq!(
        amz_date(UNIX_EPOCH + Duration::from_secs(951_868_799)),
        "20000229T235959Z"
    );
    assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
}

#[test]
fn presigned_signatures_match_botocore() {
    let s = presign(&creds(None), BROKER, "eu-west-1", at());
    assert_eq!(
        s.signature,
        "5af114227ce805b8c8ec728ba93501d1ce9a4b56eff548644d0c24c0f6b66e4b"
    );
    assert_eq!(
        s.credential,
        "AKIDEXAMPLE/20201022/eu-west-1/kafka-cluster/aws4_request"
    );
    // botocore's URL, signature included.
    assert_eq!(
        format!("https://{BROKER}/?{}&X-Amz-Signature={}", s.query, s.signature),
        "https://b-1.demo.abc123.c2.kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20201022%2Feu-west-1%2Fkafka-cluster%2Faws4_request&X-Amz-Date=20201022T010203Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=5af114227ce805b8c8ec728ba93501d1ce9a4b56eff548644d0c24c0f6b66e4b"
    );
    // Session credentials: the token is signed too.
    let s = presign(&creds(Some(TOKEN)), BROKER, "eu-west-1", at());
    assert_eq!(
        s.signature,
        "f4dea6d542a98a4490a97519b946f66ef5913b1c838d17fad4fe29e307dd2aae"
    );
    assert!(s
        .query
        .ends_with("&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2B%2F%3Dtoken"));
    let s = presign(
        &creds(None),
        "kafka.us-east-1.amazonaws.com",
        "us-east-1",
        at(),
    );
    assert_eq!(
        s.signature,
        "92d9a2eef6831b25f197af6f1a9582b2d83be04259fadf8e226c84316e2ef46f"
    );
}

#[test]
fn the_aws_msk_iam_payload_carries_the_signed_fields() {
    let payload = msk_iam_payload(
        &creds(Some(TOKEN)),
        BROKER,
        "eu-west-1",
        "tidemark/0.1",
        at(),
    );
    let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let field = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let want = [
        ("version", "2020_10_22"),
        ("host", BROKER),
        ("user-agent", "tidemark/0.1"),
        ("action", "kafka-cluster:Connect"),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        (
            "x-amz-credential",
            "AKIDEXAMPLE/20201022/eu-west-1/kafka-cluster/aws4_request",
        ),
        ("x-amz-date", "20201022T010203Z"),
        ("x-amz-signedheaders", "host"),
        ("x-amz-expires", "900"),
        (
            "x-amz-signature",
            "f4dea6d542a98a4490a97519b946f66ef5913b1c838d17fad4fe29e307dd2aae",
        ),
        ("x-amz-security-token", TOKEN),
    ];
    for (k, v) in want {
        assert_eq!(field(k).as_deref(), Some(v), "{k}");
    }
    assert_eq!(json.as_object().unwrap().len(), want.len());
    // Without a session token there is no such field.
    let payload = msk_iam_payload(&creds(None), BROKER, "eu-west-1", "t", at());
    let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert!(json.get("x-amz-security-token").is_none());
}

#[test]
fn the_oauthbearer_token_is_the_base64url_presigned_url() {
    let token = msk_iam_token(&creds(None), "us-east-1", "tidemark/0.1", at());
    assert!(!token.expose().contains('='), "unpadded");
    let url = Base64UrlUnpadded::decode_vec(token.expose()).unwrap();
    assert_eq!(
        String::from_utf8(url).unwrap(),
        "https://kafka.us-east-1.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20201022%2Fus-east-1%2Fkafka-cluster%2Faws4_request&X-Amz-Date=20201022T010203Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=92d9a2eef6831b25f197af6f1a9582b2d83be04259fadf8e226c84316e2ef46f&User-Agent=tidemark%2F0.1"
    );
}

#[test]
fn regions_from_msk_host_names() {
    assert_eq!(region_from_host(BROKER), Some("eu-west-1"));
    assert_eq!(
        region_from_host("boot-abc.c1.kafka-serverless.us-east-2.amazonaws.com"),
        Some("us-east-2")
    );
    assert_eq!(
        region_from_host("b-2.x.y.c3.kafka.cn-north-1.amazonaws.com.cn"),
        Some("cn-north-1")
    );
    assert_eq!(region_from_host("kafka-1.internal:9098"), None);
    assert_eq!(region_from_host("s3.us-east-1.amazonaws.com"), None);
    assert_eq!(region_from_host("amazonaws.com"), None);
}

#[test]
fn credentials_are_redacted_in_debug() {
    let shown = format!("{:?}", creds(Some(TOKEN)));
    assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
    assert!(
        !shown.contains("EXAMPLEKEY") && !shown.contains("IQoJ"),
        "{shown}"
    );
}

#[test]
fn environment_credentials() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let c = from_environment(env(&[
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "tok"),
    ]))
    .unwrap();
    assert_eq!(c.access_key_id, "AKIDEXAMPLE");
    assert_eq!(c.secret_access_key.expose(), "secret");
    assert_eq!(
        c.session_token.map(|t| t.expose().to_owned()).as_deref(),
        Some("tok")
    );
    let c = from_environment(env(&[
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ]))
    .unwrap();
    assert!(c.session_token.is_none());
    let e = from_environment(env(&[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")])).unwrap_err();
    assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
}

#[test]
fn the_exchange_sends_the_payload_and_ends_on_the_answer() {
    use crate::kafka::sasl::{Credentials, Exchange, Mechanism, Sasl, Step};
    let sasl = Sasl {
        mechanism: Mechanism::AwsMskIam,
        credentials: Credentials::Aws(std::sync::Arc::new(AwsIam::new(
            Some("eu-west-1".into()),
            crate::kafka::tls::Tls::new(Default::default()).unwrap(),
        ))),
    };
    assert!(Exchange::start(&sasl).is_err(), "needs the broker's host");
    // Without credentials in the environment (and IMDS disabled) nothing is sent.
    let Credentials::Aws(iam) = &sasl.credentials else {
        unreachable!()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let no_imds = env(&[("AWS_EC2_METADATA_DISABLED", "true")]);
    let e = rt
        .block_on(iam.credentials_in(&no_imds, "eu-west-1"))
        .unwrap_err();
    assert!(e.starts_with("no AWS credentials"), "{e}");
    assert_eq!(Mechanism::parse("aws_msk_iam"), Some(Mechanism::AwsMskIam));
    // One message, then the server's answer ends the exchange.
    let payload = msk_iam_payload(&creds(None), BROKER, "eu-west-1", "t", at());
    let mut x = Exchange {
        mechanism: Mechanism::AwsMskIam,
        engine: crate::kafka::sasl::Engine::MskIam(Some(payload.clone())),
        server_error: Default::default(),
        steps: 0,
        ended: false,
    };
    assert_eq!(x.step(None).unwrap(), Step::Send(payload));
    let answer = br#"{"version":"2020_10_22","request-id":"a1b2"}"#;
    assert_eq!(x.step(Some(answer)).unwrap(), Step::Done);
    assert!(x.step(Some(answer)).is_err());
}

#[test]
fn the_chain_takes_the_first_configured_provider() {
    use super::Provider;
    let all = [
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://169.254.170.23/v1/credentials",
        ),
    ];
    let chain = [
        Provider::Environment,
        Provider::WebIdentity,
        // AWS_ROLE_ARN alone is no web identity.
        Provider::Container,
        Provider::Container,
        Provider::Instance,
    ];
    for (skip, want) in chain.iter().enumerate() {
        assert_eq!(Provider::of(&env(&all[skip..])), *want, "from {skip}");
    }
    let off = env(&[("AWS_EC2_METADATA_DISABLED", "true")]);
    assert_eq!(Provider::of(&off), Provider::None);
}

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + Sync + 'a {
    move |k: &str| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}
