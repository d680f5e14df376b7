//! `tidemark lag`, the built binary, against the real broker: every value it prints is
//! compared with what the workload wrote (its ledger), never with tidemark's own reads.
//!
//! * `--bootstrap … --json`: every group × partition's committed offset, high watermark,
//!   lag and exact time lag; groups and rows worst first; `--group`;
//! * the human table: the same rows;
//! * exit statuses: 1 over `--max-lag-seconds` / `--max-lag`, 0 under them, 3 when nothing
//!   listens, 2 for usage errors;
//! * `--config FILE` with `--cluster NAME`, and a file with a dead cluster beside a live one;
//! * `--watch`: one JSON document per read into a pipe, until SIGINT;
//! * passwords from flags or the environment never printed.

use tidemark_testkit as common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::broker::free_port;
use common::truth::{self, Window};
use common::workload::{fill, now_ms};
use common::{Broker, Codec, Workload};
use serde_json::Value;

/// Runs the binary with `args`; returns its output and the window it ran in.
async fn tidemark(args: Vec<String>) -> (Output, Window) {
    let start_ms = now_ms();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .args(&args)
            .env_remove("TIDEMARK_SASL_PASSWORD")
            .env("NO_COLOR", "1")
            .output()
            .expect("run tidemark")
    })
    .await
    .expect("join");
    let end_ms = now_ms();
    (out, Window { start_ms, end_ms })
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

/// The groups the workload commits for, from worst to best by construction:
///
/// | group | partitions (committed → age of that record when written, lag) |
/// |---|---|
/// | lag-old | orders-0 @2 (880 s, 28), orders-1 @5 (750 s, 25), orders-3 @10 (500 s, 20), orders-2 caught up |
/// | lag-mid | orders-2 @28 (420 s, 2), orders-3 @25 (350 s, 5) |
/// | lag-young-big | events-0 @0 (30 s, 12), events-1 @3 (22 s, 9) |
/// | lag-caught-up | orders-0 and events-1 at their high watermarks |
async fn workload(w: &mut Workload) {
    let now = now_ms();
    w.create_topic("orders", 4).await;
    w.create_topic("events", 2).await;
    for p in 0..4 {
        // Record o of partition p is 900 − 100p − 10o seconds old.
        let base = now - 900_000 + i64::from(p) * 100_000;
        fill(w, "orders", p, 30, 4, &[Codec::None], |o| base + o * 10_000).await;
    }
    for p in 0..2 {
        // Record o of partition p is 30 − 5p − o seconds old.
        let base = now - 30_000 + i64::from(p) * 5_000;
        fill(w, "events", p, 12, 3, &[Codec::Gzip], |o| base + o * 1_000).await;
    }
    let commits: [(&str, &[Commit]); 4] = [
        (
            "lag-old",
            &[
                ("orders", 0, 2),
                ("orders", 1, 5),
                ("orders", 3, 10),
                ("orders", 2, 30),
            ],
        ),
        ("lag-mid", &[("orders", 2, 28), ("orders", 3, 25)]),
        ("lag-young-big", &[("events", 0, 0), ("events", 1, 3)]),
        ("lag-caught-up", &[("orders", 0, 30), ("events", 1, 12)]),
    ];
    for (group, offsets) in commits {
        w.commit_offsets(group, offsets).await;
    }
}

/// (topic, partition, committed offset)
type Commit<'a> = (&'a str, i32, i64);

/// What the ledger says every group × partition must show, worst first by the ledger's
/// own values (time lag ranges of neighbours must not overlap, so the order is decided
/// by the truth, not by how the window fell).
struct Expected {
    /// group → rows, worst first.
    groups: BTreeMap<String, Vec<truth::Row>>,
}

impl Expected {
    fn new(ledger: &common::Ledger, window: Window) -> Self {
        let mut groups: BTreeMap<String, Vec<truth::Row>> = BTreeMap::new();
        for row in truth::rows(ledger, window) {
            groups.entry(row.group.clone()).or_default().push(row);
        }
        for rows in groups.values_mut() {
            rows.sort_by(|a, b| {
                worse(b)
                    .total_cmp(&worse(a))
                    .then_with(|| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)))
            });
            for pair in rows.windows(2) {
                assert!(
                    pair[0].lag_seconds.0 > pair[1].lag_seconds.1 || pair[1].lag == 0,
                    "the workload must separate its rows' time lags: {pair:?}"
                );
            }
        }
        Expected { groups }
    }

    /// Group names, worst first.
    fn group_order(&self) -> Vec<String> {
        let mut names: Vec<(&String, f64)> = self
            .groups
            .iter()
            .map(|(g, rows)| (g, rows.iter().map(worse).fold(0.0, f64::max)))
            .collect();
        names.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        names.into_iter().map(|(g, _)| g.clone()).collect()
    }
}

