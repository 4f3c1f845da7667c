//! Seeing pools in production: names, long holds, a periodic reporter, and
//! exports to `metrics` and `tracing`.
//!
//! ```
//! use capacitor_pool::Pool;
//! use std::time::Duration;
//!
//! let pool = Pool::builder(Vec::<u8>::new)
//!     .name("read-buffers")
//!     .hold_warning(Duration::from_millis(1))
//!     .build();
//! let held = pool.get(); // this line is recorded
//! std::thread::sleep(Duration::from_millis(5));
//! let long = pool.long_holds();
//! assert_eq!(long.len(), 1);
//! assert_eq!(long[0].location.line(), line!() - 4);
//! assert!(long[0].held_for >= Duration::from_millis(5));
//! drop(held);
//! assert_eq!(pool.stats().long_hold_count, 1);
//! assert_eq!(pool.stats().name, Some("read-buffers"));
//! ```
//!
//! # Long holds
//!
//! The Go guide's third anti-pattern is holding a pooled object too long:
//! the pool runs dry, makes new objects, and stops paying. A hold warning,
//! set per pool with the builder's `hold_warning(threshold)`
//! ([`Pool`](crate::pool::PoolBuilder::hold_warning),
//! [`WorkerPool`](crate::worker::WorkerPoolBuilder::hold_warning),
//! [`RingPool`](crate::ring::RingPoolBuilder::hold_warning)), makes the pool
//! record, for every guard out, when it was taken and where: the getters
//! are `#[track_caller]`, so the place is the caller's file and line.
//!
//! - `long_holds()` lists the guards held past the threshold now, longest
//!   first, each a [`LongHold`]. For a ring it also says how many gets
//!   waited for a slot while the object was held ([`HoldWaits`]).
//! - `hold_sites()` counts, per call site, the guards that passed the
//!   threshold ([`HoldSite`]); the stats' `long_hold_count` sums them.
//! - Each guard is counted once: when a listing, a [`Reporter`] round or
//!   its own return first finds it past the threshold. With the feature
//!   `tracing`, that is also when a `warn` event names the call site.
//!
//! A guard leaked with [`mem::forget`](std::mem::forget) stays listed, at
//! its call site, for as long as the pool lives: its object never comes
//! back. The `codec` types that take their buffers from a pool
//! (`PooledFramed`, `SlabFramed::with_pool`, `SlabFramedRead::with_pool`)
//! record the line that made them.
//!
//! Without a hold warning a pool records nothing. A
//! [`WorkerPool`](crate::WorkerPool) (and a `worker_pool!` static) has no
//! check for it on its hot path at all: with a warning it has no private
//! slots and no magazines, so every get and return goes through its
//! depot, the tier that records holds. A [`Pool`](crate::Pool) and a
//! [`RingPool`](crate::RingPool) check one field in the get and the
//! return. With a warning, each get and return also takes the lock of one
//! of 64 shards of a table keyed by the object's address and reads the
//! clock: about 90 ns per get and return on a 2-vCPU VM (the worker
//! bench's `worker_pool_hold_warning`), no allocation once the table has
//! grown to the objects in use. Turn it on for the pool under suspicion,
//! not for every pool in production.
//!
//! # Names
//!
//! Every pool's builder takes a `name` (a `&'static str`, so that stats
//! stay `Copy`: leak a `String` with [`String::leak`] for a name made at
//! run time). It shows in `Debug`, in the stats, in reports and events.
//!
//! # Reports
//!
//! A [`Reporter`] reads the pools it watches on a period, on a tokio task of
//! its own, never on the pools' hot paths: each round checks the hold
//! warnings (counting and warning about new long holds), sends each pool's
//! [`Snapshot`] to the `metrics` recorder (feature `metrics`, see
//! [`Reporter`] for the series) and to any callback given with
//! [`Reporter::on_report`] (for an exporter of your own).

#[cfg(feature = "metrics")]
mod export;
mod holds;
mod reporter;
pub(crate) mod trace;

use std::fmt;
use std::panic::Location;
use std::time::Duration;

pub(crate) use self::holds::{Holds, Label, Mark, Site};
pub use self::reporter::Reporter;
use crate::cache::CacheStats;
use crate::ring::RingStats;
use crate::slab::SlabStats;
use crate::stats::PoolStats;

/// A guard held past its pool's hold warning, found by `long_holds()`.
///
/// ```
/// use capacitor_pool::RingPool;
/// use std::time::Duration;
///
/// let ring = RingPool::builder(1, Vec::<u8>::new)
///     .hold_warning(Duration::ZERO) // every hold is long
///     .build()
///     .unwrap();
/// let _held = ring.try_get().unwrap();
/// std::thread::sleep(Duration::from_millis(1));
/// let long = &ring.long_holds()[0];
/// assert!(long.location.file().ends_with(".rs"));
/// assert_eq!(long.waits.unwrap().count, 0); // no get waited meanwhile
/// println!("{long}"); // "held 1.1ms, taken at src/main.rs:9:24"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LongHold {
    /// The pool's name, if it has one.
    pub pool: Option<&'static str>,
    /// Where the guard was taken: the caller of `get` (or `try_get`,
    /// `get_owned`, ...).
    pub location: &'static Location<'static>,
    /// How long it has been out.
    pub held_for: Duration,
    /// For a [`RingPool`](crate::RingPool): the gets that waited for a slot
    /// while this object was out. `None` for other pools.
    pub waits: Option<HoldWaits>,
    /// Whether the guard was still out when this was taken: always from
    /// `long_holds()`; a [`Reporter::on_long_hold`] callback also gets the
    /// long holds that ended before a round saw them (`false`, with their
    /// whole length).
    pub still_held: bool,
}

