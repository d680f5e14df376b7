//! The exact timestamp of the Kafka record at a given offset, read from the raw `records`
//! bytes of one Fetch response partition.
//!
//! # Approach
//!
//! [`record_at`] walks the buffer entry by entry, by the magic byte at position 16 of each:
//! record batches v2 (magic 2, in `v2`) and legacy message sets (magic 0 and 1, Kafka < 0.11,
//! in `legacy`), in any mix. Every complete entry the walk reaches has its CRC verified
//! before any of its fields is trusted (v2: CRC-32C over attributes..end; magic 0/1: CRC-32
//! over magic..end), also when it is only skipped by its header: a flipped bit in a last
//! offset must not make the walk pass the target. A mismatch is [`RecordsError::Crc`].
//!
//! * a batch (or message) whose last offset is below the target is skipped without
//!   decompressing its records;
//! * control batches (transaction markers) are skipped, and so are transactional data batches of
//!   aborted transactions, using the Fetch response's aborted-transaction list exactly as the
//!   Java consumer does in `read_committed` mode (pass an empty list for `read_uncommitted`);
//! * in the first remaining entry whose last offset reaches the target, the records are walked
//!   (decompressing on the fly with a streaming reader: gzip, snappy raw or xerial, lz4 —
//!   magic 0's historically wrong frame header checksum included — and zstd for v2) until
//!   the first record whose offset is `>= target`. A v2 batch is never decoded past it; a
//!   magic 1 compressed wrapper is walked twice (its inner offsets are relative to its last
//!   inner message).
//!
//! For `CreateTime` a v2 record's timestamp is `baseTimestamp + timestampDelta`, a magic 1
//! message's its own; for `LogAppendTime` (attribute bit 3) it is the batch's `maxTimestamp`
//! or the wrapper message's timestamp. Magic 0 messages and timestamps of -1 give
//! [`Lookup::Untimed`].
//!
//! Of each record only the fields above are decoded; key, value and headers are skipped by
//! length, streamed through a fixed-size buffer into `io::sink()`, so payload bytes are never
//! copied into owned buffers or retained.
//!
//! When the target offset no longer exists (below the log start, compacted away, or it is a
//! transaction marker / aborted record) the first record after it is returned, so
//! [`RecordAt::offset`] is then greater than the target.
//!
//! A Fetch response cut at `partition_max_bytes` ends in a partial entry. That is not an
//! error: the complete entries before it are used. The partial one cannot be CRC-checked, so
//! when its full size is at most `whole_up_to` it is never answered from:
//! [`Lookup::Missing`] says `needed` = its size, and the caller fetches it whole. A larger one
//! answers from its records that arrived (a decompressor yields a correct prefix of a cut
//! stream) with [`RecordAt::verified`] false, or estimates in `needed` how many bytes the
//! target needs.
//!
//! # Robustness
//!
//! The input comes from the network and is fuzzed: the code never panics (no `unwrap`, no
//! unchecked indexing or arithmetic on input-derived values — enforced by the clippy lints
//! below) and never allocates by an untrusted length beyond small fixed caps: a snappy block or
//! a zstd window is at most [`MAX_BLOCK_BYTES`], lz4 blocks are at most 4 MiB by format, gzip
//! needs a fixed 32 KiB window. Walking decoded records holds no memory, and its CPU is bounded
//! per batch (per pass of a legacy wrapper) by what the batch can legitimately hold:
//!
//! * its header: records are walked in strictly increasing offsets, never past `recordCount`
//!   records nor past `lastOffsetDelta` (a batch breaking either is corrupt);
//! * its compressed size: at most [`decompressed_limit`] bytes are decompressed —
//!   [`MAX_DECOMPRESSION_RATIO`] × the compressed bytes, at least
//!   [`MIN_DECOMPRESSED_LIMIT`], never more than [`MAX_DECOMPRESSED_BYTES`]. A record whose
//!   length alone would pass the limit fails at once, before a byte of it is decompressed.
//!
//! Past the limit the lookup fails with [`RecordsError::DecompressionBound`], which names the
//! batch, the bytes and ratio reached and the target offset.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io;

