//! One collection cycle of one cluster → [`ClusterSnapshot`]:
//!
//! ```text
//! Metadata → ListGroups → FindCoordinator ─┬─ OffsetFetch → ListOffsets → Fetch ─┬─ DescribeConfigs
//!                                          └─ DescribeGroups ────────────────────┘
//! ```
//!
//! (OffsetFetch stands for the offsets of every group type: share groups' start offsets come
//! from DescribeShareGroupOffsets, alongside; DescribeGroups for the descriptions of every
//! type: ConsumerGroupDescribe and ShareGroupDescribe too, see `groups::describe`.)
//!
//! Only DescribeGroups runs alongside: states and member labels never enter the lag, so
//! they may arrive at any time before the snapshot is finished. Every other step waits for
//! the one before it, for these reasons:
//!
//! - Metadata before ListGroups: ListGroups goes to the brokers the cluster has now (a new
//!   broker's groups would be missed for a cycle, a departed one asked in vain), and
//!   connections to brokers that left or moved are closed before anything is sent.
//! - ListGroups, FindCoordinator, then OffsetFetch: each needs the answer before it (the
//!   group names, then their coordinators).
//! - Committed offsets before watermarks, all of them: a high watermark read before the
//!   committed offset it is compared with could be older than it, and lag would come out
//!   negative or understated from a race. Any group may have committed on any partition,
//!   so no ListOffsets is sent before every OffsetFetch is answered.
//! - Fetch after both: it asks for the records at committed offsets below the high
//!   watermark.
//! - DescribeConfigs last, alone: it asks about the topics that have watermarks, and it is
//!   the request a broker may refuse by closing the connection (the test broker does, for
//!   a request that names configuration keys), which would fail every request in flight
//!   on that connection.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ClusterSettings;
use crate::kafka::error::Acl;
use crate::kafka::{
    Cluster, FetchStats, GroupListing, KafkaError, TimestampQuery, TimestampResult, TopicPartition,
    Watermarks,
};
use crate::lag::{ClusterSnapshot, GroupSnapshot, LagReport, PartitionWatermarks, Sample};

use super::cache::TimestampCache;
use super::carry::{last_watermarks, EarlierRows};
use super::compaction::CompactionFlags;
pub use super::compaction::COMPACTION_REFRESH;
pub use super::coverage::Coverage;
use super::groups;
pub use super::issues::{failure_reason, CycleIssues};
use super::phases::{timed, CyclePhases};

