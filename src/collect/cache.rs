//! Caches that make steady-state cycles cheap.
//!
//! [`TimestampCache`]: the record at an offset of one partition's log never changes, so its
//! timestamp is cached by (partition, offset) and shared by every group at that offset.
//! "One partition's log" is the catch: a topic deleted and re-created under the same name,
//! or a cluster rebuilt behind the same address, starts a new log at the same offsets. So
//! each partition's entries are tied to the log they came from and dropped when that log
//! is evidently not the same any more: another topic id (Metadata v10+), or watermarks that
//! went backwards. The collector also clears the cache when the cluster id changes (a cluster
//! rebuilt behind the same addresses).
//!
//! When the committed offset no longer existed and a later record answered, that answer is
//! valid only while that record is still in the log (at or above the low watermark).
//! After each cycle, entries no group looked up or stored in that cycle are evicted, so the
//! cache never outgrows the groups' positions.

use std::collections::HashMap;
use std::sync::Arc;

use crate::kafka::records::{RecordAt, TimestampType};
use crate::kafka::{TopicPartition, Watermarks};

/// One topic's cached logs. The topic id is kept once per topic (it is the topic's, not a
/// partition's), and partitions sit in a vector sorted by partition number: keyed by topic
/// partition, 50,000 partitions cost 5.3 MB of hash table alone.
#[derive(Debug)]
struct TopicLog {
    topic_id: [u8; 16],
    partitions: Vec<PartitionLog>,
}

#[derive(Debug)]
struct PartitionLog {
    partition: i32,
    watermarks: Watermarks,
    /// By offset, sorted: a partition has one entry per distinct group position, usually
    /// a handful, so a sorted vector is smaller and faster than a map per partition.
    records: Vec<Entry>,
}

/// A cached answer: the record found for `offset` (32 bytes; a [`RecordAt`] with the
/// lookup offset and the cycle would take 40).
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: i64,
    found: i64,
    timestamp_ms: i64,
    /// The cycle that last looked it up or stored it.
    cycle: u32,
    log_append_time: bool,
}

impl Entry {
    fn record(&self) -> RecordAt {
        RecordAt {
            offset: self.found,
            timestamp_ms: self.timestamp_ms,
            timestamp_type: if self.log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            // Only verified records are cached (see `insert`).
            verified: true,
        }
    }

    /// Still an answer for its offset with low watermark `low`: the record at the offset
    /// itself, or a later one that is still in the log.
    fn valid(&self, low: i64) -> bool {
        self.found == self.offset || self.found >= low
    }
}

impl TopicLog {
    fn partition(&mut self, partition: i32) -> Option<&mut PartitionLog> {
        let i = self
            .partitions
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()?;
        self.partitions.get_mut(i)
    }
}

impl PartitionLog {
    fn find(&mut self, offset: i64) -> Option<&mut Entry> {
        let i = self
            .records
            .binary_search_by_key(&offset, |e| e.offset)
            .ok()?;
        self.records.get_mut(i)
    }
}

/// Timestamps of records at (partition, offset).
#[derive(Debug, Default)]
pub struct TimestampCache {
    topics: HashMap<Arc<str>, TopicLog>,
    /// Counts cycles ([`TimestampCache::start_cycle`]).
    cycle: u32,
    hits: u64,
    misses: u64,
}

impl TimestampCache {
    /// Start a cycle: what it neither looks up nor stores is evicted by
    /// [`TimestampCache::end_cycle`].
    pub fn start_cycle(&mut self) {
        self.cycle = self.cycle.wrapping_add(1);
    }

    /// Tell the cache what this cycle saw of a partition's log; entries from another log
    /// (other topic id: the whole topic's; or watermarks lower than last seen) are dropped.
    pub fn observe(&mut self, tp: &TopicPartition, topic_id: [u8; 16], watermarks: Watermarks) {
        let Some(topic) = self.topics.get_mut(&tp.topic) else {
            return;
        };
        if topic.topic_id != topic_id {
            // Deleted and re-created under the same name: a new log for every partition.
            for p in &mut topic.partitions {
                p.records.clear();
            }
            topic.topic_id = topic_id;
        }
        if let Some(log) = topic.partition(tp.partition) {
            let same_log =
                watermarks.low >= log.watermarks.low && watermarks.high >= log.watermarks.high;
            if !same_log {
                log.records.clear();
            }
            log.watermarks = watermarks;
        }
    }

