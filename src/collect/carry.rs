//! What a cycle borrows from the last report for what it could not read.

use super::groups::Owners;
use crate::kafka::TopicPartition;
use crate::lag::{GroupState, LagReport, PartitionOffsets};

/// The watermarks `report` has for `tp`, when read at or after `oldest_ms`.
pub(super) fn last_watermarks<'a>(
    report: &'a LagReport,
    tp: &TopicPartition,
    oldest_ms: i64,
) -> Option<&'a PartitionOffsets> {
    let i = report.partitions.binary_search_by(|p| p.tp.cmp(tp)).ok()?;
    report
        .partitions
        .get(i)
        .filter(|p| p.read_at_ms >= oldest_ms)
}

/// The last report's group states and member labels, for groups not described this cycle
/// (indexed on first use: most cycles describe every group).
pub(super) struct EarlierRows<'a> {
    report: &'a LagReport,
    oldest_ms: i64,
    index: std::cell::OnceCell<crate::lag::ReportIndex<'a>>,
}

impl<'a> EarlierRows<'a> {
    pub(super) fn new(report: &'a LagReport, oldest_ms: i64) -> Self {
        EarlierRows {
            report,
            oldest_ms,
            index: std::cell::OnceCell::new(),
        }
    }

    /// State and partition owners of `group` as last reported (recent enough), else unknown.
    pub(super) fn described(&self, group: &str) -> (GroupState, Owners) {
        let index = self
            .index
            .get_or_init(|| crate::lag::ReportIndex::new(self.report, self.oldest_ms));
        let Some((g, rows)) = index.group(group) else {
            return (GroupState::Unknown, Owners::default());
        };
        let owners = Owners::from_pairs(rows.filter_map(|r| Some((r.tp, r.row.member.as_ref()?))));
        (g.state, owners)
    }
}
