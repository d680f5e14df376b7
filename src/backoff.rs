//! Exponential backoff with jitter, for retries against one remote endpoint: the push
//! exporters' receivers and the SASL token / credential endpoints. (The Kafka client's
//! `Cluster::backoff` has no jitter and belongs to a cluster's settings; many replicas
//! retrying one endpoint in step is what jitter is for.)

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays that double from `first` up to `max`, each drawn from its upper half.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    attempt: u32,
    seed: RandomState,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max: max.max(first),
            attempt: 0,
            seed: RandomState::new(),
        }
    }

    /// After a success: the next failure starts from `first` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next retry: `min(first × 2^attempt, max)`, scaled by a random
    /// factor in [0.5, 1].
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let ceiling = self.first.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let mut h = self.seed.build_hasher();
        h.write_u32(self.attempt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        // A uniform fraction in [0, 1) from the hash's top 53 bits.
        let fraction = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(0.5 + fraction / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_their_jitter() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let mut b = Backoff::new(first, max);
        let ceilings = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        for ceiling in ceilings {
            let d = b.next_delay();
            let ceiling = Duration::from_millis(ceiling);
            assert!(d <= ceiling && d >= ceiling / 2, "{d:?} for {ceiling:?}");
        }
        b.reset();
        assert!(b.next_delay() <= first);
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            seen.insert(b.next_delay().as_micros());
        }
        // 50 draws from half a second of microseconds: nearly all distinct.
        assert!(seen.len() > 40, "{} distinct delays", seen.len());
    }

    #[test]
    fn a_huge_attempt_count_does_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}
