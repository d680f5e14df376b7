//! The exposition as it is kept between renders: gzip-compressed, in both formats, for the
//! price of one.
//!
//! Prometheus text and OpenMetrics differ only in the families from the first counter on
//! (a counter's `# HELP` / `# TYPE` lines carry `_total` in Prometheus text) and in
//! OpenMetrics' closing `# EOF`. So the text before the first counter (nearly all of it)
//! is compressed once into a raw deflate stream that ends with a sync flush: byte-aligned,
//! no final block. Each format's rest (a few KiB) is compressed on its own into deflate
//! blocks that end the stream. A gzip header, the common blocks, one format's blocks and
//! that format's trailer (CRC-32 and length of its whole text) make one valid gzip member:
//! what a client that accepts gzip gets, as stored. A client that does not gets the text
//! inflated as it is sent, 64 KiB at a time ([`TextStream`]).

use std::sync::Arc;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::text::Sink;

/// Compressed bytes per stored chunk.
const CHUNK: usize = 64 * 1024;

/// Text per chunk of an uncompressed response.
const TEXT_CHUNK: usize = 64 * 1024;

/// A gzip member header: deflate, no flags, no mtime, OS unknown (RFC 1952).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// The two text formats of `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0.0.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => super::PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => super::OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Why an exposition could not be compressed or inflated (never expected: the bytes are
/// produced and read by tidemark itself).
#[derive(Debug, thiserror::Error)]
pub enum CompressedError {
    #[error("compressing the exposition: {0}")]
    Compress(#[from] flate2::CompressError),
    #[error("compressing the exposition: the compressor made no progress")]
    CompressStalled,
    #[error("inflating the stored exposition: {0}")]
    Inflate(#[from] flate2::DecompressError),
    #[error("inflating the stored exposition: {0}")]
    Corrupt(&'static str),
}

/// One format's end of the exposition.
#[derive(Clone, Debug)]
struct Tail {
    /// Its text (a few KiB: the counter families and what follows them).
    text: Bytes,
    /// The text as deflate blocks, the last one final.
    deflate: Bytes,
    /// The gzip trailer of the whole text in this format: CRC-32 and length mod 2^32.
    trailer: Bytes,
}

/// A rendered exposition, compressed, in both formats (see the module comment). Cloning
/// shares the bytes.
#[derive(Clone)]
pub struct Compressed {
    /// Raw deflate of the text both formats share, ending in a sync flush.
    common: Vec<Bytes>,
    common_compressed_len: usize,
    /// Uncompressed length of that text.
    common_len: u64,
    /// Indexed by `Format as usize`.
    tails: [Tail; 2],
    series: usize,
}

impl std::fmt::Debug for Compressed {
    /// Sizes only: the bytes are megabytes of deflate.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressed")
            .field("series", &self.series)
            .field("prometheus_text_len", &self.text_len(Format::Prometheus))
            .field("gzip_len", &self.gzip_len(Format::Prometheus))
            .field("stored_len", &self.stored_len())
            .finish()
    }
}

impl Default for Compressed {
    /// An empty exposition (served before the first render).
    fn default() -> Self {
        // A final fixed-Huffman block holding only its end-of-block code.
        const EMPTY_FINAL_BLOCK: [u8; 2] = [0x03, 0x00];
        let tail = Tail {
            text: Bytes::new(),
            deflate: Bytes::from_static(&EMPTY_FINAL_BLOCK),
            trailer: Bytes::from_static(&[0; 8]),
        };
        Compressed {
            common: Vec::new(),
            common_compressed_len: 0,
            common_len: 0,
            tails: [tail.clone(), tail],
            series: 0,
        }
    }
}

impl Compressed {
    fn tail(&self, format: Format) -> &Tail {
        &self.tails[format as usize]
    }

    /// The gzip body of `format`, as stored.
    pub fn gzip(&self, format: Format) -> impl Iterator<Item = Bytes> + '_ {
        let tail = self.tail(format);
        std::iter::once(Bytes::from_static(&GZIP_HEADER))
            .chain(self.common.iter().cloned())
            .chain([tail.deflate.clone(), tail.trailer.clone()])
    }

    /// Length of [`gzip`](Self::gzip).
    pub fn gzip_len(&self, format: Format) -> usize {
        let tail = self.tail(format);
        GZIP_HEADER.len() + self.common_compressed_len + tail.deflate.len() + tail.trailer.len()
    }

    /// Bytes held for both formats.
    pub fn stored_len(&self) -> usize {
        let tails: usize = self
            .tails
            .iter()
            .map(|t| t.text.len() + t.deflate.len() + t.trailer.len())
            .sum();
        self.common_compressed_len + tails
    }

    /// Length of the uncompressed text of `format`.
    pub fn text_len(&self, format: Format) -> u64 {
        self.common_len + self.tail(format).text.len() as u64
    }

    /// The text of `format`, inflated chunk by chunk as it is read.
    pub fn text(self: &Arc<Self>, format: Format) -> TextStream {
        TextStream {
            source: self.clone(),
            format,
            chunk: 0,
            offset: 0,
            inflate: Decompress::new(false),
            sent: 0,
            common_done: false,
            done: false,
        }
    }

    /// The whole text of `format` in one buffer (a copy: for tools and tests).
    pub fn to_text(self: &Arc<Self>, format: Format) -> Result<Vec<u8>, CompressedError> {
        let mut out = Vec::with_capacity(self.text_len(format) as usize);
        for chunk in self.text(format) {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Length of the Prometheus text.
    pub fn prometheus_len(&self) -> usize {
        self.text_len(Format::Prometheus) as usize
    }

    /// Number of samples (series) in the exposition.
    pub fn series(&self) -> usize {
        self.series
    }
}

/// Raw deflate into stored chunks of [`CHUNK`] bytes.
struct Deflate {
    compress: Compress,
    chunks: Vec<Bytes>,
    out: Vec<u8>,
}

impl Deflate {
    fn new(level: u32) -> Self {
        Deflate {
            compress: Compress::new(Compression::new(level), false),
            chunks: Vec::new(),
            out: Vec::with_capacity(CHUNK),
        }
    }

    fn seal(&mut self) {
        let mut full = std::mem::replace(&mut self.out, Vec::with_capacity(CHUNK));
        if !full.is_empty() {
            full.shrink_to_fit();
            self.chunks.push(Bytes::from(full));
        }
    }

    /// One call; returns (input consumed, output produced, status).
    fn step(
        &mut self,
        input: &[u8],
        flush: FlushCompress,
    ) -> Result<(usize, u64, Status), CompressedError> {
        if self.out.len() == self.out.capacity() {
            self.seal();
        }
        let (before_in, before_out) = (self.compress.total_in(), self.compress.total_out());
        let status = self.compress.compress_vec(input, &mut self.out, flush)?;
        let consumed = (self.compress.total_in() - before_in) as usize;
        Ok((consumed, self.compress.total_out() - before_out, status))
    }

    fn write(&mut self, mut input: &[u8]) -> Result<(), CompressedError> {
        while !input.is_empty() {
            let (consumed, produced, _) = self.step(input, FlushCompress::None)?;
            if consumed == 0 && produced == 0 && self.out.len() < self.out.capacity() {
                return Err(CompressedError::CompressStalled);
            }
            input = &input[consumed..];
        }
        Ok(())
    }

    /// Emit everything buffered, byte-aligned, without ending the stream (as flate2's own
    /// writer does: one sync flush, then calls until nothing more comes out).
    fn sync_flush(&mut self) -> Result<(), CompressedError> {
        let (_, mut produced, _) = self.step(&[], FlushCompress::Sync)?;
        while produced > 0 || self.out.len() == self.out.capacity() {
            produced = self.step(&[], FlushCompress::None)?.1;
        }
        Ok(())
    }

    /// End the stream with a final block.
    fn finish(&mut self) -> Result<(), CompressedError> {
        loop {
            let (_, produced, status) = self.step(&[], FlushCompress::Finish)?;
            if status == Status::StreamEnd {
                return Ok(());
            }
            if produced == 0 && self.out.len() < self.out.capacity() {
                return Err(CompressedError::CompressStalled);
            }
        }
    }

    fn into_chunks(mut self) -> Vec<Bytes> {
        self.seal();
        self.chunks
    }
}

/// The [`Sink`] a render writes the common text into; [`finish`](Self::finish) adds the
/// two formats' ends.
pub(super) struct Deflater {
    level: u32,
    deflate: Deflate,
    crc: crc32fast::Hasher,
    len: u64,
    /// The first error; later writes are dropped and `finish` reports it.
    error: Option<CompressedError>,
}

impl Deflater {
    pub(super) fn new(level: u32) -> Self {
        Deflater {
            level,
            deflate: Deflate::new(level),
            crc: crc32fast::Hasher::new(),
            len: 0,
            error: None,
        }
    }

    /// The stored exposition: the common text written so far, then `tails` (Prometheus
    /// text's end, OpenMetrics' end). `series` counts the samples of all of it.
    pub(super) fn finish(
        mut self,
        series: usize,
        tails: [String; 2],
    ) -> Result<Compressed, CompressedError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.deflate.sync_flush()?;
        let common = self.deflate.into_chunks();
        let [prometheus, openmetrics] = tails;
        let tail = |text: String| -> Result<Tail, CompressedError> {
            let mut deflate = Deflate::new(self.level);
            deflate.write(text.as_bytes())?;
            deflate.finish()?;
            let mut crc = self.crc.clone();
            crc.update(text.as_bytes());
            let len = self.len + text.len() as u64;
            let mut trailer = Vec::with_capacity(8);
            trailer.extend_from_slice(&crc.finalize().to_le_bytes());
            // ISIZE is the length modulo 2^32 (RFC 1952).
            trailer.extend_from_slice(&(len as u32).to_le_bytes());
            Ok(Tail {
                text: Bytes::from(text),
                deflate: Bytes::from(deflate.into_chunks().concat()),
                trailer: Bytes::from(trailer),
            })
        };
        Ok(Compressed {
            common_compressed_len: common.iter().map(Bytes::len).sum(),
            common,
            common_len: self.len,
            tails: [tail(prometheus)?, tail(openmetrics)?],
            series,
        })
    }
}

impl Sink for Deflater {
    fn write(&mut self, text: &str) {
        if self.error.is_some() {
            return;
        }
        self.crc.update(text.as_bytes());
        self.len += text.len() as u64;
        if let Err(e) = self.deflate.write(text.as_bytes()) {
            self.error = Some(e);
        }
    }
}

/// The text of one format, inflated from the stored exposition `TEXT_CHUNK` bytes at a
/// time; holds the exposition (not a copy) until dropped.
pub struct TextStream {
    source: Arc<Compressed>,
    format: Format,
    /// Position in `source.common`: chunk index and offset in it.
    chunk: usize,
    offset: usize,
    inflate: Decompress,
    /// Text bytes returned so far.
    sent: u64,
    common_done: bool,
    done: bool,
}

impl TextStream {
    /// Bytes of text still to come.
    pub fn remaining(&self) -> u64 {
        self.source.text_len(self.format) - self.sent
    }

    /// Up to [`TEXT_CHUNK`] bytes of the common text, inflated.
    fn inflate_chunk(&mut self) -> Result<Vec<u8>, CompressedError> {
        let common = &self.source.common;
        let mut out = Vec::with_capacity(TEXT_CHUNK);
        while out.len() < out.capacity() {
            let input = common
                .get(self.chunk)
                .map_or(&[][..], |c| &c[self.offset..]);
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::None)?;
            let consumed = (self.inflate.total_in() - before_in) as usize;
            let produced = self.inflate.total_out() - before_out;
            self.offset += consumed;
            if self.chunk < common.len() && self.offset == common[self.chunk].len() {
                self.chunk += 1;
                self.offset = 0;
            }
            if status == Status::StreamEnd {
                return Err(CompressedError::Corrupt("a final block in the shared part"));
            }
            if consumed == 0 && produced == 0 {
                if self.chunk < common.len() {
                    return Err(CompressedError::Corrupt("the inflater made no progress"));
                }
                // Every byte is in and nothing more comes out.
                self.common_done = true;
                if self.inflate.total_out() != self.source.common_len {
                    return Err(CompressedError::Corrupt(
                        "the shared part has the wrong length",
                    ));
                }
                break;
            }
        }
        Ok(out)
    }
}

impl Iterator for TextStream {
    type Item = Result<Bytes, CompressedError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        while !self.common_done {
            match self.inflate_chunk() {
                Ok(text) if text.is_empty() => {}
                Ok(text) => {
                    self.sent += text.len() as u64;
                    return Some(Ok(Bytes::from(text)));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.done = true;
        let tail = self.source.tail(self.format).text.clone();
        self.sent += tail.len() as u64;
        (!tail.is_empty()).then_some(Ok(tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // A single-member decoder: the body must be one gzip member, CRC and length checked.
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    /// Text of a few hundred KiB, written in pieces of varied sizes.
    fn build(level: u32, common: &str, tails: [&str; 2]) -> Arc<Compressed> {
        let mut d = Deflater::new(level);
        let mut rest = common;
        let mut n = 1;
        while !rest.is_empty() {
            let cut = (n * 7919 % 40_000).min(rest.len());
            let cut = (cut..=rest.len())
                .find(|i| rest.is_char_boundary(*i))
                .unwrap_or(rest.len());
            d.write(&rest[..cut]);
            rest = &rest[cut..];
            n += 1;
        }
        Arc::new(d.finish(3, tails.map(str::to_string)).expect("compressed"))
    }

    fn sample_text(lines: usize) -> String {
        (0..lines)
            .map(|i| {
                format!(
                    "kafka_consumergroup_group_lag{{group=\"g-{}\",topic=\"t\",partition=\"{i}\"}} {}\n",
                    i % 37,
                    i * 7 % 1000
                )
            })
            .collect()
    }

    #[test]
    fn each_format_is_one_gzip_member_and_inflates_to_its_text() {
        let common = sample_text(20_000);
        let tails = [
            "# TYPE c_total counter\nc_total 1\n",
            "# TYPE c counter\nc_total 1\n# EOF\n",
        ];
        for level in [1, 6, 9] {
            let c = build(level, &common, tails);
            for (format, tail) in [
                (Format::Prometheus, tails[0]),
                (Format::OpenMetrics, tails[1]),
            ] {
                let want = format!("{common}{tail}");
                let gz: Vec<u8> = c.gzip(format).flat_map(|b| b.to_vec()).collect();
                assert_eq!(gz.len(), c.gzip_len(format));
                assert_eq!(gunzip(&gz), want.as_bytes(), "level {level} {format:?}");
                let streamed: Vec<Bytes> =
                    c.text(format).collect::<Result<_, _>>().expect("inflated");
                assert!(streamed
                    .iter()
                    .all(|b| b.len() <= TEXT_CHUNK && !b.is_empty()));
                assert!(streamed.len() > 2, "{} chunks", streamed.len());
                assert_eq!(streamed.concat(), want.as_bytes());
                assert_eq!(c.text_len(format), want.len() as u64);
            }
            // Far smaller than the text, and the common part is stored once.
            assert!(c.gzip_len(Format::Prometheus) * 5 < common.len());
            let both = c.gzip_len(Format::Prometheus) + c.gzip_len(Format::OpenMetrics);
            assert!(
                c.stored_len() < both / 2 + 200,
                "{} of {both}",
                c.stored_len()
            );
        }
    }

    #[test]
    fn remaining_counts_down_to_zero() {
        let common = sample_text(5_000);
        let c = build(1, &common, ["p\n", "o\n# EOF\n"]);
        let mut s = c.text(Format::OpenMetrics);
        let total = s.remaining();
        let mut seen = 0;
        while let Some(chunk) = s.next() {
            seen += chunk.expect("chunk").len() as u64;
            assert_eq!(s.remaining(), total - seen);
        }
        assert_eq!((seen, s.remaining()), (total, 0));
    }

    #[test]
    fn an_empty_exposition_is_valid_gzip() {
        let compressed_nothing = Deflater::new(1).finish(0, [String::new(), String::new()]);
        let c = Arc::new(compressed_nothing.expect("empty"));
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let gz: Vec<u8> = c.gzip(format).flat_map(|b| b.to_vec()).collect();
            assert!(gunzip(&gz).is_empty());
            assert_eq!(c.text(format).count(), 0);
        }
        let c = Arc::new(Compressed::default());
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let gz: Vec<u8> = c.gzip(format).flat_map(|b| b.to_vec()).collect();
            assert!(gunzip(&gz).is_empty());
            assert_eq!(c.text(format).count(), 0);
            assert_eq!(c.text_len(format), 0);
        }
    }

    #[test]
    fn a_damaged_exposition_ends_the_stream_with_an_error() {
        let good = build(1, &sample_text(5_000), ["p\n", "o\n"]);
        // A length that does not match what the bytes inflate to.
        let mut wrong_length = (*good).clone();
        wrong_length.common_len += 1;
        let results: Vec<_> = Arc::new(wrong_length).text(Format::Prometheus).collect();
        assert!(
            matches!(results.last(), Some(Err(CompressedError::Corrupt(_)))),
            "{results:?}"
        );
        // Garbage in place of the deflate bytes.
        let mut garbage = (*good).clone();
        garbage.common[0] = Bytes::from(vec![0xff; 64]);
        let results: Vec<_> = Arc::new(garbage).text(Format::Prometheus).collect();
        assert!(matches!(results.last(), Some(Err(_))), "{results:?}");
    }
}
