//! `${VAR}` substitution in the config text, before it is parsed as TOML.
//!
//! Forms:
//! - `${VAR}` — the variable's value; an unset variable is an error that names it and
//!   the line.
//! - `${VAR:-default}` — the default when the variable is unset *or empty* (shell and
//!   docker-compose semantics). The default runs to the first `}`.
//! - `${?VAR}` — the value, or nothing when unset (klag-exporter's optional form).
//! - `$${` — a literal `${` (nothing is substituted).
//!
//! The text is scanned with a small TOML-aware lexer so that a value lands in the file as
//! the user meant it:
//! - outside strings the value is inserted as written, so `http_port = ${PORT:-8000}`
//!   works (klag-exporter semantics);
//! - inside a `"basic"` or `"""multi-line"""` string the value is escaped, so a password
//!   containing `"` or `\` arrives intact (klag-exporter would break on it);
//! - inside a `'literal'` string the value is inserted as written, and a value that such a
//!   string cannot hold (a `'` or a line break) is an error asking for a double-quoted
//!   string;
//! - inside comments (full-line or trailing) nothing is substituted, so a commented-out
//!   `${UNSET}` never fails.
//!
//! The substituted text records where each replacement came from, so a TOML syntax
//! error's position is reported against the file as written, and no substituted value
//! (perhaps a secret) ever appears in an error.

/// The substituted text plus a map back to positions in the original.
#[derive(Debug)]
pub(super) struct Substituted {
    pub text: String,
    /// (output start, output end, input start, input end) of every replacement, in order.
    replacements: Vec<(usize, usize, usize, usize)>,
}

impl Substituted {
    /// The byte offset in the original text that produced output byte `pos`. A position
    /// inside a replaced value maps to the `$` that started the reference.
    pub fn original_offset(&self, pos: usize) -> usize {
        let index = self.replacements.partition_point(|r| r.0 <= pos);
        match index.checked_sub(1).map(|i| self.replacements[i]) {
            None => pos,
            Some((_, out_end, in_start, in_end)) => {
                if pos < out_end {
                    in_start
                } else {
                    in_end + (pos - out_end)
                }
            }
        }
    }
}

/// A substitution failure: 1-based line of the reference, what was wrong, what was expected.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SubstError {
    pub line: usize,
    pub problem: String,
    pub expected: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Bare,
    Comment,
    Basic,
    MultiBasic,
    Literal,
    MultiLiteral,
}

