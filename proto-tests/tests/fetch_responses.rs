//! Golden Fetch responses decoded.
//!
//! `fixtures/responses/fetch_v{4,12}.bin` are Fetch response frames captured from the test
//! broker (see fixtures/README.md): WITHOUT the 4-byte size prefix, starting with the response
//! header (correlation id; for v12, header v1, also an empty tagged-field section). Each
//! `.json` sidecar says what they hold. tidemark must strip the header, decode the body, and
//! find every record's timestamp in the partitions' `records` bytes.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Decodable;
use serde_json::Value;
use tidemark::kafka::codec;
use tidemark::kafka::records::{record_at, Lookup, RecordAt, TimestampType};

/// The largest batch tidemark fetches whole (Fetch's 256 KiB partition cap).
const WHOLE: usize = 256 << 10;
use tidemark::kafka::wire::fetch::FetchResponse;

fn load(version: i16) -> (Bytes, Value) {
    let stem = format!("fixtures/responses/fetch_v{version}");
    let sidecar: Value = serde_json::from_slice(&proto_tests::read(&format!("{stem}.json")))
        .unwrap_or_else(|e| panic!("{stem}.json: {e}"));
    (
        Bytes::from(proto_tests::read(&format!("{stem}.bin"))),
        sidecar,
    )
}

fn int(v: &Value, what: &str) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("sidecar field {what} is not an integer: {v}"))
}

/// The response body of the fixture, checked against the sidecar's framing description.
fn body(version: i16, frame: &Bytes, sidecar: &Value) -> Bytes {
    assert_eq!(
        int(&sidecar["api_key"], "api_key"),
        1,
        "not a Fetch response"
    );
    assert_eq!(
        int(&sidecar["api_version"], "api_version"),
        i64::from(version)
    );
    assert_eq!(
        frame.len() as i64,
        int(&sidecar["size_bytes"], "size_bytes")
    );
    let header_version = ApiKey::Fetch.response_header_version(version);
    assert_eq!(
        i64::from(header_version),
        int(
            &sidecar["response_header_version"],
            "response_header_version"
        ),
        "tidemark and the capture disagree on the response header version"
    );
    // No size prefix: the frame starts with the correlation id.
    let correlation = codec::correlation_id(frame).expect("correlation id");
    assert_eq!(
        i64::from(correlation),
        int(&sidecar["correlation_id"], "correlation_id")
    );
    let body = codec::response_body(frame.clone(), ApiKey::Fetch, version).expect("header");
    // Header v0 is the 4-byte correlation id; v1 adds one byte: zero tagged fields.
    let header_len = if header_version >= 1 { 5 } else { 4 };
    assert_eq!(frame.len() - body.len(), header_len, "header length");
    body
}