    fn entry(&mut self, tp: &TopicPartition, offset: i64, low: i64) -> Option<&mut Entry> {
        self.topics
            .get_mut(&tp.topic)?
            .partition(tp.partition)?
            .find(offset)
            .filter(|e| e.valid(low))
    }

    /// The cached record for `offset` of `tp`, if still valid with low watermark `low`;
    /// a hit keeps the entry for another cycle.
    pub fn get(&mut self, tp: &TopicPartition, offset: i64, low: i64) -> Option<RecordAt> {
        let cycle = self.cycle;
        let found = self.entry(tp, offset, low).map(|e| {
            e.cycle = cycle;
            e.record()
        });
        match found {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        found
    }

    /// [`get`](TimestampCache::get) without counting a hit or a miss (for re-reading an
    /// entry this cycle already counted or stored).
    pub fn peek(&mut self, tp: &TopicPartition, offset: i64, low: i64) -> Option<RecordAt> {
        self.entry(tp, offset, low).map(|e| e.record())
    }

    /// Remember the record found for `offset` of `tp`, whose log this cycle has topic id
    /// `topic_id` and `watermarks`. A record whose CRC was not checked is not kept.
    pub fn insert(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        record: RecordAt,
        topic_id: [u8; 16],
        watermarks: Watermarks,
    ) {
        if !record.verified {
            return;
        }
        let topic = self
            .topics
            .entry(tp.topic.clone())
            .or_insert_with(|| TopicLog {
                topic_id,
                partitions: Vec::new(),
            });
        if topic.topic_id != topic_id {
            for p in &mut topic.partitions {
                p.records.clear();
            }
            topic.topic_id = topic_id;
        }
        let at = match topic
            .partitions
            .binary_search_by_key(&tp.partition, |p| p.partition)
        {
            Ok(i) => i,
            Err(i) => {
                topic.partitions.insert(
                    i,
                    PartitionLog {
                        partition: tp.partition,
                        watermarks,
                        records: Vec::new(),
                    },
                );
                i
            }
        };
        let Some(log) = topic.partitions.get_mut(at) else {
            return;
        };
        let entry = Entry {
            offset,
            found: record.offset,
            timestamp_ms: record.timestamp_ms,
            cycle: self.cycle,
            log_append_time: record.timestamp_type == TimestampType::LogAppendTime,
        };
        match log.records.binary_search_by_key(&offset, |e| e.offset) {
            Ok(i) => log.records[i] = entry,
            Err(i) => {
                // Most partitions hold one or two positions: grow one at a time.
                log.records.reserve_exact(1);
                log.records.insert(i, entry);
            }
        }
    }

    /// Evict what this cycle neither looked up nor stored, and partitions and topics left
    /// empty.
    pub fn end_cycle(&mut self) {
        let cycle = self.cycle;
        self.topics.retain(|_, topic| {
            topic.partitions.retain_mut(|log| {
                log.records.retain(|e| e.cycle == cycle);
                log.records.shrink_to_fit();
                !log.records.is_empty()
            });
            topic.partitions.shrink_to_fit();
            !topic.partitions.is_empty()
        });
    }

    /// Forget everything (the cluster id changed: another cluster answers now).
    pub fn clear(&mut self) {
        self.topics.clear();
    }

    /// Cached records.
    pub fn len(&self) -> usize {
        self.topics
            .values()
            .flat_map(|t| &t.partitions)
            .map(|l| l.records.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: [u8; 16] = [7; 16];

    fn rec(offset: i64, ts: i64) -> RecordAt {
        RecordAt {
            offset,
            timestamp_ms: ts,
            timestamp_type: TimestampType::CreateTime,
            verified: true,
        }
    }

    fn marks(low: i64, high: i64) -> Watermarks {
        Watermarks { low, high }
    }

    fn cache_with(tp: &TopicPartition, offset: i64, r: RecordAt) -> TimestampCache {
        let mut c = TimestampCache::default();
        c.start_cycle();
        c.insert(tp, offset, r, ID, marks(0, 10));
        c
    }

    #[test]
    fn entries_live_while_a_cycle_looks_them_up() {
        let tp = TopicPartition::new("t", 0);
        let other = TopicPartition::new("t", 1);
        let mut c = cache_with(&tp, 5, rec(5, 100));
        c.insert(&tp, 9, rec(9, 200), ID, marks(0, 10));
        c.insert(&other, 3, rec(3, 50), ID, marks(0, 10));
        c.end_cycle();
        assert_eq!(c.len(), 3, "stored this cycle: kept");
        // Next cycle: only 5 of t/0 is looked up.
        c.start_cycle();
        assert_eq!(c.get(&tp, 5, 0), Some(rec(5, 100)));
        assert_eq!(c.get(&tp, 6, 0), None);
        assert_eq!(c.stats(), (1, 1));
        c.end_cycle();
        assert_eq!(c.len(), 1);
        assert_eq!(c.peek(&tp, 5, 0), Some(rec(5, 100)));
        assert_eq!(c.peek(&tp, 9, 0), None);
        assert_eq!(c.peek(&other, 3, 0), None);
        // A cycle that looks nothing up empties it.
        c.start_cycle();
        c.end_cycle();
        assert!(c.is_empty());
    }

    #[test]
    fn a_later_record_answers_only_while_it_exists() {
        let tp = TopicPartition::new("t", 0);
        // Offset 40 was gone; the record at 100 (the log start then) answered.
        let mut c = cache_with(&tp, 40, rec(100, 7));
        assert_eq!(c.get(&tp, 40, 100), Some(rec(100, 7)));
        // Retention moved on past 100: the answer is stale.
        assert_eq!(c.get(&tp, 40, 150), None);
    }

    #[test]
    fn a_new_log_under_the_same_name_drops_the_old_entries() {
        let tp = TopicPartition::new("t", 0);
        // Same log, moving forward: kept.
        let mut c = cache_with(&tp, 4, rec(4, 1));
        c.observe(&tp, ID, marks(2, 12));
        assert_eq!(c.get(&tp, 4, 2), Some(rec(4, 1)));
        // Re-created topic: another id.
        c.observe(&tp, [9; 16], marks(2, 12));
        assert_eq!(c.get(&tp, 4, 0), None);
        // Rebuilt log without ids: the high watermark went backwards.
        let mut c = cache_with(&tp, 4, rec(4, 1));
        c.observe(&tp, ID, marks(0, 6));
        assert_eq!(c.get(&tp, 4, 0), None);
        // Or the low watermark did.
        let mut c = cache_with(&tp, 4, rec(4, 1));
        c.observe(&tp, ID, marks(3, 10));
        c.insert(&tp, 4, rec(4, 1), ID, marks(3, 10));
        c.observe(&tp, ID, marks(0, 10));
        assert_eq!(c.get(&tp, 4, 0), None);
    }

    #[test]
    fn a_recreated_topic_drops_every_partition() {
        let t0 = TopicPartition::new("t", 0);
        let t1 = TopicPartition::new("t", 1);
        let u0 = TopicPartition::new("u", 0);
        let mut c = cache_with(&t0, 4, rec(4, 1));
        c.insert(&t1, 2, rec(2, 1), ID, marks(0, 10));
        c.insert(&u0, 2, rec(2, 1), ID, marks(0, 10));
        // Seen first through partition 1: partition 0's entries are of the old log too.
        c.observe(&t1, [9; 16], marks(0, 10));
        c.observe(&t0, [9; 16], marks(0, 10));
        assert_eq!(c.get(&t0, 4, 0), None);
        assert_eq!(c.get(&t1, 2, 0), None);
        assert_eq!(
            c.get(&u0, 2, 0),
            Some(rec(2, 1)),
            "another topic is untouched"
        );
    }

    #[test]
    fn unverified_records_are_not_kept() {
        let tp = TopicPartition::new("t", 0);
        let mut c = TimestampCache::default();
        c.start_cycle();
        let unverified = RecordAt {
            verified: false,
            ..rec(4, 1)
        };
        c.insert(&tp, 4, unverified, ID, marks(0, 10));
        assert!(c.is_empty());
        let appended = RecordAt {
            timestamp_type: TimestampType::LogAppendTime,
            ..rec(5, 2)
        };
        c.insert(&tp, 5, appended, ID, marks(0, 10));
        assert_eq!(c.peek(&tp, 5, 0), Some(appended));
    }

    #[test]
    fn an_entry_stays_small() {
        // 50,000 partitions with one or two positions each: every byte counts twice.
        assert!(std::mem::size_of::<Entry>() <= 32);
        assert!(std::mem::size_of::<PartitionLog>() <= 48);
    }

    #[test]
    fn clear_forgets_everything() {
        let tp = TopicPartition::new("t", 0);
        let mut c = cache_with(&tp, 4, rec(4, 1));
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.get(&tp, 4, 0), None);
    }
}
