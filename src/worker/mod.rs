//! `WorkerPool<T>`: a private slot per worker thread, then per-worker
//! magazines, in front of a [`Pool`] depot, for hot paths on tokio workers.
//!
//! ```
//! use bytes::{BufMut, BytesMut};
//! use capacitor_pool::WorkerPool;
//! use std::sync::LazyLock;
//!
//! static BUFFERS: LazyLock<WorkerPool<BytesMut>> =
//!     LazyLock::new(|| WorkerPool::new(|| BytesMut::with_capacity(4096)));
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let n = tokio::spawn(async {
//!     let mut buf = BUFFERS.get(); // from this worker's private slot or magazine
//!     buf.put_slice(b"hello");
//!     tokio::task::yield_now().await; // may resume on the other worker
//!     buf.len()
//! }) // returned to the worker it is dropped on
//! .await
//! .unwrap();
//! assert_eq!(n, 5);
//! # }
//! ```

mod builder;
#[cfg(all(test, loom))]
mod loom_tests;
mod magazine;
pub(crate) mod private;
pub(crate) mod registry;
pub(crate) mod statics;
mod stats;
mod tiers;
mod trimmer;

use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_utils::CachePadded;

pub use self::builder::WorkerPoolBuilder;
use self::magazine::Magazine;
use self::private::ByIndex;
pub use self::statics::{StaticPooled, StaticWorkerPool};
pub use self::stats::WorkerStats;
pub(crate) use self::trimmer::spawn_trim_loop;
use crate::guard::sealed::Lent;
use crate::guard::{OwnedPooled, PoolKind, Pooled, sealed};
use crate::observe::{self, HoldSite, LongHold, Observe, Snapshot};
use crate::pool::Pool;
use crate::reset::{Recycle, Reset, UseReset};
use crate::slot::{Slot, free_all};
use crate::thread::shard_hint;
use crate::worker::registry::{self as hot, worker_id};

/// The largest magazine, in objects.
///
/// ```
/// use capacitor_pool::WorkerPool;
/// use capacitor_pool::worker::MAX_MAGAZINE_SIZE;
///
/// let pool = WorkerPool::builder(Vec::<u8>::new).magazine_size(1000).build();
/// assert_eq!(pool.magazine_size(), MAX_MAGAZINE_SIZE); // clamped
/// ```
pub const MAX_MAGAZINE_SIZE: usize = 64;

/// The most magazines a [`WorkerPool`] has (one per worker thread): a
/// larger [`workers`](WorkerPoolBuilder::workers) count is taken as this
/// one.
pub const MAX_WORKERS: usize = 1024;

/// Objects per magazine unless the builder says otherwise.
///
/// ```
/// use capacitor_pool::WorkerPool;
/// use capacitor_pool::worker::DEFAULT_MAGAZINE_SIZE;
///
/// let pool = WorkerPool::new(Vec::<u8>::new);
/// assert_eq!(pool.magazine_size(), DEFAULT_MAGAZINE_SIZE);
/// ```
pub const DEFAULT_MAGAZINE_SIZE: usize = 32;

/// A guard from a [`WorkerPool`]: [`Pooled`] with the pool type filled in.
///
/// ```
/// use capacitor_pool::{WorkerPool, WorkerPooled};
///
/// fn greet(mut s: WorkerPooled<'_, String>) -> usize {
///     s.push_str("hello");
///     s.len()
/// }
/// let pool = WorkerPool::new(String::new);
/// assert_eq!(greet(pool.get()), 5);
/// assert_eq!(pool.stats().num_idle, 1); // back when `s` dropped
/// ```
pub type WorkerPooled<'a, T, R = UseReset> = Pooled<'a, T, WorkerPool<T, R>>;

/// An owned guard from a [`WorkerPool`]: [`OwnedPooled`] with the pool type
/// filled in.
///
/// ```
/// use capacitor_pool::{OwnedWorkerPooled, WorkerPool};
/// use std::sync::Arc;
///
/// let pool = Arc::new(WorkerPool::new(String::new));
/// let mut s: OwnedWorkerPooled<String> = pool.get_owned();
/// std::thread::spawn(move || s.push_str("elsewhere")).join().unwrap();
/// assert_eq!(pool.stats().return_count, 1);
/// ```
pub type OwnedWorkerPooled<T, R = UseReset> = OwnedPooled<T, WorkerPool<T, R>>;

/// Per-worker pools tied to tokio worker threads: a lock-free magazine per
/// worker in front of a sharded [`Pool`] depot.
///
/// Same surface as [`Pool`] (`new`, `builder`, `get`, `try_get`,
/// `get_owned`, `put`, `stats`, `trim`), the same guards and the same reset
/// and retention rules.
///
/// # How it works
///
/// Tiers, as Go's `sync.Pool` has (per-P private and shared, then the
/// global victim cache, then `New`), made for tokio:
///
/// 0. **Private slot**: each tokio worker thread keeps one idle object per
///    pool in a thread-local array, at an index the pool got when it was
///    built. `get` takes it and a guard's drop parks its object there, on
///    whichever worker the drop runs: one thread-local load and store
///    each, plus the hit counter, with no table lookup and no bound check
///    (the first 64 live `WorkerPool`s get an index; pools past that start
///    at tier 1). When a worker thread exits, its parked objects wait for
///    the next thread that gets its worker number, which finds them in its
///    own slots, or for the next [`trim`](WorkerPool::trim), which moves
///    them to the depot; when a pool is dropped, it takes its objects back
///    from every thread's slot. Zero-sized types skip this tier. A pool
///    declared in a `static` with [`worker_pool!`](crate::worker_pool) has
///    a thread-local of its own instead of an index into the array, at an
///    address fixed at compile time: no index to load on the way in or
///    out.
/// 1. **Magazine**: each tokio worker thread owns a small bounded LIFO stack
///    of slot pointers, in its own 128-byte-aligned block. `get` pops, guard
///    drop pushes, when the private slot is empty (on `get`) or full (on
///    drop), so a task holding several objects at once uses it. No
///    atomic read-modify-write, no lock, no cache line another worker
///    writes: the magazine is keyed by OS thread, so only its owner ever
///    touches it.
/// 2. **Depot**: a [`Pool`], sharded and bounded. A full magazine moves its
///    colder half to the depot in one batch; an empty one refills half of
///    itself in one batch (Bonwick's magazine layer over a depot, as in the
///    Solaris/Linux slab allocators). Threads that are not tokio workers
///    (the blocking pool, plain threads, the `block_on` thread of a
///    multi-thread runtime, threads past the magazine array) go straight to
///    the depot: they have no private slot and no magazine.
/// 3. **New**: the pool's constructor, counted as a miss.
///
/// [`worker_stats`](WorkerPool::worker_stats) counts tiers 0 and 1 of a
/// worker together as local hits and returns.
///
/// Magazines are keyed by OS thread, not by `worker_index()`: each tokio
/// worker thread gets a dense number at its first use of any `WorkerPool`
/// and owns magazine *n* of every pool. A worker thread that enters
/// `block_in_place` keeps its number (and magazine) while it blocks; the
/// thread tokio starts in its place gets a new number, which may fall past
/// the magazine array (then the depot serves it): leave headroom with
/// [`WorkerPoolBuilder::workers`] if handlers block in place often. A
/// magazine whose thread exits keeps its objects for the next worker thread
/// that gets the number, or until the next [`trim`](WorkerPool::trim) moves
/// them to the depot. The [implementation notes](crate::implementation)
/// say why.
///
/// Objects never move: private slots, magazines and depot hold pointers to
/// heap slots, and every tier past the private slot is out of line.
///
/// ## Aging
///
/// [`trim`](WorkerPool::trim) (or a background [trimmer
/// task](WorkerPool::spawn_trimmer)) drops depot objects that stayed idle
/// through two consecutive trims. It first moves to the depot what exited
/// worker threads left in their magazines and private slots, so two trims
/// after a runtime shuts down, nothing it left is kept. The private slots
/// and magazines of live worker threads are not aged: each is bounded (one
/// object, the magazine size), and touching one from the trimming thread
/// would cost every `get` an atomic.
///
///
/// # Examples
///
/// ```
/// use capacitor_pool::WorkerPool;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let pool = Arc::new(WorkerPool::builder(|| Vec::<u8>::with_capacity(1024))
///     .magazine_size(16)
///     .build());
/// let tasks: Vec<_> = (0..8u8)
///     .map(|i| {
///         let pool = Arc::clone(&pool);
///         tokio::spawn(async move {
///             let mut buf = pool.get();
///             buf.push(i);
///             tokio::task::yield_now().await;
///             buf[0]
///         })
///     })
///     .collect();
/// for (i, t) in tasks.into_iter().enumerate() {
///     assert_eq!(t.await.unwrap(), i as u8);
/// }
/// assert_eq!(pool.stats().num_in_use, 0);
/// # }
/// ```
pub struct WorkerPool<T, R = UseReset> {
    /// This pool's private-slot index on worker threads (`NO_PRIVATE`: none).
    private: usize,
    /// A `Vec`, not a `Box`: the registry keeps a pointer into it, which
    /// moving a `Box` would invalidate (a `Box` asserts uniqueness).
    mags: Vec<CachePadded<Magazine<T>>>,
    mag_size: usize,
    depot: Pool<T, R>,
}

// SAFETY: as for `Pool`: objects are owned through slot pointers and handed
// to one guard (or one magazine owner) at a time, hence `T: Send`.
unsafe impl<T: Send, R: Send> Send for WorkerPool<T, R> {}
// SAFETY: as above. Magazines are shared, but each is only touched by the
// thread that holds its worker number (see `worker_id`).
unsafe impl<T: Send, R: Sync> Sync for WorkerPool<T, R> {}

impl<T: Reset + 'static> WorkerPool<T> {
    /// A pool that makes objects with `make` and resets them with their
    /// [`Reset`] impl, with the default bounds.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::new(|| Vec::<u8>::with_capacity(1024));
    /// assert!(pool.get().capacity() >= 1024);
    /// ```
    pub fn new(make: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Self::builder(make).build()
    }
}

impl<T: 'static> WorkerPool<T> {
    /// A builder for a pool that makes objects with `make`.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(|| String::with_capacity(256))
    ///     .workers(4)
    ///     .magazine_size(8)
    ///     .max_idle(256) // the depot's bound
    ///     .build();
    /// assert_eq!(pool.num_workers(), 4);
    /// ```
    pub fn builder(make: impl Fn() -> T + Send + Sync + 'static) -> WorkerPoolBuilder<T> {
        WorkerPoolBuilder {
            depot: Pool::builder(make),
            workers: None,
            mag_size: DEFAULT_MAGAZINE_SIZE,
        }
    }
}

