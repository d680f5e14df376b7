//! What the coordination group's leader decides, and the bytes that carry it: member
//! metadata (JoinGroup) and the assignment (SyncGroup). Pure functions.
//!
//! Work goes by rendezvous hashing: an item (the cluster's name, a consumer group's id) goes
//! to the member with the highest score of `hash(item, identity)`. Every member computes the
//! same answer from the same member list, a member leaving moves only the items it had, and
//! a replica restarted under the same identity gets its items back. Two members with the
//! same identity are told apart by member id.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol type of tidemark's coordination group: never `consumer`, so no tool takes
/// it for a consumer group, and tidemark leaves it out of the lag families.
pub const PROTOCOL_TYPE: &str = "tidemark";
/// The one protocol its members speak; the version of the encodings below.
pub const PROTOCOL_NAME: &str = "tidemark-v1";
const VERSION: u8 = 1;

/// A member as its JoinGroup metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub member_id: String,
    /// The replica's stable name (`identity`, default the pod name).
    pub identity: String,
    /// Consumer groups its last cycle of this cluster listed (0: none or not collecting).
    pub groups_seen: u32,
}

/// Metadata sent with JoinGroup: version, identity, groups seen.
pub fn encode_metadata(identity: &str, groups_seen: u32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(VERSION);
    put_str(&mut b, identity);
    b.put_u32(groups_seen);
    b.freeze()
}

/// Reads a member's metadata; what cannot be read (another version, a foreign client)
/// makes a member known by its id alone, which still gets a fair share.
pub fn decode_metadata(member_id: &str, mut bytes: Bytes) -> MemberInfo {
    let fallback = MemberInfo {
        member_id: member_id.to_owned(),
        identity: member_id.to_owned(),
        groups_seen: 0,
    };
    if bytes.remaining() < 1 || bytes.get_u8() != VERSION {
        return fallback;
    }
    let Some(identity) = get_str(&mut bytes) else {
        return fallback;
    };
    if bytes.remaining() < 4 {
        return fallback;
    }
    MemberInfo {
        member_id: member_id.to_owned(),
        identity,
        groups_seen: bytes.get_u32(),
    }
}

/// The leader's decision for one cluster, the same bytes for every member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Member id of the cluster's owner: partition families, and every group unless sharded.
    pub owner: String,
    /// Consumer groups go to members by rendezvous hashing over `members`.
    pub sharded: bool,
    /// Every member of the generation: (identity, member id), sorted.
    pub members: Vec<(String, String)>,
}

impl Assignment {
    /// Whether `member_id` collects `group`.
    pub fn owns_group(&self, member_id: &str, group: &str) -> bool {
        if self.sharded {
            first(group, &self.members).is_some_and(|(_, m)| m == member_id)
        } else {
            self.owner == member_id
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(VERSION);
        b.put_u8(u8::from(self.sharded));
        put_str(&mut b, &self.owner);
        b.put_u16(u16::try_from(self.members.len()).unwrap_or(u16::MAX));
        for (identity, member) in self.members.iter().take(usize::from(u16::MAX)) {
            put_str(&mut b, identity);
            put_str(&mut b, member);
        }
        b.freeze()
    }

    /// `None` for bytes of another version or cut short: the member then owns nothing.
    pub fn decode(mut bytes: Bytes) -> Option<Assignment> {
        if bytes.remaining() < 2 || bytes.get_u8() != VERSION {
            return None;
        }
        let sharded = bytes.get_u8() != 0;
        let owner = get_str(&mut bytes)?;
        if bytes.remaining() < 2 {
            return None;
        }
        let n = usize::from(bytes.get_u16());
        let mut members = Vec::with_capacity(n.min(bytes.remaining() / 4));
        for _ in 0..n {
            members.push((get_str(&mut bytes)?, get_str(&mut bytes)?));
        }
        Some(Assignment {
            owner,
            sharded,
            members,
        })
    }
}

/// The leader's assignment of `cluster` over `members`: the owner by rendezvous hashing of
/// the cluster's name; consumer groups sharded when a member saw more than `shard_above`
/// of them (and there is more than one member to share them).
pub fn assign(cluster: &str, members: &[MemberInfo], shard_above: u32) -> Assignment {
    let mut list: Vec<(String, String)> = members
        .iter()
        .map(|m| (m.identity.clone(), m.member_id.clone()))
        .collect();
    list.sort();
    list.dedup();
    let owner = first(cluster, &list)
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let seen = members.iter().map(|m| m.groups_seen).max().unwrap_or(0);
    Assignment {
        owner,
        sharded: list.len() > 1 && seen > shard_above,
        members: list,
    }
}

/// The member `item` goes to: the highest score, ties by member id.
pub fn first<'a>(item: &str, members: &'a [(String, String)]) -> Option<&'a (String, String)> {
    members.iter().max_by(|a, b| {
        score(item, &a.0)
            .cmp(&score(item, &b.0))
            .then_with(|| b.1.cmp(&a.1))
    })
}

