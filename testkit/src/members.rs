//! A real consumer-group member, built on [`Connection`] and independent of tidemark:
//! JoinGroup with protocol type `consumer` (range and roundrobin, ConsumerProtocol
//! subscription metadata), SyncGroup (the leader computes a range assignment and sends
//! ConsumerProtocol assignment bytes), then heartbeats from a background task until the
//! member is dropped or [`GroupMember::leave`] is called. Commits made through
//! [`GroupMember::commit`] carry the member id and generation and go into a [`Ledger`].
//!
//! [`describe_group`] reads DescribeGroups with a raw connection, so tests can assert what
//! the broker really reports about members (Tansu leaves host, client id and assignment
//! empty) instead of trusting the exporter.
//!
//! A join waits for the broker's rebalance delay (on Tansu half the session timeout, about
//! 3 s with [`SESSION_TIMEOUT_MS`]): every request here has a 30 s limit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ledger::Ledger;
use super::wire::Connection;
use super::workload::{offset_commit_request, record_commits};
use super::{HarnessError, Result};

/// Limit for every request of a member (a first JoinGroup waits for the rebalance delay).
pub const MEMBER_TIMEOUT: Duration = Duration::from_secs(30);
/// Session timeout the member asks for: Kafka's minimum (`group.min.session.timeout.ms`).
/// Tansu holds a JoinGroup for half the session timeout before it answers (measured:
/// 30 s → 15 s, 10 s → 5 s), so a short session makes the join quick.
pub const SESSION_TIMEOUT_MS: i32 = 6_000;
/// Rebalance timeout the member asks for.
pub const REBALANCE_TIMEOUT_MS: i32 = 60_000;
/// Time between heartbeats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);
/// The ConsumerProtocol versions written (subscription v1, assignment v1).
const SUBSCRIPTION_VERSION: i16 = 1;
const ASSIGNMENT_VERSION: i16 = 1;
/// Kafka error MEMBER_ID_REQUIRED: rejoin with the member id the broker handed out.
const MEMBER_ID_REQUIRED: i16 = 79;

const JOIN_GROUP_MAX: i16 = 7;
const SYNC_GROUP_MAX: i16 = 5;
const HEARTBEAT_MAX: i16 = 4;
const LEAVE_GROUP_MAX: i16 = 4;
const OFFSET_COMMIT_MAX: i16 = 8;
const DESCRIBE_GROUPS_MAX: i16 = 5;

/// What the heartbeat task has seen so far.
#[derive(Clone, Debug, Default)]
pub struct HeartbeatStatus {
    /// Heartbeats answered with error code 0.
    pub ok: u64,
    /// Heartbeats answered with an error code (e.g. 27 REBALANCE_IN_PROGRESS).
    pub errors: u64,
    /// The last non-zero error code, or the last transport error.
    pub last_error: Option<String>,
}

/// One member of a consumer group, alive (heartbeating) until dropped.
pub struct GroupMember {
    pub group: String,
    /// The member id the coordinator assigned.
    pub member_id: String,
    pub generation_id: i32,
    /// Member id of the group leader (this member when it was alone).
    pub leader_id: String,
    /// The protocol the coordinator chose ("range" or "roundrobin").
    pub protocol_name: String,
    /// This member's assignment as SyncGroup returned it: topic -> partitions.
    pub assignment: BTreeMap<String, Vec<i32>>,
    coordinator: String,
    conn: Connection,
    heartbeat_status: Arc<Mutex<HeartbeatStatus>>,
    stop: watch::Sender<bool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember")
            .field("group", &self.group)
            .field("member_id", &self.member_id)
            .field("generation_id", &self.generation_id)
            .field("assignment", &self.assignment)
            .finish()
    }
}

impl GroupMember {
    /// Joins `group` at its coordinator (`"host:port"`) subscribed to `topics` (name,
    /// partition count), completes SyncGroup and starts heartbeating. Panics on failure.
    pub async fn join(coordinator: &str, group: &str, topics: &[(&str, i32)]) -> GroupMember {
        Self::try_join(coordinator, group, topics)
            .await
            .unwrap_or_else(|e| panic!("joining group {group}: {e}"))
    }

