//! Streaming decompression of a batch's records section, one reader per codec.
//!
//! Every reader is pulled only as far as the record walk needs, so a batch is never
//! decompressed past the target record.

use std::io::{self, Read};

use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

use super::MAX_BLOCK_BYTES;

/// A snappy block expands at most ~21x (a 64-byte copy in 3 bytes); anything claiming more is
/// corrupt, which keeps allocations proportional to the input.
const SNAPPY_MAX_RATIO: usize = 32;
pub(super) const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;

/// A streaming reader over a batch's records section, one variant per codec.
pub(super) enum Decoder<'a> {
    Plain(&'a [u8]),
    Gzip(flate2::read::GzDecoder<&'a [u8]>),
    Snappy(SnappyReader<'a>),
    Lz4(lz4_flex::frame::FrameDecoder<&'a [u8]>),
    /// An lz4 frame of a magic 0 message: its header checksum byte recomputed first.
    Lz4Kafka08(lz4_flex::frame::FrameDecoder<io::Chain<io::Take<io::Cursor<Lz4Header>>, &'a [u8]>>),
    Zstd(Box<StreamingDecoder<&'a [u8], FrameDecoder>>),
}

impl Read for Decoder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Snappy(r) => r.read(buf),
            Decoder::Lz4(r) => r.read(buf),
            Decoder::Lz4Kafka08(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// The longest lz4 frame header: magic 4, FLG, BD, content size 8, dictionary id 4, HC.
const LZ4_MAX_HEADER: usize = 19;
const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
const LZ4_FLG_CONTENT_SIZE: u8 = 0x08;
const LZ4_FLG_DICT_ID: u8 = 0x01;
type Lz4Header = [u8; LZ4_MAX_HEADER];

/// A reader for the lz4 frame of a magic 0 message. Kafka before 0.10 (KAFKA-3160, KIP-57)
/// computed the frame header checksum over the magic number too, and its readers ignore that
/// byte; lz4_flex checks it, so the header is copied (at most 19 bytes, no payload) with the
/// checksum recomputed. A frame too short to hold its header goes through as it is and fails
/// in the decoder.
pub(super) fn kafka08_lz4(body: &[u8]) -> Decoder<'_> {
    let mut header: Lz4Header = [0; LZ4_MAX_HEADER];
    let mut header_len = 0usize;
    let mut rest = body;
    if let (Some(magic), Some(&flg)) = (body.get(..4), body.get(4)) {
        let descriptor_len = 2usize
            .saturating_add(if flg & LZ4_FLG_CONTENT_SIZE != 0 {
                8
            } else {
                0
            })
            .saturating_add(if flg & LZ4_FLG_DICT_ID != 0 { 4 } else { 0 });
        let checksum_at = descriptor_len.saturating_add(4);
        if let (true, Some(descriptor), Some(after)) = (
            magic == LZ4_MAGIC,
            body.get(4..checksum_at),
            body.get(checksum_at.saturating_add(1)..),
        ) {
            let checksum = (twox_hash::XxHash32::oneshot(0, descriptor) >> 8) as u8;
            for (slot, byte) in header.iter_mut().zip(magic.iter().chain(descriptor)) {
                *slot = *byte;
            }
            if let Some(slot) = header.get_mut(checksum_at) {
                *slot = checksum;
            }
            header_len = checksum_at.saturating_add(1);
            rest = after;
        }
    }
    let head = io::Cursor::new(header).take(header_len as u64);
    Decoder::Lz4Kafka08(lz4_flex::frame::FrameDecoder::new(head.chain(rest)))
}

/// Snappy as Kafka writes it: either one raw snappy block (librdkafka and others), or xerial
/// framing (the Java client): magic `\x82SNAPPY\0`, a 4-byte version and a 4-byte
/// compatible version, then repeated `[u32 BE length][raw snappy block]`. Blocks are decoded
/// one at a time, on demand.
pub(super) struct SnappyReader<'a> {
    /// Compressed input not yet decoded.
    input: &'a [u8],
    xerial: bool,
    /// The current decoded block and how much of it was read.
    block: Vec<u8>,
    read: usize,
    decoder: snap::raw::Decoder,
}

impl<'a> SnappyReader<'a> {
    pub(super) fn new(body: &'a [u8]) -> io::Result<Self> {
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

pub(super) fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
