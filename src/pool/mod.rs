//! `Pool<T>`: the general pool, sharded and bounded, usable from any thread.
//!
//! ```
//! use capacitor_pool::Pool;
//! use bytes::{BufMut, BytesMut};
//!
//! let pool = Pool::new(|| BytesMut::with_capacity(4096));
//! let mut buf = pool.get();
//! buf.put_slice(b"test");
//! assert_eq!(&buf[..], b"test");
//! drop(buf); // cleared and kept for the next get
//! assert!(pool.get().is_empty());
//! ```

mod builder;
mod depot;
#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

pub use self::builder::PoolBuilder;
pub(crate) use self::depot::{Arrival, Depot};
use crate::guard::sealed::Lent;
use crate::guard::{OwnedPooled, PoolKind, Pooled, sealed};
use crate::observe::{self, HoldSite, Holds, Label, LongHold, Mark, Observe, Site, Snapshot};
use crate::reset::{Recycle, Reset, UseReset};
use crate::slot::{Slot, free_all};
use crate::stats::PoolStats;
use crate::thread::shard_hint;

/// Objects retaining more than this are dropped instead of kept (the Go
/// guide's "don't pool objects over 1 MB").
///
/// ```
/// use capacitor_pool::Pool;
/// use capacitor_pool::pool::DEFAULT_RETENTION_LIMIT;
///
/// let pool = Pool::new(Vec::<u8>::new);
/// assert_eq!(pool.retention_limit(), DEFAULT_RETENTION_LIMIT);
/// pool.get().reserve(DEFAULT_RETENTION_LIMIT + 1);
/// assert_eq!(pool.stats().drop_oversized_count, 1); // too big to keep
/// ```
pub const DEFAULT_RETENTION_LIMIT: usize = 1 << 20;

/// Idle objects a pool keeps at most unless its builder says otherwise.
///
/// ```
/// use capacitor_pool::Pool;
/// use capacitor_pool::pool::DEFAULT_MAX_IDLE;
///
/// assert_eq!(Pool::new(String::new).max_idle(), DEFAULT_MAX_IDLE);
/// ```
pub const DEFAULT_MAX_IDLE: usize = 1024;

type Make<T> = Box<dyn Fn() -> T + Send + Sync>;

/// A sharded, bounded pool of reusable objects, usable from any thread.
///
/// `R` is the recycling policy: [`UseReset`] (the [`Reset`] trait) unless
/// the builder was given a closure or a [`Recycle`] impl.
///
/// # How it works
///
/// This is Go's `sync.Pool` done for Rust and tokio. Objects live in heap
/// slots of their own that never move (moving a `BytesMut` through a `Vec`
/// by value costs several times what using it in place does). The pool keeps idle slot pointers in
/// shards: one bounded LIFO stack per shard behind a try-lock, each shard
/// with its counters in its own 128-byte block. A thread picks its home shard
/// from `tokio::runtime::worker_index()` on a runtime worker (workers of one
/// runtime get distinct shards when there are enough), else from a dense
/// per-thread number.
///
/// - `get` pops from the home shard; if it is empty (or busy), it looks at
///   the other shards with `try_lock` (stealing, as `sync.Pool` steals from
///   other Ps), and only then makes a new object: a miss.
/// - Dropping a guard resets the object, drops it if it retains more than
///   the retention limit, else pushes it on the dropping thread's home shard
///   (or another with room); if every shard is full, the object is dropped:
///   the pool never holds more than `max_idle` objects.
///
/// Each shard is locked for a push or a pop of one pointer, so a contended
/// lock is held for nanoseconds; a busy shard is skipped rather than waited
/// on whenever another will do.
///
/// [`WorkerPool`](crate::WorkerPool) adds lock-free per-worker magazines in front of this
/// pool, for hot paths on tokio workers.
///
/// # Examples
///
/// A pool in a `static`, used from spawned tasks:
///
/// ```
/// use capacitor_pool::Pool;
/// use std::sync::LazyLock;
///
/// static SCRATCH: LazyLock<Pool<Vec<u64>>> =
///     LazyLock::new(|| Pool::new(|| Vec::with_capacity(128)));
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let mut v = SCRATCH.get(); // Pooled<'static, Vec<u64>>
/// let sum = tokio::spawn(async move {
///     v.extend([1, 2, 3]);
///     tokio::task::yield_now().await;
///     v.iter().sum::<u64>()
/// })
/// .await
/// .unwrap();
/// assert_eq!(sum, 6);
/// # }
/// ```
pub struct Pool<T, R = UseReset> {
    /// The idle objects.
    pub(crate) idle: Depot<T>,
    make: Make<T>,
    recycle: R,
    retention_limit: usize,
    max_idle: usize,
    label: Label,
    /// The guards out now, when the pool has a hold warning.
    pub(crate) holds: Option<Box<Holds>>,
}

