//! A streaming reader over a batch's records section (v2) or a legacy wrapper's inner
//! message set, decompressing as it goes and bounded by [`decompressed_limit`].

use std::io::{self, BufRead, BufReader, Read};

use ruzstd::decoding::StreamingDecoder;

use super::decompress::{kafka08_lz4, Decoder, SnappyReader};
use super::{decompressed_limit, RecordsError, MAX_BLOCK_BYTES};

const READ_BUFFER: usize = 8 * 1024;

/// The decoded start of a v2 record.
pub(super) struct RecordHead {
    pub(super) timestamp_delta: i64,
    pub(super) offset_delta: i32,
    /// Bytes of the record after `offsetDelta` (key, value, headers).
    pub(super) rest: u64,
}

/// Reads a (decompressed) records section byte by byte; `position` counts decoded bytes.
pub(super) struct RecordReader<'a> {
    inner: BufReader<Decoder<'a>>,
    pub(super) position: u64,
    base_offset: i64,
    codec: &'static str,
    /// The offset looked for, and the compressed size and decompressed-byte limit of the
    /// section: for the bound's error.
    target: i64,
    compressed: u64,
    limit: u64,
}

impl<'a> RecordReader<'a> {
    /// A reader over `body` compressed with codec `id` (attributes bits 0–2). `magic` selects
    /// the lz4 frame variant (magic 0 wrote a wrong frame header checksum) and which codecs
    /// exist (zstd only from magic 2); `base_offset` names the batch in errors, `target` is
    /// the offset looked for. A compressed section is bounded by [`decompressed_limit`] of
    /// its size; an uncompressed one by its own bytes.
    pub(super) fn open(
        id: u8,
        magic: i8,
        base_offset: i64,
        target: i64,
        body: &'a [u8],
    ) -> Result<Self, RecordsError> {
        let fail = |codec, detail| RecordsError::Decompress {
            codec,
            base_offset,
            detail,
        };
        let (codec, decoder) = match id {
            0 => ("none", Decoder::Plain(body)),
            1 => ("gzip", Decoder::Gzip(flate2::read::GzDecoder::new(body))),
            2 => match SnappyReader::new(body) {
                Ok(reader) => ("snappy", Decoder::Snappy(reader)),
                Err(e) => return Err(fail("snappy", e)),
            },
            3 if magic == 0 => ("lz4", kafka08_lz4(body)),
            3 => (
                "lz4",
                Decoder::Lz4(lz4_flex::frame::FrameDecoder::new(body)),
            ),
            4 if magic >= 2 => {
                match StreamingDecoder::new_with_max_window_size(body, MAX_BLOCK_BYTES as u64) {
                    Ok(reader) => ("zstd", Decoder::Zstd(Box::new(reader))),
                    Err(e) => return Err(fail("zstd", io::Error::other(e))),
                }
            }
            id => {
                return Err(RecordsError::UnknownCompression {
                    codec: id,
                    base_offset,
                })
            }
        };
        let limit = match id {
            // Nothing to decompress: the walk costs the bytes in hand, and a record claiming
            // more than arrived is how a cut batch looks.
            0 => u64::MAX,
            _ => decompressed_limit(body.len()),
        };
        Ok(RecordReader {
            inner: BufReader::with_capacity(READ_BUFFER, decoder),
            position: 0,
            base_offset,
            codec,
            target,
            compressed: u64::try_from(body.len()).unwrap_or(u64::MAX),
            limit,
        })
    }

    pub(super) fn corrupt(&self, reason: &'static str) -> RecordsError {
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

    fn bound(&self, claimed: Option<u64>) -> RecordsError {
        RecordsError::DecompressionBound {
            base_offset: self.base_offset,
            target: self.target,
            compressed: self.compressed,
            decompressed: self.position,
            claimed,
        }
    }

    fn advance(&mut self, by: u64) -> Result<(), RecordsError> {
        self.position = self.position.saturating_add(by);
        if self.position > self.limit {
            return Err(self.bound(None));
        }
        Ok(())
    }

    /// Whether the section is exhausted.
    pub(super) fn at_end(&mut self) -> Result<bool, RecordsError> {
        match self.inner.fill_buf() {
            Ok(buf) => Ok(buf.is_empty()),
            Err(e) => Err(self.io_error(e)),
        }
    }

    /// The next byte inside a record.
    pub(super) fn byte(&mut self) -> Result<u8, RecordsError> {
        let byte = match self.inner.fill_buf() {
            Ok(buf) => buf.first().copied(),
            Err(e) => return Err(self.io_error(e)),
        };
        let byte = byte.ok_or_else(|| self.corrupt("records end inside a record"))?;
        self.inner.consume(1);
        self.advance(1)?;
        Ok(byte)
    }

    /// `N` bytes inside a record (fixed-width big-endian fields of legacy messages).
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordsError> {
        let mut out = [0u8; N];
        for byte in &mut out {
            *byte = self.byte()?;
        }
        Ok(out)
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
    pub(super) fn varint(&mut self) -> Result<i32, RecordsError> {
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

    /// Reads a v2 record up to and including `offsetDelta`; `index` of `count` is for the
    /// error when the records end early.
    pub(super) fn record_head(
        &mut self,
        index: i32,
        count: i32,
    ) -> Result<RecordHead, RecordsError> {
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

    /// Skips `count` bytes without keeping them. When they would take the section past its
    /// limit the walk fails at once, without decompressing them.
    pub(super) fn skip(&mut self, count: u64) -> Result<(), RecordsError> {
        if self.position.saturating_add(count) > self.limit {
            return Err(self.bound(Some(count)));
        }
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
