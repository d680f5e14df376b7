use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn relative_uris_go_to_the_ecs_agent() {
    let e = env(&[(
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "/v2/credentials/abc?x=1",
    )]);
    assert!(container_configured(&e));
    assert_eq!(
        container_url(&e).unwrap().to_string(),
        "http://169.254.170.2/v2/credentials/abc?x=1"
    );
    // The relative URI wins over a full one, as in the SDKs.
    let e = env(&[
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/c"),
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "https://example.com/x",
        ),
    ]);
    assert_eq!(
        container_url(&e).unwrap().to_string(),
        "http://169.254.170.2/v2/c"
    );
    assert!(!container_configured(&env(&[])));
}

#[test]
fn full_uris_need_https_unless_loopback_or_link_local() {
    for ok in [
        "http://169.254.170.23/v1/credentials",
        "http://[fd00:ec2::23]/v1/credentials",
        "http://127.0.0.1:8080/creds",
        "http://127.1.2.3/creds",
        "http://localhost:9/creds",
        "http://[::1]:9/creds",
        "http://[fe80::1]/creds",
        "http://169.254.1.1/creds",
        "https://creds.example.com/x",
        "https://10.0.0.1/x",
    ] {
        let e = env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", ok)]);
        assert_eq!(container_url(&e).unwrap().to_string(), ok);
    }
    for bad in [
        "http://10.0.0.1/creds",
        "http://creds.example.com/x",
        "http://[fd00:ec2::24]/x",
        "http://169.255.0.1/x",
        "http://localhost.example.com/x",
    ] {
        let e = env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", bad)]);
        let err = container_url(&e).unwrap_err();
        assert!(
            err.contains("only to a loopback or link-local"),
            "{bad}: {err}"
        );
    }
    let e = env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "ftp://127.0.0.1/")]);
    assert!(container_url(&e).is_err());
}

#[test]
fn the_token_file_is_read_at_every_fetch_and_wins() {
    let dir = std::env::temp_dir().join(format!("tidemark-ctoken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "first\n").unwrap();
    let path = file.to_string_lossy().into_owned();
    let e = env(&[
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path.as_str()),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "from-variable"),
    ]);
    assert_eq!(
        container_authorization(&e).unwrap().as_deref(),
        Some("first")
    );
    std::fs::write(&file, "rotated").unwrap();
    assert_eq!(
        container_authorization(&e).unwrap().as_deref(),
        Some("rotated")
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let err = container_authorization(&e).unwrap_err();
    assert!(
        err.contains("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        "{err}"
    );
    let e = env(&[("AWS_CONTAINER_AUTHORIZATION_TOKEN", "from-variable")]);
    assert_eq!(
        container_authorization(&e).unwrap().as_deref(),
        Some("from-variable")
    );
    assert_eq!(container_authorization(&env(&[])).unwrap(), None);
}

#[test]
fn imds_is_disabled_only_by_true() {
    assert!(imds_enabled(&env(&[])));
    assert!(imds_enabled(&env(&[(
        "AWS_EC2_METADATA_DISABLED",
        "false"
    )])));
    assert!(!imds_enabled(&env(&[(
        "AWS_EC2_METADATA_DISABLED",
        "TRUE"
    )])));
}

#[test]
fn credentials_json_of_both_endpoints() {
    // 2020-10-22T01:02:03Z
    let now = UNIX_EPOCH + Duration::from_secs(1_603_328_523);
    let imds = br#"{
  "Code" : "Success",
  "LastUpdated" : "2020-10-22T00:52:03Z",
  "Type" : "AWS-HMAC",
  "AccessKeyId" : "ASIAIMDSEXAMPLE",
  "SecretAccessKey" : "imds/Secret+Key",
  "Token" : "IQoJimds==",
  "Expiration" : "2020-10-22T07:02:03Z"
}"#;
    let f = parse_credentials("IMDS", imds, now).unwrap();
    assert_eq!(f.value.access_key_id, "ASIAIMDSEXAMPLE");
    assert_eq!(f.value.secret_access_key.expose(), "imds/Secret+Key");
    assert_eq!(
        f.value.session_token.as_ref().map(|t| t.expose()),
        Some("IQoJimds==")
    );
    assert_eq!(f.lifetime, Some(Duration::from_secs(6 * 3600)));
    let ecs = br#"{"AccessKeyId":"ASIAECS","Expiration":"2020-10-22T01:17:03Z","RoleArn":"arn:aws:iam::1:role/x","SecretAccessKey":"s","Token":"t"}"#;
    let f = parse_credentials("ECS", ecs, now).unwrap();
    assert_eq!(f.lifetime, Some(Duration::from_secs(900)));
    // Already expired: fetched again at once.
    let past = br#"{"AccessKeyId":"a","SecretAccessKey":"s","Token":"t","Expiration":"2020-10-22T01:00:00Z"}"#;
    assert_eq!(
        parse_credentials("x", past, now).unwrap().lifetime,
        Some(Duration::from_secs(1))
    );
}

#[test]
fn bad_credentials_json_is_named_without_its_secrets() {
    let now = UNIX_EPOCH;
    let e = parse_credentials(
        "IMDS u",
        br#"{"Code":"Expired","SecretAccessKey":"leak"}"#,
        now,
    )
    .unwrap_err();
    assert_eq!(e, "IMDS u answered Code \"Expired\"");
    let e = parse_credentials("ECS u", br#"{"SecretAccessKey":"leak"}"#, now).unwrap_err();
    assert_eq!(e, "ECS u answered without AccessKeyId");
    let e = parse_credentials("ECS u", b"SecretAccessKey=leak", now).unwrap_err();
    assert!(
        e.starts_with("ECS u answered something that is not credentials JSON"),
        "{e}"
    );
    assert!(!e.contains("leak"), "{e}");
    let e = parse_credentials(
        "ECS u",
        br#"{"AccessKeyId":"a","SecretAccessKey":"leak","Expiration":"soon"}"#,
        now,
    )
    .unwrap_err();
    assert_eq!(e, "ECS u answered Expiration \"soon\", not a timestamp");
}
