//! Writes the seed corpus under `fuzz/seeds/<target>/` (run from /work/main/fuzz:
//! `cargo run --example gen_seeds`). Response bodies are encoded by kafka-protocol (an
//! independent encoder), one seed per supported version, each prefixed by the selector byte
//! that makes the fuzz target pick that version first. Record and Fetch seeds are taken from
//! `proto-tests/fixtures`.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

#[path = "gen_seeds/group_types.rs"]
mod group_types;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn enc<M: Encodable>(msg: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encode v{version}: {e}"));
    buf.freeze()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("seeds").join(target);
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

/// `[selector][body]` where selector = version - min.
fn versioned(target: &str, min: i16, version: i16, body: &[u8]) {
    let mut out = vec![u8::try_from(version - min).expect("selector")];
    out.extend_from_slice(body);
    write(target, &format!("v{version}.bin"), &out);
}

fn fixture(rel: &str) -> Vec<u8> {
    fs::read(root().join("../proto-tests/fixtures").join(rel)).expect("fixture")
}

fn api_versions() {
    use api_versions_response as kp;
    for v in 0..=3 {
        let mut m = kp::ApiVersionsResponse::default().with_api_keys(vec![
            kp::ApiVersion::default().with_api_key(3).with_min_version(0).with_max_version(12),
            kp::ApiVersion::default().with_api_key(18).with_min_version(0).with_max_version(3),
        ]);
        if v >= 1 {
            m = m.with_throttle_time_ms(5);
        }
        if v >= 3 {
            m = m
                .with_supported_features(vec![kp::SupportedFeatureKey::default()
                    .with_name(s("metadata.version"))
                    .with_min_version(1)
                    .with_max_version(20)])
                .with_finalized_features_epoch(7)
                .with_finalized_features(vec![kp::FinalizedFeatureKey::default()
                    .with_name(s("metadata.version"))
                    .with_min_version_level(1)
                    .with_max_version_level(20)]);
        }
        versioned("api_versions", 0, v, &enc(&m, v));
    }
    // KIP-511: a v0 body with UNSUPPORTED_VERSION answering a v3 request.
    let m = kp::ApiVersionsResponse::default()
        .with_error_code(35)
        .with_api_keys(vec![kp::ApiVersion::default().with_api_key(18).with_max_version(2)]);
    let mut out = vec![3u8];
    out.extend_from_slice(&enc(&m, 0));
    write("api_versions", "v3-unsupported-v0-body.bin", &out);
}

fn metadata() {
    use metadata_response as kp;
    for v in 1..=12 {
        let broker = |id: i32| {
            kp::MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(s("broker.example"))
                .with_port(9092)
                .with_rack((id == 1).then(|| s("rack-a")))
        };
        let part = |p: i32| {
            let mut k = kp::MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(1))
                .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                .with_isr_nodes(vec![BrokerId(1)]);
            if v >= 7 {
                k = k.with_leader_epoch(3);
            }
            if v >= 5 {
                k = k.with_offline_replicas(vec![BrokerId(2)]);
            }
            k
        };
        let mut topic = kp::MetadataResponseTopic::default()
            .with_name(Some(TopicName(s("orders"))))
            .with_is_internal(false)
            .with_partitions(vec![part(0), part(1)]);
        if v >= 8 {
            topic = topic.with_topic_authorized_operations(0x0ff8);
        }
        let mut m = kp::MetadataResponse::default()
            .with_brokers(vec![broker(1), broker(2)])
            .with_controller_id(BrokerId(1))
            .with_topics(vec![topic]);
        if v >= 2 {
            m = m.with_cluster_id(Some(s("cluster-1")));
        }
        if v >= 3 {
            m = m.with_throttle_time_ms(0);
        }
        versioned("metadata", 1, v, &enc(&m, v));
    }
}

fn list_groups() {
    use list_groups_response as kp;
    for v in 0..=5 {
        let group = |g: &str| {
            let mut k = kp::ListedGroup::default()
                .with_group_id(GroupId(s(g)))
                .with_protocol_type(s("consumer"));
            if v >= 4 {
                k = k.with_group_state(s("Stable"));
            }
            if v >= 5 {
                k = k.with_group_type(s("classic"));
            }
            k
        };
        let mut m = kp::ListGroupsResponse::default().with_groups(vec![group("g1"), group("g2")]);
        if v >= 1 {
            m = m.with_throttle_time_ms(1);
        }
        versioned("list_groups", 0, v, &enc(&m, v));
    }
}

