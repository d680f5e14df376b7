//! The exact timestamp of the Kafka record at a given offset, read from the raw `records`
//! bytes of one Fetch response partition.
//!
//! # Approach
//!
//! [`record_at`] walks the record batches (format v2, magic 2) of the buffer in order, reading
//! only the 61-byte batch headers until it reaches the first batch that can hold the target:
//!
//! * a batch whose last offset (`baseOffset + lastOffsetDelta`) is below the target is skipped
//!   without touching, let alone decompressing, its records;
//! * control batches (transaction markers) are skipped, and so are transactional data batches of
//!   aborted transactions, using the Fetch response's aborted-transaction list exactly as the
//!   Java consumer does in `read_committed` mode (pass an empty list for `read_uncommitted`);
//! * in the first remaining batch whose last offset reaches the target, the records are walked
//!   (decompressing on the fly with a streaming reader when the batch is compressed) until the
//!   first record whose offset is `>= target`. Decompression stops there: the rest of the batch
//!   is never decoded.
//!
//! For `CreateTime` batches a record's timestamp is `baseTimestamp + timestampDelta`; for
//! `LogAppendTime` batches (attribute bit 3) every record's timestamp is the batch's
//! `maxTimestamp`.
//!
//! Of each record only its length, attributes, timestampDelta and offsetDelta are decoded;
//! the rest (key, value, headers) is skipped by the record's length, streamed through a
//! fixed-size buffer into `io::sink()`, so payload bytes are never copied into owned buffers
//! or retained.
//!
//! When the target offset no longer exists (below the log start, compacted away, or it is a
//! transaction marker / aborted record) the first record after it is returned, so
//! [`RecordAt::offset`] is then greater than the target.
//!
//! A Fetch response cut at `max_bytes` ends in a partial batch. That is not an error: the
//! complete batches before it are used, and [`Lookup::Missing`] reports `truncated: true` if the
//! target was not found in them.
//!
//! # Robustness
//!
//! The input comes from the network and is fuzzed: the code never panics (no `unwrap`, no
//! unchecked indexing or arithmetic on input-derived values — enforced by the clippy lints
//! below) and never allocates by an untrusted length beyond small fixed caps: a snappy block or
//! a zstd window is at most [`MAX_BLOCK_BYTES`], lz4 blocks are at most 4 MiB by format, gzip
//! needs a fixed 32 KiB window. Walking decoded records holds no memory, but is cut off after
//! [`MAX_DECOMPRESSED_BYTES`] per batch to bound the CPU a compression bomb can cost.
//!
//! CRCs are **not** verified (TCP and the broker already guard the bytes): most corruption
//! surfaces as a parse error, but a flipped bit inside a timestamp would go unnoticed.
//!
//! Legacy message sets (magic 0 and 1, Kafka < 0.11) are rejected with
//! [`RecordsError::UnsupportedMagic`].

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read};

use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

/// One entry of a Fetch response partition's `aborted_transactions` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// How a batch's timestamps were assigned (batch attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The record found by [`record_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt {
    /// Offset of the record found: == target when the record exists, > target when the target
    /// no longer exists (compacted / deleted) and this is the first record after it.
    pub offset: i64,
    pub timestamp_ms: i64,
    pub timestamp_type: TimestampType,
}

/// The outcome of [`record_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found(RecordAt),
    /// No record at or after `target` in the complete batches of this buffer.
    /// `truncated` is true when a partial trailing batch was present (the caller may fetch
    /// again with more bytes); `next_offset` is the offset after the last complete batch seen, if any.
    Missing {
        truncated: bool,
        next_offset: Option<i64>,
    },
}

