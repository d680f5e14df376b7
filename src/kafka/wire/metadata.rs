//! Metadata response body, versions 1..=12 (flexible from 9).

use bytes::Bytes;

use super::reader::Reader;
use super::{check_version, DecodeError};

const API: &str = "Metadata";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataResponse {
    pub brokers: Vec<MetadataBroker>,
    /// `None` below v2 and when the broker sends null.
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub topics: Vec<MetadataTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataBroker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataTopic {
    pub error_code: i16,
    /// Nullable on the wire from v12 only (topics looked up by id).
    pub name: Option<String>,
    /// All zeros below v10.
    pub topic_id: [u8; 16],
    pub is_internal: bool,
    pub partitions: Vec<MetadataPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataPartition {
    pub error_code: i16,
    pub partition: i32,
    pub leader_id: i32,
    /// -1 below v7.
    pub leader_epoch: i32,
}

impl MetadataResponse {
    pub const MIN_VERSION: i16 = 1;
    pub const MAX_VERSION: i16 = 12;

    /// Decodes the body of a Metadata response of `version`.
    pub fn decode(buf: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(API, version, Self::MIN_VERSION, Self::MAX_VERSION)?;
        let flex = version >= 9;
        let mut r = Reader::for_api(buf, API, version);
        if version >= 3 {
            r.i32("throttle_time_ms")?;
        }
        let brokers = r.array("brokers", flex, |r| {
            let broker = MetadataBroker {
                node_id: r.i32("node_id")?,
                host: r.string_v("host", flex)?,
                port: r.i32("port")?,
                rack: r.nullable_string_v("rack", flex)?,
            };
            r.tagged_fields(flex)?;
            Ok(broker)
        })?;
        let cluster_id = if version >= 2 {
            r.nullable_string_v("cluster_id", flex)?
        } else {
            None
        };
        let controller_id = r.i32("controller_id")?;
        let topics = r.array("topics", flex, |r| decode_topic(r, version))?;
        if (8..=10).contains(&version) {
            r.i32("cluster_authorized_operations")?;
        }
        r.tagged_fields(flex)?;
        Ok(Self {
            brokers,
            cluster_id,
            controller_id,
            topics,
        })
    }
}

fn decode_topic(r: &mut Reader, version: i16) -> Result<MetadataTopic, DecodeError> {
    let flex = version >= 9;
    let error_code = r.i16("error_code")?;
    let name = if version >= 12 {
        r.nullable_string_v("name", flex)?
    } else {
        Some(r.string_v("name", flex)?)
    };
    let topic_id = if version >= 10 {
        r.uuid("topic_id")?
    } else {
        [0; 16]
    };
    let is_internal = r.bool("is_internal")?;
    let partitions = r.array("partitions", flex, |r| {
        let partition = MetadataPartition {
            error_code: r.i16("error_code")?,
            partition: r.i32("partition_index")?,
            leader_id: r.i32("leader_id")?,
            leader_epoch: if version >= 7 {
                r.i32("leader_epoch")?
            } else {
                -1
            },
        };
        r.skip_fixed_array("replica_nodes", flex, 4)?;
        r.skip_fixed_array("isr_nodes", flex, 4)?;
        if version >= 5 {
            r.skip_fixed_array("offline_replicas", flex, 4)?;
        }
        r.tagged_fields(flex)?;
        Ok(partition)
    })?;
    if version >= 8 {
        r.i32("topic_authorized_operations")?;
    }
    r.tagged_fields(flex)?;
    Ok(MetadataTopic {
        error_code,
        name,
        topic_id,
        is_internal,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::metadata_response as kp;
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::Decodable;

    use super::super::test_util::{
        assert_bad_version, assert_count_err, decode_all, enc, s, unknown_tags,
    };
    use super::*;

    const ID: [u8; 16] = [7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    /// A kafka-protocol topic carrying `ID` (its Uuid type is not re-exported).
    fn kp_topic_with_id() -> kp::MetadataResponseTopic {
        let mut b = BytesMut::new();
        b.put_slice(&[0, 0, 1]);
        b.put_slice(&ID);
        b.put_slice(&[0, 1, 0, 0, 0, 0, 0]);
        kp::MetadataResponseTopic::decode(&mut b.freeze(), 10).expect("topic")
    }

    fn case(v: i16) -> (kp::MetadataResponse, MetadataResponse) {
        let (mut kbrokers, mut brokers, mut ktopics, mut topics) = (vec![], vec![], vec![], vec![]);
        for i in 0..2i32 {
            let rack = (i == 0).then(|| "rack-a".to_owned());
            kbrokers.push(
                kp::MetadataResponseBroker::default()
                    .with_node_id(BrokerId(i + 1))
                    .with_host(s(&format!("broker-{i}.example")))
                    .with_port(9092 + i)
                    .with_rack(rack.as_deref().map(s))
                    .with_unknown_tagged_fields(unknown_tags()),
            );
            brokers.push(MetadataBroker {
                node_id: i + 1,
                host: format!("broker-{i}.example"),
                port: 9092 + i,
                rack,
            });
        }
        for t in 0..2i16 {
            let name = (v < 12 || t == 0).then(|| format!("topic-{t}"));
            let (mut kparts, mut parts) = (vec![], vec![]);
            for p in 0..3i32 {
                let epoch = if v >= 7 { 10 + p } else { -1 };
                kparts.push(
                    kp::MetadataResponsePartition::default()
                        .with_error_code(t * 5)
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(p % 2 + 1))
                        .with_leader_epoch(epoch)
                        .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                        .with_isr_nodes(vec![BrokerId(2)])
                        .with_offline_replicas(if v >= 5 { vec![BrokerId(1)] } else { vec![] })
                        .with_unknown_tagged_fields(unknown_tags()),
                );
                let (error_code, leader_id) = (t * 5, p % 2 + 1);
                parts.push(MetadataPartition {
                    error_code,
                    partition: p,
                    leader_id,
                    leader_epoch: epoch,
                });
            }
            let topic_id = if v >= 10 && t == 1 { ID } else { [0; 16] };
            let base = if topic_id == ID {
                kp_topic_with_id()
            } else {
                Default::default()
            };
            let mut kt = base
                .with_error_code(t + 3)
                .with_name(name.as_deref().map(|n| TopicName(s(n))))
                .with_is_internal(t == 1)
                .with_partitions(kparts)
                .with_unknown_tagged_fields(unknown_tags());
            if v >= 8 {
                kt = kt.with_topic_authorized_operations(0x0ff0);
            }
            ktopics.push(kt);
            let (error_code, is_internal) = (t + 3, t == 1);
            topics.push(MetadataTopic {
                error_code,
                name,
                topic_id,
                is_internal,
                partitions: parts,
            });
        }
        let cluster_id = (v >= 2).then(|| "cluster-x".to_owned());
        let mut km = kp::MetadataResponse::default()
            .with_throttle_time_ms(77)
            .with_brokers(kbrokers)
            .with_cluster_id(cluster_id.as_deref().map(s))
            .with_controller_id(BrokerId(2))
            .with_topics(ktopics)
            .with_unknown_tagged_fields(unknown_tags());
        if (8..=10).contains(&v) {
            km = km.with_cluster_authorized_operations(0x0abc);
        }
        (
            km,
            MetadataResponse {
                brokers,
                cluster_id,
                controller_id: 2,
                topics,
            },
        )
    }

    #[test]
    fn every_version_round_trips() {
        for v in 1..=12 {
            let (km, want) = case(v);
            let got = decode_all(&enc(&km, v), |b| MetadataResponse::decode(b, v));
            assert_eq!(got, want, "v{v}");
        }
    }

    #[test]
    fn null_topic_name_only_from_v12() {
        let topic = kp::MetadataResponseTopic::default().with_name(None);
        let km = kp::MetadataResponse::default().with_topics(vec![topic]);
        let err = MetadataResponse::decode(enc(&km, 11), 11).expect_err("null name below v12");
        assert_eq!(err.to_string(), "Metadata v11: field topics[0].name at byte 13: null, but the field is not nullable in this version");
        assert!(MetadataResponse::decode(enc(&km, 12), 12).is_ok());
    }

    #[test]
    fn hostile_counts_and_versions() {
        // throttle, brokers count i32::MAX, 3 bytes left.
        let b = Bytes::from_static(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert_count_err(MetadataResponse::decode(b, 3), "brokers");
        // v9: throttle, brokers compact count uvarint 0xFFFFFFFF.
        let b = Bytes::from_static(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]);
        assert_count_err(MetadataResponse::decode(b, 9), "brokers");
        assert_bad_version(MetadataResponse::decode, 0, "1..=12");
        assert_bad_version(MetadataResponse::decode, 13, "1..=12");
    }

    #[test]
    fn error_names_nested_field_and_position() {
        let (km, _) = case(12);
        let full = enc(&km, 12);
        // Cut inside brokers[0].host: 4 throttle + 1 count + 4 node_id + 1 length = byte 9.
        let err = MetadataResponse::decode(full.slice(..12), 12).expect_err("truncated");
        assert_eq!(
            err.to_string(),
            "Metadata v12: field brokers[0].host at byte 9: need 16 bytes, 2 left"
        );
    }
}