fn check(version: i16) {
    let (frame, sidecar) = load(version);
    let body = body(version, &frame, &sidecar);
    let resp = FetchResponse::decode(body.clone(), version)
        .unwrap_or_else(|e| panic!("tidemark cannot decode fetch_v{version}.bin: {e}"));
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.topics.len(), 1, "one topic");
    let topic = &resp.topics[0];
    assert_eq!(Some(topic.name.as_str()), sidecar["topic"].as_str());
    let want = sidecar["partitions"].as_array().expect("partitions[]");
    assert_eq!(topic.partitions.len(), want.len(), "partition count");

    for (p, w) in topic.partitions.iter().zip(want) {
        let ctx = format!("fetch_v{version} partition {}", p.partition);
        assert_eq!(i64::from(p.partition), int(&w["partition"], "partition"));
        assert_eq!(
            i64::from(p.error_code),
            int(&w["error_code"], "error_code"),
            "{ctx}"
        );
        assert_eq!(p.high_watermark, int(&w["high_watermark"], "hw"), "{ctx}");
        assert_eq!(
            p.high_watermark,
            int(&w["expected_high_watermark"], "expected_high_watermark"),
            "{ctx}"
        );
        assert_eq!(
            p.last_stable_offset,
            int(&w["last_stable_offset"], "last_stable_offset"),
            "{ctx}"
        );
        // log_start_offset is on the wire from v5; tidemark reports -1 below.
        let log_start = if version >= 5 {
            int(&w["log_start_offset"], "log_start_offset")
        } else {
            -1
        };
        assert_eq!(p.log_start_offset, log_start, "{ctx}: log start offset");
        let aborted = w["aborted_transactions"].as_array().map_or(0, Vec::len);
        assert_eq!(p.aborted.len(), aborted, "{ctx}: aborted transactions");
        assert_eq!(
            p.records.len() as i64,
            int(&w["records_bytes"], "records_bytes"),
            "{ctx}: records bytes"
        );

        let records = w["records"].as_array().expect("records[]");
        assert!(!records.is_empty(), "{ctx}: sidecar lists no records");
        for r in records {
            let offset = int(&r["offset"], "offset");
            let ts = int(&r["timestamp_ms"], "timestamp_ms");
            let got = record_at(&p.records, offset, &[], WHOLE)
                .unwrap_or_else(|e| panic!("{ctx}: record_at({offset}, WHOLE): {e}"));
            assert_eq!(
                got,
                Lookup::Found(RecordAt {
                    offset,
                    timestamp_ms: ts,
                    timestamp_type: TimestampType::CreateTime,
                    verified: true,
                }),
                "{ctx}: record at offset {offset}"
            );
        }
        // Nothing at the high watermark: the complete buffer ends at it.
        let got =
            record_at(&p.records, p.high_watermark, &[], WHOLE).expect("record_at(hw, WHOLE)");
        assert_eq!(
            got,
            Lookup::Missing {
                truncated: false,
                next_offset: Some(p.high_watermark),
                needed: None,
            },
            "{ctx}: record_at(high watermark, WHOLE)"
        );
    }

    // The same body through kafka-protocol's decoder (independent of tidemark's): same values,
    // and the very same records bytes.
    let mut buf = body;
    let kp = kafka_protocol::messages::FetchResponse::decode(&mut buf, version)
        .unwrap_or_else(|e| panic!("kafka-protocol cannot decode fetch_v{version}: {e}"));
    assert!(buf.is_empty(), "kafka-protocol left {} bytes", buf.len());
    assert_eq!(kp.responses.len(), resp.topics.len());
    for (kt, t) in kp.responses.iter().zip(&resp.topics) {
        assert_eq!(kt.topic.0.as_str(), t.name);
        assert_eq!(kt.partitions.len(), t.partitions.len());
        for (kpart, p) in kt.partitions.iter().zip(&t.partitions) {
            assert_eq!(kpart.partition_index, p.partition);
            assert_eq!(kpart.error_code, p.error_code);
            assert_eq!(kpart.high_watermark, p.high_watermark);
            assert_eq!(kpart.last_stable_offset, p.last_stable_offset);
            assert_eq!(kpart.log_start_offset, p.log_start_offset);
            assert_eq!(
                kpart.aborted_transactions.as_ref().map_or(0, Vec::len),
                p.aborted.len()
            );
            assert_eq!(kpart.records.as_deref().unwrap_or_default(), &p.records[..]);
        }
    }
}

#[test]
fn fetch_v4_response() {
    check(4);
}

#[test]
fn fetch_v12_response() {
    check(12);
}

/// Both captures fetched the same partitions from offset 0, so their records are identical.
#[test]
fn v4_and_v12_carry_the_same_records() {
    let records = |version: i16| {
        let (frame, sidecar) = load(version);
        let resp = FetchResponse::decode(body(version, &frame, &sidecar), version).expect("decode");
        resp.topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .map(|p| (p.partition, p.records))
            .collect::<Vec<_>>()
    };
    assert_eq!(records(4), records(12));
}

/// Every strict prefix of a captured frame is an error for tidemark's decoder, never a panic
/// or a short success.
#[test]
fn truncated_frames_are_errors() {
    for version in [4, 12] {
        let (frame, sidecar) = load(version);
        let body = body(version, &frame, &sidecar);
        for len in 0..body.len() {
            assert!(
                FetchResponse::decode(body.slice(..len), version).is_err(),
                "fetch_v{version}: a {len}-byte prefix of the {}-byte body decoded",
                body.len()
            );
        }
    }
}