fn find_coordinator() {
    use find_coordinator_response as kp;
    for v in 0..=5 {
        let mut m = kp::FindCoordinatorResponse::default();
        if v >= 4 {
            let c = |k: &str| {
                kp::Coordinator::default()
                    .with_key(s(k))
                    .with_node_id(BrokerId(2))
                    .with_host(s("broker-2.example"))
                    .with_port(9093)
            };
            m = m.with_coordinators(vec![
                c("g1"),
                c("g2").with_error_code(15).with_error_message(Some(s("not available"))),
            ]);
        } else {
            m = m
                .with_node_id(BrokerId(2))
                .with_host(s("broker-2.example"))
                .with_port(9093);
        }
        if v >= 1 {
            m = m.with_throttle_time_ms(1);
            if v < 4 {
                m = m.with_error_message(Some(s("none")));
            }
        }
        versioned("find_coordinator", 0, v, &enc(&m, v));
    }
}

fn assignment_bytes(version: i16) -> Bytes {
    let a = consumer_protocol_assignment::ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![
            consumer_protocol_assignment::TopicPartition::default()
                .with_topic(TopicName(s("orders")))
                .with_partitions(vec![0, 2]),
            consumer_protocol_assignment::TopicPartition::default()
                .with_topic(TopicName(s("payments")))
                .with_partitions(vec![1]),
        ])
        .with_user_data(Some(Bytes::from_static(b"ud")));
    let mut out = BytesMut::new();
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&enc(&a, version));
    out.freeze()
}

fn describe_groups() {
    use describe_groups_response as kp;
    for v in 0..=5 {
        let mut member = kp::DescribedGroupMember::default()
            .with_member_id(s("consumer-1-abc"))
            .with_client_id(s("consumer-1"))
            .with_client_host(s("/10.0.0.1"))
            .with_member_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 0]))
            .with_member_assignment(assignment_bytes(1));
        if v >= 4 {
            member = member.with_group_instance_id(Some(s("static-1")));
        }
        let mut group = kp::DescribedGroup::default()
            .with_group_id(GroupId(s("g1")))
            .with_group_state(s("Stable"))
            .with_protocol_type(s("consumer"))
            .with_protocol_data(s("range"))
            .with_members(vec![member]);
        if v >= 3 {
            group = group.with_authorized_operations(0x0ff8);
        }
        let mut m = kp::DescribeGroupsResponse::default().with_groups(vec![group]);
        if v >= 1 {
            m = m.with_throttle_time_ms(1);
        }
        versioned("describe_groups", 0, v, &enc(&m, v));
    }
}

fn offset_fetch() {
    use offset_fetch_response as kp;
    for v in 1..=8 {
        let m = if v >= 8 {
            let part = |p: i32| {
                kp::OffsetFetchResponsePartitions::default()
                    .with_partition_index(p)
                    .with_committed_offset(if p == 0 { 42 } else { -1 })
                    .with_committed_leader_epoch(3)
                    .with_metadata(Some(s("")))
            };
            let group = |g: &str| {
                kp::OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(s(g)))
                    .with_topics(vec![kp::OffsetFetchResponseTopics::default()
                        .with_name(TopicName(s("orders")))
                        .with_partitions(vec![part(0), part(1)])])
            };
            kp::OffsetFetchResponse::default()
                .with_throttle_time_ms(1)
                .with_groups(vec![group("g1"), group("g2")])
        } else {
            let part = |p: i32| {
                let mut k = kp::OffsetFetchResponsePartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(if p == 0 { 42 } else { -1 })
                    .with_metadata(Some(s("")));
                if v >= 5 {
                    k = k.with_committed_leader_epoch(3);
                }
                k
            };
            let mut m = kp::OffsetFetchResponse::default().with_topics(vec![
                kp::OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s("orders")))
                    .with_partitions(vec![part(0), part(1)]),
            ]);
            if v >= 3 {
                m = m.with_throttle_time_ms(1);
            }
            m
        };
        versioned("offset_fetch", 1, v, &enc(&m, v));
    }
}

fn list_offsets() {
    use list_offsets_response as kp;
    for v in 1..=7 {
        let part = |p: i32| {
            let mut k = kp::ListOffsetsPartitionResponse::default()
                .with_partition_index(p)
                .with_timestamp(-1)
                .with_offset(1000 + i64::from(p));
            if v >= 4 {
                k = k.with_leader_epoch(3);
            }
            k
        };
        let mut m = kp::ListOffsetsResponse::default().with_topics(vec![
            kp::ListOffsetsTopicResponse::default()
                .with_name(TopicName(s("orders")))
                .with_partitions(vec![part(0), part(1)]),
        ]);
        if v >= 2 {
            m = m.with_throttle_time_ms(1);
        }
        versioned("list_offsets", 1, v, &enc(&m, v));
    }
}

