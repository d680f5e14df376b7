//! The data path has no back-edges (docs/architecture.md): the wire client (`src/kafka`)
//! imports no layer above it, and the lag math (`src/lag`) imports no I/O module. Values they
//! share live in `crate::model`, secrets in `crate::secret`.
//!
//! Every `crate::…` path in the code of those directories is read (comments and string
//! literals excluded), including grouped imports (`use crate::{config, kafka::X}`) and paths
//! written inline (`crate::config::REDACTED`), and its first segment is checked against the
//! layer's forbidden modules.

use std::path::{Path, PathBuf};

/// Top-level modules a layer must not import, by the directory under `src/` it covers.
const RULES: [(&str, &[&str]); 2] = [
    (
        "kafka",
        &[
            "config", "collect", "lag", "metrics", "state", "http", "export", "ha", "oneshot",
        ],
    ),
    (
        "lag",
        &[
            "kafka", "collect", "metrics", "state", "http", "export", "ha", "oneshot",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, plus `dir.rs` beside it when the module root lives there.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    let beside = dir.with_extension("rs");
    if beside.is_file() {
        out.push(beside);
    }
    out.sort();
    out
}

/// `source` with comments and the contents of string and char literals replaced by spaces
/// (newlines kept, so line numbers stay right).
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let end = if c == '/' && next == Some('/') {
            chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |n| i + n)
        } else if c == '/' && next == Some('*') {
            block_comment_end(&chars, i)
        } else if c == 'r' && matches!(next, Some('"' | '#')) && !ident_before(&chars, i) {
            raw_string_end(&chars, i)
        } else if c == '"' {
            string_end(&chars, i)
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A char literal ('"', '\'', '\u{1F}'), not a lifetime.
            let from = if next == Some('\\') { i + 3 } else { i + 2 };
            chars
                .get(from..)
                .and_then(|rest| rest.iter().position(|&c| c == '\''))
                .map_or(chars.len(), |n| from + n + 1)
        } else {
            i
        };
        if end == i {
            out.push(c);
            i += 1;
        } else {
            out.extend(
                chars[i..end]
                    .iter()
                    .map(|&c| if c == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        }
    }
    out
}

/// Where the block comment starting at `start` ends (they nest in Rust).
fn block_comment_end(chars: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('/', Some('*')) => {
                depth += 1;
                i += 2;
            }
            ('*', Some('/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// Where the raw string starting at `start` (`r"…"`, `r#"…"#`, …) ends; `start` itself when
/// it is not one.
fn raw_string_end(chars: &[char], start: usize) -> usize {
    let hashes = chars[start + 1..].iter().take_while(|&&c| c == '#').count();
    let open = start + 1 + hashes;
    if chars.get(open) != Some(&'"') {
        return start;
    }
    let mut i = open + 1;
    while i < chars.len() {
        if chars[i] == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return i + 1 + hashes;
        }
        i += 1;
    }
    chars.len()
}

/// Where the string literal starting at `start` ends (escapes skipped).
fn string_end(chars: &[char], start: usize) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && chars.get(i - 1).is_some_and(|&c| ident_char(c))
}

/// The top-level modules named by every `crate::` path in `code`, with their line numbers.
fn crate_imports(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (start, _) in code.match_indices("crate::") {
        if code[..start].chars().next_back().is_some_and(ident_char) {
            continue;
        }
        let line = code[..start].matches('\n').count() + 1;
        let rest = code[start + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            for item in top_level_items(group) {
                found.push((line, item));
            }
        } else {
            found.push((line, rest.chars().take_while(|&c| ident_char(c)).collect()));
        }
    }
    found.retain(|(_, name)| !name.is_empty() && name != "self");
    found
}

/// The first path segment of each comma-separated item of a `{…}` group (its text after the
/// opening brace), up to the matching closing brace.
fn top_level_items(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut at_item_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item_start = true,
            c if at_item_start && ident_char(c) => {
                at_item_start = false;
                items.push(group[i..].chars().take_while(|&c| ident_char(c)).collect());
            }
            _ => {}
        }
    }
    items
}

/// `file:line: <layer> imports crate::<module>` for every forbidden import under `layer`.
fn violations(layer: &str, forbidden: &[&str]) -> Vec<String> {
    let root = src();
    let mut out = Vec::new();
    for file in rust_files(&root.join(layer)) {
        let code = code_only(&read(&file));
        for (line, module) in crate_imports(&code) {
            if forbidden.contains(&module.as_str()) {
                let shown = file.strip_prefix(&root).unwrap_or(&file).display();
                out.push(format!(
                    "src/{shown}:{line}: {layer} imports crate::{module}"
                ));
            }
        }
    }
    out
}

