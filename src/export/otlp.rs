//! OTLP metrics: `ExportMetricsServiceRequest`, one `ResourceMetrics`
//! (`service.name=tidemark`) with one `ScopeMetrics` (scope `tidemark`), cut into requests
//! of at most [`CHUNK_BYTES`].
//!
//! ```text
//! ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
//! ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
//! Resource        { repeated KeyValue attributes = 1; }
//! ScopeMetrics    { InstrumentationScope scope = 1; repeated Metric metrics = 2; }
//! InstrumentationScope { string name = 1; }
//! Metric          { string name = 1; string description = 2; Gauge gauge = 5; Sum sum = 7; }
//! Gauge           { repeated NumberDataPoint data_points = 1; }
//! Sum             { repeated NumberDataPoint data_points = 1;
//!                   AggregationTemporality aggregation_temporality = 2; bool is_monotonic = 3; }
//! NumberDataPoint { fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
//!                   oneof { double as_double = 4; sfixed64 as_int = 6; }
//!                   repeated KeyValue attributes = 7; }
//! KeyValue        { string key = 1; AnyValue value = 2; }   AnyValue { string string_value = 1; }
//! ```
//!
//! Each run of samples with the same name is one `Metric` named as the sample (so
//! `x_total`, as klag-exporter names its counters): gauges as `Gauge`, counters and the
//! `_bucket`/`_sum`/`_count` series of histograms as monotonic cumulative `Sum`s (start
//! time: when tidemark started), labels as string attributes, integers as `as_int`. Fields
//! are written in field-number order, as protobuf's own encoders do.

use bytes::Bytes;

use super::pb;
use super::samples::{Family, Kind, Labels, Sample, SampleSink, Value};
use super::Chunk;

/// Protobuf bytes of one request before it is cut.
pub const CHUNK_BYTES: usize = 2 << 20;

/// `AGGREGATION_TEMPORALITY_CUMULATIVE`.
const CUMULATIVE: u64 = 2;

/// The metric being filled: its name, description and whether it is a `Sum`.
struct Current {
    name: String,
    help: String,
    sum: bool,
}

/// Builds ExportMetricsServiceRequests from samples, one chunk at a time.
pub struct Encoder {
    /// Whole `Metric` fields (of ScopeMetrics) of this chunk.
    metrics: Vec<u8>,
    /// `data_points` fields of the current metric.
    points: Vec<u8>,
    current: Option<Current>,
    samples: u64,
    time_ns: u64,
    start_ns: u64,
    limit: usize,
    /// The 5-byte gRPC message prefix in front of each request.
    grpc: bool,
}

impl Encoder {
    pub fn new(time_ns: u64, start_ns: u64, limit: usize, grpc: bool) -> Self {
        Encoder {
            metrics: Vec::with_capacity(limit + 4096),
            points: Vec::new(),
            current: None,
            samples: 0,
            time_ns,
            start_ns,
            limit,
            grpc,
        }
    }

    /// Close the current metric into `metrics`.
    fn close_metric(&mut self) {
        let Some(c) = &self.current else {
            return;
        };
        if self.points.is_empty() {
            return;
        }
        let data_len = if c.sum {
            self.points.len() + pb::uint_size(2, CUMULATIVE) + pb::uint_size(3, 1)
        } else {
            self.points.len()
        };
        let data_field = if c.sum { 7 } else { 5 };
        let metric_len = pb::string_size(1, &c.name)
            + pb::string_size(2, &c.help)
            + pb::len_size(data_field, data_len);
        let m = &mut self.metrics;
        pb::len_prefix(m, 2, metric_len);
        pb::string(m, 1, &c.name);
        pb::string(m, 2, &c.help);
        pb::len_prefix(m, data_field, data_len);
        m.extend_from_slice(&self.points);
        if c.sum {
            pb::uint(m, 2, CUMULATIVE);
            pb::uint(m, 3, 1);
        }
        self.points.clear();
    }

    /// The next request body and its samples; the encoder starts a new request, the
    /// current metric continuing in it.
    pub fn take(&mut self) -> Chunk {
        self.close_metric();
        let scope = pb::string_size(1, "tidemark");
        let scope_metrics_len = pb::len_size(1, scope) + self.metrics.len();
        let resource = resource_len();
        let rm_len = pb::len_size(1, resource) + pb::len_size(2, scope_metrics_len);
        let request_len = pb::len_size(1, rm_len);
        let mut out = Vec::with_capacity(request_len + 5);
        if self.grpc {
            // Not compressed, then the message length, big-endian.
            out.push(0);
            out.extend_from_slice(&u32::try_from(request_len).unwrap_or(u32::MAX).to_be_bytes());
        }
        pb::len_prefix(&mut out, 1, rm_len);
        pb::len_prefix(&mut out, 1, resource);
        write_key_value(&mut out, 1, "service.name", "tidemark");
        pb::len_prefix(&mut out, 2, scope_metrics_len);
        pb::len_prefix(&mut out, 1, scope);
        pb::string(&mut out, 1, "tidemark");
        out.extend_from_slice(&self.metrics);
        self.metrics.clear();
        Chunk {
            body: Bytes::from(out),
            samples: std::mem::take(&mut self.samples),
        }
    }

    fn point(&mut self, labels: &Labels, value: Value, sum: bool) {
        let value_len = pb::fixed64_size(4);
        let mut attrs_len = 0;
        for (k, v) in labels.iter() {
            attrs_len += pb::len_size(7, key_value_len(k, v));
        }
        let start = if sum { pb::fixed64_size(2) } else { 0 };
        let len = start + pb::fixed64_size(3) + value_len + attrs_len;
        let p = &mut self.points;
        pb::len_prefix(p, 1, len);
        if sum {
            pb::fixed64(p, 2, self.start_ns);
        }
        pb::fixed64(p, 3, self.time_ns);
        match value {
            Value::Int(v) => pb::fixed64(p, 6, v as u64),
            Value::Float(v) => pb::double(p, 4, v),
        }
        for (k, v) in labels.iter() {
            write_key_value(p, 7, k, v);
        }
    }
}

fn any_value_len(v: &str) -> usize {
    // A oneof member is written even when empty.
    pb::len_size(1, v.len())
}

fn key_value_len(k: &str, v: &str) -> usize {
    pb::string_size(1, k) + pb::len_size(2, any_value_len(v))
}

fn write_key_value(buf: &mut Vec<u8>, field: u32, k: &str, v: &str) {
    pb::len_prefix(buf, field, key_value_len(k, v));
    pb::string(buf, 1, k);
    pb::len_prefix(buf, 2, any_value_len(v));
    pb::len_prefix(buf, 1, v.len());
    buf.extend_from_slice(v.as_bytes());
}

fn resource_len() -> usize {
    pb::len_size(1, key_value_len("service.name", "tidemark"))
}

impl SampleSink for Encoder {
    fn sample(&mut self, family: &Family, s: &Sample<'_>) -> bool {
        let sum = family.kind != Kind::Gauge;
        let same = self
            .current
            .as_ref()
            .is_some_and(|c| c.name == s.name && c.sum == sum);
        if !same {
            self.close_metric();
            self.current = Some(Current {
                name: s.name.to_owned(),
                help: family.help.clone(),
                sum,
            });
        }
        self.point(s.labels, s.value, sum);
        self.samples += 1;
        self.metrics.len() + self.points.len() >= self.limit
    }
}

#[cfg(test)]
mod tests;
