//! The human output of `tidemark lag`: one table per group, worst first.
//!
//! ```text
//! cluster prod: 2 groups
//!
//! group orders-consumer (classic, Stable): max lag 15, max time lag 4m12s
//!   TOPIC   PARTITION  COMMITTED  HIGH WATERMARK  LAG  TIME LAG  MEMBER
//!   orders          5         20              35   15     4m12s  orders-1@10.0.0.7
//! ```

use std::fmt::Write as _;

use super::view::{ClusterView, Document, GroupView, PartitionView};

const HEADER: [&str; 7] = [
    "TOPIC",
    "PARTITION",
    "COMMITTED",
    "HIGH WATERMARK",
    "LAG",
    "TIME LAG",
    "MEMBER",
];
/// Columns aligned to the right (numbers and durations).
const RIGHT: [bool; 7] = [false, true, true, true, true, true, false];

/// A time lag for people: `-` when unknown, `0s`, `3.2s` below 10 s, `42s`, `4m12s`,
/// `2h03m12s`, `3d04h05m`. Seconds are truncated, never rounded up.
pub fn format_seconds(seconds: Option<f64>) -> String {
    let Some(s) = seconds.filter(|s| s.is_finite()) else {
        return "-".to_owned();
    };
    let s = s.max(0.0);
    if s == 0.0 {
        return "0s".to_owned();
    }
    if s < 10.0 {
        // Truncated to a tenth: 9.99 s is "9.9s", never "10.0s".
        return format!("{:.1}s", (s * 10.0).floor() / 10.0);
    }
    // Saturates for absurd values; u64 seconds is 584 billion years.
    let whole = s as u64;
    let (days, hours, minutes, secs) = (
        whole / 86_400,
        whole / 3_600 % 24,
        whole / 60 % 60,
        whole % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{minutes}m{secs:02}s"),
        (0, _, _) => format!("{hours}h{minutes:02}m{secs:02}s"),
        _ => format!("{days}d{hours:02}h{minutes:02}m"),
    }
}

/// `client-id@host` (a leading `/` of the host, as Kafka reports it, dropped), either
/// alone when the other is unknown, `-` when both are.
pub fn format_member(client_id: Option<&str>, host: Option<&str>) -> String {
    let host = host.map(|h| h.strip_prefix('/').unwrap_or(h));
    match (client_id, host) {
        (Some(c), Some(h)) => format!("{c}@{h}"),
        (Some(c), None) => c.to_owned(),
        (None, Some(h)) => h.to_owned(),
        (None, None) => "-".to_owned(),
    }
}

/// The whole document as text.
pub fn render(doc: &Document) -> String {
    let mut out = String::new();
    for (i, cluster) in doc.clusters.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        render_cluster(&mut out, cluster);
    }
    out
}

fn render_cluster(out: &mut String, cluster: &ClusterView) {
    if let Some(error) = &cluster.error {
        let _ = writeln!(out, "cluster {}: could not be read: {error}", cluster.name);
        return;
    }
    let n = cluster.groups.len();
    let _ = writeln!(
        out,
        "cluster {}: {n} group{}{}",
        cluster.name,
        if n == 1 { "" } else { "s" },
        if cluster.complete {
            ""
        } else {
            " (read in part: some brokers or items failed, see the warnings on stderr)"
        }
    );
    for group in &cluster.groups {
        out.push('\n');
        render_group(out, group);
    }
}

fn render_group(out: &mut String, g: &GroupView) {
    let _ = write!(out, "group {} ({}, {})", g.group, g.group_type, g.state);
    let Some(max_lag) = g.max_lag else {
        let _ = writeln!(out, ": committed offsets could not be read");
        return;
    };
    let _ = writeln!(
        out,
        ": max lag {max_lag}, max time lag {}{}",
        format_seconds(g.max_lag_seconds),
        if g.stale {
            " (stale: some values are from an earlier read)"
        } else {
            ""
        }
    );
    if g.partitions.is_empty() {
        let _ = writeln!(out, "  no committed offsets on the topics shown");
        return;
    }
    let rows: Vec<[String; 7]> = g.partitions.iter().map(cells).collect();
    table(out, &rows);
}

fn cells(p: &PartitionView) -> [String; 7] {
    [
        p.topic.clone(),
        p.partition.to_string(),
        p.committed.to_string(),
        p.high_watermark
            .map_or_else(|| "-".to_owned(), |h| h.to_string()),
        p.lag.to_string(),
        format_seconds(p.lag_seconds),
        format_member(p.member_client_id.as_deref(), p.member_host.as_deref()),
    ]
}

/// The header and `rows`, indented by two spaces, columns two spaces apart, each as wide
/// as its widest cell; the last column is not padded.
fn table(out: &mut String, rows: &[[String; 7]]) {
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header = HEADER.map(str::to_owned);
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            let w = widths[i];
            line.push(' ');
            if i + 1 == row.len() {
                line.push_str(cell);
            } else if RIGHT[i] {
                let _ = write!(line, "{cell:>w$} ");
            } else {
                let _ = write!(line, "{cell:<w$} ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
