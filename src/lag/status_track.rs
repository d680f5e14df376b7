//! Compact storage of the status windows: every group partition's points live in one byte
//! arena shared by the cluster, the first point in full in a 32-byte [`Track`], each later
//! one as a delta from the point before it (cycle gap and lag-is-zero flag, committed
//! offset, high watermark − committed), zigzag varints. A steady partition's point costs 3
//! to 7 bytes instead of 24, and there is no map entry and no allocation per partition.
//! The windows are decoded into a scratch [`Point`] slice for the rules, so the rules read
//! exactly the values they read before.

use std::collections::HashMap;

/// One cycle's values of a group partition, as the rules read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Point {
    pub committed: i64,
    pub high: i64,
    /// The cluster cycle it was read in (its time is in the window's cycle ring).
    pub cycle: u32,
    /// The offset lag was 0 (caught up, or only transaction markers left), which
    /// `high − committed` cannot say.
    pub lag_zero: bool,
}

impl Point {
    pub fn lag(&self) -> i64 {
        if self.lag_zero {
            0
        } else {
            self.high.saturating_sub(self.committed).max(0)
        }
    }

    /// high − committed, wrapping: with the committed offset it gives the high watermark
    /// back exactly, and it barely moves while a consumer keeps pace.
    fn gap(&self) -> i64 {
        self.high.wrapping_sub(self.committed)
    }
}

/// Top bit of [`Track::count`]: the first point's `lag_zero`.
const FIRST_LAG_ZERO: u16 = 1 << 15;
/// Most points a track can hold: a point's delta takes at most 25 bytes, so the deltas of
/// a window always fit [`Track::len`].
pub(super) const MAX_POINTS: usize = 2000;

/// The window of one group partition: 32 bytes, plus its deltas in the arena, which follow
/// those of the track before it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Track {
    /// Hash of (group, topic, partition) under the window's random keys.
    pub key: u64,
    committed: i64,
    high: i64,
    cycle: u32,
    /// Bytes of the deltas in the arena.
    pub len: u16,
    /// Points, the first included; the top bit is the first point's `lag_zero`.
    count: u16,
}

impl Track {
    /// Encode `points` (at least one, at most [`MAX_POINTS`]) at the end of `arena`.
    pub fn encode(key: u64, points: &[Point], arena: &mut Vec<u8>) -> Option<Track> {
        let first = points.first()?;
        let count = u16::try_from(points.len())
            .ok()
            .filter(|&n| n < FIRST_LAG_ZERO)?;
        let start = arena.len();
        for (a, b) in points.iter().zip(points.iter().skip(1)) {
            let gap = u64::from(b.cycle.wrapping_sub(a.cycle));
            put_varint(arena, gap << 1 | u64::from(b.lag_zero));
            put_varint(arena, zigzag(b.committed.wrapping_sub(a.committed)));
            put_varint(arena, zigzag(b.gap().wrapping_sub(a.gap())));
        }
        let Ok(len) = u16::try_from(arena.len() - start) else {
            arena.truncate(start);
            return None;
        };
        Some(Track {
            key,
            committed: first.committed,
            high: first.high,
            cycle: first.cycle,
            len,
            count: count | if first.lag_zero { FIRST_LAG_ZERO } else { 0 },
        })
    }

    /// Append the track's points to `out`; `bytes` are its deltas. Stops at the first
    /// delta that does not decode (which only a bug could write).
    pub fn decode(&self, bytes: &[u8], out: &mut Vec<Point>) {
        let mut point = Point {
            committed: self.committed,
            high: self.high,
            cycle: self.cycle,
            lag_zero: self.count & FIRST_LAG_ZERO != 0,
        };
        out.push(point);
        let mut pos = 0;
        for _ in 1..(self.count & !FIRST_LAG_ZERO) {
            let (Some(head), Some(dc), Some(dg)) = (
                get_varint(bytes, &mut pos),
                get_varint(bytes, &mut pos),
                get_varint(bytes, &mut pos),
            ) else {
                return;
            };
            let gap = point.gap().wrapping_add(unzigzag(dg));
            point.cycle = point.cycle.wrapping_add((head >> 1) as u32);
            point.lag_zero = head & 1 != 0;
            point.committed = point.committed.wrapping_add(unzigzag(dc));
            point.high = point.committed.wrapping_add(gap);
            out.push(point);
        }
    }
}

/// Finds last cycle's track of a group partition. Reports list the group partitions in
/// the same order cycle after cycle, so the next track in order is tried first; the first
/// miss (a group or partition came or went, or the order changed) builds a map by key for
/// the rest of the cycle.
pub(super) struct Matcher<'a> {
    tracks: &'a [Track],
    arena: &'a [u8],
    next: usize,
    offset: usize,
    by_key: Option<HashMap<u64, (usize, usize)>>,
}

