//! Caches that make steady-state cycles cheap.
//!
//! [`TimestampCache`]: the record at an offset never changes, so its timestamp is cached by
//! (partition, offset) and shared by every group at that offset. After each cycle, entries
//! no group points at any more are evicted, so the cache never outgrows the groups' positions.
//! When the committed offset no longer existed and a later record answered, that answer is
//! only valid while that record is still in the log (at or above the low watermark).

use std::collections::{HashMap, HashSet};

use crate::kafka::records::RecordAt;
use crate::kafka::TopicPartition;

/// Timestamps of records at (partition, offset).
#[derive(Debug, Default)]
pub struct TimestampCache {
    entries: HashMap<(TopicPartition, i64), RecordAt>,
    hits: u64,
    misses: u64,
}

impl TimestampCache {
    /// The cached record for `offset` of `tp`, if still valid with low watermark `low`.
    pub fn get(&mut self, tp: &TopicPartition, offset: i64, low: i64) -> Option<RecordAt> {
        let found = self
            .entries
            .get(&(tp.clone(), offset))
            .filter(|r| r.offset == offset || r.offset >= low)
            .copied();
        match found {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        found
    }

    pub fn insert(&mut self, tp: TopicPartition, offset: i64, record: RecordAt) {
        self.entries.insert((tp, offset), record);
    }

    /// Keep only the entries in `live`.
    pub fn retain_live(&mut self, live: &HashSet<(TopicPartition, i64)>) {
        self.entries.retain(|k, _| live.contains(k));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::records::TimestampType;

    fn rec(offset: i64, ts: i64) -> RecordAt {
        RecordAt {
            offset,
            timestamp_ms: ts,
            timestamp_type: TimestampType::CreateTime,
        }
    }

    #[test]
    fn exact_entries_hit_until_evicted() {
        let mut c = TimestampCache::default();
        let tp = TopicPartition::new("t", 0);
        c.insert(tp.clone(), 5, rec(5, 100));
        assert_eq!(c.get(&tp, 5, 0), Some(rec(5, 100)));
        assert_eq!(c.get(&tp, 6, 0), None);
        assert_eq!(c.stats(), (1, 1));
        c.retain_live(&HashSet::from([(tp.clone(), 6)]));
        assert!(c.is_empty());
    }

    #[test]
    fn a_later_record_answers_only_while_it_exists() {
        let mut c = TimestampCache::default();
        let tp = TopicPartition::new("t", 0);
        // Offset 40 was gone; the record at 100 (the log start then) answered.
        c.insert(tp.clone(), 40, rec(100, 7));
        assert_eq!(c.get(&tp, 40, 100), Some(rec(100, 7)));
        // Retention moved on past 100: the answer is stale.
        assert_eq!(c.get(&tp, 40, 150), None);
    }
}
