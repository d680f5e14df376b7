//! A hostile broker: every Fetch of two partitions answers a record batch (valid CRC) whose
//! compressed records decompress to gigabytes without ever reaching the committed offset —
//! gzip, 2 MiB → 2 GiB, cut by the 256 KiB fetch cap, and zstd, 232 KiB → 3.7 GiB, whole.
//! The real exporter runs cycle after cycle against it on ONE tokio worker while `/health`
//! is hammered: decoding must stay off that worker (`/health` p99 < 50 ms, the issue's
//! acceptance bound), cost a bounded CPU per cycle (printed, for docs/benchmarks.md), and
//! report both samples failed as `undecodable` with a message saying what happened, while a
//! healthy partition's values stay exact.
//!
//! ```text
//! cargo test --test decode_bomb -- --nocapture
//! ```

use tidemark_testkit as common;

use common::workload::now_ms;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::exporter::{config, get, RunningExporter};
use common::stub::{Reply, Response, StubCluster, StubGroup};
use kafka_protocol::messages::ApiKey;
use tidemark::kafka::records::{record_at, RecordsError};

const CLUSTER: &str = "stub";
/// The offset the group committed: the batches claim it (lastOffsetDelta), never hold it.
const TARGET: i64 = 999_000;
const CLAIMED_LAST_DELTA: i32 = 1_000_000;
/// Zero bytes in the value of each record of the bombs.
const VALUE: usize = 512 << 10;
const FETCH_CAP: usize = 256 << 10;

fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The bytes of record `i` before its value's zeros (the headers count of the record
/// before it first, for `i > 0`): length, attributes, timestampDelta, offsetDelta, null
/// key, value length.
fn record_head(i: i32) -> Vec<u8> {
    let mut fields = vec![0u8];
    put_varlong(&mut fields, i64::from(i));
    put_varlong(&mut fields, i64::from(i));
    put_varlong(&mut fields, -1);
    put_varlong(&mut fields, VALUE as i64);
    let mut out = if i > 0 { vec![0u8] } else { Vec::new() };
    // Length: the fields, the value, the headers count.
    put_varlong(&mut out, (fields.len() + VALUE + 1) as i64);
    out.extend_from_slice(&fields);
    out
}

/// A v2 batch at base offset 0 with codec `codec` and these compressed records, claiming
/// offsets up to `CLAIMED_LAST_DELTA`; CRC-32C valid.
fn batch(codec: i16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(61 + body.len());
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&((49 + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&codec.to_be_bytes());
    out.extend_from_slice(&CLAIMED_LAST_DELTA.to_be_bytes());
    out.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    out.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&(CLAIMED_LAST_DELTA + 1).to_be_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Raw deflate of `data`, ending in a full flush: byte-aligned, no final block, no
/// reference to anything before it — so it can be spliced into any deflate stream.
fn deflate_flushed(data: &[u8]) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 500 + 1024);
    c.compress_vec(data, &mut out, flate2::FlushCompress::Full)
        .expect("deflate");
    assert_eq!(c.total_in() as usize, data.len(), "output room");
    out
}

/// gzip: `records` records of `VALUE` zeros, ~1000× smaller. The zeros of one record are
/// compressed once and repeated (each piece is self-contained), so building 2 GiB costs
/// milliseconds.
fn gzip_bomb(records: i32) -> (Vec<u8>, u64) {
    let zeros = vec![0u8; VALUE];
    let zeros_deflated = deflate_flushed(&zeros);
    let mut zeros_crc = crc32fast::Hasher::new();
    zeros_crc.update(&zeros);
    let mut body = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut crc = crc32fast::Hasher::new();
    let mut size = 0u64;
    for i in 0..records {
        let head = record_head(i);
        body.extend_from_slice(&deflate_flushed(&head));
        crc.update(&head);
        body.extend_from_slice(&zeros_deflated);
        crc.combine(&zeros_crc);
        size += (head.len() + VALUE) as u64;
    }
    // The last record's headers count, in a final block.
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let mut tail = Vec::with_capacity(64);
    c.compress_vec(&[0], &mut tail, flate2::FlushCompress::Finish)
        .expect("deflate");
    body.extend_from_slice(&tail);
    crc.update(&[0]);
    size += 1;
    body.extend_from_slice(&crc.finalize().to_le_bytes());
    body.extend_from_slice(&(size as u32).to_le_bytes());
    (batch(1, &body), size)
}

