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

use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::guard::{OwnedPooled, PoolKind, Pooled, sealed};
use crate::hot::{self, NO_ID, PoolEntry, SlotCounts, raw_worker_id, worker_id};
use crate::loom::{AtomicU64, Ordering, UnsafeCell};
use crate::pool::{Arrival, HINT_HERE, Pool, PoolBuilder, shard_hint};
use crate::reset::{Recycle, Reset, ResetWith, UseReset};
use crate::shard::{free_all, take_slot};
use crate::stats::PoolStats;
pub use crate::worker_static::{StaticPooled, StaticWorkerPool};

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

/// A magazine: a bounded LIFO stack of slot pointers owned by one worker
/// thread.
///
/// Its length is not stored: it is `pushed - popped`, two monotonic counts
/// that the owner alone writes (a plain load and store each) and anyone may
/// read. A `get` writes only `popped` and a drop only `pushed`, so a tight
/// get/drop loop carries two independent store-to-load chains instead of one
/// chain through a shared length twice as long; and the counts double as the
/// statistics (hits are `popped - spilled`, returns `pushed - refilled`), so
/// the hot path bumps no counter of its own.
struct Magazine<T> {
    /// Objects ever pushed: local returns plus refilled.
    pushed: AtomicU64,
    /// Objects ever popped: local hits plus spilled.
    popped: AtomicU64,
    /// The most recently returned object when the stack below is in use
    /// (Go's per-P `private` slot): a get and a drop in a row touch only
    /// this fixed place, whose address needs no length, so the pointer's
    /// trip through memory is one store-to-load forward and not three.
    hot: UnsafeCell<*mut T>,
    slots: UnsafeCell<[*mut T; MAX_MAGAZINE_SIZE]>,
    /// Cold-path counters, written by the owner alone too.
    refills: AtomicU64,
    refilled: AtomicU64,
    spills: AtomicU64,
    spilled: AtomicU64,
    misses: AtomicU64,
    /// Private-slot hits of threads that held this worker number and
    /// exited. Each was also a return into the slot: the slot's returns are
    /// its hits plus the object parked there (or left as an orphan).
    slot_hits: AtomicU64,
}

impl<T> Magazine<T> {
    fn new() -> CachePadded<Self> {
        CachePadded::new(Self {
            pushed: AtomicU64::new(0),
            popped: AtomicU64::new(0),
            hot: UnsafeCell::new(ptr::null_mut()),
            slots: UnsafeCell::new([ptr::null_mut(); MAX_MAGAZINE_SIZE]),
            refills: AtomicU64::new(0),
            refilled: AtomicU64::new(0),
            spills: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            slot_hits: AtomicU64::new(0),
        })
    }

