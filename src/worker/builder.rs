//! [`WorkerPoolBuilder`].

use std::fmt;

use crossbeam_utils::CachePadded;

use super::magazine::{Magazine, fold_slot_hits};
use super::{MAX_MAGAZINE_SIZE, MAX_WORKERS, WorkerPool};
use crate::pool::PoolBuilder;
use crate::reset::{Recycle, ResetWith, UseReset};
use crate::thread::default_workers;
use crate::worker::registry::{self as hot, PoolEntry};

/// Builds a [`WorkerPool`]; made by [`WorkerPool::builder`].
///
/// ```
/// use capacitor_pool::WorkerPool;
/// use capacitor_pool::worker::WorkerPoolBuilder;
///
/// let builder: WorkerPoolBuilder<Vec<u8>> = WorkerPool::builder(Vec::new);
/// let pool = builder.workers(2).magazine_size(4).build();
/// assert_eq!((pool.num_workers(), pool.magazine_size()), (2, 4));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct WorkerPoolBuilder<T, R = UseReset> {
    pub(super) depot: PoolBuilder<T, R>,
    pub(super) workers: Option<usize>,
    pub(super) mag_size: usize,
}

impl<T: 'static, R> WorkerPoolBuilder<T, R> {
    /// The number of magazines, at most [`MAX_WORKERS`]. The default is the
    /// runtime's worker count when built inside a tokio runtime, else the
    /// number of CPUs. Worker threads whose number is past it use the depot
    /// (0: every thread does).
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// // Headroom for threads started by `block_in_place`.
    /// let pool = WorkerPool::builder(Vec::<u8>::new).workers(8).build();
    /// assert_eq!(pool.num_workers(), 8);
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers.min(MAX_WORKERS));
        self
    }

    /// Objects per magazine (default [`DEFAULT_MAGAZINE_SIZE`](super::DEFAULT_MAGAZINE_SIZE)), clamped to
    /// `2..=`[`MAX_MAGAZINE_SIZE`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).magazine_size(8).build();
    /// assert_eq!(pool.magazine_size(), 8);
    /// ```
    pub fn magazine_size(mut self, size: usize) -> Self {
        self.mag_size = size.clamp(2, MAX_MAGAZINE_SIZE);
        self
    }

    /// The depot's bound on idle objects; see [`PoolBuilder::max_idle`].
    /// Magazines hold up to `workers × magazine_size` more.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).max_idle(1).build();
    /// let (a, b) = (pool.get(), pool.get());
    /// drop((a, b)); // off a worker thread both go to the depot: one is dropped
    /// assert_eq!(pool.stats().drop_full_count, 1);
    /// ```
    pub fn max_idle(mut self, max_idle: usize) -> Self {
        self.depot = self.depot.max_idle(max_idle);
        self
    }

    /// See [`PoolBuilder::retention_limit`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).retention_limit(1024).build();
    /// pool.get().reserve(4096);
    /// assert_eq!(pool.stats().drop_oversized_count, 1); // too big to keep
    /// ```
    pub fn retention_limit(mut self, bytes: usize) -> Self {
        self.depot = self.depot.retention_limit(bytes);
        self
    }

    /// The depot's shard count; see [`PoolBuilder::shards`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).shards(4).build();
    /// assert_eq!(pool.depot().num_shards(), 4);
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.depot = self.depot.shards(shards);
        self
    }

    /// Names the pool; see [`PoolBuilder::name`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).name("frames").build();
    /// assert_eq!(pool.name(), Some("frames"));
    /// assert_eq!(pool.stats().name, Some("frames"));
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.depot = self.depot.name(name);
        self
    }

    /// Tracks the guards held longer than `threshold`; see
    /// [`PoolBuilder::hold_warning`]. Off by default.
    ///
    /// A pool with a hold warning has no private slots and no magazines
    /// ([`num_workers`](WorkerPool::num_workers) is 0): every get and
    /// return goes through the depot, where the hold is recorded. So pools
    /// without one pay nothing for the feature: their private slot and
    /// magazine paths have no check for it. Turn it on to find a leak or a
    /// slow handler, on the pool under suspicion.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    /// use std::time::Duration;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new)
    ///     .hold_warning(Duration::from_millis(1))
    ///     .build();
    /// let held = pool.get();
    /// std::thread::sleep(Duration::from_millis(5));
    /// assert_eq!(pool.long_holds()[0].location.line(), line!() - 2);
    /// drop(held);
    /// assert_eq!(pool.stats().long_hold_count, 1);
    /// ```
    pub fn hold_warning(mut self, threshold: std::time::Duration) -> Self {
        self.depot = self.depot.hold_warning(threshold);
        self
    }

    /// Objects made up front, into the depot; see [`PoolBuilder::prefill`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(|| Vec::<u8>::with_capacity(512)).prefill(16).build();
    /// assert_eq!(pool.stats().num_idle, 16);
    /// assert_eq!(pool.stats().created_count, 16);
    /// ```
    pub fn prefill(mut self, count: usize) -> Self {
        self.depot = self.depot.prefill(count);
        self
    }

    /// See [`PoolBuilder::reset`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(|| vec![0u8; 4]).reset(|v| v.fill(0)).build();
    /// pool.get()[0] = 9;
    /// assert_eq!(*pool.get(), [0, 0, 0, 0]); // zeroed, length kept
    /// ```
    pub fn reset<F>(self, reset: F) -> WorkerPoolBuilder<T, ResetWith<F>>
    where
        F: Fn(&mut T) + Send + Sync,
    {
        self.recycler(ResetWith(reset))
    }

    /// See [`PoolBuilder::recycler`].
    ///
    /// ```
    /// use capacitor_pool::{Recycle, WorkerPool};
    ///
    /// struct Shrink;
    /// impl Recycle<String> for Shrink {
    ///     fn reset(&self, s: &mut String) {
    ///         s.clear();
    ///         s.shrink_to(64);
    ///     }
    ///     fn retained_bytes(&self, s: &String) -> usize {
    ///         s.capacity()
    ///     }
    /// }
    /// let pool = WorkerPool::builder(String::new).recycler(Shrink).build();
    /// pool.get().push_str(&"x".repeat(1000));
    /// assert!(pool.get().capacity() < 1000); // shrunk on return
    /// ```
    pub fn recycler<R2: Recycle<T>>(self, recycle: R2) -> WorkerPoolBuilder<T, R2> {
        WorkerPoolBuilder {
            depot: self.depot.recycler(recycle),
            workers: self.workers,
            mag_size: self.mag_size,
        }
    }

    /// Builds the pool.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).workers(2).build();
    /// assert!(pool.try_get().is_none()); // empty until used or prefilled
    /// ```
    pub fn build(self) -> WorkerPool<T, R>
    where
        R: Recycle<T>,
    {
        self.build_with(false)
    }

    /// Builds the pool of a [`worker_pool!`](crate::worker_pool) static:
    /// its private slots are the static's own thread-local.
    pub(crate) fn build_with(self, dedicated: bool) -> WorkerPool<T, R>
    where
        R: Recycle<T>,
    {
        // With a hold warning, no private slots and no magazines: every
        // get and return goes through the depot's tier, which records the
        // holds, and the hot path of pools without one checks nothing.
        let tracked = self.depot.has_hold_warning();
        let workers = if tracked {
            0
        } else {
            self.workers.unwrap_or_else(default_workers)
        };
        let mags: Vec<CachePadded<Magazine<T>>> = (0..workers).map(|_| Magazine::new()).collect();
        let depot = self.depot.build_as("worker_pool");
        // Last: from here on worker threads may park objects for this pool,
        // and its drop must take them back.
        // Zero-sized objects get none: a `Box` of one may sit at address 1,
        // which the slots read as "empty". Nor does a pool with a hold
        // warning.
        let private = if size_of::<T>() == 0 || tracked {
            hot::NO_PRIVATE
        } else {
            hot::register_pool(PoolEntry {
                mags: mags.as_ptr().cast(),
                workers,
                fold_hits: fold_slot_hits::<T>,
                dedicated,
            })
        };
        WorkerPool {
            private,
            mags,
            mag_size: self.mag_size,
            depot,
        }
    }
}

impl<T, R> fmt::Debug for WorkerPoolBuilder<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPoolBuilder")
            .field("depot", &self.depot)
            .field("workers", &self.workers)
            .field("magazine_size", &self.mag_size)
            .finish()
    }
}
