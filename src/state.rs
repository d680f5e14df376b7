//! What the collectors publish and the HTTP handlers read.
//!
//! Collectors call [`ExporterState::publish`] at the end of each cycle; it replaces that
//! cluster's view and renders the exposition once. Handlers only clone the rendered bytes
//! and read small status fields: they never wait on Kafka.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::config::Granularity;
use crate::lag::LagReport;
use crate::metrics::{self, ClientStats, ClusterView};

/// The result of one cycle, as published.
#[derive(Clone, Debug)]
pub enum CycleOutcome {
    Success {
        report: Arc<LagReport>,
        poll_time: Duration,
        health: CycleHealth,
    },
    Failure {
        error: String,
    },
}

/// What failed in a cycle that published.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CycleHealth {
    /// Every broker of the cycle's metadata, with its last failure if it had one.
    pub brokers: Vec<(i32, Option<String>)>,
    /// Item errors (the first few; the log has them all).
    pub errors: Vec<String>,
    /// True when nothing failed.
    pub complete: bool,
}

impl CycleHealth {
    /// A cycle where everything was read from these brokers.
    pub fn complete(brokers: impl IntoIterator<Item = i32>) -> Self {
        CycleHealth {
            brokers: brokers.into_iter().map(|n| (n, None)).collect(),
            errors: Vec::new(),
            complete: true,
        }
    }
}

/// Status of one cluster for `/ready` and `/`.
#[derive(Clone, Debug, Default)]
pub struct ClusterStatus {
    pub last_cycle_at: Option<SystemTime>,
    pub last_cycle_duration: Option<Duration>,
    pub last_error: Option<String>,
    pub cycles_ok: u64,
    pub cycles_failed: u64,
    /// The last cycle published but some brokers or items failed.
    pub partial: bool,
    /// What failed in the last cycle: brokers (node id → error) and item errors.
    pub broker_errors: Vec<(i32, String)>,
    pub item_errors: Vec<String>,
    /// When the last cycle that published finished.
    pub last_success_at: Option<std::time::Instant>,
}

/// The rendered exposition in both formats.
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    /// OpenMetrics text.
    pub openmetrics: Bytes,
    /// Prometheus text (0.0.4) as chunks, mostly slices of `openmetrics`
    /// ([`metrics::prometheus_chunks`]).
    pub prometheus: Vec<Bytes>,
}

impl Rendered {
    /// Length of the Prometheus text.
    pub fn prometheus_len(&self) -> usize {
        self.prometheus.iter().map(Bytes::len).sum()
    }

    /// The Prometheus text in one buffer (a copy: for tools and tests).
    pub fn prometheus_text(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prometheus_len());
        for c in &self.prometheus {
            out.extend_from_slice(c);
        }
        out
    }
}

struct Inner {
    views: BTreeMap<String, ClusterView>,
    status: BTreeMap<String, ClusterStatus>,
}

/// Shared between collectors and HTTP handlers.
pub struct ExporterState {
    granularity: Granularity,
    /// After this long without a cycle that published, a cluster's series are dropped.
    staleness: Mutex<Option<Duration>>,
    inner: Mutex<Inner>,
    rendered: RwLock<Arc<Rendered>>,
}

impl ExporterState {
    /// State for the configured clusters (name, custom labels), none collected yet.
    pub fn new(
        clusters: &[(String, Vec<(String, String)>)],
        granularity: Granularity,
    ) -> Arc<Self> {
        let views: BTreeMap<String, ClusterView> = clusters
            .iter()
            .map(|(name, labels)| {
                let view = ClusterView {
                    name: name.clone(),
                    labels: labels.clone(),
                    ..ClusterView::default()
                };
                (name.clone(), view)
            })
            .collect();
        let status = clusters
            .iter()
            .map(|(name, _)| (name.clone(), ClusterStatus::default()))
            .collect();
        let state = Arc::new(Self {
            granularity,
            staleness: Mutex::new(None),
            inner: Mutex::new(Inner { views, status }),
            rendered: RwLock::new(Arc::new(Rendered::default())),
        });
        state.render_locked(&state.lock());
        state
    }