impl<T, R: Recycle<T>> WorkerPool<T, R> {
    /// Takes an idle object (from this worker's magazine, else the depot),
    /// or makes a new one.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::new(Vec::<u8>::new);
    /// let mut v = pool.get();
    /// v.push(1);
    /// drop(v); // reset and kept
    /// assert!(pool.get().is_empty());
    /// assert_eq!(pool.stats().hit_count, 1);
    /// ```
    #[inline(always)]
    #[track_caller]
    pub fn get(&self) -> WorkerPooled<'_, T, R> {
        let lent = self
            .take_private(ByIndex::of(self), true, Location::caller())
            .expect("make = true")
            .into();
        Pooled::new(self, lent)
    }

    /// Takes an idle object; `None` if none is idle. Never makes one.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::new(Vec::<u8>::new);
    /// assert!(pool.try_get().is_none());
    /// drop(pool.get());
    /// assert!(pool.try_get().is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_get(&self) -> Option<WorkerPooled<'_, T, R>> {
        let lent = self
            .take_private(ByIndex::of(self), false, Location::caller())?
            .into();
        Some(Pooled::new(self, lent))
    }

    /// Like [`get`](WorkerPool::get), for a pool in an [`Arc`]: the guard is
    /// `'static` and can move into `tokio::spawn`.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Arc::new(WorkerPool::new(String::new));
    /// let mut s = pool.get_owned();
    /// let len = tokio::spawn(async move {
    ///     s.push_str("owned");
    ///     s.len()
    /// });
    /// assert_eq!(len.await.unwrap(), 5);
    /// assert_eq!(pool.stats().num_in_use, 0);
    /// # }
    /// ```
    #[inline(always)]
    #[track_caller]
    pub fn get_owned(self: &Arc<Self>) -> OwnedWorkerPooled<T, R> {
        let lent = self
            .take_private(ByIndex::of(self), true, Location::caller())
            .expect("make = true")
            .into();
        OwnedPooled::new(Arc::clone(self), lent)
    }

    /// Like [`try_get`](WorkerPool::try_get), for a pool in an [`Arc`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(WorkerPool::new(String::new));
    /// assert!(pool.try_get_owned().is_none());
    /// drop(pool.get_owned());
    /// assert!(pool.try_get_owned().is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_get_owned(self: &Arc<Self>) -> Option<OwnedWorkerPooled<T, R>> {
        let lent = self
            .take_private(ByIndex::of(self), false, Location::caller())?
            .into();
        Some(OwnedPooled::new(Arc::clone(self), lent))
    }

    /// Hands a value to the pool's depot; see [`Pool::put`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::new(Vec::<u8>::new);
    /// pool.put(vec![1, 2, 3]).unwrap();
    /// assert_eq!(pool.depot().stats().num_idle, 1);
    /// assert!(pool.get().is_empty()); // reset when put
    /// ```
    pub fn put(&self, value: T) -> Result<(), T> {
        self.depot.put(value)
    }

    /// Drops depot objects that stayed idle since the previous `trim`; see
    /// [`Pool::trim`]. Returns how many it dropped.
    ///
    /// First it takes back what exited worker threads left behind (a
    /// runtime shut down, or a worker thread replaced): the magazines of
    /// worker numbers no thread holds, and the objects parked in those
    /// threads' private slots. They move to the depot, where they age like
    /// the rest (what the depot has no room for is dropped at once, counted
    /// as [`drop_full_count`](crate::PoolStats::drop_full_count) and in the
    /// result). So once a runtime has shut down, two trims drop every idle
    /// object it left. The magazines and private slots of live worker
    /// threads are bounded and not aged: reaching into them from the
    /// trimming thread would cost every `get` an atomic.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).prefill(4).build();
    /// assert_eq!(pool.trim(), 0); // starts the first aging period
    /// assert_eq!(pool.trim(), 4); // idle through it: dropped
    /// ```
    pub fn trim(&self) -> usize {
        let mut dropped = self.reclaim_unheld();
        dropped.extend(self.depot.idle.take_aged());
        let n = dropped.len();
        // Dropped after every lock is released, all of them even if one's
        // destructor panics.
        free_all(dropped);
        observe::trace::trimmed(self.depot.label(), n, || self.stats().num_idle);
        n
    }
}