    /// Adds `n` to a counter this thread owns: a load and a store.
    #[inline(always)]
    fn add(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    fn load(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Runs `f` on the stack's slot array and the stack's length (the
    /// objects below the hot slot).
    ///
    /// # Safety
    /// The calling thread owns this magazine (it holds the magazine's
    /// worker number, or holds the registry's lock while no thread holds
    /// it), and `f` does not reach this magazine again.
    #[inline(always)]
    unsafe fn with_slots<R>(
        &self,
        f: impl FnOnce(&mut [*mut T; MAX_MAGAZINE_SIZE], usize) -> R,
    ) -> R {
        // SAFETY: as below.
        let hot = self.hot.with_mut(|h| unsafe { !(*h).is_null() });
        let len = (Self::load(&self.pushed) - Self::load(&self.popped)) as usize - usize::from(hot);
        // SAFETY: the caller is the only thread that uses this magazine and
        // does not re-enter it, so this is the only reference to the slots.
        self.slots.with_mut(|slots| f(unsafe { &mut *slots }, len))
    }

    /// Takes every object out (the stack, then the hot slot) into the
    /// front of `out`, counted as popped; returns how many.
    ///
    /// # Safety
    /// As for [`with_slots`](Self::with_slots); `out` has room for a full
    /// magazine.
    unsafe fn drain(&self, out: &mut [*mut T]) -> usize {
        // SAFETY: forwarded; copying pointers.
        let mut n = unsafe {
            self.with_slots(|slots, len| {
                out[..len].copy_from_slice(&slots[..len]);
                len
            })
        };
        // SAFETY: as for `with_slots`. After the stack: its length counts
        // the hot slot out.
        let hot = self
            .hot
            .with_mut(|h| unsafe { ptr::replace(h, ptr::null_mut()) });
        if !hot.is_null() {
            out[n] = hot;
            n += 1;
        }
        Self::add(&self.popped, n as u64);
        n
    }

    /// Pops the hot slot, else the top of the stack.
    ///
    /// # Safety
    /// As for [`with_slots`](Self::with_slots).
    #[inline(always)]
    unsafe fn pop(&self) -> Option<NonNull<T>> {
        let popped = Self::load(&self.popped);
        // SAFETY: as for `with_slots`: only the owner touches `hot`.
        let hot = self
            .hot
            .with_mut(|h| unsafe { ptr::replace(h, ptr::null_mut()) });
        if let Some(slot) = NonNull::new(hot) {
            self.popped.store(popped + 1, Ordering::Relaxed);
            return Some(slot);
        }
        // The hot slot is empty, so the stack holds them all.
        let len = Self::load(&self.pushed).wrapping_sub(popped) as usize;
        let top = len.checked_sub(1)?;
        // SAFETY: as for `with_slots`; reading one element.
        let slot = self
            .slots
            .with_mut(|slots| unsafe { (*slots).get(top).copied() })?;
        self.popped.store(popped + 1, Ordering::Relaxed);
        NonNull::new(slot)
    }

    /// Puts `slot` in the hot slot; the object that was there (if any)
    /// moves onto the stack when the magazine holds fewer than `cap`
    /// objects. Otherwise that older object comes back as `Err`: it is
    /// still counted in the magazine, and [`WorkerPool::spill`] must place
    /// it.
    ///
    /// The store of `slot` does not wait for the load of the old hot
    /// pointer, so a get/drop loop carries one store-to-load forward per
    /// round trip.
    ///
    /// # Safety
    /// As for [`with_slots`](Self::with_slots).
    #[inline(always)]
    unsafe fn push(&self, slot: NonNull<T>, cap: usize) -> Result<(), NonNull<T>> {
        let pushed = Self::load(&self.pushed);
        // SAFETY: as for `with_slots`: only the owner touches `hot`.
        let old = self
            .hot
            .with_mut(|h| unsafe { ptr::replace(h, slot.as_ptr()) });
        self.pushed.store(pushed + 1, Ordering::Relaxed);
        let Some(old) = NonNull::new(old) else {
            return Ok(());
        };
        // `old` leaves the hot slot for the stack, which held this many.
        let stack_len = pushed.wrapping_sub(Self::load(&self.popped)) as usize - 1;
        if stack_len + 2 > cap {
            return Err(old);
        }
        // SAFETY: as for `with_slots`; writing one element.
        let stored = self
            .slots
            .with_mut(|slots| match unsafe { (*slots).get_mut(stack_len) } {
                Some(place) => {
                    *place = old.as_ptr();
                    true
                }
                None => false,
            });
        if stored { Ok(()) } else { Err(old) }
    }
}

/// Spawns a task on the current runtime that calls `trim` every `period`
/// (at least 1 ms), the first time one period from now, until it returns
/// `false`.
pub(crate) fn spawn_trim_loop(
    period: Duration,
    mut trim: impl FnMut() -> bool + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, tokio::runtime::TryCurrentError> {
    let handle = tokio::runtime::Handle::try_current()?;
    let period = period.max(Duration::from_millis(1));
    Ok(handle.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            if !trim() {
                break;
            }
        }
    }))
}

/// [`PoolEntry::fold_hits`] for a pool of `T`s (its parked object, if
/// any, stays counted as parked, as an orphan).
///
/// # Safety
/// `mags` points to the magazines of a live `WorkerPool<T, _>` with more
/// than `worker` of them, and the calling thread holds worker number
/// `worker`.
unsafe fn fold_slot_hits<T>(mags: *const (), worker: usize, hits: u64) {
    // SAFETY: the caller's contract.
    let mag = unsafe { &*mags.cast::<CachePadded<Magazine<T>>>().add(worker) };
    Magazine::<T>::add(&mag.slot_hits, hits);
}

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
///    out, about 20–30% less per get and drop as measured here.
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
/// ## Why magazines are keyed by OS thread
///
/// `tokio::runtime::worker_index()` is only a hint for exclusive access:
/// after `block_in_place` the old worker thread keeps running the blocked
/// task while a new thread takes over its index, and two runtimes number
/// their workers from 0 alike. Two sound designs exist: key by
/// `worker_index()` and take the magazine with an uncontended atomic swap,
/// or key by OS thread. The crate gives each tokio worker thread, at its
/// first use of any `WorkerPool`, a dense number of its own (recycled when
/// the thread exits); the thread then owns magazine *n* of every pool, and
/// exclusivity holds by construction, with no atomic at all. A worker
/// thread that enters `block_in_place` keeps its number (and magazine) while
/// it blocks, still exclusively; the thread tokio starts in its place gets a
/// new number, which may fall past the magazine array (then the depot serves
/// it): leave headroom with [`WorkerPoolBuilder::workers`] if handlers block
/// in place often. Measured here
/// (DESIGN.md, "The hot path"), a thread-keyed magazine costs about a third
/// of the `worker_index()` + atomic variant. A magazine whose thread exits
/// keeps its objects for the next worker thread that gets the number, or
/// until the next [`trim`](WorkerPool::trim) moves them to the depot.
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
    /// This pool's private-slot index on worker threads (`NO_SLOT`: none).
    slot: usize,
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
    pub fn get(&self) -> WorkerPooled<'_, T, R> {
        Pooled::new(self, self.take_here(true).expect("make = true"))
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
    pub fn try_get(&self) -> Option<WorkerPooled<'_, T, R>> {
        Some(Pooled::new(self, self.take_here(false)?))
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
    pub fn get_owned(self: &Arc<Self>) -> OwnedWorkerPooled<T, R> {
        let slot = self.take_here(true).expect("make = true");
        OwnedPooled::new(Arc::clone(self), slot)
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
    pub fn try_get_owned(self: &Arc<Self>) -> Option<OwnedWorkerPooled<T, R>> {
        let slot = self.take_here(false)?;
        Some(OwnedPooled::new(Arc::clone(self), slot))
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
        dropped.extend(self.depot.take_aged());
        let n = dropped.len();
        // SAFETY: they left the magazines, the registry and the depot's
        // shards: ours alone. Dropped after every lock is released, all of
        // them even if one's destructor panics.
        unsafe { free_all(dropped) };
        n
    }

    /// Moves what exited worker threads left (see [`trim`](Self::trim))
    /// into the depot; returns the objects the depot had no room for
    /// (counted as dropped), for the caller to drop.
    #[cfg(not(loom))]
    fn reclaim_unheld(&self) -> Vec<NonNull<T>> {
        let mut overflow: Vec<NonNull<T>> = Vec::new();
        hot::with_unheld_numbers(self.slot, self.mags.len(), |w, orphan| {
            let mag = &self.mags[w];
            // Room for a full magazine and the orphan.
            let mut out = [ptr::null_mut(); MAX_MAGAZINE_SIZE + 2];
            // SAFETY: no thread holds number `w` while this runs (the
            // registry's lock is held), so this thread alone uses magazine
            // `w`; moving pointers runs no user code.
            let mut n = unsafe { mag.drain(&mut out) };
            if let Some(orphan) = orphan {
                // Counted as parked in the slot until now: from here on as
                // if it had been returned to the magazine, then spilled.
                out[n] = orphan.as_ptr().cast();
                n += 1;
                Magazine::<T>::add(&mag.pushed, 1);
                Magazine::<T>::add(&mag.popped, 1);
            }
            if n == 0 {
                return;
            }
            Magazine::<T>::add(&mag.spills, 1);
            Magazine::<T>::add(&mag.spilled, n as u64);
            // Moves pointers under the depot's shard locks: no user code.
            let moved = self.depot.push_from(w, &out[..n]);
            if moved < n {
                self.depot.count_full_drops(w, (n - moved) as u64);
                overflow.extend(out[moved..n].iter().filter_map(|&p| NonNull::new(p)));
            }
        });
        overflow
    }

    /// Under loom no thread has a number from the registry: nothing to do.
    #[cfg(loom)]
    fn reclaim_unheld(&self) -> Vec<NonNull<T>> {
        Vec::new()
    }

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
        hot::slot_counts(self.slot, 0..self.mags.len(), |w, counts| {
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
        hot::slot_counts(self.slot, worker..worker + 1, |_, counts| {
            stats = Some(Self::mag_stats(mag, counts));
        });
        stats
    }

    /// A magazine's counters, with the private slot of the thread that
    /// holds its number (`slot`).
    fn mag_stats(mag: &Magazine<T>, slot: SlotCounts) -> WorkerStats {
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

    // ---- the tiers. `worker` is the calling thread's worker number (or,
    // in the loom models, a number that only one model thread uses).

    /// Takes from magazine `w` (pop, else refill) when `w` indexes one;
    /// else `elsewhere` serves the get. One compare on the way to the
    /// magazine: `NO_ID` and numbers past the array fall through.
    ///
    /// `w` is the calling thread's worker number (or, in the loom models, a
    /// number that only one model thread uses), so it owns the magazine.
    #[inline(always)]
    fn take_at(
        &self,
        w: usize,
        make: bool,
        elsewhere: impl FnOnce() -> Option<NonNull<T>>,
    ) -> Option<NonNull<T>> {
        let Some(mag) = self.mags.get(w) else {
            return elsewhere();
        };
        // SAFETY: `w` is the calling thread's worker number, so it owns the
        // magazine; `pop` calls no user code.
        if let Some(slot) = unsafe { mag.pop() } {
            return Some(slot);
        }
        self.refill(w, mag, make)
    }

    /// [`take`](Self::take) for the calling thread: its private slot, else
    /// its magazine (out of line).
    #[inline(always)]
    fn take_here(&self, make: bool) -> Option<NonNull<T>> {
        // SAFETY: `self.slot` came from `register_pool` (or is `NO_SLOT`).
        if let Some(slot) = unsafe { hot::take(self.slot) } {
            return Some(slot.cast());
        }
        self.take_from_magazine(make)
    }

    /// [`take_here`](Self::take_here) for a [`worker_pool!`](crate::worker_pool)
    /// static, whose private slot on this thread is `entry`.
    ///
    /// # Safety
    /// `entry` is the calling thread's own entry of this pool's static.
    #[inline(always)]
    pub(crate) unsafe fn take_via(&self, entry: &hot::SlotEntry, make: bool) -> Option<NonNull<T>> {
        if let Some(slot) = hot::take_entry(entry) {
            return Some(slot.cast());
        }
        // SAFETY: forwarded.
        unsafe { self.take_via_cold(entry, make) }
    }

    /// The entry is empty, off, or not looked at yet on this thread: give
    /// it a slot in the last case, then go on to the magazine.
    ///
    /// # Safety
    /// As for [`take_via`](Self::take_via).
    #[inline(never)]
    unsafe fn take_via_cold(&self, entry: &hot::SlotEntry, make: bool) -> Option<NonNull<T>> {
        if !hot::unchecked(entry) {
            return self.take_from_magazine(make);
        }
        // Threads that are not workers stay unchecked: one look at the
        // number serves the check and the take.
        let worker = worker_id();
        // SAFETY: forwarded; `self.slot` is the static's index.
        if worker.is_some_and(|id| unsafe { hot::enable_here(self.slot, entry, id) }) {
            // An orphan its number's last holder left, if any.
            if let Some(slot) = hot::take_entry(entry) {
                return Some(slot.cast());
            }
        }
        self.take(worker, make)
    }

    /// [`give_back_here`](Self::give_back_here) for a
    /// [`worker_pool!`](crate::worker_pool) static.
    ///
    /// # Safety
    /// As for [`give_back`](Self::give_back); `entry` as for
    /// [`take_via`](Self::take_via).
    #[inline(always)]
    pub(crate) unsafe fn give_back_via(&self, slot: NonNull<T>, entry: &hot::SlotEntry) {
        // SAFETY: as in `give_back_here`.
        if !unsafe { self.depot.reset_slot(slot, HINT_HERE) } {
            return;
        }
        // SAFETY: the object is reset, idle and ours to hand over; `entry`
        // is this thread's for this pool.
        if unsafe { hot::park_entry(entry, slot.cast()) } {
            return;
        }
        // SAFETY: forwarded.
        unsafe { self.give_back_via_cold(slot, entry) }
    }

    /// # Safety
    /// As for [`give_back_via`](Self::give_back_via), with the object reset.
    #[inline(never)]
    unsafe fn give_back_via_cold(&self, slot: NonNull<T>, entry: &hot::SlotEntry) {
        if !hot::unchecked(entry) {
            // SAFETY: forwarded.
            return unsafe { self.place_in_magazine(slot) };
        }
        let worker = worker_id();
        // SAFETY: forwarded; `self.slot` is the static's index.
        if worker.is_some_and(|id| unsafe { hot::enable_here(self.slot, entry, id) })
            // SAFETY: as in `give_back_via`.
            && unsafe { hot::park_entry(entry, slot.cast()) }
        {
            return;
        }
        // SAFETY: forwarded; `worker` is the calling thread's number.
        unsafe { self.place(slot, worker) }
    }

    /// The magazine tier for the calling thread: the raw thread-local
    /// number is the index, and a thread not numbered yet (or not a
    /// worker) goes to the cold path, which numbers it if it is a worker.
    #[inline(never)]
    fn take_from_magazine(&self, make: bool) -> Option<NonNull<T>> {
        self.take_at(raw_worker_id(), make, || self.take_unnumbered(make))
    }

    #[cold]
    #[inline(never)]
    fn take_unnumbered(&self, make: bool) -> Option<NonNull<T>> {
        self.take(worker_id(), make)
    }

    #[inline(always)]
    pub(crate) fn take(&self, worker: Option<usize>, make: bool) -> Option<NonNull<T>> {
        self.take_at(worker.unwrap_or(NO_ID), make, || {
            self.take_from_depot(worker, make)
        })
    }

    #[cold]
    #[inline(never)]
    fn take_from_depot(&self, worker: Option<usize>, make: bool) -> Option<NonNull<T>> {
        let hint = worker.unwrap_or_else(shard_hint);
        if make {
            Some(self.depot.take_or_make(hint))
        } else {
            let slot = self.depot.pop_slot(hint);
            if slot.is_none() {
                self.depot.count_miss(hint);
            }
            slot
        }
    }

    /// The magazine is empty: refill half of it from the depot in one batch,
    /// else make a new object (a miss).
    #[cold]
    #[inline(never)]
    fn refill(&self, w: usize, mag: &Magazine<T>, make: bool) -> Option<NonNull<T>> {
        let half = self.mag_size.div_ceil(2);
        // SAFETY: the caller owns the magazine; `pop_into` only moves
        // pointers under the depot's shard locks and calls no user code.
        let got = unsafe {
            mag.with_slots(|slots, len| {
                debug_assert_eq!(len, 0, "refills only an empty magazine");
                self.depot.pop_into(w, &mut slots[..half])
            })
        };
        if got > 0 {
            Magazine::<T>::add(&mag.pushed, got as u64);
            Magazine::<T>::add(&mag.refills, 1);
            Magazine::<T>::add(&mag.refilled, got as u64);
            // SAFETY: as above.
            return unsafe { mag.pop() };
        }
        Magazine::<T>::add(&mag.misses, 1);
        if make {
            Some(self.depot.make_slot(w))
        } else {
            self.depot.count_miss(w);
            None
        }
    }

    /// Resets the object in `slot` and keeps it in the magazine of
    /// `worker`, else in the depot, or drops it.
    ///
    /// # Safety
    /// `slot` belongs to this pool and nothing else uses it.
    /// (The loom models' entry: they pass worker numbers in.)
    #[cfg_attr(not(all(test, loom)), allow(dead_code))]
    #[inline(always)]
    pub(crate) unsafe fn give_back(&self, slot: NonNull<T>, worker: Option<usize>) {
        let hint = worker.unwrap_or_else(shard_hint);
        // SAFETY: forwarded; the reset runs user code, outside any magazine.
        if !unsafe { self.depot.reset_slot(slot, hint) } {
            return;
        }
        // SAFETY: forwarded.
        unsafe { self.place(slot, worker) }
    }

    /// [`give_back`](Self::give_back) for the calling thread: reset, then
    /// its private slot, else its magazine (out of line).
    ///
    /// # Safety
    /// As for [`give_back`](Self::give_back).
    #[inline(always)]
    unsafe fn give_back_here(&self, slot: NonNull<T>) {
        // Read before the reset, whose stores the compiler cannot tell
        // apart from the pool's fields: one load, not two.
        let index = self.slot;
        // SAFETY: forwarded; the reset runs user code, outside any magazine
        // and private slot. The hint only picks the shard that counts a
        // drop: worked out there, off the hot path.
        if !unsafe { self.depot.reset_slot(slot, HINT_HERE) } {
            return;
        }
        // SAFETY: `index` as in `take_here`; the object is reset, idle and
        // ours to hand over.
        if unsafe { hot::park(index, slot.cast()) } {
            return;
        }
        // SAFETY: forwarded.
        unsafe { self.place_in_magazine(slot) }
    }

    /// The magazine tier of [`give_back_here`](Self::give_back_here), as
    /// [`take_from_magazine`](Self::take_from_magazine) does it.
    ///
    /// # Safety
    /// As for [`place`](Self::place).
    #[inline(never)]
    unsafe fn place_in_magazine(&self, slot: NonNull<T>) {
        // SAFETY: forwarded.
        unsafe { self.place_at(slot, raw_worker_id(), |slot| self.place_unnumbered(slot)) }
    }

    /// # Safety
    /// As for [`place`](Self::place).
    #[cold]
    #[inline(never)]
    unsafe fn place_unnumbered(&self, slot: NonNull<T>) {
        // SAFETY: forwarded.
        unsafe { self.place(slot, worker_id()) }
    }

    /// Keeps the object in `slot`, reset, in the magazine of `worker`, else
    /// in the depot, or drops it.
    ///
    /// # Safety
    /// `slot` belongs to this pool, nothing else uses it, and its object is
    /// reset; `worker` is the calling thread's number (or, in the loom
    /// models, one only this model thread uses).
    #[inline(always)]
    unsafe fn place(&self, slot: NonNull<T>, worker: Option<usize>) {
        // SAFETY: forwarded.
        unsafe {
            self.place_at(slot, worker.unwrap_or(NO_ID), |slot| {
                self.place_in_depot(slot, worker)
            })
        }
    }

    /// Keeps the reset object in `slot` in magazine `w` when `w` indexes
    /// one (spilling half the magazine if it is full); else hands `slot` to
    /// `elsewhere`.
    ///
    /// # Safety
    /// As for [`place`](Self::place); `w` is as for
    /// [`take_at`](Self::take_at); `elsewhere` takes the slot over.
    #[inline(always)]
    unsafe fn place_at(&self, slot: NonNull<T>, w: usize, elsewhere: impl FnOnce(NonNull<T>)) {
        let Some(mag) = self.mags.get(w) else {
            return elsewhere(slot);
        };
        // SAFETY: `w` is the calling thread's worker number: it owns
        // magazine `w`; `push` runs no user code.
        match unsafe { mag.push(slot, self.mag_size) } {
            Ok(()) => {}
            // SAFETY: forwarded.
            Err(slot) => unsafe { self.spill(w, mag, slot) },
        }
    }

    /// # Safety
    /// As for [`place`](Self::place).
    #[cold]
    #[inline(never)]
    unsafe fn place_in_depot(&self, slot: NonNull<T>, worker: Option<usize>) {
        let hint = worker.unwrap_or_else(shard_hint);
        if let Err(slot) = self.depot.push_slot(hint, slot, Arrival::Returned) {
            // SAFETY: the slot came back to us: ours alone.
            unsafe { self.depot.drop_slot(slot, hint, |c| &c.drops_full) };
        }
    }

    /// The magazine is full: move the colder (bottom) half of its stack to
    /// the depot in one batch, drop what the depot has no room for, then put
    /// `homeless` (an object [`Magazine::push`] counted in but could not
    /// place) on the stack.
    ///
    /// # Safety
    /// The caller owns magazine `w`; `homeless` is ours alone.
    #[cold]
    #[inline(never)]
    unsafe fn spill(&self, w: usize, mag: &Magazine<T>, homeless: NonNull<T>) {
        let mut overflow = [ptr::null_mut(); MAX_MAGAZINE_SIZE];
        // SAFETY: the caller owns the magazine; `push_from` only moves
        // pointers under shard locks. Dropping the overflow (user code) waits
        // until the magazine is released.
        let (half, moved) = unsafe {
            mag.with_slots(|slots, counted| {
                // `homeless` is counted but not on the stack.
                let len = counted - 1;
                let half = len.div_ceil(2);
                let moved = self.depot.push_from(w, &slots[..half]);
                overflow[..half - moved].copy_from_slice(&slots[moved..half]);
                slots.copy_within(half..len, 0);
                slots[len - half] = homeless.as_ptr();
                (half, moved)
            })
        };
        Magazine::<T>::add(&mag.popped, half as u64);
        Magazine::<T>::add(&mag.spills, 1);
        Magazine::<T>::add(&mag.spilled, half as u64);
        let dropped = &overflow[..half - moved];
        if !dropped.is_empty() {
            self.depot.count_full_drops(w, dropped.len() as u64);
            // SAFETY: they left the magazine and the depot has no room for
            // them: ours alone.
            unsafe { free_all(dropped.iter().filter_map(|&p| NonNull::new(p))) };
        }
    }
}

impl<T, R: Recycle<T>> sealed::Home<T> for WorkerPool<T, R> {
    #[inline(always)]
    unsafe fn recycle(&self, slot: NonNull<T>) {
        // SAFETY: forwarded from the guard's contract.
        unsafe { self.give_back_here(slot) }
    }

    unsafe fn discard(&self, slot: NonNull<T>) {
        // SAFETY: forwarded from the guard's contract.
        unsafe {
            self.depot
                .drop_slot(slot, shard_hint(), |c| &c.drops_discarded)
        }
    }

    unsafe fn detach(&self, slot: NonNull<T>) -> T {
        self.depot.count_detach(shard_hint());
        // SAFETY: forwarded from the guard's contract.
        unsafe { take_slot(slot) }
    }
}

impl<T, R: Recycle<T>> PoolKind<T> for WorkerPool<T, R> {}

impl<T, R> Drop for WorkerPool<T, R> {
    fn drop(&mut self) {
        // Objects parked for this pool: no thread can park more (the pool
        // is no longer held).
        let mut idle: Vec<NonNull<T>> = hot::unregister_pool(self.slot)
            .into_iter()
            .map(NonNull::cast)
            .collect();
        for mag in self.mags.iter() {
            let mut out = [ptr::null_mut(); MAX_MAGAZINE_SIZE + 1];
            // SAFETY: `&mut self`: no thread can use the pool any more, so
            // this is the only access to every magazine.
            let n = unsafe { mag.drain(&mut out) };
            idle.extend(out[..n].iter().filter_map(|&p| NonNull::new(p)));
        }
        // The depot's too, so that its own drop, which runs after a panic
        // here goes on, has none left to panic with.
        idle.extend(self.depot.take_idle());
        // SAFETY: idle objects belong to the pool alone; they left every
        // tier.
        unsafe { free_all(idle) };
    }
}

impl<T, R: Recycle<T>> fmt::Debug for WorkerPool<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("workers", &self.mags.len())
            .field("magazine_size", &self.mag_size)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
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
    depot: PoolBuilder<T, R>,
    workers: Option<usize>,
    mag_size: usize,
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

    /// Objects per magazine (default [`DEFAULT_MAGAZINE_SIZE`]), clamped to
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
        let workers = self.workers.unwrap_or_else(|| {
            tokio::runtime::Handle::try_current().map_or_else(
                |_| std::thread::available_parallelism().map_or(1, |n| n.get()),
                |h| h.metrics().num_workers(),
            )
        });
        let mags: Vec<CachePadded<Magazine<T>>> = (0..workers).map(|_| Magazine::new()).collect();
        let depot = self.depot.build();
        // Last: from here on worker threads may park objects for this pool,
        // and its drop must take them back.
        // Zero-sized objects get none: a `Box` of one may sit at address 1,
        // which the slots read as "empty".
        let slot = if size_of::<T>() == 0 {
            hot::NO_SLOT
        } else {
            hot::register_pool(PoolEntry {
                mags: mags.as_ptr().cast(),
                workers,
                fold_hits: fold_slot_hits::<T>,
                dedicated,
            })
        };
        WorkerPool {
            slot,
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

#[cfg(all(test, loom))]
mod loom_models {
    //! Loom models of magazine take/release and the batch spill/refill
    //! between magazines and the depot. Worker numbers are passed in as
    //! plain numbers, one per model thread, as the thread-keyed design
    //! guarantees. Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib`.

    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    use crate::loom::model::{Obj, hold, release};

    fn pool(depot_idle: usize) -> Arc<WorkerPool<Obj>> {
        Arc::new(
            WorkerPool::builder(Obj::new)
                .workers(2)
                .magazine_size(2)
                .shards(2)
                .max_idle(depot_idle)
                .build(),
        )
    }

    fn check(pool: &WorkerPool<Obj>) -> PoolStats {
        let s = pool.stats();
        assert_eq!(s.get_count, s.hit_count + s.miss_count, "{s}");
        assert_eq!(
            s.created_count + s.adopt_count,
            s.num_idle + s.num_in_use + s.drop_count() + s.detach_count,
            "{s}"
        );
        assert_eq!(s.num_in_use, 0, "{s}");
        s
    }

    /// Worker 0 fills its magazine past full (a spill into the depot) and
    /// then empties it (a refill from the depot) while a non-worker thread
    /// uses the depot directly.
    #[test]
    fn spill_and_refill_race_with_depot_users() {
        loom::model(|| {
            let pool = pool(2);
            // Three objects up front: the model explores the batch moves,
            // not the constructor.
            let made: Vec<_> = (0..3).map(|_| pool.take(Some(0), true).unwrap()).collect();
            for s in made {
                // SAFETY: the slot came from this pool and is done.
                unsafe { pool.give_back(s, Some(0)) };
            }
            let w0 = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    // Two from the magazine, the third by a refill; then
                    // three back: the last one spills.
                    let taken: Vec<_> = (0..3).filter_map(|_| pool.take(Some(0), false)).collect();
                    for &s in &taken {
                        hold(s);
                    }
                    for s in taken {
                        release(s);
                        // SAFETY: as above.
                        unsafe { pool.give_back(s, Some(0)) };
                    }
                })
            };
            if let Some(s) = pool.take(None, false) {
                hold(s);
                release(s);
                // SAFETY: as above.
                unsafe { pool.give_back(s, None) };
            }
            w0.join().unwrap();
            let st = check(&pool);
            assert_eq!(st.num_idle + st.drop_count(), 3);
        });
    }

    /// A guard taken on worker 0 and dropped on worker 1 lands in
    /// magazine 1, while worker 1 takes and returns its own.
    #[test]
    fn cross_worker_return() {
        loom::model(|| {
            let pool = pool(4);
            let slot = pool.take(Some(0), true).unwrap();
            hold(slot);
            let a = {
                let pool = Arc::clone(&pool);
                let slot = slot.as_ptr() as usize;
                thread::spawn(move || {
                    let slot = NonNull::new(slot as *mut Obj).unwrap();
                    release(slot);
                    // SAFETY: handed over from the main thread, which no
                    // longer uses it.
                    unsafe { pool.give_back(slot, Some(1)) };
                })
            };
            let b = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    let s = pool.take(Some(0), true).unwrap();
                    hold(s);
                    release(s);
                    // SAFETY: as above.
                    unsafe { pool.give_back(s, Some(0)) };
                })
            };
            a.join().unwrap();
            b.join().unwrap();
            let st = check(&pool);
            assert_eq!(pool.worker_stats(1).unwrap().local_return_count, 1);
            assert_eq!(st.num_idle, st.created_count);
        });
    }
}