    /// Drop a cluster's series once no cycle has published for `staleness`
    /// (klag-exporter's `staleness_threshold`), so a dead cluster shows a gap, not a frozen
    /// snapshot. Unset: kept until the next success.
    pub fn set_staleness(&self, staleness: Duration) {
        *self.staleness.lock().unwrap_or_else(|p| p.into_inner()) = Some(staleness);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record the outcome of a cycle of `cluster` and re-render the exposition.
    ///
    /// Rendering is CPU work proportional to the series count: call this from a blocking
    /// context for large clusters (the collector uses `spawn_blocking`).
    pub fn publish(&self, cluster: &str, outcome: CycleOutcome, duration: Duration) {
        let mut inner = self.lock();
        let Inner { views, status } = &mut *inner;
        let (Some(view), Some(st)) = (views.get_mut(cluster), status.get_mut(cluster)) else {
            return;
        };
        view.cycle_duration = Some(duration);
        view.cycle_histogram.observe(duration);
        st.last_cycle_at = Some(SystemTime::now());
        st.last_cycle_duration = Some(duration);
        match outcome {
            CycleOutcome::Success {
                report,
                poll_time,
                health,
            } => {
                view.up = health.complete;
                view.partial = !health.complete;
                view.brokers = health
                    .brokers
                    .iter()
                    .map(|(n, e)| (*n, e.is_none()))
                    .collect();
                st.partial = !health.complete;
                st.broker_errors = health
                    .brokers
                    .into_iter()
                    .filter_map(|(n, e)| Some((n, e?)))
                    .collect();
                st.item_errors = health.errors;
                st.last_success_at = Some(std::time::Instant::now());
                view.poll_time = Some(poll_time);
                view.compaction_detected_total = view
                    .compaction_detected_total
                    .saturating_add(report.compaction_partitions);
                view.data_loss_total = view
                    .data_loss_total
                    .saturating_add(report.data_loss_partitions);
                view.report = Some(report);
                st.last_error = None;
                st.cycles_ok += 1;
            }
            CycleOutcome::Failure { error } => {
                // The last good report stays, its series keep their last values, until
                // the staleness threshold: then the cluster shows a gap instead.
                view.up = false;
                view.partial = false;
                for b in &mut view.brokers {
                    b.1 = false;
                }
                st.partial = false;
                let staleness = *self.staleness.lock().unwrap_or_else(|p| p.into_inner());
                let expired = match (staleness, st.last_success_at) {
                    (Some(limit), Some(at)) => at.elapsed() > limit,
                    _ => false,
                };
                if expired && view.report.is_some() {
                    tracing::warn!(%cluster, "no cycle published for longer than staleness_threshold: the cluster's series are dropped until it answers again");
                    view.report = None;
                }
                st.last_error = Some(error);
                st.cycles_failed += 1;
            }
        }
        self.render_locked(&inner);
    }

    /// Replace the client counters of `cluster`; they are rendered with the next
    /// [`publish`](Self::publish).
    pub fn update_client_stats(&self, cluster: &str, stats: ClientStats) {
        if let Some(view) = self.lock().views.get_mut(cluster) {
            view.client = stats;
        }
    }

    fn render_locked(&self, inner: &Inner) {
        let views: Vec<ClusterView> = inner.views.values().cloned().collect();
        // Sized after the last render (or an estimate before the first), so a large
        // exposition is not grown by doubling.
        let last = self.rendered().openmetrics.len();
        let hint = if last > 4096 {
            last + last / 16
        } else {
            metrics::estimate_size(&views, self.granularity)
        };
        let openmetrics = metrics::render_sized(&views, self.granularity, hint + 4096);
        let openmetrics = Bytes::from(openmetrics);
        let prometheus = metrics::prometheus_chunks(&openmetrics);
        let rendered = Arc::new(Rendered {
            openmetrics,
            prometheus,
        });
        let old = std::mem::replace(
            &mut *self.rendered.write().unwrap_or_else(|p| p.into_inner()),
            rendered,
        );
        // Freed here (unless a scrape still holds it), outside the lock.
        drop(old);
    }

    /// The last rendered exposition.
    pub fn rendered(&self) -> Arc<Rendered> {
        self.rendered
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Ready once every cluster has completed one successful cycle.
    pub fn ready(&self) -> bool {
        self.lock().status.values().all(|s| s.cycles_ok > 0)
    }

    /// Status of every cluster, by name.
    pub fn status(&self) -> BTreeMap<String, ClusterStatus> {
        self.lock().status.clone()
    }
}
