//! Human-readable durations: `"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"1m30s"`, `"1m 30s"`.
//!
//! klag-exporter reads durations with `humantime`, so tidemark accepts the same unit
//! spellings (`s`, `sec`, `secs`, `second`, `seconds`, `m`, `min`, `minutes`, …) from
//! nanoseconds up to weeks, in any combination, with optional spaces between parts.
//! Decimal numbers (`"1.5s"`) are accepted as well; months and years are not.

use std::time::Duration;

const NANO: u128 = 1;
const MICRO: u128 = 1_000;
const MILLI: u128 = 1_000_000;
const SECOND: u128 = 1_000_000_000;
const MINUTE: u128 = 60 * SECOND;
const HOUR: u128 = 60 * MINUTE;
const DAY: u128 = 24 * HOUR;
const WEEK: u128 = 7 * DAY;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" | "nsec" | "nsecs" | "nanos" => NANO,
        "us" | "µs" | "μs" | "usec" | "usecs" | "micros" => MICRO,
        "ms" | "msec" | "msecs" | "millis" => MILLI,
        "s" | "sec" | "secs" | "second" | "seconds" => SECOND,
        "m" | "min" | "mins" | "minute" | "minutes" => MINUTE,
        "h" | "hr" | "hrs" | "hour" | "hours" => HOUR,
        "d" | "day" | "days" => DAY,
        "w" | "week" | "weeks" => WEEK,
        _ => return None,
    })
}

/// Parses a duration such as `"1m30s"`; `None` when the text is not one.
/// Every number needs a unit: a bare `"30"` is rejected, as in klag-exporter.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        rest = rest[num_end..].trim_start();
        let unit_end = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = rest[unit_end..].trim_start();
        total = total.checked_add(scaled(number, unit_nanos(unit)?)?)?;
    }
    let secs = u64::try_from(total / SECOND).ok()?;
    // The remainder is below one second, so it fits in u32.
    let nanos = u32::try_from(total % SECOND).ok()?;
    Some(Duration::new(secs, nanos))
}

/// `number` (digits with an optional fraction) times `unit` nanoseconds.
fn scaled(number: &str, unit: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int_value: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut value = int_value.checked_mul(unit)?;
    // Digits past the 18th cannot change a nanosecond count of any unit up to weeks.
    let frac = &frac[..frac.len().min(18)];
    if !frac.is_empty() {
        let frac_value: u128 = frac.parse().ok()?;
        let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
        value = value.checked_add(frac_value.checked_mul(unit)? / scale)?;
    }
    Some(value)
}

/// Formats a duration in the compact form [`parse_duration`] reads back exactly:
/// `"30s"`, `"1m30s"`, `"1h"`, `"1s500ms"`, `"0s"`.
pub fn format_duration(duration: Duration) -> String {
    let mut left = duration.as_nanos();
    if left == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, name) in [
        (HOUR, "h"),
        (MINUTE, "m"),
        (SECOND, "s"),
        (MILLI, "ms"),
        (MICRO, "us"),
        (NANO, "ns"),
    ] {
        let count = left / unit;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(name);
            left -= count * unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn accepted_forms() {
        let table: &[(&str, Duration)] = &[
            ("500ms", MS(500)),
            ("30s", S(30)),
            ("2m", S(120)),
            ("1h", S(3600)),
            ("1m30s", S(90)),
            ("1h2m3s4ms", MS(3_723_004)),
            ("1m 30s", S(90)),
            (" 30s ", S(30)),
            ("30 s", S(30)),
            ("0s", S(0)),
            ("0ms", S(0)),
            ("1d", S(86_400)),
            ("1w", S(604_800)),
            ("2days", S(172_800)),
            ("15sec", S(15)),
            ("15secs", S(15)),
            ("10 seconds", S(10)),
            ("5min", S(300)),
            ("5 minutes", S(300)),
            ("2hours", S(7200)),
            ("3hr", S(10_800)),
            ("1.5s", MS(1500)),
            ("0.5h", S(1800)),
            (".25s", MS(250)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("1s1s", S(2)),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text), Some(*want), "{text:?}");
        }
    }

    #[test]
    fn rejected_forms() {
        for text in [
            "",
            "   ",
            "30",
            "s",
            "30 parsecs",
            "-5s",
            "+5s",
            "1.2.3s",
            "1..s",
            ".s",
            "5 s x",
            "5S",
            "1M",
            "1y",
            "1m30",
            "ms30",
            "30s,",
            "99999999999999999999999999999999999999w",
        ] {
            assert_eq!(parse_duration(text), None, "{text:?} should be rejected");
        }
    }

    #[test]
    fn format_round_trips() {
        let table: &[(Duration, &str)] = &[
            (S(0), "0s"),
            (S(30), "30s"),
            (S(90), "1m30s"),
            (S(3600), "1h"),
            (S(86_400), "24h"),
            (MS(1500), "1s500ms"),
            (MS(500), "500ms"),
            (Duration::new(1, 2_003), "1s2us3ns"),
        ];
        for (duration, text) in table {
            assert_eq!(format_duration(*duration), *text);
            assert_eq!(parse_duration(text), Some(*duration));
        }
    }
}
