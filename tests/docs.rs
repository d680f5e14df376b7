//! The documentation covers what the code has, and holds together:
//!
//! * every metric family tidemark can export, and every label name it puts on series, is
//!   named in `docs/metrics.md`;
//! * every configuration key the parser knows is named in `docs/configuration.md`, in the
//!   section of its table (`## [exporter.otel]`, `## [[clusters]]`, ...), and so is every
//!   `consumer_properties` key tidemark uses or knowingly ignores;
//! * `README.md` stays within 10 KiB, and CI (`.ci/run`) runs the README's test command;
//! * every relative link in `README.md` and `docs/*.md` points at a file that exists, and
//!   every `#anchor` into a markdown file matches one of its headings (GitHub's slugs).
//!
//! Nothing is listed here by hand: metric families come from the exposition the library
//! renders, configuration keys from the parser itself (see [`config_sections`]). Adding a
//! family or a key without documenting it fails here, naming it and the page.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kafka_protocol::messages::ApiKey;
use regex::Regex;
use tidemark::config::{self, Config, ConfigError, Granularity};
use tidemark::metrics::{self, ClientStats, ClusterView};
use toml::{Table, Value};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Whether `text` names `name` in backticks: `` `name` ``, or a documented prefix family
/// `` `prefix*` `` that `name` belongs to (`fetch.*` covers `fetch.min.bytes`).
fn names(text: &str, name: &str) -> bool {
    if text.contains(&format!("`{name}`")) {
        return true;
    }
    // Odd-numbered pieces are inside backticks.
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| span.strip_suffix('*'))
        .any(|prefix| !prefix.is_empty() && name.starts_with(prefix))
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

/// A label tidemark does not own: the exposition test puts it on as `[clusters.labels]`.
const CUSTOM_LABEL: &str = "docs_custom_label";

/// A cluster with a series of every operational family that has labels of its own
/// (broker, api, reason, item, resource_type, operation). Families are declared (`# TYPE`) whether or not they have
/// series, so the families of the lag report are all there too.
fn operational_view() -> ClusterView {
    ClusterView {
        name: "c".into(),
        labels: vec![(CUSTOM_LABEL.into(), "x".into())],
        up: true,
        brokers: vec![(1, true)],
        client: ClientStats {
            requests: vec![(1, ApiKey::Fetch, 1, 0)],
            bytes_received: vec![(1, 1)],
            timestamp_samples_failed: vec![("corrupt", 1)],
            collection_errors: vec![("broker", 1)],
            authorization_failures: vec![("topic", "Read", 1)],
            ..ClientStats::default()
        },
        // With `[exporter.leadership]`: the tidemark_ha_* families.
        ha: Some(metrics::HaView {
            serving: true,
            ..metrics::HaView::default()
        }),
        ..ClusterView::default()
    }
}

/// The classic Prometheus text of an exposition at partition granularity (every family).
fn exposition() -> String {
    // With a push exporter's counters, so their families are checked too.
    let exports = [metrics::ExportCounters {
        exporter: "remote_write",
        requests_ok: 1,
        ..metrics::ExportCounters::default()
    }];
    let openmetrics =
        metrics::render_with_exports(&[operational_view()], &exports, Granularity::Partition);
    metrics::to_prometheus_text(&openmetrics)
}

/// Every family tidemark can export, as a query names it: from the `# TYPE` lines of the
/// Prometheus text format (counters with their `_total`).
fn exported_families() -> BTreeSet<String> {
    exposition()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// Every label name tidemark puts on series: those of the operational series above, and
/// the names it reserves for the lag series ([`config::RESERVED_LABELS`]). Not `le`
/// (Prometheus' own histogram bucket label) nor the custom label.
fn exported_labels() -> BTreeSet<String> {
    let label = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)=""#).expect("regex");
    let mut labels: BTreeSet<String> = config::RESERVED_LABELS
        .iter()
        .map(|l| (*l).to_owned())
        .collect();
    for line in exposition().lines().filter(|l| !l.starts_with('#')) {
        let (Some(open), Some(close)) = (line.find('{'), line.rfind('}')) else {
            continue;
        };
        labels.extend(
            label
                .captures_iter(&line[open..close])
                .map(|c| c[1].to_owned()),
        );
    }
    labels.remove("le");
    labels.remove(CUSTOM_LABEL);
    labels
}

