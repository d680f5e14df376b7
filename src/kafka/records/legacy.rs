//! Legacy message sets (magic 0 and 1, Kafka before 0.11).
//!
//! An entry is `offset i64, message_size i32` then the message: `crc u32, magic i8,
//! attributes i8, [timestamp i64 if magic 1], key (i32 length, -1 = null), value (same)`.
//! The CRC-32 (IEEE) covers magic..end. A compressed message (attributes bits 0–2: gzip,
//! snappy, lz4) is a wrapper: its offset is its last inner message's, and its value holds an
//! inner message set. Magic 0 inner offsets are absolute; magic 1 inner offsets are relative,
//! absolute = wrapper offset − last inner relative offset + inner relative offset (as Kafka's
//! `AbstractLegacyRecordBatch` computes it). Magic 0 carries no timestamp.

use super::reader::RecordReader;
use super::{answer, be_i32, be_i64, be_u32, Lookup, RecordsError, Step, TimestampType};

const CRC_AT: usize = 12;
const MAGIC_AT: usize = 16;
const ATTRIBUTES_AT: usize = 17;
const TIMESTAMP_AT: usize = 18;
/// Kafka's timestamp for "none" (magic 0 messages, or a producer that set none).
pub(super) const NO_TIMESTAMP: i64 = -1;

/// Smallest `message_size` of a magic 0 / 1 message: crc, magic, attributes, [timestamp],
/// key length, value length.
pub(super) fn min_size(magic: i8) -> i32 {
    if magic == 0 {
        14
    } else {
        22
    }
}

/// Bytes of an entry up to where its key starts.
fn header_len(magic: i8) -> usize {
    if magic == 0 {
        TIMESTAMP_AT
    } else {
        26
    }
}

/// The fixed fields of a message entry (`entry.len() >= header_len(magic)`).
struct Message {
    position: usize,
    offset: i64,
    magic: i8,
    attributes: u8,
    timestamp_ms: i64,
}

impl Message {
    fn parse(entry: &[u8], magic: i8, position: usize) -> Result<Self, RecordsError> {
        let message = Message {
            position,
            offset: be_i64(entry, 0).unwrap_or_default(),
            magic,
            attributes: entry.get(ATTRIBUTES_AT).copied().unwrap_or_default(),
            timestamp_ms: match magic {
                0 => NO_TIMESTAMP,
                _ => be_i64(entry, TIMESTAMP_AT).unwrap_or_default(),
            },
        };
        if message.offset < 0 {
            return Err(message.corrupt("negative message offset"));
        }
        Ok(message)
    }

    fn corrupt(&self, reason: &'static str) -> RecordsError {
        RecordsError::CorruptHeader {
            position: self.position,
            base_offset: self.offset,
            reason,
        }
    }

    fn codec(&self) -> u8 {
        self.attributes & 0x07
    }

    fn timestamp_type(&self) -> TimestampType {
        if self.magic >= 1 && self.attributes & 0x08 != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// The answer for this (uncompressed) message itself.
    fn lookup(&self, verified: bool) -> Lookup {
        answer(
            self.offset,
            self.timestamp_ms,
            self.timestamp_type(),
            verified,
        )
    }

    /// Where the value starts in the entry and its length (-1 = null), after the key.
    fn value_span(&self, entry: &[u8]) -> Result<(usize, i32), RecordsError> {
        let key_at = header_len(self.magic);
        let key_len =
            be_i32(entry, key_at).ok_or_else(|| self.corrupt("message ends in its key"))?;
        let key_len = usize::try_from(key_len.max(0)).unwrap_or_default();
        let value_at = key_at.saturating_add(4).saturating_add(key_len);
        let value_len =
            be_i32(entry, value_at).ok_or_else(|| self.corrupt("message ends in its key"))?;
        if value_len < -1 {
            return Err(self.corrupt("negative value length"));
        }
        Ok((value_at.saturating_add(4), value_len))
    }
}

/// Verifies the CRC-32 (IEEE) of a whole message: bytes 16 (magic) to its end.
pub(super) fn verify_crc(entry: &[u8], magic: i8) -> Result<(), RecordsError> {
    let stored = be_u32(entry, CRC_AT).unwrap_or_default();
    let computed = crc32fast::hash(entry.get(MAGIC_AT..).unwrap_or_default());
    if stored == computed {
        return Ok(());
    }
    Err(RecordsError::Crc {
        base_offset: be_i64(entry, 0).unwrap_or_default(),
        magic,
        stored,
        computed,
    })
}

/// One whole message entry: CRC first, then skipped by its offset, or answered from (itself,
/// or the inner messages of a compressed wrapper).
pub(super) fn whole_entry(
    entry: &[u8],
    magic: i8,
    position: usize,
    target: i64,
) -> Result<Step, RecordsError> {
    verify_crc(entry, magic)?;
    let message = Message::parse(entry, magic, position)?;
    let next = message
        .offset
        .checked_add(1)
        .ok_or_else(|| message.corrupt("message offset overflows i64"))?;
    if message.offset < target {
        return Ok(Step::Next(next));
    }
    if message.codec() == 0 {
        return Ok(Step::Answer(message.lookup(true)));
    }
    let (value_at, value_len) = message.value_span(entry)?;
    let value = usize::try_from(value_len)
        .ok()
        .and_then(|len| entry.get(value_at..)?.get(..len))
        .filter(|value| value_at.saturating_add(value.len()) == entry.len())
        .ok_or_else(|| message.corrupt("compressed message value does not fill the message"))?;
    match find_inner(&message, value, target, true)? {
        Some(found) => Ok(Step::Answer(found)),
        None => Ok(Step::Next(next)),
    }
}

/// The message entry cut at the end of the buffer (its full `size` known): `Ok(lookup)`
/// answers, `Err(needed)` means `Missing` with that need. A message the caller may fetch
/// whole (`size <= whole_up_to`) is never answered from; a larger one answers unverified
/// from its header (uncompressed) or, for magic 0, from the inner messages that arrived.
/// Magic 1 inner offsets are relative to the wrapper's last inner message, which did not
/// arrive, so a cut magic 1 wrapper needs all of its bytes. The outer `Err` is the
/// decompression bound, hit in all the bytes the caller will ever fetch of it.
pub(super) fn cut_entry(
    bytes: &[u8],
    magic: i8,
    size: usize,
    position: usize,
    target: i64,
    whole_up_to: usize,
) -> Result<Result<Lookup, Option<usize>>, RecordsError> {
    if bytes.len() < header_len(magic) {
        return Ok(Err(None));
    }
    let Ok(message) = Message::parse(bytes, magic, position) else {
        return Ok(Err(None));
    };
    if message.offset < target {
        return Ok(Err(None));
    }
    if size <= whole_up_to {
        return Ok(Err(Some(size)));
    }
    if message.codec() == 0 {
        return Ok(Ok(message.lookup(false)));
    }
    if magic != 0 {
        return Ok(Err(Some(size)));
    }
    let value = message
        .value_span(bytes)
        .ok()
        .and_then(|(value_at, value_len)| {
            let value = bytes.get(value_at..)?;
            value.get(..usize::try_from(value_len).ok()?.min(value.len()))
        });
    match value.map(|value| find_inner(&message, value, target, false)) {
        Some(Ok(Some(found))) => Ok(Ok(found)),
        // As for a v2 batch: final only when no more of it will come.
        Some(Err(e)) if e.is_decompression_bound() && bytes.len() >= whole_up_to => Err(e),
        _ => Ok(Err(Some(size))),
    }
}

/// The fixed fields of an inner message of a compressed wrapper.
struct Inner {
    offset: i64,
    timestamp_ms: i64,
}

/// Reads the inner messages of a wrapper one by one, skipping keys and values unread.
struct InnerWalk<'a> {
    reader: RecordReader<'a>,
    magic: i8,
}

