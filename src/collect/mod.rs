//! Collection: one task per cluster, one cycle per poll interval.
//!
//! A failed cycle keeps the last good report (its series stay, `up` turns 0) and is retried
//! with exponential backoff capped at the poll interval. Each cluster has its own task and
//! its own connections, so a dead or slow cluster never delays another.

mod cache;
mod carry;
mod compaction;
mod coverage;
mod cycle;
mod denied;
mod groups;
mod issues;
mod lifecycle;
mod phases;

pub use cache::TimestampCache;
pub use cycle::{
    failure_reason, Coverage, CycleError, CycleIssues, CycleState, COMPACTION_REFRESH,
};
pub use phases::CyclePhases;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::config::{ClusterSettings, ExporterConfig};
use crate::kafka::{ClientConfig, Cluster, ConnectionConfig, ResponseBudget};
use crate::lag;
use crate::metrics::ClientStats;
use crate::state::{CycleHealth, CycleOutcome, ExporterState};

/// First retry delay after a failed cycle; doubles up to the poll interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The wire-client settings of one cluster; its connections share `budget` with every
/// other cluster given the same one.
pub fn client_config(
    settings: &ClusterSettings,
    exporter: &ExporterConfig,
    budget: &ResponseBudget,
) -> ClientConfig {
    let timeout = settings
        .client
        .request_timeout
        .unwrap_or(exporter.performance.kafka_timeout);
    ClientConfig {
        bootstrap_servers: settings.bootstrap_servers.clone(),
        connection: ConnectionConfig {
            client_id: settings
                .client
                .client_id
                .clone()
                .unwrap_or_else(|| "tidemark".to_string()),
            connect_timeout: timeout.min(Duration::from_secs(10)),
            request_timeout: timeout,
            security: settings.security.clone(),
            budget: budget.clone(),
            ..ConnectionConfig::default()
        },
        ..ClientConfig::default()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// With `[exporter.leadership]`: what the collector of a cluster reads from its member
/// task, and tells it.
pub struct Coordinated {
    /// What this replica owns of the cluster; nothing is collected while it owns nothing.
    pub ownership: watch::Receiver<Arc<crate::ha::Ownership>>,
    /// Groups each cycle listed (owned or not), for the sharding decision.
    pub groups_seen: watch::Sender<u32>,
}

/// The cycle state of `settings`' cluster, configured from `exporter` (timestamp sampling,
/// offset-fetch timeout, Fetch budget, staleness).
pub fn cycle_state(settings: Arc<ClusterSettings>, exporter: &ExporterConfig) -> CycleState {
    let mut cycle = CycleState::new(
        settings,
        exporter.timestamp_sampling.enabled,
        exporter.performance.offset_fetch_timeout,
    );
    cycle.fetch_requests_per_broker = exporter.timestamp_sampling.fetch_requests_per_broker;
    cycle.staleness = exporter.staleness();
    if exporter.status.enabled {
        let rules = exporter.status.rules(exporter.poll_interval);
        cycle.status = Some(lag::StatusWindow::new(rules));
    }
    cycle
}

/// Collect `settings`' cluster until `shutdown` turns true; its responses are held within
/// `budget` (the process's, shared by every cluster). With `coordinated`, only what this
/// replica owns, and only while it owns anything.
pub async fn run_cluster(
    settings: Arc<ClusterSettings>,
    exporter: Arc<ExporterConfig>,
    budget: ResponseBudget,
    state: Arc<ExporterState>,
    mut coordinated: Option<Coordinated>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = settings.name.clone();
    let poll_interval = exporter.poll_interval;
    let mut cycle = cycle_state(settings.clone(), &exporter);
    let mut cluster: Option<Cluster> = None;
    let mut retry = FIRST_RETRY;
    let mut lifecycle = lifecycle::Lifecycle::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Some(link) = coordinated.as_mut() {
            let owned = match wait_for_work(link, &mut shutdown).await {
                Some(owned) => owned,
                None => return,
            };
            cycle.owned = Some(owned);
        }
        let started = Instant::now();
        let result = tokio::select! {
            r = one_cycle(&mut cluster, &mut cycle, &settings, &exporter, &budget) => r,
            _ = shutdown.changed() => return,
        };
        let duration = started.elapsed();
        if let Some(link) = &coordinated {
            let seen = u32::try_from(cycle.listed_groups).unwrap_or(u32::MAX);
            link.groups_seen
                .send_if_modified(|n| std::mem::replace(n, seen) != seen);
        }
        let stats = client_stats(cluster.as_ref(), &cycle);
        let wait = match result {
            Ok((report, poll_time, health)) => {
                tracing::debug!(cluster = %name, ?duration, groups = report.groups.len(), complete = health.complete, "cycle done");
                lifecycle.log_published(&name, &report, &health.coverage, duration);
                publish(
                    &state,
                    &name,
                    CycleOutcome::Success {
                        report,
                        poll_time,
                        health,
                    },
                    duration,
                    stats,
                )
                .await;
                retry = FIRST_RETRY;
                poll_interval.saturating_sub(duration)
            }
            Err(e) => {
                tracing::warn!(cluster = %name, error = %e, retry_in = ?retry, "cycle failed");
                lifecycle.failed();
                publish(
                    &state,
                    &name,
                    CycleOutcome::Failure {
                        error: e.to_string(),
                    },
                    duration,
                    stats,
                )
                .await;
                let wait = retry.min(poll_interval);
                retry = retry.saturating_mul(2).min(poll_interval);
                wait
            }
        };
        if !idle(wait, coordinated.as_mut(), &mut shutdown).await {
            return;
        }
    }
}

/// Wait `wait` before the next cycle; false at shutdown. A new assignment ends the wait:
/// what was just taken over is served after one cycle, not one poll interval.
async fn idle(
    wait: Duration,
    coordinated: Option<&mut Coordinated>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let reassigned = async {
        match coordinated {
            Some(link) => {
                let _ = link.ownership.changed().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        () = reassigned => true,
        _ = shutdown.changed() => false,
    }
}

/// Wait until this replica owns anything of the cluster; `None` at shutdown.
async fn wait_for_work(
    link: &mut Coordinated,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Arc<crate::ha::Ownership>> {
    loop {
        let owned = link.ownership.borrow_and_update().clone();
        if owned.any() {
            return Some(owned);
        }
        tokio::select! {
            r = link.ownership.changed() => {
                if r.is_err() {
                    return None;
                }
            }
            _ = shutdown.changed() => return None,
        }
    }
}

/// One cycle of `settings`' cluster: connects when `cluster` holds no connection yet (and
/// keeps it there for the next cycle), reads a snapshot with `cycle`, and computes its
/// report at the time the cycle finished, lending the last report's values (marked stale)
/// to what could not be read. The exporter's cycles and `tidemark lag` both run this.
/// Per-partition rows are kept when `exporter.granularity` is `partition`.
pub async fn one_cycle(
    cluster: &mut Option<Cluster>,
    cycle: &mut CycleState,
    settings: &ClusterSettings,
    exporter: &ExporterConfig,
    budget: &ResponseBudget,
) -> Result<(Arc<lag::LagReport>, Duration, CycleHealth), CycleError> {
    let kafka = match cluster.take() {
        Some(kafka) => kafka,
        None => Cluster::connect(client_config(settings, exporter, budget))
            .await
            .map_err(CycleError::Connect)?,
    };
    let kafka = cluster.insert(kafka);
    let (snapshot, issues) = cycle.run(kafka).await?;
    if !issues.is_complete() {
        tracing::info!(cluster = %settings.name, brokers_failed = ?issues.brokers_failed, groups_without_offsets = issues.groups_without_offsets, groups_undescribed = issues.groups_undescribed, committed_partitions_failed = issues.committed_partitions_failed, partitions_without_watermarks = issues.partitions_without_watermarks, timestamps_failed = issues.timestamps_failed, "cycle finished with failures; what could not be read keeps its last values");
    }
    let poll_time = snapshot.poll_time;
    // Lag is computed against the time the cycle finished. Per-partition rows are kept
    // only when they are exposed.
    let rows = exporter.granularity == crate::config::Granularity::Partition;
    let now = now_ms();
    let oldest_ms =
        now.saturating_sub(i64::try_from(cycle.staleness.as_millis()).unwrap_or(i64::MAX));
    let previous = cycle.previous.take();
    let carry = previous.as_deref().map(|previous| lag::Carry {
        previous,
        oldest_ms,
    });
    // The status window needs every row even when only group aggregates are exposed.
    let with_rows = rows || cycle.status.is_some();
    let mut report = lag::compute_for(snapshot, now, with_rows, carry);
    drop(previous);
    if let Some(window) = cycle.status.as_mut() {
        report.status = window.observe(&report, now);
        if !rows {
            report.drop_rows();
            report.status.partitions = Vec::new();
        }
    }
    let report = Arc::new(report);
    cycle.previous = Some(report.clone());
    let health = CycleHealth {
        complete: issues.is_complete(),
        brokers: kafka
            .metadata()
            .brokers
            .keys()
            .map(|n| (*n, issues.brokers_failed.get(n).cloned()))
            .collect(),
        errors: issues.errors,
        coverage: cycle.coverage(),
        denied: issues.denied.lines(&cycle.bootstrap()),
    };
    Ok((report, poll_time, health))
}

/// The client's request, byte and timestamp counters of a cluster, for the metrics.
pub fn client_stats(cluster: Option<&Cluster>, cycle: &CycleState) -> ClientStats {
    let mut stats = ClientStats::default();
    if let Some(cluster) = cluster {
        for (node, counters) in cluster.counters() {
            for api in kafka_protocol::messages::ApiKey::iter() {
                let (requests, errors) = (counters.requests(api), counters.errors(api));
                if requests > 0 || errors > 0 {
                    stats.requests.push((node, api, requests, errors));
                    stats
                        .request_durations
                        .push((node, api, counters.durations(api)));
                }
            }
            stats.bytes_received.push((node, counters.bytes_received()));
        }
    }
    let (hits, misses) = cycle.timestamps.stats();
    stats.timestamp_cache_hits = hits;
    stats.timestamp_cache_misses = misses;
    let totals = cycle.sample_totals();
    stats.timestamp_samples_fetched = totals.fetched;
    stats.timestamp_fetch_bytes = totals.bytes;
    stats.timestamp_samples_deferred = totals.deferred;
    stats.timestamp_samples_failed = totals.failed.into_iter().collect();
    stats.collection_errors = totals.item_errors.into_iter().collect();
    stats.authorization_failures = totals
        .denied
        .into_iter()
        .map(|(acl, n)| (acl.resource_type, acl.operation, n))
        .collect();
    stats
}

async fn publish(
    state: &Arc<ExporterState>,
    cluster: &str,
    outcome: CycleOutcome,
    duration: Duration,
    stats: ClientStats,
) {
    let state = state.clone();
    let cluster = cluster.to_string();
    // Rendering is CPU-bound and proportional to the series count: keep it off the workers.
    let done = tokio::task::spawn_blocking(move || {
        state.update_client_stats(&cluster, stats);
        state.publish(&cluster, outcome, duration)
    })
    .await;
    if let Err(e) = done {
        tracing::error!(error = %e, "publishing metrics failed");
    }
}