mod decompress;
mod legacy;
mod reader;
mod v2;

pub use crate::model::{RecordAt, TimestampType};

/// One entry of a Fetch response partition's `aborted_transactions` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// The outcome of [`record_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found(RecordAt),
    /// The first record at or after the target exists but carries no timestamp (a magic 0
    /// message, or a timestamp of -1 in magic 1 or 2).
    Untimed {
        offset: i64,
    },
    /// No record at or after `target` in this buffer. When `next_offset > Some(target)`,
    /// nothing in `[target, next_offset)` is a record a consumer would receive (control
    /// batches, aborted batches, compacted-away offsets).
    Missing {
        /// A partial trailing batch was present (the caller may fetch again with more bytes).
        truncated: bool,
        /// The offset after the last complete batch seen, if any.
        next_offset: Option<i64>,
        /// When the target lies in the partial trailing batch (its header arrived): how many
        /// bytes from that batch's start should hold the target's record — its full size
        /// when that is at most `whole_up_to`; beyond, an estimate from the records before
        /// the cut for an uncompressed v2 batch, the whole batch otherwise.
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
    #[error("{} at base offset {base_offset}: CRC mismatch (stored {stored:#010x}, computed {computed:#010x}): the bytes are corrupt", format_name(*magic))]
    Crc {
        base_offset: i64,
        magic: i8,
        stored: u32,
        computed: u32,
    },
    #[error("record batch at base offset {base_offset}: unsupported magic {magic} (message formats 0, 1 and 2 are supported)")]
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
    /// A compressed batch (or legacy wrapper) would decompress past [`decompressed_limit`]
    /// before reaching the target: a compression bomb, or data far more compressible than
    /// any real records.
    #[error("record batch at base offset {base_offset}: {}", bound_message(*decompressed, *claimed, *compressed, *target))]
    DecompressionBound {
        base_offset: i64,
        /// The offset looked for.
        target: i64,
        /// Compressed bytes the limit was derived from (what arrived of the batch).
        compressed: u64,
        /// Bytes decompressed when the walk stopped.
        decompressed: u64,
        /// When a record's length alone would pass the limit: that length (nothing of it was
        /// decompressed).
        claimed: Option<u64>,
    },
}

impl RecordsError {
    /// A checksum did not match: the bytes were damaged on the way (or by the broker).
    pub fn is_corruption(&self) -> bool {
        matches!(self, RecordsError::Crc { .. })
    }

    /// The decompression bound stopped the walk (see [`decompressed_limit`]).
    pub fn is_decompression_bound(&self) -> bool {
        matches!(self, RecordsError::DecompressionBound { .. })
    }
}

fn bound_message(decompressed: u64, claimed: Option<u64>, compressed: u64, target: i64) -> String {
    let limit = decompressed_limit(usize::try_from(compressed).unwrap_or(usize::MAX));
    let ratio = |bytes: u64| bytes.checked_div(compressed.max(1)).unwrap_or_default();
    match claimed {
        Some(claimed) => format!(
            "a record at byte {decompressed} of its decompressed records claims {claimed} bytes, past the {limit}-byte limit ({}× its {compressed} compressed bytes), without reaching offset {target}",
            ratio(limit)
        ),
        None => format!(
            "decompressed past {decompressed} bytes ({}× its {compressed} compressed bytes) without reaching offset {target}",
            ratio(decompressed)
        ),
    }
}

/// Largest snappy block (raw, or one xerial chunk) and largest zstd window accepted. Both
/// must be held in memory whole; the cap bounds what an untrusted header can make us allocate.
pub const MAX_BLOCK_BYTES: usize = 16 << 20;