    /// [`GroupMember::join`] without the panic.
    pub async fn try_join(
        coordinator: &str,
        group: &str,
        topics: &[(&str, i32)],
    ) -> Result<GroupMember> {
        let mut conn = Connection::connect_with_timeout(coordinator, MEMBER_TIMEOUT).await?;
        let metadata = subscription_metadata(topics.iter().map(|(t, _)| *t))?;
        let join_version = conn.version(ApiKey::JoinGroup, JOIN_GROUP_MAX)?;
        let mut member_id = String::new();
        let joined: JoinGroupResponse = loop {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(str_bytes(&member_id))
                .with_protocol_type(str_bytes("consumer"))
                .with_protocols(
                    ["range", "roundrobin"]
                        .iter()
                        .map(|name| {
                            JoinGroupRequestProtocol::default()
                                .with_name(str_bytes(name))
                                .with_metadata(metadata.clone())
                        })
                        .collect(),
                );
            let resp: JoinGroupResponse =
                conn.request(ApiKey::JoinGroup, join_version, &req).await?;
            if resp.error_code == MEMBER_ID_REQUIRED && member_id.is_empty() {
                // KIP-394: the first join only hands out a member id.
                member_id = resp.member_id.as_str().to_owned();
                continue;
            }
            HarnessError::check(resp.error_code, || {
                format!("JoinGroup v{join_version} of {group} as {member_id:?}")
            })?;
            break resp;
        };
        let member_id = joined.member_id.as_str().to_owned();
        let leader_id = joined.leader.as_str().to_owned();
        let protocol_name = joined
            .protocol_name
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "range".to_owned());
        let generation_id = joined.generation_id;

        // The leader assigns for everyone (it is the only one that gets the member list).
        let assignments = if leader_id == member_id {
            let partitions: BTreeMap<&str, i32> = topics.iter().copied().collect();
            let mut subscriptions = Vec::new();
            for m in &joined.members {
                let topics = decode_subscription(&m.metadata)?;
                subscriptions.push((m.member_id.as_str().to_owned(), topics));
            }
            range_assign(&subscriptions, &partitions)
                .into_iter()
                .map(|(member, assigned)| {
                    Ok(SyncGroupRequestAssignment::default()
                        .with_member_id(str_bytes(&member))
                        .with_assignment(encode_assignment(&assigned)?))
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let sync_version = conn.version(ApiKey::SyncGroup, SYNC_GROUP_MAX)?;
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(&member_id))
            .with_protocol_type(Some(str_bytes("consumer")))
            .with_protocol_name(Some(str_bytes(&protocol_name)))
            .with_assignments(assignments);
        let synced: SyncGroupResponse = conn.request(ApiKey::SyncGroup, sync_version, &req).await?;
        HarnessError::check(synced.error_code, || {
            format!("SyncGroup v{sync_version} of {group} as {member_id}")
        })?;
        let assignment = decode_assignment(&synced.assignment)?;

        let heartbeat_conn = Connection::connect_with_timeout(coordinator, MEMBER_TIMEOUT).await?;
        let heartbeat_status = Arc::new(Mutex::new(HeartbeatStatus::default()));
        let (stop, stopped) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat_loop(
            heartbeat_conn,
            group.to_owned(),
            member_id.clone(),
            generation_id,
            heartbeat_status.clone(),
            stopped,
        ));
        Ok(GroupMember {
            group: group.to_owned(),
            member_id,
            generation_id,
            leader_id,
            protocol_name,
            assignment,
            coordinator: coordinator.to_owned(),
            conn,
            heartbeat_status,
            stop,
            heartbeat: Some(heartbeat),
        })
    }

