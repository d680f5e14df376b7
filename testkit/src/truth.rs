//! Expected exporter series, from the workload's [`Ledger`]: what fault tests compare every
//! scrape with. Offsets are exact; a time lag is the age of the record a consumer at the
//! committed offset receives next, at some moment of a [`Window`].

use super::exporter::Metrics;
use super::ledger::Ledger;

/// When the exporter computed lag: at the end of a cycle that started at or after
/// `start_ms` and finished before `end_ms` (the scrape).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    /// The accepted range of a time lag for a record with timestamp `ts_ms`: the age of
    /// the record anywhere in the window, ± 1 s.
    pub fn age_range(&self, ts_ms: i64) -> (f64, f64) {
        (
            (self.start_ms - ts_ms) as f64 / 1000.0 - 1.0,
            (self.end_ms - ts_ms) as f64 / 1000.0 + 1.0,
        )
    }
}

/// One expected group × partition row.
#[derive(Clone, Debug)]
pub struct Row {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub high: i64,
    pub lag: i64,
    /// Inclusive range of the time lag; (0, 0) when the group has nothing left to consume.
    pub lag_seconds: (f64, f64),
    /// The offset whose record's age the time lag is (None when lag is 0).
    pub sampled_offset: Option<i64>,
}

/// Every committed group × partition of the ledger, per the contract of issue 16.
pub fn rows(ledger: &Ledger, window: Window) -> Vec<Row> {
    ledger
        .commits()
        .map(|(group, topic, partition, committed)| {
            let next = ledger
                .lag_timestamp(topic, partition, committed)
                .and_then(|_| ledger.next_consumable(topic, partition, committed));
            Row {
                group: group.to_owned(),
                topic: topic.to_owned(),
                partition,
                committed,
                high: ledger.high_watermark(topic, partition),
                lag: ledger.lag(group, topic, partition).unwrap_or(0),
                lag_seconds: next
                    .map_or((0.0, 0.0), |r| window.age_range(r.effective_timestamp_ms())),
                sampled_offset: next.map(|r| r.offset),
            }
        })
        .collect()
}

/// Whether a series may be missing from a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Every expected series must be there.
    Required,
    /// A series may be absent; one that is present must be right.
    Optional,
}

/// Every discrepancy between the scrape and the ledger, one line each: watermarks of every
/// partition the workload created, and per committed group × partition the committed
/// offset, the lag and the time lag (with flags "false": no compaction, no data loss).
/// `time_lag` applies to `kafka_consumergroup_group_lag_seconds`, `offsets` to the rest.
pub fn check(
    m: &Metrics,
    ledger: &Ledger,
    window: Window,
    cluster: &str,
    offsets: Presence,
    time_lag: Presence,
) -> Vec<String> {
    let mut bad = Vec::new();
    for (topic, count) in ledger.topics() {
        for p in 0..count {
            let ps = p.to_string();
            let labels = [
                ("cluster_name", cluster),
                ("topic", topic),
                ("partition", ps.as_str()),
            ];
            let want = ledger.high_watermark(topic, p) as f64;
            exact(
                m,
                "kafka_partition_latest_offset",
                &labels,
                want,
                offsets,
                &mut bad,
            );
        }
    }
    for r in rows(ledger, window) {
        let ps = r.partition.to_string();
        let labels = [
            ("cluster_name", cluster),
            ("group", r.group.as_str()),
            ("topic", r.topic.as_str()),
            ("partition", ps.as_str()),
        ];
        let f = "kafka_consumergroup_group_";
        exact(
            m,
            &format!("{f}offset"),
            &labels,
            r.committed as f64,
            offsets,
            &mut bad,
        );
        exact(
            m,
            &format!("{f}lag"),
            &labels,
            r.lag as f64,
            offsets,
            &mut bad,
        );
        let name = format!("{f}lag_seconds");
        match m.find(&name, &labels).as_slice() {
            [] if time_lag == Presence::Required => bad.push(format!(
                "missing: {name} {labels:?} (want {:?}, record at offset {:?})",
                r.lag_seconds, r.sampled_offset
            )),
            [] => {}
            [s] => {
                let flags = (
                    s.labels.get("compaction_detected").map(String::as_str),
                    s.labels.get("data_loss_detected").map(String::as_str),
                );
                if flags != (Some("false"), Some("false")) {
                    bad.push(format!(
                        "{name} {labels:?}: flags {flags:?}, want false, false"
                    ));
                }
                let v = s.value;
                let (lo, hi) = r.lag_seconds;
                let ok = if r.lag == 0 {
                    v == 0.0
                } else {
                    (lo..=hi).contains(&v)
                };
                if !ok {
                    bad.push(format!(
                        "{name} {labels:?} = {v}, want within [{lo:.3}, {hi:.3}] (committed {}, high {}, lag {}, age of the record at offset {:?})",
                        r.committed, r.high, r.lag, r.sampled_offset
                    ));
                }
            }
            many => bad.push(format!("{name} {labels:?}: {} series {many:?}", many.len())),
        }
    }
    bad
}

fn exact(
    m: &Metrics,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
    presence: Presence,
    bad: &mut Vec<String>,
) {
    match m.find(name, labels).as_slice() {
        [] if presence == Presence::Required => {
            bad.push(format!("missing: {name} {labels:?} (want {want})"))
        }
        [] => {}
        [s] if s.value == want => {}
        [s] => bad.push(format!("{name} {labels:?} = {}, want {want}", s.value)),
        many => bad.push(format!("{name} {labels:?}: {} series {many:?}", many.len())),
    }
}