impl<T, R: Recycle<T>> WorkerPool<T, R> {
    /// The calling thread's worker number: `Some` on a tokio worker thread
    /// (numbers are given in order of first use and recycled when a thread
    /// exits), `None` on other threads. Worker `n` owns magazine `n` of
    /// every `WorkerPool`; see [`worker_stats`](WorkerPool::worker_stats).
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// assert_eq!(WorkerPool::<Vec<u8>>::current_worker(), None); // not a worker
    /// ```
    pub fn current_worker() -> Option<usize> {
        worker_id()
    }

    /// The number of magazines (worker numbers past it use the depot).
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).workers(3).build();
    /// assert_eq!(pool.num_workers(), 3);
    /// ```
    pub fn num_workers(&self) -> usize {
        self.mags.len()
    }

    /// Objects per magazine.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).magazine_size(1).build();
    /// assert_eq!(pool.magazine_size(), 2); // clamped to at least 2
    /// ```
    pub fn magazine_size(&self) -> usize {
        self.mag_size
    }

    /// The depot, a [`Pool`] shared by all workers.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).prefill(4).build();
    /// assert_eq!(pool.depot().stats().num_idle, 4); // prefill goes to the depot
    /// ```
    pub fn depot(&self) -> &Pool<T, R> {
        &self.depot
    }

    /// Runs [`trim`](WorkerPool::trim) every `period` (at least 1 ms) on the
    /// current tokio runtime, until the pool is dropped. The runtime needs
    /// its time driver (`enable_time`, or `enable_all`).
    ///
    /// # Errors
    /// Called outside a tokio runtime, it returns the error of
    /// [`Handle::try_current`](tokio::runtime::Handle::try_current).
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let pool = Arc::new(WorkerPool::builder(Vec::<u8>::new).prefill(4).build());
    /// let trimmer = pool.spawn_trimmer(Duration::from_secs(10)).unwrap();
    /// tokio::time::sleep(Duration::from_secs(25)).await;
    /// assert_eq!(pool.stats().num_idle, 0); // idle through two trims
    /// drop(pool);
    /// trimmer.await.unwrap(); // ends once the pool is gone
    /// # }
    /// ```
    pub fn spawn_trimmer(
        self: &Arc<Self>,
        period: Duration,
    ) -> Result<tokio::task::JoinHandle<()>, tokio::runtime::TryCurrentError>
    where
        T: Send + 'static,
        R: Send + Sync + 'static,
    {
        let pool: Weak<Self> = Arc::downgrade(self);
        spawn_trim_loop(period, move || {
            pool.upgrade().map(|pool| pool.trim()).is_some()
        })
    }
}