    /// What the heartbeat task has seen so far.
    pub fn heartbeats(&self) -> HeartbeatStatus {
        self.heartbeat_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Commits (topic, partition, offset) as this member (its id and generation) and
    /// records every accepted commit in `ledger`. Panics on failure.
    pub async fn commit(&mut self, ledger: &mut Ledger, offsets: &[(&str, i32, i64)]) {
        if let Err(e) = self.try_commit(ledger, offsets).await {
            panic!("member {} of {}: {e}", self.member_id, self.group);
        }
    }

    /// [`GroupMember::commit`] without the panic.
    pub async fn try_commit(
        &mut self,
        ledger: &mut Ledger,
        offsets: &[(&str, i32, i64)],
    ) -> Result<()> {
        let req = offset_commit_request(&self.group, self.generation_id, &self.member_id, offsets);
        let version = self.conn.version(ApiKey::OffsetCommit, OFFSET_COMMIT_MAX)?;
        let resp: OffsetCommitResponse = self
            .conn
            .request(ApiKey::OffsetCommit, version, &req)
            .await?;
        let committer = format!(
            "member {} (generation {}) ",
            self.member_id, self.generation_id
        );
        record_commits(&resp, &self.group, offsets, &committer, ledger)
    }

    /// Stops heartbeating and leaves the group (LeaveGroup).
    pub async fn leave(mut self) -> Result<()> {
        self.stop_heartbeat().await;
        let version = self.conn.version(ApiKey::LeaveGroup, LEAVE_GROUP_MAX)?;
        let mut req = LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(&self.group)));
        if version >= 3 {
            req = req.with_members(vec![
                MemberIdentity::default().with_member_id(str_bytes(&self.member_id))
            ]);
        } else {
            req = req.with_member_id(str_bytes(&self.member_id));
        }
        let resp: LeaveGroupResponse = self.conn.request(ApiKey::LeaveGroup, version, &req).await?;
        HarnessError::check(resp.error_code, || {
            format!("LeaveGroup of {} by {}", self.group, self.member_id)
        })
    }

    /// The coordinator this member talks to.
    pub fn coordinator(&self) -> &str {
        &self.coordinator
    }

    async fn stop_heartbeat(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.heartbeat.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

async fn heartbeat_loop(
    mut conn: Connection,
    group: String,
    member_id: String,
    generation_id: i32,
    status: Arc<Mutex<HeartbeatStatus>>,
    mut stopped: watch::Receiver<bool>,
) {
    let record = |result: std::result::Result<(), String>| {
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => s.ok += 1,
            Err(e) => {
                s.errors += 1;
                s.last_error = Some(e);
            }
        }
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        let version = match conn.version(ApiKey::Heartbeat, HEARTBEAT_MAX) {
            Ok(v) => v,
            Err(e) => {
                record(Err(e.to_string()));
                return;
            }
        };
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(&group)))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(&member_id));
        let answer: Result<HeartbeatResponse> =
            conn.request(ApiKey::Heartbeat, version, &req).await;
        match answer {
            Ok(r) if r.error_code == 0 => record(Ok(())),
            Ok(r) => record(Err(format!("Heartbeat error code {}", r.error_code))),
            Err(e) => record(Err(e.to_string())),
        }
    }
}

/// Range assignment (the Java consumer's `RangeAssignor`): per topic, the subscribed
/// members sorted by id get consecutive ranges, the first ones one partition more.
pub fn range_assign(
    subscriptions: &[(String, Vec<String>)],
    partitions: &BTreeMap<&str, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = subscriptions
        .iter()
        .map(|(m, _)| (m.clone(), BTreeMap::new()))
        .collect();
    let mut topics: Vec<&str> = subscriptions
        .iter()
        .flat_map(|(_, ts)| ts.iter().map(String::as_str))
        .collect();
    topics.sort_unstable();
    topics.dedup();
    for topic in topics {
        let Some(&count) = partitions.get(topic) else {
            continue;
        };
        let mut members: Vec<&str> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.iter().any(|t| t == topic))
            .map(|(m, _)| m.as_str())
            .collect();
        members.sort_unstable();
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in members.iter().enumerate() {
            let len = per + i32::from((i as i32) < extra);
            let assigned: Vec<i32> = (next..next + len).collect();
            next += len;
            if let Some(member) = out.get_mut(*m) {
                member.insert(topic.to_owned(), assigned);
            }
        }
    }
    out
}

