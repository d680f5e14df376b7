//! End-to-end tests of `parse` / `load`: whole files in, `Config` or `ConfigError` out.

use super::*;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn ok(text: &str) -> Config {
    parse(text, "config.toml", &vars(&[])).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    match parse(text, "config.toml", &vars(&[])) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// A config with one cluster plus `extra` appended inside that cluster's table.
fn with_cluster(extra: &str) -> String {
    format!("[[clusters]]\nname = \"c\"\nbootstrap_servers = \"k:9092\"\n{extra}\n")
}

/// klag-exporter's README example, keys and layout unchanged (comments reworded).
const KLAG_README_EXAMPLE: &str = r#"[exporter]
poll_interval = "30s"
http_port = 8000
http_host = "0.0.0.0"
granularity = "partition"  # topic | partition

[exporter.timestamp_sampling]
enabled = true
cache_ttl = "60s"
max_concurrent_fetches = 10

[exporter.otel]
enabled = false
endpoint = "http://localhost:4317"
export_interval = "60s"

# optional tuning, left commented out:
# [exporter.performance]
# kafka_timeout = "30s"
# offset_fetch_timeout = "10s"
# max_concurrent_groups = 10
# max_concurrent_watermarks = 50

[[clusters]]
name = "production"
bootstrap_servers = "kafka1:9092,kafka2:9092"
group_whitelist = [".*"]
group_blacklist = []
topic_whitelist = [".*"]
topic_blacklist = ["__.*"]  # no internal topics

[clusters.consumer_properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "PLAIN"
"sasl.username" = "${KAFKA_USER}"
"sasl.password" = "${KAFKA_PASSWORD}"

[clusters.labels]
environment = "production"
datacenter = "us-east-1"
"#;

/// The test-stack guide's klag-config.toml, keys and layout unchanged (comments reworded).
const KLAG_TEST_STACK: &str = r#"[exporter]
poll_interval = "10s"        # collection period
http_port = 8000
http_host = "0.0.0.0"
granularity = "partition"    # per-partition series

[exporter.timestamp_sampling]
enabled = true               # time lag on
cache_ttl = "30s"            # 30s cache
max_concurrent_fetches = 10  # fetch parallelism

[[clusters]]
name = "test-cluster"
bootstrap_servers = "kafka:29092"
group_whitelist = [".*"]     # every group
topic_blacklist = ["^__.*"]  # skip internal topics

[clusters.labels]
environment = "test"         # on every series
"#;

const SECRET: &str = "hunter2-\"quoted\"\\slash";

#[test]
fn klag_readme_example_parses() {
    let env = vars(&[("KAFKA_USER", "svc-lag"), ("KAFKA_PASSWORD", SECRET)]);
    let c = parse(KLAG_README_EXAMPLE, "config.toml", &env).unwrap();
    let e = &c.exporter;
    assert_eq!(e.poll_interval, Duration::from_secs(30));
    assert_eq!((e.http_port, e.http_host.as_str()), (8000, "0.0.0.0"));
    assert_eq!(e.granularity, Granularity::Partition);
    let sampling = TimestampSampling {
        max_concurrent_fetches: 10,
        ..TimestampSampling::default()
    };
    assert_eq!(e.timestamp_sampling, sampling);
    assert_eq!(e.otel, OtelConfig::default());
    assert_eq!(e.performance, Performance::default());
    assert_eq!(c.clusters.len(), 1);
    let k = &c.clusters[0];
    assert_eq!(k.name, "production");
    assert_eq!(k.bootstrap_servers, ["kafka1:9092", "kafka2:9092"]);
    assert!(k.group_blacklist.is_empty());
    assert_eq!(k.topic_blacklist[0].as_str(), "__.*");
    assert_eq!(k.client.security_protocol, SecurityProtocol::SaslSsl);
    assert_eq!(k.consumer_properties["sasl.mechanism"], "PLAIN");
    assert_eq!(k.consumer_properties["sasl.username"], "svc-lag");
    assert_eq!(k.consumer_properties["sasl.password"], SECRET);
    assert!(k.client.unsupported.is_empty() && k.client.ignored.is_empty());
    assert_eq!(k.labels["environment"], "production");
    assert_eq!(k.labels["datacenter"], "us-east-1");
    assert!(c.unknown_keys.is_empty());
    assert!(c.warnings().is_empty());
    assert_eq!(c.source, "config.toml");
}

#[test]
fn klag_readme_example_needs_its_variables() {
    let e = parse(
        KLAG_README_EXAMPLE,
        "config.toml",
        &vars(&[("KAFKA_USER", "u")]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("config.toml: line 36: "), "{e}");
    assert!(e.contains("KAFKA_PASSWORD is not set"), "{e}");
}

#[test]
fn klag_test_stack_config_parses() {
    let c = ok(KLAG_TEST_STACK);
    assert_eq!(c.exporter.poll_interval, Duration::from_secs(10));
    assert_eq!(
        c.exporter.timestamp_sampling.cache_ttl,
        Duration::from_secs(30)
    );
    let k = &c.clusters[0];
    assert_eq!(
        (k.name.as_str(), k.bootstrap_servers.as_slice()),
        ("test-cluster", &["kafka:29092".to_owned()][..])
    );
    assert!(k.topic_allowed("orders") && !k.topic_allowed("__consumer_offsets"));
    assert!(k.group_allowed("anything"));
    assert_eq!(k.labels.len(), 1);
    assert!(c.unknown_keys.is_empty());
}

#[test]
fn large_cluster_tuning_parses() {
    let c = ok(&format!(
        "[exporter]\npoll_interval = \"60s\"\ngranularity = \"topic\"\n\
         [exporter.timestamp_sampling]\nenabled = false\n\
         [exporter.performance]\nkafka_timeout = \"15s\"\noffset_fetch_timeout = \"5s\"\n\
         max_concurrent_groups = 20\nmax_concurrent_watermarks = 100\n{}\
         group_whitelist = [\"^prod-.*\"]\ngroup_blacklist = [\"^test-.*\", \"^dev-.*\"]\n\
         topic_blacklist = [\"__.*\", \".*-dlq$\"]\n",
        with_cluster("")
    ));
    let p = &c.exporter.performance;
    assert_eq!(p.kafka_timeout, Duration::from_secs(15));
    assert_eq!(p.offset_fetch_timeout, Duration::from_secs(5));
    assert_eq!(
        (p.max_concurrent_groups, p.max_concurrent_watermarks),
        (20, 100)
    );
    assert_eq!(c.exporter.granularity, Granularity::Topic);
    assert!(!c.exporter.timestamp_sampling.enabled);
    let budget = ok(&format!(
        "[exporter.timestamp_sampling]\nfetch_requests_per_broker = 6\n{}",
        with_cluster("")
    ));
    assert_eq!(
        budget.exporter.timestamp_sampling.fetch_requests_per_broker,
        6
    );
    assert!(budget.unknown_keys.is_empty());
    let k = &c.clusters[0];
    assert!(k.group_allowed("prod-orders"));
    assert!(!k.group_allowed("test-orders") && !k.group_allowed("staging"));
    assert!(k.topic_allowed("orders") && !k.topic_allowed("orders-dlq"));
}

#[test]
fn defaults_when_sections_are_missing() {
    for text in [
        with_cluster(""),
        format!("[exporter]\n{}", with_cluster("")),
    ] {
        let c = ok(&text);
        assert_eq!(c.exporter, ExporterConfig::default());
        let e = &c.exporter;
        assert_eq!(e.poll_interval, Duration::from_secs(30));
        assert_eq!(e.http_port, 8000);
        assert_eq!(e.http_host, "0.0.0.0");
        assert_eq!(e.granularity, Granularity::Topic);
        assert!(e.timestamp_sampling.enabled);
        assert_eq!(e.timestamp_sampling.cache_ttl, Duration::from_secs(60));
        assert_eq!(e.timestamp_sampling.max_concurrent_fetches, 5);
        assert_eq!(e.timestamp_sampling.fetch_requests_per_broker, 2);
        assert!(!e.otel.enabled);
        assert_eq!(e.otel.endpoint, "http://localhost:4317");
        assert_eq!(e.otel.export_interval, Duration::from_secs(60));
        assert_eq!(e.performance.kafka_timeout, Duration::from_secs(30));
        assert_eq!(e.performance.offset_fetch_timeout, Duration::from_secs(10));
        assert_eq!(e.performance.max_concurrent_groups, 10);
        assert_eq!(e.performance.max_concurrent_watermarks, 50);
        let k = &c.clusters[0];
        let pats = |v: &[Regex]| v.iter().map(|r| r.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(pats(&k.group_whitelist), [".*"]);
        assert_eq!(pats(&k.topic_whitelist), [".*"]);
        assert!(k.group_blacklist.is_empty());
        assert_eq!(pats(&k.topic_blacklist), ["__.*"]);
        assert!(k.consumer_properties.is_empty() && k.labels.is_empty());
        assert_eq!(k.client, ClientProperties::default());
    }
    // A partially written section keeps the defaults of the keys it omits.
    let c = ok(&format!(
        "[exporter.performance]\nmax_concurrent_groups = 3\n{}",
        with_cluster("")
    ));
    assert_eq!(c.exporter.performance.max_concurrent_groups, 3);
    assert_eq!(c.exporter.performance.max_concurrent_watermarks, 50);
}

#[test]
fn error_messages_name_file_key_and_expectation() {
    let cluster = with_cluster("");
    let cases: Vec<(String, &str)> = vec![
        (
            format!("[exporter]\npoll_interval = \"30 parsecs\"\n{cluster}"),
            "config.toml: exporter.poll_interval: \"30 parsecs\" is not a duration, expected e.g. \"30s\", \"500ms\", \"2m\"",
        ),
        (
            format!("[exporter]\npoll_interval = 30\n{cluster}"),
            "config.toml: exporter.poll_interval: 30 is a number without a unit, expected a quoted duration with a unit, e.g. \"30s\", \"500ms\", \"2m\"",
        ),
        (
            format!("[exporter]\npoll_interval = \"0s\"\n{cluster}"),
            "config.toml: exporter.poll_interval: \"0s\" is zero, expected a duration greater than zero, e.g. \"30s\", \"500ms\", \"2m\"",
        ),
        (
            format!("[exporter.performance]\nkafka_timeout = 5\n{cluster}"),
            "config.toml: exporter.performance.kafka_timeout: 5 is a number without a unit",
        ),
        (
            format!("[exporter.timestamp_sampling]\ncache_ttl = true\n{cluster}"),
            "config.toml: exporter.timestamp_sampling.cache_ttl: true is not a duration",
        ),
        (
            format!("[exporter]\nhttp_port = 70000\n{cluster}"),
            "config.toml: exporter.http_port: 70000 is out of range, expected a whole number from 0 to 65535",
        ),
        (
            format!("[exporter]\nhttp_port = \"eighty\"\n{cluster}"),
            "config.toml: exporter.http_port: \"eighty\" is not a whole number",
        ),
        (
            format!("[exporter]\ngranularity = \"cluster\"\n{cluster}"),
            "config.toml: exporter.granularity: \"cluster\" is not a granularity, expected \"topic\" or \"partition\"",
        ),
        (
            format!("[exporter]\nmax_response_memory = \"lots\"\n{cluster}"),
            "config.toml: exporter.max_response_memory: \"lots\" is not a byte size, expected a whole number with a unit, e.g. \"128MiB\", \"512KiB\", \"1GiB\"",
        ),
        (
            format!("[exporter]\nmax_response_memory = \"128\"\n{cluster}"),
            "config.toml: exporter.max_response_memory: \"128\" is not a byte size",
        ),
        (
            format!("[exporter]\nmax_response_memory = \"512KiB\"\n{cluster}"),
            "config.toml: exporter.max_response_memory: \"512KiB\" is too small, expected at least 1MiB",
        ),
        (
            format!("[exporter]\nmax_response_memory = -5\n{cluster}"),
            "config.toml: exporter.max_response_memory: -5 is negative",
        ),
        (
            format!("[exporter]\nmax_response_memory = true\n{cluster}"),
            "config.toml: exporter.max_response_memory: true is not a byte size",
        ),
        (
            format!("[exporter.timestamp_sampling]\nenabled = \"yes\"\n{cluster}"),
            "config.toml: exporter.timestamp_sampling.enabled: \"yes\" is not a boolean, expected true or false",
        ),
        (
            format!("[exporter.performance]\nmax_concurrent_groups = 0\n{cluster}"),
            "config.toml: exporter.performance.max_concurrent_groups: 0 is out of range, expected a whole number from 1",
        ),
        (
            format!("[exporter.timestamp_sampling]\nfetch_requests_per_broker = 0\n{cluster}"),
            "config.toml: exporter.timestamp_sampling.fetch_requests_per_broker: 0 would never fetch a timestamp, expected at least 1 (use `enabled = false` to fetch none)",
        ),
        (
            format!("[exporter.timestamp_sampling]\nmax_concurrent_fetches = 0\n{cluster}"),
            "config.toml: exporter.timestamp_sampling.max_concurrent_fetches: 0 would never fetch",
        ),
        (
            format!("exporter = 5\n{cluster}"),
            "config.toml: exporter: 5 is not a table, expected a [exporter] section",
        ),
        (
            "[exporter]\n".to_owned(),
            "config.toml: clusters: no cluster is configured, expected at least one [[clusters]]",
        ),
        ("clusters = []\n".to_owned(), "config.toml: clusters: the list is empty"),
        (
            "[clusters]\nname = \"a\"\n".to_owned(),
            "config.toml: clusters: a table is not a list of clusters, expected [[clusters]] sections",
        ),
        (
            "[[clusters]]\nbootstrap_servers = \"k:1\"\n".to_owned(),
            "config.toml: clusters[0].name: is missing, expected the cluster's name",
        ),
        (
            "[[clusters]]\nname = \" \"\nbootstrap_servers = \"k:1\"\n".to_owned(),
            "config.toml: clusters[0].name: is empty, expected a non-empty string",
        ),
        (
            format!("{cluster}[[clusters]]\nname = \"c\"\nbootstrap_servers = \"k2:9092\"\n"),
            "config.toml: clusters[1].name: \"c\" is already the name of another cluster, expected a name unique",
        ),
        (
            "[[clusters]]\nname = \"c\"\n".to_owned(),
            "config.toml: clusters[0].bootstrap_servers: is missing, expected a comma-separated host:port list",
        ),
        (
            "[[clusters]]\nname = \"c\"\nbootstrap_servers = \"\"\n".to_owned(),
            "config.toml: clusters[0].bootstrap_servers: is empty, expected a comma-separated host:port list",
        ),
        (
            "[[clusters]]\nname = \"c\"\nbootstrap_servers = \" , \"\n".to_owned(),
            "config.toml: clusters[0].bootstrap_servers: is empty",
        ),
        (
            "[[clusters]]\nname = \"c\"\nbootstrap_servers = \"k1:9092,k2\"\n".to_owned(),
            "config.toml: clusters[0].bootstrap_servers: \"k2\" is not host:port, expected host:port with a port from 1 to 65535",
        ),
        (
            "[[clusters]]\nname = \"c\"\nbootstrap_servers = [\"k1:9092\", \"k2:x\"]\n".to_owned(),
            "config.toml: clusters[0].bootstrap_servers[1]: \"k2:x\" is not host:port",
        ),
        (
            "[[clusters]]\nname = \"c\"\nbootstrap_servers = []\n".to_owned(),
            "config.toml: clusters[0].bootstrap_servers: is empty",
        ),
        (
            format!("{cluster}[[clusters]]\nname = \"d\"\nbootstrap_servers = \"k:1\"\ngroup_whitelist = [\"(unclosed\"]\n"),
            "config.toml: clusters[1].group_whitelist[0]: \"(unclosed\" is not a valid regex: regex parse error",
        ),
        (
            with_cluster("topic_blacklist = [\"ok\", 5]"),
            "config.toml: clusters[0].topic_blacklist[1]: 5 is not a string, expected a quoted string",
        ),
        (
            with_cluster("group_blacklist = 5"),
            "config.toml: clusters[0].group_blacklist: 5 is not a list of regexes",
        ),
        (
            with_cluster("[clusters.labels]\n\"data-center\" = \"x\""),
            "config.toml: clusters[0].labels.data-center: label name \"data-center\" is not a valid Prometheus label name, expected a name matching [a-zA-Z_][a-zA-Z0-9_]*",
        ),
        (
            with_cluster("[clusters.labels]\n9lives = \"x\""),
            "config.toml: clusters[0].labels.9lives: label name \"9lives\" is not a valid Prometheus label name",
        ),
        (
            with_cluster("[clusters.labels]\n__meta = \"x\""),
            "config.toml: clusters[0].labels.__meta: label name \"__meta\" starts with __",
        ),
        (
            with_cluster("[clusters.labels]\ntopic = \"x\""),
            "config.toml: clusters[0].labels.topic: label name \"topic\" is one of tidemark's own labels, expected a name other than cluster_name, group, topic",
        ),
        (
            with_cluster("[clusters.labels]\nteam = [\"a\"]"),
            "config.toml: clusters[0].labels.team: an array is not a label value",
        ),
        (
            with_cluster("[clusters.consumer_properties]\n\"security.protocol\" = \"TLS\""),
            "config.toml: clusters[0].consumer_properties.\"security.protocol\": \"TLS\" is not a security protocol, expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ),
        (
            with_cluster("[clusters.consumer_properties]\n\"request.timeout.ms\" = \"soon\""),
            "config.toml: clusters[0].consumer_properties.\"request.timeout.ms\": \"soon\" is not a timeout in milliseconds",
        ),
        (
            with_cluster("[clusters.consumer_properties]\n\"sasl.password\" = [\"a\"]"),
            "config.toml: clusters[0].consumer_properties.\"sasl.password\": is an array, expected a string, number or boolean",
        ),
        (
            with_cluster("[clusters.consumer_properties]\n\"client.id\" = \"a\"\nclient.id = \"b\""),
            "config.toml: clusters[0].consumer_properties.\"client.id\": is given twice",
        ),
        (
            with_cluster("consumer_properties = \"x\""),
            "config.toml: clusters[0].consumer_properties: \"x\" is not a table",
        ),
    ];
    for (text, want) in cases {
        let got = err(&text);
        assert!(
            got.starts_with(want),
            "\n got: {got}\nwant: {want}…\nfile:\n{text}"
        );
    }
}

#[test]
fn syntax_errors_keep_line_and_column_of_the_file_as_written() {
    let text = "[exporter]\npoll_interval = \"30s\"\nhttp_port = = 8000\n";
    let e = parse(text, "config.toml", &vars(&[])).unwrap_err();
    match &e {
        ConfigError::Syntax { line, column, .. } => assert_eq!((*line, *column), (3, 13)),
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.starts_with("config.toml: line 3, column 13: TOML syntax error: "),
        "{msg}"
    );
    assert!(
        msg.contains("3 | http_port = = 8000\n  |             ^"),
        "{msg}"
    );

    // Positions after a substitution are those of the original text, and the value
    // (a secret) never shows.
    let text = "[[clusters]]\nname = \"${LONG}\" oops\n";
    let e = parse(
        text,
        "c.toml",
        &vars(&[("LONG", "s3cr3t-value-that-is-long")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("c.toml: line 2, column 18: TOML syntax error"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t"), "{e}");
    assert!(e.contains("name = \"${LONG}\" oops"), "{e}");

    // A line that may hold a secret written in the file itself is not echoed.
    let e = err("[[clusters]]\n\"sasl.password\" = \"pa\"ss\"\n");
    assert!(e.starts_with("config.toml: line 2, column "), "{e}");
    assert!(!e.contains("pa\"ss") && e.contains("not shown"), "{e}");

    let e = err(&format!(
        "{}\n[exporter]\nhttp_port = 1\nhttp_port = 2\n",
        with_cluster("")
    ));
    assert!(
        e.contains("line 8, column 1") && e.contains("duplicate key"),
        "{e}"
    );
}

#[test]
fn substitution() {
    let text = format!(
        "[exporter]\nhttp_port = ${{PORT:-8000}}\nhttp_host = \"${{HOST:-127.0.0.1}}\"\n\
         # poll_interval = \"${{NEVER_SET}}\"\n{}",
        with_cluster("[clusters.consumer_properties]\n\"client.id\" = \"${CLIENT}\"")
    );
    let c = parse(&text, "config.toml", &vars(&[("CLIENT", "tm-1")])).unwrap();
    assert_eq!(c.exporter.http_port, 8000);
    assert_eq!(c.exporter.http_host, "127.0.0.1");
    assert_eq!(c.clusters[0].client.client_id.as_deref(), Some("tm-1"));
    let c = parse(
        &text,
        "config.toml",
        &vars(&[("CLIENT", "x"), ("PORT", "9100"), ("HOST", "::")]),
    )
    .unwrap();
    assert_eq!(
        (c.exporter.http_port, c.exporter.http_host.as_str()),
        (9100, "::")
    );

    let e = parse(&text, "config.toml", &vars(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "config.toml: line 9: environment variable CLIENT is not set, expected CLIENT to be set, \
         or a default written as ${CLIENT:-default}"
    );
    // klag-exporter's optional form and the literal escape.
    let c = ok(&with_cluster(
        "[clusters.labels]\nteam = \"${?TEAM}\"\nnote = \"$${TEAM}\"",
    ));
    assert_eq!(c.clusters[0].labels["team"], "");
    assert_eq!(c.clusters[0].labels["note"], "${TEAM}");
    // A substituted port that is not a number is a typed error at its key.
    let e = parse(
        "[exporter]\nhttp_port = \"${PORT}\"\n",
        "f",
        &vars(&[("PORT", "x")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("f: exporter.http_port: \"x\" is not a whole number"),
        "{e}"
    );
}

#[test]
fn filters_match_unanchored_whitelist_then_blacklist() {
    let c = ok(&with_cluster(
        "group_whitelist = [\"prod\", \"^billing-\"]\ngroup_blacklist = [\"-test$\"]\n\
         topic_whitelist = []\ntopic_blacklist = \"x\"",
    ));
    let k = &c.clusters[0];
    assert!(k.group_allowed("prod-orders"));
    assert!(
        k.group_allowed("preprod-orders"),
        "unanchored: matches anywhere"
    );
    assert!(k.group_allowed("billing-eu"));
    assert!(!k.group_allowed("eu-billing-x"));
    assert!(!k.group_allowed("prod-orders-test"), "blacklist wins");
    assert!(!k.group_allowed("staging"));
    assert!(
        !k.topic_allowed("anything"),
        "an empty whitelist allows nothing"
    );
    assert_eq!(
        k.topic_blacklist.len(),
        1,
        "a single string is a one-item list"
    );

    let mut k = ClusterSettings::new("n", vec!["k:1".to_owned()]);
    assert!(k.group_allowed("g") && k.topic_allowed("__consumer_offsets"));
    k.topic_blacklist = vec![Regex::new("^__").unwrap()];
    assert!(!k.topic_allowed("__consumer_offsets") && k.topic_allowed("a__b"));
}

#[test]
fn bootstrap_forms() {
    let c = ok("[[clusters]]\nname = \"c\"\nbootstrap_servers = \" k1:9092 , SSL://k2:9093,[::1]:9094, \"\n");
    assert_eq!(
        c.clusters[0].bootstrap_servers,
        ["k1:9092", "k2:9093", "[::1]:9094"]
    );
    let c = ok("[[clusters]]\nname = \"c\"\nbootstrap_servers = [\"k1:9092\", \"k2:9092\"]\n");
    assert_eq!(c.clusters[0].bootstrap_servers, ["k1:9092", "k2:9092"]);
}

#[test]
fn labels_accept_scalars() {
    let c = ok(&with_cluster(
        "[clusters.labels]\nenvironment = \"prod\"\ncost_center = 12345\ncritical = true\n_x = \"\"",
    ));
    let l = &c.clusters[0].labels;
    assert_eq!(l["cost_center"], "12345");
    assert_eq!(l["critical"], "true");
    assert_eq!(l["_x"], "");
}

#[test]
fn consumer_properties_are_classified_and_kept() {
    let c = ok(&with_cluster(
        "[clusters.consumer_properties]\n\"security.protocol\" = \"ssl\"\n\"client.id\" = \"tidemark\"\n\
         \"socket.timeout.ms\" = 20000\n\"group.id\" = \"lag\"\n\"enable.auto.commit\" = false\n\
         \"ssl.endpoint.identification.algorithm\" = \"https\"\n\"sasl.kerberos.service.name\" = \"kafka\"\n\
         \"linger.ms\" = 5\nfetch.wait.max.ms = 100",
    ));
    let k = &c.clusters[0];
    assert_eq!(k.client.security_protocol, SecurityProtocol::Ssl);
    assert_eq!(k.client.client_id.as_deref(), Some("tidemark"));
    assert_eq!(k.client.request_timeout, Some(Duration::from_secs(20)));
    assert_eq!(
        k.client.ignored,
        ["enable.auto.commit", "fetch.wait.max.ms", "group.id"]
    );
    assert_eq!(
        k.client.unsupported,
        ["linger.ms", "sasl.kerberos.service.name"]
    );
    // Every key stays, numbers and booleans as strings; unquoted dotted keys flattened.
    assert_eq!(k.consumer_properties.len(), 9);
    assert_eq!(k.consumer_properties["socket.timeout.ms"], "20000");
    assert_eq!(k.consumer_properties["enable.auto.commit"], "false");
    assert_eq!(k.consumer_properties["fetch.wait.max.ms"], "100");
    assert_eq!(
        k.consumer_properties["ssl.endpoint.identification.algorithm"],
        "https"
    );
    let w = c.warnings();
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0],
        "config.toml: cluster \"c\": consumer_properties not supported by tidemark, ignored: \
         linger.ms, sasl.kerberos.service.name"
    );
}

#[test]
fn secrets_never_appear_in_rendered_config_or_debug() {
    let text = format!(
        "[exporter.otel]\nendpoint = \"https://user:otelpass@collector:4317/v1\"\n{}",
        with_cluster(
            "[clusters.consumer_properties]\n\"sasl.username\" = \"${USER}\"\n\
             \"sasl.password\" = \"${PASSWORD}\"\n\"ssl.key.password\" = \"keypass\"\n\
             \"sasl.oauthbearer.client.secret\" = \"oauthsecret\"\n\
             \"sasl.oauthbearer.config\" = \"principal=x token=tok123\"",
        )
    );
    let c = parse(
        &text,
        "config.toml",
        &vars(&[("USER", "alice"), ("PASSWORD", SECRET)]),
    )
    .unwrap();
    assert_eq!(c.clusters[0].consumer_properties["sasl.password"], SECRET);
    let shown = [
        c.to_redacted_toml(),
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{:?}", c.clusters[0]),
        format!("{:?}", c.exporter),
    ];
    for out in &shown {
        for secret in ["hunter2", "keypass", "oauthsecret", "tok123", "otelpass"] {
            assert!(!out.contains(secret), "{secret} leaked:\n{out}");
        }
    }
    assert!(
        shown[0].contains("\"sasl.password\" = \"***redacted***\""),
        "{}",
        shown[0]
    );
    assert!(shown[0].contains("\"sasl.username\" = \"alice\""));
    assert!(
        shown[1].contains("\"sasl.password\": \"***redacted***\""),
        "{}",
        shown[1]
    );
    assert!(
        shown[1].contains("https://***redacted***@collector:4317/v1"),
        "{}",
        shown[1]
    );
}

#[test]
fn rendered_config_reads_back_to_the_same_config() {
    let env = vars(&[("KAFKA_USER", "u"), ("KAFKA_PASSWORD", "p")]);
    let extra = format!(
        "{}\n[[clusters]]\nname = \"second\"\nbootstrap_servers = [\"k9:1\"]\n\
         group_whitelist = [\"^a'b\", \"x\\\\.y\"]\nsurprise = 1\n\
         [clusters.labels]\nteam = \"core\"\nnote = \"$${{LIT}}\"\n",
        KLAG_README_EXAMPLE.replace("poll_interval = \"30s\"", "poll_interval = \"1m30s\"")
    );
    let c = parse(&extra, "orig.toml", &env).unwrap();
    let rendered = c.to_redacted_toml();
    let back =
        parse(&rendered, "rendered.toml", &vars(&[])).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(back.exporter, c.exporter);
    assert_eq!(back.exporter.poll_interval, Duration::from_secs(90));
    // Not set: three poll intervals.
    assert_eq!(back.exporter.staleness_threshold, Duration::from_secs(270));
    assert_eq!(back.clusters.len(), 2);
    assert_eq!(back.clusters[1].labels["note"], "${LIT}");
    assert_eq!(back.clusters[1].group_whitelist[1].as_str(), "x\\.y");
    for (a, b) in c.clusters.iter().zip(&back.clusters) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.bootstrap_servers, b.bootstrap_servers);
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.client, b.client);
        for (x, y) in [
            (&a.group_whitelist, &b.group_whitelist),
            (&a.group_blacklist, &b.group_blacklist),
            (&a.topic_whitelist, &b.topic_whitelist),
            (&a.topic_blacklist, &b.topic_blacklist),
        ] {
            let x: Vec<_> = x.iter().map(Regex::as_str).collect();
            let y: Vec<_> = y.iter().map(Regex::as_str).collect();
            assert_eq!(x, y);
        }
    }
    assert_eq!(
        back.clusters[0].consumer_properties["sasl.password"],
        REDACTED
    );
    assert!(
        back.unknown_keys.is_empty(),
        "unknown keys are not rendered"
    );
    assert!(
        rendered.contains("# ignored unknown keys: clusters[1].surprise"),
        "{rendered}"
    );
}

#[test]
fn unknown_keys_are_collected_not_fatal() {
    let text = format!(
        "log_level = \"info\"\n[exporter]\nstaleness_threshold = \"90s\"\npoll_intervall = \"5s\"\n\
         [exporter.timestamp_sampling]\nmode = \"message\"\n\
         [exporter.performance]\nclient_recycle_interval = 0\n\
         [exporter.leadership]\nenabled = true\nlease_name = \"x\"\nrenew_deadline = 3\n\
         [exporter.otel]\nenabled = true\ninsecure = true\n{}\
         [clusters.aws_msk_iam]\nregion = \"eu-west-1\"\n[clusters.labels]\nteam = \"a\"\n",
        with_cluster("\"odd key\" = 1")
    );
    let c = ok(&text);
    assert_eq!(
        c.unknown_keys,
        [
            "clusters[0].\"odd key\"",
            "clusters[0].aws_msk_iam",
            "exporter.leadership.renew_deadline",
            "exporter.otel.insecure",
            "exporter.performance.client_recycle_interval",
            "exporter.poll_intervall",
            "exporter.timestamp_sampling.mode",
            "log_level",
        ]
    );
    assert_eq!(
        c.exporter.poll_interval,
        Duration::from_secs(30),
        "the typo is ignored"
    );
    assert_eq!(c.exporter.staleness_threshold, Duration::from_secs(90));
    let w = c.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("config.toml: ignoring keys tidemark does not use"),
        "{}",
        w[0]
    );
    assert!(
        w[0].ends_with(
            ": clusters[0].\"odd key\", clusters[0].aws_msk_iam, exporter.leadership.renew_deadline, \
             exporter.otel.insecure, exporter.performance.client_recycle_interval, \
             exporter.poll_intervall, exporter.timestamp_sampling.mode, log_level"
        ),
        "{}",
        w[0]
    );
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = std::env::temp_dir().join(format!("tidemark-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("klag-config.toml");
    std::fs::write(&path, format!("\u{feff}{KLAG_TEST_STACK}")).unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.source, path.display().to_string());
    assert_eq!(c.clusters[0].name, "test-cluster");

    std::fs::write(&path, "[exporter]\npoll_interval = \"soon\"\n").unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: exporter.poll_interval: ", path.display())),
        "{e}"
    );

    let missing = dir.join("absent.toml");
    let e = load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e
        .to_string()
        .starts_with(&format!("{}: cannot read the file: ", missing.display())));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn never_panics_on_truncated_or_odd_input() {
    let env = vars(&[("KAFKA_USER", "ü"), ("KAFKA_PASSWORD", "p\"\\'\n")]);
    let text = format!("{KLAG_README_EXAMPLE}\n[[clusters]]\nname = 'ñ'\nbootstrap_servers = \"\"\"é:1\"\"\"\n# ${{\n");
    for (i, _) in text.char_indices() {
        let _ = parse(&text[..i], "t.toml", &env);
        let _ = parse(&text[i..], "t.toml", &env);
    }
}

#[test]
fn max_response_memory_reads_byte_sizes_and_defaults_to_128_mib() {
    let cluster = with_cluster("");
    let c = ok(&cluster);
    assert_eq!(c.exporter.max_response_memory, 128 << 20);
    for (value, want) in [
        ("\"32MiB\"", 32u64 << 20),
        ("\"1 GiB\"", 1 << 30),
        ("\"100MB\"", 100_000_000),
        ("2097152", 2 << 20),
    ] {
        let c = ok(&format!(
            "[exporter]\nmax_response_memory = {value}\n{cluster}"
        ));
        assert_eq!(c.exporter.max_response_memory, want, "{value}");
    }
}

#[test]
fn strict_problems_name_file_line_and_key() {
    let c = parse(
        "[exporter]\npoll_intervall = \"5s\"\n\n[[clusters]]\nname = \"a\"\nbootstrap_servers = \"k:9092\"\n\
         [clusters.consumer_properties]\n\"sasl.kerberos.service.name\" = \"kafka\"\n",
        "strict.toml",
        &|_: &str| None,
    )
    .expect("valid apart from what strict mode refuses");
    assert_eq!(
        c.strict_problems(),
        [
            "strict.toml:2: exporter.poll_intervall: unknown key",
            "strict.toml:8: clusters[0].consumer_properties.\"sasl.kerberos.service.name\": consumer property tidemark does not support",
        ]
    );
    let clean = parse(
        "[[clusters]]\nname = \"a\"\nbootstrap_servers = \"k:9092\"\n",
        "ok.toml",
        &|_: &str| None,
    )
    .expect("valid");
    assert!(clean.strict_problems().is_empty());
}

#[test]
fn labels_tidemark_puts_on_its_own_series_are_reserved() {
    for name in ["broker", "api", "reason", "item", "le"] {
        let text = format!(
            "[[clusters]]\nname = \"a\"\nbootstrap_servers = \"k:9092\"\n[clusters.labels]\n{name} = \"x\"\n"
        );
        let err = parse(&text, "l.toml", &|_: &str| None).expect_err(name);
        assert!(err.to_string().contains("tidemark's own labels"), "{err}");
    }
}