impl<T: Reset + 'static> Pool<T> {
    /// A pool that makes objects with `make` and resets them with their
    /// [`Reset`] impl, with the default bounds.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(|| String::with_capacity(64));
    /// assert!(pool.get().capacity() >= 64);
    /// ```
    pub fn new(make: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Self::builder(make).build()
    }
}

impl<T: 'static> Pool<T> {
    /// A builder for a pool that makes objects with `make`.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(|| Vec::<u8>::with_capacity(4096))
    ///     .max_idle(64)
    ///     .retention_limit(64 * 1024)
    ///     .prefill(8)
    ///     .build();
    /// assert_eq!(pool.stats().num_idle, 8);
    /// ```
    pub fn builder(make: impl Fn() -> T + Send + Sync + 'static) -> PoolBuilder<T> {
        PoolBuilder {
            make: Box::new(make),
            recycle: UseReset,
            max_idle: DEFAULT_MAX_IDLE,
            retention_limit: DEFAULT_RETENTION_LIMIT,
            shards: None,
            prefill: 0,
            name: None,
            hold_warning: None,
        }
    }
}

impl<T, R: Recycle<T>> Pool<T, R> {
    /// Takes an idle object, or makes a new one if none is idle.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(Vec::<u8>::new);
    /// let mut v = pool.get();
    /// v.push(1);
    /// ```
    #[inline(always)]
    #[track_caller]
    pub fn get(&self) -> Pooled<'_, T, Self> {
        let lent = self.take_or_make(shard_hint()).into();
        self.hold_taken(&lent, Location::caller());
        Pooled::new(self, lent)
    }

    /// Takes an idle object; `None` if none is idle. Never makes one.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(Vec::<u8>::new);
    /// assert!(pool.try_get().is_none());
    /// drop(pool.get());
    /// assert!(pool.try_get().is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_get(&self) -> Option<Pooled<'_, T, Self>> {
        let hint = shard_hint();
        match self.idle.pop_slot(hint) {
            Some(slot) => {
                let lent = slot.into();
                self.hold_taken(&lent, Location::caller());
                Some(Pooled::new(self, lent))
            }
            None => {
                self.idle.count_miss(hint);
                None
            }
        }
    }

    /// Like [`get`](Pool::get), for a pool in an [`Arc`]: the guard is
    /// `'static` and can move into `tokio::spawn` or a thread.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(Pool::new(String::new));
    /// let mut s = pool.get_owned();
    /// std::thread::spawn(move || s.push_str("elsewhere")).join().unwrap();
    /// assert_eq!(pool.stats().return_count, 1);
    /// ```
    #[inline(always)]
    #[track_caller]
    pub fn get_owned(self: &Arc<Self>) -> OwnedPooled<T, Self> {
        let lent = self.take_or_make(shard_hint()).into();
        self.hold_taken(&lent, Location::caller());
        OwnedPooled::new(Arc::clone(self), lent)
    }

    /// Like [`try_get`](Pool::try_get), for a pool in an [`Arc`].
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(Pool::new(String::new));
    /// assert!(pool.try_get_owned().is_none()); // never makes one
    /// drop(pool.get_owned());
    /// let s = pool.try_get_owned().unwrap(); // 'static: no borrow of `pool`
    /// std::thread::spawn(move || drop(s)).join().unwrap();
    /// assert_eq!(pool.stats().return_count, 2);
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_get_owned(self: &Arc<Self>) -> Option<OwnedPooled<T, Self>> {
        let hint = shard_hint();
        match self.idle.pop_slot(hint) {
            Some(slot) => {
                let lent = slot.into();
                self.hold_taken(&lent, Location::caller());
                Some(OwnedPooled::new(Arc::clone(self), lent))
            }
            None => {
                self.idle.count_miss(hint);
                None
            }
        }
    }

    /// Hands a value to the pool. The value is reset first; it comes back
    /// as `Err` if it retains more than the retention limit or if the pool
    /// already holds its maximum of idle objects.
    ///
    /// Each value put gets a slot of its own: one allocation, as big as a
    /// `Box<T>`. Returning objects by dropping their guard costs none.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).max_idle(1).build();
    /// assert!(pool.put(vec![1, 2, 3]).is_ok());
    /// assert_eq!(pool.put(vec![4]), Err(vec![])); // full: handed back, reset
    /// assert!(pool.get().is_empty());
    /// ```
    pub fn put(&self, mut value: T) -> Result<(), T> {
        self.recycle.reset(&mut value);
        if self.recycle.retained_bytes(&value) > self.retention_limit {
            return Err(value);
        }
        if self.idle.looks_full() {
            return Err(value);
        }
        let slot = Slot::new(value);
        match self.idle.push_slot(shard_hint(), slot, Arrival::Adopted) {
            Ok(()) => Ok(()),
            Err(slot) => Err(slot.into_inner()),
        }
    }

    /// Drops the idle objects that stayed idle since the previous `trim`
    /// (Go's victim cache, without a GC): call it periodically, and objects
    /// unused through two calls are released. Returns how many it dropped.
    ///
    /// If an object's destructor panics, the others are dropped all the
    /// same, and then the first panic goes on.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).prefill(4).build();
    /// assert_eq!(pool.trim(), 0); // starts the first aging period
    /// assert_eq!(pool.trim(), 4); // idle through it: dropped
    /// assert_eq!(pool.stats().num_idle, 0);
    /// ```
    pub fn trim(&self) -> usize {
        let dropped = self.idle.trim();
        observe::trace::trimmed(self.label, dropped, || self.idle.stats().num_idle);
        dropped
    }

    /// A snapshot of the pool's counters, summed over its shards.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(Vec::<u8>::new);
    /// let held = pool.get();
    /// drop(pool.get());
    /// let stats = pool.stats();
    /// assert_eq!((stats.get_count, stats.created_count), (2, 2));
    /// assert_eq!((stats.num_in_use, stats.num_idle), (1, 1));
    /// drop(held);
    /// ```
    pub fn stats(&self) -> PoolStats {
        let mut stats = self.idle.stats();
        stats.name = self.label.name;
        stats.long_hold_count = self.holds.as_ref().map_or(0, |h| h.passed());
        stats
    }

    /// The most idle objects the pool keeps.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(String::new).max_idle(16).build();
    /// assert_eq!(pool.max_idle(), 16);
    /// ```
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// Objects retaining more bytes than this are dropped on return.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(String::new).retention_limit(4096).build();
    /// assert_eq!(pool.retention_limit(), 4096);
    /// ```
    pub fn retention_limit(&self) -> usize {
        self.retention_limit
    }

    /// The number of shards (a power of two).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(String::new).shards(3).build();
    /// assert_eq!(pool.num_shards(), 4); // rounded up to a power of two
    /// ```
    pub fn num_shards(&self) -> usize {
        self.idle.num_shards()
    }
}