#[test]
fn every_metric_family_is_documented() {
    let families = exported_families();
    // Not vacuous: the exposition has the families dashboards rely on, of every kind.
    for name in [
        "kafka_partition_latest_offset",
        "kafka_consumergroup_group_lag_seconds",
        "kafka_lag_exporter_data_loss_partitions_total",
        "tidemark_cycle_duration_seconds",
        "tidemark_broker_up",
    ] {
        assert!(families.contains(name), "{name} missing from {families:?}");
    }
    assert!(families.len() >= 30, "too few families: {families:?}");

    let doc = read(&repo("docs/metrics.md"));
    let missing: Vec<&String> = families.iter().filter(|f| !names(&doc, f)).collect();
    assert!(
        missing.is_empty(),
        "metric families tidemark exports but docs/metrics.md does not name (in backticks, \
         as `name`): {missing:?}"
    );
}

#[test]
fn every_metric_label_is_documented() {
    let labels = exported_labels();
    for name in ["cluster_name", "group", "broker", "api", "reason", "item"] {
        assert!(labels.contains(name), "{name} missing from {labels:?}");
    }
    let doc = read(&repo("docs/metrics.md"));
    let missing: Vec<&String> = labels.iter().filter(|l| !names(&doc, l)).collect();
    assert!(
        missing.is_empty(),
        "label names tidemark puts on series but docs/metrics.md does not name: {missing:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Configuration keys
// ---------------------------------------------------------------------------------------
//
// There is no single list of keys in the parser: `src/config/schema.rs` takes each key out
// of its table by name and reports whatever is left as unknown, and `client.rs` sorts
// `consumer_properties` into used, ignored and unsupported keys. So the parser itself is
// asked. Two sources of candidate keys, each confirmed by parsing:
//
// 1. `Config::to_redacted_toml()` (what `--check-config` prints) of a config with every
//    table present: it renders every key with its value or default, so it finds keys
//    whatever their spelling in the source;
// 2. every string literal in the config module's sources, so a key the parser reads but
//    the rendering forgets is not missed either.
//
// A candidate is a key of a table when parsing a config that has it there does not list
// it among `unknown_keys` (or fails on its value, naming it). A `consumer_properties` key
// is known when the parser does not classify it as unsupported (it is used, or ignored
// on purpose as a consumer-only setting).

/// A minimal valid config as a TOML table.
fn base_config() -> Table {
    let mut cluster = Table::new();
    cluster.insert("name".into(), Value::String("a".into()));
    cluster.insert("bootstrap_servers".into(), Value::String("k:9092".into()));
    let mut root = Table::new();
    root.insert("clusters".into(), Value::Array(vec![Value::Table(cluster)]));
    // A remote write table, so its keys (which need a url, and one way to authenticate
    // at most) are found too.
    let remote_write = ["exporter".to_owned(), "remote_write".to_owned()];
    table_at(&mut root, &remote_write).insert(
        "url".into(),
        Value::String("http://prometheus:9090/api/v1/write".into()),
    );
    let basic_auth = [
        "exporter".to_owned(),
        "remote_write".to_owned(),
        "basic_auth".to_owned(),
    ];
    for key in ["username", "password"] {
        table_at(&mut root, &basic_auth).insert(key.into(), Value::String("x".into()));
    }
    root
}

/// The table at `path` (created when missing); an array of tables means its first entry.
fn table_at<'a>(root: &'a mut Table, path: &[String]) -> &'a mut Table {
    let mut table = root;
    for key in path {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            Value::Array(items) => match items.first_mut() {
                Some(Value::Table(t)) => t,
                _ => panic!("{key} is not an array of tables"),
            },
            _ => panic!("{key} is not a table"),
        };
    }
    table
}

