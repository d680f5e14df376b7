//! One replica's membership of one cluster's coordination group, as a state machine fed
//! with the answers to its requests (sans-io: the driver in `run.rs` sends what
//! [`Member::next`] asks for, with the time passed in).
//!
//! The rule that keeps every series exactly once: a member owns work only while it is a
//! member of the current generation with its assignment, and it gives everything up
//! *before* it joins again (eager rebalancing), so no two generations' owners overlap. A
//! member that cannot heartbeat gives everything up once a session timeout has passed
//! since it sent the last heartbeat the coordinator answered: by then the coordinator
//! has removed it and handed its work to the others.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::assign::{self, Assignment};
use crate::kafka::wire::membership::{JoinGroupResponse, SyncGroupResponse};

/// Error codes the state machine tells apart (Kafka's numbers).
pub mod code {
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// What the driver does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// JoinGroup with [`Member::member_id`] (empty on a first join).
    Join,
    /// SyncGroup for the generation joined, with these assignments (the leader's; empty
    /// for the others).
    Sync(Vec<(String, Bytes)>),
    /// Heartbeat once `at` is reached.
    Heartbeat { at: Instant },
    /// Wait until `at`, then join (after a failure).
    Backoff { at: Instant },
}

/// Why a request got no answer from the coordinator (transport failure, timeout, or no
/// coordinator found). The driver forgets the cached coordinator after one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreachable(pub String);

/// Settings of a member.
#[derive(Clone, Debug)]
pub struct MemberSettings {
    pub cluster: String,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub shard_above: u32,
}

pub struct Member {
    settings: MemberSettings,
    pub member_id: String,
    pub generation: i32,
    pub leader: bool,
    /// Set only while a member of the current generation with its assignment.
    assignment: Option<Assignment>,
    next: Action,
    failures: u32,
    /// When the last heartbeat (or sync) the coordinator accepted was sent.
    last_accepted: Option<Instant>,
    /// The driver should look the coordinator up again before the next request.
    pub rediscover: bool,
    /// The last problem, for the log and the status page.
    pub last_error: Option<String>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Member {
    pub fn new(settings: MemberSettings) -> Self {
        Member {
            settings,
            member_id: String::new(),
            generation: -1,
            leader: false,
            assignment: None,
            next: Action::Join,
            failures: 0,
            last_accepted: None,
            rediscover: false,
            last_error: None,
        }
    }

    pub fn next(&self) -> &Action {
        &self.next
    }

    /// The assignment held, if a member of the current generation.
    pub fn assignment(&self) -> Option<&Assignment> {
        self.assignment.as_ref()
    }

    /// Give up everything (before any rejoin), and join next, after a backoff if `failed`.
    fn rejoin(&mut self, now: Instant, failed: Option<String>) {
        self.assignment = None;
        self.leader = false;
        self.last_accepted = None;
        match failed {
            Some(e) => {
                let factor = 1u32.checked_shl(self.failures.min(10)).unwrap_or(u32::MAX);
                let wait = FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF);
                self.failures = self.failures.saturating_add(1);
                self.last_error = Some(e);
                self.next = Action::Backoff { at: now + wait };
            }
            None => self.next = Action::Join,
        }
    }

    /// Give everything up and join again (to have the group rebalanced).
    pub fn rejoin_now(&mut self, now: Instant) {
        self.rejoin(now, None);
    }

    /// After the backoff: join.
    pub fn backoff_over(&mut self) {
        if matches!(self.next, Action::Backoff { .. }) {
            self.next = Action::Join;
        }
    }

