//! One collection cycle of one cluster: groups → descriptions → committed offsets →
//! watermarks → timestamps → [`ClusterSnapshot`].
//!
//! Committed offsets are read before watermarks, so a high watermark is never older than
//! the offsets it is compared with and lag cannot come out negative from a race.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ClusterSettings;
use crate::kafka::{
    Cluster, FetchStats, KafkaError, TimestampQuery, TimestampResult, TopicPartition, Watermarks,
};
use crate::lag::{ClusterSnapshot, GroupPartition, GroupSnapshot, GroupState, Member};

use super::cache::TimestampCache;

/// How often topic configs (cleanup.policy) are re-read.
pub const COMPACTION_REFRESH: Duration = Duration::from_secs(3600);

/// How long after a failed topic-config read it is tried again.
pub const CONFIG_RETRY: Duration = Duration::from_secs(300);

/// Why a cycle failed as a whole (item-level failures are logged and skipped).
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error("cannot reach the cluster: {0}")]
    Connect(#[source] KafkaError),
    #[error("listing consumer groups failed: {0}")]
    ListGroups(#[source] KafkaError),
    #[error("reading metadata failed: {0}")]
    Metadata(#[source] KafkaError),
    #[error("reading committed offsets timed out after {0:?}")]
    OffsetTimeout(Duration),
}

/// Counts of what went wrong with single items in a cycle (the cycle still succeeded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CycleIssues {
    pub groups_without_offsets: usize,
    pub groups_undescribed: usize,
    pub partitions_without_watermarks: usize,
    pub timestamps_failed: usize,
}

/// Per-cluster state that survives cycles.
pub struct CycleState {
    pub settings: Arc<ClusterSettings>,
    pub sampling: bool,
    pub offset_fetch_timeout: Duration,
    /// Fetch requests per broker per cycle for time-lag samples.
    pub fetch_requests_per_broker: u32,
    pub timestamps: TimestampCache,
    compacted: Option<CompactionCache>,
    last_fetch: FetchStats,
    /// Samples the last cycle's Fetch budget left out: first in line this cycle.
    deferred: HashSet<(TopicPartition, i64)>,
    totals: SampleTotals,
}

/// Time-lag samples since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleTotals {
    /// Samples read from Fetch responses.
    pub fetched: u64,
    /// Record bytes fetched for them.
    pub bytes: u64,
    /// Samples left for a later cycle when the Fetch budget ran out (counted each cycle).
    pub deferred: u64,
}