/// zstd: one frame (128 KiB window) of raw blocks for the record heads and RLE blocks
/// (4 bytes for 128 KiB) for the zeros.
fn zstd_bomb(records: i32) -> (Vec<u8>, u64) {
    const BLOCK: usize = 128 << 10;
    let block_header = |last: bool, kind: u32, size: usize| {
        let v = u32::from(last) | (kind << 1) | ((size as u32) << 3);
        v.to_le_bytes()[..3].to_vec()
    };
    let mut body = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3];
    let mut size = 0u64;
    for i in 0..records {
        let head = record_head(i);
        body.extend_from_slice(&block_header(false, 0, head.len()));
        body.extend_from_slice(&head);
        for _ in 0..VALUE / BLOCK {
            body.extend_from_slice(&block_header(false, 1, BLOCK));
            body.push(0);
        }
        size += (head.len() + VALUE) as u64;
    }
    body.extend_from_slice(&block_header(true, 0, 1));
    body.push(0);
    (batch(4, &body), size + 1)
}

/// CPU time (user + system) of this process so far.
fn cpu() -> Duration {
    // SAFETY: getrusage writes into the struct it is given and reads nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[test]
fn the_bombs_fail_fast_with_an_error_saying_what_happened() {
    let (gzip, gzip_size) = gzip_bomb(4096);
    let (zstd, zstd_size) = zstd_bomb(7500);
    assert!(
        gzip.len() > FETCH_CAP && gzip_size > 2 << 30,
        "{}",
        gzip.len()
    );
    assert!(
        zstd.len() <= FETCH_CAP && zstd_size > 3 << 30,
        "{}",
        zstd.len()
    );
    // As the exporter sees them: the gzip batch cut at the fetch cap, the zstd one whole.
    for (name, records) in [("gzip", &gzip[..FETCH_CAP]), ("zstd", &zstd[..])] {
        let started = Instant::now();
        let e = record_at(records, TARGET, &[], FETCH_CAP).expect_err(name);
        assert!(
            matches!(e, RecordsError::DecompressionBound { .. }),
            "{name}: {e}"
        );
        let message = e.to_string();
        assert!(
            message.contains("record batch at base offset 0")
                && message.contains("compressed bytes")
                && message.contains(&format!("without reaching offset {TARGET}")),
            "{name}: {message}"
        );
        eprintln!("{name}: {message} ({:?})", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_decompression_bomb_every_cycle_neither_stalls_health_nor_costs_unbounded_cpu() {
    let (gzip, _) = gzip_bomb(4096);
    let (zstd, _) = zstd_bomb(7500);
    let (gzip, zstd) = (Bytes::from(gzip), Bytes::from(zstd));

    let stub = StubCluster::start(&[1]).await;
    stub.add_topic("bomb", &[1, 1]);
    for p in 0..2 {
        stub.set_watermarks("bomb", p, 0, i64::from(CLAIMED_LAST_DELTA) + 1);
    }
    stub.add_topic("ok", &[1]);
    let t0 = now_ms() - 60_000;
    let timestamps: Vec<i64> = (0..10).map(|i| t0 + i * 1000).collect();
    stub.append_records("ok", 0, &timestamps);
    stub.add_group(
        StubGroup::consumer("g")
            .offset("bomb", 0, TARGET)
            .offset("bomb", 1, TARGET)
            .offset("ok", 0, 4),
    );
    stub.set_handler(move |r, stub| {
        if r.api != ApiKey::Fetch {
            return Reply::Default;
        }
        let Some(Response::Fetch(mut response)) = stub.default_response(r) else {
            return Reply::Default;
        };
        for t in &mut response.responses {
            if t.topic.0.as_str() != "bomb" {
                continue;
            }
            for p in &mut t.partitions {
                p.error_code = 0;
                // Served whole, as Kafka serves a first batch larger than the limit.
                p.records = Some(if p.partition_index == 0 {
                    gzip.clone()
                } else {
                    zstd.clone()
                });
            }
        }
        Reply::Respond(Response::Fetch(response))
    });

    let exporter = RunningExporter::start(&config(
        CLUSTER,
        &stub.bootstrap(),
        "poll_interval = \"200ms\"\ngranularity = \"partition\"\n\
         [exporter.performance]\nkafka_timeout = \"5s\"\noffset_fetch_timeout = \"5s\"",
        "",
    ))
    .await;
    let wait = Duration::from_secs(60);
    exporter.wait_cycles(CLUSTER, 1, wait).await;

    // Several cycles, each fetching both bombs, with /health asked all along.
    const CYCLES: u64 = 6;
    let first = exporter.cycles_ok(CLUSTER);
    let cpu_before = cpu();
    let started = Instant::now();
    let mut latencies = Vec::new();
    while exporter.cycles_ok(CLUSTER) < first + CYCLES {
        assert!(started.elapsed() < wait, "cycles stopped");
        let r = get(exporter.address, "/health").await;
        assert_eq!(r.status, 200, "{}", r.body);
        latencies.push(r.latency);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cycles = exporter.cycles_ok(CLUSTER) - first;
    let cpu_per_cycle = (cpu() - cpu_before) / cycles as u32;
    let wall_per_cycle = started.elapsed() / cycles as u32;
    latencies.sort();
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "decode bomb: {cycles} cycles, CPU per cycle {cpu_per_cycle:?} (whole test process: \
         exporter + stub encoding 2.3 MiB per Fetch), wall per cycle {wall_per_cycle:?}; \
         /health over {} requests: p50 {p50:?}, p99 {p99:?}, max {max:?}",
        latencies.len()
    );
    assert!(
        p99 < Duration::from_millis(50),
        "/health p99 {p99:?} (max {max:?}) while the bombs were decoded"
    );

    let m = exporter.metrics().await;
    let failed = |reason: &str| {
        m.find(
            "tidemark_timestamp_samples_failed_total",
            &[("reason", reason)],
        )
        .iter()
        .map(|s| s.value)
        .sum::<f64>()
    };
    // Both bombs every cycle, and nothing else.
    assert!(
        failed("undecodable") >= 2.0 * (first + cycles) as f64,
        "undecodable: {}",
        failed("undecodable")
    );
    for reason in ["corrupt", "not_reached", "broker_error", "unreachable"] {
        assert_eq!(failed(reason), 0.0, "reason {reason}");
    }
    // The healthy partition: exact offset lag, time lag of the record at the commit.
    let ok = [("group", "g"), ("topic", "ok"), ("partition", "0")];
    assert_eq!(m.value("kafka_consumergroup_group_lag", &ok), Some(6.0));
    let lag_s = m
        .value("kafka_consumergroup_group_lag_seconds", &ok)
        .expect("time lag of the healthy partition");
    let want = (now_ms() - timestamps[4]) as f64 / 1000.0;
    assert!(
        (lag_s - want).abs() < 2.0,
        "lag_seconds {lag_s}, want {want}"
    );
    // The bombs' offset lag is still exact; no time lag is made up for them.
    for p in ["0", "1"] {
        let bomb = [("group", "g"), ("topic", "bomb"), ("partition", p)];
        assert_eq!(
            m.value("kafka_consumergroup_group_lag", &bomb),
            Some((i64::from(CLAIMED_LAST_DELTA) + 1 - TARGET) as f64)
        );
        assert_eq!(
            m.value("kafka_consumergroup_group_lag_seconds", &bomb),
            None,
            "partition {p}"
        );
    }
    exporter.shutdown().await;
}
