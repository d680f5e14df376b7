//! The values every layer shares: the wire client produces them, the lag math and the
//! metrics consume them. Plain data with no I/O, so [`crate::lag`] and [`crate::metrics`]
//! need not import the wire client ([`crate::kafka`] re-exports them where they were born).

use std::fmt;
use std::sync::Arc;

/// A topic partition. The topic name is shared, so cloning is cheap.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// The first offset still in the log and the high watermark of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    pub low: i64,
    pub high: i64,
}

/// Watermarks of many partitions, sorted by partition: one allocation of 40 bytes a
/// partition, looked up by binary search (a `BTreeMap` of the same took ~64 bytes a
/// partition, and was built while the answers it came from were still held).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionWatermarks(Vec<(TopicPartition, Watermarks)>);

impl PartitionWatermarks {
    /// From a list sorted by partition without duplicates (checked; a list that is not is
    /// sorted, the last value of a partition kept).
    pub fn from_sorted(list: Vec<(TopicPartition, Watermarks)>) -> Self {
        if list.windows(2).all(|w| w[0].0 < w[1].0) {
            PartitionWatermarks(list)
        } else {
            list.into_iter().collect()
        }
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<&Watermarks> {
        let i = self.0.binary_search_by(|(p, _)| p.cmp(tp)).ok()?;
        self.0.get(i).map(|(_, w)| w)
    }

    pub fn contains_key(&self, tp: &TopicPartition) -> bool {
        self.get(tp).is_some()
    }

    /// Set the watermarks of `tp`, returning the ones it had.
    pub fn insert(&mut self, tp: TopicPartition, w: Watermarks) -> Option<Watermarks> {
        match self.0.binary_search_by(|(p, _)| p.cmp(&tp)) {
            Ok(i) => self.0.get_mut(i).map(|(_, old)| std::mem::replace(old, w)),
            Err(i) => {
                self.0.insert(i, (tp, w));
                None
            }
        }
    }

    /// In partition order.
    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &Watermarks)> {
        self.0.iter().map(|(tp, w)| (tp, w))
    }

    pub fn keys(&self) -> impl Iterator<Item = &TopicPartition> {
        self.0.iter().map(|(tp, _)| tp)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(TopicPartition, Watermarks)> for PartitionWatermarks {
    /// In any order; of a partition listed twice the last value counts (as in a map).
    fn from_iter<It: IntoIterator<Item = (TopicPartition, Watermarks)>>(items: It) -> Self {
        let mut list: Vec<_> = items.into_iter().collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        PartitionWatermarks(list)
    }
}

impl From<std::collections::BTreeMap<TopicPartition, Watermarks>> for PartitionWatermarks {
    fn from(map: std::collections::BTreeMap<TopicPartition, Watermarks>) -> Self {
        PartitionWatermarks(map.into_iter().collect())
    }
}

impl<const N: usize> From<[(TopicPartition, Watermarks); N]> for PartitionWatermarks {
    fn from(list: [(TopicPartition, Watermarks); N]) -> Self {
        list.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a PartitionWatermarks {
    type Item = (&'a TopicPartition, &'a Watermarks);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (TopicPartition, Watermarks)>,
        fn(&'a (TopicPartition, Watermarks)) -> (&'a TopicPartition, &'a Watermarks),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(tp, w)| (tp, w))
    }
}

/// The kind of a group (Kafka 4.x): each is read with its own requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupType {
    /// A classic group (JoinGroup/SyncGroup), consumer or not.
    #[default]
    Classic,
    /// A KIP-848 consumer group (ConsumerGroupHeartbeat).
    Consumer,
    /// A KIP-932 share group.
    Share,
    /// A KIP-1071 streams group.
    Streams,
    /// A type newer than tidemark, read like a classic group.
    Other(String),
}

impl GroupType {
    /// From ListGroups: `group_type` (v5+) when present, else the protocol type, which is
    /// `share` or `streams` for those groups on every version and `consumer` for KIP-848
    /// consumer groups (indistinguishable from classic ones there).
    pub fn from_listing(group_type: Option<&str>, protocol_type: &str) -> GroupType {
        match group_type.filter(|t| !t.is_empty()) {
            Some(t) => match t.to_ascii_lowercase().as_str() {
                "classic" => GroupType::Classic,
                "consumer" => GroupType::Consumer,
                "share" => GroupType::Share,
                "streams" => GroupType::Streams,
                _ => GroupType::Other(t.to_string()),
            },
            None => match protocol_type {
                "share" => GroupType::Share,
                "streams" => GroupType::Streams,
                _ => GroupType::Classic,
            },
        }
    }

    /// The `group_type` label value: Kafka's own names.
    pub fn as_str(&self) -> &str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
            GroupType::Share => "share",
            GroupType::Streams => "streams",
            GroupType::Other(t) => t,
        }
    }
}

impl fmt::Display for GroupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a batch's timestamps were assigned (batch attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The record found at (or after) an offset by [`crate::kafka::records::record_at`]: the
/// sample a time lag is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt {
    /// Offset of the record found: == target when the record exists, > target when the target
    /// no longer exists (compacted / deleted) and this is the first record after it.
    pub offset: i64,
    pub timestamp_ms: i64,
    pub timestamp_type: TimestampType,
    /// False only when answered from a cut batch larger than `whole_up_to` (its CRC could
    /// not be checked): use it for this cycle only, never cache it.
    pub verified: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    fn marks(low: i64, high: i64) -> Watermarks {
        Watermarks { low, high }
    }

    #[test]
    fn partition_watermarks_behave_as_a_map_sorted_by_partition() {
        let mut w: PartitionWatermarks = [
            (tp("b", 0), marks(0, 5)),
            (tp("a", 1), marks(1, 2)),
            (tp("a", 0), marks(0, 1)),
            (tp("b", 0), marks(3, 9)),
        ]
        .into_iter()
        .collect();
        assert_eq!(w.len(), 3);
        assert_eq!(
            w.get(&tp("b", 0)),
            Some(&marks(3, 9)),
            "the last value counts"
        );
        assert!(!w.contains_key(&tp("c", 0)));
        assert_eq!(w.insert(tp("a", 5), marks(7, 8)), None);
        assert_eq!(w.insert(tp("a", 1), marks(2, 3)), Some(marks(1, 2)));
        let order: Vec<String> = w.keys().map(|tp| tp.to_string()).collect();
        assert_eq!(order, ["a/0", "a/1", "a/5", "b/0"]);
        let unsorted = PartitionWatermarks::from_sorted(vec![
            (tp("b", 0), marks(0, 1)),
            (tp("a", 0), marks(0, 2)),
        ]);
        assert_eq!(unsorted.keys().next(), Some(&tp("a", 0)));
        assert_eq!(unsorted.get(&tp("b", 0)), Some(&marks(0, 1)));
    }
}
