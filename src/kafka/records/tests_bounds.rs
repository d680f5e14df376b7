//! Tests of the bounds on decoding cost: the header's record count and lastOffsetDelta,
//! the decompression ratio and the absolute cap.

#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::tests::{batch, encode_record, fix_crcs, put_varlong, rec, Rec, GZIP, WHOLE, ZSTD};
use super::v2::HEADER_LEN;
use super::*;

/// A record at `offset_delta` whose value is `zeros` zero bytes: compresses ~1000×.
fn zeros(offset_delta: i32, zeros: usize) -> Rec {
    Rec {
        key: None,
        value: Some(vec![0; zeros]),
        headers: vec![],
        ..rec(offset_delta, 0)
    }
}

/// A batch at base 0 whose header claims offsets up to `claimed_last` (and as many
/// records), holding `count` records of `size` zero bytes at offsets 0..count.
fn bomb(codec: u8, count: i32, size: usize, claimed_last: i32) -> Vec<u8> {
    let mut b = batch(0, (0..count).map(|i| zeros(i, size)).collect())
        .claiming(claimed_last)
        .codec(codec)
        .encode();
    // recordCount as the header claims it; the CRC made right again.
    b[57..61].copy_from_slice(&(claimed_last + 1).to_be_bytes());
    fix_crcs(&mut b);
    b
}

/// The decompressed bytes the walk reached when the bound stopped it, and what a record
/// claimed when that stopped it.
fn bound(result: Result<Lookup, RecordsError>) -> (u64, Option<u64>, String) {
    match result {
        Err(
            e @ RecordsError::DecompressionBound {
                decompressed,
                claimed,
                ..
            },
        ) => (decompressed, claimed, e.to_string()),
        other => panic!("expected the decompression bound, got {other:?}"),
    }
}

#[test]
fn the_limit_is_a_ratio_of_the_compressed_size_between_a_floor_and_a_cap() {
    assert_eq!(decompressed_limit(0), MIN_DECOMPRESSED_LIMIT);
    assert_eq!(decompressed_limit(4 << 10), MIN_DECOMPRESSED_LIMIT);
    // The fetch cap: 256 KiB of compressed records decompress to at most 16 MiB.
    assert_eq!(decompressed_limit(256 << 10), 16 << 20);
    assert_eq!(decompressed_limit(usize::MAX), MAX_DECOMPRESSED_BYTES);
    assert_eq!(
        decompressed_limit((MAX_DECOMPRESSED_BYTES / MAX_DECOMPRESSION_RATIO) as usize + 1),
        MAX_DECOMPRESSED_BYTES
    );
}

#[test]
fn a_bomb_stops_at_the_ratio_limit_with_an_error_saying_so() {
    for codec in [GZIP, ZSTD] {
        // 40 records of 64 KiB zeros (2.5 MiB) in a few KiB; the header claims offset 1000.
        let buf = bomb(codec, 40, 64 << 10, 1000);
        let compressed = (buf.len() - HEADER_LEN) as u64;
        let limit = decompressed_limit(compressed as usize);
        assert!(limit < 40 << 16, "codec {codec}: {compressed} bytes");
        let (decompressed, claimed, message) = bound(record_at(&buf, 1000, &[], WHOLE));
        // Stopped at the limit, before the next record's 64 KiB could pass it.
        let claimed = claimed.unwrap_or_else(|| panic!("codec {codec}: {message}"));
        assert!((64 << 10..(64 << 10) + 16).contains(&claimed), "{message}");
        assert!(
            decompressed <= limit && decompressed > limit - (65 << 10),
            "codec {codec}: stopped at {decompressed} of {limit}"
        );
        assert!(
            message.contains("record batch at base offset 0")
                && message.contains(&format!("{compressed} compressed bytes"))
                && message.contains("without reaching offset 1000"),
            "{message}"
        );
        // The same batch answers for an offset within the limit.
        let at = record_at(&buf, 5, &[], WHOLE).unwrap();
        assert!(
            matches!(at, Lookup::Found(RecordAt { offset: 5, .. })),
            "{at:?}"
        );
    }
}