/// The parser's key path of `key` in the table at `path`: `exporter.otel.enabled`,
/// `clusters[0].name`.
fn key_path(path: &[String], key: &str) -> String {
    let mut out = String::new();
    for (i, part) in path.iter().map(String::as_str).chain([key]).enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(part);
        if i == 0 && part == "clusters" && !path.is_empty() {
            out.push_str("[0]");
        }
    }
    out
}

fn parse(root: &Table) -> Result<Config, ConfigError> {
    let text = toml::to_string(root).expect("a TOML table serializes");
    config::parse(&text, "docs-test.toml", &|_| None)
}

/// Whether the parser reads `key` in the table at `path`.
fn parser_knows(path: &[String], key: &str) -> bool {
    let mut root = base_config();
    let table = table_at(&mut root, path);
    if table.contains_key(key) {
        return true;
    }
    table.insert(key.into(), Value::String("x".into()));
    let at = key_path(path, key);
    match parse(&root) {
        Ok(config) => !config.unknown_keys.contains(&at),
        Err(ConfigError::Invalid { key, .. }) if key.starts_with(&at) => true,
        Err(e) => panic!("parsing a config with {at} = \"x\" failed elsewhere: {e}"),
    }
}

/// Whether the parser uses, or knowingly ignores, the `consumer_properties` key `key`.
fn property_known(key: &str) -> bool {
    let mut root = base_config();
    let path = ["clusters".to_owned(), "consumer_properties".to_owned()];
    table_at(&mut root, &path).insert(key.into(), Value::String("x".into()));
    match parse(&root) {
        Ok(config) => !config.clusters[0]
            .client
            .unsupported
            .iter()
            .any(|k| k == key),
        // The value was read and refused: a key tidemark uses.
        Err(ConfigError::Invalid { key: at, .. }) if at.contains(key) => true,
        Err(e) => panic!("parsing a config with the property {key:?} failed elsewhere: {e}"),
    }
}

/// A table of the configuration, as `docs/configuration.md` heads its section.
#[derive(Debug)]
struct Section {
    path: Vec<String>,
    /// `[[clusters]]` rather than `[clusters]`.
    array: bool,
    /// Keys are the user's (labels) or checked one by one (consumer_properties): the
    /// parser takes any name.
    free_form: bool,
    keys: BTreeSet<String>,
}

impl Section {
    fn heading(&self) -> String {
        let name = self.path.join(".");
        if self.array {
            format!("[[{name}]]")
        } else {
            format!("[{name}]")
        }
    }
}

/// String literals of the config module (its tests left out) that could be keys:
/// (table keys, `consumer_properties` keys).
fn source_literals() -> (BTreeSet<String>, BTreeSet<String>) {
    let literal = Regex::new(r#""([a-z][a-z0-9_.]*)""#).expect("regex");
    let mut files = vec![repo("src/config.rs")];
    let mut dirs = vec![repo("src/config")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/config") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_none_or(|n| n != "tests.rs")
            {
                files.push(path);
            }
        }
    }
    let (mut keys, mut properties) = (BTreeSet::new(), BTreeSet::new());
    for file in files {
        let text = read(&file);
        let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
        for c in literal.captures_iter(code) {
            let word = c[1].to_owned();
            // Table keys have no dots; properties mostly do (`debug` does not).
            if !word.contains('.') {
                keys.insert(word.clone());
            }
            properties.insert(word);
        }
    }
    (keys, properties)
}

