//! Fuzzes `tidemark::kafka::records::record_at`: the walker over record batches v2 and
//! legacy message sets (magic 0/1) with CRC checks (all codecs: none, gzip, snappy raw +
//! xerial, lz4 frame incl. magic 0's, zstd) that runs on the `records` bytes of a Fetch
//! response partition.
//!
//! Input: `[n: u8][target: i64 BE][n % 4 × (producer_id: i64 BE, first_offset: i64 BE)][records...]`
//! — the offset to look up and a small aborted-transaction list, then the records bytes;
//! `(n >> 2) % 4` picks `whole_up_to`: 256 KiB, 0, 64 or 1024 bytes.
//! Missing header bytes are treated as zero (so short inputs still reach the walker).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark::kafka::records::{record_at, AbortedTxn, Lookup};

fn take_i64(data: &mut &[u8]) -> i64 {
    let mut raw = [0u8; 8];
    let n = data.len().min(8);
    raw[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    i64::from_be_bytes(raw)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, mut rest)) = data.split_first() else {
        return;
    };
    let target = take_i64(&mut rest);
    let aborted: Vec<AbortedTxn> = (0..n % 4)
        .map(|_| AbortedTxn {
            producer_id: take_i64(&mut rest),
            first_offset: take_i64(&mut rest),
        })
        .collect();
    let whole_up_to = [256 << 10, 0, 64, 1024][usize::from((n >> 2) % 4)];
    match record_at(rest, target, &aborted, whole_up_to) {
        Ok(Lookup::Found(found)) => {
            // Documented contract: the record found is at or after the target. (An
            // unverified answer comes from a cut batch whose full size exceeds `whole_up_to`;
            // what arrived of it may be shorter, so the buffer length says nothing.)
            assert!(found.offset >= target);
        }
        Ok(Lookup::Untimed { offset }) => assert!(offset >= target),
        Ok(Lookup::Missing {
            truncated,
            next_offset,
            needed,
        }) => {
            let _ = next_offset;
            // Documented contract: a need is only known for a cut batch.
            if let Some(needed) = needed {
                assert!(truncated);
                assert!(needed > 0);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
