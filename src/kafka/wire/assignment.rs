//! ConsumerProtocol assignment: the bytes of `GroupMember::assignment` for groups whose
//! protocol type is `consumer`.
//!
//! Layout: version (i16), then `assigned_partitions: [{topic: string, partitions: [i32]}]`
//! and `user_data: nullable bytes`, never flexible. Versions 0..=3 share this layout; as the
//! Java client does, a higher version is read with the v3 layout (the protocol promises that
//! newer versions only append fields), a negative one is an error.

use bytes::Bytes;

use super::reader::Reader;
use super::DecodeError;

const API: &str = "ConsumerProtocolAssignment";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerAssignment {
    pub topics: Vec<AssignedTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssignedTopic {
    pub topic: String,
    pub partitions: Vec<i32>,
}

impl ConsumerAssignment {
    /// Decodes a member assignment. Empty input (a member not yet assigned) gives an empty
    /// assignment. `user_data` is validated when present and ignored; a buffer that ends
    /// right before it is accepted.
    pub fn decode(buf: Bytes) -> Result<Self, DecodeError> {
        if buf.is_empty() {
            return Ok(Self::default());
        }
        let mut r = Reader::for_api(buf, API, -1);
        let version = r.i16("version")?;
        r.set_version(version);
        if version < 0 {
            let (min, max) = (0, i16::MAX);
            return Err(DecodeError::UnsupportedVersion {
                api: API,
                version,
                min,
                max,
            });
        }
        let topics = r.array("assigned_partitions", false, |r| {
            let topic = r.string("topic")?;
            let partitions = r.array("partitions", false, |r| r.i32("partition"))?;
            Ok(AssignedTopic { topic, partitions })
        })?;
        if r.remaining() > 0 {
            r.nullable_bytes("user_data")?;
        }
        Ok(Self { topics })
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment as kp;
    use kafka_protocol::messages::TopicName;

    use super::super::test_util::{assert_count_err, enc, s};
    use super::*;

    fn want() -> ConsumerAssignment {
        let topic = |t: i32| AssignedTopic {
            topic: format!("topic-{t}"),
            partitions: vec![t, t + 4, t + 8],
        };
        ConsumerAssignment {
            topics: (0..2).map(topic).collect(),
        }
    }

    /// Version prefix + kafka-protocol's encoding of the assignment.
    fn encoded(version: i16, user_data: Option<Bytes>) -> Bytes {
        let tps = want().topics.into_iter().map(|t| {
            kp::TopicPartition::default()
                .with_topic(TopicName(s(&t.topic)))
                .with_partitions(t.partitions)
        });
        let msg = kp::ConsumerProtocolAssignment::default()
            .with_assigned_partitions(tps.collect())
            .with_user_data(user_data);
        let mut b = BytesMut::new();
        b.put_i16(version);
        b.put_slice(&enc(&msg, version.clamp(0, 3)));
        b.freeze()
    }

    #[test]
    fn every_version_round_trips_and_prefixes_fail() {
        for v in [0, 1, 2, 3, 4] {
            for user_data in [None, Some(Bytes::from_static(b"sticky"))] {
                let full = encoded(v, user_data);
                assert_eq!(ConsumerAssignment::decode(full.clone()), Ok(want()), "v{v}");
                // Every prefix that stops inside the topics array is an error.
                let topics_end = full.len() - if full.ends_with(b"sticky") { 10 } else { 4 };
                for len in 1..topics_end {
                    assert!(
                        ConsumerAssignment::decode(full.slice(..len)).is_err(),
                        "v{v} prefix {len}"
                    );
                }
                // A buffer ending right before user_data is accepted; one inside it is not.
                assert_eq!(
                    ConsumerAssignment::decode(full.slice(..topics_end)),
                    Ok(want())
                );
                for len in topics_end + 1..full.len() {
                    assert!(
                        ConsumerAssignment::decode(full.slice(..len)).is_err(),
                        "v{v} prefix {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_hostile_and_negative_version() {
        assert_eq!(
            ConsumerAssignment::decode(Bytes::new()),
            Ok(ConsumerAssignment::default())
        );
        let b = Bytes::from_static(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 0]);
        assert_count_err(ConsumerAssignment::decode(b), "assigned_partitions");
        let b = Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff, 0]);
        let err = ConsumerAssignment::decode(b).expect_err("hostile partitions count");
        assert_eq!(
            err.to_string(),
            "ConsumerProtocolAssignment v1: field assigned_partitions[0].partitions at byte 9: \
             array count 2147483647 is larger than the 1 bytes left"
        );
        let err = ConsumerAssignment::decode(Bytes::from_static(&[0xff, 0xff, 0, 0, 0, 0]))
            .expect_err("v-1");
        assert!(err.to_string().contains("0..=32767"), "{err}");
    }
}
