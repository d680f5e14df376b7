//! Fuzzes the Fetch response decoder (`tidemark::kafka::wire::fetch`) on arbitrary bodies.
//!
//! Input: `[selector: u8][body...]`. The body is decoded whole at `MIN_VERSION + selector
//! % (MAX_VERSION - MIN_VERSION + 1)` and at every other supported version; then, at the
//! first version, streamed in chunks of `1 + 7 * (selector >> 4)` bytes (1 to 106) keeping
//! at most 64 record bytes per partition, which must hand over exactly what the whole
//! decode found (records cut to 64 bytes) and fail exactly when it fails.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidemark::kafka::wire::fetch::{decode_stream, FetchResponse as Response, Item};
use tidemark::kafka::wire::stream::{now_or_never, StreamReader};

const KEEP: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = data.split_first() else {
        return;
    };
    let chunk = 1 + 7 * usize::from(selector >> 4);
    let (min, max) = (Response::MIN_VERSION, Response::MAX_VERSION);
    let first = min + i16::from(*selector) % (max - min + 1);
    let body = Bytes::copy_from_slice(rest);
    let whole = Response::decode(body.clone(), first);
    for version in (min..=max).filter(|v| *v != first) {
        let r = Response::decode(body.clone(), version);
        let _ = r.is_ok();
    }

    let chunks: Vec<Bytes> = rest
        .chunks(chunk)
        .map(Bytes::copy_from_slice)
        .collect();
    let mut reader = StreamReader::from_chunks(chunks, "Fetch", first);
    let mut streamed = Vec::new();
    let result = now_or_never(decode_stream(&mut reader, first, KEEP, |item| {
        if let Item::Partition(p) = item {
            streamed.push(p);
        }
    }))
    .expect("an in-memory stream never waits");
    match whole {
        Ok(w) => {
            assert_eq!(result, Ok(w.error_code));
            let expected: Vec<_> = w
                .topics
                .into_iter()
                .flat_map(|t| t.partitions)
                .map(|mut p| {
                    p.records.truncate(KEEP);
                    p
                })
                .collect();
            assert_eq!(streamed, expected);
        }
        Err(e) => assert_eq!(result, Err(e)),
    }
});
