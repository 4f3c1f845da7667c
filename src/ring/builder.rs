//! [`RingPoolBuilder`], made by [`RingPool::builder`].

use std::fmt;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::slots::{MAX_CAPACITY, Slots};
use super::stats::RingCounters;
use super::wait_list::WaitState;
use super::{BuildError, Make, RingPool};
use crate::loom::AtomicBool;
use crate::observe::{Holds, Label};
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
    name: Option<&'static str>,
    hold_warning: Option<Duration>,
}

impl<T: 'static> RingPoolBuilder<T> {
    pub(super) fn new(capacity: usize, make: Make<T>) -> Self {
        Self {
            capacity,
            make,
            recycle: UseReset,
            retention_limit: DEFAULT_RETENTION_LIMIT,
            name: None,
            hold_warning: None,
        }
    }
}

impl<T: 'static, R> RingPoolBuilder<T, R> {
    /// Names the ring; see [`PoolBuilder::name`](crate::pool::PoolBuilder::name).
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::builder(2, Vec::<u8>::new).name("uploads").build().unwrap();
    /// assert_eq!(ring.stats().name, Some("uploads"));
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// Tracks the guards held longer than `threshold`, as
    /// [`PoolBuilder::hold_warning`](crate::pool::PoolBuilder::hold_warning)
    /// does; a ring's long holds also say how many gets waited for a slot
    /// while they were out ([`HoldWaits`](crate::observe::HoldWaits)).
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use std::time::Duration;
    ///
    /// let ring = RingPool::builder(1, Vec::<u8>::new)
    ///     .hold_warning(Duration::from_millis(1))
    ///     .build()
    ///     .unwrap();
    /// let held = ring.try_get().unwrap();
    /// std::thread::sleep(Duration::from_millis(5));
    /// assert_eq!(ring.long_holds()[0].location.line(), line!() - 2);
    /// drop(held);
    /// assert_eq!(ring.stats().long_hold_count, 1);
    /// ```
    pub fn hold_warning(mut self, threshold: Duration) -> Self {
        self.hold_warning = Some(threshold);
        self
    }

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
            name: self.name,
            hold_warning: self.hold_warning,
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
        let label = Label {
            name: self.name,
            kind: "ring",
        };
        Ok(RingPool {
            label,
            holds: self
                .hold_warning
                .map(|threshold| Box::new(Holds::new(threshold, label))),
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
            .field("name", &self.name)
            .field("hold_warning", &self.hold_warning)
            .finish_non_exhaustive()
    }
}
