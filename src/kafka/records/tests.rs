//! Tests of the record timestamp reader, with a test-only batch encoder.

#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::decompress::XERIAL_MAGIC;
use super::v2::HEADER_LEN;
use super::*;
use std::io::Write;

// ---- a test-only record batch encoder ----

pub(super) const GZIP: u8 = 1;
pub(super) const SNAPPY: u8 = 2;
pub(super) const LZ4: u8 = 3;
pub(super) const ZSTD: u8 = 4;
/// Codec id 2 written with xerial framing (test encoder only).
pub(super) const XERIAL: u8 = 0x82;

pub(super) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

#[derive(Clone)]
pub(super) struct Rec {
    pub(super) offset_delta: i32,
    pub(super) timestamp_delta: i64,
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Option<Vec<u8>>,
    pub(super) headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

pub(super) fn rec(offset_delta: i32, timestamp_delta: i64) -> Rec {
    Rec {
        offset_delta,
        timestamp_delta,
        key: Some(format!("key-{offset_delta}").into_bytes()),
        value: Some(vec![b'v'; 300 + offset_delta as usize * 7]),
        headers: vec![
            (b"h".to_vec(), Some(b"header".to_vec())),
            (b"n".to_vec(), None),
        ],
    }
}

pub(super) fn encode_record(r: &Rec) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    put_varlong(&mut body, r.timestamp_delta);
    put_varlong(&mut body, i64::from(r.offset_delta));
    put_bytes(&mut body, r.key.as_deref());
    put_bytes(&mut body, r.value.as_deref());
    put_varlong(&mut body, r.headers.len() as i64);
    for (k, v) in &r.headers {
        put_bytes(&mut body, Some(k));
        put_bytes(&mut body, v.as_deref());
    }
    let mut out = Vec::new();
    put_varlong(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

pub(super) fn compress(codec: u8, raw: &[u8]) -> Vec<u8> {
    match codec {
        0 => raw.to_vec(),
        GZIP => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        SNAPPY => snap::raw::Encoder::new().compress_vec(raw).unwrap(),
        XERIAL => {
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            for chunk in raw.chunks(1024) {
                let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
        LZ4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        ZSTD => ruzstd::encoding::compress_to_vec(raw, ruzstd::encoding::CompressionLevel::Fastest),
        other => panic!("no codec {other}"),
    }
}

pub(super) struct Batch {
    base_offset: i64,
    codec: u8,
    log_append_time: bool,
    transactional: bool,
    control: bool,
    producer_id: i64,
    pub(super) base_timestamp: i64,
    max_timestamp: i64,
    last_offset_delta: Option<i32>,
    pub(super) records: Vec<Rec>,
}

pub(super) fn batch(base_offset: i64, records: Vec<Rec>) -> Batch {
    Batch {
        base_offset,
        codec: 0,
        log_append_time: false,
        transactional: false,
        control: false,
        producer_id: -1,
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_999_999,
        last_offset_delta: None,
        records,
    }
}

/// A batch of records at consecutive offsets, timestamps 10 ms apart.
pub(super) fn simple(base_offset: i64, count: i32) -> Batch {
    batch(
        base_offset,
        (0..count).map(|i| rec(i, i64::from(i) * 10)).collect(),
    )
}

/// A control batch holding one marker (ABORT when `abort`, else COMMIT).
fn marker(base_offset: i64, producer_id: i64, abort: bool) -> Batch {
    let mut key = 0i16.to_be_bytes().to_vec();
    key.extend_from_slice(&(if abort { 0i16 } else { 1i16 }).to_be_bytes());
    let mut value = 0i16.to_be_bytes().to_vec();
    value.extend_from_slice(&5i32.to_be_bytes());
    let record = Rec {
        offset_delta: 0,
        timestamp_delta: 0,
        key: Some(key),
        value: Some(value),
        headers: vec![],
    };
    Batch {
        transactional: true,
        control: true,
        producer_id,
        ..batch(base_offset, vec![record])
    }
}

impl Batch {
    /// The header's lastOffsetDelta set to `last` whatever the records hold.
    pub(super) fn claiming(self, last: i32) -> Self {
        Batch {
            last_offset_delta: Some(last),
            ..self
        }
    }

    pub(super) fn codec(self, codec: u8) -> Self {
        Batch { codec, ..self }
    }

    fn txn(self, producer_id: i64) -> Self {
        Batch {
            transactional: true,
            producer_id,
            ..self
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let raw: Vec<u8> = self.records.iter().flat_map(encode_record).collect();
        let body = compress(self.codec, &raw);
        let codec_id = if self.codec == XERIAL {
            SNAPPY
        } else {
            self.codec
        };
        let attributes = i16::from(codec_id)
            | if self.log_append_time { 0x08 } else { 0 }
            | if self.transactional { 0x10 } else { 0 }
            | if self.control { 0x20 } else { 0 };
        let last_offset_delta = self.last_offset_delta.unwrap_or_else(|| {
            self.records
                .iter()
                .map(|r| r.offset_delta)
                .max()
                .unwrap_or(0)
        });
        let mut out = Vec::new();
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // partitionLeaderEpoch
        out.push(2); // magic
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&last_offset_delta.to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes()); // producerEpoch
        out.extend_from_slice(&0i32.to_be_bytes()); // baseSequence
        out.extend_from_slice(&(self.records.len() as i32).to_be_bytes());
        assert_eq!(out.len(), HEADER_LEN);
        out.extend_from_slice(&body);
        set_crc(&mut out);
        out
    }
}

/// The largest batch the callers fetch whole (Fetch's 256 KiB partition cap).
pub(super) const WHOLE: usize = 256 << 10;

/// Writes the CRC-32C of the v2 batch `batch` (whole) into its header.
fn set_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Recomputes the CRC of every whole v2 batch in `buf` (after a test edited its bytes).
pub(super) fn fix_crcs(buf: &mut [u8]) {
    let mut at = 0;
    while at + 12 <= buf.len() {
        let len = i32::from_be_bytes(buf[at + 8..at + 12].try_into().unwrap());
        let end = at + 12 + len.max(0) as usize;
        if len < 49 || end > buf.len() {
            return;
        }
        set_crc(&mut buf[at..end]);
        at = end;
    }
}

pub(super) fn concat(batches: &[Batch]) -> Vec<u8> {
    batches.iter().flat_map(Batch::encode).collect()
}

fn found(lookup: Lookup) -> RecordAt {
    match lookup {
        Lookup::Found(at) => at,
        other => panic!("expected a record, got {other:?}"),
    }
}

const ALL_CODECS: [u8; 6] = [0, GZIP, SNAPPY, XERIAL, LZ4, ZSTD];
pub(super) const T0: i64 = 1_700_000_000_000;

// ---- tests ----

#[test]
fn finds_the_exact_mid_batch_record_with_every_codec() {
    for codec in ALL_CODECS {
        let buf = concat(&[simple(90, 10).codec(codec), simple(100, 5).codec(codec)]);
        for (target, ts) in [(100, T0), (102, T0 + 20), (104, T0 + 40), (95, T0 + 50)] {
            let at = found(record_at(&buf, target, &[], WHOLE).unwrap());
            assert_eq!(
                at,
                RecordAt {
                    offset: target,
                    timestamp_ms: ts,
                    timestamp_type: TimestampType::CreateTime,
                    verified: true,
                },
                "codec {codec}, target {target}"
            );
        }
    }
}

#[test]
fn large_records_cross_buffer_and_block_boundaries() {
    for codec in ALL_CODECS {
        let records = (0..5)
            .map(|i| Rec {
                value: Some(vec![i as u8; 20_000]),
                headers: vec![(vec![b'k'; 3000], Some(vec![7; 9000]))],
                ..rec(i, i64::from(i) * 1000)
            })
            .collect();
        let buf = batch(0, records).codec(codec).encode();
        let at = found(record_at(&buf, 3, &[], WHOLE).unwrap());
        assert_eq!(
            (at.offset, at.timestamp_ms),
            (3, T0 + 3000),
            "codec {codec}"
        );
    }
}

#[test]
fn log_append_time_uses_max_timestamp_for_every_record() {
    for codec in ALL_CODECS {
        let mut b = simple(10, 5).codec(codec);
        b.log_append_time = true;
        let buf = b.encode();
        for target in 10..15 {
            let at = found(record_at(&buf, target, &[], WHOLE).unwrap());
            assert_eq!(at.offset, target);
            assert_eq!(at.timestamp_ms, 1_700_000_999_999);
            assert_eq!(at.timestamp_type, TimestampType::LogAppendTime);
        }
    }
}

#[test]
fn negative_timestamp_deltas_are_honoured() {
    let buf = batch(0, vec![rec(0, 0), rec(1, -250), rec(2, 5)]).encode();
    assert_eq!(
        found(record_at(&buf, 1, &[], WHOLE).unwrap()).timestamp_ms,
        T0 - 250
    );
}

#[test]
fn target_before_the_first_batch_returns_the_first_record() {
    let buf = concat(&[simple(100, 3), simple(103, 3)]);
    let at = found(record_at(&buf, 42, &[], WHOLE).unwrap());
    assert_eq!((at.offset, at.timestamp_ms), (100, T0));
}

#[test]
fn target_in_a_compacted_gap_returns_the_next_record() {
    // Inside a batch: offsets 0, 1, 5, 6 survive.
    let inner = batch(0, vec![rec(0, 0), rec(1, 10), rec(5, 50), rec(6, 60)]);
    let at = found(record_at(&inner.encode(), 3, &[], WHOLE).unwrap());
    assert_eq!((at.offset, at.timestamp_ms), (5, T0 + 50));
    // Between batches: 0..3, then 10..13.
    let buf = concat(&[simple(0, 3), simple(10, 3)]);
    assert_eq!(found(record_at(&buf, 5, &[], WHOLE).unwrap()).offset, 10);
    // A batch whose tail was compacted away keeps its lastOffsetDelta; the next batch
    // holds the answer.
    let mut tail_gone = simple(0, 2);
    tail_gone.last_offset_delta = Some(4);
    let buf = concat(&[tail_gone, simple(5, 2)]);
    assert_eq!(found(record_at(&buf, 3, &[], WHOLE).unwrap()).offset, 5);
    // An empty batch (all records compacted) is passed over.
    let mut empty = batch(0, vec![]);
    empty.last_offset_delta = Some(9);
    let buf = concat(&[empty, simple(10, 1)]);
    assert_eq!(found(record_at(&buf, 0, &[], WHOLE).unwrap()).offset, 10);
}

#[test]
fn target_after_everything_is_missing_with_next_offset() {
    let buf = concat(&[simple(0, 3), simple(3, 4)]);
    assert_eq!(
        record_at(&buf, 7, &[], WHOLE).unwrap(),
        Lookup::Missing {
            truncated: false,
            next_offset: Some(7),
            needed: None
        }
    );
    assert_eq!(
        record_at(&[], 7, &[], WHOLE).unwrap(),
        Lookup::Missing {
            truncated: false,
            next_offset: None,
            needed: None
        }
    );
}

#[test]
fn truncated_trailing_batch_keeps_the_good_batches_before_it() {
    let first = simple(0, 3).encode();
    let second = simple(3, 3).codec(GZIP).encode();
    let mut buf = first.clone();
    // Cut inside the gzip trailer: every record of the second batch still decodes.
    buf.extend_from_slice(&second[..second.len() - 1]);
    assert_eq!(found(record_at(&buf, 1, &[], WHOLE).unwrap()).offset, 1);
    // The cut batch is small enough to fetch whole: never answered from.
    assert_eq!(
        record_at(&buf, 4, &[], WHOLE).unwrap(),
        Lookup::Missing {
            truncated: true,
            next_offset: Some(3),
            needed: Some(second.len())
        }
    );
    // Larger than what the caller can fetch whole: answered from, unverified.
    let at = found(record_at(&buf, 4, &[], 0).unwrap());
    assert_eq!((at.offset, at.verified), (4, false));
    assert_eq!(
        record_at(&buf, 6, &[], 0).unwrap(),
        Lookup::Missing {
            truncated: true,
            next_offset: Some(3),
            needed: None
        }
    );
    // Cut inside the second batch's header: nothing known about it.
    buf.truncate(first.len() + 20);
    assert_eq!(
        record_at(&buf, 4, &[], WHOLE).unwrap(),
        Lookup::Missing {
            truncated: true,
            next_offset: Some(3),
            needed: None
        }
    );
}

/// Where each record's head (length, attributes, timestampDelta, offsetDelta) ends in an
/// uncompressed batch: the bytes a lookup of that record needs.
fn head_ends(b: &Batch) -> Vec<usize> {
    let mut at = HEADER_LEN;
    b.records
        .iter()
        .map(|r| {
            let record = encode_record(r);
            let mut fields = vec![0u8]; // attributes
            put_varlong(&mut fields, r.timestamp_delta);
            put_varlong(&mut fields, i64::from(r.offset_delta));
            let mut body_len = Vec::new();
            let body = record.len() - record_length_prefix(&record);
            put_varlong(&mut body_len, body as i64);
            let end = at + body_len.len() + fields.len();
            at += record.len();
            end
        })
        .collect()
}

/// Bytes of a record's leading length varint.
fn record_length_prefix(record: &[u8]) -> usize {
    record.iter().position(|b| b & 0x80 == 0).unwrap() + 1
}

#[test]
fn a_cut_uncompressed_batch_answers_for_every_record_whose_head_arrived() {
    let b = simple(100, 20);
    let whole = b.encode();
    let ends = head_ends(&b);
    for cut in 1..whole.len() {
        for (i, end) in ends.iter().enumerate() {
            let target = 100 + i as i64;
            let got = record_at(&whole[..cut], target, &[], 0).unwrap();
            if cut >= *end {
                let at = found(got);
                assert_eq!((at.offset, at.timestamp_ms), (target, T0 + i as i64 * 10));
            } else {
                let Lookup::Missing {
                    truncated: true,
                    next_offset: None,
                    needed,
                } = got
                else {
                    panic!("cut {cut}, target {target}: {got:?}");
                };
                if cut >= HEADER_LEN {
                    let needed = needed.expect("the header arrived");
                    assert!(needed > cut && needed <= whole.len(), "cut {cut}: {needed}");
                } else {
                    assert_eq!(needed, None);
                }
            }
        }
    }
}

/// Fetches a cut `whole` batch with `partition_max_bytes` of 512, then of what each miss
/// says it needs, until `target` is found: (fetches, bytes of the last fetch).
fn fetch_until_found(whole: &[u8], target: i64) -> (u32, usize) {
    let mut cut = 512;
    let mut fetches = 1;
    loop {
        match record_at(&whole[..cut.min(whole.len())], target, &[], 0).unwrap() {
            Lookup::Found(at) => {
                assert_eq!(at.offset, target);
                return (fetches, cut);
            }
            Lookup::Missing {
                needed: Some(n), ..
            } => {
                assert!(n > cut, "target {target}: no progress at {cut}");
                cut = n;
                fetches += 1;
            }
            other => panic!("target {target} at {cut}: {other:?}"),
        }
    }
}

#[test]
fn fetching_what_a_cut_batch_needs_reaches_the_target_in_few_steps() {
    // Records of about the same size, as a producer writes them: one more fetch, a little
    // more than the bytes up to the target.
    let even = batch(
        0,
        (0..300)
            .map(|i| Rec {
                value: Some(vec![b'v'; 100 + (i as usize * 37) % 11]),
                ..rec(i, i64::from(i))
            })
            .collect(),
    );
    let whole = even.encode();
    let ends = head_ends(&even);
    for target in [0, 1, 17, 99, 150, 299] {
        let (fetches, bytes) = fetch_until_found(&whole, target);
        assert!(fetches <= 2, "target {target}: {fetches} fetches");
        let end = ends[target as usize];
        assert!(
            bytes <= end + end / 6 + 600,
            "target {target}: {bytes} for {end}"
        );
    }
    // Records growing fivefold along the batch: each estimate falls short, but each fetch
    // gets further and the whole batch caps the last one.
    let growing = simple(0, 200);
    let whole = growing.encode();
    for target in [0, 99, 199] {
        let (fetches, bytes) = fetch_until_found(&whole, target);
        assert!(fetches <= 5, "target {target}: {fetches} fetches");
        assert!(bytes <= whole.len());
    }
}

#[test]
fn a_cut_compressed_batch_needs_its_whole_size_unless_the_target_decoded() {
    for codec in [GZIP, XERIAL, LZ4, ZSTD] {
        let whole = simple(0, 40).codec(codec).encode();
        for cut in [
            HEADER_LEN,
            HEADER_LEN + 10,
            whole.len() / 2,
            whole.len() - 1,
        ] {
            match record_at(&whole[..cut], 39, &[], 0).unwrap() {
                Lookup::Found(at) => assert_eq!(at.offset, 39, "codec {codec} cut {cut}"),
                Lookup::Missing {
                    truncated: true,
                    needed,
                    ..
                } => assert_eq!(needed, Some(whole.len()), "codec {codec} cut {cut}"),
                other => panic!("codec {codec} cut {cut}: {other:?}"),
            }
            // The first record is in every prefix that holds a decodable start.
            if let Ok(Lookup::Found(at)) = record_at(&whole[..cut], 0, &[], 0) {
                assert_eq!((at.offset, at.timestamp_ms), (0, T0));
            }
        }
    }
}

#[test]
fn a_cut_batch_beyond_the_target_or_skipped_needs_nothing_of_it() {
    // The target is before the cut batch: the complete batch before answers.
    let buf = concat(&[simple(0, 3), simple(3, 3)]);
    let cut = &buf[..buf.len() - 5];
    assert_eq!(found(record_at(cut, 2, &[], WHOLE).unwrap()).offset, 2);
    // The target is past the cut batch: its bytes say nothing about the target.
    assert_eq!(
        record_at(cut, 9, &[], WHOLE).unwrap(),
        Lookup::Missing {
            truncated: true,
            next_offset: Some(3),
            needed: None
        }
    );
    // A cut control batch is passed over.
    let buf = marker(0, 7, true).encode();
    assert_eq!(
        record_at(&buf[..buf.len() - 1], 0, &[], WHOLE).unwrap(),
        Lookup::Missing {
            truncated: true,
            next_offset: None,
            needed: None
        }
    );
}

#[test]
fn every_prefix_of_a_buffer_is_handled_without_error() {
    let batches: Vec<Batch> = ALL_CODECS
        .iter()
        .enumerate()
        .map(|(i, &codec)| simple(i as i64 * 5, 5).codec(codec))
        .collect();
    let ends: Vec<usize> = batches
        .iter()
        .scan(0, |end, b| {
            *end += b.encode().len();
            Some(*end)
        })
        .collect();
    let buf = concat(&batches);
    for len in 0..=buf.len() {
        let complete = ends.iter().filter(|&&end| end <= len).count() as i64;
        for target in [0, 7, 12, 29, 40] {
            let result = record_at(&buf[..len], target, &[], WHOLE)
                .unwrap_or_else(|e| panic!("prefix {len}, target {target}: {e}"));
            let partial = !ends.contains(&len) && len > 0;
            let right = Lookup::Found(RecordAt {
                offset: target,
                timestamp_ms: T0 + (target % 5) * 10,
                timestamp_type: TimestampType::CreateTime,
                verified: true,
            });
            if target < complete * 5 {
                assert_eq!(result, right, "prefix {len}, target {target}");
                continue;
            }
            match result {
                // Early in the cut batch: its record arrived.
                Lookup::Found(_) if partial && target < (complete + 1) * 5 => {
                    assert_eq!(result, right, "prefix {len}, target {target}");
                }
                Lookup::Missing {
                    truncated,
                    next_offset,
                    ..
                } => {
                    assert_eq!(truncated, partial, "prefix {len}, target {target}");
                    assert_eq!(next_offset, (complete > 0).then_some(complete * 5));
                }
                other => panic!("prefix {len}, target {target}: {other:?}"),
            }
        }
    }
}

#[test]
fn mutated_input_never_panics() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for codec in ALL_CODECS {
        let mut control = marker(5, 9, true);
        control.codec = codec;
        let good = concat(&[
            simple(0, 5).codec(codec).txn(9),
            control,
            simple(6, 5).codec(codec),
        ]);
        let aborted = [AbortedTxn {
            producer_id: 9,
            first_offset: 0,
        }];
        for _ in 0..600 {
            let mut buf = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % buf.len();
                buf[at] = next() as u8;
            }
            let len = (next() as usize) % (buf.len() + 1);
            // Also with the CRCs made right again, so the mutation reaches the parsers.
            let mut fixed = buf.clone();
            fix_crcs(&mut fixed);
            for target in [0, 3, 8, 100] {
                for bytes in [&buf, &fixed] {
                    let _ = record_at(bytes, target, &aborted, WHOLE);
                    let _ = record_at(&bytes[..len], target, &[], WHOLE);
                    let _ = record_at(&bytes[..len], target, &[], 0);
                }
            }
        }
    }
}

#[test]
fn control_batches_are_skipped() {
    let buf = concat(&[simple(0, 3), marker(3, 1, false), simple(4, 2)]);
    let at = found(record_at(&buf, 3, &[], WHOLE).unwrap());
    assert_eq!((at.offset, at.timestamp_ms), (4, T0));
    let only_marker = marker(3, 1, true).encode();
    assert_eq!(
        record_at(&only_marker, 3, &[], WHOLE).unwrap(),
        Lookup::Missing {
            truncated: false,
            next_offset: Some(4),
            needed: None
        }
    );
}

#[test]
fn aborted_transactions_are_skipped() {
    let producer = 7;
    let buf = concat(&[
        simple(10, 3).txn(producer), // aborted transaction 10..12
        simple(13, 1).txn(8),        // another producer, interleaved, committed
        marker(14, producer, true),  // ABORT ends producer 7's transaction
        simple(15, 2).txn(producer), // producer 7's next transaction: committed
        marker(17, producer, false),
    ]);
    let aborted = [AbortedTxn {
        producer_id: producer,
        first_offset: 10,
    }];
    assert_eq!(
        found(record_at(&buf, 10, &aborted, WHOLE).unwrap()).offset,
        13
    );
    assert_eq!(
        found(record_at(&buf, 14, &aborted, WHOLE).unwrap()).offset,
        15
    );
    // read_uncommitted sees the aborted records.
    assert_eq!(found(record_at(&buf, 10, &[], WHOLE).unwrap()).offset, 10);
    // A non-transactional batch of the same producer id is never dropped.
    let plain = concat(&[simple(10, 2)]);
    assert_eq!(
        found(record_at(&plain, 10, &aborted, WHOLE).unwrap()).offset,
        10
    );
}

#[test]
fn aborted_list_order_does_not_matter() {
    let buf = concat(&[
        simple(0, 2).txn(1),
        marker(2, 1, true),
        simple(3, 2).txn(2),
        marker(5, 2, true),
        simple(6, 2).txn(1),
    ]);
    let aborted = [
        AbortedTxn {
            producer_id: 2,
            first_offset: 3,
        },
        AbortedTxn {
            producer_id: 1,
            first_offset: 0,
        },
    ];
    assert_eq!(
        found(record_at(&buf, 0, &aborted, WHOLE).unwrap()).offset,
        6
    );
}

#[test]
fn impossible_batch_length_is_an_error_naming_it() {
    let mut buf = simple(0, 2).encode();
    buf.extend_from_slice(&simple(2, 2).encode());
    let second = simple(0, 2).encode().len();
    buf[second + 8..second + 12].copy_from_slice(&10i32.to_be_bytes());
    let err = record_at(&buf, 3, &[], WHOLE).unwrap_err();
    assert!(
        matches!(
            err,
            RecordsError::BadBatchLength {
                position,
                base_offset: 2,
                length: 10
            } if position == second
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("batchLength 10"), "{err}");
    // Negative and "bigger than i32" lengths too.
    for length in [-1, i32::MAX - 5] {
        buf[second + 8..second + 12].copy_from_slice(&length.to_be_bytes());
        assert!(matches!(
            record_at(&buf, 3, &[], WHOLE),
            Err(RecordsError::BadBatchLength { .. })
        ));
    }
}

#[test]
fn unknown_magic_is_unsupported() {
    let mut buf = simple(77, 1).encode();
    buf[16] = 3;
    let err = record_at(&buf, 77, &[], WHOLE).unwrap_err();
    assert!(matches!(
        err,
        RecordsError::UnsupportedMagic {
            magic: 3,
            base_offset: 77
        }
    ));
    assert!(err.to_string().contains("magic 3"));
}

#[test]
fn unknown_codec_is_an_error() {
    let mut buf = simple(0, 2).encode();
    buf[22] |= 0x05;
    fix_crcs(&mut buf);
    assert!(matches!(
        record_at(&buf, 0, &[], WHOLE),
        Err(RecordsError::UnknownCompression {
            codec: 5,
            base_offset: 0
        })
    ));
    // ...but not for a batch skipped by its header alone.
    assert_eq!(
        record_at(&buf, 9, &[], WHOLE).unwrap(),
        Lookup::Missing {
            truncated: false,
            next_offset: Some(2),
            needed: None
        }
    );
}

#[test]
fn corrupt_compressed_data_names_the_codec() {
    for (codec, name) in [
        (GZIP, "gzip"),
        (SNAPPY, "snappy"),
        (XERIAL, "snappy"),
        (LZ4, "lz4"),
        (ZSTD, "zstd"),
    ] {
        let mut buf = simple(0, 5).codec(codec).encode();
        for byte in &mut buf[HEADER_LEN..HEADER_LEN + 4] {
            *byte ^= 0x5a;
        }
        fix_crcs(&mut buf);
        match record_at(&buf, 4, &[], WHOLE) {
            Err(RecordsError::Decompress { codec, .. }) => assert_eq!(codec, name),
            other => panic!("codec {name}: {other:?}"),
        }
    }
}

#[test]
fn record_count_mismatch_is_an_error() {
    let mut buf = simple(0, 3).encode();
    buf[57..61].copy_from_slice(&5i32.to_be_bytes());
    buf[23..27].copy_from_slice(&9i32.to_be_bytes());
    fix_crcs(&mut buf);
    let err = record_at(&buf, 7, &[], WHOLE).unwrap_err();
    assert!(
        matches!(
            err,
            RecordsError::RecordCountMismatch {
                base_offset: 0,
                expected: 5,
                found: 3
            }
        ),
        "{err:?}"
    );
}

#[test]
fn bad_varint_is_an_error() {
    let mut buf = simple(0, 1).encode();
    buf.truncate(HEADER_LEN);
    buf.extend_from_slice(&[0xff; 6]);
    let length = (buf.len() - LOG_OVERHEAD) as i32;
    buf[8..12].copy_from_slice(&length.to_be_bytes());
    fix_crcs(&mut buf);
    assert!(matches!(
        record_at(&buf, 0, &[], WHOLE),
        Err(RecordsError::BadVarint {
            base_offset: 0,
            position: 0
        })
    ));
}

#[test]
fn decompression_stops_at_the_target_record() {
    // Xerial chunks after the one holding the target are garbage: never decoded.
    let raw: Vec<u8> = (0..5).flat_map(|i| encode_record(&rec(i, 0))).collect();
    let first_two: usize = (0..2).map(|i| encode_record(&rec(i, 0)).len()).sum();
    let mut body = XERIAL_MAGIC.to_vec();
    body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
    let block = snap::raw::Encoder::new()
        .compress_vec(&raw[..first_two + 8])
        .unwrap();
    body.extend_from_slice(&(block.len() as u32).to_be_bytes());
    body.extend_from_slice(&block);
    body.extend_from_slice(&100u32.to_be_bytes());
    body.extend_from_slice(&[0xff; 100]);
    let mut buf = simple(0, 5).encode();
    buf.truncate(HEADER_LEN);
    buf[21..23].copy_from_slice(&2i16.to_be_bytes());
    buf.extend_from_slice(&body);
    let length = (buf.len() - LOG_OVERHEAD) as i32;
    buf[8..12].copy_from_slice(&length.to_be_bytes());
    fix_crcs(&mut buf);
    assert_eq!(found(record_at(&buf, 2, &[], WHOLE).unwrap()).offset, 2);
    assert!(matches!(
        record_at(&buf, 3, &[], WHOLE),
        Err(RecordsError::Decompress {
            codec: "snappy",
            ..
        })
    ));
}

#[test]
fn raw_and_xerial_snappy_both_decode() {
    let raw = simple(0, 5).codec(SNAPPY).encode();
    let xerial = simple(0, 5).codec(XERIAL).encode();
    assert!(!raw[HEADER_LEN..].starts_with(XERIAL_MAGIC));
    assert!(xerial[HEADER_LEN..].starts_with(XERIAL_MAGIC));
    for buf in [raw, xerial] {
        let at = found(record_at(&buf, 3, &[], WHOLE).unwrap());
        assert_eq!((at.offset, at.timestamp_ms), (3, T0 + 30));
    }
}

#[test]
fn oversized_snappy_block_claim_is_rejected_before_allocating() {
    // A raw snappy block whose length header claims 2^32-1 bytes.
    let mut buf = simple(0, 1).encode();
    buf.truncate(HEADER_LEN);
    buf[21..23].copy_from_slice(&2i16.to_be_bytes());
    buf.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    let length = (buf.len() - LOG_OVERHEAD) as i32;
    buf[8..12].copy_from_slice(&length.to_be_bytes());
    fix_crcs(&mut buf);
    assert!(matches!(
        record_at(&buf, 0, &[], WHOLE),
        Err(RecordsError::Decompress {
            codec: "snappy",
            ..
        })
    ));
}
