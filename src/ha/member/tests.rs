//! The member state machine on scripted coordinator answers.

use super::*;
use crate::kafka::wire::membership::JoinGroupMember;

fn settings() -> MemberSettings {
    MemberSettings {
        cluster: "prod".into(),
        session_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_secs(3),
        shard_above: 100,
    }
}

fn joined(code: i16, member: &str, leader: &str, generation: i32) -> JoinGroupResponse {
    JoinGroupResponse {
        error_code: code,
        generation_id: generation,
        leader: leader.into(),
        member_id: member.into(),
        members: if member == leader {
            ["m1", "m2"]
                .iter()
                .map(|m| JoinGroupMember {
                    member_id: (*m).into(),
                    group_instance_id: None,
                    metadata: assign::encode_metadata(&format!("pod-{m}"), 7),
                })
                .collect()
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

fn synced(code: i16, a: &Assignment) -> SyncGroupResponse {
    SyncGroupResponse {
        error_code: code,
        protocol_type: None,
        assignment: a.encode(),
    }
}

/// Join (with MEMBER_ID_REQUIRED first), lead, sync: returns the member, stable.
fn stable(t0: Instant) -> (Member, Assignment) {
    let mut m = Member::new(settings());
    assert_eq!(m.next(), &Action::Join);
    m.on_join(t0, Ok(joined(code::MEMBER_ID_REQUIRED, "m1", "", -1)));
    assert_eq!((m.next(), m.member_id.as_str()), (&Action::Join, "m1"));
    m.on_join(t0, Ok(joined(0, "m1", "m1", 4)));
    let Action::Sync(assignments) = m.next().clone() else {
        panic!("{:?}", m.next())
    };
    // The leader assigns every member the same decision.
    assert_eq!(assignments.len(), 2);
    let a = Assignment::decode(assignments[0].1.clone()).expect("decodable");
    assert_eq!(
        Some(&a),
        Assignment::decode(assignments[1].1.clone()).as_ref()
    );
    assert!(m.assignment().is_none(), "owns nothing before the sync");
    m.on_sync(t0, t0, Ok(synced(0, &a)));
    assert_eq!(m.assignment(), Some(&a));
    assert_eq!(
        m.next(),
        &Action::Heartbeat {
            at: t0 + Duration::from_secs(3)
        }
    );
    (m, a)
}

#[test]
fn joins_leads_syncs_and_heartbeats() {
    let t0 = Instant::now();
    let (mut m, _) = stable(t0);
    assert!(m.leader);
    assert_eq!(m.generation, 4);
    let t1 = t0 + Duration::from_secs(3);
    m.on_heartbeat(t1, t1, Ok(0));
    assert_eq!(
        m.next(),
        &Action::Heartbeat {
            at: t1 + Duration::from_secs(3)
        }
    );
}

#[test]
fn a_follower_sends_no_assignments() {
    let t0 = Instant::now();
    let mut m = Member::new(settings());
    m.on_join(t0, Ok(joined(0, "m2", "m1", 9)));
    assert_eq!(m.next(), &Action::Sync(Vec::new()));
    assert!(!m.leader);
}

#[test]
fn rebalance_and_stale_generation_give_everything_up_before_rejoining() {
    for code in [code::REBALANCE_IN_PROGRESS, code::ILLEGAL_GENERATION] {
        let t0 = Instant::now();
        let (mut m, _) = stable(t0);
        m.on_heartbeat(t0, t0, Ok(code));
        assert!(m.assignment().is_none(), "{code}");
        assert_eq!(m.next(), &Action::Join);
        assert_eq!(m.member_id, "m1", "the member id is kept");
    }
}

#[test]
fn unknown_member_joins_afresh() {
    let t0 = Instant::now();
    let (mut m, _) = stable(t0);
    m.on_heartbeat(t0, t0, Ok(code::UNKNOWN_MEMBER_ID));
    assert!(m.assignment().is_none());
    assert_eq!((m.next(), m.member_id.as_str()), (&Action::Join, ""));
    // Same in a sync.
    let mut m = Member::new(settings());
    m.on_join(t0, Ok(joined(0, "m2", "m1", 9)));
    m.on_sync(
        t0,
        t0,
        Ok(synced(code::UNKNOWN_MEMBER_ID, &Assignment::default())),
    );
    assert_eq!((m.next(), m.member_id.as_str()), (&Action::Join, ""));
}

#[test]
fn coordinator_moved_keeps_work_until_the_session_timeout_then_fences() {
    let t0 = Instant::now();
    let (mut m, a) = stable(t0);
    let t = t0 + Duration::from_secs(3);
    m.on_heartbeat(t, t, Ok(code::NOT_COORDINATOR));
    assert!(m.rediscover);
    assert_eq!(
        m.assignment(),
        Some(&a),
        "work kept while the session may live"
    );
    assert!(matches!(m.next(), Action::Heartbeat { .. }));
    // The coordinator stays unreachable.
    let t = t0 + Duration::from_secs(9);
    m.on_heartbeat(t, t, Err(Unreachable("connection refused".into())));
    assert_eq!(m.assignment(), Some(&a));
    // Ten seconds after the last accepted heartbeat was sent (the sync at t0): fenced.
    let t = t0 + Duration::from_secs(10);
    m.on_heartbeat(t, t, Err(Unreachable("connection refused".into())));
    assert!(m.assignment().is_none());
    assert!(matches!(m.next(), Action::Backoff { .. }));
    assert_eq!(m.member_id, "", "expired by now: join as a new member");
    m.backoff_over();
    assert_eq!(m.next(), &Action::Join);
}

#[test]
fn fence_counts_from_the_send_time_of_the_last_accepted_heartbeat() {
    let t0 = Instant::now();
    let (mut m, _) = stable(t0);
    let sent = t0 + Duration::from_secs(3);
    // Answered late (a slow coordinator): the session started when it was received, which
    // is no earlier than when it was sent.
    m.on_heartbeat(sent + Duration::from_secs(2), sent, Ok(0));
    assert!(!m.fence(sent + Duration::from_millis(9_999)));
    assert!(m.assignment().is_some());
    assert!(m.fence(sent + Duration::from_secs(10)));
    assert!(m.assignment().is_none());
}

#[test]
fn coordinator_down_during_join_backs_off_and_grows() {
    let t0 = Instant::now();
    let mut m = Member::new(settings());
    let mut waits = Vec::new();
    for _ in 0..8 {
        m.on_join(t0, Err(Unreachable("down".into())));
        let Action::Backoff { at } = m.next().clone() else {
            panic!("{:?}", m.next())
        };
        waits.push(at - t0);
        m.backoff_over();
    }
    assert!(m.rediscover);
    assert_eq!(waits[0], Duration::from_millis(200));
    assert_eq!(waits[1], Duration::from_millis(400));
    assert_eq!(
        *waits.last().unwrap_or(&Duration::ZERO),
        Duration::from_secs(5)
    );
    // A join answered NOT_COORDINATOR backs off too, and looks the coordinator up again.
    let mut m = Member::new(settings());
    m.on_join(t0, Ok(joined(code::NOT_COORDINATOR, "", "", -1)));
    assert!(matches!(m.next(), Action::Backoff { .. }) && m.rediscover);
}

#[test]
fn an_unreadable_assignment_owns_nothing() {
    let t0 = Instant::now();
    let mut m = Member::new(settings());
    m.on_join(t0, Ok(joined(0, "m2", "m1", 9)));
    m.on_sync(
        t0,
        t0,
        Ok(SyncGroupResponse {
            error_code: 0,
            protocol_type: None,
            assignment: Bytes::from_static(b"\x07junk"),
        }),
    );
    assert!(m.assignment().is_none());
    assert!(matches!(m.next(), Action::Backoff { .. }));
}

#[test]
fn a_refused_join_names_the_error_and_owns_nothing() {
    let t0 = Instant::now();
    let mut m = Member::new(settings());
    m.on_join(t0, Ok(joined(30, "", "", -1)));
    assert!(m.assignment().is_none());
    assert!(matches!(m.next(), Action::Backoff { .. }));
    let e = m.last_error.clone().unwrap_or_default();
    assert!(
        e.contains("JoinGroup: error 30 (GroupAuthorizationFailed)"),
        "{e}"
    );
}

#[test]
fn the_fence_deadline_follows_the_last_accepted_heartbeat() {
    let t0 = Instant::now();
    let mut m = Member::new(settings());
    assert_eq!(m.fence_at(), None, "nothing to fence without an assignment");
    let (mut m2, _) = stable(t0);
    assert_eq!(m2.fence_at(), Some(t0 + Duration::from_secs(10)));
    let sent = t0 + Duration::from_secs(3);
    m2.on_heartbeat(sent + Duration::from_millis(5), sent, Ok(0));
    assert_eq!(m2.fence_at(), Some(sent + Duration::from_secs(10)));
    m.leave();
    m2.leave();
    assert_eq!(m2.fence_at(), None);
}
