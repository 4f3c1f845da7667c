//! The ring's counters and their snapshot, [`RingStats`].

use std::fmt;
use std::time::Duration;

use crate::loom::AtomicU64;

/// Counters of the ring's cold paths.
#[derive(Default)]
pub(super) struct RingCounters {
    pub(super) replaced_oversized: AtomicU64,
    pub(super) replaced_discarded: AtomicU64,
    pub(super) detached: AtomicU64,
    pub(super) wait_nanos: AtomicU64,
    pub(super) timeouts: AtomicU64,
}

/// A snapshot of a [`RingPool`](crate::RingPool)'s counters.
///
/// Once the ring is quiet: `created_count == capacity + drop_count() +
/// detach_count` and `num_idle + num_in_use == capacity`.
///
/// ```
/// use capacitor_pool::RingPool;
///
/// let ring = RingPool::new(4, Vec::<u8>::new).unwrap();
/// for _ in 0..10 {
///     drop(ring.try_get().unwrap());
/// }
/// let stats = ring.stats();
/// assert_eq!((stats.capacity, stats.get_count, stats.return_count), (4, 10, 10));
/// assert_eq!(stats.created_count, 4); // every get served by a preallocated object
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingStats {
    /// The ring's name, if its builder gave it one.
    pub name: Option<&'static str>,
    /// Slots in the ring.
    pub capacity: usize,
    /// Objects handed out (every get is served by a preallocated object).
    pub get_count: u64,
    /// Guards that gave their slot back.
    pub return_count: u64,
    /// Objects made: the capacity, plus replacements.
    pub created_count: u64,
    /// Objects replaced because they retained more than the limit.
    pub drop_oversized_count: u64,
    /// Objects replaced by `discard`, or because their reset panicked.
    pub drop_discarded_count: u64,
    /// Objects taken out with `detach` (and replaced).
    pub detach_count: u64,
    /// Gets that had to wait for a slot.
    pub wait_count: u64,
    /// Time spent waiting, summed over those gets: an estimate, from one
    /// wait in 8 timed (the first wait included) and scaled by 8, since
    /// reading the clock twice per wait would cost a tenth of a contended
    /// `get`.
    pub wait_time: Duration,
    /// `get_timeout` calls that timed out.
    pub timeout_count: u64,
    /// Tasks waiting now.
    pub num_waiters: u64,
    /// Free slots now.
    pub num_idle: u64,
    /// Slots held now.
    pub num_in_use: u64,
    /// Whether the ring is closed.
    pub closed: bool,
    /// Guards held longer than the ring's hold warning, each counted once
    /// (0 without a hold warning); see [`observe`](crate::observe).
    pub long_hold_count: u64,
}

impl RingStats {
    /// Objects replaced for any reason (oversized or discarded).
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::builder(1, Vec::<u8>::new).retention_limit(1024).build().unwrap();
    /// ring.try_get().unwrap().reserve(4096); // too big to keep: replaced
    /// let stats = ring.stats();
    /// assert_eq!((stats.drop_count(), stats.drop_oversized_count), (1, 1));
    /// assert_eq!(stats.created_count, 2);
    /// ```
    pub fn drop_count(&self) -> u64 {
        self.drop_oversized_count + self.drop_discarded_count
    }
}

impl fmt::Display for RingStats {
    /// One line, as [`PoolStats`](crate::PoolStats) prints. The wait time
    /// is summed over every task that waited (sampled, see
    /// [`wait_time`](RingStats::wait_time)), so it can exceed the time the
    /// ring ran.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::new(2, || ()).unwrap();
    /// drop(ring.try_get().unwrap());
    /// assert_eq!(
    ///     ring.stats().to_string(),
    ///     "capacity 2, gets 1, returns 1, in use 0, idle 2, waits 0 (0ns in all, \
    ///      0 timed out, 0 waiting), created 2, drops 0 (oversized 0, discarded 0), \
    ///      detached 0, open"
    /// );
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.name {
            write!(f, "{name}: ")?;
        }
        write!(
            f,
            "capacity {}, gets {}, returns {}, in use {}, idle {}, waits {} ({:?} in all, \
             {} timed out, {} waiting), created {}, drops {} (oversized {}, discarded {}), \
             detached {}, {}",
            self.capacity,
            self.get_count,
            self.return_count,
            self.num_in_use,
            self.num_idle,
            self.wait_count,
            self.wait_time,
            self.timeout_count,
            self.num_waiters,
            self.created_count,
            self.drop_count(),
            self.drop_oversized_count,
            self.drop_discarded_count,
            self.detach_count,
            if self.closed { "closed" } else { "open" },
        )?;
        if self.long_hold_count > 0 {
            write!(f, ", long holds {}", self.long_hold_count)?;
        }
        Ok(())
    }
}