/// Most bytes one compressed batch may decompress to, whatever its size. With the 256 KiB
/// fetch cap the ratio bound below stays under it; it bounds any other caller.
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 << 20;

/// Decompressed bytes allowed per compressed byte. Real record data compresses far less:
/// JSON-like and log records reach 5–20× with gzip/zstd, long runs of one byte ~1000×
/// (gzip's ceiling; zstd goes past 30,000×) — 64× lets every real batch through and caps a
/// bomb at 64 × the fetch cap = 16 MiB per batch (milliseconds of CPU) instead of gigabytes.
pub const MAX_DECOMPRESSION_RATIO: u64 = 64;

/// The ratio bound never goes below this: a small batch holding one highly compressible
/// record (a 200-byte batch of a 100 KiB blob) is still read.
pub const MIN_DECOMPRESSED_LIMIT: u64 = 1 << 20;

/// How many bytes a compressed records section of `compressed` bytes may decompress to:
/// `MAX_DECOMPRESSION_RATIO × compressed`, at least [`MIN_DECOMPRESSED_LIMIT`], at most
/// [`MAX_DECOMPRESSED_BYTES`].
pub fn decompressed_limit(compressed: usize) -> u64 {
    u64::try_from(compressed)
        .unwrap_or(u64::MAX)
        .saturating_mul(MAX_DECOMPRESSION_RATIO)
        .clamp(MIN_DECOMPRESSED_LIMIT, MAX_DECOMPRESSED_BYTES)
}

/// Whether looking up a record in `records` may cost more than walking its bytes: a
/// compressed batch or wrapper is among them (only headers are read, no CRC).
pub fn has_compressed(records: &[u8]) -> bool {
    let mut rest = records;
    while let (Some(length), Some(&magic)) = (be_i32(rest, 8), rest.get(MAGIC_AT)) {
        let attributes = match magic {
            2 => rest.get(22),
            _ => rest.get(17),
        };
        if attributes.is_some_and(|a| a & 0x07 != 0) {
            return true;
        }
        let total = usize::try_from(length)
            .unwrap_or(usize::MAX)
            .saturating_add(LOG_OVERHEAD);
        match rest.get(total..) {
            Some(next) if total > LOG_OVERHEAD => rest = next,
            _ => break,
        }
    }
    false
}

/// `offset`/`baseOffset` + `message_size`/`batchLength`: the bytes before what the length
/// counts, the same in every message format.
const LOG_OVERHEAD: usize = 12;
/// Position of the magic byte, the same in every message format.
const MAGIC_AT: usize = 16;

/// Finds the first record at or after `target` in `records` (the raw `records` field of a
/// Fetch response partition) and returns its offset and timestamp.
///
/// `aborted` is the partition's aborted-transaction list (any order); pass `&[]` for
/// `read_uncommitted` semantics. `whole_up_to` is the largest batch the caller can fetch
/// whole: a cut trailing batch up to that size is never answered from (see [`Lookup`]).
pub fn record_at(
    records: &[u8],
    target: i64,
    aborted: &[AbortedTxn],
    whole_up_to: usize,
) -> Result<Lookup, RecordsError> {
    let mut txns = v2::TxnFilter::new(aborted);
    let mut position = 0usize;
    let mut next_offset = None;
    while let Some(rest) = records.get(position..).filter(|rest| !rest.is_empty()) {
        let (entry, magic) = match frame_entry(rest, position)? {
            Frame::Whole { bytes, magic } => (bytes, magic),
            Frame::Cut { bytes, size } => {
                let cut = cut_entry(bytes, size, position, target, &mut txns, whole_up_to)?;
                return Ok(cut.unwrap_or_else(|needed| Lookup::Missing {
                    truncated: true,
                    next_offset,
                    needed,
                }));
            }
        };
        let step = match magic {
            2 => v2::whole_batch(entry, position, target, &mut txns)?,
            _ => legacy::whole_entry(entry, magic, position, target)?,
        };
        position = position.saturating_add(entry.len());
        match step {
            Step::Answer(lookup) => return Ok(lookup),
            Step::Next(next) => next_offset = Some(next),
        }
    }
    Ok(Lookup::Missing {
        truncated: false,
        next_offset,
        needed: None,
    })
}

