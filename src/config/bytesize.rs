//! Byte sizes: `"128MiB"`, `"64 MiB"`, `"512KiB"`, `"1GiB"`, `"100MB"`, `"4096B"`.
//!
//! Binary units (`KiB`, `MiB`, `GiB`, `TiB`: powers of 1024) and decimal ones (`KB`, `MB`,
//! `GB`, `TB`: powers of 1000, as Kafka's own docs use them) are both read, case
//! insensitive, so `"128mib"` works; a space between number and unit is allowed. As with
//! durations, a number in a string needs its unit: `"134217728"` is rejected rather than
//! guessed. Whole numbers only.

const UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Parses a byte size such as `"128MiB"`; `None` when the text is not one (or overflows).
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return None;
    }
    let unit = unit.trim_start().to_ascii_lowercase();
    let scale = UNITS.iter().find(|(name, _)| *name == unit)?.1;
    number.parse::<u64>().ok()?.checked_mul(scale)
}

/// Formats a byte size in the form [`parse_byte_size`] reads back exactly: the largest
/// binary unit that divides it (`"128MiB"`, `"1536KiB"`), else bytes (`"1000B"`).
pub fn format_byte_size(bytes: u64) -> String {
    for (name, scale) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes != 0 && bytes % scale == 0 {
            return format!("{}{name}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn accepted_forms() {
        let table: &[(&str, u64)] = &[
            ("128MiB", 128 * MIB),
            ("128 MiB", 128 * MIB),
            (" 128mib ", 128 * MIB),
            ("1GiB", 1024 * MIB),
            ("512KiB", MIB / 2),
            ("2TiB", 2 << 40),
            ("100MB", 100_000_000),
            ("64kb", 64_000),
            ("3GB", 3_000_000_000),
            ("1TB", 1_000_000_000_000),
            ("4096B", 4096),
            ("0B", 0),
        ];
        for (text, want) in table {
            assert_eq!(parse_byte_size(text), Some(*want), "{text:?}");
        }
    }

    #[test]
    fn rejected_forms() {
        for text in [
            "",
            "  ",
            "134217728",
            "MiB",
            "1.5GiB",
            "-1MiB",
            "+1MiB",
            "128 parsecs",
            "128Mi",
            "128MiBs",
            "1 2MiB",
            "128MiB,",
            "99999999999999999999MiB",
            "20000000TiB",
        ] {
            assert_eq!(parse_byte_size(text), None, "{text:?} should be rejected");
        }
    }

    #[test]
    fn format_round_trips() {
        let table: &[(u64, &str)] = &[
            (128 * MIB, "128MiB"),
            (MIB + MIB / 2, "1536KiB"),
            (1 << 30, "1GiB"),
            (3 << 40, "3TiB"),
            (1000, "1000B"),
            (0, "0B"),
        ];
        for (bytes, text) in table {
            assert_eq!(format_byte_size(*bytes), *text);
            assert_eq!(parse_byte_size(text), Some(*bytes));
        }
    }
}
