//! Where a cycle's wall time goes: the duration of each of its phases.

use std::future::Future;
use std::time::{Duration, Instant};

/// Wall time of each phase of one cycle. DescribeGroups runs alongside the committed
/// offsets, watermarks and timestamps (see `cycle`), so the phases add up to more than
/// `total`, by up to `describe`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CyclePhases {
    /// Metadata, and closing connections to brokers it no longer lists.
    pub metadata: Duration,
    /// ListGroups on every broker.
    pub list_groups: Duration,
    /// FindCoordinator for groups whose coordinator is not cached.
    pub coordinators: Duration,
    /// OffsetFetch: committed offsets.
    pub offsets: Duration,
    /// DescribeGroups: states and members.
    pub describe: Duration,
    /// Building the groups of the snapshot from the answers (CPU only).
    pub assemble: Duration,
    /// ListOffsets: watermarks.
    pub watermarks: Duration,
    /// Fetch: record timestamps for time lag (0 when sampling is off).
    pub timestamps: Duration,
    /// DescribeConfigs: cleanup policies (0 in cycles that use the cached ones).
    pub configs: Duration,
    /// The whole cycle, from Metadata to the snapshot.
    pub total: Duration,
}

impl CyclePhases {
    /// Every phase by name, in the order a cycle starts them, `total` last.
    pub fn named(&self) -> [(&'static str, Duration); 10] {
        [
            ("metadata", self.metadata),
            ("list_groups", self.list_groups),
            ("coordinators", self.coordinators),
            ("offsets", self.offsets),
            ("describe", self.describe),
            ("assemble", self.assemble),
            ("watermarks", self.watermarks),
            ("timestamps", self.timestamps),
            ("configs", self.configs),
            ("total", self.total),
        ]
    }

    /// One debug line with every phase.
    pub fn log(&self, cluster: &str) {
        tracing::debug!(
            cluster,
            total = ?self.total,
            metadata = ?self.metadata,
            list_groups = ?self.list_groups,
            coordinators = ?self.coordinators,
            offsets = ?self.offsets,
            describe = ?self.describe,
            assemble = ?self.assemble,
            watermarks = ?self.watermarks,
            timestamps = ?self.timestamps,
            configs = ?self.configs,
            "cycle phases"
        );
    }
}

/// `f`'s output and how long it took.
pub async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}