/// Topic cleanup policies as last read.
struct CompactionCache {
    /// Read again after this (or as soon as an unknown topic shows up).
    valid_until: Instant,
    /// Topics whose cleanup.policy contains "compact".
    compacted: BTreeSet<Arc<str>>,
    /// Every topic the read covered.
    known: HashSet<Arc<str>>,
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
            compacted: None,
            last_fetch: FetchStats::default(),
            deferred: HashSet::new(),
            totals: SampleTotals::default(),
        }
    }

    /// What the last cycle fetched for time-lag samples (empty when everything was cached).
    pub fn last_fetch(&self) -> &FetchStats {
        &self.last_fetch
    }

    /// Time-lag samples fetched, their bytes, and samples deferred, since start.
    pub fn sample_totals(&self) -> SampleTotals {
        self.totals
    }

    /// Samples the last cycle left for the next one.
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// Run one cycle against `cluster`. A failed cycle clears the timestamp cache: the
    /// cluster may come back rebuilt, with other records at the same offsets.
    pub async fn run(
        &mut self,
        cluster: &Cluster,
    ) -> Result<(ClusterSnapshot, CycleIssues), CycleError> {
        let result = self.collect(cluster).await;
        if result.is_err() {
            self.timestamps.clear();
        }
        result
    }

    async fn collect(
        &mut self,
        cluster: &Cluster,
    ) -> Result<(ClusterSnapshot, CycleIssues), CycleError> {
        let mut issues = CycleIssues::default();
        let poll_started = Instant::now();
        self.last_fetch = FetchStats::default();

        let groups: Vec<String> = cluster
            .list_groups()
            .await
            .map_err(CycleError::ListGroups)?
            .into_iter()
            .map(|g| g.group_id)
            .filter(|g| self.settings.group_allowed(g))
            .collect();

        // Coordinators first (cached after the first cycle): DescribeGroups and OffsetFetch
        // below run concurrently and would otherwise each look the new groups up.
        if !groups.is_empty() {
            cluster.find_coordinators(&groups).await;
        }
        let (described, offsets) = tokio::join!(cluster.describe_groups(&groups), async {
            tokio::time::timeout(
                self.offset_fetch_timeout,
                cluster.committed_offsets(&groups),
            )
            .await
        });
        let mut offsets =
            offsets.map_err(|_| CycleError::OffsetTimeout(self.offset_fetch_timeout))?;
        let mut described = described;

        // The snapshot is built before the watermarks are read, each group's answers dropped
        // as it goes: at 100,000 group partitions, the answers held through ListOffsets
        // were the cycle's largest moment.
        let mut snapshot_groups = Vec::with_capacity(groups.len());
        for group in &groups {
            let committed = match offsets.remove(group) {
                Some(Ok(o)) => Some(o),
                Some(Err(e)) => {
                    issues.groups_without_offsets += 1;
                    tracing::warn!(cluster = %self.settings.name, %group, error = %e, "no committed offsets");
                    None
                }
                None => None,
            };
            let (state, owners) = match described.remove(group) {
                Some(Ok(d)) => (GroupState::parse(&d.state), owners(&d)),
                Some(Err(e)) => {
                    issues.groups_undescribed += 1;
                    tracing::warn!(cluster = %self.settings.name, %group, error = %e, "describe failed");
                    (GroupState::Unknown, HashMap::new())
                }
                None => (GroupState::Unknown, HashMap::new()),
            };
            let partitions = committed
                .iter()
                .flat_map(|c| c.offsets.iter())
                .filter(|(_, offset)| **offset >= 0)
                .map(|(tp, offset)| GroupPartition {
                    tp: tp.clone(),
                    committed: *offset,
                    member: owners.get(tp).cloned(),
                    record: None,
                })
                .collect();
            snapshot_groups.push(GroupSnapshot {
                group: Arc::from(group.as_str()),
                state,
                offsets_known: committed.is_some(),
                partitions,
            });
        }
        drop((offsets, described));

        // Watermarks after committed offsets (see the module docs).
        let meta = cluster
            .refresh_metadata()
            .await
            .map_err(CycleError::Metadata)?;
        let monitored: Vec<TopicPartition> = meta
            .partitions()
            .filter(|tp| self.settings.topic_allowed(&tp.topic))
            .collect();
        let mut watermarks: BTreeMap<TopicPartition, Watermarks> = BTreeMap::new();
        for (tp, w) in cluster.watermarks(&monitored).await {
            match w {
                Ok(w) => {
                    watermarks.insert(tp, w);
                }
                Err(e) => {
                    issues.partitions_without_watermarks += 1;
                    tracing::warn!(cluster = %self.settings.name, partition = %tp, error = %e, "no watermarks");
                }
            }
        }
        drop(monitored);
        let poll_time = poll_started.elapsed();
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
            self.sample_timestamps(
                cluster,
                &mut snapshot_groups,
                &watermarks,
                &topic_ids,
                &mut issues,
            )
            .await;
        }
        let compacted_topics = self.compacted_topics(cluster, &watermarks).await;

        let snapshot = ClusterSnapshot {
            cluster: self.settings.name.clone(),
            watermarks,
            groups: snapshot_groups,
            compacted_topics,
            poll_time,
        };
        Ok((snapshot, issues))
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
        watermarks: &BTreeMap<TopicPartition, Watermarks>,
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
                Some(rec) => gp.record = Some(rec),
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
            let cluster_name = &self.settings.name;
            let stats = cluster
                .record_timestamps_each(wanted, query, |tp, offset, answer| match answer {
                    Ok(TimestampResult::Found(rec)) => {
                        if let Some(w) = watermarks.get(tp) {
                            let topic_id = topic_ids.get(&tp.topic).copied().unwrap_or_default();
                            cache.insert(tp, offset, rec, topic_id, *w);
                        }
                    }
                    Ok(TimestampResult::EndOfLog) => {}
                    Ok(TimestampResult::Deferred) => {
                        deferred.insert((tp.clone(), offset));
                    }
                    Err(e) => {
                        issues.timestamps_failed += 1;
                        tracing::warn!(cluster = %cluster_name, partition = %tp, offset, error = %e, "no timestamp");
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
                if gp.record.is_some() {
                    continue;
                }
                if let Some(w) = watermarks.get(&gp.tp).filter(|w| gp.committed < w.high) {
                    gp.record = self.timestamps.peek(&gp.tp, gp.committed, w.low);
                }
            }
        }
        self.timestamps.end_cycle();
    }

    /// Topics whose cleanup.policy contains "compact"; re-read hourly and for new topics.
    async fn compacted_topics(
        &mut self,
        cluster: &Cluster,
        watermarks: &BTreeMap<TopicPartition, Watermarks>,
    ) -> BTreeSet<Arc<str>> {
        let topics: BTreeSet<Arc<str>> = watermarks.keys().map(|tp| tp.topic.clone()).collect();
        let now = Instant::now();
        let fresh = self
            .compacted
            .as_ref()
            .is_some_and(|c| now < c.valid_until && topics.iter().all(|t| c.known.contains(t)));
        if !fresh && !topics.is_empty() {
            let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
            match cluster
                .topic_configs(&names, Some(&["cleanup.policy"]))
                .await
            {
                Ok(configs) => {
                    let compacted = topics
                        .iter()
                        .filter(|t| {
                            configs
                                .get(&***t)
                                .and_then(|r| r.as_ref().ok())
                                .and_then(|c| c.get("cleanup.policy"))
                                .is_some_and(|p| p.contains("compact"))
                        })
                        .cloned()
                        .collect();
                    self.compacted = Some(CompactionCache {
                        valid_until: now + COMPACTION_REFRESH,
                        compacted,
                        known: topics.iter().cloned().collect(),
                    });
                }
                Err(e) => {
                    // Keep the last known flags and do not ask again every cycle: a broker
                    // that rejects the request is asked again after a while.
                    tracing::warn!(
                        cluster = %self.settings.name,
                        error = %e,
                        retry_in = ?CONFIG_RETRY,
                        "reading topic configs (cleanup.policy) failed; compaction flags keep their last known values"
                    );
                    let last = self.compacted.take();
                    let mut known: HashSet<Arc<str>> = topics.iter().cloned().collect();
                    let mut compacted = BTreeSet::new();
                    if let Some(last) = last {
                        known.extend(last.known);
                        compacted = last.compacted;
                    }
                    self.compacted = Some(CompactionCache {
                        valid_until: now + CONFIG_RETRY,
                        compacted,
                        known,
                    });
                }
            }
        }
        self.compacted
            .as_ref()
            .map(|c| c.compacted.intersection(&topics).cloned().collect())
            .unwrap_or_default()
    }
}

/// Which member owns each partition, from DescribeGroups assignments.
fn owners(d: &crate::kafka::GroupDescription) -> HashMap<TopicPartition, Arc<Member>> {
    let mut map = HashMap::new();
    for m in &d.members {
        let member = Arc::new(Member {
            host: m.client_host.clone(),
            consumer_id: m.member_id.clone(),
            client_id: m.client_id.clone(),
        });
        for tp in &m.assignment {
            map.insert(tp.clone(), member.clone());
        }
    }
    map
}
