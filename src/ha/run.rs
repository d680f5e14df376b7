//! The member task of one cluster: drives [`Member`] over the wire, on connections of its
//! own (a JoinGroup waits for the whole rebalance and a broker answers one connection's
//! requests in order, so sharing the collector's would delay both), and publishes each
//! change of ownership: to the state first (what is served), then to the collector.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::assign::{self, PROTOCOL_NAME, PROTOCOL_TYPE};
use super::member::{Action, Member, MemberSettings, Unreachable};
use super::Ownership;
use crate::config::{ClusterSettings, ExporterConfig};
use crate::kafka::requests::JoinGroupParams;
use crate::kafka::{Cluster, KafkaError, ResponseBudget};
use crate::state::ExporterState;

/// Everything the member task of one cluster needs.
pub struct MemberTask {
    pub settings: Arc<ClusterSettings>,
    pub exporter: Arc<ExporterConfig>,
    pub budget: ResponseBudget,
    pub identity: String,
    pub state: Arc<ExporterState>,
    /// What the collector reads before each cycle.
    pub ownership: watch::Sender<Arc<Ownership>>,
    /// Groups the collector's last cycle listed (for the sharding decision).
    pub groups_seen: watch::Receiver<u32>,
}

const CONNECT_RETRY: Duration = Duration::from_secs(1);

/// Run until `shutdown`, then leave the group (so the others take over at once, not after
/// a session timeout).
pub async fn run(task: MemberTask, mut shutdown: watch::Receiver<bool>) {
    let lc = &task.exporter.leadership;
    let name = task.settings.name.clone();
    let mut member = Member::new(MemberSettings {
        cluster: name.clone(),
        session_timeout: lc.lease_duration,
        heartbeat_interval: lc.grace_period,
        shard_above: lc.shard_groups_above,
    });
    let mut kafka: Option<Cluster> = None;
    let mut published = Ownership::default();
    let mut last_logged: Option<String> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let k = match kafka.take() {
            Some(k) => k,
            None => {
                let config = client_config(&task);
                tokio::select! {
                    r = Cluster::connect(config) => match r {
                        Ok(k) => k,
                        Err(e) => {
                            tracing::warn!(cluster = %name, error = %e, "coordination: no broker answers; owning nothing of this cluster");
                            member.fence(Instant::now());
                            publish(&task, &member, &mut published);
                            tokio::select! {
                                _ = tokio::time::sleep(CONNECT_RETRY) => {}
                                _ = shutdown.changed() => break,
                            }
                            continue;
                        }
                    },
                    _ = shutdown.changed() => break,
                }
            }
        };
        let k = kafka.insert(k);
        // The fence is kept by the clock, not by the answers: a request stuck on a frozen
        // coordinator is abandoned when the session would have expired.
        let fence = member.fence_at();
        let fenced = async {
            match fence {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let stop = tokio::select! {
            () = step(&task, k, &mut member) => false,
            () = fenced => {
                k.forget_coordinator(&task.exporter.leadership.lease_name);
                false
            }
            _ = shutdown.changed() => true,
        };
        log_problem(&task, &member, &mut last_logged);
        member.fence(Instant::now());
        publish(&task, &member, &mut published);
        if stop {
            break;
        }
    }
    member.leave();
    publish(&task, &member, &mut published);
    if let Some(k) = kafka {
        leave(&task, &k, &member).await;
    }
}

/// LeaveGroup, so the others rebalance at once instead of after a session timeout.
async fn leave(task: &MemberTask, k: &Cluster, member: &Member) {
    if member.member_id.is_empty() {
        return;
    }
    let group = &task.exporter.leadership.lease_name;
    let left = tokio::time::timeout(
        Duration::from_secs(1),
        k.leave_group(group, &member.member_id),
    )
    .await;
    tracing::info!(cluster = %task.settings.name, ?left, "left the coordination group");
}

/// Logs each new problem once (a join refused by an ACL is retried every few seconds).
fn log_problem(task: &MemberTask, member: &Member, last_logged: &mut Option<String>) {
    if member.last_error != *last_logged {
        if let Some(e) = &member.last_error {
            tracing::warn!(cluster = %task.settings.name, group = %task.exporter.leadership.lease_name, error = %e, "coordination: no assignment yet, owning nothing of this cluster (retrying)");
        }
        last_logged.clone_from(&member.last_error);
    }
}

/// One action of the member.
async fn step(task: &MemberTask, k: &Cluster, member: &mut Member) {
    let lc = &task.exporter.leadership;
    let group = lc.lease_name.as_str();
    if std::mem::take(&mut member.rediscover) {
        // Brokers found down before may be up again, and the coordinator may have moved.
        k.begin_cycle();
    }
    match member.next().clone() {
        Action::Join => {
            k.begin_cycle();
            let metadata = assign::encode_metadata(&task.identity, *task.groups_seen.borrow());
            let params = JoinGroupParams {
                group,
                member_id: &member.member_id,
                session_timeout_ms: millis(lc.lease_duration),
                rebalance_timeout_ms: millis(lc.lease_duration),
                protocol_type: PROTOCOL_TYPE,
                protocol_name: PROTOCOL_NAME,
                metadata,
            };
            let r = k.join_group(&params).await;
            member.on_join(Instant::now(), r.map_err(unreachable));
            if let Some(e) = &member.last_error {
                tracing::debug!(cluster = %task.settings.name, error = %e, "coordination: join");
            }
        }
        Action::Sync(assignments) => {
            let sent = Instant::now();
            let r = k
                .sync_group(
                    group,
                    member.generation,
                    &member.member_id,
                    (PROTOCOL_TYPE, PROTOCOL_NAME),
                    &assignments,
                )
                .await;
            member.on_sync(Instant::now(), sent, r.map_err(unreachable));
        }
        Action::Heartbeat { at } => heartbeat(task, k, member, at).await,
        Action::Backoff { at } => {
            tokio::time::sleep_until(at.into()).await;
            member.backoff_over();
        }
    }
}

/// Wait until `at` (rejoining instead when the group count calls for resharding), then
/// heartbeat.
async fn heartbeat(task: &MemberTask, k: &Cluster, member: &mut Member, at: Instant) {
    let lc = &task.exporter.leadership;
    let group = lc.lease_name.as_str();
    let mut seen = task.groups_seen.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(at.into()) => break,
            r = seen.changed() => {
                if r.is_err() {
                    // The collector is gone (shutting down): heartbeat on.
                    tokio::time::sleep_until(at.into()).await;
                    break;
                }
                if reshard_needed(member, *seen.borrow(), lc.shard_groups_above) {
                    tracing::info!(cluster = %task.settings.name, groups = *seen.borrow(), threshold = lc.shard_groups_above, "the number of consumer groups crossed shard_groups_above: rebalancing");
                    member.rejoin_now(Instant::now());
                    return;
                }
            }
        }
    }
    let sent = Instant::now();
    // Never past the fence: a heartbeat stuck on a dead coordinator counts as none.
    let limit = lc.grace_period.max(Duration::from_secs(1));
    let beat = k.heartbeat(group, member.generation, &member.member_id);
    let r = match tokio::time::timeout(limit, beat).await {
        Ok(r) => r.map_err(unreachable),
        Err(_) => {
            k.forget_coordinator(group);
            Err(Unreachable(format!(
                "Heartbeat: no answer within {limit:?}"
            )))
        }
    };
    member.on_heartbeat(Instant::now(), sent, r);
}