/// What was wrong with the records bytes. Batch-level positions are byte offsets into the
/// `records` buffer; record-level positions are byte offsets into the batch's (decompressed)
/// records section.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("record batch at byte {position} (base offset {base_offset}): impossible batchLength {length}")]
    BadBatchLength {
        position: usize,
        base_offset: i64,
        length: i32,
    },
    #[error(
        "record batch at byte {position} (base offset {base_offset}): corrupt header: {reason}"
    )]
    CorruptHeader {
        position: usize,
        base_offset: i64,
        reason: &'static str,
    },
    #[error("record batch at base offset {base_offset}: unsupported magic {magic} (only record batch v2, magic 2, is supported)")]
    UnsupportedMagic { magic: i8, base_offset: i64 },
    #[error("record batch at base offset {base_offset}: unknown compression codec id {codec}")]
    UnknownCompression { codec: u8, base_offset: i64 },
    #[error("record batch at base offset {base_offset}: {codec} decompression failed: {detail}")]
    Decompress {
        codec: &'static str,
        base_offset: i64,
        detail: io::Error,
    },
    #[error(
        "record batch at base offset {base_offset}: bad varint at byte {position} of its records"
    )]
    BadVarint { base_offset: i64, position: u64 },
    #[error("record batch at base offset {base_offset}: corrupt record at byte {position} of its records: {reason}")]
    CorruptRecord {
        base_offset: i64,
        position: u64,
        reason: &'static str,
    },
    #[error("record batch at base offset {base_offset}: header says {expected} records but its data ends after {found}")]
    RecordCountMismatch {
        base_offset: i64,
        expected: i32,
        found: i32,
    },
    #[error(
        "record batch at base offset {base_offset}: decoded records exceed the {limit}-byte cap"
    )]
    TooLarge { base_offset: i64, limit: u64 },
}

/// Largest snappy block (raw, or one xerial chunk) and largest zstd window accepted. Both
/// must be held in memory whole; the cap bounds what an untrusted header can make us allocate.
pub const MAX_BLOCK_BYTES: usize = 16 << 20;

/// Largest decoded records section walked in one batch (guards CPU against compression bombs;
/// no memory is held for it).
pub const MAX_DECOMPRESSED_BYTES: u64 = 256 << 20;

/// `baseOffset` + `batchLength`: the bytes before what `batchLength` counts.
const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header, i.e. where the records start.
const HEADER_LEN: usize = 61;
/// Smallest valid `batchLength` for magic 2 (a header and no records).
const MIN_BATCH_LENGTH: i32 = 49;
/// Position of the magic byte, the same in every message format.
const MAGIC_AT: usize = 16;
/// A snappy block expands at most ~21x (a 64-byte copy in 3 bytes); anything claiming more is
/// corrupt, which keeps allocations proportional to the input.
const SNAPPY_MAX_RATIO: usize = 32;
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;
const READ_BUFFER: usize = 8 * 1024;

/// Finds the first record at or after `target` in `records` (the raw `records` field of a
/// Fetch response partition) and returns its offset and timestamp.
///
/// `aborted` is the partition's aborted-transaction list (any order); pass `&[]` for
/// `read_uncommitted` semantics.
pub fn record_at(
    records: &[u8],
    target: i64,
    aborted: &[AbortedTxn],
) -> Result<Lookup, RecordsError> {
    let mut txns = TxnFilter::new(aborted);
    let mut position = 0usize;
    let mut next_offset = None;
    while let Some(rest) = records.get(position..).filter(|rest| !rest.is_empty()) {
        let Some(batch) = frame_batch(rest, position)? else {
            return Ok(Lookup::Missing {
                truncated: true,
                next_offset,
            });
        };
        let header = BatchHeader::parse(batch, position)?;
        let body = batch.get(HEADER_LEN..).unwrap_or_default();
        position = position.saturating_add(batch.len());
        next_offset = Some(
            header
                .last_offset
                .checked_add(1)
                .ok_or_else(|| header.corrupt("last offset overflows i64"))?,
        );
        if txns.skip(&header, body)? || header.last_offset < target {
            continue;
        }
        if let Some(found) = find_in_batch(&header, body, target)? {
            return Ok(Lookup::Found(found));
        }
    }
    Ok(Lookup::Missing {
        truncated: false,
        next_offset,
    })
}

/// Cuts the next complete batch off the front of `rest`; `None` when `rest` holds only part of
/// one (a truncated trailing batch).
fn frame_batch(rest: &[u8], position: usize) -> Result<Option<&[u8]>, RecordsError> {
    let (Some(base_offset), Some(length)) = (be_i64(rest, 0), be_i32(rest, 8)) else {
        return Ok(None);
    };
    if let Some(&magic) = rest.get(MAGIC_AT) {
        let magic = i8::from_be_bytes([magic]);
        if magic != 2 {
            return Err(RecordsError::UnsupportedMagic { magic, base_offset });
        }
    }
    let total = usize::try_from(length)
        .ok()
        .filter(|_| length >= MIN_BATCH_LENGTH)
        .and_then(|len| len.checked_add(LOG_OVERHEAD))
        .filter(|total| i32::try_from(*total).is_ok())
        .ok_or(RecordsError::BadBatchLength {
            position,
            base_offset,
            length,
        })?;
    Ok(rest.get(..total))
}