fn fetch() {
    use fetch_response as kp;
    let records = Bytes::from(fixture("records/none.bin"));
    for v in 4..=12 {
        let mut part = kp::PartitionData::default()
            .with_partition_index(0)
            .with_high_watermark(8)
            .with_last_stable_offset(8)
            .with_aborted_transactions(Some(vec![kp::AbortedTransaction::default()
                .with_producer_id(ProducerId(7))
                .with_first_offset(2)]))
            .with_records(Some(records.clone()));
        if v >= 5 {
            part = part.with_log_start_offset(0);
        }
        if v >= 11 {
            part = part.with_preferred_read_replica(BrokerId(2));
        }
        let mut m = kp::FetchResponse::default().with_responses(vec![
            kp::FetchableTopicResponse::default()
                .with_topic(TopicName(s("orders")))
                .with_partitions(vec![part]),
        ]);
        if v >= 7 {
            m = m.with_session_id(9);
        }
        versioned("fetch", 4, v, &enc(&m, v));
    }
    // The real broker responses from proto-tests (frames without the size prefix): strip the
    // response header (correlation id; v12 also an empty tagged-field section).
    let v4 = fixture("responses/fetch_v4.bin");
    let v12 = fixture("responses/fetch_v12.bin");
    let mut out = vec![0u8];
    out.extend_from_slice(&v4[4..]);
    write("fetch", "fixture-v4.bin", &out);
    let mut out = vec![8u8];
    out.extend_from_slice(&v12[5..]);
    write("fetch", "fixture-v12.bin", &out);
}

fn describe_configs() {
    use describe_configs_response as kp;
    for v in 1..=4 {
        let mut entry = kp::DescribeConfigsResourceResult::default()
            .with_name(s("retention.ms"))
            .with_value(Some(s("604800000")))
            .with_config_source(1)
            .with_synonyms(vec![kp::DescribeConfigsSynonym::default()
                .with_name(s("log.retention.ms"))
                .with_value(Some(s("604800000")))
                .with_source(5)]);
        if v >= 3 {
            entry = entry.with_config_type(5).with_documentation(Some(s("doc")));
        }
        let secret = kp::DescribeConfigsResourceResult::default()
            .with_name(s("sasl.jaas.config"))
            .with_value(None)
            .with_is_sensitive(true)
            .with_config_source(4);
        let m = kp::DescribeConfigsResponse::default().with_results(vec![
            kp::DescribeConfigsResult::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_configs(vec![entry, secret]),
        ]);
        versioned("describe_configs", 1, v, &enc(&m, v));
    }
}

fn sasl() {
    for v in 0..=1i16 {
        let m = sasl_handshake_response::SaslHandshakeResponse::default()
            .with_mechanisms(vec![s("PLAIN"), s("SCRAM-SHA-512")]);
        // selector bit 0 = 0: handshake; (selector >> 1) picks the version.
        let mut out = vec![u8::try_from(v << 1).expect("selector")];
        out.extend_from_slice(&enc(&m, v));
        write("sasl", &format!("handshake-v{v}.bin"), &out);
    }
    for v in 0..=2i16 {
        let mut m = sasl_authenticate_response::SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::from_static(
                b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            ));
        if v >= 1 {
            m = m.with_session_lifetime_ms(3_600_000);
        }
        let mut out = vec![u8::try_from(v << 1 | 1).expect("selector")];
        out.extend_from_slice(&enc(&m, v));
        write("sasl", &format!("authenticate-v{v}.bin"), &out);
    }
}

fn assignment() {
    for v in 0..=3 {
        write("assignment", &format!("v{v}.bin"), &assignment_bytes(v));
    }
}