impl<T, R> WorkerPool<T, R> {
    /// The pool's name, from [`WorkerPoolBuilder::name`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// let pool = WorkerPool::builder(String::new).name("names").build();
    /// assert_eq!(pool.name(), Some("names"));
    /// ```
    pub fn name(&self) -> Option<&'static str> {
        self.depot.name()
    }

    /// The hold warning, from [`WorkerPoolBuilder::hold_warning`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// assert_eq!(WorkerPool::new(String::new).hold_warning(), None);
    /// ```
    pub fn hold_warning(&self) -> Option<Duration> {
        self.depot.hold_warning()
    }

    /// The guards out now that were taken longer ago than the hold warning,
    /// longest first; see [`Pool::long_holds`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    /// use std::time::Duration;
    ///
    /// let pool = WorkerPool::builder(Vec::<u8>::new).hold_warning(Duration::ZERO).build();
    /// let held = pool.get();
    /// std::thread::sleep(Duration::from_millis(1));
    /// let long = pool.long_holds();
    /// assert_eq!((long.len(), long[0].location.line()), (1, line!() - 3));
    /// drop(held);
    /// ```
    pub fn long_holds(&self) -> Vec<LongHold> {
        self.depot.long_holds()
    }

    /// The call sites whose guards passed the hold warning; see
    /// [`Pool::hold_sites`].
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    ///
    /// assert!(WorkerPool::new(String::new).hold_sites().is_empty()); // no warning set
    /// ```
    pub fn hold_sites(&self) -> Vec<HoldSite> {
        self.depot.hold_sites()
    }
}

