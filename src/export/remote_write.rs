//! Prometheus remote write 1.0: `prometheus.WriteRequest` of `TimeSeries` (labels sorted
//! by name, `__name__` among them; one `Sample` each), snappy block format.
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }   // milliseconds
//! ```
//!
//! Every sample of the exposition is one series, named as its line (`x_total`, `h_bucket`
//! with `le`), as a Prometheus scrape of `/metrics` would store it. A label with an empty
//! value is left out: to Prometheus it is the same series (a scrape drops it too).

use bytes::Bytes;

use super::pb;
use super::samples::{Family, Sample, SampleSink};
use super::Chunk;

/// Uncompressed bytes of one WriteRequest before it is cut (a request carries ~5,000
/// samples of tidemark's widest series; after snappy, a few hundred KB).
pub const CHUNK_BYTES: usize = 2 << 20;

/// Builds WriteRequests from samples, one chunk at a time.
pub struct Encoder {
    buf: Vec<u8>,
    samples: u64,
    timestamp_ms: i64,
    limit: usize,
}

impl Encoder {
    pub fn new(timestamp_ms: i64, limit: usize) -> Self {
        Encoder {
            buf: Vec::with_capacity(limit + 4096),
            samples: 0,
            timestamp_ms,
            limit,
        }
    }

    /// The uncompressed WriteRequest so far, and its samples; the encoder starts a new one.
    pub fn take_raw(&mut self) -> (Vec<u8>, u64) {
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(self.limit + 4096));
        (buf, std::mem::take(&mut self.samples))
    }

    /// The next request body: the WriteRequest so far, snappy-compressed.
    pub fn take(&mut self) -> Result<Chunk, snap::Error> {
        let (raw, samples) = self.take_raw();
        let body = snap::raw::Encoder::new().compress_vec(&raw)?;
        Ok(Chunk {
            body: Bytes::from(body),
            samples,
        })
    }
}

fn label_size(name: &str, value: &str) -> usize {
    pb::string_size(1, name) + pb::string_size(2, value)
}

fn sample_size(value: f64, timestamp_ms: i64) -> usize {
    let value = if value.to_bits() == 0 {
        0
    } else {
        pb::fixed64_size(1)
    };
    value + pb::int64_size(2, timestamp_ms)
}

impl SampleSink for Encoder {
    fn sample(&mut self, _family: &Family, s: &Sample<'_>) -> bool {
        let mut labels: Vec<(&str, &str)> =
            s.labels.iter().filter(|(_, v)| !v.is_empty()).collect();
        labels.sort_unstable_by_key(|l| l.0);
        // `__name__` sorts among the others by bytes (before every lower-case name).
        let name_at = labels.partition_point(|l| l.0 < "__name__");
        let value = s.value.as_f64();
        let mut series_len = pb::len_size(1, label_size("__name__", s.name));
        for (k, v) in &labels {
            series_len += pb::len_size(1, label_size(k, v));
        }
        let sample_len = sample_size(value, self.timestamp_ms);
        series_len += pb::len_size(2, sample_len);

        let buf = &mut self.buf;
        pb::len_prefix(buf, 1, series_len);
        let write_label = |buf: &mut Vec<u8>, k: &str, v: &str| {
            pb::len_prefix(buf, 1, label_size(k, v));
            pb::string(buf, 1, k);
            pb::string(buf, 2, v);
        };
        for (n, (k, v)) in labels.iter().enumerate() {
            if n == name_at {
                write_label(buf, "__name__", s.name);
            }
            write_label(buf, k, v);
        }
        if name_at == labels.len() {
            write_label(buf, "__name__", s.name);
        }
        pb::len_prefix(buf, 2, sample_len);
        if value.to_bits() != 0 {
            pb::double(buf, 1, value);
        }
        pb::int64(buf, 2, self.timestamp_ms);
        self.samples += 1;
        self.buf.len() >= self.limit
    }
}

#[cfg(test)]
pub(crate) mod tests;
