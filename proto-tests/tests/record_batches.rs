//! Record-batch fixtures: the timestamp of the record at an offset.
//!
//! `fixtures/records/*.bin` hold the raw `records` bytes of one Fetch partition, encoded by
//! kafka-python and librdkafka (every codec, xerial and raw snappy, LogAppendTime,
//! transactions with control batches, a truncated tail); `manifest.json` says what each
//! offset must decode to (see fixtures/README.md). For every file:
//!
//! * each record's offset → exactly that record, its `expected_timestamp_ms` and the file's
//!   timestamp type;
//! * a control marker's offset, or an aborted record's offset when the aborted-transaction
//!   list is given → the next visible record;
//! * past the last offset → `Lookup::Missing` (truncated only for the truncated file);
//! * every prefix of the bytes (a Fetch cut anywhere) → no panic, no error, and the right
//!   record whenever its batch is complete in the prefix; otherwise the right record if it
//!   arrived in the cut batch, or `Missing` with `truncated` telling whether a partial batch
//!   was cut off — never a wrong timestamp.

use std::collections::BTreeMap;

use serde_json::Value;
use tidemark::kafka::records::{
    record_at, AbortedTxn, Lookup, RecordAt, RecordsError, TimestampType,
};

/// The largest batch tidemark fetches whole (Fetch's 256 KiB partition cap).
const WHOLE: usize = 256 << 10;

#[derive(Debug, Clone)]
struct Record {
    offset: i64,
    /// `None` for control markers.
    timestamp_ms: Option<i64>,
    control: bool,
    aborted: bool,
}

#[derive(Debug, Clone)]
struct Batch {
    base_offset: i64,
    last_offset: i64,
    /// Byte range of the batch in the file.
    start: usize,
    end: usize,
    transactional: bool,
    producer_id: i64,
}

#[derive(Debug)]
struct Case {
    name: String,
    bytes: Vec<u8>,
    timestamp_type: TimestampType,
    records: Vec<Record>,
    /// Complete batches, in order.
    batches: Vec<Batch>,
    /// The file ends in a partial batch, cut from this file.
    truncated: bool,
    truncated_from: Option<String>,
    /// For a truncated file: the batch it cuts (ending past the file), and its records.
    cut: Option<(Batch, Vec<Record>)>,
    high_watermark: i64,
    /// What a READ_COMMITTED Fetch from Apache Kafka would list (empty for most files).
    aborted: Vec<AbortedTxn>,
}

fn int(v: &Value, what: &str) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("manifest field {what} is not an integer: {v}"))
}

/// Every fixture. A truncated file also gets the records and the batch its cut came from
/// (from `truncated_from`), so the records that arrived in the cut batch can be checked.
fn cases() -> Vec<Case> {
    let mut cases = fixture_cases();
    let sources: Vec<(String, Vec<Record>, Vec<Batch>)> = cases
        .iter()
        .map(|c| (c.name.clone(), c.records.clone(), c.batches.clone()))
        .collect();
    for case in cases.iter_mut().filter(|c| c.truncated) {
        let from = case.truncated_from.clone().expect("truncated_from");
        let (_, records, batches) = sources
            .iter()
            .find(|(name, _, _)| *name == from)
            .unwrap_or_else(|| panic!("{}: no fixture {from}", case.name));
        let end = case.batches.last().map_or(0, |b| b.end);
        let cut = batches
            .iter()
            .find(|b| b.start == end && b.end > case.bytes.len())
            .unwrap_or_else(|| panic!("{}: no batch of {from} at byte {end}", case.name))
            .clone();
        assert_eq!(
            case.bytes[..],
            proto_tests::read(&format!("fixtures/records/{from}"))[..case.bytes.len()],
            "{}: not a prefix of {from}",
            case.name
        );
        let cut_records = records
            .iter()
            .filter(|r| (cut.base_offset..=cut.last_offset).contains(&r.offset))
            .cloned()
            .collect();
        case.cut = Some((cut, cut_records));
    }
    cases
}