/// A stable 64-bit score (FNV-1a, then a SplitMix64 finaliser for avalanche): the same on
/// every replica and every release, unlike the standard library's seeded hasher.
fn score(item: &str, identity: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in item.bytes().chain([0xff]).chain(identity.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn put_str(b: &mut BytesMut, s: &str) {
    let len = s.len().min(usize::from(u16::MAX));
    b.put_u16(u16::try_from(len).unwrap_or(u16::MAX));
    b.put_slice(&s.as_bytes()[..len]);
}

fn get_str(b: &mut Bytes) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let len = usize::from(b.get_u16());
    if b.remaining() < len {
        return None;
    }
    String::from_utf8(b.split_to(len).to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn members(n: usize) -> Vec<MemberInfo> {
        (0..n)
            .map(|i| MemberInfo {
                member_id: format!("tidemark-{i}-uuid"),
                identity: format!("pod-{i}"),
                groups_seen: 5000,
            })
            .collect()
    }

    fn owners(a: &Assignment, groups: &[String]) -> BTreeMap<String, String> {
        groups
            .iter()
            .map(|g| {
                let owners: Vec<&String> = a
                    .members
                    .iter()
                    .map(|(_, m)| m)
                    .filter(|m| a.owns_group(m, g))
                    .collect();
                assert_eq!(owners.len(), 1, "{g} owned by {owners:?}");
                (g.clone(), owners[0].clone())
            })
            .collect()
    }

    #[test]
    fn every_group_has_exactly_one_owner_and_shares_are_even() {
        let groups: Vec<String> = (0..3000).map(|i| format!("group-{i}")).collect();
        let a = assign("prod", &members(3), 1000);
        assert!(a.sharded);
        let owned = owners(&a, &groups);
        let mut per_member: BTreeMap<&String, usize> = BTreeMap::new();
        for m in owned.values() {
            *per_member.entry(m).or_default() += 1;
        }
        assert_eq!(per_member.len(), 3);
        for (m, n) in per_member {
            assert!((800..1200).contains(&n), "{m} has {n} of 3000");
        }
    }

    #[test]
    fn a_member_leaving_moves_only_its_share_and_joining_takes_only_a_share() {
        let groups: Vec<String> = (0..2000).map(|i| format!("g{i}")).collect();
        let all = members(4);
        let before = owners(&assign("c", &all, 0), &groups);
        let gone = &all[2].member_id;
        let after = owners(&assign("c", &[&all[..2], &all[3..]].concat(), 0), &groups);
        for g in &groups {
            if &before[g] != gone {
                assert_eq!(before[g], after[g], "{g} moved though its owner stayed");
            }
        }
        // And back: the returning member takes only groups, nobody else's move.
        let again = owners(&assign("c", &all, 0), &groups);
        assert_eq!(before, again);
    }

    #[test]
    fn the_cluster_owner_is_stable_and_spread() {
        let all = members(3);
        assert!(
            assign("prod", &all, 1000).sharded,
            "5000 groups seen, threshold 1000"
        );
        let a = assign("prod", &all, 10_000);
        assert!(!a.sharded, "5000 groups seen, threshold 10,000");
        // The owner owns every group when not sharded.
        assert!(a.owns_group(&a.owner, "anything"));
        let other = all
            .iter()
            .find(|m| m.member_id != a.owner)
            .map(|m| &m.member_id);
        assert!(!a.owns_group(other.map_or("", |s| s), "anything"));
        // Same identities, new member ids (a restart of all): same owner identity.
        let restarted: Vec<MemberInfo> = all
            .iter()
            .map(|m| MemberInfo {
                member_id: format!("{}-new", m.member_id),
                ..m.clone()
            })
            .collect();
        let b = assign("prod", &restarted, 10_000);
        assert_eq!(b.owner, format!("{}-new", a.owner));
        // Ten clusters over three members land on more than one member.
        let spread: std::collections::BTreeSet<String> = (0..10)
            .map(|i| assign(&format!("cluster-{i}"), &all, 0).owner)
            .collect();
        assert!(spread.len() > 1, "{spread:?}");
        // One member: never sharded.
        assert!(!assign("x", &all[..1], 0).sharded);
    }

    #[test]
    fn duplicate_identities_still_get_one_owner() {
        let twins = vec![
            MemberInfo {
                member_id: "a".into(),
                identity: "tidemark".into(),
                groups_seen: 10,
            },
            MemberInfo {
                member_id: "b".into(),
                identity: "tidemark".into(),
                groups_seen: 10,
            },
        ];
        let a = assign("c", &twins, 0);
        let groups: Vec<String> = (0..50).map(|i| format!("g{i}")).collect();
        owners(&a, &groups);
    }

    #[test]
    fn encodings_round_trip_and_refuse_garbage() {
        let m = encode_metadata("pod-7", 42);
        assert_eq!(
            decode_metadata("m", m.clone()),
            MemberInfo {
                member_id: "m".into(),
                identity: "pod-7".into(),
                groups_seen: 42
            }
        );
        assert_eq!(decode_metadata("m", m.slice(..3)).identity, "m");
        assert_eq!(
            decode_metadata("m", Bytes::from_static(b"\x09")).identity,
            "m"
        );
        let a = assign("c", &members(3), 1);
        let bytes = a.encode();
        assert_eq!(Assignment::decode(bytes.clone()), Some(a));
        for len in 0..bytes.len() {
            assert_eq!(Assignment::decode(bytes.slice(..len)), None, "{len}");
        }
        assert_eq!(Assignment::decode(Bytes::from_static(b"\x02\x00")), None);
        // A count far beyond the bytes allocates nothing large and fails.
        assert_eq!(
            Assignment::decode(Bytes::from_static(b"\x01\x01\x00\x00\xff\xff")),
            None
        );
    }
}
