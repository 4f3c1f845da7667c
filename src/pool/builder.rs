//! [`PoolBuilder`].

use std::fmt;
use std::time::Duration;

use super::{Arrival, Depot, Make, Pool};
use crate::observe::{Holds, Label};
use crate::reset::{Recycle, ResetWith, UseReset};
use crate::slot::Slot;

/// Builds a [`Pool`]; made by [`Pool::builder`].
///
/// ```
/// use capacitor_pool::Pool;
/// use capacitor_pool::pool::PoolBuilder;
///
/// let builder: PoolBuilder<Vec<u8>> = Pool::builder(Vec::new);
/// let pool = builder.max_idle(8).shards(2).build();
/// assert_eq!((pool.max_idle(), pool.num_shards()), (8, 2));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder<T, R = UseReset> {
    pub(super) make: Make<T>,
    pub(super) recycle: R,
    pub(super) max_idle: usize,
    pub(super) retention_limit: usize,
    pub(super) shards: Option<usize>,
    pub(super) prefill: usize,
    pub(super) name: Option<&'static str>,
    pub(super) hold_warning: Option<Duration>,
}

impl<T: 'static, R> PoolBuilder<T, R> {
    /// The most idle objects the pool keeps (default
    /// [`DEFAULT_MAX_IDLE`](super::DEFAULT_MAX_IDLE)); objects returned to a full pool are dropped.
    /// 0 makes a pool that keeps nothing.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).max_idle(1).shards(1).build();
    /// let (a, b) = (pool.get(), pool.get());
    /// drop((a, b)); // the second finds the pool full
    /// let stats = pool.stats();
    /// assert_eq!((stats.num_idle, stats.drop_full_count), (1, 1));
    /// ```
    pub fn max_idle(mut self, max_idle: usize) -> Self {
        self.max_idle = max_idle;
        self
    }

    /// Objects that retain more bytes than this after their reset are
    /// dropped on return (default [`DEFAULT_RETENTION_LIMIT`](super::DEFAULT_RETENTION_LIMIT), 1 MiB).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).retention_limit(1024).build();
    /// pool.get().reserve(4096); // grown past the limit: dropped on return
    /// drop(pool.get()); // small: kept
    /// let stats = pool.stats();
    /// assert_eq!((stats.drop_oversized_count, stats.num_idle), (1, 1));
    /// ```
    pub fn retention_limit(mut self, bytes: usize) -> Self {
        self.retention_limit = bytes;
        self
    }

    /// The number of shards, rounded up to a power of two (0 counts as 1),
    /// at most [`MAX_SHARDS`](super::MAX_SHARDS) (1,024). The default is the runtime's worker
    /// count when built inside a tokio runtime, else the number of CPUs,
    /// rounded up.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).shards(0).build();
    /// assert_eq!(pool.num_shards(), 1); // 0 counts as 1
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Makes this many objects up front (at most `max_idle`).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(|| Vec::<u8>::with_capacity(512)).max_idle(4).prefill(10).build();
    /// assert_eq!(pool.stats().num_idle, 4); // at most max_idle
    /// assert!(pool.try_get().is_some());
    /// ```
    pub fn prefill(mut self, count: usize) -> Self {
        self.prefill = count;
        self
    }

    /// Names the pool: the name shows in `Debug`, in [`stats`](Pool::stats),
    /// in long-hold reports and in the exported series; see
    /// [`observe`](crate::observe).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).name("read-buffers").build();
    /// assert_eq!(pool.stats().name, Some("read-buffers"));
    /// assert!(format!("{pool:?}").contains("read-buffers"));
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// Tracks where and when each guard was taken, and reports the guards
    /// held longer than `threshold`: [`Pool::long_holds`],
    /// [`Pool::hold_sites`], [`PoolStats::long_hold_count`](crate::PoolStats::long_hold_count)
    /// and, with the feature `tracing`, a `warn` event per guard. Off by
    /// default: a pool without it records nothing. See
    /// [`observe`](crate::observe) for what it costs.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::time::Duration;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new)
    ///     .hold_warning(Duration::from_millis(1))
    ///     .build();
    /// let held = pool.get();
    /// std::thread::sleep(Duration::from_millis(5));
    /// let long = pool.long_holds();
    /// assert_eq!(long[0].location.line(), line!() - 3);
    /// drop(held);
    /// ```
    pub fn hold_warning(mut self, threshold: Duration) -> Self {
        self.hold_warning = Some(threshold);
        self
    }

    /// Resets objects with a closure instead of the [`Reset`](crate::Reset) trait.
    ///
    /// A closure cannot report retained capacity, so the retention limit
    /// does not apply; implement [`Recycle`] to have both.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// struct Conn { buf: Vec<u8>, retries: u32 }
    ///
    /// let pool = Pool::builder(|| Conn { buf: Vec::new(), retries: 0 })
    ///     .reset(|c: &mut Conn| {
    ///         c.buf.clear();
    ///         c.retries = 0;
    ///     })
    ///     .build();
    /// let mut c = pool.get();
    /// c.retries = 3;
    /// drop(c);
    /// assert_eq!(pool.get().retries, 0);
    /// ```
    pub fn reset<F>(self, reset: F) -> PoolBuilder<T, ResetWith<F>>
    where
        F: Fn(&mut T) + Send + Sync,
    {
        self.recycler(ResetWith(reset))
    }

    /// Recycles objects with a [`Recycle`] policy.
    ///
    /// ```
    /// use capacitor_pool::{Pool, Recycle};
    ///
    /// // Objects keep their contents; only the size limit applies.
    /// struct KeepAll;
    /// impl Recycle<Vec<u8>> for KeepAll {
    ///     fn reset(&self, _: &mut Vec<u8>) {}
    ///     fn retained_bytes(&self, v: &Vec<u8>) -> usize {
    ///         v.capacity()
    ///     }
    /// }
    /// let pool = Pool::builder(Vec::new).recycler(KeepAll).shards(1).build();
    /// pool.get().push(7);
    /// assert_eq!(*pool.get(), [7]);
    /// ```
    pub fn recycler<R2: Recycle<T>>(self, recycle: R2) -> PoolBuilder<T, R2> {
        PoolBuilder {
            make: self.make,
            recycle,
            max_idle: self.max_idle,
            retention_limit: self.retention_limit,
            shards: self.shards,
            prefill: self.prefill,
            name: self.name,
            hold_warning: self.hold_warning,
        }
    }

    /// Builds the pool (and makes the prefill objects).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).prefill(2).build();
    /// assert_eq!(pool.stats().created_count, 2); // the prefill, made by `build`
    /// ```
    pub fn build(self) -> Pool<T, R>
    where
        R: Recycle<T>,
    {
        self.build_as("pool")
    }

    /// Whether the pool will have a hold warning.
    pub(crate) fn has_hold_warning(&self) -> bool {
        self.hold_warning.is_some()
    }

    /// Builds the pool, labelled as `kind` in reports (a `WorkerPool`'s
    /// depot reports as the `WorkerPool`).
    pub(crate) fn build_as(self, kind: &'static str) -> Pool<T, R>
    where
        R: Recycle<T>,
    {
        let label = Label {
            name: self.name,
            kind,
        };
        let pool = Pool {
            label,
            holds: self
                .hold_warning
                .map(|threshold| Box::new(Holds::new(threshold, label))),
            idle: Depot::new(self.shards, self.max_idle),
            make: self.make,
            recycle: self.recycle,
            retention_limit: self.retention_limit,
            max_idle: self.max_idle,
        };
        for i in 0..self.prefill.min(self.max_idle) {
            let slot = Slot::new((pool.make)());
            pool.idle.count(i, |c| &c.created, 1);
            if let Err(slot) = pool.idle.push_slot(i, slot, Arrival::Prefilled) {
                slot.free();
                break;
            }
        }
        pool
    }
}

impl<T, R> fmt::Debug for PoolBuilder<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("max_idle", &self.max_idle)
            .field("retention_limit", &self.retention_limit)
            .field("shards", &self.shards)
            .field("prefill", &self.prefill)
            .field("name", &self.name)
            .field("hold_warning", &self.hold_warning)
            .finish_non_exhaustive()
    }
}