/// Every table of the configuration with the keys the parser knows in it; the
/// `consumer_properties` section lists the property keys.
fn config_sections() -> Vec<Section> {
    // Every table present, so every one is rendered.
    let mut full = base_config();
    let props = ["clusters".to_owned(), "consumer_properties".to_owned()];
    table_at(&mut full, &props).insert("client.id".into(), Value::String("x".into()));
    let labels = ["clusters".to_owned(), "labels".to_owned()];
    table_at(&mut full, &labels).insert("team".into(), Value::String("x".into()));

    let config = parse(&full).expect("the full config parses");
    let rendered: Table = config
        .to_redacted_toml()
        .parse()
        .expect("--check-config output is TOML");

    fn walk(table: &Table, path: &[String], array: bool, out: &mut Vec<Section>) {
        let mut section = Section {
            path: path.to_vec(),
            array,
            free_form: false,
            keys: BTreeSet::new(),
        };
        for (key, value) in table {
            let mut sub = path.to_vec();
            sub.push(key.clone());
            match value {
                Value::Table(t) => walk(t, &sub, false, out),
                Value::Array(items) if items.iter().all(Value::is_table) && !items.is_empty() => {
                    if let Some(Value::Table(t)) = items.first() {
                        walk(t, &sub, true, out);
                    }
                }
                _ => {
                    section.keys.insert(key.clone());
                }
            }
        }
        if !path.is_empty() {
            section.free_form = parser_knows(path, "zz_docs_test_no_such_key");
            out.push(section);
        }
    }
    let mut sections = Vec::new();
    walk(&rendered, &[], false, &mut sections);

    let (literals, property_literals) = source_literals();
    let tables: BTreeSet<Vec<String>> = sections.iter().map(|s| s.path.clone()).collect();
    for section in sections.iter_mut() {
        if section.free_form {
            section.keys.clear();
            continue;
        }
        for word in &literals {
            let mut sub = section.path.clone();
            sub.push(word.clone());
            let new = !section.keys.contains(word) && !tables.contains(&sub);
            if new && parser_knows(&section.path, word) {
                section.keys.insert(word.clone());
            }
        }
    }
    // Tables at the top: `[exporter]` and `[[clusters]]` are sections already.
    for word in &literals {
        let top = sections.iter().any(|s| s.path == [word.clone()]);
        assert!(
            top || !parser_knows(&[], word),
            "the parser knows a top-level table {word:?} that --check-config does not render: \
             render it (src/config/render.rs) and document it in docs/configuration.md"
        );
    }
    let properties = sections
        .iter_mut()
        .find(|s| s.path == props)
        .expect("a [clusters.consumer_properties] section");
    properties.keys = property_literals
        .into_iter()
        .filter(|k| property_known(k))
        .collect();
    sections
}

/// The text of the section of `doc` whose heading is `heading` (in backticks or not,
/// possibly followed by more words), up to the next heading of the same or a higher level.
fn doc_section<'a>(doc: &'a str, heading: &str) -> Option<&'a str> {
    let mut start = None;
    let mut level = 0;
    let mut offset = 0;
    let mut fenced = false;
    for line in doc.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        let hashes = line.bytes().take_while(|b| *b == b'#').count();
        let is_heading = !fenced && (1..=6).contains(&hashes) && line[hashes..].starts_with(' ');
        if is_heading {
            if let Some(s) = start {
                if hashes <= level {
                    return Some(&doc[s..offset]);
                }
            } else {
                let text = line[hashes..].trim().replace('`', "");
                if text == heading || text.starts_with(&format!("{heading} ")) {
                    start = Some(offset);
                    level = hashes;
                }
            }
        }
        offset += line.len();
    }
    start.map(|s| &doc[s..])
}