pub(super) fn substitute(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Substituted, SubstError> {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut replacements = Vec::new();
    let mut state = State::Bare;
    // Start of the input not yet copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Bytes, not `&str`: `i` may sit inside a multi-byte character. Every byte this
        // lexer acts on is ASCII, hence always a character boundary.
        let rest = &bytes[i..];
        let b = bytes[i];
        match state {
            State::Comment if b == b'\n' => state = State::Bare,
            State::Bare => match b {
                b'#' => state = State::Comment,
                b'"' if rest.starts_with(b"\"\"\"") => {
                    state = State::MultiBasic;
                    i += 3;
                    continue;
                }
                b'"' => state = State::Basic,
                b'\'' if rest.starts_with(b"'''") => {
                    state = State::MultiLiteral;
                    i += 3;
                    continue;
                }
                b'\'' => state = State::Literal,
                _ => {}
            },
            State::Basic | State::MultiBasic if b == b'\\' => {
                // Skip the escaped character so `\"` does not end the string.
                i += if bytes.get(i + 1).is_some_and(u8::is_ascii) {
                    2
                } else {
                    1
                };
                continue;
            }
            State::Basic | State::Literal if b == b'\n' => state = State::Bare,
            State::Basic if b == b'"' => state = State::Bare,
            State::Literal if b == b'\'' => state = State::Bare,
            State::MultiBasic | State::MultiLiteral => {
                let quote = if state == State::MultiBasic {
                    b'"'
                } else {
                    b'\''
                };
                if b == quote {
                    // A run of three to five quotes closes the string (up to two of them
                    // belong to its content).
                    let run = bytes[i..].iter().take_while(|&&c| c == quote).count();
                    if run >= 3 {
                        state = State::Bare;
                    }
                    i += run;
                    continue;
                }
            }
            _ => {}
        }
        if b == b'$' && state != State::Comment {
            if rest.starts_with(b"$${") {
                out.push_str(&input[copied..i]);
                let start = out.len();
                out.push_str("${");
                replacements.push((start, out.len(), i, i + 3));
                i += 3;
                copied = i;
                continue;
            }
            if rest.starts_with(b"${") {
                let line = line_of(input, i);
                let (reference, value) = resolve(&input[i..], line, env)?;
                let encoded = encode(&value, state, reference, line)?;
                out.push_str(&input[copied..i]);
                let start = out.len();
                out.push_str(&encoded);
                replacements.push((start, out.len(), i, i + reference.len()));
                i += reference.len();
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&input[copied..]);
    Ok(Substituted {
        text: out,
        replacements,
    })
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

const FORMS: &str = "${NAME}, ${NAME:-default} or ${?NAME}, where NAME is letters, digits and _ \
                     (write $${ for a literal ${)";

/// Resolves the reference at the start of `rest` (which begins with `${`). Returns the
/// reference text and its value.
fn resolve<'a>(
    rest: &'a str,
    line: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(&'a str, String), SubstError> {
    let body_len = rest[2..]
        .find(['}', '\n'])
        .filter(|&n| rest.as_bytes()[2 + n] == b'}')
        .ok_or_else(|| SubstError {
            line,
            problem: "`${` is not closed by `}` on the same line".to_owned(),
            expected: FORMS.to_owned(),
        })?;
    let reference = &rest[..2 + body_len + 1];
    let body = &rest[2..2 + body_len];
    let (optional, body) = match body.strip_prefix('?') {
        Some(body) => (true, body),
        None => (false, body),
    };
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    let valid_name = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid_name {
        return Err(SubstError {
            line,
            problem: format!("{reference} is not a valid variable reference"),
            expected: FORMS.to_owned(),
        });
    }
    let value = match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => default.to_owned(),
        (Some(value), _) => value,
        (None, Some(default)) => default.to_owned(),
        (None, None) if optional => String::new(),
        (None, None) => {
            return Err(SubstError {
                line,
                problem: format!("environment variable {name} is not set"),
                expected: format!("{name} to be set, or a default written as ${{{name}:-default}}"),
            })
        }
    };
    Ok((reference, value))
}

/// Makes `value` safe for the lexical context it is inserted into.
fn encode(value: &str, state: State, reference: &str, line: usize) -> Result<String, SubstError> {
    match state {
        State::Basic | State::MultiBasic => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push('\t'),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                    c => out.push(c),
                }
            }
            Ok(out)
        }
        State::Literal if value.contains(['\'', '\n', '\r']) => Err(SubstError {
            line,
            problem: format!(
                "the value of {reference} contains a ' or a line break, which a single-quoted \
                 string cannot hold"
            ),
            expected: format!("a double-quoted string around {reference}"),
        }),
        State::MultiLiteral if value.contains("'''") => Err(SubstError {
            line,
            problem: format!(
                "the value of {reference} contains ''', which ends a multi-line literal string"
            ),
            expected: format!("a double-quoted string around {reference}"),
        }),
        _ => Ok(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn sub(text: &str, vars: &[(&str, &str)]) -> Result<String, SubstError> {
        substitute(text, &env(vars)).map(|s| s.text)
    }

    #[test]
    fn plain_and_default() {
        let vars = [("USER", "alice"), ("EMPTY", "")];
        assert_eq!(sub("u = \"${USER}\"", &vars).unwrap(), "u = \"alice\"");
        assert_eq!(sub("u = \"${USER:-bob}\"", &vars).unwrap(), "u = \"alice\"");
        assert_eq!(sub("u = \"${NOPE:-bob}\"", &vars).unwrap(), "u = \"bob\"");
        assert_eq!(sub("u = \"${NOPE:-}\"", &vars).unwrap(), "u = \"\"");
        assert_eq!(sub("u = \"${EMPTY:-bob}\"", &vars).unwrap(), "u = \"bob\"");
        assert_eq!(sub("u = \"${EMPTY}\"", &vars).unwrap(), "u = \"\"");
        assert_eq!(sub("u = \"${?NOPE}\"", &vars).unwrap(), "u = \"\"");
        assert_eq!(sub("u = \"${?USER}\"", &vars).unwrap(), "u = \"alice\"");
        assert_eq!(
            sub("u = \"a-${USER}-${USER}\"", &vars).unwrap(),
            "u = \"a-alice-alice\""
        );
        assert_eq!(
            sub("b = \"${NOPE:-kafka:9092,k2:9092}\"", &vars).unwrap(),
            "b = \"kafka:9092,k2:9092\""
        );
    }

    #[test]
    fn bare_values_are_inserted_as_written() {
        assert_eq!(sub("p = ${PORT:-8000}", &[]).unwrap(), "p = 8000");
        assert_eq!(sub("p = ${PORT:-8000}", &[("PORT", "9")]).unwrap(), "p = 9");
        assert_eq!(sub("e = ${ON}", &[("ON", "true")]).unwrap(), "e = true");
    }

    #[test]
    fn missing_variable_names_variable_and_line() {
        let err = sub("a = 1\n\nb = \"${KAFKA_PASSWORD}\"\n", &[]).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.problem.contains("KAFKA_PASSWORD"), "{err:?}");
        assert!(
            err.expected.contains("${KAFKA_PASSWORD:-default}"),
            "{err:?}"
        );
    }

    #[test]
    fn comments_are_left_alone() {
        let text = "# uses ${UNSET}\n  # ${ALSO_UNSET:-x}\na = \"${SET}\" # ${TRAILING}\n";
        assert_eq!(
            sub(text, &[("SET", "v")]).unwrap(),
            "# uses ${UNSET}\n  # ${ALSO_UNSET:-x}\na = \"v\" # ${TRAILING}\n"
        );
        // A `#` inside a string is not a comment.
        assert_eq!(
            sub("a = \"#${SET}\"", &[("SET", "v")]).unwrap(),
            "a = \"#v\""
        );
        assert_eq!(sub("a = '#${SET}'", &[("SET", "v")]).unwrap(), "a = '#v'");
    }

    #[test]
    fn dollar_dollar_escapes() {
        assert_eq!(sub("a = \"$${HOME}\"", &[]).unwrap(), "a = \"${HOME}\"");
        assert_eq!(
            sub("a = \"$$${X}\"", &[("X", "1")]).unwrap(),
            "a = \"$${X}\""
        );
        assert_eq!(
            sub("a = \"cost $5 ${X}\"", &[("X", "1")]).unwrap(),
            "a = \"cost $5 1\""
        );
        assert_eq!(sub("a = \"end $\"", &[]).unwrap(), "a = \"end $\"");
    }

    #[test]
    fn basic_strings_get_escaped_values() {
        let vars = [("PW", "p\"a\\ss\nword")];
        assert_eq!(
            sub("pw = \"${PW}\"", &vars).unwrap(),
            "pw = \"p\\\"a\\\\ss\\nword\""
        );
        assert_eq!(
            sub("pw = \"\"\"x${PW}\"\"\"", &vars).unwrap(),
            "pw = \"\"\"xp\\\"a\\\\ss\\nword\"\"\""
        );
        // Escaped quotes do not end the string, so the value is still escaped.
        assert_eq!(
            sub("pw = \"\\\"${PW}\"", &[("PW", "\"")]).unwrap(),
            "pw = \"\\\"\\\"\""
        );
        // After a string ends, values are bare again.
        assert_eq!(
            sub("a = \"x\" \nb = ${N}", &[("N", "\"q\"")]).unwrap(),
            "a = \"x\" \nb = \"q\""
        );
    }

    #[test]
    fn literal_strings() {
        assert_eq!(
            sub("r = '^${P}$'", &[("P", "a\\.b")]).unwrap(),
            "r = '^a\\.b$'"
        );
        let err = sub("r = '${P}'", &[("P", "it's")]).unwrap_err();
        assert!(err.problem.contains("${P}"), "{err:?}");
        assert!(
            !err.problem.contains("it's"),
            "values never appear in errors"
        );
        assert_eq!(
            sub("r = '''a\n${P}'''", &[("P", "it's")]).unwrap(),
            "r = '''a\nit's'''"
        );
        assert!(sub("r = '''${P}'''", &[("P", "x'''")]).is_err());
    }

    #[test]
    fn malformed_references() {
        for text in [
            "a = \"${\"",
            "a = \"${X\"\nb = \"}\"",
            "a = \"${}\"",
            "a = \"${1X}\"",
            "a = \"${A B}\"",
            "a = \"${?}\"",
        ] {
            let err = sub(text, &[("X", "1")]).unwrap_err();
            assert_eq!(err.line, 1, "{text:?}");
            assert!(err.expected.contains("$${"), "{err:?}");
        }
    }

    #[test]
    fn non_ascii_text_is_fine() {
        let text = "# größe ${X}\na = \"ünï ${X} ç\" # ✓\nb = 'µ${X}'\nc = \"\"\"é\\\"\"\"\n";
        assert_eq!(
            sub(text, &[("X", "€")]).unwrap(),
            "# größe ${X}\na = \"ünï € ç\" # ✓\nb = 'µ€'\nc = \"\"\"é\\\"\"\"\n"
        );
    }

    #[test]
    fn offsets_map_back_to_the_original() {
        let input = "a = \"${X}\"\nb = ?";
        let s = substitute(input, &env(&[("X", "long value")])).unwrap();
        let q = s.text.find('?').unwrap();
        assert_eq!(s.original_offset(q), input.find('?').unwrap());
        let inside = s.text.find("value").unwrap();
        assert_eq!(s.original_offset(inside), input.find('$').unwrap());
        assert_eq!(s.original_offset(0), 0);
        assert_eq!(line_of(input, input.find('?').unwrap()), 2);
    }
}