    /// The answer to JoinGroup.
    pub fn on_join(&mut self, now: Instant, answer: Result<JoinGroupResponse, Unreachable>) {
        let r = match answer {
            Ok(r) => r,
            Err(Unreachable(e)) => {
                self.rediscover = true;
                return self.rejoin(now, Some(e));
            }
        };
        match r.error_code {
            0 => {
                self.member_id = r.member_id;
                self.generation = r.generation_id;
                self.leader = r.leader == self.member_id;
                let assignments = if self.leader {
                    self.leader_assignments(&r.members)
                } else {
                    Vec::new()
                };
                self.next = Action::Sync(assignments);
            }
            code::MEMBER_ID_REQUIRED => {
                // KIP-394: join again at once with the id the coordinator gave.
                self.member_id = r.member_id;
                self.next = Action::Join;
            }
            code::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                self.rejoin(now, None);
            }
            code::REBALANCE_IN_PROGRESS => self.rejoin(now, None),
            c => self.failed(now, "JoinGroup", c),
        }
    }

    fn leader_assignments(
        &self,
        members: &[crate::kafka::wire::membership::JoinGroupMember],
    ) -> Vec<(String, Bytes)> {
        let infos: Vec<assign::MemberInfo> = members
            .iter()
            .map(|m| assign::decode_metadata(&m.member_id, m.metadata.clone()))
            .collect();
        let bytes =
            assign::assign(&self.settings.cluster, &infos, self.settings.shard_above).encode();
        infos
            .into_iter()
            .map(|m| (m.member_id, bytes.clone()))
            .collect()
    }

    /// The answer to SyncGroup sent at `sent`.
    pub fn on_sync(
        &mut self,
        now: Instant,
        sent: Instant,
        answer: Result<SyncGroupResponse, Unreachable>,
    ) {
        let r = match answer {
            Ok(r) => r,
            Err(Unreachable(e)) => {
                self.rediscover = true;
                return self.rejoin(now, Some(e));
            }
        };
        match r.error_code {
            0 => match Assignment::decode(r.assignment) {
                Some(a) => {
                    self.assignment = Some(a);
                    self.failures = 0;
                    self.last_error = None;
                    self.last_accepted = Some(sent);
                    self.next = Action::Heartbeat {
                        at: now + self.settings.heartbeat_interval,
                    };
                }
                None => self.rejoin(
                    now,
                    Some("the assignment could not be read (another tidemark version leads the group?)".into()),
                ),
            },
            code::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                self.rejoin(now, None);
            }
            code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION => self.rejoin(now, None),
            c => self.failed(now, "SyncGroup", c),
        }
    }

    /// The answer to a Heartbeat sent at `sent`.
    pub fn on_heartbeat(&mut self, now: Instant, sent: Instant, answer: Result<i16, Unreachable>) {
        match answer {
            Ok(0) => {
                self.last_accepted = Some(sent);
                self.failures = 0;
                self.next = Action::Heartbeat {
                    at: now + self.settings.heartbeat_interval,
                };
            }
            Ok(code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION) => self.rejoin(now, None),
            Ok(code::UNKNOWN_MEMBER_ID) => {
                self.member_id.clear();
                self.rejoin(now, None);
            }
            Ok(c) if is_coordinator_code(c) => {
                self.rediscover = true;
                self.keep_trying(now, format!("Heartbeat: {}", describe(c)));
            }
            Ok(c) => self.failed(now, "Heartbeat", c),
            Err(Unreachable(e)) => {
                self.rediscover = true;
                self.keep_trying(now, e);
            }
        }
    }

    /// The coordinator could not be asked: heartbeat again soon, keeping the assignment
    /// until the fence (see [`Member::fence`]).
    fn keep_trying(&mut self, now: Instant, e: String) {
        self.last_error = Some(e);
        let wait = FIRST_BACKOFF.min(self.settings.heartbeat_interval);
        self.next = Action::Heartbeat { at: now + wait };
        self.fence(now);
    }

    /// When [`Member::fence`] will give the assignment up if no heartbeat is accepted
    /// before; `None` without an assignment.
    pub fn fence_at(&self) -> Option<Instant> {
        self.assignment.as_ref()?;
        self.last_accepted
            .map(|t| t + self.settings.session_timeout)
    }

    /// Give everything up when a session timeout has passed since the last accepted
    /// heartbeat was sent: the coordinator has expired this member by then (its clock
    /// started when the heartbeat arrived, later than it was sent). True when it fenced.
    pub fn fence(&mut self, now: Instant) -> bool {
        let expired = self
            .last_accepted
            .is_some_and(|t| now.saturating_duration_since(t) >= self.settings.session_timeout);
        if expired && self.assignment.is_some() {
            let e = format!(
                "no heartbeat accepted for the session timeout ({:?}): this replica gave up its work",
                self.settings.session_timeout
            );
            self.member_id.clear();
            self.rejoin(now, Some(e));
            return true;
        }
        false
    }

    fn failed(&mut self, now: Instant, api: &str, c: i16) {
        if is_coordinator_code(c) {
            self.rediscover = true;
        }
        self.rejoin(now, Some(format!("{api}: {}", describe(c))));
    }

    /// Leave: give everything up (the driver sends LeaveGroup if it has a member id).
    pub fn leave(&mut self) {
        self.assignment = None;
        self.leader = false;
    }
}

/// `error 30 (GroupAuthorizationFailed)`: the number and Kafka's name for it.
fn describe(c: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(c) {
        Some(e) => format!("error {c} ({e:?})"),
        None => format!("error {c}"),
    }
}

fn is_coordinator_code(c: i16) -> bool {
    matches!(
        c,
        code::NOT_COORDINATOR
            | code::COORDINATOR_NOT_AVAILABLE
            | code::COORDINATOR_LOAD_IN_PROGRESS
    )
}

#[cfg(test)]
mod tests;
