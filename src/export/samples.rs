//! The samples of the exposition `/metrics` serves, read back from its stored text: the one
//! source both push exporters encode from, so what they push is what a scrape of the same
//! cycle returns, family for family and value for value.
//!
//! Why the stored text and not a second walk over the reports: the text is the only place
//! where every family exists (half of them are encoded by prometheus-client from its own
//! types), so a second walk would be a second encoder of every family to keep equal to the
//! first. Reading the text back costs inflating and parsing it, measured in
//! docs/benchmarks.md ("Push exporters"). The walk holds one 64 KiB chunk of text at a
//! time and stops whenever its sink is full, so an encoder sends a request and continues
//! from where it stopped: nothing of the size of the exposition is ever copied.

use std::sync::Arc;

use crate::metrics::{Compressed, CompressedError, Format, TextStream};

/// The type of a family, from its `# TYPE` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    #[default]
    Gauge,
    /// Samples named `<family>_total`.
    Counter,
    /// Samples named `<family>_bucket` (with `le`), `_sum` and `_count`.
    Histogram,
}

/// The family the following samples belong to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    /// The `# HELP` text, unescaped.
    pub help: String,
    pub kind: Kind,
}

/// A sample value as the exposition writes it: integers as integers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        }
    }
}

/// The labels of one sample, unescaped, in exposition order; reused from line to line.
#[derive(Debug, Default)]
pub struct Labels {
    text: String,
    /// (name start, name end, value end) in `text`; the value starts where the name ends.
    spans: Vec<(usize, usize, usize)>,
}

impl Labels {
    fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// (name, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.spans
            .iter()
            .map(|&(start, mid, end)| (&self.text[start..mid], &self.text[mid..end]))
    }
}

/// One sample line.
#[derive(Debug)]
pub struct Sample<'a> {
    /// The sample's name (`x_total` for counter `x`, `h_bucket` for histogram `h`).
    pub name: &'a str,
    pub labels: &'a Labels,
    pub value: Value,
}

/// Where [`Walk::feed`] hands samples.
pub trait SampleSink {
    /// Take one sample; true when full (the walk stops after it).
    fn sample(&mut self, family: &Family, sample: &Sample<'_>) -> bool;
}

/// The stored exposition is not what tidemark wrote (never expected).
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error(transparent)]
    Inflate(#[from] CompressedError),
    #[error("the stored exposition has a line that is not a sample: {0:?}")]
    Malformed(String),
}

/// A walk over the samples of one exposition (OpenMetrics text, inflated chunk by chunk).
pub struct Walk {
    stream: TextStream,
    /// Text not yet parsed starts at `pos`; whole lines are parsed, a partial one waits for
    /// the next chunk.
    buf: Vec<u8>,
    pos: usize,
    family: Family,
    labels: Labels,
    done: bool,
}

impl Walk {
    pub fn new(exposition: &Arc<Compressed>) -> Self {
        Walk {
            stream: exposition.text(Format::OpenMetrics),
            buf: Vec::new(),
            pos: 0,
            family: Family::default(),
            labels: Labels::default(),
            done: false,
        }
    }

    /// Hand samples to `sink` until it is full or the exposition ends; true while samples
    /// remain.
    pub fn feed(&mut self, sink: &mut dyn SampleSink) -> Result<bool, WalkError> {
        loop {
            let Some(line_end) = self.next_line()? else {
                return Ok(false);
            };
            let start = self.pos;
            self.pos = line_end + 1;
            let line = std::str::from_utf8(&self.buf[start..line_end])
                .map_err(|_| WalkError::Malformed("(not UTF-8)".into()))?;
            if let Some(comment) = line.strip_prefix('#') {
                read_comment(comment, &mut self.family);
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let (name, value) = parse_sample(line, &mut self.labels)
                .ok_or_else(|| WalkError::Malformed(line.chars().take(120).collect()))?;
            let sample = Sample {
                name,
                labels: &self.labels,
                value,
            };
            if sink.sample(&self.family, &sample) {
                return Ok(!self.done || self.pos < self.buf.len());
            }
        }
    }

    /// The end of the next whole line in `buf` (reading chunks as needed); a last line
    /// without a newline gets one. None at the end.
    fn next_line(&mut self) -> Result<Option<usize>, WalkError> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                return Ok(Some(self.pos + i));
            }
            if self.done {
                if self.pos < self.buf.len() {
                    self.buf.push(b'\n');
                    continue;
                }
                return Ok(None);
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            match self.stream.next() {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => self.done = true,
            }
        }
    }
}

/// `# HELP name text` / `# TYPE name type`; other comments (`# EOF`, `# UNIT`) are skipped.
fn read_comment(comment: &str, family: &mut Family) {
    if let Some(rest) = comment.strip_prefix(" HELP ") {
        let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
        family.name = name.to_owned();
        family.help = unescape(help);
        family.kind = Kind::Gauge;
    } else if let Some(rest) = comment.strip_prefix(" TYPE ") {
        let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
        if family.name != name {
            family.name = name.to_owned();
            family.help.clear();
        }
        family.kind = match kind {
            "counter" => Kind::Counter,
            "histogram" => Kind::Histogram,
            _ => Kind::Gauge,
        };
    }
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_unescaped(&mut out, text);
    out
}

/// Append `text` with `\\`, `\"` and `\n` unescaped.
fn push_unescaped(out: &mut String, text: &str) {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
}

/// `name{k="v",…} value` or `name value`: the name and value, the labels into `labels`.
fn parse_sample<'a>(line: &'a str, labels: &mut Labels) -> Option<(&'a str, Value)> {
    labels.clear();
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        rest = parse_labels(inner, labels)?;
    }
    let token = rest.strip_prefix(' ')?;
    // tidemark writes no timestamps or exemplars: the value is the rest of the line.
    Some((name, parse_value(token)?))
}

/// The labels after `{`, up to and including `}`; returns what follows.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Labels) -> Option<&'a str> {
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some(after);
        }
        let eq = rest.find("=\"")?;
        let start = labels.text.len();
        labels.text.push_str(&rest[..eq]);
        let mid = labels.text.len();
        rest = &rest[eq + 2..];
        // The closing quote: the first `"` not escaped by a backslash.
        let bytes = rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        let raw = rest.get(..i)?;
        if raw.contains('\\') {
            push_unescaped(&mut labels.text, raw);
        } else {
            labels.text.push_str(raw);
        }
        labels.spans.push((start, mid, labels.text.len()));
        rest = rest.get(i + 1..)?;
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(token: &str) -> Option<Value> {
    let digits = token.strip_prefix('-').unwrap_or(token);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = token.parse::<i64>() {
            return Some(Value::Int(v));
        }
    }
    let v = match token {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => token.parse::<f64>().ok()?,
    };
    Some(Value::Float(v))
}

/// Feed every sample of an exposition's text to `sink`, ignoring "full" (for tests of
/// the encoders against golden files).
#[cfg(test)]
pub(crate) fn feed_text(text: &str, sink: &mut dyn SampleSink) {
    let mut family = Family::default();
    let mut labels = Labels::default();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            read_comment(comment, &mut family);
        } else if !line.is_empty() {
            let (name, value) = parse_sample(line, &mut labels).expect("a sample line");
            let sample = Sample {
                name,
                labels: &labels,
                value,
            };
            sink.sample(&family, &sample);
        }
    }
}

#[cfg(test)]
mod tests;