#[test]
fn every_config_key_is_documented() {
    // The oracle is not vacuous: it tells keys from typos.
    assert!(parser_knows(&["exporter".into()], "poll_interval"));
    assert!(!parser_knows(&["exporter".into()], "poll_intervall"));
    assert!(property_known("sasl.mechanism") && property_known("group.id"));
    assert!(!property_known("compression.type"));

    let sections = config_sections();
    let headings: Vec<String> = sections.iter().map(Section::heading).collect();
    for expected in [
        "[exporter]",
        "[exporter.timestamp_sampling]",
        "[exporter.otel]",
        "[exporter.remote_write]",
        "[exporter.remote_write.basic_auth]",
        "[exporter.performance]",
        "[[clusters]]",
        "[clusters.consumer_properties]",
        "[clusters.labels]",
    ] {
        assert!(
            headings.iter().any(|h| h == expected),
            "{expected} not found in {headings:?}"
        );
    }
    let key_count: usize = sections.iter().map(|s| s.keys.len()).sum();
    assert!(key_count >= 60, "too few keys found: {sections:#?}");

    let doc = read(&repo("docs/configuration.md"));
    let mut missing = Vec::new();
    for section in &sections {
        let heading = section.heading();
        let Some(text) = doc_section(&doc, &heading) else {
            missing.push(format!("a section headed `{heading}`"));
            continue;
        };
        for key in &section.keys {
            if !names(text, key) {
                missing.push(format!("{heading} `{key}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "configuration keys the parser knows but docs/configuration.md does not document \
         (in backticks, in the section of their table): {missing:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// README size and commands
// ---------------------------------------------------------------------------------------

#[test]
fn readme_fits_in_ten_kib() {
    let bytes = read(&repo("README.md")).len();
    assert!(
        bytes <= 10 * 1024,
        "README.md is {bytes} bytes, over 10,240: move detail to docs/"
    );
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = read(&repo("README.md"));
    let section = doc_section(&readme, "Two commands").expect("a \"Two commands\" section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in \"Two commands\"");
    let commands: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(commands.len(), 2, "two commands: {commands:?}");
    let ci = read(&repo(".ci/run"));
    let test = commands
        .iter()
        .find(|c| c.starts_with("cargo test"))
        .expect("a cargo test command");
    assert!(
        ci.lines().any(|l| l.trim() == *test),
        ".ci/run does not run the README's test command {test:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------------------

/// README.md and every page of docs/.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo("docs"))
        .expect("docs/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 8, "docs/ has too few pages: {docs:?}");
    files.extend(docs);
    files
}

/// `text` without fenced code blocks and inline code spans (links there are not links).
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Even-numbered pieces are outside backticks.
        for (i, piece) in line.split('`').enumerate() {
            if i % 2 == 0 {
                out.push_str(piece);
            }
        }
        out.push('\n');
    }
    out
}

/// GitHub's anchor of a heading: the rendered text lowercased, spaces to hyphens, every
/// character but letters, digits, `-` and `_` dropped; repeated ones get `-1`, `-2`, ...
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let link = Regex::new(r"\[([^\]]*)\]\([^)]*\)").expect("regex");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let hashes = line.bytes().take_while(|b| *b == b'#').count();
        if fenced || !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let title = line[hashes..].trim().trim_end_matches('#').trim();
        let title = link.replace_all(title, "$1").replace(['`', '*'], "");
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    anchors
}

#[test]
fn the_slugs_are_githubs() {
    let anchors = heading_anchors(
        "# tidemark\n## Two commands\n```sh\n# not a heading\n```\n## `[exporter.otel]`\n\
         ## `[[clusters]]`: one per cluster\n## Time lag, exactly\n## Time lag, exactly\n\
         ### See [the docs](x.md) (TLS/SASL)\n",
    );
    let want = [
        "tidemark",
        "two-commands",
        "exporterotel",
        "clusters-one-per-cluster",
        "time-lag-exactly",
        "time-lag-exactly-1",
        "see-the-docs-tlssasl",
    ];
    assert_eq!(
        anchors,
        want.iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn every_relative_link_resolves() {
    let inline = Regex::new(r#"\]\(([^)\s]+)(?:\s+"[^"]*")?\)"#).expect("regex");
    let reference = Regex::new(r"(?m)^\s*\[[^\]]+\]:\s*(\S+)").expect("regex");
    let scheme = Regex::new(r"^[a-zA-Z][a-zA-Z0-9+.-]*:").expect("regex");
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        let prose = prose(&text);
        let dir = file.parent().expect("a directory");
        let name = file
            .strip_prefix(repo(""))
            .unwrap_or(&file)
            .display()
            .to_string();
        let targets = inline
            .captures_iter(&prose)
            .chain(reference.captures_iter(&prose))
            .map(|c| {
                c[1].trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            });
        for target in targets {
            if scheme.is_match(&target) {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !resolved.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if anchor.is_empty() {
                continue;
            }
            if resolved.extension().is_none_or(|e| e != "md") {
                broken.push(format!(
                    "{name}: {target}: an anchor into a non-markdown file"
                ));
                continue;
            }
            if !heading_anchors(&read(&resolved)).contains(anchor) {
                broken.push(format!("{name}: {target}: no heading with that anchor"));
            }
        }
    }
    assert!(checked >= 20, "too few links checked ({checked})");
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}