/// What one complete entry (batch or legacy message) gave the walk.
enum Step {
    Answer(Lookup),
    /// Nothing for the target in it: the offset after it.
    Next(i64),
}

/// The answer for the record at `offset`: untimed when its timestamp is Kafka's "none" (-1).
fn answer(offset: i64, timestamp_ms: i64, timestamp_type: TimestampType, verified: bool) -> Lookup {
    if timestamp_ms == legacy::NO_TIMESTAMP {
        return Lookup::Untimed { offset };
    }
    Lookup::Found(RecordAt {
        offset,
        timestamp_ms,
        timestamp_type,
        verified,
    })
}

/// The lookup in the partial entry that ends the buffer: `Ok(lookup)` answers, `Err(needed)`
/// means `Missing` with that need.
fn cut_entry(
    bytes: &[u8],
    size: Option<usize>,
    position: usize,
    target: i64,
    txns: &mut v2::TxnFilter<'_>,
    whole_up_to: usize,
) -> Result<Result<Lookup, Option<usize>>, RecordsError> {
    let (Some(size), Some(&magic)) = (size, bytes.get(MAGIC_AT)) else {
        return Ok(Err(None));
    };
    match i8::from_be_bytes([magic]) {
        2 if bytes.len() >= v2::HEADER_LEN => {
            v2::cut_batch(bytes, size, position, target, txns, whole_up_to)
        }
        2 => Ok(Err(None)),
        magic => legacy::cut_entry(bytes, magic, size, position, target, whole_up_to),
    }
}

fn format_name(magic: i8) -> &'static str {
    match magic {
        2 => "record batch",
        _ => "legacy message",
    }
}

/// The next entry off the front of a buffer.
enum Frame<'a> {
    Whole {
        bytes: &'a [u8],
        magic: i8,
    },
    /// The buffer ends inside this entry: what there is of it, and its full size when its
    /// length field arrived.
    Cut {
        bytes: &'a [u8],
        size: Option<usize>,
    },
}

/// Cuts the next entry off the front of `rest` (whole, or the partial one that ends it).
fn frame_entry(rest: &[u8], position: usize) -> Result<Frame<'_>, RecordsError> {
    let (Some(base_offset), Some(length)) = (be_i64(rest, 0), be_i32(rest, 8)) else {
        return Ok(Frame::Cut {
            bytes: rest,
            size: None,
        });
    };
    let magic = rest.get(MAGIC_AT).map(|&byte| i8::from_be_bytes([byte]));
    let min_length = match magic {
        Some(2) => v2::MIN_BATCH_LENGTH,
        Some(magic @ (0 | 1)) => legacy::min_size(magic),
        Some(magic) => return Err(RecordsError::UnsupportedMagic { magic, base_offset }),
        // Not arrived yet: the smallest of any format.
        None => legacy::min_size(0),
    };
    let total = usize::try_from(length)
        .ok()
        .filter(|_| length >= min_length)
        .and_then(|len| len.checked_add(LOG_OVERHEAD))
        .filter(|total| i32::try_from(*total).is_ok())
        .ok_or(RecordsError::BadBatchLength {
            position,
            base_offset,
            length,
        })?;
    Ok(match (rest.get(..total), magic) {
        (Some(bytes), Some(magic)) => Frame::Whole { bytes, magic },
        _ => Frame::Cut {
            bytes: rest,
            size: Some(total),
        },
    })
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

fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    be_bytes(buf, at).map(u32::from_be_bytes)
}

fn be_i64(buf: &[u8], at: usize) -> Option<i64> {
    be_bytes(buf, at).map(i64::from_be_bytes)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bounds;
#[cfg(test)]
mod tests_legacy;