/// ConsumerProtocol subscription bytes: version (i16) + ConsumerProtocolSubscription.
pub fn subscription_metadata<'a>(topics: impl Iterator<Item = &'a str>) -> Result<Bytes> {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(topics.map(str_bytes).collect())
        .with_user_data(None);
    let mut buf = BytesMut::new();
    buf.put_i16(SUBSCRIPTION_VERSION);
    sub.encode(&mut buf, SUBSCRIPTION_VERSION)
        .map_err(|e| HarnessError::protocol(format!("encoding a subscription: {e}")))?;
    Ok(buf.freeze())
}

/// The topics of ConsumerProtocol subscription bytes.
pub fn decode_subscription(bytes: &Bytes) -> Result<Vec<String>> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err(HarnessError::protocol(
            "subscription metadata shorter than 2 bytes",
        ));
    }
    let version = buf.get_i16().clamp(0, 3);
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version)
        .map_err(|e| HarnessError::protocol(format!("decoding a subscription: {e}")))?;
    Ok(sub.topics.iter().map(|t| t.as_str().to_owned()).collect())
}

/// ConsumerProtocol assignment bytes: version (i16) + ConsumerProtocolAssignment.
pub fn encode_assignment(assigned: &BTreeMap<String, Vec<i32>>) -> Result<Bytes> {
    let msg = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            assigned
                .iter()
                .map(|(t, ps)| {
                    AssignedTopic::default()
                        .with_topic(TopicName(str_bytes(t)))
                        .with_partitions(ps.clone())
                })
                .collect(),
        )
        .with_user_data(None);
    let mut buf = BytesMut::new();
    buf.put_i16(ASSIGNMENT_VERSION);
    msg.encode(&mut buf, ASSIGNMENT_VERSION)
        .map_err(|e| HarnessError::protocol(format!("encoding an assignment: {e}")))?;
    Ok(buf.freeze())
}

/// topic -> partitions of ConsumerProtocol assignment bytes (empty bytes: nothing).
pub fn decode_assignment(bytes: &Bytes) -> Result<BTreeMap<String, Vec<i32>>> {
    if bytes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err(HarnessError::protocol("assignment shorter than 2 bytes"));
    }
    let version = buf.get_i16().clamp(0, 3);
    let msg = ConsumerProtocolAssignment::decode(&mut buf, version)
        .map_err(|e| HarnessError::protocol(format!("decoding an assignment: {e}")))?;
    Ok(msg
        .assigned_partitions
        .iter()
        .map(|t| (t.topic.0.as_str().to_owned(), t.partitions.clone()))
        .collect())
}

/// DescribeGroups for one group over a raw connection: what the broker reports.
pub async fn describe_group(conn: &mut Connection, group: &str) -> Result<DescribedGroup> {
    let version = conn.version(ApiKey::DescribeGroups, DESCRIBE_GROUPS_MAX)?;
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
    let resp: DescribeGroupsResponse = conn.request(ApiKey::DescribeGroups, version, &req).await?;
    let g = resp
        .groups
        .into_iter()
        .find(|g| g.group_id.0.as_str() == group)
        .ok_or_else(|| HarnessError::protocol(format!("DescribeGroups: no answer for {group}")))?;
    HarnessError::check(g.error_code, || format!("DescribeGroups for {group}"))?;
    Ok(g)
}

/// Polls DescribeGroups until `group` reports `state` (e.g. "Stable"); the last
/// description. Panics after `timeout` with the last state seen.
pub async fn wait_for_state(
    conn: &mut Connection,
    group: &str,
    state: &str,
    timeout: Duration,
) -> DescribedGroup {
    let deadline = Instant::now() + timeout;
    loop {
        let g = describe_group(conn, group)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if g.group_state.as_str() == state {
            return g;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} is {:?} after {timeout:?}, wanted {state:?}",
            g.group_state.as_str()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}
