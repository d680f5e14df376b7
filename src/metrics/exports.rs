//! The push exporters' own families (`tidemark_export_*`): counted by the push tasks
//! (`crate::export`) as they go, read at each render.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// One push exporter's counters, cumulative since start. Shared between its task (which
/// counts) and the state (which renders them with each cycle).
#[derive(Debug)]
pub struct ExportStats {
    exporter: &'static str,
    requests_ok: AtomicU64,
    requests_failed: AtomicU64,
    samples_sent: AtomicU64,
    samples_dropped: AtomicU64,
    /// Unix time in milliseconds of the last export whose every request succeeded; 0 for none.
    last_success_ms: AtomicU64,
}

/// The values of [`ExportStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportCounters {
    /// `otlp` or `remote_write`.
    pub exporter: &'static str,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub samples_sent: u64,
    pub samples_dropped: u64,
    pub last_success_ms: u64,
}

impl ExportStats {
    pub fn new(exporter: &'static str) -> Self {
        Self {
            exporter,
            requests_ok: AtomicU64::new(0),
            requests_failed: AtomicU64::new(0),
            samples_sent: AtomicU64::new(0),
            samples_dropped: AtomicU64::new(0),
            last_success_ms: AtomicU64::new(0),
        }
    }

    pub fn exporter(&self) -> &'static str {
        self.exporter
    }

    /// A request was answered with success, delivering `samples`.
    pub fn request_ok(&self, samples: u64) {
        self.requests_ok.fetch_add(1, Ordering::Relaxed);
        self.samples_sent.fetch_add(samples, Ordering::Relaxed);
    }

    pub fn request_failed(&self) {
        self.requests_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Samples given up on: their export was replaced by a newer one before it was sent.
    pub fn dropped(&self, samples: u64) {
        self.samples_dropped.fetch_add(samples, Ordering::Relaxed);
    }

    /// A whole export was delivered at `unix_ms`.
    pub fn export_done(&self, unix_ms: u64) {
        self.last_success_ms.store(unix_ms, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ExportCounters {
        ExportCounters {
            exporter: self.exporter,
            requests_ok: self.requests_ok.load(Ordering::Relaxed),
            requests_failed: self.requests_failed.load(Ordering::Relaxed),
            samples_sent: self.samples_sent.load(Ordering::Relaxed),
            samples_dropped: self.samples_dropped.load(Ordering::Relaxed),
            last_success_ms: self.last_success_ms.load(Ordering::Relaxed),
        }
    }
}

type Labels<'a> = Vec<(&'static str, Cow<'a, str>)>;

fn labels(c: &ExportCounters) -> Labels<'_> {
    vec![("exporter", Cow::Borrowed(c.exporter))]
}

/// The `tidemark_export_*` families, one series set per enabled exporter (none when no
/// exporter is enabled).
pub(super) fn encode(
    exports: &[ExportCounters],
    encoder: &mut DescriptorEncoder<'_>,
) -> std::fmt::Result {
    if exports.is_empty() {
        return Ok(());
    }
    {
        let mut enc = encoder.encode_descriptor(
            "tidemark_export_requests",
            "Push requests (OTLP Export calls, remote write POSTs), by exporter and result: success, or failure (connection error, timeout, an error status).",
            None,
            MetricType::Counter,
        )?;
        for c in exports {
            for (result, n) in [("success", c.requests_ok), ("failure", c.requests_failed)] {
                let mut l = labels(c);
                l.push(("result", Cow::Borrowed(result)));
                ConstCounter::new(n).encode(enc.encode_family(&l)?)?;
            }
        }
    }
    type Count = fn(&ExportCounters) -> u64;
    let counters: [(&str, &str, Count); 2] = [
        (
            "tidemark_export_samples",
            "Samples delivered by the push exporter (acknowledged by the receiver).",
            |c| c.samples_sent,
        ),
        (
            "tidemark_export_samples_dropped",
            "Samples never delivered: their export was replaced by a newer one while the receiver failed or was unreachable (only the latest export is kept).",
            |c| c.samples_dropped,
        ),
    ];
    for (name, help, value) in counters {
        let mut enc = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for c in exports {
            ConstCounter::new(value(c)).encode(enc.encode_family(&labels(c))?)?;
        }
    }
    let mut enc = encoder.encode_descriptor(
        "tidemark_export_last_success_timestamp_seconds",
        "Unix time of the last export the receiver acknowledged whole; 0 before the first.",
        None,
        MetricType::Gauge,
    )?;
    for c in exports {
        let seconds = c.last_success_ms as f64 / 1000.0;
        ConstGauge::new(seconds).encode(enc.encode_family(&labels(c))?)?;
    }
    Ok(())
}
