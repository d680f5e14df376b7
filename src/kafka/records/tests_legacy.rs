//! Tests of CRC verification, legacy message sets (magic 0 and 1), untimed records and cut
//! entries on both sides of `whole_up_to`, with a test-only legacy message encoder.

#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::tests::{batch, compress, concat, rec, simple, GZIP, LZ4, SNAPPY, T0, WHOLE, XERIAL};
use super::*;

// ---- a test-only legacy message encoder ----

/// One message entry: offset, size, crc, magic, attributes, [timestamp], key, value.
fn message(
    magic: i8,
    offset: i64,
    attributes: u8,
    timestamp: i64,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = vec![magic as u8, attributes];
    if magic == 1 {
        body.extend_from_slice(&timestamp.to_be_bytes());
    }
    let key = format!("key-{offset}");
    body.extend_from_slice(&(key.len() as i32).to_be_bytes());
    body.extend_from_slice(key.as_bytes());
    match value {
        None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(v) => {
            body.extend_from_slice(&(v.len() as i32).to_be_bytes());
            body.extend_from_slice(v);
        }
    }
    let mut out = offset.to_be_bytes().to_vec();
    out.extend_from_slice(&((4 + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn value(offset: i64) -> Vec<u8> {
    vec![b'v'; 200 + offset as usize % 7]
}

/// Uncompressed messages at `offsets`, timestamps `T0 + 10 * offset`.
fn plain(magic: i8, offsets: &[i64]) -> Vec<u8> {
    offsets
        .iter()
        .flat_map(|&o| message(magic, o, 0, T0 + 10 * o, Some(&value(o))))
        .collect()
}

/// lz4 as Kafka before 0.10 wrote it: the frame header checksum taken over the magic
/// number too (KAFKA-3160).
fn kafka08_lz4(raw: &[u8]) -> Vec<u8> {
    let mut frame = compress(LZ4, raw);
    let flg = frame[4];
    let hc_at = 6 + if flg & 0x08 != 0 { 8 } else { 0 } + if flg & 0x01 != 0 { 4 } else { 0 };
    frame[hc_at] = (twox_hash::XxHash32::oneshot(0, &frame[..hc_at]) >> 8) as u8;
    frame
}

/// A compressed wrapper holding `inner` (a message set): its offset is the last inner one's
/// (absolute), `lat` sets LogAppendTime with `timestamp`.
fn wrapper(magic: i8, codec: u8, lat: bool, offset: i64, timestamp: i64, inner: &[u8]) -> Vec<u8> {
    let compressed = if codec == LZ4 && magic == 0 {
        kafka08_lz4(inner)
    } else {
        compress(codec, inner)
    };
    let id = if codec == XERIAL { SNAPPY } else { codec };
    message(
        magic,
        offset,
        id | if lat { 0x08 } else { 0 },
        timestamp,
        Some(&compressed),
    )
}

fn lookup(buf: &[u8], target: i64) -> Lookup {
    record_at(buf, target, &[], WHOLE).unwrap()
}

fn found_at(buf: &[u8], target: i64) -> RecordAt {
    match lookup(buf, target) {
        Lookup::Found(at) => at,
        other => panic!("target {target}: expected a record, got {other:?}"),
    }
}

const LEGACY_CODECS: [u8; 4] = [GZIP, SNAPPY, XERIAL, LZ4];

// ---- legacy formats ----

#[test]
fn magic_0_messages_are_untimed_at_their_offsets() {
    let buf = plain(0, &[10, 11, 13]);
    assert_eq!(lookup(&buf, 11), Lookup::Untimed { offset: 11 });
    assert_eq!(lookup(&buf, 12), Lookup::Untimed { offset: 13 });
    assert_eq!(lookup(&buf, 0), Lookup::Untimed { offset: 10 });
    assert_eq!(
        lookup(&buf, 14),
        Lookup::Missing {
            truncated: false,
            next_offset: Some(14),
            needed: None
        }
    );
}

#[test]
fn magic_1_messages_give_their_own_timestamps() {
    let buf = plain(1, &[10, 11, 13]);
    for (target, offset) in [(10, 10), (11, 11), (12, 13)] {
        let at = found_at(&buf, target);
        assert_eq!(
            at,
            RecordAt {
                offset,
                timestamp_ms: T0 + 10 * offset,
                timestamp_type: TimestampType::CreateTime,
                verified: true
            }
        );
    }
    // No timestamp (-1) is untimed; LogAppendTime is the message's own timestamp.
    let buf = [message(1, 5, 0, -1, None), message(1, 6, 0x08, T0, None)].concat();
    assert_eq!(lookup(&buf, 5), Lookup::Untimed { offset: 5 });
    let at = found_at(&buf, 6);
    assert_eq!(
        (at.timestamp_ms, at.timestamp_type),
        (T0, TimestampType::LogAppendTime)
    );
}

#[test]
fn magic_1_wrappers_resolve_relative_offsets_with_every_codec() {
    for codec in LEGACY_CODECS {
        // Relative 0, 1, 3, 4, 7 (compacted gaps); the wrapper's offset 107 is the last one's.
        let rel = [0i64, 1, 3, 4, 7];
        let inner: Vec<u8> = rel
            .iter()
            .flat_map(|&r| message(1, r, 0, T0 + 1000 * r, Some(&value(r))))
            .collect();
        let buf = [
            plain(1, &[99]),
            wrapper(1, codec, false, 107, T0 + 7000, &inner),
        ]
        .concat();
        for (target, offset) in [
            (100, 100),
            (101, 101),
            (102, 103),
            (104, 104),
            (105, 107),
            (107, 107),
        ] {
            let at = found_at(&buf, target);
            assert_eq!(
                (at.offset, at.timestamp_ms, at.timestamp_type, at.verified),
                (
                    offset,
                    T0 + 1000 * (offset - 100),
                    TimestampType::CreateTime,
                    true
                ),
                "codec {codec} target {target}"
            );
        }
        assert_eq!(found_at(&buf, 99).offset, 99);
        assert_eq!(
            lookup(&buf, 108),
            Lookup::Missing {
                truncated: false,
                next_offset: Some(108),
                needed: None
            }
        );
    }
}

#[test]
fn a_log_append_time_wrapper_gives_every_inner_message_its_timestamp() {
    let inner: Vec<u8> = (0..4)
        .flat_map(|r| message(1, r, 0, T0 + r, None))
        .collect();
    let buf = wrapper(1, GZIP, true, 23, T0 + 99_000, &inner);
    for target in 20..24 {
        let at = found_at(&buf, target);
        assert_eq!(
            (at.offset, at.timestamp_ms, at.timestamp_type),
            (target, T0 + 99_000, TimestampType::LogAppendTime)
        );
    }
}

#[test]
fn magic_0_wrappers_use_absolute_offsets_with_every_codec() {
    for codec in LEGACY_CODECS {
        let inner = plain(0, &[40, 41, 43]);
        let buf = [wrapper(0, codec, false, 43, -1, &inner), plain(0, &[44])].concat();
        assert_eq!(
            lookup(&buf, 41),
            Lookup::Untimed { offset: 41 },
            "codec {codec}"
        );
        assert_eq!(
            lookup(&buf, 42),
            Lookup::Untimed { offset: 43 },
            "codec {codec}"
        );
        assert_eq!(
            lookup(&buf, 44),
            Lookup::Untimed { offset: 44 },
            "codec {codec}"
        );
    }
}

#[test]
fn lz4_frame_header_checksum_follows_the_magic() {
    let inner: Vec<u8> = (0..3)
        .flat_map(|r| message(1, r, 0, T0 + r, None))
        .collect();
    // Magic 1 with the magic-0 style checksum is corrupt...
    let mut buf = message(1, 2, LZ4, T0, Some(&kafka08_lz4(&inner)));
    assert!(matches!(
        record_at(&buf, 0, &[], WHOLE),
        Err(RecordsError::Decompress { codec: "lz4", .. })
    ));
    // ...and magic 0 ignores whatever checksum byte it carries.
    let inner = plain(0, &[0, 1, 2]);
    buf = message(0, 2, LZ4, -1, Some(&compress(LZ4, &inner)));
    assert_eq!(lookup(&buf, 1), Lookup::Untimed { offset: 1 });
}

#[test]
fn mixed_legacy_and_v2_buffers_walk_entry_by_entry() {
    let inner: Vec<u8> = (0..3)
        .flat_map(|r| message(1, r, 0, T0 + 100 + r, None))
        .collect();
    let buf = [
        plain(0, &[0, 1]),
        plain(1, &[2]),
        wrapper(1, GZIP, false, 5, T0 + 102, &inner),
        concat(&[simple(6, 3)]),
    ]
    .concat();
    assert_eq!(lookup(&buf, 1), Lookup::Untimed { offset: 1 });
    assert_eq!(found_at(&buf, 2).timestamp_ms, T0 + 20);
    assert_eq!(found_at(&buf, 4).timestamp_ms, T0 + 101);
    let at = found_at(&buf, 7);
    assert_eq!((at.offset, at.timestamp_ms), (7, T0 + 10));
    assert_eq!(
        lookup(&buf, 9),
        Lookup::Missing {
            truncated: false,
            next_offset: Some(9),
            needed: None
        }
    );
}

#[test]
fn corrupt_wrappers_are_errors() {
    // An inner message of another magic, and nested compression.
    let inner = plain(0, &[0]);
    let buf = wrapper(1, GZIP, false, 0, T0, &inner);
    assert!(matches!(
        record_at(&buf, 0, &[], WHOLE),
        Err(RecordsError::CorruptRecord { .. })
    ));
    let nested = wrapper(1, GZIP, false, 0, T0, &plain(1, &[0]));
    let buf = wrapper(1, GZIP, false, 0, T0, &nested);
    assert!(matches!(
        record_at(&buf, 0, &[], WHOLE),
        Err(RecordsError::CorruptRecord { .. })
    ));
    // A wrapper holding nothing, and zstd (no such codec before magic 2).
    let buf = wrapper(1, GZIP, false, 0, T0, &[]);
    assert!(matches!(
        record_at(&buf, 0, &[], WHOLE),
        Err(RecordsError::CorruptHeader { .. })
    ));
    let buf = message(1, 0, 4, T0, Some(b"x"));
    assert!(matches!(
        record_at(&buf, 0, &[], WHOLE),
        Err(RecordsError::UnknownCompression {
            codec: 4,
            base_offset: 0
        })
    ));
}

#[test]
fn v2_timestamp_minus_one_is_untimed() {
    let mut b = simple(5, 3);
    b.base_timestamp = -1;
    b.records.iter_mut().for_each(|r| r.timestamp_delta = 0);
    assert_eq!(lookup(&b.encode(), 6), Lookup::Untimed { offset: 6 });
}

// ---- CRC ----

fn flip(buf: &[u8], at: usize) -> Vec<u8> {
    let mut out = buf.to_vec();
    out[at] ^= 0x10;
    out
}

fn assert_crc(result: Result<Lookup, RecordsError>, base_offset: i64, magic: i8) {
    match result {
        Err(RecordsError::Crc {
            base_offset: b,
            magic: m,
            stored,
            computed,
        }) => {
            assert_eq!((b, m), (base_offset, magic));
            assert_ne!(stored, computed);
        }
        other => panic!("expected a CRC error, got {other:?}"),
    }
}

#[test]
fn a_flipped_bit_anywhere_in_a_v2_batch_is_a_crc_error() {
    let first = simple(0, 3).encode();
    let buf = concat(&[simple(0, 3), simple(3, 3)]);
    // baseTimestamp, maxTimestamp, lastOffsetDelta, a record body byte, the stored CRC.
    for at in [30, 40, 26, first.len() - 5, 18] {
        let bad = flip(&buf, at);
        assert_crc(record_at(&bad, 1, &[], WHOLE), 0, 2);
        // Also when the batch would only be skipped by its header: lastOffsetDelta 3 → 19
        // makes the walk think the target is inside it.
        assert_crc(record_at(&bad, 4, &[], WHOLE), 0, 2);
    }
    let bad = flip(&buf, first.len() + 30);
    assert_eq!(found_at(&bad, 1).offset, 1);
    assert_crc(record_at(&bad, 4, &[], WHOLE), 3, 2);
    // The message says what was wrong and where.
    let err = record_at(&flip(&buf, 30), 0, &[], WHOLE)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CRC") && err.contains("base offset 0"),
        "{err}"
    );
}

#[test]
fn a_flipped_bit_in_a_legacy_message_is_a_crc_error() {
    let inner: Vec<u8> = (0..3)
        .flat_map(|r| message(1, r, 0, T0 + r, None))
        .collect();
    let buf = [plain(1, &[7]), wrapper(1, GZIP, false, 10, T0, &inner)].concat();
    let first = plain(1, &[7]).len();
    // Timestamp, value byte, attributes of the first message; the wrapper's value.
    for at in [20, first - 3, 17] {
        assert_crc(record_at(&flip(&buf, at), 7, &[], WHOLE), 7, 1);
        assert_crc(record_at(&flip(&buf, at), 9, &[], WHOLE), 7, 1);
    }
    assert_crc(record_at(&flip(&buf, buf.len() - 3), 9, &[], WHOLE), 10, 1);
    assert_crc(record_at(&flip(&plain(0, &[3]), 20), 3, &[], WHOLE), 3, 0);
}

// ---- cut entries on both sides of whole_up_to ----

#[test]
fn a_cut_v2_batch_is_answered_from_only_beyond_whole_up_to() {
    let whole = simple(0, 10).encode();
    let cut = &whole[..whole.len() - 10];
    for whole_up_to in [whole.len(), whole.len() + 1, WHOLE] {
        assert_eq!(
            record_at(cut, 2, &[], whole_up_to).unwrap(),
            Lookup::Missing {
                truncated: true,
                next_offset: None,
                needed: Some(whole.len())
            }
        );
    }
    for whole_up_to in [0, whole.len() - 1] {
        let at = found(record_at(cut, 2, &[], whole_up_to).unwrap());
        assert_eq!(
            (at.offset, at.timestamp_ms, at.verified),
            (2, T0 + 20, false)
        );
    }
    // A cut batch with -1 timestamps beyond whole_up_to: untimed.
    let mut b = batch(0, vec![rec(0, 0), rec(1, 0)]);
    b.base_timestamp = -1;
    let whole = b.encode();
    assert_eq!(
        record_at(&whole[..whole.len() - 3], 0, &[], 0).unwrap(),
        Lookup::Untimed { offset: 0 }
    );
}

fn found(lookup: Lookup) -> RecordAt {
    match lookup {
        Lookup::Found(at) => at,
        other => panic!("expected a record, got {other:?}"),
    }
}

#[test]
fn a_cut_legacy_message_is_answered_from_only_beyond_whole_up_to() {
    let before = plain(1, &[0]);
    let last = message(1, 1, 0, T0 + 5, Some(&value(1)));
    let buf = [before.clone(), last.clone()].concat();
    let cut = &buf[..buf.len() - 4];
    assert_eq!(
        record_at(cut, 1, &[], WHOLE).unwrap(),
        Lookup::Missing {
            truncated: true,
            next_offset: Some(1),
            needed: Some(last.len())
        }
    );
    let at = found(record_at(cut, 1, &[], last.len() - 1).unwrap());
    assert_eq!(
        (at.offset, at.timestamp_ms, at.verified),
        (1, T0 + 5, false)
    );
    // Header not arrived: nothing known.
    assert_eq!(
        record_at(&buf[..before.len() + 20], 1, &[], 0).unwrap(),
        Lookup::Missing {
            truncated: true,
            next_offset: Some(1),
            needed: None
        }
    );
    // A cut magic 1 wrapper needs its last inner message: whole.
    let inner: Vec<u8> = (0..50)
        .flat_map(|r| message(1, r, 0, T0 + r, Some(&value(r))))
        .collect();
    let w = wrapper(1, GZIP, false, 49, T0, &inner);
    assert_eq!(
        record_at(&w[..w.len() - 8], 3, &[], 0).unwrap(),
        Lookup::Missing {
            truncated: true,
            next_offset: None,
            needed: Some(w.len())
        }
    );
    // A cut magic 0 wrapper answers from the inner messages that arrived.
    let inner = plain(0, &(100..150).collect::<Vec<_>>());
    let w = wrapper(0, GZIP, false, 149, -1, &inner);
    assert_eq!(
        record_at(&w[..w.len() - 8], 103, &[], 0).unwrap(),
        Lookup::Untimed { offset: 103 }
    );
    assert_eq!(
        record_at(&w[..w.len() - 8], 103, &[], WHOLE).unwrap(),
        Lookup::Missing {
            truncated: true,
            next_offset: None,
            needed: Some(w.len())
        }
    );
}

#[test]
fn every_prefix_and_mutation_of_legacy_input_is_handled_without_panic() {
    let inner1: Vec<u8> = (0..4)
        .flat_map(|r| message(1, r, 0, T0 + r, Some(&value(r))))
        .collect();
    let mut parts = vec![plain(0, &[0, 1]), plain(1, &[2])];
    for codec in LEGACY_CODECS {
        parts.push(wrapper(0, codec, false, 5, -1, &plain(0, &[3, 4, 5])));
    }
    for (i, codec) in LEGACY_CODECS.iter().enumerate() {
        parts.push(wrapper(
            1,
            *codec,
            i % 2 == 1,
            9 + 4 * i as i64,
            T0,
            &inner1,
        ));
    }
    parts.push(concat(&[simple(30, 3)]));
    let buf = parts.concat();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..=buf.len() {
        for target in [0, 4, 11, 31, 40] {
            for whole_up_to in [0, WHOLE] {
                let _ = record_at(&buf[..len], target, &[], whole_up_to);
            }
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bad = buf.clone();
        bad[(seed as usize) % buf.len()] = (seed >> 32) as u8;
        let _ = record_at(&bad, (seed % 40) as i64, &[], 0);
    }
}

#[test]
fn a_legacy_wrapper_bomb_stops_at_the_ratio_limit() {
    // 40 inner messages of 64 KiB zeros, the wrapper claiming offset 1000: each pass of the
    // magic 1 walk is bounded, and the error says so.
    for magic in [0i8, 1] {
        let inner: Vec<u8> = (0..40)
            .flat_map(|o| message(magic, o, 0, T0, Some(&[0; 64 << 10])))
            .collect();
        let buf = wrapper(magic, GZIP, false, 1000, T0, &inner);
        match record_at(&buf, 1000, &[], WHOLE) {
            Err(e @ RecordsError::DecompressionBound { .. }) => {
                assert!(
                    e.to_string().contains("without reaching offset 1000"),
                    "{e}"
                );
            }
            other => panic!("magic {magic}: expected the decompression bound, got {other:?}"),
        }
    }
}
