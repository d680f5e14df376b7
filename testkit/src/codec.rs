//! Record batches for the workload: v2 batches encoded with `kafka-protocol`'s
//! encoder and compressed here with pure-Rust crates (flate2 `rust_backend`,
//! snap, lz4_flex, ruzstd) — kafka-protocol's own codec features pull C code.
//! Decompression is provided too, so tests can read back what the broker stored.

use std::io::{Read, Write};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, RecordSet,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

use super::{HarnessError, Result};

/// How a produced batch is compressed (batch attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    None,
    /// gzip (RFC 1952), as every Kafka client writes it.
    Gzip,
    /// Snappy in xerial framing, as the Java client writes it: magic
    /// `\x82SNAPPY\0`, version 1, compatible version 1, then `[u32 BE length][raw
    /// snappy block]` chunks of at most 32 KiB of input each.
    Snappy,
    /// Snappy as one raw block without framing, as librdkafka writes it.
    SnappyRaw,
    /// LZ4 frame format (64 KiB independent blocks, no checksums), as the Java client.
    Lz4,
    /// One zstd frame.
    Zstd,
}

impl Codec {
    /// Every codec, for tests that loop over all of them.
    pub const ALL: [Codec; 6] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::SnappyRaw,
        Codec::Lz4,
        Codec::Zstd,
    ];

    /// The batch attribute value kafka-protocol writes for this codec.
    pub fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy | Codec::SnappyRaw => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

/// The xerial snappy stream header: magic, version 1, minimum compatible version 1.
pub const XERIAL_HEADER: [u8; 16] = [
    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
];
const XERIAL_BLOCK: usize = 32 * 1024;

/// Compresses `data` (the concatenated records of a batch) with `codec`.
pub fn compress(codec: Codec, data: &[u8]) -> Result<Vec<u8>> {
    let fail = |e: &dyn std::fmt::Display| HarnessError::protocol(format!("{codec:?}: {e}"));
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data).map_err(|e| fail(&e))?;
            enc.finish().map_err(|e| fail(&e))
        }
        Codec::Snappy => {
            let mut out = XERIAL_HEADER.to_vec();
            let mut enc = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let block = enc.compress_vec(chunk).map_err(|e| fail(&e))?;
                let len = u32::try_from(block.len()).map_err(|e| fail(&e))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Codec::SnappyRaw => snap::raw::Encoder::new()
            .compress_vec(data)
            .map_err(|e| fail(&e)),
        Codec::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            enc.write_all(data).map_err(|e| fail(&e))?;
            enc.finish().map_err(|e| fail(&e))
        }
        Codec::Zstd => Ok(ruzstd::encoding::compress_to_vec(
            data,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
    }
}

/// Decompresses the records section of a batch with attribute `compression`.
/// Snappy accepts both xerial framing and a raw block.
pub fn decompress(compression: Compression, data: &[u8]) -> Result<Vec<u8>> {
    let fail = |e: &dyn std::fmt::Display| {
        HarnessError::protocol(format!("decompressing {compression:?}: {e}"))
    };
    let mut out = Vec::new();
    match compression {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| fail(&e))?;
        }
        Compression::Snappy => {
            let mut dec = snap::raw::Decoder::new();
            if let Some(mut rest) = data.strip_prefix(&XERIAL_HEADER[..8]) {
                rest = rest.get(8..).ok_or_else(|| fail(&"short xerial header"))?;
                while !rest.is_empty() {
                    let (len, tail) = rest
                        .split_first_chunk::<4>()
                        .ok_or_else(|| fail(&"truncated xerial block length"))?;
                    let len = u32::from_be_bytes(*len) as usize;
                    let block = tail
                        .get(..len)
                        .ok_or_else(|| fail(&"truncated xerial block"))?;
                    out.extend_from_slice(&dec.decompress_vec(block).map_err(|e| fail(&e))?);
                    rest = &tail[len..];
                }
            } else {
                out = dec.decompress_vec(data).map_err(|e| fail(&e))?;
            }
        }
        Compression::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| fail(&e))?;
        }
        Compression::Zstd => {
            ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| fail(&e))?
                .read_to_end(&mut out)
                .map_err(|e| fail(&e))?;
        }
    }
    Ok(out)
}

/// Encodes one v2 record batch (non-idempotent producer, CreateTime) holding
/// `records` as (timestamp ms, value), at relative offsets 0.., compressed with `codec`.
pub fn encode_batch(codec: Codec, records: &[(i64, Vec<u8>)]) -> Result<Bytes> {
    encode_batch_as(codec, records, None)
}

/// The producer fields of a transactional batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducerFields {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence number of the batch's first record (per partition, from 0).
    pub base_sequence: i32,
}

