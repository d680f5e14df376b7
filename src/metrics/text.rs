//! The text of the exposition on its way out: a small buffer of whole lines handed to a
//! [`Sink`] (the gzip stream, or a `String`) every few tens of KiB, so no full copy of the
//! text is ever held, and the one number format of every sample value.

use std::fmt::{self, Write as _};

/// Buffered text is handed to the sink once it reaches this size (at a line's end).
const FLUSH_AT: usize = 32 * 1024;

/// Where rendered text goes.
pub(super) trait Sink {
    fn write(&mut self, text: &str);
}

impl Sink for String {
    fn write(&mut self, text: &str) {
        self.push_str(text);
    }
}

/// Text on its way to a sink, in whole lines, counting the sample lines.
pub(super) struct TextBuf<'a> {
    buf: String,
    sink: &'a mut dyn Sink,
    series: usize,
}

impl<'a> TextBuf<'a> {
    pub(super) fn new(sink: &'a mut dyn Sink) -> Self {
        TextBuf {
            buf: String::with_capacity(FLUSH_AT + 4096),
            sink,
            series: 0,
        }
    }

    /// Where to append the next line.
    pub(super) fn line(&mut self) -> &mut String {
        &mut self.buf
    }

    /// After appending a sample line.
    pub(super) fn end_sample(&mut self) {
        self.series += 1;
        self.end_line();
    }

    /// After appending a comment line (`# HELP`, `# TYPE`, `# EOF`).
    pub(super) fn end_line(&mut self) {
        if self.buf.len() >= FLUSH_AT {
            self.sink.write(&self.buf);
            self.buf.clear();
        }
    }

    /// Hand the rest to the sink; returns the number of sample lines written.
    pub(super) fn finish(self) -> usize {
        if !self.buf.is_empty() {
            self.sink.write(&self.buf);
        }
        self.series
    }
}