#[test]
fn small_records_never_take_the_walk_past_the_limit() {
    let buf = bomb(GZIP, 2000, 1000, 5000);
    let (decompressed, claimed, message) = bound(record_at(&buf, 4000, &[], WHOLE));
    let claimed = claimed.unwrap_or_default();
    assert!(
        decompressed <= MIN_DECOMPRESSED_LIMIT
            && decompressed + claimed > MIN_DECOMPRESSED_LIMIT
            && claimed < 1100,
        "{message}"
    );
}

#[test]
fn a_record_claiming_more_than_the_limit_fails_before_any_of_it_is_decompressed() {
    // A hand-made record: attributes, deltas, null key, then a value claiming 1 GiB that is
    // not there at all.
    let mut raw = vec![0u8];
    put_varlong(&mut raw, 0);
    put_varlong(&mut raw, 0);
    put_varlong(&mut raw, -1);
    put_varlong(&mut raw, 1 << 30);
    let mut record = Vec::new();
    put_varlong(&mut record, raw.len() as i64 + (1 << 30));
    record.extend_from_slice(&raw);
    let mut buf = bomb(GZIP, 1, 10, 10);
    buf.truncate(HEADER_LEN);
    buf.extend_from_slice(&super::tests::compress(GZIP, &record));
    let length = (buf.len() - LOG_OVERHEAD) as i32;
    buf[8..12].copy_from_slice(&length.to_be_bytes());
    fix_crcs(&mut buf);
    let (decompressed, claimed, message) = bound(record_at(&buf, 10, &[], WHOLE));
    assert!(claimed.is_some_and(|c| c > 1 << 30), "{message}");
    assert!(decompressed < 16, "{message}");
    assert!(message.contains("claims 10737418"), "{message}");
}

#[test]
fn real_looking_records_pass_the_ratio_limit() {
    // JSON-like values compress ~10–20×: far from 64×, so a whole 256 KiB batch of them is
    // walked to its last record.
    let records: Vec<Rec> = (0..2000)
        .map(|i| Rec {
            key: Some(format!("user-{}", i % 97).into_bytes()),
            value: Some(
                format!(
                    r#"{{"id":{i},"user":"user-{}","event":"page_view","path":"/shop/item/{}","ts":{}}}"#,
                    i % 97,
                    i * 7919 % 10007,
                    1_700_000_000_000i64 + i64::from(i) * 13
                )
                .into_bytes(),
            ),
            headers: vec![],
            ..rec(i, i64::from(i))
        })
        .collect();
    for codec in [GZIP, ZSTD] {
        let buf = batch(0, records.clone()).codec(codec).encode();
        let raw: usize = records.iter().map(|r| encode_record(r).len()).sum();
        let ratio = raw / (buf.len() - HEADER_LEN);
        assert!(ratio < 32, "codec {codec}: ratio {ratio}");
        let at = record_at(&buf, 1999, &[], WHOLE).unwrap();
        assert!(
            matches!(at, Lookup::Found(RecordAt { offset: 1999, .. })),
            "{at:?}"
        );
    }
}