/// The cluster's owner saw the group count cross the threshold the assignment was made
/// with: only a new rebalance can share the groups out (or take them back).
fn reshard_needed(member: &Member, seen: u32, threshold: u32) -> bool {
    member.assignment().is_some_and(|a| {
        a.owner == member.member_id && a.members.len() > 1 && (seen > threshold) != a.sharded
    })
}

fn unreachable(e: KafkaError) -> Unreachable {
    Unreachable(e.to_string())
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// The collector's client settings, with a request timeout that outlasts a rebalance
/// (JoinGroup is answered when every member has joined, up to the rebalance timeout).
fn client_config(task: &MemberTask) -> crate::kafka::ClientConfig {
    let mut config = crate::collect::client_config(&task.settings, &task.exporter, &task.budget);
    let rebalance = task.exporter.leadership.lease_duration + Duration::from_secs(5);
    config.connection.request_timeout = config.connection.request_timeout.max(rebalance);
    config
}

/// Publish a change of ownership: to the state first (so what is given up is no longer
/// served before anyone else can take it), then to the collector.
fn publish(task: &MemberTask, member: &Member, published: &mut Ownership) {
    let now = Ownership {
        member_id: member.member_id.clone(),
        assignment: member.assignment().cloned(),
        generation: member.generation,
    };
    if now == *published {
        return;
    }
    let name = &task.settings.name;
    match &now.assignment {
        _ if now.assignment == published.assignment => {}
        Some(a) => {
            tracing::info!(cluster = %name, generation = now.generation, owner = now.cluster(), sharded = a.sharded, members = a.members.len(), "coordination: assignment received")
        }
        None => {
            tracing::info!(cluster = %name, reason = member.last_error.as_deref().unwrap_or("rebalance"), "coordination: owning nothing of this cluster until the next assignment")
        }
    }
    task.state.set_ownership(name, now.clone());
    let _ = task.ownership.send(Arc::new(now.clone()));
    *published = now;
}
