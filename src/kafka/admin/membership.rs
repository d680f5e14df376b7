//! Membership of a group through its coordinator: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup (tidemark's coordination group, `crate::ha`). The coordinator is found and
//! cached by [`Cluster::find_coordinators`] like every group's; an answer saying it moved,
//! or no answer at all, forgets it, so the next request looks it up again.

use bytes::Bytes;

use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};

use crate::kafka::cluster::Cluster;
use crate::kafka::error::{is_routing_code, KafkaErrorKind, Result};
use crate::kafka::requests::{self, JoinGroupParams};
use crate::kafka::wire::membership::{JoinGroupResponse, SyncGroupResponse};

impl Cluster {
    /// The coordinator of `group` (cached).
    pub async fn coordinator_of(&self, group: &str) -> Result<i32> {
        let key = group.to_owned();
        self.find_coordinators(std::slice::from_ref(&key))
            .await
            .remove(&key)
            .unwrap_or_else(|| {
                Err(
                    KafkaErrorKind::UnknownInMetadata(format!("coordinator for group {group}"))
                        .into(),
                )
            })
    }

    /// Send a request to `group`'s coordinator; forget the coordinator when the request
    /// got no answer or the answer's `code` says it moved.
    async fn to_coordinator<R, T>(
        &self,
        group: &str,
        build: impl FnOnce(i16) -> R,
        code: impl Fn(&T) -> i16,
        map: impl FnOnce(R::Response) -> T,
    ) -> Result<T>
    where
        R: crate::kafka::conn::ApiRequest,
    {
        let node = self.coordinator_of(group).await?;
        match self.send_to(node, build).await {
            Ok((r, _)) => {
                let answer = map(r);
                if is_routing_code(code(&answer)) {
                    self.forget_coordinator(group);
                }
                Ok(answer)
            }
            Err(e) => {
                self.forget_coordinator(group);
                Err(e)
            }
        }
    }

    pub async fn join_group(&self, params: &JoinGroupParams<'_>) -> Result<JoinGroupResponse> {
        self.to_coordinator::<JoinGroupRequest, _>(
            params.group,
            |v| requests::join_group(v, params),
            |r: &JoinGroupResponse| r.error_code,
            |r| r,
        )
        .await
    }

    pub async fn sync_group(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        protocol: (&str, &str),
        assignments: &[(String, Bytes)],
    ) -> Result<SyncGroupResponse> {
        self.to_coordinator::<SyncGroupRequest, _>(
            group,
            |v| requests::sync_group(v, group, generation, member_id, protocol, assignments),
            |r: &SyncGroupResponse| r.error_code,
            |r| r,
        )
        .await
    }

    /// The heartbeat's error code.
    pub async fn heartbeat(&self, group: &str, generation: i32, member_id: &str) -> Result<i16> {
        self.to_coordinator::<HeartbeatRequest, _>(
            group,
            |_| requests::heartbeat(group, generation, member_id),
            |c: &i16| *c,
            |r| r.error_code,
        )
        .await
    }

    /// LeaveGroup's error code.
    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<i16> {
        self.to_coordinator::<LeaveGroupRequest, _>(
            group,
            |v| requests::leave_group(v, group, member_id),
            |c: &i16| *c,
            |r| r.error_code,
        )
        .await
    }
}