fn fixture_cases() -> Vec<Case> {
    let manifest: Value =
        serde_json::from_slice(&proto_tests::read("fixtures/records/manifest.json"))
            .expect("manifest.json");
    assert_eq!(manifest["format"], 1, "manifest format");
    let files = manifest["files"].as_object().expect("files");
    // The manifest describes exactly the .bin files of the directory.
    let dir = proto_tests::path("fixtures/records");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    on_disk.sort();
    let listed: Vec<String> = files.keys().cloned().collect();
    assert_eq!(listed, on_disk, "manifest.json vs fixtures/records/*.bin");
    assert!(files.len() >= 13, "manifest lists {} files", files.len());
    files
        .iter()
        .map(|(name, f)| {
            let bytes = proto_tests::read(&format!("fixtures/records/{name}"));
            assert_eq!(
                bytes.len() as i64,
                int(&f["size_bytes"], "size_bytes"),
                "{name}"
            );
            let timestamp_type = match f["timestamp_type"].as_str() {
                Some("CreateTime") => TimestampType::CreateTime,
                Some("LogAppendTime") => TimestampType::LogAppendTime,
                other => panic!("{name}: timestamp_type {other:?}"),
            };
            let records = f["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|r| Record {
                    offset: int(&r["offset"], "offset"),
                    timestamp_ms: r["expected_timestamp_ms"].as_i64(),
                    control: r["control"].as_bool().unwrap_or(false),
                    aborted: r["aborted"].as_bool().unwrap_or(false),
                })
                .collect::<Vec<_>>();
            for r in &records {
                assert_eq!(
                    r.timestamp_ms.is_none(),
                    r.control,
                    "{name} offset {}",
                    r.offset
                );
            }
            let batches = f["batches"]
                .as_array()
                .expect("batches")
                .iter()
                .map(|b| {
                    let start = int(&b["byte_pos"], "byte_pos") as usize;
                    Batch {
                        base_offset: int(&b["base_offset"], "base_offset"),
                        last_offset: int(&b["last_offset"], "last_offset"),
                        start,
                        end: start + int(&b["byte_len"], "byte_len") as usize,
                        transactional: b["transactional"].as_bool().unwrap_or(false),
                        producer_id: int(&b["producer_id"], "producer_id"),
                    }
                })
                .collect::<Vec<_>>();
            let aborted = f["read_committed_fetch"]
                ["apache_kafka_would_return_aborted_transactions"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|a| AbortedTxn {
                            producer_id: int(&a["producer_id"], "producer_id"),
                            first_offset: int(&a["first_offset"], "first_offset"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            // The complete batches tile the file from byte 0; only the truncated file has
            // bytes after them.
            let mut end = 0;
            for b in &batches {
                assert_eq!(
                    b.start, end,
                    "{name}: batch at {} is not contiguous",
                    b.base_offset
                );
                end = b.end;
            }
            let truncated_from = f["truncated_from"].as_str().map(str::to_string);
            let truncated = truncated_from.is_some();
            assert_eq!(
                bytes.len() > end,
                truncated,
                "{name}: bytes after the last batch"
            );
            Case {
                name: name.clone(),
                truncated,
                truncated_from,
                cut: None,
                high_watermark: int(&f["high_watermark"], "high_watermark"),
                bytes,
                timestamp_type,
                records,
                batches,
                aborted,
            }
        })
        .collect()
}

impl Case {
    /// Read-committed when `committed`: the file's aborted list applies.
    fn aborted_list(&self, committed: bool) -> &[AbortedTxn] {
        if committed {
            &self.aborted
        } else {
            &[]
        }
    }

    /// The record a lookup of `target` must return: the first data record at or after it
    /// (skipping aborted ones when `committed`), if the file holds one.
    fn expected(&self, target: i64, committed: bool) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.offset >= target && !r.control && !(committed && r.aborted))
    }

    fn found(&self, r: &Record) -> Lookup {
        Lookup::Found(RecordAt {
            offset: r.offset,
            timestamp_ms: r.timestamp_ms.expect("data record"),
            timestamp_type: self.timestamp_type,
            verified: true,
        })
    }

    /// Targets to try: every listed offset (markers included), and one past the end.
    fn targets(&self) -> Vec<i64> {
        let mut t: Vec<i64> = self.records.iter().map(|r| r.offset).collect();
        t.push(self.records.last().map_or(0, |r| r.offset + 1));
        t.push(self.high_watermark);
        t.dedup();
        t
    }

    /// What `record_at` must return for `target` on the first `len` bytes of the file.
    fn expected_on_prefix(&self, len: usize, target: i64, committed: bool) -> Lookup {
        let complete: Vec<&Batch> = self.batches.iter().filter(|b| b.end <= len).collect();

        if let Some(r) = self.expected(target, committed) {
            let in_complete_batch = complete
                .iter()
                .any(|b| (b.base_offset..=b.last_offset).contains(&r.offset));
            if in_complete_batch {
                return self.found(r);
            }
        }
        let consumed = complete.last().map_or(0, |b| b.end);
        // A partial batch follows the complete ones (always so for the whole truncated file).
        let partial = len > consumed;
        debug_assert!(partial || !(self.truncated && len == self.bytes.len()));
        Lookup::Missing {
            truncated: partial,
            next_offset: complete.last().map(|b| b.last_offset + 1),
            needed: None,
        }
    }

    /// Whether `got` is a right answer for `target` on the first `len` bytes: the expected
    /// one (whatever `needed` says), or the record itself when it arrived in a cut batch.
    fn accepts(&self, len: usize, target: i64, committed: bool, got: &Lookup) -> bool {
        let want = self.expected_on_prefix(len, target, committed);
        match (got, &want) {
            (
                Lookup::Missing {
                    truncated,
                    next_offset,
                    ..
                },
                Lookup::Missing {
                    truncated: t,
                    next_offset: n,
                    ..
                },
            ) => (truncated, next_offset) == (t, n),
            (Lookup::Found(_), Lookup::Missing { .. }) => {
                self.found_in_cut_batch(len, target, committed, got)
            }
            _ => *got == want,
        }
    }

    /// Whether `got` is the right answer from the records of the batch this prefix cuts:
    /// a lookup may answer from a cut batch when the target's record arrived.
    fn found_in_cut_batch(&self, len: usize, target: i64, committed: bool, got: &Lookup) -> bool {
        let own = self.batches.iter().map(|b| (b, &self.records[..]));
        let cut = self.cut.iter().map(|(b, records)| (b, &records[..]));
        let Some((batch, records)) = own.chain(cut).find(|(b, _)| b.start < len && len < b.end)
        else {
            return false;
        };
        let visible = |r: &&Record| !(r.control || committed && r.aborted);
        records
            .iter()
            .filter(visible)
            .find(|r| r.offset >= target)
            .filter(|r| (batch.base_offset..=batch.last_offset).contains(&r.offset))
            .is_some_and(|r| match (got, self.found(r)) {
                // A cut batch is never CRC-checked: its answers say so.
                (Lookup::Found(g), Lookup::Found(w)) => {
                    *g == RecordAt {
                        verified: false,
                        ..w
                    }
                }
                _ => false,
            })
    }

    fn modes(&self) -> &'static [bool] {
        if self.aborted.is_empty() {
            &[false]
        } else {
            &[false, true]
        }
    }
}