impl<'a> Matcher<'a> {
    pub fn new(tracks: &'a [Track], arena: &'a [u8]) -> Self {
        Matcher {
            tracks,
            arena,
            next: 0,
            offset: 0,
            by_key: None,
        }
    }

    /// The track of `key` and its deltas.
    pub fn find(&mut self, key: u64) -> Option<(&'a Track, &'a [u8])> {
        if self.by_key.is_none() {
            let t = self.tracks.get(self.next).filter(|t| t.key == key);
            if let Some(t) = t {
                let start = self.offset;
                self.next += 1;
                self.offset += usize::from(t.len);
                return Some((t, self.arena.get(start..self.offset)?));
            }
            self.by_key = Some(self.map());
        }
        let &(i, start) = self.by_key.as_ref()?.get(&key)?;
        let t = self.tracks.get(i)?;
        Some((t, self.arena.get(start..start + usize::from(t.len))?))
    }

    fn map(&self) -> HashMap<u64, (usize, usize)> {
        let mut map = HashMap::with_capacity(self.tracks.len());
        let mut start = 0;
        for (i, t) in self.tracks.iter().enumerate() {
            map.insert(t.key, (i, start));
            start += usize::from(t.len);
        }
        map
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    (u >> 1) as i64 ^ -((u & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(committed: i64, high: i64, cycle: u32, lag_zero: bool) -> Point {
        Point {
            committed,
            high,
            cycle,
            lag_zero,
        }
    }

    fn roundtrip(points: &[Point]) -> (Vec<Point>, usize) {
        let mut arena = vec![7, 7];
        let t = Track::encode(42, points, &mut arena).expect("encodes");
        let mut out = Vec::new();
        t.decode(&arena[2..], &mut out);
        (out, arena.len() - 2)
    }

    #[test]
    fn extremes_roundtrip_exactly() {
        let points = [
            p(i64::MAX, i64::MIN, u32::MAX, true),
            p(-1, i64::MAX, 0, false),
            p(i64::MIN, 0, 5, false),
            p(0, -7, 4_000_000_000, true),
            p(i64::MAX, i64::MAX, 4_000_000_001, false),
        ];
        assert_eq!(roundtrip(&points).0, points);
        assert_eq!(roundtrip(&points[..1]).0, points[..1]);
    }

    #[test]
    fn steady_points_are_small() {
        // A consumer keeping pace with 300,000 records a cycle: 3 bytes of committed delta,
        // 1 of gap delta, 1 of cycle.
        let points: Vec<Point> = (0..21)
            .map(|i| {
                p(
                    (1 << 40) + i * 300_000,
                    (1 << 40) + i * 300_000 + 50,
                    i as u32,
                    false,
                )
            })
            .collect();
        let (out, bytes) = roundtrip(&points);
        assert_eq!(out, points);
        assert_eq!(bytes, 20 * 5);
    }

    #[test]
    fn empty_and_oversized_windows_give_no_track() {
        let mut arena = Vec::new();
        assert!(Track::encode(1, &[], &mut arena).is_none());
        let many = vec![p(0, 0, 0, false); usize::from(FIRST_LAG_ZERO)];
        assert!(Track::encode(1, &many, &mut arena).is_none());
        assert!(arena.is_empty());
    }

    #[test]
    fn truncated_deltas_stop_decoding() {
        let points = [p(0, 10, 0, false), p(5, 10, 1, false), p(9, 12, 2, false)];
        let mut arena = Vec::new();
        let t = Track::encode(1, &points, &mut arena).expect("encodes");
        let mut out = Vec::new();
        t.decode(&arena[..arena.len() - 1], &mut out);
        assert_eq!(out, points[..2]);
        let mut pos = 0;
        assert_eq!(get_varint(&[0xff; 11], &mut pos), None);
    }

    #[test]
    fn matcher_follows_the_order_and_falls_back_to_keys() {
        let mut arena = Vec::new();
        let tracks: Vec<Track> = (0..3)
            .map(|k| {
                let pts = vec![p(k, 10, 0, false); k as usize + 1];
                Track::encode(k as u64, &pts, &mut arena).expect("encodes")
            })
            .collect();
        let mut m = Matcher::new(&tracks, &arena);
        let decoded = |m: &mut Matcher, k: u64| {
            let (t, bytes) = m.find(k)?;
            let mut out = Vec::new();
            t.decode(bytes, &mut out);
            Some(out)
        };
        assert_eq!(decoded(&mut m, 0).map(|v| v.len()), Some(1));
        assert!(m.by_key.is_none());
        assert_eq!(decoded(&mut m, 2).map(|v| v.len()), Some(3));
        assert!(m.by_key.is_some());
        assert_eq!(decoded(&mut m, 1), Some(vec![p(1, 10, 0, false); 2]));
        assert_eq!(decoded(&mut m, 9), None);
    }
}
