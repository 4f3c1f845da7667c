//! [`RingPoolBuilder`], made by [`RingPool::builder`].

use std::fmt;

use crossbeam_utils::CachePadded;

use super::slots::{MAX_CAPACITY, Slots};
use super::stats::RingCounters;
use super::wait_list::WaitState;
use super::{BuildError, Make, RingPool};
use crate::loom::AtomicBool;
use crate::pool::DEFAULT_RETENTION_LIMIT;
use crate::reset::{Recycle, ResetWith, UseReset};

/// Builds a [`RingPool`]; made by [`RingPool::builder`].
///
/// ```
/// use capacitor_pool::RingPool;
/// use capacitor_pool::ring::RingPoolBuilder;
///
/// let builder: RingPoolBuilder<Vec<u8>> = RingPool::builder(2, Vec::new);
/// let ring = builder.retention_limit(4096).build().unwrap();
/// assert_eq!(ring.capacity(), 2);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct RingPoolBuilder<T, R = UseReset> {
    capacity: usize,
    make: Make<T>,
    recycle: R,
    retention_limit: usize,
}

impl<T: 'static> RingPoolBuilder<T> {
    pub(super) fn new(capacity: usize, make: Make<T>) -> Self {
        Self {
            capacity,
            make,
            recycle: UseReset,
            retention_limit: DEFAULT_RETENTION_LIMIT,
        }
    }
}

impl<T: 'static, R> RingPoolBuilder<T, R> {
    /// Objects that retain more bytes than this after their reset are
    /// replaced by a fresh one on return (default 1 MiB).
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::builder(1, Vec::<u8>::new).retention_limit(1024).build().unwrap();
    /// ring.try_get().unwrap().reserve(4096);
    /// assert_eq!(ring.stats().drop_oversized_count, 1);
    /// assert_eq!(ring.try_get().unwrap().capacity(), 0); // a fresh object
    /// ```
    pub fn retention_limit(mut self, bytes: usize) -> Self {
        self.retention_limit = bytes;
        self
    }

    /// Resets objects with a closure instead of the [`Reset`](crate::Reset) trait; see
    /// [`PoolBuilder::reset`](crate::pool::PoolBuilder::reset).
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::builder(1, || vec![0u8; 4]).reset(|v| v.fill(0)).build().unwrap();
    /// ring.try_get().unwrap()[0] = 9;
    /// assert_eq!(*ring.try_get().unwrap(), [0, 0, 0, 0]); // zeroed, length kept
    /// ```
    pub fn reset<F>(self, reset: F) -> RingPoolBuilder<T, ResetWith<F>>
    where
        F: Fn(&mut T) + Send + Sync,
    {
        self.recycler(ResetWith(reset))
    }

    /// Recycles objects with a [`Recycle`] policy.
    ///
    /// ```
    /// use capacitor_pool::{RingPool, UseReset};
    ///
    /// // `UseReset` is the default policy: the `Reset` trait.
    /// let ring = RingPool::builder(1, String::new).recycler(UseReset).build().unwrap();
    /// ring.try_get().unwrap().push_str("x");
    /// assert!(ring.try_get().unwrap().is_empty());
    /// ```
    pub fn recycler<R2: Recycle<T>>(self, recycle: R2) -> RingPoolBuilder<T, R2> {
        RingPoolBuilder {
            capacity: self.capacity,
            make: self.make,
            recycle,
            retention_limit: self.retention_limit,
        }
    }

    /// Builds the ring, making all its objects now.
    ///
    /// # Errors
    /// [`BuildError::ZeroCapacity`] for a capacity of 0,
    /// [`BuildError::CapacityTooLarge`] past `usize::MAX >> 3` slots.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use capacitor_pool::ring::BuildError;
    ///
    /// let ring = RingPool::builder(2, || Vec::<u8>::with_capacity(64)).build().unwrap();
    /// assert_eq!(ring.stats().created_count, 2); // made now
    /// let err = RingPool::builder(0, Vec::<u8>::new).build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroCapacity);
    /// ```
    pub fn build(self) -> Result<RingPool<T, R>, BuildError>
    where
        R: Recycle<T>,
    {
        let capacity = self.capacity;
        if capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if capacity > MAX_CAPACITY {
            return Err(BuildError::CapacityTooLarge {
                requested: capacity,
                max: MAX_CAPACITY,
            });
        }
        Ok(RingPool {
            slots: Slots::new(capacity, &self.make),
            wait: CachePadded::new(WaitState::new()),
            closed: AtomicBool::new(false),
            make: self.make,
            recycle: self.recycle,
            retention_limit: self.retention_limit,
            counters: CachePadded::new(RingCounters::default()),
        })
    }
}

impl<T, R> fmt::Debug for RingPoolBuilder<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingPoolBuilder")
            .field("capacity", &self.capacity)
            .field("retention_limit", &self.retention_limit)
            .finish_non_exhaustive()
    }
}