impl<'a> InnerWalk<'a> {
    fn open(wrapper: &Message, value: &'a [u8], target: i64) -> Result<Self, RecordsError> {
        Ok(InnerWalk {
            reader: RecordReader::open(
                wrapper.codec(),
                wrapper.magic,
                wrapper.offset,
                target,
                value,
            )?,
            magic: wrapper.magic,
        })
    }

    fn next(&mut self) -> Result<Option<Inner>, RecordsError> {
        let reader = &mut self.reader;
        if reader.at_end()? {
            return Ok(None);
        }
        let offset = i64::from_be_bytes(reader.array()?);
        let size = i32::from_be_bytes(reader.array()?);
        if size < min_size(self.magic) {
            return Err(reader.corrupt("inner message size below the minimum"));
        }
        let start = reader.position;
        let _crc = reader.array::<4>()?;
        if i8::from_be_bytes([reader.byte()?]) != self.magic {
            return Err(reader.corrupt("inner message magic differs from its wrapper's"));
        }
        if reader.byte()? & 0x07 != 0 {
            return Err(reader.corrupt("compressed message nested in a compressed message"));
        }
        let timestamp_ms = match self.magic {
            0 => NO_TIMESTAMP,
            _ => i64::from_be_bytes(reader.array()?),
        };
        let used = reader.position.saturating_sub(start);
        let rest = u64::try_from(size).unwrap_or_default().saturating_sub(used);
        reader.skip(rest)?;
        Ok(Some(Inner {
            offset,
            timestamp_ms,
        }))
    }
}

/// The first inner message of a compressed wrapper at or after `target`.
fn find_inner(
    wrapper: &Message,
    value: &[u8],
    target: i64,
    verified: bool,
) -> Result<Option<Lookup>, RecordsError> {
    // Magic 1 offsets are relative to the last inner message: a first pass finds it (keys
    // and values are skipped, nothing is kept), the second answers.
    let base = match wrapper.magic {
        0 => 0,
        _ => {
            let mut walk = InnerWalk::open(wrapper, value, target)?;
            let mut last = None;
            while let Some(inner) = walk.next()? {
                last = Some(inner.offset);
            }
            let last =
                last.ok_or_else(|| wrapper.corrupt("compressed message holds no messages"))?;
            wrapper
                .offset
                .checked_sub(last)
                .ok_or_else(|| wrapper.corrupt("inner message offset overflows i64"))?
        }
    };
    let mut walk = InnerWalk::open(wrapper, value, target)?;
    while let Some(inner) = walk.next()? {
        let offset = base
            .checked_add(inner.offset)
            .ok_or_else(|| wrapper.corrupt("inner message offset overflows i64"))?;
        if offset >= target {
            let timestamp_ms = match wrapper.timestamp_type() {
                TimestampType::LogAppendTime => wrapper.timestamp_ms,
                TimestampType::CreateTime => inner.timestamp_ms,
            };
            return Ok(Some(answer(
                offset,
                timestamp_ms,
                wrapper.timestamp_type(),
                verified,
            )));
        }
    }
    Ok(None)
}
