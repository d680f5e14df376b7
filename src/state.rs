//! What the collectors publish and the HTTP handlers read.
//!
//! Collectors call [`ExporterState::publish`] at the end of each cycle; it replaces that
//! cluster's view and renders the exposition once, compressed ([`Rendered`]). Handlers
//! only clone an `Arc` of it and read small status fields: they never wait on Kafka, and
//! never on a render.
//!
//! Locking: `inner` (views and status) is held only to update one cluster or to clone the
//! views (a few small structs; the reports are `Arc`s). The render runs with no lock that an
//! endpoint takes: renders are serialized by `render_serial`, which no endpoint touches, and
//! the result is swapped into `rendered` (held only for the swap or an `Arc` clone). A
//! generation number makes sure an older render never replaces a newer one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

pub use crate::collect::Coverage;
use crate::config::Granularity;
use crate::ha::Ownership;
use crate::lag::LagReport;

mod ownership;
use crate::metrics::{self, ClientStats, ClusterView, ExportStats};

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
    /// Groups and topics seen, and what the filters kept.
    pub coverage: Coverage,
    /// Authorization failures, one line per denied resource with the ACL that fixes it.
    pub denied: Vec<String>,
}

impl CycleHealth {
    /// A cycle where everything was read from these brokers.
    pub fn complete(brokers: impl IntoIterator<Item = i32>) -> Self {
        CycleHealth {
            brokers: brokers.into_iter().map(|n| (n, None)).collect(),
            errors: Vec::new(),
            complete: true,
            coverage: Coverage::default(),
            denied: Vec::new(),
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
    /// When the last cycle that published finished (monotonic, for the staleness check).
    pub last_success_at: Option<std::time::Instant>,
    /// The same, on the wall clock, for the status page.
    pub last_success_wall: Option<SystemTime>,
    /// Groups of the last published report, by group type (`classic`, `consumer`, ...).
    pub group_types: BTreeMap<String, u64>,
    /// Groups and topics the last published cycle saw, and what the filters kept.
    pub coverage: Coverage,
    /// Partitions of the last published report, and the series of its lag families.
    pub partitions: usize,
    pub series: usize,
    /// Authorization failures of the last published cycle (see [`CycleHealth::denied`]).
    pub denied: Vec<String>,
    /// The last failed cycle's error and when it failed; kept after the cluster recovers.
    pub last_failure: Option<(SystemTime, String)>,
}

/// The rendered exposition in both formats, compressed.
pub type Rendered = metrics::Compressed;

struct Inner {
    views: BTreeMap<String, ClusterView>,
    status: BTreeMap<String, ClusterStatus>,
    /// With `[exporter.leadership]`: each cluster's last report as published (before
    /// [`Ownership::filter`]) and what this replica owns of it (see `ownership.rs`).
    raw: BTreeMap<String, Arc<LagReport>>,
    ownership: BTreeMap<String, Ownership>,
    /// Bumped by every publish: a render of generation n shows every publish up to n.
    generation: u64,
}

/// The exposition currently served, the status it was rendered with, and the generation.
/// `/ready` and `/` read the status from here, so an endpoint never reports a cycle whose
/// series `/metrics` does not serve yet.
struct Published {
    generation: u64,
    rendered: Arc<Rendered>,
    status: Arc<BTreeMap<String, ClusterStatus>>,
}

/// Called in the middle of every render (tests only): lets a test hold a render open and
/// prove that the endpoints answer meanwhile.
#[cfg(test)]
pub(crate) type RenderHook = Arc<dyn Fn() + Send + Sync>;

/// Shared between collectors and HTTP handlers.
pub struct ExporterState {
    granularity: Granularity,
    /// After this long without a cycle that published, a cluster's series are dropped.
    staleness: Mutex<Option<Duration>>,
    /// Short critical sections only; never held across a render.
    inner: Mutex<Inner>,
    /// Serializes renders (so two clusters publishing at once do not hold two expositions
    /// in the making). Taken by publishers only, never by an endpoint.
    render_serial: Mutex<()>,
    /// The push exporters' counters, rendered with every cycle.
    exports: Mutex<Vec<Arc<ExportStats>>>,
    /// Held only to swap or clone the `Arc`.
    rendered: RwLock<Published>,
    /// This replica's name in the coordination groups, with `[exporter.leadership]`.
    identity: Mutex<Option<String>>,
    #[cfg(test)]
    render_hook: Mutex<Option<RenderHook>>,
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
            inner: Mutex::new(Inner {
                views,
                status,
                raw: BTreeMap::new(),
                ownership: BTreeMap::new(),
                generation: 1,
            }),
            identity: Mutex::new(None),
            render_serial: Mutex::new(()),
            exports: Mutex::new(Vec::new()),
            rendered: RwLock::new(Published {
                generation: 0,
                rendered: Arc::new(Rendered::default()),
                status: Arc::default(),
            }),
            #[cfg(test)]
            render_hook: Mutex::new(None),
        });
        state.render();
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
        if self.update(cluster, outcome, duration) {
            self.render();
        }
    }

    /// Apply a cycle's outcome to the views and status, under the short lock. False for an
    /// unknown cluster (nothing changed).
    fn update(&self, cluster: &str, outcome: CycleOutcome, duration: Duration) -> bool {
        let mut inner = self.lock();
        let Inner {
            views,
            status,
            raw,
            ownership,
            generation,
        } = &mut *inner;
        let (Some(view), Some(st)) = (views.get_mut(cluster), status.get_mut(cluster)) else {
            return false;
        };
        *generation += 1;
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
                st.last_success_wall = Some(SystemTime::now());
                view.poll_time = Some(poll_time);
                view.compaction_detected_total = view
                    .compaction_detected_total
                    .saturating_add(report.compaction_partitions);
                view.data_loss_total = view
                    .data_loss_total
                    .saturating_add(report.data_loss_partitions);
                let report = match ownership.get(cluster) {
                    Some(own) => {
                        raw.insert(cluster.to_owned(), report.clone());
                        let report = Arc::new(own.filter(&report));
                        ownership::describe(view, own, &report);
                        report
                    }
                    None => report,
                };
                st.group_types = report.group_type_counts();
                st.coverage = health.coverage;
                st.denied = health.denied;
                st.partitions = if report.partition_series {
                    report.partitions.len()
                } else {
                    0
                };
                st.series = metrics::lag_series(&report, self.granularity);
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
                    raw.remove(cluster);
                }
                st.last_failure = Some((SystemTime::now(), error.clone()));
                st.last_error = Some(error);
                st.cycles_failed += 1;
            }
        }
        true
    }

    /// Replace the client counters of `cluster`; they are rendered with the next
    /// [`publish`](Self::publish).
    pub fn update_client_stats(&self, cluster: &str, stats: ClientStats) {
        if let Some(view) = self.lock().views.get_mut(cluster) {
            view.client = stats;
        }
    }

    /// Render `stats` with every cycle from now on (a push exporter's counters).
    pub fn add_export_stats(&self, stats: Arc<ExportStats>) {
        self.exports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(stats);
    }

    /// Render what has been published so far and swap it in, unless a newer render is
    /// already served. No endpoint waits on this: see the module comment.
    fn render(&self) {
        let _serial = self.render_serial.lock().unwrap_or_else(|p| p.into_inner());
        // Cloned after taking `render_serial`, so this render includes every publish that
        // came before it, and a publish that waited here while another render ran finds its
        // update already served and skips its own render.
        let (generation, views, status) = {
            let inner = self.lock();
            let views: Vec<ClusterView> = inner.views.values().cloned().collect();
            (inner.generation, views, Arc::new(inner.status.clone()))
        };
        if generation <= self.published().0 {
            return;
        }
        let exports: Vec<metrics::ExportCounters> = self
            .exports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| s.snapshot())
            .collect();
        let rendered =
            metrics::render_compressed(&views, &exports, self.granularity, metrics::GZIP_LEVEL);
        #[cfg(test)]
        if let Some(hook) = self
            .render_hook
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            hook();
        }
        drop(views);
        let rendered = match rendered {
            Ok(r) => Arc::new(r),
            Err(e) => {
                // Not expected (tidemark compresses its own text in memory). The last
                // exposition, and the status that goes with it, stay served.
                tracing::error!(error = %e, "the exposition could not be rendered");
                return;
            }
        };
        let old = {
            let mut published = self.rendered.write().unwrap_or_else(|p| p.into_inner());
            if generation <= published.generation {
                // Cannot happen while renders are serialized; kept so that it stays true
                // if they ever are not.
                return;
            }
            published.generation = generation;
            published.status = status;
            std::mem::replace(&mut published.rendered, rendered)
        };
        // Freed here (unless a scrape still holds it), outside the lock.
        drop(old);
    }

    /// The generation and exposition served now.
    fn published(&self) -> (u64, Arc<Rendered>) {
        let p = self.rendered.read().unwrap_or_else(|p| p.into_inner());
        (p.generation, p.rendered.clone())
    }

    /// The last rendered exposition.
    pub fn rendered(&self) -> Arc<Rendered> {
        self.published().1
    }

    #[cfg(test)]
    pub(crate) fn set_render_hook(&self, hook: Option<RenderHook>) {
        *self.render_hook.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Ready once every cluster has completed one successful cycle and `/metrics` serves it;
    /// with `[exporter.leadership]`, once this replica owns work and every cluster it owns
    /// work of has (a pure standby is never ready).
    pub fn ready(&self) -> bool {
        let status = self.served_status();
        match self.owning() {
            None => status.values().all(|s| s.cycles_ok > 0),
            Some(owned) => {
                !owned.is_empty()
                    && owned
                        .iter()
                        .all(|c| status.get(c).is_some_and(|s| s.cycles_ok > 0))
            }
        }
    }

    /// Status of every cluster, by name, as of the exposition served now.
    pub fn status(&self) -> BTreeMap<String, ClusterStatus> {
        self.served_status().as_ref().clone()
    }

    fn served_status(&self) -> Arc<BTreeMap<String, ClusterStatus>> {
        let p = self.rendered.read().unwrap_or_else(|p| p.into_inner());
        p.status.clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::Format;
    use std::sync::mpsc;

    fn prometheus_text(r: &Arc<Rendered>) -> String {
        String::from_utf8(r.to_text(Format::Prometheus).expect("inflated")).expect("UTF-8")
    }

    fn ok() -> CycleOutcome {
        CycleOutcome::Success {
            report: Arc::default(),
            poll_time: Duration::ZERO,
            health: CycleHealth::complete([1]),
        }
    }

    /// A hook that holds the first render until `release` is sent, after telling
    /// `entered`; later renders pass.
    pub(crate) fn latch() -> (RenderHook, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let first = Mutex::new(Some((entered_tx, release_rx)));
        let hook: RenderHook = Arc::new(move || {
            let taken = first.lock().ok().and_then(|mut f| f.take());
            if let Some((entered, release)) = taken {
                let _ = entered.send(());
                // Bounded, so a broken test fails instead of hanging.
                let _ = release.recv_timeout(Duration::from_secs(30));
            }
        });
        (hook, entered, release)
    }

    #[test]
    fn a_cluster_failing_past_the_staleness_threshold_drops_its_series() {
        let report = LagReport {
            cluster: "a".into(),
            partitions: vec![crate::lag::PartitionOffsets {
                tp: crate::kafka::TopicPartition::new("t", 0),
                low: 0,
                high: 7,
                read_at_ms: 0,
            }],
            ..LagReport::default()
        };
        let outcome = CycleOutcome::Success {
            report: Arc::new(report),
            poll_time: Duration::ZERO,
            health: CycleHealth::complete([1]),
        };
        let failed = || CycleOutcome::Failure {
            error: "no broker answered".into(),
        };
        let text = |s: &ExporterState| {
            String::from_utf8(s.rendered().to_text(Format::OpenMetrics).expect("inflated"))
                .expect("UTF-8")
        };
        let series =
            "kafka_partition_latest_offset{cluster_name=\"a\",topic=\"t\",partition=\"0\"} 7";
        let s = ExporterState::new(&[("a".to_string(), Vec::new())], Granularity::Partition);
        s.set_staleness(Duration::from_millis(50));
        s.publish("a", outcome, Duration::ZERO);
        // A failure within the threshold keeps the last values.
        s.publish("a", failed(), Duration::ZERO);
        assert!(text(&s).contains(series), "{}", text(&s));
        std::thread::sleep(Duration::from_millis(80));
        s.publish("a", failed(), Duration::ZERO);
        assert!(
            !text(&s).contains("kafka_partition_latest_offset{"),
            "{}",
            text(&s)
        );
        assert!(
            text(&s).contains("tidemark_cluster_up{cluster_name=\"a\"} 0"),
            "{}",
            text(&s)
        );
    }

    #[test]
    fn readers_do_not_wait_on_a_render() {
        let s = ExporterState::new(&[("a".into(), vec![])], Granularity::Partition);
        let (hook, entered, release) = latch();
        s.set_render_hook(Some(hook));
        let publisher = {
            let s = s.clone();
            std::thread::spawn(move || s.publish("a", ok(), Duration::from_millis(3500)))
        };
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the render started");
        // The render is held open: every reader must still answer.
        let (tx, rx) = mpsc::channel();
        {
            let s = s.clone();
            std::thread::spawn(move || {
                let _ = tx.send((s.ready(), s.status()["a"].cycles_ok, s.rendered()));
            });
        }
        let (ready, cycles_ok, rendered) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("readers answered while a render was running");
        // Neither the exposition nor the status it goes with is served yet: /ready and /
        // never report a cycle whose series /metrics does not have.
        assert!(!ready);
        assert_eq!(cycles_ok, 0);
        let text = prometheus_text(&rendered);
        assert!(!text.contains("3.5"), "{text}");
        release.send(()).expect("release");
        publisher.join().expect("publisher");
        assert!(s.ready());
        assert_eq!(s.status()["a"].cycles_ok, 1);
        let text = prometheus_text(&s.rendered());
        assert!(
            text.contains("kafka_lag_exporter_scrape_duration_seconds{cluster_name=\"a\"} 3.5"),
            "{text}"
        );
    }

    #[test]
    fn a_publish_during_a_render_is_served_after_it() {
        let s = ExporterState::new(
            &[("a".into(), vec![]), ("b".into(), vec![])],
            Granularity::Partition,
        );
        let (hook, entered, release) = latch();
        s.set_render_hook(Some(hook));
        let first = {
            let s = s.clone();
            std::thread::spawn(move || s.publish("a", ok(), Duration::from_millis(3500)))
        };
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the render started");
        let second = {
            let s = s.clone();
            std::thread::spawn(move || {
                s.publish(
                    "b",
                    CycleOutcome::Failure {
                        error: "down".into(),
                    },
                    Duration::from_millis(7250),
                )
            })
        };
        // Give `b` time to update and queue behind the held render (not needed for
        // correctness: the assertion holds whichever order they take).
        std::thread::sleep(Duration::from_millis(50));
        release.send(()).expect("release");
        first.join().expect("first");
        second.join().expect("second");
        let text = prometheus_text(&s.rendered());
        for want in [
            "kafka_lag_exporter_scrape_duration_seconds{cluster_name=\"a\"} 3.5",
            "kafka_lag_exporter_scrape_duration_seconds{cluster_name=\"b\"} 7.25",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
        let (generation, _) = s.published();
        assert_eq!(generation, s.lock().generation);
    }
}