fn mode_name(committed: bool) -> &'static str {
    if committed {
        "read_committed (manifest's aborted list)"
    } else {
        "read_uncommitted"
    }
}

/// Every file, every record: the right offset, timestamp and timestamp type.
#[test]
fn every_record_has_its_expected_timestamp() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        for r in case.records.iter().filter(|r| !r.control) {
            let want = case.found(r);
            let got = record_at(&case.bytes, r.offset, &[], WHOLE);
            checked += 1;
            if !matches!(&got, Ok(g) if *g == want) {
                failures.push(format!(
                    "{}: offset {}: want {want:?}, got {got:?}",
                    case.name, r.offset
                ));
            }
        }
    }
    assert!(checked >= 98, "only {checked} records checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// LogAppendTime files report each batch's maxTimestamp with the LogAppendTime type, never
/// baseTimestamp + delta (what kafka-protocol's own decoder gets wrong).
#[test]
fn log_append_time_files_report_max_timestamp() {
    let cases = cases();
    let lat: Vec<&Case> = cases
        .iter()
        .filter(|c| c.timestamp_type == TimestampType::LogAppendTime)
        .collect();
    assert_eq!(lat.len(), 2, "two LogAppendTime fixtures");
    for case in lat {
        for r in case.records.iter().filter(|r| !r.control) {
            match record_at(&case.bytes, r.offset, &[], WHOLE) {
                Ok(Lookup::Found(found)) => {
                    assert_eq!(found.timestamp_type, TimestampType::LogAppendTime);
                    assert_eq!(Some(found.timestamp_ms), r.timestamp_ms, "{}", case.name);
                }
                other => panic!("{} offset {}: {other:?}", case.name, r.offset),
            }
        }
    }
}

/// Control markers resolve to the next data record; with the aborted-transaction list, so
/// do aborted records; past the end of a file is `Missing`.
#[test]
fn markers_aborted_records_and_the_end() {
    let mut failures = Vec::new();
    let mut markers = 0;
    let mut aborted = 0;
    for case in cases() {
        let full = case.bytes.len();
        for &committed in case.modes() {
            for target in case.targets() {
                let want = case.expected_on_prefix(full, target, committed);
                let got = record_at(&case.bytes, target, case.aborted_list(committed), WHOLE);
                if let Some(r) = case.records.iter().find(|r| r.offset == target) {
                    if r.control {
                        markers += 1;
                    }
                    if r.aborted && committed {
                        aborted += 1;
                    }
                }
                if !matches!(&got, Ok(g) if case.accepts(full, target, committed, g)) {
                    failures.push(format!(
                        "{} ({}): target {target}: want {want:?}, got {got:?}",
                        case.name,
                        mode_name(committed)
                    ));
                }
            }
        }
    }
    assert!(
        markers >= 3 && aborted >= 2,
        "{markers} markers, {aborted} aborted records"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The transactional fixture, spelled out: commit(0,1) · marker 2 · abort(3,4) · marker 5 ·
/// commit(6) · marker 7.
#[test]
fn transactional_fixture_spelled_out() {
    let cases = cases();
    let case = cases
        .iter()
        .find(|c| c.name == "txn-control.bin")
        .expect("txn-control.bin");
    let at = |target: i64, aborted: &[AbortedTxn]| match record_at(
        &case.bytes,
        target,
        aborted,
        WHOLE,
    ) {
        Ok(Lookup::Found(r)) => Some(r.offset),
        Ok(Lookup::Missing { .. }) => None,
        Ok(other) => panic!("txn-control.bin target {target}: {other:?}"),
        Err(e) => panic!("txn-control.bin target {target}: {e}"),
    };
    let uncommitted: Vec<_> = (0..=8).map(|t| at(t, &[])).collect();
    let committed: Vec<_> = (0..=8).map(|t| at(t, &case.aborted)).collect();
    assert_eq!(
        uncommitted,
        [
            Some(0),
            Some(1),
            Some(3),
            Some(3),
            Some(4),
            Some(6),
            Some(6),
            None,
            None
        ]
    );
    assert_eq!(
        committed,
        [
            Some(0),
            Some(1),
            Some(6),
            Some(6),
            Some(6),
            Some(6),
            Some(6),
            None,
            None
        ]
    );
}

/// An aborted-transaction entry only drops transactional batches: naming the producer of a
/// non-transactional (idempotent) batch must not hide its records.
#[test]
fn aborted_list_ignores_non_transactional_batches() {
    let mut failures = Vec::new();
    for case in cases() {
        let Some(batch) = case.batches.iter().find(|b| !b.transactional) else {
            continue;
        };
        let bogus = [AbortedTxn {
            producer_id: batch.producer_id,
            first_offset: batch.base_offset,
        }];
        for r in case.records.iter().filter(|r| !r.control) {
            let got = record_at(&case.bytes, r.offset, &bogus, WHOLE);
            if !matches!(&got, Ok(g) if *g == case.found(r)) {
                failures.push(format!("{}: offset {}: got {got:?}", case.name, r.offset));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A Fetch cut at any byte: every prefix of every file decodes without panic or error, and
/// gives the right record whenever its batch is complete in the prefix; otherwise the right
/// record when it arrived in the cut batch, or `Missing` (`truncated` exactly when a partial
/// batch follows the complete ones) — never a wrong timestamp.
#[test]
fn every_prefix_gives_the_right_answer_or_missing() {
    // Failure kinds, so a report separates wrong answers from over-cautious ones.
    let mut failures: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut lookups = 0u64;
    for case in cases() {
        let targets = case.targets();
        for len in 0..=case.bytes.len() {
            let prefix = &case.bytes[..len];
            for &committed in case.modes() {
                for &target in &targets {
                    lookups += 1;
                    let want = case.expected_on_prefix(len, target, committed);
                    let got = record_at(prefix, target, case.aborted_list(committed), WHOLE);
                    // Cut batches fit in WHOLE: only ever answered from when complete.
                    let from_complete = !matches!(&got, Ok(Lookup::Found(g)) if !g.verified);
                    // And beyond `whole_up_to` (0 here), answers from a cut batch are unverified.
                    let cut_answer = record_at(prefix, target, case.aborted_list(committed), 0);
                    let cut_ok =
                        matches!(&cut_answer, Ok(g) if case.accepts(len, target, committed, g));
                    if from_complete
                        && cut_ok
                        && matches!(&got, Ok(g) if case.accepts(len, target, committed, g))
                    {
                        continue;
                    }
                    let kind = match (&got, &want) {
                        (Err(_), _) => "error instead of an answer",
                        (Ok(Lookup::Untimed { .. }), _) => "UNTIMED",
                        (Ok(Lookup::Found(g)), Lookup::Found(w)) if g.offset == w.offset => {
                            "WRONG TIMESTAMP"
                        }
                        (Ok(Lookup::Found(_)), _) => "WRONG RECORD",
                        (Ok(Lookup::Missing { .. }), Lookup::Found(_)) => {
                            "missing although its batch is complete"
                        }
                        (Ok(Lookup::Missing { .. }), Lookup::Missing { .. }) => {
                            "wrong truncated flag or next_offset"
                        }
                        (Ok(Lookup::Missing { .. }), Lookup::Untimed { .. }) => {
                            "missing, not untimed"
                        }
                    };
                    failures.entry(kind).or_default().push(format!(
                        "{} [..{len}] ({}) target {target}: want {want:?}, got {got:?}",
                        case.name,
                        mode_name(committed)
                    ));
                }
            }
        }
    }
    assert!(lookups > 50_000, "only {lookups} lookups");
    if !failures.is_empty() {
        let mut m = String::new();
        for (kind, list) in &failures {
            m.push_str(&format!("{kind}: {} cases, first ones:\n", list.len()));
            for line in list.iter().take(8) {
                m.push_str(&format!("  {line}\n"));
            }
        }
        panic!("{m}");
    }
}

/// The truncated fixture as the README describes it: offsets 0-4 found, 5-7 reported as
/// absent from a truncated buffer, with the next offset to fetch.
#[test]
fn truncated_fixture_spelled_out() {
    let bytes = proto_tests::read("fixtures/records/none-truncated.bin");
    for target in 0..=4 {
        assert!(
            matches!(record_at(&bytes, target, &[], WHOLE), Ok(Lookup::Found(r)) if r.offset == target),
            "offset {target}"
        );
    }
    // The 162 bytes of batch 5..7 hold its header, record 5 and the head of record 6
    // (timestamps from none.bin's manifest); record 7 needs the whole 324-byte batch. The
    // cut batch cannot be CRC-checked: as it fits in a whole fetch it is never answered
    // from; only a caller that cannot fetch it whole gets unverified answers.
    for target in 5..=7 {
        assert_eq!(
            record_at(&bytes, target, &[], WHOLE).ok(),
            Some(Lookup::Missing {
                truncated: true,
                next_offset: Some(5),
                needed: Some(324),
            }),
            "offset {target}"
        );
    }
    for (target, timestamp_ms) in [(5, 1_700_000_012_000), (6, 1_700_000_009_000)] {
        assert_eq!(
            record_at(&bytes, target, &[], 323).ok(),
            Some(Lookup::Found(RecordAt {
                offset: target,
                timestamp_ms,
                timestamp_type: TimestampType::CreateTime,
                verified: false,
            })),
            "offset {target}"
        );
    }
    assert_eq!(
        record_at(&bytes, 7, &[], 323).ok(),
        Some(Lookup::Missing {
            truncated: true,
            next_offset: Some(5),
            needed: Some(324),
        })
    );
    // Past the cut batch: nothing known.
    assert_eq!(
        record_at(&bytes, 8, &[], WHOLE).ok(),
        Some(Lookup::Missing {
            truncated: true,
            next_offset: Some(5),
            needed: None,
        })
    );
}

/// Every batch the fixtures' clients wrote carries a CRC-32C that verifies (the lookups
/// above would fail otherwise), and a bit flipped in any batch — in its timestamps, its
/// lastOffsetDelta or a record byte — is reported as a CRC error naming that batch, also
/// when the walk only passes the batch on its way to a later target.
#[test]
fn a_flipped_bit_in_any_fixture_batch_is_a_crc_error() {
    let mut checked = 0;
    for case in cases() {
        for batch in &case.batches {
            // baseTimestamp, lastOffsetDelta, the last record byte.
            for at in [batch.start + 30, batch.start + 26, batch.end - 1] {
                let mut bytes = case.bytes.clone();
                bytes[at] ^= 0x04;
                for target in [batch.base_offset, batch.last_offset + 1] {
                    match record_at(&bytes, target, &[], WHOLE) {
                        Err(RecordsError::Crc {
                            base_offset,
                            magic: 2,
                            stored,
                            computed,
                        }) => {
                            assert_eq!(base_offset, batch.base_offset, "{}", case.name);
                            assert_ne!(stored, computed);
                            checked += 1;
                        }
                        other => panic!(
                            "{} byte {at} target {target}: expected a CRC error, got {other:?}",
                            case.name
                        ),
                    }
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} checks");
}