impl<T, R> Pool<T, R> {
    /// The pool's name, from [`PoolBuilder::name`].
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(String::new).name("names").build();
    /// assert_eq!(pool.name(), Some("names"));
    /// assert_eq!(Pool::new(String::new).name(), None);
    /// ```
    pub fn name(&self) -> Option<&'static str> {
        self.label.name
    }

    /// The hold warning, from [`PoolBuilder::hold_warning`]; `None` when
    /// long holds are not tracked.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::time::Duration;
    ///
    /// let pool = Pool::builder(String::new).hold_warning(Duration::from_secs(1)).build();
    /// assert_eq!(pool.hold_warning(), Some(Duration::from_secs(1)));
    /// ```
    pub fn hold_warning(&self) -> Option<Duration> {
        self.holds.as_ref().map(|h| h.threshold())
    }

    /// The guards out now that were taken longer ago than the hold warning,
    /// longest first, with where each was taken. Empty without a hold
    /// warning. Counts (and warns about, with `tracing`) those not seen
    /// before; see [`observe`].
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::time::Duration;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).hold_warning(Duration::from_millis(1)).build();
    /// let _quick = pool.get();
    /// assert!(pool.long_holds().is_empty()); // not held long yet
    /// std::thread::sleep(Duration::from_millis(5));
    /// let long = pool.long_holds();
    /// assert_eq!(long.len(), 1);
    /// assert_eq!(long[0].location.file(), file!());
    /// ```
    pub fn long_holds(&self) -> Vec<LongHold> {
        self.holds
            .as_ref()
            .map_or_else(Vec::new, |h| h.scan(|_| None))
    }

    /// The call sites whose guards passed the hold warning, with how many
    /// and the longest hold, most first; see [`HoldSite`].
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::time::Duration;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).hold_warning(Duration::ZERO).build();
    /// let held = pool.get();
    /// std::thread::sleep(Duration::from_millis(1));
    /// drop(held); // counted on its way back
    /// let sites = pool.hold_sites();
    /// assert_eq!((sites[0].count, sites[0].location.line()), (1, line!() - 4));
    /// ```
    pub fn hold_sites(&self) -> Vec<HoldSite> {
        self.holds.as_ref().map_or_else(Vec::new, |h| h.sites())
    }

    /// Records where and when the object of `lent` was taken, if the pool
    /// has a hold warning: one branch otherwise.
    #[inline(always)]
    pub(crate) fn hold_taken<P: ?Sized>(&self, lent: &Lent<T, P>, site: Site) {
        if let Some(holds) = &self.holds {
            holds.taken(lent.addr(), site, Mark::default());
        }
    }

    /// Forgets the hold of `lent`'s object, counting it if it was long.
    #[inline(always)]
    pub(crate) fn hold_returned<P: ?Sized>(&self, lent: &Lent<T, P>) {
        if let Some(holds) = &self.holds {
            holds.returned(lent.addr(), |_| None);
        }
    }

    pub(crate) fn label(&self) -> Label {
        self.label
    }
}

