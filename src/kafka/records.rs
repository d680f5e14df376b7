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
//! A Fetch response cut at `partition_max_bytes` ends in a partial batch. That is not an
//! error: the complete batches before it are used, and so are the records of the partial
//! batch that arrived whole (a decompressor yields a correct prefix of a cut stream), so a
//! small fetch can answer for a target early in a large batch. When the target's record did
//! not arrive, [`Lookup::Missing`] reports `truncated: true` and, when the cut batch's header
//! arrived, how many bytes of it the target needs (`needed`).
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

use ruzstd::decoding::StreamingDecoder;

mod decompress;

use decompress::{Decoder, SnappyReader};

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
    /// No record at or after `target` in this buffer.
    Missing {
        /// A partial trailing batch was present (the caller may fetch again with more bytes).
        truncated: bool,
        /// The offset after the last complete batch seen, if any.
        next_offset: Option<i64>,
        /// When the target lies in the partial trailing batch (its header arrived): how many
        /// bytes from that batch's start should hold the target's record — an estimate from
        /// the records before the cut for an uncompressed batch, the whole batch otherwise.
        needed: Option<usize>,
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

impl RecordsError {
    /// A checksum did not match: the bytes were damaged on the way (or by the broker).
    pub fn is_corruption(&self) -> bool {
        false
    }
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
        let batch = match frame_batch(rest, position)? {
            Frame::Whole(batch) => batch,
            Frame::Cut { bytes, size } => {
                return cut_batch(bytes, size, position, target, &mut txns, next_offset);
            }
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
        if let Some(found) = find_in_batch(&header, body, target, &mut Progress::default())? {
            return Ok(Lookup::Found(found));
        }
    }
    Ok(Lookup::Missing {
        truncated: false,
        next_offset,
        needed: None,
    })
}

/// The lookup in the partial batch that ends the buffer: the target is found if its record's
/// head arrived before the cut, else `Missing` with an estimate of the bytes it needs.
///
/// Records before the cut are intact (a streaming decompressor only emits what it decoded),
/// so an answer from them is exact. Any error inside the cut batch is taken for the cut: the
/// caller fetches the batch whole next time, where a real error shows.
fn cut_batch(
    bytes: &[u8],
    size: Option<usize>,
    position: usize,
    target: i64,
    txns: &mut TxnFilter<'_>,
    next_offset: Option<i64>,
) -> Result<Lookup, RecordsError> {
    let missing = |needed| {
        Ok(Lookup::Missing {
            truncated: true,
            next_offset,
            needed,
        })
    };
    let Some(size) = size.filter(|_| bytes.len() >= HEADER_LEN) else {
        return missing(None);
    };
    let header = BatchHeader::parse(bytes, position)?;
    if header.last_offset < target {
        return missing(None);
    }
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    match txns.skip(&header, body) {
        Ok(false) => {}
        Ok(true) | Err(_) => return missing(None),
    }
    let mut progress = Progress::default();
    if let Ok(Some(found)) = find_in_batch(&header, body, target, &mut progress) {
        return Ok(Lookup::Found(found));
    }
    missing(Some(estimate_needed(
        &header,
        &progress,
        target,
        size,
        bytes.len(),
    )))
}

/// Bytes from the start of a cut batch that should hold the record at `target`. For an
/// uncompressed batch: the records walked so far, plus one record per offset still to go,
/// each sized as the larger of the average so far and the last one, with an eighth to spare.
/// Otherwise (or when that is no more than what came) the whole batch.
fn estimate_needed(
    header: &BatchHeader,
    progress: &Progress,
    target: i64,
    size: usize,
    received: usize,
) -> usize {
    let uncompressed = header.attributes & 0x07 == 0;
    let estimate = (|| {
        let records = u64::try_from(progress.records).ok().filter(|n| *n > 0)?;
        let per_record = progress.bytes.checked_div(records)?.max(progress.last_size);
        let to_go = u64::try_from(target.checked_sub(progress.last_offset)?).ok()?;
        let rest = per_record.checked_mul(to_go)?;
        let rest = rest.checked_add(rest.checked_div(8)?)?.checked_add(64)?;
        let body = progress.bytes.checked_add(rest)?;
        usize::try_from(body).ok()?.checked_add(HEADER_LEN)
    })();
    match estimate {
        Some(bytes) if uncompressed && bytes > received => bytes.min(size),
        _ => size,
    }
}

/// The next batch off the front of a buffer.
enum Frame<'a> {
    Whole(&'a [u8]),
    /// The buffer ends inside this batch: what there is of it, and its full size when its
    /// length field arrived.
    Cut {
        bytes: &'a [u8],
        size: Option<usize>,
    },
}

/// Cuts the next batch off the front of `rest` (whole, or the partial batch that ends it).
fn frame_batch(rest: &[u8], position: usize) -> Result<Frame<'_>, RecordsError> {
    let (Some(base_offset), Some(length)) = (be_i64(rest, 0), be_i32(rest, 8)) else {
        return Ok(Frame::Cut {
            bytes: rest,
            size: None,
        });
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
    Ok(match rest.get(..total) {
        Some(batch) => Frame::Whole(batch),
        None => Frame::Cut {
            bytes: rest,
            size: Some(total),
        },
    })
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
    /// Parses the header of a batch, whole or cut (`batch.len() >= HEADER_LEN`, checked by
    /// the callers).
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

/// How far a walk through a batch's records got.
#[derive(Debug, Default)]
struct Progress {
    /// Records passed, and their bytes.
    records: i32,
    bytes: u64,
    /// Offset and size of the last record passed.
    last_offset: i64,
    last_size: u64,
}

/// Walks the records of one batch to the first record with offset `>= target`, counting the
/// records it passes in `progress`.
fn find_in_batch(
    header: &BatchHeader,
    body: &[u8],
    target: i64,
    progress: &mut Progress,
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
        progress.records = index.saturating_add(1);
        progress.last_size = reader.position.saturating_sub(progress.bytes);
        progress.bytes = reader.position;
        progress.last_offset = offset;
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
mod tests;
