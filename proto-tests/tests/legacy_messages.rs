//! Legacy message-set fixtures (magic 0 and 1, and a v0/v1/v2 mix): the timestamp of the
//! record at an offset.
//!
//! `fixtures/legacy/*.bin` were written by kafka-python's `LegacyRecordBatchBuilder` (and
//! `DefaultRecordBatchBuilder` for the v2 batch of the mix), every codec of those formats
//! (none, gzip, snappy/xerial, lz4 — magic 0 with Kafka 0.8's frame header checksum),
//! CreateTime and LogAppendTime; `manifest.json` gives every record's offset and timestamp
//! (null: the record has none). See fixtures/README.md, "Legacy message sets". For every file:
//!
//! * every record's offset → exactly that record: `Found` with its timestamp and type, or
//!   `Untimed` when it has no timestamp; a gap offset → the next record;
//! * past the end → `Missing` with `next_offset` = last offset + 1;
//! * every prefix → no panic, no error, and never a wrong record: an answer is the one above,
//!   else `Missing` (a cut message smaller than `whole_up_to` is never answered from);
//! * a bit flipped in any message → `RecordsError::Crc` naming its magic.

use serde_json::Value;
use tidemark::kafka::records::{record_at, Lookup, RecordAt, RecordsError, TimestampType};

const WHOLE: usize = 256 << 10;

struct Record {
    offset: i64,
    timestamp_ms: Option<i64>,
    log_append_time: bool,
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    records: Vec<Record>,
}

fn cases() -> Vec<Case> {
    let text = String::from_utf8(proto_tests::read("fixtures/legacy/manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let files = manifest["files"].as_object().expect("files");
    let cases: Vec<Case> = files
        .iter()
        .map(|(name, entry)| Case {
            name: name.clone(),
            bytes: proto_tests::read(&format!("fixtures/legacy/{name}")),
            records: entry["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|r| Record {
                    offset: r["offset"].as_i64().expect("offset"),
                    timestamp_ms: r["timestamp_ms"].as_i64(),
                    log_append_time: r["timestamp_type"] == "LogAppendTime",
                })
                .collect(),
        })
        .collect();
    assert!(cases.len() >= 13, "only {} legacy fixtures", cases.len());
    cases
}

impl Case {
    /// What `record_at` must return for `target` on the whole file.
    fn expected(&self, target: i64) -> Lookup {
        match self.records.iter().find(|r| r.offset >= target) {
            Some(r) => match r.timestamp_ms {
                None => Lookup::Untimed { offset: r.offset },
                Some(timestamp_ms) => Lookup::Found(RecordAt {
                    offset: r.offset,
                    timestamp_ms,
                    timestamp_type: if r.log_append_time {
                        TimestampType::LogAppendTime
                    } else {
                        TimestampType::CreateTime
                    },
                    verified: true,
                }),
            },
            None => Lookup::Missing {
                truncated: false,
                next_offset: self.records.last().map(|r| r.offset + 1),
                needed: None,
            },
        }
    }

    fn targets(&self) -> Vec<i64> {
        let last = self.records.last().map_or(0, |r| r.offset);
        (0..=last + 1).collect()
    }
}

#[test]
fn every_offset_of_every_legacy_fixture_gives_its_record() {
    let mut checked = 0;
    for case in cases() {
        for target in case.targets() {
            let got = record_at(&case.bytes, target, &[], WHOLE)
                .unwrap_or_else(|e| panic!("{} target {target}: {e}", case.name));
            assert_eq!(got, case.expected(target), "{} target {target}", case.name);
            checked += 1;
        }
    }
    assert!(checked > 100);
}

#[test]
fn every_prefix_of_a_legacy_fixture_is_right_or_missing() {
    for case in cases() {
        for len in 0..=case.bytes.len() {
            for target in case.targets() {
                let got = record_at(&case.bytes[..len], target, &[], WHOLE)
                    .unwrap_or_else(|e| panic!("{} [..{len}] target {target}: {e}", case.name));
                match got {
                    // The record's message did not arrive whole (or at all).
                    Lookup::Missing { .. } => {}
                    answer => assert_eq!(
                        answer,
                        case.expected(target),
                        "{} [..{len}] target {target}",
                        case.name
                    ),
                }
            }
        }
    }
}

#[test]
fn a_flipped_bit_in_any_legacy_fixture_is_a_crc_error() {
    for case in cases() {
        // Every byte from the first entry's magic on is covered by some CRC, except the
        // later entries' offset and size fields: flip bytes at a stride.
        for at in (16..case.bytes.len()).step_by(7) {
            let mut bytes = case.bytes.clone();
            bytes[at] ^= 0x01;
            // Offset or length fields of a later entry are framing, outside every CRC: any
            // outcome but a panic; a CRC error names a real magic and two different CRCs.
            if let Err(RecordsError::Crc {
                magic,
                stored,
                computed,
                ..
            }) = record_at(&bytes, case.targets().last().copied().unwrap(), &[], WHOLE)
            {
                assert!((0..=2).contains(&magic));
                assert_ne!(stored, computed);
            }
        }
        // The first message's timestamp/attributes bytes are always CRC-covered.
        let mut bytes = case.bytes.clone();
        bytes[17] ^= 0x40;
        assert!(
            matches!(
                record_at(&bytes, 0, &[], WHOLE),
                Err(RecordsError::Crc { base_offset, .. }) if base_offset == i64::from_be_bytes(case.bytes[..8].try_into().unwrap())
            ),
            "{}",
            case.name
        );
    }
}