fn sasl_exchange() {
    // `[mechanism][mode][len u16 BE][server message]...`; mechanism 0 PLAIN, 1 SCRAM-SHA-256,
    // 2 SCRAM-SHA-512, 3 OAUTHBEARER; mode bit 0 prefixes server-first with `r=<client nonce>`.
    let seed = |name: &str, mech: u8, mode: u8, messages: &[&[u8]]| {
        let mut out = vec![mech, mode];
        for m in messages {
            out.extend_from_slice(&u16::try_from(m.len()).expect("len").to_be_bytes());
            out.extend_from_slice(m);
        }
        write("sasl_exchange", &format!("{name}.bin"), &out);
    };
    let first: &[u8] = b"3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=16";
    seed("scram256-final", 1, 1, &[first, b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="]);
    seed("scram512-error", 2, 1, &[first, b"e=invalid-proof"]);
    seed("scram256-raw", 1, 0, &[b"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=16"]);
    seed(
        "oauthbearer-error",
        3,
        0,
        &[br#"{"status":"invalid_token","scope":"kafka","openid-configuration":"https://idp.example/.well-known/openid-configuration"}"#],
    );
    seed("plain", 0, 0, &[b"unexpected"]);
}

fn records() {
    // `[n][target i64 BE][n % 4 × (producer_id, first_offset)][records]`
    let prefixed = |name: &str, file: &str, target: i64, aborted: &[(i64, i64)]| {
        let mut out = vec![u8::try_from(aborted.len()).expect("n")];
        out.extend_from_slice(&target.to_be_bytes());
        for (pid, first) in aborted {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&first.to_be_bytes());
        }
        out.extend_from_slice(&fixture(&format!("records/{file}.bin")));
        write("records", &format!("{name}.bin"), &out);
    };
    for file in [
        "none",
        "none-truncated",
        "gzip",
        "gzip-rdkafka",
        "snappy-xerial",
        "snappy-raw",
        "lz4",
        "lz4-rdkafka",
        "zstd",
        "zstd-rdkafka",
        "logappendtime-none",
        "logappendtime-zstd",
    ] {
        prefixed(file, file, 6, &[]);
    }
    prefixed("none-target0", "none", 0, &[]);
    // txn-control: the aborted list names the producer of its first batch (baseOffset 0).
    let txn = fixture("records/txn-control.bin");
    let pid = i64::from_be_bytes(txn[43..51].try_into().expect("pid"));
    prefixed("txn-control", "txn-control", 1, &[]);
    prefixed("txn-control-aborted", "txn-control", 1, &[(pid, 0)]);
    // Legacy message sets (magic 0/1, every codec) and a v0/v1/v2 mix.
    let with_n = |dir: &str, name: &str, n: u8, target: i64| {
        let mut out = vec![n];
        out.extend_from_slice(&target.to_be_bytes());
        out.extend_from_slice(&fixture(&format!("{dir}/{name}.bin")));
        write("records", &format!("{dir}-{name}-n{n}.bin"), &out);
    };
    let legacy = |name: &str, n: u8, target: i64| with_n("legacy", name, n, target);
    for name in [
        "magic0-none",
        "magic0-gzip",
        "magic0-snappy",
        "magic0-lz4",
        "magic1-none",
        "magic1-gzip",
        "magic1-snappy",
        "magic1-lz4",
        "magic1-gzip-compacted",
        "magic1-logappendtime-lz4",
        "magic1-no-timestamp",
        "mixed-v0-v1-v2",
    ] {
        legacy(name, 0, 6);
    }
    // whole_up_to 0 (n = 4): the cut batch is answered from, unverified.
    with_n("records", "none-truncated", 4, 6);
    legacy("mixed-v0-v1-v2", 4, 3);
}

fn frame() {
    // `[api selector][max selector][chunking seed][stream]`; selector 16 = Fetch v4,
    // 18 = Fetch v12 (see APIS in fuzz_targets/frame.rs); max selector 1 = 16 KiB.
    for (name, api_sel, file) in [("fetch-v4", 16u8, "fetch_v4"), ("fetch-v12", 18, "fetch_v12")] {
        let frame = fixture(&format!("responses/{file}.bin"));
        let mut out = vec![api_sel, 1, 0x5a];
        for _ in 0..2 {
            out.extend_from_slice(&u32::try_from(frame.len()).expect("len").to_be_bytes());
            out.extend_from_slice(&frame);
        }
        write("frame", &format!("{name}.bin"), &out);
    }
    // A header-v1 frame with tagged fields, then a frame too large for a 63-byte cap.
    let mut out = vec![7u8, 63 << 2, 3];
    out.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 9, 1, 1, 2, 7, 7, 0xBB]);
    out.extend_from_slice(&[0, 0, 0, 64]);
    write("frame", "tagged-then-oversized.bin", &out);
}

