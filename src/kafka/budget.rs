//! One budget of response bytes held in memory, shared by every connection of every cluster.
//!
//! The frame cap bounds one response; without a shared budget the memory a cluster can make
//! tidemark hold grows with its number of brokers (each may send a frame just under the cap
//! at the same time). A connection's reader learns a frame's size from its 4-byte header and
//! reserves that many bytes here *before* reading the body; the reservation travels with the
//! frame's [`Bytes`] and is given back when the last clone of them is dropped, so whatever a
//! decoder keeps of a frame stays counted for as long as it is kept.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Default budget: 128 MiB. It is above the 100 MiB frame cap, so any single response the
/// frame cap admits can still be read when it comes alone; ordinary responses (a few MiB
/// per broker at the largest clusters; Fetch bodies are streamed, never held whole) fit
/// many at a time; and a broken or hostile cluster can make tidemark hold at most this much
/// in responses, instead of brokers × 100 MiB.
pub const DEFAULT_RESPONSE_MEMORY: usize = 128 << 20;

/// The process-wide budget of response bytes in memory. Clones share it.
#[derive(Clone)]
pub struct ResponseBudget {
    semaphore: Arc<Semaphore>,
    total: usize,
}

impl std::fmt::Debug for ResponseBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBudget")
            .field("total", &self.total)
            .field("available", &self.available())
            .finish()
    }
}

impl Default for ResponseBudget {
    fn default() -> Self {
        Self::new(DEFAULT_RESPONSE_MEMORY)
    }
}

/// Why a reservation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The size is larger than the whole budget: it could never fit, so nobody waited.
    LargerThanBudget,
    /// The deadline passed before enough bytes were given back.
    NoRoomInTime,
}

impl ResponseBudget {
    /// A budget of `bytes` (at most what a semaphore can count, ~2^61 on 64-bit).
    pub fn new(bytes: usize) -> Self {
        let total = bytes.min(Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The size of the budget in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Reserves `size` bytes, waiting until `deadline` for other reservations to be given
    /// back. A size larger than the whole budget is refused at once.
    pub async fn reserve(&self, size: usize, deadline: Instant) -> Result<Reservation, Refusal> {
        if size > self.total {
            return Err(Refusal::LargerThanBudget);
        }
        // Frames are at most i32::MAX bytes; anything larger was refused above unless the
        // budget itself exceeds 4 GiB, and such a size is still no response.
        let n = u32::try_from(size).map_err(|_| Refusal::LargerThanBudget)?;
        let acquire = self.semaphore.clone().acquire_many_owned(n);
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(permit)) => Ok(Reservation { permit }),
            // The semaphore is never closed; treat it like no room.
            Ok(Err(_)) | Err(_) => Err(Refusal::NoRoomInTime),
        }
    }
}

/// Bytes reserved in a [`ResponseBudget`]; given back when dropped, or when the last clone
/// of the [`Bytes`] made by [`Reservation::hold`] is.
#[derive(Debug)]
pub struct Reservation {
    permit: OwnedSemaphorePermit,
}

impl Reservation {
    /// Bytes reserved.
    pub fn size(&self) -> usize {
        self.permit.num_permits()
    }

    /// `data` as [`Bytes`] that keep this reservation until their last clone (or slice) is
    /// dropped.
    pub fn hold(self, data: BytesMut) -> Bytes {
        Bytes::from_owner(Held {
            data,
            _permit: self.permit,
        })
    }
}

/// The owner behind [`Reservation::hold`]'s bytes.
struct Held {
    data: BytesMut,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn bytes_come_back_when_the_last_clone_is_dropped() {
        let budget = ResponseBudget::new(1000);
        let r = budget.reserve(600, soon()).await.unwrap();
        assert_eq!((r.size(), budget.available()), (600, 400));
        let bytes = r.hold(BytesMut::from(&[7u8; 600][..]));
        let slice = bytes.slice(10..20);
        let clone = bytes.clone();
        drop(bytes);
        drop(clone);
        assert_eq!(budget.available(), 400, "a slice still holds the frame");
        assert_eq!(&slice[..], &[7u8; 10][..]);
        drop(slice);
        assert_eq!(budget.available(), 1000);
        // A reservation never turned into bytes is given back as well.
        let r = budget.reserve(1000, soon()).await.unwrap();
        assert_eq!(budget.available(), 0);
        drop(r);
        assert_eq!(budget.available(), 1000);
    }

    #[tokio::test]
    async fn a_size_over_the_whole_budget_is_refused_at_once() {
        let budget = ResponseBudget::new(1000);
        // Even with the whole budget free, and a deadline far away: nobody waits.
        let far = Instant::now() + Duration::from_secs(3600);
        let refused = tokio::time::timeout(Duration::from_secs(60), budget.reserve(1001, far))
            .await
            .expect("refused without waiting");
        assert_eq!(refused.unwrap_err(), Refusal::LargerThanBudget);
        assert_eq!(budget.available(), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_room_when_bytes_come_back_or_gives_up_at_its_deadline() {
        let budget = ResponseBudget::new(1000);
        let held = budget.reserve(700, soon()).await.unwrap();
        // 400 more cannot fit until `held` is dropped: the deadline ends the wait.
        let deadline = Instant::now() + Duration::from_secs(2);
        let refused = budget.reserve(400, deadline).await.unwrap_err();
        assert_eq!(refused, Refusal::NoRoomInTime);
        assert!(Instant::now() >= deadline);
        assert_eq!(budget.available(), 300, "a refused waiter holds nothing");
        // With `held` given back while it waits, the waiter gets its room.
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(400, soon()).await.map(|r| r.size()) }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(400));
    }
}
