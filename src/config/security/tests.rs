//! `consumer_properties` → `Security`, through the public `parse`, so errors are checked
//! exactly as a user sees them.

use std::path::PathBuf;

use crate::config::{parse, Config, REDACTED};
use crate::kafka::sasl::{Credentials, Mechanism, TokenSource};
use crate::kafka::tls::Verification;
use crate::kafka::Security;

const SECRET: &str = "pa$$w0rd-do-not-show";

fn testdata(name: &str) -> String {
    format!(
        "{}/src/kafka/tls/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn config(props: &[(&str, &str)]) -> Result<Config, String> {
    let mut text =
        "[[clusters]]\nname = \"c\"\nbootstrap_servers = \"k:9093\"\n[clusters.consumer_properties]\n"
            .to_string();
    for (k, v) in props {
        text.push_str(&format!("{k:?} = {v:?}\n"));
    }
    parse(&text, "config.toml", &|_| None).map_err(|e| e.to_string())
}

fn ok(props: &[(&str, &str)]) -> Security {
    match config(props) {
        Ok(c) => c.clusters[0].security.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn err(props: &[(&str, &str)]) -> String {
    match config(props) {
        Ok(c) => panic!("expected an error, got {:?}", c.clusters[0]),
        Err(e) => {
            assert!(!e.contains(SECRET), "a secret in the error: {e}");
            e
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidemark-sec-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn plaintext_by_default() {
    assert!(matches!(ok(&[]), Security::Plaintext));
    assert!(matches!(
        ok(&[("security.protocol", "PLAINTEXT")]),
        Security::Plaintext
    ));
}

#[test]
fn sasl_ssl_with_scram_and_the_mozilla_roots() {
    let s = ok(&[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanisms", "scram-sha-512"),
        ("sasl.username", "svc"),
        ("sasl.password", SECRET),
    ]);
    assert_eq!(s.protocol_name(), "SASL_SSL");
    assert_eq!(s.tls().unwrap().verification(), Verification::Full);
    let sasl = s.sasl().unwrap();
    assert_eq!(sasl.mechanism, Mechanism::ScramSha512);
    match &sasl.credentials {
        Credentials::Password { username, password } => {
            assert_eq!(username, "svc");
            assert_eq!(password.expose(), SECRET);
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{s:?}").contains(SECRET));
}

#[test]
fn sasl_errors_name_the_key() {
    let base = [("security.protocol", "SASL_PLAINTEXT")];
    let e = err(&base);
    assert!(
        e.contains("consumer_properties.\"sasl.mechanism\": is missing") && e.contains("GSSAPI"),
        "{e}"
    );
    let e = err(&[base[0], ("sasl.mechanism", "GSSAPI")]);
    assert!(e.contains("GSSAPI (Kerberos) is not supported"), "{e}");
    let e = err(&[base[0], ("sasl.mechanism", "SCRAM-SHA-1")]);
    assert!(
        e.contains("\"SCRAM-SHA-1\" is not a supported SASL mechanism"),
        "{e}"
    );
    let e = err(&[
        base[0],
        ("sasl.mechanism", "PLAIN"),
        ("sasl.mechanisms", "SCRAM-SHA-256"),
    ]);
    assert!(
        e.contains("\"sasl.mechanisms\": \"SCRAM-SHA-256\" differs"),
        "{e}"
    );
    let e = err(&[
        base[0],
        ("sasl.mechanism", "PLAIN"),
        ("sasl.password", SECRET),
    ]);
    assert!(
        e.contains("\"sasl.username\": is missing (needed for PLAIN)"),
        "{e}"
    );
    let e = err(&[
        base[0],
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", "u"),
    ]);
    assert!(e.contains("\"sasl.password\": is missing"), "{e}");
}

#[test]
fn oauthbearer_token_or_token_file() {
    let base = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "OAUTHBEARER"),
    ];
    let s = ok(&[base[0], base[1], ("sasl.oauthbearer.token", SECRET)]);
    assert!(matches!(
        &s.sasl().unwrap().credentials,
        Credentials::Token(TokenSource::Static(t), _) if t.expose() == SECRET
    ));

    let dir = temp_dir("oauth");
    let file = dir.join("token.jwt");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let path = file.display().to_string();
    let s = ok(&[base[0], base[1], ("sasl.oauthbearer.token.file", &path)]);
    match &s.sasl().unwrap().credentials {
        Credentials::Token(TokenSource::File(f), _) => {
            assert_eq!(f.path(), file.as_path());
            assert_eq!(f.read().unwrap().expose(), SECRET);
        }
        other => panic!("{other:?}"),
    }

    let e = err(&[base[0], base[1]]);
    assert!(
        e.contains("\"sasl.oauthbearer.token\": is missing") && e.contains("method = oidc"),
        "{e}"
    );
    let e = err(&[
        base[0],
        base[1],
        ("sasl.oauthbearer.token", SECRET),
        ("sasl.oauthbearer.token.file", &path),
    ]);
    assert!(
        e.contains("\"sasl.oauthbearer.token.file\": is set together"),
        "{e}"
    );
    let missing = dir.join("absent.jwt").display().to_string();
    let e = err(&[base[0], base[1], ("sasl.oauthbearer.token.file", &missing)]);
    assert!(
        e.contains("\"sasl.oauthbearer.token.file\": cannot read token file")
            && e.contains(&missing),
        "{e}"
    );
    std::fs::write(&file, " \n").unwrap();
    let e = err(&[base[0], base[1], ("sasl.oauthbearer.token.file", &path)]);
    assert!(e.contains("the token is empty") && e.contains(&path), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ca_location_file_directory_inline_and_errors() {
    let ssl = ("security.protocol", "SSL");
    let cert = testdata("cert.pem");
    assert!(ok(&[ssl, ("ssl.ca.location", &cert)]).tls().is_some());
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert!(ok(&[ssl, ("ssl.ca.pem", &pem)]).tls().is_some());

    let dir = temp_dir("ca");
    std::fs::write(dir.join("a.pem"), &pem).unwrap();
    std::fs::write(dir.join("README"), "not a certificate").unwrap();
    let d = dir.display().to_string();
    assert!(ok(&[ssl, ("ssl.ca.location", &d)]).tls().is_some());

    let missing = dir.join("nope.pem").display().to_string();
    let e = err(&[ssl, ("ssl.ca.location", &missing)]);
    assert!(
        e.starts_with(
            "config.toml: clusters[0].consumer_properties.\"ssl.ca.location\": cannot read"
        ) && e.contains(&missing),
        "{e}"
    );
    let junk = dir.join("README").display().to_string();
    let e = err(&[ssl, ("ssl.ca.location", &junk)]);
    assert!(e.contains(&junk) && e.contains("no certificate"), "{e}");
    let e = err(&[ssl, ("ssl.ca.location", &cert), ("ssl.ca.pem", &pem)]);
    assert!(e.contains("\"ssl.ca.pem\": is set together"), "{e}");
    std::fs::remove_file(dir.join("a.pem")).unwrap();
    let e = err(&[ssl, ("ssl.ca.location", &d)]);
    assert!(e.contains("holds no PEM certificate"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn client_certificate_and_keys() {
    let ssl = ("security.protocol", "SSL");
    let cert = testdata("cert.pem");
    let key = testdata("key-pkcs8.pem");
    let encrypted = testdata("key-pkcs8-encrypted.pem");
    let s = ok(&[
        ssl,
        ("ssl.certificate.location", &cert),
        ("ssl.key.location", &key),
    ]);
    assert!(s.tls().unwrap().has_client_certificate());
    let s = ok(&[
        ssl,
        ("ssl.certificate.location", &cert),
        ("ssl.key.location", &encrypted),
        ("ssl.key.password", "tidemark-test"),
    ]);
    assert!(s.tls().unwrap().has_client_certificate());

    let e = err(&[
        ssl,
        ("ssl.certificate.location", &cert),
        ("ssl.key.location", &encrypted),
        ("ssl.key.password", SECRET),
    ]);
    assert!(
        e.contains("\"ssl.key.location\"")
            && e.contains(&encrypted)
            && e.contains("wrong ssl.key.password"),
        "{e}"
    );
    let e = err(&[
        ssl,
        ("ssl.certificate.location", &cert),
        ("ssl.key.location", &encrypted),
    ]);
    assert!(e.contains("ssl.key.password is not set"), "{e}");
    let e = err(&[ssl, ("ssl.certificate.location", &cert)]);
    assert!(
        e.contains("\"ssl.certificate.location\": is set but ssl.key.location is not"),
        "{e}"
    );
    let e = err(&[ssl, ("ssl.key.location", &key)]);
    assert!(
        e.contains("\"ssl.key.location\": is set but ssl.certificate.location is not"),
        "{e}"
    );
    let e = err(&[
        ssl,
        ("ssl.certificate.location", &key),
        ("ssl.key.location", &key),
    ]);
    assert!(
        e.contains("\"ssl.certificate.location\"") && e.contains("no certificate"),
        "{e}"
    );
}

#[test]
fn verification_switches_and_their_warnings() {
    let ssl = ("security.protocol", "SSL");
    let c = config(&[ssl, ("enable.ssl.certificate.verification", "false")]).unwrap();
    assert_eq!(
        c.clusters[0].security.tls().unwrap().verification(),
        Verification::None
    );
    let w = c.warnings().join("\n");
    assert!(
        w.contains("NOT verified") && w.contains("cluster \"c\""),
        "{w}"
    );
    let c = config(&[ssl, ("ssl.endpoint.identification.algorithm", "none")]).unwrap();
    assert_eq!(
        c.clusters[0].security.tls().unwrap().verification(),
        Verification::NoHostname
    );
    assert!(c.warnings().join("\n").contains("host names"));
    let c = config(&[ssl, ("enable.ssl.certificate.verification", "true")]).unwrap();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let e = err(&[ssl, ("enable.ssl.certificate.verification", "maybe")]);
    assert!(e.contains("\"maybe\" is not a boolean"), "{e}");
    let e = err(&[ssl, ("ssl.endpoint.identification.algorithm", "ldap")]);
    assert!(e.contains("\"ldap\" is not supported"), "{e}");
}

#[test]
fn keys_the_protocol_does_not_use_are_reported() {
    let c = config(&[
        ("security.protocol", "SSL"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.password", SECRET),
    ])
    .unwrap();
    let w = c.warnings().join("\n");
    assert!(
        w.contains("security.protocol is SSL, so these consumer_properties have no effect: sasl.mechanism, sasl.password"),
        "{w}"
    );
    assert!(!w.contains(SECRET));
}

#[test]
fn secrets_are_redacted_in_check_config_output_and_debug() {
    let dir = temp_dir("redact");
    let file = dir.join("token");
    std::fs::write(&file, "file-token").unwrap();
    let path = file.display().to_string();
    let c = config(&[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "OAUTHBEARER"),
        ("sasl.oauthbearer.token.file", &path),
        ("ssl.key.password", SECRET),
        ("sasl.password", SECRET),
    ])
    .unwrap();
    let rendered = c.to_redacted_toml();
    assert!(!rendered.contains(SECRET), "{rendered}");
    assert!(rendered.contains(REDACTED));
    // A path is not a secret: shown, so the operator can check it.
    assert!(rendered.contains(&path), "{rendered}");
    let debug = format!("{c:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains("file-token"),
        "{debug}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn oauthbearer_oidc_client_credentials() {
    let oidc = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "OAUTHBEARER"),
        ("sasl.oauthbearer.method", "OIDC"),
        ("sasl.oauthbearer.client.id", "tidemark-client"),
        ("sasl.oauthbearer.client.secret", SECRET),
        (
            "sasl.oauthbearer.token.endpoint.url",
            "https://idp.example.com:8443/oauth2/token",
        ),
        ("sasl.oauthbearer.scope", "kafka"),
        (
            "sasl.oauthbearer.extensions",
            "logicalCluster=lkc-abc12,identityPoolId=pool-Xy1",
        ),
        ("https.ca.location", &testdata("cert.pem")),
    ];
    let s = ok(&oidc);
    let Credentials::Token(TokenSource::Oidc(o), extensions) = &s.sasl().unwrap().credentials
    else {
        panic!("{s:?}")
    };
    let settings = o.settings();
    assert_eq!(
        settings.endpoint.to_string(),
        "https://idp.example.com:8443/oauth2/token"
    );
    assert_eq!(settings.client_id, "tidemark-client");
    assert_eq!(settings.client_secret.expose(), SECRET);
    assert_eq!(settings.scope.as_deref(), Some("kafka"));
    assert_eq!(extensions.pairs().len(), 2);
    assert_eq!(
        extensions.pairs()[0],
        ("logicalCluster".into(), "lkc-abc12".into())
    );
    assert!(!format!("{s:?}").contains(SECRET));

    // Each required key, when missing, is named.
    for key in [
        "sasl.oauthbearer.client.id",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.token.endpoint.url",
    ] {
        let without: Vec<_> = oidc.iter().copied().filter(|(k, _)| *k != key).collect();
        let e = err(&without);
        assert!(
            e.contains(&format!(
                "\"{key}\": is missing (needed for sasl.oauthbearer.method = oidc)"
            )),
            "{e}"
        );
    }
    let with = |key: &'static str, value: &'static str| {
        let mut v: Vec<_> = oidc.iter().copied().filter(|(k, _)| *k != key).collect();
        v.push((key, value));
        err(&v)
    };
    let e = with("sasl.oauthbearer.token.endpoint.url", "idp/token");
    assert!(
        e.contains("\"sasl.oauthbearer.token.endpoint.url\": \"idp/token\" is not"),
        "{e}"
    );
    let e = with("sasl.oauthbearer.extensions", "logicalCluster");
    assert!(
        e.contains("\"sasl.oauthbearer.extensions\": \"logicalCluster\" is not key=value"),
        "{e}"
    );
    let e = with("sasl.oauthbearer.method", "jwt-bearer");
    assert!(
        e.contains("\"sasl.oauthbearer.method\": \"jwt-bearer\" is not supported"),
        "{e}"
    );
    let e = with("sasl.oauthbearer.token", "static");
    assert!(
        e.contains(
            "\"sasl.oauthbearer.token\": is set together with sasl.oauthbearer.method = oidc"
        ),
        "{e}"
    );
    let e = with("https.ca.location", "/nonexistent/ca.pem");
    assert!(e.contains("\"https.ca.location\": cannot read"), "{e}");
}

#[test]
fn aws_msk_iam_with_or_without_a_region() {
    let base = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "AWS_MSK_IAM"),
    ];
    let s = ok(&base);
    let Credentials::Aws(iam) = &s.sasl().unwrap().credentials else {
        panic!("{s:?}")
    };
    assert_eq!(iam.region, None);
    assert_eq!(
        iam.region_for("b-1.demo.abc123.c2.kafka.eu-west-1.amazonaws.com"),
        Ok("eu-west-1")
    );
    let e = iam.region_for("kafka.internal").unwrap_err();
    assert!(e.contains("set aws.region"), "{e}");
    let s = ok(&[base[0], base[1], ("aws.region", "us-east-2")]);
    let Credentials::Aws(iam) = &s.sasl().unwrap().credentials else {
        panic!("{s:?}")
    };
    assert_eq!(iam.region_for("kafka.internal"), Ok("us-east-2"));
}

#[test]
fn oauthbearer_with_msk_iam_tokens_needs_a_region() {
    let base = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "OAUTHBEARER"),
        ("sasl.oauthbearer.method", "aws_msk_iam"),
    ];
    let e = err(&base);
    assert!(
        e.contains("\"aws.region\": is missing (needed for sasl.oauthbearer.method = aws_msk_iam)"),
        "{e}"
    );
    let s = ok(&[base[0], base[1], base[2], ("aws.region", "eu-west-1")]);
    let Credentials::Token(TokenSource::MskIam(iam), _) = &s.sasl().unwrap().credentials else {
        panic!("{s:?}")
    };
    assert_eq!(iam.region.as_deref(), Some("eu-west-1"));
}
