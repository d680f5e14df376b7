use super::*;
use crate::export::samples::feed_text;

/// proto-tests/golden/push: the input lines and protobuf's own encoding of them.
pub(crate) fn golden(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/proto-tests/golden/push/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(crate) fn input() -> String {
    String::from_utf8(golden("input.txt")).expect("UTF-8")
}

/// Timestamps of the golden files (generate.py).
const TIMESTAMP_MS: i64 = 1_750_000_000_123;

#[test]
fn the_write_request_is_byte_for_byte_protobufs_own_encoding() {
    let mut e = Encoder::new(TIMESTAMP_MS, CHUNK_BYTES);
    feed_text(&input(), &mut e);
    let (raw, samples) = e.take_raw();
    assert_eq!(samples, 13);
    assert_eq!(raw, golden("remote_write.bin"));
}

#[test]
fn the_body_is_the_request_in_snappy_block_format() {
    let mut e = Encoder::new(TIMESTAMP_MS, CHUNK_BYTES);
    feed_text(&input(), &mut e);
    let chunk = e.take().expect("compressed");
    assert_eq!(chunk.samples, 13);
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&chunk.body)
        .expect("snappy block");
    assert_eq!(raw, golden("remote_write.bin"));
    // The encoder starts over.
    let (raw, samples) = e.take_raw();
    assert_eq!((raw.len(), samples), (0, 0));
}

#[test]
fn a_full_encoder_says_so_at_its_limit() {
    let mut e = Encoder::new(TIMESTAMP_MS, 300);
    let mut fulls = 0;
    struct Count<'a>(&'a mut Encoder, &'a mut usize);
    impl SampleSink for Count<'_> {
        fn sample(&mut self, f: &Family, s: &Sample<'_>) -> bool {
            let full = self.0.sample(f, s);
            if full {
                *self.1 += 1;
                let (raw, _) = self.0.take_raw();
                // Cut at the first sample that reaches the limit: under it by less than
                // one series before that sample.
                assert!(raw.len() >= 300 && raw.len() < 300 + 400, "{}", raw.len());
            }
            full
        }
    }
    feed_text(&input(), &mut Count(&mut e, &mut fulls));
    assert!(fulls >= 3, "{fulls}");
}
