//! Which topics are compacted: their cleanup.policy, read with DescribeConfigs hourly and
//! whenever a topic not read before shows up.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::denied::Denials;
use crate::kafka::Cluster;
use crate::model::PartitionWatermarks;

/// How often topic configs (cleanup.policy) are re-read.
pub const COMPACTION_REFRESH: Duration = Duration::from_secs(3600);

/// How long after a failed topic-config read it is tried again.
pub const CONFIG_RETRY: Duration = Duration::from_secs(300);

/// Topic cleanup policies as last read (none before the first read).
#[derive(Default)]
pub(super) struct CompactionFlags {
    last: Option<PolicyRead>,
}

struct PolicyRead {
    /// Read again after this (or as soon as an unknown topic shows up).
    valid_until: Instant,
    /// Topics whose cleanup.policy contains "compact".
    compacted: BTreeSet<Arc<str>>,
    /// Every topic the read covered.
    known: HashSet<Arc<str>>,
}

impl CompactionFlags {
    /// The topics of `watermarks` whose cleanup.policy contains "compact", read again when
    /// due.
    pub(super) async fn topics(
        &mut self,
        cluster: &Cluster,
        watermarks: &PartitionWatermarks,
        cluster_name: &str,
        denied: &mut Denials,
    ) -> BTreeSet<Arc<str>> {
        let topics: BTreeSet<Arc<str>> = watermarks.keys().map(|tp| tp.topic.clone()).collect();
        let now = Instant::now();
        let fresh = self
            .last
            .as_ref()
            .is_some_and(|c| now < c.valid_until && topics.iter().all(|t| c.known.contains(t)));
        if !fresh && !topics.is_empty() {
            let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
            match cluster
                .topic_configs(&names, Some(&["cleanup.policy"]))
                .await
            {
                Ok(configs) => {
                    // A topic without DescribeConfigs counts as not compacted; the denial
                    // is reported (once per hourly read).
                    for (topic, config) in &configs {
                        if let Err(e) = config {
                            denied.note(e, topic);
                        }
                    }
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
                    self.last = Some(PolicyRead {
                        valid_until: now + COMPACTION_REFRESH,
                        compacted,
                        known: topics.iter().cloned().collect(),
                    });
                }
                Err(e) => {
                    // Keep the last known flags and do not ask again every cycle: a broker
                    // that rejects the request is asked again after a while.
                    tracing::warn!(
                        cluster = cluster_name,
                        error = %e,
                        retry_in = ?CONFIG_RETRY,
                        "reading topic configs (cleanup.policy) failed; compaction flags keep their last known values"
                    );
                    let last = self.last.take();
                    let mut known: HashSet<Arc<str>> = topics.iter().cloned().collect();
                    let mut compacted = BTreeSet::new();
                    if let Some(last) = last {
                        known.extend(last.known);
                        compacted = last.compacted;
                    }
                    self.last = Some(PolicyRead {
                        valid_until: now + CONFIG_RETRY,
                        compacted,
                        known,
                    });
                }
            }
        }
        self.last
            .as_ref()
            .map(|c| c.compacted.intersection(&topics).cloned().collect())
            .unwrap_or_default()
    }
}
