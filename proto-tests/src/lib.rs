//! Helpers shared by tidemark's byte-level conformance tests (`tests/*.rs`).
//!
//! * [`Golden`]: a golden request frame read from `golden/requests/*.hex` (hex text with
//!   `#` comments naming each field), and [`Golden::compare`], which explains a mismatch field
//!   by field;
//! * [`path`] / [`read`]: files of this crate (goldens and fixtures).
//!
//! See `README.md` for what is tested and how the goldens and fixtures are produced.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::PathBuf;

/// `proto-tests/<rel>`.
pub fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The bytes of `proto-tests/<rel>`, panicking with the path when it cannot be read.
pub fn read(rel: &str) -> Vec<u8> {
    let p = path(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Lowercase hex of `bytes`, a space every `group` bytes (0: no spaces).
pub fn hex(bytes: &[u8], group: usize) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if group > 0 && i > 0 && i % group == 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// One golden frame: its bytes, and which field each byte range belongs to.
#[derive(Debug, Clone)]
pub struct Golden {
    /// Where it was read from (for messages).
    pub source: String,
    pub bytes: Vec<u8>,
    /// `(byte range, field description)` per data line, in order, covering `bytes` exactly.
    pub fields: Vec<(Range<usize>, String)>,
}

impl Golden {
    /// Reads `proto-tests/<rel>`.
    pub fn load(rel: &str) -> Result<Self, String> {
        let p = path(rel);
        let text = std::fs::read_to_string(&p).map_err(|e| {
            format!(
                "cannot read {}: {e} (regenerate with `python3 proto-tests/golden/generate.py`)",
                p.display()
            )
        })?;
        Self::parse(rel, &text)
    }

    /// Parses golden hex text: `#` starts a comment; the rest of each line is hex digits
    /// (whitespace ignored); a data line's comment names its field.
    pub fn parse(source: &str, text: &str) -> Result<Self, String> {
        let mut bytes = Vec::new();
        let mut fields = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let (data, comment) = match line.split_once('#') {
                Some((d, c)) => (d, c.trim()),
                None => (line, ""),
            };
            let digits: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            if digits.is_empty() {
                continue;
            }
            let pairs = digits.chunks_exact(2);
            if !pairs.remainder().is_empty() {
                return Err(format!("{source}:{}: odd number of hex digits", n + 1));
            }
            let start = bytes.len();
            for pair in pairs {
                let s = std::str::from_utf8(pair).unwrap_or("??");
                let b = u8::from_str_radix(s, 16)
                    .map_err(|_| format!("{source}:{}: bad hex {s:?}", n + 1))?;
                bytes.push(b);
            }
            fields.push((start..bytes.len(), comment.to_string()));
        }
        if bytes.len() < 4 {
            return Err(format!("{source}: shorter than a size prefix"));
        }
        let size = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if usize::try_from(size).ok() != Some(bytes.len() - 4) {
            return Err(format!(
                "{source}: size prefix says {size} but {} bytes follow it",
                bytes.len() - 4
            ));
        }
        Ok(Self {
            source: source.to_string(),
            bytes,
            fields,
        })
    }

    /// The field the byte at `offset` belongs to.
    pub fn field_at(&self, offset: usize) -> &str {
        self.fields
            .iter()
            .find(|(r, _)| r.contains(&offset))
            .map_or("(past the end of the golden frame)", |(_, f)| f.as_str())
    }

    /// `Ok` when `actual` equals the golden bytes; otherwise a readable explanation: the first
    /// differing byte offset and the golden field it falls in, both byte windows around it, and
    /// a field-by-field listing with tidemark's bytes at the same offsets.
    pub fn compare(&self, what: &str, actual: &[u8]) -> Result<(), String> {
        let expected = &self.bytes[..];
        if expected == actual {
            return Ok(());
        }
        let first = expected
            .iter()
            .zip(actual)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(actual.len()));
        let mut m = String::new();
        let _ = writeln!(m, "{what}: tidemark's frame differs from {}", self.source);
        let _ = writeln!(
            m,
            "  lengths: golden {} bytes, tidemark {} bytes",
            expected.len(),
            actual.len()
        );
        let _ = writeln!(
            m,
            "  first difference at byte {first} (0x{first:x}), in golden field `{}`",
            self.field_at(first)
        );
        let window = first.saturating_sub(8)..first + 24;
        let clip = |b: &[u8]| -> String {
            let r = window.start.min(b.len())..window.end.min(b.len());
            hex(&b[r], 4)
        };
        let _ = writeln!(m, "  golden   [{}..]: {}", window.start, clip(expected));
        let _ = writeln!(m, "  tidemark [{}..]: {}", window.start, clip(actual));
        let _ = writeln!(
            m,
            "  field by field (golden | tidemark at the same offsets):"
        );
        for (range, field) in &self.fields {
            let theirs = actual
                .get(range.start.min(actual.len())..range.end.min(actual.len()))
                .unwrap_or_default();
            let ours = &expected[range.clone()];
            let mark = if ours == theirs { "  " } else { "!!" };
            let _ = writeln!(
                m,
                "   {mark} @{:<4} {:<26} | {:<26} {field}",
                range.start,
                short_hex(ours),
                short_hex(theirs)
            );
        }
        if actual.len() > expected.len() {
            let _ = writeln!(
                m,
                "   !! @{:<4} {:<26} | {:<26} (tidemark bytes past the golden frame)",
                expected.len(),
                "",
                short_hex(&actual[expected.len()..])
            );
        }
        let _ = writeln!(m, "  tidemark frame: {}", hex(actual, 0));
        Err(m)
    }
}

fn short_hex(b: &[u8]) -> String {
    if b.len() <= 12 {
        hex(b, 0)
    } else {
        format!("{}..({} B)", hex(&b[..8], 0), b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# comment\n00000003  # size = 3\n0001 # a = 1\n\n07 # b = 7\n";

    #[test]
    fn parses_hex_with_field_comments() {
        let g = Golden::parse("t", TEXT).unwrap();
        assert_eq!(g.bytes, [0, 0, 0, 3, 0, 1, 7]);
        assert_eq!(g.field_at(5), "a = 1");
        assert_eq!(g.field_at(6), "b = 7");
        assert!(g.compare("x", &[0, 0, 0, 3, 0, 1, 7]).is_ok());
    }

    #[test]
    fn explains_the_first_difference() {
        let g = Golden::parse("t", TEXT).unwrap();
        let err = g.compare("x", &[0, 0, 0, 3, 0, 2, 7, 9]).unwrap_err();
        assert!(err.contains("first difference at byte 5"), "{err}");
        assert!(err.contains("`a = 1`"), "{err}");
        assert!(err.contains("past the golden frame"), "{err}");
    }

    #[test]
    fn rejects_a_wrong_size_prefix() {
        let err = Golden::parse("t", "00000009 # size\n00\n").unwrap_err();
        assert!(err.contains("size prefix says 9"), "{err}");
    }
}
