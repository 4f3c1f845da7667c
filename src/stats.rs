//! Pool metrics: a snapshot of counters kept per shard (or per worker) and
//! summed on read.
//!
//! ```
//! use capacitor_pool::Pool;
//!
//! let pool = Pool::new(Vec::<u8>::new);
//! drop(pool.get()); // miss: a new object is made
//! drop(pool.get()); // hit: the same object comes back
//! let stats = pool.stats();
//! assert_eq!(stats.get_count, 2);
//! assert_eq!(stats.hit_count, 1);
//! assert_eq!(stats.miss_count, 1);
//! assert_eq!(stats.hit_rate(), 0.5);
//! ```

use std::fmt;

/// A snapshot of a pool's counters and gauges.
///
/// Counters are never one shared hot cache line: each shard counts in its own
/// 128-byte block, written by the thread that holds that shard, and
/// [`stats`](crate::Pool::stats) adds the shards up without taking any lock.
/// A snapshot taken while other threads use the pool is therefore only
/// approximately consistent; once the pool is quiet, it adds up exactly:
///
/// `created_count + adopt_count == num_idle + num_in_use + drop_count() + detach_count`
///
/// Names follow tokio's `RuntimeMetrics`: `num_*` for gauges, `*_count` for
/// monotonic counters.
///
/// ```
/// use capacitor_pool::Pool;
///
/// let pool = Pool::builder(Vec::<u8>::new).prefill(2).build();
/// let held = pool.get();
/// pool.get().discard();
/// let s = pool.stats();
/// assert_eq!((s.created_count, s.num_idle, s.num_in_use, s.drop_count()), (2, 0, 1, 1));
/// // Once quiet, the counts add up:
/// let came_in = s.created_count + s.adopt_count;
/// assert_eq!(came_in, s.num_idle + s.num_in_use + s.drop_count() + s.detach_count);
/// drop(held);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's name, if its builder gave it one.
    pub name: Option<&'static str>,
    /// Calls of `get`, `get_owned`, `try_get` and `try_get_owned`.
    pub get_count: u64,
    /// Gets served with an idle object.
    pub hit_count: u64,
    /// Gets that found no idle object (`get` then made a new one; `try_get`
    /// returned `None`).
    pub miss_count: u64,
    /// Objects the pool made with its constructor (misses of `get`, and the
    /// prefill).
    pub created_count: u64,
    /// Guards that gave their object back to the pool's idle set.
    pub return_count: u64,
    /// Values handed in with `put` and kept.
    pub adopt_count: u64,
    /// Objects taken out of the pool's care with `detach`.
    pub detach_count: u64,
    /// Objects dropped because the pool was full when they came back.
    pub drop_full_count: u64,
    /// Objects dropped because they retained more than the retention limit.
    pub drop_oversized_count: u64,
    /// Objects dropped by `discard` (or by a panic while resetting them).
    pub drop_discarded_count: u64,
    /// Idle objects dropped by `trim` after staying idle through two trims.
    pub drop_aged_count: u64,
    /// Objects idle in the pool now.
    pub num_idle: u64,
    /// Objects held by guards now.
    pub num_in_use: u64,
    /// Guards held longer than the pool's hold warning, each counted once
    /// (0 without a hold warning); see [`observe`](crate::observe).
    pub long_hold_count: u64,
}

impl PoolStats {
    /// Hits per get, from 0.0 to 1.0; 0.0 before the first get.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(Vec::<u8>::new);
    /// assert_eq!(pool.stats().hit_rate(), 0.0); // no get yet
    /// for _ in 0..4 {
    ///     drop(pool.get()); // one miss, then three hits
    /// }
    /// assert_eq!(pool.stats().hit_rate(), 0.75);
    /// ```
    pub fn hit_rate(&self) -> f64 {
        if self.get_count == 0 {
            0.0
        } else {
            self.hit_count as f64 / self.get_count as f64
        }
    }

    /// Objects dropped by the pool, for any reason.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).retention_limit(1024).build();
    /// pool.get().reserve(4096); // oversized
    /// pool.get().discard(); // discarded
    /// let stats = pool.stats();
    /// assert_eq!(stats.drop_count(), stats.drop_oversized_count + stats.drop_discarded_count);
    /// assert_eq!(stats.drop_count(), 2);
    /// ```
    pub fn drop_count(&self) -> u64 {
        self.drop_full_count
            + self.drop_oversized_count
            + self.drop_discarded_count
            + self.drop_aged_count
    }

    /// Fills in `num_in_use` from the other counters (objects that came in,
    /// minus those idle, dropped or detached).
    pub(crate) fn derive_in_use(mut self) -> Self {
        let came_in = self.created_count + self.adopt_count;
        let went = self.num_idle + self.drop_count() + self.detach_count;
        self.num_in_use = came_in.saturating_sub(went);
        self.get_count = self.hit_count + self.miss_count;
        self
    }
}

impl fmt::Display for PoolStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.name {
            write!(f, "{name}: ")?;
        }
        write!(
            f,
            "gets {} (hits {}, misses {}, hit rate {:.1}%), created {}, returns {}, \
             drops {} (full {}, oversized {}, discarded {}, aged {}), idle {}, in use {}",
            self.get_count,
            self.hit_count,
            self.miss_count,
            self.hit_rate() * 100.0,
            self.created_count,
            self.return_count,
            self.drop_count(),
            self.drop_full_count,
            self.drop_oversized_count,
            self.drop_discarded_count,
            self.drop_aged_count,
            self.num_idle,
            self.num_in_use,
        )?;
        if self.long_hold_count > 0 {
            write!(f, ", long holds {}", self.long_hold_count)?;
        }
        Ok(())
    }
}
