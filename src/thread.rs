//! What the crate knows about the calling thread: its shard hint, and the
//! parallelism the pools size themselves for.

use std::cell::Cell;

/// The CPUs this process may run on (1 if unknown).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The current runtime's worker threads, if the calling thread is in one.
fn runtime_workers() -> Option<usize> {
    tokio::runtime::Handle::try_current()
        .ok()
        .map(|h| h.metrics().num_workers())
}

/// The parallelism a pool sizes itself for when its builder does not say:
/// the current runtime's workers, or the CPUs, whichever is more.
pub(crate) fn default_parallelism() -> usize {
    cpus().max(runtime_workers().unwrap_or(0))
}

/// The worker threads a per-worker structure is sized for when its builder
/// does not say: the current runtime's workers, or the CPUs outside a
/// runtime.
pub(crate) fn default_workers() -> usize {
    runtime_workers().unwrap_or_else(cpus)
}

/// A shard hint that stands for [`shard_hint`], worked out only by the cold
/// paths that use it (a drop's counter): hot paths that may need a hint
/// pass this instead of reading a thread-local they rarely need.
pub(crate) const HINT_HERE: usize = usize::MAX;

/// The calling thread's home-shard hint: its tokio worker index if the
/// thread is a runtime worker at its first use of a pool, else a dense number
/// given to the thread then. Cached in a thread-local: one TLS load per call.
///
/// It is only a hint (every shard is locked), so a stale value (a thread that
/// later joins a runtime, two runtimes numbering workers alike) costs at most
/// some contention, never correctness.
#[inline]
pub(crate) fn shard_hint() -> usize {
    thread_local! {
        static HINT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    match HINT.try_with(Cell::get) {
        Ok(usize::MAX) => HINT
            .try_with(|h| {
                let hint = first_hint();
                h.set(hint);
                hint
            })
            .unwrap_or(0),
        Ok(hint) => hint,
        Err(_) => 0,
    }
}

#[cold]
#[inline(never)]
fn first_hint() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Plain threads count down from the top of the index space, so they
    // spread over the shards that worker indices (counting up) use last.
    static NEXT: AtomicUsize = AtomicUsize::new(usize::MAX - 1);
    match tokio::runtime::worker_index() {
        Some(index) => index,
        None => NEXT.fetch_sub(1, Ordering::Relaxed),
    }
}