/// The fields of a v2 batch header that the lookup needs.
#[derive(Debug)]
struct BatchHeader {
    position: usize,
    base_offset: i64,
    last_offset: i64,
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    record_count: i32,
}

impl BatchHeader {
    /// Parses the header of a complete batch (`batch.len() >= HEADER_LEN`, checked by
    /// [`frame_batch`]).
    fn parse(batch: &[u8], position: usize) -> Result<Self, RecordsError> {
        // The defaults are unreachable: every field lies inside the first HEADER_LEN bytes.
        let base_offset = be_i64(batch, 0).unwrap_or_default();
        let header = BatchHeader {
            position,
            base_offset,
            last_offset: base_offset,
            attributes: be_i16(batch, 21).unwrap_or_default(),
            base_timestamp: be_i64(batch, 27).unwrap_or_default(),
            max_timestamp: be_i64(batch, 35).unwrap_or_default(),
            producer_id: be_i64(batch, 43).unwrap_or_default(),
            record_count: be_i32(batch, 57).unwrap_or_default(),
        };
        let last_offset_delta = be_i32(batch, 23).unwrap_or_default();
        if base_offset < 0 {
            return Err(header.corrupt("negative baseOffset"));
        }
        if last_offset_delta < 0 {
            return Err(header.corrupt("negative lastOffsetDelta"));
        }
        if header.record_count < 0 {
            return Err(header.corrupt("negative recordCount"));
        }
        let last_offset = base_offset
            .checked_add(i64::from(last_offset_delta))
            .ok_or_else(|| header.corrupt("baseOffset + lastOffsetDelta overflows i64"))?;
        Ok(BatchHeader {
            last_offset,
            ..header
        })
    }

    fn corrupt(&self, reason: &'static str) -> RecordsError {
        RecordsError::CorruptHeader {
            position: self.position,
            base_offset: self.base_offset,
            reason,
        }
    }

    fn timestamp_type(&self) -> TimestampType {
        if self.attributes & 0x08 != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// Tracks which producers are inside an aborted transaction while batches go by, like the
/// Java consumer's `read_committed` fetcher.
struct TxnFilter<'a> {
    /// Aborted transactions sorted by first offset; `pending[next..]` have not started yet.
    pending: Vec<&'a AbortedTxn>,
    next: usize,
    /// Producers whose current transaction is aborted.
    active: HashSet<i64>,
}

impl<'a> TxnFilter<'a> {
    fn new(aborted: &'a [AbortedTxn]) -> Self {
        let mut pending: Vec<&AbortedTxn> = aborted.iter().collect();
        pending.sort_by_key(|txn| txn.first_offset);
        TxnFilter {
            pending,
            next: 0,
            active: HashSet::new(),
        }
    }

