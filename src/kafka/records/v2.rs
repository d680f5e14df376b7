//! Record batches v2 (magic 2, Kafka 0.11+): header, CRC-32C, transactions, record walk.

use std::collections::HashSet;

use super::reader::RecordReader;
use super::{
    answer, be_i16, be_i32, be_i64, be_u32, AbortedTxn, Lookup, RecordsError, Step, TimestampType,
};

/// Size of the v2 batch header, i.e. where the records start.
pub(super) const HEADER_LEN: usize = 61;
/// Smallest valid `batchLength` for magic 2 (a header and no records).
pub(super) const MIN_BATCH_LENGTH: i32 = 49;
/// The stored CRC, and the first byte it covers (`attributes`).
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;

/// Verifies the CRC-32C (Castagnoli) of a whole batch: bytes 21 (attributes) to its end.
pub(super) fn verify_crc(batch: &[u8]) -> Result<(), RecordsError> {
    let stored = be_u32(batch, CRC_AT).unwrap_or_default();
    let computed = crc32c::crc32c(batch.get(CRC_FROM..).unwrap_or_default());
    if stored == computed {
        return Ok(());
    }
    Err(RecordsError::Crc {
        base_offset: be_i64(batch, 0).unwrap_or_default(),
        magic: 2,
        stored,
        computed,
    })
}

/// One whole batch: CRC first, then skipped by its header, or searched for the target.
pub(super) fn whole_batch(
    batch: &[u8],
    position: usize,
    target: i64,
    txns: &mut TxnFilter<'_>,
) -> Result<Step, RecordsError> {
    verify_crc(batch)?;
    let header = BatchHeader::parse(batch, position)?;
    let body = batch.get(HEADER_LEN..).unwrap_or_default();
    let next = header
        .last_offset
        .checked_add(1)
        .ok_or_else(|| header.corrupt("last offset overflows i64"))?;
    if txns.skip(&header, body)? || header.last_offset < target {
        return Ok(Step::Next(next));
    }
    match find_in_batch(&header, body, target, true, &mut Progress::default())? {
        Some(found) => Ok(Step::Answer(found)),
        None => Ok(Step::Next(next)),
    }
}

/// The lookup in the partial batch that ends the buffer (`bytes.len() >= HEADER_LEN`, its
/// full `size` known): `Ok(lookup)` answers, `Err(needed)` means the caller reports
/// `Missing` with that need.
///
/// Its CRC cannot be checked, so a batch the caller may fetch whole (`size <= whole_up_to`)
/// is never answered from. A larger one answers from the records that arrived (a streaming
/// decompressor only emits what it decoded), unverified. Any error inside the cut batch is
/// taken for the cut: the caller fetches it whole next time, where a real error shows.
pub(super) fn cut_batch(
    bytes: &[u8],
    size: usize,
    position: usize,
    target: i64,
    txns: &mut TxnFilter<'_>,
    whole_up_to: usize,
) -> Result<Result<Lookup, Option<usize>>, RecordsError> {
    let header = BatchHeader::parse(bytes, position)?;
    if header.last_offset < target {
        return Ok(Err(None));
    }
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    match txns.skip(&header, body) {
        Ok(false) => {}
        Ok(true) | Err(_) => return Ok(Err(None)),
    }
    if size <= whole_up_to {
        return Ok(Err(Some(size)));
    }
    let mut progress = Progress::default();
    match find_in_batch(&header, body, target, false, &mut progress) {
        Ok(Some(found)) => return Ok(Ok(found)),
        // No more of this batch will ever come (the caller fetches at most `whole_up_to`
        // bytes): what arrived already decompresses past the bound, so it is final.
        Err(e) if e.is_decompression_bound() && bytes.len() >= whole_up_to => return Err(e),
        // With more bytes the bound grows with them: fetch more first.
        _ => {}
    }
    Ok(Err(Some(estimate_needed(
        &header,
        &progress,
        target,
        size,
        bytes.len(),
    ))))
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

/// The fields of a v2 batch header that the lookup needs.
#[derive(Debug)]
pub(super) struct BatchHeader {
    position: usize,
    pub(super) base_offset: i64,
    pub(super) last_offset: i64,
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    record_count: i32,
}

impl BatchHeader {
    /// Parses the header of a batch, whole or cut (`batch.len() >= HEADER_LEN`, checked by
    /// the callers).
    pub(super) fn parse(batch: &[u8], position: usize) -> Result<Self, RecordsError> {
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

    fn reader<'a>(&self, body: &'a [u8], target: i64) -> Result<RecordReader<'a>, RecordsError> {
        let codec = (self.attributes & 0x07) as u8;
        RecordReader::open(codec, 2, self.base_offset, target, body)
    }
}

/// Tracks which producers are inside an aborted transaction while batches go by, like the
/// Java consumer's `read_committed` fetcher.
pub(super) struct TxnFilter<'a> {
    /// Aborted transactions sorted by first offset; `pending[next..]` have not started yet.
    pending: Vec<&'a AbortedTxn>,
    next: usize,
    /// Producers whose current transaction is aborted.
    active: HashSet<i64>,
}

impl<'a> TxnFilter<'a> {
    pub(super) fn new(aborted: &'a [AbortedTxn]) -> Self {
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
    let mut reader = header.reader(body, header.base_offset)?;
    reader.record_head(0, header.record_count)?;
    let key_length = reader.varint()?;
    if key_length < 4 {
        return Err(reader.corrupt("control record key shorter than 4 bytes"));
    }
    let [_, _, type_hi, type_lo] = reader.array::<4>()?;
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
///
/// The header bounds the walk: at most `recordCount` records, in strictly increasing
/// offsets that never pass `lastOffsetDelta` — so the target (`<= last_offset`, or the
/// batch would have been skipped) is reached within `target - baseOffset + 1` records, and
/// a batch whose records do not keep to it fails at the first one that does not.
fn find_in_batch(
    header: &BatchHeader,
    body: &[u8],
    target: i64,
    verified: bool,
    progress: &mut Progress,
) -> Result<Option<Lookup>, RecordsError> {
    let mut reader = header.reader(body, target)?;
    let mut previous: Option<i64> = None;
    for index in 0..header.record_count {
        let record = reader.record_head(index, header.record_count)?;
        let offset = header
            .base_offset
            .checked_add(i64::from(record.offset_delta))
            .ok_or_else(|| reader.corrupt("record offset overflows i64"))?;
        if previous.is_some_and(|previous| offset <= previous) || record.offset_delta < 0 {
            return Err(reader.corrupt("record offsets do not increase"));
        }
        if offset > header.last_offset {
            return Err(reader.corrupt("record offset past the batch's lastOffsetDelta"));
        }
        previous = Some(offset);
        if offset >= target {
            let timestamp_type = header.timestamp_type();
            let timestamp_ms = match timestamp_type {
                TimestampType::LogAppendTime => header.max_timestamp,
                TimestampType::CreateTime => header
                    .base_timestamp
                    .checked_add(record.timestamp_delta)
                    .ok_or_else(|| reader.corrupt("record timestamp overflows i64"))?,
            };
            return Ok(Some(answer(offset, timestamp_ms, timestamp_type, verified)));
        }
        reader.skip(record.rest)?;
        progress.records = index.saturating_add(1);
        progress.last_size = reader.position.saturating_sub(progress.bytes);
        progress.bytes = reader.position;
        progress.last_offset = offset;
    }
    Ok(None)
}