impl<T, R: Recycle<T>> sealed::Home<T> for WorkerPool<T, R> {
    #[inline(always)]
    fn recycle(&self, object: Lent<T, Self>) {
        // A hold, if the pool records them, ends in the depot tier.
        let private = ByIndex::of(self);
        self.give_back_private(object.into_slot(), private);
    }

    fn discard(&self, object: Lent<T, Self>) {
        // `drop_slot` ends the hold.
        self.depot
            .drop_slot(object.into_slot(), shard_hint(), |c| &c.drops_discarded);
    }

    fn detach(&self, object: Lent<T, Self>) -> T {
        self.depot.hold_returned(&object);
        self.depot.idle.count(shard_hint(), |c| &c.detached, 1);
        object.into_slot().into_inner()
    }
}

impl<T, R> sealed::SlotBacked for WorkerPool<T, R> {}

impl<T, R: Recycle<T>> PoolKind<T> for WorkerPool<T, R> {}

impl<T, R> Drop for WorkerPool<T, R> {
    fn drop(&mut self) {
        // Objects parked for this pool: no thread can park more (the pool
        // is no longer held).
        let mut idle: Vec<Slot<T>> = hot::unregister_pool(self.private)
            .into_iter()
            // SAFETY: parked under this pool's index: slots of our `T`,
            // handed over by the registry.
            .map(|ptr| unsafe { Slot::from_raw(ptr.cast()) })
            .collect();
        for mag in self.mags.iter() {
            let mut out = [const { None }; MAX_MAGAZINE_SIZE + 1];
            // SAFETY: `&mut self`: no thread can use the pool any more, so
            // this is the only access to every magazine.
            let n = unsafe { mag.owned() }.drain(&mut out);
            idle.extend(out.into_iter().take(n).flatten());
        }
        // The depot's too, so that its own drop, which runs after a panic
        // here goes on, has none left to panic with.
        idle.extend(self.depot.idle.take_idle());
        free_all(idle);
    }
}

impl<T, R: Recycle<T>> observe::sealed::Sealed for WorkerPool<T, R> {}

impl<T: Send, R: Recycle<T> + Send + Sync> Observe for WorkerPool<T, R> {
    fn snapshot(&self) -> Snapshot {
        Snapshot::WorkerPool(self.stats())
    }

    fn check_holds(&self, f: &mut dyn FnMut(&LongHold)) {
        self.depot.check_holds(f);
    }
}

impl<T, R: Recycle<T>> fmt::Debug for WorkerPool<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("name", &self.name())
            .field("hold_warning", &self.hold_warning())
            .field("workers", &self.mags.len())
            .field("magazine_size", &self.mag_size)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
