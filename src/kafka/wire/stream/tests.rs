use std::time::Duration;

use super::*;

fn chunked(body: &[u8], size: usize) -> StreamReader {
    let chunks: Vec<Bytes> = body
        .chunks(size.max(1))
        .map(Bytes::copy_from_slice)
        .collect();
    StreamReader::from_chunks(chunks, "Test", 1)
}

fn problem(e: DecodeError) -> Problem {
    match e {
        DecodeError::Malformed { problem, .. } => problem,
        other => panic!("{other}"),
    }
}

#[test]
fn fields_split_over_chunks_read_as_if_whole() {
    // i16 2, i32 3, i64 -1, uvarint 300, compact string "topic", i32-prefixed bytes [1,2,3].
    let mut body = vec![0, 2, 0, 0, 0, 3];
    body.extend_from_slice(&[0xff; 8]);
    body.extend_from_slice(&[0xac, 0x02]);
    body.push(6);
    body.extend_from_slice(b"topic");
    body.extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]);
    for size in [1, 2, 3, 5, 64] {
        let mut r = chunked(&body, size);
        let got = now_or_never(async {
            (
                r.i16("a").await,
                r.i32("b").await,
                r.i64("c").await,
                r.uvarint("d").await,
                r.string_v("e", true).await,
                r.nullable_bytes_prefix_v("f", false, 2).await,
            )
        })
        .expect("in-memory reads never wait");
        assert_eq!(got.0, Ok(2), "chunks of {size}");
        assert_eq!(got.1, Ok(3));
        assert_eq!(got.2, Ok(-1));
        assert_eq!(got.3, Ok(300));
        assert_eq!(got.4.as_deref(), Ok("topic"));
        // Two of the three bytes kept, the third skipped, the wire size reported.
        assert_eq!(got.5, Ok((Bytes::from_static(&[1, 2]), 3)));
        assert_eq!((r.position(), r.remaining()), (body.len(), 0));
    }
}

#[test]
fn lengths_beyond_the_body_fail_before_anything_is_read() {
    // Bytes of length i32::MAX in a 6-byte body.
    let mut r = chunked(&[0x7f, 0xff, 0xff, 0xff, 1, 2], 6);
    let e = now_or_never(r.nullable_bytes_prefix_v("records", false, usize::MAX))
        .expect("ready")
        .expect_err("accepted");
    assert_eq!(
        problem(e),
        Problem::Truncated {
            needed: i32::MAX as usize,
            remaining: 2
        }
    );
    // Array count 1,000 with 3 bytes left.
    let mut r = chunked(&[0, 0, 3, 0xe8, 0, 0, 0], 1);
    let e = now_or_never(r.array_len_v("items", false))
        .expect("ready")
        .expect_err("accepted");
    assert_eq!(
        problem(e),
        Problem::CountTooLarge {
            count: 1000,
            remaining: 3
        }
    );
    // Null where the caller requires a value, a negative length, bad UTF-8.
    let mut r = chunked(&[0xff, 0xff], 1);
    assert_eq!(
        now_or_never(r.string_v("s", false)).map(|r| r.map_err(problem)),
        Some(Err(Problem::UnexpectedNull))
    );
    let mut r = chunked(&[0xff, 0xfe], 1);
    assert_eq!(
        now_or_never(r.string_v("s", false)).map(|r| r.map_err(problem)),
        Some(Err(Problem::NegativeLength(-2)))
    );
    let mut r = chunked(&[0, 1, 0xff], 1);
    assert_eq!(
        now_or_never(r.string_v("s", false)).map(|r| r.map_err(problem)),
        Some(Err(Problem::InvalidUtf8))
    );
}

#[test]
fn errors_name_the_path_and_position() {
    let mut r = chunked(&[0, 0, 0, 9, 0], 2);
    r.enter("topics", 3);
    let e = now_or_never(async {
        r.i32("count").await?;
        r.i16("code").await
    })
    .expect("ready")
    .expect_err("truncated");
    assert_eq!(
        e.to_string(),
        "Test v1: field topics[3].code at byte 4: need 2 bytes, 1 left"
    );
    assert_eq!(
        r.interrupted(),
        None,
        "a short body is malformed, not cut off"
    );
}

#[test]
fn tagged_fields_are_skipped_and_bounded() {
    // Two tagged fields: tag 1 with 3 bytes, tag 9 with 0 bytes; then an i8.
    let body = [2, 1, 3, 7, 7, 7, 9, 0, 42];
    for size in [1, 4, 9] {
        let mut r = chunked(&body, size);
        let got = now_or_never(async {
            r.tagged_fields(true).await?;
            r.i8("after").await
        });
        assert_eq!(got, Some(Ok(42)));
    }
    // 100 tagged fields announced with 3 bytes left.
    let mut r = chunked(&[100, 0, 0, 0], 4);
    let e = now_or_never(r.tagged_fields(true)).expect("ready");
    assert!(matches!(
        e.map_err(problem),
        Err(Problem::TagCountTooLarge { count: 100, .. })
    ));
    // Not flexible: nothing read.
    let mut r = chunked(&[5], 1);
    assert_eq!(now_or_never(r.tagged_fields(false)), Some(Ok(())));
    assert_eq!(r.remaining(), 1);
}

#[tokio::test]
async fn a_channel_that_closes_early_is_an_interruption() {
    let (tx, rx) = mpsc::channel(4);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut r = StreamReader::from_channel(rx, 8, deadline, "Test", 1);
    tx.send(Bytes::from_static(&[0, 0, 0, 7]))
        .await
        .expect("send");
    drop(tx);
    assert_eq!(r.i32("a").await, Ok(7));
    let e = r.i32("b").await.expect_err("closed");
    assert!(e.to_string().contains("field b"), "{e}");
    assert_eq!(r.interrupted(), Some(Interruption::Closed));
}

#[tokio::test(start_paused = true)]
async fn a_channel_past_its_deadline_is_an_interruption() {
    let (tx, rx) = mpsc::channel(4);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut r = StreamReader::from_channel(rx, 8, deadline, "Test", 1);
    tx.send(Bytes::from_static(&[0, 0])).await.expect("send");
    let started = Instant::now();
    assert!(r.i64("late").await.is_err());
    assert_eq!(r.interrupted(), Some(Interruption::TimedOut));
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    drop(tx);
}

#[tokio::test]
async fn a_source_never_reads_past_the_body() {
    // The body is 3 bytes; the channel hands over more in one chunk.
    let (tx, rx) = mpsc::channel(4);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut r = StreamReader::from_channel(rx, 3, deadline, "Test", 1);
    tx.send(Bytes::from_static(&[0, 1, 2, 3, 4]))
        .await
        .expect("send");
    assert_eq!(r.i16("a").await, Ok(1));
    assert_eq!(r.i8("b").await, Ok(2));
    assert!(r.i8("c").await.is_err());
    assert_eq!(r.interrupted(), None);
}
