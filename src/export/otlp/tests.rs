use super::*;
use crate::export::remote_write::tests::{golden, input};
use crate::export::samples::feed_text;

/// Timestamps of the golden files (generate.py).
const TIME_NS: u64 = 1_750_000_000_123_456_789;
const START_NS: u64 = 1_749_999_000_000_000_000;

#[test]
fn the_export_request_is_byte_for_byte_protobufs_own_encoding() {
    let mut e = Encoder::new(TIME_NS, START_NS, CHUNK_BYTES, false);
    feed_text(&input(), &mut e);
    let chunk = e.take();
    assert_eq!(chunk.samples, 13);
    assert_eq!(chunk.body.to_vec(), golden("otlp.bin"));
}

#[test]
fn grpc_frames_the_request_with_its_five_byte_prefix() {
    let mut e = Encoder::new(TIME_NS, START_NS, CHUNK_BYTES, true);
    feed_text(&input(), &mut e);
    let body = e.take().body;
    let want = golden("otlp.bin");
    assert_eq!(body[0], 0, "not compressed");
    assert_eq!(&body[1..5], &(want.len() as u32).to_be_bytes());
    assert_eq!(&body[5..], &want[..]);
}

#[test]
fn requests_cut_at_the_limit_carry_every_point_once() {
    // A limit below one family's points: metrics continue across requests.
    let mut e = Encoder::new(TIME_NS, START_NS, 250, false);
    struct Cut<'a> {
        e: &'a mut Encoder,
        bodies: Vec<Chunk>,
    }
    impl SampleSink for Cut<'_> {
        fn sample(&mut self, f: &Family, s: &Sample<'_>) -> bool {
            if self.e.sample(f, s) {
                self.bodies.push(self.e.take());
            }
            false
        }
    }
    let mut cut = Cut {
        e: &mut e,
        bodies: Vec::new(),
    };
    feed_text(&input(), &mut cut);
    let mut bodies = cut.bodies;
    bodies.push(e.take());
    assert!(bodies.len() >= 4, "{}", bodies.len());
    assert_eq!(bodies.iter().map(|c| c.samples).sum::<u64>(), 13);
    // Each request is one whole ResourceMetrics with the resource and the scope.
    for b in &bodies {
        assert_eq!(b.body[0], 0x0a, "resource_metrics");
        let mut len = 0usize;
        let mut i = 1;
        for shift in (0..).step_by(7) {
            let byte = b.body[i];
            len |= usize::from(byte & 0x7f) << shift;
            i += 1;
            if byte < 0x80 {
                break;
            }
        }
        assert_eq!(i + len, b.body.len(), "one message, whole");
        assert!(b.body.windows(12).any(|w| w == b"service.name"));
    }
}

#[test]
fn gzip_requests_inflate_to_the_same_message_behind_a_compressed_grpc_prefix() {
    use std::io::Read;
    let mut e = Encoder::new(TIME_NS, START_NS, CHUNK_BYTES, false);
    feed_text(&input(), &mut e);
    let chunk = crate::export::gzip_chunk(e.take(), true).expect("gzipped");
    assert_eq!(chunk.samples, 13);
    assert_eq!(chunk.body[0], 1, "compressed flag");
    let len = u32::from_be_bytes([chunk.body[1], chunk.body[2], chunk.body[3], chunk.body[4]]);
    assert_eq!(len as usize, chunk.body.len() - 5);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&chunk.body[5..])
        .read_to_end(&mut raw)
        .expect("one gzip member");
    assert_eq!(raw, golden("otlp.bin"));
}
