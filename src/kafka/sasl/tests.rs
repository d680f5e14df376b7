use super::*;

fn password(mechanism: Mechanism, user: &str, pass: &str) -> Sasl {
    Sasl {
        mechanism,
        credentials: Credentials::Password {
            username: user.into(),
            password: Secret::new(pass),
        },
    }
}

fn token(t: &str) -> Sasl {
    Sasl {
        mechanism: Mechanism::OAuthBearer,
        credentials: Credentials::Token(TokenSource::Static(Secret::new(t)), Extensions::default()),
    }
}

fn send(step: Step) -> Vec<u8> {
    match step {
        Step::Send(m) | Step::SendLast(m) => m,
        Step::Done => panic!("expected a message"),
    }
}

#[test]
fn mechanism_names() {
    for m in Mechanism::ALL {
        assert_eq!(Mechanism::parse(m.name()), Some(m));
        assert_eq!(Mechanism::parse(&m.name().to_lowercase()), Some(m));
    }
    assert_eq!(
        Mechanism::parse(" scram-sha-512 "),
        Some(Mechanism::ScramSha512)
    );
    assert_eq!(Mechanism::parse("GSSAPI"), None);
    assert_eq!(Mechanism::parse("SCRAM-SHA-1"), None);
}

#[test]
fn plain_is_one_message() {
    let mut x = Exchange::start(&password(Mechanism::Plain, "alice", "s3cret")).unwrap();
    assert_eq!(
        x.step(None).unwrap(),
        Step::SendLast(b"\0alice\0s3cret".to_vec())
    );
}

#[test]
fn oauthbearer_message_and_success() {
    let mut x = Exchange::start(&token("eyJhbGciOi.payload.sig")).unwrap();
    let first = send(x.step(None).unwrap());
    assert_eq!(first, b"n,,\x01auth=Bearer eyJhbGciOi.payload.sig\x01\x01");
    // Success: the broker answers with empty auth bytes.
    assert_eq!(x.step(Some(b"")).unwrap(), Step::Done);
    assert_eq!(x.server_error(), None);
}

#[test]
fn oauthbearer_extensions_are_key_value_pairs_of_the_first_message() {
    let ext = Extensions::parse(" logicalCluster=lkc-abc12 , identityPoolId=pool-X9=z ").unwrap();
    assert_eq!(
        ext.pairs(),
        [
            ("logicalCluster".to_owned(), "lkc-abc12".to_owned()),
            ("identityPoolId".to_owned(), "pool-X9=z".to_owned())
        ]
    );
    let sasl = Sasl {
        mechanism: Mechanism::OAuthBearer,
        credentials: Credentials::Token(TokenSource::Static(Secret::new("tok.en")), ext),
    };
    let first = send(Exchange::start(&sasl).unwrap().step(None).unwrap());
    // RFC 7628: gs2 header, then kvpairs each ended by %x01, then a final %x01.
    assert_eq!(
        first,
        b"n,,\x01logicalCluster=lkc-abc12\x01identityPoolId=pool-X9=z\x01auth=Bearer tok.en\x01\x01"
    );
    assert!(
        Credentials::Token(TokenSource::Static(Secret::new("t")), Extensions::default())
            .describe()
            .ends_with("a static token")
    );
}

