//! The families with one series per partition or per group partition (nearly every series
//! at scale), written straight into the output text.
//!
//! prometheus-client writes each `,`, label key, `="`, value and `"` through a `&mut dyn
//! fmt::Write`, one call per piece (about 45 calls for a group partition's series), and
//! scans each value for characters to escape as it goes. This encoder appends the same
//! bytes with `String::push_str`: the labels common to a cluster (`cluster_name` and the
//! custom ones) are escaped once per render, and label values are escaped the same way
//! (`\` → `\\`, `"` → `\"`, newline → `\n`, nothing else). Integers are written by `itoa`
//! (as prometheus-client does), floats in the exposition's number format
//! ([`push_f64`]). The output must stay byte-identical to prometheus-client's after its
//! values are put in that format: `direct_tests.rs` compares both encodings of reports full
//! of edge cases.

use super::text::{push_f64, TextBuf};
use super::ClusterView;
use crate::config::Granularity;
use crate::lag::{GroupPartitionLag, LagReport, PartitionOffsets};

/// A gauge family with one series per partition: name, help, value.
type PartitionFamily = (&'static str, &'static str, fn(&PartitionOffsets) -> i64);

const PARTITION_FAMILIES: [PartitionFamily; 2] = [
    (
        "kafka_partition_latest_offset",
        "High watermark of the partition.",
        |p| p.high,
    ),
    (
        "kafka_partition_earliest_offset",
        "Low watermark (log start offset) of the partition.",
        |p| p.low,
    ),
];

/// A sample value: offsets and counts are integers, times and ratios floats.
#[derive(Clone, Copy)]
enum Value {
    Int(i64),
    Float(f64),
}

/// A gauge family with one series per group partition.
struct GroupPartitionFamily {
    name: &'static str,
    help: &'static str,
    /// None: no series for this row.
    value: fn(&GroupPartitionLag) -> Option<Value>,
    /// Whether the `compaction_detected` and `data_loss_detected` labels follow.
    flags: bool,
}

const GROUP_PARTITION_FAMILIES: [GroupPartitionFamily; 6] = [
    GroupPartitionFamily {
        name: "kafka_consumergroup_group_offset",
        help: "Committed offset of the group on the partition.",
        value: |r| Some(Value::Int(r.committed)),
        flags: false,
    },
    GroupPartitionFamily {
        name: "kafka_consumergroup_group_lag",
        help:
            "Offset lag: high watermark minus committed offset (records deleted unread included).",
        value: |r| Some(Value::Int(r.lag())),
        flags: false,
    },
    GroupPartitionFamily {
        name: "kafka_consumergroup_group_lag_seconds",
        help: "Age of the record at the committed offset (0 when caught up).",
        value: |r| r.lag_seconds().map(Value::Float),
        flags: true,
    },
    GroupPartitionFamily {
        name: "kafka_consumergroup_group_messages_lost",
        help: "Records deleted by retention before the group consumed them.",
        value: |r| Some(Value::Int(r.messages_lost())),
        flags: false,
    },
    GroupPartitionFamily {
        name: "kafka_consumergroup_group_retention_margin",
        help: "Committed offset minus low watermark (negative means data loss).",
        value: |r| Some(Value::Int(r.retention_margin())),
        flags: false,
    },
    GroupPartitionFamily {
        name: "kafka_consumergroup_group_lag_retention_ratio",
        help: "Offset lag as a percentage of the retained offset range.",
        value: |r| Some(Value::Float(r.retention_ratio())),
        flags: false,
    },
];

/// Append `value` escaped as an OpenMetrics label value (what prometheus-client does).
fn push_escaped(out: &mut String, value: &str) {
    // The common case: nothing to escape (a branch-free scan, like prometheus-client's).
    let special = value
        .bytes()
        .fold(false, |found, b| found | matches!(b, b'\\' | b'"' | b'\n'));
    if !special {
        out.push_str(value);
        return;
    }
    let mut last = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        // `i` is at an ASCII byte, so a char boundary.
        out.push_str(&value[last..i]);
        out.push_str(escaped);
        last = i + 1;
    }
    out.push_str(&value[last..]);
}