#[test]
fn the_header_bounds_the_walk() {
    // recordCount = 2 while lastOffsetDelta claims 1000: the walk ends after two records.
    let mut buf = bomb(GZIP, 2, 100, 1000);
    buf[57..61].copy_from_slice(&2i32.to_be_bytes());
    fix_crcs(&mut buf);
    let missing = record_at(&buf, 500, &[], WHOLE).unwrap();
    assert!(
        matches!(
            missing,
            Lookup::Missing {
                next_offset: Some(1001),
                truncated: false,
                ..
            }
        ),
        "{missing:?}"
    );

    // A record past lastOffsetDelta: corrupt, not an answer.
    let mut b = bomb(0, 3, 10, 1);
    b[57..61].copy_from_slice(&3i32.to_be_bytes());
    fix_crcs(&mut b);
    let e = record_at(&b, 1, &[], WHOLE);
    assert!(e.is_ok(), "offset 1 is in range: {e:?}");
    let e = record_at(
        &{
            let mut b = b.clone();
            b[23..27].copy_from_slice(&0i32.to_be_bytes());
            fix_crcs(&mut b);
            b
        },
        0,
        &[],
        WHOLE,
    );
    assert!(
        matches!(e, Ok(Lookup::Found(RecordAt { offset: 0, .. }))),
        "{e:?}"
    );

    // Offsets that repeat never reach the target: the walk fails at the first repeat,
    // having decompressed two records, not the 100 MiB the batch holds.
    let records: Vec<Rec> = (0..100).map(|_| zeros(0, 1 << 20)).collect();
    let mut b = batch(0, records).claiming(1000).codec(ZSTD).encode();
    b[57..61].copy_from_slice(&1001i32.to_be_bytes());
    fix_crcs(&mut b);
    match record_at(&b, 1000, &[], WHOLE) {
        Err(RecordsError::CorruptRecord {
            position, reason, ..
        }) => {
            assert_eq!(reason, "record offsets do not increase");
            assert!(position < (2 << 20) + 64, "walked to {position}");
        }
        other => panic!("expected a corrupt record, got {other:?}"),
    }
}

#[test]
fn a_record_past_last_offset_delta_is_corrupt() {
    let b = batch(0, (0..3).map(|i| zeros(i, 10)).collect())
        .claiming(1)
        .encode();
    match record_at(&b, 1, &[], WHOLE) {
        Ok(Lookup::Found(RecordAt { offset: 1, .. })) => {}
        other => panic!("offset 1 is in range: {other:?}"),
    }
    // Skipped to the record at delta 2, beyond the header's last offset (1), with the
    // target 1 absent (compacted): not answered from.
    let b = batch(0, vec![zeros(0, 10), zeros(2, 10)])
        .claiming(1)
        .encode();
    match record_at(&b, 1, &[], WHOLE) {
        Err(RecordsError::CorruptRecord { reason, .. }) => {
            assert_eq!(reason, "record offset past the batch's lastOffsetDelta");
        }
        other => panic!("expected a corrupt record, got {other:?}"),
    }
}

#[test]
fn a_cut_bomb_is_final_only_when_no_more_of_it_can_come() {
    let buf = bomb(GZIP, 40, 64 << 10, 1000);
    let cut = &buf[..buf.len() - 100];
    // More could be fetched (up to the whole batch): the walk asks for it.
    let needed = record_at(cut, 1000, &[], buf.len() - 1).unwrap();
    assert!(
        matches!(needed, Lookup::Missing { truncated: true, needed: Some(n), .. } if n == buf.len()),
        "{needed:?}"
    );
    // All the caller will ever fetch arrived: the bound is the answer.
    let (_, _, message) = bound(record_at(cut, 1000, &[], cut.len()));
    assert!(
        message.contains("without reaching offset 1000"),
        "{message}"
    );
}

#[test]
fn headers_tell_compressed_records_apart() {
    let plain = bomb(0, 2, 10, 1);
    let gzip = bomb(GZIP, 2, 10, 1);
    assert!(!has_compressed(&plain));
    assert!(has_compressed(&gzip));
    let both = [plain.clone(), gzip.clone()].concat();
    assert!(has_compressed(&both));
    // A cut trailing batch whose header arrived counts too.
    let cut = [plain.clone(), gzip[..30].to_vec()].concat();
    assert!(has_compressed(&cut));
    assert!(!has_compressed(&plain[..20]));
    assert!(!has_compressed(&[]));
}
