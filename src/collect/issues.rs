//! What went wrong in a cycle: counted, kept for the status page, and named by reason.

use std::collections::BTreeMap;

use super::denied::Denials;
use crate::kafka::{KafkaError, KafkaErrorKind};

/// What went wrong in a cycle that still published: brokers that failed, and counts of
/// items that could not be read (their values are carried over or missing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CycleIssues {
    /// Brokers that failed a request this cycle, with the last error of each.
    pub brokers_failed: BTreeMap<i32, String>,
    pub groups_without_offsets: usize,
    pub groups_undescribed: usize,
    /// Partitions an OffsetFetch answered with an error code.
    pub committed_partitions_failed: usize,
    pub partitions_without_watermarks: usize,
    pub timestamps_failed: usize,
    /// The first few item errors, for the status page.
    pub errors: Vec<String>,
    /// Authorization failures, once per resource.
    pub denied: Denials,
}

/// Item errors kept per cycle for the status page (the log has them all).
const KEPT_ERRORS: usize = 20;

impl CycleIssues {
    /// Everything was read: no broker and no item failed.
    pub fn is_complete(&self) -> bool {
        self.brokers_failed.is_empty()
            && self.groups_without_offsets == 0
            && self.groups_undescribed == 0
            && self.committed_partitions_failed == 0
            && self.partitions_without_watermarks == 0
            && self.timestamps_failed == 0
    }

    /// The failures of this cycle by kind, as `tidemark_collection_errors_total` counts
    /// them.
    pub fn counts(&self) -> [(&'static str, usize); 6] {
        [
            ("broker", self.brokers_failed.len()),
            ("group_offsets", self.groups_without_offsets),
            ("group_description", self.groups_undescribed),
            ("committed_partition", self.committed_partitions_failed),
            ("watermarks", self.partitions_without_watermarks),
            ("timestamp", self.timestamps_failed),
        ]
    }

    pub(super) fn note(&mut self, error: impl FnOnce() -> String) {
        if self.errors.len() < KEPT_ERRORS {
            self.errors.push(error());
        }
    }
}

/// The `reason` label of `tidemark_timestamp_samples_failed_total` for a failed sample.
pub fn failure_reason(e: &KafkaError) -> &'static str {
    match e.kind() {
        KafkaErrorKind::Records { source, .. } if source.is_corruption() => "corrupt",
        KafkaErrorKind::Records { .. } => "undecodable",
        KafkaErrorKind::Decode { .. } => "undecodable",
        KafkaErrorKind::Broker { .. } => "broker_error",
        KafkaErrorKind::Unresolved(_) => "not_reached",
        _ => "unreachable",
    }
}