/// Why a cycle failed as a whole (item-level failures are logged and skipped).
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error("cannot reach the cluster: {0}")]
    Connect(#[source] KafkaError),
    #[error("listing consumer groups failed: {0}")]
    ListGroups(#[source] KafkaError),
    #[error("reading metadata failed: {0}")]
    Metadata(#[source] KafkaError),
}

/// Per-cluster state that survives cycles.
pub struct CycleState {
    pub settings: Arc<ClusterSettings>,
    pub sampling: bool,
    pub offset_fetch_timeout: Duration,
    /// Fetch requests per broker per cycle for time-lag samples.
    pub fetch_requests_per_broker: u32,
    pub timestamps: TimestampCache,
    compaction: CompactionFlags,
    last_fetch: FetchStats,
    /// Samples the last cycle's Fetch budget left out: first in line this cycle.
    deferred: HashSet<(TopicPartition, i64)>,
    totals: SampleTotals,
    /// How long values that could not be read again are carried over.
    pub staleness: Duration,
    /// The last report published: what groups and partitions not read this cycle carry.
    pub previous: Option<Arc<LagReport>>,
    /// The status windows of the cluster's group partitions (`[exporter.status]`); None
    /// when disabled.
    pub status: Option<crate::lag::StatusWindow>,
    /// The broker that listed each group last time: a group not listed this cycle is gone
    /// only when that broker answered.
    listed_by: HashMap<Arc<str>, (i32, GroupListing)>,
    cluster_id: Option<String>,
    last_phases: CyclePhases,
    coverage: Coverage,
    /// With `[exporter.leadership]`: what this replica owns of the cluster (only its groups
    /// are read). `None`: everything.
    pub owned: Option<Arc<crate::ha::Ownership>>,
    /// Groups the last cycle's listing allowed, owned or not (for the sharding decision).
    pub listed_groups: usize,
}

/// Time-lag samples since start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SampleTotals {
    /// Samples read from Fetch responses.
    pub fetched: u64,
    /// Record bytes fetched for them.
    pub bytes: u64,
    /// Samples left for a later cycle when the Fetch budget ran out (counted each cycle).
    pub deferred: u64,
    /// Samples not obtained, by reason (see [`failure_reason`]).
    pub failed: BTreeMap<&'static str, u64>,
    /// Items a cycle could not read, by kind (see [`CycleIssues::counts`]), since start.
    pub item_errors: BTreeMap<&'static str, u64>,
    /// Resources denied by a missing ACL, one per cycle and resource, since start.
    pub denied: BTreeMap<Acl, u64>,
}

impl CycleState {
    pub fn new(
        settings: Arc<ClusterSettings>,
        sampling: bool,
        offset_fetch_timeout: Duration,
    ) -> Self {
        Self {
            settings,
            sampling,
            offset_fetch_timeout,
            fetch_requests_per_broker: crate::config::TimestampSampling::default()
                .fetch_requests_per_broker,
            timestamps: TimestampCache::default(),
            compaction: CompactionFlags::default(),
            last_fetch: FetchStats::default(),
            deferred: HashSet::new(),
            totals: SampleTotals::default(),
            staleness: Duration::from_secs(90),
            previous: None,
            status: None,
            listed_by: HashMap::new(),
            cluster_id: None,
            last_phases: CyclePhases::default(),
            coverage: Coverage::default(),
            owned: None,
            listed_groups: 0,
        }
    }

    /// What the last cycle fetched for time-lag samples (empty when everything was cached).
    pub fn last_fetch(&self) -> &FetchStats {
        &self.last_fetch
    }

    /// Time-lag samples fetched, their bytes, and samples deferred, since start.
    pub fn sample_totals(&self) -> SampleTotals {
        self.totals.clone()
    }

    /// The groups and topics the last successful cycle saw, and what the filters kept.
    pub fn coverage(&self) -> Coverage {
        self.coverage
    }

    /// Where the last successful cycle's wall time went.
    pub fn last_phases(&self) -> CyclePhases {
        self.last_phases
    }

    /// Samples the last cycle left for the next one.
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// Run one cycle against `cluster`. A failed cycle keeps the timestamp cache: entries
    /// are dropped only on evidence about their partition (another topic id, watermarks
    /// going backwards) or their cluster (another cluster id).
    pub async fn run(
        &mut self,
        cluster: &Cluster,
    ) -> Result<(ClusterSnapshot, CycleIssues), CycleError> {
        let result = self.collect(cluster).await;
        if let Ok((_, issues)) = &result {
            for (kind, n) in issues.counts() {
                if n > 0 {
                    *self.totals.item_errors.entry(kind).or_default() += n as u64;
                }
            }
            issues.denied.log(&self.settings.name, &self.bootstrap());
            for (acl, n) in issues.denied.counts() {
                *self.totals.denied.entry(acl).or_default() += n;
            }
        }
        result
    }

    /// The first bootstrap server, for the `kafka-acls` lines of authorization failures.
    pub fn bootstrap(&self) -> String {
        self.settings
            .bootstrap_servers
            .first()
            .cloned()
            .unwrap_or_default()
    }

    async fn collect(
        &mut self,
        cluster: &Cluster,
    ) -> Result<(ClusterSnapshot, CycleIssues), CycleError> {
        let mut issues = CycleIssues::default();
        let mut phases = CyclePhases::default();
        let poll_started = Instant::now();
        self.last_fetch = FetchStats::default();
        let oldest_ms = super::now_ms()
            .saturating_sub(i64::try_from(self.staleness.as_millis()).unwrap_or(i64::MAX));

        // Fresh metadata first: ListGroups goes to the brokers the cluster has now, and
        // connections to brokers that left (or moved) are closed.
        cluster.begin_cycle();
        let (meta, took) = timed(cluster.refresh_metadata()).await;
        phases.metadata = took;
        let meta = meta.map_err(CycleError::Metadata)?;
        if meta.cluster_id.is_some() && self.cluster_id != meta.cluster_id {
            if self.cluster_id.is_some() {
                tracing::warn!(cluster = %self.settings.name, "the cluster id changed: timestamps cached for the old cluster are dropped");
                self.timestamps.clear();
            }
            self.cluster_id = meta.cluster_id.clone();
        }
        self.coverage.count_topics(&meta, &self.settings);
        let ((), took) = timed(cluster.retain_listed_brokers()).await;
        phases.metadata += took;

        let started = Instant::now();
        let listed = self.groups_to_read(cluster, &mut issues).await;
        phases.list_groups = started.elapsed();
        let groups: Vec<String> = listed.iter().map(|g| g.group_id.clone()).collect();
        // Coordinators first (cached after the first cycle): DescribeGroups and OffsetFetch
        // below run concurrently and would otherwise each look the new groups up.
        if !groups.is_empty() {
            let (_, took) = timed(cluster.find_coordinators(&groups)).await;
            phases.coordinators = took;
        }

        // Descriptions alongside the chain below (see the module docs), each group by its
        // type. They are held until the chain ends: only what the snapshot keeps of them.
        let describe = timed(groups::describe(cluster, &listed));
        let reads = self.read_offsets_and_partitions(
            cluster,
            &listed,
            &meta,
            oldest_ms,
            &mut issues,
            &mut phases,
        );
        let ((described, took), reads) = tokio::join!(describe, reads);
        phases.describe = took;
        let PartitionReads {
            groups: mut snapshot_groups,
            watermarks,
            carried_watermarks,
            watermarks_read,
        } = reads;
        // As before the overlap: from the start of the cycle to the last watermark.
        let poll_time = watermarks_read.saturating_duration_since(poll_started);
        let previous = self.previous.clone();
        let earlier = previous.as_deref().map(|r| EarlierRows::new(r, oldest_ms));
        groups::apply_descriptions(
            &self.settings.name,
            &mut snapshot_groups,
            described,
            earlier.as_ref(),
            &mut issues,
        );
        drop(earlier);

        let started = Instant::now();
        let compacted_topics = self
            .compaction
            .topics(
                cluster,
                &watermarks,
                &self.settings.name,
                &mut issues.denied,
            )
            .await;
        phases.configs = started.elapsed();
        issues.brokers_failed = cluster
            .broker_failures()
            .into_iter()
            .map(|(node, e)| (node, e.to_string()))
            .collect();

        let snapshot = ClusterSnapshot {
            cluster: self.settings.name.clone(),
            watermarks,
            groups: snapshot_groups,
            compacted_topics,
            poll_time,
            carried_watermarks,
        };
        phases.total = poll_started.elapsed();
        self.last_phases = phases;
        phases.log(&self.settings.name);
        Ok((snapshot, issues))
    }

    /// Committed offsets, then watermarks, then timestamps: the part of a cycle whose
    /// order lag depends on (see the module docs). The groups come back without states
    /// or member labels (`groups::apply_descriptions` adds them).
    async fn read_offsets_and_partitions(
        &mut self,
        cluster: &Cluster,
        groups: &[GroupListing],
        meta: &crate::kafka::Metadata,
        oldest_ms: i64,
        issues: &mut CycleIssues,
        phases: &mut CyclePhases,
    ) -> PartitionReads {
        let (offsets, took) = timed(tokio::time::timeout(
            self.offset_fetch_timeout,
            groups::read_offsets(cluster, groups),
        ))
        .await;
        phases.offsets = took;
        let offsets = offsets.unwrap_or_else(|_| {
            let e = format!(
                "reading committed offsets timed out after {:?}",
                self.offset_fetch_timeout
            );
            tracing::warn!(cluster = %self.settings.name, "{e}; every group keeps its last values");
            issues.note(|| e);
            HashMap::new()
        });
        // The snapshot is built before the watermarks are read, each group's answers dropped
        // as it goes: at 100,000 group partitions, the answers held through ListOffsets
        // were the cycle's largest moment.
        let started = Instant::now();
        let mut snapshot_groups = groups::assemble(&self.settings.name, groups, offsets, issues);
        phases.assemble = started.elapsed();

        // Watermarks after committed offsets (see the module docs).
        let started = Instant::now();
        let (watermarks, carried_watermarks) =
            self.read_watermarks(cluster, meta, oldest_ms, issues).await;
        phases.watermarks = started.elapsed();
        let watermarks_read = Instant::now();
        // Only partitions with watermarks have a lag.
        for g in &mut snapshot_groups {
            g.partitions.retain(|gp| watermarks.contains_key(&gp.tp));
        }

        if self.sampling {
            let topic_ids: HashMap<Arc<str>, [u8; 16]> = meta
                .topics
                .iter()
                .map(|(name, t)| (name.clone(), t.topic_id))
                .collect();
            let started = Instant::now();
            self.sample_timestamps(
                cluster,
                &mut snapshot_groups,
                &watermarks,
                &topic_ids,
                issues,
            )
            .await;
            phases.timestamps = started.elapsed();
        }
        PartitionReads {
            groups: snapshot_groups,
            watermarks,
            carried_watermarks,
            watermarks_read,
        }
    }

    /// Watermarks of every monitored partition; a partition whose leader could not answer
    /// keeps the last ones read (at or after `oldest_ms`), listed in the second map with
    /// when they were read.
    async fn read_watermarks(
        &self,
        cluster: &Cluster,
        meta: &crate::kafka::Metadata,
        oldest_ms: i64,
        issues: &mut CycleIssues,
    ) -> (PartitionWatermarks, BTreeMap<TopicPartition, i64>) {
        let monitored: Vec<TopicPartition> = meta
            .partitions()
            .filter(|tp| self.settings.topic_allowed(&tp.topic))
            .collect();
        let mut carried_watermarks = BTreeMap::new();
        let answers = cluster.watermarks_of(monitored).await;
        // Sorted answers become the sorted list in their own allocation (a smaller element
        // collected from a `Vec`'s iterator reuses it).
        let watermarks: Vec<(TopicPartition, Watermarks)> = answers
            .into_iter()
            .filter_map(|(tp, w)| match w {
                Ok(w) => Some((tp, w)),
                Err(e) => {
                    issues.partitions_without_watermarks += 1;
                    if !issues.denied.note(&e, &tp.topic) {
                        tracing::warn!(cluster = %self.settings.name, partition = %tp, error = %e, "no watermarks; the partition keeps its last values");
                    }
                    issues.note(|| format!("partition {tp}: watermarks: {e}"));
                    let previous = self.previous.as_deref();
                    let last = previous.and_then(|r| last_watermarks(r, &tp, oldest_ms))?;
                    carried_watermarks.insert(tp.clone(), last.read_at_ms);
                    Some((
                        tp,
                        Watermarks {
                            low: last.low,
                            high: last.high,
                        },
                    ))
                }
            })
            .collect();
        (
            PartitionWatermarks::from_sorted(watermarks),
            carried_watermarks,
        )
    }

    /// The groups to read this cycle, as listed: every allowed group a broker listed, and
    /// the groups the last cycle had whose listing broker could not answer now (they are
    /// read anyway, their coordinator may answer; otherwise they keep their last values).
    async fn groups_to_read(
        &mut self,
        cluster: &Cluster,
        issues: &mut CycleIssues,
    ) -> Vec<GroupListing> {
        let listed = cluster.list_groups_partial().await;
        for (node, e) in &listed.failed {
            if !issues.denied.note(e, super::denied::CLUSTER_RESOURCE) {
                tracing::warn!(cluster = %self.settings.name, node, error = %e, "listing groups failed on this broker; its groups keep their last values");
            }
            issues.note(|| format!("broker {node}: ListGroups: {e}"));
        }
        self.coverage
            .count_groups(listed.groups.iter().map(|(g, _)| g), &self.settings);
        let mut listed_by: HashMap<Arc<str>, (i32, GroupListing)> =
            HashMap::with_capacity(listed.groups.len());
        for (g, node) in listed.groups {
            // tidemark's own coordination groups (`[exporter.leadership]`) have no offsets
            // and are nobody's lag: never listed as consumer groups.
            if g.protocol_type != crate::ha::PROTOCOL_TYPE
                && self.settings.group_allowed(&g.group_id)
            {
                listed_by.insert(Arc::from(g.group_id.as_str()), (node, g));
            }
        }
        for (group, (node, g)) in self.listed_by.drain() {
            if listed.failed.contains_key(&node) {
                listed_by.entry(group).or_insert((node, g));
            }
        }
        self.listed_groups = listed_by.len();
        if let Some(owned) = &self.owned {
            listed_by.retain(|g, _| owned.group(g));
        }
        let mut groups: Vec<GroupListing> = listed_by.values().map(|(_, g)| g.clone()).collect();
        groups.sort_unstable_by(|a, b| a.group_id.cmp(&b.group_id));
        self.listed_by = listed_by;
        groups
    }

    /// Fill `record` for every lagging group partition: cache first, batched fetches for
    /// the rest within the cycle's budget; evict cache entries no group points at any more.
    ///
    /// Samples the budget leaves out have no time lag this cycle (never an estimate); they
    /// come first in the next one, so every sample is fetched within a few cycles however
    /// many there are.
    async fn sample_timestamps(
        &mut self,
        cluster: &Cluster,
        groups: &mut [GroupSnapshot],
        watermarks: &PartitionWatermarks,
        topic_ids: &HashMap<Arc<str>, [u8; 16]>,
        issues: &mut CycleIssues,
    ) {
        self.timestamps.start_cycle();
        for (tp, w) in watermarks {
            let topic_id = topic_ids.get(&tp.topic).copied().unwrap_or_default();
            self.timestamps.observe(tp, topic_id, *w);
        }
        // Every lagging (partition, committed offset) not cached, sorted and once.
        let mut wanted: Vec<(TopicPartition, i64)> = Vec::new();
        for gp in groups.iter_mut().flat_map(|g| g.partitions.iter_mut()) {
            let Some(w) = watermarks.get(&gp.tp) else {
                continue;
            };
            if gp.committed >= w.high {
                continue;
            }
            match self.timestamps.get(&gp.tp, gp.committed, w.low) {
                Some(rec) => gp.sample = Sample::of(rec, gp.committed),
                None => wanted.push((gp.tp.clone(), gp.committed)),
            }
        }
        let last_deferred = std::mem::take(&mut self.deferred);
        if !wanted.is_empty() {
            wanted.sort_unstable();
            wanted.dedup();
            // Left out last cycle: first in line (a stable sort keeps the order within).
            if !last_deferred.is_empty() {
                wanted.sort_by_cached_key(|t| !last_deferred.contains(t));
            }
            drop(last_deferred);
            let query = TimestampQuery {
                requests_per_leader: Some(self.fetch_requests_per_broker.max(1)),
                ..TimestampQuery::default()
            };
            let cache = &mut self.timestamps;
            let deferred = &mut self.deferred;
            let failed = &mut self.totals.failed;
            let cluster_name = &self.settings.name;
            // Answers valid for this cycle only: never cached.
            let mut uncached: HashMap<(TopicPartition, i64), Uncached> = HashMap::new();
            let stats = cluster
                .record_timestamps_each(wanted, query, |tp, offset, answer| match answer {
                    Ok(TimestampResult::Found(rec)) if !rec.verified => {
                        // From a batch too large to fetch whole: its CRC was not checked,
                        // so it is used this cycle and never cached.
                        uncached.insert((tp.clone(), offset), Uncached::Unverified(rec));
                    }
                    Ok(TimestampResult::Found(rec)) => {
                        if let Some(w) = watermarks.get(tp) {
                            let topic_id = topic_ids.get(&tp.topic).copied().unwrap_or_default();
                            cache.insert(tp, offset, rec, topic_id, *w);
                        }
                    }
                    Ok(TimestampResult::MarkersOnly) => {
                        // The high watermark moves on with the next record: not cached.
                        uncached.insert((tp.clone(), offset), Uncached::MarkersOnly);
                    }
                    Ok(TimestampResult::EndOfLog) => {}
                    Ok(TimestampResult::Untimed { offset: at }) => {
                        *failed.entry("no_timestamp").or_default() += 1;
                        tracing::debug!(cluster = %cluster_name, partition = %tp, offset, record = at, "the record carries no timestamp (message format v0): no time lag");
                    }
                    Ok(TimestampResult::Deferred) => {
                        deferred.insert((tp.clone(), offset));
                    }
                    Err(e) => {
                        let reason = failure_reason(&e);
                        *failed.entry(reason).or_default() += 1;
                        issues.timestamps_failed += 1;
                        if !issues.denied.note(&e, &tp.topic) {
                            tracing::warn!(cluster = %cluster_name, partition = %tp, offset, reason, error = %e, "no timestamp");
                        }
                        issues.note(|| format!("partition {tp}, offset {offset}: timestamp: {e}"));
                    }
                })
                .await;
            self.totals.fetched += stats.samples();
            self.totals.bytes += stats.record_bytes();
            self.totals.deferred += self.deferred.len() as u64;
            if !self.deferred.is_empty() {
                tracing::debug!(
                    cluster = %self.settings.name,
                    deferred = self.deferred.len(),
                    "fetch budget reached; the remaining time-lag samples come next cycle"
                );
            }
            self.last_fetch = stats;
            for gp in groups.iter_mut().flat_map(|g| g.partitions.iter_mut()) {
                if !gp.sample.is_none() {
                    continue;
                }
                if let Some(w) = watermarks.get(&gp.tp).filter(|w| gp.committed < w.high) {
                    if let Some(rec) = self.timestamps.peek(&gp.tp, gp.committed, w.low) {
                        gp.sample = Sample::of(rec, gp.committed);
                    }
                }
                if gp.sample.is_none() && !uncached.is_empty() {
                    match uncached.get(&(gp.tp.clone(), gp.committed)) {
                        Some(Uncached::MarkersOnly) => gp.sample = Sample::MarkersOnly,
                        Some(Uncached::Unverified(rec)) => {
                            gp.sample = Sample::of(*rec, gp.committed);
                        }
                        None => {}
                    }
                }
            }
        }
        // Groups whose offsets could not be read keep their last values, which point at
        // cached timestamps this cycle did not look up: evicting them would re-fetch every
        // sample once offsets answer again. The next cycle that reads them all evicts.
        if issues.groups_without_offsets == 0 && issues.committed_partitions_failed == 0 {
            self.timestamps.end_cycle();
        }
    }
}

/// What the chain of committed offsets, watermarks and timestamps read.
struct PartitionReads {
    groups: Vec<GroupSnapshot>,
    watermarks: PartitionWatermarks,
    carried_watermarks: BTreeMap<TopicPartition, i64>,
    /// When the last watermark was in.
    watermarks_read: Instant,
}

/// A time-lag answer used in its cycle only.
enum Uncached {
    MarkersOnly,
    /// From a batch too large to fetch whole, so its CRC could not be checked.
    Unverified(crate::kafka::records::RecordAt),
}
