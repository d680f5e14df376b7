//! The log lines that tell an operator a cluster's collection started working, or works
//! again: one at the first published cycle, one at the first after failures. Failures are
//! logged where they happen, once per failed cycle.

use std::time::{Duration, Instant};

use super::coverage::{Coverage, FilterWatch};
use crate::lag::LagReport;

/// What the last cycles of one cluster did, as far as the log is concerned.
#[derive(Debug, Default)]
pub struct Lifecycle {
    published: u64,
    /// Consecutive failed cycles, and when the first of them ended.
    failing: Option<(u64, Instant)>,
    filters: FilterWatch,
}

/// What a published cycle deserves in the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Milestone {
    /// The cluster's first published cycle.
    First,
    /// The first published cycle after `cycles` failed ones, failing for `for_`.
    Recovered { cycles: u64, for_: Duration },
    /// Nothing new.
    Routine,
}

impl Lifecycle {
    pub fn failed(&mut self) {
        match &mut self.failing {
            Some((n, _)) => *n += 1,
            None => self.failing = Some((1, Instant::now())),
        }
    }

    pub fn published(&mut self) -> Milestone {
        self.published += 1;
        let failing = self.failing.take();
        match (self.published, failing) {
            (1, _) => Milestone::First,
            (_, Some((cycles, since))) => Milestone::Recovered {
                cycles,
                for_: since.elapsed(),
            },
            _ => Milestone::Routine,
        }
    }

    /// Log a published cycle's milestone at info, and filters that start or stop
    /// matching nothing.
    pub fn log_published(
        &mut self,
        cluster: &str,
        report: &LagReport,
        coverage: &Coverage,
        duration: Duration,
    ) {
        let (groups, group_partitions, partitions) = (
            report.groups.len(),
            report.group_partitions.len(),
            report.partitions.len(),
        );
        match self.published() {
            Milestone::First => tracing::info!(
                %cluster, groups, group_partitions, partitions, ?duration,
                groups_filtered_out = coverage.groups_filtered_out(),
                topics_filtered_out = coverage.topics_filtered_out(),
                "first cycle published: lag of this cluster is on /metrics"
            ),
            Milestone::Recovered { cycles, for_ } => tracing::info!(
                %cluster, failed_cycles = cycles, failing_for = ?for_, groups, partitions,
                "cluster recovered: cycles publish again"
            ),
            Milestone::Routine => {}
        }
        self.filters.log(cluster, coverage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_routine_then_recovered_once() {
        let mut l = Lifecycle::default();
        l.failed();
        assert_eq!(l.published(), Milestone::First);
        assert_eq!(l.published(), Milestone::Routine);
        l.failed();
        l.failed();
        assert!(matches!(
            l.published(),
            Milestone::Recovered { cycles: 2, .. }
        ));
        assert_eq!(l.published(), Milestone::Routine);
    }
}