/// A row's rank for "worst first": its time lag (the middle of its range), 0 caught up.
fn worse(r: &truth::Row) -> f64 {
    if r.lag == 0 {
        0.0
    } else {
        (r.lag_seconds.0 + r.lag_seconds.1) / 2.0
    }
}

/// Every discrepancy between one cluster of the JSON document and the ledger.
fn check_json(cluster: &Value, expected: &Expected, only: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    let groups = cluster["groups"].as_array().expect("groups");
    let shown: Vec<&str> = groups
        .iter()
        .map(|g| g["group"].as_str().expect("group name"))
        .collect();
    let want: Vec<String> = expected
        .group_order()
        .into_iter()
        .filter(|g| only.is_empty() || only.contains(&g.as_str()))
        .collect();
    if shown != want {
        bad.push(format!("groups {shown:?}, want {want:?} (worst first)"));
    }
    for g in groups {
        let name = g["group"].as_str().unwrap_or_default();
        let Some(rows) = expected.groups.get(name) else {
            bad.push(format!("group {name} is not the workload's"));
            continue;
        };
        let parts = g["partitions"].as_array().expect("partitions");
        let keys: Vec<(String, i64)> = parts
            .iter()
            .map(|p| {
                (
                    p["topic"].as_str().unwrap_or_default().to_owned(),
                    p["partition"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        let want_keys: Vec<(String, i64)> = rows
            .iter()
            .map(|r| (r.topic.clone(), i64::from(r.partition)))
            .collect();
        if keys != want_keys {
            bad.push(format!(
                "{name}: rows {keys:?}, want {want_keys:?} (worst first)"
            ));
        }
        for (p, r) in parts.iter().zip(rows) {
            let at = format!("{name} {}-{}", r.topic, r.partition);
            for (field, want) in [
                ("committed", r.committed),
                ("high_watermark", r.high),
                ("lag", r.lag),
            ] {
                if p[field].as_i64() != Some(want) {
                    bad.push(format!("{at}: {field} {}, want {want}", p[field]));
                }
            }
            let (lo, hi) = r.lag_seconds;
            match p["lag_seconds"].as_f64() {
                Some(s) if r.lag == 0 && s == 0.0 => {}
                Some(s) if r.lag > 0 && (lo..=hi).contains(&s) => {}
                other => bad.push(format!(
                    "{at}: lag_seconds {other:?}, want within [{lo:.3}, {hi:.3}]"
                )),
            }
            // The workload commits without joining: no member.
            for field in ["member_client_id", "member_host"] {
                if !p[field].is_null() {
                    bad.push(format!("{at}: {field} {}, want null", p[field]));
                }
            }
        }
        let max_lag = rows.iter().map(|r| r.lag).max().unwrap_or(0);
        if g["max_lag"].as_i64() != Some(max_lag) {
            bad.push(format!("{name}: max_lag {}, want {max_lag}", g["max_lag"]));
        }
        let worst = &rows[0];
        let (lo, hi) = if worst.lag == 0 {
            (0.0, 0.0)
        } else {
            worst.lag_seconds
        };
        match g["max_lag_seconds"].as_f64() {
            Some(s) if (lo..=hi).contains(&s) => {}
            other => bad.push(format!(
                "{name}: max_lag_seconds {other:?}, want within [{lo:.3}, {hi:.3}]"
            )),
        }
    }
    bad
}

fn parse_json(out: &Output) -> Value {
    let text = stdout(out);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{text}"))
}

/// `tidemark lag --bootstrap <bootstrap> <more>`.
async fn lag_at(bootstrap: &str, more: &[&str]) -> (Output, Window) {
    let mut list = args(&["lag", "--bootstrap", bootstrap]);
    list.extend(args(more));
    tidemark(list).await
}

/// A broker with [`workload`] written to it.
async fn started() -> (Broker, Workload) {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    workload(&mut w).await;
    (broker, w)
}

#[tokio::test(flavor = "multi_thread")]
async fn json_has_every_value_of_the_ledger_worst_first() {
    let (broker, w) = started().await;
    let (out, window) = lag_at(&broker.bootstrap, &["--json"]).await;
    assert_eq!(code(&out), 0, "{out:?}");
    let doc = parse_json(&out);
    let expected = Expected::new(w.ledger(), window);
    assert_eq!(
        expected.group_order(),
        ["lag-old", "lag-mid", "lag-young-big", "lag-caught-up"],
        "the workload's own order"
    );
    let clusters = doc["clusters"].as_array().expect("clusters");
    assert_eq!(clusters.len(), 1, "{doc}");
    let c = &clusters[0];
    assert_eq!(c["name"], broker.bootstrap.as_str());
    assert_eq!(c["error"], Value::Null);
    assert_eq!(c["complete"], true);
    let bad = check_json(c, &expected, &[]);
    assert!(bad.is_empty(), "{}\n{doc:#}", bad.join("\n"));
    // Logs stay on stderr (stdout parsed as one JSON document above), warnings only: the
    // test broker closes the connection on DescribeConfigs, which warns.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().all(|l| l.contains(" WARN ")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn group_filters_what_is_shown_and_thresholds_what_it_exits_with() {
    let (broker, w) = started().await;
    let b = broker.bootstrap.as_str();
    // --group: an unanchored regex.
    for (regex, shown) in [
        ("^lag-(mid|caught-up)$", &["lag-mid", "lag-caught-up"][..]),
        ("young", &["lag-young-big"][..]),
    ] {
        let (out, window) = lag_at(b, &["--json", "--group", regex]).await;
        assert_eq!(code(&out), 0, "{out:?}");
        let expected = Expected::new(w.ledger(), window);
        let bad = check_json(&parse_json(&out)["clusters"][0], &expected, shown);
        assert!(bad.is_empty(), "--group {regex}: {}", bad.join("\n"));
    }

    // Thresholds, from the ledger's time lags and lags.
    let now = now_ms();
    let rows = truth::rows(
        w.ledger(),
        Window {
            start_ms: now,
            end_ms: now,
        },
    );
    let oldest = |group: Option<&str>| {
        rows.iter()
            .filter(|r| r.lag > 0 && group.is_none_or(|g| r.group == g))
            .map(|r| r.lag_seconds.0)
            .fold(0.0, f64::max)
    };
    let worst_lag = rows.iter().map(|r| r.lag).max().expect("rows");
    let below = format!("{}", (oldest(None) - 30.0).floor());
    let above = format!("{}", (oldest(None) + 120.0).ceil());
    let (out, _) = lag_at(b, &["--max-lag-seconds", &below]).await;
    assert_eq!(code(&out), 1, "over --max-lag-seconds {below}: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("group lag-old orders-0"), "{stderr}");
    let (out, _) = lag_at(b, &["--max-lag-seconds", &above]).await;
    assert_eq!(code(&out), 0, "under --max-lag-seconds {above}: {out:?}");
    // Only the groups shown count: lag-young-big is far younger than lag-old.
    let young = format!("{}", (oldest(Some("lag-young-big")) + 60.0).ceil());
    let (out, _) = lag_at(b, &["--max-lag-seconds", &young, "--group", "young|caught"]).await;
    assert_eq!(code(&out), 0, "{out:?}");
    let (out, _) = lag_at(b, &["--max-lag", &(worst_lag - 1).to_string()]).await;
    assert_eq!(code(&out), 1, "{out:?}");
    let (out, _) = lag_at(b, &["--max-lag", &worst_lag.to_string()]).await;
    assert_eq!(code(&out), 0, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_table_has_every_row_of_the_ledger_worst_first() {
    let (broker, w) = started().await;
    let (out, window) = lag_at(&broker.bootstrap, &[]).await;
    assert_eq!(code(&out), 0, "{out:?}");
    check_table(&stdout(&out), &Expected::new(w.ledger(), window));
}

/// The human table: group headers in order, then each group's rows in order, with the
/// ledger's offsets and a time lag within its range (the table truncates to the second
/// above 10 s, to a tenth below).
fn check_table(text: &str, expected: &Expected) {
    let headers: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("group "))
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(headers, expected.group_order(), "{text}");
    let mut sections = text.split("\ngroup ").skip(1);
    for name in expected.group_order() {
        let section = sections.next().expect("a section per group");
        let mut lines = section.lines();
        let header = lines.next().unwrap_or_default();
        assert!(
            header.starts_with(&format!("{name} (classic, ")),
            "{header}"
        );
        let columns: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split("  ")
            .filter(|c| !c.trim().is_empty())
            .map(str::trim)
            .collect();
        assert_eq!(
            columns,
            [
                "TOPIC",
                "PARTITION",
                "COMMITTED",
                "HIGH WATERMARK",
                "LAG",
                "TIME LAG",
                "MEMBER"
            ],
            "{section}"
        );
        let rows = &expected.groups[&name];
        let printed: Vec<Vec<&str>> = lines
            .filter(|l| !l.is_empty())
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(printed.len(), rows.len(), "{section}");
        for (cells, r) in printed.iter().zip(rows) {
            let want = [
                r.topic.clone(),
                r.partition.to_string(),
                r.committed.to_string(),
                r.high.to_string(),
                r.lag.to_string(),
            ];
            assert_eq!(&cells[..5], &want, "{section}");
            let seconds =
                parse_duration(cells[5]).unwrap_or_else(|| panic!("time lag {:?}", cells[5]));
            let (lo, hi) = if r.lag == 0 {
                (0.0, 0.0)
            } else {
                r.lag_seconds
            };
            assert!(
                seconds >= lo - 1.0 && seconds <= hi,
                "{name} {}-{}: {} not within [{lo:.3}, {hi:.3}]",
                r.topic,
                r.partition,
                cells[5]
            );
            assert_eq!(cells[6], "-", "no member: {section}");
        }
    }
}

/// `4m12s`, `2h03m12s`, `3d04h05m`, `42s`, `3.2s`, `0s` → seconds.
fn parse_duration(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400.0,
            'h' => 3_600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * unit;
        number.clear();
    }
    number.is_empty().then_some(total)
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_reads_the_config_file_and_one_cluster_of_it() {
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    w.create_topic("t", 1).await;
    let now = now_ms();
    fill(&mut w, "t", 0, 6, 1, &[Codec::None], |o| {
        now - 120_000 + o * 1_000
    })
    .await;
    w.commit("cfg-group", "t", 0, 2).await;
    let dead = format!("127.0.0.1:{}", free_port().expect("free port"));
    let text = format!(
        "[[clusters]]\nname = \"live\"\nbootstrap_servers = \"{}\"\n\n[[clusters]]\nname = \"dead\"\nbootstrap_servers = \"{dead}\"\n",
        broker.bootstrap
    );
    let dir = std::env::temp_dir().join(format!("tidemark-lag-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("two.toml");
    std::fs::write(&path, text).expect("write config");
    let path = path.to_str().expect("utf-8").to_owned();

    let (out, window) = tidemark(args(&["lag", "-c", &path, "--cluster", "live", "--json"])).await;
    assert_eq!(code(&out), 0, "{out:?}");
    let doc = parse_json(&out);
    assert_eq!(doc["clusters"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc["clusters"][0]["name"], "live");
    let bad = check_json(&doc["clusters"][0], &Expected::new(w.ledger(), window), &[]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));

    // Both clusters: the live one is shown, the dead one named, status 3.
    let (out, window) = tidemark(args(&["lag", "-c", &path, "--json"])).await;
    assert_eq!(code(&out), 3, "{out:?}");
    let doc = parse_json(&out);
    let live = &doc["clusters"][0];
    assert_eq!(live["name"], "live");
    let bad = check_json(live, &Expected::new(w.ledger(), window), &[]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(doc["clusters"][1]["name"], "dead");
    assert!(
        doc["clusters"][1]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&dead)),
        "{doc}"
    );

    let (out, _) = tidemark(args(&["lag", "-c", &path, "--cluster", "nope"])).await;
    assert_eq!(code(&out), 2, "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"live\", \"dead\""),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_exits_3_when_nothing_listens_and_2_on_usage_errors() {
    let dead = format!("127.0.0.1:{}", free_port().expect("free port"));
    let (out, _) = tidemark(args(&["lag", "--bootstrap", &dead, "--json"])).await;
    assert_eq!(code(&out), 3, "{out:?}");
    let doc = parse_json(&out);
    assert!(
        doc["clusters"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&dead)),
        "{doc}"
    );
    assert_eq!(doc["clusters"][0]["groups"], Value::Array(vec![]));
    let (out, _) = tidemark(args(&["lag", "--bootstrap", &dead])).await;
    assert_eq!(code(&out), 3, "{out:?}");
    assert!(
        stdout(&out).starts_with(&format!("cluster {dead}: could not be read: ")),
        "{out:?}"
    );

    for usage in [
        vec!["lag"],
        vec!["lag", "--bootstrap", &dead, "--group", "("],
        vec!["lag", "--bootstrap", &dead, "--max-lag-seconds", "soon"],
        vec![
            "lag",
            "--bootstrap",
            &dead,
            "--security-protocol",
            "CARRIER_PIGEON",
        ],
        vec!["lag", "--bootstrap", &dead, "-X", "no-equals-sign"],
        vec!["lag", "--bootstrap", &dead, "--watch", "0"],
        vec!["lag", "-c", "/nonexistent/tidemark.toml"],
        // Connection flags are for --bootstrap, --cluster for a file, --config after `lag`.
        vec![
            "lag",
            "-c",
            "/nonexistent/tidemark.toml",
            "--sasl-username",
            "u",
        ],
        vec!["lag", "--bootstrap", &dead, "--cluster", "prod"],
        vec![
            "-c",
            "/nonexistent/tidemark.toml",
            "lag",
            "--bootstrap",
            &dead,
        ],
    ] {
        let (out, _) = tidemark(args(&usage)).await;
        assert_eq!(code(&out), 2, "{usage:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{usage:?}: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_given_as_flags_or_environment_are_never_printed() {
    let dead = format!("127.0.0.1:{}", free_port().expect("free port"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .args([
                "lag",
                "--bootstrap",
                &dead,
                "--security-protocol",
                "SASL_PLAINTEXT",
                "--sasl-mechanism",
                "SCRAM-SHA-512",
                "--sasl-username",
                "oncall",
                "-l",
                "debug",
            ])
            .env("TIDEMARK_SASL_PASSWORD", "hunter2-secret")
            .output()
            .expect("run tidemark")
    })
    .await
    .expect("join");
    assert_eq!(code(&out), 3, "{out:?}");
    let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("hunter2"), "{all}");
    // A password-less SASL setup is refused like in a file, naming the key, not a value.
    let (out, _) = tidemark(args(&[
        "lag",
        "--bootstrap",
        "127.0.0.1:9",
        "--security-protocol",
        "SASL_PLAINTEXT",
        "--sasl-mechanism",
        "PLAIN",
        "--sasl-username",
        "u",
    ]))
    .await;
    assert_eq!(code(&out), 2, "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sasl.password"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_prints_one_json_document_per_read_until_interrupted() {
    use std::io::BufRead;
    let broker = Broker::start().await;
    let mut w = Workload::connect(&broker.bootstrap).await;
    w.create_topic("t", 2).await;
    let now = now_ms();
    for p in 0..2 {
        fill(&mut w, "t", p, 5, 2, &[Codec::None], |o| {
            now - 60_000 + o * 1_000
        })
        .await;
    }
    w.commit_offsets("watched", &[("t", 0, 1), ("t", 1, 5)])
        .await;
    let bootstrap = broker.bootstrap.clone();
    let start_ms = now_ms();
    let (lines, status) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .args([
                "lag",
                "--bootstrap",
                &bootstrap,
                "--json",
                "--watch",
                "1",
                "--max-lag",
                "0",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tidemark");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            lines.push(line.expect("a line"));
            if lines.len() == 3 {
                break;
            }
        }
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) on the child we started and have not waited for yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        (lines, child.wait().expect("wait"))
    })
    .await
    .expect("join");
    let window = Window {
        start_ms,
        end_ms: now_ms(),
    };
    assert_eq!(lines.len(), 3, "{lines:?}");
    let expected = Expected::new(w.ledger(), window);
    for line in &lines {
        assert!(
            !line.contains('\u{1b}'),
            "no screen clearing into a pipe: {line:?}"
        );
        let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let bad = check_json(&doc["clusters"][0], &expected, &[]);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
    // Interrupted: the status of the last read, which had lag over --max-lag 0.
    assert_eq!(status.code(), Some(1), "{status:?}");
}