fn main() {
    let _ = fs::remove_dir_all(root().join("seeds"));
    api_versions();
    metadata();
    list_groups();
    find_coordinator();
    describe_groups();
    offset_fetch();
    list_offsets();
    fetch();
    describe_configs();
    sasl();
    assignment();
    records();
    frame();
    sasl_exchange();
    group_types::consumer_group_describe();
    group_types::share_group_describe();
    group_types::describe_share_group_offsets();
    check();
}

/// Every response seed must decode cleanly with tidemark at the version its selector picks, so
/// the fuzzer starts from inputs that reach the end of each decoder.
fn check() {
    use tidemark::kafka::wire::*;
    fn each(target: &str, mut f: impl FnMut(u8, Bytes) -> bool) {
        let dir = root().join("seeds").join(target);
        for entry in fs::read_dir(&dir).expect("seed dir") {
            let path = entry.expect("entry").path();
            let data = fs::read(&path).expect("read");
            let (sel, body) = data.split_first().expect("non-empty seed");
            assert!(f(*sel, Bytes::copy_from_slice(body)), "{} does not decode", path.display());
        }
    }
    macro_rules! check {
        ($target:literal, $ty:ty) => {
            each($target, |sel, body| {
                // A single-version decoder has a span of 1: any selector picks it.
                #[allow(clippy::modulo_one)]
                let v = <$ty>::MIN_VERSION + i16::from(sel) % (<$ty>::MAX_VERSION - <$ty>::MIN_VERSION + 1);
                match <$ty>::decode(body, v) {
                    Ok(_) => true,
                    Err(e) => { eprintln!("{}: {e}", $target); false }
                }
            })
        };
    }
    check!("api_versions", api_versions::ApiVersionsResponse);
    check!("metadata", metadata::MetadataResponse);
    check!("list_groups", list_groups::ListGroupsResponse);
    check!("find_coordinator", find_coordinator::FindCoordinatorResponse);
    check!("describe_groups", describe_groups::DescribeGroupsResponse);
    check!("offset_fetch", offset_fetch::OffsetFetchResponse);
    check!("list_offsets", list_offsets::ListOffsetsResponse);
    check!("fetch", fetch::FetchResponse);
    check!("describe_configs", describe_configs::DescribeConfigsResponse);
    check!("consumer_group_describe", consumer_group_describe::ConsumerGroupDescribeResponse);
    check!("share_group_describe", share_group_describe::ShareGroupDescribeResponse);
    check!(
        "describe_share_group_offsets",
        describe_share_group_offsets::DescribeShareGroupOffsetsResponse
    );
    each("sasl", |sel, body| {
        let v = i16::from(sel >> 1);
        if sel & 1 == 0 {
            sasl::SaslHandshakeResponse::decode(body, v).is_ok()
        } else {
            sasl::SaslAuthenticateResponse::decode(body, v).is_ok()
        }
    });
    for v in 0..=3 {
        let r = assignment::ConsumerAssignment::decode(assignment_bytes(v));
        assert!(r.is_ok(), "assignment v{v}: {r:?}");
    }
    println!("all response seeds decode");
    check_scram_path();
}

/// The structured SCRAM seed (mode 1) must get past rsasl's nonce check: the server-first
/// message built as the fuzz target builds it yields a client-final message, and the made-up
/// server signature is then refused as a signature mismatch (the deepest SCRAM path).
fn check_scram_path() {
    use tidemark::kafka::sasl::{Credentials, Exchange, Mechanism, Sasl, Secret, Step};
    let sasl = Sasl {
        mechanism: Mechanism::ScramSha256,
        credentials: Credentials::Password {
            username: "tidemark".to_owned(),
            password: Secret::new("pencil"),
        },
    };
    let mut exchange = Exchange::start(&sasl).expect("start");
    let Ok(Step::Send(client_first)) = exchange.step(None) else {
        panic!("no client-first message");
    };
    let nonce = client_first
        .split(|b| *b == b',')
        .find_map(|a| a.strip_prefix(b"r="))
        .expect("client nonce");
    let mut server_first = b"r=".to_vec();
    server_first.extend_from_slice(nonce);
    server_first.extend_from_slice(b"3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=16");
    let step = exchange.step(Some(&server_first));
    assert!(matches!(step, Ok(Step::Send(_)) | Ok(Step::SendLast(_))), "server-first refused: {step:?}");
    let err = exchange
        .step(Some(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="))
        .expect_err("a made-up server signature must fail");
    assert!(err.contains("signature"), "unexpected error: {err}");
    println!("SCRAM seed reaches server-final verification");
}