/// Append `,key="value"` (the value escaped).
fn push_label(out: &mut String, key: &str, value: &str) {
    out.push(',');
    out.push_str(key);
    out.push_str("=\"");
    push_escaped(out, value);
    out.push('"');
}

/// The `# HELP` and `# TYPE` lines of a gauge family.
fn push_gauge_descriptor(text: &mut TextBuf<'_>, name: &str, help: &str) {
    let out = text.line();
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push_str(" gauge\n");
    text.end_line();
}

/// A [`ClusterView`] prepared for encoding: its report and the labels of its every series,
/// `cluster_name="…"` then the custom ones, escaped (no braces, no trailing comma).
struct PreparedView<'a> {
    report: &'a LagReport,
    labels: String,
}

impl<'a> PreparedView<'a> {
    fn new(view: &'a ClusterView, report: &'a LagReport) -> Self {
        let mut labels = String::with_capacity(64);
        labels.push_str("cluster_name=\"");
        push_escaped(&mut labels, &view.name);
        labels.push('"');
        for (key, value) in &view.labels {
            push_label(&mut labels, key, value);
        }
        PreparedView { report, labels }
    }
}

/// Append the per-partition and (at granularity partition) per-group-partition families of
/// every cluster that has a report, as prometheus-client's text encoder would: these are
/// the first families of the exposition, the rest follows through prometheus-client.
pub(super) fn encode(text: &mut TextBuf<'_>, clusters: &[ClusterView], granularity: Granularity) {
    let clusters: Vec<PreparedView<'_>> = clusters
        .iter()
        .filter_map(|c| c.report.as_deref().map(|r| PreparedView::new(c, r)))
        .collect();
    let mut int = itoa::Buffer::new();

    for (name, help, value) in PARTITION_FAMILIES {
        push_gauge_descriptor(text, name, help);
        for c in clusters.iter().filter(|c| c.report.partition_series) {
            for p in &c.report.partitions {
                let out = text.line();
                out.push_str(name);
                out.push('{');
                out.push_str(&c.labels);
                push_label(out, "topic", &p.tp.topic);
                out.push_str(",partition=\"");
                out.push_str(int.format(p.tp.partition));
                out.push_str("\"} ");
                out.push_str(int.format(value(p)));
                out.push('\n');
                text.end_sample();
            }
        }
    }

    if granularity != Granularity::Partition {
        return;
    }
    for family in &GROUP_PARTITION_FAMILIES {
        push_gauge_descriptor(text, family.name, family.help);
        for c in &clusters {
            for row in c.report.rows() {
                let Some(v) = (family.value)(&row) else {
                    continue;
                };
                let out = text.line();
                out.push_str(family.name);
                out.push('{');
                out.push_str(&c.labels);
                push_label(out, "group", row.group_name());
                push_label(out, "topic", &row.tp.topic);
                out.push_str(",partition=\"");
                out.push_str(int.format(row.tp.partition));
                out.push('"');
                let (host, consumer, client) = match &row.member {
                    Some(m) => (
                        m.host.as_str(),
                        m.consumer_id.as_str(),
                        m.client_id.as_str(),
                    ),
                    None => ("", "", ""),
                };
                push_label(out, "member_host", host);
                push_label(out, "consumer_id", consumer);
                push_label(out, "client_id", client);
                if family.flags {
                    out.push_str(",compaction_detected=\"");
                    out.push_str(flag(row.compaction_detected));
                    out.push_str("\",data_loss_detected=\"");
                    out.push_str(flag(row.data_loss()));
                    out.push('"');
                }
                out.push_str("} ");
                match v {
                    Value::Int(v) => out.push_str(int.format(v)),
                    Value::Float(v) => push_f64(out, v),
                }
                out.push('\n');
                text.end_sample();
            }
        }
    }
}

fn flag(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}