#[test]
fn kafka_and_lag_have_no_back_edges() {
    let mut all = Vec::new();
    for (layer, forbidden) in RULES {
        all.extend(violations(layer, forbidden));
    }
    assert!(
        all.is_empty(),
        "layer back-edges (move shared types to crate::model or crate::secret):\n{}",
        all.join("\n")
    );
}

/// The rules name real modules and directories: a renamed module must not make them vacuous.
#[test]
fn rules_name_modules_that_exist() {
    let lib = code_only(&read(&src().join("lib.rs")));
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    for (layer, forbidden) in RULES {
        assert!(src().join(layer).is_dir(), "src/{layer}/ is missing");
        assert!(
            rust_files(&src().join(layer)).len() > 3,
            "src/{layer}/ has too few files"
        );
        for module in forbidden.iter().chain([&layer]) {
            assert!(
                declared.contains(module),
                "crate::{module} is not in src/lib.rs"
            );
        }
    }
}

#[test]
fn imports_are_found_in_every_form() {
    let code = code_only(
        "use crate::config::REDACTED;\n\
         use crate::{\n    kafka::{a, b},\n    lag,\n    self,\n};\n\
         fn f() { let x = crate::metrics::X; let y = $crate::state::Y; }\n\
         use my_crate::http::Z;\n",
    );
    let found = crate_imports(&code);
    let names: Vec<(usize, &str)> = found.iter().map(|(l, n)| (*l, n.as_str())).collect();
    assert_eq!(
        names,
        [
            (1, "config"),
            (2, "kafka"),
            (2, "lag"),
            (7, "metrics"),
            (7, "state")
        ]
    );
}

#[test]
fn comments_and_literals_are_not_imports() {
    let code = code_only(
        "// use crate::config;\n\
         /// see [`crate::config::REDACTED`]\n\
         /* crate::collect /* nested */ crate::lag */\n\
         let s = \"crate::http\"; let r = r#\"crate::ha \"quoted\"\"#;\n\
         let q = '\"'; let l: &'static str = \"\\\"crate::export\";\n\
         use crate::model::TopicPartition; // crate::oneshot\n",
    );
    let found = crate_imports(&code);
    assert_eq!(found, [(6, "model".to_string())], "{code}");
    assert_eq!(code.lines().count(), 6, "line numbers are kept");
}

/// Tests, benches and examples share code through the test kit (`testkit/`, the crate
/// `tidemark-testkit`), never by compiling another directory's files into themselves with a
/// `#[path = "..."]` module: each such include compiled the whole harness into every binary
/// again, and hid its unused parts behind a blanket `allow(dead_code)`.
#[test]
fn no_path_includes_in_tests_benches_or_examples() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    let mut files = 0;
    for dir in ["tests", "benches", "examples", "testkit"] {
        for file in rust_files(&repo.join(dir)) {
            files += 1;
            let source = read(&file);
            for line in path_attributes(&code_only(&source)) {
                let shown = file.strip_prefix(repo).unwrap_or(&file).display();
                let text = source.lines().nth(line - 1).unwrap_or("").trim();
                found.push(format!("{shown}:{line}: {text}"));
            }
        }
    }
    assert!(
        files > 40,
        "only {files} files read under tests/, benches/, examples/, testkit/"
    );
    assert!(
        found.is_empty(),
        "`#[path]` includes (use the test kit, `use tidemark_testkit as common;`):\n{}",
        found.join("\n")
    );
}

/// Lines (1-based) of `code` (as [`code_only`] leaves it) holding a `#[path` or `#![path`
/// attribute, white space inside the attribute allowed.
fn path_attributes(code: &str) -> Vec<usize> {
    code.lines()
        .enumerate()
        .filter(|(_, line)| {
            let squeezed: String = line.split_whitespace().collect();
            squeezed.contains("#[path") || squeezed.contains("#![path")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn path_attributes_are_found() {
    let code = code_only(
        "#[path = \"common/mod.rs\"]\nmod common;\n// #[path = \"x\"]\n\
         let s = \"#[path = y]\";\n# [ path = \"z.rs\" ]\nmod z;\n",
    );
    assert_eq!(path_attributes(&code), [1, 5]);
}
