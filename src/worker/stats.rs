//! Per-worker counters and the pool's snapshot of them.

use super::WorkerPool;
use super::magazine::Magazine;
use crate::reset::Recycle;
use crate::stats::PoolStats;
use crate::worker::registry::{self as hot, PrivateCounts};

impl<T, R: Recycle<T>> WorkerPool<T, R> {
    /// A snapshot of the pool's counters: the depot's plus every
    /// magazine's.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::new(Vec::<u8>::new);
    /// let held = pool.get();
    /// drop(pool.get());
    /// let stats = pool.stats();
    /// assert_eq!((stats.get_count, stats.num_in_use, stats.num_idle), (2, 1, 1));
    /// drop(held);
    /// ```
    pub fn stats(&self) -> PoolStats {
        let mut s = self.depot.stats();
        hot::private_counts(self.private, 0..self.mags.len(), |w, counts| {
            let ws = Self::mag_stats(&self.mags[w], counts);
            s.hit_count += ws.local_hit_count;
            s.return_count += ws.local_return_count;
            s.num_idle += ws.num_idle;
        });
        s.derive_in_use()
    }

    /// The counters of magazine `worker` (a worker number, as given to
    /// worker threads in the order they first use a `WorkerPool`); `None`
    /// past [`num_workers`](WorkerPool::num_workers).
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 1)]
    /// # async fn main() {
    /// let pool = Arc::new(WorkerPool::builder(Vec::<u8>::new).workers(4).build());
    /// let p = Arc::clone(&pool);
    /// let worker = tokio::spawn(async move {
    ///     drop(p.get()); // made, then kept in this worker's magazine
    ///     drop(p.get()); // from the magazine
    ///     WorkerPool::<Vec<u8>>::current_worker().unwrap()
    /// });
    /// let stats = pool.worker_stats(worker.await.unwrap()).unwrap();
    /// assert_eq!((stats.local_hit_count, stats.num_idle), (1, 1));
    /// assert!(pool.worker_stats(4).is_none());
    /// # }
    /// ```
    pub fn worker_stats(&self, worker: usize) -> Option<WorkerStats> {
        let mag = self.mags.get(worker)?;
        let mut stats = None;
        hot::private_counts(self.private, worker..worker + 1, |_, counts| {
            stats = Some(Self::mag_stats(mag, counts));
        });
        stats
    }

    /// A magazine's counters, with the private slot of the thread that
    /// holds its number (`slot`).
    pub(super) fn mag_stats(mag: &Magazine<T>, slot: PrivateCounts) -> WorkerStats {
        let load = Magazine::<T>::load;
        let (pushed, popped) = (load(&mag.pushed), load(&mag.popped));
        let (refilled, spilled) = (load(&mag.refilled), load(&mag.spilled));
        let parked = u64::from(slot.parked);
        // Every slot hit was a return into the slot first.
        let slot_hits = load(&mag.slot_hits) + slot.hits;
        WorkerStats {
            local_hit_count: popped.saturating_sub(spilled) + slot_hits,
            local_return_count: pushed.saturating_sub(refilled) + slot_hits + parked,
            refill_count: load(&mag.refills),
            refilled_count: refilled,
            spill_count: load(&mag.spills),
            spilled_count: spilled,
            miss_count: load(&mag.misses),
            num_idle: pushed.saturating_sub(popped) + parked,
        }
    }
}

/// The counters of one worker's magazine; see [`WorkerPool::worker_stats`].
///
/// ```
/// use capacitor_pool::WorkerPool;
/// use capacitor_pool::worker::WorkerStats;
///
/// let pool = WorkerPool::builder(Vec::<u8>::new).workers(2).build();
/// drop(pool.get()); // not on a worker thread: the depot serves it
/// assert_eq!(pool.worker_stats(0), Some(WorkerStats::default()));
/// assert_eq!(pool.depot().stats().return_count, 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Gets served from the worker's private slot or its magazine.
    pub local_hit_count: u64,
    /// Guards dropped on this worker whose object went into its private
    /// slot or its magazine.
    pub local_return_count: u64,
    /// Batch refills from the depot.
    pub refill_count: u64,
    /// Objects those refills brought.
    pub refilled_count: u64,
    /// Batch spills to the depot.
    pub spill_count: u64,
    /// Objects those spills took out of the magazine.
    pub spilled_count: u64,
    /// Gets that found the magazine and the depot empty.
    pub miss_count: u64,
    /// Objects in the worker's private slot and magazine now.
    pub num_idle: u64,
}