impl<T, R: Recycle<T>> sealed::Home<T> for Pool<T, R> {
    #[inline(always)]
    fn recycle(&self, object: Lent<T, Self>) {
        self.hold_returned(&object);
        self.recycle_at(object.into_slot(), shard_hint());
    }

    fn discard(&self, object: Lent<T, Self>) {
        // `drop_slot` ends the hold.
        self.drop_slot(object.into_slot(), shard_hint(), |c| &c.drops_discarded);
    }

    fn detach(&self, object: Lent<T, Self>) -> T {
        self.hold_returned(&object);
        self.idle.count(shard_hint(), |c| &c.detached, 1);
        object.into_slot().into_inner()
    }
}

impl<T, R> sealed::SlotBacked for Pool<T, R> {}

impl<T, R: Recycle<T>> PoolKind<T> for Pool<T, R> {}

impl<T, R> Drop for Pool<T, R> {
    fn drop(&mut self) {
        free_all(self.idle.take_idle());
    }
}

impl<T, R: Recycle<T>> observe::sealed::Sealed for Pool<T, R> {}

impl<T: Send, R: Recycle<T> + Send + Sync> Observe for Pool<T, R> {
    fn snapshot(&self) -> Snapshot {
        Snapshot::Pool(self.stats())
    }

    fn check_holds(&self, f: &mut dyn FnMut(&LongHold)) {
        if let Some(holds) = &self.holds {
            holds.check(|_| None, f);
        }
    }
}

impl<T, R: Recycle<T>> fmt::Debug for Pool<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.label.name)
            .field("hold_warning", &self.hold_warning())
            .field("shards", &self.idle.num_shards())
            .field("max_idle", &self.max_idle)
            .field("retention_limit", &self.retention_limit)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The most shards a pool, a slab class or a cache has: a larger count is
/// taken as this one.
pub const MAX_SHARDS: usize = 1024;
