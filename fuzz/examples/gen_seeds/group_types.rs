//! Seeds for the Kafka 4.x group decoders (ConsumerGroupDescribe, ShareGroupDescribe,
//! DescribeShareGroupOffsets), encoded by kafka-protocol like the others.

use kafka_protocol::messages::*;

use super::{enc, s, versioned};

pub fn consumer_group_describe() {
    use consumer_group_describe_response as kp;
    for v in 0..=1 {
        let assignment = |topic: &str| {
            kp::Assignment::default().with_topic_partitions(vec![kp::TopicPartitions::default()
                .with_topic_name(TopicName(s(topic)))
                .with_partitions(vec![0, 2])])
        };
        let member = |id: &str| {
            let m = kp::Member::default()
                .with_member_id(s(id))
                .with_instance_id(Some(s("static-1")))
                .with_rack_id(None)
                .with_member_epoch(5)
                .with_client_id(s("client-1"))
                .with_client_host(s("/10.0.0.1"))
                .with_subscribed_topic_names(vec![TopicName(s("orders"))])
                .with_subscribed_topic_regex(None)
                .with_assignment(assignment("orders"))
                .with_target_assignment(assignment("orders"));
            if v >= 1 {
                m.with_member_type(1)
            } else {
                m
            }
        };
        let group = kp::DescribedGroup::default()
            .with_group_id(GroupId(s("g1")))
            .with_group_state(s("Reconciling"))
            .with_group_epoch(6)
            .with_assignment_epoch(5)
            .with_assignor_name(s("uniform"))
            .with_members(vec![member("m1"), member("m2")]);
        let missing = kp::DescribedGroup::default()
            .with_error_code(69)
            .with_error_message(Some(s("not a consumer group")))
            .with_group_id(GroupId(s("g2")));
        let m = kp::ConsumerGroupDescribeResponse::default().with_groups(vec![group, missing]);
        versioned("consumer_group_describe", 0, v, &enc(&m, v));
    }
}

pub fn share_group_describe() {
    use share_group_describe_response as kp;
    let member = |id: &str| {
        kp::Member::default()
            .with_member_id(s(id))
            .with_member_epoch(3)
            .with_client_id(s("share-client"))
            .with_client_host(s("/10.0.0.2"))
            .with_subscribed_topic_names(vec![TopicName(s("queue"))])
            .with_assignment(kp::Assignment::default().with_topic_partitions(vec![
                kp::TopicPartitions::default()
                    .with_topic_name(TopicName(s("queue")))
                    .with_partitions(vec![1]),
            ]))
    };
    let group = kp::DescribedGroup::default()
        .with_group_id(GroupId(s("sg1")))
        .with_group_state(s("Stable"))
        .with_assignor_name(s("simple"))
        .with_members(vec![member("m1"), member("m2")]);
    let m = kp::ShareGroupDescribeResponse::default().with_groups(vec![group]);
    versioned("share_group_describe", 1, 1, &enc(&m, 1));
}

pub fn describe_share_group_offsets() {
    use describe_share_group_offsets_response as kp;
    let part = |p: i32, start: i64| {
        kp::DescribeShareGroupOffsetsResponsePartition::default()
            .with_partition_index(p)
            .with_start_offset(start)
            .with_leader_epoch(2)
    };
    let topic = kp::DescribeShareGroupOffsetsResponseTopic::default()
        .with_topic_name(TopicName(s("queue")))
        .with_partitions(vec![part(0, 42), part(1, -1)]);
    let group = kp::DescribeShareGroupOffsetsResponseGroup::default()
        .with_group_id(GroupId(s("sg1")))
        .with_topics(vec![topic]);
    let failed = kp::DescribeShareGroupOffsetsResponseGroup::default()
        .with_group_id(GroupId(s("sg2")))
        .with_error_code(16)
        .with_error_message(Some(s("not coordinator")));
    let m = kp::DescribeShareGroupOffsetsResponse::default().with_groups(vec![group, failed]);
    versioned("describe_share_group_offsets", 0, 0, &enc(&m, 0));
}