/// Smallest magnitude (exclusive) of an `i64`: integer-valued floats in
/// `[-I64_LIMIT, I64_LIMIT)` convert to `i64` exactly.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// Append `v` as a sample value: integer values (within `i64`'s range) as integers
/// (`4`, not `4.0`); other finite values in the shortest form that reads back as the same
/// `f64` (`5.977897`), with an exponent below 1e-4 and beyond `i64` (`1.5e-7`, `1e21`);
/// `NaN`, `+Inf`, `-Inf`. Prometheus and OpenMetrics parsers read all of them.
pub(super) fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && (-I64_LIMIT..I64_LIMIT).contains(&v) {
        // Exact: an integer-valued f64 in range converts without rounding (-0.0 gives 0).
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else if v.fract() != 0.0 && v.abs() >= 1e-4 {
        // Rust's float formatting gives the shortest digits that read back exactly.
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

/// prometheus-client's text with every sample value rewritten by [`push_f64`]:
/// prometheus-client writes floats with `dtoa` (`4.0`, and not always the shortest digits:
/// `5.9778970000000009` for the f64 whose shortest form is `5.9778970000000005`) and offers
/// no other float encoding. Integers (its counters and
/// `i64` gauges, by `itoa`) pass unchanged. A sample line's value is its last
/// space-separated token: the exposition has no timestamps or exemplars, and no label
/// value ends a line.
pub(super) struct Normalized<'a, 'b> {
    out: &'a mut TextBuf<'b>,
    line: String,
}

impl<'a, 'b> Normalized<'a, 'b> {
    pub(super) fn new(out: &'a mut TextBuf<'b>) -> Self {
        Normalized {
            out,
            line: String::with_capacity(512),
        }
    }

    fn emit(&mut self) {
        let line = self.line.as_str();
        let body = line.strip_suffix('\n').unwrap_or(line);
        if body.starts_with('#') {
            self.out.line().push_str(line);
            self.out.end_line();
        } else {
            let rewrite = body
                .rsplit_once(' ')
                .filter(|(_, value)| !is_integer(value))
                .and_then(|(head, value)| Some((head, value.parse::<f64>().ok()?)));
            let out = self.out.line();
            match rewrite {
                Some((head, v)) => {
                    out.push_str(head);
                    out.push(' ');
                    push_f64(out, v);
                    out.push('\n');
                }
                None => out.push_str(line),
            }
            self.out.end_sample();
        }
        self.line.clear();
    }
}

impl fmt::Write for Normalized<'_, '_> {
    fn write_str(&mut self, mut s: &str) -> fmt::Result {
        while let Some(i) = s.find('\n') {
            self.line.push_str(&s[..=i]);
            self.emit();
            s = &s[i + 1..];
        }
        self.line.push_str(s);
        Ok(())
    }
}

impl Drop for Normalized<'_, '_> {
    /// A last line without its newline (prometheus-client always ends lines; kept anyway).
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}

/// `-?[0-9]+`: what `itoa` writes.
fn is_integer(token: &str) -> bool {
    let digits = token.strip_prefix('-').unwrap_or(token);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut s = String::new();
        push_f64(&mut s, v);
        s
    }

    #[test]
    fn integers_print_as_integers_and_floats_in_their_shortest_exact_form() {
        let table: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (4.0, "4"),
            (-3.0, "-3"),
            (42.0, "42"),
            (1e15, "1000000000000000"),
            (1e18, "1000000000000000000"),
            // The largest f64 below 2^63, and -2^63: still i64.
            (9_223_372_036_854_774_784.0, "9223372036854774784"),
            (-I64_LIMIT, "-9223372036854775808"),
            // 2^63 and beyond: out of i64's range, exponent form.
            (I64_LIMIT, "9.223372036854776e18"),
            (1e21, "1e21"),
            (-1e21, "-1e21"),
            (f64::MAX, "1.7976931348623157e308"),
            (0.1, "0.1"),
            (12.5, "12.5"),
            (-10.25, "-10.25"),
            (5.977897, "5.977897"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (1.5e-7, "1.5e-7"),
            (-2.5e-5, "-2.5e-5"),
            (5e-324, "5e-324"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in table {
            assert_eq!(f(*v), *want, "{v:?}");
        }
        // A poll time of 5,977,897 ns as seconds × 1000 (dtoa printed 5.9778970000000009),
        // and as the exposition computes it now (one rounding).
        let ns = std::time::Duration::from_nanos(5_977_897);
        assert_eq!(f(ns.as_secs_f64() * 1000.0), "5.9778970000000005");
        assert_eq!(f(ns.as_nanos() as f64 / 1e6), "5.977897");
    }

    #[test]
    fn every_value_reads_back_as_the_same_f64() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let v = f64::from_bits(state.wrapping_mul(0x2545_f491_4f6c_dd1d));
            let text = f(v);
            let back: f64 = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(
                back.to_bits() == v.to_bits() || (v.is_nan() && back.is_nan()) || v == 0.0,
                "{v:?} printed as {text} reads back as {back:?}"
            );
        }
    }

    #[test]
    fn normalized_rewrites_sample_values_only() {
        let mut text = String::new();
        let mut out = TextBuf::new(&mut text);
        {
            let mut n = Normalized::new(&mut out);
            for piece in [
                "# HELP x Help with 1.0 in it.\n# TYPE x gauge\n",
                "x{a=\"b c 2.0\"} 4.0\n",
                "x{a=\"\"} 5.9778970000000009\nx 12",
                "\ny_bucket{le=\"1.0\"} 3\ny_sum -0.0\nz inf\nz -inf\nz NaN\nz -7\n",
            ] {
                n.write_str(piece).expect("write");
            }
        }
        assert_eq!(out.finish(), 9);
        assert_eq!(
            text,
            "# HELP x Help with 1.0 in it.\n# TYPE x gauge\n\
             x{a=\"b c 2.0\"} 4\n\
             x{a=\"\"} 5.9778970000000005\nx 12\n\
             y_bucket{le=\"1.0\"} 3\ny_sum 0\nz +Inf\nz -Inf\nz NaN\nz -7\n"
        );
    }

    #[test]
    fn text_reaches_the_sink_in_whole_lines() {
        struct Lines(Vec<String>);
        impl Sink for Lines {
            fn write(&mut self, text: &str) {
                self.0.push(text.to_string());
            }
        }
        let mut sink = Lines(Vec::new());
        let mut out = TextBuf::new(&mut sink);
        for i in 0..10_000 {
            let _ = writeln!(out.line(), "series_{i} {i}");
            out.end_sample();
        }
        assert_eq!(out.finish(), 10_000);
        assert!(sink.0.len() > 2, "{} writes", sink.0.len());
        assert!(sink.0.iter().all(|w| w.ends_with('\n')));
        let joined: String = sink.0.concat();
        assert_eq!(joined.lines().count(), 10_000);
    }
}