    /// True when the batch carries no data the lookup may use: a control batch, or a
    /// transactional batch of an aborted transaction.
    fn skip(&mut self, header: &BatchHeader, body: &[u8]) -> Result<bool, RecordsError> {
        if header.producer_id != -1 && !self.pending.is_empty() {
            while let Some(txn) = self.pending.get(self.next) {
                if txn.first_offset > header.last_offset {
                    break;
                }
                self.active.insert(txn.producer_id);
                self.next = self.next.saturating_add(1);
            }
            if header.is_control() {
                if self.active.contains(&header.producer_id) && is_abort_marker(header, body)? {
                    self.active.remove(&header.producer_id);
                }
            } else if header.is_transactional() && self.active.contains(&header.producer_id) {
                return Ok(true);
            }
        }
        Ok(header.is_control())
    }
}

/// Whether a control batch holds an ABORT marker (control record key: version i16, type i16,
/// type 0 = ABORT, 1 = COMMIT).
fn is_abort_marker(header: &BatchHeader, body: &[u8]) -> Result<bool, RecordsError> {
    if header.record_count == 0 {
        return Ok(false);
    }
    let mut reader = RecordReader::open(header, body)?;
    reader.record_head(0, header.record_count)?;
    let key_length = reader.varint()?;
    if key_length < 4 {
        return Err(reader.corrupt("control record key shorter than 4 bytes"));
    }
    let mut key = [0u8; 4];
    for byte in &mut key {
        *byte = reader.byte()?;
    }
    let [_, _, type_hi, type_lo] = key;
    Ok(i16::from_be_bytes([type_hi, type_lo]) == 0)
}

/// Walks the records of one batch to the first record with offset `>= target`.
fn find_in_batch(
    header: &BatchHeader,
    body: &[u8],
    target: i64,
) -> Result<Option<RecordAt>, RecordsError> {
    let mut reader = RecordReader::open(header, body)?;
    for index in 0..header.record_count {
        let record = reader.record_head(index, header.record_count)?;
        let offset = header
            .base_offset
            .checked_add(i64::from(record.offset_delta))
            .ok_or_else(|| reader.corrupt("record offset overflows i64"))?;
        if offset >= target {
            let timestamp_type = header.timestamp_type();
            let timestamp_ms = match timestamp_type {
                TimestampType::LogAppendTime => header.max_timestamp,
                TimestampType::CreateTime => header
                    .base_timestamp
                    .checked_add(record.timestamp_delta)
                    .ok_or_else(|| reader.corrupt("record timestamp overflows i64"))?,
            };
            return Ok(Some(RecordAt {
                offset,
                timestamp_ms,
                timestamp_type,
            }));
        }
        reader.skip(record.rest)?;
    }
    Ok(None)
}

/// The decoded start of a record.
struct RecordHead {
    timestamp_delta: i64,
    offset_delta: i32,
    /// Bytes of the record after `offsetDelta` (key, value, headers).
    rest: u64,
}

/// Reads the records section of one batch, decompressing as it goes.
struct RecordReader<'a> {
    inner: BufReader<Decoder<'a>>,
    position: u64,
    base_offset: i64,
    codec: &'static str,
}

impl<'a> RecordReader<'a> {
    fn open(header: &BatchHeader, body: &'a [u8]) -> Result<Self, RecordsError> {
        let fail = |codec, detail| RecordsError::Decompress {
            codec,
            base_offset: header.base_offset,
            detail,
        };
        let (codec, decoder) = match header.attributes & 0x07 {
            0 => ("none", Decoder::Plain(body)),
            1 => ("gzip", Decoder::Gzip(flate2::read::GzDecoder::new(body))),
            2 => match SnappyReader::new(body) {
                Ok(reader) => ("snappy", Decoder::Snappy(reader)),
                Err(e) => return Err(fail("snappy", e)),
            },
            3 => (
                "lz4",
                Decoder::Lz4(lz4_flex::frame::FrameDecoder::new(body)),
            ),
            4 => match StreamingDecoder::new_with_max_window_size(body, MAX_BLOCK_BYTES as u64) {
                Ok(reader) => ("zstd", Decoder::Zstd(Box::new(reader))),
                Err(e) => return Err(fail("zstd", io::Error::other(e))),
            },
            id => {
                return Err(RecordsError::UnknownCompression {
                    codec: id as u8,
                    base_offset: header.base_offset,
                })
            }
        };
        Ok(RecordReader {
            inner: BufReader::with_capacity(READ_BUFFER, decoder),
            position: 0,
            base_offset: header.base_offset,
            codec,
        })
    }

    fn corrupt(&self, reason: &'static str) -> RecordsError {
        RecordsError::CorruptRecord {
            base_offset: self.base_offset,
            position: self.position,
            reason,
        }
    }

    fn io_error(&self, detail: io::Error) -> RecordsError {
        RecordsError::Decompress {
            codec: self.codec,
            base_offset: self.base_offset,
            detail,
        }
    }

    fn advance(&mut self, by: u64) -> Result<(), RecordsError> {
        self.position = self.position.saturating_add(by);
        if self.position > MAX_DECOMPRESSED_BYTES {
            return Err(RecordsError::TooLarge {
                base_offset: self.base_offset,
                limit: MAX_DECOMPRESSED_BYTES,
            });
        }
        Ok(())
    }

    /// Whether the records section is exhausted.
    fn at_end(&mut self) -> Result<bool, RecordsError> {
        match self.inner.fill_buf() {
            Ok(buf) => Ok(buf.is_empty()),
            Err(e) => Err(self.io_error(e)),
        }
    }

