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

/// A transaction marker (control batch) the broker wrote when a transaction ended, seen
/// on the broker with a Fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub offset: i64,
    /// true: COMMIT marker; false: ABORT marker.
    pub commit: bool,
}

/// What the workload wrote: the truth tests compare tidemark's readings with.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    topics: BTreeMap<String, i32>,
    records: BTreeMap<(String, i32), Vec<ProducedRecord>>,
    /// Transaction markers per partition, in offset order. They take offsets like records
    /// do (so they count in the high watermark) but no consumer ever receives them.
    markers: BTreeMap<(String, i32), Vec<Marker>>,
    /// Offsets of records produced in a transaction that was aborted. A READ_UNCOMMITTED
    /// reader (tidemark's Fetch, per the contract) still receives them.
    aborted: BTreeMap<(String, i32), Vec<i64>>,
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

    /// The expected high watermark: last produced offset (record or transaction marker)
    /// + 1, or 0.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> i64 {
        let record = self.records(topic, partition).last().map(|r| r.offset);
        let marker = self.markers(topic, partition).last().map(|m| m.offset);
        record.max(marker).map_or(0, |o| o + 1)
    }

    /// Transaction markers of a partition, in offset order.
    pub fn markers(&self, topic: &str, partition: i32) -> &[Marker] {
        self.markers
            .get(&(topic.to_owned(), partition))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The marker at `offset`, if the broker wrote one there.
    pub fn marker_at(&self, topic: &str, partition: i32, offset: i64) -> Option<Marker> {
        self.markers(topic, partition)
            .iter()
            .find(|m| m.offset == offset)
            .copied()
    }

    /// Whether the record at `offset` belongs to an aborted transaction.
    pub fn is_aborted(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.aborted
            .get(&(topic.to_owned(), partition))
            .is_some_and(|v| v.contains(&offset))
    }

    /// The first record at or after `offset` that a READ_UNCOMMITTED consumer receives
    /// (markers skipped, aborted records included), below the high watermark.
    pub fn next_consumable(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Option<&ProducedRecord> {
        self.records(topic, partition)
            .iter()
            .find(|r| r.offset >= offset)
    }

    /// Expected time-lag truth per the contract: `None` when the group has nothing left
    /// to consume (lag 0 and time lag 0), else the timestamp of the record a consumer at
    /// `committed` receives next.
    pub fn lag_timestamp(&self, topic: &str, partition: i32, committed: i64) -> Option<i64> {
        if committed >= self.high_watermark(topic, partition) {
            return None;
        }
        self.next_consumable(topic, partition, committed)
            .map(ProducedRecord::effective_timestamp_ms)
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

    /// Expected offset lag (None without a commit): high watermark − committed, markers
    /// included as Kafka counts offsets; but 0 when everything from the committed offset to
    /// the high watermark is transaction markers (nothing left to consume; contract of
    /// issue 16).
    pub fn lag(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.committed(group, topic, partition).map(|c| {
            if self.lag_timestamp(topic, partition, c).is_none() {
                0
            } else {
                (self.high_watermark(topic, partition) - c).max(0)
            }
        })
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
            let key = (topic.to_owned(), partition);
            if let Some(m) = self.markers.get_mut(&key) {
                m.retain(|m| m.offset < base);
            }
            if let Some(a) = self.aborted.get_mut(&key) {
                a.retain(|o| *o < base);
            }
        }
        entries.extend(batch);
    }

    pub(super) fn add_marker(&mut self, topic: &str, partition: i32, marker: Marker) {
        let v = self
            .markers
            .entry((topic.to_owned(), partition))
            .or_default();
        v.push(marker);
        v.sort_by_key(|m| m.offset);
    }

    pub(super) fn add_aborted(&mut self, topic: &str, partition: i32, offsets: &[i64]) {
        self.aborted
            .entry((topic.to_owned(), partition))
            .or_default()
            .extend_from_slice(offsets);
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