/// Like [`encode_batch`], as a transactional producer writes it: attributes bit 4
/// (isTransactional), producer id and epoch, base sequence.
pub fn encode_txn_batch(
    codec: Codec,
    records: &[(i64, Vec<u8>)],
    producer: TxnProducerFields,
) -> Result<Bytes> {
    encode_batch_as(codec, records, Some(producer))
}

fn encode_batch_as(
    codec: Codec,
    records: &[(i64, Vec<u8>)],
    producer: Option<TxnProducerFields>,
) -> Result<Bytes> {
    if records.is_empty() {
        return Err(HarnessError::protocol(
            "a record batch needs at least one record",
        ));
    }
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (timestamp, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: producer.map_or(NO_PRODUCER_ID, |p| p.producer_id),
            producer_epoch: producer.map_or(NO_PRODUCER_EPOCH, |p| p.producer_epoch),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol keeps records in one batch only while `offset - sequence`
            // is constant; starting at -1 also makes the batch's base sequence -1
            // (NO_SEQUENCE), as a non-idempotent producer writes it.
            sequence: producer.map_or(-1, |p| p.base_sequence) + i as i32,
            timestamp: *timestamp,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: IndexMap::new(),
        })
        .collect();
    let options = RecordEncodeOptions {
        version: 2,
        compression: codec.compression(),
    };
    let compressor = |plain: &mut BytesMut, out: &mut BytesMut, _: Compression| {
        // `?` turns HarnessError into kafka-protocol's (anyhow) error type.
        out.put_slice(&compress(codec, plain)?);
        Ok(())
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        &records,
        &options,
        Some(compressor),
    )
    .map_err(|e| HarnessError::protocol(format!("encoding a {codec:?} batch: {e}")))?;
    Ok(buf.freeze())
}

/// Rewrites an encoded v2 batch the way a Kafka broker does for a topic with
/// `message.timestamp.type=LogAppendTime`: attributes bit 3 set, maxTimestamp =
/// `append_time_ms` (records keep their deltas), CRC recomputed.
pub fn set_log_append_time(batch: &mut [u8], append_time_ms: i64) -> Result<()> {
    if batch.len() < BATCH_HEADER_LEN || batch[16] != 2 {
        return Err(HarnessError::protocol("not a v2 record batch"));
    }
    batch[22] |= 0x08;
    batch[35..43].copy_from_slice(&append_time_ms.to_be_bytes());
    fix_crc(batch);
    Ok(())
}

/// Recomputes the CRC of one v2 batch in place (Tansu leaves it stale when it
/// stamps LogAppendTime batches; see [`batch_headers`]).
pub fn fix_crc(batch: &mut [u8]) {
    if batch.len() >= BATCH_HEADER_LEN {
        let crc = crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Size of a v2 batch header (up to and including the record count).
pub const BATCH_HEADER_LEN: usize = 61;

/// The header fields of one v2 record batch, read without decompressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes of the whole batch, including the 12-byte offset+length prefix.
    pub total_len: usize,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: i32,
    /// Whether the stored CRC matches the batch contents.
    pub crc_ok: bool,
}

impl BatchHeader {
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }
}

/// Walks the complete v2 batches in `bytes` by their headers (a truncated
/// trailing batch is ignored).
pub fn batch_headers(bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= BATCH_HEADER_LEN {
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&rest[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let i32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&rest[at..at + 4]);
            i32::from_be_bytes(b)
        };
        let Ok(len) = usize::try_from(i32_at(8)) else {
            break;
        };
        let total_len = 12 + len;
        if total_len < BATCH_HEADER_LEN || rest.len() < total_len {
            break;
        }
        let stored_crc = u32::from_be_bytes([rest[17], rest[18], rest[19], rest[20]]);
        out.push(BatchHeader {
            base_offset: i64_at(0),
            total_len,
            attributes: i16::from_be_bytes([rest[21], rest[22]]),
            last_offset_delta: i32_at(23),
            base_timestamp: i64_at(27),
            max_timestamp: i64_at(35),
            record_count: i32_at(57),
            crc_ok: stored_crc == crc32c(&rest[21..total_len]),
        });
        rest = &rest[total_len..];
    }
    out
}

/// CRC-32C (Castagnoli), as record batches v2 use from the attributes on.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Decodes every record batch in `bytes` (e.g. a Fetch partition's records),
/// decompressing with [`decompress`]: one [`RecordSet`] per batch, which tells
/// the batch's compression. Fails on a truncated trailing batch.
pub fn decode_batches(bytes: &Bytes) -> Result<Vec<RecordSet>> {
    let mut buf = bytes.clone();
    let mut out = Vec::new();
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode_with_custom_compression(
            &mut buf,
            Some(|data: &mut Bytes, c: Compression| Ok(Bytes::from(decompress(c, data)?))),
        )
        .map_err(|e| HarnessError::protocol(format!("decoding record batches: {e}")))?;
        out.push(set);
    }
    Ok(out)
}