impl fmt::Display for LongHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.pool {
            write!(f, "{name}: ")?;
        }
        let verb = if self.still_held { "held" } else { "was held" };
        write!(
            f,
            "{verb} {:.1?}, taken at {}",
            self.held_for, self.location
        )?;
        if let Some(w) = self.waits {
            write!(
                f,
                " ({} gets waited meanwhile, {:.1?} in all; {} waiting now)",
                w.count, w.time, w.num_waiters
            )?;
        }
        Ok(())
    }
}

/// The waits on a [`RingPool`](crate::RingPool) while one of its objects
/// was held: what a long hold made other tasks pay. Shared with the other
/// holders of that time: a slot held long makes waits only when the others
/// are all out too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HoldWaits {
    /// Gets that had to wait for a slot since the object was taken.
    pub count: u64,
    /// Their time waiting, counted as [`RingStats::wait_time`] counts it
    /// (sampled), for the waits that ended since the object was taken.
    pub time: Duration,
    /// Tasks waiting for a slot now.
    pub num_waiters: u64,
}

/// A call site's guards that passed the hold warning, from `hold_sites()`.
///
/// ```
/// use capacitor_pool::WorkerPool;
/// use std::time::Duration;
///
/// let pool = WorkerPool::builder(String::new)
///     .hold_warning(Duration::ZERO)
///     .build();
/// for _ in 0..3 {
///     let s = pool.get();
///     std::thread::sleep(Duration::from_millis(1));
///     drop(s);
/// }
/// let sites = pool.hold_sites();
/// assert_eq!(sites.len(), 1); // one line took all three
/// assert_eq!(sites[0].count, 3);
/// assert!(sites[0].longest >= Duration::from_millis(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HoldSite {
    /// The call site.
    pub location: &'static Location<'static>,
    /// Guards taken there that passed the threshold.
    pub count: u64,
    /// The longest of those holds seen so far (a guard still out counts
    /// with its age when it was last looked at).
    pub longest: Duration,
}

impl fmt::Display for HoldSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let holds = if self.count == 1 { "hold" } else { "holds" };
        write!(
            f,
            "{}: {} long {holds}, longest {:.1?}",
            self.location, self.count, self.longest
        )
    }
}

/// What one pool reported in one [`Reporter`] round.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Snapshot {
    /// A [`Pool`](crate::Pool)'s stats.
    Pool(PoolStats),
    /// A [`WorkerPool`](crate::WorkerPool)'s stats (also a `worker_pool!`
    /// static's).
    WorkerPool(PoolStats),
    /// A [`RingPool`](crate::RingPool)'s stats.
    Ring(RingStats),
    /// A [`Slab`](crate::Slab)'s stats.
    Slab(SlabStats),
    /// A [`PooledCache`](crate::PooledCache)'s stats.
    Cache(CacheStats),
}

impl Snapshot {
    /// The pool's name, if it has one.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use capacitor_pool::observe::Observe;
    ///
    /// let pool = Pool::builder(String::new).name("names").build();
    /// assert_eq!(pool.snapshot().name(), Some("names"));
    /// ```
    pub fn name(&self) -> Option<&'static str> {
        match self {
            Snapshot::Pool(s) | Snapshot::WorkerPool(s) => s.name,
            Snapshot::Ring(s) => s.name,
            Snapshot::Slab(s) => s.name,
            Snapshot::Cache(s) => s.name,
        }
    }

    /// The kind of pool, as the exported series label it: `pool`,
    /// `worker_pool`, `ring`, `slab` or `cache`.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use capacitor_pool::observe::Observe;
    ///
    /// let ring = RingPool::new(2, String::new).unwrap();
    /// assert_eq!(ring.snapshot().kind(), "ring");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Snapshot::Pool(_) => "pool",
            Snapshot::WorkerPool(_) => "worker_pool",
            Snapshot::Ring(_) => "ring",
            Snapshot::Slab(_) => "slab",
            Snapshot::Cache(_) => "cache",
        }
    }
}

pub(crate) mod sealed {
    /// The crate's pools only.
    pub trait Sealed {}
}

/// The pools a [`Reporter`] can watch: every pool of the crate. Sealed.
pub trait Observe: sealed::Sealed + Send + Sync {
    /// The pool's stats now.
    fn snapshot(&self) -> Snapshot;

    /// Counts (and, with `tracing`, warns about) the guards that passed
    /// the hold warning since the last look, then hands `f` every long
    /// hold found since the last call, whoever found it (this call, a
    /// `long_holds()` call or a guard's return), oldest first: at most the
    /// last 64. A no-op for pools without a hold warning. [`Reporter`]
    /// rounds call it.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use capacitor_pool::observe::Observe;
    /// use std::time::Duration;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).hold_warning(Duration::ZERO).build();
    /// let held = pool.get();
    /// std::thread::sleep(Duration::from_millis(1));
    /// drop(held); // ends before anyone looked
    /// let mut seen = Vec::new();
    /// pool.check_holds(&mut |long| seen.push(*long));
    /// assert_eq!(seen.len(), 1);
    /// assert!(!seen[0].still_held);
    /// pool.check_holds(&mut |_| panic!("handed over once"));
    /// ```
    fn check_holds(&self, f: &mut dyn FnMut(&LongHold)) {
        let _ = f;
    }
}
