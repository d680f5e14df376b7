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
