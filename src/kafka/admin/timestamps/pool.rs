//! Where record decoding runs: tokio's blocking pool, at most [`slots`] jobs at once, so
//! walking and decompressing records never occupies a worker thread that serves HTTP, and
//! collection never takes every core.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

/// A partition's records are resolved on the worker itself when they are uncompressed and
/// smaller than this: walking them costs microseconds, less than a hand-over to another
/// thread. Anything else (any compressed batch, or a big buffer) goes to the pool.
pub(super) const INLINE_MAX_BYTES: usize = 64 * 1024;

/// Partitions for the pool are handed over in jobs of this many record bytes (or
/// [`JOB_MAX_PARTITIONS`]): one hand-over per job instead of per partition, and a round
/// holds at most this much beyond the partition being read.
pub(super) const JOB_MAX_BYTES: usize = 1024 * 1024;
pub(super) const JOB_MAX_PARTITIONS: usize = 256;

/// Decoding jobs allowed at once, over every cluster: one core less than the machine has
/// (at least one), so a hostile broker's records can cost at most that much CPU and the
/// HTTP server always finds a core.
fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

/// Whether resolving from `records` on the worker is cheap enough.
pub(super) fn inline(records: &[u8]) -> bool {
    records.len() < INLINE_MAX_BYTES && !crate::kafka::records::has_compressed(records)
}

/// Runs `job` on the blocking pool once a slot is free. `Err` only when the job panicked
/// or the runtime is shutting down.
pub(super) async fn run<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    // The semaphore is never closed, so acquiring only waits.
    let _slot = slots().acquire().await;
    tokio::task::spawn_blocking(job).await
}