    /// The next byte inside a record.
    fn byte(&mut self) -> Result<u8, RecordsError> {
        let byte = match self.inner.fill_buf() {
            Ok(buf) => buf.first().copied(),
            Err(e) => return Err(self.io_error(e)),
        };
        let byte = byte.ok_or_else(|| self.corrupt("records end inside a record"))?;
        self.inner.consume(1);
        self.advance(1)?;
        Ok(byte)
    }

    /// An unsigned LEB128 value of at most `max_bytes` bytes.
    fn unsigned(&mut self, max_bytes: u32) -> Result<u64, RecordsError> {
        let start = self.position;
        let mut value = 0u64;
        for index in 0..max_bytes {
            let byte = self.byte()?;
            let shift = index.saturating_mul(7);
            let bits = u64::from(byte & 0x7f);
            // The last allowed byte may only carry the bits that still fit in 64.
            if shift >= 63 && bits > 1 {
                break;
            }
            value |= bits.checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordsError::BadVarint {
            base_offset: self.base_offset,
            position: start,
        })
    }

    /// A zigzag varint (Kafka `varint`, 32-bit).
    fn varint(&mut self) -> Result<i32, RecordsError> {
        let start = self.position;
        let raw = u32::try_from(self.unsigned(5)?).map_err(|_| RecordsError::BadVarint {
            base_offset: self.base_offset,
            position: start,
        })?;
        Ok(((raw >> 1) ^ (raw & 1).wrapping_neg()) as i32)
    }

    /// A zigzag varlong (Kafka `varlong`, 64-bit).
    fn varlong(&mut self) -> Result<i64, RecordsError> {
        let raw = self.unsigned(10)?;
        Ok(((raw >> 1) ^ (raw & 1).wrapping_neg()) as i64)
    }

    /// Reads a record up to and including `offsetDelta`; `index` of `count` is for the error
    /// when the records end early.
    fn record_head(&mut self, index: i32, count: i32) -> Result<RecordHead, RecordsError> {
        if self.at_end()? {
            return Err(RecordsError::RecordCountMismatch {
                base_offset: self.base_offset,
                expected: count,
                found: index,
            });
        }
        let length = self.varint()?;
        let length = u64::try_from(length).map_err(|_| self.corrupt("negative record length"))?;
        let start = self.position;
        let _attributes = self.byte()?;
        let timestamp_delta = self.varlong()?;
        let offset_delta = self.varint()?;
        let used = self.position.saturating_sub(start);
        let rest = length
            .checked_sub(used)
            .ok_or_else(|| self.corrupt("record length shorter than its fields"))?;
        Ok(RecordHead {
            timestamp_delta,
            offset_delta,
            rest,
        })
    }

    /// Skips `count` bytes without keeping them.
    fn skip(&mut self, count: u64) -> Result<(), RecordsError> {
        let copied = match io::copy(&mut (&mut self.inner).take(count), &mut io::sink()) {
            Ok(copied) => copied,
            Err(e) => return Err(self.io_error(e)),
        };
        self.advance(copied)?;
        if copied < count {
            return Err(self.corrupt("records end inside a record"));
        }
        Ok(())
    }
}

