//! The workload's record of what it wrote: the truth tests compare tidemark's
//! readings (watermarks, timestamps at offsets, committed offsets, lag) against.

use std::collections::BTreeMap;

use super::codec::Codec;

/// One record the workload produced and the broker acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducedRecord {
    /// Offset the broker assigned (batch base offset + index in the batch).
    pub offset: i64,
    /// The CreateTime timestamp written into the record.
    pub timestamp_ms: i64,
    /// `Some(t)` for a LogAppendTime batch: the append time the broker stored
    /// (its maxTimestamp), which readers must report instead of `timestamp_ms`.
    pub log_append_time_ms: Option<i64>,
    pub codec: Codec,
    pub value: Vec<u8>,
    /// Offset of the first record of the batch this record was produced in.
    pub batch_base_offset: i64,
}

impl ProducedRecord {
    /// The timestamp a reader of the log should see for this record.
    pub fn effective_timestamp_ms(&self) -> i64 {
        self.log_append_time_ms.unwrap_or(self.timestamp_ms)
    }
}

/// What the workload wrote: the truth tests compare tidemark's readings with.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    topics: BTreeMap<String, i32>,
    records: BTreeMap<(String, i32), Vec<ProducedRecord>>,
    commits: BTreeMap<(String, String, i32), i64>,
}

impl Ledger {
    /// Topics created through the workload, with their partition counts.
    pub fn topics(&self) -> impl Iterator<Item = (&str, i32)> {
        self.topics.iter().map(|(t, p)| (t.as_str(), *p))
    }

    /// Partition count of a topic created through the workload.
    pub fn partitions(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).copied()
    }

    /// Records produced to a partition, in offset order.
    pub fn records(&self, topic: &str, partition: i32) -> &[ProducedRecord] {
        self.records
            .get(&(topic.to_owned(), partition))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The expected high watermark: last produced offset + 1, or 0.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> i64 {
        self.records(topic, partition)
            .last()
            .map_or(0, |r| r.offset + 1)
    }

    /// The record produced at `offset`, if any.
    pub fn record_at(&self, topic: &str, partition: i32, offset: i64) -> Option<&ProducedRecord> {
        let records = self.records(topic, partition);
        records
            .binary_search_by_key(&offset, |r| r.offset)
            .ok()
            .map(|i| &records[i])
    }

    /// The timestamp a reader should see for the record at `offset`.
    pub fn timestamp_at(&self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        self.record_at(topic, partition, offset)
            .map(ProducedRecord::effective_timestamp_ms)
    }

    /// The offset `group` last committed for the partition.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.commits
            .get(&(group.to_owned(), topic.to_owned(), partition))
            .copied()
    }

    /// Every commit as (group, topic, partition, offset).
    pub fn commits(&self) -> impl Iterator<Item = (&str, &str, i32, i64)> {
        self.commits
            .iter()
            .map(|((g, t, p), o)| (g.as_str(), t.as_str(), *p, *o))
    }

    /// Expected offset lag: high watermark − committed (None without a commit).
    pub fn lag(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.committed(group, topic, partition)
            .map(|c| (self.high_watermark(topic, partition) - c).max(0))
    }

    pub(super) fn add_topic(&mut self, name: &str, partitions: i32) {
        self.topics.insert(name.to_owned(), partitions);
    }

    /// Appends a produced batch. Entries at or above its first offset are dropped
    /// first: they cannot exist any more (e.g. the broker was restarted and lost
    /// its log).
    pub(super) fn add_batch(
        &mut self,
        topic: &str,
        partition: i32,
        batch: impl Iterator<Item = ProducedRecord>,
    ) {
        let entries = self
            .records
            .entry((topic.to_owned(), partition))
            .or_default();
        let mut batch = batch.peekable();
        if let Some(first) = batch.peek() {
            let base = first.offset;
            entries.retain(|r| r.offset < base);
        }
        entries.extend(batch);
    }

    pub(super) fn add_commit(&mut self, group: &str, topic: &str, partition: i32, offset: i64) {
        self.commits
            .insert((group.to_owned(), topic.to_owned(), partition), offset);
    }

    /// Forgets everything (e.g. after [`super::Broker::start_again`] wiped the broker).
    pub fn clear(&mut self) {
        *self = Ledger::default();
    }
}
