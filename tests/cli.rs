//! The `tidemark` binary's command line: what goes to stdout (command output only) and what
//! goes to stderr (logs), as a CI step or a shell redirect sees it.

use std::process::{Command, Output};

fn tidemark(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    cmd.args(args).env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run tidemark")
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tidemark-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// A valid config with a typo'd key (a warning, not an error, by default) and a secret.
const CONFIG: &str = r#"
[exporter]
poll_intervall = "5s"
http_host = "127.0.0.1"
http_port = 8000

[[clusters]]
name = "prod"
bootstrap_servers = "kafka-1:9092,kafka-2:9092"
[clusters.consumer_properties]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "PLAIN"
"sasl.username" = "exporter"
"sasl.password" = "hunter2-secret"
"#;

#[test]
fn check_config_prints_only_toml_on_stdout_and_it_round_trips() {
    let path = temp_file("typo.toml", CONFIG);
    let out = tidemark(&["--check-config", path.to_str().expect("utf-8 path")], &[]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    // The warning about the typo is a log line: on stderr, without colour (not a terminal).
    assert!(stderr.contains("poll_intervall"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escapes in piped logs: {stderr:?}"
    );
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"));
    let parsed: toml::Table = stdout
        .parse()
        .unwrap_or_else(|e| panic!("stdout is not TOML: {e}\n{stdout}"));
    assert!(parsed.contains_key("clusters"), "{stdout}");
    // Fed back, the resolved config is valid and resolves to itself.
    let again = temp_file("resolved.toml", &stdout);
    let out2 = tidemark(
        &["--check-config", again.to_str().expect("utf-8 path")],
        &[],
    );
    assert!(out2.status.success(), "{out2:?}");
    let stdout2 = String::from_utf8(out2.stdout).expect("utf-8 stdout");
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&stdout2), body(&stdout));
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let path = temp_file("typo-json.toml", CONFIG);
    let out = tidemark(
        &[
            "--log-format",
            "json",
            "--check-config",
            path.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    let out = tidemark(&["--log-format", "xml", "--version"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("xml"));
}

#[test]
fn strict_refuses_a_typo_naming_file_and_line() {
    let path = temp_file("strict.toml", CONFIG);
    let file = path.to_str().expect("utf-8 path");
    for (args, env) in [
        (vec!["--strict", "--check-config", file], vec![]),
        (
            vec!["--check-config", file],
            vec![("TIDEMARK_STRICT", "true")],
        ),
        // Before a subcommand too: `--strict` takes a value only as `--strict=VALUE`.
        (vec!["--strict", "lag", "-c", file], vec![]),
    ] {
        let out = tidemark(&args, &env);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
        assert!(
            stderr.contains(&format!("{file}:3: exporter.poll_intervall: unknown key")),
            "{stderr}"
        );
    }
    // Without it the same file is valid (klag-exporter compatibility: unknown keys warn).
    let out = tidemark(&["--strict=false", "--check-config", file], &[]);
    assert!(out.status.success(), "{out:?}");
}