/// A streaming reader over a batch's records section, one variant per codec.
enum Decoder<'a> {
    Plain(&'a [u8]),
    Gzip(flate2::read::GzDecoder<&'a [u8]>),
    Snappy(SnappyReader<'a>),
    Lz4(lz4_flex::frame::FrameDecoder<&'a [u8]>),
    Zstd(Box<StreamingDecoder<&'a [u8], FrameDecoder>>),
}

impl Read for Decoder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Snappy(r) => r.read(buf),
            Decoder::Lz4(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// Snappy as Kafka writes it: either one raw snappy block (librdkafka and others), or xerial
/// framing (the Java client): magic `\x82SNAPPY\0`, a 4-byte version and a 4-byte
/// compatible version, then repeated `[u32 BE length][raw snappy block]`. Blocks are decoded
/// one at a time, on demand.
struct SnappyReader<'a> {
    /// Compressed input not yet decoded.
    input: &'a [u8],
    xerial: bool,
    /// The current decoded block and how much of it was read.
    block: Vec<u8>,
    read: usize,
    decoder: snap::raw::Decoder,
}

impl<'a> SnappyReader<'a> {
    fn new(body: &'a [u8]) -> io::Result<Self> {
        let (xerial, input) = match body.strip_prefix(XERIAL_MAGIC.as_slice()) {
            Some(_) => match body.get(XERIAL_HEADER_LEN..) {
                Some(chunks) => (true, chunks),
                None => return Err(invalid("xerial snappy header is truncated")),
            },
            None => (false, body),
        };
        Ok(SnappyReader {
            input,
            xerial,
            block: Vec::new(),
            read: 0,
            decoder: snap::raw::Decoder::new(),
        })
    }

    /// Decodes the next block into `self.block`.
    fn next_block(&mut self) -> io::Result<()> {
        let compressed = if self.xerial {
            let (length, rest) = self
                .input
                .split_first_chunk::<4>()
                .ok_or_else(|| invalid("xerial snappy chunk length is truncated"))?;
            let length = usize::try_from(u32::from_be_bytes(*length)).unwrap_or(usize::MAX);
            let (chunk, rest) = rest
                .split_at_checked(length)
                .ok_or_else(|| invalid("xerial snappy chunk is truncated"))?;
            self.input = rest;
            chunk
        } else {
            std::mem::take(&mut self.input)
        };
        let length = snap::raw::decompress_len(compressed).map_err(io::Error::other)?;
        let limit = compressed
            .len()
            .saturating_mul(SNAPPY_MAX_RATIO)
            .saturating_add(64)
            .min(MAX_BLOCK_BYTES);
        if length > limit {
            return Err(invalid("snappy block claims more bytes than it can hold"));
        }
        self.block.clear();
        self.block.resize(length, 0);
        let written = self
            .decoder
            .decompress(compressed, &mut self.block)
            .map_err(io::Error::other)?;
        self.block.truncate(written);
        self.read = 0;
        Ok(())
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut available = self.block.get(self.read..).unwrap_or_default();
            if !available.is_empty() || buf.is_empty() {
                let n = available.read(buf)?;
                self.read = self.read.saturating_add(n);
                return Ok(n);
            }
            if self.input.is_empty() {
                return Ok(0);
            }
            self.next_block()?;
        }
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn be_bytes<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..)?.first_chunk().copied()
}

fn be_i16(buf: &[u8], at: usize) -> Option<i16> {
    be_bytes(buf, at).map(i16::from_be_bytes)
}

fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    be_bytes(buf, at).map(i32::from_be_bytes)
}

fn be_i64(buf: &[u8], at: usize) -> Option<i64> {
    be_bytes(buf, at).map(i64::from_be_bytes)
}

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
mod tests {
    use super::*;
    use std::io::Write;

    // ---- a test-only record batch encoder ----

    const GZIP: u8 = 1;
    const SNAPPY: u8 = 2;
    const LZ4: u8 = 3;
    const ZSTD: u8 = 4;
    /// Codec id 2 written with xerial framing (test encoder only).
    const XERIAL: u8 = 0x82;

    fn put_varlong(out: &mut Vec<u8>, value: i64) {
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
    struct Rec {
        offset_delta: i32,
        timestamp_delta: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    }

    fn rec(offset_delta: i32, timestamp_delta: i64) -> Rec {
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

    fn encode_record(r: &Rec) -> Vec<u8> {
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

    fn compress(codec: u8, raw: &[u8]) -> Vec<u8> {
        match codec {
            0 => raw.to_vec(),
            GZIP => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
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
            ZSTD => {
                ruzstd::encoding::compress_to_vec(raw, ruzstd::encoding::CompressionLevel::Fastest)
            }
            other => panic!("no codec {other}"),
        }
    }

    struct Batch {
        base_offset: i64,
        codec: u8,
        log_append_time: bool,
        transactional: bool,
        control: bool,
        producer_id: i64,
        base_timestamp: i64,
        max_timestamp: i64,
        last_offset_delta: Option<i32>,
        records: Vec<Rec>,
    }

    fn batch(base_offset: i64, records: Vec<Rec>) -> Batch {
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
    fn simple(base_offset: i64, count: i32) -> Batch {
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
        fn codec(self, codec: u8) -> Self {
            Batch { codec, ..self }
        }

        fn txn(self, producer_id: i64) -> Self {
            Batch {
                transactional: true,
                producer_id,
                ..self
            }
        }

        fn encode(&self) -> Vec<u8> {
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
            out.extend_from_slice(&0u32.to_be_bytes()); // crc (not checked)
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
            out
        }
    }

    fn concat(batches: &[Batch]) -> Vec<u8> {
        batches.iter().flat_map(Batch::encode).collect()
    }

    fn found(lookup: Lookup) -> RecordAt {
        match lookup {
            Lookup::Found(at) => at,
            other => panic!("expected a record, got {other:?}"),
        }
    }

    const ALL_CODECS: [u8; 6] = [0, GZIP, SNAPPY, XERIAL, LZ4, ZSTD];
    const T0: i64 = 1_700_000_000_000;

    // ---- tests ----

    #[test]
    fn finds_the_exact_mid_batch_record_with_every_codec() {
        for codec in ALL_CODECS {
            let buf = concat(&[simple(90, 10).codec(codec), simple(100, 5).codec(codec)]);
            for (target, ts) in [(100, T0), (102, T0 + 20), (104, T0 + 40), (95, T0 + 50)] {
                let at = found(record_at(&buf, target, &[]).unwrap());
                assert_eq!(
                    at,
                    RecordAt {
                        offset: target,
                        timestamp_ms: ts,
                        timestamp_type: TimestampType::CreateTime
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
            let at = found(record_at(&buf, 3, &[]).unwrap());
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
                let at = found(record_at(&buf, target, &[]).unwrap());
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
            found(record_at(&buf, 1, &[]).unwrap()).timestamp_ms,
            T0 - 250
        );
    }

    #[test]
    fn target_before_the_first_batch_returns_the_first_record() {
        let buf = concat(&[simple(100, 3), simple(103, 3)]);
        let at = found(record_at(&buf, 42, &[]).unwrap());
        assert_eq!((at.offset, at.timestamp_ms), (100, T0));
    }

    #[test]
    fn target_in_a_compacted_gap_returns_the_next_record() {
        // Inside a batch: offsets 0, 1, 5, 6 survive.
        let inner = batch(0, vec![rec(0, 0), rec(1, 10), rec(5, 50), rec(6, 60)]);
        let at = found(record_at(&inner.encode(), 3, &[]).unwrap());
        assert_eq!((at.offset, at.timestamp_ms), (5, T0 + 50));
        // Between batches: 0..3, then 10..13.
        let buf = concat(&[simple(0, 3), simple(10, 3)]);
        assert_eq!(found(record_at(&buf, 5, &[]).unwrap()).offset, 10);
        // A batch whose tail was compacted away keeps its lastOffsetDelta; the next batch
        // holds the answer.
        let mut tail_gone = simple(0, 2);
        tail_gone.last_offset_delta = Some(4);
        let buf = concat(&[tail_gone, simple(5, 2)]);
        assert_eq!(found(record_at(&buf, 3, &[]).unwrap()).offset, 5);
        // An empty batch (all records compacted) is passed over.
        let mut empty = batch(0, vec![]);
        empty.last_offset_delta = Some(9);
        let buf = concat(&[empty, simple(10, 1)]);
        assert_eq!(found(record_at(&buf, 0, &[]).unwrap()).offset, 10);
    }

    #[test]
    fn target_after_everything_is_missing_with_next_offset() {
        let buf = concat(&[simple(0, 3), simple(3, 4)]);
        assert_eq!(
            record_at(&buf, 7, &[]).unwrap(),
            Lookup::Missing {
                truncated: false,
                next_offset: Some(7)
            }
        );
        assert_eq!(
            record_at(&[], 7, &[]).unwrap(),
            Lookup::Missing {
                truncated: false,
                next_offset: None
            }
        );
    }

    #[test]
    fn truncated_trailing_batch_keeps_the_good_batches_before_it() {
        let first = simple(0, 3).encode();
        let second = simple(3, 3).codec(GZIP).encode();
        let mut buf = first.clone();
        buf.extend_from_slice(&second[..second.len() - 1]);
        assert_eq!(found(record_at(&buf, 1, &[]).unwrap()).offset, 1);
        assert_eq!(
            record_at(&buf, 4, &[]).unwrap(),
            Lookup::Missing {
                truncated: true,
                next_offset: Some(3)
            }
        );
        // Cut inside the second batch's header too.
        buf.truncate(first.len() + 20);
        assert_eq!(
            record_at(&buf, 4, &[]).unwrap(),
            Lookup::Missing {
                truncated: true,
                next_offset: Some(3)
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
                let result = record_at(&buf[..len], target, &[])
                    .unwrap_or_else(|e| panic!("prefix {len}, target {target}: {e}"));
                let partial = !ends.contains(&len) && len > 0;
                let expected = if target < complete * 5 {
                    Lookup::Found(RecordAt {
                        offset: target,
                        timestamp_ms: T0 + (target % 5) * 10,
                        timestamp_type: TimestampType::CreateTime,
                    })
                } else {
                    Lookup::Missing {
                        truncated: partial,
                        next_offset: (complete > 0).then_some(complete * 5),
                    }
                };
                assert_eq!(result, expected, "prefix {len}, target {target}");
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
                for target in [0, 3, 8, 100] {
                    let _ = record_at(&buf, target, &aborted);
                    let _ = record_at(&buf[..len], target, &[]);
                }
            }
        }
    }

    #[test]
    fn control_batches_are_skipped() {
        let buf = concat(&[simple(0, 3), marker(3, 1, false), simple(4, 2)]);
        let at = found(record_at(&buf, 3, &[]).unwrap());
        assert_eq!((at.offset, at.timestamp_ms), (4, T0));
        let only_marker = marker(3, 1, true).encode();
        assert_eq!(
            record_at(&only_marker, 3, &[]).unwrap(),
            Lookup::Missing {
                truncated: false,
                next_offset: Some(4)
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
        assert_eq!(found(record_at(&buf, 10, &aborted).unwrap()).offset, 13);
        assert_eq!(found(record_at(&buf, 14, &aborted).unwrap()).offset, 15);
        // read_uncommitted sees the aborted records.
        assert_eq!(found(record_at(&buf, 10, &[]).unwrap()).offset, 10);
        // A non-transactional batch of the same producer id is never dropped.
        let plain = concat(&[simple(10, 2)]);
        assert_eq!(found(record_at(&plain, 10, &aborted).unwrap()).offset, 10);
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
        assert_eq!(found(record_at(&buf, 0, &aborted).unwrap()).offset, 6);
    }

    #[test]
    fn impossible_batch_length_is_an_error_naming_it() {
        let mut buf = simple(0, 2).encode();
        buf.extend_from_slice(&simple(2, 2).encode());
        let second = simple(0, 2).encode().len();
        buf[second + 8..second + 12].copy_from_slice(&10i32.to_be_bytes());
        let err = record_at(&buf, 3, &[]).unwrap_err();
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
                record_at(&buf, 3, &[]),
                Err(RecordsError::BadBatchLength { .. })
            ));
        }
    }

    #[test]
    fn legacy_magic_is_unsupported() {
        // A magic 1 message: offset, size, crc, magic, attributes, timestamp, key, value.
        let mut msg = 77i64.to_be_bytes().to_vec();
        msg.extend_from_slice(&22i32.to_be_bytes());
        msg.extend_from_slice(&0u32.to_be_bytes());
        msg.extend_from_slice(&[1, 0]);
        msg.extend_from_slice(&T0.to_be_bytes());
        msg.extend_from_slice(&(-1i32).to_be_bytes());
        msg.extend_from_slice(&(-1i32).to_be_bytes());
        let err = record_at(&msg, 77, &[]).unwrap_err();
        assert!(matches!(
            err,
            RecordsError::UnsupportedMagic {
                magic: 1,
                base_offset: 77
            }
        ));
        assert!(err.to_string().contains("magic 1"));
    }

    #[test]
    fn unknown_codec_is_an_error() {
        let mut buf = simple(0, 2).encode();
        buf[22] |= 0x05;
        assert!(matches!(
            record_at(&buf, 0, &[]),
            Err(RecordsError::UnknownCompression {
                codec: 5,
                base_offset: 0
            })
        ));
        // ...but not for a batch skipped by its header alone.
        assert_eq!(
            record_at(&buf, 9, &[]).unwrap(),
            Lookup::Missing {
                truncated: false,
                next_offset: Some(2)
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
            match record_at(&buf, 4, &[]) {
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
        let err = record_at(&buf, 7, &[]).unwrap_err();
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
        assert!(matches!(
            record_at(&buf, 0, &[]),
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
        assert_eq!(found(record_at(&buf, 2, &[]).unwrap()).offset, 2);
        assert!(matches!(
            record_at(&buf, 3, &[]),
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
            let at = found(record_at(&buf, 3, &[]).unwrap());
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
        assert!(matches!(
            record_at(&buf, 0, &[]),
            Err(RecordsError::Decompress {
                codec: "snappy",
                ..
            })
        ));
    }
}