#[test]
fn extensions_follow_kafkas_rules() {
    assert!(Extensions::parse("").unwrap().is_empty());
    assert!(Extensions::parse(" , ").unwrap().is_empty());
    for (bad, why) in [
        ("novalue", "not key=value"),
        ("a1=b", "letters only"),
        ("=b", "letters only"),
        ("auth=x", "reserved"),
        ("a=", "not empty"),
        ("a=caf\u{e9}", "printable ASCII"),
        ("a=b\u{1}", "printable ASCII"),
        ("a=1,a=2", "twice"),
    ] {
        let e = Extensions::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}

#[test]
fn oauthbearer_server_error_is_answered_with_0x01() {
    let mut x = Exchange::start(&token("t")).unwrap();
    x.step(None).unwrap();
    let step = x
        .step(Some(br#"{"status":"invalid_token","scope":"kafka"}"#))
        .unwrap();
    assert_eq!(step, Step::SendLast(vec![1]));
    let e = x.server_error().unwrap();
    assert!(e.contains("invalid_token") && e.contains("kafka"), "{e}");
}

#[test]
fn token_file_is_read_again_at_every_login() {
    let dir = std::env::temp_dir().join(format!("tidemark-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, "first-token\n").unwrap();
    let file = TokenFile::open(&path).unwrap();
    let sasl = Sasl {
        mechanism: Mechanism::OAuthBearer,
        credentials: Credentials::Token(TokenSource::File(file.clone()), Extensions::default()),
    };
    let msg = send(Exchange::start(&sasl).unwrap().step(None).unwrap());
    assert_eq!(msg, b"n,,\x01auth=Bearer first-token\x01\x01");
    std::fs::write(&path, "  second-token  ").unwrap();
    let msg = send(Exchange::start(&sasl).unwrap().step(None).unwrap());
    assert_eq!(msg, b"n,,\x01auth=Bearer second-token\x01\x01");
    // A file that went bad fails the login with the path, never the token.
    std::fs::write(&path, "").unwrap();
    let e = Exchange::start(&sasl).unwrap_err();
    assert!(
        e.contains("empty") && e.contains(&path.display().to_string()),
        "{e}"
    );
    std::fs::remove_file(&path).unwrap();
    let e = TokenFile::open(&path).unwrap_err();
    assert!(e.contains("cannot read token file"), "{e}");
    assert_eq!(
        format!("{file:?}"),
        format!("TokenFile {{ path: {:?} }}", path)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tokens_are_checked() {
    assert!(check_token("abc.def-ghi_jkl~").is_ok());
    assert!(check_token("").unwrap_err().contains("empty"));
    assert!(check_token("a b").unwrap_err().contains("spaces"));
    assert!(check_token("a\u{1}b").unwrap_err().contains("control"));
}

/// The SCRAM client-first message, and the client nonce in it.
fn scram_first(x: &mut Exchange, user: &str) -> String {
    let first = String::from_utf8(send(x.step(None).unwrap())).unwrap();
    let prefix = format!("n,,n={user},r=");
    let nonce = first
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("client-first {first:?} does not start with {prefix:?}"));
    assert!(nonce.len() >= 16 && !nonce.contains(','), "{nonce}");
    nonce.to_string()
}

#[test]
fn scram_client_first_escapes_the_user_name() {
    for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
        let mut x = Exchange::start(&password(m, "a=b,c", "p")).unwrap();
        scram_first(&mut x, "a=3Db=2Cc");
    }
}

#[test]
fn scram_server_final_error_is_a_failed_login() {
    for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
        let mut x = Exchange::start(&password(m, "u", "p")).unwrap();
        let nonce = scram_first(&mut x, "u");
        let server_first = format!("r={nonce}srv,s=c2FsdA==,i=4096");
        let last = String::from_utf8(send(x.step(Some(server_first.as_bytes())).unwrap())).unwrap();
        assert!(
            last.starts_with(&format!("c=biws,r={nonce}srv,p=")),
            "{last}"
        );
        let e = x.step(Some(b"e=invalid-proof")).unwrap_err();
        assert_eq!(e, "the server rejected the login: e=invalid-proof", "{m}");
    }
}

#[test]
fn scram_wrong_server_signature_is_a_failed_login() {
    for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
        let mut x = Exchange::start(&password(m, "u", "p")).unwrap();
        let nonce = scram_first(&mut x, "u");
        let server_first = format!("r={nonce}srv,s=c2FsdA==,i=4096");
        x.step(Some(server_first.as_bytes())).unwrap();
        let e = x
            .step(Some(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
            .unwrap_err();
        assert!(e.contains("signature is wrong"), "{m}: {e}");
    }
}

#[test]
fn scram_server_nonce_must_extend_the_client_nonce() {
    let mut x = Exchange::start(&password(Mechanism::ScramSha256, "u", "p")).unwrap();
    scram_first(&mut x, "u");
    let e = x
        .step(Some(b"r=someoneelse,s=c2FsdA==,i=4096"))
        .unwrap_err();
    assert!(e.to_lowercase().contains("nonce"), "{e}");
}

#[test]
fn scram_refuses_absurd_iteration_counts() {
    let mut x = Exchange::start(&password(Mechanism::ScramSha512, "u", "p")).unwrap();
    let nonce = scram_first(&mut x, "u");
    let e = x
        .step(Some(
            format!("r={nonce}x,s=c2FsdA==,i=4000000000").as_bytes(),
        ))
        .unwrap_err();
    assert!(e.contains("4000000000") && e.contains("at most"), "{e}");
}

#[test]
fn malformed_scram_server_messages_fail_without_panicking() {
    for bad in [
        &b""[..],
        b"r",
        b"r=",
        b"r=abc,s",
        b"r=abc,,i=4096",
        b"r=abc,s=c2FsdA==",
        b"r=abc,s=c2FsdA==,i",
        b",,,",
        b"\xff\xfe,\x00",
    ] {
        let mut x = Exchange::start(&password(Mechanism::ScramSha256, "u", "p")).unwrap();
        scram_first(&mut x, "u");
        assert!(x.step(Some(bad)).is_err(), "server-first {bad:?}");
    }
    for bad in [&b""[..], b"v", b"e", b",v=abc", b"x=abc"] {
        let mut x = Exchange::start(&password(Mechanism::ScramSha512, "u", "p")).unwrap();
        let nonce = scram_first(&mut x, "u");
        let server_first = format!("r={nonce}srv,s=c2FsdA==,i=4096");
        x.step(Some(server_first.as_bytes())).unwrap();
        assert!(x.step(Some(bad)).is_err(), "server-final {bad:?}");
    }
}

/// rsasl's SCRAM panics when stepped after a failure or its end ("State machine in invalid
/// state"), and release builds abort on a panic: the exchange refuses instead.
#[test]
fn a_finished_or_failed_exchange_is_not_stepped_again() {
    let mut x = Exchange::start(&password(Mechanism::ScramSha256, "u", "p")).unwrap();
    let nonce = scram_first(&mut x, "u");
    assert!(x.step(Some(b"r=someoneelse,s=c2FsdA==,i=4096")).is_err());
    let server_first = format!("r={nonce}srv,s=c2FsdA==,i=4096");
    let e = x.step(Some(server_first.as_bytes())).unwrap_err();
    assert_eq!(e, "SCRAM-SHA-256 stepped after its exchange ended");
    let mut x = Exchange::start(&password(Mechanism::Plain, "u", "p")).unwrap();
    assert!(matches!(x.step(None).unwrap(), Step::SendLast(_)));
    assert!(x
        .step(Some(b""))
        .unwrap_err()
        .contains("after its exchange ended"));
}

#[test]
fn secrets_are_redacted_in_debug() {
    let sasl = password(Mechanism::ScramSha512, "alice", "hunter2");
    let shown = format!("{sasl:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("alice"),
        "{shown}"
    );
    let shown = format!("{:?}", token("tok-secret"));
    assert!(!shown.contains("tok-secret"), "{shown}");
    let x = Exchange::start(&sasl).unwrap();
    assert!(!format!("{x:?}").contains("hunter2"));
}
